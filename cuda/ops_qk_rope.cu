// qk_norm_rope_store on CUDA: an attention layer's per-head q/k RMSNorm, RoPE on q and k, and the
// K/V store into the layer's pages, in one launch instead of five (two norms, two ropes, one
// kv_store). At decode each of those is a tiny kernel bound by launch and memory latency (rope was
// ~4 us, a head norm ~2 us on the H100, bench/NOTES.md), so the saving is the launches and the
// round trips of q and k through memory between them.
//
// Grid (tokens, unit blocks), kQkWarps warps per block, one warp per unit: a unit is a q head, a
// k head or a v head of one token (n_q + 2 n_kv units per token). A q/k warp reads its head into
// registers (8 elements per lane at head_dim 256), reduces the sum of squares with shuffles,
// scales by 1 / sqrt(mean + eps) (taken in double, rounded once) and the norm weight in the order
// the CPU rounds them, parks the normed head in shared memory so that each lane can read its
// element's rotation partner, rotates with the same angle table and rounding as rope
// (cuda/rope_angles.cuh), and writes q (or k) and the K row of the page. A v warp copies its head
// into the V row. Every block fills the angle table of its token (double sincos per pair, in
// parallel across the block), which costs less than a second launch to share it.
//
// Results equal the separate ops' to rounding: the only difference is the order of the float
// sum of squares (the separate rms_norm sums per thread then across warps).
//
// The grid depends on n_tokens and shapes only; positions and KV slots are read on the device
// (the CUDA-graph launch rule of cuda/ops.h). A slot outside the layer is skipped (a replayed
// graph runs with slots nobody validated on the host), as kv_store does.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/op_util.h"
#include "cuda/ops.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"
#include "cuda/rope_angles.cuh"

namespace anvil::cuda {
namespace {

constexpr int kQkWarps = 4;
constexpr int kQkMaxHeadDim = 256;
constexpr int kQkLaneElems = kQkMaxHeadDim / 32;

struct QkRopeParams {
  const float* q_src = nullptr;
  int64_t q_src_stride = 0;  // floats between q_src's head rows
  float* q = nullptr;
  int64_t q_stride = 0;      // floats between token rows
  float* k = nullptr;
  int64_t k_stride = 0;
  const float* v = nullptr;
  int64_t v_stride = 0;
  const float* q_w = nullptr;  // [head_dim] or null: no norm
  const float* k_w = nullptr;
  double eps = 0.0;
  void* k_dst = nullptr;
  void* v_dst = nullptr;
  int64_t k_dst_stride = 0, v_dst_stride = 0;  // elements between KV rows
  int64_t kv_rows = 0;
  const int32_t* positions = nullptr;
  const int32_t* kv_slots = nullptr;
  int32_t n_tokens = 0, n_q = 0, n_kv = 0, head_dim = 0;
  RopeAngles r;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename KvT>
__device__ __forceinline__ KvT to_kv(float x) {
  if constexpr (sizeof(KvT) == 2)
    return __float2half_rn(x);
  else
    return x;
}

// grid (min(n_tokens, 65535), ceil((n_q + 2 n_kv) / kQkWarps)), kQkWarps * 32 threads.
template <typename KvT>
__global__ void __launch_bounds__(kQkWarps * 32) qk_norm_rope_store_kernel(const __grid_constant__ QkRopeParams p) {
  pdl_begin();  // cuda/pdl.cuh
  extern __shared__ float smem[];
  const RopeAngles& r = p.r;
  const int32_t hd = p.head_dim;
  float* cos_t = smem;
  float* sin_t = smem + r.half;
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
  float* buf = smem + 2 * r.half + warp * hd;  // this warp's normed head
  const int32_t unit = int32_t(blockIdx.y) * kQkWarps + warp;
  const int32_t n_units = p.n_q + 2 * p.n_kv;
  KvT* k_dst = static_cast<KvT*>(p.k_dst);
  KvT* v_dst = static_cast<KvT*>(p.v_dst);

  for (int64_t t = blockIdx.x; t < p.n_tokens; t += gridDim.x) {
    rope_fill_table(r, p.positions[t], cos_t, sin_t);
    __syncthreads();
    const int32_t slot = p.kv_slots[t];
    const bool store = slot >= 0 && slot < p.kv_rows;
    if (unit >= p.n_q + p.n_kv && unit < n_units) {  // a v head: copy into the page
      const int32_t h = unit - p.n_q - p.n_kv;
      const float* src = p.v + t * p.v_stride + int64_t(h) * hd;
      if (store)
        for (int32_t e = lane; e < hd; e += 32) v_dst[int64_t(slot) * p.v_dst_stride + int64_t(h) * hd + e] = to_kv<KvT>(src[e]);
    } else if (unit < n_units) {  // a q or k head: norm, rotate, store
      const bool is_q = unit < p.n_q;
      const int32_t h = is_q ? unit : unit - p.n_q;
      const float* src = is_q ? p.q_src + (t * p.n_q + h) * p.q_src_stride : p.k + t * p.k_stride + int64_t(h) * hd;
      const float* w = is_q ? p.q_w : p.k_w;
      float x[kQkLaneElems];
      float ss = 0.f;
#pragma unroll
      for (int j = 0; j < kQkLaneElems; ++j) {
        const int32_t e = lane + 32 * j;
        x[j] = e < hd ? src[e] : 0.f;
        ss += x[j] * x[j];
      }
      if (w) {
        ss = warp_sum(ss);
        const float inv = float(1.0 / sqrt(double(ss) / hd + p.eps));
#pragma unroll
        for (int j = 0; j < kQkLaneElems; ++j) {
          const int32_t e = lane + 32 * j;
          if (e < hd) x[j] = (x[j] * inv) * w[e];  // rounded in this order like the CPU (and HF)
        }
      }
#pragma unroll
      for (int j = 0; j < kQkLaneElems; ++j)
        if (lane + 32 * j < hd) buf[lane + 32 * j] = x[j];
      __syncwarp();
      float* dst = is_q ? p.q + t * p.q_stride + int64_t(h) * hd : p.k + t * p.k_stride + int64_t(h) * hd;
#pragma unroll
      for (int j = 0; j < kQkLaneElems; ++j) {
        const int32_t e = lane + 32 * j;
        if (e >= hd) break;
        float y = x[j];
        if (e < r.rope_dims) {  // dims past rope_dims pass through (partial rotary)
          int32_t i;
          bool first;
          if (r.pair_step == 2) {  // NORMAL: pair i is (2i, 2i + 1)
            i = e >> 1;
            first = (e & 1) == 0;
          } else {  // NEOX: pair i is (i, i + half)
            first = e < r.half;
            i = first ? e : e - r.half;
          }
          const float a = buf[i * r.pair_step], b = buf[i * r.pair_step + r.stride_in_pair];
          float y0, y1;
          rope_rotate(a, b, cos_t[i], sin_t[i], y0, y1);
          y = first ? y0 : y1;
        }
        dst[e] = y;
        if (!is_q && store) k_dst[int64_t(slot) * p.k_dst_stride + int64_t(h) * hd + e] = to_kv<KvT>(y);
      }
    }
    __syncthreads();  // the next token overwrites the table and the head buffers
  }
}

bool same_angles(const RopeParams& a, const RopeParams& b) {
  return a.head_dim == b.head_dim && a.rope_dims == b.rope_dims && a.freq_base == b.freq_base &&
         a.freq_scale == b.freq_scale && a.mode == b.mode;
}

}  // namespace

Status qk_norm_rope_store(Context& ctx, const Tensor& q_src, Tensor q, Tensor k, const Tensor& v,
                          const QkNormRope& p, const KvLayer& kv, const DeviceStep& step) {
  constexpr const char* op = "qk_norm_rope_store";
  ANVIL_RETURN_IF_ERROR(check_qk_norm_rope(q_src, q, k, p));
  ANVIL_RETURN_IF_ERROR(check_step(op, step, step.positions, "positions"));
  ANVIL_RETURN_IF_ERROR(check_rope_params(op, p.rope_q));
  ANVIL_RETURN_IF_ERROR(check_rope_params(op, p.rope_k));
  ANVIL_RETURN_IF_ERROR(check_kv_store(kv, k, v, step));
  const int32_t hd = p.rope_q.head_dim;
  if (p.q_norm) ANVIL_RETURN_IF_ERROR(check_vector_weight(op, *p.q_norm, hd));
  if (p.k_norm) ANVIL_RETURN_IF_ERROR(check_vector_weight(op, *p.k_norm, hd));
  if (!(p.eps >= 0.f)) return make_error(StatusCode::invalid_argument, op, ": eps ", p.eps, " must be >= 0");
  if (!same_angles(p.rope_q, p.rope_k) || hd > kQkMaxHeadDim)
    return make_error(StatusCode::unsupported, op, ": the fused kernel takes one rope for q and k and head_dim <= ",
                      kQkMaxHeadDim, " (got head_dim ", hd, ")");
  if (step.n_tokens == 0) return Status::ok();
  if (!step.host)
    return make_error(StatusCode::invalid_argument, op, ": DeviceStep has no host mirror (use the CUDA backend's "
                      "prepare_step)");
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"q_src", &q_src}, {"q", &q}, {"k", &k}, {"v", &v}})
    ANVIL_RETURN_IF_ERROR(check_float_aligned(op, name, *t));

  const size_t elem = kv.k.type == DType::F32 ? 4 : 2;
  QkRopeParams k_p;
  k_p.q_src = static_cast<const float*>(q_src.data);
  k_p.q_src_stride = int64_t(q_src.row_stride / sizeof(float));
  k_p.q = static_cast<float*>(q.data);
  k_p.q_stride = int64_t(q.row_stride / sizeof(float));
  k_p.k = static_cast<float*>(k.data);
  k_p.k_stride = int64_t(k.row_stride / sizeof(float));
  k_p.v = static_cast<const float*>(v.data);
  k_p.v_stride = int64_t(v.row_stride / sizeof(float));
  k_p.q_w = p.q_norm ? static_cast<const float*>(p.q_norm->t.data) : nullptr;
  k_p.k_w = p.k_norm ? static_cast<const float*>(p.k_norm->t.data) : nullptr;
  k_p.eps = double(p.eps);
  k_p.k_dst = kv.k.data;
  k_p.v_dst = kv.v.data;
  k_p.k_dst_stride = int64_t(kv.k.row_stride / elem);
  k_p.v_dst_stride = int64_t(kv.v.row_stride / elem);
  k_p.kv_rows = kv.k.rows;
  k_p.positions = step.positions;
  k_p.kv_slots = step.kv_slots;
  k_p.n_tokens = step.n_tokens;
  k_p.n_q = p.rope_q.n_heads;
  k_p.n_kv = p.rope_k.n_heads;
  k_p.head_dim = hd;
  k_p.r = make_rope_angles(p.rope_q);

  const int64_t units = int64_t(k_p.n_q) + 2 * int64_t(k_p.n_kv);
  const dim3 grid(unsigned(std::min<int64_t>(step.n_tokens, 65535)), unsigned((units + kQkWarps - 1) / kQkWarps));
  const size_t smem = (2 * size_t(k_p.r.half) + size_t(kQkWarps) * size_t(hd)) * sizeof(float);
  if (grid.y > 65535 || smem > 48 * 1024)
    return make_error(StatusCode::unsupported, op, ": ", units, " heads per token or ", smem,
                      " bytes of shared memory exceed the fused kernel's launch");
  if (kv.k.type == DType::F32) {
    ANVIL_RETURN_IF_ERROR(launch_pdl("qk_norm_rope_store_kernel", qk_norm_rope_store_kernel<float>, grid,
                                     dim3(kQkWarps * 32), smem, ctx.stream, k_p));
  } else {
    ANVIL_RETURN_IF_ERROR(launch_pdl("qk_norm_rope_store_kernel", qk_norm_rope_store_kernel<__half>, grid,
                                     dim3(kQkWarps * 32), smem, ctx.stream, k_p));
  }
  return Status::ok();
}

}  // namespace anvil::cuda
