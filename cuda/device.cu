#include <algorithm>
#include <cuda_runtime.h>

#include "cuda/check.h"
#include "cuda/device.h"

namespace anvil::cuda {
namespace {

__global__ void poison_kernel(uint32_t* __restrict__ dst, size_t n_words, uint32_t pattern) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n_words; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = pattern;
}

// cudaGetDeviceCount's "nothing here" answers, which are not failures for a machine without a GPU.
bool means_no_device(cudaError_t e) {
  return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInitializationError ||
         e == cudaErrorCompatNotSupportedOnDevice || e == cudaErrorSystemDriverMismatch;
}

}  // namespace

Expected<std::vector<DeviceInfo>> list_devices() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (means_no_device(e)) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return std::vector<DeviceInfo>{};
  }
  ANVIL_CUDA_CHECK(e);
  std::vector<DeviceInfo> out;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    ANVIL_CUDA_CHECK(cudaGetDeviceProperties(&p, i));
    DeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.sm_count = p.multiProcessorCount;
    d.total_bytes = p.totalGlobalMem;
    ANVIL_CUDA_CHECK(cudaSetDevice(i));
    ANVIL_CUDA_CHECK(cudaMemGetInfo(&d.free_bytes, &d.total_bytes));
    out.push_back(std::move(d));
  }
  return out;
}

std::string unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  cudaGetLastError();
  if (e == cudaSuccess && n > 0) return "";
  if (e == cudaSuccess || e == cudaErrorNoDevice) return "no CUDA device on this machine";
  return std::string("CUDA unavailable: ") + cudaGetErrorString(e);
}

Status poison(void* device_ptr, size_t bytes, uint32_t pattern) {
  if (bytes % 4 != 0) return make_error(StatusCode::invalid_argument, "poison: ", bytes, " is not a multiple of 4");
  const size_t words = bytes / 4;
  if (words == 0) return Status::ok();
  const int threads = 256;
  const int blocks = int(std::min<size_t>((words + threads - 1) / threads, 4096));
  poison_kernel<<<blocks, threads>>>(static_cast<uint32_t*>(device_ptr), words, pattern);
  ANVIL_CUDA_CHECK_LAUNCH("poison_kernel");
  // The legacy stream does not order against backends' non-blocking streams: finish here, so
  // the poison never lands after a copy or kernel the caller enqueues next.
  ANVIL_CUDA_CHECK(cudaDeviceSynchronize());
  return Status::ok();
}

}  // namespace anvil::cuda
