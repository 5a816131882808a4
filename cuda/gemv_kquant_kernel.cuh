// The GEMV kernel for the Q4_K-layout weight types (Q4_K, Q5_K: a 16-byte header of d, dmin and
// twelve bytes of 6-bit scales/mins, then 128 bytes of nibbles; Q5_K adds 32 bytes of fifth bits).
// It takes over from cuda/gemv_kernel.cuh's work split for one token (and two on narrow launches;
// use_kquant_kernel), where that kernel was issue-bound: ~2.3 instructions per weight, as each lane
// decoded a header for every 32 weights. With more tokens this kernel's per-token cost dominates;
// those launches take cuda/gemv_mma_kernel.cuh (tensor cores).
//
// Work split:
//   - a warp owns R consecutive rows; lane group r (32 / R lanes) owns row r alone, so a row's
//     partial sums are reduced over its group only (R rows reduce in parallel);
//   - in a group, 4 lanes share a block: lane i takes qs bytes 16i..16i+15 and 64+16i..64+16i+15,
//     i.e. half of 64-value chunk c0 = i / 2 and the same half of chunk c0 + 2. The chunks' 6-bit
//     scales sit in the same header bytes (one decode serves 64 values), and each load instruction
//     reads 64 contiguous bytes per block;
//   - the group walks its row 32 / R / 4 blocks per round; each round's weights are decoded once
//     and dotted with each of the N tokens' activations (int8, dp4a).
// Q4_K keeps the high nibbles in place (qs & 0xf0f0f0f0 = 16 x nibble) and shifts the dot product
// instead, one instruction per 16 values instead of one per 4.
//
// Measured against gemv_kernel.cuh (H100, n = 1, GEMV alone on quantized activations, a CUDA graph
// of programmatic launches over rotating weight copies, copy bandwidth 2968 GB/s in the same run;
// bench/NOTES.md): Qwen3-4B
// gate 9728 x 2560 8.77 -> 6.70 us (54% -> 70% of copy bandwidth), gate + up in one launch
// 14.38 -> 11.43 us (66% -> 83%), down 2560 x 9728 9.24 -> 7.05 us, Qwen2.5-7B gate + up
// 32.39 -> 27.29 us (79% -> 94%). Loading the next round before using the current one (2-3
// rounds in flight) was slower at every shape: the occupancy it costs is worth more.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/gemv_kernel.cuh"

namespace anvil::cuda::gemv_detail {

// dp4a of unsigned weight bytes (up to 240: Q4_K's in-place high nibbles) and signed activations.
__device__ __forceinline__ int dp4a_u8s8(uint32_t w, int x, int acc) {
  int r;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(w), "r"(x), "r"(acc));
  return r;
}

// What lane i of a block decodes: the quants of its half of chunk c0 = i / 2 (lo0: sub-block
// 2 c0, hi0: 2 c0 + 1) and of chunk c0 + 2 (lo1, hi1), four int8 lanes per word; the four
// sub-blocks' scales and mins; d and -dmin / 2 (the lane pair sharing a chunk each adds half of its
// min term, which is over the whole sub-block).
struct KQuantWeights {
  uint32_t lo0[4], hi0[4], lo1[4], hi1[4];
  int sc[4];
  float m[4];
  float d, neg_half_dmin;
};

// Scales, mins, d and dmin of sub-blocks 2 c0, 2 c0 + 1, 2 c0 + 4, 2 c0 + 5 (c0 = 0, 1) from the
// header (x = d | dmin << 16, y/z/w = scales bytes 0-3, 4-7, 8-11; quant/blocks.h): sub-block
// s < 4 has scale = byte s & 63, min = byte s + 4 & 63; s >= 4 has the low 4 bits in byte s + 4
// (scale low nibble, min high nibble) and the high 2 bits in the top of bytes s - 4 and s. The
// four needed bytes of each word are the byte pair at 2 c0, decoded two at a time.
__device__ __forceinline__ void kquant_scales(const uint4& h, int c0, KQuantWeights& q) {
  const int shift = 16 * c0;
  const uint32_t y = h.y >> shift, z = h.z >> shift, w = h.w >> shift;
  const uint32_t sc01 = y & 0x3f3fu, m01 = z & 0x3f3fu;
  const uint32_t sc45 = (w & 0x0f0fu) | ((y >> 2) & 0x3030u);
  const uint32_t m45 = ((w >> 4) & 0x0f0fu) | ((z >> 2) & 0x3030u);
  q.sc[0] = int(sc01 & 0xffu);
  q.sc[1] = int(sc01 >> 8);
  q.sc[2] = int(sc45 & 0xffu);
  q.sc[3] = int(sc45 >> 8);
  q.m[0] = float(m01 & 0xffu);
  q.m[1] = float(m01 >> 8);
  q.m[2] = float(m45 & 0xffu);
  q.m[3] = float(m45 >> 8);
  const float2 dm = __half22float2(*reinterpret_cast<const __half2*>(&h.x));
  q.d = dm.x;
  q.neg_half_dmin = -0.5f * dm.y;
}

// Lane i's share of block b for token t: with activation block j (32 values, scale da_j,
// sa_j = da_j * sum of its quants), sum_i w_i x_i = d sc_j da_j (q . qa)_j - dmin m_j sa_j.
// kHighShift: the high-nibble dot products are 2^kHighShift times too large (Q4_K: 4).
template <int kHighShift>
__device__ __forceinline__ float kquant_dot(const KQuantWeights& q, const ActQ8& act, int t, int b, int i) {
  const int c0 = i >> 1;
  const int8_t* x = act.q + int64_t(t) * act.in + int64_t(b) * 256 + 64 * c0 + 16 * (i & 1);
  const float4* ds = reinterpret_cast<const float4*>(act.ds + int64_t(t) * (act.in / 32) + int64_t(b) * 8 + 2 * c0);
  const int4 xa = *reinterpret_cast<const int4*>(x), xb = *reinterpret_cast<const int4*>(x + 32);
  const int4 xc = *reinterpret_cast<const int4*>(x + 128), xd = *reinterpret_cast<const int4*>(x + 160);
  const float4 s0 = ds[0], s1 = ds[2];  // (da, sa) of sub-blocks 2 c0, 2 c0 + 1; then 2 c0 + 4, 2 c0 + 5
  const auto dot4 = [](const uint32_t (&w)[4], const int4& v) {
    return dp4a_u8s8(w[3], v.w, dp4a_u8s8(w[2], v.z, dp4a_u8s8(w[1], v.y, dp4a_u8s8(w[0], v.x, 0))));
  };
  const int da = dot4(q.lo0, xa), db = dot4(q.hi0, xb) >> kHighShift;
  const int dc = dot4(q.lo1, xc), dd = dot4(q.hi1, xd) >> kHighShift;
  float s = s0.x * float(da * q.sc[0]);
  s = fmaf(s0.z, float(db * q.sc[1]), s);
  s = fmaf(s1.x, float(dc * q.sc[2]), s);
  s = fmaf(s1.z, float(dd * q.sc[3]), s);
  float m = s0.y * q.m[0];
  m = fmaf(s0.w, q.m[1], m);
  m = fmaf(s1.y, q.m[2], m);
  m = fmaf(s1.w, q.m[3], m);
  return fmaf(q.d, s, q.neg_half_dmin * m);
}

// Policy: kBytes (block size), Raw (what lane i loads from a block), load(block, i),
// decode(raw, i) -> KQuantWeights, kHighShift. N tokens (1..8), R rows per warp (1, 2, 4).
template <class Policy, int N, int R>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) gemv_kquant_kernel(const KernelArgs a) {
  constexpr int kLanesPerRow = 32 / R;
  constexpr int kBlocksPerRound = kLanesPerRow / 4;
  static_assert(kLanesPerRow >= N, "the group's lanes store one token each");
  const int lane = threadIdx.x & 31;
  const int64_t warp = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const Segment g = segment_of(a, warp);
  const int64_t row0 = (warp - g.first_warp) * R;
  if (row0 >= g.out) {  // the last block's spare warps
    pdl_wait();
    return;
  }
  const int r = lane / kLanesPerRow, li = lane % kLanesPerRow, b0 = li / 4, i = li % 4;
  // A row past the end (out not a multiple of R) re-reads the last row and is never stored.
  const uint8_t* row = g.weight + min(row0 + r, g.out - 1) * g.row_stride;
  const uint8_t* w = row + int64_t(b0) * Policy::kBytes;
  constexpr int kRoundBytes = kBlocksPerRound * Policy::kBytes;
  const int rounds = (a.blocks_per_row - b0 + kBlocksPerRound - 1) / kBlocksPerRound;

  typename Policy::Raw raw;
  if (rounds > 0) raw = Policy::load(w, i);
  if (a.prefetch_l2) {  // the rest of the row into L2 while the previous kernel finishes
    const int64_t row_bytes = int64_t(a.blocks_per_row) * Policy::kBytes;
    for (int64_t off = kRoundBytes + 128 * li; off < row_bytes; off += 128 * kLanesPerRow) prefetch_l2(row + off);
  }
  pdl_wait();

  float acc[N];
#pragma unroll
  for (int t = 0; t < N; ++t) acc[t] = 0.0f;
  for (int k = 0; k < rounds; ++k) {
    if (k) raw = Policy::load(w + int64_t(k) * kRoundBytes, i);
    const KQuantWeights q = Policy::decode(raw, i);
    const int b = b0 + k * kBlocksPerRound;
#pragma unroll
    for (int t = 0; t < N; ++t) acc[t] += kquant_dot<Policy::kHighShift>(q, a.act, t, b, i);
  }
  pdl_allow_dependents();  // every weight load is issued (see gemv_kernel)

#pragma unroll
  for (int t = 0; t < N; ++t) {
    float v = acc[t];
#pragma unroll
    for (int off = kLanesPerRow / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (li == t && row0 + r < g.out) g.y[t * g.y_stride + row0 + r] = v;
  }
}

template <class Policy, int N, int R>
Status launch_kquant_rows(KernelArgs a, cudaStream_t stream) {
  const int64_t blocks = number_warps(a, R);
  return launch_pdl("gemv_kquant_kernel", gemv_kquant_kernel<Policy, N, R>, dim3(unsigned(blocks)),
                    dim3(32 * kWarpsPerBlock), 0, stream, a);
}

// n in 1..2: use_kquant_kernel never sends more tokens here, so only those instances are built.
template <class Policy>
Status launch_kquant(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  auto launch = [&]<int N, int R>() { return launch_kquant_rows<Policy, N, R>(a, stream); };
  switch (n) {
    case 1: return gemv_dispatch::with_rows<1>("gemv", rows_per_warp, launch);
    case 2: return gemv_dispatch::with_rows<2>("gemv", rows_per_warp, launch);
    default: return make_error(StatusCode::internal, "gemv: ", n, " tokens for the kquant kernel (1..2)");
  }
}

// Whether a Q4_K / Q5_K launch of n tokens (one pass) takes this kernel or gemv_kernel.cuh's
// (cuda/gemv.cu has the measurements behind the choice).
bool use_kquant_kernel(const KernelArgs& a, int n);

}  // namespace anvil::cuda::gemv_detail
