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
#include <memory>
#include <span>
#include <string>

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
};

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

struct AttentionParams {
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;  // n_heads % n_kv_heads == 0 (GQA)
  int32_t head_dim = 0;
  float scale = 0.f;           // applied to q·k (usually 1/sqrt(head_dim))
  int32_t sliding_window = 0;  // > 0: a token at position p sees positions > p - window
  float softcap = 0.f;         // > 0: scores = softcap * tanh(scores / softcap)
};

enum class Activation { silu, gelu_tanh };

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
  virtual Status synchronize() = 0;
  virtual Expected<DeviceStep> prepare_step(const StepBatch& batch) = 0;

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
  // Copies whole KV pages src -> dst in every given layer (copy-on-write of a shared page).
  virtual Status copy_page(const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size) = 0;
};

}  // namespace anvil
