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
}

Status Sampler::apply_penalties(std::span<const int32_t> history) {
  const SamplingParams& p = params_;
  const bool any = p.repeat_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (!any || p.repeat_last_n == 0 || history.empty()) return Status::ok();

  size_t n = history.size();
  if (p.repeat_last_n > 0) n = std::min(n, static_cast<size_t>(p.repeat_last_n));
  // Count by sorting the (short) window rather than a vocab-sized table.
  window_.assign(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  const auto n_vocab = static_cast<int64_t>(work_.size());
  for (int32_t id : window_) {
    if (id < 0 || id >= n_vocab)
      return make_error(StatusCode::invalid_argument, "sampling: history token ", id, " is outside the vocabulary [0, ",
                        n_vocab, ")");
  }
  std::sort(window_.begin(), window_.end());
  for (size_t i = 0; i < window_.size();) {
    size_t j = i;
    while (j < window_.size() && window_[j] == window_[i]) ++j;
    const auto count = static_cast<float>(j - i);
    float& l = work_[static_cast<size_t>(window_[i])];
    if (l != kNegInf) {
      l = l > 0.0f ? l / p.repeat_penalty : l * p.repeat_penalty;
      l -= count * p.frequency_penalty + p.presence_penalty;
    }
    i = j;
  }
  return Status::ok();
}

int32_t Sampler::argmax() const {
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

void Sampler::keep_top_k() {
  const auto k = static_cast<size_t>(params_.top_k);
  if (k == 0 || k >= cand_.size()) return;
  const float* w = work_.data();
  auto higher = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
  std::nth_element(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k - 1), cand_.end(), higher);
  cand_.resize(k);
}

void Sampler::keep_top_p() {
  if (params_.top_p >= 1.0f || cand_.size() <= 1) return;
  const float* w = work_.data();
  auto higher = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
  float max_l = kNegInf;
  for (int32_t id : cand_) max_l = std::max(max_l, w[id]);
  double total = 0.0;
  for (int32_t id : cand_) total += std::exp(static_cast<double>(w[id]) - max_l);
  const double target = static_cast<double>(params_.top_p) * total;

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

void Sampler::keep_min_p() {
  if (params_.min_p <= 0.0f || cand_.size() <= 1) return;
  const float* w = work_.data();
  float max_l = kNegInf;
  for (int32_t id : cand_) max_l = std::max(max_l, w[id]);
  // p_i >= min_p * p_max  <=>  l_i - l_max >= log(min_p); compared in double so a max of
  // FLT_MAX does not overflow.
  const double threshold = std::log(static_cast<double>(params_.min_p));
  std::erase_if(cand_, [&](int32_t id) { return static_cast<double>(w[id]) - max_l < threshold; });
}

Status Sampler::filter(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.empty()) return make_error(StatusCode::invalid_argument, "sampling: empty logits row");
  if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return make_error(StatusCode::invalid_argument, "sampling: logits row too long (", logits.size(), ")");
  work_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) work_[i] = sanitize(logits[i]);
  ANVIL_RETURN_IF_ERROR(apply_penalties(history));

  cand_.clear();
  if (params_.temperature == 0.0f) {
    const int32_t best = argmax();
    if (best >= 0) cand_.push_back(best);
  } else {
    for (size_t i = 0; i < work_.size(); ++i)
      if (work_[i] != kNegInf) cand_.push_back(static_cast<int32_t>(i));
    keep_top_k();
    keep_top_p();
    keep_min_p();
  }
  if (cand_.empty())
    return make_error(StatusCode::invalid_argument,
                      "sampling: no token can be sampled (every logit is -inf or NaN after penalties)");
  return Status::ok();
}

Expected<int32_t> Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  ANVIL_RETURN_IF_ERROR(filter(logits, history));
  if (params_.temperature == 0.0f) return cand_[0];

  const float* w = work_.data();
  float max_l = kNegInf;
  for (int32_t id : cand_) max_l = std::max(max_l, w[id]);
  const double inv_t = 1.0 / static_cast<double>(params_.temperature);
  weights_.resize(cand_.size());
  double total = 0.0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    weights_[i] = std::exp((static_cast<double>(w[cand_[i]]) - max_l) * inv_t);
    total += weights_[i];
  }
  const double r = uniform01(rng_) * total;
  double cum = 0.0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    cum += weights_[i];
    if (r < cum) return cand_[i];
  }
  // Rounding left r at the very top: the last token with any weight.
  for (size_t i = cand_.size(); i-- > 0;)
    if (weights_[i] > 0.0) return cand_[i];
  return cand_.back();
}

Expected<std::vector<TokenProb>> Sampler::distribution(std::span<const float> logits,
                                                       std::span<const int32_t> history) {
  ANVIL_RETURN_IF_ERROR(filter(logits, history));
  std::vector<TokenProb> out;
  out.reserve(cand_.size());
  if (params_.temperature == 0.0f) {
    out.push_back({cand_[0], 1.0f});
    return out;
  }
  const float* w = work_.data();
  float max_l = kNegInf;
  for (int32_t id : cand_) max_l = std::max(max_l, w[id]);
  const double inv_t = 1.0 / static_cast<double>(params_.temperature);
  double total = 0.0;
  weights_.resize(cand_.size());
  for (size_t i = 0; i < cand_.size(); ++i) {
    weights_[i] = std::exp((static_cast<double>(w[cand_[i]]) - max_l) * inv_t);
    total += weights_[i];
  }
  for (size_t i = 0; i < cand_.size(); ++i) {
    const auto p = static_cast<float>(weights_[i] / total);
    if (p > 0.0f) out.push_back({cand_[i], p});  // underflowed tokens can never be drawn
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
