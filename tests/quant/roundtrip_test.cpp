// Quantize -> dequantize error of every format, on several distributions.
//
// Two bounds per type:
//  * RMSE of the whole row relative to the row's RMS, below a bound set from measurement with a
//    margin (measured values in kTypes; gcc 12 -O2, 64K elements per distribution);
//  * max abs error of each block below a multiple of that block's scale, derived from the
//    format (half a quantization step, a whole step where the top level clamps, plus the f16
//    rounding of the stored scales).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "quant/quant.h"
#include "test_data.h"

namespace anvil::quant {
namespace {

using testing::Dist;

struct TypeBound {
  DType type;
  double rel_rmse;  // worst relative RMSE allowed over the distributions
  // max |err| in a block <= step_factor * (block amax or range) / levels
  double step_factor;
  int levels;
  bool use_range;  // asymmetric formats: the step is range / levels
};

// Bounds: the worst relative RMSE measured over the four distributions (gcc 12 -O2, 64K values
// each) times ~1.3. Measured normal / uniform / outliers / lognormal:
//   F16  2.08e-4 2.02e-4 2.17e-4 2.02e-4     BF16 1.66e-3 1.61e-3 1.68e-3 1.55e-3
//   Q8_0 5.36e-3 4.28e-3 9.98e-3 9.34e-3     Q8_K 7.02e-3 4.51e-3 2.13e-2 2.25e-2
//   Q6_K 1.78e-2 1.50e-2 1.63e-2 2.06e-2     Q5_K 3.62e-2 2.26e-2 3.56e-2 3.80e-2
//   Q5_0 4.27e-2 3.40e-2 1.93e-2 4.70e-2     Q5_1 3.78e-2 2.43e-2 4.13e-2 5.59e-2
//   Q4_K 7.16e-2 4.48e-2 4.01e-2 6.29e-2     Q4_0 8.63e-2 6.79e-2 2.67e-2 7.59e-2
//   Q4_1 7.85e-2 5.00e-2 6.63e-2 1.16e-1
// (For N(0,1) data a 32-block's amax is ~2.1 sigma, so Q8_0's step/sqrt(12) is ~0.48% of the
// RMS, as measured; heavy tails make the scales, and so the relative error, larger.)
// Per-block max |err| bounds, from the formats: half a step for rounding to nearest (Q8_0,
// Q8_K, Q4_1, Q5_1); a whole step where the top level clamps (Q4_0 / Q5_0 map x = -max to
// 16 / 32 levels but store only 15 / 31) and for the K formats, whose 6-bit (8-bit) sub-block
// scales and mins only approximate the searched ones; measured worst ratios 0.38 (Q8_0),
// 0.37 (Q8_K), 0.49 (Q4_1, Q5_1), 0.98 (Q4_0), 0.97 (Q5_0), 0.48 (Q6_K), 0.81 (Q5_K), 0.74 (Q4_K).
constexpr TypeBound kTypes[] = {
    {DType::F32, 0.0, 0.0, 1, false},
    {DType::F16, 3.0e-4, 0.0, 1, false},
    {DType::BF16, 2.5e-3, 0.0, 1, false},
    {DType::Q8_0, 1.3e-2, 0.51, 127, false},
    {DType::Q8_K, 3.0e-2, 0.51, 127, false},
    {DType::Q6_K, 2.7e-2, 1.0, 32, false},
    {DType::Q5_0, 6.0e-2, 1.01, 16, false},
    {DType::Q5_1, 7.0e-2, 0.51, 31, true},
    {DType::Q5_K, 5.0e-2, 1.0, 31, true},
    {DType::Q4_0, 1.1e-1, 1.01, 8, false},
    {DType::Q4_1, 1.5e-1, 0.51, 15, true},
    {DType::Q4_K, 9.5e-2, 1.0, 15, true},
};

struct Errors {
  double rel_rmse = 0.0;
  double worst_step_ratio = 0.0;  // max over blocks of max|err| / step
};

Errors measure(const TypeBound& tb, const std::vector<float>& x) {
  const auto& tr = traits(tb.type);
  const int64_t n = int64_t(x.size());
  std::vector<uint8_t> q(*row_bytes(tb.type, uint64_t(n)));
  std::vector<float> y(static_cast<size_t>(n));
  EXPECT_TRUE(quantize_row(tb.type, x.data(), q.data(), n).is_ok());
  EXPECT_TRUE(dequantize_row(tb.type, q.data(), y.data(), n).is_ok());
  double se = 0.0, ss = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    se += double(y[i] - x[i]) * double(y[i] - x[i]);
    ss += double(x[i]) * double(x[i]);
  }
  Errors e;
  e.rel_rmse = std::sqrt(se / ss);
  if (tb.levels > 1) {
    const int64_t bs = tr.block_size;
    for (int64_t b = 0; b < n / bs; ++b) {
      float amax = 0.0f, mn = x[b * bs], mx = x[b * bs];
      double max_err = 0.0;
      for (int64_t i = b * bs; i < (b + 1) * bs; ++i) {
        amax = std::max(amax, std::fabs(x[i]));
        mn = std::min(mn, x[i]);
        mx = std::max(mx, x[i]);
        max_err = std::max(max_err, double(std::fabs(y[i] - x[i])));
      }
      // K formats keep a min <= 0, so their range reaches down to 0 at least
      const double range = double(mx) - double(std::min(mn, 0.0f));
      const double step = (tb.use_range ? range : double(amax)) / tb.levels;
      // f16-stored scale and min each add up to 2^-11 relative: allow it on top
      const double slack = 1e-3 * std::max(double(amax), range) + 1e-30;
      e.worst_step_ratio = std::max(e.worst_step_ratio, (max_err - slack) / step);
    }
  }
  return e;
}

TEST(QuantRoundTrip, ErrorWithinFormatBounds) {
  constexpr size_t kN = 256 * 256;
  for (const auto& tb : kTypes) {
    double worst_rmse = 0.0, worst_step = 0.0;
    for (Dist d : testing::kAllDists) {
      const auto x = testing::make_data(d, kN, 1234 + uint32_t(d));
      const Errors e = measure(tb, x);
      std::printf("  %-5s %-9s rel_rmse %.3e  worst max|err|/step %.3f\n", traits(tb.type).name,
                  testing::dist_name(d), e.rel_rmse, e.worst_step_ratio);
      worst_rmse = std::max(worst_rmse, e.rel_rmse);
      worst_step = std::max(worst_step, e.worst_step_ratio);
      if (tb.type == DType::F32) {
        EXPECT_EQ(e.rel_rmse, 0.0);
      } else {
        EXPECT_LE(e.rel_rmse, tb.rel_rmse) << traits(tb.type).name << " " << testing::dist_name(d);
      }
      if (tb.levels > 1) {
        EXPECT_LE(e.worst_step_ratio, tb.step_factor) << traits(tb.type).name << " " << testing::dist_name(d);
      }
    }
    std::printf("%-5s worst rel_rmse %.3e (bound %.1e), worst step ratio %.3f (bound %.2f)\n",
                traits(tb.type).name, worst_rmse, tb.rel_rmse, worst_step, tb.step_factor);
  }
}

TEST(QuantRoundTrip, F32IsExact) {
  const auto x = testing::make_data(Dist::lognormal, 1000, 7);
  std::vector<float> q(1000), y(1000);
  ASSERT_TRUE(quantize_row(DType::F32, x.data(), q.data(), 1000).is_ok());
  ASSERT_TRUE(dequantize_row(DType::F32, q.data(), y.data(), 1000).is_ok());
  EXPECT_EQ(std::memcmp(x.data(), y.data(), 4000), 0);
}

// Quantizing what a quantizer produced is (nearly) a fixed point: the dequantized values are
// exactly representable, so a second pass must not lose more than rounding of the scales.
TEST(QuantRoundTrip, RequantizingIsStable) {
  for (const auto& tb : kTypes) {
    if (tb.levels <= 1) continue;
    const int64_t n = 256 * 64;
    const auto x = testing::make_data(Dist::normal, size_t(n), 99);
    std::vector<uint8_t> q(*row_bytes(tb.type, uint64_t(n))), q2(q.size());
    std::vector<float> y(static_cast<size_t>(n)), y2(static_cast<size_t>(n));
    ASSERT_TRUE(quantize_row(tb.type, x.data(), q.data(), n).is_ok());
    ASSERT_TRUE(dequantize_row(tb.type, q.data(), y.data(), n).is_ok());
    ASSERT_TRUE(quantize_row(tb.type, y.data(), q2.data(), n).is_ok());
    ASSERT_TRUE(dequantize_row(tb.type, q2.data(), y2.data(), n).is_ok());
    double se = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      se += double(y2[i] - y[i]) * double(y2[i] - y[i]);
      ss += double(y[i]) * double(y[i]);
    }
    EXPECT_LE(std::sqrt(se / ss), tb.rel_rmse) << traits(tb.type).name;
  }
}

TEST(QuantRoundTrip, ImportanceWeightsKeepErrorsBounded) {
  // the imatrix paths: weighted search, same formats; the error must stay near the plain one
  const DType types[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                         DType::Q4_K, DType::Q5_K, DType::Q6_K};
  const int64_t n = 4096;
  const auto x = testing::make_data(Dist::normal, size_t(n) * 8, 5);
  std::vector<float> w(static_cast<size_t>(n));
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(0.1f, 4.0f);
  for (auto& v : w) v = u(gen);
  for (DType t : types) {
    std::vector<uint8_t> q(*row_bytes(t, uint64_t(n)));
    std::vector<float> y(static_cast<size_t>(n));
    double se_plain = 0.0, se_w = 0.0, ss = 0.0;
    for (int r = 0; r < 8; ++r) {
      const float* xr = x.data() + r * n;
      ASSERT_TRUE(quantize_row(t, xr, q.data(), n).is_ok());
      ASSERT_TRUE(dequantize_row(t, q.data(), y.data(), n).is_ok());
      for (int64_t i = 0; i < n; ++i) se_plain += w[i] * double(y[i] - xr[i]) * double(y[i] - xr[i]);
      ASSERT_TRUE(quantize_row(t, xr, q.data(), n, w.data()).is_ok());
      ASSERT_TRUE(dequantize_row(t, q.data(), y.data(), n).is_ok());
      for (int64_t i = 0; i < n; ++i) {
        se_w += w[i] * double(y[i] - xr[i]) * double(y[i] - xr[i]);
        ss += w[i] * double(xr[i]) * double(xr[i]);
      }
    }
    std::printf("%-5s weighted rel error: plain %.3e, with weights %.3e\n", traits(t).name,
                std::sqrt(se_plain / ss), std::sqrt(se_w / ss));
    // the weighted search optimizes exactly this measure: it should not be much worse
    EXPECT_LE(std::sqrt(se_w / ss), 1.05 * std::sqrt(se_plain / ss)) << traits(t).name;
  }
}

TEST(QuantRoundTrip, RejectsBadLengthsAndTypes) {
  float x[40] = {};
  uint8_t q[64];
  EXPECT_EQ(quantize_row(DType::Q4_0, x, q, 40).code(), StatusCode::invalid_argument);
  EXPECT_EQ(dequantize_row(DType::Q4_K, q, x, 32).code(), StatusCode::invalid_argument);
  EXPECT_EQ(quantize_row(DType::Q2_K, x, q, 0).code(), StatusCode::unsupported);
  EXPECT_FALSE(has_reference(DType::IQ4_NL));
  EXPECT_TRUE(has_reference(DType::Q8_K));
}

}  // namespace
}  // namespace anvil::quant
