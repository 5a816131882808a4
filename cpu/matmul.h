// Quantized matmul on the CPU: the seam between the CPU backend (cpu/backend.cpp) and the
// matmul candidates (reference, dequantize + OpenBLAS sgemm, SIMD dot products over Q8_K
// activations), one of which the kernel registry picks per shape by measurement.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace anvil::cpu {

// y[t, o] = sum_i x[t, i] * W[o, i] (+ bias[o]). x [n, in] and y [n, out] are F32; W is
// [out, in] of any type quant/ can dequantize; bias (F32 [out]) may be null.
Status matmul(const Weight& w, const Tensor& x, Tensor y, const Weight* bias, ThreadPool& pool);

}  // namespace anvil::cpu
