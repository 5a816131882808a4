// Every matmul candidate against the naive f64 reference on fresh random weights of every type,
// at shapes with odd token counts and output counts that do not divide among the threads; and
// the SIMD variants (scalar / AVX2 / AVX-512) against each other, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "cpu/matmul_candidates.h"
#include "cpu/matmul_simd.h"
#include "tests/cpu_matmul/matmul_test_util.h"

namespace anvil::cpu {
namespace {

using test::RandomWeight;

struct Shape {
  int64_t out, in, n;
};
// out values are not multiples of the pool's 3 threads; n is odd or crosses the token tile.
const Shape kShapes[] = {{37, 256, 1}, {61, 512, 3}, {67, 1024, 7}, {29, 4096, 5}, {131, 2560, 33}};
const DType kTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4_K,
                        DType::Q5_K, DType::Q6_K, DType::F16,  DType::BF16, DType::F32};

// Strided x and y with poisoned padding: a candidate must honour row strides and write only
// its outputs.
struct Io {
  static constexpr int64_t kXPad = 8, kYPad = 5;
  std::vector<float> xbuf, ybuf;
  Tensor x, y;
  Io(const Shape& s, uint64_t seed) : xbuf(test::random_floats(size_t(s.n * (s.in + kXPad)), seed)) {
    x = Tensor{xbuf.data(), DType::F32, s.n, s.in, size_t(s.in + kXPad) * sizeof(float)};
    ybuf.assign(size_t(s.n * (s.out + kYPad)), NAN);
    y = Tensor{ybuf.data(), DType::F32, s.n, s.out, size_t(s.out + kYPad) * sizeof(float)};
  }
  void poison() { std::fill(ybuf.begin(), ybuf.end(), NAN); }
  bool padding_untouched(const Shape& s) const {
    for (int64_t t = 0; t < s.n; ++t)
      for (int64_t p = 0; p < kYPad; ++p)
        if (!std::isnan(ybuf[size_t(t * (s.out + kYPad) + s.out + p)])) return false;
    return true;
  }
};

std::map<std::string, double>& worst_errors() {
  static std::map<std::string, double> m;
  return m;
}

void check_candidate(const std::string& name, double tolerance, bool (*supports)(const MatmulArgs&),
                     const std::function<Status(const MatmulArgs&)>& run, ThreadPool& pool) {
  uint64_t seed = 1;
  for (DType type : kTypes) {
    for (const Shape& s : kShapes) {
      RandomWeight w(type, s.out, s.in, seed++);
      Io io(s, seed++);
      MatmulArgs a{&w.t, &io.x, io.y, &pool};
      if (!supports(a)) continue;
      const auto ref = test::naive_matmul(w.t, io.xbuf.data(), size_t(s.in + Io::kXPad), s.n);
      io.poison();
      ASSERT_TRUE(run(a).is_ok()) << name << " " << dtype_name(type);
      const double err = test::max_token_error(io.y, ref);
      EXPECT_LE(err, tolerance) << name << " " << dtype_name(type) << " " << s.out << "x" << s.in << " n=" << s.n;
      EXPECT_TRUE(io.padding_untouched(s)) << name << " wrote outside y";
      auto& worst = worst_errors()[name + " " + std::string(dtype_name(type))];
      worst = std::max(worst, err);
    }
  }
}

void print_worst(const std::string& prefix) {
  for (const auto& [k, v] : worst_errors())
    if (k.rfind(prefix, 0) == 0) std::printf("  max error %-22s %.3g\n", k.c_str(), v);
}

TEST(MatmulCandidates, ReferenceMatchesNaiveF64) {
  ThreadPool pool(3);
  check_candidate("reference", 1e-4, matmul_reference_supports, matmul_reference, pool);
  print_worst("reference");
}

TEST(MatmulCandidates, BlasMatchesNaiveF64) {
  ThreadPool pool(3);
  check_candidate("blas", 1e-4, matmul_blas_supports, matmul_blas, pool);
  print_worst("blas");
}

TEST(MatmulCandidates, Q8KActivationKernelsMatchNaiveF64) {
  ThreadPool pool(3);
  for (SimdLevel l : {SimdLevel::scalar, SimdLevel::avx2, SimdLevel::avx512}) {
    if (!simd_level_available(l)) {
      std::printf("  %s: not available on this CPU, skipped\n", simd_level_name(l));
      continue;
    }
    const std::string name = std::string("q8k_") + simd_level_name(l);
    check_candidate(name, 1e-2, matmul_q8k_supports, [l](const MatmulArgs& a) { return matmul_q8k(a, l); }, pool);
    print_worst(name);
  }
  // The types with a kernel must actually have been tested.
  for (const char* t : {"Q4_K", "Q5_K", "Q6_K", "Q8_0"})
    EXPECT_TRUE(worst_errors().count(std::string("q8k_scalar ") + t)) << t;
}

TEST(MatmulCandidates, SimdVariantsAreBitIdenticalToScalar) {
  ThreadPool pool(2);
  int compared = 0;
  uint64_t seed = 100;
  for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0}) {
    for (const Shape& s : kShapes) {
      RandomWeight w(type, s.out, s.in, seed++);
      Io io(s, seed++);
      MatmulArgs a{&w.t, &io.x, io.y, &pool};
      ASSERT_TRUE(matmul_q8k(a, SimdLevel::scalar).is_ok());
      const std::vector<float> scalar = io.ybuf;
      for (SimdLevel l : {SimdLevel::avx2, SimdLevel::avx512}) {
        if (!simd_level_available(l)) continue;
        io.poison();
        ASSERT_TRUE(matmul_q8k(a, l).is_ok());
        for (int64_t t = 0; t < s.n; ++t)
          ASSERT_EQ(0, std::memcmp(io.y.row<float>(t), scalar.data() + t * (s.out + Io::kYPad), size_t(s.out) * 4))
              << simd_level_name(l) << " " << dtype_name(type) << " " << s.out << "x" << s.in << " token " << t;
        ++compared;
      }
    }
  }
  if (compared == 0) GTEST_SKIP() << "no AVX2 on this CPU: only the scalar kernels exist";
}

TEST(MatmulCandidates, Q8KRejectsWhatItCannotRun) {
  ThreadPool pool(1);
  RandomWeight w(DType::Q4_0, 4, 256, 7);
  Io io({4, 256, 1}, 8);
  MatmulArgs a{&w.t, &io.x, io.y, &pool};
  EXPECT_FALSE(matmul_q8k_supports(a));
  EXPECT_EQ(matmul_q8k(a, SimdLevel::scalar).code(), StatusCode::unsupported);
  RandomWeight w8(DType::Q8_0, 4, 96, 9);  // Q8_0 rows that are not whole Q8_K super-blocks
  Io io8({4, 96, 1}, 10);
  MatmulArgs a8{&w8.t, &io8.x, io8.y, &pool};
  EXPECT_FALSE(matmul_q8k_supports(a8));
  EXPECT_TRUE(matmul_reference_supports(a8));
}

TEST(MatmulCandidates, Q8KQuantizationRoundTrips) {
  const auto x = test::random_floats(512, 11);
  quant::BlockQ8_K q[2];
  quantize_row_q8k(x.data(), q, 512);
  for (int b = 0; b < 2; ++b) {
    float amax = 0;
    for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[size_t(b * 256 + i)]));
    for (int i = 0; i < 256; ++i) EXPECT_NEAR(q[b].d * q[b].qs[i], x[size_t(b * 256 + i)], 0.5 * amax / 127 * 1.0001);
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += q[b].qs[16 * g + i];
      EXPECT_EQ(q[b].bsums[g], s);
    }
  }
}

}  // namespace
}  // namespace anvil::cpu
