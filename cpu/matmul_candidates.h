// The candidates behind cpu::matmul (cpu/matmul.h), for the registry, the tests and
// bench-kernels. Every candidate computes y[t, o] = sum_i x[t, i] * W[o, i] without bias (the
// dispatcher adds it) over validated arguments: x F32 [n, in], y F32 [n, out], W [out, in]
// in GGUF block order (layout 0); rows of x and y may be strided.
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "core/registry.h"

namespace anvil::cpu {

struct MatmulArgs {
  const Tensor* w;
  const Tensor* x;
  Tensor y;
  ThreadPool* pool;
};

// The oracle: dequantizes each weight row (quant::dequantize_row) and takes f32 dot products;
// threads over output rows. Supports every type quant/ dequantizes.
bool matmul_reference_supports(const MatmulArgs& a);
Status matmul_reference(const MatmulArgs& a);

// Dequantizes tiles of W to f32 and multiplies with OpenBLAS sgemm (the prefill candidate).
bool matmul_blas_supports(const MatmulArgs& a);
Status matmul_blas(const MatmulArgs& a);
// The BLAS build ("OpenBLAS 0.3.21 ... Haswell MAX_THREADS=64"), part of the tuning key.
std::string blas_description();

// Quantizes x to Q8_K per row and takes integer dot products with Q4_K / Q5_K / Q6_K / Q8_0
// weights (the decode candidate); see cpu/matmul_simd.h for the per-ISA variants.
enum class SimdLevel { scalar, avx2, avx512 };
const char* simd_level_name(SimdLevel l);
bool simd_level_available(SimdLevel l);  // the CPU can run it
bool matmul_q8k_supports(const MatmulArgs& a);  // type and shape (any level)
Status matmul_q8k(const MatmulArgs& a, SimdLevel level);

// The registry cpu::matmul dispatches through (candidates: reference, blas, q8k_avx512,
// q8k_avx2, q8k_scalar; each supports only what it and this CPU can run).
KernelRegistry<MatmulArgs>& matmul_registry();
// The tuning shape key of a call ("Q4_K 9728x2560 n<=8 t2"): type, out x in, token bucket, threads.
std::string matmul_shape_key(const MatmulArgs& a);

}  // namespace anvil::cpu
