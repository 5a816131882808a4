// Deterministic synthetic weights: xoshiro256** streams seeded through splitmix64 from
// (seed, tensor index, stream index); normals by Box-Muller. A stream covers a fixed number of
// rows that depends only on the row length, so the values do not depend on the thread count.
#include <cmath>
#include <numbers>

#include "make_test_model/model_spec.h"

namespace anvil::tools::mtm {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // uniform in (0, 1): never 0, so log() is safe
  double uniform() { return (double(next() >> 11) + 0.5) * 0x1p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Fills out[0, n) with N(0, 1) by Box-Muller (two values per pair of uniforms).
void fill_normal(Xoshiro256& rng, float* out, uint64_t n) {
  uint64_t i = 0;
  for (; i + 1 < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(rng.uniform()));
    const double th = 2.0 * std::numbers::pi * rng.uniform();
    out[i] = float(r * std::cos(th));
    out[i + 1] = float(r * std::sin(th));
  }
  if (i < n) {
    const double r = std::sqrt(-2.0 * std::log(rng.uniform()));
    out[i] = float(r * std::cos(2.0 * std::numbers::pi * rng.uniform()));
  }
}

void fill_stream(const WeightOptions& o, WeightKind kind, Xoshiro256& rng, float* out, uint64_t n) {
  switch (kind) {
    case WeightKind::matrix:
    case WeightKind::bias:
    case WeightKind::conv:
      fill_normal(rng, out, n);
      for (uint64_t i = 0; i < n; ++i) out[i] *= o.std;
      return;
    case WeightKind::norm:  // gemma's GGUF norms already hold 1 + w, so ~1 for every arch
      fill_normal(rng, out, n);
      for (uint64_t i = 0; i < n; ++i) out[i] = 1.0f + 0.02f * out[i];
      return;
    case WeightKind::ssm_a: {  // A = -exp(A_log), A_log ~ U(0, log 16), as the converter stores it
      const double hi = std::log(16.0);
      for (uint64_t i = 0; i < n; ++i) out[i] = float(-std::exp(rng.uniform() * hi));
      return;
    }
    case WeightKind::ssm_dt: {  // inverse softplus of dt ~ logU(1e-3, 1e-1) (Mamba/GDN init)
      const double lo = std::log(1e-3), hi = std::log(1e-1);
      for (uint64_t i = 0; i < n; ++i) {
        const double dt = std::exp(lo + rng.uniform() * (hi - lo));
        out[i] = float(dt + std::log(-std::expm1(-dt)));
      }
      return;
    }
  }
}

}  // namespace

int64_t rows_per_stream(uint64_t ne0) {
  constexpr uint64_t kStreamElements = 1u << 16;
  return int64_t(std::max<uint64_t>(1, kStreamElements / std::max<uint64_t>(ne0, 1)));
}

void generate_rows(const WeightOptions& o, WeightKind kind, uint64_t tensor_index, uint64_t ne0, int64_t row0,
                   int64_t n_rows, float* out) {
  const int64_t rps = rows_per_stream(ne0);
  for (int64_t r = row0; r < row0 + n_rows; r += rps) {
    const uint64_t stream = uint64_t(r / rps);
    uint64_t key = o.seed;
    uint64_t mixed = splitmix64(key) ^ (tensor_index * 0xd1b54a32d192ed03ull);
    mixed = splitmix64(mixed) ^ (stream * 0x8cb92ba72f3d8dd7ull);
    Xoshiro256 rng(mixed);
    const int64_t rows = std::min(rps, row0 + n_rows - r);
    fill_stream(o, kind, rng, out + uint64_t(r - row0) * ne0, uint64_t(rows) * ne0);
  }
}

}  // namespace anvil::tools::mtm
