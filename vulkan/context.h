// Vulkan instance, physical-device choice, logical device with one compute queue.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace anvil::vulkan {

struct PhysicalDeviceInfo {
  uint32_t index = 0;
  std::string name;
  uint32_t api_version = 0;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  uint64_t device_local_bytes = 0;
  bool is_cpu() const { return type == VK_PHYSICAL_DEVICE_TYPE_CPU; }
};

// Devices with a compute queue; empty (not an error) when there is no loader or driver.
Expected<std::vector<PhysicalDeviceInfo>> list_devices();

class Context {
 public:
  // index < 0: the first discrete GPU, else the first integrated GPU, else the first device.
  static Expected<std::unique_ptr<Context>> create(int index = -1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const PhysicalDeviceInfo& info() const { return info_; }
  VkDevice device() const { return device_; }
  VkQueue queue() const { return queue_; }
  uint32_t queue_family() const { return queue_family_; }
  VkPhysicalDevice physical_device() const { return physical_; }
  // A memory type index with all of `flags` among the allowed `type_bits`.
  Expected<uint32_t> memory_type(uint32_t type_bits, VkMemoryPropertyFlags flags) const;

 private:
  Context() = default;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  PhysicalDeviceInfo info_;
};

Status vk_status(VkResult r, const char* what);

}  // namespace anvil::vulkan

#define ANVIL_VK_CHECK(call) ANVIL_RETURN_IF_ERROR(::anvil::vulkan::vk_status((call), #call))
