// Dot products of quantized weight rows with Q8_K-quantized activations, per ISA.
//
// Every variant computes, per 256-element super-block, the same exact integer sums (AVX2 /
// AVX-512 only change how fast they are summed) and then the same float epilogue in the same
// order (the *_accumulate functions in matmul_simd.cpp), so all ISA variants are bit-identical to
// the portable scalar one; tests/cpu_matmul checks that.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "cpu/matmul_candidates.h"
#include "quant/blocks.h"

namespace anvil::cpu {

// sum over the row of W[i] * x[i]: `w` points at one weight row of `n_superblocks` * 256
// elements, `x` at its Q8_K activations.
using Q8KDotFn = float (*)(const void* w, const quant::BlockQ8_K* x, int64_t n_superblocks);

// The dot kernel for weight type `t` at `level`, or null when there is none (level not
// compiled for this target, or a type without a kernel). Does not check the CPU.
Q8KDotFn q8k_dot_kernel(DType t, SimdLevel level);

// Q8_K quantization of n floats (n a multiple of 256): per super-block d = max|x| / 127,
// q = round(x / d) in [-127, 127], bsums = sums of 16 quants. Scalar and deterministic (every
// ISA variant uses the same activations).
void quantize_row_q8k(const float* x, quant::BlockQ8_K* out, int64_t n);

}  // namespace anvil::cpu
