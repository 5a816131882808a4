// Internal to quant/: the per-format reference routines behind quant.h's dispatch, and the
// shared scale-search helpers of the K formats. n is always a whole number of blocks; the
// pointers need no alignment (blocks are copied in and out with memcpy).
#pragma once

#include <cstdint>
#include <cstring>

namespace anvil::quant::ref {

// ---------------------------------------------------------------- dequantize (dequantize.cpp)
void dequantize_f16(const void* src, float* dst, int64_t n);
void dequantize_bf16(const void* src, float* dst, int64_t n);
void dequantize_q4_0(const void* src, float* dst, int64_t n);
void dequantize_q4_1(const void* src, float* dst, int64_t n);
void dequantize_q5_0(const void* src, float* dst, int64_t n);
void dequantize_q5_1(const void* src, float* dst, int64_t n);
void dequantize_q8_0(const void* src, float* dst, int64_t n);
void dequantize_q4_k(const void* src, float* dst, int64_t n);
void dequantize_q5_k(const void* src, float* dst, int64_t n);
void dequantize_q6_k(const void* src, float* dst, int64_t n);
void dequantize_q8_k(const void* src, float* dst, int64_t n);

// ---------------------------------------------------------------- quantize
// `weights` (importance, n entries) may be null; with it the routines follow ggml's
// imatrix paths, which look at the whole row (n is one row there).
void quantize_f16(const float* src, void* dst, int64_t n);
void quantize_bf16(const float* src, void* dst, int64_t n);
// quantize_legacy.cpp
void quantize_q4_0(const float* src, void* dst, int64_t n, const float* weights);
void quantize_q4_1(const float* src, void* dst, int64_t n, const float* weights);
void quantize_q5_0(const float* src, void* dst, int64_t n, const float* weights);
void quantize_q5_1(const float* src, void* dst, int64_t n, const float* weights);
void quantize_q8_0(const float* src, void* dst, int64_t n);
// quantize_k.cpp
void quantize_q4_k(const float* src, void* dst, int64_t n, const float* weights);
void quantize_q5_k(const float* src, void* dst, int64_t n, const float* weights);
void quantize_q6_k(const float* src, void* dst, int64_t n, const float* weights);
void quantize_q8_k(const float* src, void* dst, int64_t n);

// ---------------------------------------------------------------- scale search (scale_search.cpp)
// Rounding to nearest, ties to even, of |v| < 2^22, the way ggml does it (add 1.5 * 2^23 and
// read the mantissa): the K quantizers depend on this exact rounding.
inline int nearest_int(float v) {
  const float biased = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, sizeof(bits));
  return (bits & 0x007fffff) - 0x00400000;
}

// Symmetric quantization of n values to levels [-nmax, nmax - 1] (stored in L as l + nmax).
// rmse_type 0 takes the max-abs scale; 1 (weights x^2, or `weights` when given) refines it by a
// least-squares fit over 18 trial scales. Returns the scale. (ggml: make_qx_quants)
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* weights);

// Asymmetric quantization x ~ scale * L + min (min <= 0) with L in [0, nmax] by weighted
// least squares over nstep + 1 trial scales. Stores -min in *neg_min; returns the scale.
// (ggml: make_qkx2_quants; make_qkx3_quants is the imatrix variant with its guarded rounding
// and x^2 default weights.)
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* neg_min, uint8_t* Laux, float rmin, float rdelta, int nstep);
float make_qkx3_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* neg_min, uint8_t* Laux, float rmin, float rdelta, int nstep);

// Positive-only quantization of n values (scales or mins) to [0, nmax] under importance
// weights; returns the scale. (ggml: make_qp_quants)
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* weights);

}  // namespace anvil::quant::ref
