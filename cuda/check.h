// CUDA error checks: every runtime call and every launch goes through one of these, so a
// failure surfaces as a Status naming the call, file and line instead of a later crash.
#pragma once

#include <cuda_runtime.h>

#include "core/status.h"

namespace anvil::cuda {

inline Status cuda_status(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return Status::ok();
  const StatusCode code = err == cudaErrorMemoryAllocation ? StatusCode::out_of_memory : StatusCode::internal;
  return make_error(code, "CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in ", what,
                    " at ", file, ":", line);
}

}  // namespace anvil::cuda

#define ANVIL_CUDA_CHECK(call) ANVIL_RETURN_IF_ERROR(::anvil::cuda::cuda_status((call), #call, __FILE__, __LINE__))
// After a <<<...>>> launch: launch-configuration errors show up in cudaGetLastError.
#define ANVIL_CUDA_CHECK_LAUNCH(name) \
  ANVIL_RETURN_IF_ERROR(::anvil::cuda::cuda_status(cudaGetLastError(), "launch of " name, __FILE__, __LINE__))
