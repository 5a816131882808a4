// Internal to cuda/attention*.cu: what the decode and prefill kernels share (the kernel
// arguments and prefill plan with its per-tile row setup, the KV-row lookup through the block
// table, score finishing) and the two entry points
// cuda/attention.cu dispatches to. cuda/attention.cu's comment describes the whole op.
#pragma once

#include <cuda_fp16.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda/ops.h"

namespace anvil::cuda::attn {

constexpr int kMaxHeadDim = 256;
constexpr int kDecodeMaxTokens = 4;  // a sequence with <= this many tokens in the step takes the decode kernel
constexpr size_t kDefaultSmem = 48 * 1024;

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

// The prefill kernels' launch plan: the sequences of one launch and where each one's tiles
// start, passed by value (nothing is uploaded).
constexpr int kPlanSeqs = 64;  // sequences per prefill launch
struct PrefillPlan {
  int32_t n_seqs = 0;
  int32_t seq[kPlanSeqs] = {};
  int32_t tile_start[kPlanSeqs + 1] = {};  // blockIdx.x of each sequence's first tile
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline int32_t pow2_ceil(int64_t x) {
  int32_t p = 1;
  while (p < x) p *= 2;
  return p;
}

__device__ __forceinline__ int32_t window_start(int32_t pos, int32_t window) {
  return window > 0 ? max(0, pos - window + 1) : 0;
}

// KV row of position j of a sequence, or -1 when its page is missing or outside the layer (a
// replayed graph runs with tables nobody validated; such a key is skipped, never read).
// table[i] is the entry of the sequence's block first_block + i (the whole row, or a staged
// slice of it that holds j's block).
__device__ __forceinline__ int64_t kv_row(const AttnArgs& a, const int32_t* table, int32_t j,
                                          int32_t first_block = 0) {
  const int32_t b = j / a.page_size;
  const int32_t page = b < a.max_blocks ? table[b - first_block] : -1;
  if (page < 0 || page >= a.n_pages) return -1;
  return int64_t(page) * a.page_size + (j - b * a.page_size);
}

// The planned (sequence, tile) a prefill block runs: blockIdx.x found in the plan's tile starts.
struct PlannedTile {
  int32_t seq, tile;
};
__device__ __forceinline__ PlannedTile planned_tile(const PrefillPlan& plan) {
  int e = 0;
  while (e + 1 < plan.n_seqs && plan.tile_start[e + 1] <= int32_t(blockIdx.x)) ++e;
  return {plan.seq[e], int32_t(blockIdx.x) - plan.tile_start[e]};
}

// Row r of a prefill tile is the (token, head) pair tile * BM + r of its sequence, token-major:
// the `group` query heads that share the block's KV head are adjacent rows. tok >= n_tok marks a
// padding row of the sequence's last tile.
struct TileRow {
  int64_t tok;
  int32_t head;  // within the KV head's group
};
__device__ __forceinline__ TileRow tile_row(int32_t tile, int BM, int r, int32_t group) {
  const int64_t f = int64_t(tile) * BM + r;
  const int64_t tok = f / group;
  return {tok, int32_t(f - tok * group)};
}

// Offset of a tile row's head_dim values in a [token][n_q_heads * head_dim] row of stride `stride`
// (the query input and the output share this layout).
__device__ __forceinline__ int64_t tile_row_offset(const TileRow& t, int32_t first, int64_t stride, int32_t kvh,
                                                   int32_t group, int32_t hd) {
  return (first + t.tok) * stride + int64_t(kvh * group + t.head) * hd;
}

// Run by one whole warp of a prefill block: the position and window start of each of the tile's
// BM (token, head) rows (rows past the sequence's n_tok tokens get -1 / INT_MAX, so every key
// is masked for them), and the tile's key range [min lo, max pos] into range_s[0..1].
template <int BM>
__device__ __forceinline__ void prefill_tile_rows(const AttnArgs& a, int32_t tile, int32_t first, int32_t n_tok,
                                                  int lane, int32_t* pos_s, int32_t* lo_s, int32_t* range_s) {
  int32_t pmax = -1, lmin = INT_MAX;
  for (int r = lane; r < BM; r += 32) {
    const int64_t tok = tile_row(tile, BM, r, a.group).tok;
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

__device__ __forceinline__ float finish_score(float dot, float scale, float softcap) {
  float s = scale * dot;
  if (softcap > 0.f) s = softcap * tanhf(s / softcap);
  return s;
}

// Decode kernel over tokens [token_offset, token_offset + rows), whose sequences' keys lie
// within max_pages pages (cuda/attention_decode.cu).
Status run_decode(Context& ctx, const AttnArgs& a, const KvLayer& kv, int32_t n_kv_heads, int32_t token_offset,
                  int32_t rows, int64_t max_pages);

// The prefill kernels over the given sequences of the step (cuda/attention_prefill.cu).
Status run_prefill(Context& ctx, const AttnArgs& a, const KvLayer& kv, int32_t n_kv_heads, const DeviceStep& hs,
                   const std::vector<int32_t>& seqs);

}  // namespace anvil::cuda::attn
