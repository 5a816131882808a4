// The CUDA op tests' harness: the same op on the CPU backend (the oracle) and the CUDA backend,
// on the same fresh random inputs, outputs poisoned (NaN) before each run, results compared as
// a normwise relative error. On a machine without a GPU, ANVIL_REQUIRE_CUDA() skips the test
// and prints why.
//
//   TwinBackends be = ANVIL_REQUIRE_CUDA();
//   Twin x = be.tensor(rows, cols, random_values(rng, rows * cols));
//   Twin y = be.poisoned(rows, cols);
//   ASSERT_OK(be.cpu->rms_norm(x.cpu, &w.cpu, 1e-6f, y.cpu));
//   ASSERT_OK(be.gpu->rms_norm(x.gpu, &w.gpu, 1e-6f, y.gpu));
//   EXPECT_LE(be.rel_error(y), 1e-5);
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "cpu/backend.h"
#include "cuda/backend.h"
#include "cuda/device.h"
#include "cuda/ops.h"

namespace anvil::test_cuda {

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const ::anvil::Status _st = (expr);                      \
    ASSERT_TRUE(_st.is_ok()) << #expr << ": " << _st.to_string(); \
  } while (0)

// Uniform in +-[lo, hi): random sign, magnitude bounded away from zero.
inline std::vector<float> random_values(std::mt19937& rng, size_t n, float lo = 0.05f, float hi = 2.0f) {
  std::uniform_real_distribution<float> mag(lo, hi);
  std::bernoulli_distribution neg(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = neg(rng) ? -mag(rng) : mag(rng);
  return v;
}

// One F32 tensor on each backend (same shape; same contents unless poisoned).
struct Twin {
  std::shared_ptr<DeviceBuffer> cpu_mem, gpu_mem;
  Tensor cpu, gpu;
};

// One weight on each backend; `bytes` keeps the CPU's zero-copy view alive.
struct TwinWeight {
  std::vector<uint8_t> bytes;
  Weight cpu, gpu;
};

struct TwinSteps {
  DeviceStep cpu, gpu;
};

inline std::vector<float> read(Backend& be, const Tensor& t) {
  std::vector<float> out(size_t(t.rows * t.cols));
  const Status st = be.copy_to_host(out.data(), t);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

// max|a - ref| / max|ref| over all elements; infinity when a holds a NaN or inf (an unwritten,
// still-poisoned element) or the sizes differ.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    max_err = std::max(max_err, std::abs(double(a[i]) - double(ref[i])));
    max_ref = std::max(max_ref, std::abs(double(ref[i])));
  }
  return max_ref > 0 ? max_err / max_ref : max_err;
}

class TwinBackends {
 public:
  std::unique_ptr<Backend> cpu, gpu;

  // rows x cols F32 with `values` (row-major, rows * cols of them).
  Twin tensor(int64_t rows, int64_t cols, const std::vector<float>& values) {
    Twin t = poisoned(rows, cols);
    EXPECT_EQ(values.size(), size_t(rows * cols));
    EXPECT_TRUE(cpu->copy_from_host(t.cpu, values.data()).is_ok());
    EXPECT_TRUE(gpu->copy_from_host(t.gpu, values.data()).is_ok());
    return t;
  }
  // rows x cols of `type` (F32 or F16 here; F16 values are rounded from `values`).
  Twin typed(DType type, int64_t rows, int64_t cols) {
    Twin t;
    const size_t bytes = std::max<size_t>(size_t(rows) * *row_bytes(type, uint64_t(cols)), 4);
    t.cpu_mem = cpu->alloc(bytes).value();
    t.gpu_mem = gpu->alloc(bytes).value();
    t.cpu = t.cpu_mem->as_tensor(type, rows, cols);
    t.gpu = t.gpu_mem->as_tensor(type, rows, cols);
    poison(t);
    return t;
  }
  // NaN-filled, so an element the op forgets to write fails the comparison.
  Twin poisoned(int64_t rows, int64_t cols) { return typed(DType::F32, rows, cols); }
  void poison(const Twin& t) {
    const size_t bytes = t.cpu_mem->size() / 4 * 4;
    std::fill_n(static_cast<uint32_t*>(t.cpu_mem->data()), bytes / 4, 0x7fc0deadu);
    EXPECT_TRUE(cuda::poison(t.gpu_mem->data(), t.gpu_mem->size() / 4 * 4).is_ok());
  }

  // A weight from raw GGUF-layout bytes (any type), uploaded to both backends.
  TwinWeight weight(const std::string& name, DType type, int64_t rows, int64_t cols, std::vector<uint8_t> bytes) {
    TwinWeight w;
    w.bytes = std::move(bytes);
    w.cpu = cpu->upload(name, type, rows, cols, w.bytes.data()).value();
    w.gpu = gpu->upload(name, type, rows, cols, w.bytes.data()).value();
    return w;
  }
  TwinWeight weight_f32(const std::string& name, int64_t rows, int64_t cols, const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(float));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return weight(name, DType::F32, rows, cols, std::move(bytes));
  }

  TwinSteps step(const StepBatch& batch) {
    TwinSteps s;
    s.cpu = cpu->prepare_step(batch).value();
    s.gpu = gpu->prepare_step(batch).value();
    return s;
  }

  // Error of the GPU's result against the CPU's, both read back after the ops ran.
  double rel_error(const Twin& t) { return test_cuda::rel_error(read(*gpu, t.gpu), read(*cpu, t.cpu)); }
};

// Sets an environment variable (value null: unsets it) for a scope, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// An op context of the test's own (stream + cuBLAS handle) for the functions that take one
// (matmul_with, dequantize_rows, the matmul tuner). Tensors still come from the backends; the
// backend's copies synchronize their stream, and tests sync() this one before reading results.
class OwnContext {
 public:
  OwnContext() {
    ok_ = cudaGetDevice(&ctx.device) == cudaSuccess &&
          cudaDeviceGetAttribute(&ctx.sm_count, cudaDevAttrMultiProcessorCount, ctx.device) == cudaSuccess &&
          cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking) == cudaSuccess &&
          cublasCreate(&ctx.cublas) == CUBLAS_STATUS_SUCCESS && cublasSetStream(ctx.cublas, ctx.stream) == CUBLAS_STATUS_SUCCESS;
  }
  bool ok() const { return ok_; }
  void sync() { EXPECT_EQ(cudaStreamSynchronize(ctx.stream), cudaSuccess); }
  cuda::Context ctx;

 private:
  bool ok_ = false;
};

// Both backends, or a skip with the reason when this machine has no usable GPU.
#define ANVIL_REQUIRE_CUDA()                                                       \
  ([]() {                                                                          \
    ::anvil::test_cuda::TwinBackends b;                                            \
    b.cpu = ::anvil::cpu::make_backend(2);                                         \
    auto g = ::anvil::cuda::make_backend(0);                                       \
    if (g) b.gpu = std::move(*g);                                                  \
    return b;                                                                      \
  }());                                                                            \
  if (const std::string _why = ::anvil::cuda::unavailable_reason(); !_why.empty()) \
    GTEST_SKIP() << "no GPU: " << _why;

}  // namespace anvil::test_cuda
