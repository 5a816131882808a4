#include <gtest/gtest.h>

#include "core/dtype.h"

namespace anvil {
namespace {

TEST(DType, BlockSizesMatchTheGgmlFormats) {
  // bytes per block from the block layouts (scales + packed quants)
  EXPECT_EQ(traits(DType::Q4_0).type_size, 2u + 16u);
  EXPECT_EQ(traits(DType::Q4_1).type_size, 2u + 2u + 16u);
  EXPECT_EQ(traits(DType::Q5_0).type_size, 2u + 4u + 16u);
  EXPECT_EQ(traits(DType::Q5_1).type_size, 2u + 2u + 4u + 16u);
  EXPECT_EQ(traits(DType::Q8_0).type_size, 2u + 32u);
  EXPECT_EQ(traits(DType::Q4_K).type_size, 2u + 2u + 12u + 128u);
  EXPECT_EQ(traits(DType::Q5_K).type_size, 2u + 2u + 12u + 32u + 128u);
  EXPECT_EQ(traits(DType::Q6_K).type_size, 128u + 64u + 16u + 2u);
  EXPECT_EQ(traits(DType::Q8_K).type_size, 4u + 256u + 32u);
  EXPECT_EQ(traits(DType::Q4_K).block_size, 256u);
  EXPECT_EQ(traits(DType::BF16).type_size, 2u);
}

TEST(DType, NamesRoundTripAndUnknownIdsAreRejected) {
  for (uint32_t id = 0; id < 64; ++id) {
    auto t = dtype_traits(id);
    if (!t) continue;
    EXPECT_EQ(uint32_t(t->type), id);
    EXPECT_EQ(dtype_from_name(t->name), t->type);
  }
  EXPECT_EQ(dtype_from_name("q4_k"), DType::Q4_K);
  EXPECT_FALSE(dtype_traits(4).has_value());  // Q4_2, removed from GGML
  EXPECT_FALSE(dtype_traits(1000).has_value());
  EXPECT_FALSE(dtype_from_name("Q4_K_M").has_value());  // a file type, not a tensor type
}

TEST(DType, RowBytesChecksBlocksAndOverflow) {
  EXPECT_EQ(row_bytes(DType::Q4_K, 512), 288u);
  EXPECT_EQ(row_bytes(DType::F16, 7), 14u);
  EXPECT_FALSE(row_bytes(DType::Q4_K, 100).has_value());
  EXPECT_FALSE(row_bytes(DType::F32, UINT64_MAX / 2).has_value());
}

}  // namespace
}  // namespace anvil
