// The decode candidate: activations quantized to Q8_K, integer dot products with Q4_K / Q5_K /
// Q6_K / Q8_0 weight rows (AVX2 and AVX-512BW on x86-64 chosen at run time, portable scalar
// elsewhere). No -march flag is needed: the x86 kernels are compiled per function with
// __attribute__((target)) and called only when __builtin_cpu_supports says the CPU has them.
//
// Integer ranges (why the 16-bit maddubs steps cannot saturate): weights enter maddubs as
// unsigned q (Q4_K <= 15, Q5_K <= 31, Q6_K <= 63 before its -32 offset, |Q8_0| <= 128 by the
// sign trick) and activations as |q8| <= 127, so a pair sum is at most 2 * 63 * 127 = 16002
// (Q8_0: 2 * 128 * 127 = 32512) < 32767. Per super-block int32 sums stay below 2^28.
#include "cpu/matmul_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ANVIL_X86 1
#define ANVIL_AVX2 __attribute__((target("avx2,fma")))
#define ANVIL_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl")))
#endif

namespace anvil::cpu {

using quant::BlockQ4_K;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::BlockQ8_K;
using quant::kQK_K;

namespace {

// ---------------------------------------------------------------- shared per-super-block math

struct K4Scales {
  uint8_t sc[8], m[8];
};

// The eight 6-bit scales and mins of a Q4_K / Q5_K block (packing in quant/blocks.h), four at
// a time in 32-bit words: this runs once per 256 weights, so scalar byte-by-byte unpacking
// would cost as much as the vector dot product itself.
inline K4Scales unpack_k4(const uint8_t* scales) {
  uint32_t a, b, c;
  std::memcpy(&a, scales, 4);
  std::memcpy(&b, scales + 4, 4);
  std::memcpy(&c, scales + 8, 4);
  const uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
  const uint32_t sc_hi = (c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4);
  K4Scales s;
  std::memcpy(s.sc, &sc_lo, 4);
  std::memcpy(s.sc + 4, &sc_hi, 4);
  std::memcpy(s.m, &m_lo, 4);
  std::memcpy(s.m + 4, &m_hi, 4);
  return s;
}

// Sum of the sub-block mins times the activation sums (the -dmin * m part of Q4_K / Q5_K).
inline int32_t k4_min_sum(const uint8_t* m, const int16_t* bsums) {
  int32_t s = 0;
  for (int j = 0; j < 8; ++j) s += int32_t(m[j]) * (int32_t(bsums[2 * j]) + int32_t(bsums[2 * j + 1]));
  return s;
}

// The float epilogues, which add one super-block to the row's accumulator. Every ISA variant
// calls them with identical integers in the same super-block order, and every multiply-add is
// an explicit fmaf (exactly rounded everywhere), so the compiler has nothing left to contract
// differently inside an FMA-enabled target function: the variants are bit-identical.
inline float k4_accumulate(float acc, uint16_t d, uint16_t dmin, float dx, int32_t isum, int32_t msum) {
  const float v = std::fma(-fp16_to_fp32(dmin), float(msum), fp16_to_fp32(d) * float(isum));
  return std::fma(dx, v, acc);
}

// 32 * sum_g scale_g * bsum_g: the q - 32 offset of Q6_K moved out of the inner loop.
inline int32_t q6k_offset_sum(const int8_t* scales, const int16_t* bsums) {
  int32_t s = 0;
  for (int g = 0; g < 16; ++g) s += int32_t(scales[g]) * int32_t(bsums[g]);
  return 32 * s;
}

inline float q6k_accumulate(float acc, uint16_t d, float dx, int32_t isum) {
  return std::fma(dx, fp16_to_fp32(d) * float(isum), acc);
}

// Eight Q8_0 blocks share one Q8_K super-block of activations.
inline float q8_0_accumulate(float acc, const BlockQ8_0* w, float dx, const int32_t* dots) {
  float s = 0;
  for (int j = 0; j < 8; ++j) s = std::fma(fp16_to_fp32(w[j].d), float(dots[j]), s);
  return std::fma(dx, s, acc);
}

// ---------------------------------------------------------------- portable scalar kernels

float dot_q4k_scalar(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ4_K*>(wv);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const K4Scales s = unpack_k4(w[b].scales);
    int32_t isum = 0;
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = w[b].qs + 32 * (j / 2);
      const int shift = 4 * (j & 1);
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) dot += int32_t((q[l] >> shift) & 15) * x[b].qs[32 * j + l];
      isum += int32_t(s.sc[j]) * dot;
    }
    acc = k4_accumulate(acc, w[b].d, w[b].dmin, x[b].d, isum, k4_min_sum(s.m, x[b].bsums));
  }
  return acc;
}

float dot_q5k_scalar(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ5_K*>(wv);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const K4Scales s = unpack_k4(w[b].scales);
    int32_t isum = 0;
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = w[b].qs + 32 * (j / 2);
      const int shift = 4 * (j & 1);
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) {
        const int32_t v = ((q[l] >> shift) & 15) | (((w[b].qh[l] >> j) & 1) << 4);
        dot += v * x[b].qs[32 * j + l];
      }
      isum += int32_t(s.sc[j]) * dot;
    }
    acc = k4_accumulate(acc, w[b].d, w[b].dmin, x[b].d, isum, k4_min_sum(s.m, x[b].bsums));
  }
  return acc;
}

float dot_q6k_scalar(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ6_K*>(wv);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      for (int c = 0; c < 4; ++c) {
        for (int g = 0; g < 2; ++g) {
          int32_t dot = 0;
          for (int l = 16 * g; l < 16 * g + 16; ++l) {
            const int low = (c & 1) ? ql[l + 32] : ql[l];
            const int32_t v = ((c < 2 ? low : low >> 4) & 15) | (((qh[l] >> (2 * c)) & 3) << 4);
            dot += v * x[b].qs[128 * h + 32 * c + l];
          }
          isum += int32_t(w[b].scales[8 * h + 2 * c + g]) * dot;
        }
      }
    }
    acc = q6k_accumulate(acc, w[b].d, x[b].d, isum - q6k_offset_sum(w[b].scales, x[b].bsums));
  }
  return acc;
}

float dot_q8_0_scalar(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ8_0*>(wv);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t dots[8];
    for (int j = 0; j < 8; ++j) {
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) dot += int32_t(w[8 * b + j].qs[l]) * x[b].qs[32 * j + l];
      dots[j] = dot;
    }
    acc = q8_0_accumulate(acc, w + 8 * b, x[b].d, dots);
  }
  return acc;
}

#ifdef ANVIL_X86
// ---------------------------------------------------------------- AVX2

ANVIL_AVX2 inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

ANVIL_AVX2 inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Lane sums of four vectors: {sum(a), sum(b), sum(c), sum(d)}.
ANVIL_AVX2 inline __m128i hsum4_i32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

// k4_min_sum with vectors: sum_g m[g / 2] * bsums[g] as one madd over the 16 bsums.
ANVIL_AVX2 inline int32_t k4_min_sum_avx2(const uint8_t* m, const int16_t* bsums) {
  uint64_t m8;
  std::memcpy(&m8, m, 8);
  const __m128i mv = _mm_cvtsi64_si128(int64_t(m8));
  const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mv, mv));  // m0 m0 m1 m1 ... m7 m7
  return hsum_i32(_mm256_madd_epi16(m16, load256(bsums)));
}

// 32 unsigned weights x 32 signed activations -> 8 int32 partial sums, times `scale`.
ANVIL_AVX2 inline __m256i scaled_dot32(__m256i q, __m256i x, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), scale16);
}

ANVIL_AVX2 float dot_q4k_avx2(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ4_K*>(wv);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const K4Scales s = unpack_k4(w[b].scales);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load256(w[b].qs + 32 * c);
      const __m256i lo = _mm256_and_si256(q, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      isum = _mm256_add_epi32(isum, scaled_dot32(lo, load256(x[b].qs + 64 * c), _mm256_set1_epi16(s.sc[2 * c])));
      isum = _mm256_add_epi32(isum,
                              scaled_dot32(hi, load256(x[b].qs + 64 * c + 32), _mm256_set1_epi16(s.sc[2 * c + 1])));
    }
    acc = k4_accumulate(acc, w[b].d, w[b].dmin, x[b].d, hsum_i32(isum), k4_min_sum_avx2(s.m, x[b].bsums));
  }
  return acc;
}

ANVIL_AVX2 float dot_q5k_avx2(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ5_K*>(wv);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i one = _mm256_set1_epi8(1);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const K4Scales s = unpack_k4(w[b].scales);
    const __m256i qh = load256(w[b].qh);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load256(w[b].qs + 32 * c);
      // bit 2c (low nibbles) and 2c + 1 (high nibbles) of each qh byte, moved to bit 4
      const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one), 4);
      const __m256i hh =
          _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one), 4);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), hl);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hh);
      isum = _mm256_add_epi32(isum, scaled_dot32(lo, load256(x[b].qs + 64 * c), _mm256_set1_epi16(s.sc[2 * c])));
      isum = _mm256_add_epi32(isum,
                              scaled_dot32(hi, load256(x[b].qs + 64 * c + 32), _mm256_set1_epi16(s.sc[2 * c + 1])));
    }
    acc = k4_accumulate(acc, w[b].d, w[b].dmin, x[b].d, hsum_i32(isum), k4_min_sum_avx2(s.m, x[b].bsums));
  }
  return acc;
}

// The four 32-element chunks of one 128-element half of a Q6_K block as unsigned 6-bit values.
struct Q6Chunks {
  __m256i c[4];
};

ANVIL_AVX2 inline Q6Chunks q6k_unpack_half(const uint8_t* ql, const uint8_t* qh_p) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m30 = _mm256_set1_epi8(0x30);
  const __m256i ql0 = load256(ql), ql1 = load256(ql + 32), qh = load256(qh_p);
  Q6Chunks r;
  r.c[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
  r.c[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
  r.c[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
  r.c[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
  return r;
}

ANVIL_AVX2 float dot_q6k_avx2(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ6_K*>(wv);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    __m256i isum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const Q6Chunks q = q6k_unpack_half(w[b].ql + 64 * h, w[b].qh + 32 * h);
      for (int c = 0; c < 4; ++c) {
        // int16 lanes 0-7 are elements 0-15 of the chunk (scale group 2c), lanes 8-15 group 2c + 1
        const int8_t* sc = w[b].scales + 8 * h + 2 * c;
        const __m256i scale = _mm256_setr_m128i(_mm_set1_epi16(sc[0]), _mm_set1_epi16(sc[1]));
        isum = _mm256_add_epi32(isum, scaled_dot32(q.c[c], load256(x[b].qs + 128 * h + 32 * c), scale));
      }
    }
    acc = q6k_accumulate(acc, w[b].d, x[b].d, hsum_i32(isum) - q6k_offset_sum(w[b].scales, x[b].bsums));
  }
  return acc;
}

// Signed x signed 32-element dot as 8 int32 partial sums: maddubs needs one unsigned operand,
// so it takes |w| and x with w's sign.
ANVIL_AVX2 inline __m256i dot32_i8(__m256i w, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)), _mm256_set1_epi16(1));
}

ANVIL_AVX2 float dot_q8_0_avx2(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ8_0*>(wv);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ8_0* wb = w + 8 * b;
    __m256i p[8];
    for (int j = 0; j < 8; ++j) p[j] = dot32_i8(load256(wb[j].qs), load256(x[b].qs + 32 * j));
    alignas(16) int32_t dots[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(dots), hsum4_i32(p[0], p[1], p[2], p[3]));
    _mm_store_si128(reinterpret_cast<__m128i*>(dots + 4), hsum4_i32(p[4], p[5], p[6], p[7]));
    acc = q8_0_accumulate(acc, wb, x[b].d, dots);
  }
  return acc;
}

// ---------------------------------------------------------------- AVX-512 (F + BW + VL)
// Two 32-element chunks per 512-bit register: half the instructions of the AVX2 kernels.

ANVIL_AVX512 inline __m512i join256(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1);
}

ANVIL_AVX512 inline __m512i scale_pair(int lo, int hi) {
  return join256(_mm256_set1_epi16(int16_t(lo)), _mm256_set1_epi16(int16_t(hi)));
}

ANVIL_AVX512 inline __m512i scaled_dot64(__m512i q, __m512i x, __m512i scale16) {
  return _mm512_madd_epi16(_mm512_maddubs_epi16(q, x), scale16);
}

ANVIL_AVX512 float dot_q4k_avx512(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ4_K*>(wv);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const K4Scales s = unpack_k4(w[b].scales);
    const int8_t* xq = x[b].qs;
    __m512i isum = _mm512_setzero_si512();
    for (int k = 0; k < 2; ++k) {  // chunks 2k (lower 256 bits) and 2k + 1 (upper)
      const __m512i q = _mm512_loadu_si512(w[b].qs + 64 * k);
      const __m512i lo = _mm512_and_si512(q, m4);  // sub-blocks 4k, 4k + 2
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);  // sub-blocks 4k + 1, 4k + 3
      const __m512i xlo = join256(load256(xq + 128 * k), load256(xq + 128 * k + 64));
      const __m512i xhi = join256(load256(xq + 128 * k + 32), load256(xq + 128 * k + 96));
      isum = _mm512_add_epi32(isum, scaled_dot64(lo, xlo, scale_pair(s.sc[4 * k], s.sc[4 * k + 2])));
      isum = _mm512_add_epi32(isum, scaled_dot64(hi, xhi, scale_pair(s.sc[4 * k + 1], s.sc[4 * k + 3])));
    }
    acc = k4_accumulate(acc, w[b].d, w[b].dmin, x[b].d, _mm512_reduce_add_epi32(isum), k4_min_sum_avx2(s.m, x[b].bsums));
  }
  return acc;
}

ANVIL_AVX512 float dot_q5k_avx512(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ5_K*>(wv);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i one = _mm512_set1_epi8(1);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const K4Scales s = unpack_k4(w[b].scales);
    const int8_t* xq = x[b].qs;
    const __m512i qh = _mm512_broadcast_i64x4(load256(w[b].qh));
    __m512i isum = _mm512_setzero_si512();
    for (int k = 0; k < 2; ++k) {
      // lower half is chunk c = 2k (qh bits 4k, 4k + 1), upper half chunk 2k + 1 (bits 4k + 2, 4k + 3)
      const __m512i shift_lo = join256(_mm256_set1_epi16(int16_t(4 * k)), _mm256_set1_epi16(int16_t(4 * k + 2)));
      const __m512i shift_hi = _mm512_add_epi16(shift_lo, _mm512_set1_epi16(1));
      const __m512i hl = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift_lo), one), 4);
      const __m512i hh = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift_hi), one), 4);
      const __m512i q = _mm512_loadu_si512(w[b].qs + 64 * k);
      const __m512i lo = _mm512_or_si512(_mm512_and_si512(q, m4), hl);
      const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), hh);
      const __m512i xlo = join256(load256(xq + 128 * k), load256(xq + 128 * k + 64));
      const __m512i xhi = join256(load256(xq + 128 * k + 32), load256(xq + 128 * k + 96));
      isum = _mm512_add_epi32(isum, scaled_dot64(lo, xlo, scale_pair(s.sc[4 * k], s.sc[4 * k + 2])));
      isum = _mm512_add_epi32(isum, scaled_dot64(hi, xhi, scale_pair(s.sc[4 * k + 1], s.sc[4 * k + 3])));
    }
    acc = k4_accumulate(acc, w[b].d, w[b].dmin, x[b].d, _mm512_reduce_add_epi32(isum), k4_min_sum_avx2(s.m, x[b].bsums));
  }
  return acc;
}

ANVIL_AVX512 float dot_q6k_avx512(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ6_K*>(wv);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  // int16 lane i of a 64-element pair of chunks belongs to scale group i / 8
  const __m512i group_of_lane = _mm512_srli_epi16(
      _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                       6, 5, 4, 3, 2, 1, 0),
      3);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i scales16 = _mm512_castsi256_si512(
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales))));
    __m512i isum = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(w[b].ql + 64 * h);  // chunk 0 low nibbles | chunk 1
      const __m512i qh = _mm512_broadcast_i64x4(load256(w[b].qh + 32 * h));
      // chunks 0 | 1: qh bits 0-1 | 2-3 to bits 4-5; chunks 2 | 3: qh bits 4-5 | 6-7
      const __m512i h01 = _mm512_mask_blend_epi64(0xF0, _mm512_slli_epi16(qh, 4), _mm512_slli_epi16(qh, 2));
      const __m512i h23 = _mm512_mask_blend_epi64(0xF0, qh, _mm512_srli_epi16(qh, 2));
      const __m512i c01 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(h01, m30));
      const __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(h23, m30));
      const __m512i s01 = _mm512_permutexvar_epi16(_mm512_add_epi16(group_of_lane, _mm512_set1_epi16(int16_t(8 * h))),
                                                   scales16);
      const __m512i s23 = _mm512_permutexvar_epi16(
          _mm512_add_epi16(group_of_lane, _mm512_set1_epi16(int16_t(8 * h + 4))), scales16);
      isum = _mm512_add_epi32(isum, scaled_dot64(c01, _mm512_loadu_si512(x[b].qs + 128 * h), s01));
      isum = _mm512_add_epi32(isum, scaled_dot64(c23, _mm512_loadu_si512(x[b].qs + 128 * h + 64), s23));
    }
    acc = q6k_accumulate(acc, w[b].d, x[b].d, _mm512_reduce_add_epi32(isum) - q6k_offset_sum(w[b].scales, x[b].bsums));
  }
  return acc;
}

ANVIL_AVX512 float dot_q8_0_avx512(const void* wv, const BlockQ8_K* x, int64_t nb) {
  const auto* w = static_cast<const BlockQ8_0*>(wv);
  const __m512i ones = _mm512_set1_epi16(1);
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ8_0* wb = w + 8 * b;
    __m256i p[8];
    for (int j = 0; j < 8; j += 2) {
      const __m512i wq = join256(load256(wb[j].qs), load256(wb[j + 1].qs));
      const __m512i xq = _mm512_loadu_si512(x[b].qs + 32 * j);
      // x with w's sign (there is no 512-bit vpsignb): negate where w < 0; where w == 0 the
      // product is 0 anyway since |w| = 0
      const __m512i xs = _mm512_mask_sub_epi8(xq, _mm512_movepi8_mask(wq), _mm512_setzero_si512(), xq);
      const __m512i d = _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(wq), xs), ones);
      p[j] = _mm512_castsi512_si256(d);
      p[j + 1] = _mm512_extracti64x4_epi64(d, 1);
    }
    alignas(16) int32_t dots[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(dots), hsum4_i32(p[0], p[1], p[2], p[3]));
    _mm_store_si128(reinterpret_cast<__m128i*>(dots + 4), hsum4_i32(p[4], p[5], p[6], p[7]));
    acc = q8_0_accumulate(acc, wb, x[b].d, dots);
  }
  return acc;
}
#endif  // ANVIL_X86

// Token tile of the GEMM loop: the Q8_K activations of this many tokens (32 x 10 x 292 B =
// 93 KB at in = 2560) stay in L2 while a thread's weight rows pass over them.
constexpr int64_t kTokenTile = 32;

}  // namespace

void quantize_row_q8k(const float* x, BlockQ8_K* out, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* xb = x + b * kQK_K;
    BlockQ8_K& o = out[b];
    float amax = 0;
    for (int i = 0; i < kQK_K; ++i) amax = std::max(amax, std::fabs(xb[i]));
    if (!(amax > 0) || !std::isfinite(amax)) {
      // zeros stay zero; a non-finite input poisons the block so the output shows it
      o.d = amax > 0 ? NAN : 0.f;
      std::fill(std::begin(o.qs), std::end(o.qs), int8_t(0));
      std::fill(std::begin(o.bsums), std::end(o.bsums), int16_t(0));
      continue;
    }
    const float iscale = 127.f / amax;
    for (int i = 0; i < kQK_K; ++i)
      o.qs[i] = int8_t(std::clamp(int(std::nearbyint(xb[i] * iscale)), -127, 127));
    for (int g = 0; g < kQK_K / 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += o.qs[16 * g + i];
      o.bsums[g] = int16_t(s);
    }
    o.d = 1.f / iscale;
  }
}

Q8KDotFn q8k_dot_kernel(DType t, SimdLevel level) {
  switch (level) {
    case SimdLevel::scalar:
      switch (t) {
        case DType::Q4_K: return dot_q4k_scalar;
        case DType::Q5_K: return dot_q5k_scalar;
        case DType::Q6_K: return dot_q6k_scalar;
        case DType::Q8_0: return dot_q8_0_scalar;
        default: return nullptr;
      }
#ifdef ANVIL_X86
    case SimdLevel::avx2:
      switch (t) {
        case DType::Q4_K: return dot_q4k_avx2;
        case DType::Q5_K: return dot_q5k_avx2;
        case DType::Q6_K: return dot_q6k_avx2;
        case DType::Q8_0: return dot_q8_0_avx2;
        default: return nullptr;
      }
    case SimdLevel::avx512:
      switch (t) {
        case DType::Q4_K: return dot_q4k_avx512;
        case DType::Q5_K: return dot_q5k_avx512;
        case DType::Q6_K: return dot_q6k_avx512;
        case DType::Q8_0: return dot_q8_0_avx512;
        default: return nullptr;
      }
#endif
    default:
      return nullptr;
  }
}

const char* simd_level_name(SimdLevel l) {
  switch (l) {
    case SimdLevel::scalar: return "scalar";
    case SimdLevel::avx2: return "avx2";
    case SimdLevel::avx512: return "avx512";
  }
  return "?";
}

bool simd_level_available(SimdLevel l) {
  switch (l) {
    case SimdLevel::scalar: return true;
#ifdef ANVIL_X86
    case SimdLevel::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdLevel::avx512:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    default:
      return false;
  }
}

bool matmul_q8k_supports(const MatmulArgs& a) {
  return q8k_dot_kernel(a.w->type, SimdLevel::scalar) != nullptr && a.w->cols % kQK_K == 0;
}

Status matmul_q8k(const MatmulArgs& a, SimdLevel level) {
  const Tensor& w = *a.w;
  const Tensor& x = *a.x;
  const Q8KDotFn dot = q8k_dot_kernel(w.type, level);
  if (!dot || w.cols % kQK_K != 0 || !simd_level_available(level))
    return make_error(StatusCode::unsupported, "matmul_q8k: no ", simd_level_name(level), " kernel for ",
                      dtype_name(w.type), " with ", w.cols, " columns on this CPU");
  const int64_t nb = w.cols / kQK_K, n = x.rows;
  std::vector<BlockQ8_K> xq(size_t(n * nb));
  a.pool->parallel_for(n, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) quantize_row_q8k(x.row<const float>(t), xq.data() + t * nb, w.cols);
  });
  a.pool->parallel_for(w.rows, 8, [&](int64_t o0, int64_t o1) {
    for (int64_t t0 = 0; t0 < n; t0 += kTokenTile) {
      const int64_t t1 = std::min(n, t0 + kTokenTile);
      for (int64_t o = o0; o < o1; ++o) {
        const void* wrow = w.row<const uint8_t>(o);
        for (int64_t t = t0; t < t1; ++t) a.y.row<float>(t)[o] = dot(wrow, xq.data() + t * nb, nb);
      }
    }
  });
  return Status::ok();
}

}  // namespace anvil::cpu
