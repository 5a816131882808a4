// make-test-model: what a synthetic model looks like (ModelSpec), the named presets, the
// per-architecture tensor plan and metadata, the tokenizer source, and the weight generator.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "gguf/value.h"
#include "gguf/writer.h"

namespace anvil::tools::mtm {

inline const std::vector<std::string>& supported_archs() {
  static const std::vector<std::string> a = {"llama", "qwen2", "qwen3", "qwen35", "gemma3"};
  return a;
}

// Where the tokenizer comes from.
struct VocabSpec {
  enum class Source { file, synthetic };
  Source source = Source::synthetic;
  std::string file;           // a vocab GGUF (a bare name is looked up in the vocab dir)
  int64_t synthetic_size = 0; // tokens of a made-up byte-level BPE vocab
  // Special tokens of the synthetic vocab at their real ids (moved to the last ids when the
  // vocab is smaller than that).
  std::vector<std::pair<std::string, int64_t>> specials;
  std::string bos, eos, pad;  // names among `specials`
  std::string pre = "qwen2";  // tokenizer.ggml.pre
};

struct ModelSpec {
  std::string arch;
  std::string name;
  int n_layer = 2;
  int n_embd = 256;
  int n_ff = 512;
  int n_head = 4;
  int n_head_kv = 2;
  int head_dim = 64;
  uint32_t n_ctx = 4096;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-6f;
  bool tied = true;      // no output.weight: the LM head reuses token_embd
  bool qkv_bias = false; // qwen2
  // qwen35 (Gated DeltaNet + gated attention)
  int rope_dim = 0;                      // partial rotary dims; 0: head_dim
  std::vector<int32_t> rope_sections;    // mrope sections (qwen35)
  int full_attn_interval = 4;            // every Nth layer is full attention
  int ssm_conv = 4;                      // conv1d kernel
  int ssm_state = 128;                   // head_k_dim == head_v_dim
  int ssm_k_heads = 16;                  // ssm.group_count
  int ssm_v_heads = 32;                  // ssm.time_step_rank
  // gemma3
  int sliding_window = 0;
  int swa_pattern = 6;                   // every Nth layer global; llama.cpp's gemma3 default
  VocabSpec vocab;
};

struct Preset {
  std::string name;
  std::string summary;
  ModelSpec spec;
};

const std::vector<Preset>& presets();
const Preset* find_preset(const std::string& name);
// The starting point when only --arch is given: that arch's tiny preset.
ModelSpec defaults_for_arch(const std::string& arch);

// ---------------------------------------------------------------- tensor plan (arch_plans.cpp)

enum class WeightKind {
  matrix,  // N(0, std)
  norm,    // ~1.0
  bias,    // N(0, std)
  conv,    // N(0, std), ssm_conv1d (kept F32 like the converter does)
  ssm_a,   // -exp(U(0, log 16))
  ssm_dt,  // inverse softplus of U_log(1e-3, 1e-1)
};

struct TensorPlan {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] is the row length
  WeightKind kind;
  DType type = DType::F32;     // chosen by the file type's mix
};

// Empty when the spec is consistent, else what is wrong.
std::string validate(const ModelSpec& s);
std::vector<TensorPlan> tensor_plan(const ModelSpec& s, int64_t n_vocab);
// {arch}.* hyperparameter keys as the public converters write them.
void add_arch_metadata(gguf::Writer& w, const ModelSpec& s, int64_t n_vocab);

// ---------------------------------------------------------------- tokenizer (vocab.cpp)

struct Vocab {
  std::vector<std::pair<std::string, gguf::Value>> keys;  // every tokenizer.* key
  int64_t n_tokens = 0;
  std::string description;  // "ggml-vocab-gpt-2.gguf" or "synthetic BPE"
};

Expected<Vocab> load_vocab_file(const std::string& path);
Vocab synthetic_vocab(const VocabSpec& v, int64_t n_tokens);

// ---------------------------------------------------------------- weights (weights.cpp)

struct WeightOptions {
  uint64_t seed = 1234;
  float std = 0.02f;
};

// Rows per independent random stream: depends on the row length only, so the values do not
// depend on the number of threads.
int64_t rows_per_stream(uint64_t ne0);
// Generates rows [row0, row0 + n_rows) of tensor #tensor_index (whole streams: row0 is a
// multiple of rows_per_stream) into out (n_rows * ne0 floats).
void generate_rows(const WeightOptions& o, WeightKind kind, uint64_t tensor_index, uint64_t ne0, int64_t row0,
                   int64_t n_rows, float* out);

}  // namespace anvil::tools::mtm
