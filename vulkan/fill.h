// The Vulkan path end to end on one tiny shader: a host-visible buffer, a compute pipeline
// from embedded SPIR-V, a dispatch and a readback. Used as the device self-test.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "vulkan/context.h"

namespace anvil::vulkan {

// Returns {value + 0, value + 1, ..., value + n - 1}, computed on the device.
Expected<std::vector<uint32_t>> fill_sequence(Context& ctx, uint32_t n, uint32_t value);

}  // namespace anvil::vulkan
