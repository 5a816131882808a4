// Q5_K exact GEMV: the slot policy for cuda/gemv_f32_kernel.cuh.
//
// A 176-byte Q5_K block is Q4_K's 16-byte header, then qh (32 bytes: bit 2c of qh[l] is bit 4
// of value 64c + l, bit 2c + 1 that of 64c + 32 + l), then 128 bytes of nibbles in Q4_K's order.
// Slot p (0..7) is Q4_K's slot (gemv_f32_q4k.cu): chunk c = p / 2, positions
// l = 16 (p % 2) + 0..15, i.e. qs bytes 16p..16p+15 plus the matching qh bytes
// 16 (p % 2)..+15. Three aligned 16-byte loads per slot (176 = 11 x 16). Pieces as Q4_K's.
//
// Each weight as quant/dequantize.cpp forms it, (d * sc) * q - dmin * m with q in 0..31, bit
// for bit (see gemv_f32_q4k.cu for the fused multiply-add).
#include "cuda/gemv_f32_kernel.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_f32_detail {
namespace {

struct Q5KSlot {
  static constexpr int kSlots = 8;
  static constexpr int kBytes = qblk::kQ5KBytes;
  static constexpr int kValues = 256;
  static constexpr int kPieces = 4;
  static constexpr bool kScaleAfterDot = false;

  struct Raw {
    uint4 header, qh, qs;
  };
  struct Slice {
    uint32_t lo[4], hi[4];  // 5-bit quants of sub-blocks 2c, 2c + 1, 4 bytes per word
    float dsc[2], dm[2];  // as Q4_K's slot
  };

  __device__ static Raw load(const uint8_t* blk, int part) {
    return {qblk::load_16(blk), qblk::load_16(blk + 16 + 16 * (part % 2)), qblk::load_16(blk + 48 + 16 * part)};
  }

  __device__ static Slice prepare(const Raw& r, int part) {
    const int c = part / 2;
    const qblk::Q4KScales s = qblk::q4k_chunk_scales(r.header, c);
    const float d = qblk::half_bits_to_float(r.header.x), dmin = qblk::half_bits_to_float(r.header.x >> 16);
    Slice sl;
    const uint32_t qs[4] = {r.qs.x, r.qs.y, r.qs.z, r.qs.w};
    const uint32_t qh[4] = {r.qh.x, r.qh.y, r.qh.z, r.qh.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      sl.lo[i] = uint32_t(qblk::q5k_with_high_bits(qblk::low_nibbles(qs[i]), qh[i], 2 * c));
      sl.hi[i] = uint32_t(qblk::q5k_with_high_bits(qblk::high_nibbles(qs[i]), qh[i], 2 * c + 1));
    }
    sl.dsc[0] = d * float(s.sc0);
    sl.dsc[1] = d * float(s.sc1);
    sl.dm[0] = dmin * float(s.m0);
    sl.dm[1] = dmin * float(s.m1);
    return sl;
  }

  __device__ static void piece(const Slice& sl, int k, float (&w)[kPieceValues]) {
    const int sb = k / 2;  // 0: low nibbles (sub-block 2c), 1: high (2c + 1)
    const float big = -kTwo23 * sl.dsc[sb];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int wi = 2 * (k % 2) + i;
      const uint32_t q = sb == 0 ? sl.lo[wi] : sl.hi[wi];
#pragma unroll
      for (int j = 0; j < 4; ++j) w[4 * i + j] = fmaf(byte_plus_2p23(q, j), sl.dsc[sb], big) - sl.dm[sb];
    }
  }

  __device__ static int piece_offset(int part, int k) { return 64 * (part / 2) + 16 * (part % 2) + 32 * (k / 2) + 8 * (k % 2); }
};

}  // namespace

Status launch_q5k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  return launch_slots<Q5KSlot>(a, n, rows_per_warp, stream);
}

}  // namespace anvil::cuda::gemv_f32_detail
