// bench-kernels --backend cuda (bench/bench_kernels_cuda.cu): every CUDA op candidate per shape
// at the layer shapes of Qwen3-4B, Qwen3.5-4B and Qwen2.5-7B, against the copy-bandwidth and
// bf16-GEMM ceilings measured in the same run, as rows of the shared report (bench/report.h).
// Plain C++ so bench_kernels.cpp can include it in every build; it is compiled and linked only
// when ANVIL_CUDA is on (ANVIL_BENCH_CUDA is then defined for bench_kernels.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/report.h"

namespace anvil::bench {

struct CudaBenchOptions {
  std::vector<std::string> ops;     // subset of cuda_bench_ops(); empty = all
  std::vector<std::string> models;  // subset of cuda_bench_models(); empty = all
  std::vector<int64_t> tokens;      // matmul token counts; empty = 1, 8, 32, 64, 512
  std::string filter;               // run only shapes whose label contains this ("" = all)
  bool quick = false;               // fewer shapes and sizes (a smoke run of about a minute)
  int device = 0;
  int samples = 25;                 // timed repetitions per row (median reported; >= 20 by default)
};

// The ops and models --backend cuda knows (inline: the CLI lists them in every build).
inline std::vector<std::string> cuda_bench_ops() {
  return {"matmul", "attention", "deltanet", "conv1d_silu", "rms_norm", "rope", "sample"};
}
inline std::vector<std::string> cuda_bench_models() { return {"qwen3-4b", "qwen35-4b", "qwen25-7b"}; }

// Measures the ceilings into report (copy_bandwidth_gbps, gemm_tflops, machine) and appends a
// row per (op, shape, candidate); a candidate or op that fails gets a row with its error and the
// run goes on. Returns 0, or 1 after a one-line message on stderr when no GPU is usable.
int run_cuda_benchmarks(Report& report, const CudaBenchOptions& options);

// The "sample" op (bench/bench_sampling_cuda.cu): Backend::sample on the CUDA backend against the
// Backend default (rows copied to the host + sample_row) at Qwen's and Gemma 3's vocabularies.
// Appends its rows to report (reads report.copy_bandwidth_gbps, so call it after the ceilings).
void run_sampling_benchmarks(Report& report, const CudaBenchOptions& options);

}  // namespace anvil::bench
