// cuda/matmul_tuning.h: the CUDA matmul's trial (what KernelTuner measures) and the choice.
#include "cuda/matmul_tuning.h"

#include <cublas_v2.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cmath>
#include <mutex>
#include <set>
#include <vector>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/dequant.h"

namespace anvil::cuda {

namespace {

int64_t token_bucket(int64_t n) { return std::min<int64_t>(std::bit_ceil(uint64_t(std::max<int64_t>(n, 1))), 1024); }

TuningContext device_context() {
  TuningContext c;
  int dev = 0, driver = 0, runtime = 0, blas = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
    c.device = std::string("cuda: ") + prop.name + " sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
               " " + std::to_string(prop.multiProcessorCount) + " SMs";
  else
    c.device = "cuda: unknown device";
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cublasGetProperty(MAJOR_VERSION, &blas);
  int minor = 0, patch = 0;
  (void)cublasGetProperty(MINOR_VERSION, &minor);
  (void)cublasGetProperty(PATCH_LEVEL, &patch);
  c.driver = "driver " + std::to_string(driver) + " runtime " + std::to_string(runtime) + " cublas " +
             std::to_string(blas) + "." + std::to_string(minor) + "." + std::to_string(patch);
  return c;
}

// Uniform in [-sqrt(3), sqrt(3)] (unit variance), from a hash of (seed, index).
__global__ void fill_unit_variance(float* x, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t h = seed * 0x9E3779B97F4A7C15ull + i;
    h ^= h >> 30, h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27, h *= 0x94D049BB133111EBull;
    h ^= h >> 31;
    const float u = float(h >> 40) * 0x1.0p-24f;
    x[i] = (2.0f * u - 1.0f) * 1.7320508f;
  }
}

struct DeviceArray {
  void* p = nullptr;
  ~DeviceArray() {
    if (p) (void)cudaFree(p);
  }
  Status alloc(size_t bytes) {
    ANVIL_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 256)));
    return Status::ok();
  }
};

// Fresh activations against the real weights; the agreement check recomputes sampled output
// rows (start, middle, end of W) for sampled tokens in f64 on the host, from W rows dequantized
// by cuda/dequant.h (bit-identical to quant::dequantize_row).
class CudaMatmulTrial final : public TuningTrial {
 public:
  CudaMatmulTrial(Context& ctx, const Tensor& w, int64_t n) : ctx_(ctx), w_(w), n_(n) {}
  ~CudaMatmulTrial() override {
    if (start_) (void)cudaEventDestroy(start_);
    if (stop_) (void)cudaEventDestroy(stop_);
    ctx_.gemv_x = {};  // the trial's x was quantized into the GEMV's scratch
  }

  Status init() {
    ANVIL_RETURN_IF_ERROR(x_.alloc(size_t(n_) * size_t(w_.cols) * sizeof(float)));
    ANVIL_RETURN_IF_ERROR(y_.alloc(size_t(n_) * size_t(w_.rows) * sizeof(float)));
    int l2 = 0;
    ANVIL_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, ctx_.device));
    evict_bytes_ = std::max<size_t>(size_t(2) * size_t(l2), size_t(64) << 20);
    ANVIL_RETURN_IF_ERROR(evict_.alloc(evict_bytes_));
    ANVIL_CUDA_CHECK(cudaEventCreate(&start_));
    ANVIL_CUDA_CHECK(cudaEventCreate(&stop_));
    return Status::ok();
  }

  void refresh(uint64_t seed) override {
    ctx_.gemv_x = {};  // new values in the same buffer: the GEMV must quantize them again
    const size_t nx = size_t(n_) * size_t(w_.cols);
    fill_unit_variance<<<unsigned(std::min<size_t>((nx + 255) / 256, 4096)), 256, 0, ctx_.stream>>>(
        static_cast<float*>(x_.p), nx, seed);
    (void)(status_ = launch_status("fill_unit_variance"));
    if (status_.is_ok()) (void)(status_ = to_status(cudaMemsetAsync(y_.p, 0xFF, size_t(n_) * size_t(w_.rows) * 4, ctx_.stream)));
    // Evict the weights from L2: a forward pass streams every layer's weights from DRAM.
    if (status_.is_ok()) (void)(status_ = to_status(cudaMemsetAsync(evict_.p, int(seed & 0xFF), evict_bytes_, ctx_.stream)));
  }

  Status run(size_t candidate) override {
    seconds_ = -1.0;
    ANVIL_RETURN_IF_ERROR(status_);
    const MatmulCandidate& c = matmul_candidates()[candidate];
    const Tensor x = Tensor::contiguous(x_.p, DType::F32, n_, w_.cols);
    const Tensor y = Tensor::contiguous(y_.p, DType::F32, n_, w_.rows);
    ANVIL_CUDA_CHECK(cudaEventRecord(start_, ctx_.stream));
    ANVIL_RETURN_IF_ERROR(c.run(ctx_, w_, x, y));
    ANVIL_CUDA_CHECK(cudaEventRecord(stop_, ctx_.stream));
    ANVIL_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    ANVIL_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    seconds_ = double(ms) * 1e-3;
    return Status::ok();
  }

  double measured_seconds() override { return seconds_; }

  double error() override {
    auto e = compute_error();
    return e ? *e : INFINITY;
  }

 private:
  static constexpr int64_t kSampleRows = 64;
  static constexpr int64_t kSampleTokens = 16;

  Expected<double> compute_error() {
    const int64_t cols = w_.cols;
    std::vector<int64_t> tokens;
    for (int64_t k = 0; k < std::min(n_, kSampleTokens); ++k)
      tokens.push_back(n_ <= kSampleTokens ? k : k * (n_ - 1) / (kSampleTokens - 1));
    std::vector<float> x(size_t(tokens.size()) * size_t(cols));
    for (size_t k = 0; k < tokens.size(); ++k)
      ANVIL_CUDA_CHECK(cudaMemcpyAsync(x.data() + k * size_t(cols), static_cast<float*>(x_.p) + tokens[k] * cols,
                                       size_t(cols) * 4, cudaMemcpyDeviceToHost, ctx_.stream));
    std::vector<int64_t> starts = {0};
    if (w_.rows > 3 * kSampleRows) starts = {0, (w_.rows - kSampleRows) / 2, w_.rows - kSampleRows};
    DeviceArray wdev;
    ANVIL_RETURN_IF_ERROR(wdev.alloc(size_t(kSampleRows) * size_t(cols) * 4));
    double worst = 0;
    for (int64_t first : starts) {
      const int64_t rows = std::min<int64_t>(kSampleRows, w_.rows - first);
      ANVIL_RETURN_IF_ERROR(dequantize_rows(ctx_, w_, nullptr, first, rows, DType::F32, wdev.p, size_t(cols) * 4));
      std::vector<float> wrows(size_t(rows) * size_t(cols)), y(tokens.size() * size_t(rows));
      ANVIL_CUDA_CHECK(cudaMemcpyAsync(wrows.data(), wdev.p, wrows.size() * 4, cudaMemcpyDeviceToHost, ctx_.stream));
      for (size_t k = 0; k < tokens.size(); ++k)
        ANVIL_CUDA_CHECK(cudaMemcpyAsync(y.data() + k * size_t(rows),
                                         static_cast<float*>(y_.p) + tokens[k] * w_.rows + first, size_t(rows) * 4,
                                         cudaMemcpyDeviceToHost, ctx_.stream));
      ANVIL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
      std::vector<float> ref(y.size());
      for (size_t k = 0; k < tokens.size(); ++k)
        for (int64_t r = 0; r < rows; ++r) {
          double acc = 0;
          const float* xr = x.data() + k * size_t(cols);
          const float* wr = wrows.data() + size_t(r) * size_t(cols);
          for (int64_t i = 0; i < cols; ++i) acc += double(xr[i]) * double(wr[i]);
          ref[k * size_t(rows) + size_t(r)] = float(acc);
        }
      worst = std::max(worst, max_row_relative_error(y.data(), size_t(rows), ref.data(), size_t(rows),
                                                     int64_t(tokens.size()), rows));
    }
    return worst;
  }

  static Status to_status(cudaError_t e) {
    if (e == cudaSuccess) return Status::ok();
    return make_error(StatusCode::internal, "matmul tuning: ", cudaGetErrorString(e));
  }
  static Status launch_status(const char* what) {
    const cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return Status::ok();
    return make_error(StatusCode::internal, "matmul tuning: ", what, ": ", cudaGetErrorString(e));
  }

  Context& ctx_;
  const Tensor w_;
  const int64_t n_;
  DeviceArray x_, y_, evict_;
  size_t evict_bytes_ = 0;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  Status status_;
  double seconds_ = -1.0;
};

// Fails every run, so the tuner falls back to the heuristic without caching a measurement
// (used when the trial's buffers cannot be allocated).
class FailedTrial final : public TuningTrial {
 public:
  explicit FailedTrial(Status s) : status_(std::move(s)) {}
  void refresh(uint64_t) override {}
  Status run(size_t) override { return status_; }
  double error() override { return INFINITY; }

 private:
  Status status_;
};

// ANVIL_CUDA_TUNE=1 (or on / true / yes) turns measurement on; see cuda/matmul_tuning.h.
bool cuda_tuning_enabled() {
  const char* v = std::getenv("ANVIL_CUDA_TUNE");
  if (!v) return false;
  const std::string s(v);
  return s == "1" || s == "on" || s == "true" || s == "yes";
}

bool capturing(cudaStream_t s) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  return cudaStreamIsCapturing(s, &st) == cudaSuccess && st != cudaStreamCaptureStatusNone;
}

}  // namespace

KernelTuner& matmul_tuner() {
  static KernelTuner* tuner = new KernelTuner("matmul", device_context);
  return *tuner;
}

std::string matmul_tuning_key(const Tensor& w, int64_t n) {
  return std::string(dtype_name(w.type)) + " " + std::to_string(w.rows) + "x" + std::to_string(w.cols) +
         " n<=" + std::to_string(token_bucket(n)) + (n > 1024 ? "+" : "");
}

const MatmulCandidate* heuristic_candidate(const Tensor& w, int64_t n) {
  for (const MatmulCandidate& c : matmul_candidates())
    if (c.supports(w, n)) return &c;
  return nullptr;
}

const MatmulCandidate* tuned_candidate(Context& ctx, const Tensor& w, int64_t n) {
  const auto all = matmul_candidates();
  std::vector<KernelTuner::Entry> entries;
  std::vector<size_t> supported;
  for (size_t i = 0; i < all.size(); ++i) {
    entries.push_back({all[i].name, all[i].tolerance});
    if (all[i].supports(w, n)) supported.push_back(i);
  }
  if (supported.empty()) return nullptr;
  if (supported.size() == 1) return &all[supported[0]];
  const size_t fallback = size_t(heuristic_candidate(w, n) - all.data());
  if (!cuda_tuning_enabled()) {
    const std::string forced = forced_kernel("matmul");
    for (size_t i : supported)
      if (all[i].name == forced) return &all[i];
    return &all[fallback];
  }
  const std::string key = matmul_tuning_key(w, n);

  // Shapes this process has asked the tuner about: under stream capture only those (whose choice
  // the tuner has in memory) go through it, so nothing is measured inside a capture.
  static std::mutex mu;
  static std::set<std::string> asked;
  {
    std::lock_guard lk(mu);
    if (capturing(ctx.stream) && !asked.count(key)) return &all[fallback];
    asked.insert(key);
  }
  const size_t chosen = matmul_tuner().choose(key, entries, supported, fallback, [&]() -> std::unique_ptr<TuningTrial> {
    auto trial = std::make_unique<CudaMatmulTrial>(ctx, w, token_bucket(n));
    if (Status st = trial->init(); !st.is_ok()) return std::make_unique<FailedTrial>(st);
    return trial;
  });
  return &all[chosen];
}

}  // namespace anvil::cuda
