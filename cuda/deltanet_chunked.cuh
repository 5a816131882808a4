// The chunked gated DeltaNet's per-thread work (cuda/deltanet_chunked.cu has the design, the
// kernels and the launcher). Every function here is one thread's share of one phase between two
// barriers, written in plain C++ on shared-memory structs, so that a host program can run the
// kernels' exact decomposition and f32 arithmetic (loops over blocks, phases and threads) against
// a double reference: the copies fall back to synchronous ones and nothing below needs a GPU.
// Registers a thread keeps across barriers live in a *Regs struct the kernel holds.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cuda/deltanet_io.h"

#if defined(__CUDACC__)
#define DN_HD __host__ __device__ __forceinline__
#else
#define DN_HD inline
#endif
#if defined(__CUDA_ARCH__)  // the device pass; host compilers do not know the pragma
#define DN_UNROLL _Pragma("unroll")
#define DN_UNROLL2 _Pragma("unroll 2")
#define DN_UNROLL4 _Pragma("unroll 4")
#else
#define DN_UNROLL
#define DN_UNROLL2
#define DN_UNROLL4
#endif

namespace anvil::cuda::dn_chunked {

constexpr int kChunkMax = 64;  // L: the longest chunk (DeltaNetParams::chunk <= 64)
constexpr int kMaxDk = 128;    // d_k and d_v are zero-padded to these
constexpr int kMaxDv = 128;
constexpr int kTileV = 32;     // state columns per block of the state kernel
constexpr int kPrepThreads = 256;
constexpr int kStateThreads = 128;
constexpr int kRowStride = kMaxDk + 4;       // k/q/v/W rows in shared memory: +4 floats, so rows
                                             // 1 apart start 4 banks apart (float4 reads of
                                             // consecutive rows do not collide)
constexpr int kScoreStride = kChunkMax + 4;  // L x L tiles (P, T^T), same reason
static_assert(kMaxDk == kMaxDv && kMaxDk == 2 * kChunkMax, "prep_wu: a lane's columns c and c + 64");

struct ChunkedArgs : DeltaNetIo {  // the op's tensors and step arrays (cuda/deltanet_io.h), and:
  bool qk_vec, v_vec, ssm_vec;  // 16-byte copies possible (aligned bases, strides, head offsets)
  int32_t n_tiles;     // state column tiles per head: ceil(d_v / kTileV)
  int32_t chunk;       // 1..kChunkMax
  int32_t min_tokens;  // sequences with fewer tokens are left to the recurrent kernel
  int32_t n_seqs, n_tokens;
  // Workspace (ScratchSlot::deltanet), rows by the step's token index, per value head:
  float* w;  // [n_v_heads][n_tokens][kMaxDk]  W = T (beta e^G k)
  float* u;  // [n_v_heads][n_tokens][kMaxDv]  U = T (beta v), zero past d_v
  float* p;  // [n_v_heads][n_tokens][kChunkMax]  P_ij = q_scale (q_i . k_j) e^{G_i - G_j}, j <= i
  float* e;  // [n_v_heads][n_tokens][2]  e^{G_i}, e^{G_last - G_i}
};

DN_HD size_t scratch_row(const ChunkedArgs& p, int32_t h, int64_t row) {
  return size_t(h) * size_t(p.n_tokens) + size_t(row);
}

// ---- copies (cp.async on sm_80+, zero-filled when !valid; src must then still be a valid,
// aligned address, and is not read)

DN_HD void copy_f32(float* dst, const float* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 4 : 0) : "memory");
#else
  *dst = valid ? *src : 0.f;
#endif
}
DN_HD void copy_f32x4(float* dst, const float* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
#else
  if (valid)
    std::memcpy(dst, src, 16);
  else
    dst[0] = dst[1] = dst[2] = dst[3] = 0.f;
#endif
}
DN_HD void copy_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most kPending of this thread's committed groups are in flight.
template <int kPending>
DN_HD void copy_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

DN_HD const float* frow(const char* base, size_t stride, int64_t r) {
  return reinterpret_cast<const float*>(base + size_t(r) * stride);
}
DN_HD float* frow(char* base, size_t stride, int64_t r) { return reinterpret_cast<float*>(base + size_t(r) * stride); }
DN_HD float4 ld4(const float* s) { return *reinterpret_cast<const float4*>(s); }
DN_HD void st4(float* d, float a, float b, float c, float e) {
  *reinterpret_cast<float4*>(d) = make_float4(a, b, c, e);
}
DN_HD float at(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Rows [0, kChunkMax) x columns [0, kCols) of dst (rows kDstStride floats apart) from rows
// row0 + r (r < len) of base, floats col0 + c (c < width); zero elsewhere. Thread tid of
// nthreads takes every nthreads-th float4 (or float), so a warp's copies run along a row.
// vec: base, stride and col0 are 16-byte aligned and width % 4 == 0.
template <int kCols, int kDstStride>
DN_HD void stage_rows(float* dst, const char* base, size_t stride, int64_t row0, int32_t len, int64_t col0,
                      int32_t width, bool vec, int tid, int nthreads) {
  const float* any = reinterpret_cast<const float*>(base);  // a valid, aligned address
  if (vec) {
    constexpr int kQuads = kCols / 4;
    for (int x = tid; x < kChunkMax * kQuads; x += nthreads) {
      const int r = x / kQuads, c = (x % kQuads) * 4;
      const bool ok = r < len && c < width;
      copy_f32x4(dst + r * kDstStride + c, ok ? frow(base, stride, row0 + r) + col0 + c : any, ok);
    }
  } else {
    for (int x = tid; x < kChunkMax * kCols; x += nthreads) {
      const int r = x / kCols, c = x % kCols;
      const bool ok = r < len && c < width;
      copy_f32(dst + r * kDstStride + c, ok ? frow(base, stride, row0 + r) + col0 + c : any, ok);
    }
  }
}

DN_HD float dot4(const float4& a, const float4& b, float acc) {
  return fmaf(a.w, b.w, fmaf(a.z, b.z, fmaf(a.y, b.y, fmaf(a.x, b.x, acc))));
}

// ======================================================================= prep kernel
// One block per (chunk, value head): everything of the chunk that does not need the state.

struct alignas(16) PrepShared {
  float k[kChunkMax][kRowStride];   // k rows; from prep_scale_k on, e^{G_m} k_m
  float qv[kChunkMax][kRowStride];  // q rows; from prep_stage_v on, v rows
  float a[kChunkMax][kChunkMax];    // A: -beta_i (k_i . k_j) e^{G_i - G_j}, j < i; else 0
  float tb[kChunkMax][kScoreStride];  // tb[m][i] = beta_m T[i][m] (T = (I - A)^-1, transposed)
  double G[kChunkMax];              // G_i = g_0 + .. + g_i, summed in double as the oracle does
  float eg[kChunkMax];              // e^{G_i} (0 past len)
  float g[kChunkMax], beta[kChunkMax];
  int32_t item[2];                  // find_item's (sequence, chunk)
};

// Stages the chunk's q and k rows (key head kh), g and beta (value head h); one commit group.
DN_HD void prep_stage_qkgb(const ChunkedArgs& p, PrepShared& sm, int tid, int64_t row0, int32_t len, int32_t kh,
                           int32_t h) {
  stage_rows<kMaxDk, kRowStride>(&sm.k[0][0], p.k, p.k_stride, row0, len, int64_t(kh) * p.d_k, p.d_k, p.qk_vec,
                                 tid, kPrepThreads);
  stage_rows<kMaxDk, kRowStride>(&sm.qv[0][0], p.q, p.q_stride, row0, len, int64_t(kh) * p.d_k, p.d_k, p.qk_vec,
                                 tid, kPrepThreads);
  if (tid < kChunkMax) {
    const bool ok = tid < len;
    copy_f32(&sm.g[tid], ok ? frow(p.g, p.g_stride, row0 + tid) + h : reinterpret_cast<const float*>(p.g), ok);
    copy_f32(&sm.beta[tid], ok ? frow(p.beta, p.beta_stride, row0 + tid) + h : reinterpret_cast<const float*>(p.beta),
             ok);
  }
  copy_commit();
}

// Threads 0..63: G_i in double (each thread sums g in the oracle's order, so G is the oracle's
// to the last bit), e^{G_i} and e^{G_last - G_i}; the latter two also to the workspace.
DN_HD void prep_gates(const ChunkedArgs& p, PrepShared& sm, int tid, int64_t row0, int32_t len, int32_t h) {
  if (tid >= kChunkMax) return;
  double acc = 0.0, gi = 0.0;
  for (int m = 0; m < len; ++m) {
    acc += double(sm.g[m]);
    if (m == tid) gi = acc;
  }
  sm.G[tid] = gi;
  const float eg = tid < len ? expf(float(gi)) : 0.f;
  sm.eg[tid] = eg;
  if (tid < len) {
    float* e = p.e + 2 * scratch_row(p, h, row0 + tid);
    e[0] = eg;
    e[1] = expf(float(acc - gi));
  }
}

// Threads 0..135: one 4 x 4 tile (ti >= tj) of the lower triangle of K K^T and Q K^T over the
// padded d_k, turned into A (to shared memory) and P (to the workspace). Threads 136..255: one
// tile strictly above the diagonal each (120 of them), written as zeros to both. Upper
// tiles are skipped rather than computed: half of the phase's multiply-adds.
DN_HD void prep_scores(const ChunkedArgs& p, PrepShared& sm, int tid, int64_t row0, int32_t len, int32_t h) {
  constexpr int kLower = (kChunkMax / 4) * (kChunkMax / 4 + 1) / 2;  // 136
  int ti = 0, tj = 0;
  if (tid < kLower) {
    while ((ti + 1) * (ti + 2) / 2 <= tid) ++ti;
    tj = tid - ti * (ti + 1) / 2;
  } else {
    const int x = tid - kLower;  // tiles with tj' < tj come first: tj (tj - 1) / 2 of them
    tj = 1;
    while ((tj + 1) * tj / 2 <= x) ++tj;
    ti = x - tj * (tj - 1) / 2;
  }
  float* prow = p.p + size_t(kChunkMax) * scratch_row(p, h, row0);  // the chunk's first P row
  if (tid >= kLower) {
    for (int r = 0; r < 4; ++r) {
      const int i = 4 * ti + r;
      st4(&sm.a[i][4 * tj], 0.f, 0.f, 0.f, 0.f);
      if (i < len) st4(prow + size_t(i) * kChunkMax + 4 * tj, 0.f, 0.f, 0.f, 0.f);
    }
    return;
  }
  float kk[4][4], qk[4][4];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) kk[r][c] = qk[r][c] = 0.f;
DN_UNROLL2
  for (int d = 0; d < kMaxDk; d += 4) {
    float4 ki[4], qi[4], kj[4];
DN_UNROLL
    for (int r = 0; r < 4; ++r) {
      ki[r] = ld4(&sm.k[4 * ti + r][d]);
      qi[r] = ld4(&sm.qv[4 * ti + r][d]);
      kj[r] = ld4(&sm.k[4 * tj + r][d]);
    }
DN_UNROLL
    for (int r = 0; r < 4; ++r)
DN_UNROLL
      for (int c = 0; c < 4; ++c) {
        kk[r][c] = dot4(ki[r], kj[c], kk[r][c]);
        qk[r][c] = dot4(qi[r], kj[c], qk[r][c]);
      }
  }
  for (int r = 0; r < 4; ++r) {
    const int i = 4 * ti + r;
    float av[4], pv[4];
    for (int c = 0; c < 4; ++c) {
      const int j = 4 * tj + c;
      const bool in = i < len && j <= i;
      // e^{G_i - G_j} from the double difference: e^{G_i} / e^{G_j} would lose the small
      // differences of large |G| (G reaches -100 over a chunk) to f32 rounding.
      const float dec = in ? expf(float(sm.G[i] - sm.G[j])) : 0.f;
      av[c] = in && j < i ? -sm.beta[i] * kk[r][c] * dec : 0.f;
      pv[c] = in ? p.q_scale * qk[r][c] * dec : 0.f;
    }
    st4(&sm.a[i][4 * tj], av[0], av[1], av[2], av[3]);
    if (i < len) st4(prow + size_t(i) * kChunkMax + 4 * tj, pv[0], pv[1], pv[2], pv[3]);
  }
}

// After the scores: v rows (value head h) into qv, where q was; one commit group.
DN_HD void prep_stage_v(const ChunkedArgs& p, PrepShared& sm, int tid, int64_t row0, int32_t len, int32_t h) {
  stage_rows<kMaxDv, kRowStride>(&sm.qv[0][0], p.v, p.v_stride, row0, len, int64_t(h) * p.d_v, p.d_v, p.v_vec, tid,
                                 kPrepThreads);
  copy_commit();
}

// Threads 64..255, beside prep_t_column: k_m <- e^{G_m} k_m (W's right-hand side).
DN_HD void prep_scale_k(PrepShared& sm, int tid) {
  if (tid < kChunkMax) return;
  for (int x = tid - kChunkMax; x < kChunkMax * kMaxDk; x += kPrepThreads - kChunkMax)
    sm.k[x / kMaxDk][x % kMaxDk] *= sm.eg[x / kMaxDk];
}

// Threads 0..63: column j of T = (I - A)^-1 by forward substitution, T[i][j] = sum_{m < i}
// A[i][m] T[m][j] for i > j, in registers (the loops unroll, so x[] needs no local memory), four
// partial sums a row to shorten the dependency chain; then tb[j][.] = beta_j T[.][j].
// Rows i < j come out as exact zeros: every x[m] they read is 0 or meets A[i][m] = 0 (m >= i).
DN_HD void prep_t_column(PrepShared& sm, int tid) {
  if (tid >= kChunkMax) return;
  const int j = tid;
  float x[kChunkMax];
DN_UNROLL
  for (int i = 0; i < kChunkMax; ++i) x[i] = i == j ? 1.f : 0.f;
DN_UNROLL
  for (int i = 1; i < kChunkMax; ++i) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
DN_UNROLL
    for (int m = 0; m < i; m += 4) {  // reads A[i][m] up to m = 4 ceil(i / 4) - 1: zeros past i - 1
      const float4 a = ld4(&sm.a[i][m]);
      s0 = fmaf(a.x, x[m], s0);
      s1 = fmaf(a.y, x[m + 1], s1);
      s2 = fmaf(a.z, x[m + 2], s2);
      s3 = fmaf(a.w, x[m + 3], s3);
    }
    const float s = (s0 + s1) + (s2 + s3);
    x[i] = i == j ? 1.f : s;
  }
  const float b = sm.beta[j];
DN_UNROLL
  for (int i = 0; i < kChunkMax; i += 4) st4(&sm.tb[j][i], b * x[i], b * x[i + 1], b * x[i + 2], b * x[i + 3]);
}

// All threads: [W | U] = T diag(beta) [e^G K | V] for the chunk's rows. Warp w takes rows
// 8w .. 8w + 7 (so its m loop, m <= 8w + 7 as T is lower triangular, is uniform); lanes 0-15 take
// W columns 4l .. 4l + 3 and 64 + 4l .., lanes 16-31 the same columns of U. Per m: two float4 of
// tb (one address for the warp) and two of k or v, 64 multiply-adds.
DN_HD void prep_wu(const ChunkedArgs& p, const PrepShared& sm, int tid, int64_t row0, int32_t len, int32_t h) {
  const int rt = tid >> 5, lane = tid & 31;
  const bool is_w = lane < 16;
  const int c0 = 4 * (lane & 15);
  const float(*B)[kRowStride] = is_w ? sm.k : sm.qv;
  float acc[8][8];
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) acc[r][c] = 0.f;
  const int m_end = 8 * rt + 8;
DN_UNROLL2
  for (int m = 0; m < m_end; ++m) {
    const float4 a0 = ld4(&sm.tb[m][8 * rt]), a1 = ld4(&sm.tb[m][8 * rt + 4]);
    const float4 b0 = ld4(&B[m][c0]), b1 = ld4(&B[m][c0 + 64]);
    const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
DN_UNROLL
    for (int r = 0; r < 8; ++r)
DN_UNROLL
      for (int c = 0; c < 8; ++c) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
  }
  for (int r = 0; r < 8; ++r) {
    const int i = 8 * rt + r;
    if (i >= len) break;
    float* dst = (is_w ? p.w : p.u) + size_t(kMaxDk) * scratch_row(p, h, row0 + i);
    st4(dst + c0, acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
    st4(dst + c0 + 64, acc[r][4], acc[r][5], acc[r][6], acc[r][7]);
  }
}

// ======================================================================= state kernel
// One block per (sequence, value head, tile of kTileV state columns), over the sequence's chunks
// in order, the state tile on chip throughout.

struct alignas(16) StateShared {
  float w[kChunkMax][kRowStride];  // W rows of the chunk
  float q[kChunkMax][kRowStride];  // q rows (unscaled)
  float k[kChunkMax][kRowStride];  // k rows
  float p[kChunkMax][kScoreStride];
  float u[kChunkMax][kTileV];      // U's tile columns
  float s[kMaxDk][kTileV];         // the state tile at the chunk's start
  float vp[kChunkMax][kTileV];     // V' = U - W S
  float vd[kChunkMax][kTileV];     // e^{G_last - G_j} V'_j
  float eg[kChunkMax], egl[kChunkMax];
  int32_t item[2];
};

// What a thread keeps across barriers: its 8 x 4 of the state (rows 8 rg + r, columns 4 cg + c),
// its 4 x 4 of Q S from the products to the output, and the decays it needs after the inputs'
// buffers are refilled.
struct StateRegs {
  float s[8][4];
  float qs[4][4];
  float eg[4];
  float eg_last;
};

// Thread layout: 4 warps; lane bits 0, 2, 3 give the column group cg (columns 4 cg .. 4 cg + 3
// of the tile), lane bit 1 and 4 and the warp the row group rg (0..15). Lanes n and n ^ 1 share a
// row group (same W / Q / P / K addresses), lanes n and n ^ 2 a column group (same S / V'
// addresses): the pairings under which shared-memory loads return at twice the rate.
DN_HD int state_cg(int tid) { return (tid & 1) | ((tid >> 1) & 6); }
DN_HD int state_rg(int tid) { return (tid >> 5) * 4 + ((tid >> 1) & 1) + ((tid >> 3) & 2); }

// The chunk's W, q, U tile and decays (one commit group), ...
DN_HD void state_stage_wqu(const ChunkedArgs& p, StateShared& sm, int tid, int64_t row0, int32_t len, int32_t kh,
                           int32_t h, int32_t col0) {
  const char* w = reinterpret_cast<const char*>(p.w + size_t(kMaxDk) * scratch_row(p, h, 0));
  const char* u = reinterpret_cast<const char*>(p.u + size_t(kMaxDv) * scratch_row(p, h, 0));
  stage_rows<kMaxDk, kRowStride>(&sm.w[0][0], w, kMaxDk * sizeof(float), row0, len, 0, kMaxDk, true, tid,
                                 kStateThreads);
  stage_rows<kMaxDk, kRowStride>(&sm.q[0][0], p.q, p.q_stride, row0, len, int64_t(kh) * p.d_k, p.d_k, p.qk_vec, tid,
                                 kStateThreads);
  stage_rows<kTileV, kTileV>(&sm.u[0][0], u, kMaxDv * sizeof(float), row0, len, col0, kTileV, true, tid,
                             kStateThreads);
  for (int x = tid; x < 2 * kChunkMax; x += kStateThreads) {
    const int i = x >> 1;
    const bool ok = i < len;
    const float* src = p.e + (ok ? 2 * scratch_row(p, h, row0 + i) + (x & 1) : 0);
    copy_f32((x & 1) ? &sm.egl[i] : &sm.eg[i], src, ok);
  }
  copy_commit();
}

// ... and its P and k rows (one commit group).
DN_HD void state_stage_pk(const ChunkedArgs& p, StateShared& sm, int tid, int64_t row0, int32_t len, int32_t kh,
                          int32_t h) {
  const char* pp = reinterpret_cast<const char*>(p.p + size_t(kChunkMax) * scratch_row(p, h, 0));
  stage_rows<kChunkMax, kScoreStride>(&sm.p[0][0], pp, kChunkMax * sizeof(float), row0, len, 0, kChunkMax, true, tid,
                                      kStateThreads);
  stage_rows<kMaxDk, kRowStride>(&sm.k[0][0], p.k, p.k_stride, row0, len, int64_t(kh) * p.d_k, p.d_k, p.qk_vec, tid,
                                 kStateThreads);
  copy_commit();
}

// The state tile from the slot (zero when fresh: n_past == 0), into registers and sm.s.
DN_HD void state_load(const ChunkedArgs& p, StateShared& sm, StateRegs& rg_, int tid, const char* state, bool fresh,
                      int32_t col0) {
  const int cg = state_cg(tid), rg = state_rg(tid);
  const int32_t b = col0 + 4 * cg;
  for (int r = 0; r < 8; ++r) {
    const int a = 8 * rg + r;
    float x[4] = {0.f, 0.f, 0.f, 0.f};
    if (!fresh && a < p.d_k && b < p.d_v) {
      const float* row = frow(state, p.ssm_stride, a);
      if (p.ssm_vec) {  // d_v % 4 == 0: the group is wholly inside
        const float4 t = ld4(row + b);
        x[0] = t.x, x[1] = t.y, x[2] = t.z, x[3] = t.w;
      } else {
        for (int c = 0; c < 4; ++c) x[c] = b + c < p.d_v ? row[b + c] : 0.f;
      }
    }
    for (int c = 0; c < 4; ++c) rg_.s[r][c] = x[c];
    st4(&sm.s[a][4 * cg], x[0], x[1], x[2], x[3]);
  }
}

DN_HD void state_store(const ChunkedArgs& p, const StateRegs& rg_, int tid, char* state, int32_t col0) {
  const int cg = state_cg(tid), rg = state_rg(tid);
  const int32_t b = col0 + 4 * cg;
  if (b >= p.d_v) return;
  for (int r = 0; r < 8; ++r) {
    const int a = 8 * rg + r;
    if (a >= p.d_k) break;
    float* row = frow(state, p.ssm_stride, a);
    if (p.ssm_vec)
      st4(row + b, rg_.s[r][0], rg_.s[r][1], rg_.s[r][2], rg_.s[r][3]);
    else
      for (int c = 0; c < 4; ++c)
        if (b + c < p.d_v) row[b + c] = rg_.s[r][c];
  }
}

// Phase A: W S and Q S over the padded d_k for rows i = rg + 16 r, columns 4 cg ..; then
// V' = U - W S and e^{G_last - G_i} V' to shared memory, Q S and the decays kept in registers.
DN_HD void state_products(StateShared& sm, StateRegs& rg_, int tid, int32_t len) {
  const int cg = state_cg(tid), rg = state_rg(tid);
  float aw[4][4];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) aw[r][c] = rg_.qs[r][c] = 0.f;
DN_UNROLL2
  for (int d = 0; d < kMaxDk; d += 4) {
    float4 w[4], q[4], s[4];
DN_UNROLL
    for (int r = 0; r < 4; ++r) {
      w[r] = ld4(&sm.w[rg + 16 * r][d]);
      q[r] = ld4(&sm.q[rg + 16 * r][d]);
      s[r] = ld4(&sm.s[d + r][4 * cg]);
    }
DN_UNROLL
    for (int e = 0; e < 4; ++e)
DN_UNROLL
      for (int r = 0; r < 4; ++r)
DN_UNROLL
        for (int c = 0; c < 4; ++c) {
          aw[r][c] = fmaf(at(w[r], e), at(s[e], c), aw[r][c]);
          rg_.qs[r][c] = fmaf(at(q[r], e), at(s[e], c), rg_.qs[r][c]);
        }
  }
  for (int r = 0; r < 4; ++r) {
    const int i = rg + 16 * r;
    const float4 u = ld4(&sm.u[i][4 * cg]);
    const float vp[4] = {u.x - aw[r][0], u.y - aw[r][1], u.z - aw[r][2], u.w - aw[r][3]};
    const float dl = sm.egl[i];
    st4(&sm.vp[i][4 * cg], vp[0], vp[1], vp[2], vp[3]);
    st4(&sm.vd[i][4 * cg], dl * vp[0], dl * vp[1], dl * vp[2], dl * vp[3]);
    rg_.eg[r] = sm.eg[i];
  }
  rg_.eg_last = sm.eg[len - 1];
}

// Phase B: o_i = q_scale e^{G_i} (Q S)_i + sum_j P_ij V'_j for the thread's rows and columns,
// written to `out` for rows inside the chunk and columns inside d_v.
DN_HD void state_output(const ChunkedArgs& p, const StateShared& sm, const StateRegs& rg_, int tid, int64_t row0,
                        int32_t len, int32_t h, int32_t col0) {
  const int cg = state_cg(tid), rg = state_rg(tid);
  float ao[4][4];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) ao[r][c] = 0.f;
DN_UNROLL2
  for (int j = 0; j < kChunkMax; j += 4) {
    float4 pr[4], v[4];
DN_UNROLL
    for (int r = 0; r < 4; ++r) {
      pr[r] = ld4(&sm.p[rg + 16 * r][j]);
      v[r] = ld4(&sm.vp[j + r][4 * cg]);
    }
DN_UNROLL
    for (int e = 0; e < 4; ++e)
DN_UNROLL
      for (int r = 0; r < 4; ++r)
DN_UNROLL
        for (int c = 0; c < 4; ++c) ao[r][c] = fmaf(at(pr[r], e), at(v[e], c), ao[r][c]);
  }
  const int32_t b = col0 + 4 * cg;
  for (int r = 0; r < 4; ++r) {
    const int i = rg + 16 * r;
    if (i >= len) break;
    float* orow = frow(p.out, p.out_stride, row0 + i) + int64_t(h) * p.d_v;
    const float sc = p.q_scale * rg_.eg[r];
    for (int c = 0; c < 4; ++c)
      if (b + c < p.d_v) orow[b + c] = fmaf(sc, rg_.qs[r][c], ao[r][c]);
  }
}

// Phase C: S <- e^{G_last} S + sum_j k_j (e^{G_last - G_j} V'_j)^T for rows 8 rg + r, columns
// 4 cg ..; the new tile also to sm.s for the next chunk's products.
DN_HD void state_update(StateShared& sm, StateRegs& rg_, int tid) {
  const int cg = state_cg(tid), rg = state_rg(tid);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 4; ++c) rg_.s[r][c] *= rg_.eg_last;
DN_UNROLL4
  for (int j = 0; j < kChunkMax; ++j) {
    const float4 k0 = ld4(&sm.k[j][8 * rg]), k1 = ld4(&sm.k[j][8 * rg + 4]);
    const float4 v = ld4(&sm.vd[j][4 * cg]);
    const float kr[8] = {k0.x, k0.y, k0.z, k0.w, k1.x, k1.y, k1.z, k1.w};
DN_UNROLL
    for (int r = 0; r < 8; ++r)
DN_UNROLL
      for (int c = 0; c < 4; ++c) rg_.s[r][c] = fmaf(kr[r], at(v, c), rg_.s[r][c]);
  }
  for (int r = 0; r < 8; ++r) st4(&sm.s[8 * rg + r][4 * cg], rg_.s[r][0], rg_.s[r][1], rg_.s[r][2], rg_.s[r][3]);
}

}  // namespace anvil::cuda::dn_chunked
