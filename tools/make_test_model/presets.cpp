// Named model shapes. The full-size presets match ../shared/tools/synth_gguf.py (FULL), i.e. the
// public Hugging Face configs of Qwen3-4B, Qwen3.5-4B (text tower) and Qwen2.5-7B; the tiny ones
// are for tests: a few layers at d=256 (a multiple of 256, so K-quants apply to the matrices),
// tokenizer copied from a vocab GGUF of ../shared/vocab.
#include "make_test_model/model_spec.h"

namespace anvil::tools::mtm {
namespace {

VocabSpec qwen_synthetic_vocab(int64_t size, int64_t endoftext_id, const std::string& pre) {
  VocabSpec v;
  v.source = VocabSpec::Source::synthetic;
  v.synthetic_size = size;
  v.specials = {{"<|endoftext|>", endoftext_id}, {"<|im_start|>", endoftext_id + 1}, {"<|im_end|>", endoftext_id + 2}};
  v.bos = "<|endoftext|>";
  v.eos = "<|im_end|>";
  v.pad = "<|endoftext|>";
  v.pre = pre;
  return v;
}

// Tokenizer from a vocab GGUF; `fallback` is what --synthetic-vocab N makes instead.
VocabSpec vocab_file(const std::string& file, VocabSpec fallback = qwen_synthetic_vocab(0, 0, "qwen2")) {
  fallback.source = VocabSpec::Source::file;
  fallback.file = file;
  return fallback;
}

ModelSpec qwen3_4b() {
  ModelSpec s;
  s.arch = "qwen3";
  s.name = "synthetic-Qwen3-4B";
  s.n_layer = 36;
  s.n_embd = 2560;
  s.n_ff = 9728;
  s.n_head = 32;
  s.n_head_kv = 8;
  s.head_dim = 128;
  s.n_ctx = 40960;
  s.rope_theta = 1e6f;
  s.rms_eps = 1e-6f;
  s.tied = true;
  s.vocab = qwen_synthetic_vocab(151936, 151643, "qwen2");
  return s;
}

ModelSpec qwen35_4b() {
  ModelSpec s;
  s.arch = "qwen35";
  s.name = "synthetic-Qwen3.5-4B";
  s.n_layer = 32;
  s.n_embd = 2560;
  s.n_ff = 9216;
  s.n_head = 16;
  s.n_head_kv = 4;
  s.head_dim = 256;
  s.rope_dim = 64;
  s.rope_sections = {11, 11, 10, 0};
  s.rope_theta = 1e7f;
  s.rms_eps = 1e-6f;
  s.n_ctx = 262144;
  s.tied = true;
  s.full_attn_interval = 4;
  s.ssm_conv = 4;
  s.ssm_state = 128;
  s.ssm_k_heads = 16;
  s.ssm_v_heads = 32;
  s.vocab = qwen_synthetic_vocab(248320, 248044, "qwen35");
  return s;
}

ModelSpec qwen25_7b() {
  ModelSpec s;
  s.arch = "qwen2";
  s.name = "synthetic-Qwen2.5-7B";
  s.n_layer = 28;
  s.n_embd = 3584;
  s.n_ff = 18944;
  s.n_head = 28;
  s.n_head_kv = 4;
  s.head_dim = 128;
  s.n_ctx = 131072;
  s.rope_theta = 1e6f;
  s.rms_eps = 1e-6f;
  s.tied = false;
  s.qkv_bias = true;
  s.vocab = qwen_synthetic_vocab(152064, 151643, "qwen2");
  return s;
}

ModelSpec tiny_llama() {
  ModelSpec s;
  s.arch = "llama";
  s.name = "synthetic-llama-tiny";
  s.n_layer = 2;
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 64;
  s.rope_theta = 10000.0f;
  s.rms_eps = 1e-5f;
  s.tied = false;
  s.vocab = vocab_file("ggml-vocab-llama-spm.gguf");
  return s;
}

ModelSpec tiny_qwen2() {
  ModelSpec s = qwen25_7b();
  s.name = "synthetic-Qwen2.5-tiny";
  s.n_layer = 2;
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 64;
  s.n_ctx = 4096;
  s.vocab = vocab_file("ggml-vocab-gpt-2.gguf", s.vocab);
  return s;
}

ModelSpec tiny_qwen3() {
  ModelSpec s = qwen3_4b();
  s.name = "synthetic-Qwen3-tiny";
  s.n_layer = 2;
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 64;
  s.n_ctx = 4096;
  s.vocab = vocab_file("ggml-vocab-gpt-2.gguf", s.vocab);
  return s;
}

ModelSpec tiny_qwen35() {  // synth_gguf.py's TINY qwen35 apart from the vocab
  ModelSpec s = qwen35_4b();
  s.name = "synthetic-Qwen3.5-tiny";
  s.vocab = vocab_file("ggml-vocab-gpt-2.gguf", s.vocab);
  s.n_layer = 4;  // 3 Gated DeltaNet layers + 1 full-attention layer
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_head = 2;
  s.n_head_kv = 1;
  s.head_dim = 128;
  s.rope_dim = 32;
  s.rope_sections = {6, 5, 5, 0};
  s.n_ctx = 4096;
  s.ssm_state = 128;
  s.ssm_k_heads = 2;
  s.ssm_v_heads = 4;
  return s;
}

ModelSpec tiny_gemma3() {
  ModelSpec s;
  s.arch = "gemma3";
  s.name = "synthetic-gemma3-tiny";
  s.n_layer = 6;  // layers 0-4 sliding window, layer 5 global (pattern 6)
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_head = 4;
  s.n_head_kv = 1;
  s.head_dim = 64;
  s.n_ctx = 4096;
  s.rope_theta = 1e6f;
  s.rms_eps = 1e-6f;
  s.tied = true;
  s.sliding_window = 32;  // small so short test prompts cross it
  s.swa_pattern = 6;
  s.vocab = vocab_file("ggml-vocab-llama-spm.gguf");
  return s;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> list = {
      {"qwen3-4b", "Qwen3-4B shapes: 36 layers, d 2560, ffn 9728, 32/8 heads x 128, vocab 151936, tied", qwen3_4b()},
      {"qwen35-4b",
       "Qwen3.5-4B text tower: 32 layers (24 Gated DeltaNet + 8 gated attention), d 2560, ffn 9216, vocab 248320",
       qwen35_4b()},
      {"qwen25-7b", "Qwen2.5-7B shapes: 28 layers, d 3584, ffn 18944, 28/4 heads x 128, QKV bias, vocab 152064",
       qwen25_7b()},
      {"tiny-llama", "llama, 2 layers, d 256, ffn 512, 4/2 heads x 64, untied, llama-spm vocab (32000)", tiny_llama()},
      {"tiny-qwen2", "qwen2, 2 layers, d 256, ffn 512, 4/2 heads x 64, QKV bias, untied, gpt-2 vocab (50257)",
       tiny_qwen2()},
      {"tiny-qwen3", "qwen3, 2 layers, d 256, ffn 512, 4/2 heads x 64, QK-norm, tied, gpt-2 vocab (50257)",
       tiny_qwen3()},
      {"tiny-qwen35",
       "qwen35, 4 layers (3 DeltaNet + 1 attention), d 256, 2/1 heads x 128, GDN 2/4 heads x 128, gpt-2 vocab",
       tiny_qwen35()},
      {"tiny-gemma3", "gemma3, 6 layers (5 sliding-window 32 + 1 global), d 256, 4/1 heads x 64, llama-spm vocab",
       tiny_gemma3()},
  };
  return list;
}

const Preset* find_preset(const std::string& name) {
  for (const auto& p : presets())
    if (p.name == name) return &p;
  return nullptr;
}

ModelSpec defaults_for_arch(const std::string& arch) {
  const Preset* p = find_preset("tiny-" + arch);
  ModelSpec s = p ? p->spec : ModelSpec{};
  s.arch = arch;
  s.name = "synthetic-" + arch;
  return s;
}

}  // namespace anvil::tools::mtm
