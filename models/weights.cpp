#include "models/weights.h"

#include <cstdio>
#include <set>
#include <string>

#include "core/log.h"
#include "gguf/file.h"

namespace anvil::models {
namespace {

std::string dims_str(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Looks tensors up by name, checks them and binds them, remembering which ones were used so
// that leftovers can be reported.
class Binder {
 public:
  Binder(const gguf::File& file, Backend& backend, const LoadOptions& options)
      : file_(file), backend_(backend), options_(options) {}

  // A 2-D weight [rows, cols] (GGUF dims {cols, rows}) of any type anvil can compute with.
  Status matrix(const std::string& name, int64_t rows, int64_t cols, Weight& out) {
    return bind(name, {uint64_t(cols), uint64_t(rows)}, /*f32_only=*/false, out);
  }
  // A 2-D F32 matrix [rows, cols] (conv kernels).
  Status f32_matrix(const std::string& name, int64_t rows, int64_t cols, Weight& out) {
    return bind(name, {uint64_t(cols), uint64_t(rows)}, /*f32_only=*/true, out);
  }
  // A 1-D F32 vector [n] (norm weights, biases), bound as [1, n].
  Status vector(const std::string& name, int64_t n, Weight& out) {
    return bind(name, {uint64_t(n)}, /*f32_only=*/true, out);
  }
  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

  // Every tensor must be bound, except those of blocks past block_count: release files may carry
  // extra blocks (e.g. a multi-token-prediction head) that plain decoding does not run.
  Status check_all_used(const HParams& hp) const {
    size_t n_extra_blocks = 0;
    for (const auto& t : file_.tensors()) {
      if (used_.count(t.name)) continue;
      int block = -1;
      if (std::sscanf(t.name.c_str(), "blk.%d.", &block) == 1 && block >= hp.n_layer) {
        ++n_extra_blocks;
        continue;
      }
      return make_error(StatusCode::invalid_argument, "tensor '", t.name, "' is not part of a ", hp.arch_name,
                        " model with these hyperparameters (", hp.n_layer, " layers)");
    }
    if (n_extra_blocks)
      log().info("{} tensors of blocks past block_count ({}) are not used", n_extra_blocks, hp.n_layer);
    return Status::ok();
  }

 private:
  Status bind(const std::string& name, const std::vector<uint64_t>& dims, bool f32_only, Weight& out) {
    const gguf::TensorInfo* t = file_.find_tensor(name);
    if (!t) return make_error(StatusCode::not_found, "model is missing tensor '", name, "'");
    if (t->dims != dims)
      return make_error(StatusCode::invalid_argument, "tensor '", name, "' has shape ", dims_str(t->dims),
                        ", expected ", dims_str(dims), " (GGUF order)");
    if (f32_only && t->type != DType::F32)
      return make_error(StatusCode::invalid_argument, "tensor '", name, "' must be F32, got ", dtype_name(t->type));
    if (!traits(t->type).has_reference)
      return make_error(StatusCode::unsupported, "tensor '", name, "' has type ", dtype_name(t->type),
                        ", which anvil cannot compute with");
    const int64_t cols = int64_t(dims[0]);
    const int64_t rows = dims.size() > 1 ? int64_t(dims[1]) : 1;
    auto w = backend_.upload(name, t->type, rows, cols, file_.tensor_data(*t));
    if (!w) return w.status();
    out = std::move(*w);
    used_.insert(name);
    if (options_.on_tensor) options_.on_tensor(used_.size(), file_.tensors().size(), name);
    return Status::ok();
  }

  const gguf::File& file_;
  Backend& backend_;
  const LoadOptions& options_;
  std::set<std::string> used_;
};

}  // namespace

Expected<ModelWeights> bind_weights(const gguf::File& file, Backend& backend, const HParams& hp,
                                    const LoadOptions& options) {
  const bool qkv_bias = hp.arch == Arch::qwen2;
  const bool qwen35 = hp.arch == Arch::qwen35;
  const bool qk_norm = hp.arch == Arch::qwen3 || hp.arch == Arch::gemma3 || qwen35;
  const bool post_norms = hp.arch == Arch::gemma3;
  const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab, Q = hp.q_dim(), KV = hp.kv_dim();

  Binder b(file, backend, options);
  ModelWeights w;
  ANVIL_RETURN_IF_ERROR(b.matrix("token_embd.weight", V, E, w.token_embd));
  w.layers.resize(size_t(hp.n_layer));
  for (int32_t il = 0; il < hp.n_layer; ++il) {
    LayerWeights& L = w.layers[size_t(il)];
    const std::string p = "blk." + std::to_string(il) + ".";
    ANVIL_RETURN_IF_ERROR(b.vector(p + "attn_norm.weight", E, L.attn_norm));
    if (qwen35) {
      ANVIL_RETURN_IF_ERROR(b.vector(p + "post_attention_norm.weight", E, L.ffn_norm));
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "ffn_gate.weight", F, E, L.ffn_gate));
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "ffn_up.weight", F, E, L.ffn_up));
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "ffn_down.weight", E, F, L.ffn_down));
    }
    if (hp.is_recurrent_layer(il)) {
      const int64_t C = hp.ssm_conv_channels(), VD = hp.ssm_v_dim(), NV = hp.ssm_n_v_heads;
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "attn_qkv.weight", C, E, L.ssm_qkv));
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "attn_gate.weight", VD, E, L.ssm_z));
      ANVIL_RETURN_IF_ERROR(b.f32_matrix(p + "ssm_conv1d.weight", C, hp.ssm_conv_kernel, L.ssm_conv1d));
      ANVIL_RETURN_IF_ERROR(b.vector(p + "ssm_dt.bias", NV, L.ssm_dt));
      ANVIL_RETURN_IF_ERROR(b.vector(p + "ssm_a", NV, L.ssm_a));
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "ssm_beta.weight", NV, E, L.ssm_beta));
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "ssm_alpha.weight", NV, E, L.ssm_alpha));
      ANVIL_RETURN_IF_ERROR(b.vector(p + "ssm_norm.weight", hp.ssm_d_v, L.ssm_norm));
      ANVIL_RETURN_IF_ERROR(b.matrix(p + "ssm_out.weight", E, VD, L.ssm_out));
      continue;
    }
    ANVIL_RETURN_IF_ERROR(b.matrix(p + "attn_q.weight", qwen35 ? 2 * Q : Q, E, L.wq));
    ANVIL_RETURN_IF_ERROR(b.matrix(p + "attn_k.weight", KV, E, L.wk));
    ANVIL_RETURN_IF_ERROR(b.matrix(p + "attn_v.weight", KV, E, L.wv));
    ANVIL_RETURN_IF_ERROR(b.matrix(p + "attn_output.weight", E, Q, L.wo));
    if (qkv_bias) {
      ANVIL_RETURN_IF_ERROR(b.vector(p + "attn_q.bias", Q, L.bq));
      ANVIL_RETURN_IF_ERROR(b.vector(p + "attn_k.bias", KV, L.bk));
      ANVIL_RETURN_IF_ERROR(b.vector(p + "attn_v.bias", KV, L.bv));
    }
    if (qk_norm) {
      ANVIL_RETURN_IF_ERROR(b.vector(p + "attn_q_norm.weight", hp.head_dim, L.q_norm));
      ANVIL_RETURN_IF_ERROR(b.vector(p + "attn_k_norm.weight", hp.head_dim, L.k_norm));
    }
    if (post_norms) ANVIL_RETURN_IF_ERROR(b.vector(p + "post_attention_norm.weight", E, L.post_attention_norm));
    if (qwen35) continue;  // its FFN weights are bound above
    ANVIL_RETURN_IF_ERROR(b.vector(p + "ffn_norm.weight", E, L.ffn_norm));
    ANVIL_RETURN_IF_ERROR(b.matrix(p + "ffn_gate.weight", F, E, L.ffn_gate));
    ANVIL_RETURN_IF_ERROR(b.matrix(p + "ffn_up.weight", F, E, L.ffn_up));
    ANVIL_RETURN_IF_ERROR(b.matrix(p + "ffn_down.weight", E, F, L.ffn_down));
    if (post_norms) ANVIL_RETURN_IF_ERROR(b.vector(p + "post_ffw_norm.weight", E, L.post_ffw_norm));
  }
  ANVIL_RETURN_IF_ERROR(b.vector("output_norm.weight", E, w.output_norm));
  w.tied = !b.has("output.weight");
  if (w.tied)
    w.output = w.token_embd;
  else
    ANVIL_RETURN_IF_ERROR(b.matrix("output.weight", V, E, w.output));
  if (b.has("rope_freqs.weight"))
    return make_error(StatusCode::unsupported,
                      "tensor 'rope_freqs.weight' (per-dimension RoPE frequency factors, Llama 3.1 style) "
                      "is not supported yet");
  ANVIL_RETURN_IF_ERROR(b.check_all_used(hp));
  return w;
}

}  // namespace anvil::models
