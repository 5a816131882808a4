// The exact decode GEMV skeleton (cuda/gemv_f32.h), shared by the weight types
// (gemv_f32_q4k.cu, gemv_f32_q5k.cu, gemv_f32_q6k.cu, gemv_f32_q8_0.cu). The split is
// cuda/gemv_kernel.cuh's; the activations are the caller's f32 rows, not int8 blocks.
//
// Each type supplies a "slot" policy: a weight block is split into kSlots slices (one lane
// each); the policy loads a slice's bytes, prepares its scales, and decodes it in pieces of 8
// consecutive values without rounding (the contract is above gemv_f32_kernel). The skeleton owns
// the work split:
//   - a warp owns R consecutive rows; its 32 lanes walk the slices of those rows' blocks with
//     stride 32, so a warp reads R contiguous row segments;
//   - per slice, the R rows' weight bytes are loaded first (R independent loads in flight);
//   - per 8-value piece, each row's 8 weights are decoded once, then each of the N tokens'
//     8 matching activations is loaded once (two float4 loads, read-only path) and used for all
//     R rows: the decoding is shared by the N tokens, each activation load by the R rows;
//   - f32 accumulators per (row, token), reduced over the lanes with shuffles; lane r * N + t
//     stores (r, t).
//
// Decoding without int-to-float conversions (16 per clock per SM, too slow here): a quant u in
// 0..255 becomes the float 2^23 + u by a byte permute into the bit pattern of 2^23
// (byte_plus_2p23), and then an exact subtraction gives u - offset, or a fused multiply-add
// against -2^23 * scale (exact before its one rounding) gives scale * u. Each value is formed
// before it meets an activation, so no 2^23-sized term is ever summed and cancelled.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/status.h"
#include "cuda/check.h"
#include "cuda/gemv_dispatch.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda::gemv_f32_detail {

struct KernelArgs {
  const uint8_t* weight;
  int64_t row_stride;  // bytes
  int64_t out;         // rows
  int blocks_per_row;
  const float* x;      // 16-byte aligned, x_stride a multiple of 4 (or one token)
  int64_t x_stride;    // elements
  float* y;
  int64_t y_stride;    // elements
};

constexpr int kWarpsPerBlock = 4;
constexpr int kPieceValues = 8;
constexpr float kTwo23 = 8388608.0f;  // 2^23: floats in [2^23, 2^24) are the integers, ulp 1

// The float 2^23 + (byte k of word), exactly: the byte lands in the low mantissa bits of 2^23's
// bit pattern 0x4B000000 (one PRMT).
__device__ __forceinline__ float byte_plus_2p23(uint32_t word, int k) {
  return __int_as_float(int(__byte_perm(word, 0x4B000000u, 0x7440u | unsigned(k))));
}

// Reads 8 activations starting at p (32-byte aligned offsets of a 16-byte aligned row).
__device__ __forceinline__ void load_piece(const float* p, float (&v)[kPieceValues]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(p));
  const float4 b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

// Slot policy contract (see the per-type files):
//   kSlots, kBytes, kValues (per block), kPieces (8-value pieces per slice);
//   Raw load(const uint8_t* block, int part);          the slice's bytes, loads only
//   Slice prepare(const Raw&, int part);               scales as floats, quants as words
//   void piece(const Slice&, int k, float (&w)[8]);    the values of piece k (k is a constant
//                                                      once the loop is unrolled)
//   int piece_offset(int part, int k);                 block position of piece k's first value
//   kScaleAfterDot, float piece_scale(const Slice&, int k):
//     false: piece() gives the dequantized weights, summed straight into the accumulators
//            (the K-quants with mins: scale * q - min needs two operations per weight once,
//            where folding the min in after the dot would cost a sum of x per piece);
//     true:  piece() gives the exact quants (q - offset) and the skeleton adds
//            piece_scale * (q . x) per piece: one operation per weight fewer (Q6_K, Q8_0:
//            one scale per 8 values, no min).
template <class Slot, int N, int R>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) gemv_f32_kernel(const KernelArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t row0 = (int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32) * R;
  pdl_begin();  // cuda/pdl.cuh
  if (row0 >= a.out) return;

  // Rows past the end (out not a multiple of R) re-read the last row and are never stored.
  const uint8_t* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rows[r] = a.weight + min(row0 + r, a.out - 1) * a.row_stride;

  float acc[R][N];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < N; ++t) acc[r][t] = 0.0f;

  const int slices = a.blocks_per_row * Slot::kSlots;
  for (int s = lane; s < slices; s += 32) {
    const int b = s / Slot::kSlots, part = s % Slot::kSlots;
    typename Slot::Raw raw[R];
#pragma unroll
    for (int r = 0; r < R; ++r) raw[r] = Slot::load(rows[r] + int64_t(b) * Slot::kBytes, part);
    typename Slot::Slice sl[R];
#pragma unroll
    for (int r = 0; r < R; ++r) sl[r] = Slot::prepare(raw[r], part);

    const float* xb = a.x + int64_t(b) * Slot::kValues;
#pragma unroll
    for (int k = 0; k < Slot::kPieces; ++k) {
      float w[R][kPieceValues];
#pragma unroll
      for (int r = 0; r < R; ++r) Slot::piece(sl[r], k, w[r]);
      const float* xp = xb + Slot::piece_offset(part, k);
      if constexpr (Slot::kScaleAfterDot) {
        float scale[R];
#pragma unroll
        for (int r = 0; r < R; ++r) scale[r] = Slot::piece_scale(sl[r], k);
#pragma unroll
        for (int t = 0; t < N; ++t) {
          float v[kPieceValues];
          load_piece(xp + t * a.x_stride, v);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            float dot = w[r][0] * v[0];
#pragma unroll
            for (int j = 1; j < kPieceValues; ++j) dot = fmaf(w[r][j], v[j], dot);
            acc[r][t] = fmaf(scale[r], dot, acc[r][t]);
          }
        }
      } else {
#pragma unroll
        for (int t = 0; t < N; ++t) {
          float v[kPieceValues];
          load_piece(xp + t * a.x_stride, v);
#pragma unroll
          for (int r = 0; r < R; ++r)
#pragma unroll
            for (int j = 0; j < kPieceValues; ++j) acc[r][t] = fmaf(w[r][j], v[j], acc[r][t]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < N; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == (r * N + t) % 32 && row0 + r < a.out) a.y[t * a.y_stride + row0 + r] = v;
    }
}

template <class Slot, int N, int R>
Status launch_rows(const KernelArgs& a, cudaStream_t stream) {
  const int64_t warps = (a.out + R - 1) / R;
  const int64_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return launch_pdl("gemv_f32_kernel", gemv_f32_kernel<Slot, N, R>, dim3(unsigned(blocks)), dim3(32 * kWarpsPerBlock),
                    0, stream, a);
}

// n in 1..8 (launch_gemv_f32 validated it).
template <class Slot>
Status launch_slots(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  return gemv_dispatch::with_tokens_and_rows("gemv_f32", n, rows_per_warp,
                                             [&]<int N, int R>() { return launch_rows<Slot, N, R>(a, stream); });
}

// Per-type entry points (one .cu each).
Status launch_q4k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);
Status launch_q5k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);
Status launch_q6k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);
Status launch_q8_0(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);

}  // namespace anvil::cuda::gemv_f32_detail
