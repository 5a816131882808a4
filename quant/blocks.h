// Packed block layouts of the GGML quantized formats, byte for byte as they sit in a GGUF file
// (little-endian; f16 scales stored as raw IEEE half bits). Backends that read quantized
// weights directly include this header; the static_asserts pin every size to the GGML one.
#pragma once

#include <cstdint>

namespace anvil::quant {

constexpr int kQK32 = 32;   // elements per block of the legacy formats
constexpr int kQK_K = 256;  // elements per super-block of the K formats
constexpr int kKScaleSize = 12;  // packed 6-bit scales + mins of Q4_K / Q5_K

// Q4_0: x = d * (q - 8), q in [0, 15]. Element j is in qs[j] low nibble, j + 16 in its high nibble.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK32 / 2];
};

// Q4_1: x = d * q + m, q in [0, 15]; nibble order as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK32 / 2];
};

// Q5_0: x = d * (q - 16), q in [0, 31]; low 4 bits as Q4_0, bit 4 of element j is bit j of qh
// (a little-endian uint32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK32 / 2];
};

// Q5_1: x = d * q + m, q in [0, 31]; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK32 / 2];
};

// Q8_0: x = d * q, q in [-127, 127] (int8).
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK32];
};

// Q4_K: 8 sub-blocks of 32; x = d * sc[s] * q - dmin * m[s], q in [0, 15], sc/m 6-bit.
// scales[12] packing (sub-block s): s < 4: sc = scales[s] & 63, m = scales[s + 4] & 63;
// s >= 4: sc = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4,
//         m  = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4.
// qs: for each 64-element chunk c, 32 bytes; element c*64 + l is the low nibble of byte l,
// element c*64 + 32 + l the high nibble.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};

// Q5_K: as Q4_K with q in [0, 31]; bit 4 of element c*64 + l is bit 2c of qh[l], of element
// c*64 + 32 + l bit 2c + 1.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};

// Q6_K: 16 sub-blocks of 16; x = d * scales[s] * (q - 32), q in [0, 63], scales int8.
// Per 128-element half h (ql += 64h, qh += 32h), for l in [0, 32):
//   element 128h + l      : ql[l] & 15      | (qh[l] >> 0 & 3) << 4
//   element 128h + 32 + l : ql[l + 32] & 15 | (qh[l] >> 2 & 3) << 4
//   element 128h + 64 + l : ql[l] >> 4      | (qh[l] >> 4 & 3) << 4
//   element 128h + 96 + l : ql[l + 32] >> 4 | (qh[l] >> 6 & 3) << 4
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};

// Q8_K (activations for K-quant dot products): x = d * q, d an f32; bsums[g] is the sum of
// the 16 quants of group g.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(alignof(BlockQ4_0) == 2 && alignof(BlockQ6_K) == 2 && alignof(BlockQ8_K) == 4);

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K / Q5_K block.
inline void unpack_scale_min_k4(int s, const uint8_t* scales, uint8_t& sc, uint8_t& m) {
  if (s < 4) {
    sc = scales[s] & 63;
    m = scales[s + 4] & 63;
  } else {
    sc = uint8_t((scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4));
    m = uint8_t((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4));
  }
}

}  // namespace anvil::quant
