// bench-kernels --backend cuda: what every section shares. bench_kernels_cuda.cu describes the
// tool and its method and runs the sections (bench_kernels_cuda_matmul.cu: matmul;
// bench_kernels_cuda_ops.cu: the ops reached through the Backend interface). Here: error helpers
// and device buffers, random fills, the ceilings, the two timing loops (a cuda::Context stream;
// Backend::run_step), rows and the Bench context, the Backend-op scaffolding, and the sections'
// entry points. Everything lives in anvil::bench::cuda_harness; what only one file uses stays in
// an unnamed namespace of that file.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_kernels_cuda.h"
#include "core/backend.h"
#include "core/dtype.h"
#include "core/status.h"
#include "core/tensor.h"
#include "cuda/ops.h"

namespace anvil::bench::cuda_harness {

// Set when the CUDA context is lost (a kernel faulted): every later row reports it instead of
// running.
extern std::string g_fatal;

// ---------------------------------------------------------------------------- helpers
Status cuda_err(cudaError_t e, const char* what);
#define BENCH_CUDA(call) ANVIL_RETURN_IF_ERROR(cuda_err((call), #call))

// After a failed row: clears a non-sticky error; a sticky one (the context is gone) sets g_fatal.
void check_device_after(const std::string& row);

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

int copies_for(double bytes_per_call);

std::string fmt(const char* f, double v);

// ---------------------------------------------------------------------------- fills (random inputs)
Status fill_f32(float* p, size_t n, float lo, float hi, uint32_t seed, cudaStream_t s = nullptr);
Status fill_f16(void* p, size_t n, float lo, float hi, uint32_t seed, cudaStream_t s = nullptr);

// Random valid blocks of `type` over `bytes` (whole blocks, rows packed).
Status fill_quantized(DType type, void* p, size_t bytes, uint32_t seed, cudaStream_t s);

// ---------------------------------------------------------------------------- ceilings
// Device-to-device copy of 1 GiB: (read + write) bytes / time, GB/s.
Expected<double> measure_copy_gbps(cudaStream_t s);

// cuBLAS bf16 8192^3 GEMM (f32 accumulation, bf16 output), TFLOP/s.
Expected<double> measure_bf16_tflops(cuda::Context& ctx);

// ---------------------------------------------------------------------------- timing
struct Timed {
  Status status;
  double us = 0;    // median time per call
  int calls = 0;    // calls per timed sample
  bool graph = false;
};

extern int g_clock_khz;  // SM clock, for the spin kernel's cycle count

// launch(i) enqueues call i on `stream` (call i uses weight copy i % copies). Warm-up: every
// copy once. Then a CUDA graph of N calls timed with events (or, if the calls cannot be
// captured, N calls on the stream queued behind a spin kernel), median over `samples` / N.
Timed time_stream(cudaStream_t stream, int copies, int samples, const std::function<Status(int)>& launch);

// call(i) enqueues call i through the Backend (state / KV copy i % copies). Host-clocked:
// warm-up (every copy once), an estimate, then N calls recorded under one run_step key (graph
// replay once captured), median over `samples` of (synchronize .. run_step .. synchronize) / N.
Timed time_backend(Backend& be, int copies, int samples, const std::function<Status(int)>& call, const Tensor& out);

// ---------------------------------------------------------------------------- rows
struct RowSpec {
  std::string op, shape, candidate;
  double bytes = 0;  // fewest bytes moved per call
  double flops = 0;  // per call; 0 = not FLOP-bound (no compute fraction)
  bool ranked = true;
  std::string note;
};

Row make_row(const Report& rep, const RowSpec& spec, const Timed& t);

void log_row(const Row& r);

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
std::string stream_note(const Timed& t, int copies);
std::string backend_note(const Timed& t, int copies, const char* what);

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

struct SeqSpec {
  int32_t n_tokens, n_past;
};

// A step of the given sequences, each with its own pages (page_size 16) and state slot s.
Expected<DeviceStep> make_step(Backend& be, const std::vector<SeqSpec>& seqs, int32_t* total_pages);

Status sync_fill();

// ---------------------------------------------------------------------------- sections
// Called by run_cuda_benchmarks (bench_kernels_cuda.cu) in this order, each op only when asked for.
// bench_kernels_cuda_matmul.cu: matmul through its own cuda::Context (the ceilings use it too).
Status make_context(cuda::Context& ctx, int device, DevBuf& workspace);
void bench_matmul(Bench& c, cuda::Context& ctx);
// bench_kernels_cuda_ops.cu: the ops reached through the Backend interface.
void bench_attention(Bench& c, Backend& be);
void bench_deltanet(Bench& c, Backend& be);
void bench_conv(Bench& c, Backend& be);
void bench_rms_norm(Bench& c, Backend& be);
void bench_rope(Bench& c, Backend& be);

}  // namespace anvil::bench::cuda_harness
