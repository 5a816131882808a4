// The matmul oracle: every other candidate is checked against it. Clarity over speed, but not
// needlessly slow: each weight row is dequantized once and used for all n tokens, and the dot
// product keeps 8 independent partial sums so it is not one long dependent add chain (the
// tuner may time it at prefill shapes).
#include <mutex>
#include <vector>

#include "core/dtype.h"
#include "cpu/matmul_candidates.h"
#include "quant/quant.h"

namespace anvil::cpu {

namespace {

float dot_f32(const float* a, const float* b, int64_t n) {
  float part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += a[i + j] * b[i + j];
  float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

bool matmul_reference_supports(const MatmulArgs& a) {
  return quant::has_reference(a.w->type) && a.w->type != DType::Q8_K;
}

Status matmul_reference(const MatmulArgs& a) {
  const Tensor& w = *a.w;
  const Tensor& x = *a.x;
  const int64_t in = w.cols, n = x.rows;
  Status failure;
  std::mutex failure_mu;
  a.pool->parallel_for(w.rows, 16, [&](int64_t o0, int64_t o1) {
    std::vector<float> row(static_cast<size_t>(in));
    for (int64_t o = o0; o < o1; ++o) {
      // Only fails on an unsupported type, which supports() rules out; keep the first error.
      Status s = quant::dequantize_row(w.type, w.row<const uint8_t>(o), row.data(), in);
      if (!s.is_ok()) {
        std::lock_guard lk(failure_mu);
        failure = s;
        return;
      }
      for (int64_t t = 0; t < n; ++t) a.y.row<float>(t)[o] = dot_f32(x.row<const float>(t), row.data(), in);
    }
  });
  return failure;
}

}  // namespace anvil::cpu
