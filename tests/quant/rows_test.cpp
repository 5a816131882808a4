// The multithreaded row helpers give byte-identical results to the single-row functions,
// whatever the thread count.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "quant/quant.h"
#include "test_data.h"

namespace anvil::quant {
namespace {

constexpr DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0,
                            DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                            DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};

TEST(QuantRows, MatchSingleRowCalls) {
  const int64_t n_per_row = 512, n_rows = 67;  // odd row count: uneven chunks
  const auto x = testing::make_data(testing::Dist::normal, size_t(n_per_row * n_rows), 11);
  std::vector<float> weights(static_cast<size_t>(n_per_row));
  for (int64_t i = 0; i < n_per_row; ++i) weights[size_t(i)] = 0.5f + float(i % 7);
  for (DType t : kTypes) {
    const size_t row_size = *row_bytes(t, uint64_t(n_per_row));
    for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(weights.data())}) {
      std::vector<uint8_t> expect(row_size * n_rows);
      for (int64_t r = 0; r < n_rows; ++r) {
        ASSERT_TRUE(quantize_row(t, x.data() + r * n_per_row, expect.data() + r * row_size, n_per_row, w).is_ok());
      }
      std::vector<float> expect_f(static_cast<size_t>(n_per_row * n_rows));
      for (int64_t r = 0; r < n_rows; ++r) {
        ASSERT_TRUE(dequantize_row(t, expect.data() + r * row_size, expect_f.data() + r * n_per_row, n_per_row).is_ok());
      }
      for (int threads : {0, 1, 2, 3, 8}) {
        std::vector<uint8_t> got(expect.size(), 0xAB);
        ASSERT_TRUE(quantize_rows(t, x.data(), got.data(), n_per_row, n_rows, threads, w).is_ok());
        EXPECT_EQ(std::memcmp(got.data(), expect.data(), got.size()), 0)
            << traits(t).name << " threads " << threads << (w ? " weighted" : "");
        std::vector<float> got_f(expect_f.size(), -1.0f);
        ASSERT_TRUE(dequantize_rows(t, expect.data(), got_f.data(), n_per_row, n_rows, threads).is_ok());
        EXPECT_EQ(std::memcmp(got_f.data(), expect_f.data(), got_f.size() * sizeof(float)), 0)
            << traits(t).name << " threads " << threads;
      }
    }
  }
}

TEST(QuantRows, RejectsRowsThatAreNotWholeBlocks) {
  std::vector<float> x(300);
  std::vector<uint8_t> q(1024);
  EXPECT_EQ(quantize_rows(DType::Q4_K, x.data(), q.data(), 100, 3).code(), StatusCode::invalid_argument);
  EXPECT_EQ(dequantize_rows(DType::Q8_0, q.data(), x.data(), 33, 2).code(), StatusCode::invalid_argument);
  EXPECT_TRUE(quantize_rows(DType::Q8_0, x.data(), q.data(), 32, 0).is_ok());  // no rows: nothing to do
}

}  // namespace
}  // namespace anvil::quant
