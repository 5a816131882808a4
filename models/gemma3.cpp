// Gemma 3 (text): a pre- and post-norm transformer with interleaved local/global attention.
//
//   - the embedding is multiplied by sqrt(n_embd);
//   - every sublayer's output is normed again before the residual add (post_attention_norm,
//     post_ffw_norm); the converter has already folded Gemma's (1 + w) into every norm weight;
//   - q and k are RMS-normed per head (attn_q_norm / attn_k_norm) before RoPE (NeoX mode);
//   - local layers attend within a sliding window and rotate with base 10000; every
//     swa_pattern-th layer (default 6) is global and uses rope.freq_base (and its scaling);
//   - GeGLU MLP (gelu, tanh approximation); scores scaled by 1/sqrt(head_dim)
//     (query_pre_attn_scalar = head_dim); LM head tied to token_embd.
#include <cmath>
#include <memory>

#include "gguf/file.h"
#include "models/model.h"
#include "models/weights.h"

namespace anvil::models {
namespace {

#define TRY(expr) ANVIL_RETURN_IF_ERROR(expr)

class Gemma3Model final : public Model {
 public:
  Gemma3Model(Backend& backend, HParams hp, ModelWeights w) : be_(backend), hp_(std::move(hp)), w_(std::move(w)) {}

  const HParams& hparams() const override { return hp_; }

  Expected<Tensor> forward(const StepBatch& batch, const DeviceStep& step, Workspace& ws, const KvLayers& kv,
                           const RecurrentLayers& /*state: no recurrent layers*/) override {
    if (kv.size() != size_t(hp_.n_layer))
      return make_error(StatusCode::invalid_argument, "forward: ", kv.size(), " KV layers for ", hp_.n_layer,
                        " model layers");
    auto act = Activations::make(ws, hp_, step.n_tokens, step.n_logit_rows);
    if (!act) return act.status();
    Activations& a = *act;
    const int32_t hd = hp_.head_dim;

    TRY(be_.embed(w_.token_embd, step, a.x));
    TRY(be_.scale(a.x, std::sqrt(float(hp_.n_embd))));
    // Each residual add is fused with the norm that follows it (the next block's input norm).
    if (hp_.n_layer > 0) TRY(be_.rms_norm(a.x, &w_.layers[0].attn_norm, hp_.rms_eps, a.h));
    for (int32_t il = 0; il < hp_.n_layer; ++il) {
      const LayerWeights& L = w_.layers[size_t(il)];
      const bool local = hp_.is_sliding_layer(il);
      RopeParams rope_q{hp_.n_head, hd, hp_.rope_dims, hp_.rope_freq_base, hp_.rope_freq_scale, RopeMode::neox};
      if (local) rope_q.freq_base = hp_.rope_freq_base_local, rope_q.freq_scale = 1.f;
      RopeParams rope_k = rope_q;
      rope_k.n_heads = hp_.n_head_kv;
      const AttentionParams attn{hp_.n_head, hp_.n_head_kv, hd, hp_.attn_scale, local ? hp_.sliding_window : 0, 0.f};

      // attention block: x += post_norm(Wo · attention(rope(qnorm(q)), rope(knorm(k)), v) of h = norm(x))
      const MatmulTarget qkv[] = {{&L.wq, a.q}, {&L.wk, a.k}, {&L.wv, a.v}};
      TRY(be_.matmul_group(a.h, qkv));
      const QkNormRope qk{&L.q_norm, &L.k_norm, hp_.rms_eps, rope_q, rope_k};
      TRY(be_.qk_norm_rope_store(a.q.reshape_cols(hd), a.q, a.k, a.v, qk, kv[size_t(il)], step));
      TRY(be_.attention(a.q, kv[size_t(il)], attn, step, a.attn));
      TRY(be_.matmul(L.wo, a.attn, a.h));
      TRY(be_.rms_norm(a.h, &L.post_attention_norm, hp_.rms_eps, a.h));
      TRY(be_.add_rms_norm(a.x, a.h, &L.ffn_norm, hp_.rms_eps, a.h));

      // MLP block: x += post_norm(down(gelu_tanh(gate(h)) * up(h))), h = norm(x)
      const MatmulTarget gate_up[] = {{&L.ffn_gate, a.gate}, {&L.ffn_up, a.up}};
      TRY(be_.matmul_group(a.h, gate_up));
      TRY(be_.glu(a.gate, a.up, Activation::gelu_tanh, a.gate));
      TRY(be_.matmul(L.ffn_down, a.gate, a.h));
      TRY(be_.rms_norm(a.h, &L.post_ffw_norm, hp_.rms_eps, a.h));
      if (il + 1 < hp_.n_layer)
        TRY(be_.add_rms_norm(a.x, a.h, &w_.layers[size_t(il) + 1].attn_norm, hp_.rms_eps, a.h));
      else
        TRY(be_.add(a.x, a.h, a.x));
    }
    TRY(be_.gather_logit_rows(a.x, step, a.last));
    TRY(be_.rms_norm(a.last, &w_.output_norm, hp_.rms_eps, a.last));
    TRY(be_.matmul(w_.output, a.last, a.logits));
    return a.logits;
  }

 private:
  Backend& be_;
  HParams hp_;
  ModelWeights w_;
};

}  // namespace

Expected<std::unique_ptr<Model>> load_gemma3(const gguf::File& file, Backend& backend, const HParams& hp,
                                             const LoadOptions& options) {
  auto w = bind_weights(file, backend, hp, options);
  if (!w) return w.status();
  return std::unique_ptr<Model>(std::make_unique<Gemma3Model>(backend, hp, std::move(*w)));
}

}  // namespace anvil::models
