// Property test: random interleavings of add / step (mixed batches) / fork / free / preempt,
// checked after every operation against an independent model:
//  - refcounts recomputed from all live block tables equal the pool's, and the page counts add up;
//  - a simulated KV store (each position holds a value that depends on the whole token prefix
//    and the adapter, as real K/V do) read back through each sequence's block table gives
//    exactly that sequence's values — so a page handed out twice, a missing copy-on-write, a
//    wrongly shared prefix or a reclaimed page still in use all show up as wrong values;
//  - copy-on-write happens exactly when the model says the written partial page is shared;
//  - out_of_memory leaves every table and count unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "core/step_batch.h"
#include "kvcache/kv_cache.h"

namespace anvil::kvcache {
namespace {

constexpr uint64_t kPoison = 0xdeadbeefdeadbeefull;

// What position i's K/V stand for: a function of tokens[0..i] and the adapter.
uint64_t kv_value(uint64_t prev, int32_t token, int32_t adapter) {
  uint64_t x = prev ^ (uint64_t(uint32_t(token)) * 0x9e3779b97f4a7c15ull) ^ (uint64_t(uint32_t(adapter)) << 40);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return x + 1;
}

std::vector<uint64_t> kv_values(const std::vector<int32_t>& tokens, int32_t adapter) {
  std::vector<uint64_t> v;
  uint64_t prev = 12345;
  for (int32_t t : tokens) v.push_back(prev = kv_value(prev, t, adapter));
  return v;
}

struct ModelSeq {
  std::vector<int32_t> tokens;   // committed
  std::vector<int32_t> pending;  // prompt tokens still to prefill
  int32_t adapter = -1;
};

struct Counters {
  int adds = 0, prefix_hits = 0, steps = 0, cows = 0, forks = 0, frees = 0, ooms = 0, reclaims = 0;
};

class RandomRun {
 public:
  RandomRun(int32_t page_size, int32_t n_pages, uint32_t seed)
      : ps_(page_size), n_pages_(n_pages), rng_(seed), store_(size_t(n_pages) * size_t(page_size), kPoison) {
    kv_ = KvCache::create({n_pages, page_size, true}, [this](int32_t src, int32_t dst) {
            copies_.emplace_back(src, dst);
            std::copy_n(store_.begin() + ptrdiff_t(src) * ps_, ps_, store_.begin() + ptrdiff_t(dst) * ps_);
            return Status::ok();
          }).value();
    std::uniform_int_distribution<int32_t> tok(0, 49);
    for (auto& base : bases_)
      for (int i = 0; i < 48; ++i) base.push_back(tok(rng_));
  }

  int32_t pick(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng_); }
  SeqId pick_live() {
    auto it = model_.begin();
    std::advance(it, pick(0, int32_t(model_.size()) - 1));
    return it->first;
  }

  void run(int n_ops) {
    for (int op = 0; op < n_ops; ++op) {
      const int r = pick(0, 99);
      if (model_.empty() || (r < 20 && model_.size() < 10)) add();
      else if (r < 65) step();
      else if (r < 75) fork();
      else free_one();
      verify();
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "after op " << op;
        return;
      }
    }
    while (!model_.empty()) {
      ASSERT_TRUE(kv_->free_sequence(model_.begin()->first).is_ok());
      model_.erase(model_.begin());
      verify();
    }
    const KvStats st = kv_->stats();
    EXPECT_EQ(st.n_used, 0);
    EXPECT_EQ(st.n_free + st.n_idle, n_pages_);
    kv_->drop_idle_cached();
    EXPECT_EQ(kv_->stats().n_free, n_pages_);
    EXPECT_EQ(kv_->stats().n_cached, 0);
  }

  const Counters& counters() const { return c_; }

 private:
  void add() {
    const auto& base = bases_[size_t(pick(0, 2))];
    std::vector<int32_t> prompt(base.begin(), base.begin() + pick(1, 48));
    if (pick(0, 9) < 3) prompt[size_t(pick(0, int32_t(prompt.size()) - 1))] = pick(0, 49);
    const int32_t adapter = pick(0, 9) < 7 ? -1 : pick(0, 1);
    const NewSequence s = kv_->add_sequence(prompt, adapter);
    ASSERT_EQ(s.n_cached % ps_, 0);
    ASSERT_LT(s.n_cached, int32_t(prompt.size()));
    ASSERT_EQ(model_.count(s.id), 0u);
    ModelSeq m;
    m.adapter = adapter;
    m.tokens.assign(prompt.begin(), prompt.begin() + s.n_cached);
    m.pending.assign(prompt.begin() + s.n_cached, prompt.end());
    model_[s.id] = std::move(m);  // verify() checks the shared pages hold this prompt's values
    ++c_.adds;
    c_.prefix_hits += s.n_cached > 0;
  }

  // Reference counts recomputed from the live block tables only.
  std::vector<int32_t> model_refcounts() const {
    std::vector<int32_t> refs(size_t(n_pages_), 0);
    for (const auto& [id, m] : model_)
      for (int32_t p : kv_->block_table(id)->pages()) ++refs[size_t(p)];
    return refs;
  }

  struct Snapshot {
    std::map<SeqId, std::vector<int32_t>> tables;
    std::map<SeqId, int32_t> n_tokens;
    KvStats stats;
    size_t copies;
  };
  Snapshot snapshot() const {
    Snapshot s;
    for (const auto& [id, m] : model_) {
      s.tables[id] = kv_->block_table(id)->pages();
      s.n_tokens[id] = kv_->n_tokens(id);
    }
    s.stats = kv_->stats();
    s.copies = copies_.size();
    return s;
  }

  // One mixed step over up to three sequences: prefill chunks and decode tokens together.
  void step() {
    std::set<SeqId> chosen;
    const int want = pick(1, 3);
    for (int i = 0; i < want; ++i) chosen.insert(pick_live());
    struct Part {
      SeqId seq;
      std::vector<int32_t> ids;
    };
    std::vector<Part> parts;
    StepBatch batch;
    batch.page_size = ps_;
    bool oom = false;
    for (SeqId id : chosen) {
      ModelSeq& m = model_[id];
      Part part{id, {}};
      if (!m.pending.empty()) {
        const int32_t n = pick(1, std::min<int32_t>(int32_t(m.pending.size()), 2 * ps_));
        part.ids.assign(m.pending.begin(), m.pending.begin() + n);
      } else {
        for (int k = pick(1, 3); k > 0; --k) part.ids.push_back(pick(0, 49));
      }
      const int32_t n = int32_t(m.tokens.size());
      const auto& table = kv_->block_table(id)->pages();
      const bool expect_cow = n % ps_ != 0 && model_refcounts()[size_t(table[size_t(n / ps_)])] > 1;
      const int32_t shared_page = expect_cow ? table[size_t(n / ps_)] : -1;
      const Snapshot before = snapshot();
      const int32_t needed = kv_->pages_needed(id, int32_t(part.ids.size())).value();

      auto prepared = kv_->prepare_append(id, int32_t(part.ids.size()));
      if (!prepared) {
        ASSERT_EQ(prepared.status().code(), StatusCode::out_of_memory) << prepared.status().to_string();
        ASSERT_GT(needed, before.stats.n_free + before.stats.n_idle);
        const Snapshot after = snapshot();
        ASSERT_EQ(after.tables, before.tables);
        ASSERT_EQ(after.n_tokens, before.n_tokens);
        ASSERT_EQ(after.stats.n_free, before.stats.n_free);
        ASSERT_EQ(after.stats.n_idle, before.stats.n_idle);
        ASSERT_EQ(after.stats.n_cached, before.stats.n_cached);
        ASSERT_EQ(after.copies, before.copies);
        ++c_.ooms;
        oom = true;
        continue;
      }
      ASSERT_LE(needed, before.stats.n_free + before.stats.n_idle);
      c_.reclaims += needed > before.stats.n_free;
      ASSERT_EQ(copies_.size(), before.copies + (expect_cow ? 1 : 0));
      if (expect_cow) {
        ASSERT_EQ(copies_.back().first, shared_page);
        ASSERT_EQ(copies_.back().second, (*prepared)[size_t(n / ps_)]);
        ++c_.cows;
      }
      // Nobody else's table moved.
      for (const auto& [other, pages] : before.tables)
        if (other != id) {
          ASSERT_EQ(kv_->block_table(other)->pages(), pages);
        }
      batch.add_sequence(part.ids, n, *prepared);
      parts.push_back(std::move(part));
    }
    // The "forward pass": write every token's K/V value at its slot.
    const auto slots = batch.kv_slots();
    std::set<int32_t> seen;
    for (int32_t t = 0; t < batch.n_tokens(); ++t) {
      const int32_t slot = slots[size_t(t)];
      ASSERT_TRUE(seen.insert(slot).second) << "two tokens of one step write slot " << slot;
      ASSERT_EQ(kv_->pool().refcount(slot / ps_), 1) << "a step writes shared page " << slot / ps_;
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      ModelSeq& m = model_[parts[i].seq];
      const StepSequence& s = batch.seqs[i];
      uint64_t prev = m.tokens.empty() ? 12345 : kv_values(m.tokens, m.adapter).back();
      for (int32_t k = 0; k < s.n_tokens; ++k) {
        prev = kv_value(prev, parts[i].ids[size_t(k)], m.adapter);
        store_[size_t(slots[size_t(s.first_token + k)])] = prev;
      }
    }
    for (const Part& p : parts) {
      ASSERT_TRUE(kv_->commit(p.seq, p.ids).is_ok());
      ModelSeq& m = model_[p.seq];
      m.tokens.insert(m.tokens.end(), p.ids.begin(), p.ids.end());
      const size_t from_pending = std::min(m.pending.size(), p.ids.size());
      m.pending.erase(m.pending.begin(), m.pending.begin() + ptrdiff_t(from_pending));
      if (m.tokens.size() > 96) erase(p.seq);  // finished
    }
    ++c_.steps;
    // The scheduler's answer to exhaustion: preempt somebody (free it; it would recompute later).
    if (oom && !model_.empty()) erase(pick_live());
  }

  void fork() {
    const SeqId src = pick_live();
    auto child = kv_->fork(src);
    ASSERT_TRUE(child.has_value()) << child.status().to_string();
    model_[*child] = model_[src];
    ++c_.forks;
  }

  void erase(SeqId id) {
    ASSERT_TRUE(kv_->free_sequence(id).is_ok());
    model_.erase(id);
    ++c_.frees;
  }
  void free_one() { erase(pick_live()); }

  void verify() {
    ASSERT_TRUE(kv_->check_invariants().is_ok()) << kv_->check_invariants().to_string();
    const auto refs = model_refcounts();
    int32_t used = 0;
    for (int32_t p = 0; p < n_pages_; ++p) {
      ASSERT_EQ(kv_->pool().refcount(p), refs[size_t(p)]) << "page " << p;
      used += refs[size_t(p)] > 0;
    }
    const KvStats st = kv_->stats();
    ASSERT_EQ(st.n_used, used);
    ASSERT_EQ(st.n_free + st.n_used + st.n_idle, n_pages_);
    ASSERT_EQ(st.n_sequences, int32_t(model_.size()));
    for (const auto& [id, m] : model_) {
      const BlockTable* t = kv_->block_table(id);
      ASSERT_NE(t, nullptr);
      ASSERT_EQ(t->n_tokens(), int32_t(m.tokens.size()));
      const auto want = kv_values(m.tokens, m.adapter);
      for (size_t pos = 0; pos < want.size(); ++pos) {
        const int32_t page = t->pages()[pos / size_t(ps_)];
        ASSERT_EQ(store_[size_t(page) * size_t(ps_) + pos % size_t(ps_)], want[pos])
            << "sequence " << id << " position " << pos << " (page " << page << ") reads another's K/V";
      }
    }
  }

  int32_t ps_, n_pages_;
  std::mt19937 rng_;
  std::vector<uint64_t> store_;
  std::vector<std::pair<int32_t, int32_t>> copies_;
  std::unique_ptr<KvCache> kv_;
  std::map<SeqId, ModelSeq> model_;
  std::vector<int32_t> bases_[3];
  Counters c_;
};

class KvCacheRandom : public ::testing::TestWithParam<int32_t> {};

TEST_P(KvCacheRandom, InvariantsHoldUnderRandomOperations) {
  const int32_t ps = GetParam();
  const int32_t n_pages = ps == 4 ? 40 : 12;  // small enough to run out and reclaim often
  Counters total;
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    RandomRun run(ps, n_pages, seed);
    run.run(2500);
    if (HasFailure()) {
      ADD_FAILURE() << "page size " << ps << ", seed " << seed;
      return;
    }
    const Counters& c = run.counters();
    total.prefix_hits += c.prefix_hits;
    total.cows += c.cows;
    total.ooms += c.ooms;
    total.reclaims += c.reclaims;
    total.forks += c.forks;
    total.steps += c.steps;
  }
  // The run must actually have exercised every path it claims to check.
  EXPECT_GT(total.prefix_hits, 50);
  EXPECT_GT(total.cows, 20);
  EXPECT_GT(total.ooms, 20);
  EXPECT_GT(total.reclaims, 20);
  EXPECT_GT(total.forks, 100);
  std::printf("page size %d: %d steps, %d prefix hits, %d copies-on-write, %d out-of-memory, %d reclaims\n", ps,
              total.steps, total.prefix_hits, total.cows, total.ooms, total.reclaims);
}

INSTANTIATE_TEST_SUITE_P(PageSizes, KvCacheRandom, ::testing::Values(16, 4));

}  // namespace
}  // namespace anvil::kvcache
