#include <gtest/gtest.h>

#include <numeric>

#include "kvcache/prefix_cache.h"

namespace anvil::kvcache {
namespace {

std::vector<int32_t> iota_tokens(int n, int32_t start) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(HashPage, DependsOnParentTokensOrderAndAdapter) {
  const auto t = iota_tokens(4, 100);
  const uint64_t h = hash_page(kRootPageHash, t, -1);
  EXPECT_EQ(h, hash_page(kRootPageHash, t, -1));  // deterministic
  EXPECT_NE(h, hash_page(kRootPageHash + 1, t, -1));
  EXPECT_NE(h, hash_page(kRootPageHash, t, 0));
  auto swapped = t;
  std::swap(swapped[0], swapped[1]);
  EXPECT_NE(h, hash_page(kRootPageHash, swapped, -1));
  auto changed = t;
  changed[3] += 1;
  EXPECT_NE(h, hash_page(kRootPageHash, changed, -1));
  EXPECT_NE(h, hash_page(kRootPageHash, std::span<const int32_t>(t).first(3), -1));
}

// Registers tokens' full pages as pages first_page, first_page + 1, ... like commits would.
void insert_chain(PrefixCache& cache, const std::vector<int32_t>& tokens, int32_t adapter, int32_t first_page) {
  const size_t ps = size_t(cache.page_size());
  uint64_t parent = kRootPageHash;
  for (size_t i = 0; (i + 1) * ps <= tokens.size(); ++i) {
    const auto page = std::span<const int32_t>(tokens).subspan(i * ps, ps);
    const uint64_t h = hash_page(parent, page, adapter);
    ASSERT_TRUE(cache.insert(h, parent, page, adapter, first_page + int32_t(i)));
    parent = h;
  }
}

TEST(PrefixCache, MatchFindsTheLongestCachedRunOfFullPages) {
  PrefixCache cache(16, 4);
  const auto a = iota_tokens(12, 0);  // 3 full pages
  insert_chain(cache, a, -1, 5);
  EXPECT_EQ(cache.size(), 3);

  auto m = cache.match(a, -1, 10);
  EXPECT_EQ(m.pages, (std::vector<int32_t>{5, 6, 7}));
  ASSERT_EQ(m.hashes.size(), 3u);
  EXPECT_EQ(m.hashes[0], hash_page(kRootPageHash, std::span<const int32_t>(a).first(4), -1));
  EXPECT_EQ(m.hashes[1], hash_page(m.hashes[0], std::span<const int32_t>(a).subspan(4, 4), -1));

  EXPECT_EQ(cache.match(a, -1, 2).pages, (std::vector<int32_t>{5, 6}));  // max_pages caps it
  // A prompt that diverges inside the second page shares only the first.
  auto b = a;
  b[6] = 999;
  EXPECT_EQ(cache.match(b, -1, 10).pages, (std::vector<int32_t>{5}));
  // The same second page after a different first page is a different page (chained hash).
  auto c = a;
  c[0] = 999;
  EXPECT_TRUE(cache.match(c, -1, 10).pages.empty());
  // A partial last page never matches.
  EXPECT_EQ(cache.match(std::span<const int32_t>(a).first(10), -1, 10).pages, (std::vector<int32_t>{5, 6}));
  // Another adapter shares nothing.
  EXPECT_TRUE(cache.match(a, 3, 10).pages.empty());
}

TEST(PrefixCache, DuplicateContentKeepsTheFirstPageAndForgetRemoves) {
  PrefixCache cache(8, 4);
  const auto t = iota_tokens(4, 7);
  const uint64_t h = hash_page(kRootPageHash, t, -1);
  EXPECT_TRUE(cache.insert(h, kRootPageHash, t, -1, 2));
  EXPECT_FALSE(cache.insert(h, kRootPageHash, t, -1, 3));  // same content computed twice
  EXPECT_FALSE(cache.contains(3));
  EXPECT_FALSE(cache.insert(h + 1, kRootPageHash, t, -1, 2));  // page already registered
  EXPECT_FALSE(cache.insert(h + 2, kRootPageHash, std::span<const int32_t>(t).first(3), -1, 4));  // not full
  EXPECT_EQ(cache.find(h, kRootPageHash, t, -1), std::optional<int32_t>(2));
  cache.forget(2);
  EXPECT_FALSE(cache.contains(2));
  EXPECT_EQ(cache.size(), 0);
  EXPECT_EQ(cache.find(h, kRootPageHash, t, -1), std::nullopt);
  cache.forget(2);  // no-op
  EXPECT_TRUE(cache.insert(h, kRootPageHash, t, -1, 3));
}

TEST(PrefixCache, HashCollisionIsAMissNotWrongContent) {
  PrefixCache cache(8, 4);
  const auto real = iota_tokens(4, 0);
  const auto other = iota_tokens(4, 50);
  // Pretend `other` hashed to the same value as `real`: the entry's own tokens must be checked.
  const uint64_t h = hash_page(kRootPageHash, real, -1);
  ASSERT_TRUE(cache.insert(h, kRootPageHash, other, -1, 1));
  EXPECT_EQ(cache.find(h, kRootPageHash, real, -1), std::nullopt);
  EXPECT_TRUE(cache.match(real, -1, 1).pages.empty());
  EXPECT_EQ(cache.find(h, kRootPageHash, other, -1), std::optional<int32_t>(1));
  EXPECT_EQ(cache.find(h, kRootPageHash + 1, other, -1), std::nullopt);  // parent differs
  EXPECT_EQ(cache.find(h, kRootPageHash, other, 0), std::nullopt);      // adapter differs
}

}  // namespace
}  // namespace anvil::kvcache
