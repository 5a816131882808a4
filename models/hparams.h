// A model's hyperparameters as the GGUF metadata states them ({arch}.* keys, as llama.cpp's
// converter writes them), validated once at load so the forward pass can trust them.
//
//   auto hp = models::read_hparams(file);   // Expected<HParams>; errors name the key
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace anvil::gguf {
class File;
}

namespace anvil::models {

// The architectures anvil implements. llama, qwen2 and qwen3 share one forward pass
// (models/llama.cpp); gemma3 and qwen35 (Qwen3.5: Gated DeltaNet + gated attention) have their
// own (models/gemma3.cpp, models/qwen35.cpp).
enum class Arch { llama, qwen2, qwen3, gemma3, qwen35 };

const char* arch_name(Arch a);

struct HParams {
  Arch arch = Arch::llama;
  std::string arch_name;  // general.architecture as written

  int32_t n_layer = 0;
  int32_t n_embd = 0;
  int32_t n_ff = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;    // attention.key_length (== value_length), default n_embd / n_head
  int32_t n_vocab = 0;     // rows of token_embd
  int32_t n_ctx_train = 0; // context_length

  float rms_eps = 1e-6f;

  int32_t rope_dims = 0;          // rotated dims of each head (rope.dimension_count, default head_dim)
  float rope_freq_base = 10000.f; // rope.freq_base (gemma3: the global layers')
  float rope_freq_scale = 1.f;    // 1 / rope.scaling.factor for rope.scaling.type "linear"

  // gemma3: sliding-window (local) attention on every layer except each swa_pattern-th;
  // local layers rotate with their own base (10000, as llama.cpp hard-codes it).
  int32_t sliding_window = 0;     // 0: every layer attends to the whole context
  int32_t swa_pattern = 0;        // layer il is global when (il + 1) % swa_pattern == 0
  float rope_freq_base_local = 10000.f;

  float attn_scale = 0.f;  // applied to q.k; 1 / sqrt(head_dim) for every architecture here

  // qwen35: layer il is a Gated DeltaNet (recurrent) layer unless (il + 1) % full_attention_interval
  // == 0 (full_attention_interval); the rest use gated attention (attn_q holds query and gate rows).
  int32_t full_attention_interval = 0;  // 0: no recurrent layers
  int32_t ssm_conv_kernel = 0;  // ssm.conv_kernel: causal conv width
  int32_t ssm_d_k = 0;          // ssm.state_size: q/k head dim of the delta rule
  int32_t ssm_n_k_heads = 0;    // ssm.group_count: q/k heads
  int32_t ssm_n_v_heads = 0;    // ssm.time_step_rank: value heads (a multiple of ssm_n_k_heads)
  int32_t ssm_d_v = 0;          // ssm.inner_size / ssm_n_v_heads
  // rope.dimension_sections (multimodal RoPE): for text every section takes the token position,
  // so plain NEOX RoPE over rope_dims is the same rotation; kept for inspection.
  std::vector<int32_t> rope_sections;

  int32_t ssm_qk_dim() const { return ssm_n_k_heads * ssm_d_k; }
  int32_t ssm_v_dim() const { return ssm_n_v_heads * ssm_d_v; }
  int32_t ssm_conv_channels() const { return 2 * ssm_qk_dim() + ssm_v_dim(); }
  bool is_recurrent_layer(int32_t il) const {
    return full_attention_interval > 0 && (il + 1) % full_attention_interval != 0;
  }
  bool has_recurrent_layers() const { return full_attention_interval > 1; }

  int32_t q_dim() const { return n_head * head_dim; }
  int32_t kv_dim() const { return n_head_kv * head_dim; }
  bool is_sliding_layer(int32_t il) const {
    return sliding_window > 0 && swa_pattern > 0 && (il + 1) % swa_pattern != 0;
  }
};

// Reads and validates the hyperparameters of `file`'s architecture. Errors: unsupported for an
// architecture anvil has no forward pass for (naming it); not_found naming a missing required
// key; invalid_argument naming a key whose value is out of range or inconsistent.
Expected<HParams> read_hparams(const gguf::File& file);

// "llama, qwen2, qwen3, gemma3, qwen35"
std::string supported_arch_list();

}  // namespace anvil::models
