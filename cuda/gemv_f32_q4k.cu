// Q4_K exact GEMV: the slot policy for cuda/gemv_f32_kernel.cuh.
//
// A 144-byte Q4_K block is 16 bytes of header (d, dmin, 12 bytes of 6-bit scales/mins) and 128
// bytes of nibbles. Slot p (0..7) is qs bytes 16p..16p+15: chunk c = p / 2, positions
// l = 16 (p % 2) + 0..15 of that chunk, i.e. 16 values of sub-block 2c (low nibbles, values
// 64c + l) and 16 of sub-block 2c + 1 (high nibbles, values 64c + 32 + l); the same slices as
// cuda/gemv_q4k.cu. Two aligned 16-byte loads per slot (header, qs). Pieces: k = 0, 1 are the
// low nibbles of qs words 0-1 and 2-3, k = 2, 3 the high nibbles of the same words.
//
// Each weight as quant/dequantize.cpp forms it, (d * sc) * q - dmin * m, bit for bit:
// fma(2^23 + q, d * sc, -2^23 * d * sc) is (d * sc) * q with one rounding (the product and the
// power-of-two multiple are exact), then one subtraction.
#include "cuda/gemv_f32_kernel.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_f32_detail {
namespace {

struct Q4KSlot {
  static constexpr int kSlots = 8;
  static constexpr int kBytes = qblk::kQ4KBytes;
  static constexpr int kValues = 256;
  static constexpr int kPieces = 4;
  static constexpr bool kScaleAfterDot = false;

  struct Raw {
    uint4 header, qs;
  };
  struct Slice {
    uint32_t qs[4];
    float dsc[2];  // d * scale of sub-blocks 2c, 2c + 1
    float dm[2];   // dmin * min
  };

  __device__ static Raw load(const uint8_t* blk, int part) {
    return {qblk::load_16(blk), qblk::load_16(blk + 16 + 16 * part)};
  }

  __device__ static Slice prepare(const Raw& r, int part) {
    const qblk::Q4KScales s = qblk::q4k_chunk_scales(r.header, part / 2);
    const float d = qblk::half_bits_to_float(r.header.x), dmin = qblk::half_bits_to_float(r.header.x >> 16);
    Slice sl;
    sl.qs[0] = r.qs.x, sl.qs[1] = r.qs.y, sl.qs[2] = r.qs.z, sl.qs[3] = r.qs.w;
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
      const uint32_t word = sl.qs[2 * (k % 2) + i];
      const uint32_t q = sb == 0 ? qblk::low_nibbles(word) : qblk::high_nibbles(word);
#pragma unroll
      for (int j = 0; j < 4; ++j) w[4 * i + j] = fmaf(byte_plus_2p23(q, j), sl.dsc[sb], big) - sl.dm[sb];
    }
  }

  __device__ static int piece_offset(int part, int k) { return 64 * (part / 2) + 16 * (part % 2) + 32 * (k / 2) + 8 * (k % 2); }
};

}  // namespace

Status launch_q4k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  return launch_slots<Q4KSlot>(a, n, rows_per_warp, stream);
}

}  // namespace anvil::cuda::gemv_f32_detail
