// The candidates behind cuda::matmul (cuda/ops.h), for the dispatcher, the tests and the
// benchmarks. Each computes y[t, o] = sum_i x[t, i] * W[o, i] (no bias; the dispatcher adds it)
// for the shapes it supports:
//   gemv_int8     decode GEMV, x rounded to int8 per 32 values (cuda/gemv.h): Q4_K, Q5_K, Q6_K,
//                 Q8_0, n <= 8 tokens. Error <= 1e-2 of max |y| (bench/NOTES.md).
//   gemv_f32      exact decode GEMV (cuda/gemv_f32.h): the same types and n <= 8, weights
//                 decoded in registers without rounding, f32 activations and sums, one launch
//                 (no quantize kernel). Error: f32 rounding of the sums only; tested at <= 1e-5.
//   cublas_sgemm  F32 weights: cublasSgemm in plain f32 (no TF32). Error ~1e-6 (summation order).
//   cublas_f16    any type cuda/dequant.h handles: W dequantized to f16 in row tiles (F16 weights
//                 used in place), x converted to f16, cublasGemmEx with f32 accumulation and f32
//                 output written straight into y. Error: the f16 rounding of W and x, ~1e-3
//                 relative; tested at <= 1e-2. x must fit f16 (|x| < 65504).
// cuda::matmul runs the candidate cuda/matmul_tuning.h chooses for the shape: the table order
// (the untuned preference) or ANVIL_FORCE_KERNEL's; measured per weight shape and token bucket
// with ANVIL_CUDA_TUNE=1 (opt-in until the trial has run on a GPU).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/tensor.h"
#include "cuda/gemv.h"
#include "cuda/ops.h"

namespace anvil::cuda {

struct MatmulCandidate {
  const char* name;
  // Agreement with the CPU reference a tuner should demand (max |y - ref| / max |ref|).
  double tolerance;
  // Whether it runs W (any layout-0 weight) against n tokens.
  bool (*supports)(const Tensor& w, int64_t n);
  // y = x W^T on ctx.stream; arguments already validated by matmul_with / matmul.
  Status (*run)(Context& ctx, const Tensor& w, const Tensor& x, Tensor y);
};

// The candidates, in the untuned order of preference.
std::span<const MatmulCandidate> matmul_candidates();

// Validates as cuda::matmul does, then runs the candidate named `name` (+ bias). Errors:
// invalid_argument (shapes), not_found for an unknown name, unsupported when the candidate does
// not support the call.
Status matmul_with(Context& ctx, std::string_view name, const Weight& w, const Tensor& x, Tensor y,
                   const Weight* bias);

// For an op that writes x (rows x cols) which a decode GEMV reads next: where the op should also
// write x's int8 copy (cuda/gemv.h's layout in the GEMV's scratch), or nullopt when it should not
// (Context::quantize_in_producers off, more tokens than one GEMV pass, cols not whole 32-blocks).
// After writing it, gemv_input_written(ctx, x) lets the GEMV on x skip its own quantization.
Expected<std::optional<GemvActivations>> gemv_input_target(Context& ctx, int64_t rows, int64_t cols);
void gemv_input_written(Context& ctx, const Tensor& x);

// The cuBLAS candidate alone (matmul_with "cublas_f16"): dequantize W to f16 tiles + GemmEx, for
// any n and any dequantizable type, so a benchmark can time it against the GEMV.
Status matmul_cublas(Context& ctx, const Weight& w, const Tensor& x, Tensor y, const Weight* bias);

}  // namespace anvil::cuda
