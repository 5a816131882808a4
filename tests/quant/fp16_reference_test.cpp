// F16 / BF16 conversions (core/fp16.h, used by every scale of every block) against exhaustive
// and long-double references: every half and bfloat16 bit pattern, and round-to-nearest-even
// of random f32 bit patterns over the whole range.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>

#include "core/fp16.h"
#include "quant/quant.h"

namespace anvil {
namespace {

// The value of a half from its fields, in long double (exact).
long double half_value(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  long double v = exp == 0 ? std::ldexp((long double)mant, -24)
                           : std::ldexp((long double)(1024 + mant), exp - 25);
  return sign ? -v : v;
}

// Round-to-nearest-even of x to a half, by comparing x with its two neighbouring halves.
uint16_t half_reference(float x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const long double a = std::fabs((long double)x);
  if (std::isnan(x)) return 0x7e00;
  if (a >= 65520.0L) return sign | 0x7c00;  // 65520 is halfway to 2^16: even side is inf
  // finite non-negative halves are ordered like their bit patterns: binary search
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    const uint16_t mid = uint16_t((lo + hi + 1) / 2);
    if (half_value(mid) <= a) lo = mid; else hi = uint16_t(mid - 1);
  }
  if (half_value(lo) == a) return sign | lo;
  const uint16_t up = uint16_t(lo + 1);
  const long double dl = a - half_value(lo), du = half_value(up) - a;
  if (dl < du) return sign | lo;
  if (du < dl) return sign | up;
  return sign | ((lo & 1) ? up : lo);
}

uint16_t bf16_reference(float x) {
  if (std::isnan(x)) return 0x7fc0;
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint16_t lo = uint16_t(bits >> 16);
  if ((bits & 0xffff) == 0) return lo;
  const uint16_t up = uint16_t(lo + 1);
  const long double a = std::fabs((long double)x);
  const long double vl = std::fabs((long double)std::bit_cast<float>(uint32_t(lo) << 16));
  // past the largest finite bfloat16 the next step is 2^128 (IEEE rounds as if the exponent
  // were unbounded, then overflows to inf)
  const long double vu = (up & 0x7fff) == 0x7f80 ? std::ldexp(1.0L, 128)
                                                 : std::fabs((long double)std::bit_cast<float>(uint32_t(up) << 16));
  const long double dl = a - vl, du = vu - a;
  if (dl < du) return lo;
  if (du < dl) return up;
  return (lo & 1) ? up : lo;
}

TEST(Fp16Reference, EveryHalfDecodesExactlyAndRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(uint16_t(h));
    const bool nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0;
    if (nan) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << h;
      continue;
    }
    if (((h >> 10) & 0x1f) == 0x1f) {
      ASSERT_TRUE(std::isinf(f)) << h;
    } else {
      ASSERT_EQ((long double)f, half_value(uint16_t(h))) << h;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << h;
  }
}

TEST(Fp16Reference, RoundsRandomFloatsToNearestEven) {
  std::mt19937 gen(42);
  int n_checked = 0;
  for (int i = 0; i < 2'000'000; ++i) {
    uint32_t bits = gen();
    // half the samples in the half's range (|x| < 2^17), where the rounding matters
    if (i & 1) bits = (bits & 0x80000000u) | (0x30000000u + (bits & 0x0fffffffu) % 0x18000000u);
    const float x = std::bit_cast<float>(bits);
    if (std::isnan(x)) continue;
    ASSERT_EQ(fp32_to_fp16(x), half_reference(x)) << std::hexfloat << x;
    ++n_checked;
  }
  // exact midpoints between neighbouring halves, including the subnormal ones
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const long double mid = (half_value(uint16_t(h)) + half_value(uint16_t(h + 1))) / 2;
    const float x = float(mid);
    if ((long double)x != mid) continue;  // not representable in f32
    ASSERT_EQ(fp32_to_fp16(x), half_reference(x)) << h;
    ASSERT_EQ(fp32_to_fp16(-x), half_reference(-x)) << h;
    ++n_checked;
  }
  EXPECT_GT(n_checked, 1'000'000);
}

TEST(Bf16Reference, EveryPatternRoundTripsAndRandomFloatsRoundToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(uint16_t(h));
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(fp32_to_bf16(f), h) << h;
  }
  std::mt19937 gen(43);
  for (int i = 0; i < 2'000'000; ++i) {
    const float x = std::bit_cast<float>(uint32_t(gen()));
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(x))));
      continue;
    }
    ASSERT_EQ(fp32_to_bf16(x), bf16_reference(x)) << std::hexfloat << x;
  }
}

TEST(Fp16Reference, RowFunctionsUseTheScalarConversions) {
  std::mt19937 gen(44);
  std::vector<float> x(4096);
  for (auto& v : x) v = std::bit_cast<float>(uint32_t(gen()) & 0xbfffffffu);  // finite
  std::vector<uint16_t> h(x.size()), b(x.size());
  ASSERT_TRUE(quant::quantize_row(DType::F16, x.data(), h.data(), int64_t(x.size())).is_ok());
  ASSERT_TRUE(quant::quantize_row(DType::BF16, x.data(), b.data(), int64_t(x.size())).is_ok());
  std::vector<float> y(x.size());
  ASSERT_TRUE(quant::dequantize_row(DType::F16, h.data(), y.data(), int64_t(x.size())).is_ok());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], fp32_to_fp16(x[i]));
    ASSERT_EQ(b[i], fp32_to_bf16(x[i]));
    ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(fp16_to_fp32(h[i])));
  }
}

}  // namespace
}  // namespace anvil
