// The C ABI: converts Status/exceptions into anvil_status + a thread-local message.
#include <algorithm>
#include <cstring>
#include <memory>
#include <span>
#include <exception>
#include <new>
#include <string>

#include "anvil/anvil.h"
#include <mutex>
#include <vector>

#include "core/engine.h"
#include "core/session.h"
#include "core/status.h"
#include "gguf/file.h"

namespace {

thread_local std::string g_last_error;

anvil_status to_c(anvil::StatusCode c) {
  switch (c) {
    case anvil::StatusCode::ok: return ANVIL_OK;
    case anvil::StatusCode::invalid_argument: return ANVIL_ERR_INVALID_ARGUMENT;
    case anvil::StatusCode::not_found: return ANVIL_ERR_NOT_FOUND;
    case anvil::StatusCode::io_error: return ANVIL_ERR_IO;
    case anvil::StatusCode::corrupt_file: return ANVIL_ERR_CORRUPT_FILE;
    case anvil::StatusCode::unsupported: return ANVIL_ERR_UNSUPPORTED;
    case anvil::StatusCode::out_of_memory: return ANVIL_ERR_OUT_OF_MEMORY;
    case anvil::StatusCode::internal: return ANVIL_ERR_INTERNAL;
  }
  return ANVIL_ERR_INTERNAL;
}

anvil_status fail(const anvil::Status& s) {
  g_last_error = s.to_string();
  return to_c(s.code());
}

// Runs fn, mapping every exception to a status so nothing unwinds into C callers.
template <typename Fn>
anvil_status guarded(Fn&& fn) {
  g_last_error.clear();
  try {
    return fn();
  } catch (const anvil::Error& e) {
    return fail(e.status());
  } catch (const std::bad_alloc&) {
    return fail(anvil::Status(anvil::StatusCode::out_of_memory, "out of memory"));
  } catch (const std::exception& e) {
    return fail(anvil::Status(anvil::StatusCode::internal, e.what()));
  } catch (...) {
    return fail(anvil::Status(anvil::StatusCode::internal, "unknown exception"));
  }
}

void copy_str(char* dst, size_t cap, const std::string& s) {
  const size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

}  // namespace

// Handles: the engine owns a lock that serialises every call on it and its sessions, since
// anvil::Engine itself is single-threaded.
struct anvil_engine {
  std::unique_ptr<anvil::Engine> engine;
  std::mutex mu;
};
struct anvil_session {
  anvil_engine* owner;
  std::unique_ptr<anvil::Session> session;
};

namespace {

anvil_status invalid(const char* msg) { return fail({anvil::StatusCode::invalid_argument, msg}); }

anvil::Expected<const anvil::models::Tokenizer*> tokenizer_of(anvil_engine* e) {
  const anvil::models::Tokenizer* tok = e->engine->tokenizer();
  if (!tok) return anvil::make_error(anvil::StatusCode::unsupported, "model has no usable tokenizer: ",
                                     e->engine->tokenizer_error());
  return tok;
}

}  // namespace

extern "C" {

const char* anvil_version(void) { return ANVIL_VERSION_STRING; }

const char* anvil_last_error(void) { return g_last_error.c_str(); }

anvil_status anvil_model_info_read(const char* path, anvil_model_info* out) {
  return guarded([&]() -> anvil_status {
    if (!path || !out) return fail({anvil::StatusCode::invalid_argument, "path and out must not be null"});
    auto file = anvil::gguf::File::open(path);
    if (!file) return fail(file.status());
    anvil_model_info info{};
    auto arch = file->architecture();
    if (!arch) return fail(arch.status());
    copy_str(info.architecture, sizeof info.architecture, *arch);
    auto name = file->get_string("general.name");
    copy_str(info.name, sizeof info.name, name ? *name : std::string());
    info.gguf_version = file->version();
    info.n_tensors = file->tensors().size();
    for (const auto& t : file->tensors()) {
      info.n_params += t.n_elements();
      info.n_bytes += t.size;
    }
    *out = info;
    return ANVIL_OK;
  });
}

}  // extern "C"

extern "C" {

anvil_engine_params anvil_engine_default_params(void) { return {nullptr, 0, 0, 1}; }

anvil_sampling_params anvil_sampling_default_params(void) {
  const anvil::SamplingParams d;
  return {d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.seed};
}

anvil_status anvil_engine_open(const char* path, const anvil_engine_params* params, anvil_engine** out) {
  return guarded([&]() -> anvil_status {
    if (!out) return invalid("out must not be null");
    *out = nullptr;
    if (!path) return invalid("path must not be null");
    const anvil_engine_params p = params ? *params : anvil_engine_default_params();
    anvil::EngineOptions opt;
    if (p.backend) opt.backend = p.backend;
    opt.n_threads = p.n_threads;
    opt.n_ctx = p.n_ctx;
    opt.n_parallel = p.n_parallel > 0 ? p.n_parallel : 1;
    auto engine = anvil::Engine::open(path, opt);
    if (!engine) return fail(engine.status());
    auto handle = std::make_unique<anvil_engine>();
    handle->engine = std::move(*engine);
    *out = handle.release();
    return ANVIL_OK;
  });
}

void anvil_engine_free(anvil_engine* engine) { delete engine; }

int32_t anvil_engine_n_vocab(const anvil_engine* engine) { return engine ? engine->engine->n_vocab() : 0; }

anvil_status anvil_tokenize(anvil_engine* engine, const char* text, int add_special, int parse_special,
                            int32_t* tokens, int32_t capacity, int32_t* n_tokens) {
  return guarded([&]() -> anvil_status {
    if (!engine || !text || !n_tokens || (capacity > 0 && !tokens) || capacity < 0)
      return invalid("anvil_tokenize: engine, text and n_tokens must not be null; tokens needs capacity");
    std::lock_guard lock(engine->mu);
    auto tok = tokenizer_of(engine);
    if (!tok) return fail(tok.status());
    const std::vector<int32_t> ids = (*tok)->encode(text, add_special != 0, parse_special != 0);
    *n_tokens = int32_t(ids.size());
    std::copy_n(ids.begin(), std::min<size_t>(ids.size(), size_t(capacity)), tokens);
    return ANVIL_OK;
  });
}

anvil_status anvil_detokenize(anvil_engine* engine, const int32_t* tokens, int32_t n_tokens, char* text,
                              int32_t capacity, int32_t* length) {
  return guarded([&]() -> anvil_status {
    if (!engine || (n_tokens > 0 && !tokens) || n_tokens < 0 || !length || (capacity > 0 && !text) || capacity < 0)
      return invalid("anvil_detokenize: engine, tokens and length must not be null; text needs capacity");
    std::lock_guard lock(engine->mu);
    auto tok = tokenizer_of(engine);
    if (!tok) return fail(tok.status());
    const std::string s = (*tok)->decode(std::span<const int32_t>(tokens, size_t(n_tokens)));
    *length = int32_t(s.size());
    if (capacity > 0) copy_str(text, size_t(capacity), s);
    return ANVIL_OK;
  });
}

anvil_status anvil_session_new(anvil_engine* engine, const anvil_sampling_params* params, anvil_session** out) {
  return guarded([&]() -> anvil_status {
    if (!out) return invalid("out must not be null");
    *out = nullptr;
    if (!engine) return invalid("engine must not be null");
    const anvil_sampling_params p = params ? *params : anvil_sampling_default_params();
    anvil::SamplingParams sp;
    sp.temperature = p.temperature;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.min_p = p.min_p;
    sp.repeat_penalty = p.repeat_penalty;
    sp.seed = p.seed;
    std::lock_guard lock(engine->mu);
    auto session = engine->engine->new_session(sp);
    if (!session) return fail(session.status());
    *out = new anvil_session{engine, std::move(*session)};
    return ANVIL_OK;
  });
}

void anvil_session_free(anvil_session* session) {
  if (!session) return;
  std::lock_guard lock(session->owner->mu);  // the session gives its KV pages back to the engine
  session->session.reset();
  delete session;
}

anvil_status anvil_session_prefill(anvil_session* session, const int32_t* tokens, int32_t n_tokens) {
  return guarded([&]() -> anvil_status {
    if (!session || n_tokens < 0 || (n_tokens > 0 && !tokens)) return invalid("anvil_session_prefill: bad arguments");
    std::lock_guard lock(session->owner->mu);
    auto r = session->session->prefill(std::span<const int32_t>(tokens, size_t(n_tokens)));
    return r ? ANVIL_OK : fail(r.status());
  });
}

anvil_status anvil_session_decode_step(anvil_session* session, int32_t* token) {
  return guarded([&]() -> anvil_status {
    if (!session || !token) return invalid("anvil_session_decode_step: session and token must not be null");
    std::lock_guard lock(session->owner->mu);
    auto r = session->session->decode_step();
    if (!r) return fail(r.status());
    *token = *r;
    return ANVIL_OK;
  });
}

int anvil_token_is_eog(anvil_engine* engine, int32_t token) {
  if (!engine) return 0;
  std::lock_guard lock(engine->mu);
  const anvil::models::Tokenizer* tok = engine->engine->tokenizer();
  return tok && tok->is_eog(token) ? 1 : 0;
}

anvil_status anvil_session_reset(anvil_session* session) {
  return guarded([&]() -> anvil_status {
    if (!session) return invalid("session must not be null");
    std::lock_guard lock(session->owner->mu);
    session->session->reset();
    return ANVIL_OK;
  });
}

}  // extern "C"
