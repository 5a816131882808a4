// bench-kernels --backend cuda: every CUDA op candidate per shape, side by side, against the
// ceilings measured in the same run (bench/NOTES.md, "Performance method").
//
// Ceilings, measured first:
//   copy  cudaMemcpyAsync device-to-device of 1 GiB, (read + write) bytes / time, median of 20;
//   GEMM  cuBLAS bf16 8192^3 (f32 accumulation), TFLOP/s, median of 20.
// Every row reports GB/s (the fewest bytes the op must move: weights / KV / state + activations
// in and out) and TFLOP/s, their fractions of the two ceilings, and the roofline fraction (the
// larger of the two: how close the row is to the bound that limits it).
//
// Ops and shapes (Qwen3-4B, Qwen3.5-4B, Qwen2.5-7B layer shapes; identical shapes are merged):
//   matmul        every projection with Q4_K weights, and Q6_K for ffn_down and the LM head (as
//                 Q4_K_M files have them), at n = 1, 8, 32, 64, 512 tokens: each candidate of
//                 cuda::matmul_candidates() that supports the shape, the dispatcher (cuda::matmul,
//                 unranked; its note names the kernel it picked) and cuBLAS f16 on resident F16
//                 weights (unranked reference: 3.5x the bytes of Q4_K). Each candidate's output on
//                 the first weight copy is compared with cublas_f16's (the note's "err").
//   attention     F16 paged KV, decode at context 512 / 4096 / 16384 for 1 and 8 sequences, and a
//                 prefill chunk of 512 tokens at n_past 0 and 4096; Qwen3-4B and Qwen3.5-4B heads.
//   deltanet      Qwen3.5-4B gated_deltanet, decode (1 and 8 sequences) and 64-, 128- and
//                 512-token prefill chunks, for each DeltaNetParams::mode (the one choice the
//                 interface offers; recurrent vs chunked at 64 and 128 tokens sets automatic's
//                 threshold, cuda/deltanet.cu).
//   conv1d_silu   Qwen3.5-4B's 8192 channels, kernel 4: decode 1 / 8, prefill 512.
//   rms_norm      [n, 2560], n = 1, 8, 32, 512.
//   rope          NEOX on Qwen3-4B q (32 x 128) and Qwen3.5-4B q (16 x 256, 64 rotary dims).
//
// Timing. matmul runs through its own cuda::Context (cuda/ops.h) so its stream is reachable: a
// CUDA graph of N calls (N >= the weight copies, >= ~300 us of work) is replayed between two
// events, median over the samples / N; a candidate whose launches cannot be captured is timed the
// same way on the stream, its N calls queued behind a spin kernel. Weights rotate over copies
// (256 MiB in all, several times the 50 MB L2, capped at 64 copies: only the tiny 32 x 2560
// alpha/beta projection stays L2-resident) so each call streams its weights from DRAM, as a
// forward pass does; activations stay put (L2-resident, as after the previous op).
// The other ops are reached only through the Backend interface (cuda::make_backend), whose
// stream is private: N calls are recorded under one Backend::run_step key (the backend captures
// them as a CUDA graph on the key's second sighting and replays it from the third) and timed by
// the host clock between synchronize() calls, divided by N (~2 ms per replay keeps the launch
// and wake-up latency near 1%). If capture fails the same N calls run on the stream; the row's
// note says which. KV caches and DeltaNet states rotate over copies like the weights.
// Inputs are random (never zeros: METHOD.md). An op that returns an error gets a row with the
// error and the run goes on; after an error that poisons the CUDA context every later row says so.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_kernels_cuda.h"
#include "core/backend.h"
#include "core/dtype.h"
#include "core/step_batch.h"
#include "core/tensor.h"
#include "cuda/backend.h"
#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/matmul.h"
#include "cuda/matmul_tuning.h"
#include "cuda/ops.h"

namespace anvil::bench {
namespace {

constexpr size_t kRotateBytes = size_t(256) << 20;  // weight / KV / state copies per row, in all
constexpr int kMaxCopies = 64;
constexpr double kMatmulTargetUs = 300;    // work per timed graph replay (matmul, events)
constexpr int kMaxCalls = 256;
constexpr double kBackendTargetUs = 2000;  // work per timed run_step (host clock: ~1% latency)
constexpr int kMaxBackendCalls = 512;

// Set when the CUDA context is lost (a kernel faulted): every later row reports it instead of
// running.
std::string g_fatal;

// ---------------------------------------------------------------------------- helpers
Status cuda_err(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::ok();
  return make_error(StatusCode::internal, what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}
#define BENCH_CUDA(call) ANVIL_RETURN_IF_ERROR(cuda_err((call), #call))

// After a failed row: clears a non-sticky error; a sticky one (the context is gone) sets g_fatal.
void check_device_after(const std::string& row) {
  cudaGetLastError();
  if (cudaDeviceSynchronize() == cudaSuccess) return;
  cudaGetLastError();
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess && g_fatal.empty())
    g_fatal = std::string("CUDA context lost (") + cudaGetErrorName(e) + ") after row '" + row + "'";
}

struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  DevBuf() = default;
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { reset(); }
  void reset() {
    if (p) cudaFree(p);
    p = nullptr;
    bytes = 0;
  }
  Status alloc(size_t n) {
    reset();
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(n, 256));
    if (e != cudaSuccess) {
      cudaGetLastError();
      p = nullptr;
      return make_error(StatusCode::out_of_memory, "cudaMalloc of ", n, " bytes: ", cudaGetErrorString(e));
    }
    bytes = n;
    return Status::ok();
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

int copies_for(double bytes_per_call) {
  if (bytes_per_call <= 0) return 1;
  return int(std::clamp<double>(std::ceil(double(kRotateBytes) / bytes_per_call), 1, kMaxCopies));
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// ---------------------------------------------------------------------------- fill kernels
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

// out[0] = max |a - b| (+inf when any difference is NaN or inf), out[1] = max |b|, as float bits
// (non-negative floats order like their bit patterns).
__global__ void max_abs_diff_kernel(const float* a, const float* b, size_t n, unsigned* out) {
  float md = 0.f, mr = 0.f;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float d = fabsf(a[i] - b[i]);
    md = d <= FLT_MAX ? fmaxf(md, d) : INFINITY;
    mr = fmaxf(mr, fabsf(b[i]));
  }
  atomicMax(out, __float_as_uint(md));
  atomicMax(out + 1, __float_as_uint(mr));
}

Status fill_f32(float* p, size_t n, float lo, float hi, uint32_t seed, cudaStream_t s = nullptr) {
  fill_f32_kernel<<<kFillBlocks, kFillThreads, 0, s>>>(p, n, lo, hi, seed);
  BENCH_CUDA(cudaGetLastError());
  return Status::ok();
}
Status fill_f16(void* p, size_t n, float lo, float hi, uint32_t seed, cudaStream_t s = nullptr) {
  fill_f16_kernel<<<kFillBlocks, kFillThreads, 0, s>>>(static_cast<__half*>(p), n, lo, hi, seed);
  BENCH_CUDA(cudaGetLastError());
  return Status::ok();
}

// Random valid blocks of `type` over `bytes` (whole blocks, rows packed).
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

// Device-to-device copy of 1 GiB: (read + write) bytes / time, GB/s.
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

// cuBLAS bf16 8192^3 GEMM (f32 accumulation, bf16 output), TFLOP/s.
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
struct Timed {
  Status status;
  double us = 0;    // median time per call
  int calls = 0;    // calls per timed sample
  bool graph = false;
};

int g_clock_khz = 1500000;  // SM clock, for the spin kernel's cycle count

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

// launch(i) enqueues call i on `stream` (call i uses weight copy i % copies). Warm-up: every
// copy once. Then a CUDA graph of N calls timed with events (or, if the calls cannot be
// captured, N calls on the stream queued behind a spin kernel), median over `samples` / N.
Timed time_stream(cudaStream_t stream, int copies, int samples, const std::function<Status(int)>& launch) {
  Timed r;
  if (Status s = time_stream_into(r, stream, copies, samples, launch); !s) return Timed{std::move(s)};
  return r;
}

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

// call(i) enqueues call i through the Backend (state / KV copy i % copies). Host-clocked:
// warm-up (every copy once), an estimate, then N calls recorded under one run_step key (graph
// replay once captured), median over `samples` of (synchronize .. run_step .. synchronize) / N.
Timed time_backend(Backend& be, int copies, int samples, const std::function<Status(int)>& call, const Tensor& out) {
  Timed r;
  if (Status s = time_backend_into(r, be, copies, samples, call, out); !s) return Timed{std::move(s)};
  return r;
}

// ---------------------------------------------------------------------------- rows
struct RowSpec {
  std::string op, shape, candidate;
  double bytes = 0;  // fewest bytes moved per call
  double flops = 0;  // per call; 0 = not FLOP-bound (no compute fraction)
  bool ranked = true;
  std::string note;
};

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

struct Bench {
  Report& report;
  const CudaBenchOptions& opt;
  bool wants(const std::string& op, const std::string& label) const {
    return opt.filter.empty() || (op + " " + label).find(opt.filter) != std::string::npos;
  }
  bool model(const std::string& m) const {
    return opt.models.empty() || std::find(opt.models.begin(), opt.models.end(), m) != opt.models.end();
  }
  // Appends the row (or, after the context was lost, a row saying so); returns it.
  Row& add(const RowSpec& spec, const Timed& t) {
    Row r = make_row(report, spec, t);
    if (!r.error.empty()) check_device_after(spec.op + " " + spec.shape + " " + spec.candidate);
    report.rows.push_back(std::move(r));
    log_row(report.rows.back());
    return report.rows.back();
  }
  void add_error(const RowSpec& spec, const Status& s) {
    add(spec, Timed{s.is_ok() ? make_error(StatusCode::internal, "unknown failure") : s});
  }
  bool lost(const RowSpec& spec) {
    if (g_fatal.empty()) return false;
    Row r = make_row(report, spec, Timed{make_error(StatusCode::internal, "skipped: ", g_fatal)});
    report.rows.push_back(std::move(r));
    return true;
  }
};

// How a row was timed, for its note.
std::string copies_note(int copies, const char* what) {
  return copies > 1 ? " over " + std::to_string(copies) + " " + what + " copies" : "";
}
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

// ---------------------------------------------------------------------------- matmul
struct Proj {
  const char* model;
  const char* name;
  int64_t out, in;
  DType type;
};

// Every projection of the three models; identical (type, out, in) are merged below.
std::vector<Proj> all_projections() {
  const DType q4 = DType::Q4_K, q6 = DType::Q6_K;
  return {
      // Qwen3-4B: d 2560, ffn 9728, 32 / 8 heads x 128, vocab 151936
      {"qwen3-4b", "Qwen3-4B q", 4096, 2560, q4},
      {"qwen3-4b", "Qwen3-4B k/v", 1024, 2560, q4},
      {"qwen3-4b", "Qwen3-4B o", 2560, 4096, q4},
      {"qwen3-4b", "Qwen3-4B gate/up", 9728, 2560, q4},
      {"qwen3-4b", "Qwen3-4B down", 2560, 9728, q4},
      {"qwen3-4b", "Qwen3-4B down", 2560, 9728, q6},
      {"qwen3-4b", "Qwen3-4B LM head", 151936, 2560, q6},
      // Qwen3.5-4B: attention 16 / 4 x 256 with the output gate in q; GDN 16 k / 32 v heads x 128
      {"qwen35-4b", "Qwen3.5-4B q+gate", 8192, 2560, q4},
      {"qwen35-4b", "Qwen3.5-4B k/v", 1024, 2560, q4},
      {"qwen35-4b", "Qwen3.5-4B o", 2560, 4096, q4},
      {"qwen35-4b", "Qwen3.5-4B ssm qkv", 8192, 2560, q4},
      {"qwen35-4b", "Qwen3.5-4B ssm z", 4096, 2560, q4},
      {"qwen35-4b", "Qwen3.5-4B ssm alpha/beta", 32, 2560, q4},
      {"qwen35-4b", "Qwen3.5-4B ssm out", 2560, 4096, q4},
      {"qwen35-4b", "Qwen3.5-4B gate/up", 9216, 2560, q4},
      {"qwen35-4b", "Qwen3.5-4B down", 2560, 9216, q4},
      {"qwen35-4b", "Qwen3.5-4B down", 2560, 9216, q6},
      {"qwen35-4b", "Qwen3.5-4B LM head", 248320, 2560, q6},
      // Qwen2.5-7B: d 3584, ffn 18944, 28 / 4 heads x 128, vocab 152064
      {"qwen25-7b", "Qwen2.5-7B q/o", 3584, 3584, q4},
      {"qwen25-7b", "Qwen2.5-7B k/v", 512, 3584, q4},
      {"qwen25-7b", "Qwen2.5-7B gate/up", 18944, 3584, q4},
      {"qwen25-7b", "Qwen2.5-7B down", 3584, 18944, q4},
      {"qwen25-7b", "Qwen2.5-7B down", 3584, 18944, q6},
      {"qwen25-7b", "Qwen2.5-7B LM head", 152064, 3584, q6},
  };
}

struct MatmulShape {
  DType type;
  int64_t out, in;
  std::string names;  // "Qwen3-4B o, Qwen3.5-4B o, Qwen3.5-4B ssm out"
};

std::string matmul_label(const MatmulShape& s, int64_t n) {
  return std::string(dtype_name(s.type)) + " " + std::to_string(s.out) + "x" + std::to_string(s.in) + " (" + s.names +
         ") n=" + std::to_string(n);
}

Status make_context(cuda::Context& ctx, int device, DevBuf& workspace) {
  BENCH_CUDA(cudaSetDevice(device));
  cudaDeviceProp p{};
  BENCH_CUDA(cudaGetDeviceProperties(&p, device));
  ctx.device = device;
  ctx.sm_count = p.multiProcessorCount;
  ctx.cc_major = p.major;
  ctx.cc_minor = p.minor;
  BENCH_CUDA(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
  ANVIL_CUBLAS_CHECK(cublasCreate(&ctx.cublas));
  ANVIL_CUBLAS_CHECK(cublasSetStream(ctx.cublas, ctx.stream));
  // A fixed workspace, as the backend sets: without one cuBLAS allocates inside graph capture.
  const size_t ws = size_t(32) << 20;
  ANVIL_RETURN_IF_ERROR(workspace.alloc(ws));
  ANVIL_CUBLAS_CHECK(cublasSetWorkspace(ctx.cublas, workspace.p, ws));
  return Status::ok();
}

// max |y - ref| / max |ref| on the device; +inf when y has NaN / inf.
Expected<double> relative_error(cuda::Context& ctx, const float* y, const float* ref, size_t n, DevBuf& tmp) {
  BENCH_CUDA(cudaMemsetAsync(tmp.p, 0, 8, ctx.stream));
  max_abs_diff_kernel<<<1024, 256, 0, ctx.stream>>>(y, ref, n, tmp.as<unsigned>());
  BENCH_CUDA(cudaGetLastError());
  unsigned h[2];
  BENCH_CUDA(cudaMemcpyAsync(h, tmp.p, 8, cudaMemcpyDeviceToHost, ctx.stream));
  BENCH_CUDA(cudaStreamSynchronize(ctx.stream));
  float md, mr;
  std::memcpy(&md, &h[0], 4);
  std::memcpy(&mr, &h[1], 4);
  if (!std::isfinite(md)) return double(INFINITY);
  return double(md) / std::max(double(mr), 1e-30);
}

void bench_matmul_shape(Bench& c, cuda::Context& ctx, const MatmulShape& sh, const std::vector<int64_t>& tokens) {
  std::vector<int64_t> ns;
  for (int64_t n : tokens)
    if (c.wants("matmul", matmul_label(sh, n))) ns.push_back(n);
  if (ns.empty()) return;
  const int64_t max_n = *std::max_element(ns.begin(), ns.end());
  const size_t wbytes = size_t(*row_bytes(sh.type, uint64_t(sh.in))) * size_t(sh.out);
  const size_t w16bytes = size_t(sh.out) * size_t(sh.in) * 2;
  const int copies = copies_for(double(wbytes)), copies16 = copies_for(double(w16bytes));
  const size_t stride = round_up(wbytes, 256), stride16 = round_up(w16bytes, 256);
  const uint32_t seed = uint32_t(sh.out * 31 + sh.in * 7 + int(sh.type));

  auto setup_error = [&](const Status& s) {
    for (int64_t n : ns) c.add_error({"matmul", matmul_label(sh, n), "setup"}, s);
  };
  if (!g_fatal.empty()) {
    for (int64_t n : ns) c.lost({"matmul", matmul_label(sh, n), "-"});
    return;
  }
  DevBuf w, w16, x, y, y_ref, y_cmp, tmp;
  const Status setup = [&]() -> Status {
    ANVIL_RETURN_IF_ERROR(w.alloc(stride * copies));
    ANVIL_RETURN_IF_ERROR(w16.alloc(stride16 * copies16));
    ANVIL_RETURN_IF_ERROR(x.alloc(size_t(max_n * sh.in) * 4));
    ANVIL_RETURN_IF_ERROR(y.alloc(size_t(max_n * sh.out) * 4));
    ANVIL_RETURN_IF_ERROR(y_ref.alloc(size_t(max_n * sh.out) * 4));
    ANVIL_RETURN_IF_ERROR(y_cmp.alloc(size_t(max_n * sh.out) * 4));
    ANVIL_RETURN_IF_ERROR(tmp.alloc(256));
    ANVIL_RETURN_IF_ERROR(fill_quantized(sh.type, w.p, wbytes, seed, ctx.stream));
    for (int i = 1; i < copies; ++i)
      BENCH_CUDA(cudaMemcpyAsync(w.as<char>() + stride * i, w.p, wbytes, cudaMemcpyDeviceToDevice, ctx.stream));
    for (int i = 0; i < copies16; ++i)
      ANVIL_RETURN_IF_ERROR(fill_f16(w16.as<char>() + stride16 * i, w16bytes / 2, -0.05f, 0.05f, seed + 1, ctx.stream));
    ANVIL_RETURN_IF_ERROR(fill_f32(x.as<float>(), size_t(max_n * sh.in), -1.f, 1.f, seed + 2, ctx.stream));
    BENCH_CUDA(cudaStreamSynchronize(ctx.stream));
    return Status::ok();
  }();
  if (!setup) {
    setup_error(setup);
    check_device_after("matmul setup " + sh.names);
    return;
  }

  auto weight = [&](int i) {
    Weight wt;
    wt.name = sh.names;
    wt.t = Tensor::contiguous(w.as<char>() + stride * size_t(i % copies), sh.type, sh.out, sh.in);
    return wt;
  };
  auto weight16 = [&](int i) {
    Weight wt;
    wt.name = sh.names + " (F16)";
    wt.t = Tensor::contiguous(w16.as<char>() + stride16 * size_t(i % copies16), DType::F16, sh.out, sh.in);
    return wt;
  };
  const auto candidates = cuda::matmul_candidates();

  for (int64_t n : ns) {
    const std::string label = matmul_label(sh, n);
    const Tensor xt = Tensor::contiguous(x.p, DType::F32, n, sh.in);
    const Tensor yt = Tensor::contiguous(y.p, DType::F32, n, sh.out);
    const double flops = 2.0 * double(n) * double(sh.out) * double(sh.in);
    const double act_bytes = double(n) * double(sh.in + sh.out) * 4;
    if (c.lost({"matmul", label, "-"})) continue;

    // The agreement reference: cublas_f16 on weight copy 0.
    const Tensor yref = Tensor::contiguous(y_ref.p, DType::F32, n, sh.out);
    const Weight w0 = weight(0);
    const Status ref_st = [&]() -> Status {
      ANVIL_RETURN_IF_ERROR(cuda::matmul_with(ctx, "cublas_f16", w0, xt, yref, nullptr));
      BENCH_CUDA(cudaStreamSynchronize(ctx.stream));
      return Status::ok();
    }();
    if (!ref_st) check_device_after(label + " reference");

    const size_t first_row = c.report.rows.size();
    for (const cuda::MatmulCandidate& cand : candidates) {
      if (!cand.supports(w0.t, n)) continue;
      RowSpec spec{"matmul", label, cand.name, double(wbytes) + act_bytes, flops};
      if (c.lost(spec)) continue;
      const std::string name = cand.name;
      Timed t = time_stream(ctx.stream, copies, c.opt.samples, [&](int i) {
        return cuda::matmul_with(ctx, name, weight(i), xt, yt, nullptr);
      });
      spec.note = stream_note(t, copies);
      if (t.status && ref_st && name != "cublas_f16") {
        const Tensor yc = Tensor::contiguous(y_cmp.p, DType::F32, n, sh.out);
        Status s = cuda::matmul_with(ctx, name, w0, xt, yc, nullptr);
        Expected<double> err = s.is_ok() ? relative_error(ctx, y_cmp.as<float>(), y_ref.as<float>(), size_t(n * sh.out), tmp)
                                         : Expected<double>(s);
        if (!err) spec.note += "; agreement check failed: " + err.status().to_string();
        else {
          spec.note += "; err " + fmt("%.1e", *err) + " vs cublas_f16";
          if (!(*err <= 2 * cand.tolerance)) spec.note += " (MISMATCH: over 2x its tolerance " + fmt("%.0e", cand.tolerance) + ")";
        }
      }
      c.add(spec, t);
    }

    // The dispatcher: the tuner's choice for the shape (cuda/matmul_tuning.h: measured here, before
    // the timed calls, with ANVIL_CUDA_TUNE=1; else the table order or ANVIL_FORCE_KERNEL's).
    const cuda::MatmulCandidate* tuned = cuda::tuned_candidate(ctx, w0.t, n);
    const std::string chosen = tuned ? tuned->name : "none";
    {
      RowSpec spec{"matmul", label, "dispatch (cuda::matmul)", double(wbytes) + act_bytes, flops, false};
      if (!c.lost(spec)) {
        Timed t = time_stream(ctx.stream, copies, c.opt.samples,
                              [&](int i) { return cuda::matmul(ctx, weight(i), xt, yt, nullptr); });
        const Row* best = nullptr;
        for (size_t k = first_row; k < c.report.rows.size(); ++k) {
          const Row& r = c.report.rows[k];
          if (r.ranked && r.error.empty() && r.time_us > 0 && (!best || r.time_us < best->time_us)) best = &r;
        }
        spec.note = "picks " + chosen;
        if (best && best->candidate != chosen) spec.note += "; fastest is " + best->candidate;
        spec.note += "; " + stream_note(t, copies);
        c.add(spec, t);
      }
    }

    // Reference line: cuBLAS f16 on weights kept resident in F16 (3.5x Q4_K's bytes).
    {
      RowSpec spec{"matmul", label, "ref: cublas_f16 on F16 W", double(w16bytes) + act_bytes, flops, false};
      if (!c.lost(spec)) {
        Timed t = time_stream(ctx.stream, copies16, c.opt.samples, [&](int i) {
          return cuda::matmul_with(ctx, "cublas_f16", weight16(i), xt, yt, nullptr);
        });
        spec.note = "resident F16 weights (not a decode option: " + fmt("%.1f", double(w16bytes) / double(wbytes)) +
                    "x the bytes; x converted to f16 per call); " + stream_note(t, copies16);
        c.add(spec, t);
      }
    }
  }
}

void bench_matmul(Bench& c, cuda::Context& ctx) {
  std::vector<int64_t> tokens = c.opt.tokens;
  if (tokens.empty()) tokens = c.opt.quick ? std::vector<int64_t>{1, 8, 512} : std::vector<int64_t>{1, 8, 32, 64, 512};
  std::vector<MatmulShape> shapes;
  for (const Proj& p : all_projections()) {
    if (!c.model(p.model)) continue;
    if (c.opt.quick && p.type == DType::Q6_K && p.out < 100000) continue;  // quick: Q6_K LM heads only
    auto it = std::find_if(shapes.begin(), shapes.end(),
                           [&](const MatmulShape& s) { return s.type == p.type && s.out == p.out && s.in == p.in; });
    if (it == shapes.end()) shapes.push_back({p.type, p.out, p.in, p.name});
    else it->names += std::string(", ") + p.name;
  }
  for (const MatmulShape& s : shapes) bench_matmul_shape(c, ctx, s, tokens);
}

// ---------------------------------------------------------------------------- Backend ops
// Device tensors allocated through the backend and kept alive for one row.
struct Arena {
  Backend& be;
  std::vector<std::shared_ptr<DeviceBuffer>> keep;
  Expected<Tensor> tensor(DType type, int64_t rows, int64_t cols) {
    auto b = be.alloc(size_t(*row_bytes(type, uint64_t(cols))) * size_t(rows));
    if (!b) return b.status();
    keep.push_back(*b);
    return Tensor::contiguous((*b)->data(), type, rows, cols);
  }
  // Uniform [lo, hi) F32 / F16, filled on the legacy stream (the caller synchronizes the device).
  Expected<Tensor> random(DType type, int64_t rows, int64_t cols, float lo, float hi, uint32_t seed) {
    auto t = tensor(type, rows, cols);
    if (!t) return t;
    const size_t n = size_t(rows) * size_t(cols);
    ANVIL_RETURN_IF_ERROR(type == DType::F16 ? fill_f16(t->data, n, lo, hi, seed) : fill_f32(static_cast<float*>(t->data), n, lo, hi, seed));
    return t;
  }
};

#define BENCH_TRY_ASSIGN(lhs, expr)    \
  auto lhs##_e = (expr);               \
  if (!lhs##_e) return lhs##_e.status(); \
  Tensor lhs = *lhs##_e

// A page table of `pages` pages starting at `first` (distinct pages per sequence).
std::vector<int32_t> pages_from(int32_t first, int32_t pages) {
  std::vector<int32_t> t(static_cast<size_t>(pages));
  for (int32_t i = 0; i < pages; ++i) t[size_t(i)] = first + i;
  return t;
}

struct SeqSpec {
  int32_t n_tokens, n_past;
};

// A step of the given sequences, each with its own pages (page_size 16) and state slot s.
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

// ---- attention
struct AttnShape {
  const char* model_key;
  const char* name;
  int32_t n_heads, n_kv, hd;
};

Status bench_attention_row(Bench& c, Backend& be, const AttnShape& a, const std::string& label,
                           const std::vector<SeqSpec>& seqs) {
  RowSpec spec{"attention", label, "cuda attention"};
  int32_t total_pages = 0;
  auto step = make_step(be, seqs, &total_pages);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, kv_rows = int64_t(total_pages) * 16, kv_cols = int64_t(a.n_kv) * a.hd;
  const int64_t q_cols = int64_t(a.n_heads) * a.hd;
  double keys = 0, kv_tokens = 0;  // (query, key) pairs; cached positions read
  for (const SeqSpec& s : seqs) {
    kv_tokens += s.n_past + s.n_tokens;
    keys += double(s.n_tokens) * s.n_past + double(s.n_tokens) * (s.n_tokens + 1) / 2;
  }
  const double layer_bytes = 2.0 * double(kv_rows) * double(kv_cols) * 2;
  const int copies = copies_for(layer_bytes);
  Arena ar{be};
  std::vector<KvLayer> kv;
  for (int i = 0; i < copies; ++i) {
    BENCH_TRY_ASSIGN(k, ar.random(DType::F16, kv_rows, kv_cols, -1.f, 1.f, 100 + 2 * i));
    BENCH_TRY_ASSIGN(v, ar.random(DType::F16, kv_rows, kv_cols, -1.f, 1.f, 101 + 2 * i));
    kv.push_back({k, v});
  }
  BENCH_TRY_ASSIGN(q, ar.random(DType::F32, T, q_cols, -1.f, 1.f, 7));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, T, q_cols));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  AttentionParams p;
  p.n_heads = a.n_heads;
  p.n_kv_heads = a.n_kv;
  p.head_dim = a.hd;
  p.scale = 1.f / std::sqrt(float(a.hd));
  const DeviceStep& st = *step;
  Timed t = time_backend(be, copies, c.opt.samples,
                         [&](int i) { return be.attention(q, kv[size_t(i % copies)], p, st, out); }, out);
  spec.bytes = kv_tokens * double(kv_cols) * 2 * 2 + double(T) * double(q_cols) * 4 * 2;
  spec.flops = 4.0 * a.n_heads * a.hd * keys;
  spec.note = backend_note(t, copies, "KV");
  c.add(spec, t);
  return Status::ok();
}

void bench_attention(Bench& c, Backend& be) {
  const AttnShape shapes[] = {{"qwen3-4b", "Qwen3-4B 32/8x128", 32, 8, 128},
                              {"qwen35-4b", "Qwen3.5-4B 16/4x256", 16, 4, 256}};
  const std::vector<int32_t> contexts = c.opt.quick ? std::vector<int32_t>{4096} : std::vector<int32_t>{512, 4096, 16384};
  const std::vector<int32_t> pasts = c.opt.quick ? std::vector<int32_t>{4096} : std::vector<int32_t>{0, 4096};
  for (const AttnShape& a : shapes) {
    if (!c.model(a.model_key)) continue;
    auto run = [&](const std::string& label, const std::vector<SeqSpec>& seqs) {
      if (!c.wants("attention", label)) return;
      RowSpec spec{"attention", label, "cuda attention"};
      if (c.lost(spec)) return;
      if (Status s = bench_attention_row(c, be, a, label, seqs); !s) c.add_error(spec, s);
    };
    for (int32_t ctx : contexts)
      for (int32_t b : {1, 8})
        run(std::string(a.name) + " decode ctx " + std::to_string(ctx) + " B=" + std::to_string(b),
            std::vector<SeqSpec>(static_cast<size_t>(b), SeqSpec{1, ctx - 1}));
    for (int32_t np : pasts)
      run(std::string(a.name) + " prefill 512 @ n_past " + std::to_string(np), {SeqSpec{512, np}});
  }
}

// ---- gated DeltaNet (Qwen3.5-4B: 16 k heads, 32 v heads, d_k = d_v = 128, conv kernel 4)
constexpr int32_t kGdnK = 16, kGdnV = 32, kGdnD = 128, kConvCh = 2 * kGdnK * kGdnD + kGdnV * kGdnD, kConvK = 4;

Status bench_deltanet_row(Bench& c, Backend& be, const std::string& label, const std::vector<SeqSpec>& seqs,
                          DeltaNetMode mode, const char* cand) {
  auto step = make_step(be, seqs, nullptr);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, B = int64_t(seqs.size());
  const int64_t qk = int64_t(kGdnK) * kGdnD, vd = int64_t(kGdnV) * kGdnD;
  const double state_bytes = double(B) * kGdnV * kGdnD * kGdnD * 4;
  const int copies = copies_for(2 * state_bytes);
  Arena ar{be};
  std::vector<RecurrentLayer> states;
  for (int i = 0; i < copies; ++i) {
    BENCH_TRY_ASSIGN(conv, ar.random(DType::F32, B * (kConvK - 1), kConvCh, -1.f, 1.f, 200 + 2 * i));
    BENCH_TRY_ASSIGN(ssm, ar.random(DType::F32, B * kGdnV * kGdnD, kGdnD, -0.1f, 0.1f, 201 + 2 * i));
    states.push_back({conv, ssm});
  }
  // q | k | v as column views of one conv output row, as the model passes them; q and k of
  // about unit norm per head (uniform with variance 1 / d_k), as after l2_norm.
  const float a = std::sqrt(3.f / kGdnD);
  BENCH_TRY_ASSIGN(qkv, ar.random(DType::F32, T, kConvCh, -a, a, 9));
  BENCH_TRY_ASSIGN(g, ar.random(DType::F32, T, kGdnV, -0.5f, -0.02f, 10));
  BENCH_TRY_ASSIGN(beta, ar.random(DType::F32, T, kGdnV, 0.1f, 0.9f, 11));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, T, vd));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  const Tensor q = qkv.slice_cols(0, qk), k = qkv.slice_cols(qk, qk), v = qkv.slice_cols(2 * qk, vd);
  DeltaNetParams p;
  p.n_k_heads = kGdnK;
  p.n_v_heads = kGdnV;
  p.d_k = kGdnD;
  p.d_v = kGdnD;
  p.q_scale = 1.f / std::sqrt(float(kGdnD));
  p.mode = mode;
  const DeviceStep& st = *step;
  Timed t = time_backend(be, copies, c.opt.samples, [&](int i) {
    return be.gated_deltanet(q, k, v, g, beta, states[size_t(i % copies)], p, st, out);
  }, out);
  RowSpec spec{"deltanet", label, cand};
  spec.bytes = 2 * state_bytes + double(T) * double(2 * qk + 2 * vd + 2 * kGdnV) * 4;
  spec.flops = 7.0 * kGdnD * kGdnD * kGdnV * double(T);
  spec.note = backend_note(t, copies, "state") + "; FLOPs: the recurrent form's 7 d_k d_v per token and v head";
  c.add(spec, t);
  return Status::ok();
}

void bench_deltanet(Bench& c, Backend& be) {
  if (!c.model("qwen35-4b")) return;
  struct Size {
    std::string label;
    std::vector<SeqSpec> seqs;
  };
  const std::string base = "Qwen3.5-4B 16k/32v x128";
  std::vector<Size> sizes = {{base + " decode B=1 @ n_past 4096", {SeqSpec{1, 4096}}},
                             {base + " decode B=8 @ n_past 4096", std::vector<SeqSpec>(8, SeqSpec{1, 4096})},
                             {base + " prefill 64 @ n_past 512", {SeqSpec{64, 512}}},
                             {base + " prefill 128 @ n_past 512", {SeqSpec{128, 512}}},
                             {base + " prefill 512 @ n_past 512", {SeqSpec{512, 512}}}};
  const std::pair<DeltaNetMode, const char*> modes[] = {{DeltaNetMode::automatic, "mode=automatic"},
                                                        {DeltaNetMode::recurrent, "mode=recurrent"},
                                                        {DeltaNetMode::chunked, "mode=chunked"}};
  for (const Size& s : sizes) {
    if (!c.wants("deltanet", s.label)) continue;
    for (const auto& [mode, name] : modes) {
      if (c.opt.quick && mode != DeltaNetMode::automatic) continue;
      RowSpec spec{"deltanet", s.label, name};
      if (c.lost(spec)) continue;
      if (Status st = bench_deltanet_row(c, be, s.label, s.seqs, mode, name); !st) c.add_error(spec, st);
    }
  }
}

// ---- conv1d_silu (Qwen3.5-4B: 8192 channels, kernel 4)
Status bench_conv_row(Bench& c, Backend& be, const std::string& label, const std::vector<SeqSpec>& seqs) {
  auto step = make_step(be, seqs, nullptr);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, B = int64_t(seqs.size());
  Arena ar{be};
  std::vector<float> hw(size_t(kConvCh) * kConvK);
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = 0.5f * std::sin(float(i) * 0.37f);
  auto w = be.upload("ssm_conv1d", DType::F32, kConvCh, kConvK, hw.data());
  if (!w) return w.status();
  BENCH_TRY_ASSIGN(conv_state, ar.random(DType::F32, B * (kConvK - 1), kConvCh, -1.f, 1.f, 300));
  BENCH_TRY_ASSIGN(x, ar.random(DType::F32, T, kConvCh, -1.f, 1.f, 301));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, T, kConvCh));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  const RecurrentLayer state{conv_state, Tensor{}};
  const DeviceStep& st = *step;
  const Weight& wt = *w;
  Timed t = time_backend(be, 1, c.opt.samples, [&](int) { return be.conv1d_silu(x, wt, state, st, out); }, out);
  RowSpec spec{"conv1d_silu", label, "cuda conv1d_silu"};
  spec.bytes = double(T) * kConvCh * 4 * 2 + double(kConvCh) * kConvK * 4 + double(B) * (kConvK - 1) * kConvCh * 4 * 2;
  spec.note = backend_note(t, 1, "");
  c.add(spec, t);
  return Status::ok();
}

void bench_conv(Bench& c, Backend& be) {
  if (!c.model("qwen35-4b")) return;
  const std::string base = "Qwen3.5-4B 8192 ch, kernel 4";
  const std::pair<std::string, std::vector<SeqSpec>> sizes[] = {
      {base + " decode B=1", {SeqSpec{1, 4096}}},
      {base + " decode B=8", std::vector<SeqSpec>(8, SeqSpec{1, 4096})},
      {base + " prefill 512 @ n_past 512", {SeqSpec{512, 512}}}};
  for (const auto& [label, seqs] : sizes) {
    if (!c.wants("conv1d_silu", label)) continue;
    RowSpec spec{"conv1d_silu", label, "cuda conv1d_silu"};
    if (c.lost(spec)) continue;
    if (Status s = bench_conv_row(c, be, label, seqs); !s) c.add_error(spec, s);
  }
}

// ---- rms_norm [n, 2560]
Status bench_rms_norm_row(Bench& c, Backend& be, const std::string& label, int64_t n, int64_t d) {
  Arena ar{be};
  std::vector<float> hw(static_cast<size_t>(d));
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = 1.f + 0.1f * std::cos(float(i));
  auto w = be.upload("norm", DType::F32, 1, d, hw.data());
  if (!w) return w.status();
  BENCH_TRY_ASSIGN(x, ar.random(DType::F32, n, d, -2.f, 2.f, 400));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, n, d));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  const Weight& wt = *w;
  Timed t = time_backend(be, 1, c.opt.samples, [&](int) { return be.rms_norm(x, &wt, 1e-6f, out); }, out);
  RowSpec spec{"rms_norm", label, "cuda rms_norm"};
  spec.bytes = double(n) * d * 4 * 2 + double(d) * 4;
  spec.note = backend_note(t, 1, "");
  c.add(spec, t);
  return Status::ok();
}

void bench_rms_norm(Bench& c, Backend& be) {
  const std::vector<int64_t> ns = c.opt.quick ? std::vector<int64_t>{1, 512} : std::vector<int64_t>{1, 8, 32, 512};
  for (int64_t n : ns) {
    const std::string label = "[" + std::to_string(n) + ", 2560]";
    if (!c.wants("rms_norm", label)) continue;
    RowSpec spec{"rms_norm", label, "cuda rms_norm"};
    if (c.lost(spec)) continue;
    if (Status s = bench_rms_norm_row(c, be, label, n, 2560); !s) c.add_error(spec, s);
  }
}

// ---- rope (NEOX, in place on q)
struct RopeShape {
  const char* model_key;
  const char* name;
  int32_t n_heads, hd, rope_dims;
  float base;
};

Status bench_rope_row(Bench& c, Backend& be, const RopeShape& r, const std::string& label,
                      const std::vector<SeqSpec>& seqs) {
  auto step = make_step(be, seqs, nullptr);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, cols = int64_t(r.n_heads) * r.hd;
  Arena ar{be};
  BENCH_TRY_ASSIGN(x, ar.random(DType::F32, T, cols, -1.f, 1.f, 500));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  RopeParams p;
  p.n_heads = r.n_heads;
  p.head_dim = r.hd;
  p.rope_dims = r.rope_dims;
  p.freq_base = r.base;
  p.mode = RopeMode::neox;
  const DeviceStep& st = *step;
  Timed t = time_backend(be, 1, c.opt.samples, [&](int) { return be.rope(x, p, st); }, x);
  RowSpec spec{"rope", label, "cuda rope"};
  spec.bytes = double(T) * r.n_heads * r.rope_dims * 4 * 2;  // only the rotated dims must move
  spec.note = backend_note(t, 1, "") + "; bytes: the rotated dims, read + written";
  c.add(spec, t);
  return Status::ok();
}

void bench_rope(Bench& c, Backend& be) {
  const RopeShape shapes[] = {{"qwen3-4b", "Qwen3-4B q 32x128, 128 dims", 32, 128, 128, 1e6f},
                              {"qwen35-4b", "Qwen3.5-4B q 16x256, 64 dims", 16, 256, 64, 1e7f}};
  for (const RopeShape& r : shapes) {
    if (!c.model(r.model_key)) continue;
    const std::pair<std::string, std::vector<SeqSpec>> sizes[] = {
        {"decode B=1", {SeqSpec{1, 4095}}},
        {"decode B=8", std::vector<SeqSpec>(8, SeqSpec{1, 4095})},
        {"prefill 512", {SeqSpec{512, 0}}}};
    for (const auto& [what, seqs] : sizes) {
      const std::string label = std::string(r.name) + " " + what;
      if (!c.wants("rope", label)) continue;
      RowSpec spec{"rope", label, "cuda rope"};
      if (c.lost(spec)) continue;
      if (Status s = bench_rope_row(c, be, r, label, seqs); !s) c.add_error(spec, s);
    }
  }
}

std::string machine_description(int device) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return "CUDA device " + std::to_string(device);
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (cc %d.%d), %d SMs, L2 %d MB, %.1f GiB; driver %d.%d, runtime %d.%d", p.name,
                p.major, p.minor, p.multiProcessorCount, p.l2CacheSize >> 20, double(p.totalGlobalMem) / (1 << 30),
                drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
  return buf;
}

}  // namespace

int run_cuda_benchmarks(Report& report, const CudaBenchOptions& opt) {
  const std::string why = cuda::unavailable_reason();
  if (!why.empty()) {
    std::fprintf(stderr, "bench-kernels: --backend cuda needs a usable GPU: %s\n", why.c_str());
    return 1;
  }
  auto devices = cuda::list_devices();
  if (!devices || opt.device < 0 || size_t(opt.device) >= devices->size()) {
    std::fprintf(stderr, "bench-kernels: --backend cuda: device %d is not usable (%s)\n", opt.device,
                 devices ? (std::to_string(devices->size()) + " visible").c_str() : devices.status().to_string().c_str());
    return 1;
  }
  auto wants_op = [&](const char* op) {
    return opt.ops.empty() || std::find(opt.ops.begin(), opt.ops.end(), op) != opt.ops.end();
  };
  const auto t_start = std::chrono::steady_clock::now();
  Bench c{report, opt};
  report.machine = machine_description(opt.device);
  report.gemm_ceiling = "cuBLAS bf16 8192^3";
  cudaDeviceGetAttribute(&g_clock_khz, cudaDevAttrClockRate, opt.device);

  {
    // The matmul context (it also measures the ceilings); its cuBLAS workspace outlives it.
    DevBuf workspace;
    cuda::Context ctx;
    if (Status s = make_context(ctx, opt.device, workspace); !s) {
      std::fprintf(stderr, "bench-kernels: --backend cuda: %s\n", s.to_string().c_str());
      return 1;
    }
    std::fprintf(stderr, "measuring the ceilings (1 GiB device copy, bf16 8192^3 GEMM)...\n");
    auto copy = measure_copy_gbps(ctx.stream);
    auto gemm = copy ? measure_bf16_tflops(ctx) : Expected<double>(copy.status());
    if (!copy || !gemm) {
      std::fprintf(stderr, "bench-kernels: --backend cuda: measuring the ceilings failed: %s\n",
                   (!copy ? copy.status() : gemm.status()).to_string().c_str());
      return 1;
    }
    report.copy_bandwidth_gbps = *copy;
    report.gemm_tflops = *gemm;
    std::fprintf(stderr, "  copy %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s\n", *copy, *gemm);
    if (wants_op("matmul")) bench_matmul(c, ctx);
    cudaStreamSynchronize(ctx.stream);
  }

  const bool backend_ops = wants_op("attention") || wants_op("deltanet") || wants_op("conv1d_silu") ||
                           wants_op("rms_norm") || wants_op("rope");
  if (backend_ops) {
    auto be = cuda::make_backend(opt.device);
    if (!be) {
      for (const char* op : {"attention", "deltanet", "conv1d_silu", "rms_norm", "rope"})
        if (wants_op(op)) c.add_error({op, "-", "cuda::make_backend"}, be.status());
    } else {
      Backend& b = **be;
      if (wants_op("attention")) bench_attention(c, b);
      if (wants_op("deltanet")) bench_deltanet(c, b);
      if (wants_op("conv1d_silu")) bench_conv(c, b);
      if (wants_op("rms_norm")) bench_rms_norm(c, b);
      if (wants_op("rope")) bench_rope(c, b);
    }
  }
  if (wants_op("sample")) run_sampling_benchmarks(report, opt);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  report.machine += "; " + std::to_string(report.rows.size()) + " rows in " + fmt("%.0f", secs) + " s";
  if (!g_fatal.empty()) report.machine += "; " + g_fatal;
  return 0;
}

}  // namespace anvil::bench
