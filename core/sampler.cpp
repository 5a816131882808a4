#include "core/sampler.h"

#include <algorithm>
#include <cassert>
#include <cfloat>
#include <cmath>
#include <limits>

namespace anvil {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// NaN -> -inf (never drawn); +inf -> FLT_MAX so that (x - max) stays finite and the +inf
// tokens share the mass instead of turning the softmax into NaN.
inline float sanitize(float x) {
  if (std::isnan(x)) return kNegInf;
  if (x == std::numeric_limits<float>::infinity()) return FLT_MAX;
  return x;
}

bool in_unit_interval(float x) { return x >= 0.0f && x <= 1.0f; }  // false for NaN

// Draw one uniform double in [0, 1) from the generator's top 53 bits (portable, unlike
// std::uniform_real_distribution whose algorithm is implementation-defined).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Status validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return make_error(StatusCode::invalid_argument, "sampling: temperature must be >= 0 and finite, got ",
                      p.temperature);
  if (p.top_k < 0) return make_error(StatusCode::invalid_argument, "sampling: top_k must be >= 0, got ", p.top_k);
  if (!in_unit_interval(p.top_p))
    return make_error(StatusCode::invalid_argument, "sampling: top_p must be in [0, 1], got ", p.top_p);
  if (!in_unit_interval(p.min_p))
    return make_error(StatusCode::invalid_argument, "sampling: min_p must be in [0, 1], got ", p.min_p);
  if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
    return make_error(StatusCode::invalid_argument, "sampling: repeat_penalty must be > 0 and finite, got ",
                      p.repeat_penalty);
  if (p.repeat_last_n < -1)
    return make_error(StatusCode::invalid_argument, "sampling: repeat_last_n must be >= -1, got ",
                      p.repeat_last_n);
  if (!std::isfinite(p.presence_penalty))
    return make_error(StatusCode::invalid_argument, "sampling: presence_penalty must be finite");
  if (!std::isfinite(p.frequency_penalty))
    return make_error(StatusCode::invalid_argument, "sampling: frequency_penalty must be finite");
  return Status::ok();
}

Expected<Sampler> Sampler::create(const SamplingParams& params) {
  ANVIL_RETURN_IF_ERROR(validate(params));
  return Sampler(params);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  throw_if_error(validate(params));
}

void Sampler::reseed(uint64_t seed) {
  params_.seed = seed;
  rng_.seed(seed);
  returned_.clear();
}

double Sampler::next_uniform() {
  if (returned_.empty()) return uniform01(rng_);
  const double u = returned_.back();
  returned_.pop_back();
  return u;
}

void Sampler::unget(const SampleRequest& unused) {
  if (unused.params.temperature > 0.0f) returned_.push_back(unused.uniform);
}

Expected<std::vector<PenaltyCount>> penalty_counts(const SamplingParams& p, std::span<const int32_t> history,
                                                   int64_t n_vocab) {
  std::vector<PenaltyCount> out;
  const bool any = p.repeat_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (!any || p.repeat_last_n == 0 || history.empty()) return out;
  size_t n = history.size();
  if (p.repeat_last_n > 0) n = std::min(n, static_cast<size_t>(p.repeat_last_n));
  // Count by sorting the (short) window rather than a vocab-sized table.
  std::vector<int32_t> window(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  for (int32_t id : window)
    if (id < 0 || id >= n_vocab)
      return make_error(StatusCode::invalid_argument, "sampling: history token ", id, " is outside the vocabulary [0, ",
                        n_vocab, ")");
  std::sort(window.begin(), window.end());
  for (size_t i = 0; i < window.size();) {
    size_t j = i;
    while (j < window.size() && window[j] == window[i]) ++j;
    out.push_back({window[i], static_cast<int32_t>(j - i)});
    i = j;
  }
  return out;
}

namespace {

// The filter stages over SampleScratch: work = penalised logits, cand = survivors.
class RowFilter {
 public:
  RowFilter(const SamplingParams& p, SampleScratch& s) : p_(p), work_(s.work), cand_(s.cand) {}

  // Fills work with the penalised logits and cand with the surviving ids, ascending.
  Status run(std::span<const float> logits, std::span<const PenaltyCount> penalties) {
    if (logits.empty()) return make_error(StatusCode::invalid_argument, "sampling: empty logits row");
    if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
      return make_error(StatusCode::invalid_argument, "sampling: logits row too long (", logits.size(), ")");
    work_.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) work_[i] = sanitize(logits[i]);
    for (const PenaltyCount& pc : penalties) {
      if (pc.id < 0 || static_cast<size_t>(pc.id) >= work_.size())
        return make_error(StatusCode::invalid_argument, "sampling: history token ", pc.id,
                          " is outside the vocabulary [0, ", work_.size(), ")");
      float& l = work_[static_cast<size_t>(pc.id)];
      if (l != kNegInf) {
        l = l > 0.0f ? l / p_.repeat_penalty : l * p_.repeat_penalty;
        l -= static_cast<float>(pc.count) * p_.frequency_penalty + p_.presence_penalty;
      }
    }
    cand_.clear();
    if (p_.temperature == 0.0f) {
      const int32_t best = argmax();
      if (best >= 0) cand_.push_back(best);
    } else {
      for (size_t i = 0; i < work_.size(); ++i)
        if (work_[i] != kNegInf) cand_.push_back(static_cast<int32_t>(i));
      keep_top_k();
      keep_top_p();
      keep_min_p();
      // The draw walks the survivors by id; the filters may have left them in any order.
      if (!std::is_sorted(cand_.begin(), cand_.end())) std::sort(cand_.begin(), cand_.end());
    }
    if (cand_.empty())
      return make_error(StatusCode::invalid_argument,
                        "sampling: no token can be sampled (every logit is -inf or NaN after penalties)");
    return Status::ok();
  }

 private:
  // The first index of the largest logit; -1 when none is above -inf.
  int32_t argmax() const {
    int32_t best = -1;
    float best_l = kNegInf;
    for (size_t i = 0; i < work_.size(); ++i) {
      if (work_[i] > best_l) {  // strict: the first index of the maximum wins ties
        best_l = work_[i];
        best = static_cast<int32_t>(i);
      }
    }
    return best;
  }

  void keep_top_k() {
    const auto k = static_cast<size_t>(p_.top_k);
    if (k == 0 || k >= cand_.size()) return;
    const float* w = work_.data();
    auto higher = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
    std::nth_element(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k - 1), cand_.end(), higher);
    cand_.resize(k);
  }

  void keep_top_p() {
    if (p_.top_p >= 1.0f || cand_.size() <= 1) return;
    const float* w = work_.data();
    auto higher = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
    float max_l = kNegInf;
    for (int32_t id : cand_) max_l = std::max(max_l, w[id]);
    double total = 0.0;
    for (int32_t id : cand_) total += std::exp(static_cast<double>(w[id]) - max_l);
    const double target = static_cast<double>(p_.top_p) * total;

    // Sort a growing prefix: the kept set is usually a few hundred tokens out of 100k+, so
    // select-then-sort the next chunk instead of sorting everything.
    double cum = 0.0;
    size_t sorted = 0;
    size_t chunk = 256;
    while (sorted < cand_.size()) {
      const size_t end = std::min(cand_.size(), sorted + chunk);
      auto first = cand_.begin() + static_cast<std::ptrdiff_t>(sorted);
      auto last = cand_.begin() + static_cast<std::ptrdiff_t>(end);
      if (end < cand_.size()) std::nth_element(first, last - 1, cand_.end(), higher);
      std::sort(first, last, higher);
      for (size_t i = sorted; i < end; ++i) {
        cum += std::exp(static_cast<double>(w[cand_[i]]) - max_l);
        if (cum >= target) {
          cand_.resize(i + 1);
          return;
        }
      }
      sorted = end;
      chunk *= 4;
    }
  }

  void keep_min_p() {
    if (p_.min_p <= 0.0f || cand_.size() <= 1) return;
    const float* w = work_.data();
    float max_l = kNegInf;
    for (int32_t id : cand_) max_l = std::max(max_l, w[id]);
    // p_i >= min_p * p_max  <=>  l_i - l_max >= log(min_p); compared in double so a max of
    // FLT_MAX does not overflow.
    const double threshold = std::log(static_cast<double>(p_.min_p));
    std::erase_if(cand_, [&](int32_t id) { return static_cast<double>(w[id]) - max_l < threshold; });
  }

  const SamplingParams& p_;
  std::vector<float>& work_;
  std::vector<int32_t>& cand_;
};

// Weights exp((l - max) / T) of the survivors, in cand order; returns their sum.
double draw_weights(const SamplingParams& p, SampleScratch& s) {
  const float* w = s.work.data();
  float max_l = kNegInf;
  for (int32_t id : s.cand) max_l = std::max(max_l, w[id]);
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  s.weights.resize(s.cand.size());
  double total = 0.0;
  for (size_t i = 0; i < s.cand.size(); ++i) {
    s.weights[i] = std::exp((static_cast<double>(w[s.cand[i]]) - max_l) * inv_t);
    total += s.weights[i];
  }
  return total;
}

// The draw over survivors RowFilter left in s: the first (by id) whose running weight exceeds
// u * total.
int32_t draw(const SamplingParams& p, double uniform, SampleScratch& s) {
  if (p.temperature == 0.0f) return s.cand[0];
  const double r = uniform * draw_weights(p, s);
  double cum = 0.0;
  for (size_t i = 0; i < s.cand.size(); ++i) {
    cum += s.weights[i];
    if (r < cum) return s.cand[i];
  }
  // Rounding left r at the very top: the last token with any weight.
  for (size_t i = s.cand.size(); i-- > 0;)
    if (s.weights[i] > 0.0) return s.cand[i];
  return s.cand.back();
}

}  // namespace

Expected<int32_t> sample_row(std::span<const float> logits, const SampleRequest& request, SampleScratch* scratch) {
  SampleScratch local;
  SampleScratch& s = scratch ? *scratch : local;
  ANVIL_RETURN_IF_ERROR(RowFilter(request.params, s).run(logits, request.penalties));
  return draw(request.params, request.uniform, s);
}

Expected<SampleRequest> Sampler::request(std::span<const int32_t> history, int64_t n_vocab) {
  auto pen = penalty_counts(params_, history, n_vocab);
  if (!pen) return pen.status();
  SampleRequest r;
  r.params = params_;
  r.penalties = std::move(*pen);
  if (params_.temperature > 0.0f) r.uniform = next_uniform();
  return r;
}

Expected<int32_t> Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  auto pen = penalty_counts(params_, history, static_cast<int64_t>(logits.size()));
  if (!pen) return pen.status();
  ANVIL_RETURN_IF_ERROR(RowFilter(params_, scratch_).run(logits, *pen));
  // Only a call that can draw consumes a generator output (as request() + sample_row()).
  const double u = params_.temperature > 0.0f ? next_uniform() : 0.0;
  return draw(params_, u, scratch_);
}

Expected<std::vector<TokenProb>> Sampler::distribution(std::span<const float> logits,
                                                       std::span<const int32_t> history) {
  auto pen = penalty_counts(params_, history, static_cast<int64_t>(logits.size()));
  if (!pen) return pen.status();
  ANVIL_RETURN_IF_ERROR(RowFilter(params_, scratch_).run(logits, *pen));
  std::vector<TokenProb> out;
  out.reserve(scratch_.cand.size());
  if (params_.temperature == 0.0f) {
    out.push_back({scratch_.cand[0], 1.0f});
    return out;
  }
  const double total = draw_weights(params_, scratch_);
  for (size_t i = 0; i < scratch_.cand.size(); ++i) {
    const auto p = static_cast<float>(scratch_.weights[i] / total);
    if (p > 0.0f) out.push_back({scratch_.cand[i], p});  // underflowed tokens can never be drawn
  }
  std::sort(out.begin(), out.end(),
            [](const TokenProb& a, const TokenProb& b) { return a.p > b.p || (a.p == b.p && a.id < b.id); });
  return out;
}

namespace {

// max of the sanitized row and log(sum exp(x - max)); max = -inf when the row has no mass.
void row_stats(std::span<const float> logits, float& max_l, double& log_sum) {
  max_l = kNegInf;
  for (float x : logits) max_l = std::max(max_l, sanitize(x));
  log_sum = 0.0;
  if (max_l == kNegInf) return;
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(sanitize(x)) - max_l);
  log_sum = std::log(sum);
}

}  // namespace

std::vector<float> softmax(std::span<const float> logits) {
  float max_l;
  double log_sum;
  row_stats(logits, max_l, log_sum);
  std::vector<float> out(logits.size(), 0.0f);
  if (max_l == kNegInf) return out;
  for (size_t i = 0; i < logits.size(); ++i)
    out[i] = static_cast<float>(std::exp(static_cast<double>(sanitize(logits[i])) - max_l - log_sum));
  return out;
}

std::vector<float> log_softmax(std::span<const float> logits) {
  float max_l;
  double log_sum;
  row_stats(logits, max_l, log_sum);
  std::vector<float> out(logits.size(), kNegInf);
  if (max_l == kNegInf) return out;
  for (size_t i = 0; i < logits.size(); ++i)
    out[i] = static_cast<float>(static_cast<double>(sanitize(logits[i])) - max_l - log_sum);
  return out;
}

double log_prob(std::span<const float> logits, int32_t id) {
  assert(id >= 0 && static_cast<size_t>(id) < logits.size());
  float max_l;
  double log_sum;
  row_stats(logits, max_l, log_sum);
  if (max_l == kNegInf) return -std::numeric_limits<double>::infinity();
  return static_cast<double>(sanitize(logits[static_cast<size_t>(id)])) - max_l - log_sum;
}

}  // namespace anvil
