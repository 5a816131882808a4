// The CUDA backend's A/B switches (ANVIL_CUDA_*), read from the environment. Callers keep the
// answer in a function-local static, so a switch is read once per process.
#pragma once

#include <cstdlib>
#include <cstring>

namespace anvil::cuda {

// On unless the variable is "0".
inline bool env_switch_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::strcmp(v, "0") == 0);
}

// Off unless the variable is "1".
inline bool env_switch_set(const char* name) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, "1") == 0;
}

}  // namespace anvil::cuda
