// Q8_0 exact GEMV: the slot policy for cuda/gemv_f32_kernel.cuh.
//
// A 34-byte Q8_0 block: f16 d, then 32 int8 quants. One slot per block (a lane reads a whole
// block: 32 values, 4 pieces of 8). 34-byte blocks leave a row's blocks alternately 0 and 2 mod 4,
// so instead of sixteen 16-bit loads a lane reads eight aligned 32-bit words and one 16-bit
// half, all inside the block:
//   block 0 mod 4: words at +0..+28 (d, then qs[0..29]) and qs[30..31] at +32: the quant words
//                  are the words funnel-shifted by 16 bits;
//   block 2 mod 4: d at +0, words at +2..+30 are the quant words as they are.
// Lanes of a warp mix both cases, so the two are one code path (shift 16 or 0, d from word 0 or
// the half).
//
// Pieces are the exact quants: the int8 q as the byte q + 128 (xor 0x80), 2^23 + q + 128 by a
// byte permute, minus (2^23 + 128) exactly; the skeleton multiplies each piece's dot product by d.
#include "cuda/gemv_f32_kernel.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_f32_detail {
namespace {

struct Q8_0Slot {
  static constexpr int kSlots = 1;
  static constexpr int kBytes = qblk::kQ8_0Bytes;
  static constexpr int kValues = 32;
  static constexpr int kPieces = 4;
  static constexpr bool kScaleAfterDot = true;

  struct Raw {
    uint32_t w[8];
    uint32_t half;   // qs[30..31] (block 0 mod 4) or d (2 mod 4)
    uint32_t shift;  // 16 or 0
  };
  struct Slice {
    Raw raw;  // the quant words are formed per piece (fewer live registers)
    float d;
  };

  __device__ static Raw load(const uint8_t* blk, int) {
    const uint32_t o = uint32_t(reinterpret_cast<uintptr_t>(blk)) & 2u;
    const auto* words = reinterpret_cast<const uint32_t*>(blk + o);
    Raw r;
#pragma unroll
    for (int i = 0; i < 8; ++i) r.w[i] = __ldg(words + i);
    r.half = qblk::load_u16(blk + (o ? 0 : 32));
    r.shift = o ? 0u : 16u;
    return r;
  }

  __device__ static Slice prepare(const Raw& r, int) {
    return {r, qblk::half_bits_to_float(r.shift ? r.w[0] : r.half)};
  }

  __device__ static void piece(const Slice& sl, int k, float (&w)[kPieceValues]) {
    constexpr float kOffset = kTwo23 + 128.0f;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int wi = 2 * k + i;
      const Raw& r = sl.raw;
      const uint32_t q = __funnelshift_r(r.w[wi], wi < 7 ? r.w[wi + 1] : r.half, r.shift) ^ 0x80808080u;
#pragma unroll
      for (int j = 0; j < 4; ++j) w[4 * i + j] = byte_plus_2p23(q, j) - kOffset;
    }
  }

  __device__ static float piece_scale(const Slice& sl, int) { return sl.d; }

  __device__ static int piece_offset(int, int k) { return 8 * k; }
};

}  // namespace

Status launch_q8_0(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  return launch_slots<Q8_0Slot>(a, n, rows_per_warp, stream);
}

}  // namespace anvil::cuda::gemv_f32_detail
