#include "core/backend_factory.h"

#include <cstdlib>

#include "cpu/backend.h"
#ifdef ANVIL_HAVE_CUDA
#include "cuda/backend.h"
#include "cuda/device.h"
#endif

namespace anvil {
namespace {

// "cuda" -> 0, "cuda:3" -> 3, anything else -> -1.
int cuda_index(const std::string& name) {
  if (name == "cuda") return 0;
  if (name.rfind("cuda:", 0) != 0 || name.size() == 5) return -1;
  int v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || v > 100000) return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

}  // namespace

std::vector<std::string> backend_names() {
#ifdef ANVIL_HAVE_CUDA
  return {"auto", "cpu", "cuda"};
#else
  return {"auto", "cpu"};
#endif
}

bool is_backend_name(const std::string& name) {
  return name == "auto" || name == "cpu" || cuda_index(name) >= 0;
}

Expected<std::unique_ptr<Backend>> open_backend(const std::string& name, int n_threads) {
  if (name == "cpu") return cpu::make_backend(n_threads);
  const int device = name == "auto" ? 0 : cuda_index(name);
  if (device < 0)
    return make_error(StatusCode::invalid_argument, "unknown backend '", name, "' (use auto, cpu, cuda or cuda:N)");
#ifdef ANVIL_HAVE_CUDA
  if (name == "auto") {
    if (!cuda::unavailable_reason().empty()) return cpu::make_backend(n_threads);
    auto be = cuda::make_backend(0);
    if (be) return be;
    return cpu::make_backend(n_threads);  // a GPU that cannot be opened: the reference still runs
  }
  return cuda::make_backend(device);
#else
  if (name == "auto") return cpu::make_backend(n_threads);
  return make_error(StatusCode::unsupported, "backend '", name, "' is not available: this build has no CUDA (backends: cpu)");
#endif
}

}  // namespace anvil
