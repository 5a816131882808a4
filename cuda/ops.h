// The op families behind CudaBackend (cuda/backend.cu), one .cu per family. Each mirrors the
// Backend op of the same name (core/backend.h has the contract), validates its shapes on the host
// with core/op_checks.h, and enqueues its kernels on ctx.stream without synchronizing.
//
// Launch rule (CUDA graphs): decode steps are captured and replayed with new DeviceStep values,
// so for a step whose sequences all have one token, a launch's grid, block and arguments may
// depend only on tensor shapes/pointers, op params and DeviceStep's n_tokens, n_seqs, page_size,
// max_blocks and n_logit_rows; everything else (positions, context lengths, slots, tables) is
// read by the kernels from the DeviceStep arrays in device memory. host_step(step) may be read
// for validation and, in multi-token (prefill) steps, for launch decisions.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/status.h"

namespace anvil::cuda {

// Named scratch areas; an op family owns its slot, and its contents do not survive the op.
enum class ScratchSlot : int {
  gemv_activations,  // quantized activations of the decode GEMV
  dequant,           // dequantized weight tiles (dequantize + cuBLAS)
  activations_f16,   // f16 copies of activations (cuBLAS inputs)
  attention,         // split-K partial results
  deltanet,          // chunked DeltaNet intermediates
  sampling,          // Backend::sample's row parameters, penalised logits, sorted keys, CUB temp
  count,
};

// What every op family gets from the backend.
class Context {
 public:
  Context() = default;
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  int device = 0;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;

  // At least `bytes` of device memory for `slot`, 256-byte aligned. Grow-only: a larger request
  // frees the old area (after synchronizing the stream) and bumps generation(), which tells the
  // backend its captured graphs point at freed memory. Call it before enqueueing kernels.
  Expected<void*> scratch(ScratchSlot slot, size_t bytes);
  uint64_t generation() const { return generation_; }

  // The activation the decode GEMV quantized last (cuda/matmul.cu). When reuse is on, a GEMV
  // on the same x (same view) skips the quantization: q, k and v (and gate and up) read one x.
  // Only sound if nothing wrote x since, so the owner turns it on only where it clears
  // gemv_x before every op that is not a matmul (CudaBackend does).
  struct QuantizedX {
    const void* data = nullptr;
    int64_t rows = 0, cols = 0;
    size_t stride = 0;
    bool operator==(const QuantizedX&) const = default;
  };
  bool reuse_quantized_x = false;
  QuantizedX gemv_x;
  // With reuse on, the ops that write a GEMV's input at decode sizes (add_rms_norm, glu) also
  // write its quantized copy and set gemv_x, so the GEMV skips its quantize launch.
  bool quantize_in_producers = false;
  void bump_generation() { ++generation_; }

 private:
  struct Area {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  Area areas_[int(ScratchSlot::count)];
  uint64_t generation_ = 0;
};

// cuBLAS error -> Status, like ANVIL_CUDA_CHECK.
Status cublas_status(cublasStatus_t s, const char* what, const char* file, int line);
#define ANVIL_CUBLAS_CHECK(call) \
  ANVIL_RETURN_IF_ERROR(::anvil::cuda::cublas_status((call), #call, __FILE__, __LINE__))

// ---- op families (file in parentheses)
Status embed(Context& ctx, const Weight& table, const DeviceStep& step, Tensor out);  // (ops_embed.cu)
Status rms_norm(Context& ctx, const Tensor& x, const Weight* w, float eps, Tensor out);  // (ops_norm.cu)
Status add_rms_norm(Context& ctx, Tensor x, const Tensor& h, const Weight* w, float eps, Tensor out);  // (ops_norm.cu)
Status l2_norm(Context& ctx, const Tensor& x, int32_t head_dim, float eps, Tensor out);  // (ops_norm.cu)
Status add(Context& ctx, const Tensor& a, const Tensor& b, Tensor out);                    // (ops_elementwise.cu)
Status scale(Context& ctx, Tensor x, float s);                                              // (ops_elementwise.cu)
Status glu(Context& ctx, const Tensor& gate, const Tensor& up, Activation act, Tensor out);  // (ops_elementwise.cu)
Status gather_logit_rows(Context& ctx, const Tensor& x, const DeviceStep& step, Tensor out);  // (ops_elementwise.cu)
Status deltanet_gates(Context& ctx, const Tensor& alpha, const Tensor& b, const Weight& dt_bias, const Weight& a,
                      Tensor g, Tensor beta);  // (ops_elementwise.cu)
Status rope(Context& ctx, Tensor x, const RopeParams& p, const DeviceStep& step);  // (ops_rope.cu)
Status kv_store(Context& ctx, const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step);  // (ops_kv.cu)
// kv_store's host-side validation (slots from the step's host mirror), for ops that also store.
Status check_kv_store(const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step);  // (ops_kv.cu)
Status copy_page(Context& ctx, const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size);  // (ops_kv.cu)
// Backend::qk_norm_rope_store in one kernel. unsupported (nothing launched) where the kernel does
// not cover the shapes (rope_q and rope_k differing in more than n_heads, head_dim > 256): the
// caller then runs the separate ops.
Status qk_norm_rope_store(Context& ctx, const Tensor& q_src, Tensor q, Tensor k, const Tensor& v,
                          const QkNormRope& p, const KvLayer& kv, const DeviceStep& step);  // (ops_qk_rope.cu)
Status attention(Context& ctx, const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                 Tensor out);  // (attention.cu)
Status conv1d_silu(Context& ctx, const Tensor& x, const Weight& w, const RecurrentLayer& state,
                   const DeviceStep& step, Tensor out);  // (conv.cu)
Status gated_deltanet(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                      const Tensor& beta, const RecurrentLayer& state, const DeltaNetParams& p,
                      const DeviceStep& step, Tensor out);  // (deltanet.cu)
// y = x W^T (+ bias): picks the decode GEMV, the tensor-core GEMM or dequantize + cuBLAS.
Status matmul(Context& ctx, const Weight& w, const Tensor& x, Tensor y, const Weight* bias);  // (matmul.cu)
// Backend::matmul_group: the targets the int8 GEMV runs share one quantized x and, per weight
// type and width, one launch (cuda/gemv.h); the others run as matmul.
Status matmul_group(Context& ctx, const Tensor& x, std::span<const MatmulTarget> targets);  // (matmul.cu)
// ids[i] = sample_row(logits row i, requests[i]), drawn on the device; waits for the ids.
Status sample(Context& ctx, const Tensor& logits, std::span<const SampleRequest> requests,
              std::span<int32_t> ids);  // (sampling.cu)

}  // namespace anvil::cuda
