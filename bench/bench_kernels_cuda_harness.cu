// bench-kernels --backend cuda: the shared harness declared in bench_kernels_cuda_harness.h, and
// what only it uses (the fill and spin kernels, the events and the timing loops behind
// time_stream / time_backend).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_kernels_cuda_harness.h"
#include "core/backend.h"
#include "core/dtype.h"
#include "core/step_batch.h"
#include "core/tensor.h"
#include "cuda/check.h"
#include "cuda/ops.h"

namespace anvil::bench::cuda_harness {

namespace {

constexpr size_t kRotateBytes = size_t(256) << 20;  // weight / KV / state copies per row, in all
constexpr int kMaxCopies = 64;
constexpr double kMatmulTargetUs = 300;    // work per timed graph replay (matmul, events)
constexpr int kMaxCalls = 256;
constexpr double kBackendTargetUs = 2000;  // work per timed run_step (host clock: ~1% latency)
constexpr int kMaxBackendCalls = 512;

}  // namespace

std::string g_fatal;

// ---------------------------------------------------------------------------- helpers
Status cuda_err(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::ok();
  return make_error(StatusCode::internal, what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

void check_device_after(const std::string& row) {
  cudaGetLastError();
  if (cudaDeviceSynchronize() == cudaSuccess) return;
  cudaGetLastError();
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess && g_fatal.empty())
    g_fatal = std::string("CUDA context lost (") + cudaGetErrorName(e) + ") after row '" + row + "'";
}

int copies_for(double bytes_per_call) {
  if (bytes_per_call <= 0) return 1;
  return int(std::clamp<double>(std::ceil(double(kRotateBytes) / bytes_per_call), 1, kMaxCopies));
}

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// ---------------------------------------------------------------------------- fill kernels
namespace {

__device__ __forceinline__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9e3779b97f4a7c15ull + (uint64_t(seed) << 32 | seed);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return uint32_t((z ^ (z >> 31)) >> 16);
}
__device__ __forceinline__ float unit(uint64_t i, uint32_t seed) {  // [0, 1)
  return float(hash32(i, seed) >> 8) * (1.0f / 16777216.0f);
}

constexpr unsigned kFillBlocks = 2048, kFillThreads = 256;

__global__ void fill_words_kernel(uint32_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = hash32(i, seed);
}
__global__ void fill_f32_kernel(float* p, size_t n, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * unit(i, seed);
}
__global__ void fill_f16_kernel(__half* p, size_t n, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __float2half(lo + (hi - lo) * unit(i, seed));
}
__global__ void fill_bf16_kernel(__nv_bfloat16* p, size_t n, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16(lo + (hi - lo) * unit(i, seed));
}
// Random bytes make valid K-quant / Q8_0 blocks once each block's f16 d (and dmin) is a small
// positive number: written here, byte by byte (Q6_K blocks are only 2-byte aligned).
__global__ void fix_block_scales_kernel(uint8_t* w, size_t n_blocks, int block_bytes, int d_offset, int dmin_offset,
                                        uint32_t seed) {
  for (size_t b = blockIdx.x * size_t(blockDim.x) + threadIdx.x; b < n_blocks; b += size_t(gridDim.x) * blockDim.x) {
    uint8_t* blk = w + b * size_t(block_bytes);
    const __half d = __float2half(0.001f + 0.01f * unit(2 * b, seed));
    const unsigned short dbits = __half_as_ushort(d);
    blk[d_offset] = uint8_t(dbits & 0xff);
    blk[d_offset + 1] = uint8_t(dbits >> 8);
    if (dmin_offset >= 0) {
      const unsigned short mbits = __half_as_ushort(__float2half(0.001f + 0.01f * unit(2 * b + 1, seed)));
      blk[dmin_offset] = uint8_t(mbits & 0xff);
      blk[dmin_offset + 1] = uint8_t(mbits >> 8);
    }
  }
}

__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

}  // namespace

Status fill_f32(float* p, size_t n, float lo, float hi, uint32_t seed, cudaStream_t s) {
  fill_f32_kernel<<<kFillBlocks, kFillThreads, 0, s>>>(p, n, lo, hi, seed);
  BENCH_CUDA(cudaGetLastError());
  return Status::ok();
}
Status fill_f16(void* p, size_t n, float lo, float hi, uint32_t seed, cudaStream_t s) {
  fill_f16_kernel<<<kFillBlocks, kFillThreads, 0, s>>>(static_cast<__half*>(p), n, lo, hi, seed);
  BENCH_CUDA(cudaGetLastError());
  return Status::ok();
}

Status fill_quantized(DType type, void* p, size_t bytes, uint32_t seed, cudaStream_t s) {
  int block_bytes, d_off, dmin_off = -1;
  switch (type) {
    case DType::Q4_K: block_bytes = 144, d_off = 0, dmin_off = 2; break;
    case DType::Q5_K: block_bytes = 176, d_off = 0, dmin_off = 2; break;
    case DType::Q6_K: block_bytes = 210, d_off = 208; break;
    case DType::Q8_0: block_bytes = 34, d_off = 0; break;
    default: return make_error(StatusCode::unsupported, "bench: no random-block filler for ", dtype_name(type));
  }
  fill_words_kernel<<<kFillBlocks, kFillThreads, 0, s>>>(static_cast<uint32_t*>(p), bytes / 4, seed);
  BENCH_CUDA(cudaGetLastError());
  fix_block_scales_kernel<<<kFillBlocks, kFillThreads, 0, s>>>(static_cast<uint8_t*>(p), bytes / size_t(block_bytes),
                                                               block_bytes, d_off, dmin_off, seed ^ 0x5bd1e995u);
  BENCH_CUDA(cudaGetLastError());
  return Status::ok();
}

// ---------------------------------------------------------------------------- ceilings
namespace {

struct Events {
  std::vector<cudaEvent_t> ev;
  explicit Events(size_t n) : ev(n, nullptr) {
    for (auto& e : ev)
      if (cudaEventCreate(&e) != cudaSuccess) e = nullptr;
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  ~Events() {
    for (auto& e : ev)
      if (e) cudaEventDestroy(e);
  }
  Status check() const {
    for (cudaEvent_t e : ev)
      if (!e) return make_error(StatusCode::internal, "cudaEventCreate failed");
    return Status::ok();
  }
  // Milliseconds between events a and b (both recorded and complete).
  Expected<double> ms(size_t a, size_t b) const {
    float v = 0;
    BENCH_CUDA(cudaEventElapsedTime(&v, ev[a], ev[b]));
    return double(v);
  }
};

// Median milliseconds of `op` (enqueued on `s`) over 20 runs after 3 warm-up runs.
Expected<double> median_ms_of(cudaStream_t s, const std::function<Status()>& op) {
  Events e(2);
  ANVIL_RETURN_IF_ERROR(e.check());
  std::vector<double> t;
  for (int i = 0; i < 23; ++i) {
    BENCH_CUDA(cudaEventRecord(e.ev[0], s));
    ANVIL_RETURN_IF_ERROR(op());
    BENCH_CUDA(cudaEventRecord(e.ev[1], s));
    BENCH_CUDA(cudaEventSynchronize(e.ev[1]));
    auto ms = e.ms(0, 1);
    if (!ms) return ms.status();
    if (i >= 3) t.push_back(*ms);
  }
  return median(t);
}

}  // namespace

Expected<double> measure_copy_gbps(cudaStream_t s) {
  const size_t bytes = size_t(1) << 30;
  DevBuf a, b;
  ANVIL_RETURN_IF_ERROR(a.alloc(bytes));
  ANVIL_RETURN_IF_ERROR(b.alloc(bytes));
  fill_words_kernel<<<kFillBlocks, kFillThreads, 0, s>>>(a.as<uint32_t>(), bytes / 4, 7);
  BENCH_CUDA(cudaGetLastError());
  auto ms = median_ms_of(s, [&]() -> Status {
    BENCH_CUDA(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, s));
    return Status::ok();
  });
  if (!ms) return ms.status();
  return 2.0 * double(bytes) / (*ms * 1e-3) / 1e9;
}

Expected<double> measure_bf16_tflops(cuda::Context& ctx) {
  const int n = 8192;
  const size_t elems = size_t(n) * n;
  DevBuf a, b, c;
  ANVIL_RETURN_IF_ERROR(a.alloc(elems * 2));
  ANVIL_RETURN_IF_ERROR(b.alloc(elems * 2));
  ANVIL_RETURN_IF_ERROR(c.alloc(elems * 2));
  fill_bf16_kernel<<<kFillBlocks, kFillThreads, 0, ctx.stream>>>(a.as<__nv_bfloat16>(), elems, -1.f, 1.f, 11);
  fill_bf16_kernel<<<kFillBlocks, kFillThreads, 0, ctx.stream>>>(b.as<__nv_bfloat16>(), elems, -1.f, 1.f, 12);
  BENCH_CUDA(cudaGetLastError());
  ANVIL_CUBLAS_CHECK(cublasSetPointerMode(ctx.cublas, CUBLAS_POINTER_MODE_HOST));
  ANVIL_CUBLAS_CHECK(cublasSetMathMode(ctx.cublas, CUBLAS_DEFAULT_MATH));
  const float alpha = 1.f, beta = 0.f;
  auto ms = median_ms_of(ctx.stream, [&]() -> Status {
    ANVIL_CUBLAS_CHECK(cublasGemmEx(ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.p, CUDA_R_16BF, n, b.p,
                                    CUDA_R_16BF, n, &beta, c.p, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
    return Status::ok();
  });
  if (!ms) return ms.status();
  return 2.0 * double(n) * n * n / (*ms * 1e-3) / 1e12;
}

// ---------------------------------------------------------------------------- timing
int g_clock_khz = 1500000;  // SM clock, for the spin kernel's cycle count

namespace {

// Captures `calls` launches into an executable graph; null when they cannot be captured (a launch
// failed or did something capture forbids), with the stream back to normal either way.
cudaGraphExec_t capture(cudaStream_t stream, int calls, const std::function<Status(int)>& launch) {
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  bool ok = true;
  for (int i = 0; i < calls && ok; ++i) ok = launch(i).is_ok();
  cudaGraph_t graph = nullptr;
  ok = cudaStreamEndCapture(stream, &graph) == cudaSuccess && ok && graph;
  cudaGraphExec_t exec = nullptr;
  if (ok && cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) exec = nullptr;
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  return exec;
}

Status time_stream_into(Timed& r, cudaStream_t stream, int copies, int samples,
                        const std::function<Status(int)>& launch) {
  for (int i = 0; i < copies; ++i) ANVIL_RETURN_IF_ERROR(launch(i));
  BENCH_CUDA(cudaStreamSynchronize(stream));

  Events est(2);
  ANVIL_RETURN_IF_ERROR(est.check());
  BENCH_CUDA(cudaEventRecord(est.ev[0], stream));
  ANVIL_RETURN_IF_ERROR(launch(0));
  BENCH_CUDA(cudaEventRecord(est.ev[1], stream));
  BENCH_CUDA(cudaEventSynchronize(est.ev[1]));
  auto est_ms = est.ms(0, 1);
  if (!est_ms) return est_ms.status();
  const double est_us = std::max(1000.0 * *est_ms, 0.5);
  r.calls = int(std::clamp<double>(std::ceil(kMatmulTargetUs / est_us), 1, kMaxCalls));
  r.calls = std::max(r.calls, copies);

  Events ev(2 * size_t(samples));
  ANVIL_RETURN_IF_ERROR(ev.check());
  if (cudaGraphExec_t exec = capture(stream, r.calls, launch)) {
    r.graph = true;
    const auto run = [&]() -> Status {
      BENCH_CUDA(cudaGraphLaunch(exec, stream));
      BENCH_CUDA(cudaStreamSynchronize(stream));
      for (int k = 0; k < samples; ++k) {
        BENCH_CUDA(cudaEventRecord(ev.ev[2 * size_t(k)], stream));
        BENCH_CUDA(cudaGraphLaunch(exec, stream));
        BENCH_CUDA(cudaEventRecord(ev.ev[2 * size_t(k) + 1], stream));
      }
      BENCH_CUDA(cudaStreamSynchronize(stream));
      return Status::ok();
    };
    const Status st = run();
    cudaGraphExecDestroy(exec);
    ANVIL_RETURN_IF_ERROR(st);
  } else {
    // At most ~15 us of host enqueue per call: the spin kernel keeps the GPU busy meanwhile, so
    // the events time the calls back to back.
    const double spin_us = std::min(20000.0, 15.0 * r.calls + 50.0);
    const long long cycles = (long long)(spin_us * 1e-3 * g_clock_khz);
    int rep = 0;
    for (int k = 0; k < samples; ++k) {
      spin_kernel<<<1, 1, 0, stream>>>(cycles);
      BENCH_CUDA(cudaEventRecord(ev.ev[2 * size_t(k)], stream));
      for (int i = 0; i < r.calls; ++i) ANVIL_RETURN_IF_ERROR(launch(rep++ % copies));
      BENCH_CUDA(cudaEventRecord(ev.ev[2 * size_t(k) + 1], stream));
    }
    BENCH_CUDA(cudaGetLastError());
    BENCH_CUDA(cudaStreamSynchronize(stream));
  }
  std::vector<double> t;
  for (int k = 0; k < samples; ++k) {
    auto ms = ev.ms(2 * size_t(k), 2 * size_t(k) + 1);
    if (!ms) return ms.status();
    t.push_back(1000.0 * *ms / r.calls);
  }
  r.us = median(t);
  return Status::ok();
}

}  // namespace

Timed time_stream(cudaStream_t stream, int copies, int samples, const std::function<Status(int)>& launch) {
  Timed r;
  if (Status s = time_stream_into(r, stream, copies, samples, launch); !s) return Timed{std::move(s)};
  return r;
}

namespace {

uint64_t g_next_key = 0x62656e6368000001ull;  // Backend::run_step keys, never reused

Status time_backend_into(Timed& r, Backend& be, int copies, int samples, const std::function<Status(int)>& call,
                         const Tensor& out) {
  using clock = std::chrono::steady_clock;
  // Any change to the backend's set of buffers retires its recorded graphs (it keeps at most 64):
  // a throw-away allocation starts this row with an empty graph cache.
  { auto tmp = be.alloc(256); }
  ANVIL_RETURN_IF_ERROR(be.synchronize());
  for (int i = 0; i < copies; ++i) ANVIL_RETURN_IF_ERROR(call(i));
  ANVIL_RETURN_IF_ERROR(be.synchronize());

  // Estimate from 16 back-to-back calls: an upper bound (host enqueue may outpace the GPU).
  const int k_est = 16;
  auto t0 = clock::now();
  for (int i = 0; i < k_est; ++i) ANVIL_RETURN_IF_ERROR(call(i % copies));
  ANVIL_RETURN_IF_ERROR(be.synchronize());
  const double est_us = std::max(std::chrono::duration<double, std::micro>(clock::now() - t0).count() / k_est, 0.5);
  r.calls = int(std::clamp<double>(std::ceil(kBackendTargetUs / est_us), 2, kMaxBackendCalls));
  r.calls = std::max(r.calls, copies);

  int forwards = 0;
  const int n = r.calls;
  const std::function<Expected<Tensor>()> forward = [&]() -> Expected<Tensor> {
    ++forwards;
    for (int i = 0; i < n; ++i) ANVIL_RETURN_IF_ERROR(call(i));
    return out;
  };
  const uint64_t key = g_next_key++;
  // 1st sighting runs plainly, 2nd captures (and launches), later ones replay; one more in case
  // the first grew a workspace (which retires the key's sightings).
  for (int w = 0; w < 4; ++w) {
    auto o = be.run_step(key, forward);
    if (!o) return o.status();
    ANVIL_RETURN_IF_ERROR(be.synchronize());
  }
  forwards = 0;
  std::vector<double> t;
  for (int k = 0; k < samples; ++k) {
    t0 = clock::now();
    auto o = be.run_step(key, forward);
    if (!o) return o.status();
    ANVIL_RETURN_IF_ERROR(be.synchronize());
    t.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count() / n);
  }
  r.graph = forwards == 0;
  r.us = median(t);
  return Status::ok();
}

}  // namespace

Timed time_backend(Backend& be, int copies, int samples, const std::function<Status(int)>& call, const Tensor& out) {
  Timed r;
  if (Status s = time_backend_into(r, be, copies, samples, call, out); !s) return Timed{std::move(s)};
  return r;
}

// ---------------------------------------------------------------------------- rows
Row make_row(const Report& rep, const RowSpec& spec, const Timed& t) {
  Row r;
  r.op = spec.op;
  r.shape = spec.shape;
  r.candidate = spec.candidate;
  r.backend = "cuda";
  r.ranked = spec.ranked;
  r.note = spec.note;
  if (!t.status) {
    r.error = t.status.to_string();
    return r;
  }
  r.time_us = t.us;
  r.gbps = spec.bytes / (t.us * 1e-6) / 1e9;
  r.tflops = spec.flops / (t.us * 1e-6) / 1e12;
  r.bandwidth_fraction = rep.copy_bandwidth_gbps > 0 ? r.gbps / rep.copy_bandwidth_gbps : -1;
  r.compute_fraction = spec.flops > 0 && rep.gemm_tflops > 0 ? r.tflops / rep.gemm_tflops : -1;
  r.roofline_fraction = std::max({r.bandwidth_fraction, r.compute_fraction, 0.0});
  return r;
}

void log_row(const Row& r) {
  if (!r.error.empty())
    std::fprintf(stderr, "  %-11s %-58s %-26s error: %s\n", r.op.c_str(), r.shape.c_str(), r.candidate.c_str(),
                 r.error.c_str());
  else
    std::fprintf(stderr, "  %-11s %-58s %-26s %10.2f us %8.1f GB/s %8.2f TFLOP/s %4.0f%%\n", r.op.c_str(),
                 r.shape.c_str(), r.candidate.c_str(), r.time_us, r.gbps, r.tflops, 100.0 * r.roofline_fraction);
}

// How a row was timed, for its note.
namespace {

std::string copies_note(int copies, const char* what) {
  return copies > 1 ? " over " + std::to_string(copies) + " " + what + " copies" : "";
}

}  // namespace

std::string stream_note(const Timed& t, int copies) {
  return (t.graph ? "CUDA graph of " + std::to_string(t.calls) + " calls"
                  : std::to_string(t.calls) + " calls on the stream behind a spin kernel (graph capture failed)") +
         copies_note(copies, "weight") + ", events";
}
std::string backend_note(const Timed& t, int copies, const char* what) {
  return (t.graph ? "Backend::run_step graph of " + std::to_string(t.calls) + " calls"
                  : std::to_string(t.calls) + " back-to-back calls (no graph)") +
         copies_note(copies, what) + ", host clock between synchronize() / N";
}

// ---------------------------------------------------------------------------- Backend ops
namespace {

// A page table of `pages` pages starting at `first` (distinct pages per sequence).
std::vector<int32_t> pages_from(int32_t first, int32_t pages) {
  std::vector<int32_t> t(static_cast<size_t>(pages));
  for (int32_t i = 0; i < pages; ++i) t[size_t(i)] = first + i;
  return t;
}

}  // namespace

Expected<DeviceStep> make_step(Backend& be, const std::vector<SeqSpec>& seqs, int32_t* total_pages) {
  StepBatch b;
  b.page_size = 16;
  int32_t next = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int32_t pages = (seqs[s].n_past + seqs[s].n_tokens + 15) / 16;
    std::vector<int32_t> ids(static_cast<size_t>(seqs[s].n_tokens), 1);
    b.add_sequence(ids, seqs[s].n_past, pages_from(next, pages), false, int32_t(s));
    next += pages;
  }
  if (total_pages) *total_pages = next;
  return be.prepare_step(b);
}

Status sync_fill() { return cuda_err(cudaDeviceSynchronize(), "fill"); }

}  // namespace anvil::bench::cuda_harness
