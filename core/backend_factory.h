// Opening a backend by name: what `--backend` and EngineOptions::backend accept.
//
//   "auto"    the first CUDA device when this build has CUDA and a GPU is usable, else "cpu"
//   "cpu"     the CPU backend (the reference)
//   "cuda"    CUDA device 0; "cuda:N" device N
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/status.h"

namespace anvil {

// Errors: invalid_argument (an unknown name), unsupported (a backend this build or machine
// lacks; the message says which backends exist and why the one asked for is unusable).
Expected<std::unique_ptr<Backend>> open_backend(const std::string& name, int n_threads);

// The names this build understands (for help texts and CLI checks): "auto", "cpu", "cuda", ...
std::vector<std::string> backend_names();

// True when `name` is one of backend_names() or "cuda:N".
bool is_backend_name(const std::string& name);

}  // namespace anvil
