#include "vulkan/context.h"

#include <optional>

namespace anvil::vulkan {
namespace {

Expected<VkInstance> make_instance() {
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "anvil";
  app.pEngineName = "anvil";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  VkInstance inst = VK_NULL_HANDLE;
  const VkResult r = vkCreateInstance(&ci, nullptr, &inst);
  if (r != VK_SUCCESS) return vk_status(r, "vkCreateInstance");
  return inst;
}

std::optional<uint32_t> compute_queue_family(VkPhysicalDevice pd) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
  std::vector<VkQueueFamilyProperties> props(n);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, props.data());
  for (uint32_t i = 0; i < n; ++i)
    if (props[i].queueFlags & VK_QUEUE_COMPUTE_BIT) return i;
  return std::nullopt;
}

PhysicalDeviceInfo describe(VkPhysicalDevice pd, uint32_t index) {
  VkPhysicalDeviceProperties p;
  vkGetPhysicalDeviceProperties(pd, &p);
  VkPhysicalDeviceMemoryProperties m;
  vkGetPhysicalDeviceMemoryProperties(pd, &m);
  PhysicalDeviceInfo info;
  info.index = index;
  info.name = p.deviceName;
  info.api_version = p.apiVersion;
  info.type = p.deviceType;
  for (uint32_t h = 0; h < m.memoryHeapCount; ++h)
    if (m.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) info.device_local_bytes += m.memoryHeaps[h].size;
  return info;
}

Expected<std::vector<VkPhysicalDevice>> physical_devices(VkInstance inst) {
  uint32_t n = 0;
  ANVIL_VK_CHECK(vkEnumeratePhysicalDevices(inst, &n, nullptr));
  std::vector<VkPhysicalDevice> pds(n);
  ANVIL_VK_CHECK(vkEnumeratePhysicalDevices(inst, &n, pds.data()));
  pds.resize(n);
  return pds;
}

}  // namespace

Status vk_status(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return Status::ok();
  const StatusCode code = (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
                              ? StatusCode::out_of_memory
                              : (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
                                    ? StatusCode::unsupported
                                    : StatusCode::internal;
  return make_error(code, "Vulkan error ", int(r), " in ", what);
}

Expected<std::vector<PhysicalDeviceInfo>> list_devices() {
  auto inst = make_instance();
  if (!inst) return std::vector<PhysicalDeviceInfo>{};  // no loader / no driver: nothing to list
  std::vector<PhysicalDeviceInfo> out;
  auto pds = physical_devices(*inst);
  if (pds) {
    for (uint32_t i = 0; i < pds->size(); ++i)
      if (compute_queue_family((*pds)[i])) out.push_back(describe((*pds)[i], i));
  }
  vkDestroyInstance(*inst, nullptr);
  if (!pds) return pds.status();
  return out;
}

Expected<std::unique_ptr<Context>> Context::create(int index) {
  auto inst = make_instance();
  if (!inst) return inst.status();
  std::unique_ptr<Context> ctx(new Context());
  ctx->instance_ = *inst;
  auto pds = physical_devices(ctx->instance_);
  if (!pds) return pds.status();
  if (pds->empty()) return make_error(StatusCode::not_found, "no Vulkan device");

  int pick = -1;
  if (index >= 0) {
    if (size_t(index) >= pds->size())
      return make_error(StatusCode::invalid_argument, "Vulkan device ", index, " requested; ", pds->size(),
                        " present");
    pick = index;
  } else {
    for (VkPhysicalDeviceType want : {VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU,
                                      VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU, VK_PHYSICAL_DEVICE_TYPE_CPU,
                                      VK_PHYSICAL_DEVICE_TYPE_OTHER}) {
      for (size_t i = 0; i < pds->size() && pick < 0; ++i)
        if (describe((*pds)[i], uint32_t(i)).type == want && compute_queue_family((*pds)[i])) pick = int(i);
      if (pick >= 0) break;
    }
  }
  if (pick < 0) return make_error(StatusCode::not_found, "no Vulkan device with a compute queue");
  ctx->physical_ = (*pds)[size_t(pick)];
  ctx->info_ = describe(ctx->physical_, uint32_t(pick));
  auto family = compute_queue_family(ctx->physical_);
  if (!family) return make_error(StatusCode::unsupported, "Vulkan device '", ctx->info_.name, "' has no compute queue");
  ctx->queue_family_ = *family;

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = ctx->queue_family_;
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  ANVIL_VK_CHECK(vkCreateDevice(ctx->physical_, &dci, nullptr, &ctx->device_));
  vkGetDeviceQueue(ctx->device_, ctx->queue_family_, 0, &ctx->queue_);
  return ctx;
}

Context::~Context() {
  if (device_) vkDestroyDevice(device_, nullptr);
  if (instance_) vkDestroyInstance(instance_, nullptr);
}

Expected<uint32_t> Context::memory_type(uint32_t type_bits, VkMemoryPropertyFlags flags) const {
  VkPhysicalDeviceMemoryProperties m;
  vkGetPhysicalDeviceMemoryProperties(physical_, &m);
  for (uint32_t i = 0; i < m.memoryTypeCount; ++i)
    if ((type_bits & (1u << i)) && (m.memoryTypes[i].propertyFlags & flags) == flags) return i;
  return make_error(StatusCode::unsupported, "no Vulkan memory type with flags ", uint32_t(flags));
}

}  // namespace anvil::vulkan
