#include "vulkan/fill.h"

#include <cstring>

#include "fill.spv.h"

namespace anvil::vulkan {
namespace {

// Owns the handles created on the way, so every early return cleans up.
struct Scope {
  VkDevice dev;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkShaderModule shader = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout pipeline_layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  VkCommandPool cmd_pool = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;
  ~Scope() {
    if (fence) vkDestroyFence(dev, fence, nullptr);
    if (cmd_pool) vkDestroyCommandPool(dev, cmd_pool, nullptr);
    if (pool) vkDestroyDescriptorPool(dev, pool, nullptr);
    if (pipeline) vkDestroyPipeline(dev, pipeline, nullptr);
    if (pipeline_layout) vkDestroyPipelineLayout(dev, pipeline_layout, nullptr);
    if (set_layout) vkDestroyDescriptorSetLayout(dev, set_layout, nullptr);
    if (shader) vkDestroyShaderModule(dev, shader, nullptr);
    if (buffer) vkDestroyBuffer(dev, buffer, nullptr);
    if (memory) vkFreeMemory(dev, memory, nullptr);
  }
};

}  // namespace

Expected<std::vector<uint32_t>> fill_sequence(Context& ctx, uint32_t n, uint32_t value) {
  if (n == 0) return std::vector<uint32_t>{};
  VkDevice dev = ctx.device();
  Scope s{dev};
  const VkDeviceSize bytes = VkDeviceSize(n) * 4;

  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = bytes;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
  ANVIL_VK_CHECK(vkCreateBuffer(dev, &bci, nullptr, &s.buffer));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(dev, s.buffer, &req);
  auto type = ctx.memory_type(req.memoryTypeBits,
                              VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  if (!type) return type.status();
  VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = *type;
  ANVIL_VK_CHECK(vkAllocateMemory(dev, &mai, nullptr, &s.memory));
  ANVIL_VK_CHECK(vkBindBufferMemory(dev, s.buffer, s.memory, 0));

  VkShaderModuleCreateInfo smci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  smci.codeSize = sizeof(kSpirv_fill);
  smci.pCode = kSpirv_fill;
  ANVIL_VK_CHECK(vkCreateShaderModule(dev, &smci, nullptr, &s.shader));

  VkDescriptorSetLayoutBinding binding{0, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  VkDescriptorSetLayoutCreateInfo dslci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  dslci.bindingCount = 1;
  dslci.pBindings = &binding;
  ANVIL_VK_CHECK(vkCreateDescriptorSetLayout(dev, &dslci, nullptr, &s.set_layout));
  VkPushConstantRange pcr{VK_SHADER_STAGE_COMPUTE_BIT, 0, 8};
  VkPipelineLayoutCreateInfo plci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  plci.setLayoutCount = 1;
  plci.pSetLayouts = &s.set_layout;
  plci.pushConstantRangeCount = 1;
  plci.pPushConstantRanges = &pcr;
  ANVIL_VK_CHECK(vkCreatePipelineLayout(dev, &plci, nullptr, &s.pipeline_layout));
  VkComputePipelineCreateInfo cpci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  cpci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  cpci.stage.module = s.shader;
  cpci.stage.pName = "main";
  cpci.layout = s.pipeline_layout;
  ANVIL_VK_CHECK(vkCreateComputePipelines(dev, VK_NULL_HANDLE, 1, &cpci, nullptr, &s.pipeline));

  VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1};
  VkDescriptorPoolCreateInfo dpci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  dpci.maxSets = 1;
  dpci.poolSizeCount = 1;
  dpci.pPoolSizes = &ps;
  ANVIL_VK_CHECK(vkCreateDescriptorPool(dev, &dpci, nullptr, &s.pool));
  VkDescriptorSetAllocateInfo dsai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  dsai.descriptorPool = s.pool;
  dsai.descriptorSetCount = 1;
  dsai.pSetLayouts = &s.set_layout;
  VkDescriptorSet set;
  ANVIL_VK_CHECK(vkAllocateDescriptorSets(dev, &dsai, &set));
  VkDescriptorBufferInfo dbi{s.buffer, 0, bytes};
  VkWriteDescriptorSet w{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
  w.dstSet = set;
  w.descriptorCount = 1;
  w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
  w.pBufferInfo = &dbi;
  vkUpdateDescriptorSets(dev, 1, &w, 0, nullptr);

  VkCommandPoolCreateInfo cpoolci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  cpoolci.queueFamilyIndex = ctx.queue_family();
  ANVIL_VK_CHECK(vkCreateCommandPool(dev, &cpoolci, nullptr, &s.cmd_pool));
  VkCommandBufferAllocateInfo cbai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cbai.commandPool = s.cmd_pool;
  cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cbai.commandBufferCount = 1;
  VkCommandBuffer cb;
  ANVIL_VK_CHECK(vkAllocateCommandBuffers(dev, &cbai, &cb));
  VkCommandBufferBeginInfo cbbi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  cbbi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  ANVIL_VK_CHECK(vkBeginCommandBuffer(cb, &cbbi));
  vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, s.pipeline);
  vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, s.pipeline_layout, 0, 1, &set, 0, nullptr);
  const uint32_t pc[2] = {n, value};
  vkCmdPushConstants(cb, s.pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, pc);
  vkCmdDispatch(cb, (n + 63) / 64, 1, 1);
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0,
                       nullptr);
  ANVIL_VK_CHECK(vkEndCommandBuffer(cb));

  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  ANVIL_VK_CHECK(vkCreateFence(dev, &fci, nullptr, &s.fence));
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cb;
  ANVIL_VK_CHECK(vkQueueSubmit(ctx.queue(), 1, &si, s.fence));
  ANVIL_VK_CHECK(vkWaitForFences(dev, 1, &s.fence, VK_TRUE, UINT64_MAX));

  void* mapped = nullptr;
  ANVIL_VK_CHECK(vkMapMemory(dev, s.memory, 0, bytes, 0, &mapped));
  std::vector<uint32_t> out(n);
  std::memcpy(out.data(), mapped, bytes);
  vkUnmapMemory(dev, s.memory);
  return out;
}

}  // namespace anvil::vulkan
