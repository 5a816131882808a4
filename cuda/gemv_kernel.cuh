// The GEMV kernel skeleton shared by the weight types (cuda/gemv_q4k.cu, gemv_q5k.cu,
// gemv_q6k.cu, gemv_q8_0.cu). Each type supplies a "slot" policy: a weight block is split into kSlots
// equal slices (one lane each), and the policy loads a slice, decodes it into int8 words +
// float scales, loads the matching slice of one token's quantized activations, and returns
// their dot product. The skeleton owns the work split:
//   - a warp owns R consecutive rows; its 32 lanes walk the slices of those rows' blocks with
//     stride 32, so a warp reads R contiguous row segments with wide coalesced loads;
//   - per slice, the R rows' weights are loaded first (R independent loads in flight), then each
//     of the N tokens' activations is loaded once and used for all R rows (activation traffic
//     from L1 drops by R; N tokens share each weight load);
//   - the lanes' partial sums are reduced with shuffles and lane r * N + t stores (r, t);
//   - one launch may cover several matrices that read the same activations (Segment).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/status.h"
#include "cuda/check.h"
#include "cuda/gemv_dispatch.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda::gemv_detail {

// Activations quantized per 32 values, token t at q + t * in and ds + t * (in / 32):
// q int8 [n, in], ds = (d, d * sum of the 32 quants) per block, x ~= d * q.
struct ActQ8 {
  const int8_t* q;
  const float2* ds;
  int64_t in;
};

// One weight matrix of a launch and where its rows go. A launch covers up to kMaxSegments
// matrices of one type and width that read the same activations (q, k and v; gate and up): their
// warps are numbered one after the other, segment i's from first_warp (each segment starts a
// new warp, so a warp's R rows never straddle two matrices).
struct Segment {
  const uint8_t* weight;
  int64_t row_stride;  // bytes
  int64_t out;         // rows
  float* y;
  int64_t y_stride;    // floats between tokens
  int64_t first_warp;
};
constexpr int kMaxSegments = 3;

struct KernelArgs {
  int n_segs;
  Segment seg[kMaxSegments];
  int blocks_per_row;
  ActQ8 act;
  bool prefetch_l2;  // also fetch the rows past the first round into L2 before pdl_wait
};

constexpr int kWarpsPerBlock = 4;

// The segment warp `warp` of a launch belongs to. Static indices only (selects, no local-memory
// copy of the parameters).
__device__ __forceinline__ Segment segment_of(const KernelArgs& a, int64_t warp) {
  Segment g = a.seg[0];
#pragma unroll
  for (int i = 1; i < kMaxSegments; ++i)
    if (i < a.n_segs && warp >= a.seg[i].first_warp) g = a.seg[i];
  return g;
}

// Numbers the segments' warps (Segment::first_warp) for R rows per warp; returns the launch's
// blocks of kWarpsPerBlock warps.
inline int64_t number_warps(KernelArgs& a, int rows_per_warp) {
  int64_t warps = 0;
  for (int i = 0; i < a.n_segs; ++i) {
    a.seg[i].first_warp = warps;
    warps += (a.seg[i].out + rows_per_warp - 1) / rows_per_warp;
  }
  return (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
}

// Slices a lane has in flight per round: U rounds of 32 slices are loaded before any is used.
// With one slice per round a 2560-row Q4_K down projection (R = 1, 9.5 rounds per lane) keeps
// ~20 KB in flight per SM, too little to cover the memory latency. Measured on the H100
// (bench-kernels, n = 1, bench/NOTES.md): 4 per round at R = 1 took Q4_K down 12.56 -> 11.78 us,
// k/v 4.72 -> 4.32, o 6.65 -> 6.31; 2 per round at R = 2 made gate/up slower (11.14 -> 11.69) and
// Q6_K (larger slices, 4 at R = 1) lost 23% (down 16.6 -> 20.4 us). So only the Q4_K-layout slots
// (Slot::kDeepRounds) take 4, and only at R = 1.
template <class Slot, int R>
constexpr int kRoundSlices = (R == 1 && Slot::kDeepRounds) ? 4 : 1;

// One warp per R rows; no persistence: a persistent-grid version that loaded the next round's
// weights before computing the current one measured 3-4% slower at n = 1 (bench/NOTES.md).
//
// Under programmatic dependent launch (cuda/pdl.h) the weights, which no kernel writes, are
// fetched before pdl_wait: the warp's first round of slices into registers and (prefetch_l2) the
// rest of its rows into L2, while the kernel that produces the activations is still finishing.
template <class Slot, int N, int R>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) gemv_kernel(const KernelArgs a) {
  constexpr int U = kRoundSlices<Slot, R>;
  const int lane = threadIdx.x & 31;
  const int64_t warp = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const Segment g = segment_of(a, warp);
  const int64_t row0 = (warp - g.first_warp) * R;
  if (row0 >= g.out) {  // the last block's spare warps
    pdl_wait();
    return;
  }

  // Rows past the end (out not a multiple of R) re-read the last row and are never stored.
  const uint8_t* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rows[r] = g.weight + min(row0 + r, g.out - 1) * g.row_stride;

  const int slices = a.blocks_per_row * Slot::kSlots;
  typename Slot::Raw raw[U][R];
  // One round: slices s0, s0 + 32, .., s0 + 32 (U - 1) of every row (those past the row skipped).
  const auto load_round = [&](int s0) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + 32 * u;
      if (s < slices) {
#pragma unroll
        for (int r = 0; r < R; ++r)
          raw[u][r] = Slot::load(rows[r] + int64_t(s / Slot::kSlots) * Slot::kBytes, s % Slot::kSlots);
      }
    }
  };
  load_round(lane);
  if (a.prefetch_l2) {
    const int64_t row_bytes = int64_t(a.blocks_per_row) * Slot::kBytes;
    const int64_t first_round = int64_t(U) * (32 / Slot::kSlots) * Slot::kBytes;  // bytes load_round covered
#pragma unroll
    for (int r = 0; r < R; ++r)
      for (int64_t off = first_round + 128 * lane; off < row_bytes; off += 32 * 128) prefetch_l2(rows[r] + off);
  }
  pdl_wait();

  float acc[R][N];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < N; ++t) acc[r][t] = 0.0f;

  for (int s0 = lane; s0 < slices; s0 += 32 * U) {
    if (s0 != lane) load_round(s0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = s0 + 32 * u;
      if (s >= slices) break;
      const int b = s / Slot::kSlots, part = s % Slot::kSlots;
      typename Slot::Weights w[R];
#pragma unroll
      for (int r = 0; r < R; ++r) w[r] = Slot::decode(raw[u][r], part);
#pragma unroll
      for (int t = 0; t < N; ++t) {
        const typename Slot::Acts x = Slot::load_acts(a.act, t, b, part);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][t] += Slot::dot(w[r], x);
      }
    }
  }
  // The next kernel may be scheduled once every warp has issued its last weight load (earlier,
  // its blocks would take SM slots, and its prefetches bandwidth, from this one's main loop).
  pdl_allow_dependents();

#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < N; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == (r * N + t) % 32 && row0 + r < g.out) g.y[t * g.y_stride + row0 + r] = v;
    }
}

template <class Slot, int N, int R>
Status launch_rows(KernelArgs a, cudaStream_t stream) {
  const int64_t blocks = number_warps(a, R);
  return launch_pdl("gemv_kernel", gemv_kernel<Slot, N, R>, dim3(unsigned(blocks)), dim3(32 * kWarpsPerBlock), 0,
                    stream, a);
}

// n in 1..8 (the caller splits larger batches).
template <class Slot>
Status launch_slots(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  return gemv_dispatch::with_tokens_and_rows("gemv", n, rows_per_warp,
                                             [&]<int N, int R>() { return launch_rows<Slot, N, R>(a, stream); });
}

// Per-type entry points (one .cu each).
Status launch_q4k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);
Status launch_q5k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);
Status launch_q6k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);
Status launch_q8_0(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream);

}  // namespace anvil::cuda::gemv_detail
