// anvil: C++ interface, a thin layer over the C ABI (anvil.h). Errors throw anvil::ApiError.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

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

}  // namespace anvil
