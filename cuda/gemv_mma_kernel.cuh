// The decode GEMV for 2..8 tokens on int8 tensor cores (mma.sync m16n8k32, u8 weights x s8
// activations, s32 sums), for the Q4_K-layout weight types (Q4_K, Q5_K), and Q6_K through its own
// policy (cuda/gemv_q6k.cu: mma.m16n8k16 per 16-value scale group).
//
// Why: with several tokens, gemv_kernel.cuh and gemv_kquant_kernel.cuh spend ~2 instructions per
// weight *per token* on dp4a, scales and index math (bench/NOTES.md: at n = 8 a Qwen3-4B gate/up
// GEMV takes 2x its n = 1 time, for the same bytes). One mma.m16n8k32 takes a whole 32-value
// sub-block of 16 rows against all 8 token columns, so the per-weight work no longer grows with
// the token count: what is left per sub-block is the scale epilogue (4 sums per lane).
//
// Work split: a CTA of KW warps owns one tile of 16 rows; warp w takes super-blocks
// w, w + KW, ... of the tile's rows and the warps' partial sums are added in shared memory.
// Lane (g = lane / 4, t = lane % 4) holds rows g and g + 8. The sum over k does not depend on which
// weight is called k, as long as the activations use the same order: in a 32-value sub-block,
// lane t's A fragment words are the physical quants 8t..8t+3 (mma's k 4t..4t+3) and 8t+4..8t+7
// (k 16+4t..16+4t+3), and its B fragment is the same bytes of token g's int8 activations. So
// each lane reads 8 contiguous bytes of each 32-byte qs chunk (Q4_K: the chunk's low nibbles are
// sub-block 2c, its high nibbles sub-block 2c + 1: one load feeds two mmas).
//
// Per sub-block, the int32 result (row r, token j) is the same integer dot product the dp4a
// kernels compute, and takes the same formula: d sc da (q . qa) - dmin m sa.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/gemv_kernel.cuh"
#include "cuda/mma_primitives.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_detail {

constexpr int kMmaRows = 16;      // rows per CTA tile (the mma's M)
constexpr int kMmaMaxTokens = 8;  // the mma's N
// Warps per tile (KW), splitting its super-blocks: 4 (H100, bench/NOTES.md). 8 on launches of
// fewer than 400 tiles won in a probe, but in this kernel at n = 8 it ran k/v at 0.96x gemv_kernel's
// time where 4 ran 0.73x, o 0.84x vs 0.77x, down 0.76x vs 0.71x.
constexpr int kMmaWarps = 4;

using ptx::mma_s8s8_16816;  // cuda/mma_primitives.cuh
using ptx::mma_u8s8_16832;

__device__ __forceinline__ uint2 load_8(const uint8_t* p) { return __ldg(reinterpret_cast<const uint2*>(p)); }

// What a lane needs of the activations: token g's int8 quants (the B column it supplies) and the
// (da, sa) pairs, per 32 values, of tokens 2t and 2t + 1 (the C columns it holds).
struct MmaActs {
  const int8_t* xg;  // token g's quants (any valid token when !has_token; then never read)
  const float2* ds0;
  const float2* ds1;
  bool has_token;
  int t;
};

// Block b of rows g (ra) and g + 8 (rb) for the Q4_K layout (Q4_K, Q5_K): 8 sub-blocks of 32 values
// with a 6-bit scale and min each, one mma per sub-block. Layout::quants(raw, s) gives the A
// fragment words of sub-block s as u8 lanes (low: physical 8t..8t+3, high: 8t+4..8t+7).
template <class Layout, class Raw>
__device__ __forceinline__ void kquant_mma_accumulate(const Raw& ra, const Raw& rb, const MmaActs& x, int b,
                                                      float (&acc)[4]) {
  float s[4] = {0.f, 0.f, 0.f, 0.f}, m[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int sub = 0; sub < 8; ++sub) {
    // Scales per chunk, as they are used. All 8 of both rows up front took 128 registers, and
    // n = 8 gate ran at 0.78x gemv_kernel's time instead of 0.63x (each ratio from one lease).
    const qblk::Q4KScales ca = qblk::q4k_chunk_scales(ra.header, sub / 2);
    const qblk::Q4KScales cb = qblk::q4k_chunk_scales(rb.header, sub / 2);
    const float sca = float(sub % 2 ? ca.sc1 : ca.sc0), scb = float(sub % 2 ? cb.sc1 : cb.sc0);
    const float mna = float(sub % 2 ? ca.m1 : ca.m0), mnb = float(sub % 2 ? cb.m1 : cb.m0);
    // Sub-block sub's values are activations 32 sub .. of the block: Q4_K chunk c = sub / 2
    // holds sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles) at the same bytes.
    const int64_t k0 = int64_t(b) * 256 + 64 * (sub / 2) + 32 * (sub % 2);
    const uint2 xv = x.has_token ? load_8(reinterpret_cast<const uint8_t*>(x.xg + 8 * x.t + k0)) : make_uint2(0u, 0u);
    const uint2 qa = Layout::quants(ra, sub), qb = Layout::quants(rb, sub);
    int r[4];
    mma_u8s8_16832(r, qa.x, qb.x, qa.y, qb.y, xv.x, xv.y);
    const int64_t j = k0 / 32;
    const float2 x0 = __ldg(x.ds0 + j), x1 = __ldg(x.ds1 + j);  // (da, sa) of tokens 2t, 2t + 1
    s[0] = fmaf(sca * x0.x, float(r[0]), s[0]);
    s[1] = fmaf(sca * x1.x, float(r[1]), s[1]);
    s[2] = fmaf(scb * x0.x, float(r[2]), s[2]);
    s[3] = fmaf(scb * x1.x, float(r[3]), s[3]);
    m[0] = fmaf(mna, x0.y, m[0]);
    m[1] = fmaf(mna, x1.y, m[1]);
    m[2] = fmaf(mnb, x0.y, m[2]);
    m[3] = fmaf(mnb, x1.y, m[3]);
  }
  const float2 dma = __half22float2(*reinterpret_cast<const __half2*>(&ra.header.x));  // d, dmin
  const float2 dmb = __half22float2(*reinterpret_cast<const __half2*>(&rb.header.x));
  acc[0] += fmaf(dma.x, s[0], -dma.y * m[0]);
  acc[1] += fmaf(dma.x, s[1], -dma.y * m[1]);
  acc[2] += fmaf(dmb.x, s[2], -dmb.y * m[2]);
  acc[3] += fmaf(dmb.x, s[3], -dmb.y * m[3]);
}

// Policy: kBytes, Raw (one row's share of a block for lane t), load(block, t), and
// accumulate(ra, rb, acts, b, acc), which adds block b's sums for (row g, token 2t), (g, 2t + 1),
// (g + 8, 2t), (g + 8, 2t + 1) to acc.
template <class Policy, int KW>
__global__ void __launch_bounds__(32 * KW) gemv_mma_kernel(const KernelArgs a, int n) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const Segment seg = segment_of(a, blockIdx.x);  // first_warp numbers 16-row tiles here
  const int64_t row0 = (int64_t(blockIdx.x) - seg.first_warp) * kMmaRows;
  // Rows past the end re-read the last row and are never stored.
  const uint8_t* wa = seg.weight + min(row0 + g, seg.out - 1) * seg.row_stride;
  const uint8_t* wb = seg.weight + min(row0 + g + 8, seg.out - 1) * seg.row_stride;
  const int64_t subs_per_token = a.act.in / 32;
  const MmaActs x{a.act.q + int64_t(min(g, n - 1)) * a.act.in, a.act.ds + int64_t(min(2 * t, n - 1)) * subs_per_token,
                  a.act.ds + int64_t(min(2 * t + 1, n - 1)) * subs_per_token, g < n, t};

  typename Policy::Raw ra, rb;
  int b = warp;
  if (b < a.blocks_per_row) {  // weights: no kernel writes them, so before the wait
    ra = Policy::load(wa + int64_t(b) * Policy::kBytes, t);
    rb = Policy::load(wb + int64_t(b) * Policy::kBytes, t);
  }
  pdl_wait();

  float acc[4] = {0.f, 0.f, 0.f, 0.f};  // (row g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1)
  for (; b < a.blocks_per_row; b += KW) {
    if (b != warp) {
      ra = Policy::load(wa + int64_t(b) * Policy::kBytes, t);
      rb = Policy::load(wb + int64_t(b) * Policy::kBytes, t);
    }
    Policy::accumulate(ra, rb, x, b, acc);
  }
  pdl_allow_dependents();  // every weight load is issued (see gemv_kernel)

  __shared__ float partial[KW][4][32];
#pragma unroll
  for (int i = 0; i < 4; ++i) partial[warp][i][lane] = acc[i];
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < KW; ++w) v += partial[w][i][lane];  // a fixed order
    const int64_t row = row0 + g + 8 * (i / 2);
    const int token = 2 * t + i % 2;
    if (token < n && row < seg.out) seg.y[token * seg.y_stride + row] = v;
  }
}

// Numbers the segments' 16-row tiles (Segment::first_warp) and returns the launch's CTAs.
inline int64_t number_mma_tiles(KernelArgs& a) {
  int64_t tiles = 0;
  for (int i = 0; i < a.n_segs; ++i) {
    a.seg[i].first_warp = tiles;
    tiles += (a.seg[i].out + kMmaRows - 1) / kMmaRows;
  }
  return tiles;
}

// n in 2..8.
template <class Policy>
Status launch_mma(KernelArgs a, int n, cudaStream_t stream) {
  const int64_t tiles = number_mma_tiles(a);
  return launch_pdl("gemv_mma_kernel", gemv_mma_kernel<Policy, kMmaWarps>, dim3(unsigned(tiles)),
                    dim3(32 * kMmaWarps), 0, stream, a, n);
}

// Whether a Q4_K / Q5_K launch of n tokens takes this kernel (cuda/gemv.cu); asked after
// use_kquant_kernel.
bool use_mma_kernel(int n);
// The same for Q6_K (cuda/gemv_q6k.cu): opt-in until it is measured.
bool use_mma_kernel_q6k(int n);

}  // namespace anvil::cuda::gemv_detail
