#include "models/hparams.h"

#include <cmath>
#include <optional>
#include <string_view>

#include "gguf/file.h"

namespace anvil::models {
namespace {

struct ArchName {
  const char* name;
  Arch arch;
};
constexpr ArchName kArchNames[] = {
    {"llama", Arch::llama},
    {"qwen2", Arch::qwen2},
    {"qwen3", Arch::qwen3},
    {"gemma3", Arch::gemma3},
    {"qwen35", Arch::qwen35},
};

// Bounds that keep every size computed from them far from overflow (a hostile file can say
// anything); real models are orders of magnitude below.
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxWidth = int64_t(1) << 20;

// Reads {arch}.<suffix> as an integer in [lo, hi]. nullopt fallback: the key is required.
Expected<int32_t> read_int(const gguf::File& f, const std::string& key, int64_t lo, int64_t hi,
                           std::optional<int32_t> fallback = std::nullopt) {
  const gguf::Value* v = f.find(key);
  if (!v) {
    if (fallback) return *fallback;
    return make_error(StatusCode::not_found, "model metadata: required key '", key, "' is missing");
  }
  if (v->type() == gguf::ValueType::ARRAY)
    return make_error(StatusCode::unsupported, "model metadata: key '", key,
                      "' is a per-layer array; anvil supports one value for all layers");
  int64_t x = 0;
  if (!v->to_int64(x))
    return make_error(StatusCode::invalid_argument, "model metadata: key '", key, "' must be an integer, got ",
                      gguf::value_type_name(v->type()));
  if (x < lo || x > hi)
    return make_error(StatusCode::invalid_argument, "model metadata: key '", key, "' = ", x, " is outside [", lo,
                      ", ", hi, "]");
  return int32_t(x);
}

Expected<float> read_float(const gguf::File& f, const std::string& key, std::optional<float> fallback) {
  const gguf::Value* v = f.find(key);
  if (!v) {
    if (fallback) return *fallback;
    return make_error(StatusCode::not_found, "model metadata: required key '", key, "' is missing");
  }
  double x = 0;
  if (!v->to_double(x))
    return make_error(StatusCode::invalid_argument, "model metadata: key '", key, "' must be a number, got ",
                      gguf::value_type_name(v->type()));
  if (!std::isfinite(x) || x <= 0)
    return make_error(StatusCode::invalid_argument, "model metadata: key '", key, "' = ", x, " must be positive");
  return float(x);
}

#define ANVIL_ASSIGN_OR_RETURN(lhs, expr) \
  do {                                    \
    auto _anvil_e = (expr);               \
    if (!_anvil_e) return _anvil_e.status(); \
    lhs = *_anvil_e;                      \
  } while (0)

// Linear position scaling only: the other schemes (yarn, llama3 frequency factors) change the
// rotation in ways RopeParams does not express, and silently ignoring them gives wrong logits.
Status read_rope_scaling(const gguf::File& f, const std::string& a, HParams& hp) {
  std::string type = "none";
  if (f.has(a + "rope.scaling.type")) {
    auto t = f.get_string(a + "rope.scaling.type");
    if (!t) return t.status();
    type = *t;
  }
  float factor = 1.f;
  if (f.has(a + "rope.scaling.factor")) {
    ANVIL_ASSIGN_OR_RETURN(factor, read_float(f, a + "rope.scaling.factor", 1.f));
  } else if (f.has(a + "rope.scale_linear")) {  // the older spelling
    ANVIL_ASSIGN_OR_RETURN(factor, read_float(f, a + "rope.scale_linear", 1.f));
    if (type == "none") type = "linear";
  }
  if (type == "none") return Status::ok();
  if (type != "linear")
    return make_error(StatusCode::unsupported, "model metadata: key '", a, "rope.scaling.type' = '", type,
                      "' is not supported (anvil implements 'none' and 'linear')");
  hp.rope_freq_scale = 1.f / factor;
  return Status::ok();
}

// Qwen3.5's hybrid layout as llama.cpp's converter writes it (ssm.* keys, full_attention_interval,
// rope.dimension_sections).
Status read_qwen35(const gguf::File& f, const std::string& a, HParams& hp) {
  ANVIL_ASSIGN_OR_RETURN(hp.full_attention_interval, read_int(f, a + "full_attention_interval", 1, kMaxLayers, 4));
  ANVIL_ASSIGN_OR_RETURN(hp.ssm_conv_kernel, read_int(f, a + "ssm.conv_kernel", 2, 64));
  ANVIL_ASSIGN_OR_RETURN(hp.ssm_d_k, read_int(f, a + "ssm.state_size", 1, 4096));
  ANVIL_ASSIGN_OR_RETURN(hp.ssm_n_k_heads, read_int(f, a + "ssm.group_count", 1, 4096));
  ANVIL_ASSIGN_OR_RETURN(hp.ssm_n_v_heads, read_int(f, a + "ssm.time_step_rank", 1, 4096));
  int32_t d_inner = 0;
  ANVIL_ASSIGN_OR_RETURN(d_inner, read_int(f, a + "ssm.inner_size", 1, kMaxWidth));
  if (hp.ssm_n_v_heads % hp.ssm_n_k_heads != 0 || d_inner % hp.ssm_n_v_heads != 0)
    return make_error(StatusCode::invalid_argument, "model metadata: '", a, "ssm.time_step_rank' (",
                      hp.ssm_n_v_heads, ") must be a multiple of '", a, "ssm.group_count' (", hp.ssm_n_k_heads,
                      ") and divide '", a, "ssm.inner_size' (", d_inner, ")");
  hp.ssm_d_v = d_inner / hp.ssm_n_v_heads;
  if (int64_t(hp.ssm_n_k_heads) * hp.ssm_d_k > kMaxWidth)
    return make_error(StatusCode::invalid_argument, "model metadata: ssm.group_count x ssm.state_size is too large");
  if (f.has(a + "rope.dimension_sections")) {
    auto sec = f.get_int_array(a + "rope.dimension_sections");
    if (!sec) return sec.status();
    int64_t sum = 0;
    for (int64_t v : *sec) {
      if (v < 0 || v > hp.rope_dims)
        return make_error(StatusCode::invalid_argument, "model metadata: '", a,
                          "rope.dimension_sections' has an entry ", v, " outside [0, ", hp.rope_dims, "]");
      sum += v;
      hp.rope_sections.push_back(int32_t(v));
    }
    if (2 * sum > hp.rope_dims)
      return make_error(StatusCode::invalid_argument, "model metadata: '", a, "rope.dimension_sections' sum to ",
                        sum, " pairs, more than rope.dimension_count / 2 = ", hp.rope_dims / 2);
  }
  return Status::ok();
}

}  // namespace

const char* arch_name(Arch a) {
  for (const auto& n : kArchNames)
    if (n.arch == a) return n.name;
  return "?";
}

std::string supported_arch_list() {
  std::string s;
  for (const auto& n : kArchNames) {
    if (!s.empty()) s += ", ";
    s += n.name;
  }
  return s;
}

Expected<HParams> read_hparams(const gguf::File& f) {
  auto arch = f.architecture();
  if (!arch) return arch.status();
  HParams hp;
  hp.arch_name = *arch;
  bool known = false;
  for (const auto& n : kArchNames)
    if (hp.arch_name == n.name) hp.arch = n.arch, known = true;
  if (!known)
    return make_error(StatusCode::unsupported, "unknown architecture '", hp.arch_name,
                      "' (general.architecture); anvil supports: ", supported_arch_list());

  const std::string a = hp.arch_name + ".";
  ANVIL_ASSIGN_OR_RETURN(hp.n_layer, read_int(f, a + "block_count", 1, kMaxLayers));
  ANVIL_ASSIGN_OR_RETURN(hp.n_embd, read_int(f, a + "embedding_length", 1, kMaxWidth));
  ANVIL_ASSIGN_OR_RETURN(hp.n_ff, read_int(f, a + "feed_forward_length", 1, kMaxWidth));
  ANVIL_ASSIGN_OR_RETURN(hp.n_head, read_int(f, a + "attention.head_count", 1, 4096));
  ANVIL_ASSIGN_OR_RETURN(hp.n_head_kv, read_int(f, a + "attention.head_count_kv", 1, 4096, hp.n_head));
  ANVIL_ASSIGN_OR_RETURN(hp.n_ctx_train, read_int(f, a + "context_length", 1, int64_t(1) << 30));
  ANVIL_ASSIGN_OR_RETURN(hp.rms_eps, read_float(f, a + "attention.layer_norm_rms_epsilon", std::nullopt));

  if (hp.n_head % hp.n_head_kv != 0)
    return make_error(StatusCode::invalid_argument, "model metadata: '", a, "attention.head_count' (", hp.n_head,
                      ") is not a multiple of '", a, "attention.head_count_kv' (", hp.n_head_kv, ")");
  // key_length may be absent when it is n_embd / n_head (the default the readers assume)
  std::optional<int32_t> default_head_dim;
  if (hp.n_embd % hp.n_head == 0) default_head_dim = hp.n_embd / hp.n_head;
  ANVIL_ASSIGN_OR_RETURN(hp.head_dim, read_int(f, a + "attention.key_length", 2, 8192, default_head_dim));
  int32_t v_dim = 0;
  ANVIL_ASSIGN_OR_RETURN(v_dim, read_int(f, a + "attention.value_length", 2, 8192, hp.head_dim));
  if (v_dim != hp.head_dim)
    return make_error(StatusCode::unsupported, "model metadata: '", a, "attention.value_length' (", v_dim,
                      ") differs from '", a, "attention.key_length' (", hp.head_dim, ")");
  if (hp.head_dim % 2 != 0)
    return make_error(StatusCode::invalid_argument, "model metadata: '", a, "attention.key_length' = ",
                      hp.head_dim, " must be even (RoPE rotates pairs)");
  if (int64_t(hp.n_head) * hp.head_dim > kMaxWidth)
    return make_error(StatusCode::invalid_argument, "model metadata: head_count x key_length is too large");

  ANVIL_ASSIGN_OR_RETURN(hp.rope_freq_base, read_float(f, a + "rope.freq_base", 10000.f));
  ANVIL_ASSIGN_OR_RETURN(hp.rope_dims, read_int(f, a + "rope.dimension_count", 2, hp.head_dim, hp.head_dim));
  if (hp.rope_dims % 2 != 0)
    return make_error(StatusCode::invalid_argument, "model metadata: '", a, "rope.dimension_count' = ",
                      hp.rope_dims, " must be even");
  ANVIL_RETURN_IF_ERROR(read_rope_scaling(f, a, hp));

  // Every architecture here scales scores by 1/sqrt(head_dim). (Gemma 3 27B's
  // query_pre_attn_scalar is n_embd / n_head instead; its head_dim is 128 while
  // n_embd / n_head is 168, so that one model would need its own scale.)
  hp.attn_scale = 1.f / std::sqrt(float(hp.head_dim));

  if (hp.arch == Arch::gemma3) {
    ANVIL_ASSIGN_OR_RETURN(hp.sliding_window, read_int(f, a + "attention.sliding_window", 1, int64_t(1) << 30));
    // llama.cpp hard-codes every 6th layer global; a file may say otherwise.
    ANVIL_ASSIGN_OR_RETURN(hp.swa_pattern, read_int(f, a + "attention.sliding_window_pattern", 1, kMaxLayers, 6));
    hp.rope_freq_base_local = 10000.f;
  }

  if (hp.arch == Arch::qwen35) ANVIL_RETURN_IF_ERROR(read_qwen35(f, a, hp));

  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) return make_error(StatusCode::not_found, "model is missing tensor 'token_embd.weight'");
  if (embd->dims.size() != 2 || embd->dims[1] < 1 || embd->dims[1] > uint64_t(1) << 24)
    return make_error(StatusCode::invalid_argument, "tensor 'token_embd.weight' has an unusable shape");
  hp.n_vocab = int32_t(embd->dims[1]);
  return hp;
}

}  // namespace anvil::models
