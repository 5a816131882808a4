// Sampler: turns one row of logits into a token id, following a sequence's SamplingParams.
//
//   auto s = Sampler::create({.temperature = 0.7f, .top_k = 40, .seed = 42});   // Expected<Sampler>
//   int32_t id = s->sample(logits, history).value();
//
// The chain is llama.cpp's default order, each stage seeing the previous stage's survivors:
//   1. penalties  over the last repeat_last_n tokens of `history`, for each distinct token t seen
//                 c times there:  logit > 0 ? logit / repeat_penalty : logit * repeat_penalty
//                 (CTRL style), then  logit -= c * frequency_penalty + presence_penalty
//   2. top-k      keep the k largest logits
//   3. top-p      keep the shortest prefix (by descending probability at temperature 1,
//                 renormalised over the survivors) whose mass reaches top_p; at least one token
//   4. min-p      keep tokens with p >= min_p * p_max (at temperature 1)
//   5. temperature, softmax over the survivors, one draw: r = u * (sum of the survivors' weights),
//                 then the first survivor in ascending id order whose running sum exceeds r
// temperature == 0 is greedy: the first index of the largest penalised logit (ties -> lowest id);
// filters cannot change that token, so they are skipped. Ties inside top-k/top-p are broken by
// the lower id, so the kept set is a function of the inputs only.
//
// Non-finite logits: NaN is treated as -inf (the token can never be drawn); +inf acts as the
// largest finite float, so +inf tokens share all the probability. If every logit is -inf/NaN,
// sample() returns invalid_argument ("no token can be sampled") instead of an id.
//
// Reproducibility is part of the API: a Sampler draws from std::mt19937_64 seeded with
// `seed` (the standard fixes that generator's output on every platform) and turns each 64-bit
// output into a uniform double with its top 53 bits; every sample() with temperature > 0 consumes
// exactly one output. The same seed, params and inputs therefore give the same token stream
// everywhere. The cost is O(n_vocab) per call plus O(k log k) for the kept prefix: top-k uses a
// selection, and top-p without top-k sorts only a growing prefix, never the whole vocabulary.
//
// Sampling on a backend (Backend::sample, e.g. CUDA kernels) splits a draw in two: the host
// part, Sampler::request(), turns the history into penalty counts and takes the draw's uniform
// from the generator; the row part, sample_row(), applies the chain above to one logits row.
// sample() is exactly request() + sample_row(), and sample_row() is the reference every backend's
// sample() is tested against, so a token stream does not depend on where the rows were sampled
// (beyond the rounding of sums at a boundary of the kept set or of the draw).
//
// Thread-safety: a Sampler holds scratch buffers and the generator state; use one per sequence
// (or guard it). The free functions are pure.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/status.h"

namespace anvil {

struct SamplingParams {
  float temperature = 0.8f;       // 0 = greedy; must be >= 0
  int32_t top_k = 40;             // 0 = off
  float top_p = 0.95f;            // 1 = off; in [0, 1]
  float min_p = 0.05f;            // 0 = off; in [0, 1]
  float repeat_penalty = 1.0f;    // 1 = off; must be > 0
  int32_t repeat_last_n = 64;     // penalty window: 0 = no penalties, -1 = the whole history
  float presence_penalty = 0.0f;  // subtracted once from each distinct token in the window
  float frequency_penalty = 0.0f; // subtracted count times from each token in the window
  uint64_t seed = 0;
};

// invalid_argument naming the first bad field (negative or NaN temperature, top_k < 0,
// top_p / min_p outside [0, 1], repeat_penalty <= 0, repeat_last_n < -1, non-finite penalties).
Status validate(const SamplingParams& params);

// A distinct token of the penalty window and how often it occurs there.
struct PenaltyCount {
  int32_t id;
  int32_t count;
};

// Everything a draw needs besides the logits row (see the file comment): what Backend::sample
// takes per row.
struct SampleRequest {
  SamplingParams params;               // `seed` is unused: the draw is `uniform`
  double uniform = 0.0;                // in [0, 1); unused when temperature == 0
  std::vector<PenaltyCount> penalties; // the penalty window, ids ascending; empty when no penalty applies
};

// The penalty window of `history` under p as distinct (id, count) pairs, ids ascending; empty
// when p applies no penalty. invalid_argument for an id outside [0, n_vocab).
Expected<std::vector<PenaltyCount>> penalty_counts(const SamplingParams& p, std::span<const int32_t> history,
                                                   int64_t n_vocab);

// Scratch buffers of sample_row (reused across calls to avoid vocabulary-sized allocations).
struct SampleScratch {
  std::vector<float> work;      // penalised logits
  std::vector<int32_t> cand;    // surviving ids
  std::vector<double> weights;  // the draw's weights
};

// The chain of the file comment over one row with the request's penalties and uniform.
// invalid_argument for an empty row, a penalty id outside the row, or when every logit is
// -inf/NaN. Pure apart from `scratch` (may be null).
Expected<int32_t> sample_row(std::span<const float> logits, const SampleRequest& request,
                             SampleScratch* scratch = nullptr);

// One entry of the distribution the next draw uses.
struct TokenProb {
  int32_t id;
  float p;
};

class Sampler {
 public:
  // invalid_argument when validate(params) fails.
  static Expected<Sampler> create(const SamplingParams& params);
  // As create(), for tools and tests: throws anvil::Error (invalid_argument) on bad params.
  explicit Sampler(const SamplingParams& params);

  // The next token. `logits` is one row (n_vocab floats); `history` the sequence's tokens so far
  // (prompt and generated), oldest first. invalid_argument for an empty row, a history id
  // outside [0, n_vocab), or when every logit is -inf/NaN.
  Expected<int32_t> sample(std::span<const float> logits, std::span<const int32_t> history);

  // The filtered distribution the next sample() would draw from (after penalties, filters and
  // temperature), by descending probability, ties by id; tokens whose p underflows to 0 are
  // left out. Draws nothing. Greedy gives one entry with p = 1. Same errors as sample().
  Expected<std::vector<TokenProb>> distribution(std::span<const float> logits,
                                                std::span<const int32_t> history);

  // The host half of sample() for a backend to finish (Backend::sample): the penalty counts of
  // `history` and, when temperature > 0, the draw's uniform (one generator output, as sample()
  // consumes). invalid_argument for a history id outside [0, n_vocab).
  Expected<SampleRequest> request(std::span<const int32_t> history, int64_t n_vocab);
  // Gives back the uniform of a request that was never drawn: the next draw uses it, so a
  // dropped request leaves the token stream as if it had never been made.
  void unget(const SampleRequest& unused);

  const SamplingParams& params() const { return params_; }
  // Restarts the random stream as if freshly constructed with `seed`.
  void reseed(uint64_t seed);

 private:
  double next_uniform();

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<double> returned_;  // ungot uniforms, the next one last
  SampleScratch scratch_;
};

// Numerically stable softmax / log-softmax of one row (max subtracted, sums in double).
// NaN counts as -inf and +inf as the largest finite float, as in Sampler. A row with no logit
// above -inf has no mass: softmax gives all zeros and log_softmax all -inf.
std::vector<float> softmax(std::span<const float> logits);
std::vector<float> log_softmax(std::span<const float> logits);
// log p(id) of one row without materialising the row (perplexity's inner loop); in double.
// -inf for a row with no mass; id must be in range (checked with an assert only).
double log_prob(std::span<const float> logits, int32_t id);

}  // namespace anvil
