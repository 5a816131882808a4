// Device primitives for GGUF quantized blocks (layouts in quant/blocks.h): load a block's
// pieces with the widest access its alignment allows, unpack quants into packed int8 words for
// dp4a, and dequantize single values (bench-cuda-gemv's own dequantize + cuBLAS; the backend's
// bit-exact dequantizers are in cuda/dequant.cuh). Kernels compose these; a new quant type adds
// its primitives here.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace anvil::cuda::qblk {

constexpr int kQ4KBytes = 144;  // sizeof(BlockQ4_K)
constexpr int kQ5KBytes = 176;  // sizeof(BlockQ5_K)
constexpr int kQ6KBytes = 210;  // sizeof(BlockQ6_K)
constexpr int kQ8_0Bytes = 34;  // sizeof(BlockQ8_0)

// ---------------------------------------------------------------------------- loads
// Weights are read once per GEMV: the non-coherent read-only path, no reuse expected.
__device__ __forceinline__ uint4 load_16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

__device__ __forceinline__ uint32_t load_u16(const uint8_t* p) {
  return __ldg(reinterpret_cast<const unsigned short*>(p));
}

// 4 bytes from a 2-byte-aligned address (Q6_K and Q8_0 blocks are 210 and 34 bytes, so their
// fields are only 2-byte aligned in a row).
__device__ __forceinline__ uint32_t load_u32_a2(const uint8_t* p) { return load_u16(p) | (load_u16(p + 2) << 16); }

__device__ __forceinline__ float half_bits_to_float(uint32_t bits16) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16 & 0xffffu)));
}

__device__ __forceinline__ uint32_t byte_of(uint32_t word, int k) { return (word >> (8 * k)) & 0xffu; }

// ---------------------------------------------------------------------------- Q4_K
// header = the block's first 16 bytes: x = d | dmin << 16, y/z/w = scales[0..3], [4..7], [8..11].
// The 6-bit scales and mins of sub-blocks 2c and 2c + 1 (c = 64-element chunk, 0..3).
struct Q4KScales {
  uint32_t sc0, m0, sc1, m1;
};

__device__ __forceinline__ Q4KScales q4k_chunk_scales(const uint4& header, int c) {
  const int j = 2 * (c & 1);  // byte of the scale word: sub-block s = 2c lands at byte s % 4
  Q4KScales s;
  if (c < 2) {  // s < 4: sc = scales[s] & 63, m = scales[s + 4] & 63
    s.sc0 = byte_of(header.y, j) & 63;
    s.sc1 = byte_of(header.y, j + 1) & 63;
    s.m0 = byte_of(header.z, j) & 63;
    s.m1 = byte_of(header.z, j + 1) & 63;
  } else {  // s >= 4: low 4 bits in scales[s + 4], high 2 bits in the top of scales[s - 4] / [s]
    s.sc0 = (byte_of(header.w, j) & 15) | ((byte_of(header.y, j) >> 6) << 4);
    s.sc1 = (byte_of(header.w, j + 1) & 15) | ((byte_of(header.y, j + 1) >> 6) << 4);
    s.m0 = (byte_of(header.w, j) >> 4) | ((byte_of(header.z, j) >> 6) << 4);
    s.m1 = (byte_of(header.w, j + 1) >> 4) | ((byte_of(header.z, j + 1) >> 6) << 4);
  }
  return s;
}

// Low and high nibbles of a word of qs as 4 int8 lanes each.
__device__ __forceinline__ int low_nibbles(uint32_t w) { return int(w & 0x0f0f0f0fu); }
__device__ __forceinline__ int high_nibbles(uint32_t w) { return int((w >> 4) & 0x0f0f0f0fu); }

// One Q4_K value (element e of the block), for dequantizing.
__device__ __forceinline__ float q4k_value(const uint8_t* blk, int e) {
  const int chunk = e / 64, l = e % 64;
  const int s = 2 * chunk + (l >= 32);
  const uint8_t* sc = blk + 4;
  uint32_t scale, min;
  if (s < 4) {
    scale = sc[s] & 63;
    min = sc[s + 4] & 63;
  } else {
    scale = (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
    min = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
  }
  const uint8_t byte = blk[16 + chunk * 32 + (l % 32)];
  const uint32_t q = l < 32 ? (byte & 15) : (byte >> 4);
  const float d = half_bits_to_float(load_u16(blk)), dmin = half_bits_to_float(load_u16(blk + 2));
  return d * float(scale) * float(q) - dmin * float(min);
}

// ---------------------------------------------------------------------------- Q5_K
// d, dmin, scales[12] as Q4_K (the same 16-byte header), qh at 16 (32 B), qs at 48 (128 B, the
// Q4_K nibble order). Bit 4 of element 64c + l is bit 2c of qh[l], of 64c + 32 + l bit 2c + 1.
// Given 4 nibbles (as int8 lanes, from low_nibbles / high_nibbles) and the matching qh word,
// the 5-bit quants of sub-block s = 2c (+1) as int8 lanes (0..31).
__device__ __forceinline__ int q5k_with_high_bits(int nibbles, uint32_t qh_word, int s) {
  return nibbles | int(((qh_word >> s) & 0x01010101u) << 4);
}

// ---------------------------------------------------------------------------- Q6_K
// ql at 0 (128 B), qh at 128 (64 B), int8 scales at 192 (16 B), d at 208.
// Element 128h + 32g + l (h = half, g = 0..3, l = 0..31): low 4 bits from ql[64h + l] (g = 0, 2:
// low / high nibble) or ql[64h + 32 + l] (g = 1, 3), high 2 bits = bits 2g, 2g+1 of qh[32h + l].
// Given ql words A (ql[64h + l..]) and B (ql[64h + 32 + l..]) and the qh word H, the 4 quants of
// group g as int8 lanes, already shifted to q - 32 (in [-32, 31]).
template <int G>
__device__ __forceinline__ int q6k_group_word(uint32_t A, uint32_t B, uint32_t H) {
  uint32_t q;
  if constexpr (G == 0) q = (A & 0x0f0f0f0fu) | ((H << 4) & 0x30303030u);
  if constexpr (G == 1) q = (B & 0x0f0f0f0fu) | ((H << 2) & 0x30303030u);
  if constexpr (G == 2) q = ((A >> 4) & 0x0f0f0f0fu) | (H & 0x30303030u);
  if constexpr (G == 3) q = ((B >> 4) & 0x0f0f0f0fu) | ((H >> 2) & 0x30303030u);
  return int(__vsub4(q, 0x20202020u));  // bytewise q - 32; no lane borrows since q <= 63
}

__device__ __forceinline__ float q6k_value(const uint8_t* blk, int e) {
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const uint8_t ql = blk[64 * h + 32 * (g & 1) + l];
  const uint32_t lo = g < 2 ? (ql & 15) : (ql >> 4);
  const uint32_t hi = (blk[128 + 32 * h + l] >> (2 * g)) & 3;
  const int q = int(lo | (hi << 4)) - 32;
  const float d = half_bits_to_float(load_u16(blk + 208));
  return d * float(static_cast<int8_t>(blk[192 + e / 16])) * float(q);
}

// ---------------------------------------------------------------------------- Q8_0
// d at 0, 32 int8 quants at 2.
__device__ __forceinline__ float q8_0_value(const uint8_t* blk, int e) {
  return half_bits_to_float(load_u16(blk)) * float(static_cast<int8_t>(blk[2 + e]));
}

}  // namespace anvil::cuda::qblk
