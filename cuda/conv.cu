// conv1d_silu on CUDA: the Gated DeltaNet's causal depthwise conv1d + SiLU (Qwen3.5's ssm_conv1d),
// continuing each sequence from the kernel - 1 inputs its state slot carries (core/backend.h has
// the contract, cpu/ops_conv.cpp the oracle whose validation and arithmetic this mirrors).
//
// Two kernels, both one thread per channel (channels are independent):
//   conv_out_kernel    grid (n_tokens, channel blocks): token t of sequence s at position i in the
//                      step reads h[i .. i + K) where h = [slot's stored inputs (zeros when
//                      n_past == 0); the sequence's x rows], i.e. the slot for i + j < K - 1, else
//                      x row t + j - (K - 1). Every token is independent, so a long prefill is as
//                      parallel as a decode batch.
//   conv_state_kernel  grid (n_seqs, channel blocks), after the first on the same stream: the slot
//                      keeps the last K - 1 rows of h. Row j takes h[n + j]; n >= 1, so it reads
//                      old row n + j before that row is overwritten (rows go up in order).
// The launch depends only on the shapes, n_tokens and n_seqs; sequences, slots and context lengths
// come from DeviceStep's device arrays (the CUDA-graph launch rule, cuda/ops.h). The dot product
// of K terms is accumulated in double, like the CPU oracle (cheap: K is 4 for Qwen3.5).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/ops.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda {
namespace {

constexpr int kConvThreads = 256;

struct ConvParams {
  const char* x;  // [n_tokens, C] F32, row stride x_stride bytes
  char* out;
  const char* w;  // [C, K] F32
  char* conv;     // [n_slots * (K - 1), C] F32
  size_t x_stride, out_stride, w_stride, conv_stride;
  int32_t channels, kernel;
  const int32_t* token_seq;  // device arrays of the step
  const int32_t* seq_first_token;
  const int32_t* seq_n_tokens;
  const int32_t* context_lens;
  const int32_t* state_slots;
};

__device__ __forceinline__ const float* frow(const char* base, size_t stride, int64_t r) {
  return reinterpret_cast<const float*>(base + size_t(r) * stride);
}
__device__ __forceinline__ float* frow(char* base, size_t stride, int64_t r) {
  return reinterpret_cast<float*>(base + size_t(r) * stride);
}

// Element i of the sequence's history h for channel c: the slot's stored row i (zero for a fresh
// sequence) while i < K - 1, else x row first + i - (K - 1).
__device__ __forceinline__ float history(const ConvParams& p, int32_t slot, bool fresh, int32_t first, int32_t i,
                                         int32_t c) {
  const int32_t hist = p.kernel - 1;
  if (i < hist) return fresh ? 0.f : frow(p.conv, p.conv_stride, int64_t(slot) * hist + i)[c];
  return frow(p.x, p.x_stride, int64_t(first) + i - hist)[c];
}

__global__ void __launch_bounds__(kConvThreads) conv_out_kernel(ConvParams p) {
  pdl_begin();  // cuda/pdl.cuh
  const int32_t t = int32_t(blockIdx.x);
  const int32_t c = int32_t(blockIdx.y) * kConvThreads + int32_t(threadIdx.x);
  if (c >= p.channels) return;
  const int32_t s = p.token_seq[t];
  const int32_t first = p.seq_first_token[s], n = p.seq_n_tokens[s];
  const bool fresh = p.context_lens[s] == n;
  const int32_t slot = p.state_slots[s];
  const int32_t pos = t - first;  // this token's index within the sequence's step tokens
  const float* wc = frow(p.w, p.w_stride, c);
  double acc = 0.0;
  for (int32_t j = 0; j < p.kernel; ++j) acc += double(wc[j]) * double(history(p, slot, fresh, first, pos + j, c));
  const float a = float(acc);
  frow(p.out, p.out_stride, t)[c] = a / (1.0f + expf(-a));
}

__global__ void __launch_bounds__(kConvThreads) conv_state_kernel(ConvParams p) {
  pdl_begin();  // cuda/pdl.cuh
  const int32_t s = int32_t(blockIdx.x);
  const int32_t c = int32_t(blockIdx.y) * kConvThreads + int32_t(threadIdx.x);
  if (c >= p.channels) return;
  const int32_t n = p.seq_n_tokens[s];
  if (n <= 0) return;
  const int32_t first = p.seq_first_token[s], slot = p.state_slots[s], hist = p.kernel - 1;
  const bool fresh = p.context_lens[s] == n;
  for (int32_t j = 0; j < hist; ++j) {
    const float v = history(p, slot, fresh, first, n + j, c);  // reads row n + j > j: not yet written
    frow(p.conv, p.conv_stride, int64_t(slot) * hist + j)[c] = v;
  }
}

// Kernels address F32 rows through byte strides; a misaligned base or stride would fault.
Status check_f32_aligned(const char* op, const char* arg, const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data) % sizeof(float) != 0 || t.row_stride % sizeof(float) != 0)
    return make_error(StatusCode::invalid_argument, op, ": ", arg, " ", shape_str(t), " (row_stride ", t.row_stride,
                      ") is not 4-byte aligned");
  return Status::ok();
}

}  // namespace

Status conv1d_silu(Context& ctx, const Tensor& x, const Weight& w, const RecurrentLayer& state, const DeviceStep& step,
                   Tensor out) {
  const char* op = "conv1d_silu";
  // The CPU oracle's checks (cpu/ops_conv.cpp), in the same order.
  ANVIL_RETURN_IF_ERROR(check_f32(op, "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32(op, "out", out));
  ANVIL_RETURN_IF_ERROR(check_f32(op, "state.conv", state.conv));
  ANVIL_RETURN_IF_ERROR(check_same_shape(op, "x", x, "out", out));
  const int64_t C = x.cols;
  if (w.t.type != DType::F32 || w.t.rows != C || w.t.cols < 2 || !w.t.data)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: weight '", w.name, "' ", shape_str(w.t),
                      " must be F32 [", C, " x kernel >= 2] for x ", shape_str(x));
  if (x.data == out.data)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: x and out must be distinct (later tokens read "
                      "earlier inputs)");
  const int64_t K = w.t.cols, hist = K - 1;
  if (state.conv.cols != C || state.conv.rows % hist != 0 || state.conv.rows == 0)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: state.conv ", shape_str(state.conv),
                      " must be [n_slots * ", hist, " x ", C, "]");
  if (x.rows != step.n_tokens)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: x ", shape_str(x), " must have ", step.n_tokens,
                      " rows (the step's tokens)");
  ANVIL_RETURN_IF_ERROR(check_state_slots(op, step, state.conv.rows / hist));
  // What the CUDA kernels need beyond the oracle's checks.
  ANVIL_RETURN_IF_ERROR(check_f32_aligned(op, "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32_aligned(op, "out", out));
  ANVIL_RETURN_IF_ERROR(check_f32_aligned(op, "state.conv", state.conv));
  ANVIL_RETURN_IF_ERROR(check_f32_aligned(op, "weight", w.t));
  const int64_t channel_blocks = (C + kConvThreads - 1) / kConvThreads;
  if (channel_blocks > 65535 || K > INT32_MAX || state.conv.rows > INT32_MAX)
    return make_error(StatusCode::unsupported, "conv1d_silu: ", C, " channels, kernel ", K, " exceed the CUDA grid");
  if (step.n_tokens == 0 || C == 0) return Status::ok();

  ConvParams p;
  p.x = static_cast<const char*>(x.data);
  p.out = static_cast<char*>(out.data);
  p.w = static_cast<const char*>(w.t.data);
  p.conv = static_cast<char*>(state.conv.data);
  p.x_stride = x.row_stride;
  p.out_stride = out.row_stride;
  p.w_stride = w.t.row_stride;
  p.conv_stride = state.conv.row_stride;
  p.channels = int32_t(C);
  p.kernel = int32_t(K);
  p.token_seq = step.token_seq;
  p.seq_first_token = step.seq_first_token;
  p.seq_n_tokens = step.seq_n_tokens;
  p.context_lens = step.context_lens;
  p.state_slots = step.state_slots;

  ANVIL_RETURN_IF_ERROR(launch_pdl("conv_out_kernel", conv_out_kernel,
                                   dim3(unsigned(step.n_tokens), unsigned(channel_blocks)), dim3(kConvThreads), 0,
                                   ctx.stream, p));
  if (step.n_seqs > 0) {
    ANVIL_RETURN_IF_ERROR(launch_pdl("conv_state_kernel", conv_state_kernel,
                                     dim3(unsigned(step.n_seqs), unsigned(channel_blocks)), dim3(kConvThreads), 0,
                                     ctx.stream, p));
  }
  return Status::ok();
}

}  // namespace anvil::cuda
