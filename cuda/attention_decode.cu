// Paged decode attention on CUDA: split-K over the key range, one block per (token, kv head
// group, split). cuda/attention.cu describes the op; this is its kernel 1.
//
// decode_split_kernel + decode_combine_kernel: sequences with at most kDecodeMaxTokens tokens.
// Grid (token, kv head x head chunk, split). One block holds all q heads of a GQA group (up to
// 8; larger groups use several chunks), so each KV row is read once per group, not once per q
// head. Lanes are grouped tpk per key: each lane owns up to 8 of the head's elements (one 16-
// byte load for F16 at head_dim 64..256), the group's q.k is a butterfly over tpk lanes, and each
// group keeps an online softmax (max, sum, acc) over its keys; the block's groups are merged
// in shared memory. Split-K: the key range [0, max_blocks * page_size) is cut into n_splits
// page-aligned chunks; a split writes (max, sum, unnormalised acc) to scratch and the combine
// kernel merges them (n_splits == 1 writes the output directly). n_splits comes from
// max_blocks, n_tokens and the shapes only, and every split reads its token's position (and so
// its real context) on the device, skipping what lies outside: the CUDA-graph launch rule of
// cuda/ops.h holds for decode steps.
//
// Decode at Qwen3-4B shape (32 q heads / 8 kv heads x 128, context 4096, F16 KV), per layer and
// token:
//   FLOPs: q.k 32 * 4096 * 128 * 2 = 33.6 M, p.v the same: 67.1 MFLOP (+ ~0.5 M for the softmax).
//   Bytes: K + V = 2 * 4096 * 8 * 128 * 2 B = 16.78 MB; q, out, table ~ 35 KB: ~16.8 MB.
//   Floor at 3.0 TB/s: 16.8 MB / 3.0 TB/s = 5.6 us per layer (x 36 layers = 0.20 ms per token).
//   Intensity 4 FLOP/byte: bandwidth-bound by far, so the kernel is built around loads (16-byte
//   loads, K and V of two keys in flight per lane (one at 8 heads per block, for registers),
//   split-K to fill all SMs at batch 1).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/attention_kernels.cuh"
#include "cuda/check.h"
#include "cuda/env_switch.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda::attn {
namespace {

constexpr int kLaneElems = 8;          // head elements per lane in the decode kernel: 32 lanes x 8 = 256
constexpr int kDecodeThreads = 128;
constexpr int kDecodeMaxHeads = 8;     // q heads per decode block (a GQA group, or a chunk of one)
constexpr int kCombineThreads = 128;   // head_dim <= 2 * 128
// Split-K plan, measured on the H100 (bench-kernels, Qwen3-4B 32/8 x 128, F16 KV, B = 1):
//   up to 2048 keys: 16 blocks per SM, >= 32 keys per split (512 keys: 16.4 us; 4 / 128: 27 us)
//   longer:          4 blocks per SM, >= 128 keys per split (4096: 35 us, 16384: 70 us; 16 / 32
//                    gave 58 and 159 us: the extra splits' merge and combine cost more)
// (Those figures predate PDL and the staging below.) The kernel is latency-bound: each iteration
// waits on the K/V rows, and before staging also on a page-table load. It now stages the split's
// table entries in shared memory and prefetches its first K/V lines to L2 before the PDL wait.
// bench/NOTES.md has the numbers and the next steps.
constexpr int64_t kShortContextKeys = 2048;
constexpr int kTargetBlocksPerSmShort = 16, kTargetBlocksPerSm = 4;
constexpr int64_t kMinKeysPerSplitShort = 32;
constexpr int64_t kMinKeysPerSplit = 128;
constexpr int64_t kMaxKeysPerSplit = 2048;
constexpr int64_t kMaxSplits = 256;
// A split's block-table entries are staged in shared memory when it spans at most this many
// pages (2048 keys at 16 per page); longer splits read the table in global memory.
constexpr int32_t kStagedPages = 128;
constexpr int32_t kPrefetchKeys = 64;  // keys whose K/V rows are prefetched to L2 before the wait
constexpr size_t kSplitScratchBudget = size_t(64) << 20;  // bytes of split-K partials at most

struct DecodeArgs {
  AttnArgs a;
  int32_t token_offset = 0;       // the grid's x covers tokens [token_offset, token_offset + gridDim.x)
  int32_t decode_max_tokens = 0;  // tokens of longer sequences are the prefill kernel's
  int32_t n_chunks = 1;           // head chunks per kv head
  int32_t n_splits = 1, pages_per_split = 1;
  int32_t tpk = 32;               // lanes per key (power of two <= 32)
  int32_t nvec = 0;               // head_dim / elements per load
  int32_t stage = 1;              // stage the split's block-table entries and prefetch its K/V before the wait
  float* part_ml = nullptr;       // [rows][n_heads][n_splits][2]: max, sum
  float* part_acc = nullptr;      // [rows][n_heads][n_splits][head_dim]
};

// VEC consecutive KV elements as f32: one 16-byte load when VEC > 1 (aligned by the host's choice).
template <typename KvT, int VEC>
__device__ __forceinline__ void load_kv(const KvT* __restrict__ p, float* dst) {
  if constexpr (std::is_same_v<KvT, float>) {
    if constexpr (VEC == 4) {
      const float4 x = __ldg(reinterpret_cast<const float4*>(p));
      dst[0] = x.x;
      dst[1] = x.y;
      dst[2] = x.z;
      dst[3] = x.w;
    } else {
      static_assert(VEC == 1);
      dst[0] = __ldg(p);
    }
  } else {
    if constexpr (VEC == 8) {
      const uint4 x = __ldg(reinterpret_cast<const uint4*>(p));
      const uint32_t w[4] = {x.x, x.y, x.z, x.w};  // (no type punning through pointers)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        dst[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] & 0xffffu)));
        dst[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] >> 16)));
      }
    } else {
      static_assert(VEC == 1);
      dst[0] = __half2float(p[0]);
    }
  }
}


// ---- decode: split-K paged attention

template <int HB>
size_t decode_smem_floats(int n_groups, int hd) {
  return size_t(n_groups) * HB * size_t(hd) + 3 * size_t(n_groups) * HB + 2 * HB;
}

// grid (rows, n_kv_heads * n_chunks, n_splits), kDecodeThreads threads. See the file comment.
template <typename KvT, bool kVec, int HB>
__global__ void __launch_bounds__(kDecodeThreads) decode_split_kernel(const __grid_constant__ DecodeArgs p) {
  // Before the wait (cuda/pdl.cuh) this kernel reads only the step's arrays (positions, sequence
  // ranges, block tables: the host uploads them before the step's first kernel and no kernel
  // writes them) and asks L2 for the K/V rows it will read, which changes no memory. So the
  // page-table loads and the first K/V rows' trip from HBM overlap the kernel before this one.
  pdl_allow_dependents();
  constexpr int VEC = kVec ? int(16 / sizeof(KvT)) : 1;
  constexpr int NSLOT = kLaneElems / VEC;   // loads per lane per row
  constexpr int KEYS = HB >= 8 ? 1 : 2;     // keys per group per iteration (register budget at HB 8)
  extern __shared__ float smem[];
  __shared__ int32_t pages_s[kStagedPages];  // the split's block-table entries, when staged
  const AttnArgs& a = p.a;

  const int32_t row = int32_t(blockIdx.x);
  const int32_t t = p.token_offset + row;
  const int32_t kvh = int32_t(blockIdx.y) / p.n_chunks, chunk = int32_t(blockIdx.y) % p.n_chunks;
  const int32_t split = int32_t(blockIdx.z);
  const int32_t s = a.token_seq[t];
  if (a.seq_n_tokens[s] > p.decode_max_tokens) {  // the prefill kernel's token
    pdl_wait();
    return;
  }
  const int32_t hd = a.head_dim;
  const int32_t pos = a.positions[t];
  const int32_t lo = window_start(pos, a.window);
  const int64_t span = int64_t(p.pages_per_split) * a.page_size;
  const int32_t k0 = int32_t(max(int64_t(lo), split * span));
  const int32_t k1 = int32_t(min(int64_t(pos) + 1, (split + 1) * span));
  const int32_t h_first = chunk * HB;
  const int32_t n_h = min(HB, a.group - h_first);
  const int32_t hq0 = kvh * a.group + h_first;
  const int64_t part0 = (int64_t(row) * a.n_heads + hq0) * p.n_splits + split;  // + h * n_splits

  const int32_t* table = a.block_tables + int64_t(s) * a.max_blocks;
  const KvT* kbase = static_cast<const KvT*>(a.k) + int64_t(kvh) * hd;
  const KvT* vbase = static_cast<const KvT*>(a.v) + int64_t(kvh) * hd;
  const int32_t page0 = split * p.pages_per_split;  // the split's first page
  const bool staged = p.stage && p.pages_per_split <= kStagedPages;  // block-uniform
  if (staged && k0 < k1) {
    const int32_t n_pages = min(p.pages_per_split, a.max_blocks - page0);
    for (int32_t i = int32_t(threadIdx.x); i < n_pages; i += kDecodeThreads) pages_s[i] = table[page0 + i];
    __syncthreads();
    constexpr int kLine = 128;
    const int32_t lines = int32_t((int64_t(hd) * sizeof(KvT) + kLine - 1) / kLine);  // per K or V slice
    const int32_t n_keys = min(k1 - k0, kPrefetchKeys);
    for (int32_t i = int32_t(threadIdx.x); i < n_keys * 2 * lines; i += kDecodeThreads) {
      const int32_t key = i / (2 * lines), rest = i - key * 2 * lines;
      const int64_t r = kv_row(a, pages_s, k0 + key, page0);
      if (r < 0) continue;
      const KvT* slice = rest < lines ? kbase + r * a.k_stride : vbase + r * a.v_stride;
      prefetch_l2(reinterpret_cast<const char*>(slice) + (rest % lines) * kLine);
    }
  }
  pdl_wait();

  if (k0 >= k1) {  // nothing of this token in this split (only possible with n_splits > 1)
    if (int32_t(threadIdx.x) < n_h && p.n_splits > 1) {
      float* ml = p.part_ml + (part0 + int64_t(threadIdx.x) * p.n_splits) * 2;
      ml[0] = -INFINITY;
      ml[1] = 0.f;
    }
    return;
  }

  const int tpk = p.tpk;
  const int lane_g = int(threadIdx.x) & (tpk - 1);
  const int kg = int(threadIdx.x) / tpk;
  const int n_groups = kDecodeThreads / tpk;
  const int warp_group0 = (int(threadIdx.x) >> 5) * (32 / tpk);  // first key group of this warp

  int dofs[NSLOT];
  bool dval[NSLOT];
#pragma unroll
  for (int sl = 0; sl < NSLOT; ++sl) {
    const int vi = sl * tpk + lane_g;
    dval[sl] = vi < p.nvec;
    dofs[sl] = vi * VEC;
  }

  float qr[HB][kLaneElems];
  const float* qrow = a.q + int64_t(t) * a.q_stride + int64_t(hq0) * hd;
#pragma unroll
  for (int h = 0; h < HB; ++h)
#pragma unroll
    for (int sl = 0; sl < NSLOT; ++sl)
#pragma unroll
      for (int e = 0; e < VEC; ++e)
        qr[h][sl * VEC + e] = (h < n_h && dval[sl]) ? qrow[int64_t(h) * hd + dofs[sl] + e] : 0.f;

  float m[HB], l[HB], acc[HB][kLaneElems];
#pragma unroll
  for (int h = 0; h < HB; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.f;
#pragma unroll
    for (int i = 0; i < kLaneElems; ++i) acc[h][i] = 0.f;
  }

  // The loop condition is warp-uniform (base and the warp's first group), so every lane of a
  // warp reaches the shuffles; a group whose key is past the range computes a masked score.
  for (int32_t base = k0; base + warp_group0 < k1; base += KEYS * n_groups) {
    float kk[KEYS][kLaneElems], vv[KEYS][kLaneElems];
    bool valid[KEYS];
#pragma unroll
    for (int u = 0; u < KEYS; ++u) {
      const int32_t j = base + u * n_groups + kg;
      const int64_t r = j >= k1 ? -1 : staged ? kv_row(a, pages_s, j, page0) : kv_row(a, table, j);
      valid[u] = r >= 0;
#pragma unroll
      for (int sl = 0; sl < NSLOT; ++sl) {
        if (valid[u] && dval[sl]) {
          load_kv<KvT, VEC>(kbase + r * a.k_stride + dofs[sl], &kk[u][sl * VEC]);
          load_kv<KvT, VEC>(vbase + r * a.v_stride + dofs[sl], &vv[u][sl * VEC]);
        } else {
#pragma unroll
          for (int e = 0; e < VEC; ++e) kk[u][sl * VEC + e] = vv[u][sl * VEC + e] = 0.f;
        }
      }
    }
    float sc[KEYS][HB];
#pragma unroll
    for (int u = 0; u < KEYS; ++u)
#pragma unroll
      for (int h = 0; h < HB; ++h) {
        float d = 0.f;
#pragma unroll
        for (int i = 0; i < kLaneElems; ++i) d = fmaf(qr[h][i], kk[u][i], d);
        sc[u][h] = d;
      }
    for (int off = tpk >> 1; off > 0; off >>= 1)
#pragma unroll
      for (int u = 0; u < KEYS; ++u)
#pragma unroll
        for (int h = 0; h < HB; ++h) sc[u][h] += __shfl_xor_sync(0xffffffffu, sc[u][h], off);
#pragma unroll
    for (int h = 0; h < HB; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int u = 0; u < KEYS; ++u) {
        sc[u][h] = valid[u] ? finish_score(sc[u][h], a.scale, a.softcap) : -INFINITY;
        mx = fmaxf(mx, sc[u][h]);
      }
      const float mn = fmaxf(m[h], mx);
      if (mn == -INFINITY) continue;  // nothing seen yet (exp(-inf - -inf) would be NaN)
      const float corr = expf(m[h] - mn);
      l[h] *= corr;
#pragma unroll
      for (int i = 0; i < kLaneElems; ++i) acc[h][i] *= corr;
#pragma unroll
      for (int u = 0; u < KEYS; ++u) {
        const float pu = expf(sc[u][h] - mn);
        l[h] += pu;
#pragma unroll
        for (int i = 0; i < kLaneElems; ++i) acc[h][i] = fmaf(pu, vv[u][i], acc[h][i]);
      }
      m[h] = mn;
    }
  }

  // Merge the key groups: each writes its (max, sum, acc), then every (head, element) is summed.
  float* acc_s = smem;                                        // [n_groups][HB][hd]
  float* m_s = acc_s + int64_t(n_groups) * HB * hd;           // [n_groups][HB]
  float* l_s = m_s + n_groups * HB;                           // [n_groups][HB]
  float* w_s = l_s + n_groups * HB;                           // [n_groups][HB]
  float* fin_s = w_s + n_groups * HB;                         // [HB][2]: max, sum
#pragma unroll
  for (int h = 0; h < HB; ++h) {
    if (h >= n_h) break;
    float* dst = acc_s + (int64_t(kg) * HB + h) * hd;
#pragma unroll
    for (int sl = 0; sl < NSLOT; ++sl)
      if (dval[sl])
#pragma unroll
        for (int e = 0; e < VEC; ++e) dst[dofs[sl] + e] = acc[h][sl * VEC + e];
    if (lane_g == 0) {
      m_s[kg * HB + h] = m[h];
      l_s[kg * HB + h] = l[h];
    }
  }
  __syncthreads();
  if (int32_t(threadIdx.x) < n_h) {
    const int h = int(threadIdx.x);
    float mx = -INFINITY;
    for (int g = 0; g < n_groups; ++g) mx = fmaxf(mx, m_s[g * HB + h]);
    float sum = 0.f;
    for (int g = 0; g < n_groups; ++g) {
      const float mg = m_s[g * HB + h];
      const float w = mg == -INFINITY ? 0.f : expf(mg - mx);
      w_s[g * HB + h] = w;
      sum += w * l_s[g * HB + h];
    }
    fin_s[2 * h] = mx;
    fin_s[2 * h + 1] = sum;
  }
  __syncthreads();
  for (int32_t idx = int32_t(threadIdx.x); idx < n_h * hd; idx += kDecodeThreads) {
    const int32_t h = idx / hd, d = idx - h * hd;
    float sum = 0.f;
    for (int g = 0; g < n_groups; ++g) sum = fmaf(w_s[g * HB + h], acc_s[(int64_t(g) * HB + h) * hd + d], sum);
    if (p.n_splits == 1) {
      a.out[int64_t(t) * a.out_stride + int64_t(hq0 + h) * hd + d] = sum / fin_s[2 * h + 1];
    } else {
      const int64_t part = part0 + int64_t(h) * p.n_splits;
      p.part_acc[part * hd + d] = sum;
      if (d == 0) {
        p.part_ml[part * 2] = fin_s[2 * h];
        p.part_ml[part * 2 + 1] = fin_s[2 * h + 1];
      }
    }
  }
}

// grid (rows, n_heads): merges a token's head over the splits (log-sum-exp weights).
__global__ void __launch_bounds__(kCombineThreads) decode_combine_kernel(const __grid_constant__ DecodeArgs p) {
  pdl_begin();  // cuda/pdl.cuh
  const AttnArgs& a = p.a;
  const int32_t row = int32_t(blockIdx.x), hq = int32_t(blockIdx.y);
  const int32_t t = p.token_offset + row;
  if (a.seq_n_tokens[a.token_seq[t]] > p.decode_max_tokens) return;
  const int32_t hd = a.head_dim;
  const int64_t base = (int64_t(row) * a.n_heads + hq) * p.n_splits;
  const float* ml = p.part_ml + base * 2;
  const float* acc = p.part_acc + base * hd;
  float mx = -INFINITY;
  for (int32_t sp = 0; sp < p.n_splits; ++sp) mx = fmaxf(mx, ml[2 * sp]);
  float sum = 0.f, o[2] = {0.f, 0.f};
  for (int32_t sp = 0; sp < p.n_splits; ++sp) {
    const float ms = ml[2 * sp];
    if (ms == -INFINITY) continue;  // an empty split: its acc was never written
    const float w = expf(ms - mx);
    sum = fmaf(w, ml[2 * sp + 1], sum);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int32_t d = int32_t(threadIdx.x) + i * kCombineThreads;
      if (d < hd) o[i] = fmaf(w, acc[int64_t(sp) * hd + d], o[i]);
    }
  }
  float* orow = a.out + int64_t(t) * a.out_stride + int64_t(hq) * hd;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int32_t d = int32_t(threadIdx.x) + i * kCombineThreads;
    if (d < hd) orow[d] = o[i] / sum;
  }
}

// How decode rows are split over the key range. Depends only on the row count, the shapes and
// the page span it is given (max_blocks in a decode step).
void plan_splits(const Context& ctx, int64_t rows, int64_t kv_blocks_per_row, int64_t max_pages, int32_t ps,
                 int32_t n_heads, int32_t hd, DecodeArgs& d) {
  const int64_t max_keys = std::max<int64_t>(max_pages, 1) * ps;
  const int64_t base_blocks = std::max<int64_t>(rows * kv_blocks_per_row, 1);
  const bool short_ctx = max_keys <= kShortContextKeys;
  const int64_t target = short_ctx ? kTargetBlocksPerSmShort : kTargetBlocksPerSm;
  int64_t n = ceil_div(target * std::max(ctx.sm_count, 1), base_blocks);
  n = std::max(n, ceil_div(max_keys, kMaxKeysPerSplit));
  n = std::min(n, ceil_div(max_keys, short_ctx ? kMinKeysPerSplitShort : kMinKeysPerSplit));
  n = std::min(n, kMaxSplits);
  const size_t split_bytes = size_t(rows) * size_t(n_heads) * (size_t(hd) + 2) * sizeof(float);
  n = std::min<int64_t>(n, int64_t(kSplitScratchBudget / std::max<size_t>(split_bytes, 1)));
  n = std::max<int64_t>(n, 1);
  const int64_t pps = ceil_div(std::max<int64_t>(max_pages, 1), n);
  d.pages_per_split = int32_t(pps);
  d.n_splits = int32_t(ceil_div(std::max<int64_t>(max_pages, 1), pps));
}

template <typename KvT, bool kVec, int HB>
Status launch_decode_split(Context& ctx, const DecodeArgs& d, dim3 grid, size_t smem) {
  ANVIL_RETURN_IF_ERROR(launch_pdl("decode_split_kernel", decode_split_kernel<KvT, kVec, HB>, grid,
                                   dim3(kDecodeThreads), smem, ctx.stream, d));
  return Status::ok();
}

template <typename KvT, bool kVec>
Status launch_decode_hb(Context& ctx, const DecodeArgs& d, int hb, dim3 grid, size_t smem) {
  switch (hb) {
    case 1: return launch_decode_split<KvT, kVec, 1>(ctx, d, grid, smem);
    case 2: return launch_decode_split<KvT, kVec, 2>(ctx, d, grid, smem);
    case 4: return launch_decode_split<KvT, kVec, 4>(ctx, d, grid, smem);
    default: return launch_decode_split<KvT, kVec, 8>(ctx, d, grid, smem);
  }
}

size_t decode_smem_bytes(int hb, int n_groups, int hd) {
  switch (hb) {
    case 1: return decode_smem_floats<1>(n_groups, hd) * sizeof(float);
    case 2: return decode_smem_floats<2>(n_groups, hd) * sizeof(float);
    case 4: return decode_smem_floats<4>(n_groups, hd) * sizeof(float);
    default: return decode_smem_floats<8>(n_groups, hd) * sizeof(float);
  }
}

}  // namespace

Status run_decode(Context& ctx, const AttnArgs& a, const KvLayer& kv, int32_t n_kv_heads, int32_t token_offset,
                  int32_t rows, int64_t max_pages) {
  DecodeArgs d;
  d.a = a;
  d.token_offset = token_offset;
  d.decode_max_tokens = kDecodeMaxTokens;
  const int hb = std::min(kDecodeMaxHeads, pow2_ceil(a.group));
  d.n_chunks = int32_t(ceil_div(a.group, hb));

  // 16-byte loads when every row's head slice is 16-byte aligned.
  const bool f16 = kv.k.type == DType::F16;
  const int elem = f16 ? 2 : 4;
  const int vec_elems = 16 / elem;
  const bool vec = a.head_dim % vec_elems == 0 && kv.k.row_stride % 16 == 0 && kv.v.row_stride % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(kv.k.data) % 16 == 0 && reinterpret_cast<uintptr_t>(kv.v.data) % 16 == 0;
  const int VEC = vec ? vec_elems : 1;
  const int nslot = kLaneElems / VEC;
  d.nvec = a.head_dim / VEC;
  d.tpk = std::min(32, pow2_ceil(ceil_div(d.nvec, nslot)));
  // ANVIL_CUDA_ATTN_STAGE=0 reads the block table in the loop and prefetches nothing (A/B).
  static const bool stage = env_switch_on("ANVIL_CUDA_ATTN_STAGE");
  d.stage = stage ? 1 : 0;
  const int n_groups = kDecodeThreads / d.tpk;
  const size_t smem = decode_smem_bytes(hb, n_groups, a.head_dim);
  if (smem > kDefaultSmem)
    return make_error(StatusCode::internal, "attention: decode kernel needs ", smem, " bytes of shared memory");

  plan_splits(ctx, rows, int64_t(n_kv_heads) * d.n_chunks, max_pages, a.page_size, a.n_heads, a.head_dim, d);
  if (d.n_splits > 1) {
    const size_t n_part = size_t(rows) * size_t(a.n_heads) * size_t(d.n_splits);
    const size_t ml_bytes = (n_part * 2 * sizeof(float) + 255) & ~size_t(255);
    auto scratch = ctx.scratch(ScratchSlot::attention, ml_bytes + n_part * size_t(a.head_dim) * sizeof(float));
    if (!scratch) return scratch.status();
    d.part_ml = static_cast<float*>(*scratch);
    d.part_acc = reinterpret_cast<float*>(static_cast<char*>(*scratch) + ml_bytes);
  }

  const dim3 grid{unsigned(rows), unsigned(n_kv_heads * d.n_chunks), unsigned(d.n_splits)};
  if (f16) {
    if (vec) ANVIL_RETURN_IF_ERROR((launch_decode_hb<__half, true>(ctx, d, hb, grid, smem)));
    else ANVIL_RETURN_IF_ERROR((launch_decode_hb<__half, false>(ctx, d, hb, grid, smem)));
  } else {
    if (vec) ANVIL_RETURN_IF_ERROR((launch_decode_hb<float, true>(ctx, d, hb, grid, smem)));
    else ANVIL_RETURN_IF_ERROR((launch_decode_hb<float, false>(ctx, d, hb, grid, smem)));
  }
  if (d.n_splits > 1) {
    ANVIL_RETURN_IF_ERROR(launch_pdl("decode_combine_kernel", decode_combine_kernel,
                                     dim3(unsigned(rows), unsigned(a.n_heads)), dim3(kCombineThreads), 0, ctx.stream,
                                     d));
  }
  return Status::ok();
}

}  // namespace anvil::cuda::attn
