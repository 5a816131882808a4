// Backend::sample on CUDA (cuda/sampling.cu) against sample_row (core/sampler.cpp), the oracle,
// on the same logits and SampleRequests: vocabularies of 7 to 262144 tokens, 1 to 33 rows (both
// sort paths of the kernel), every filter alone and combined, penalty windows with repeats,
// NaN / +inf / -inf logits, heavy ties across the top-k / top-p cut, strided rows, uniforms 0 and
// 1 - 2^-53, rows that cannot be sampled, and a 20000-draw histogram against
// Sampler::distribution. The ids must be equal, except that a draw is skipped (and counted; the
// count must stay under 1%) when the CPU's r, or its top-p target, lies within 1e-9 of the total
// from a cumulative-weight boundary: there the two sums' rounding legitimately decides. The
// margins come from a double-precision replica of sample_row's chain (reference_chain), itself
// checked against sample_row (that test also runs without a GPU, as does the CPU backend's
// default Backend::sample).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/sampler.h"
#include "tests/cuda/op_test_util.h"

namespace anvil {
namespace {

using test_cuda::TwinBackends;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kMargin = 1e-9;  // of the total weight
const double kTopUniform = 1.0 - 0x1.0p-53;

// ---- the reference chain (same float ops as sample_row, sums in double) and its margins

struct ChainResult {
  int32_t id = -1;                 // -1: no token can be sampled
  double draw_margin = INFINITY;   // min |cum_i - r| / total over the draw's inner boundaries
  double top_p_margin = INFINITY;  // min |prefix_i - target| / total over the top-p prefixes
  bool near_boundary() const { return draw_margin < kMargin || top_p_margin < kMargin; }
};

float sanitize(float x) {
  if (std::isnan(x)) return -kInf;
  if (x == kInf) return FLT_MAX;
  return x;
}

ChainResult reference_chain(std::span<const float> row, const SampleRequest& req) {
  const SamplingParams& p = req.params;
  ChainResult out;
  std::vector<float> w(row.size());
  for (size_t i = 0; i < row.size(); ++i) w[i] = sanitize(row[i]);
  for (const PenaltyCount& pc : req.penalties) {
    float& l = w[size_t(pc.id)];
    if (l != -kInf) {
      l = l > 0.0f ? l / p.repeat_penalty : l * p.repeat_penalty;
      l -= static_cast<float>(pc.count) * p.frequency_penalty + p.presence_penalty;
    }
  }
  if (p.temperature == 0.0f) {
    float best = -kInf;
    for (size_t i = 0; i < w.size(); ++i)
      if (w[i] > best) best = w[i], out.id = int32_t(i);
    return out;
  }
  std::vector<int32_t> order;
  for (size_t i = 0; i < w.size(); ++i)
    if (w[i] != -kInf) order.push_back(int32_t(i));
  if (order.empty()) return out;
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
  size_t m = order.size();
  if (p.top_k > 0) m = std::min(m, size_t(p.top_k));
  const double max_l = w[size_t(order[0])];
  if (p.top_p < 1.0f && m > 1) {
    double total = 0.0;
    // Masses that are all 0 or 1 (ties with the max, underflows) add up exactly in any order:
    // then there is no rounding to decide a boundary.
    bool exact = true;
    for (size_t i = 0; i < m; ++i) {
      const double e = std::exp(double(w[size_t(order[i])]) - max_l);
      total += e;
      exact = exact && (e == 0.0 || e == 1.0);
    }
    const double target = double(p.top_p) * total;
    double cum = 0.0;
    size_t cut = m;
    for (size_t i = 0; i < m; ++i) {
      cum += std::exp(double(w[size_t(order[i])]) - max_l);
      if (!exact) out.top_p_margin = std::min(out.top_p_margin, std::abs(cum - target) / total);
      if (cut == m && cum >= target) cut = i + 1;
    }
    m = cut;
  }
  if (p.min_p > 0.0f && m > 1) {
    const double threshold = std::log(double(p.min_p));
    while (m > 1 && double(w[size_t(order[m - 1])]) - max_l < threshold) --m;
  }
  std::vector<int32_t> kept(order.begin(), order.begin() + std::ptrdiff_t(m));
  std::sort(kept.begin(), kept.end());
  const double inv_t = 1.0 / double(p.temperature);
  std::vector<double> weights(kept.size());
  double total = 0.0;
  bool exact = true;  // as for top-p
  for (size_t i = 0; i < kept.size(); ++i) {
    total += weights[i] = std::exp((double(w[size_t(kept[i])]) - max_l) * inv_t);
    exact = exact && (weights[i] == 0.0 || weights[i] == 1.0);
  }
  const double r = req.uniform * total;
  size_t last_positive = kept.size();
  for (size_t i = kept.size(); i-- > 0;)
    if (weights[i] > 0.0) {
      last_positive = i;
      break;
    }
  double cum = 0.0;
  for (size_t i = 0; i < kept.size(); ++i) {
    cum += weights[i];
    // A boundary between two tokens with weight; past the last one both sides fall back to it.
    if (!exact && weights[i] > 0.0 && i != last_positive)
      out.draw_margin = std::min(out.draw_margin, std::abs(cum - r) / total);
    if (out.id < 0 && r < cum) out.id = kept[i];
  }
  if (out.id < 0) out.id = last_positive < kept.size() ? kept[last_positive] : kept.back();
  return out;
}

// ---- inputs

struct Batch {
  int64_t n = 0, V = 0;
  std::vector<float> logits;  // [n, V] row-major
  std::vector<SampleRequest> requests;
  std::span<const float> row(int64_t i) const { return {logits.data() + i * V, size_t(V)}; }
};

double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

// Penalised configurations first differ in params only; the window comes from a random history.
std::vector<SamplingParams> configs() {
  std::vector<SamplingParams> c;
  auto make = [&](float t, int32_t k, float top_p, float min_p) {
    SamplingParams p;
    p.temperature = t, p.top_k = k, p.top_p = top_p, p.min_p = min_p;
    c.push_back(p);
    return &c.back();
  };
  make(0.0f, 0, 1.0f, 0.0f);      // greedy
  make(1.0f, 0, 1.0f, 0.0f);      // pure temperature
  make(0.7f, 1, 1.0f, 0.0f);      // top_k 1
  make(0.8f, 40, 1.0f, 0.0f);     // top_k 40
  make(1.3f, 1000, 1.0f, 0.0f);   // top_k 1000
  make(0.9f, 0, 0.5f, 0.0f);      // top_p 0.5
  make(0.8f, 0, 0.95f, 0.0f);     // top_p 0.95
  make(0.8f, 40, 0.95f, 0.0f);    // top_k + top_p
  make(1.0f, 0, 1.0f, 0.05f);     // min_p 0.05
  make(0.6f, 100, 1.0f, 0.3f);    // top_k + min_p 0.3
  make(1.0f, 0, 0.0f, 0.0f);      // top_p 0: the top token
  make(1.0f, 0, 1.0f, 1.0f);      // min_p 1: the maximum's ties
  c.push_back(SamplingParams{});  // the defaults (top_k 40, top_p 0.95, min_p 0.05, T 0.8)
  SamplingParams* p = make(0.8f, 40, 0.95f, 0.05f);
  p->repeat_penalty = 1.3f, p->presence_penalty = 0.5f, p->frequency_penalty = 0.2f;
  p = make(0.0f, 0, 1.0f, 0.0f);  // greedy with penalties
  p->repeat_penalty = 1.5f, p->frequency_penalty = 0.3f;
  p = make(1.1f, 0, 0.9f, 0.0f);  // boosting penalties, whole history
  p->repeat_penalty = 0.7f, p->presence_penalty = -0.5f, p->frequency_penalty = -0.1f, p->repeat_last_n = -1;
  p = make(0.9f, 0, 1.0f, 0.0f);  // pure temperature with penalties
  p->presence_penalty = 1.0f, p->repeat_last_n = 16;
  return c;
}

// The request for `params` with a 100-token history full of repeats, and `uniform`.
SampleRequest make_request(const SamplingParams& params, double uniform, int64_t V, std::mt19937_64& rng) {
  std::vector<int32_t> history(100);
  for (auto& t : history) {
    const uint64_t range = rng() % 2 ? uint64_t(std::min<int64_t>(V, 12)) : uint64_t(V);  // repeats
    t = int32_t(rng() % range);
  }
  SampleRequest r;
  r.params = params;
  r.uniform = params.temperature > 0.0f ? uniform : 0.0;
  r.penalties = penalty_counts(params, history, V).value();
  return r;
}

// kind 0: gaussian logits; 1: a few peaked tokens; 2: heavy ties (4 distinct values);
// 3: non-finite mix (NaN, -inf, one +inf); 4: several +inf; 5: all equal.
std::vector<float> make_row(int kind, int64_t V, std::mt19937_64& rng) {
  std::normal_distribution<float> g(0.0f, 2.0f);
  std::vector<float> row(static_cast<size_t>(V));
  for (auto& x : row) x = g(rng);
  auto pick = [&]() { return size_t(rng() % uint64_t(V)); };
  switch (kind) {
    case 1:
      for (int j = 0; j < 5; ++j) row[pick()] = 12.0f + float(j);
      break;
    case 2:
      for (auto& x : row) x = 0.5f * float(rng() % 4);
      if (V > 10) row[pick()] = 3.0f;
      break;
    case 3:
      for (size_t i = 0; i < row.size(); ++i) {
        if (i % 5 == 1) row[i] = std::numeric_limits<float>::quiet_NaN();
        if (i % 7 == 2) row[i] = -kInf;
      }
      row[pick()] = kInf;
      break;
    case 4:
      for (int j = 0; j < 4; ++j) row[pick()] = kInf;
      row[pick()] = -0.0f;
      break;
    case 5:
      std::fill(row.begin(), row.end(), -0.25f);
      break;
    default:
      break;
  }
  return row;
}

Batch make_batch(int64_t n, int64_t V, std::mt19937_64& rng, int first_config, bool special_rows) {
  const auto cfg = configs();
  Batch b;
  b.n = n, b.V = V;
  for (int64_t i = 0; i < n; ++i) {
    const int kind = special_rows ? int((i + first_config) % 6) : int(i % 2);
    const auto row = make_row(kind, V, rng);
    b.logits.insert(b.logits.end(), row.begin(), row.end());
    SamplingParams p = cfg[size_t(first_config + i) % cfg.size()];
    // +inf logits with a boosting penalty overflow to +inf on both sides (NaN weights): valid but
    // not interesting; keep those rows to penalties >= 1.
    if (kind >= 3 && p.repeat_penalty < 1.0f) p.repeat_penalty = 1.0f;
    const uint64_t u = rng() % 8;
    const double uniform = u == 0 ? 0.0 : u == 1 ? kTopUniform : uniform01(rng);
    b.requests.push_back(make_request(p, uniform, V, rng));
  }
  return b;
}

// ---- running a batch on a backend

struct Tally {
  int compared = 0, skipped = 0;
};

// Uploads the batch with `pad` extra floats per row (filled with 1e30: a kernel that reads past
// the row would draw them) and samples it on `be`.
Status run_sample(Backend& be, const Batch& b, int64_t pad, std::vector<int32_t>& ids) {
  const int64_t ld = b.V + pad;
  std::vector<float> host(size_t(b.n * ld), 1e30f);
  for (int64_t i = 0; i < b.n; ++i) std::copy_n(b.row(i).data(), b.V, host.begin() + i * ld);
  auto buf = be.alloc(host.size() * sizeof(float));
  if (!buf) return buf.status();
  const Tensor full = (*buf)->as_tensor(DType::F32, b.n, ld);
  ANVIL_RETURN_IF_ERROR(be.copy_from_host(full, host.data()));
  ids.assign(size_t(b.n), -7);
  return be.sample(full.slice_cols(0, b.V), b.requests, ids);
}

// be.sample must give sample_row's ids (or its error).
void expect_matches_sample_row(Backend& be, const Batch& b, int64_t pad, Tally& tally, const std::string& what) {
  std::vector<int32_t> ids;
  const Status st = run_sample(be, b, pad, ids);
  bool any_error = false;
  for (int64_t i = 0; i < b.n; ++i) any_error = any_error || !sample_row(b.row(i), b.requests[size_t(i)]);
  if (any_error) {
    EXPECT_EQ(st.code(), StatusCode::invalid_argument) << what << ": " << st.to_string();
    EXPECT_NE(st.message().find("no token can be sampled"), std::string::npos) << what << ": " << st.to_string();
    return;
  }
  ASSERT_TRUE(st.is_ok()) << what << ": " << st.to_string();
  for (int64_t i = 0; i < b.n; ++i) {
    const SampleRequest& req = b.requests[size_t(i)];
    const int32_t expected = sample_row(b.row(i), req).value();
    const ChainResult ref = reference_chain(b.row(i), req);
    if (ref.near_boundary()) {
      ++tally.skipped;
      continue;
    }
    ++tally.compared;
    EXPECT_EQ(ref.id, expected) << what << " row " << i << ": the test's reference chain disagrees with sample_row";
    EXPECT_EQ(ids[size_t(i)], expected) << what << " row " << i << " (T " << req.params.temperature << ", top_k "
                                        << req.params.top_k << ", top_p " << req.params.top_p << ", min_p "
                                        << req.params.min_p << ", " << req.penalties.size() << " penalties, u "
                                        << req.uniform << ")";
  }
}

void expect_few_skips(const Tally& t) {
  EXPECT_GT(t.compared, 0);
  EXPECT_LT(double(t.skipped), 0.01 * double(t.compared + t.skipped))
      << t.skipped << " of " << (t.compared + t.skipped) << " draws sat on a rounding boundary";
}

std::string label(int64_t n, int64_t V) { return "n " + std::to_string(n) + " V " + std::to_string(V); }

// ---- tests that need no GPU

TEST(SampleReference, ReferenceChainMatchesSampleRow) {
  std::mt19937_64 rng(11);
  for (int64_t V : {7, 1000, 32000})
    for (int first = 0; first < 18; first += 6) {
      const Batch b = make_batch(17, V, rng, first, first > 0);
      for (int64_t i = 0; i < b.n; ++i) {
        auto expected = sample_row(b.row(i), b.requests[size_t(i)]);
        const ChainResult ref = reference_chain(b.row(i), b.requests[size_t(i)]);
        if (!expected) {
          EXPECT_EQ(ref.id, -1) << label(b.n, V) << " row " << i;
          continue;
        }
        if (!ref.near_boundary()) EXPECT_EQ(ref.id, *expected) << label(b.n, V) << " row " << i;
      }
    }
}

TEST(SampleReference, CpuBackendDefaultSampleMatchesSampleRow) {
  auto cpu = cpu::make_backend(2);
  std::mt19937_64 rng(12);
  Tally tally;
  for (int64_t V : {7, 1000, 32000})
    for (int64_t n : {1, 3, 8}) {
      const Batch b = make_batch(n, V, rng, int(n + V % 5), true);
      expect_matches_sample_row(*cpu, b, V % 3, tally, "cpu " + label(n, V));
    }
  expect_few_skips(tally);
}

// ---- CUDA against sample_row

TEST(CudaSample, MatchesSampleRowAcrossVocabulariesBatchesAndParams) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937_64 rng(1);
  Tally tally;
  int first = 0;
  for (int64_t V : {7, 1000, 32000, 151936})
    for (int64_t n : {1, 3, 8, 33}) {
      // Enough batches at small n for every config to meet every row kind.
      const int reps = n == 1 ? 17 : n == 3 ? 6 : n == 8 ? 3 : 1;
      for (int r = 0; r < reps; ++r, ++first) {
        const Batch b = make_batch(n, V, rng, first, false);
        expect_matches_sample_row(*be.gpu, b, 0, tally, label(n, V));
      }
    }
  expect_few_skips(tally);
}

TEST(CudaSample, NonFiniteTiesAndStridedRows) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937_64 rng(2);
  Tally tally;
  int first = 0;
  for (int64_t V : {7, 1000, 32000})
    for (int64_t n : {1, 3, 8, 33})
      for (int64_t pad : {0, 5}) {
        const int reps = n <= 3 ? 8 : 2;
        for (int r = 0; r < reps; ++r, ++first) {
          const Batch b = make_batch(n, V, rng, first, true);
          expect_matches_sample_row(*be.gpu, b, pad, tally, label(n, V) + " pad " + std::to_string(pad));
        }
      }
  expect_few_skips(tally);
}

TEST(CudaSample, GemmaSizedVocabulary) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937_64 rng(3);
  Tally tally;
  for (int first = 0; first < 18; ++first)
    expect_matches_sample_row(*be.gpu, make_batch(1, 262144, rng, first, first % 3 == 2), 0, tally, "V 262144 n 1");
  // Six rows: the segmented sort (more than four sampled rows) at this size too.
  for (int first = 0; first < 18; first += 6)
    expect_matches_sample_row(*be.gpu, make_batch(6, 262144, rng, first + 1, false), 3, tally, "V 262144 n 6");
  expect_few_skips(tally);
}

TEST(CudaSample, HandMadePenaltiesWithRepeatsAndAnyOrder) {
  // SampleRequest is public: a window need not come from penalty_counts. sample_row applies the
  // entries in order, so a repeated id compounds.
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937_64 rng(7);
  Tally tally;
  for (int64_t V : {7, 1000})
    for (int first = 0; first < 17; ++first) {
      Batch b = make_batch(3, V, rng, first, false);
      for (SampleRequest& r : b.requests) {
        r.params.repeat_penalty = 1.4f, r.params.presence_penalty = 0.25f, r.params.frequency_penalty = 0.125f;
        r.penalties = {{int32_t(V - 1), 2}, {0, 1}, {int32_t(V / 2), 3}, {0, 2}, {int32_t(V - 1), 1}};
      }
      expect_matches_sample_row(*be.gpu, b, 0, tally, "hand-made penalties " + label(3, V));
    }
  expect_few_skips(tally);
}

TEST(CudaSample, RowsThatCannotBeSampledAreRefused) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937_64 rng(4);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t V : {7, 1000, 151936})
    for (int64_t n : {3, 6})  // both sort paths
      for (bool greedy : {false, true})
        for (int bad_kind = 0; bad_kind < 3; ++bad_kind) {
          const std::string what =
              label(n, V) + (greedy ? " greedy" : " sampled") + " kind " + std::to_string(bad_kind);
          Batch b = make_batch(n, V, rng, greedy ? 1 : 3, false);
          float* row = b.logits.data() + V;  // row 1
          SampleRequest& req = b.requests[1];
          req.params.temperature = greedy ? 0.0f : 0.8f;
          req.uniform = 0.5;
          req.penalties.clear();
          if (bad_kind == 0) std::fill_n(row, V, -kInf);
          if (bad_kind == 1)
            for (int64_t i = 0; i < V; ++i) row[i] = i % 2 ? nan : -kInf;
          if (bad_kind == 2) {
            // Finite logits that the penalty pushes to -inf: -3e38 * 2 overflows.
            std::fill_n(row, V, -3e38f);
            req.params.repeat_penalty = 2.0f;
            for (int32_t i = 0; i < V; ++i) req.penalties.push_back({i, 1});
          }
          ASSERT_FALSE(sample_row(b.row(1), req)) << what;
          std::vector<int32_t> ids;
          const Status st = run_sample(*be.gpu, b, 0, ids);
          EXPECT_EQ(st.code(), StatusCode::invalid_argument) << what;
          EXPECT_NE(st.message().find("no token can be sampled"), std::string::npos) << st.to_string();
          EXPECT_NE(st.message().find("row 1"), std::string::npos) << st.to_string();
        }
  // The backend is still usable afterwards.
  Tally tally;
  expect_matches_sample_row(*be.gpu, make_batch(4, 1000, rng, 0, false), 0, tally, "after the errors");
}

TEST(CudaSample, InvalidArgumentsAreRefused) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937_64 rng(5);
  const Batch b = make_batch(3, 100, rng, 0, false);
  auto buf = be.gpu->alloc(3 * 100 * sizeof(float)).value();
  const Tensor logits = buf->as_tensor(DType::F32, 3, 100);
  ASSERT_OK(be.gpu->copy_from_host(logits, b.logits.data()));
  std::vector<int32_t> ids(3);
  const auto bad = StatusCode::invalid_argument;
  EXPECT_EQ(be.gpu->sample(logits, std::span(b.requests).first(2), ids).code(), bad);
  EXPECT_EQ(be.gpu->sample(logits, b.requests, std::span(ids).first(2)).code(), bad);
  std::vector<SampleRequest> reqs = b.requests;
  reqs[2].penalties = {{100, 1}};
  EXPECT_EQ(be.gpu->sample(logits, reqs, ids).code(), bad);
  reqs = b.requests;
  reqs[0].params.top_p = 1.5f;
  EXPECT_EQ(be.gpu->sample(logits, reqs, ids).code(), bad);
  reqs = b.requests;
  reqs[1].params.temperature = 0.5f;
  reqs[1].uniform = 1.0;
  EXPECT_EQ(be.gpu->sample(logits, reqs, ids).code(), bad);
  Tensor f16 = logits;
  f16.type = DType::F16;
  EXPECT_EQ(be.gpu->sample(f16, b.requests, ids).code(), bad);
  // Zero rows: nothing to do.
  EXPECT_TRUE(be.gpu->sample(logits.slice_rows(0, 0), {}, {}).is_ok());
}

// 20000 draws of one row with fresh uniforms follow Sampler::distribution (chi-square, 5 sigma).
TEST(CudaSample, DrawsFollowTheDistribution) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937_64 rng(6);
  const int64_t V = 1000, n = 64;
  const int draws = 20000;
  SamplingParams params;
  params.temperature = 0.9f, params.top_k = 60, params.top_p = 0.97f, params.min_p = 0.01f;
  params.repeat_penalty = 1.2f, params.presence_penalty = 0.3f;
  std::vector<float> row = make_row(0, V, rng);
  std::vector<int32_t> history(50);
  for (auto& t : history) t = int32_t(rng() % 40);
  Sampler sampler(params);
  const std::vector<TokenProb> dist = sampler.distribution(row, history).value();
  ASSERT_GT(dist.size(), size_t(10));

  Batch b;
  b.n = n, b.V = V;
  for (int64_t i = 0; i < n; ++i) b.logits.insert(b.logits.end(), row.begin(), row.end());
  SampleRequest req = sampler.request(history, V).value();
  b.requests.assign(size_t(n), req);
  std::vector<int> counts(size_t(V), 0);
  for (int done = 0; done < draws;) {
    for (auto& r : b.requests) r.uniform = uniform01(rng);
    std::vector<int32_t> ids;
    ASSERT_OK(run_sample(*be.gpu, b, 0, ids));
    for (int64_t i = 0; i < n && done < draws; ++i, ++done) ++counts[size_t(ids[size_t(i)])];
  }
  std::vector<double> p(size_t(V), 0.0);
  for (const TokenProb& t : dist) p[size_t(t.id)] = t.p;
  double chi2 = 0.0, pooled_expected = 0.0;
  int pooled_observed = 0, bins = 0;
  for (int64_t id = 0; id < V; ++id) {
    const double expected = p[size_t(id)] * draws;
    if (expected == 0.0) {
      EXPECT_EQ(counts[size_t(id)], 0) << "token " << id << " is outside the distribution";
      continue;
    }
    if (expected < 5.0) {
      pooled_expected += expected;
      pooled_observed += counts[size_t(id)];
      continue;
    }
    chi2 += (counts[size_t(id)] - expected) * (counts[size_t(id)] - expected) / expected;
    ++bins;
  }
  if (pooled_expected >= 5.0) {
    chi2 += (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) / pooled_expected;
    ++bins;
  }
  ASSERT_GT(bins, 2);
  const double dof = bins - 1;
  EXPECT_LE(chi2, dof + 5.0 * std::sqrt(2.0 * dof)) << bins << " bins";
}

}  // namespace
}  // namespace anvil
