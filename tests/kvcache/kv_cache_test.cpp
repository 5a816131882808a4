// Scenario tests of KvCache: sharing, copy-on-write, exhaustion, eviction, accounting.
#include <gtest/gtest.h>

#include <numeric>
#include <set>
#include <utility>

#include "core/step_batch.h"
#include "kvcache/kv_cache.h"

namespace anvil::kvcache {
namespace {

std::vector<int32_t> iota_tokens(int n, int32_t start) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

std::vector<int32_t> tail_of(const std::vector<int32_t>& v, int32_t from) {
  return {v.begin() + from, v.end()};
}

struct Harness {
  std::vector<std::pair<int32_t, int32_t>> copies;
  Status copy_result;  // what the copy callback returns
  std::unique_ptr<KvCache> kv;

  explicit Harness(int32_t n_pages, int32_t page_size, bool prefix_caching = true) {
    KvCacheOptions o;
    o.n_pages = n_pages;
    o.page_size = page_size;
    o.prefix_caching = prefix_caching;
    kv = KvCache::create(o, [this](int32_t src, int32_t dst) {
           copies.emplace_back(src, dst);
           return copy_result;
         }).value();
  }
  // prepare + commit, as one engine step would.
  void step(SeqId seq, const std::vector<int32_t>& tokens) {
    auto table = kv->prepare_append(seq, int32_t(tokens.size()));
    ASSERT_TRUE(table.has_value()) << table.status().to_string();
    ASSERT_TRUE(kv->commit(seq, tokens).is_ok());
    ASSERT_TRUE(kv->check_invariants().is_ok()) << kv->check_invariants().to_string();
  }
  // A new sequence with its whole prompt prefilled; returns {id, n_cached}.
  NewSequence prefilled(const std::vector<int32_t>& prompt, int32_t adapter = -1) {
    NewSequence s = kv->add_sequence(prompt, adapter);
    step(s.id, tail_of(prompt, s.n_cached));
    return s;
  }
  std::vector<int32_t> pages(SeqId seq) const { return kv->block_table(seq)->pages(); }
  void free_all(std::initializer_list<SeqId> seqs) {
    for (SeqId s : seqs) ASSERT_TRUE(kv->free_sequence(s).is_ok());
    ASSERT_TRUE(kv->check_invariants().is_ok()) << kv->check_invariants().to_string();
  }
  // Every page is back: nothing used, each page free or idle (cached for a later prompt).
  void expect_all_back() const {
    const KvStats st = kv->stats();
    EXPECT_EQ(st.n_used, 0);
    EXPECT_EQ(st.n_sequences, 0);
    EXPECT_EQ(st.n_free + st.n_idle, st.n_pages);
    EXPECT_EQ(st.n_idle, st.n_cached);
  }
};

class KvCachePageSize : public ::testing::TestWithParam<int32_t> {};

TEST_P(KvCachePageSize, SamePromptSharesItsFullPages) {
  const int32_t ps = GetParam();
  Harness h(64, ps);
  const auto prompt = iota_tokens(40, 1000);
  const int32_t full = 40 / ps;  // 2 pages of 16, 10 pages of 4
  const int32_t expect_cached = ((40 - 1) / ps) * ps;  // the last token is always computed

  NewSequence a = h.prefilled(prompt);
  EXPECT_EQ(a.n_cached, 0);
  EXPECT_EQ(h.kv->n_tokens(a.id), 40);
  EXPECT_EQ(h.kv->stats().n_cached, full);

  NewSequence b = h.kv->add_sequence(prompt);
  EXPECT_EQ(b.n_cached, expect_cached);
  if (ps == 16) {
    EXPECT_EQ(b.n_cached, 32);
  }
  const auto pa = h.pages(a.id);
  const auto pb = h.pages(b.id);
  ASSERT_EQ(int32_t(pb.size()), expect_cached / ps);
  for (size_t i = 0; i < pb.size(); ++i) {
    EXPECT_EQ(pb[i], pa[i]);
    EXPECT_EQ(h.kv->pool().refcount(pa[i]), 2);
  }
  for (size_t i = pb.size(); i < pa.size(); ++i) EXPECT_EQ(h.kv->pool().refcount(pa[i]), 1);
  EXPECT_EQ(h.kv->stats().n_prefix_hit_tokens, expect_cached);

  h.step(b.id, tail_of(prompt, b.n_cached));
  const auto pb2 = h.pages(b.id);
  // b's own pages (after the shared ones) are fresh, not a's.
  for (size_t i = pb.size(); i < pb2.size(); ++i)
    EXPECT_EQ(std::count(pa.begin(), pa.end(), pb2[i]), 0) << "page " << pb2[i] << " used by both";
  EXPECT_TRUE(h.copies.empty());

  h.free_all({a.id, b.id});
  h.expect_all_back();
  EXPECT_EQ(h.kv->stats().n_idle, full);  // the cached full pages wait for a later prompt
  // ... and a later prompt finds them although no sequence holds them any more.
  NewSequence c = h.kv->add_sequence(prompt);
  EXPECT_EQ(c.n_cached, expect_cached);
  h.free_all({c.id});
  h.kv->drop_idle_cached();
  EXPECT_EQ(h.kv->stats().n_free, 64);
  EXPECT_EQ(h.kv->stats().n_cached, 0);
  EXPECT_EQ(h.kv->add_sequence(prompt).n_cached, 0);
}

TEST_P(KvCachePageSize, DivergingPromptsShareOnlyTheCommonFullPages) {
  const int32_t ps = GetParam();
  Harness h(64, ps);
  auto p1 = iota_tokens(3 * ps + 1, 0);
  auto p2 = p1;
  p2[size_t(ps + 1)] = -5;  // differs inside the second page
  NewSequence a = h.prefilled(p1);
  NewSequence b = h.kv->add_sequence(p2);
  EXPECT_EQ(b.n_cached, ps);
  EXPECT_EQ(h.pages(b.id)[0], h.pages(a.id)[0]);
  h.step(b.id, tail_of(p2, b.n_cached));
  EXPECT_NE(h.pages(b.id)[1], h.pages(a.id)[1]);
  h.free_all({a.id, b.id});
  h.expect_all_back();
}

TEST_P(KvCachePageSize, DifferentAdaptersDoNotShare) {
  const int32_t ps = GetParam();
  Harness h(64, ps);
  const auto prompt = iota_tokens(40, 7);
  NewSequence a = h.prefilled(prompt, /*adapter=*/0);
  EXPECT_EQ(h.kv->add_sequence(prompt, 1).n_cached, 0);
  EXPECT_EQ(h.kv->add_sequence(prompt, -1).n_cached, 0);
  NewSequence same = h.kv->add_sequence(prompt, 0);
  EXPECT_EQ(same.n_cached, ((40 - 1) / ps) * ps);
  for (SeqId s = 0; s <= same.id; ++s) ASSERT_TRUE(h.kv->free_sequence(s).is_ok());
  (void)a;
  h.expect_all_back();
}

TEST_P(KvCachePageSize, ForkedSequenceWritingTheSharedPartialPageCopiesItOnce) {
  const int32_t ps = GetParam();
  Harness h(64, ps);
  const int32_t n = 2 * ps + ps / 2;  // last page half full
  NewSequence a = h.prefilled(iota_tokens(n, 0));
  auto forked = h.kv->fork(a.id);
  ASSERT_TRUE(forked.has_value());
  const SeqId b = *forked;
  const auto pa = h.pages(a.id);
  EXPECT_EQ(h.pages(b), pa);
  for (int32_t p : pa) EXPECT_EQ(h.kv->pool().refcount(p), 2);
  EXPECT_EQ(h.kv->pages_needed(b, 1).value(), 1);  // the copy

  // A fork must prepare again before writing.
  const std::vector<int32_t> next = {77};
  EXPECT_EQ(h.kv->commit(b, next).code(), StatusCode::invalid_argument);

  h.step(b, next);
  ASSERT_EQ(h.copies.size(), 1u);
  const int32_t last = n / ps;
  EXPECT_EQ(h.copies[0].first, pa[size_t(last)]);
  const auto pb = h.pages(b);
  EXPECT_EQ(h.copies[0].second, pb[size_t(last)]);
  EXPECT_NE(pb[size_t(last)], pa[size_t(last)]);
  for (int32_t i = 0; i < last; ++i) EXPECT_EQ(pb[size_t(i)], pa[size_t(i)]);  // full pages stay shared
  EXPECT_EQ(h.pages(a.id), pa);                                              // a's table unchanged
  EXPECT_EQ(h.kv->pool().refcount(pa[size_t(last)]), 1);
  EXPECT_EQ(h.kv->n_tokens(a.id), n);
  EXPECT_EQ(h.kv->n_tokens(b), n + 1);

  // The source now owns its partial page alone again: appending copies nothing.
  h.step(a.id, {78});
  EXPECT_EQ(h.copies.size(), 1u);
  EXPECT_EQ(h.pages(a.id), pa);
  EXPECT_EQ(h.kv->stats().n_cow_copies, 1);
  h.free_all({a.id, b});
  h.expect_all_back();
}

TEST_P(KvCachePageSize, ForkOnAPageBoundaryCopiesNothing) {
  const int32_t ps = GetParam();
  Harness h(64, ps);
  NewSequence a = h.prefilled(iota_tokens(2 * ps, 0));
  const SeqId b = h.kv->fork(a.id).value();
  h.step(b, {1});
  h.step(a.id, {2});
  EXPECT_TRUE(h.copies.empty());
  EXPECT_NE(h.pages(a.id)[2], h.pages(b)[2]);
  h.free_all({a.id, b});
  h.expect_all_back();
}

TEST_P(KvCachePageSize, LeastRecentlyReleasedCachedPagesAreReclaimedFirst) {
  const int32_t ps = GetParam();
  Harness h(6, ps);
  const auto pa = iota_tokens(2 * ps, 0);
  const auto pb = iota_tokens(2 * ps, 500);
  NewSequence a = h.prefilled(pa);
  const auto a_pages = h.pages(a.id);
  h.free_all({a.id});
  NewSequence b = h.prefilled(pb);
  const auto b_pages = h.pages(b.id);
  h.free_all({b.id});
  KvStats st = h.kv->stats();
  EXPECT_EQ(st.n_idle, 4);
  EXPECT_EQ(st.n_free, 2);

  // Three pages: the two free ones, then a's tail page (released least recently of the idle).
  NewSequence c = h.kv->add_sequence(iota_tokens(3 * ps, 900));
  ASSERT_TRUE(h.kv->prepare_append(c.id, 3 * ps).has_value());
  const auto c_pages = h.pages(c.id);
  EXPECT_EQ(c_pages[2], a_pages[1]);
  st = h.kv->stats();
  EXPECT_EQ(st.n_idle, 3);
  EXPECT_EQ(st.n_cached, 3);
  EXPECT_EQ(st.n_free, 0);

  auto pa_more = pa;
  pa_more.push_back(1);
  auto pb_more = pb;
  pb_more.push_back(1);
  NewSequence d = h.kv->add_sequence(pa_more);
  EXPECT_EQ(d.n_cached, ps);  // a's head page survived, its tail was reclaimed
  EXPECT_EQ(h.pages(d.id), (std::vector<int32_t>{a_pages[0]}));
  NewSequence e = h.kv->add_sequence(pb_more);
  EXPECT_EQ(e.n_cached, 2 * ps);
  EXPECT_EQ(h.pages(e.id), b_pages);
  ASSERT_TRUE(h.kv->check_invariants().is_ok());
  h.free_all({c.id, d.id, e.id});
  h.expect_all_back();
}

TEST_P(KvCachePageSize, ExhaustionIsReportedWithNumbersAndChangesNothing) {
  const int32_t ps = GetParam();
  Harness h(4, ps);
  NewSequence a = h.prefilled(iota_tokens(3 * ps, 0));
  NewSequence b = h.kv->add_sequence(iota_tokens(2 * ps, 100));
  const KvStats before = h.kv->stats();
  EXPECT_EQ(h.kv->pages_needed(b.id, 2 * ps).value(), 2);

  auto r = h.kv->prepare_append(b.id, 2 * ps);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::out_of_memory);
  const std::string msg = r.status().message();
  EXPECT_NE(msg.find("needs 2 pages"), std::string::npos) << msg;
  EXPECT_NE(msg.find("have 1 free + 0 reclaimable"), std::string::npos) << msg;
  EXPECT_NE(msg.find("of 4"), std::string::npos) << msg;
  const KvStats after = h.kv->stats();
  EXPECT_EQ(after.n_free, before.n_free);
  EXPECT_EQ(after.n_used, before.n_used);
  EXPECT_TRUE(h.pages(b.id).empty());
  EXPECT_EQ(h.kv->n_tokens(b.id), 0);
  // Nothing was reserved, so committing is refused.
  EXPECT_EQ(h.kv->commit(b.id, iota_tokens(2 * ps, 100)).code(), StatusCode::invalid_argument);

  // The copy-on-write page counts too: a fork writing a shared partial page with no page left.
  h.step(a.id, {5});  // 3 pages + 1 token -> the 4th (last) page, partial
  EXPECT_EQ(h.kv->stats().n_free, 0);
  const SeqId f = h.kv->fork(a.id).value();
  auto cow = h.kv->prepare_append(f, 1);
  ASSERT_FALSE(cow.has_value());
  EXPECT_EQ(cow.status().code(), StatusCode::out_of_memory);
  EXPECT_NE(cow.status().message().find("1 copy-on-write"), std::string::npos) << cow.status().message();
  EXPECT_TRUE(h.copies.empty());
  EXPECT_EQ(h.pages(f), h.pages(a.id));
  ASSERT_TRUE(h.kv->check_invariants().is_ok());

  // Preempting a frees everything the fork does not also hold; then b fits.
  h.free_all({a.id});
  EXPECT_FALSE(h.kv->prepare_append(b.id, 2 * ps).has_value());  // f still holds all 4
  h.free_all({f});
  h.step(b.id, iota_tokens(2 * ps, 100));
  h.free_all({b.id});
  h.expect_all_back();
}

TEST_P(KvCachePageSize, FailedCopyLeavesEverythingUnchanged) {
  const int32_t ps = GetParam();
  Harness h(16, ps);
  NewSequence a = h.prefilled(iota_tokens(ps + 1, 0));
  const SeqId b = h.kv->fork(a.id).value();
  const KvStats before = h.kv->stats();
  h.copy_result = make_error(StatusCode::internal, "device lost");
  auto r = h.kv->prepare_append(b, 1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::internal);
  EXPECT_NE(r.status().message().find("device lost"), std::string::npos);
  EXPECT_EQ(h.kv->stats().n_free, before.n_free);
  EXPECT_EQ(h.pages(b), h.pages(a.id));
  ASSERT_TRUE(h.kv->check_invariants().is_ok());
  h.copy_result = Status::ok();
  h.step(b, {9});
  h.free_all({a.id, b});
  h.expect_all_back();
}

TEST_P(KvCachePageSize, SameContentComputedTwiceIsCachedOnce) {
  const int32_t ps = GetParam();
  Harness h(32, ps);
  const auto prompt = iota_tokens(2 * ps + 1, 3);
  NewSequence a = h.kv->add_sequence(prompt);
  NewSequence b = h.kv->add_sequence(prompt);  // before a committed anything: no hit
  EXPECT_EQ(b.n_cached, 0);
  h.step(a.id, prompt);
  h.step(b.id, prompt);
  EXPECT_EQ(h.kv->stats().n_cached, 2);
  h.free_all({a.id, b.id});
  h.expect_all_back();
  EXPECT_EQ(h.kv->stats().n_idle, 2);
  EXPECT_EQ(h.kv->add_sequence(prompt).n_cached, 2 * ps);
}

TEST_P(KvCachePageSize, WithoutPrefixCachingNothingIsSharedOrKept) {
  const int32_t ps = GetParam();
  Harness h(32, ps, /*prefix_caching=*/false);
  const auto prompt = iota_tokens(3 * ps, 0);
  NewSequence a = h.prefilled(prompt);
  NewSequence b = h.prefilled(prompt);
  EXPECT_EQ(b.n_cached, 0);
  EXPECT_EQ(h.kv->stats().n_cached, 0);
  h.free_all({a.id, b.id});
  EXPECT_EQ(h.kv->stats().n_free, 32);
}

// A mixed step: a decode token, a prefill chunk and a fresh prompt in one StepBatch. Every token
// gets its own KV slot inside a page only its sequence holds.
TEST_P(KvCachePageSize, MixedStepBatchWritesDistinctExclusiveSlots) {
  const int32_t ps = GetParam();
  Harness h(64, ps);
  const auto shared_prompt = iota_tokens(2 * ps + 3, 0);
  NewSequence dec = h.prefilled(shared_prompt);
  const SeqId fork = h.kv->fork(dec.id).value();
  NewSequence chunked = h.kv->add_sequence(shared_prompt);  // shares 2 full pages
  NewSequence fresh = h.kv->add_sequence(iota_tokens(ps + 5, 300));

  StepBatch batch;
  batch.page_size = ps;
  struct Part {
    SeqId seq;
    std::vector<int32_t> ids;
  };
  const std::vector<Part> parts = {
      {dec.id, {11}},
      {fork, {12}},
      {chunked.id, tail_of(shared_prompt, chunked.n_cached)},
      {fresh.id, iota_tokens(4, 300)},  // first chunk of a chunked prefill
  };
  for (const Part& p : parts) {
    auto table = h.kv->prepare_append(p.seq, int32_t(p.ids.size()));
    ASSERT_TRUE(table.has_value()) << table.status().to_string();
    batch.add_sequence(p.ids, h.kv->n_tokens(p.seq), *table);
  }
  const auto slots = batch.kv_slots();
  std::set<int32_t> seen;
  for (int32_t t = 0; t < batch.n_tokens(); ++t) {
    EXPECT_TRUE(seen.insert(slots[size_t(t)]).second) << "slot " << slots[size_t(t)] << " written twice";
    EXPECT_EQ(h.kv->pool().refcount(slots[size_t(t)] / ps), 1) << "token " << t << " writes a shared page";
  }
  EXPECT_EQ(h.copies.size(), 1u);  // dec and fork share the partial page: the first writer copies
  for (const Part& p : parts) ASSERT_TRUE(h.kv->commit(p.seq, p.ids).is_ok());
  ASSERT_TRUE(h.kv->check_invariants().is_ok());
  h.free_all({dec.id, fork, chunked.id, fresh.id});
  h.expect_all_back();
}

INSTANTIATE_TEST_SUITE_P(PageSizes, KvCachePageSize, ::testing::Values(16, 4));

TEST(KvCache, RejectsBadOptionsAndUnknownSequences) {
  auto noop = [](int32_t, int32_t) { return Status::ok(); };
  EXPECT_EQ(KvCache::create({0, 16, true}, noop).status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(KvCache::create({8, 0, true}, noop).status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(KvCache::create({8, 16, true}, nullptr).status().code(), StatusCode::invalid_argument);
  auto kv = KvCache::create({8, 16, true}, noop).value();
  EXPECT_EQ(kv->prepare_append(42, 1).status().code(), StatusCode::not_found);
  EXPECT_EQ(kv->commit(42, std::vector<int32_t>{1}).code(), StatusCode::not_found);
  EXPECT_EQ(kv->fork(42).status().code(), StatusCode::not_found);
  EXPECT_EQ(kv->free_sequence(42).code(), StatusCode::not_found);
  EXPECT_EQ(kv->block_table(42), nullptr);
  EXPECT_EQ(kv->n_tokens(42), -1);
  const SeqId s = kv->add_sequence(std::vector<int32_t>{}).id;
  EXPECT_EQ(kv->prepare_append(s, -1).status().code(), StatusCode::invalid_argument);
  EXPECT_TRUE(kv->prepare_append(s, 0).value().empty());
  ASSERT_TRUE(kv->free_sequence(s).is_ok());
  EXPECT_EQ(kv->free_sequence(s).code(), StatusCode::not_found);  // no double free
}

TEST(KvCache, PageBytesAndPagesThatFit) {
  // 2 (K, V) x 4 layers x 16 rows x 8 heads * 64 dims x 2 bytes (f16)
  EXPECT_EQ(kv_page_bytes(4, 8 * 64, 16, DType::F16), std::optional<int64_t>(2 * 4 * 16 * 512 * 2));
  EXPECT_EQ(kv_page_bytes(4, 8 * 64, 16, DType::F32), std::optional<int64_t>(2 * 4 * 16 * 512 * 4));
  EXPECT_EQ(kv_page_bytes(1, 33, 16, DType::Q8_0), std::nullopt);  // not whole blocks
  EXPECT_EQ(kv_pages_that_fit(1000, 300), 3);
  EXPECT_EQ(kv_pages_that_fit(0, 300), 0);
  EXPECT_EQ(kv_pages_that_fit(1000, 0), 0);
}

}  // namespace
}  // namespace anvil::kvcache
