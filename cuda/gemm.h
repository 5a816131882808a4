// Tensor-core GEMM on quantized weights, for prefill: y[t, :] = W · x[t, :] for n tokens
// (n from 1 to thousands), W in GGUF block order (Q4_K, Q5_K, Q6_K, Q8_0; no repack), x and y f32.
//
// How it runs (cuda/gemm_mma.cu, kernel in cuda/gemm_mma_kernel.cuh):
//   1. A small kernel converts x to f16 into `scratch`, permuting the 256 values of each K-quant
//      super-block into the order in which the weight kernel's lanes find them in the packed blocks
//      (the dot product does not care about the order of k as long as both operands agree); it
//      also zeroes the split-K tile counters.
//   2. One GEMM kernel: a CTA owns a tile of output rows x tokens and walks the super-blocks of k;
//      each step copies the raw weight blocks and the f16 activations of one super-block into
//      shared memory (cp.async, 2-3 stages), each warp dequantizes its rows' blocks straight into
//      mma.m16n8k16 A fragments (f16, in registers) and multiplies them with the activation
//      fragments (ldmatrix), accumulating in f32. When there are fewer tiles than SMs, k is split
//      over several CTAs and the last one to finish a tile sums the partial tiles in a fixed
//      order (deterministic results).
// Accuracy: x and the dequantized weights are rounded to f16 (unit roundoff 4.9e-4) and products
// are summed in f32; the result differs from an f32 dot product by ~1e-3 of the output's norm
// (tests/cuda/gemm_test.cpp). |x| above 65504 saturates to +-65504.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/status.h"

namespace anvil::cuda {

class Context;

struct GemmParams {
  DType weight_type = DType::Q4_K;  // Q4_K, Q5_K, Q6_K or Q8_0
  const void* weight = nullptr;     // out rows of `in` elements, GGUF blocks, row-major
  int64_t weight_row_stride = 0;    // bytes between rows; >= row_bytes(type, in)
  int64_t in = 0;                   // elements per row: a multiple of 256
  int64_t out = 0;                  // rows, >= 1
  int64_t n = 0;                    // tokens, >= 1

  const float* x = nullptr;  // activations, f32 [n, in]
  int64_t x_stride = 0;      // elements between tokens; >= in
  float* y = nullptr;        // output, f32 [n, out]
  int64_t y_stride = 0;      // elements between tokens; >= out

  void* scratch = nullptr;   // device memory: f16 activations, split-K partial tiles and counters
  size_t scratch_bytes = 0;  // >= gemm_scratch_bytes(*this)

  // Tuning overrides for tests and benches; the defaults let the launcher choose.
  int config = -1;     // tile configuration index (0 .. gemm_config_count() - 1), -1 = launcher's
  int split_k = 0;     // CTAs sharing one tile's k range (>= 1), 0 = launcher's
  int sm_count = 0;    // multiprocessors to fill, 0 = read from the current device
};

// True when launch_gemm_mma handles this weight type and shape (in a multiple of 256, sizes in
// the kernel's int range). Alignment and strides are checked by launch_gemm_mma itself.
bool gemm_mma_supports(DType weight_type, int64_t in, int64_t out, int64_t n);

// Number of tile configurations, and a short name of one ("m128n64", ...), for benches.
int gemm_config_count();
const char* gemm_config_name(int config);

// The launcher's plan for p as "m128n64" or "m64n32 split 4" (config, k splits); "" when p's
// shape is not supported. For logs and benches.
std::string gemm_plan_name(const GemmParams& p);

// Device bytes p.scratch must hold for p's shape and plan (config, split_k, sm_count as set in
// p; the pointers and scratch fields are ignored). 0 when p's shape is not supported.
size_t gemm_scratch_bytes(const GemmParams& p);

// Validates p (type, shape, strides, alignment: Q4_K / Q5_K / Q8_0 weights and row stride 16-byte
// aligned, Q6_K weights 16-byte aligned and row stride 2-byte; scratch 16-byte aligned and large
// enough) and enqueues the convert + GEMM kernels on `stream`, without synchronizing.
// Errors: invalid_argument (bad shape, stride, pointer, override), unsupported (weight type).
Status launch_gemm_mma(const GemmParams& p, cudaStream_t stream);

// The same on ctx.stream, with p.scratch taken from ctx's activations_f16 slot (grown as needed;
// call it before capturing, see Context::scratch) and p.sm_count from ctx.
Status launch_gemm_mma(GemmParams p, Context& ctx);

}  // namespace anvil::cuda
