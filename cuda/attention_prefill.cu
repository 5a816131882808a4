// Prefill attention on CUDA: tiles of (token, head) rows of one sequence and kv head group
// against K/V tiles through shared memory. cuda/attention.cu describes the op; these are its
// kernels 2 and 3.
//
// prefill_kernel: sequences with more than kDecodeMaxTokens tokens in the step. Tiles of 32 (token, head) rows of one sequence and
// one kv head group (the group's heads are packed into the rows, so GQA reuses every K/V tile
// for all of them), 32 keys at a time through shared memory, f32 FMA, online softmax, causal
// and window masks per row. The host plans the tiles (a multi-token step may use host data for
// launches) and passes the plan by value, so nothing is uploaded and no block idles.
//
// prefill_mma_kernel: the same plan on tensor cores (mma.sync m16n8k16, f16 in, f32 out) for
// F16 KV at head_dim 64/128/256: 64-row tiles, FlashAttention-2 register layout. q and the
// softmax weights are rounded to f16 (~5e-4 relative), so it is not used for F32 KV, whose
// point is exactness. kUseMmaPrefill switches it off.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cuda/attention_kernels.cuh"
#include "cuda/attention_prefill_mma.cuh"
#include "cuda/check.h"

namespace anvil::cuda::attn {
namespace {

constexpr int kPrefillRows = 32;  // (token, head) rows per tile
constexpr int kPrefillKeys = 32;  // keys per K/V tile
constexpr int kPrefillThreads = 128;
// The tensor-core prefill (prefill_mma_kernel) for F16 KV at head_dim 64/128/256; false routes
// everything to the f32 kernel (the switch to pull if the first GPU run disagrees with the CPU).
constexpr bool kUseMmaPrefill = true;

template <typename KvT>
__device__ __forceinline__ float load_one(const KvT* p) {
  if constexpr (std::is_same_v<KvT, float>) return *p;
  else return __half2float(*p);
}

// ---- prefill: tiles of (token, head) rows x K/V tiles through shared memory

template <int HDMAX>
struct PrefillSmem {
  static constexpr int R = kPrefillRows, C = kPrefillKeys;
  static constexpr int QS = HDMAX + 1, KS = HDMAX + 1, VS = HDMAX, SS = C + 1;  // padded: no bank conflicts
  static constexpr size_t krow_bytes = C * sizeof(int64_t);
  static constexpr size_t n_floats = size_t(R) * QS + size_t(C) * KS + size_t(C) * VS + size_t(R) * SS + 2 * R;
  static constexpr size_t n_ints = 2 * R + 2;
  static constexpr size_t bytes = krow_bytes + n_floats * sizeof(float) + n_ints * sizeof(int32_t);
};

// grid (planned tiles, n_kv_heads), kPrefillThreads threads.
template <typename KvT, int HDMAX>
__global__ void __launch_bounds__(kPrefillThreads)
    prefill_kernel(const __grid_constant__ AttnArgs a, const __grid_constant__ PrefillPlan plan) {
  using L = PrefillSmem<HDMAX>;
  constexpr int R = L::R, C = L::C, QS = L::QS, KS = L::KS, VS = L::VS, SS = L::SS;
  constexpr int DPT = HDMAX / 16;  // output elements per thread and row
  static_assert(kPrefillThreads == 128 && R == 32 && C == 32, "the thread maps below assume these");
  extern __shared__ __align__(16) unsigned char prefill_smem[];
  int64_t* krow_s = reinterpret_cast<int64_t*>(prefill_smem);  // [C] KV row of each key, -1: masked
  float* Qs = reinterpret_cast<float*>(prefill_smem + L::krow_bytes);
  float* Ks = Qs + R * QS;
  float* Vs = Ks + C * KS;
  float* Ss = Vs + C * VS;
  float* corr_s = Ss + R * SS;
  float* l_s = corr_s + R;
  int32_t* pos_s = reinterpret_cast<int32_t*>(l_s + R);
  int32_t* lo_s = pos_s + R;
  int32_t* range_s = lo_s + R;  // kmin, kmax of the tile

  const auto [s, tile] = planned_tile(plan);
  const int32_t kvh = int32_t(blockIdx.y);
  const int32_t first = a.seq_first_token[s], n_tok = a.seq_n_tokens[s];
  const int32_t G = a.group, hd = a.head_dim;
  const int tid = int(threadIdx.x);

  if (tid < 32) prefill_tile_rows<R>(a, tile, first, n_tok, tid, pos_s, lo_s, range_s);
  for (int32_t idx = tid; idx < R * hd; idx += kPrefillThreads) {
    const int32_t r = idx / hd, d = idx - r * hd;
    const TileRow t = tile_row(tile, R, r, G);
    Qs[r * QS + d] = t.tok < n_tok ? a.q[tile_row_offset(t, first, a.q_stride, kvh, G, hd) + d] : 0.f;
  }
  __syncthreads();
  const int32_t kmin = range_s[0], kmax = range_s[1];
  const int32_t* table = a.block_tables + int64_t(s) * a.max_blocks;
  const KvT* kbase = static_cast<const KvT*>(a.k) + int64_t(kvh) * hd;
  const KvT* vbase = static_cast<const KvT*>(a.v) + int64_t(kvh) * hd;

  const int cx = tid & 15, ry = tid >> 4;  // scores and output: rows ry + 8i, columns/dims cx + 16j
  const int sr = tid >> 2, sp = tid & 3;   // softmax: row sr, columns sp * 8 .. + 8
  float o[4][DPT];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int k = 0; k < DPT; ++k) o[i][k] = 0.f;
  float m_run = -INFINITY, l_run = 0.f;  // row sr's softmax state (the same in its 4 threads)

  for (int32_t kt = kmin; kt <= kmax; kt += C) {
    if (tid < C) {
      const int32_t j = kt + tid;
      krow_s[tid] = j <= kmax ? kv_row(a, table, j) : -1;
    }
    __syncthreads();
    // Keys outside the tile's range load as zeros: an unwritten page may hold NaN, and 0 * NaN
    // in p.v would poison the row even though the key is masked.
    for (int32_t idx = tid; idx < C * hd; idx += kPrefillThreads) {
      const int32_t c = idx / hd, d = idx - c * hd;
      const int64_t r = krow_s[c];
      Ks[c * KS + d] = r >= 0 ? load_one(kbase + r * a.k_stride + d) : 0.f;
      Vs[c * VS + d] = r >= 0 ? load_one(vbase + r * a.v_stride + d) : 0.f;
    }
    __syncthreads();

    float sacc[4][2] = {};
    for (int32_t d = 0; d < hd; ++d) {
      float qv[4], kv2[2];
#pragma unroll
      for (int i = 0; i < 4; ++i) qv[i] = Qs[(ry + 8 * i) * QS + d];
#pragma unroll
      for (int j = 0; j < 2; ++j) kv2[j] = Ks[(cx + 16 * j) * KS + d];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) sacc[i][j] = fmaf(qv[i], kv2[j], sacc[i][j]);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int r = ry + 8 * i, c = cx + 16 * j;
        const int32_t key = kt + c;
        const bool ok = krow_s[c] >= 0 && key <= pos_s[r] && key >= lo_s[r];
        Ss[r * SS + c] = ok ? finish_score(sacc[i][j], a.scale, a.softcap) : -INFINITY;
      }
    __syncthreads();

    float sv[8];
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      sv[c] = Ss[sr * SS + sp * 8 + c];
      mx = fmaxf(mx, sv[c]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mn = fmaxf(m_run, mx);
    float corr = 1.f, sum = 0.f;
    if (mn != -INFINITY) {
      corr = expf(m_run - mn);
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        sv[c] = expf(sv[c] - mn);
        sum += sv[c];
      }
    } else {
#pragma unroll
      for (int c = 0; c < 8; ++c) sv[c] = 0.f;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
#pragma unroll
    for (int c = 0; c < 8; ++c) Ss[sr * SS + sp * 8 + c] = sv[c];
    l_run = l_run * corr + sum;
    m_run = mn;
    if (sp == 0) corr_s[sr] = corr;
    __syncthreads();

#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float cr = corr_s[ry + 8 * i];
#pragma unroll
      for (int k = 0; k < DPT; ++k) o[i][k] *= cr;
    }
    for (int c = 0; c < C; ++c) {
      float pv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) pv[i] = Ss[(ry + 8 * i) * SS + c];
#pragma unroll
      for (int k = 0; k < DPT; ++k) {
        const float vval = Vs[c * VS + cx + 16 * k];  // columns >= hd are never stored
#pragma unroll
        for (int i = 0; i < 4; ++i) o[i][k] = fmaf(pv[i], vval, o[i][k]);
      }
    }
    __syncthreads();  // the next tile overwrites krow_s, Ks, Vs, Ss
  }
  if (sp == 0) l_s[sr] = l_run;
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ry + 8 * i;
    const TileRow t = tile_row(tile, R, r, G);
    if (t.tok >= n_tok) continue;
    const float inv = 1.f / l_s[r];
    float* orow = a.out + tile_row_offset(t, first, a.out_stride, kvh, G, hd);
#pragma unroll
    for (int k = 0; k < DPT; ++k) {
      const int32_t d = cx + 16 * k;
      if (d < hd) orow[d] = o[i][k] * inv;
    }
  }
}

template <typename KvT, int HDMAX>
Status launch_prefill(Context& ctx, const AttnArgs& a, const PrefillPlan& plan, dim3 grid) {
  constexpr size_t smem = PrefillSmem<HDMAX>::bytes;
  if constexpr (smem > kDefaultSmem)
    ANVIL_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<KvT, HDMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(smem)));
  prefill_kernel<KvT, HDMAX><<<grid, kPrefillThreads, smem, ctx.stream>>>(a, plan);
  ANVIL_CUDA_CHECK_LAUNCH("prefill_kernel");
  return Status::ok();
}

template <typename KvT>
Status launch_prefill_hd(Context& ctx, const AttnArgs& a, const PrefillPlan& plan, dim3 grid) {
  if (a.head_dim <= 32) return launch_prefill<KvT, 32>(ctx, a, plan, grid);
  if (a.head_dim <= 64) return launch_prefill<KvT, 64>(ctx, a, plan, grid);
  if (a.head_dim <= 128) return launch_prefill<KvT, 128>(ctx, a, plan, grid);
  return launch_prefill<KvT, 256>(ctx, a, plan, grid);
}

template <int HD>
Status launch_prefill_mma(Context& ctx, const AttnArgs& a, const PrefillPlan& plan, dim3 grid) {
  constexpr size_t smem = MmaTile<HD>::bytes;
  if constexpr (smem > kDefaultSmem)
    ANVIL_CUDA_CHECK(
        cudaFuncSetAttribute(prefill_mma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  prefill_mma_kernel<HD><<<grid, 128, smem, ctx.stream>>>(a, plan);
  ANVIL_CUDA_CHECK_LAUNCH("prefill_mma_kernel");
  return Status::ok();
}

// The tensor-core prefill takes F16 KV at head_dim 64 / 128 / 256 with 16-byte aligned rows
// (cp.async) on sm_80+; everything else takes the f32 kernel.
bool use_mma_prefill(const Context& ctx, const KvLayer& kv, int32_t head_dim) {
  if (!kUseMmaPrefill || ctx.cc_major < 8 || kv.k.type != DType::F16) return false;
  if (head_dim != 64 && head_dim != 128 && head_dim != 256) return false;
  return kv.k.row_stride % 16 == 0 && kv.v.row_stride % 16 == 0 && reinterpret_cast<uintptr_t>(kv.k.data) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(kv.v.data) % 16 == 0;
}

}  // namespace

Status run_prefill(Context& ctx, const AttnArgs& a, const KvLayer& kv, int32_t n_kv_heads, const DeviceStep& hs,
                   const std::vector<int32_t>& seqs) {
  const bool mma = use_mma_prefill(ctx, kv, a.head_dim);
  const int64_t tile_rows = mma ? kMmaRows : kPrefillRows;
  for (size_t i0 = 0; i0 < seqs.size(); i0 += kPlanSeqs) {
    PrefillPlan plan;
    int64_t tiles = 0;
    for (size_t i = i0; i < std::min(seqs.size(), i0 + kPlanSeqs); ++i) {
      plan.seq[plan.n_seqs] = seqs[i];
      plan.tile_start[plan.n_seqs] = int32_t(tiles);
      tiles += ceil_div(int64_t(hs.seq_n_tokens[seqs[i]]) * a.group, tile_rows);
      ++plan.n_seqs;
    }
    plan.tile_start[plan.n_seqs] = int32_t(tiles);
    if (tiles > INT32_MAX)
      return make_error(StatusCode::unsupported, "attention: ", tiles, " prefill tiles in one step");
    const dim3 grid{unsigned(tiles), unsigned(n_kv_heads), 1u};
    if (mma) {
      switch (a.head_dim) {
        case 64: ANVIL_RETURN_IF_ERROR(launch_prefill_mma<64>(ctx, a, plan, grid)); break;
        case 128: ANVIL_RETURN_IF_ERROR(launch_prefill_mma<128>(ctx, a, plan, grid)); break;
        default: ANVIL_RETURN_IF_ERROR(launch_prefill_mma<256>(ctx, a, plan, grid)); break;
      }
    } else if (kv.k.type == DType::F16) {
      ANVIL_RETURN_IF_ERROR(launch_prefill_hd<__half>(ctx, a, plan, grid));
    } else {
      ANVIL_RETURN_IF_ERROR(launch_prefill_hd<float>(ctx, a, plan, grid));
    }
  }
  return Status::ok();
}

}  // namespace anvil::cuda::attn
