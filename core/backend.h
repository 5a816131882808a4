// The Backend interface: the small set of ops model code calls (DESIGN.md, "Data flow of one
// step"). Each backend (cpu/, cuda/, vulkan/) implements every op; the CPU one is the oracle the
// others are tested against. Model code never sees kernels, candidates or device pointers'
// provenance: it allocates through the backend and passes Tensors.
//
// Conventions:
// - Activations are F32 Tensors [n_tokens, features] in backend memory (alloc()).
// - Weights are Weight (upload()), any block type; matmul(W, x) -> y[t, o] = sum_i x[t, i] W[o, i].
// - Ops are enqueued in order on the backend's stream; results are visible to later ops.
//   Host access goes through copy_to_host()/copy_from_host(), which wait for the ops before them.
// - Per-step integer inputs (positions, KV slots, block tables, context lengths) live in a
//   DeviceStep made once per step by prepare_step(); kernels read them from there, so a
//   captured CUDA graph can replay with new values (STYLE.md).
// - Every op validates shapes and returns invalid_argument naming the op and the shapes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "core/sampler.h"
#include "core/status.h"
#include "core/step_batch.h"
#include "core/tensor.h"

namespace anvil {

// Backend-owned memory; freed when the last handle goes.
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  virtual void* data() = 0;
  virtual size_t size() const = 0;
  Tensor as_tensor(DType type, int64_t rows, int64_t cols) { return Tensor::contiguous(data(), type, rows, cols); }
};

// The step's integer inputs in device memory, made by Backend::prepare_step.
struct DeviceStep {
  int32_t n_tokens = 0;
  int32_t n_seqs = 0;
  int32_t page_size = 16;
  int32_t max_blocks = 0;            // columns of block_tables
  int32_t max_context = 0;           // largest context_len of the step (sizes grids)
  const int32_t* tokens = nullptr;   // [n_tokens]
  const int32_t* positions = nullptr;
  const int32_t* token_seq = nullptr;
  const int32_t* kv_slots = nullptr;      // [n_tokens]: page * page_size + offset
  const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks], -1 padded
  const int32_t* context_lens = nullptr;  // [n_seqs]: n_past + n_tokens
  const int32_t* seq_first_token = nullptr;  // [n_seqs]
  const int32_t* seq_n_tokens = nullptr;     // [n_seqs]
  const int32_t* state_slots = nullptr;      // [n_seqs]
  const int32_t* logit_rows = nullptr;       // [n_logit_rows]
  int32_t n_logit_rows = 0;
  std::shared_ptr<void> storage;  // keeps the arrays alive
  // The same step with every array in host memory, for host-side checks and launch decisions
  // of a backend whose arrays above live in device memory; null when they are host memory
  // already (the CPU backend).
  std::shared_ptr<const DeviceStep> host;
};

// The step as host arrays: what a backend's validation and host-side logic read.
inline const DeviceStep& host_step(const DeviceStep& s) { return s.host ? *s.host : s; }

// Validates a StepBatch (token ranges, positions, block tables covering every position, int32
// limits) and packs it into host arrays: the CPU backend's prepare_step, and what the device
// backends copy to their memory. Errors: invalid_argument naming the sequence or token.
// block_table_width > 0 pads every block table row to at least that many columns (-1), so
// steps of nearby context lengths share one DeviceStep::max_blocks (and one captured graph).
Expected<DeviceStep> make_host_step(const StepBatch& batch, int32_t block_table_width = 0);

enum class RopeMode {
  normal,  // GPT-J/llama style: rotate pairs (2i, 2i+1)
  neox,    // GPT-NeoX style: rotate pairs (i, i + rope_dims/2)
};

struct RopeParams {
  int32_t n_heads = 0;
  int32_t head_dim = 0;
  int32_t rope_dims = 0;   // leading dims of each head that rotate (partial rotary); <= head_dim
  float freq_base = 10000.f;
  float freq_scale = 1.f;  // linear position scaling (1 = none)
  RopeMode mode = RopeMode::normal;
};

// One layer's paged KV: K and V of every page, [n_pages * page_size, n_kv_heads * head_dim].
struct KvLayer {
  Tensor k;
  Tensor v;
};

// One projection of Backend::matmul_group: y = x W^T (+ bias).
struct MatmulTarget {
  const Weight* w = nullptr;
  Tensor y;
  const Weight* bias = nullptr;
};

// What an attention layer does between its projections and attention() (Backend::qk_norm_rope_store).
struct QkNormRope {
  const Weight* q_norm = nullptr;  // per-head RMSNorm weight F32 [head_dim], or null: no q norm
  const Weight* k_norm = nullptr;  // the same for k
  float eps = 0.f;
  RopeParams rope_q;  // n_heads = q heads
  RopeParams rope_k;  // n_heads = kv heads
};

struct AttentionParams {
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;  // n_heads % n_kv_heads == 0 (GQA)
  int32_t head_dim = 0;
  float scale = 0.f;           // applied to q·k (usually 1/sqrt(head_dim))
  int32_t sliding_window = 0;  // > 0: a token at position p sees positions > p - window
  float softcap = 0.f;         // > 0: scores = softcap * tanh(scores / softcap)
};

enum class Activation {
  silu,
  gelu_tanh,
  sigmoid,  // Qwen3.5's attention output gate: out = sigmoid(gate) * x
};

// ---- Gated DeltaNet (Qwen3.5's linear-attention layers)
//
// One DeltaNet layer's recurrent state for every slot of the engine's state pool. Slot s of a
// sequence (DeviceStep::state_slots) owns
//   conv rows [s * (kernel - 1), (s + 1) * (kernel - 1)): the last kernel - 1 inputs of the
//        causal conv, oldest first, [.., conv_channels] F32;
//   ssm rows  [s * n_v_heads * d_k, (s + 1) * n_v_heads * d_k): value head h's state matrix
//        S_h [d_k, d_v] F32 at rows s * n_v_heads * d_k + h * d_k.
// A sequence with n_past == 0 (context_len == n_tokens) starts from zero state whatever its
// slot holds, so a recomputed (preempted) or reused slot never leaks an earlier sequence.
struct RecurrentLayer {
  Tensor conv;
  Tensor ssm;
};

enum class DeltaNetMode {
  automatic,  // per sequence, the form the backend runs faster for its token count (CPU: chunked
              // for more than one token; CUDA: chunked above a threshold, cuda/deltanet.cu)
  chunked,    // always the chunked (WY / UT transform) form, chunks of DeltaNetParams::chunk
  recurrent,  // always token by token
};

struct DeltaNetParams {
  int32_t n_k_heads = 0;  // q/k heads; value head h reads q/k head h % n_k_heads (GGUF's tiled order)
  int32_t n_v_heads = 0;  // multiple of n_k_heads
  int32_t d_k = 0;
  int32_t d_v = 0;
  float q_scale = 0.f;    // q is multiplied by this (1 / sqrt(d_k)); 0 is rejected
  int32_t chunk = 64;
  DeltaNetMode mode = DeltaNetMode::automatic;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
  virtual DeviceKind kind() const = 0;

  // ---- memory
  virtual Expected<std::shared_ptr<DeviceBuffer>> alloc(size_t bytes) = 0;
  // Binds a weight given its host bytes (mmap'd GGUF data; must outlive the Weight on the CPU,
  // which points into it without copying).
  virtual Expected<Weight> upload(const std::string& name, DType type, int64_t rows, int64_t cols,
                                  const void* host_bytes) = 0;
  virtual Status copy_from_host(Tensor dst, const void* src) = 0;  // whole tensor, contiguous src
  virtual Status copy_to_host(void* dst, const Tensor& src) = 0;
  // Row i of src to dst_rows[i] (row_size() bytes each; dst_rows.size() <= src.rows), returning
  // once all have landed: the engine hands each session its logits row without a staging copy.
  virtual Status copy_rows_to_host(const Tensor& src, std::span<void* const> dst_rows) {
    if (int64_t(dst_rows.size()) > src.rows)
      return make_error(StatusCode::invalid_argument, "copy_rows_to_host: ", dst_rows.size(), " destinations for ",
                        src.rows, " rows");
    for (size_t i = 0; i < dst_rows.size(); ++i)
      ANVIL_RETURN_IF_ERROR(copy_to_host(dst_rows[i], src.slice_rows(int64_t(i), 1)));
    return Status::ok();
  }
  virtual Status synchronize() = 0;
  // Free and total bytes of the backend's memory, for fit checks before a model is loaded;
  // nullopt where the backend does not manage a fixed pool (the CPU: host memory).
  struct MemoryInfo {
    size_t free_bytes = 0;
    size_t total_bytes = 0;
  };
  virtual std::optional<MemoryInfo> memory_info() { return std::nullopt; }
  virtual Expected<DeviceStep> prepare_step(const StepBatch& batch) = 0;

  // Runs `forward` (one model step over the DeviceStep last prepared) and returns its output.
  // A backend with graph capture (CUDA) may record the ops under `key` and, for a later step
  // with the same key, replay the recording instead of calling `forward`: the caller promises
  // that equal keys mean an identical sequence of ops on identical shapes and buffers, with
  // only DeviceStep array contents differing (core/engine.cpp keys decode steps by their
  // shape). key 0: never record.
  virtual Expected<Tensor> run_step(uint64_t key, const std::function<Expected<Tensor>()>& forward) {
    (void)key;
    return forward();
  }

  // ---- ops
  // out[t] = dequantized row ids[t] of table (DeviceStep::tokens).
  virtual Status embed(const Weight& table, const DeviceStep& step, Tensor out) = 0;
  // out = x / sqrt(mean(x^2) + eps) * w per row; w (F32 [cols]) may be null (plain
  // normalisation). x and out may alias. Per-head norms pass x.reshape_cols(head_dim).
  // (Gemma's (1 + w) is already folded into its GGUF weights by the converter.)
  virtual Status rms_norm(const Tensor& x, const Weight* w, float eps, Tensor out) = 0;
  // y = x W^T (+ bias when given, F32 [out_features]).
  virtual Status matmul(const Weight& w, const Tensor& x, Tensor y, const Weight* bias = nullptr) = 0;
  // In place on x [n_tokens, n_heads * head_dim] at DeviceStep::positions.
  virtual Status rope(Tensor x, const RopeParams& p, const DeviceStep& step) = 0;
  // out = a + b (same shapes; out may alias a).
  virtual Status add(const Tensor& a, const Tensor& b, Tensor out) = 0;
  // x *= s
  virtual Status scale(Tensor x, float s) = 0;
  // out = act(gate) * up
  virtual Status glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) = 0;
  // Writes k, v [n_tokens, n_kv_heads * head_dim] into the layer's pages at DeviceStep::kv_slots.
  virtual Status kv_store(const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step) = 0;
  // Causal attention of q [n_tokens, n_heads * head_dim] over each token's sequence's pages
  // (positions <= its own, within the sliding window) -> out [n_tokens, n_heads * head_dim].
  virtual Status attention(const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                           Tensor out) = 0;
  // out[i] = x[DeviceStep::logit_rows[i]]
  virtual Status gather_logit_rows(const Tensor& x, const DeviceStep& step, Tensor out) = 0;
  // x / sqrt(sum(x^2) + eps) over each head_dim-wide group of every row (HF/FLA's l2norm, not
  // ggml's x / max(|x|, eps)). x and out may alias and may be strided column views.
  virtual Status l2_norm(const Tensor& x, int32_t head_dim, float eps, Tensor out) = 0;

  // Causal depthwise conv1d + SiLU over each sequence's tokens, continuing from the layer's
  // conv state: with h = [the slot's kernel - 1 stored inputs (zeros when n_past == 0); x rows
  // of the sequence], out[t, c] = silu(sum_j w[c, j] * h[t + j, c]). The slot then holds the
  // last kernel - 1 rows of h. x, out [n_tokens, channels] F32 (distinct); w F32 [channels,
  // kernel] (GGUF ssm_conv1d); state.conv [n_slots * (kernel - 1), channels].
  virtual Status conv1d_silu(const Tensor& x, const Weight& w, const RecurrentLayer& state, const DeviceStep& step,
                             Tensor out) = 0;

  // The DeltaNet's per-token, per-value-head gates: g = softplus(alpha + dt_bias) * a (the
  // log-decay, <= 0 for a < 0; GGUF's ssm_a holds -exp(A_log)) and beta = sigmoid(b).
  // alpha, b, g, beta [n_tokens, n_v_heads] F32; dt_bias, a F32 [n_v_heads].
  virtual Status deltanet_gates(const Tensor& alpha, const Tensor& b, const Weight& dt_bias, const Weight& a,
                                Tensor g, Tensor beta) = 0;

  // The gated delta rule over each sequence's tokens, from and back into its state slot:
  //   S_h <- exp(g_t) S_h;  S_h <- S_h + k_t (beta_t (v_t - k_t^T S_h))^T;  o_t = (q_scale q_t)^T S_h
  // q, k [n_tokens, n_k_heads * d_k] (already L2-normalised), v, out [n_tokens, n_v_heads * d_v],
  // g, beta [n_tokens, n_v_heads]; q, k, v may be strided column views. The chunked and
  // recurrent forms give the same result to rounding (DeltaNetParams::mode picks one).
  virtual Status gated_deltanet(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                const Tensor& beta, const RecurrentLayer& state, const DeltaNetParams& p,
                                const DeviceStep& step, Tensor out) = 0;

  // ---- fused sequences (the defaults run the separate ops above; a backend may fuse them to
  // save launches and round trips through memory; results agree with the defaults to rounding)
  // matmul(*t.w, x, t.y, t.bias) for every target: the projections that read one activation (q,
  // k and v; gate and up). The outputs must not overlap x or each other.
  virtual Status matmul_group(const Tensor& x, std::span<const MatmulTarget> targets);
  // x += h, then out = rms_norm(x) * w: a residual add and the next norm. out may alias h.
  virtual Status add_rms_norm(Tensor x, const Tensor& h, const Weight* w, float eps, Tensor out);
  // The steps between an attention layer's projections and attention(): q = rms_norm(q_src) *
  // q_norm per head (q_src is q's heads as [n_tokens * n_heads, head_dim] rows, possibly strided
  // and possibly q's own memory; without q_norm it must be q.reshape_cols(head_dim)), k normed in
  // place by k_norm, RoPE on q (p.rope_q) and k (p.rope_k), then kv_store(kv, k, v, step).
  virtual Status qk_norm_rope_store(const Tensor& q_src, Tensor q, Tensor k, const Tensor& v, const QkNormRope& p,
                                    const KvLayer& kv, const DeviceStep& step);

  // Copies whole KV pages src -> dst in every given layer (copy-on-write of a shared page).
  virtual Status copy_page(const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size) = 0;

  // ---- sampling
  // ids[i] = the token sample_row(logits row i, requests[i]) draws (core/sampler.h: penalties,
  // top-k, top-p, min-p, temperature, the request's uniform), for logits F32 [n, n_vocab]
  // (rows may be strided). Waits for the result. The default copies the rows to the host and runs
  // sample_row there; a device backend draws on the device and copies back only the ids.
  // Errors: sample_row's (invalid_argument), and invalid_argument when the logits are not F32 or
  // requests / ids do not have one entry per row.
  virtual Status sample(const Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> ids);
};

}  // namespace anvil
