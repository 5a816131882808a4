// Device dequantizers of GGUF rows (layouts in quant/blocks.h), one 8-value group at a time:
// the primitives behind cuda/dequant.cu (embedding rows, the dequantize + cuBLAS matmul). They
// are bit-exact with the CPU oracle (quant/dequantize.cpp, compiled with -ffp-contract=off):
// every product and sum is formed in the oracle's order with the explicitly rounded intrinsics
// (__fmul_rn / __fadd_rn / __fsub_rn), which nvcc never fuses into an FMA, so a Q4_K value is
// (d * sc) * q - dmin * m rounded exactly as the CPU rounds it.
//
// A group is 8 consecutive values of a row; a block type's group lies inside one block (every
// block holds a multiple of 8 values), so Block<T>::group(blk, g, v) decodes values
// 8g .. 8g + 7 of the block at `blk`. Plain types (F32, F16, BF16) have no blocks: the caller
// reads them element by element (rows need not be a multiple of 8 long).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "core/dtype.h"

namespace anvil::cuda::dequant {

constexpr int kGroup = 8;  // values per thread of the dequantize kernels

// ---------------------------------------------------------------------------- scalars
// f16 bits -> f32 exactly as core/fp16.h's fp16_to_fp32: the hardware conversion is exact for
// every finite value (subnormals included); NaN payloads are rebuilt by hand so they match too.
__device__ __forceinline__ float f16_bits_to_f32(uint32_t h) {
  h &= 0xffffu;
  if (((h >> 10) & 0x1fu) == 0x1fu) return __uint_as_float(((h & 0x8000u) << 16) | 0x7f800000u | ((h & 0x3ffu) << 13));
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
}

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float((h & 0xffffu) << 16); }

// Little-endian loads from byte addresses of any alignment (blocks of 18, 22, 34, 210 bytes
// leave fields at odd or 2-byte offsets). Dequantizing is bound by its f16/f32 writes, not by
// these loads, and neighbouring threads read the same block from L1.
__device__ __forceinline__ uint32_t u16_at(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
__device__ __forceinline__ uint32_t u32_at(const uint8_t* p) { return u16_at(p) | u16_at(p + 2) << 16; }

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K / Q5_K block (quant::unpack_scale_min_k4).
__device__ __forceinline__ void k4_scale_min(const uint8_t* scales, int s, uint32_t& sc, uint32_t& m) {
  if (s < 4) {
    sc = scales[s] & 63u;
    m = scales[s + 4] & 63u;
  } else {
    sc = (scales[s + 4] & 15u) | ((uint32_t(scales[s - 4]) >> 6) << 4);
    m = (uint32_t(scales[s + 4]) >> 4) | ((uint32_t(scales[s]) >> 6) << 4);
  }
}

// ---------------------------------------------------------------------------- block types
template <DType T>
struct Block;

// Q4_0: d, qs[16]; x = (q - 8) * d; element j < 16 is the low nibble of qs[j], j >= 16 the high
// nibble of qs[j - 16].
template <>
struct Block<DType::Q4_0> {
  static constexpr int kValues = 32, kBytes = 18;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const float d = f16_bits_to_f32(u16_at(blk));
    const int e0 = 8 * g;
    const uint8_t* qs = blk + 2 + (e0 & 15);
    const int shift = e0 < 16 ? 0 : 4;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) v[k] = __fmul_rn(float(int((qs[k] >> shift) & 15u) - 8), d);
  }
};

// Q4_1: d, m, qs[16]; x = q * d + m.
template <>
struct Block<DType::Q4_1> {
  static constexpr int kValues = 32, kBytes = 20;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const float d = f16_bits_to_f32(u16_at(blk)), m = f16_bits_to_f32(u16_at(blk + 2));
    const int e0 = 8 * g;
    const uint8_t* qs = blk + 4 + (e0 & 15);
    const int shift = e0 < 16 ? 0 : 4;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) v[k] = __fadd_rn(__fmul_rn(float((qs[k] >> shift) & 15u), d), m);
  }
};

// Q5_0: d, qh (LE uint32: bit e is bit 4 of element e), qs[16]; x = (q - 16) * d.
template <>
struct Block<DType::Q5_0> {
  static constexpr int kValues = 32, kBytes = 22;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const float d = f16_bits_to_f32(u16_at(blk));
    const uint32_t qh = u32_at(blk + 2);
    const int e0 = 8 * g;
    const uint8_t* qs = blk + 6 + (e0 & 15);
    const int shift = e0 < 16 ? 0 : 4;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) {
      const uint32_t q = ((qs[k] >> shift) & 15u) | (((qh >> (e0 + k)) & 1u) << 4);
      v[k] = __fmul_rn(float(int(q) - 16), d);
    }
  }
};

// Q5_1: d, m, qh, qs[16]; x = q * d + m.
template <>
struct Block<DType::Q5_1> {
  static constexpr int kValues = 32, kBytes = 24;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const float d = f16_bits_to_f32(u16_at(blk)), m = f16_bits_to_f32(u16_at(blk + 2));
    const uint32_t qh = u32_at(blk + 4);
    const int e0 = 8 * g;
    const uint8_t* qs = blk + 8 + (e0 & 15);
    const int shift = e0 < 16 ? 0 : 4;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) {
      const uint32_t q = ((qs[k] >> shift) & 15u) | (((qh >> (e0 + k)) & 1u) << 4);
      v[k] = __fadd_rn(__fmul_rn(float(q), d), m);
    }
  }
};

// Q8_0: d, int8 qs[32]; x = q * d.
template <>
struct Block<DType::Q8_0> {
  static constexpr int kValues = 32, kBytes = 34;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const float d = f16_bits_to_f32(u16_at(blk));
    const uint8_t* qs = blk + 2 + 8 * g;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) v[k] = __fmul_rn(float(static_cast<int8_t>(qs[k])), d);
  }
};

// Q4_K: d, dmin, scales[12], qs[128]. Group g: chunk c = g / 8 (64 values), sub-block
// s = 2c + (g % 8 >= 4); bytes qs[32c + 8 (g % 4) ..], low nibbles for the chunk's first 32
// values, high for the rest. x = (d * sc) * q - dmin * m.
template <>
struct Block<DType::Q4_K> {
  static constexpr int kValues = 256, kBytes = 144;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const int c = g / 8, hi = (g % 8) / 4;
    uint32_t sc, m;
    k4_scale_min(blk + 4, 2 * c + hi, sc, m);
    const float dsc = __fmul_rn(f16_bits_to_f32(u16_at(blk)), float(sc));
    const float dm = __fmul_rn(f16_bits_to_f32(u16_at(blk + 2)), float(m));
    const uint8_t* qs = blk + 16 + 32 * c + 8 * (g % 4);
    const int shift = 4 * hi;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) v[k] = __fsub_rn(__fmul_rn(dsc, float((qs[k] >> shift) & 15u)), dm);
  }
};

// Q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K plus bit 4 = bit s of qh[l].
template <>
struct Block<DType::Q5_K> {
  static constexpr int kValues = 256, kBytes = 176;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const int c = g / 8, hi = (g % 8) / 4, s = 2 * c + hi;
    uint32_t sc, m;
    k4_scale_min(blk + 4, s, sc, m);
    const float dsc = __fmul_rn(f16_bits_to_f32(u16_at(blk)), float(sc));
    const float dm = __fmul_rn(f16_bits_to_f32(u16_at(blk + 2)), float(m));
    const int l0 = 8 * (g % 4);
    const uint8_t* qh = blk + 16 + l0;
    const uint8_t* qs = blk + 48 + 32 * c + l0;
    const int shift = 4 * hi;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) {
      const uint32_t q = ((qs[k] >> shift) & 15u) | (((uint32_t(qh[k]) >> s) & 1u) << 4);
      v[k] = __fsub_rn(__fmul_rn(dsc, float(q)), dm);
    }
  }
};

// Q6_K: ql[128], qh[64], int8 scales[16], d. Element e = 128h + 32j + l: low 4 bits from
// ql[64h + 32 (j & 1) + l] (low nibble for j < 2), high 2 bits = bits 2j, 2j + 1 of
// qh[32h + l]; scale scales[e / 16]. x = (d * sc) * (q - 32).
template <>
struct Block<DType::Q6_K> {
  static constexpr int kValues = 256, kBytes = 210;
  __device__ static void group(const uint8_t* blk, int g, float v[kGroup]) {
    const int e0 = 8 * g, h = e0 / 128, j = (e0 % 128) / 32, l0 = e0 % 32;
    const float dsc = __fmul_rn(f16_bits_to_f32(u16_at(blk + 208)), float(static_cast<int8_t>(blk[192 + e0 / 16])));
    const uint8_t* ql = blk + 64 * h + 32 * (j & 1) + l0;
    const uint8_t* qh = blk + 128 + 32 * h + l0;
    const int lo_shift = j < 2 ? 0 : 4;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) {
      const uint32_t q = ((ql[k] >> lo_shift) & 15u) | (((uint32_t(qh[k]) >> (2 * j)) & 3u) << 4);
      v[k] = __fmul_rn(dsc, float(int(q) - 32));
    }
  }
};

// ---------------------------------------------------------------------------- plain types
// Element e of a row of F32 / F16 / BF16.
template <DType T>
__device__ __forceinline__ float plain_value(const uint8_t* row, int64_t e) {
  if constexpr (T == DType::F32) return reinterpret_cast<const float*>(row)[e];
  if constexpr (T == DType::F16) return f16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[e]);
  if constexpr (T == DType::BF16) return bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(row)[e]);
  return 0.0f;
}

template <DType T>
constexpr bool is_plain = T == DType::F32 || T == DType::F16 || T == DType::BF16;

}  // namespace anvil::cuda::dequant
