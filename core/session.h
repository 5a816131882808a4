// Session: one sequence of tokens on an Engine — its KV pages, its history, its sampler.
//
//   auto s = engine.new_session({.temperature = 0}).value();
//   auto logits = s->prefill(prompt_ids);                 // the last token's logits
//   int32_t next = s->decode_step().value();              // sample, append, run one step
//   s->generate(prompt_ids, 32, on_token);                 // prefill + decode loop
//   auto lp = s->loglikelihood(continuation_ids);         // log p of each token given the rest
//
// Every call runs through Engine::run with this session alone; to batch sessions together use
// Engine::step with one SequenceWork per session. A session holds KV pages until reset() or
// destruction.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "core/sampler.h"
#include "core/status.h"
#include "kvcache/kv_cache.h"

namespace anvil {

class Engine;

struct GenerateStats {
  int32_t n_prompt = 0;         // prompt tokens computed (prefix-cache hits excluded)
  double prompt_seconds = 0;
  int32_t n_generated = 0;
  double generate_seconds = 0;
  bool stopped_at_eog = false;  // an end-of-generation token ended it
};

class Session {
 public:
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Tokens in the session (its KV), oldest first.
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int32_t n_past() const { return int32_t(tokens_.size()); }
  // Logits after the last token (n_vocab floats); empty before the first token.
  const std::vector<float>& last_logits() const { return last_logits_; }
  Sampler& sampler() { return sampler_; }

  // Appends tokens; returns the last one's logits.
  Expected<std::vector<float>> prefill(std::span<const int32_t> tokens);
  // Appends tokens; returns the logits of every one of them, [tokens.size(), n_vocab] row-major.
  Expected<std::vector<float>> eval_all(std::span<const int32_t> tokens);
  // Samples the next token from last_logits(), appends it (one step) and returns it.
  // invalid_argument before the first token. With EngineOptions::backend_sampling the step also
  // draws the token after it on the backend (the sampler's next draw, taken at once), which the
  // next decode_step() appends; any other call that appends tokens drops that draw.
  Expected<int32_t> decode_step();
  // Appends `prompt` (may be empty if the session already holds tokens), then samples and
  // appends up to n_max tokens, calling on_token(id) for each; stops early when on_token returns
  // false or at an end-of-generation token of the model's tokenizer. Every generated token is
  // left in the session, so a later turn continues after it.
  Expected<GenerateStats> generate(std::span<const int32_t> prompt, int32_t n_max,
                                   const std::function<bool(int32_t)>& on_token = {});
  // log p(tokens[i] | the session's tokens, tokens[0..i)) for every i, in natural-log units;
  // the tokens are appended. invalid_argument when the session holds no token yet (the first
  // token needs a context: e.g. feed BOS first).
  Expected<std::vector<double>> loglikelihood(std::span<const int32_t> tokens);
  // Forgets every token and gives the KV pages (full pages stay findable by the prefix cache) and
  // the recurrent-state slot back.
  void reset();

 private:
  friend class Engine;
  Session(Engine& engine, Sampler sampler) : engine_(engine), sampler_(std::move(sampler)) {}
  // Appends tokens in one Engine::run; `rows` (if given) receives every token's logits.
  Status feed(std::span<const int32_t> tokens, bool sample, std::vector<float>* rows = nullptr);

  Engine& engine_;
  Sampler sampler_;
  std::optional<kvcache::SeqId> seq_;  // created by the first step that feeds this session
  std::optional<int32_t> state_slot_;  // recurrent-state slot (hybrid models), from the first step
  std::vector<int32_t> tokens_;
  std::vector<float> last_logits_;
  std::vector<float> next_logits_;  // where Engine::step lands this session's next row; swapped in at commit
  // The token drawn on the backend after the last step (decode_step) and its request, whose
  // uniform goes back to the sampler if the token is dropped.
  std::optional<int32_t> pending_token_;
  SampleRequest pending_request_;
  void drop_pending();
};

}  // namespace anvil
