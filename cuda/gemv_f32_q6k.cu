// Q6_K exact GEMV: the slot policy for cuda/gemv_f32_kernel.cuh.
//
// A 210-byte Q6_K block: ql (128 B of low nibbles), qh (64 B of 2-bit highs), 16 int8 scales
// (one per 16 values), f16 d. Slot p (0..7) is cuda/gemv_q6k.cu's: half h = p / 4, positions
// l = 8 (p % 4) + 0..7 of that half's four 32-value groups g, i.e. 32 values from 8 bytes of
// ql[64h + l], 8 of ql[64h + 32 + l] and 8 of qh[32h + l]. Piece g is group g's 8 values
// 128h + 32g + l, which lie in one scale sub-block (8h + 2g + l / 16). Blocks are 210 bytes, so
// a row's fields are only 2-byte aligned: 16-bit loads (the same sectors as wider loads).
//
// Pieces are the exact quants q - 32 (the 6-bit q in a byte, 2^23 + q by a byte permute, minus
// (2^23 + 32) exactly); the skeleton multiplies each piece's dot product by d * scale, the
// factor quant/dequantize.cpp forms ((d * scale) * (q - 32)).
#include "cuda/gemv_f32_kernel.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_f32_detail {
namespace {

// The 4 quants (0..63) of group G as bytes, from the ql words A (ql[64h + l..]) and
// B (ql[64h + 32 + l..]) and the qh word H (cuda/quant_blocks.cuh's q6k_group_word without its
// shift to q - 32).
template <int G>
__device__ __forceinline__ uint32_t q6k_group_bytes(uint32_t A, uint32_t B, uint32_t H) {
  if constexpr (G == 0) return (A & 0x0f0f0f0fu) | ((H << 4) & 0x30303030u);
  if constexpr (G == 1) return (B & 0x0f0f0f0fu) | ((H << 2) & 0x30303030u);
  if constexpr (G == 2) return ((A >> 4) & 0x0f0f0f0fu) | (H & 0x30303030u);
  return ((B >> 4) & 0x0f0f0f0fu) | ((H >> 2) & 0x30303030u);
}

struct Q6KSlot {
  static constexpr int kSlots = 8;
  static constexpr int kBytes = qblk::kQ6KBytes;
  static constexpr int kValues = 256;
  static constexpr int kPieces = 4;
  static constexpr bool kScaleAfterDot = true;

  struct Raw {
    uint32_t a[2], b[2], h[2];  // ql[64h + l..], ql[64h + 32 + l..], qh[32h + l..]
    uint32_t sc[2];             // scales[8h .. 8h + 7]
    uint32_t d;
  };
  struct Slice {
    uint32_t a[2], b[2], h[2];
    float dsc[4];  // d * scale of group g
  };

  __device__ static Raw load(const uint8_t* blk, int part) {
    const int h = part / 4, l = 8 * (part % 4);
    const uint8_t* ql = blk + 64 * h + l;
    const uint8_t* qh = blk + 128 + 32 * h + l;
    const uint8_t* sc = blk + 192 + 8 * h;
    Raw r;
    r.a[0] = qblk::load_u32_a2(ql);
    r.a[1] = qblk::load_u32_a2(ql + 4);
    r.b[0] = qblk::load_u32_a2(ql + 32);
    r.b[1] = qblk::load_u32_a2(ql + 36);
    r.h[0] = qblk::load_u32_a2(qh);
    r.h[1] = qblk::load_u32_a2(qh + 4);
    r.sc[0] = qblk::load_u32_a2(sc);
    r.sc[1] = qblk::load_u32_a2(sc + 4);
    r.d = qblk::load_u16(blk + 208);
    return r;
  }

  __device__ static Slice prepare(const Raw& r, int part) {
    const float d = qblk::half_bits_to_float(r.d);
    const int k = (part % 4) / 2;  // l / 16: which of the two scales of a group's 32 values
    Slice sl;
#pragma unroll
    for (int i = 0; i < 2; ++i) sl.a[i] = r.a[i], sl.b[i] = r.b[i], sl.h[i] = r.h[i];
    // scale of group g = byte 2g + k of the half's 8 scales
#pragma unroll
    for (int g = 0; g < 4; ++g)
      sl.dsc[g] = d * float(static_cast<int8_t>(qblk::byte_of(r.sc[g / 2], 2 * (g % 2) + k)));
    return sl;
  }

  __device__ static void piece(const Slice& sl, int g, float (&w)[kPieceValues]) {
    constexpr float kOffset = kTwo23 + 32.0f;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      uint32_t q;
      switch (g) {
        case 0: q = q6k_group_bytes<0>(sl.a[i], sl.b[i], sl.h[i]); break;
        case 1: q = q6k_group_bytes<1>(sl.a[i], sl.b[i], sl.h[i]); break;
        case 2: q = q6k_group_bytes<2>(sl.a[i], sl.b[i], sl.h[i]); break;
        default: q = q6k_group_bytes<3>(sl.a[i], sl.b[i], sl.h[i]); break;
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) w[4 * i + j] = byte_plus_2p23(q, j) - kOffset;
    }
  }

  __device__ static float piece_scale(const Slice& sl, int g) { return sl.dsc[g]; }

  __device__ static int piece_offset(int part, int g) { return 128 * (part / 4) + 32 * g + 8 * (part % 4); }
};

}  // namespace

Status launch_q6k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  return launch_slots<Q6KSlot>(a, n, rows_per_warp, stream);
}

}  // namespace anvil::cuda::gemv_f32_detail
