// The chunked (WY / UT-transform) form of gated_deltanet on CUDA, for sequences with many tokens
// in the step (cuda/deltanet.cu decides which; cpu/ops_deltanet.cpp has the formulation and is
// the oracle). Per sequence and value head h, chunks of L = DeltaNetParams::chunk tokens (<= 64,
// the last one shorter), G_i = g_0 + .. + g_i within the chunk:
//   A_ij = -beta_i (k_i . k_j) e^{G_i - G_j} (j < i),  T = (I - A)^-1,
//   W = T (beta e^G K),  U = T (beta V),  P_ij = q_scale (q_i . k_j) e^{G_i - G_j} (j <= i),
//   V' = U - W S,  o_i = q_scale e^{G_i} q_i^T S + sum_j P_ij V'_j,
//   S <- e^{G_last} S + sum_j k_j (e^{G_last - G_j} V'_j)^T.
// Everything but the last three lines is independent of S, so it runs for all chunks at once.
//
// Two kernels, all f32 with f32 accumulation (the tests hold every mode to 1e-5 of the CPU's
// double; TF32 tensor cores would give ~1e-3):
//   deltanet_chunk_prep_kernel  grid (chunks, value heads), 256 threads, 100.3 KiB of shared
//     memory (2 blocks an SM): stages the chunk's q, k, g, beta; G in double (the oracle's sums,
//     bit for bit: exponents of differences of G near -100 lose nothing to rounding); A and P from
//     the lower triangle of K K^T and Q K^T (136 4x4 tiles, one a thread); T column by column by
//     forward substitution (64 threads, T in registers; the other warps scale k by e^G and take v
//     in where q was); [W | U] = T diag(beta) [e^G K | V] in 8x8 register tiles. W, U, P and the
//     decays e^{G_i}, e^{G_last - G_i} go to the workspace (ScratchSlot::deltanet), rows by the
//     step's token index: [n_v_heads][n_tokens][128 | 128 | 64 | 2] floats.
//   deltanet_chunk_state_kernel  grid (sequences x column tiles of 32, value heads), 128 threads,
//     156.5 KiB (1 block an SM): holds its 128 x 32 state tile in registers (8 x 4 a thread) and a
//     copy in shared memory, and walks the sequence's chunks: V' = U - W S with Q S (4 rows x 4
//     columns of each a thread), o = q_scale e^G (Q S) + P V', then the state update. The next
//     chunk's W, q, U are copied in (cp.async) while the output and the update run, its P and k
//     while the next products run: each buffer is refilled as soon as its last reader is past a
//     barrier, so one buffer per input suffices.
// Phases and per-thread work live in cuda/deltanet_chunked.cuh (host-compilable, so the layout
// and arithmetic can be emulated on a CPU); this file has the kernels' control flow and launch.
//
// Cost at Qwen3.5-4B (32 value heads, d_k = d_v = 128), 512 tokens, L = 64 (256 chunk-heads):
// prep 1.28 M multiply-adds a chunk-head (scores 0.56, T 0.14, W/U 0.59), state 3.67 M (W S and
// Q S 2.10, P V' 0.52, update 1.05): 2.53 GFLOP in all, 51 us at 50 TFLOP/s; bytes 29.5 MB of
// inputs, outputs and state (10 us at 3 TB/s) plus 21 MB of workspace written and read. So the
// kernels are bound by f32 issue and shared-memory bandwidth, not DRAM (bench/NOTES.md, "Chunked
// gated DeltaNet on CUDA", has the estimate, the measured 123 us and what to look at next).
//
// Sequences are found on the device: block b of a grid takes the b-th chunk (prep) or sequence
// (state) among the sequences with at least min_tokens tokens, by a warp scan of seq_n_tokens.
// The grid sizes come from the host's count; for a step whose sequences all have one token
// (`chunked` mode at decode) they are n_seqs and n_seqs x tiles, so a captured graph replays.
#include "cuda/deltanet_chunked.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "cuda/check.h"
#include "cuda/deltanet_chunked.cuh"
#include "cuda/op_util.h"

namespace anvil::cuda {
namespace {

using namespace dn_chunked;

static_assert(sizeof(PrepShared) <= 110 * 1024, "two prep blocks an SM (228 KiB on sm_90)");
static_assert(sizeof(StateShared) <= 163 * 1024, "the state kernel's shared memory fits sm_80's 163 KiB");

// Warp 0 finds the block's item: the idx-th chunk (per_chunk) or sequence among the sequences
// with at least min_tokens tokens, in step order; item = {sequence, chunk within it}, or
// {-1, ..} past the end. The caller syncs before reading it.
__device__ void find_item(const ChunkedArgs& p, int32_t idx, bool per_chunk, int32_t (&item)[2]) {
  if (threadIdx.x >= 32) return;
  const int lane = int(threadIdx.x);
  if (lane == 0) item[0] = -1;
  __syncwarp();
  int32_t base = 0;  // items in the sequences before this window (the same in every lane)
  for (int32_t s0 = 0; s0 < p.n_seqs && base <= idx; s0 += 32) {
    const int32_t s = s0 + lane;
    const int32_t n = s < p.n_seqs ? p.seq_n_tokens[s] : 0;
    const int32_t w = n > 0 && n >= p.min_tokens ? (per_chunk ? (n + p.chunk - 1) / p.chunk : 1) : 0;
    int32_t incl = w;  // inclusive scan over the window
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const int32_t t = __shfl_up_sync(0xffffffffu, incl, off);
      if (lane >= off) incl += t;
    }
    if (w > 0 && idx >= base + incl - w && idx < base + incl) {  // one lane at most
      item[0] = s;
      item[1] = idx - (base + incl - w);
    }
    base += __shfl_sync(0xffffffffu, incl, 31);
  }
}

__global__ void __launch_bounds__(kPrepThreads, 2) deltanet_chunk_prep_kernel(ChunkedArgs p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  PrepShared& sm = *reinterpret_cast<PrepShared*>(smem_raw);
  const int tid = int(threadIdx.x);
  find_item(p, int32_t(blockIdx.x), true, sm.item);
  __syncthreads();
  const int32_t s = sm.item[0];
  if (s < 0) return;  // the whole block: no barrier is skipped by part of it
  const int32_t h = int32_t(blockIdx.y), kh = h % p.n_k_heads;
  const int32_t t0 = sm.item[1] * p.chunk, len = min(p.chunk, p.seq_n_tokens[s] - t0);
  const int64_t row0 = int64_t(p.seq_first_token[s]) + t0;

  prep_stage_qkgb(p, sm, tid, row0, len, kh, h);
  copy_wait<0>();
  __syncthreads();
  prep_gates(p, sm, tid, row0, len, h);
  __syncthreads();
  prep_scores(p, sm, tid, row0, len, h);
  __syncthreads();
  prep_stage_v(p, sm, tid, row0, len, h);  // q is dead: v lands in its buffer during the next phase
  prep_scale_k(sm, tid);                   // threads 64..255
  prep_t_column(sm, tid);                  // threads 0..63
  copy_wait<0>();
  __syncthreads();
  prep_wu(p, sm, tid, row0, len, h);
}

__global__ void __launch_bounds__(kStateThreads, 1) deltanet_chunk_state_kernel(ChunkedArgs p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  StateShared& sm = *reinterpret_cast<StateShared*>(smem_raw);
  const int tid = int(threadIdx.x);
  find_item(p, int32_t(blockIdx.x) / p.n_tiles, false, sm.item);
  __syncthreads();
  const int32_t s = sm.item[0];
  if (s < 0) return;
  const int32_t col0 = (int32_t(blockIdx.x) % p.n_tiles) * kTileV;
  const int32_t h = int32_t(blockIdx.y), kh = h % p.n_k_heads;
  const int32_t n = p.seq_n_tokens[s], C = p.chunk;
  const int64_t first = p.seq_first_token[s];
  const bool fresh = p.context_lens[s] == n;  // n_past == 0: zero state, whatever the slot holds
  char* state = p.ssm + size_t((int64_t(p.state_slots[s]) * p.n_v_heads + h) * p.d_k) * p.ssm_stride;

  StateRegs r;
  state_load(p, sm, r, tid, state, fresh, col0);
  // Commit groups, in order: X(0) = W, q, U, decays; Y(0) = P, k; then per chunk c, X(c + 1)
  // after its first barrier and Y(c + 1) after its last. At the top of chunk c the groups in
  // flight are X(c) and Y(c): wait<1> leaves Y(c), wait<0> finishes it.
  state_stage_wqu(p, sm, tid, first, min(C, n), kh, h, col0);
  state_stage_pk(p, sm, tid, first, min(C, n), kh, h);
  const int32_t n_chunks = (n + C - 1) / C;
  for (int32_t c = 0; c < n_chunks; ++c) {
    const int32_t t0 = c * C, len = min(C, n - t0);
    const int64_t row0 = first + t0;
    copy_wait<1>();
    __syncthreads();  // X(c) and the state tile visible to all
    state_products(sm, r, tid, len);
    copy_wait<0>();
    __syncthreads();  // Y(c) and V' visible; W, q, U and the decays read by all
    if (c + 1 < n_chunks) state_stage_wqu(p, sm, tid, row0 + C, min(C, n - t0 - C), kh, h, col0);
    state_output(p, sm, r, tid, row0, len, h, col0);
    state_update(sm, r, tid);
    __syncthreads();  // the new state tile visible; P, k and V' read by all
    if (c + 1 < n_chunks) state_stage_pk(p, sm, tid, row0 + C, min(C, n - t0 - C), kh, h);
  }
  state_store(p, r, tid, state, col0);
}

// Opt-in shared memory per block of each device, cached (0: not asked yet).
int max_smem_optin(int device) {
  constexpr int kDevices = 16;
  static std::atomic<int> cache[kDevices] = {};
  if (device < 0 || device >= kDevices) return 0;
  int v = cache[device].load(std::memory_order_relaxed);
  if (v == 0) {
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    cache[device].store(v, std::memory_order_relaxed);
  }
  return v;
}

}  // namespace

std::string deltanet_chunked_unsupported(const Context& ctx, const DeltaNetParams& p) {
  if (p.d_k > kMaxDk || p.d_v > kMaxDv)
    return "d_k " + std::to_string(p.d_k) + ", d_v " + std::to_string(p.d_v) + " (the chunked kernels take <= " +
           std::to_string(kMaxDk) + ")";
  if (p.chunk > kChunkMax)
    return "chunk " + std::to_string(p.chunk) + " (the chunked kernels take <= " + std::to_string(kChunkMax) + ")";
  const int smem = max_smem_optin(ctx.device);
  if (smem < int(sizeof(StateShared)))
    return "the GPU has " + std::to_string(smem) + " bytes of shared memory per block, the chunked kernels need " +
           std::to_string(sizeof(StateShared));
  return "";
}

Status gated_deltanet_chunked(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                              const Tensor& beta, const RecurrentLayer& state, const DeltaNetParams& p,
                              const DeviceStep& step, Tensor out, const DeltaNetChunkedPlan& plan) {
  if (plan.n_seqs <= 0 || plan.n_chunks <= 0) return Status::ok();
  const size_t T = size_t(step.n_tokens), H = size_t(p.n_v_heads);
  auto mem = ctx.scratch(ScratchSlot::deltanet, H * T * (kMaxDk + kMaxDv + kChunkMax + 2) * sizeof(float));
  if (!mem) return mem.status();

  ChunkedArgs a;
  static_cast<DeltaNetIo&>(a) = deltanet_io(q, k, v, g, beta, state, p, step, out);
  // 16-byte copies need every head's first column aligned: aligned rows and d % 4 == 0.
  a.qk_vec = p.d_k % 4 == 0 && rows_aligned16(q) && rows_aligned16(k);
  a.v_vec = p.d_v % 4 == 0 && rows_aligned16(v);
  a.ssm_vec = p.d_v % 4 == 0 && rows_aligned16(state.ssm);
  a.n_tiles = (p.d_v + kTileV - 1) / kTileV;
  a.chunk = p.chunk;
  a.min_tokens = std::max(plan.min_tokens, 1);
  a.n_seqs = step.n_seqs;
  a.n_tokens = step.n_tokens;
  a.w = static_cast<float*>(*mem);  // each array's size is a multiple of 16 bytes: all aligned
  a.u = a.w + H * T * kMaxDk;
  a.p = a.u + H * T * kMaxDv;
  a.e = a.p + H * T * kChunkMax;

  constexpr int prep_smem = int(sizeof(PrepShared)), state_smem = int(sizeof(StateShared));
  ANVIL_CUDA_CHECK(
      cudaFuncSetAttribute(deltanet_chunk_prep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, prep_smem));
  ANVIL_CUDA_CHECK(
      cudaFuncSetAttribute(deltanet_chunk_state_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, state_smem));
  deltanet_chunk_prep_kernel<<<dim3(unsigned(plan.n_chunks), unsigned(H)), kPrepThreads, prep_smem, ctx.stream>>>(a);
  ANVIL_CUDA_CHECK_LAUNCH("deltanet_chunk_prep_kernel");
  deltanet_chunk_state_kernel<<<dim3(unsigned(int64_t(plan.n_seqs) * a.n_tiles), unsigned(H)), kStateThreads,
                                state_smem, ctx.stream>>>(a);
  ANVIL_CUDA_CHECK_LAUNCH("deltanet_chunk_state_kernel");
  return Status::ok();
}

}  // namespace anvil::cuda
