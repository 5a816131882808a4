// The tensor-core prefill kernel (included by cuda/attention_prefill.cu only).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/attention_kernels.cuh"
#include "cuda/mma_primitives.cuh"

namespace anvil::cuda::attn {
namespace {

// Prefill on tensor cores (F16 KV, head_dim 64 / 128 / 256)
//
// FlashAttention-2's layout on mma.sync m16n8k16 (f16 in, f32 accumulate): 4 warps x 16 rows of
// 64 (token, head) rows; per K/V tile of BN keys, S = Q K^T in registers (Q and K fragments by
// ldmatrix from padded shared rows: a row is HD + 8 halves, so the 8 rows of an 8x8 matrix fall
// in 8 different 16-byte bank groups), mask/scale/softcap/online softmax on the accumulators,
// then P (f16, straight from S's accumulator layout) times V (ldmatrix.trans). K/V rows are
// gathered through the block table with cp.async. Q and P are rounded to f16 here: about 5e-4
// relative each, hence the looser test tolerance for this path.

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  return uint32_t(__half_as_ushort(__float2half_rn(lo))) | (uint32_t(__half_as_ushort(__float2half_rn(hi))) << 16);
}

constexpr int kMmaRows = 64;  // (token, head) rows per tile: 4 warps x 16

template <int HD>
struct MmaTile {
  static constexpr int BN = HD >= 256 ? 32 : 64;  // keys per K/V tile (registers at HD 256)
  static constexpr int ST = HD + 8;               // halves per shared row
  static constexpr size_t krow_bytes = BN * sizeof(int64_t);
  static constexpr size_t q_halves = size_t(kMmaRows) * ST;
  static constexpr size_t kv_halves = size_t(BN) * ST;
  static constexpr size_t bytes =
      krow_bytes + (q_halves + 2 * kv_halves) * sizeof(__half) + (2 * kMmaRows + 2) * sizeof(int32_t);
};

// grid (planned tiles of kMmaRows rows, n_kv_heads), 128 threads.
template <int HD>
__global__ void __launch_bounds__(128)
    prefill_mma_kernel(const __grid_constant__ AttnArgs a, const __grid_constant__ PrefillPlan plan) {
  using T = MmaTile<HD>;
  constexpr int BM = kMmaRows, BN = T::BN, ST = T::ST;
  constexpr int NT = BN / 8;  // key n-tiles of S
  constexpr int DT = HD / 8;  // dim n-tiles of O
  static_assert(NT % 2 == 0 && DT % 2 == 0 && HD % 16 == 0);
  extern __shared__ __align__(16) unsigned char mma_smem[];
  int64_t* krow_s = reinterpret_cast<int64_t*>(mma_smem);
  __half* Qs = reinterpret_cast<__half*>(mma_smem + T::krow_bytes);
  __half* Ks = Qs + T::q_halves;
  __half* Vs = Ks + T::kv_halves;
  int32_t* pos_s = reinterpret_cast<int32_t*>(Vs + T::kv_halves);
  int32_t* lo_s = pos_s + BM;
  int32_t* range_s = lo_s + BM;

  const auto [s, tile] = planned_tile(plan);
  const int32_t kvh = int32_t(blockIdx.y);
  const int32_t first = a.seq_first_token[s], n_tok = a.seq_n_tokens[s];
  const int32_t G = a.group;
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, c4 = lane & 3;  // accumulator row within 8, column pair

  if (warp == 0) prefill_tile_rows<BM>(a, tile, first, n_tok, lane, pos_s, lo_s, range_s);
  for (int idx = tid; idx < BM * (HD / 2); idx += 128) {
    const int r = idx / (HD / 2), d = (idx % (HD / 2)) * 2;
    const TileRow t = tile_row(tile, BM, r, G);
    float x0 = 0.f, x1 = 0.f;
    if (t.tok < n_tok) {
      const float* src = a.q + tile_row_offset(t, first, a.q_stride, kvh, G, HD) + d;
      x0 = src[0];
      x1 = src[1];
    }
    Qs[r * ST + d] = __float2half_rn(x0);
    Qs[r * ST + d + 1] = __float2half_rn(x1);
  }
  __syncthreads();
  const int32_t kmin = range_s[0], kmax = range_s[1];
  const int32_t* table = a.block_tables + int64_t(s) * a.max_blocks;
  const __half* kbase = static_cast<const __half*>(a.k) + int64_t(kvh) * HD;
  const __half* vbase = static_cast<const __half*>(a.v) + int64_t(kvh) * HD;
  const int row0 = warp * 16 + g, row1 = row0 + 8;
  const int32_t pos0 = pos_s[row0], lo0 = lo_s[row0], pos1 = pos_s[row1], lo1 = lo_s[row1];

  float o[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; ++dt)
#pragma unroll
    for (int i = 0; i < 4; ++i) o[dt][i] = 0.f;
  float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f};  // rows row0, row1 (l: this thread's part)

  for (int32_t kt = kmin; kt <= kmax; kt += BN) {
    if (tid < BN) {
      const int32_t j = kt + tid;
      krow_s[tid] = j <= kmax ? kv_row(a, table, j) : -1;
    }
    __syncthreads();
    for (int idx = tid; idx < BN * (HD / 8); idx += 128) {
      const int c = idx / (HD / 8), part = (idx % (HD / 8)) * 8;
      const int64_t r = krow_s[c];
      __half* kd = Ks + c * ST + part;
      __half* vd = Vs + c * ST + part;
      if (r >= 0) {
        ptx::cp_async_16(ptx::smem_addr(kd), kbase + r * a.k_stride + part);
        ptx::cp_async_16(ptx::smem_addr(vd), vbase + r * a.v_stride + part);
      } else {  // zeros, not NaN from an unwritten page (see prefill_kernel)
        *reinterpret_cast<uint4*>(kd) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(vd) = make_uint4(0, 0, 0, 0);
      }
    }
    ptx::cp_async_commit();
    ptx::cp_async_wait<0>();
    __syncthreads();

    float sc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) sc[nt][i] = 0.f;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      uint32_t af[4];
      ptx::ldmatrix_x4(ptx::smem_addr(Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ST + ks * 16 + (lane >> 4) * 8), af);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t bf[4];
        ptx::ldmatrix_x4(ptx::smem_addr(Ks + (np * 16 + (lane & 7) + (lane >> 4) * 8) * ST + ks * 16 + ((lane >> 3) & 1) * 8), bf);
        ptx::mma_f16_f32(sc[2 * np], af, bf[0], bf[1]);
        ptx::mma_f16_f32(sc[2 * np + 1], af, bf[2], bf[3]);
      }
    }

    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int c = nt * 8 + 2 * c4 + (i & 1);
        const int32_t key = kt + c;
        const bool upper = i >= 2;
        const bool ok = krow_s[c] >= 0 && key <= (upper ? pos1 : pos0) && key >= (upper ? lo1 : lo0);
        sc[nt][i] = ok ? finish_score(sc[nt][i], a.scale, a.softcap) : -INFINITY;
        mx[i >> 1] = fmaxf(mx[i >> 1], sc[nt][i]);
      }
    float corr[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float mn = fmaxf(m_r[i], mx[i]);
      corr[i] = mn == -INFINITY ? 1.f : expf(m_r[i] - mn);
      m_r[i] = mn;
      l_r[i] *= corr[i];
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float mr = m_r[i >> 1];
        const float pv = mr == -INFINITY ? 0.f : expf(sc[nt][i] - mr);
        sc[nt][i] = pv;
        l_r[i >> 1] += pv;
      }
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      o[dt][0] *= corr[0];
      o[dt][1] *= corr[0];
      o[dt][2] *= corr[1];
      o[dt][3] *= corr[1];
    }

#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      // S's accumulators of key n-tiles 2kk, 2kk+1 are exactly the A fragment of keys 16kk..+15.
      uint32_t pa[4];
      pa[0] = pack_half2(sc[2 * kk][0], sc[2 * kk][1]);
      pa[1] = pack_half2(sc[2 * kk][2], sc[2 * kk][3]);
      pa[2] = pack_half2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
      pa[3] = pack_half2(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < DT / 2; ++dp) {
        uint32_t vb[4];
        ptx::ldmatrix_x4_trans(ptx::smem_addr(Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ST + dp * 16 + (lane >> 4) * 8), vb);
        ptx::mma_f16_f32(o[2 * dp], pa, vb[0], vb[1]);
        ptx::mma_f16_f32(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // the next tile overwrites krow_s, Ks, Vs
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l_r[i] += __shfl_xor_sync(0xffffffffu, l_r[i], 1);
    l_r[i] += __shfl_xor_sync(0xffffffffu, l_r[i], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = i == 0 ? row0 : row1;
    const TileRow t = tile_row(tile, BM, r, G);
    if (t.tok >= n_tok) continue;
    const float inv = 1.f / l_r[i];
    float* orow = a.out + tile_row_offset(t, first, a.out_stride, kvh, G, HD);
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      orow[dt * 8 + 2 * c4] = o[dt][2 * i] * inv;
      orow[dt * 8 + 2 * c4 + 1] = o[dt][2 * i + 1] * inv;
    }
  }
}

}  // namespace
}  // namespace anvil::cuda::attn
