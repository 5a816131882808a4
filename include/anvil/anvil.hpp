// anvil: C++ interface, a thin layer over the C ABI (anvil.h). Errors throw anvil::ApiError.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "anvil/anvil.h"

namespace anvil {

class ApiError : public std::runtime_error {
 public:
  ApiError(anvil_status code, const std::string& what) : std::runtime_error(what), code_(code) {}
  anvil_status code() const { return code_; }

 private:
  anvil_status code_;
};

inline std::string version() { return anvil_version(); }

struct ModelInfo {
  std::string architecture;
  std::string name;
  uint32_t gguf_version = 0;
  uint64_t n_tensors = 0;
  uint64_t n_params = 0;
  uint64_t n_bytes = 0;
};

inline ModelInfo read_model_info(const std::string& path) {
  anvil_model_info c{};
  if (anvil_status s = anvil_model_info_read(path.c_str(), &c); s != ANVIL_OK)
    throw ApiError(s, anvil_last_error());
  return {c.architecture, c.name, c.gguf_version, c.n_tensors, c.n_params, c.n_bytes};
}

namespace detail {
inline void check(anvil_status s) {
  if (s != ANVIL_OK) throw ApiError(s, anvil_last_error());
}
}  // namespace detail

class Session;

// A loaded model with its KV cache (anvil_engine). Move-only; sessions must not outlive it.
class Engine {
 public:
  explicit Engine(const std::string& path, const anvil_engine_params& params = anvil_engine_default_params()) {
    detail::check(anvil_engine_open(path.c_str(), &params, &e_));
  }
  Engine(Engine&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Engine& operator=(Engine&& o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() { anvil_engine_free(e_); }

  int32_t n_vocab() const { return anvil_engine_n_vocab(e_); }
  std::vector<int32_t> tokenize(const std::string& text, bool add_special = true, bool parse_special = false) {
    std::vector<int32_t> ids(text.size() + 8);
    int32_t n = 0;
    detail::check(anvil_tokenize(e_, text.c_str(), add_special, parse_special, ids.data(), int32_t(ids.size()), &n));
    if (size_t(n) > ids.size()) {
      ids.resize(size_t(n));
      detail::check(anvil_tokenize(e_, text.c_str(), add_special, parse_special, ids.data(), n, &n));
    }
    ids.resize(size_t(n));
    return ids;
  }
  std::string detokenize(const std::vector<int32_t>& ids) {
    int32_t len = 0;
    detail::check(anvil_detokenize(e_, ids.data(), int32_t(ids.size()), nullptr, 0, &len));
    std::string s(size_t(len) + 1, '\0');
    detail::check(anvil_detokenize(e_, ids.data(), int32_t(ids.size()), s.data(), len + 1, &len));
    s.resize(size_t(len));
    return s;
  }
  bool is_eog(int32_t token) { return anvil_token_is_eog(e_, token) != 0; }
  anvil_engine* handle() { return e_; }

 private:
  anvil_engine* e_ = nullptr;
};

// One sequence on an engine (anvil_session). Move-only.
class Session {
 public:
  explicit Session(Engine& engine, const anvil_sampling_params& params = anvil_sampling_default_params())
      : engine_(&engine) {
    detail::check(anvil_session_new(engine.handle(), &params, &s_));
  }
  Session(Session&& o) noexcept : engine_(o.engine_), s_(std::exchange(o.s_, nullptr)) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { anvil_session_free(s_); }

  void prefill(const std::vector<int32_t>& tokens) {
    detail::check(anvil_session_prefill(s_, tokens.data(), int32_t(tokens.size())));
  }
  int32_t decode_step() {
    int32_t t = -1;
    detail::check(anvil_session_decode_step(s_, &t));
    return t;
  }
  // Prefills `prompt`, then samples up to n_max tokens, calling on_token for each (return false
  // to stop); stops at an end-of-generation token. Returns the generated ids.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, int32_t n_max,
                                const std::function<bool(int32_t)>& on_token = {}) {
    std::vector<int32_t> out;
    if (!prompt.empty()) prefill(prompt);
    for (int32_t i = 0; i < n_max; ++i) {
      const int32_t t = decode_step();
      if (engine_->is_eog(t)) break;
      out.push_back(t);
      if (on_token && !on_token(t)) break;
    }
    return out;
  }
  void reset() { detail::check(anvil_session_reset(s_)); }

 private:
  Engine* engine_;
  anvil_session* s_ = nullptr;
};

}  // namespace anvil
