// Llama, Qwen2 and Qwen3: one pre-norm transformer with the differences as flags.
//
//   llama: RoPE in "normal" mode (adjacent pairs). HF Llama rotates halves (NeoX style); the GGUF
//          converter permutes the rows of attn_q/attn_k so that adjacent-pair rotation of the
//          permuted projection equals half rotation of the original.
//   qwen2: biases on q, k and v; NeoX RoPE.
//   qwen3: RMSNorm of every q and k head (attn_q_norm / attn_k_norm) before RoPE; NeoX RoPE.
// All three: SwiGLU MLP, GQA, scores scaled by 1/sqrt(head_dim), LM head tied or not.
#include <memory>

#include "gguf/file.h"
#include "models/model.h"
#include "models/weights.h"

namespace anvil::models {
namespace {

struct ArchFlags {
  bool qkv_bias = false;
  bool qk_norm = false;
  RopeMode rope_mode = RopeMode::normal;
};

ArchFlags flags_for(Arch a) {
  switch (a) {
    case Arch::qwen2: return {.qkv_bias = true, .qk_norm = false, .rope_mode = RopeMode::neox};
    case Arch::qwen3: return {.qkv_bias = false, .qk_norm = true, .rope_mode = RopeMode::neox};
    default: return {.qkv_bias = false, .qk_norm = false, .rope_mode = RopeMode::normal};
  }
}

const Weight* opt(const Weight& w) { return w.valid() ? &w : nullptr; }

#define TRY(expr) ANVIL_RETURN_IF_ERROR(expr)

class LlamaFamilyModel final : public Model {
 public:
  LlamaFamilyModel(Backend& backend, HParams hp, ModelWeights w)
      : be_(backend), hp_(std::move(hp)), w_(std::move(w)), f_(flags_for(hp_.arch)) {}

  const HParams& hparams() const override { return hp_; }

  Expected<Tensor> forward(const StepBatch& batch, const DeviceStep& step, Workspace& ws, const KvLayers& kv,
                           const RecurrentLayers& /*state: no recurrent layers*/) override {
    if (kv.size() != size_t(hp_.n_layer))
      return make_error(StatusCode::invalid_argument, "forward: ", kv.size(), " KV layers for ", hp_.n_layer,
                        " model layers");
    auto act = Activations::make(ws, hp_, step.n_tokens, step.n_logit_rows);
    if (!act) return act.status();
    Activations& a = *act;

    const RopeParams rope_q{hp_.n_head, hp_.head_dim, hp_.rope_dims, hp_.rope_freq_base, hp_.rope_freq_scale,
                            f_.rope_mode};
    RopeParams rope_k = rope_q;
    rope_k.n_heads = hp_.n_head_kv;
    const AttentionParams attn{hp_.n_head, hp_.n_head_kv, hp_.head_dim, hp_.attn_scale, 0, 0.f};

    TRY(be_.embed(w_.token_embd, step, a.x));
    // Each residual add is fused with the norm that follows it (the next block's input norm).
    if (hp_.n_layer > 0) TRY(be_.rms_norm(a.x, &w_.layers[0].attn_norm, hp_.rms_eps, a.h));
    for (int32_t il = 0; il < hp_.n_layer; ++il) {
      const LayerWeights& L = w_.layers[size_t(il)];

      // attention block: x += Wo · attention(rope(q), rope(k), v) of h = norm(x)
      const MatmulTarget qkv[] = {{&L.wq, a.q, opt(L.bq)}, {&L.wk, a.k, opt(L.bk)}, {&L.wv, a.v, opt(L.bv)}};
      TRY(be_.matmul_group(a.h, qkv));
      const QkNormRope qk{f_.qk_norm ? &L.q_norm : nullptr, f_.qk_norm ? &L.k_norm : nullptr, hp_.rms_eps, rope_q,
                          rope_k};
      TRY(be_.qk_norm_rope_store(a.q.reshape_cols(hp_.head_dim), a.q, a.k, a.v, qk, kv[size_t(il)], step));
      TRY(be_.attention(a.q, kv[size_t(il)], attn, step, a.attn));
      TRY(be_.matmul(L.wo, a.attn, a.h));
      TRY(be_.add_rms_norm(a.x, a.h, &L.ffn_norm, hp_.rms_eps, a.h));

      // MLP block: x += down(silu(gate(h)) * up(h)), h = norm(x)
      const MatmulTarget gate_up[] = {{&L.ffn_gate, a.gate}, {&L.ffn_up, a.up}};
      TRY(be_.matmul_group(a.h, gate_up));
      TRY(be_.glu(a.gate, a.up, Activation::silu, a.gate));
      TRY(be_.matmul(L.ffn_down, a.gate, a.h));
      if (il + 1 < hp_.n_layer)
        TRY(be_.add_rms_norm(a.x, a.h, &w_.layers[size_t(il) + 1].attn_norm, hp_.rms_eps, a.h));
      else
        TRY(be_.add(a.x, a.h, a.x));
    }
    // Only the rows that need logits go through the final norm and the LM head.
    TRY(be_.gather_logit_rows(a.x, step, a.last));
    TRY(be_.rms_norm(a.last, &w_.output_norm, hp_.rms_eps, a.last));
    TRY(be_.matmul(w_.output, a.last, a.logits));
    return a.logits;
  }

 private:
  Backend& be_;
  HParams hp_;
  ModelWeights w_;
  ArchFlags f_;
};

}  // namespace

Expected<std::unique_ptr<Model>> load_llama_family(const gguf::File& file, Backend& backend, const HParams& hp,
                                                   const LoadOptions& options) {
  auto w = bind_weights(file, backend, hp, options);
  if (!w) return w.status();
  return std::unique_ptr<Model>(std::make_unique<LlamaFamilyModel>(backend, hp, std::move(*w)));
}

}  // namespace anvil::models
