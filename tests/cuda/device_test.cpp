// CUDA device basics. On a machine without a GPU every test skips, printing why.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <vector>

#include "cuda/device.h"

namespace anvil::cuda {
namespace {

class CudaDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
  }
};

TEST(CudaNoGpu, ListingDevicesNeverFails) {
  auto devs = list_devices();
  ASSERT_TRUE(devs.has_value()) << devs.status().to_string();
  if (devs->empty()) std::printf("no CUDA device here: %s\n", unavailable_reason().c_str());
}

TEST_F(CudaDevice, ListsAtLeastOneDeviceWithMemory) {
  auto devs = list_devices();
  ASSERT_TRUE(devs.has_value()) << devs.status().to_string();
  ASSERT_FALSE(devs->empty());
  for (const auto& d : *devs) {
    EXPECT_GE(d.cc_major, 8) << d.name;  // anvil builds for sm_80 and newer
    EXPECT_GT(d.total_bytes, d.free_bytes / 2);
    EXPECT_GT(d.sm_count, 0);
  }
}

TEST_F(CudaDevice, PoisonFillsEveryWord) {
  const size_t words = 1'000'003;  // odd size: the grid-stride tail is exercised
  uint32_t* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, words * 4), cudaSuccess);
  ASSERT_EQ(cudaMemset(d, 0, words * 4), cudaSuccess);
  ASSERT_TRUE(poison(d, words * 4, 0xdeadbeef).is_ok());
  std::vector<uint32_t> h(words);
  ASSERT_EQ(cudaMemcpy(h.data(), d, words * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(d);
  for (size_t i = 0; i < words; ++i) ASSERT_EQ(h[i], 0xdeadbeefu) << i;
  EXPECT_EQ(poison(d, 3).code(), StatusCode::invalid_argument);
}

}  // namespace
}  // namespace anvil::cuda
