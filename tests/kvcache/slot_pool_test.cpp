#include <gtest/gtest.h>

#include <set>

#include "kvcache/slot_pool.h"

namespace anvil::kvcache {
namespace {

TEST(SlotPool, AllocatesDistinctSlotsAndReportsExhaustion) {
  SlotPool pool(3);
  std::set<int32_t> slots;
  for (int i = 0; i < 3; ++i) {
    auto lease = pool.allocate();
    ASSERT_TRUE(lease.has_value());
    EXPECT_TRUE(slots.insert(lease->slot).second);
    EXPECT_TRUE(pool.in_use(lease->slot));
  }
  auto none = pool.allocate();
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.status().code(), StatusCode::out_of_memory);
  EXPECT_NE(none.status().message().find("3 slots"), std::string::npos);
  ASSERT_TRUE(pool.free(1).is_ok());
  EXPECT_FALSE(pool.free(1).is_ok());  // double free refused
  EXPECT_FALSE(pool.free(7).is_ok());
  EXPECT_EQ(pool.n_free(), 1);
}

TEST(SlotPool, ReusedSlotNeedsReset) {
  SlotPool zeroed(1, /*slots_start_zeroed=*/true);
  auto first = zeroed.allocate().value();
  EXPECT_FALSE(first.needs_reset);
  ASSERT_TRUE(zeroed.free(first.slot).is_ok());
  auto second = zeroed.allocate().value();
  EXPECT_EQ(second.slot, first.slot);
  EXPECT_TRUE(second.needs_reset);

  SlotPool unknown(1);
  EXPECT_TRUE(unknown.allocate().value().needs_reset);
}

}  // namespace
}  // namespace anvil::kvcache
