// Vulkan basics on whatever device is present (lavapipe, Mesa's CPU driver, on machines without a
// GPU). Skips, printing why, when no Vulkan driver is installed.
#include <gtest/gtest.h>

#include "vulkan/context.h"
#include "vulkan/fill.h"

namespace anvil::vulkan {
namespace {

class VulkanDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    auto devs = list_devices();
    ASSERT_TRUE(devs.has_value()) << devs.status().to_string();
    if (devs->empty()) GTEST_SKIP() << "no Vulkan driver or device on this machine";
    for (const auto& d : *devs) std::printf("vulkan device %u: %s\n", d.index, d.name.c_str());
  }
};

TEST_F(VulkanDevice, ShaderFillsASequenceOnTheDevice) {
  auto ctx = Context::create();
  ASSERT_TRUE(ctx.has_value()) << ctx.status().to_string();
  for (uint32_t n : {1u, 63u, 64u, 1000003u}) {
    auto out = fill_sequence(**ctx, n, 17);
    ASSERT_TRUE(out.has_value()) << out.status().to_string();
    ASSERT_EQ(out->size(), n);
    for (uint32_t i = 0; i < n; ++i) ASSERT_EQ((*out)[i], 17 + i) << "n=" << n << " i=" << i;
  }
}

TEST_F(VulkanDevice, BadDeviceIndexIsAClearError) {
  auto ctx = Context::create(1000);
  ASSERT_FALSE(ctx.has_value());
  EXPECT_EQ(ctx.status().code(), StatusCode::invalid_argument);
}

}  // namespace
}  // namespace anvil::vulkan
