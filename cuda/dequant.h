// Device dequantization of weight rows: the embedding lookup (cuda/ops_embed.cu) and the
// dequantize + cuBLAS matmul candidate (cuda/matmul.cu) both turn GGUF-block rows into f32 or
// f16 rows with it. Every type quant/quant.h dequantizes except Q8_K (an activation format that
// never appears as a weight): F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
// F32 output is bit-identical to quant::dequantize_row; F16 output is that value rounded to
// nearest even.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"
#include "core/tensor.h"
#include "cuda/ops.h"

namespace anvil::cuda {

// True when dequantize_rows handles weights of type t.
bool has_device_dequantizer(DType t);

// Enqueues on ctx.stream: output row i (0 <= i < n_rows) = dequantized row src(i) of w, with
//   src(i) = first_row + i                                       when row_ids is null,
//   src(i) = row_ids[first_row + i], clamped to [0, w.rows)      otherwise.
// row_ids is device memory (e.g. DeviceStep::tokens); its values are read only by the kernel,
// so a captured graph replays with new ids, and an out-of-range id reads a valid row instead of
// faulting (callers that must reject bad ids check them on the host first, as embed does).
// out_type is F32 or F16; output rows are out_row_stride bytes apart (>= w.cols elements).
// Errors: unsupported (type), invalid_argument (shapes, strides, null or misaligned pointers).
Status dequantize_rows(Context& ctx, const Tensor& w, const int32_t* row_ids, int64_t first_row, int64_t n_rows,
                       DType out_type, void* out, size_t out_row_stride);

}  // namespace anvil::cuda
