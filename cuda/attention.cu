// Attention over the paged KV cache on CUDA (Backend::attention; cpu/ops_attention.cpp is the
// oracle and its validation is mirrored here line for line).
//
// A token t of sequence s at position p attends to positions j in [lo, p] (lo = p - window + 1
// with a sliding window, else 0); position j lives in KV row
// block_tables[s][j / page_size] * page_size + j % page_size. KV is F32 or F16 (what the CPU
// supports); all math is f32 (FMA), so F32 KV matches the CPU's double-accumulated oracle to ~1e-6.
//
// Kernels, chosen per sequence by its token count in the step (and by shape for prefill):
//
// 1. decode_split_kernel + decode_combine_kernel: sequences with at most kDecodeMaxTokens tokens.
//    Grid (token, kv head x head chunk, split). One block holds all q heads of a GQA group (up to
//    8; larger groups use several chunks), so each KV row is read once per group, not once per q
//    head. Lanes are grouped tpk per key: each lane owns up to 8 of the head's elements (one 16-
//    byte load for F16 at head_dim 64..256), the group's q.k is a butterfly over tpk lanes, and each
//    group keeps an online softmax (max, sum, acc) over its keys; the block's groups are merged
//    in shared memory. Split-K: the key range [0, max_blocks * page_size) is cut into n_splits
//    page-aligned chunks; a split writes (max, sum, unnormalised acc) to scratch and the combine
//    kernel merges them (n_splits == 1 writes the output directly). n_splits comes from
//    max_blocks, n_tokens and the shapes only, and every split reads its token's position (and so
//    its real context) on the device, skipping what lies outside: the CUDA-graph launch rule of
//    cuda/ops.h holds for decode steps.
// 2. prefill_kernel: sequences with more tokens. Tiles of 32 (token, head) rows of one sequence and
//    one kv head group (the group's heads are packed into the rows, so GQA reuses every K/V tile
//    for all of them), 32 keys at a time through shared memory, f32 FMA, online softmax, causal
//    and window masks per row. The host plans the tiles (a multi-token step may use host data for
//    launches) and passes the plan by value, so nothing is uploaded and no block idles.
// 3. prefill_mma_kernel: the same plan on tensor cores (mma.sync m16n8k16, f16 in, f32 out) for
//    F16 KV at head_dim 64/128/256: 64-row tiles, FlashAttention-2 register layout. q and the
//    softmax weights are rounded to f16 (~5e-4 relative), so it is not used for F32 KV, whose
//    point is exactness. kUseMmaPrefill switches it off.
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
#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/ops.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda {
namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kLaneElems = 8;          // head elements per lane in the decode kernel: 32 lanes x 8 = 256
constexpr int kDecodeThreads = 128;
constexpr int kDecodeMaxHeads = 8;     // q heads per decode block (a GQA group, or a chunk of one)
constexpr int kDecodeMaxTokens = 4;    // a sequence with <= this many tokens in the step takes the decode kernel
constexpr int kCombineThreads = 128;   // head_dim <= 2 * 128
// Split-K plan, measured on the H100 (bench-kernels, Qwen3-4B 32/8 x 128, F16 KV, B = 1):
//   up to 2048 keys: 16 blocks per SM, >= 32 keys per split (512 keys: 16.4 us; 4 / 128: 27 us)
//   longer:          4 blocks per SM, >= 128 keys per split (4096: 35 us, 16384: 70 us; 16 / 32
//                    gave 58 and 159 us: the extra splits' merge and combine cost more)
// The decode kernel itself is latency-bound (each iteration waits on a page-table load, then the
// K/V rows): bench/NOTES.md has the numbers and the next steps.
constexpr int64_t kShortContextKeys = 2048;
constexpr int kTargetBlocksPerSmShort = 16, kTargetBlocksPerSm = 4;
constexpr int64_t kMinKeysPerSplitShort = 32;
constexpr int64_t kMinKeysPerSplit = 128;
constexpr int64_t kMaxKeysPerSplit = 2048;
constexpr int64_t kMaxSplits = 256;
constexpr size_t kSplitScratchBudget = size_t(64) << 20;  // bytes of split-K partials at most
constexpr size_t kDefaultSmem = 48 * 1024;

constexpr int kPrefillRows = 32;  // (token, head) rows per tile
constexpr int kPrefillKeys = 32;  // keys per K/V tile
constexpr int kPrefillThreads = 128;
constexpr int kPlanSeqs = 64;     // sequences per prefill launch
// The tensor-core prefill (prefill_mma_kernel) for F16 KV at head_dim 64/128/256; false routes
// everything to the f32 kernel (the switch to pull if the first GPU run disagrees with the CPU).
constexpr bool kUseMmaPrefill = true;

// What every attention kernel reads.
struct AttnArgs {
  const float* q = nullptr;
  float* out = nullptr;
  int64_t q_stride = 0, out_stride = 0;  // floats between rows
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t k_stride = 0, v_stride = 0;    // elements between KV rows
  int64_t n_pages = 0;                   // pages of the layer (a page outside is never read)
  int32_t n_heads = 0, group = 0, head_dim = 0;
  float scale = 0.f, softcap = 0.f;
  int32_t window = 0;
  int32_t page_size = 0, max_blocks = 0;
  const int32_t* positions = nullptr;
  const int32_t* token_seq = nullptr;
  const int32_t* seq_first_token = nullptr;
  const int32_t* seq_n_tokens = nullptr;
  const int32_t* block_tables = nullptr;
};

struct DecodeArgs {
  AttnArgs a;
  int32_t token_offset = 0;       // the grid's x covers tokens [token_offset, token_offset + gridDim.x)
  int32_t decode_max_tokens = 0;  // tokens of longer sequences are the prefill kernel's
  int32_t n_chunks = 1;           // head chunks per kv head
  int32_t n_splits = 1, pages_per_split = 1;
  int32_t tpk = 32;               // lanes per key (power of two <= 32)
  int32_t nvec = 0;               // head_dim / elements per load
  float* part_ml = nullptr;       // [rows][n_heads][n_splits][2]: max, sum
  float* part_acc = nullptr;      // [rows][n_heads][n_splits][head_dim]
};

struct PrefillPlan {
  int32_t n_seqs = 0;
  int32_t seq[kPlanSeqs] = {};
  int32_t tile_start[kPlanSeqs + 1] = {};  // blockIdx.x of each sequence's first tile
};

__device__ __forceinline__ int32_t window_start(int32_t pos, int32_t window) {
  return window > 0 ? max(0, pos - window + 1) : 0;
}

// KV row of position j of a sequence, or -1 when its page is missing or outside the layer (a
// replayed graph runs with tables nobody validated; such a key is skipped, never read).
__device__ __forceinline__ int64_t kv_row(const AttnArgs& a, const int32_t* table, int32_t j) {
  const int32_t b = j / a.page_size;
  const int32_t page = b < a.max_blocks ? table[b] : -1;
  if (page < 0 || page >= a.n_pages) return -1;
  return int64_t(page) * a.page_size + (j - b * a.page_size);
}

__device__ __forceinline__ float finish_score(float dot, float scale, float softcap) {
  float s = scale * dot;
  if (softcap > 0.f) s = softcap * tanhf(s / softcap);
  return s;
}

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

template <typename KvT>
__device__ __forceinline__ float load_one(const KvT* p) {
  if constexpr (std::is_same_v<KvT, float>) return *p;
  else return __half2float(*p);
}

// ---- decode: split-K paged attention

template <int HB>
size_t decode_smem_floats(int n_groups, int hd) {
  return size_t(n_groups) * HB * size_t(hd) + 3 * size_t(n_groups) * HB + 2 * HB;
}

// grid (rows, n_kv_heads * n_chunks, n_splits), kDecodeThreads threads. See the file comment.
template <typename KvT, bool kVec, int HB>
__global__ void __launch_bounds__(kDecodeThreads) decode_split_kernel(const __grid_constant__ DecodeArgs p) {
  pdl_begin();  // cuda/pdl.cuh
  constexpr int VEC = kVec ? int(16 / sizeof(KvT)) : 1;
  constexpr int NSLOT = kLaneElems / VEC;   // loads per lane per row
  constexpr int KEYS = HB >= 8 ? 1 : 2;     // keys per group per iteration (register budget at HB 8)
  extern __shared__ float smem[];
  const AttnArgs& a = p.a;

  const int32_t row = int32_t(blockIdx.x);
  const int32_t t = p.token_offset + row;
  const int32_t kvh = int32_t(blockIdx.y) / p.n_chunks, chunk = int32_t(blockIdx.y) % p.n_chunks;
  const int32_t split = int32_t(blockIdx.z);
  const int32_t s = a.token_seq[t];
  if (a.seq_n_tokens[s] > p.decode_max_tokens) return;  // the prefill kernel's token
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

  const int32_t* table = a.block_tables + int64_t(s) * a.max_blocks;
  const KvT* kbase = static_cast<const KvT*>(a.k) + int64_t(kvh) * hd;
  const KvT* vbase = static_cast<const KvT*>(a.v) + int64_t(kvh) * hd;

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
      const int64_t r = j < k1 ? kv_row(a, table, j) : -1;
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

  int e = 0;
  while (e + 1 < plan.n_seqs && plan.tile_start[e + 1] <= int32_t(blockIdx.x)) ++e;
  const int32_t s = plan.seq[e];
  const int32_t tile = int32_t(blockIdx.x) - plan.tile_start[e];
  const int32_t kvh = int32_t(blockIdx.y);
  const int32_t first = a.seq_first_token[s], n_tok = a.seq_n_tokens[s];
  const int32_t G = a.group, hd = a.head_dim;
  const int tid = int(threadIdx.x);

  if (tid < 32) {  // rows' positions and the tile's key range [min lo, max pos]
    const int64_t f = int64_t(tile) * R + tid;
    const int64_t tok = f / G;
    int32_t pos = -1, lo = INT_MAX;
    if (tok < n_tok) {
      pos = a.positions[first + tok];
      lo = window_start(pos, a.window);
    }
    pos_s[tid] = pos;
    lo_s[tid] = lo;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      pos = max(pos, __shfl_xor_sync(0xffffffffu, pos, off));
      lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, off));
    }
    if (tid == 0) {
      range_s[0] = lo;
      range_s[1] = pos;
    }
  }
  for (int32_t idx = tid; idx < R * hd; idx += kPrefillThreads) {
    const int32_t r = idx / hd, d = idx - r * hd;
    const int64_t f = int64_t(tile) * R + r;
    const int64_t tok = f / G;
    const int32_t h = int32_t(f - tok * G);
    Qs[r * QS + d] = tok < n_tok ? a.q[(first + tok) * a.q_stride + int64_t(kvh * G + h) * hd + d] : 0.f;
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
    const int64_t f = int64_t(tile) * R + r;
    const int64_t tok = f / G;
    if (tok >= n_tok) continue;
    const int32_t h = int32_t(f - tok * G);
    const float inv = 1.f / l_s[r];
    float* orow = a.out + (first + tok) * a.out_stride + int64_t(kvh * G + h) * hd;
#pragma unroll
    for (int k = 0; k < DPT; ++k) {
      const int32_t d = cx + 16 * k;
      if (d < hd) orow[d] = o[i][k] * inv;
    }
  }
}

// ---- prefill on tensor cores (F16 KV, head_dim 64 / 128 / 256)
//
// FlashAttention-2's layout on mma.sync m16n8k16 (f16 in, f32 accumulate): 4 warps x 16 rows of
// 64 (token, head) rows; per K/V tile of BN keys, S = Q K^T in registers (Q and K fragments by
// ldmatrix from padded shared rows: a row is HD + 8 halves, so the 8 rows of an 8x8 matrix fall
// in 8 different 16-byte bank groups), mask/scale/softcap/online softmax on the accumulators,
// then P (f16, straight from S's accumulator layout) times V (ldmatrix.trans). K/V rows are
// gathered through the block table with cp.async. Q and P are rounded to f16 here: about 5e-4
// relative each, hence the looser test tolerance for this path.

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

// d += a (16x16, row) * b (16x8, col); f16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem));
}

__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.commit_group;\n" ::);
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

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

  int e = 0;
  while (e + 1 < plan.n_seqs && plan.tile_start[e + 1] <= int32_t(blockIdx.x)) ++e;
  const int32_t s = plan.seq[e];
  const int32_t tile = int32_t(blockIdx.x) - plan.tile_start[e];
  const int32_t kvh = int32_t(blockIdx.y);
  const int32_t first = a.seq_first_token[s], n_tok = a.seq_n_tokens[s];
  const int32_t G = a.group;
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, c4 = lane & 3;  // accumulator row within 8, column pair

  if (warp == 0) {
    int32_t pmax = -1, lmin = INT_MAX;
    for (int r = lane; r < BM; r += 32) {
      const int64_t f = int64_t(tile) * BM + r;
      const int64_t tok = f / G;
      int32_t pos = -1, lo = INT_MAX;
      if (tok < n_tok) {
        pos = a.positions[first + tok];
        lo = window_start(pos, a.window);
      }
      pos_s[r] = pos;
      lo_s[r] = lo;
      pmax = max(pmax, pos);
      lmin = min(lmin, lo);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      pmax = max(pmax, __shfl_xor_sync(0xffffffffu, pmax, off));
      lmin = min(lmin, __shfl_xor_sync(0xffffffffu, lmin, off));
    }
    if (lane == 0) {
      range_s[0] = lmin;
      range_s[1] = pmax;
    }
  }
  for (int idx = tid; idx < BM * (HD / 2); idx += 128) {
    const int r = idx / (HD / 2), d = (idx % (HD / 2)) * 2;
    const int64_t f = int64_t(tile) * BM + r;
    const int64_t tok = f / G;
    float x0 = 0.f, x1 = 0.f;
    if (tok < n_tok) {
      const int32_t h = int32_t(f - tok * G);
      const float* src = a.q + (first + tok) * a.q_stride + int64_t(kvh * G + h) * HD + d;
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
        cp_async_16(kd, kbase + r * a.k_stride + part);
        cp_async_16(vd, vbase + r * a.v_stride + part);
      } else {  // zeros, not NaN from an unwritten page (see prefill_kernel)
        *reinterpret_cast<uint4*>(kd) = make_uint4(0, 0, 0, 0);
        *reinterpret_cast<uint4*>(vd) = make_uint4(0, 0, 0, 0);
      }
    }
    cp_async_wait_all();
    __syncthreads();

    float sc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) sc[nt][i] = 0.f;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      uint32_t af[4];
      ldmatrix_x4(af, Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ST + ks * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t bf[4];
        ldmatrix_x4(bf, Ks + (np * 16 + (lane & 7) + (lane >> 4) * 8) * ST + ks * 16 + ((lane >> 3) & 1) * 8);
        mma_16816(sc[2 * np], af, bf[0], bf[1]);
        mma_16816(sc[2 * np + 1], af, bf[2], bf[3]);
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
        ldmatrix_x4_trans(vb, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ST + dp * 16 + (lane >> 4) * 8);
        mma_16816(o[2 * dp], pa, vb[0], vb[1]);
        mma_16816(o[2 * dp + 1], pa, vb[2], vb[3]);
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
    const int64_t f = int64_t(tile) * BM + r;
    const int64_t tok = f / G;
    if (tok >= n_tok) continue;
    const int32_t h = int32_t(f - tok * G);
    const float inv = 1.f / l_r[i];
    float* orow = a.out + (first + tok) * a.out_stride + int64_t(kvh * G + h) * HD;
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      orow[dt * 8 + 2 * c4] = o[dt][2 * i] * inv;
      orow[dt * 8 + 2 * c4 + 1] = o[dt][2 * i + 1] * inv;
    }
  }
}

// ---- host side

// The contract's checks (core/op_checks.h), then what only the CUDA kernels need.
Status validate(const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                const Tensor& out) {
  ANVIL_RETURN_IF_ERROR(check_attention(q, kv, p, step, out));
  if (step.n_tokens > 0 && (!step.host || !step.seq_first_token || !step.seq_n_tokens))
    return make_error(StatusCode::invalid_argument, "attention: DeviceStep has no host mirror or sequence ranges"
                      " (use this backend's prepare_step)");
  const DeviceStep& hs = host_step(step);
  // The kernels also read each token's sequence range; make_host_step guarantees it, a
  // hand-made step may not.
  for (int32_t s = 0; s < hs.n_seqs; ++s) {
    const int32_t first = hs.seq_first_token[s], n = hs.seq_n_tokens[s];
    if (n < 0 || (n > 0 && (first < 0 || int64_t(first) + n > hs.n_tokens)))
      return make_error(StatusCode::invalid_argument, "attention: sequence ", s, " (first token ", first, ", ", n,
                        " tokens) does not fit the step's ", hs.n_tokens, " tokens");
  }

  if (p.head_dim > kMaxHeadDim)
    return make_error(StatusCode::unsupported, "attention: head_dim ", p.head_dim, " > ", kMaxHeadDim,
                      " has no CUDA kernel");
  const size_t elem = kv.k.type == DType::F32 ? 4 : 2;
  if (q.row_stride % sizeof(float) || out.row_stride % sizeof(float) || kv.k.row_stride % elem ||
      kv.v.row_stride % elem)
    return make_error(StatusCode::unsupported, "attention: row strides must be whole elements (q ", q.row_stride,
                      ", out ", out.row_stride, ", K ", kv.k.row_stride, ", V ", kv.v.row_stride, " bytes)");
  return Status::ok();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int32_t pow2_ceil(int64_t x) {
  int32_t p = 1;
  while (p < x) p *= 2;
  return p;
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

// Decode kernel over tokens [token_offset, token_offset + rows), whose sequences' keys lie
// within max_pages pages.
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

// The prefill kernel over the given sequences, kPlanSeqs per launch.
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

}  // namespace

Status attention(Context& ctx, const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                 Tensor out) {
  ANVIL_RETURN_IF_ERROR(validate(q, kv, p, step, out));
  if (step.n_tokens == 0) return Status::ok();
  const DeviceStep& hs = host_step(step);
  const size_t elem = kv.k.type == DType::F32 ? 4 : 2;

  AttnArgs a;
  a.q = static_cast<const float*>(q.data);
  a.out = static_cast<float*>(out.data);
  a.q_stride = int64_t(q.row_stride / sizeof(float));
  a.out_stride = int64_t(out.row_stride / sizeof(float));
  a.k = kv.k.data;
  a.v = kv.v.data;
  a.k_stride = int64_t(kv.k.row_stride / elem);
  a.v_stride = int64_t(kv.v.row_stride / elem);
  a.n_pages = kv.k.rows / step.page_size;
  a.n_heads = p.n_heads;
  a.group = p.n_heads / p.n_kv_heads;
  a.head_dim = p.head_dim;
  a.scale = p.scale;
  a.softcap = p.softcap;
  a.window = p.sliding_window;
  a.page_size = step.page_size;
  a.max_blocks = step.max_blocks;
  a.positions = step.positions;
  a.token_seq = step.token_seq;
  a.seq_first_token = step.seq_first_token;
  a.seq_n_tokens = step.seq_n_tokens;
  a.block_tables = step.block_tables;

  // Which sequences go where. A decode step (every sequence one token) launches from n_tokens
  // and max_blocks alone (CUDA-graph rule); other steps may size launches from the host mirror.
  int32_t max_seq_tokens = 0;
  int32_t short_first = INT32_MAX, short_end = 0;
  int64_t short_pages = 0;
  std::vector<int32_t> long_seqs;
  for (int32_t s = 0; s < hs.n_seqs; ++s) {
    const int32_t n = hs.seq_n_tokens[s];
    max_seq_tokens = std::max(max_seq_tokens, n);
    if (n == 0) continue;
    if (n > kDecodeMaxTokens) {
      long_seqs.push_back(s);
    } else {
      short_first = std::min(short_first, hs.seq_first_token[s]);
      short_end = std::max(short_end, hs.seq_first_token[s] + n);
      short_pages = std::max<int64_t>(short_pages, ceil_div(hs.context_lens[s], step.page_size));
    }
  }
  if (max_seq_tokens <= 1)
    return run_decode(ctx, a, kv, p.n_kv_heads, 0, step.n_tokens, std::max<int32_t>(step.max_blocks, 1));
  if (short_end > short_first)
    ANVIL_RETURN_IF_ERROR(run_decode(ctx, a, kv, p.n_kv_heads, short_first, short_end - short_first, short_pages));
  if (!long_seqs.empty()) ANVIL_RETURN_IF_ERROR(run_prefill(ctx, a, kv, p.n_kv_heads, hs, long_seqs));
  return Status::ok();
}

}  // namespace anvil::cuda
