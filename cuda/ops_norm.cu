// rms_norm, add_rms_norm and l2_norm on CUDA: all are "scale each segment of a row by 1 / sqrt(sum(x^2) [/ n]
// + eps)", so they share one kernel. rms_norm's segment is the whole row (times the optional
// weight); l2_norm's segments are the head_dim-wide groups of a row. add_rms_norm first adds the
// residual h into x (x += h, stored) in the same pass that sums the squares.
//
// One thread block per segment: the segment is read once to reduce the sum of squares (warp
// shuffles, then one shared-memory step across warps) and once more to scale and store; the
// second read mostly hits L1/L2, and keeping the row in registers would need a shape-dependent
// template for no gain on an op this small. Sums are float (the CPU oracle uses double): a tree
// of <= 1024 partials of a few squares each stays ~1e-7 relative, well inside the 1e-5 tests.
// The final 1 / sqrt is taken in double and rounded to float once, as the CPU does, so the only
// difference from the oracle is the float sum.
//
// x and out may alias (in-place norms, per-head reshape_cols views): each element is read and
// then written by the same thread, after the block-wide reduction, so aliasing is safe; nothing
// is __restrict__. Strided views (slice_cols, Qwen3.5's head_halves with row_stride 2 heads)
// take the float4 path only when every row start is 16-byte aligned.
#include <cstdint>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/gemv_quantize.cuh"
#include "cuda/matmul.h"
#include "cuda/op_util.h"
#include "cuda/ops.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda {
namespace {

struct NormParams {
  const float* x = nullptr;
  float* out = nullptr;
  int64_t x_stride = 0;    // floats between rows
  int64_t out_stride = 0;
  int64_t seg_len = 0;     // values normalised together
  int64_t segs_per_row = 1;
  const float* w = nullptr;  // [seg_len] or null (only rms_norm has one)
  // add_rms_norm: x_sum = x + h is written back over x (x_sum == x) before it is normalised.
  const float* h = nullptr;
  float* x_sum = nullptr;
  int64_t h_stride = 0;
  // The output quantized for the decode GEMV (cuda/gemv.h's activation layout), or null.
  int8_t* q8 = nullptr;
  float2* q8_ds = nullptr;
  double divisor = 1.0;      // seg_len for the RMS (mean of squares), 1 for the L2 norm (sum)
  double eps = 0.0;
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < n_warps ? warp_sums[lane] : 0.f;
    v = warp_sum(v);
    if (lane == 0) warp_sums[0] = v;
  }
  __syncthreads();
  return warp_sums[0];
}

// kVec 4: seg_len % 4 == 0 and every row start (x, out, w, h) 16-byte aligned. kAdd: the first
// pass also adds h and stores the sum over x (add_rms_norm); the second pass then reads the sum
// back, each thread only the elements it wrote itself, so no synchronisation is needed.
// kQ8 (with kVec 4, seg_len % 32 == 0, one segment per row): the second pass also writes the
// output as the GEMV's int8 activations with its rounding (cuda/gemv_quantize.cuh): 8
// consecutive threads hold one 32-value block, so its max and quant sum are three shuffles.
template <int kVec, bool kAdd, bool kQ8 = false>
__global__ void norm_kernel(NormParams p) {
  pdl_begin();  // cuda/pdl.cuh
  const int64_t seg = blockIdx.x;
  const int64_t r = seg / p.segs_per_row, h = seg % p.segs_per_row;
  const float* x = p.x + r * p.x_stride + h * p.seg_len;
  float* y = p.out + r * p.out_stride + h * p.seg_len;

  float ss = 0.f;
  if constexpr (kVec == 4) {
    const int64_t n4 = p.seg_len / 4;
    for (int64_t i = threadIdx.x; i < n4; i += blockDim.x) {
      float4 v = reinterpret_cast<const float4*>(x)[i];
      if constexpr (kAdd) {
        const float4 a = reinterpret_cast<const float4*>(p.h + r * p.h_stride)[i];
        v.x += a.x, v.y += a.y, v.z += a.z, v.w += a.w;
        reinterpret_cast<float4*>(p.x_sum + r * p.x_stride)[i] = v;
      }
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (int64_t i = threadIdx.x; i < p.seg_len; i += blockDim.x) {
      float v = x[i];
      if constexpr (kAdd) {
        v += p.h[r * p.h_stride + i];
        p.x_sum[r * p.x_stride + i] = v;
      }
      ss += v * v;
    }
  }
  ss = block_sum(ss);
  const float inv = float(1.0 / sqrt(double(ss) / p.divisor + p.eps));

  if constexpr (kQ8) {
    static_assert(kVec == 4, "the quantized output takes the float4 path");
    const int64_t n4 = p.seg_len / 4;
    // Every lane runs every round (the shuffles need the whole warp); lanes past the row idle.
    for (int64_t base = 0; base < n4; base += blockDim.x) {
      const int64_t i = base + threadIdx.x;
      const bool on = i < n4;
      float4 v = on ? reinterpret_cast<const float4*>(x)[i] : make_float4(0.f, 0.f, 0.f, 0.f);
      v.x *= inv, v.y *= inv, v.z *= inv, v.w *= inv;
      if (p.w && on) {
        const float4 w = reinterpret_cast<const float4*>(p.w)[i];
        v.x *= w.x, v.y *= w.y, v.z *= w.z, v.w *= w.w;
      }
      if (on) reinterpret_cast<float4*>(y)[i] = v;
      const float vals[4] = {v.x, v.y, v.z, v.w};
      int q[4];
      const float2 block = quantize_q8_block<8, 4>(vals, q);
      if (on) {
        reinterpret_cast<char4*>(p.q8 + r * p.seg_len)[i] =
            make_char4(int8_t(q[0]), int8_t(q[1]), int8_t(q[2]), int8_t(q[3]));
        if ((threadIdx.x & 7) == 0) p.q8_ds[r * (p.seg_len / 32) + i / 8] = block;
      }
    }
  } else if constexpr (kVec == 4) {
    const int64_t n4 = p.seg_len / 4;
    for (int64_t i = threadIdx.x; i < n4; i += blockDim.x) {
      float4 v = reinterpret_cast<const float4*>(x)[i];
      // (x * inv) * w, rounded in that order like the CPU (and HF).
      v.x *= inv, v.y *= inv, v.z *= inv, v.w *= inv;
      if (p.w) {
        const float4 w = reinterpret_cast<const float4*>(p.w)[i];
        v.x *= w.x, v.y *= w.y, v.z *= w.z, v.w *= w.w;
      }
      reinterpret_cast<float4*>(y)[i] = v;
    }
  } else {
    for (int64_t i = threadIdx.x; i < p.seg_len; i += blockDim.x) {
      const float v = x[i] * inv;
      y[i] = p.w ? v * p.w[i] : v;
    }
  }
}

// add: add_rms_norm's h (x is then also the sum's destination); null for the plain norms.
// q8: where to also write the output quantized for the GEMV (rows of seg_len values, one segment
// per row); taken only on the float4 path with seg_len % 32 == 0, which *quantized reports.
Status launch_norm(Context& ctx, const char* op, const Tensor& x, const float* w, int64_t seg_len, double divisor,
                   float eps, Tensor out, const Tensor* add = nullptr, const GemvActivations* q8 = nullptr,
                   bool* quantized = nullptr) {
  const int64_t segs_per_row = x.cols / seg_len;
  const int64_t n_segs = x.rows * segs_per_row;
  if (n_segs == 0 || seg_len == 0) return Status::ok();
  if (n_segs > INT32_MAX)
    return make_error(StatusCode::unsupported, op, ": ", n_segs, " segments of x ", shape_str(x), " exceed one grid");
  NormParams p;
  p.x = static_cast<const float*>(x.data);
  p.out = static_cast<float*>(out.data);
  p.x_stride = int64_t(x.row_stride / sizeof(float));
  p.out_stride = int64_t(out.row_stride / sizeof(float));
  p.seg_len = seg_len;
  p.segs_per_row = segs_per_row;
  p.w = w;
  p.divisor = divisor;
  p.eps = double(eps);
  if (add) {
    p.h = static_cast<const float*>(add->data);
    p.h_stride = int64_t(add->row_stride / sizeof(float));
    p.x_sum = static_cast<float*>(x.data);
  }
  const bool vec = seg_len % 4 == 0 && rows_aligned16(x) && rows_aligned16(out) && (!w || aligned16(w)) &&
                   (!add || rows_aligned16(*add));
  // About one float4 per thread: a 4096-wide row is one 1024-thread block, a 128-wide head one warp.
  const int64_t per_thread = (seg_len + 3) / 4;
  const int threads = int(std::min<int64_t>(1024, std::max<int64_t>(32, (per_thread + 31) / 32 * 32)));
  const bool q8_out = q8 && vec && seg_len % 32 == 0 && segs_per_row == 1;
  if (quantized) *quantized = q8_out;
  void (*kernel)(NormParams) = nullptr;
  if (q8_out) {
    p.q8 = q8->q;
    p.q8_ds = q8->ds;
    kernel = add ? norm_kernel<4, true, true> : norm_kernel<4, false, true>;
  } else if (add) {
    kernel = vec ? norm_kernel<4, true> : norm_kernel<1, true>;
  } else {
    kernel = vec ? norm_kernel<4, false> : norm_kernel<1, false>;
  }
  return launch_pdl("norm_kernel", kernel, dim3(unsigned(n_segs)), dim3(unsigned(threads)), 0, ctx.stream, p);
}

}  // namespace

// rms_norm's (and add_rms_norm's) arguments: F32 x and out of one shape, an optional F32 weight
// of x.cols, eps >= 0, 4-byte aligned rows.
Status check_rms_norm(const char* op, const Tensor& x, const Weight* w, float eps, const Tensor& out) {
  ANVIL_RETURN_IF_ERROR(check_f32(op, "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32(op, "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape(op, "x", x, "out", out));
  if (w) ANVIL_RETURN_IF_ERROR(check_vector_weight(op, *w, x.cols));
  if (!(eps >= 0.f)) return make_error(StatusCode::invalid_argument, op, ": eps ", eps, " must be >= 0");
  if (x.cols == 0 || x.rows == 0) return Status::ok();
  ANVIL_RETURN_IF_ERROR(check_float_aligned(op, "x", x));
  return check_float_aligned(op, "out", out);
}

Status rms_norm(Context& ctx, const Tensor& x, const Weight* w, float eps, Tensor out) {
  ANVIL_RETURN_IF_ERROR(check_rms_norm("rms_norm", x, w, eps, out));
  if (x.cols == 0 || x.rows == 0) return Status::ok();
  const float* weight = w ? static_cast<const float*>(w->t.data) : nullptr;
  return launch_norm(ctx, "rms_norm", x, weight, x.cols, double(x.cols), eps, out);
}

Status add_rms_norm(Context& ctx, Tensor x, const Tensor& h, const Weight* w, float eps, Tensor out) {
  ANVIL_RETURN_IF_ERROR(check_rms_norm("add_rms_norm", x, w, eps, out));
  ANVIL_RETURN_IF_ERROR(check_f32("add_rms_norm", "h", h));
  ANVIL_RETURN_IF_ERROR(check_same_shape("add_rms_norm", "x", x, "h", h));
  if (x.cols == 0 || x.rows == 0) return Status::ok();
  ANVIL_RETURN_IF_ERROR(check_float_aligned("add_rms_norm", "h", h));
  // An element of x is written by the thread that reads it, and out may alias h the same way.
  const float* weight = w ? static_cast<const float*>(w->t.data) : nullptr;
  // At decode sizes the output is also quantized for the GEMVs that read it next (q/k/v or
  // gate/up), which then skip their quantize launch (cuda/matmul.h).
  auto q8 = gemv_input_target(ctx, out.rows, out.cols);
  if (!q8) return q8.status();
  bool quantized = false;
  ANVIL_RETURN_IF_ERROR(launch_norm(ctx, "add_rms_norm", x, weight, x.cols, double(x.cols), eps, out, &h,
                                    q8->has_value() ? &**q8 : nullptr, &quantized));
  if (quantized) gemv_input_written(ctx, out);
  return Status::ok();
}

Status l2_norm(Context& ctx, const Tensor& x, int32_t head_dim, float eps, Tensor out) {
  ANVIL_RETURN_IF_ERROR(check_f32("l2_norm", "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32("l2_norm", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("l2_norm", "x", x, "out", out));
  if (head_dim <= 0 || x.cols % head_dim != 0)
    return make_error(StatusCode::invalid_argument, "l2_norm: head_dim ", head_dim, " does not divide x ",
                      shape_str(x));
  if (!(eps >= 0.f)) return make_error(StatusCode::invalid_argument, "l2_norm: eps ", eps, " must be >= 0");
  if (x.cols == 0 || x.rows == 0) return Status::ok();
  ANVIL_RETURN_IF_ERROR(check_float_aligned("l2_norm", "x", x));
  ANVIL_RETURN_IF_ERROR(check_float_aligned("l2_norm", "out", out));
  return launch_norm(ctx, "l2_norm", x, nullptr, head_dim, 1.0, eps, out);
}

}  // namespace anvil::cuda
