#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "kvcache/page_pool.h"

namespace anvil::kvcache {
namespace {

TEST(PagePool, HandsOutEveryPageOnceThenReportsOutOfMemory) {
  PagePool pool(8);
  std::set<int32_t> seen;
  for (int i = 0; i < 3; ++i) {
    auto pages = pool.allocate(i == 2 ? 2 : 3);
    ASSERT_TRUE(pages.has_value()) << pages.status().to_string();
    for (int32_t p : *pages) {
      EXPECT_TRUE(p >= 0 && p < 8);
      EXPECT_TRUE(seen.insert(p).second) << "page " << p << " handed out twice";
      EXPECT_EQ(pool.refcount(p), 1);
    }
  }
  EXPECT_EQ(pool.n_free(), 0);
  EXPECT_EQ(pool.n_used(), 8);
  auto more = pool.allocate(1);
  ASSERT_FALSE(more.has_value());
  EXPECT_EQ(more.status().code(), StatusCode::out_of_memory);
  EXPECT_NE(more.status().message().find("need 1 pages"), std::string::npos) << more.status().message();
  EXPECT_NE(more.status().message().find("0 free"), std::string::npos) << more.status().message();
  EXPECT_NE(more.status().message().find("of 8"), std::string::npos) << more.status().message();
}

TEST(PagePool, AllocationIsAllOrNothing) {
  PagePool pool(8);
  ASSERT_TRUE(pool.allocate(5).has_value());
  auto too_many = pool.allocate(4);
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(too_many.status().code(), StatusCode::out_of_memory);
  EXPECT_EQ(pool.n_free(), 3);
  EXPECT_EQ(pool.n_used(), 5);
  auto rest = pool.allocate(3);
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(pool.n_free(), 0);
}

TEST(PagePool, RefcountsAndRelease) {
  PagePool pool(4);
  const int32_t p = pool.allocate(1).value()[0];
  ASSERT_TRUE(pool.retain(p).is_ok());
  ASSERT_TRUE(pool.retain(p).is_ok());
  EXPECT_EQ(pool.refcount(p), 3);
  ASSERT_TRUE(pool.release(p, false).is_ok());
  ASSERT_TRUE(pool.release(p, false).is_ok());
  EXPECT_EQ(pool.refcount(p), 1);
  EXPECT_EQ(pool.n_free(), 3);
  ASSERT_TRUE(pool.release(p, false).is_ok());
  EXPECT_EQ(pool.n_free(), 4);
  EXPECT_TRUE(pool.is_free(p));
  // Releasing or retaining a free page is a bookkeeping bug: an error, nothing changes.
  EXPECT_FALSE(pool.release(p, false).is_ok());
  EXPECT_FALSE(pool.retain(p).is_ok());
  EXPECT_FALSE(pool.release(99, false).is_ok());
  EXPECT_EQ(pool.n_free(), 4);
  EXPECT_EQ(pool.refcount(p), 0);
}

TEST(PagePool, IdlePagesAreReclaimedLeastRecentlyReleasedFirstAfterFreePages) {
  PagePool pool(5);
  std::vector<int32_t> reclaimed;
  pool.set_reclaim_listener([&](int32_t page) { reclaimed.push_back(page); });
  auto pages = pool.allocate(5).value();
  // Release as idle in the order 3, 1, 4; page 0 goes free; page 2 stays in use.
  ASSERT_TRUE(pool.release(pages[3], true).is_ok());
  ASSERT_TRUE(pool.release(pages[1], true).is_ok());
  ASSERT_TRUE(pool.release(pages[4], true).is_ok());
  ASSERT_TRUE(pool.release(pages[0], false).is_ok());
  EXPECT_EQ(pool.n_free(), 1);
  EXPECT_EQ(pool.n_idle(), 3);
  EXPECT_EQ(pool.n_available(), 4);
  EXPECT_EQ(pool.idle_pages(), (std::vector<int32_t>{pages[3], pages[1], pages[4]}));

  auto got = pool.allocate(3).value();
  // The free page first, then the two least recently released idle pages.
  EXPECT_EQ(got, (std::vector<int32_t>{pages[0], pages[3], pages[1]}));
  EXPECT_EQ(reclaimed, (std::vector<int32_t>{pages[3], pages[1]}));
  EXPECT_EQ(pool.idle_pages(), (std::vector<int32_t>{pages[4]}));
  for (int32_t p : got) EXPECT_EQ(pool.refcount(p), 1);
}

TEST(PagePool, RetainingAnIdlePageBringsItBackWithoutReclaim) {
  PagePool pool(3);
  int reclaims = 0;
  pool.set_reclaim_listener([&](int32_t) { ++reclaims; });
  auto pages = pool.allocate(3).value();
  ASSERT_TRUE(pool.release(pages[0], true).is_ok());
  ASSERT_TRUE(pool.release(pages[1], true).is_ok());
  ASSERT_TRUE(pool.retain(pages[0]).is_ok());
  EXPECT_EQ(pool.refcount(pages[0]), 1);
  EXPECT_FALSE(pool.is_idle(pages[0]));
  EXPECT_EQ(pool.idle_pages(), (std::vector<int32_t>{pages[1]}));
  EXPECT_EQ(reclaims, 0);
  // discard_idle: idle -> free; anything else is refused.
  EXPECT_FALSE(pool.discard_idle(pages[0]).is_ok());
  ASSERT_TRUE(pool.discard_idle(pages[1]).is_ok());
  EXPECT_TRUE(pool.is_free(pages[1]));
  EXPECT_EQ(pool.n_idle(), 0);
  EXPECT_EQ(pool.n_free(), 1);
}

TEST(PagePool, NegativeAllocationIsRejected) {
  PagePool pool(2);
  auto r = pool.allocate(-1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::invalid_argument);
  EXPECT_TRUE(pool.allocate(0).value().empty());
  EXPECT_EQ(pool.n_free(), 2);
}

}  // namespace
}  // namespace anvil::kvcache
