// Elementwise ops on CUDA: add, scale, glu (silu / gelu_tanh / sigmoid gates), deltanet_gates,
// and the row gather gather_logit_rows.
//
// At decode these are a few thousand elements each, so they are launch-bound: one kernel per op
// call, no temporaries. add/scale/glu share one kernel, templated on the op, over a 2-D grid:
// blockIdx.y walks rows (any row_stride, so slice_cols / head_halves views work without a
// copy) and x walks a row's columns in float4 steps when every row start is 16-byte aligned
// (scalar otherwise, and for the last partial vector). Tensors whose rows are all contiguous are
// folded into one long row first, so [17 x 1] is not 17 blocks of one useful thread.
//
// out may alias an input (add's out = a, glu's out = gate or up): each element is read and
// written by the same thread, so nothing here is __restrict__.
//
// The math mirrors cpu/ops_elementwise.cpp and cpu/ops_deltanet.cpp: the same formulas (gelu_tanh
// as g * sigmoid(2z), finite for very negative g), expf in float for the gates, and the DeltaNet
// gates in double like the CPU (a handful of values per token, so double costs nothing).
//
// gather_logit_rows reads the row indices from device memory (DeviceStep::logit_rows) and sizes
// its grid from n_logit_rows only, so a captured decode graph replays with new rows.
#include <algorithm>
#include <cstdint>
#include <utility>

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

enum class EltOp { add, scale, silu, gelu_tanh, sigmoid };

struct EltParams {
  const float* a = nullptr;  // add: a; scale: x; glu: gate
  const float* b = nullptr;  // add: b; glu: up; scale: unused
  float* out = nullptr;
  int64_t a_stride = 0, b_stride = 0, out_stride = 0;  // floats between rows
  int64_t rows = 0, cols = 0;
  float s = 1.f;  // scale's factor
};

__device__ __forceinline__ float sigmoid_f(float g) { return 1.0f / (1.0f + expf(-g)); }
__device__ __forceinline__ float silu_f(float g) { return g / (1.0f + expf(-g)); }
// 0.5 g (1 + tanh(z)) == g * sigmoid(2z): the second form does not cancel for very negative g.
__device__ __forceinline__ float gelu_tanh_f(float g) {
  const float z = 0.7978845608028654f * (g + 0.044715f * g * g * g);
  return g / (1.0f + expf(-2.0f * z));
}

template <EltOp kOp>
__device__ __forceinline__ float apply(float a, float b, float s) {
  if constexpr (kOp == EltOp::add) return a + b;
  else if constexpr (kOp == EltOp::scale) return a * s;
  else if constexpr (kOp == EltOp::silu) return silu_f(a) * b;
  else if constexpr (kOp == EltOp::gelu_tanh) return gelu_tanh_f(a) * b;
  else return sigmoid_f(a) * b;
}

// glu at decode sizes, fused with the decode GEMV's activation quantization (the output feeds
// ffn_down, or Qwen3.5's attn_output): one warp per 32 values of a row, each lane one value,
// then cuda/gemv_quantize.cuh's rounding (the GEMV's own, so its result is bit-identical to
// quantizing separately).
// cols % 32 == 0; q / ds in cuda/gemv.h's activation layout for rows x cols.
template <EltOp kOp>
__global__ void glu_q8_kernel(EltParams p, int8_t* __restrict__ q, float2* __restrict__ ds) {
  pdl_begin();  // cuda/pdl.cuh
  const int64_t per_row = p.cols / 32;
  const int64_t blk = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (blk >= p.rows * per_row) return;  // whole warps only
  const int lane = int(threadIdx.x) & 31;
  const int64_t r = blk / per_row, j = blk % per_row, c = j * 32 + lane;
  const float v[1] = {apply<kOp>(p.a[r * p.a_stride + c], p.b[r * p.b_stride + c], p.s)};
  p.out[r * p.out_stride + c] = v[0];
  int qi[1];
  const float2 block = quantize_q8_block<32, 1>(v, qi);
  q[r * p.cols + c] = static_cast<int8_t>(qi[0]);
  if (lane == 0) ds[r * per_row + j] = block;
}

template <EltOp kOp, int kVec>
__global__ void elementwise_kernel(EltParams p) {
  pdl_begin();  // cuda/pdl.cuh
  constexpr bool kHasB = kOp != EltOp::scale;
  const int64_t n_vec = (p.cols + kVec - 1) / kVec;
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    const float* a = p.a + r * p.a_stride;
    const float* b = kHasB ? p.b + r * p.b_stride : nullptr;
    float* y = p.out + r * p.out_stride;
    for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n_vec; j += int64_t(gridDim.x) * blockDim.x) {
      const int64_t c = j * kVec;
      if (kVec == 4 && c + 4 <= p.cols) {
        const float4 va = *reinterpret_cast<const float4*>(a + c);
        float4 vb = make_float4(0.f, 0.f, 0.f, 0.f);
        if constexpr (kHasB) vb = *reinterpret_cast<const float4*>(b + c);
        float4 vy;
        vy.x = apply<kOp>(va.x, vb.x, p.s);
        vy.y = apply<kOp>(va.y, vb.y, p.s);
        vy.z = apply<kOp>(va.z, vb.z, p.s);
        vy.w = apply<kOp>(va.w, vb.w, p.s);
        *reinterpret_cast<float4*>(y + c) = vy;
      } else {
        for (int64_t k = c; k < c + kVec && k < p.cols; ++k) y[k] = apply<kOp>(a[k], kHasB ? b[k] : 0.f, p.s);
      }
    }
  }
}

bool rows_packed(const Tensor& t) { return t.rows <= 1 || t.row_stride == size_t(t.cols) * sizeof(float); }

// A 2-D launch over rows x (vectors per row): y walks rows, x a row's vectors; both capped, the
// kernel loops over the rest. Depends only on the shape (CUDA graph launch rule).
void grid_2d(const Context& ctx, int64_t rows, int64_t n_vec, dim3& grid, dim3& block) {
  const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (n_vec + 31) / 32 * 32)));
  const int64_t bx = std::min<int64_t>((n_vec + threads - 1) / threads, std::max(1, ctx.sm_count) * 8);
  block = dim3(unsigned(threads));
  grid = dim3(unsigned(std::max<int64_t>(1, bx)), unsigned(std::min<int64_t>(rows, 65535)));
}

// a, b (null for scale) and out share a shape, already validated.
template <EltOp kOp>
Status launch_elementwise(Context& ctx, const char* op, const Tensor& a, const Tensor* b, Tensor out, float s) {
  if (a.rows == 0 || a.cols == 0) return Status::ok();
  ANVIL_RETURN_IF_ERROR(check_float_aligned(op, "a", a));
  if (b) ANVIL_RETURN_IF_ERROR(check_float_aligned(op, "b", *b));
  ANVIL_RETURN_IF_ERROR(check_float_aligned(op, "out", out));
  EltParams p;
  p.a = static_cast<const float*>(a.data);
  p.b = b ? static_cast<const float*>(b->data) : nullptr;
  p.out = static_cast<float*>(out.data);
  p.a_stride = int64_t(a.row_stride / sizeof(float));
  p.b_stride = b ? int64_t(b->row_stride / sizeof(float)) : 0;
  p.out_stride = int64_t(out.row_stride / sizeof(float));
  p.rows = a.rows;
  p.cols = a.cols;
  p.s = s;
  bool vec = rows_aligned16(a) && (!b || rows_aligned16(*b)) && rows_aligned16(out);
  if (rows_packed(a) && (!b || rows_packed(*b)) && rows_packed(out)) {
    // One long row: the row alignment no longer matters, only the starts.
    p.cols = a.rows * a.cols;
    p.rows = 1;
    vec = aligned16(a.data) && (!b || aligned16(b->data)) && aligned16(out.data);
  }
  dim3 grid, block;
  if (vec) {
    grid_2d(ctx, p.rows, (p.cols + 3) / 4, grid, block);
    ANVIL_RETURN_IF_ERROR(launch_pdl("elementwise_kernel", elementwise_kernel<kOp, 4>, grid, block, 0, ctx.stream, p));
  } else {
    grid_2d(ctx, p.rows, p.cols, grid, block);
    ANVIL_RETURN_IF_ERROR(launch_pdl("elementwise_kernel", elementwise_kernel<kOp, 1>, grid, block, 0, ctx.stream, p));
  }
  return Status::ok();
}

// ---- gather_logit_rows

struct GatherParams {
  const float* x = nullptr;
  float* out = nullptr;
  int64_t x_stride = 0, out_stride = 0;  // floats
  int64_t x_rows = 0, cols = 0;
  const int32_t* rows = nullptr;  // device: DeviceStep::logit_rows
  int32_t n_rows = 0;
};

template <int kVec>
__global__ void gather_rows_kernel(GatherParams p) {
  pdl_begin();  // cuda/pdl.cuh
  const int64_t n_vec = (p.cols + kVec - 1) / kVec;
  for (int64_t i = blockIdx.y; i < p.n_rows; i += gridDim.y) {
    const int32_t r = p.rows[i];
    // The host validated this step's rows; a replayed graph's rows were validated by its
    // prepare_step too, so this only keeps a bad row from reading out of bounds.
    if (r < 0 || r >= p.x_rows) continue;
    const float* src = p.x + int64_t(r) * p.x_stride;
    float* dst = p.out + i * p.out_stride;
    for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n_vec; j += int64_t(gridDim.x) * blockDim.x) {
      const int64_t c = j * kVec;
      if (kVec == 4 && c + 4 <= p.cols)
        *reinterpret_cast<float4*>(dst + c) = *reinterpret_cast<const float4*>(src + c);
      else
        for (int64_t k = c; k < c + kVec && k < p.cols; ++k) dst[k] = src[k];
    }
  }
}

// Byte range [first, last) a tensor's rows cover.
bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.rows == 0 || a.cols == 0 || b.rows == 0 || b.cols == 0) return false;
  const auto lo_a = reinterpret_cast<uintptr_t>(a.data), lo_b = reinterpret_cast<uintptr_t>(b.data);
  const uintptr_t hi_a = lo_a + size_t(a.rows - 1) * a.row_stride + a.row_size();
  const uintptr_t hi_b = lo_b + size_t(b.rows - 1) * b.row_stride + b.row_size();
  return lo_a < hi_b && lo_b < hi_a;
}

// ---- deltanet_gates

struct GatesParams {
  const float* alpha = nullptr;
  const float* b = nullptr;
  const float* dt_bias = nullptr;  // [cols]
  const float* a = nullptr;        // [cols]
  float* g = nullptr;
  float* beta = nullptr;
  int64_t alpha_stride = 0, b_stride = 0, g_stride = 0, beta_stride = 0;  // floats
  int64_t rows = 0, cols = 0;
};

__global__ void deltanet_gates_kernel(GatesParams p) {
  pdl_begin();  // cuda/pdl.cuh
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    for (int64_t h = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; h < p.cols; h += int64_t(gridDim.x) * blockDim.x) {
      // Both inputs are read before either output is written: g / beta may alias alpha / b.
      const double x = double(p.alpha[r * p.alpha_stride + h]) + double(p.dt_bias[h]);
      const double bv = double(p.b[r * p.b_stride + h]);
      // softplus(x) = max(x, 0) + log1p(e^-|x|): finite for large |x|, as the CPU writes it.
      const double sp = fmax(x, 0.0) + log1p(exp(-fabs(x)));
      p.g[r * p.g_stride + h] = float(sp * double(p.a[h]));
      p.beta[r * p.beta_stride + h] = float(1.0 / (1.0 + exp(-bv)));
    }
  }
}

// The CPU's per-head vector check: any [1, n] / [n, 1] contiguous F32 weight.
Status check_vector(const char* op, const Weight& w, int64_t n) {
  if (w.t.type != DType::F32 || w.t.n_elements() != n || !w.t.is_contiguous() || !w.t.data)
    return make_error(StatusCode::invalid_argument, op, ": weight '", w.name, "' ", shape_str(w.t),
                      " must be contiguous F32 with ", n, " elements");
  return Status::ok();
}

}  // namespace

Status add(Context& ctx, const Tensor& a, const Tensor& b, Tensor out) {
  ANVIL_RETURN_IF_ERROR(check_f32("add", "a", a));
  ANVIL_RETURN_IF_ERROR(check_f32("add", "b", b));
  ANVIL_RETURN_IF_ERROR(check_f32("add", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("add", "a", a, "b", b));
  ANVIL_RETURN_IF_ERROR(check_same_shape("add", "a", a, "out", out));
  return launch_elementwise<EltOp::add>(ctx, "add", a, &b, out, 1.f);
}

Status scale(Context& ctx, Tensor x, float s) {
  ANVIL_RETURN_IF_ERROR(check_f32("scale", "x", x));
  return launch_elementwise<EltOp::scale>(ctx, "scale", x, nullptr, x, s);
}

Status glu(Context& ctx, const Tensor& gate, const Tensor& up, Activation act, Tensor out) {
  ANVIL_RETURN_IF_ERROR(check_f32("glu", "gate", gate));
  ANVIL_RETURN_IF_ERROR(check_f32("glu", "up", up));
  ANVIL_RETURN_IF_ERROR(check_f32("glu", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("glu", "gate", gate, "up", up));
  ANVIL_RETURN_IF_ERROR(check_same_shape("glu", "gate", gate, "out", out));
  // At decode sizes the output is also quantized for the GEMV that reads it next (the down
  // projection), which then skips its quantize launch (Context::reuse_quantized_x).
  auto target = gemv_input_target(ctx, out.rows, out.cols);
  if (!target) return target.status();
  if (target->has_value() && out.rows * out.cols / 32 <= INT32_MAX) {
    ANVIL_RETURN_IF_ERROR(check_float_aligned("glu", "gate", gate));
    ANVIL_RETURN_IF_ERROR(check_float_aligned("glu", "up", up));
    ANVIL_RETURN_IF_ERROR(check_float_aligned("glu", "out", out));
    const GemvActivations& q8 = **target;
    EltParams p;
    p.a = static_cast<const float*>(gate.data);
    p.b = static_cast<const float*>(up.data);
    p.out = static_cast<float*>(out.data);
    p.a_stride = int64_t(gate.row_stride / sizeof(float));
    p.b_stride = int64_t(up.row_stride / sizeof(float));
    p.out_stride = int64_t(out.row_stride / sizeof(float));
    p.rows = out.rows;
    p.cols = out.cols;
    const int warps_per_cta = 8;
    const unsigned ctas = unsigned((out.rows * out.cols / 32 + warps_per_cta - 1) / warps_per_cta);
    switch (act) {
      case Activation::silu:
        ANVIL_RETURN_IF_ERROR(launch_pdl("glu_q8_kernel", glu_q8_kernel<EltOp::silu>, dim3(ctas),
                                         dim3(32 * warps_per_cta), 0, ctx.stream, p, q8.q, q8.ds));
        break;
      case Activation::gelu_tanh:
        ANVIL_RETURN_IF_ERROR(launch_pdl("glu_q8_kernel", glu_q8_kernel<EltOp::gelu_tanh>, dim3(ctas),
                                         dim3(32 * warps_per_cta), 0, ctx.stream, p, q8.q, q8.ds));
        break;
      case Activation::sigmoid:
        ANVIL_RETURN_IF_ERROR(launch_pdl("glu_q8_kernel", glu_q8_kernel<EltOp::sigmoid>, dim3(ctas),
                                         dim3(32 * warps_per_cta), 0, ctx.stream, p, q8.q, q8.ds));
        break;
      default: return make_error(StatusCode::invalid_argument, "glu: unknown activation ", int(act));
    }
    gemv_input_written(ctx, out);
    return Status::ok();
  }
  switch (act) {
    case Activation::silu: return launch_elementwise<EltOp::silu>(ctx, "glu", gate, &up, out, 1.f);
    case Activation::gelu_tanh: return launch_elementwise<EltOp::gelu_tanh>(ctx, "glu", gate, &up, out, 1.f);
    case Activation::sigmoid: return launch_elementwise<EltOp::sigmoid>(ctx, "glu", gate, &up, out, 1.f);
  }
  return make_error(StatusCode::invalid_argument, "glu: unknown activation ", int(act));
}

Status gather_logit_rows(Context& ctx, const Tensor& x, const DeviceStep& step, Tensor out) {
  const char* op = "gather_logit_rows";
  ANVIL_RETURN_IF_ERROR(check_f32(op, "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32(op, "out", out));
  if (out.rows != step.n_logit_rows || out.cols != x.cols)
    return make_error(StatusCode::invalid_argument, "gather_logit_rows: out ", shape_str(out), " must be [",
                      step.n_logit_rows, " x ", x.cols, "] for x ", shape_str(x), " and ", step.n_logit_rows,
                      " logit rows");
  if (step.n_logit_rows > 0 && !step.logit_rows)
    return make_error(StatusCode::invalid_argument, "gather_logit_rows: DeviceStep has no logit_rows array");
  // The indices are checked on the host mirror; the kernel reads the device copy.
  if (step.n_logit_rows > 0 && !step.host)
    return make_error(StatusCode::invalid_argument, "gather_logit_rows: DeviceStep has no host mirror (use the CUDA "
                      "backend's prepare_step)");
  const DeviceStep& hs = host_step(step);
  if (hs.n_logit_rows != step.n_logit_rows || (hs.n_logit_rows > 0 && !hs.logit_rows))
    return make_error(StatusCode::invalid_argument, "gather_logit_rows: DeviceStep's host mirror has no logit_rows");
  for (int32_t i = 0; i < hs.n_logit_rows; ++i) {
    const int32_t r = hs.logit_rows[i];
    if (r < 0 || r >= x.rows)
      return make_error(StatusCode::invalid_argument, "gather_logit_rows: logit row ", r, " (entry ", i,
                        ") is outside x ", shape_str(x));
  }
  if (step.n_logit_rows == 0 || x.cols == 0) return Status::ok();
  // The CPU copies row by row with memmove; a parallel gather cannot order overlapping rows, so
  // an out that shares memory with x is refused instead of racing.
  if (overlaps(x, out))
    return make_error(StatusCode::invalid_argument, "gather_logit_rows: out ", shape_str(out),
                      " overlaps x ", shape_str(x), " (the CUDA gather is not in place)");
  ANVIL_RETURN_IF_ERROR(check_float_aligned(op, "x", x));
  ANVIL_RETURN_IF_ERROR(check_float_aligned(op, "out", out));
  GatherParams p;
  p.x = static_cast<const float*>(x.data);
  p.out = static_cast<float*>(out.data);
  p.x_stride = int64_t(x.row_stride / sizeof(float));
  p.out_stride = int64_t(out.row_stride / sizeof(float));
  p.x_rows = x.rows;
  p.cols = x.cols;
  p.rows = step.logit_rows;
  p.n_rows = step.n_logit_rows;
  const bool vec = rows_aligned16(x) && rows_aligned16(out);
  dim3 grid, block;
  if (vec) {
    grid_2d(ctx, p.n_rows, (p.cols + 3) / 4, grid, block);
    ANVIL_RETURN_IF_ERROR(launch_pdl("gather_rows_kernel", gather_rows_kernel<4>, grid, block, 0, ctx.stream, p));
  } else {
    grid_2d(ctx, p.n_rows, p.cols, grid, block);
    ANVIL_RETURN_IF_ERROR(launch_pdl("gather_rows_kernel", gather_rows_kernel<1>, grid, block, 0, ctx.stream, p));
  }
  return Status::ok();
}

Status deltanet_gates(Context& ctx, const Tensor& alpha, const Tensor& b, const Weight& dt_bias, const Weight& a,
                      Tensor g, Tensor beta) {
  const char* op = "deltanet_gates";
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"alpha", &alpha}, {"b", &b}, {"g", &g},
                                {"beta", &beta}}) {
    ANVIL_RETURN_IF_ERROR(check_f32(op, name, *t));
    ANVIL_RETURN_IF_ERROR(check_same_shape(op, "alpha", alpha, name, *t));
  }
  ANVIL_RETURN_IF_ERROR(check_vector(op, dt_bias, alpha.cols));
  ANVIL_RETURN_IF_ERROR(check_vector(op, a, alpha.cols));
  if (alpha.rows == 0 || alpha.cols == 0) return Status::ok();
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"alpha", &alpha}, {"b", &b}, {"g", &g},
                                {"beta", &beta}})
    ANVIL_RETURN_IF_ERROR(check_float_aligned(op, name, *t));
  GatesParams p;
  p.alpha = static_cast<const float*>(alpha.data);
  p.b = static_cast<const float*>(b.data);
  p.dt_bias = static_cast<const float*>(dt_bias.t.data);
  p.a = static_cast<const float*>(a.t.data);
  p.g = static_cast<float*>(g.data);
  p.beta = static_cast<float*>(beta.data);
  p.alpha_stride = int64_t(alpha.row_stride / sizeof(float));
  p.b_stride = int64_t(b.row_stride / sizeof(float));
  p.g_stride = int64_t(g.row_stride / sizeof(float));
  p.beta_stride = int64_t(beta.row_stride / sizeof(float));
  p.rows = alpha.rows;
  p.cols = alpha.cols;
  dim3 grid, block;
  grid_2d(ctx, p.rows, p.cols, grid, block);
  ANVIL_RETURN_IF_ERROR(launch_pdl("deltanet_gates_kernel", deltanet_gates_kernel, grid, block, 0, ctx.stream, p));
  return Status::ok();
}

}  // namespace anvil::cuda
