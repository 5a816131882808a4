// Tensor names, shapes and hyperparameter keys per architecture, as llama.cpp's converter
// (gguf-py constants / convert_hf_to_gguf) writes them for public GGUFs:
//   token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
//   ffn_up, ffn_down}, output_norm, output (absent when tied)
//   qwen2: attn_{q,k,v}.bias          qwen3: attn_{q,k}_norm
//   gemma3: attn_{q,k}_norm, post_attention_norm, post_ffw_norm; attention.sliding_window
//   qwen35: as ../shared/tools/synth_gguf.py (Gated DeltaNet layers: attn_qkv, attn_gate,
//           ssm_conv1d, ssm_dt.bias, ssm_a, ssm_beta, ssm_alpha, ssm_norm, ssm_out; every
//           full_attention_interval-th layer gated attention with a 2x wide attn_q)
#include <fmt/format.h>

#include "make_test_model/model_spec.h"

namespace anvil::tools::mtm {
namespace {

using u64 = uint64_t;

bool is_recurrent_layer(const ModelSpec& s, int il) {
  return s.arch == "qwen35" && (il + 1) % s.full_attn_interval != 0;
}

void add(std::vector<TensorPlan>& plan, std::string name, std::vector<u64> dims, WeightKind kind) {
  plan.push_back({std::move(name), std::move(dims), kind});
}

}  // namespace

std::string validate(const ModelSpec& s) {
  bool known = false;
  for (const auto& a : supported_archs()) known = known || a == s.arch;
  if (!known) return fmt::format("unknown architecture '{}'", s.arch);
  auto positive = [](int v) { return v >= 1 && v <= (1 << 20); };
  if (!positive(s.n_layer) || s.n_layer > 4096) return "--layers must be in 1..4096";
  if (!positive(s.n_embd)) return "--embd must be positive";
  if (!positive(s.n_ff)) return "--ff must be positive";
  if (!positive(s.n_head) || !positive(s.n_head_kv)) return "--heads and --kv-heads must be positive";
  if (s.n_head % s.n_head_kv != 0)
    return fmt::format("--heads ({}) must be a multiple of --kv-heads ({})", s.n_head, s.n_head_kv);
  if (!positive(s.head_dim) || s.head_dim % 2 != 0) return "--head-dim must be positive and even";
  if (s.n_ctx < 1) return "--ctx must be positive";
  if (!(s.rms_eps > 0)) return "--rms-eps must be positive";
  if (!(s.rope_theta > 0)) return "--rope-theta must be positive";
  if (s.arch == "qwen35") {
    if (s.rope_dim < 2 || s.rope_dim % 2 != 0 || s.rope_dim > s.head_dim)
      return fmt::format("--rope-dim ({}) must be even and at most --head-dim ({})", s.rope_dim, s.head_dim);
    int sum = 0;
    for (int v : s.rope_sections) {
      if (v < 0) return "--rope-sections must not be negative";
      sum += v;
    }
    if (s.rope_sections.size() != 4 || sum * 2 != s.rope_dim)
      return fmt::format("--rope-sections must be 4 numbers summing to --rope-dim / 2 ({})", s.rope_dim / 2);
    if (!positive(s.full_attn_interval)) return "--full-attn-interval must be positive";
    if (!positive(s.ssm_conv) || !positive(s.ssm_state)) return "--ssm-conv and --ssm-state must be positive";
    if (!positive(s.ssm_k_heads) || !positive(s.ssm_v_heads) || s.ssm_v_heads % s.ssm_k_heads != 0)
      return "--ssm-v-heads must be a positive multiple of --ssm-k-heads";
  }
  if (s.arch == "gemma3" && (!positive(s.sliding_window) || !positive(s.swa_pattern)))
    return "--sliding-window and --swa-pattern must be positive";
  return {};
}

std::vector<TensorPlan> tensor_plan(const ModelSpec& s, int64_t n_vocab) {
  const u64 E = u64(s.n_embd), F = u64(s.n_ff), V = u64(n_vocab), hd = u64(s.head_dim);
  const u64 H = u64(s.n_head), Hkv = u64(s.n_head_kv);
  std::vector<TensorPlan> plan;
  add(plan, "token_embd.weight", {E, V}, WeightKind::matrix);
  for (int il = 0; il < s.n_layer; ++il) {
    const std::string b = fmt::format("blk.{}.", il);
    add(plan, b + "attn_norm.weight", {E}, WeightKind::norm);
    if (is_recurrent_layer(s, il)) {
      const u64 dk = u64(s.ssm_state), nk = u64(s.ssm_k_heads), nv = u64(s.ssm_v_heads);
      const u64 key_dim = dk * nk, value_dim = dk * nv, conv_dim = 2 * key_dim + value_dim;
      add(plan, b + "attn_qkv.weight", {E, conv_dim}, WeightKind::matrix);
      add(plan, b + "attn_gate.weight", {E, value_dim}, WeightKind::matrix);
      add(plan, b + "ssm_conv1d.weight", {u64(s.ssm_conv), conv_dim}, WeightKind::conv);
      add(plan, b + "ssm_dt.bias", {nv}, WeightKind::ssm_dt);
      add(plan, b + "ssm_a", {nv}, WeightKind::ssm_a);
      add(plan, b + "ssm_beta.weight", {E, nv}, WeightKind::matrix);
      add(plan, b + "ssm_alpha.weight", {E, nv}, WeightKind::matrix);
      add(plan, b + "ssm_norm.weight", {dk}, WeightKind::norm);
      add(plan, b + "ssm_out.weight", {value_dim, E}, WeightKind::matrix);
    } else {
      // qwen35's attention layers project query and output gate together: attn_q is 2x wide
      const u64 q_rows = s.arch == "qwen35" ? 2 * H * hd : H * hd;
      add(plan, b + "attn_q.weight", {E, q_rows}, WeightKind::matrix);
      add(plan, b + "attn_k.weight", {E, Hkv * hd}, WeightKind::matrix);
      add(plan, b + "attn_v.weight", {E, Hkv * hd}, WeightKind::matrix);
      if (s.qkv_bias) {
        add(plan, b + "attn_q.bias", {H * hd}, WeightKind::bias);
        add(plan, b + "attn_k.bias", {Hkv * hd}, WeightKind::bias);
        add(plan, b + "attn_v.bias", {Hkv * hd}, WeightKind::bias);
      }
      add(plan, b + "attn_output.weight", {H * hd, E}, WeightKind::matrix);
      if (s.arch == "qwen3" || s.arch == "qwen35" || s.arch == "gemma3") {
        add(plan, b + "attn_q_norm.weight", {hd}, WeightKind::norm);
        add(plan, b + "attn_k_norm.weight", {hd}, WeightKind::norm);
      }
    }
    if (s.arch == "qwen35" || s.arch == "gemma3")
      add(plan, b + "post_attention_norm.weight", {E}, WeightKind::norm);  // qwen35: the pre-FFN norm
    if (s.arch != "qwen35") add(plan, b + "ffn_norm.weight", {E}, WeightKind::norm);
    add(plan, b + "ffn_gate.weight", {E, F}, WeightKind::matrix);
    add(plan, b + "ffn_up.weight", {E, F}, WeightKind::matrix);
    add(plan, b + "ffn_down.weight", {F, E}, WeightKind::matrix);
    if (s.arch == "gemma3") add(plan, b + "post_ffw_norm.weight", {E}, WeightKind::norm);
  }
  add(plan, "output_norm.weight", {E}, WeightKind::norm);
  if (!s.tied) add(plan, "output.weight", {E, V}, WeightKind::matrix);
  return plan;
}

void add_arch_metadata(gguf::Writer& w, const ModelSpec& s, int64_t n_vocab) {
  const std::string a = s.arch + ".";
  auto u32 = [](int64_t v) { return uint32_t(v); };
  if (s.arch == "llama") w.set(a + "vocab_size", u32(n_vocab));
  w.set(a + "block_count", u32(s.n_layer));
  w.set(a + "context_length", s.n_ctx);
  w.set(a + "embedding_length", u32(s.n_embd));
  w.set(a + "feed_forward_length", u32(s.n_ff));
  w.set(a + "attention.head_count", u32(s.n_head));
  w.set(a + "attention.head_count_kv", u32(s.n_head_kv));
  w.set(a + "rope.freq_base", s.rope_theta);
  w.set(a + "attention.layer_norm_rms_epsilon", s.rms_eps);
  // qwen3, qwen35 and gemma3 converters always write the head size; the others only when it is
  // not n_embd / n_head (the default readers assume)
  const bool head_dim_default = s.n_embd % s.n_head == 0 && s.n_embd / s.n_head == s.head_dim;
  if (s.arch == "qwen3" || s.arch == "qwen35" || s.arch == "gemma3" || !head_dim_default) {
    w.set(a + "attention.key_length", u32(s.head_dim));
    w.set(a + "attention.value_length", u32(s.head_dim));
  }
  if (s.arch == "llama") w.set(a + "rope.dimension_count", u32(s.head_dim));
  if (s.arch == "qwen35") {
    w.set(a + "rope.dimension_count", u32(s.rope_dim));
    w.set_array(a + "rope.dimension_sections", s.rope_sections);
    w.set(a + "ssm.conv_kernel", u32(s.ssm_conv));
    w.set(a + "ssm.state_size", u32(s.ssm_state));
    w.set(a + "ssm.group_count", u32(s.ssm_k_heads));
    w.set(a + "ssm.time_step_rank", u32(s.ssm_v_heads));
    w.set(a + "ssm.inner_size", u32(int64_t(s.ssm_state) * s.ssm_v_heads));
    w.set(a + "full_attention_interval", u32(s.full_attn_interval));
  }
  if (s.arch == "gemma3") {
    w.set(a + "attention.sliding_window", u32(s.sliding_window));
    // llama.cpp hard-codes gemma3's pattern (every 6th layer global); write it only if different
    if (s.swa_pattern != 6) w.set(a + "attention.sliding_window_pattern", u32(s.swa_pattern));
  }
}

}  // namespace anvil::tools::mtm
