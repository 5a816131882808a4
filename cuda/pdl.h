// Programmatic dependent launch (PDL), host side: launch_pdl enqueues a kernel that may begin
// while the previous kernel on the stream finishes, so its set-up (block scheduling, its first
// weight loads) overlaps the predecessor's tail instead of following it. The kernel must follow
// cuda/pdl.cuh's rules (pdl_wait before reading earlier results or writing). Decode runs ~10
// kernels per layer, most of them a few microseconds long, so the gap between kernels is a large
// part of a token (bench/NOTES.md).
//
// On when the device is sm_90+ and ANVIL_CUDA_PDL is not "0"; otherwise launch_pdl is a plain
// launch. CUDA graph capture keeps the programmatic edges.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "core/status.h"
#include "cuda/check.h"

namespace anvil::cuda {

// Whether launches on the current device use PDL (cached per device; reads the environment once).
bool pdl_enabled();

template <class... Params, class... Args>
Status launch_pdl(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                  cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem_bytes;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cuda_status(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), name, __FILE__, __LINE__);
}

}  // namespace anvil::cuda
