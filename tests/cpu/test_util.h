// Helpers shared by the CPU backend tests: random fills, poisoned outputs, error measures.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "core/backend.h"
#include "core/fp16.h"
#include "tests/cpu/reference_ops.h"

namespace anvil::test_cpu {

using test_ref::Mat;

// Uniform in +-[lo, hi): random sign, magnitude bounded away from zero (inputs are never zero).
inline std::vector<float> random_values(std::mt19937& rng, size_t n, float lo = 0.05f, float hi = 2.0f) {
  std::uniform_real_distribution<float> mag(lo, hi);
  std::bernoulli_distribution neg(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = neg(rng) ? -mag(rng) : mag(rng);
  return v;
}

// An F32 tensor in backend memory, NaN-filled (poisoned) so unwritten outputs show.
struct Buf {
  std::shared_ptr<DeviceBuffer> mem;
  Tensor t;
};

inline Buf alloc_f32(Backend& be, int64_t rows, int64_t cols) {
  Buf b;
  b.mem = be.alloc(size_t(std::max<int64_t>(rows * cols, 1)) * sizeof(float)).value();
  b.t = b.mem->as_tensor(DType::F32, rows, cols);
  std::fill_n(static_cast<float*>(b.mem->data()), rows * cols, std::numeric_limits<float>::quiet_NaN());
  return b;
}

inline void fill(const Tensor& t, const std::vector<float>& v) {
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c) t.row<float>(r)[c] = v[size_t(r * t.cols + c)];
}

inline void poison(const Tensor& t) {
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c) t.row<float>(r)[c] = std::numeric_limits<float>::quiet_NaN();
}

inline Mat to_mat(const Tensor& t) {
  Mat m(t.rows, t.cols);
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c) m.at(r, c) = t.row<const float>(r)[c];
  return m;
}

inline Mat to_mat(const std::vector<float>& v, int64_t rows, int64_t cols) {
  Mat m(rows, cols);
  for (size_t i = 0; i < v.size(); ++i) m.v[i] = v[i];
  return m;
}

// Normwise relative error max|a - ref| / max|ref|; infinity when a holds a NaN or inf (an
// unwritten, still-poisoned element).
inline double rel_error(const Tensor& a, const Mat& ref) {
  EXPECT_EQ(a.rows, ref.rows);
  EXPECT_EQ(a.cols, ref.cols);
  double max_err = 0, max_ref = 0;
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < a.cols; ++c) {
      const double x = a.row<const float>(r)[c];
      if (!std::isfinite(x)) return std::numeric_limits<double>::infinity();
      max_err = std::max(max_err, std::abs(x - ref.at(r, c)));
      max_ref = std::max(max_ref, std::abs(ref.at(r, c)));
    }
  return max_ref > 0 ? max_err / max_ref : max_err;
}

}  // namespace anvil::test_cpu
