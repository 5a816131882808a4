// Exact decode GEMV: y[t, :] = W · x[t, :] for n = 1..8 tokens in one launch, W in GGUF block
// order (Q4_K, Q5_K, Q6_K, Q8_0; no repack), x in f32 as the caller holds it.
//
// Unlike launch_gemv (cuda/gemv.h), the activations are not rounded: the weights are decoded in
// registers without rounding (Q4_K / Q5_K: each weight bit for bit as quant/dequantize.cpp forms
// it; Q6_K / Q8_0: the exact integer quants, the block scale applied to each 8-value partial dot
// product), multiplied by the f32 activations read straight from x, and summed in f32. So the
// result differs from the CPU reference (dequantize a row in f32, then an f32 dot product) only
// by f32 rounding in the sums: max |y - ref| / max |ref| <= 1e-5 in the tests. No quantize
// kernel and no scratch.
//
// How it runs (cuda/gemv_f32_kernel.cuh): one warp owns a few rows; its lanes split each row's
// blocks into slices, load the rows' bytes of a slice, dequantize them in pieces of 8 values
// once for all n tokens, and read each token's 8 matching activations once for all the rows.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace anvil::cuda {

struct GemvF32Params {
  DType weight_type = DType::Q4_K;  // Q4_K, Q5_K, Q6_K or Q8_0
  const void* weight = nullptr;     // out rows of `in` elements, GGUF blocks, row-major
  int64_t weight_row_stride = 0;    // bytes between rows; >= row_bytes(type, in)
  int64_t in = 0;                   // elements per row (a multiple of the type's block size)
  int64_t out = 0;                  // rows
  int n = 0;                        // tokens, 1..8

  const float* x = nullptr;  // activations, f32 [n, in]; 16-byte aligned
  int64_t x_stride = 0;      // elements between tokens; >= in, a multiple of 4 when n > 1
  float* y = nullptr;        // output, f32 [n, out]
  int64_t y_stride = 0;      // elements between tokens; >= out

  // Rows each warp computes (1, 2 or 4); 0 = the launcher's default. More rows per warp reuse
  // each activation load for more rows; fewer spread small matrices over more warps.
  int rows_per_warp = 0;
};

// The most tokens one launch takes.
constexpr int kGemvF32MaxTokens = 8;

// Validates p (types, shapes, strides, alignment: Q4_K / Q5_K weights and row stride 16-byte
// aligned, Q6_K / Q8_0 2-byte; x 16-byte aligned) and enqueues one kernel on `stream`. Errors:
// invalid_argument (bad shape, stride, pointer, n outside 1..8), unsupported (weight type).
Status launch_gemv_f32(const GemvF32Params& p, cudaStream_t stream);

}  // namespace anvil::cuda
