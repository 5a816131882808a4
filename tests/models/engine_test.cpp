// Engine invariants on tiny synthetic models (make-test-model), CPU backend:
//   - a sequence's greedy tokens are the same alone and inside a batch of 4 mixed-length
//     sequences whose prefill chunks and decode tokens share steps;
//   - logits computed over prefix-cached (shared) KV pages equal those computed without sharing
//     (hybrid models with recurrent layers: sharing is off, and the results are still equal);
//   - prefill in one chunk, in several chunks and token by token give the same logits;
//   - every KV page is back in the pool when the sessions are gone (pool invariants hold);
//   - bad token ids and context overflow are errors, not crashes;
//   - Qwen3.5 (Gated DeltaNet hybrid): a chunked prefill (three 64-token chunks) gives the same
//     logits as token-by-token recurrent decode; state slots are taken per session, given back
//     at its end, zeroed on reuse (a reused slot gives the same logits as a fresh engine), and
//     running out of them is an error.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/engine.h"
#include "core/sampler.h"
#include "core/session.h"

namespace anvil {
namespace {

// A tiny model made once per (preset, type) for the whole test program.
std::string model_path(const std::string& preset, const std::string& type = "F32") {
  static std::map<std::string, std::string> made;
  const std::string key = preset + "-" + type;
  if (auto it = made.find(key); it != made.end()) return it->second;
  const auto dir = std::filesystem::temp_directory_path() / ("anvil-engine-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / (key + ".gguf")).string();
  const std::string cmd = std::string(ANVIL_BIN_DIR) + "/make-test-model -q --threads 2 -p " + preset + " -t " +
                          type + " -o " + path;
  if (std::system(cmd.c_str()) != 0) return "";
  made[key] = path;
  return path;
}

struct TempDirCleanup {
  ~TempDirCleanup() {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::temp_directory_path() / ("anvil-engine-test-" + std::to_string(getpid())), ec);
  }
} g_cleanup;

std::unique_ptr<Engine> open(const std::string& preset, EngineOptions o) {
  const std::string path = model_path(preset);
  EXPECT_FALSE(path.empty()) << "make-test-model failed for " << preset;
  o.n_threads = 2;
  auto e = Engine::open(path, o);
  EXPECT_TRUE(e.has_value()) << e.status().to_string();
  return e ? std::move(*e) : nullptr;
}

// Deterministic pseudo-random token ids below `vocab` (ids above 255 avoid byte tokens).
std::vector<int32_t> tokens(size_t n, uint32_t seed, int32_t vocab) {
  std::vector<int32_t> out;
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = 1664525u * x + 1013904223u;
    out.push_back(int32_t(300 + (x >> 8) % uint32_t(std::min(vocab, 32000) - 300)));
  }
  return out;
}

// max |a - b| / max |b|
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}

void expect_pool_drained(const Engine& e) {
  const kvcache::KvStats s = e.kv_stats();
  EXPECT_EQ(s.n_used, 0);
  EXPECT_EQ(s.n_free + s.n_idle, s.n_pages);
  EXPECT_EQ(s.n_sequences, 0);
  EXPECT_TRUE(e.check_kv_invariants().is_ok()) << e.check_kv_invariants().to_string();
}

constexpr SamplingParams kGreedy{.temperature = 0.f};

class EngineArch : public ::testing::TestWithParam<const char*> {};

TEST_P(EngineArch, GreedyTokensSameAloneAndInMixedBatch) {
  const int n_gen = 6;
  const std::vector<size_t> lengths = {5, 41, 12, 50};
  std::vector<std::vector<int32_t>> alone;
  int32_t vocab = 0;
  {
    auto e = open(GetParam(), {.n_parallel = 1, .prefix_caching = false});
    ASSERT_TRUE(e);
    vocab = e->n_vocab();
    for (size_t i = 0; i < lengths.size(); ++i) {
      auto s = e->new_session(kGreedy).value();
      std::vector<int32_t> out;
      auto st = s->generate(tokens(lengths[i], 7 + uint32_t(i), vocab), n_gen, [&](int32_t id) {
        out.push_back(id);
        return true;
      });
      ASSERT_TRUE(st.has_value()) << st.status().to_string();
      alone.push_back(out);
    }
  }

  // A small token budget: the long prompts prefill in chunks beside the others' decode tokens.
  auto e = open(GetParam(), {.n_parallel = 4, .max_step_tokens = 20, .prefix_caching = false});
  ASSERT_TRUE(e);
  struct Seq {
    std::unique_ptr<Session> s;
    std::vector<int32_t> pending, out;
  };
  std::vector<Seq> seqs;
  for (size_t i = 0; i < lengths.size(); ++i)
    seqs.push_back({e->new_session(kGreedy).value(), tokens(lengths[i], 7 + uint32_t(i), vocab), {}});
  int mixed_steps = 0;
  for (int guard = 0; guard < 1000; ++guard) {
    std::vector<SequenceWork> work;
    std::vector<size_t> owner;
    for (size_t i = 0; i < seqs.size(); ++i)
      if (!seqs[i].pending.empty()) {
        work.push_back({.session = seqs[i].s.get(), .tokens = seqs[i].pending});
        owner.push_back(i);
      }
    if (work.empty()) break;
    const bool has_decode = std::any_of(work.begin(), work.end(), [](auto& w) { return w.tokens.size() == 1; });
    const bool has_prefill = std::any_of(work.begin(), work.end(), [](auto& w) { return w.tokens.size() > 1; });
    auto n = e->step(work);
    ASSERT_TRUE(n.has_value()) << n.status().to_string();
    ASSERT_GT(*n, 0);
    ASSERT_LE(*n, 20);
    mixed_steps += has_decode && has_prefill;
    for (size_t k = 0; k < work.size(); ++k) {
      Seq& q = seqs[owner[k]];
      q.pending.erase(q.pending.begin(), q.pending.begin() + std::ptrdiff_t(work[k].n_done));
      if (!work[k].done()) continue;
      const int32_t id = q.s->sampler().sample(q.s->last_logits(), q.s->tokens()).value();
      q.out.push_back(id);
      if (int(q.out.size()) < n_gen) q.pending = {id};
    }
  }
  EXPECT_GT(mixed_steps, 0) << "no step mixed prefill chunks with decode tokens";
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i].out, alone[i]) << "sequence " << i;
  seqs.clear();
  expect_pool_drained(*e);
}

TEST_P(EngineArch, SharedPrefixLogitsEqualUnshared) {
  auto shared = open(GetParam(), {.n_parallel = 3, .prefix_caching = true});
  auto unshared = open(GetParam(), {.n_parallel = 3, .prefix_caching = false});
  ASSERT_TRUE(shared && unshared);
  const int32_t V = shared->n_vocab();
  const std::vector<int32_t> prefix = tokens(40, 99, V);  // 2 full pages of 16 + 8
  auto with = [&](std::vector<int32_t> tail) {
    std::vector<int32_t> p = prefix;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  const std::vector<int32_t> x = with({301, 302, 303}), y = with({401, 402});

  // A hybrid model's recurrent state cannot be restored from cached pages: sharing is off.
  const bool hybrid = shared->hparams().has_recurrent_layers();
  const int64_t min_hits = hybrid ? 0 : 32;
  EXPECT_EQ(shared->options().prefix_caching, !hybrid);

  auto first = shared->new_session(kGreedy).value();
  ASSERT_TRUE(first->prefill(x).has_value());
  auto second = shared->new_session(kGreedy).value();
  auto got = second->prefill(y);
  ASSERT_TRUE(got.has_value()) << got.status().to_string();
  EXPECT_GE(shared->kv_stats().n_prefix_hit_tokens, min_hits) << "the second prompt did not reuse the first one's pages";
  if (hybrid) EXPECT_EQ(shared->kv_stats().n_prefix_hit_tokens, 0);
  EXPECT_EQ(second->n_past(), int32_t(y.size()));

  auto ref = unshared->new_session(kGreedy).value();
  auto want = ref->prefill(y);
  ASSERT_TRUE(want.has_value());
  EXPECT_LE(rel_diff(*got, *want), 1e-5);
  // Decoding on top of the shared pages stays equal too.
  for (int i = 0; i < 4; ++i) {
    const int32_t a = second->decode_step().value(), b = ref->decode_step().value();
    ASSERT_EQ(a, b) << "step " << i;
    EXPECT_LE(rel_diff(second->last_logits(), ref->last_logits()), 1e-5) << "step " << i;
  }
  // Pages of a finished session stay findable (idle) for the next prompt with that prefix.
  first.reset();
  const int64_t hits = shared->kv_stats().n_prefix_hit_tokens;
  auto third = shared->new_session(kGreedy).value();
  auto again = third->prefill(x);
  ASSERT_TRUE(again.has_value());
  EXPECT_GE(shared->kv_stats().n_prefix_hit_tokens - hits, min_hits);
  if (hybrid) EXPECT_EQ(shared->kv_stats().n_prefix_hit_tokens, 0);
  auto ref_x = unshared->new_session(kGreedy).value();
  EXPECT_LE(rel_diff(*again, ref_x->prefill(x).value()), 1e-5);

  first.reset(), second.reset(), third.reset(), ref.reset(), ref_x.reset();
  expect_pool_drained(*shared);
  expect_pool_drained(*unshared);
}

TEST_P(EngineArch, ChunkedPrefillMatchesOneChunkAndTokenByToken) {
  // n_parallel 3: `whole` holds three live sessions (a hybrid model has one state slot each)
  auto whole = open(GetParam(), {.n_parallel = 3, .max_step_tokens = 512, .prefix_caching = false});
  auto chunked = open(GetParam(), {.max_step_tokens = 7, .prefix_caching = false});
  ASSERT_TRUE(whole && chunked);
  const int32_t V = whole->n_vocab();
  const std::vector<int32_t> prompt = tokens(45, 3, V);

  auto a = whole->new_session(kGreedy).value();
  auto rows_whole = a->eval_all(prompt);
  ASSERT_TRUE(rows_whole.has_value()) << rows_whole.status().to_string();
  ASSERT_EQ(rows_whole->size(), prompt.size() * size_t(V));

  auto b = chunked->new_session(kGreedy).value();
  auto rows_chunked = b->eval_all(prompt);
  ASSERT_TRUE(rows_chunked.has_value());
  EXPECT_LE(rel_diff(*rows_chunked, *rows_whole), 1e-4);

  auto c = whole->new_session(kGreedy).value();
  std::vector<float> rows_single;
  for (int32_t t : prompt) {
    auto l = c->prefill(std::span(&t, 1));
    ASSERT_TRUE(l.has_value());
    rows_single.insert(rows_single.end(), l->begin(), l->end());
  }
  EXPECT_LE(rel_diff(rows_single, *rows_whole), 1e-4);

  // loglikelihood is log_softmax of the previous position's logits.
  auto d = whole->new_session(kGreedy).value();
  ASSERT_TRUE(d->prefill(std::span(prompt).first(1)).has_value());
  auto lp = d->loglikelihood(std::span(prompt).subspan(1));
  ASSERT_TRUE(lp.has_value());
  ASSERT_EQ(lp->size(), prompt.size() - 1);
  for (size_t i = 1; i < prompt.size(); i += 11) {
    const std::span<const float> row(rows_whole->data() + (i - 1) * size_t(V), size_t(V));
    double m = -INFINITY, sum = 0;
    for (float v : row) m = std::max(m, double(v));
    for (float v : row) sum += std::exp(double(v) - m);
    EXPECT_NEAR((*lp)[i - 1], double(row[size_t(prompt[i])]) - m - std::log(sum), 1e-3) << "position " << i;
  }
  a.reset(), b.reset(), c.reset(), d.reset();
  expect_pool_drained(*whole);
  expect_pool_drained(*chunked);
}

INSTANTIATE_TEST_SUITE_P(Tiny, EngineArch, ::testing::Values("tiny-qwen2", "tiny-gemma3", "tiny-qwen35"),
                         [](const auto& info) { return std::string(info.param).substr(5); });

TEST(EngineQwen35, ChunkedPrefillMatchesTokenByTokenDecode) {
  // 150 tokens in one step: the DeltaNet layers run the chunked form over chunks of 64, 64, 22;
  // token by token they run the recurrent form, carrying the state through 150 steps.
  auto e = open("tiny-qwen35", {.n_parallel = 2, .max_step_tokens = 512});
  ASSERT_TRUE(e);
  ASSERT_TRUE(e->hparams().has_recurrent_layers());
  const int32_t V = e->n_vocab();
  const std::vector<int32_t> prompt = tokens(150, 11, V);
  auto a = e->new_session(kGreedy).value();
  auto whole = a->eval_all(prompt);
  ASSERT_TRUE(whole.has_value()) << whole.status().to_string();
  auto b = e->new_session(kGreedy).value();
  std::vector<float> single;
  for (int32_t t : prompt) {
    auto l = b->prefill(std::span(&t, 1));
    ASSERT_TRUE(l.has_value()) << l.status().to_string();
    single.insert(single.end(), l->begin(), l->end());
  }
  EXPECT_LE(rel_diff(single, *whole), 1e-4);
  // and the two sessions keep decoding alike on their carried states
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(a->decode_step().value(), b->decode_step().value()) << "step " << i;
    EXPECT_LE(rel_diff(a->last_logits(), b->last_logits()), 1e-4) << "step " << i;
  }
  a.reset(), b.reset();
  expect_pool_drained(*e);
}

TEST(EngineQwen35, StateSlotsPerSessionFreedAndZeroedOnReuse) {
  auto e = open("tiny-qwen35", {.n_parallel = 2});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->state_slots().n_slots(), 2);
  const int32_t V = e->n_vocab();
  const std::vector<int32_t> p1 = tokens(30, 5, V), p2 = tokens(20, 6, V);

  // Reference logits from a fresh engine (slots never used).
  std::vector<float> want;
  {
    auto fresh = open("tiny-qwen35", {.n_parallel = 1});
    ASSERT_TRUE(fresh);
    want = fresh->new_session(kGreedy).value()->prefill(p2).value();
  }

  auto s1 = e->new_session(kGreedy).value();
  auto s2 = e->new_session(kGreedy).value();
  EXPECT_EQ(e->state_slots().n_free(), 2) << "a slot is taken at the first step, not at new_session";
  ASSERT_TRUE(s1->prefill(p1).has_value());
  ASSERT_TRUE(s2->prefill(p1).has_value());
  EXPECT_EQ(e->state_slots().n_free(), 0);

  // A third session finds no slot: an error, and the others are unaffected.
  auto s3 = e->new_session(kGreedy).value();
  auto r = s3->prefill(p2);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::out_of_memory) << r.status().to_string();
  s3.reset();

  // s1 ends; its slot (holding p1's state) goes to a new session, which must start from zero.
  s1.reset();
  EXPECT_EQ(e->state_slots().n_free(), 1);
  auto s4 = e->new_session(kGreedy).value();
  auto got = s4->prefill(p2);
  ASSERT_TRUE(got.has_value()) << got.status().to_string();
  EXPECT_LE(rel_diff(*got, want), 1e-6);
  // reset() gives the slot back and the session starts over from zero state too.
  s4->reset();
  EXPECT_EQ(e->state_slots().n_free(), 1);
  EXPECT_LE(rel_diff(s4->prefill(p2).value(), want), 1e-6);
  s2.reset(), s4.reset();
  EXPECT_EQ(e->state_slots().n_free(), 2);
  expect_pool_drained(*e);
}

TEST(EngineSampling, BackendSamplingGivesTheHostSamplersStream) {
  // EngineOptions::backend_sampling draws each next token in the step (Backend::sample; on the
  // CPU its default, which runs sample_row on the copied rows). With the same seed the token
  // streams must equal the host sampler's, across turns: a draw made after the last token of a
  // turn is dropped when the next turn prefills, and its uniform goes back to the sampler.
  SamplingParams sp;
  sp.temperature = 1.2f, sp.top_k = 0, sp.top_p = 0.97f, sp.min_p = 0.0f, sp.seed = 4242;
  sp.repeat_penalty = 1.2f, sp.frequency_penalty = 0.1f, sp.repeat_last_n = 8;
  auto run = [&](bool backend_sampling) {
    auto e = open("tiny-qwen2", {.backend_sampling = backend_sampling});
    std::vector<int32_t> out;
    if (!e) return out;
    EXPECT_EQ(e->options().backend_sampling, backend_sampling);
    auto s = e->new_session(sp).value();
    const int32_t V = e->n_vocab();
    for (uint32_t turn = 0; turn < 3; ++turn) {
      auto st = s->generate(tokens(7, 40 + turn, V), 12, [&](int32_t id) {
        out.push_back(id);
        return true;
      });
      EXPECT_TRUE(st.has_value()) << st.status().to_string();
    }
    // and a batch of two sessions stepped together, each drawing in the step
    auto a = e->new_session(sp).value(), b = e->new_session(sp).value();
    EXPECT_TRUE(a->prefill(tokens(5, 60, V)).has_value());
    EXPECT_TRUE(b->prefill(tokens(9, 61, V)).has_value());
    for (int i = 0; i < 6; ++i) {
      out.push_back(a->decode_step().value());
      out.push_back(b->decode_step().value());
    }
    return out;
  };
  const std::vector<int32_t> host = run(false), backend = run(true);
  ASSERT_EQ(host.size(), size_t(3 * 12 + 12));
  EXPECT_EQ(backend, host);
}

TEST(EngineSampling, StepDrawsForFinishedItemsOnly) {
  auto e = open("tiny-qwen2", {.n_parallel = 3, .max_step_tokens = 8, .backend_sampling = true});
  ASSERT_TRUE(e);
  const int32_t V = e->n_vocab();
  auto a = e->new_session(kGreedy).value(), b = e->new_session(kGreedy).value();
  std::vector<SequenceWork> work(2);
  work[0].session = a.get(), work[0].tokens = tokens(3, 70, V), work[0].sample = true;
  work[1].session = b.get(), work[1].tokens = tokens(20, 71, V), work[1].sample = true;  // 3 steps of prefill
  ASSERT_TRUE(e->step(work).has_value());
  ASSERT_TRUE(work[0].done());
  EXPECT_FALSE(work[1].done());
  EXPECT_EQ(work[1].sampled, -1);
  // greedy: the draw is the argmax of the item's last logits
  const auto& l = a->last_logits();
  EXPECT_EQ(work[0].sampled, int32_t(std::max_element(l.begin(), l.end()) - l.begin()));
  ASSERT_TRUE(e->run(work).is_ok());
  ASSERT_TRUE(work[1].done());
  const auto& l1 = b->last_logits();
  EXPECT_EQ(work[1].sampled, int32_t(std::max_element(l1.begin(), l1.end()) - l1.begin()));
}

TEST(EngineSteps, PhasesCountTheStepsThatRan) {
  auto e = open("tiny-qwen3", {.max_step_tokens = 8, .prefix_caching = false, .profile_steps = true});
  ASSERT_TRUE(e);
  const int32_t V = e->n_vocab();
  auto s = e->new_session(kGreedy).value();
  std::vector<SequenceWork> work(1);
  work[0].session = s.get(), work[0].tokens = tokens(20, 72, V);  // 8 + 8 + 4 tokens
  ASSERT_TRUE(e->run(work).is_ok());
  const StepPhases p = e->step_phases();
  EXPECT_EQ(p.steps, 3);  // the final step() that finds nothing to do is not a step
  EXPECT_GT(p.forward_s, 0.0);
  for (double t : {p.prepare_s, p.logits_s, p.sample_s, p.commit_s}) EXPECT_GE(t, 0.0);

  e->reset_step_phases();
  EXPECT_EQ(e->step_phases().steps, 0);
  std::vector<SequenceWork> bad(1);
  bad[0].session = s.get(), bad[0].tokens = {V};  // outside the vocabulary: fails before any work
  EXPECT_FALSE(e->step(bad).has_value());
  EXPECT_EQ(e->step_phases().steps, 0);
  EXPECT_EQ(e->step_phases().forward_s, 0.0);
}

// A step's logit rows go to their owners: a plain item's last row to its session only (the item's
// `logits` stays empty), a logits_all item's rows to the item, its last also to its session.
TEST(EngineSteps, LogitRowsReachTheirSessionsAndItems) {
  auto e = open("tiny-qwen3", {.n_parallel = 3, .prefix_caching = false});
  ASSERT_TRUE(e);
  const int32_t V = e->n_vocab();
  const auto pa = tokens(5, 80, V), pb = tokens(7, 81, V), pc = tokens(3, 82, V);
  std::vector<float> solo_a, solo_b, solo_c;
  {
    auto s = e->new_session(kGreedy).value();
    solo_a = s->prefill(pa).value();
    s->reset();
    solo_b = s->eval_all(pb).value();
    s->reset();
    solo_c = s->prefill(pc).value();
  }
  auto a = e->new_session(kGreedy).value(), b = e->new_session(kGreedy).value(), c = e->new_session(kGreedy).value();
  std::vector<SequenceWork> work(3);
  work[0].session = a.get(), work[0].tokens = pa;
  work[1].session = b.get(), work[1].tokens = pb, work[1].logits_all = true;
  work[2].session = c.get(), work[2].tokens = pc;
  ASSERT_EQ(e->step(work).value(), 15);
  EXPECT_TRUE(work[0].logits.empty());
  EXPECT_TRUE(work[2].logits.empty());
  ASSERT_EQ(work[1].logits.size(), 7 * size_t(V));
  EXPECT_LT(rel_diff(a->last_logits(), solo_a), 1e-4);
  EXPECT_LT(rel_diff(c->last_logits(), solo_c), 1e-4);
  EXPECT_LT(rel_diff(work[1].logits, solo_b), 1e-4);
  const std::vector<float> b_last(work[1].logits.end() - V, work[1].logits.end());
  EXPECT_EQ(b->last_logits(), b_last);

  // The next step replaces each session's row (a and c decode, b is left out).
  const std::vector<float> before_b = b->last_logits(), before_a = a->last_logits();
  std::vector<SequenceWork> next(2);
  next[0].session = c.get(), next[0].tokens = {pa[0]};
  next[1].session = a.get(), next[1].tokens = {pc[0]};
  ASSERT_EQ(e->step(next).value(), 2);
  EXPECT_EQ(b->last_logits(), before_b);
  EXPECT_NE(a->last_logits(), before_a);
  ASSERT_EQ(a->last_logits().size(), size_t(V));
  ASSERT_EQ(c->last_logits().size(), size_t(V));
}

TEST(EngineErrors, BadTokenIdAndContextOverflowAreErrors) {
  auto e = open("tiny-qwen3", {.n_ctx = 32, .prefix_caching = false});
  ASSERT_TRUE(e);
  auto s = e->new_session(kGreedy).value();
  const std::vector<int32_t> bad = {1, 2, e->n_vocab()};
  auto r = s->prefill(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::invalid_argument);
  EXPECT_NE(r.status().message().find("outside the vocabulary"), std::string::npos) << r.status().message();
  const std::vector<int32_t> negative = {-1};
  EXPECT_FALSE(s->prefill(negative).has_value());

  auto too_long = s->prefill(tokens(33, 1, e->n_vocab()));
  ASSERT_FALSE(too_long.has_value());
  EXPECT_NE(too_long.status().message().find("context full"), std::string::npos) << too_long.status().message();
  EXPECT_FALSE(s->decode_step().has_value());  // nothing fed yet
  EXPECT_FALSE(s->loglikelihood(bad).has_value());
  // The session is still usable after the errors.
  EXPECT_TRUE(s->prefill(tokens(8, 2, e->n_vocab())).has_value());
  s.reset();
  expect_pool_drained(*e);
}

}  // namespace
}  // namespace anvil
