// Shared by the CPU matmul tests: random quantized weights and an independent naive f64
// reference (quant::dequantize_row, then plain double loops).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "quant/quant.h"

namespace anvil::test {

// A weight matrix [out, in] of type t quantized from N(0, 1) values (fresh per seed).
struct RandomWeight {
  std::vector<uint8_t> bytes;
  Tensor t;
  RandomWeight(DType type, int64_t out, int64_t in, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> f(size_t(out * in));
    for (auto& v : f) v = nd(rng);
    const uint64_t rb = *row_bytes(type, uint64_t(in));
    bytes.resize(rb * uint64_t(out));
    throw_if_error(quant::quantize_rows(type, f.data(), bytes.data(), in, out, 1));
    t = Tensor::contiguous(bytes.data(), type, out, in);
  }
};

inline std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// y[t][o] = sum_i x[t][i] * W[o][i] in double; x is [n, in] with row stride x_stride floats.
inline std::vector<double> naive_matmul(const Tensor& w, const float* x, size_t x_stride, int64_t n) {
  std::vector<float> row(size_t(w.cols));
  std::vector<double> y(size_t(n * w.rows));
  for (int64_t o = 0; o < w.rows; ++o) {
    throw_if_error(quant::dequantize_row(w.type, w.row<const uint8_t>(o), row.data(), w.cols));
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t i = 0; i < w.cols; ++i) s += double(x[size_t(t) * x_stride + size_t(i)]) * double(row[size_t(i)]);
      y[size_t(t * w.rows + o)] = s;
    }
  }
  return y;
}

// max over tokens of ||y_t - ref_t||_2 / ||ref_t||_2 (inf when y has a non-finite value).
inline double max_token_error(const Tensor& y, const std::vector<double>& ref) {
  double worst = 0;
  for (int64_t t = 0; t < y.rows; ++t) {
    double d2 = 0, r2 = 0;
    for (int64_t o = 0; o < y.cols; ++o) {
      const double a = y.row<const float>(t)[o], b = ref[size_t(t * y.cols + o)];
      if (!std::isfinite(a)) return INFINITY;
      d2 += (a - b) * (a - b);
      r2 += b * b;
    }
    worst = std::max(worst, std::sqrt(d2 / r2));
  }
  return worst;
}

}  // namespace anvil::test
