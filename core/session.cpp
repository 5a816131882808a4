#include "core/session.h"

#include <chrono>

#include "core/engine.h"

namespace anvil {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Session::~Session() { reset(); }

void Session::reset() {
  if (seq_) {
    Status s = engine_.kv_->free_sequence(*seq_);
    (void)s;  // only not_found, which cannot happen for a sequence this session created
  }
  seq_.reset();
  if (state_slot_) engine_.release_state_slot(*state_slot_);
  state_slot_.reset();
  tokens_.clear();
  last_logits_.clear();
  drop_pending();
}

void Session::drop_pending() {
  if (pending_token_) sampler_.unget(pending_request_);
  pending_token_.reset();
}

Status Session::feed(std::span<const int32_t> tokens, bool sample, std::vector<float>* rows) {
  drop_pending();
  std::vector<SequenceWork> work(1);
  work[0].session = this;
  work[0].tokens.assign(tokens.begin(), tokens.end());
  work[0].logits_all = rows != nullptr;
  work[0].sample = sample;
  ANVIL_RETURN_IF_ERROR(engine_.run(work));
  if (rows) *rows = std::move(work[0].logits);
  return Status::ok();
}

Expected<std::vector<float>> Session::prefill(std::span<const int32_t> tokens) {
  if (tokens.empty()) return make_error(StatusCode::invalid_argument, "prefill: no tokens");
  ANVIL_RETURN_IF_ERROR(feed(tokens, false));
  return last_logits_;
}

Expected<std::vector<float>> Session::eval_all(std::span<const int32_t> tokens) {
  std::vector<float> rows;
  ANVIL_RETURN_IF_ERROR(feed(tokens, false, &rows));
  return rows;
}

Expected<int32_t> Session::decode_step() {
  if (last_logits_.empty())
    return make_error(StatusCode::invalid_argument, "decode_step: the session holds no token yet (prefill first)");
  int32_t tok;
  std::optional<SampleRequest> used;  // the pending draw this call appends (its uniform stays consumed)
  if (pending_token_) {
    tok = *pending_token_;
    used = std::move(pending_request_);
    pending_token_.reset();
  } else {
    auto id = sampler_.sample(last_logits_, tokens_);
    if (!id) return id.status();
    tok = *id;
  }
  // No copy of the new logits: they are in last_logits_ for the next draw.
  if (Status st = feed(std::span(&tok, 1), engine_.options().backend_sampling.value_or(false)); !st.is_ok()) {
    if (used) {  // nothing was appended: the draw is still the next token
      pending_token_ = tok;
      pending_request_ = std::move(*used);
    }
    return st;
  }
  return tok;
}

Expected<GenerateStats> Session::generate(std::span<const int32_t> prompt, int32_t n_max,
                                          const std::function<bool(int32_t)>& on_token) {
  GenerateStats st;
  if (prompt.empty() && last_logits_.empty())
    return make_error(StatusCode::invalid_argument, "generate: empty prompt and an empty session");
  if (!prompt.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t hits_before = engine_.kv_stats().n_prefix_hit_tokens;
    auto logits = prefill(prompt);
    if (!logits) return logits.status();
    st.prompt_seconds = seconds_since(t0);
    st.n_prompt = int32_t(prompt.size() - size_t(engine_.kv_stats().n_prefix_hit_tokens - hits_before));
  }
  const models::Tokenizer* tok = engine_.tokenizer();
  const auto t0 = std::chrono::steady_clock::now();
  for (int32_t i = 0; i < n_max; ++i) {
    auto id = decode_step();
    if (!id) return id.status();
    ++st.n_generated;
    const bool go_on = on_token ? on_token(*id) : true;
    if (tok && tok->is_eog(*id)) {
      st.stopped_at_eog = true;
      break;
    }
    if (!go_on) break;
  }
  st.generate_seconds = seconds_since(t0);
  return st;
}

Expected<std::vector<double>> Session::loglikelihood(std::span<const int32_t> tokens) {
  if (last_logits_.empty())
    return make_error(StatusCode::invalid_argument,
                      "loglikelihood: the session holds no token yet; the first token needs a context (feed BOS first)");
  if (tokens.empty()) return std::vector<double>{};
  std::vector<float> prev = last_logits_;
  auto rows = eval_all(tokens);
  if (!rows) return rows.status();
  const size_t V = size_t(engine_.n_vocab());
  std::vector<double> out(tokens.size());
  out[0] = log_prob(prev, tokens[0]);
  for (size_t i = 1; i < tokens.size(); ++i)
    out[i] = log_prob(std::span<const float>(rows->data() + (i - 1) * V, V), tokens[i]);
  return out;
}

}  // namespace anvil
