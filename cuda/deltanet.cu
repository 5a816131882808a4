// gated_deltanet on CUDA: the gated delta rule of Qwen3.5's linear-attention layers, from and back
// into each sequence's state slot (core/backend.h has the contract, cpu/ops_deltanet.cpp the
// oracle whose validation and semantics this mirrors).
//
//   S_h <- e^{g_t} S_h;  d = beta_t (v_t - S_h^T k_t);  S_h <- S_h + k_t d^T;  o_t = S_h^T (q_scale q_t)
// with S_h [d_k, d_v] the state of value head h, which reads q/k head h % n_k_heads.
//
// Kernel per DeltaNetParams::mode, per sequence (the forms agree to rounding, as the contract
// promises; the tests hold every mode to 1e-5 of the CPU's double):
//   recurrent  deltanet_recurrent_kernel below, token by token.
//   chunked    the chunked WY/UT kernels (cuda/deltanet_chunked.cu), f32 throughout; `unsupported`
//              where they cannot run (d_k or d_v > 128, chunk > 64, < 157 KiB of shared memory).
//              At decode (every sequence one token) their grids are n_seqs x shapes.
//   automatic  chunked for sequences with more than kAutomaticChunkedAbove tokens (where the
//              chunked kernels run), recurrent for the others, both in one step if it mixes them.
//              A decode step (every sequence one token, captured as a CUDA graph) is therefore
//              all recurrent, launched exactly as before: shapes only (cuda/ops.h's rule).
// The recurrent kernel keeps the state on chip across all of a sequence's tokens in the step, so
// a prefill chunk reads and writes it once; what it lacks is parallelism across tokens, which is
// what the chunked form adds (bench/NOTES.md: 373 us for a 512-token prefill of one Qwen3.5-4B
// layer, 0.73 us a token).
// CUDA-only limit: d_k <= 256 (the rows a thread keeps in registers); wider is `unsupported`.
//
// Decode cost (Qwen3.5-4B: 16 k heads, 32 v heads, d_k = d_v = 128, F32 state), per token per
// layer: the state is read once and written once, 32 heads x 128 x 128 x 4 B = 2 MiB each way
// (4,194,304 B), plus q and k (8 KiB each), v and out (16 KiB each), g and beta (256 B):
// 4,243,712 B, a floor of 1.41 us at 3.0 TB/s (llama.cpp: 3.0 us at this shape). Getting near it
// needs the whole state in flight at once: every thread issues all of its state loads before the
// first use, and the columns of S are split across blocks so one sequence already fills the GPU
// (32 heads x 4 column tiles = 128 blocks, 16 KiB of state each).
//
// deltanet_recurrent_kernel: one block per (sequence, value head, tile of 32 state columns).
// Each column of S evolves independently given k, q, v_b, g, beta, so the column tiles of a head
// never talk to each other. 256 threads = 8 warps; lane l owns columns 4 (l & 7) .. + 3 of the
// tile and warp w, lane l the row group rg = 4 w + (l >> 3): rows rg, rg + 32, .., i.e. R rows
// (d_k <= 32 R, R in {1, 2, 4, 8}), so a warp's float4 loads cover 4 full 128-byte state rows.
// The state stays in registers (4 R floats a thread) for all of the sequence's tokens in the
// step: read once, written once per step, whatever the token count (decode or prefill chunk).
// Per token, with the unscaled old state S:
//   kS = S^T k, qS = S^T q (per-thread partials over its rows, shuffles over the warp's 4 row
//   groups, then 8 per-warp partials through shared memory: one __syncthreads a token, the
//   buffers double-buffered by token parity so the next token's writes cannot race this one's
//   reads), plus q . k on the same path;
//   d = beta (v - e^g kS);  o = e^g qS + (q . k) d   (= (e^g S + k d^T)^T q);  S <- e^g S + k d^T.
// Inputs are staged in shared memory 16 tokens at a time (8 for d_k > 128; rows past d_k and
// columns past d_v zero-filled) in two buffers: cp.async copies of the next 16 tokens fly while
// the current 16 run, without holding registers.
//
// Launch rule (cuda/ops.h): the grid is (n_seqs x column tiles, n_v_heads) and the block and
// shared memory are fixed by d_k; sequences' first token, token count, context length (zero
// start when n_past == 0) and state slot are read from DeviceStep's device arrays, so one
// captured decode graph replays for any slots and context lengths.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/deltanet_chunked.h"
#include "cuda/ops.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;               // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kTileV = 32;                  // state columns per block
constexpr int kRowGroups = kThreads / (kTileV / 4);  // 32: (warp, lane >> 3)
constexpr int kMaxRows = 8;                 // R: d_k <= 32 * 8 = 256
// automatic: sequences with more tokens than this take the chunked kernels. bench-kernels on the
// H100 (Qwen3.5-4B, one layer; bench/NOTES.md): chunked / recurrent 43 / 97 us at 64 tokens, 53 /
// 190 at 128, 123 / 748 at 512. The recurrent kernel costs ~1.5 us a token and the chunked one
// ~40 us at any short length, so they cross near 30 tokens (interpolated, not measured there).
// It must stay >= 1 so decode stays recurrent.
constexpr int32_t kAutomaticChunkedAbove = 32;

static_assert(kRowGroups == 32, "the row-group layout assumes 8 column groups of 4 per warp");

// Tokens staged in shared memory at a time (two buffers of them): 16, or 8 for d_k > 128, so the
// double-buffered q and k stay at 32 KiB.
template <int R>
constexpr int kStageTokens = R <= 4 ? 16 : 8;
// Resident blocks an SM must fit: caps registers at 65536 / (256 x this) = 85 (R <= 4) or 128.
// ptxas, sm_90: R = 4 uses 80 registers, R = 8 111, no spills (at a cap of 64, R = 4 spilled).
template <int R>
constexpr int kMinBlocks = R <= 4 ? 3 : 2;

struct DeltaNetArgs : DeltaNetIo {
  int32_t n_tiles;     // column tiles per head: ceil(d_v / kTileV)
  int32_t max_tokens;  // sequences with more tokens are the chunked kernels' (not touched here)
};

// One buffer of staged inputs: kStageTokens<R> tokens of the block's q/k head (zero past d_k),
// its 32 columns of v (zero past d_v), g and beta.
template <int R>
struct alignas(16) DeltaNetStage {
  static constexpr int kTokens = kStageTokens<R>;
  float q[kTokens][32 * R];
  float k[kTokens][32 * R];
  float v[kTokens][kTileV];
  float g[kTokens];
  float beta[kTokens];
};

template <int R>
struct alignas(16) DeltaNetShared {
  DeltaNetStage<R> stage[2];       // chunk c in stage[c & 1] while chunk c + 1 lands in the other
  float red_k[2][kWarps][kTileV];  // per-warp partials of S^T k, by token parity
  float red_q[2][kWarps][kTileV];  // per-warp partials of S^T q
  float red_qk[2][kWarps];         // per-warp partials of q . k
};
static_assert(sizeof(DeltaNetShared<1>) <= 48 * 1024 && sizeof(DeltaNetShared<2>) <= 48 * 1024 &&
                  sizeof(DeltaNetShared<4>) <= 48 * 1024 && sizeof(DeltaNetShared<8>) <= 48 * 1024,
              "static shared memory is limited to 48 KiB");

__device__ __forceinline__ const float* frow(const char* base, size_t stride, int64_t r) {
  return reinterpret_cast<const float*>(base + size_t(r) * stride);
}
__device__ __forceinline__ float* frow(char* base, size_t stride, int64_t r) {
  return reinterpret_cast<float*>(base + size_t(r) * stride);
}

// 4-byte asynchronous global -> shared copy (cp.async, sm_80+), zero-filled when !valid (src is
// then not read, but is still a valid address). Older GPUs copy synchronously.
__device__ __forceinline__ void copy_async_f32(float* dst, const float* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
#else
  *dst = valid ? *src : 0.f;
#endif
}
__device__ __forceinline__ void copy_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void copy_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Issues (and commits as one group) the copies of tokens [t0, t0 + tn) of the sequence whose
// first token is row `first` into `st`; slots past tn are zero-filled. Thread tid copies row
// element tid % width of tokens tid / width, + kThreads / width, ...: coalesced along the row.
// The loops stay rolled: cp.async returns at once, and unrolled address math costs registers the
// state needs.
template <int R>
__device__ void stage_inputs(const DeltaNetArgs& p, DeltaNetStage<R>& st, int64_t first, int32_t t0, int32_t tn,
                             int32_t kh, int32_t h, int32_t col0) {
  constexpr int kTokens = kStageTokens<R>, kRows = 32 * R;
  static_assert(kThreads % kRows == 0 && kThreads % kTileV == 0, "");
  const int tid = int(threadIdx.x);
  {
    const int a = tid % kRows;
    const bool a_in = a < p.d_k;
    const int64_t col = int64_t(kh) * p.d_k + a;
#pragma unroll 1
    for (int tt = tid / kRows; tt < kTokens; tt += kThreads / kRows) {
      const bool in = a_in && tt < tn;
      const int64_t row = first + t0 + tt;
      copy_async_f32(&st.q[tt][a], in ? frow(p.q, p.q_stride, row) + col : frow(p.q, 0, 0), in);
      copy_async_f32(&st.k[tt][a], in ? frow(p.k, p.k_stride, row) + col : frow(p.k, 0, 0), in);
    }
  }
  {
    const int c = tid % kTileV;
    const bool c_in = col0 + c < p.d_v;
    const int64_t col = int64_t(h) * p.d_v + col0 + c;
#pragma unroll 1
    for (int tt = tid / kTileV; tt < kTokens; tt += kThreads / kTileV) {
      const bool in = c_in && tt < tn;
      copy_async_f32(&st.v[tt][c], in ? frow(p.v, p.v_stride, first + t0 + tt) + col : frow(p.v, 0, 0), in);
    }
  }
  if (tid < kTokens) {
    const bool in = tid < tn;
    const int64_t row = in ? first + t0 + tid : 0;
    copy_async_f32(&st.g[tid], frow(p.g, p.g_stride, row) + (in ? h : 0), in);
    copy_async_f32(&st.beta[tid], frow(p.beta, p.beta_stride, row) + (in ? h : 0), in);
  }
  copy_async_commit();
}

// This thread's 4 state columns [b, b + 4) of one state row; zeros past d_v. kVec: d_v % 4 == 0
// and the state's base and row stride are 16-byte aligned, so a group is wholly in or out.
template <bool kVec>
__device__ __forceinline__ void load_cols(const float* row, int32_t b, int32_t d_v, float (&x)[4]) {
  if constexpr (kVec) {
    if (b < d_v) {
      const float4 t = *reinterpret_cast<const float4*>(row + b);
      x[0] = t.x, x[1] = t.y, x[2] = t.z, x[3] = t.w;
    } else {
      x[0] = x[1] = x[2] = x[3] = 0.f;
    }
  } else {
#pragma unroll
    for (int c = 0; c < 4; ++c) x[c] = b + c < d_v ? row[b + c] : 0.f;
  }
}

template <bool kVec>
__device__ __forceinline__ void store_cols(float* row, int32_t b, int32_t d_v, const float (&x)[4]) {
  if constexpr (kVec) {
    if (b < d_v) *reinterpret_cast<float4*>(row + b) = make_float4(x[0], x[1], x[2], x[3]);
  } else {
#pragma unroll
    for (int c = 0; c < 4; ++c)
      if (b + c < d_v) row[b + c] = x[c];
  }
}

template <int R, bool kVec>
__global__ void __launch_bounds__(kThreads, kMinBlocks<R>) deltanet_recurrent_kernel(DeltaNetArgs p) {
  pdl_begin();  // cuda/pdl.cuh
  __shared__ DeltaNetShared<R> sm;
  const int32_t s = int32_t(blockIdx.x) / p.n_tiles, tile = int32_t(blockIdx.x) % p.n_tiles;
  const int32_t h = int32_t(blockIdx.y);
  const int32_t n = p.seq_n_tokens[s];
  if (n <= 0 || n > p.max_tokens) return;  // the whole block leaves: no barrier is skipped by part of it
  const int64_t first = p.seq_first_token[s];
  const bool fresh = p.context_lens[s] == n;  // n_past == 0: zero state, whatever the slot holds
  const int64_t slot = p.state_slots[s];
  const int32_t kh = h % p.n_k_heads;

  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int cg = lane & 7;                     // column group: tile columns 4 cg .. 4 cg + 3
  const int rg = warp * 4 + (lane >> 3);       // row group: state rows rg + 32 i
  const int32_t col0 = tile * kTileV;          // the tile's first column within the head
  const int32_t b = col0 + cg * 4;             // this thread's first column within the head
  char* state = p.ssm + size_t((slot * p.n_v_heads + h) * p.d_k) * p.ssm_stride;

  // The state: every load issued before any is used.
  float S[R][4];
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int32_t a = rg + 32 * i;
    if (!fresh && a < p.d_k)
      load_cols<kVec>(frow(state, p.ssm_stride, a), b, p.d_v, S[i]);
    else
      S[i][0] = S[i][1] = S[i][2] = S[i][3] = 0.f;
  }

  constexpr int kTokens = kStageTokens<R>;
  stage_inputs<R>(p, sm.stage[0], first, 0, min(n, kTokens), kh, h, col0);
  int parity = 0;
  for (int32_t t0 = 0, chunk = 0; t0 < n; t0 += kTokens, ++chunk) {
    // The next chunk's copies go out before this one is used; the buffer they land in was last
    // read in the previous chunk, which ended with a barrier.
    if (t0 + kTokens < n) {
      stage_inputs<R>(p, sm.stage[(chunk + 1) & 1], first, t0 + kTokens, min(n - t0 - kTokens, kTokens), kh, h, col0);
      copy_async_wait<1>();  // this chunk's group is done, the next may still fly
    } else {
      copy_async_wait<0>();
    }
    __syncthreads();  // every thread's copies of this chunk are visible
    const DeltaNetStage<R>& st = sm.stage[chunk & 1];
    const int32_t tn = min(n - t0, kTokens);
    const float q_scale = p.q_scale;

    for (int32_t tt = 0; tt < tn; ++tt, parity ^= 1) {
      // Partial S^T k, S^T q over this thread's rows, and q . k over them.
      float ka[R], pk[4] = {0.f, 0.f, 0.f, 0.f}, pq[4] = {0.f, 0.f, 0.f, 0.f}, qk = 0.f;
#pragma unroll
      for (int i = 0; i < R; ++i) {
        const int a = rg + 32 * i;
        ka[i] = st.k[tt][a];
        const float qa = st.q[tt][a] * q_scale;  // the oracle scales q before any use
        qk = fmaf(qa, ka[i], qk);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          pk[c] = fmaf(ka[i], S[i][c], pk[c]);
          pq[c] = fmaf(qa, S[i][c], pq[c]);
        }
      }
      // Over the warp's 4 row groups (lanes 8 and 16 apart share the columns) ...
#pragma unroll
      for (int off = 8; off <= 16; off <<= 1) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          pk[c] += __shfl_xor_sync(0xffffffffu, pk[c], off);
          pq[c] += __shfl_xor_sync(0xffffffffu, pq[c], off);
        }
        qk += __shfl_xor_sync(0xffffffffu, qk, off);
      }
      // ... then over the 8 warps through shared memory.
      if (lane < 8) {
        *reinterpret_cast<float4*>(&sm.red_k[parity][warp][cg * 4]) = make_float4(pk[0], pk[1], pk[2], pk[3]);
        *reinterpret_cast<float4*>(&sm.red_q[parity][warp][cg * 4]) = make_float4(pq[0], pq[1], pq[2], pq[3]);
        if (lane == 0) sm.red_qk[parity][warp] = qk;
      }
      __syncthreads();
      float kS[4] = {0.f, 0.f, 0.f, 0.f}, qS[4] = {0.f, 0.f, 0.f, 0.f}, q_dot_k = 0.f;
#pragma unroll 2  // fully unrolled, the 8 warps' loads held ~30 more registers
      for (int w = 0; w < kWarps; ++w) {
        const float4 rk = *reinterpret_cast<const float4*>(&sm.red_k[parity][w][cg * 4]);
        const float4 rq = *reinterpret_cast<const float4*>(&sm.red_q[parity][w][cg * 4]);
        kS[0] += rk.x, kS[1] += rk.y, kS[2] += rk.z, kS[3] += rk.w;
        qS[0] += rq.x, qS[1] += rq.y, qS[2] += rq.z, qS[3] += rq.w;
        q_dot_k += sm.red_qk[parity][w];
      }
      const float decay = expf(st.g[tt]), beta = st.beta[tt];
      float d[4], o[4];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        d[c] = beta * (st.v[tt][cg * 4 + c] - decay * kS[c]);
        o[c] = fmaf(decay, qS[c], q_dot_k * d[c]);
      }
#pragma unroll
      for (int i = 0; i < R; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) S[i][c] = fmaf(decay, S[i][c], ka[i] * d[c]);
      if (rg == 0) {  // lanes 0..7 of warp 0 hold the tile's 32 outputs
        float* orow = frow(p.out, p.out_stride, first + t0 + tt) + int64_t(h) * p.d_v;
#pragma unroll
        for (int c = 0; c < 4; ++c)
          if (b + c < p.d_v) orow[b + c] = o[c];
      }
    }
    __syncthreads();  // this chunk's buffer is read by all before the next chunk refills it
  }

#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int32_t a = rg + 32 * i;
    if (a < p.d_k) store_cols<kVec>(frow(state, p.ssm_stride, a), b, p.d_v, S[i]);
  }
}

template <int R>
Status launch_rows(const DeltaNetArgs& a, bool vec, dim3 grid, cudaStream_t stream) {
  if (vec) {
    ANVIL_RETURN_IF_ERROR(launch_pdl("deltanet_recurrent_kernel", deltanet_recurrent_kernel<R, true>, grid,
                                     dim3(kThreads), 0, stream, a));
  } else {
    ANVIL_RETURN_IF_ERROR(launch_pdl("deltanet_recurrent_kernel", deltanet_recurrent_kernel<R, false>, grid,
                                     dim3(kThreads), 0, stream, a));
  }
  return Status::ok();
}

// Kernels address F32 rows through byte strides; a misaligned base or stride would fault.
Status check_f32_aligned(const char* op, const char* arg, const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data) % sizeof(float) != 0 || t.row_stride % sizeof(float) != 0)
    return make_error(StatusCode::invalid_argument, op, ": ", arg, " ", shape_str(t), " (row_stride ", t.row_stride,
                      ") is not 4-byte aligned");
  return Status::ok();
}

}  // namespace

DeltaNetIo deltanet_io(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                       const RecurrentLayer& state, const DeltaNetParams& p, const DeviceStep& step, Tensor out) {
  DeltaNetIo a;
  a.q = static_cast<const char*>(q.data);
  a.k = static_cast<const char*>(k.data);
  a.v = static_cast<const char*>(v.data);
  a.g = static_cast<const char*>(g.data);
  a.beta = static_cast<const char*>(beta.data);
  a.out = static_cast<char*>(out.data);
  a.ssm = static_cast<char*>(state.ssm.data);
  a.q_stride = q.row_stride;
  a.k_stride = k.row_stride;
  a.v_stride = v.row_stride;
  a.g_stride = g.row_stride;
  a.beta_stride = beta.row_stride;
  a.out_stride = out.row_stride;
  a.ssm_stride = state.ssm.row_stride;
  a.n_k_heads = p.n_k_heads;
  a.n_v_heads = p.n_v_heads;
  a.d_k = p.d_k;
  a.d_v = p.d_v;
  a.q_scale = p.q_scale;
  a.seq_first_token = step.seq_first_token;
  a.seq_n_tokens = step.seq_n_tokens;
  a.context_lens = step.context_lens;
  a.state_slots = step.state_slots;
  return a;
}

Status gated_deltanet(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                      const Tensor& beta, const RecurrentLayer& state, const DeltaNetParams& p,
                      const DeviceStep& step, Tensor out) {
  const char* op = "gated_deltanet";
  // The CPU oracle's checks (cpu/ops_deltanet.cpp), in the same order.
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"q", &q}, {"k", &k}, {"v", &v}, {"g", &g},
                                {"beta", &beta}, {"out", &out}, {"state.ssm", &state.ssm}})
    ANVIL_RETURN_IF_ERROR(check_f32(op, name, *t));
  if (p.n_k_heads <= 0 || p.n_v_heads <= 0 || p.n_v_heads % p.n_k_heads != 0 || p.d_k <= 0 || p.d_v <= 0 ||
      p.chunk <= 0 || !std::isfinite(p.q_scale) || p.q_scale == 0.f)
    return make_error(StatusCode::invalid_argument, op, ": bad params n_k_heads ", p.n_k_heads, ", n_v_heads ",
                      p.n_v_heads, ", d_k ", p.d_k, ", d_v ", p.d_v, ", chunk ", p.chunk, ", q_scale ", p.q_scale,
                      " (n_v_heads a multiple of n_k_heads, all positive)");
  const int64_t T = step.n_tokens, qk_cols = int64_t(p.n_k_heads) * p.d_k, v_cols = int64_t(p.n_v_heads) * p.d_v;
  if (q.rows != T || k.rows != T || v.rows != T || g.rows != T || beta.rows != T || out.rows != T ||
      q.cols != qk_cols || k.cols != qk_cols || v.cols != v_cols || out.cols != v_cols || g.cols != p.n_v_heads ||
      beta.cols != p.n_v_heads)
    return make_error(StatusCode::invalid_argument, op, ": q ", shape_str(q), ", k ", shape_str(k), ", v ",
                      shape_str(v), ", g ", shape_str(g), ", beta ", shape_str(beta), ", out ", shape_str(out),
                      " must be [", T, " x ", qk_cols, "] x2, [", T, " x ", v_cols, "], [", T, " x ", p.n_v_heads,
                      "] x2, [", T, " x ", v_cols, "]");
  const int64_t slot_rows = int64_t(p.n_v_heads) * p.d_k;
  if (state.ssm.cols != p.d_v || state.ssm.rows == 0 || state.ssm.rows % slot_rows != 0)
    return make_error(StatusCode::invalid_argument, op, ": state.ssm ", shape_str(state.ssm), " must be [n_slots * ",
                      slot_rows, " x ", p.d_v, "]");
  ANVIL_RETURN_IF_ERROR(check_state_slots(op, step, state.ssm.rows / slot_rows));
  // What the CUDA kernel needs beyond the oracle's checks.
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"q", &q}, {"k", &k}, {"v", &v}, {"g", &g},
                                {"beta", &beta}, {"out", &out}, {"state.ssm", &state.ssm}})
    ANVIL_RETURN_IF_ERROR(check_f32_aligned(op, name, *t));
  if (p.d_k > 32 * kMaxRows)
    return make_error(StatusCode::unsupported, op, ": d_k ", p.d_k, " > ", 32 * kMaxRows,
                      " (the CUDA kernel keeps a state column's rows in registers)");
  const int32_t n_tiles = (p.d_v + kTileV - 1) / kTileV;
  if (p.n_v_heads > 65535 || int64_t(step.n_seqs) * n_tiles > INT32_MAX)
    return make_error(StatusCode::unsupported, op, ": ", p.n_v_heads, " value heads, ", step.n_seqs,
                      " sequences exceed the CUDA grid");
  if (T == 0 || step.n_seqs == 0) return Status::ok();

  // Which sequences take the chunked kernels: those with >= chunked_min tokens (0: none).
  const std::string chunked_why_not = p.mode == DeltaNetMode::recurrent ? "" : deltanet_chunked_unsupported(ctx, p);
  int32_t chunked_min = 0;
  if (p.mode == DeltaNetMode::chunked) {
    if (!chunked_why_not.empty()) return make_error(StatusCode::unsupported, op, ": mode chunked: ", chunked_why_not);
    chunked_min = 1;
  } else if (p.mode == DeltaNetMode::automatic && chunked_why_not.empty()) {
    chunked_min = kAutomaticChunkedAbove + 1;
  }
  DeltaNetChunkedPlan plan{chunked_min, 0, 0};
  bool any_recurrent = chunked_min == 0;
  if (chunked_min > 0) {  // a multi-token step's host arrays may steer launches (cuda/ops.h)
    const DeviceStep& hs = host_step(step);
    for (int32_t s = 0; s < hs.n_seqs; ++s) {
      const int32_t n = hs.seq_n_tokens[s];
      if (n >= chunked_min) {
        ++plan.n_seqs;
        plan.n_chunks += (n + p.chunk - 1) / p.chunk;
      } else if (n > 0) {
        any_recurrent = true;
      }
    }
  }
  // First: it takes the scratch, which must happen before any kernel of the op is enqueued.
  ANVIL_RETURN_IF_ERROR(gated_deltanet_chunked(ctx, q, k, v, g, beta, state, p, step, out, plan));
  if (!any_recurrent) return Status::ok();

  DeltaNetArgs a;
  static_cast<DeltaNetIo&>(a) = deltanet_io(q, k, v, g, beta, state, p, step, out);
  a.n_tiles = n_tiles;
  a.max_tokens = plan.n_seqs > 0 ? chunked_min - 1 : INT32_MAX;

  // float4 state access when every state row of every column group is 16-byte aligned.
  const bool vec = p.d_v % 4 == 0 && reinterpret_cast<uintptr_t>(state.ssm.data) % 16 == 0 &&
                   state.ssm.row_stride % 16 == 0;
  const dim3 grid(unsigned(int64_t(step.n_seqs) * n_tiles), unsigned(p.n_v_heads));
  if (p.d_k <= 32) return launch_rows<1>(a, vec, grid, ctx.stream);
  if (p.d_k <= 64) return launch_rows<2>(a, vec, grid, ctx.stream);
  if (p.d_k <= 128) return launch_rows<4>(a, vec, grid, ctx.stream);
  return launch_rows<8>(a, vec, grid, ctx.stream);
}

}  // namespace anvil::cuda
