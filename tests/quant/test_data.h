// Random test data for the quant tests: several distributions, never all zeros.
#pragma once

#include <cstdint>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace anvil::quant::testing {

enum class Dist { normal, uniform, outliers, lognormal };

inline const char* dist_name(Dist d) {
  switch (d) {
    case Dist::normal: return "normal";
    case Dist::uniform: return "uniform";
    case Dist::outliers: return "outliers";
    case Dist::lognormal: return "lognormal";
  }
  return "?";
}

inline constexpr Dist kAllDists[] = {Dist::normal, Dist::uniform, Dist::outliers, Dist::lognormal};

// n values; `outliers` is N(0, 0.02) with one value in 64 multiplied by 300; `lognormal` has a
// random sign and magnitudes spread over several decades (so blocks differ a lot in scale).
inline std::vector<float> make_data(Dist d, size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(-3.0f, 7.0f);
  std::uniform_int_distribution<int> pick(0, 63);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    switch (d) {
      case Dist::normal: x[i] = normal(gen); break;
      case Dist::uniform: x[i] = uniform(gen); break;
      case Dist::outliers: x[i] = 0.02f * normal(gen) * (pick(gen) == 0 ? 300.0f : 1.0f); break;
      case Dist::lognormal: x[i] = (pick(gen) & 1 ? 1.0f : -1.0f) * std::exp(2.0f * normal(gen)); break;
    }
  }
  return x;
}

}  // namespace anvil::quant::testing
