// The CUDA backend: device memory, one stream, the step's arrays in device memory, and dispatch
// to the op families (cuda/ops.h). Tested op by op against the CPU backend (tests/cuda).
#pragma once

#include <memory>
#include <string>

#include "core/backend.h"
#include "core/status.h"

namespace anvil::cuda {

// Opens device `device` (an index into list_devices()). Errors: unsupported when there is no
// usable GPU (the message says why), invalid_argument for an index out of range.
Expected<std::unique_ptr<Backend>> make_backend(int device = 0);

}  // namespace anvil::cuda
