// Sampler against a naive reference written independently here: full sorts, a vocab-sized count
// table, long double softmax. The reference gives the exact filtered distribution; the sampler's
// distribution() must match it closely and 20000 seeded draws must match it empirically.
#include "core/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

namespace anvil {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> random_logits(size_t n, uint32_t seed, float scale = 2.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The penalised logits, spelled out per the documented rule.
std::vector<long double> ref_penalised(const std::vector<float>& logits, const std::vector<int32_t>& history,
                                       const SamplingParams& p) {
  std::vector<long double> l(logits.begin(), logits.end());
  for (auto& x : l)
    if (std::isnan(x)) x = -std::numeric_limits<long double>::infinity();
  if (p.repeat_last_n == 0) return l;
  std::vector<int> count(logits.size(), 0);
  size_t start = 0;
  if (p.repeat_last_n > 0 && history.size() > static_cast<size_t>(p.repeat_last_n))
    start = history.size() - static_cast<size_t>(p.repeat_last_n);
  for (size_t i = start; i < history.size(); ++i) count[history[i]]++;
  for (size_t t = 0; t < l.size(); ++t) {
    if (count[t] == 0) continue;
    if (l[t] > 0) l[t] /= p.repeat_penalty;
    else l[t] *= p.repeat_penalty;
    l[t] -= count[t] * static_cast<long double>(p.frequency_penalty) + p.presence_penalty;
  }
  return l;
}

// Probabilities over `ids` of softmax(l / t).
std::vector<long double> ref_softmax(const std::vector<long double>& l, const std::vector<int32_t>& ids,
                                     long double t) {
  long double mx = -std::numeric_limits<long double>::infinity();
  for (int32_t id : ids) mx = std::max(mx, l[id]);
  std::vector<long double> p;
  long double sum = 0;
  for (int32_t id : ids) {
    p.push_back(std::exp((l[id] - mx) / t));
    sum += p.back();
  }
  for (auto& x : p) x /= sum;
  return p;
}

// Full filtered distribution, indexed by token id (zeros for filtered-out tokens).
std::vector<double> ref_distribution(const std::vector<float>& logits, const std::vector<int32_t>& history,
                                     const SamplingParams& p) {
  const auto l = ref_penalised(logits, history, p);
  std::vector<double> out(logits.size(), 0.0);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < l.size(); ++i)
    if (l[i] != -std::numeric_limits<long double>::infinity()) ids.push_back(static_cast<int32_t>(i));
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  if (p.temperature == 0.0f) {
    out[ids.front()] = 1.0;
    return out;
  }
  if (p.top_k > 0 && ids.size() > static_cast<size_t>(p.top_k)) ids.resize(p.top_k);
  if (p.top_p < 1.0f) {
    const auto pr = ref_softmax(l, ids, 1);
    long double cum = 0;
    size_t keep = ids.size();
    for (size_t i = 0; i < ids.size(); ++i) {
      cum += pr[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    ids.resize(keep);
  }
  if (p.min_p > 0.0f) {
    const auto pr = ref_softmax(l, ids, 1);
    const long double pmax = *std::max_element(pr.begin(), pr.end());
    std::vector<int32_t> kept;
    for (size_t i = 0; i < ids.size(); ++i)
      if (pr[i] >= p.min_p * pmax) kept.push_back(ids[i]);
    ids = kept;
  }
  const auto pr = ref_softmax(l, ids, p.temperature);
  for (size_t i = 0; i < ids.size(); ++i) out[ids[i]] = static_cast<double>(pr[i]);
  return out;
}

SamplingParams plain(float temperature) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

void expect_distribution_matches(const std::vector<float>& logits, const std::vector<int32_t>& history,
                                 const SamplingParams& params, double tol) {
  const auto ref = ref_distribution(logits, history, params);
  Sampler s(params);
  auto dist = s.distribution(logits, history);
  ASSERT_TRUE(dist.has_value()) << dist.status().to_string();
  std::vector<double> got(logits.size(), 0.0);
  for (const TokenProb& tp : *dist) got[tp.id] = tp.p;
  size_t ref_kept = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    ref_kept += ref[i] > 0.0;
    ASSERT_NEAR(got[i], ref[i], tol) << "token " << i;
  }
  EXPECT_EQ(dist->size(), ref_kept);
  for (size_t i = 1; i < dist->size(); ++i) EXPECT_GE((*dist)[i - 1].p, (*dist)[i].p);
}

struct Combo {
  const char* name;
  SamplingParams params;
  std::vector<int32_t> history;
};

std::vector<Combo> combos() {
  std::vector<Combo> c;
  c.push_back({"temperature_only", plain(0.7f), {}});
  c.push_back({"hot_temperature", plain(1.8f), {}});
  SamplingParams k = plain(1.0f);
  k.top_k = 5;
  c.push_back({"top_k", k, {}});
  SamplingParams tp = plain(1.0f);
  tp.top_p = 0.8f;
  c.push_back({"top_p", tp, {}});
  SamplingParams mp = plain(1.0f);
  mp.min_p = 0.1f;
  c.push_back({"min_p", mp, {}});
  SamplingParams all = plain(1.3f);
  all.top_k = 12;
  all.top_p = 0.9f;
  all.min_p = 0.05f;
  c.push_back({"top_k_top_p_min_p_temperature", all, {}});
  SamplingParams pen = all;
  pen.repeat_penalty = 1.3f;
  pen.presence_penalty = 0.4f;
  pen.frequency_penalty = 0.25f;
  pen.repeat_last_n = 6;
  c.push_back({"combo_with_penalties", pen, {3, 3, 7, 1, 0, 3, 3, 9, 9, 2}});
  SamplingParams dflt;  // the library's defaults
  dflt.seed = 99;
  c.push_back({"defaults", dflt, {}});
  return c;
}

TEST(Sampler, GreedyIsArgmax) {
  Sampler s(plain(0.0f));
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const auto l = random_logits(1000, seed);
    const auto want = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(s.sample(l, {}).value(), want);
  }
}

TEST(Sampler, GreedyTiesGoToLowestId) {
  Sampler s(plain(0.0f));
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f, 2.0f};
  EXPECT_EQ(s.sample(l, {}).value(), 1);
  // top_k = 1 at any temperature keeps the same token
  SamplingParams k1 = plain(1.5f);
  k1.top_k = 1;
  Sampler s1(k1);
  EXPECT_EQ(s1.sample(l, {}).value(), 1);
}

TEST(Sampler, TopKOneEqualsGreedy) {
  SamplingParams k1;  // defaults otherwise: top_p, min_p, temperature 0.8 all active
  k1.top_k = 1;
  k1.seed = 5;
  Sampler sk(k1);
  Sampler sg(plain(0.0f));
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const auto l = random_logits(5000, 100 + seed);
    EXPECT_EQ(sk.sample(l, {}).value(), sg.sample(l, {}).value());
  }
}

TEST(Sampler, DistributionMatchesReference) {
  const auto logits = random_logits(40, 7);
  for (const Combo& c : combos()) {
    SCOPED_TRACE(c.name);
    expect_distribution_matches(logits, c.history, c.params, 2e-6);
  }
}

TEST(Sampler, DistributionMatchesReferenceLargeVocab) {
  // 250k tokens: top-p without top-k exercises the growing sorted prefix.
  const auto logits = random_logits(250000, 11, 3.0f);
  SamplingParams tp = plain(1.0f);
  tp.top_p = 0.9f;
  expect_distribution_matches(logits, {}, tp, 1e-6);
  SamplingParams mp = plain(0.8f);
  mp.min_p = 0.02f;
  expect_distribution_matches(logits, {}, mp, 1e-6);
  SamplingParams dflt;
  expect_distribution_matches(logits, {10, 20, 20, 249999}, dflt, 1e-6);
  SamplingParams big_k = plain(1.0f);
  big_k.top_k = 3000;
  big_k.top_p = 0.5f;
  expect_distribution_matches(logits, {}, big_k, 1e-6);
}

TEST(Sampler, EmpiricalDrawsMatchFilteredDistribution) {
  const auto logits = random_logits(24, 3);
  constexpr int kDraws = 20000;
  for (const Combo& c : combos()) {
    SCOPED_TRACE(c.name);
    const auto ref = ref_distribution(logits, c.history, c.params);
    Sampler s(c.params);
    std::vector<int> hits(logits.size(), 0);
    for (int i = 0; i < kDraws; ++i) hits[s.sample(logits, c.history).value()]++;
    double max_diff = 0;
    for (size_t t = 0; t < logits.size(); ++t) {
      if (ref[t] == 0.0) EXPECT_EQ(hits[t], 0) << "filtered-out token " << t << " was drawn";
      max_diff = std::max(max_diff, std::abs(hits[t] / double(kDraws) - ref[t]));
    }
    EXPECT_LE(max_diff, 0.02);
  }
}

TEST(Sampler, PenaltiesAdjustLogitsExactly) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f, 1.0f};
  // window of the last 7: {1, 1, 3, 5, 5, 5, 4}; token 0 is outside it, 2 and 6 never appear
  const std::vector<int32_t> history = {0, 0, 1, 1, 3, 5, 5, 5, 4};
  SamplingParams p = plain(1.0f);
  p.repeat_penalty = 1.5f;
  p.presence_penalty = 0.3f;
  p.frequency_penalty = 0.2f;
  p.repeat_last_n = 7;
  // Worked by hand: positive logits are divided, non-positive multiplied, then
  // count * 0.2 + 0.3 subtracted.
  const std::vector<double> want = {
      2.0,                    // not in the window
      -1.0 * 1.5 - 0.7,       // twice
      0.5,                    // never
      3.0 / 1.5 - 0.5,        // once
      -2.0 * 1.5 - 0.5,       // once
      0.0 * 1.5 - 0.9,        // three times; zero counts as non-positive
      1.0,                    // never
  };
  Sampler s(p);
  auto dist = s.distribution(logits, history).value();
  ASSERT_EQ(dist.size(), logits.size());
  std::vector<double> logp(logits.size());
  for (const TokenProb& tp : dist) logp[tp.id] = std::log(tp.p);
  for (size_t t = 1; t < logits.size(); ++t)
    EXPECT_NEAR(logp[t] - logp[0], want[t] - want[0], 2e-5) << "token " << t;
}

TEST(Sampler, PenaltyWindowAndGreedy) {
  // Token 0 leads by a little; the repeat penalty on it hands greedy to token 1.
  const std::vector<float> logits = {2.0f, 1.8f, -5.0f};
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 1.2f;
  p.repeat_last_n = 2;
  Sampler s(p);
  EXPECT_EQ(s.sample(logits, std::vector<int32_t>{2, 0}).value(), 1);
  // token 0 outside the window of 2: no penalty
  EXPECT_EQ(s.sample(logits, std::vector<int32_t>{0, 2, 2}).value(), 0);
  // window 0 disables penalties; -1 takes the whole history
  p.repeat_last_n = 0;
  EXPECT_EQ(Sampler(p).sample(logits, std::vector<int32_t>{0}).value(), 0);
  p.repeat_last_n = -1;
  EXPECT_EQ(Sampler(p).sample(logits, std::vector<int32_t>{0, 2, 2, 2, 2}).value(), 1);
}

TEST(Sampler, SameSeedSameStreamDifferentSeedDifferent) {
  const auto logits = random_logits(64, 21, 1.0f);
  SamplingParams p = plain(1.0f);
  p.seed = 1234;
  auto run = [&](const SamplingParams& params) {
    Sampler s(params);
    std::vector<int32_t> out;
    for (int i = 0; i < 500; ++i) out.push_back(s.sample(logits, out).value());
    return out;
  };
  const auto a = run(p);
  EXPECT_EQ(a, run(p));
  SamplingParams q = p;
  q.seed = 1235;
  EXPECT_NE(a, run(q));
  // reseed restarts the stream
  Sampler s(q);
  (void)s.sample(logits, {});
  s.reseed(1234);
  EXPECT_EQ(s.sample(logits, {}).value(), a[0]);
}

TEST(Sampler, DrawFollowsDocumentedGenerator) {
  // Equal logits over 4 tokens: the draw must be floor(u * 4) with u from the top 53 bits of
  // std::mt19937_64(seed), one output per sample().
  const std::vector<float> logits(4, 0.25f);
  SamplingParams p = plain(1.0f);
  p.seed = 77;
  Sampler s(p);
  std::mt19937_64 gen(77);
  for (int i = 0; i < 1000; ++i) {
    const double u = static_cast<double>(gen() >> 11) / 9007199254740992.0;
    EXPECT_EQ(s.sample(logits, {}).value(), static_cast<int32_t>(u * 4)) << "draw " << i;
  }
}

TEST(Sampler, NonFiniteLogits) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // NaN is never drawn
  const std::vector<float> with_nan = {nan, 0.0f, nan, 0.0f};
  Sampler s(plain(1.0f));
  for (int i = 0; i < 200; ++i) {
    const int32_t id = s.sample(with_nan, {}).value();
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
  EXPECT_EQ(Sampler(plain(0.0f)).sample(with_nan, {}).value(), 1);
  // +inf tokens share all the mass
  const std::vector<float> with_inf = {0.0f, kInf, 5.0f, kInf};
  auto dist = s.distribution(with_inf, {}).value();
  ASSERT_EQ(dist.size(), 2u);
  EXPECT_EQ(dist[0].id, 1);
  EXPECT_EQ(dist[1].id, 3);
  EXPECT_FLOAT_EQ(dist[0].p, 0.5f);
  EXPECT_EQ(Sampler(plain(0.0f)).sample(with_inf, {}).value(), 1);
  // nothing drawable: an error, not an id
  const std::vector<float> dead = {-kInf, nan, -kInf};
  for (float t : {0.0f, 1.0f}) {
    auto r = Sampler(plain(t)).sample(dead, {});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.status().code(), StatusCode::invalid_argument);
    EXPECT_NE(r.status().message().find("no token can be sampled"), std::string::npos);
  }
}

TEST(Sampler, BadInputsAreErrors) {
  Sampler s(plain(1.0f));
  EXPECT_EQ(s.sample(std::vector<float>{}, {}).status().code(), StatusCode::invalid_argument);
  SamplingParams pen = plain(1.0f);
  pen.repeat_penalty = 1.1f;
  Sampler sp(pen);
  const std::vector<float> l = {0.0f, 1.0f};
  EXPECT_EQ(sp.sample(l, std::vector<int32_t>{2}).status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(sp.sample(l, std::vector<int32_t>{-1}).status().code(), StatusCode::invalid_argument);
}

TEST(Sampler, BadParamsAreInvalidArgument) {
  auto bad = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    auto s = Sampler::create(p);
    EXPECT_FALSE(s.has_value());
    EXPECT_EQ(s.status().code(), StatusCode::invalid_argument);
    EXPECT_THROW(Sampler{p}, Error);
  };
  bad([](SamplingParams& p) { p.temperature = -0.1f; });
  bad([](SamplingParams& p) { p.temperature = std::numeric_limits<float>::quiet_NaN(); });
  bad([](SamplingParams& p) { p.top_p = 1.01f; });
  bad([](SamplingParams& p) { p.top_p = -0.5f; });
  bad([](SamplingParams& p) { p.min_p = 2.0f; });
  bad([](SamplingParams& p) { p.top_k = -1; });
  bad([](SamplingParams& p) { p.repeat_penalty = 0.0f; });
  bad([](SamplingParams& p) { p.repeat_last_n = -2; });
  bad([](SamplingParams& p) { p.presence_penalty = kInf; });
  EXPECT_TRUE(Sampler::create(SamplingParams{}).has_value());
  EXPECT_TRUE(validate(plain(0.0f)).is_ok());
}

TEST(Softmax, MatchesNaiveAndIsShiftInvariant) {
  const auto l = random_logits(1000, 5, 4.0f);
  long double sum = 0;
  for (float x : l) sum += std::exp(static_cast<long double>(x));
  const auto p = softmax(l);
  const auto lp = log_softmax(l);
  for (size_t i = 0; i < l.size(); ++i) {
    const long double want = std::exp(static_cast<long double>(l[i])) / sum;
    EXPECT_NEAR(p[i], static_cast<double>(want), 1e-6 * static_cast<double>(want) + 1e-12);
    EXPECT_NEAR(lp[i], static_cast<double>(std::log(want)), 1e-4);
    EXPECT_NEAR(log_prob(l, static_cast<int32_t>(i)), static_cast<double>(std::log(want)), 1e-9);
  }
  // A shift of 1e4 overflows a naive exp; the stable version must not care.
  std::vector<float> shifted(l);
  for (float& x : shifted) x += 1.0e4f;
  const auto ps = softmax(shifted);
  double total = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    ASSERT_TRUE(std::isfinite(ps[i]));
    total += ps[i];
    // float addition of 1e4 rounds each logit by up to ~5e-4
    EXPECT_NEAR(ps[i], p[i], 2e-3 * p[i] + 1e-9);
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
}

TEST(Softmax, NonFiniteRows) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> l = {0.0f, nan, -kInf, 0.0f};
  const auto p = softmax(l);
  EXPECT_FLOAT_EQ(p[0], 0.5f);
  EXPECT_EQ(p[1], 0.0f);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_EQ(log_softmax(l)[1], -kInf);
  EXPECT_NEAR(log_prob(l, 3), std::log(0.5), 1e-12);
  const std::vector<float> dead = {-kInf, nan};
  for (float x : softmax(dead)) EXPECT_EQ(x, 0.0f);
  for (float x : log_softmax(dead)) EXPECT_EQ(x, -kInf);
  EXPECT_EQ(log_prob(dead, 0), -std::numeric_limits<double>::infinity());
}

// ---- the split used by Backend::sample: request() on the host, sample_row() on the rows

TEST(SampleRequest, RequestPlusSampleRowIsSample) {
  // Same seed: one sampler draws with sample(), the other with request() + sample_row(); the
  // streams must be identical for every parameter mix (history grows with the draws).
  std::vector<SamplingParams> mixes = {plain(0.0f), plain(0.7f), SamplingParams{}};
  SamplingParams pen = SamplingParams{};
  pen.repeat_penalty = 1.3f, pen.presence_penalty = 0.4f, pen.frequency_penalty = 0.2f, pen.repeat_last_n = 16;
  mixes.push_back(pen);
  SamplingParams nucleus = plain(1.1f);
  nucleus.top_p = 0.8f;
  mixes.push_back(nucleus);
  for (size_t m = 0; m < mixes.size(); ++m) {
    SamplingParams p = mixes[m];
    p.seed = 900 + m;
    Sampler a(p), b(p);
    std::vector<int32_t> history_a = {3, 3, 17}, history_b = history_a;
    for (int i = 0; i < 200; ++i) {
      const auto logits = random_logits(257, 50 + uint32_t(i), 1.5f);
      const int32_t ta = a.sample(logits, history_a).value();
      const SampleRequest r = b.request(history_b, 257).value();
      const int32_t tb = sample_row(logits, r).value();
      ASSERT_EQ(ta, tb) << "mix " << m << " draw " << i;
      history_a.push_back(ta);
      history_b.push_back(tb);
    }
  }
}

TEST(SampleRequest, PenaltyCountsAndUniform) {
  SamplingParams p = plain(1.0f);
  p.repeat_penalty = 1.1f;
  p.repeat_last_n = 5;
  p.seed = 5;
  const std::vector<int32_t> history = {9, 1, 4, 4, 1, 4, 0};  // window: 4 4 1 4 0
  const auto pc = penalty_counts(p, history, 10).value();
  ASSERT_EQ(pc.size(), 3u);
  EXPECT_EQ(pc[0].id, 0);
  EXPECT_EQ(pc[0].count, 1);
  EXPECT_EQ(pc[1].id, 1);
  EXPECT_EQ(pc[1].count, 1);
  EXPECT_EQ(pc[2].id, 4);
  EXPECT_EQ(pc[2].count, 3);
  EXPECT_FALSE(penalty_counts(p, std::vector<int32_t>{10}, 10).has_value());  // outside the vocabulary
  p.repeat_penalty = 1.0f;
  EXPECT_TRUE(penalty_counts(p, history, 10).value().empty());  // no penalty applies

  Sampler s(p);
  std::mt19937_64 gen(5);
  const SampleRequest r = s.request(history, 10).value();
  EXPECT_EQ(r.uniform, static_cast<double>(gen() >> 11) * 0x1.0p-53);
  Sampler g(plain(0.0f));
  EXPECT_EQ(g.request(history, 10).value().uniform, 0.0);  // greedy draws no uniform
}

TEST(SampleRequest, DrawWalksSurvivorsByAscendingId) {
  // Survivors {1, 0} by probability; by id {0, 1}. Weights at T = 1: id 0 e^-2 = 0.135, id 1 1.0;
  // r = u * 1.135. u = 0.05 lands in id 0's share when the walk goes by id.
  SampleRequest r;
  r.params = plain(1.0f);
  r.uniform = 0.05;
  EXPECT_EQ(sample_row(std::vector<float>{1.0f, 3.0f}, r).value(), 0);
  r.uniform = 0.2;
  EXPECT_EQ(sample_row(std::vector<float>{1.0f, 3.0f}, r).value(), 1);
  // after top-k (which selects in any order) the walk is still by id
  r.params.top_k = 2;
  r.uniform = 0.05;
  EXPECT_EQ(sample_row(std::vector<float>{3.0f, 1.0f, 3.5f, -9.0f}, r).value(), 0);
  r.uniform = 0.99;
  EXPECT_EQ(sample_row(std::vector<float>{3.0f, 1.0f, 3.5f, -9.0f}, r).value(), 2);
}

TEST(SampleRequest, UngetRestoresTheStream) {
  SamplingParams p = plain(0.9f);
  p.seed = 31;
  Sampler a(p), b(p);
  const auto logits = random_logits(64, 8);
  // b makes a request it never uses, gives it back, then draws: same stream as a.
  const SampleRequest dropped = b.request({}, 64).value();
  b.unget(dropped);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(a.sample(logits, {}).value(), b.sample(logits, {}).value()) << i;
  // A greedy request holds no uniform: giving it back changes nothing.
  Sampler c(plain(0.0f));
  c.unget(c.request({}, 64).value());
  EXPECT_EQ(c.sample(logits, {}).value(), Sampler(plain(0.0f)).sample(logits, {}).value());
}

TEST(SampleRequest, SampleRowRejectsBadRows) {
  SampleRequest r;
  r.params = plain(1.0f);
  EXPECT_FALSE(sample_row(std::vector<float>{}, r).has_value());
  r.penalties = {{5, 1}};
  EXPECT_FALSE(sample_row(std::vector<float>{0.f, 1.f}, r).has_value());  // penalty id past the row
  r.penalties.clear();
  EXPECT_FALSE(sample_row(std::vector<float>{-kInf, -kInf}, r).has_value());
}

}  // namespace
}  // namespace anvil
