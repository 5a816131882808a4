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
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "bench/bench_kernels_cuda.h"
#include "bench/bench_kernels_cuda_harness.h"
#include "core/backend.h"
#include "cuda/backend.h"
#include "cuda/device.h"
#include "cuda/ops.h"

namespace anvil::bench {

// The shared harness and the sections' entry points (bench_kernels_cuda_harness.h).
using namespace cuda_harness;

namespace {

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
