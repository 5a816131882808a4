// CUDA devices: what is present, and the small device utilities every op test uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace anvil::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability
  int sm_count = 0;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
};

// The visible devices; an empty list (not an error) when there is no GPU or no driver.
Expected<std::vector<DeviceInfo>> list_devices();

// Why no device is usable ("no CUDA driver", "no CUDA device"), or "" when one is. Tests print it
// when they skip.
std::string unavailable_reason();

// Fills `bytes` of device memory with a repeating 32-bit pattern (default: a quiet NaN), so a
// kernel that leaves part of its output unwritten is caught by the comparison that follows.
Status poison(void* device_ptr, size_t bytes, uint32_t pattern = 0x7fc0dead);

}  // namespace anvil::cuda
