// Row-wise and elementwise ops of the CPU backend: rms_norm, l2_norm, add, scale, glu,
// gather_logit_rows.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/backend.h"
#include "core/op_checks.h"

namespace anvil::cpu {
namespace {

// Rows per parallel chunk so each chunk does ~16K elements: enough to amortise the hand-off.
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols)); }

// A per-feature F32 vector (norm weight): any [1, n] / [n, 1] contiguous F32 weight.
Status check_vector_weight(const char* op, const Weight& w, int64_t n) {
  if (w.t.type != DType::F32 || w.t.n_elements() != n || !w.t.is_contiguous() || !w.t.data)
    return make_error(StatusCode::invalid_argument, op, ": weight '", w.name, "' ", shape_str(w.t),
                      " must be contiguous F32 with ", n, " elements");
  return Status::ok();
}

float silu(float g) { return g / (1.0f + std::exp(-g)); }
float sigmoid(float g) { return 1.0f / (1.0f + std::exp(-g)); }

// gelu_tanh(g) = 0.5 g (1 + tanh(z)), z = sqrt(2/pi) (g + 0.044715 g^3). Written as
// g * sigmoid(2z), the same function, because 1 + tanh(z) cancels for very negative g.
float gelu_tanh(float g) {
  const float z = 0.7978845608028654f * (g + 0.044715f * g * g * g);
  return g / (1.0f + std::exp(-2.0f * z));
}

}  // namespace

Status rms_norm(const Tensor& x, const Weight* w, float eps, Tensor out, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_f32("rms_norm", "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32("rms_norm", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("rms_norm", "x", x, "out", out));
  if (w) ANVIL_RETURN_IF_ERROR(check_vector_weight("rms_norm", *w, x.cols));
  if (!(eps >= 0.f)) return make_error(StatusCode::invalid_argument, "rms_norm: eps ", eps, " must be >= 0");
  const int64_t n = x.cols;
  if (n == 0) return Status::ok();
  const float* weight = w ? static_cast<const float*>(w->t.data) : nullptr;
  pool.parallel_for(x.rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.row<float>(r);
      float* yr = out.row<float>(r);
      double sum_sq = 0.0;
      for (int64_t i = 0; i < n; ++i) sum_sq += double(xr[i]) * double(xr[i]);
      // Rounded to f32 once, then applied as HF does: (x * inv_rms) * w.
      const float inv_rms = float(1.0 / std::sqrt(sum_sq / double(n) + double(eps)));
      for (int64_t i = 0; i < n; ++i) {
        const float v = xr[i] * inv_rms;
        yr[i] = weight ? v * weight[i] : v;
      }
    }
  });
  return Status::ok();
}

Status l2_norm(const Tensor& x, int32_t head_dim, float eps, Tensor out, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_f32("l2_norm", "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32("l2_norm", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("l2_norm", "x", x, "out", out));
  if (head_dim <= 0 || x.cols % head_dim != 0)
    return make_error(StatusCode::invalid_argument, "l2_norm: head_dim ", head_dim, " does not divide x ",
                      shape_str(x));
  if (!(eps >= 0.f)) return make_error(StatusCode::invalid_argument, "l2_norm: eps ", eps, " must be >= 0");
  pool.parallel_for(x.rows, row_grain(x.cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.row<float>(r);
      float* yr = out.row<float>(r);
      for (int64_t h0 = 0; h0 < x.cols; h0 += head_dim) {
        double sum_sq = 0.0;
        for (int64_t i = h0; i < h0 + head_dim; ++i) sum_sq += double(xr[i]) * double(xr[i]);
        // As HF: x * rsqrt(sum + eps), the factor rounded to f32 once.
        const float inv = float(1.0 / std::sqrt(sum_sq + double(eps)));
        for (int64_t i = h0; i < h0 + head_dim; ++i) yr[i] = xr[i] * inv;
      }
    }
  });
  return Status::ok();
}

Status add(const Tensor& a, const Tensor& b, Tensor out, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_f32("add", "a", a));
  ANVIL_RETURN_IF_ERROR(check_f32("add", "b", b));
  ANVIL_RETURN_IF_ERROR(check_f32("add", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("add", "a", a, "b", b));
  ANVIL_RETURN_IF_ERROR(check_same_shape("add", "a", a, "out", out));
  pool.parallel_for(a.rows, row_grain(a.cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* ar = a.row<float>(r);
      const float* br = b.row<float>(r);
      float* yr = out.row<float>(r);
      for (int64_t i = 0; i < a.cols; ++i) yr[i] = ar[i] + br[i];
    }
  });
  return Status::ok();
}

Status scale(Tensor x, float s, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_f32("scale", "x", x));
  pool.parallel_for(x.rows, row_grain(x.cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* xr = x.row<float>(r);
      for (int64_t i = 0; i < x.cols; ++i) xr[i] *= s;
    }
  });
  return Status::ok();
}

Status glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_f32("glu", "gate", gate));
  ANVIL_RETURN_IF_ERROR(check_f32("glu", "up", up));
  ANVIL_RETURN_IF_ERROR(check_f32("glu", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("glu", "gate", gate, "up", up));
  ANVIL_RETURN_IF_ERROR(check_same_shape("glu", "gate", gate, "out", out));
  if (act != Activation::silu && act != Activation::gelu_tanh && act != Activation::sigmoid)
    return make_error(StatusCode::invalid_argument, "glu: unknown activation ", int(act));
  pool.parallel_for(gate.rows, row_grain(gate.cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gate.row<float>(r);
      const float* u = up.row<float>(r);
      float* y = out.row<float>(r);
      if (act == Activation::silu)
        for (int64_t i = 0; i < gate.cols; ++i) y[i] = silu(g[i]) * u[i];
      else if (act == Activation::sigmoid)
        for (int64_t i = 0; i < gate.cols; ++i) y[i] = sigmoid(g[i]) * u[i];
      else
        for (int64_t i = 0; i < gate.cols; ++i) y[i] = gelu_tanh(g[i]) * u[i];
    }
  });
  return Status::ok();
}

Status gather_logit_rows(const Tensor& x, const DeviceStep& step, Tensor out) {
  ANVIL_RETURN_IF_ERROR(check_f32("gather_logit_rows", "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32("gather_logit_rows", "out", out));
  if (out.rows != step.n_logit_rows || out.cols != x.cols)
    return make_error(StatusCode::invalid_argument, "gather_logit_rows: out ", shape_str(out), " must be [",
                      step.n_logit_rows, " x ", x.cols, "] for x ", shape_str(x), " and ", step.n_logit_rows,
                      " logit rows");
  if (step.n_logit_rows > 0 && !step.logit_rows)
    return make_error(StatusCode::invalid_argument, "gather_logit_rows: DeviceStep has no logit_rows array");
  for (int32_t i = 0; i < step.n_logit_rows; ++i) {
    const int32_t r = step.logit_rows[i];
    if (r < 0 || r >= x.rows)
      return make_error(StatusCode::invalid_argument, "gather_logit_rows: logit row ", r, " (entry ", i,
                        ") is outside x ", shape_str(x));
  }
  const size_t bytes = size_t(x.cols) * sizeof(float);
  for (int32_t i = 0; i < step.n_logit_rows; ++i)
    std::memmove(out.row<float>(i), x.row<float>(step.logit_rows[i]), bytes);
  return Status::ok();
}

}  // namespace anvil::cpu
