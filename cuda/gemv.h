// Quantized GEMV for decode: y[t, :] = W · x[t, :] for a few tokens t (n = 1..8 per pass; more
// are done in passes of 8), W in GGUF block order (Q4_K, Q5_K, Q6_K, Q8_0; no repack).
//
// How it runs (cuda/gemv.cu): the activations are first quantized to a Q8_1-style int8 layout
// in `scratch` (per 32 values: int8 quants, an f32 scale d and d * sum of the quants), then one
// kernel per weight type streams the weight blocks once and takes int8 dot products (dp4a)
// against all n tokens. One warp owns a few rows; its lanes split each row's blocks, so every
// weight byte is loaded once and reused for all tokens (cuda/gemv_kernel.cuh; for one token,
// Q4_K and Q5_K use cuda/gemv_kquant_kernel.cuh, where each row has its own group of lanes). Results differ from an f32 dot product
// by the int8 rounding of the activations: 3-5e-3 of the row's largest |y| on the Qwen shapes,
// at most 1e-2 in the tests (bench/NOTES.md has the measured values).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "core/status.h"

namespace anvil::cuda {

constexpr int kGemvTokensPerPass = 8;  // tokens one GEMV launch takes; more run in passes

struct GemvParams {
  DType weight_type = DType::Q4_K;  // Q4_K, Q5_K, Q6_K or Q8_0
  const void* weight = nullptr;     // out rows of `in` elements, GGUF blocks, row-major
  int64_t weight_row_stride = 0;    // bytes between rows; >= row_bytes(type, in)
  int64_t in = 0;                   // elements per row (a multiple of the type's block size)
  int64_t out = 0;                  // rows
  int n = 0;                        // tokens, >= 1

  const float* x = nullptr;  // activations, f32 [n, in]
  int64_t x_stride = 0;      // elements between tokens; >= in
  float* y = nullptr;        // output, f32 [n, out]
  int64_t y_stride = 0;      // elements between tokens; >= out

  void* scratch = nullptr;   // device memory for the quantized activations
  size_t scratch_bytes = 0;  // >= gemv_scratch_bytes(n, in)

  // Rows each warp computes (1, 2 or 4); 0 = the launcher's measured default. More rows per
  // warp reuse each activation load for more rows; fewer spread small matrices over more warps.
  int rows_per_warp = 0;
};

// Rows per warp when GemvParams::rows_per_warp is 0: measured for this kernel (cuda/gemv.cu),
// and taken over by the exact GEMV (cuda/gemv_f32.h) until it is measured itself.
int gemv_default_rows_per_warp(DType t, int n, int64_t out);

// Where the quantized activations of n tokens of `in` elements live in a GEMV scratch area: int8
// quants [n, in], then (d, d * sum of the 32 quants) per 32 values [n, in / 32]. A kernel that
// writes x can also write this (add_rms_norm does) and let the GEMV skip its quantize launch.
struct GemvActivations {
  int8_t* q;
  float2* ds;
};
GemvActivations gemv_activation_layout(void* scratch, int n, int64_t in);

// Device bytes GemvParams::scratch must hold for n tokens of `in` elements.
size_t gemv_scratch_bytes(int n, int64_t in);

// Validates p (types, shapes, strides, alignment: Q4_K / Q5_K weights and row stride 16-byte
// aligned, Q6_K / Q8_0 2-byte; scratch 16-byte aligned) and enqueues the quantize + GEMV kernels on
// `stream`. Errors: invalid_argument (bad shape, stride, pointer), unsupported (weight type).
Status launch_gemv(const GemvParams& p, cudaStream_t stream);

// The two halves of launch_gemv, for callers that reuse one quantized activation for several
// matrices (q, k and v read the same x): quantize once, then run the GEMV for each weight.
Status launch_gemv_quantize_activations(const GemvParams& p, cudaStream_t stream);
Status launch_gemv_prequantized(const GemvParams& p, cudaStream_t stream);
// Up to 3 matrices of one weight type and width against the same quantized activations (same n,
// x, scratch) in one launch: q, k and v, or gate and up, whose separate launches are each too
// small to fill the GPU (a 1024-row k or v GEMV runs at ~10% of the copy bandwidth). rows_per_warp
// 0 takes the default for the matrices' total rows. Each row's result is bit-identical to a
// separate launch_gemv_prequantized.
Status launch_gemv_prequantized_group(std::span<const GemvParams> ps, cudaStream_t stream);

}  // namespace anvil::cuda
