// fp16/bf16 conversions against independent references: the hardware-free exact decoding
// formula for half, and a long-double round-to-nearest-even model for the encoders.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/fp16.h"

namespace anvil {
namespace {

// Exact value of a half bit pattern, computed from the definition.
double half_value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(double(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(double(1024 + m), e - 25);
  return s ? -v : v;
}

TEST(Fp16, DecodesAllPatternsExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double want = half_value(uint16_t(h));
    const float got = fp16_to_fp32(uint16_t(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(double(got), want) << h;
      EXPECT_EQ(std::signbit(got), bool(h & 0x8000)) << h;
    }
  }
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(fp32_to_fp16(f), h) << h;
  }
}

// Nearest half by exhaustive search over the finite halves with the same sign; ties go to the
// even mantissa; beyond the largest half + half an ulp: infinity.
uint16_t nearest_half(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(double(f));
  if (a >= 65520.0) return sign | 0x7c00;
  // binary search on the monotonic magnitudes 0..0x7bff
  uint32_t lo = 0, hi = 0x7bff;
  while (hi - lo > 1) {
    const uint32_t mid = (lo + hi) / 2;
    (half_value(uint16_t(mid)) <= a ? lo : hi) = mid;
  }
  const double dlo = a - half_value(uint16_t(lo)), dhi = half_value(uint16_t(hi)) - a;
  uint32_t pick = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
  if (a >= half_value(uint16_t(hi))) pick = hi;
  return uint16_t(sign | pick);
}

TEST(Fp16, EncodesRandomFloatsToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> exp(-30, 17);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  for (int i = 0; i < 200000; ++i) {
    float f = std::ldexp(mant(rng), exp(rng)) * ((i & 1) ? -1.f : 1.f);
    ASSERT_EQ(fp32_to_fp16(f), nearest_half(f)) << f;
  }
  // exact ties between two halves: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);       // tie with zero -> even (zero)
  EXPECT_EQ(fp32_to_fp16(0x1.8p-25f), 0x0001);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
}

TEST(Bf16, RoundsToNearestEvenAndKeepsNan) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t x = bits(rng);
    float f;
    std::memcpy(&f, &x, 4);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f))));
      continue;
    }
    const uint16_t got = fp32_to_bf16(f);
    // reference: the two bf16 neighbours, pick the closer in long double, ties to even
    const uint16_t lo = uint16_t(x >> 16), hi = uint16_t(lo + 1);
    const long double a = f, vlo = bf16_to_fp32(lo);
    // past the largest finite bf16 the next value is infinity, which rounding treats as 2^128
    const long double vhi = std::isinf(bf16_to_fp32(hi)) ? std::copysign(std::ldexp(1.0L, 128), a) : bf16_to_fp32(hi);
    const long double dlo = std::fabs(a - vlo), dhi = std::fabs(vhi - a);
    const uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
    ASSERT_EQ(got, want) << std::hex << x;
  }
}

}  // namespace
}  // namespace anvil
