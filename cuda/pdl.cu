// pdl_enabled (cuda/pdl.h): whether launch_pdl asks for programmatic dependent launch.
#include "cuda/pdl.h"

#include <atomic>

#include "cuda/env_switch.h"

namespace anvil::cuda {

bool pdl_enabled() {
  static const bool allowed = env_switch_on("ANVIL_CUDA_PDL");
  if (!allowed) return false;
  // Per device: 0 unknown, 1 off, 2 on (static storage starts zeroed).
  static std::atomic<int> cached[64];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return false;
  int on = cached[dev].load(std::memory_order_relaxed);
  if (on == 0) {
    int major = 0;
    on = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 ? 2 : 1;
    cached[dev].store(on, std::memory_order_relaxed);
  }
  return on == 2;
}

}  // namespace anvil::cuda
