// cpu::matmul through the registry: argument checks, bias, the tuned choice agreeing with the
// naive reference, and ANVIL_FORCE_KERNEL reaching the real matmul registry.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "cpu/matmul.h"
#include "cpu/matmul_candidates.h"
#include "tests/cpu_matmul/matmul_test_util.h"

namespace anvil::cpu {
namespace {

class MatmulDispatch : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() / ("anvil-matmul-test-" + std::to_string(::getpid()) + ".json"))
                .string();
    setenv("ANVIL_TUNE_CACHE", path_.c_str(), 1);
    unsetenv("ANVIL_FORCE_KERNEL");
    unsetenv("ANVIL_TUNE");
    matmul_registry().tuner().forget_memory();
  }
  void TearDown() override {
    std::filesystem::remove(path_);
    unsetenv("ANVIL_TUNE_CACHE");
    unsetenv("ANVIL_FORCE_KERNEL");
  }
  std::string path_;
};

TEST_F(MatmulDispatch, TunedChoiceMatchesNaiveWithBias) {
  ThreadPool pool(2);
  for (auto [type, n] : {std::pair{DType::Q4_K, int64_t(1)}, {DType::Q6_K, 3}, {DType::Q8_0, 20}, {DType::F16, 2}}) {
    test::RandomWeight w(type, 97, 512, uint64_t(n) * 13 + 1);
    auto x = test::random_floats(size_t(n * 512), 5);
    auto bias = test::random_floats(97, 6);
    std::vector<float> y(size_t(n * 97), NAN);
    const Weight wt{"w", w.t, 0};
    const Weight bt{"b", Tensor::contiguous(bias.data(), DType::F32, 1, 97), 0};
    ASSERT_TRUE(matmul(wt, Tensor::contiguous(x.data(), DType::F32, n, 512),
                       Tensor::contiguous(y.data(), DType::F32, n, 97), &bt, pool)
                    .is_ok());
    auto ref = test::naive_matmul(w.t, x.data(), 512, n);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < 97; ++o) ref[size_t(t * 97 + o)] += bias[size_t(o)];
    EXPECT_LE(test::max_token_error(Tensor::contiguous(y.data(), DType::F32, n, 97), ref), 1e-2) << dtype_name(type);
  }
  EXPECT_GE(matmul_registry().tuner().measurements(), 1);
  EXPECT_TRUE(std::filesystem::exists(path_));
}

TEST_F(MatmulDispatch, ForceKernelReachesMatmul) {
  ThreadPool pool(2);
  test::RandomWeight w(DType::Q4_K, 33, 256, 3);
  auto x = test::random_floats(256, 4);
  std::vector<float> y(33, NAN);
  const Weight wt{"w", w.t, 0};
  const int before = matmul_registry().tuner().measurements();
  // Q8_K activations put the result ~0.5% off; the reference is within f32 rounding.
  setenv("ANVIL_FORCE_KERNEL", "matmul:reference", 1);
  ASSERT_TRUE(matmul(wt, Tensor::contiguous(x.data(), DType::F32, 1, 256), Tensor::contiguous(y.data(), DType::F32, 1, 33),
                     nullptr, pool)
                  .is_ok());
  EXPECT_EQ(matmul_registry().tuner().measurements(), before);
  const auto ref = test::naive_matmul(w.t, x.data(), 256, 1);
  EXPECT_LE(test::max_token_error(Tensor::contiguous(y.data(), DType::F32, 1, 33), ref), 1e-5);
}

TEST_F(MatmulDispatch, RejectsBadArguments) {
  ThreadPool pool(1);
  test::RandomWeight w(DType::Q4_K, 8, 256, 1);
  std::vector<float> x(256), y(8);
  const Weight wt{"w", w.t, 0};
  auto X = Tensor::contiguous(x.data(), DType::F32, 1, 256);
  auto Y = Tensor::contiguous(y.data(), DType::F32, 1, 8);
  EXPECT_EQ(matmul(wt, X.reshape_cols(128), Y, nullptr, pool).code(), StatusCode::invalid_argument);
  EXPECT_EQ(matmul(wt, X, Tensor::contiguous(y.data(), DType::F32, 1, 4), nullptr, pool).code(),
            StatusCode::invalid_argument);
  const Weight bad_bias{"b", Tensor::contiguous(y.data(), DType::F32, 1, 7), 0};
  EXPECT_EQ(matmul(wt, X, Y, &bad_bias, pool).code(), StatusCode::invalid_argument);
  Weight repacked = wt;
  repacked.layout = 1;
  EXPECT_EQ(matmul(repacked, X, Y, nullptr, pool).code(), StatusCode::unsupported);
  test::RandomWeight q8k(DType::Q8_K, 8, 256, 2);  // an activation format, not a weight type
  EXPECT_EQ(matmul(Weight{"q", q8k.t, 0}, X, Y, nullptr, pool).code(), StatusCode::unsupported);
}

}  // namespace
}  // namespace anvil::cpu
