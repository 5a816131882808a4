// Reference dequantize / quantize for the block formats anvil runs (bit-exact with ggml's
// reference C and gguf-py's numpy code). These are the oracle every backend kernel is
// tested against; they favour clarity over speed.
//
// Supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K Q8_K.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace anvil::quant {

// True when dequantize_row / quantize_row handle this type.
bool has_reference(DType t);

// Dequantizes n elements (n a multiple of the type's block size) from src into dst.
Status dequantize_row(DType t, const void* src, float* dst, int64_t n);

// Quantizes n elements into dst, which must hold row_bytes(t, n) bytes. K-quants use the
// usual per-sub-block scale/min search (ggml's make_qkx2/make_qx quants); `weights`
// (importance, optional, n entries) biases that search as an imatrix does.
Status quantize_row(DType t, const float* src, void* dst, int64_t n, const float* weights = nullptr);

// Multithreaded helpers over many rows (row length n_per_row, n_rows rows, contiguous).
// n_threads: 0 = the global pool, 1 = the calling thread only. Results are byte-identical to
// calling the single-row functions row by row. `weights` (optional, n_per_row entries, one
// per column as an imatrix gives them) applies to every row.
Status dequantize_rows(DType t, const void* src, float* dst, int64_t n_per_row, int64_t n_rows,
                       int n_threads = 0);
Status quantize_rows(DType t, const float* src, void* dst, int64_t n_per_row, int64_t n_rows,
                     int n_threads = 0, const float* weights = nullptr);

}  // namespace anvil::quant
