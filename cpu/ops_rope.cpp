// Rotary position embedding, in place, NORMAL (pairs 2i, 2i+1) and NEOX (pairs i, i + d/2)
// modes, with partial rotary (dims >= rope_dims pass through).
//
// The angle is computed the way HF transformers computes it, so golden logits match to 1e-4:
// inv_freq_i = 1 / base^(2i/d) in f32, theta = f32(pos) * inv_freq_i in f32, then cos/sin of
// that f32 angle (here correctly rounded through double). A double-precision angle would be
// *more* accurate but differ from HF by up to ulp(pos * inv_freq) ~ 2.4e-4 rad at pos 4096.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/backend.h"
#include "core/op_checks.h"

namespace anvil::cpu {

Status rope(Tensor x, const RopeParams& p, const DeviceStep& step, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_step("rope", step, step.positions, "positions"));
  ANVIL_RETURN_IF_ERROR(check_f32("rope", "x", x));
  if (p.n_heads <= 0 || p.head_dim <= 0 || p.rope_dims <= 0 || p.rope_dims > p.head_dim || p.rope_dims % 2 != 0)
    return make_error(StatusCode::invalid_argument, "rope: bad params n_heads ", p.n_heads, ", head_dim ",
                      p.head_dim, ", rope_dims ", p.rope_dims, " (need 0 < rope_dims <= head_dim, even)");
  if (p.mode != RopeMode::normal && p.mode != RopeMode::neox)
    return make_error(StatusCode::invalid_argument, "rope: unknown mode ", int(p.mode));
  if (!(p.freq_base > 0.f) || !std::isfinite(p.freq_scale))
    return make_error(StatusCode::invalid_argument, "rope: freq_base ", p.freq_base, " / freq_scale ",
                      p.freq_scale, " must be positive and finite");
  if (x.cols != int64_t(p.n_heads) * p.head_dim || x.rows != step.n_tokens)
    return make_error(StatusCode::invalid_argument, "rope: x ", shape_str(x), " must be [", step.n_tokens, " x ",
                      int64_t(p.n_heads) * p.head_dim, "] (n_tokens x n_heads ", p.n_heads, " * head_dim ",
                      p.head_dim, ")");

  const int32_t half = p.rope_dims / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int32_t i = 0; i < half; ++i) {
    const float exponent = float(2 * i) / float(p.rope_dims);
    inv_freq[size_t(i)] = 1.0f / std::pow(p.freq_base, exponent);
    // Linear scaling: HF divides inv_freq by factor = 1 / freq_scale; dividing (not multiplying
    // by freq_scale) rounds as it does.
    if (p.freq_scale != 1.f) inv_freq[size_t(i)] /= 1.0f / p.freq_scale;
  }
  // NORMAL pairs (2i, 2i+1); NEOX pairs (i, i + half).
  const int32_t stride_in_pair = p.mode == RopeMode::normal ? 1 : half;
  const int32_t pair_step = p.mode == RopeMode::normal ? 2 : 1;

  pool.parallel_for(x.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, x.cols)), [&](int64_t t0, int64_t t1) {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t t = t0; t < t1; ++t) {
      const float pos = float(step.positions[t]);
      for (int32_t i = 0; i < half; ++i) {
        const float theta = pos * inv_freq[size_t(i)];
        cos_t[size_t(i)] = float(std::cos(double(theta)));
        sin_t[size_t(i)] = float(std::sin(double(theta)));
      }
      float* row = x.row<float>(t);
      for (int32_t h = 0; h < p.n_heads; ++h) {
        float* head = row + int64_t(h) * p.head_dim;
        for (int32_t i = 0; i < half; ++i) {
          float* a = head + i * pair_step;
          float* b = a + stride_in_pair;
          const float x0 = *a, x1 = *b, c = cos_t[size_t(i)], s = sin_t[size_t(i)];
          *a = x0 * c - x1 * s;
          *b = x0 * s + x1 * c;
        }
      }
    }
  });
  return Status::ok();
}

}  // namespace anvil::cpu
