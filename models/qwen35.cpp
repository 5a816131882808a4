// Qwen3.5 (GGUF architecture "qwen35"): a hybrid of Gated DeltaNet (linear attention with a
// recurrent state) and gated full attention; every full_attention_interval-th layer is attention.
//
//   every layer:      x += mixer(rmsnorm(x));  x += down(silu(gate(n)) * up(n)), n = rmsnorm(x)
//   gated attention:  attn_q gives per head [query; gate]; RMSNorm of q and k heads; NEOX RoPE on
//                     the first rope_dims dims (text: every multimodal RoPE section takes the
//                     token position, so this is plain partial NEOX); GQA over the paged KV;
//                     output * sigmoid(gate), then attn_output.
//   Gated DeltaNet:   attn_qkv -> causal depthwise conv (kernel ssm.conv_kernel, carried state)
//                     -> SiLU -> q, k, v; q and k L2-normalised per head (HF's x * rsqrt(sum x^2
//                     + 1e-6)), q scaled by 1/sqrt(d_k) inside the delta rule; beta =
//                     sigmoid(ssm_beta x), g = softplus(ssm_alpha x + ssm_dt) * ssm_a; the delta
//                     rule (value head h reads q/k head h % n_k: the converter stored V heads
//                     tiled, as ggml broadcasts); RMSNorm(ssm_norm) of each value head * SiLU(z)
//                     with z = attn_gate x; ssm_out.
// The (1 + w) of Qwen3.5's zero-centred RMSNorms is already in the stored weights (all but
// ssm_norm, which is a plain RMSNorm weight), so every norm here is rms_norm(x) * w.
#include <cmath>
#include <memory>

#include "gguf/file.h"
#include "models/model.h"
#include "models/weights.h"

namespace anvil::models {
namespace {

#define TRY(expr) ANVIL_RETURN_IF_ERROR(expr)

// HF / FLA's l2norm epsilon (not the model's rms eps; llama.cpp differs, see
// scripts/reference/README.md).
constexpr float kL2NormEps = 1e-6f;

// Every F32 head_dim-wide half of a [query; gate] pair: rows n_tokens * n_heads, stride 2 heads.
Tensor head_halves(const Tensor& qg, int64_t n_heads, int64_t head_dim, bool gate) {
  Tensor t;
  t.data = qg.row<float>(0) + (gate ? head_dim : 0);
  t.type = DType::F32;
  t.rows = qg.rows * n_heads;
  t.cols = head_dim;
  t.row_stride = size_t(2 * head_dim) * sizeof(float);
  return t;
}

class Qwen35Model final : public Model {
 public:
  Qwen35Model(Backend& backend, HParams hp, ModelWeights w) : be_(backend), hp_(std::move(hp)), w_(std::move(w)) {}

  const HParams& hparams() const override { return hp_; }

  Expected<Tensor> forward(const StepBatch& /*batch*/, const DeviceStep& step, Workspace& ws, const KvLayers& kv,
                           const RecurrentLayers& state) override {
    if (kv.size() != size_t(hp_.n_layer) || state.size() != size_t(hp_.n_layer))
      return make_error(StatusCode::invalid_argument, "forward: ", kv.size(), " KV layers and ", state.size(),
                        " recurrent-state layers for ", hp_.n_layer, " model layers");
    TRY(make_activations(ws, step.n_tokens, step.n_logit_rows));

    TRY(be_.embed(w_.token_embd, step, a_.x));
    // Each residual add is fused with the norm that follows it (the next block's input norm).
    if (hp_.n_layer > 0) TRY(be_.rms_norm(a_.x, &w_.layers[0].attn_norm, hp_.rms_eps, a_.h));
    for (int32_t il = 0; il < hp_.n_layer; ++il) {
      const LayerWeights& L = w_.layers[size_t(il)];
      if (hp_.is_recurrent_layer(il))
        TRY(gated_deltanet(L, state[size_t(il)], step));
      else
        TRY(gated_attention(L, kv[size_t(il)], step));
      TRY(be_.add_rms_norm(a_.x, a_.h, &L.ffn_norm, hp_.rms_eps, a_.h));

      const MatmulTarget gate_up[] = {{&L.ffn_gate, a_.gate}, {&L.ffn_up, a_.up}};
      TRY(be_.matmul_group(a_.h, gate_up));
      TRY(be_.glu(a_.gate, a_.up, Activation::silu, a_.gate));
      TRY(be_.matmul(L.ffn_down, a_.gate, a_.h));
      if (il + 1 < hp_.n_layer)
        TRY(be_.add_rms_norm(a_.x, a_.h, &w_.layers[size_t(il) + 1].attn_norm, hp_.rms_eps, a_.h));
      else
        TRY(be_.add(a_.x, a_.h, a_.x));
    }
    TRY(be_.gather_logit_rows(a_.x, step, a_.last));
    TRY(be_.rms_norm(a_.last, &w_.output_norm, hp_.rms_eps, a_.last));
    TRY(be_.matmul(w_.output, a_.last, a_.logits));
    return a_.logits;
  }

 private:
  // a_.h (normed input) -> a_.h (the layer's output, before the residual add)
  Status gated_attention(const LayerWeights& L, const KvLayer& kv, const DeviceStep& step) {
    const int64_t hd = hp_.head_dim;
    const MatmulTarget qkv[] = {{&L.wq, a_.qg}, {&L.wk, a_.k}, {&L.wv, a_.v}};
    TRY(be_.matmul_group(a_.h, qkv));
    const RopeParams rope_q{hp_.n_head, hp_.head_dim, hp_.rope_dims, hp_.rope_freq_base, hp_.rope_freq_scale,
                            RopeMode::neox};
    RopeParams rope_k = rope_q;
    rope_k.n_heads = hp_.n_head_kv;
    // The query halves are normed straight into the contiguous q; the gate halves stay in qg.
    const QkNormRope qk{&L.q_norm, &L.k_norm, hp_.rms_eps, rope_q, rope_k};
    TRY(be_.qk_norm_rope_store(head_halves(a_.qg, hp_.n_head, hd, false), a_.q, a_.k, a_.v, qk, kv, step));
    const AttentionParams attn{hp_.n_head, hp_.n_head_kv, hp_.head_dim, hp_.attn_scale, 0, 0.f};
    TRY(be_.attention(a_.q, kv, attn, step, a_.attn));
    const Tensor heads = a_.attn.reshape_cols(hd);
    TRY(be_.glu(head_halves(a_.qg, hp_.n_head, hd, true), heads, Activation::sigmoid, heads));
    return be_.matmul(L.wo, a_.attn, a_.h);
  }

  Status gated_deltanet(const LayerWeights& L, const RecurrentLayer& st, const DeviceStep& step) {
    const int64_t qk = hp_.ssm_qk_dim(), dv = hp_.ssm_d_v;
    const MatmulTarget in_proj[] = {{&L.ssm_qkv, a_.qkv}, {&L.ssm_z, a_.z}, {&L.ssm_beta, a_.b}, {&L.ssm_alpha, a_.alpha}};
    TRY(be_.matmul_group(a_.h, in_proj));
    TRY(be_.deltanet_gates(a_.alpha, a_.b, L.ssm_dt, L.ssm_a, a_.g, a_.beta));
    TRY(be_.conv1d_silu(a_.qkv, L.ssm_conv1d, st, step, a_.conv));
    const Tensor q = a_.conv.slice_cols(0, qk), k = a_.conv.slice_cols(qk, qk),
                 v = a_.conv.slice_cols(2 * qk, hp_.ssm_v_dim());
    TRY(be_.l2_norm(q, hp_.ssm_d_k, kL2NormEps, q));
    TRY(be_.l2_norm(k, hp_.ssm_d_k, kL2NormEps, k));
    DeltaNetParams p;
    p.n_k_heads = hp_.ssm_n_k_heads;
    p.n_v_heads = hp_.ssm_n_v_heads;
    p.d_k = hp_.ssm_d_k;
    p.d_v = hp_.ssm_d_v;
    p.q_scale = 1.f / std::sqrt(float(hp_.ssm_d_k));
    p.mode = DeltaNetMode::automatic;  // chunked prefill, recurrent decode
    TRY(be_.gated_deltanet(q, k, v, a_.g, a_.beta, st, p, step, a_.o));
    // gated RMSNorm per value head: rms_norm(o) * w * silu(z)
    const Tensor heads = a_.o.reshape_cols(dv);
    TRY(be_.rms_norm(heads, &L.ssm_norm, hp_.rms_eps, heads));
    TRY(be_.glu(a_.z.reshape_cols(dv), heads, Activation::silu, heads));
    return be_.matmul(L.ssm_out, a_.o, a_.h);
  }

  Status make_activations(Workspace& ws, int64_t n, int64_t n_logit_rows) {
    size_t slot = 0;
    auto take = [&](Tensor& t, int64_t rows, int64_t cols) -> Status {
      auto e = ws.f32(slot++, rows, cols);
      if (!e) return e.status();
      t = *e;
      return Status::ok();
    };
    const int64_t Q = hp_.q_dim(), KV = hp_.kv_dim(), NV = hp_.ssm_n_v_heads;
    TRY(take(a_.x, n, hp_.n_embd));
    TRY(take(a_.h, n, hp_.n_embd));
    TRY(take(a_.gate, n, hp_.n_ff));
    TRY(take(a_.up, n, hp_.n_ff));
    TRY(take(a_.last, n_logit_rows, hp_.n_embd));
    TRY(take(a_.logits, n_logit_rows, hp_.n_vocab));
    TRY(take(a_.qg, n, 2 * Q));
    TRY(take(a_.q, n, Q));
    TRY(take(a_.k, n, KV));
    TRY(take(a_.v, n, KV));
    TRY(take(a_.attn, n, Q));
    TRY(take(a_.qkv, n, hp_.ssm_conv_channels()));
    TRY(take(a_.conv, n, hp_.ssm_conv_channels()));
    TRY(take(a_.z, n, hp_.ssm_v_dim()));
    TRY(take(a_.o, n, hp_.ssm_v_dim()));
    TRY(take(a_.b, n, NV));
    TRY(take(a_.alpha, n, NV));
    TRY(take(a_.g, n, NV));
    TRY(take(a_.beta, n, NV));
    return Status::ok();
  }

  // This step's activations (views into the workspace).
  struct Activations35 {
    Tensor x, h, gate, up, last, logits;  // residual, sublayer in/out, FFN, logit rows
    Tensor qg, q, k, v, attn;             // gated attention: [query; gate] per head, ...
    Tensor qkv, conv, z, o;               // DeltaNet: projection, conv output (q | k | v), gate, output
    Tensor b, alpha, g, beta;             // DeltaNet per-head gates [n_tokens, n_v_heads]
  };

  Backend& be_;
  HParams hp_;
  ModelWeights w_;
  Activations35 a_;
};

}  // namespace

Expected<std::unique_ptr<Model>> load_qwen35(const gguf::File& file, Backend& backend, const HParams& hp,
                                             const LoadOptions& options) {
  auto w = bind_weights(file, backend, hp, options);
  if (!w) return w.status();
  return std::unique_ptr<Model>(std::make_unique<Qwen35Model>(backend, hp, std::move(*w)));
}

}  // namespace anvil::models
