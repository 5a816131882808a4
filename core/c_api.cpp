// The C ABI: converts Status/exceptions into anvil_status + a thread-local message.
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "anvil/anvil.h"
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
