// bench-cuda-gemv: the quantized decode GEMV (cuda/gemv.h) against the copy ceiling and the
// off-the-shelf candidate (dequantize to f16 + cublasGemmEx), on the Qwen shapes of
// bench/NOTES.md. Prints one markdown table.
//
// Timing: CUDA events around a batch of 10 back-to-back launches, queued behind a spin kernel
// so the host's launch rate never shows; median of 60 batches after warm-up. Each launch reads
// the next of several weight copies (>= 256 MB in all, > 5x the 50 MB L2), so every run streams
// its weights from HBM as a decode step does. Weights are random valid blocks (random quants
// and scales, small f16 d), not zeros.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "cuda/gemv.h"
#include "cuda/quant_blocks.cuh"

namespace {

using anvil::DType;

#define CHECK_CUDA(call)                                                                       \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)
#define CHECK_CUBLAS(call)                                                                  \
  do {                                                                                      \
    cublasStatus_t s_ = (call);                                                             \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                      \
      std::fprintf(stderr, "%s:%d %s: cublas status %d\n", __FILE__, __LINE__, #call, int(s_)); \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)
#define CHECK_STATUS(expr)                                                                   \
  do {                                                                                       \
    anvil::Status s_ = (expr);                                                               \
    if (!s_.is_ok()) {                                                                       \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, s_.to_string().c_str());         \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

constexpr size_t kRotateBytes = size_t(256) << 20;
constexpr int kSamples = 60, kBatch = 10;

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float uniform() { return float(next() >> 40) / float(1 << 24); }
};

struct TypeShape {
  int block_values, block_bytes;
};
TypeShape type_shape(DType t) {
  switch (t) {
    case DType::Q4_K: return {256, 144};
    case DType::Q6_K: return {256, 210};
    default: return {32, 34};
  }
}

// Random valid blocks: random quant bytes and scales, f16 d (and dmin) small and positive.
std::vector<uint8_t> random_blocks(DType t, size_t n_blocks, Rng& rng) {
  const TypeShape ts = type_shape(t);
  std::vector<uint8_t> out(n_blocks * ts.block_bytes);
  for (size_t i = 0; i < out.size(); i += 8) {
    const uint64_t v = rng.next();
    for (size_t k = 0; k < 8 && i + k < out.size(); ++k) out[i + k] = uint8_t(v >> (8 * k));
  }
  for (size_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = out.data() + b * ts.block_bytes;
    const uint16_t d = anvil::fp32_to_fp16(0.001f + 0.01f * rng.uniform());
    const uint16_t dmin = anvil::fp32_to_fp16(0.001f + 0.01f * rng.uniform());
    const size_t d_at = t == DType::Q6_K ? 208 : 0;
    std::memcpy(blk + d_at, &d, 2);
    if (t == DType::Q4_K) std::memcpy(blk + 2, &dmin, 2);
  }
  return out;
}

// ------------------------------------------------------------------ the cuBLAS candidate's kernels
// Dequantize to f16, 8 values (one 16-byte store) per thread.
__global__ void dequant_f16_kernel(DType t, const uint8_t* __restrict__ w, int64_t n_blocks, __half* __restrict__ out) {
  const int block_values = t == DType::Q8_0 ? 32 : 256;
  const int block_bytes = t == DType::Q4_K ? 144 : t == DType::Q6_K ? 210 : 34;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // group of 8 values
  const int64_t groups_per_block = block_values / 8;
  if (i >= n_blocks * groups_per_block) return;
  const int64_t b = i / groups_per_block;
  const int e0 = int(i % groups_per_block) * 8;
  const uint8_t* blk = w + b * block_bytes;
  __align__(16) __half v[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const float f = t == DType::Q4_K   ? anvil::cuda::qblk::q4k_value(blk, e0 + k)
                    : t == DType::Q6_K ? anvil::cuda::qblk::q6k_value(blk, e0 + k)
                                       : anvil::cuda::qblk::q8_0_value(blk, e0 + k);
    v[k] = __float2half(f);
  }
  *reinterpret_cast<uint4*>(out + b * block_values + e0) = *reinterpret_cast<const uint4*>(v);
}

__global__ void f32_to_f16_kernel(const float* __restrict__ x, int64_t n, __half* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2half(x[i]);
}

__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// ------------------------------------------------------------------ timing
cudaStream_t g_stream = nullptr;  // every timed launch goes here (graph capture needs a real stream)

// Median over kSamples of the mean time of kBatch launches; launch(i) enqueues the i-th
// repetition on g_stream.
double time_us(const std::function<void(int)>& launch) {
  for (int i = 0; i < 5; ++i) launch(i);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  std::vector<cudaEvent_t> ev(2 * kSamples);
  for (auto& e : ev) CHECK_CUDA(cudaEventCreate(&e));
  int rep = 0;
  for (int s = 0; s < kSamples; ++s) {
    spin_kernel<<<1, 1, 0, g_stream>>>(400000);  // ~200 us: the host queues the batch meanwhile
    CHECK_CUDA(cudaEventRecord(ev[2 * s], g_stream));
    for (int k = 0; k < kBatch; ++k) launch(rep++);
    CHECK_CUDA(cudaEventRecord(ev[2 * s + 1], g_stream));
  }
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  std::vector<double> t(kSamples);
  for (int s = 0; s < kSamples; ++s) {
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, ev[2 * s], ev[2 * s + 1]));
    t[s] = 1000.0 * ms / kBatch;
  }
  for (auto& e : ev) CHECK_CUDA(cudaEventDestroy(e));
  std::nth_element(t.begin(), t.begin() + kSamples / 2, t.end());
  return t[kSamples / 2];
}

// The same launches captured in one CUDA graph of `count` repetitions (as decode steps run):
// median over kSamples replays of replay time / count.
double time_graph_us(const std::function<void(int)>& launch, int count) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < count; ++i) launch(i);
  CHECK_CUDA(cudaStreamEndCapture(g_stream, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < 3; ++i) CHECK_CUDA(cudaGraphLaunch(exec, g_stream));
  std::vector<cudaEvent_t> ev(2 * kSamples);
  for (auto& e : ev) CHECK_CUDA(cudaEventCreate(&e));
  for (int s = 0; s < kSamples; ++s) {
    CHECK_CUDA(cudaEventRecord(ev[2 * s], g_stream));
    CHECK_CUDA(cudaGraphLaunch(exec, g_stream));
    CHECK_CUDA(cudaEventRecord(ev[2 * s + 1], g_stream));
  }
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  std::vector<double> t(kSamples);
  for (int s = 0; s < kSamples; ++s) {
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, ev[2 * s], ev[2 * s + 1]));
    t[s] = 1000.0 * ms / count;
  }
  for (auto& e : ev) CHECK_CUDA(cudaEventDestroy(e));
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaGraphDestroy(graph));
  std::nth_element(t.begin(), t.begin() + kSamples / 2, t.end());
  return t[kSamples / 2];
}

// Device-to-device copy of 1 GiB, (read + write) bytes / time, median of 20.
double copy_bandwidth_gbs() {
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  CHECK_CUDA(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < 23; ++i) {
    CHECK_CUDA(cudaEventRecord(e0));
    CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    CHECK_CUDA(cudaEventRecord(e1));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 3) t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(b));
  return 2.0 * double(bytes) / (t[t.size() / 2] * 1e-3) / 1e9;
}

struct Shape {
  const char* name;
  DType type;
  int64_t in, out;
};

void bench_shape(const Shape& sh, double copy_gbs, cublasHandle_t blas) {
  const TypeShape ts = type_shape(sh.type);
  const int64_t row_bytes = sh.in / ts.block_values * ts.block_bytes;
  const size_t w_bytes = size_t(row_bytes * sh.out);
  const size_t f16_bytes = size_t(sh.in * sh.out * 2);
  const int copies = int(std::clamp<size_t>((kRotateBytes + w_bytes - 1) / w_bytes, 1, 64));
  const int copies16 = int(std::clamp<size_t>((kRotateBytes + f16_bytes - 1) / f16_bytes, 1, 64));
  Rng rng{0x9e3779b97f4a7c15ull ^ uint64_t(sh.in * 131 + sh.out)};
  const std::vector<uint8_t> host_w = random_blocks(sh.type, w_bytes / ts.block_bytes, rng);

  std::vector<void*> w(copies), w16(copies16);
  for (auto& p : w) {
    CHECK_CUDA(cudaMalloc(&p, w_bytes));
    CHECK_CUDA(cudaMemcpy(p, host_w.data(), w_bytes, cudaMemcpyHostToDevice));
  }
  const int64_t n_blocks = int64_t(w_bytes / ts.block_bytes);
  const int64_t dq_threads = n_blocks * (ts.block_values / 8);
  auto dequant = [&](const void* src, void* dst) {
    dequant_f16_kernel<<<unsigned((dq_threads + 255) / 256), 256, 0, g_stream>>>(sh.type, static_cast<const uint8_t*>(src), n_blocks,
                                                                    static_cast<__half*>(dst));
  };
  CHECK_CUDA(cudaDeviceSynchronize());  // pageable uploads may still be in flight; g_stream does not wait
  for (auto& p : w16) {
    CHECK_CUDA(cudaMalloc(&p, f16_bytes));
    dequant(w[0], p);
  }
  void* w16_tmp = nullptr;  // the dequantize + GEMM candidate's own buffer
  CHECK_CUDA(cudaMalloc(&w16_tmp, f16_bytes));

  const int max_n = 8;
  std::vector<float> host_x(size_t(max_n * sh.in));
  for (auto& v : host_x) v = 2.0f * rng.uniform() - 1.0f;
  float *x = nullptr, *y = nullptr, *y_blas = nullptr;
  __half* x16 = nullptr;
  void* scratch = nullptr;
  const size_t scratch_bytes = anvil::cuda::gemv_scratch_bytes(max_n, sh.in);
  CHECK_CUDA(cudaMalloc(&x, host_x.size() * 4));
  CHECK_CUDA(cudaMalloc(&x16, host_x.size() * 2));
  CHECK_CUDA(cudaMalloc(&y, size_t(max_n * sh.out) * 4));
  CHECK_CUDA(cudaMalloc(&y_blas, size_t(max_n * sh.out) * 4));
  CHECK_CUDA(cudaMalloc(&scratch, scratch_bytes));
  CHECK_CUDA(cudaMemcpy(x, host_x.data(), host_x.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaDeviceSynchronize());

  for (int n : {1, 2, 4, 8}) {
    anvil::cuda::GemvParams p;
    p.weight_type = sh.type;
    p.weight_row_stride = row_bytes;
    p.in = sh.in;
    p.out = sh.out;
    p.n = n;
    p.x = x;
    p.x_stride = sh.in;
    p.y = y;
    p.y_stride = sh.out;
    p.scratch = scratch;
    p.scratch_bytes = scratch_bytes;
    // rows_per_warp 0 = the launcher's default
    auto anvil_run = [&](int rows_per_warp, bool prequantized) {
      return [&, rows_per_warp, prequantized](int i) {
        anvil::cuda::GemvParams q = p;
        q.weight = w[size_t(i % copies)];
        q.rows_per_warp = rows_per_warp;
        CHECK_STATUS(prequantized ? anvil::cuda::launch_gemv_prequantized(q, g_stream)
                                   : anvil::cuda::launch_gemv(q, g_stream));
      };
    };
    const double t_default = time_us(anvil_run(0, false));
    const double t_gemv_only = time_us(anvil_run(0, true));
    const int graph_count = std::max(kBatch, copies);
    const double t_graph = time_graph_us(anvil_run(0, false), graph_count);
    const double t_graph_gemv_only = time_graph_us(anvil_run(0, true), graph_count);
    std::string variants;
    for (int rpw : {1, 2, 4}) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.2f", variants.empty() ? "" : " / ", time_us(anvil_run(rpw, true)));
      variants += buf;
    }

    const float alpha = 1.0f, beta = 0.0f;
    auto gemm = [&](const void* w16p) {
      CHECK_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(sh.out), n, int(sh.in), &alpha, w16p, CUDA_R_16F,
                                int(sh.in), x16, CUDA_R_16F, int(sh.in), &beta, y_blas, CUDA_R_32F, int(sh.out),
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    };
    const int64_t nx = int64_t(n) * sh.in;
    const double t_deq_blas = time_us([&](int i) {
      dequant(w[size_t(i % copies)], w16_tmp);
      f32_to_f16_kernel<<<unsigned((nx + 255) / 256), 256, 0, g_stream>>>(x, nx, x16);
      gemm(w16_tmp);
    });
    const double t_blas = time_us([&](int i) { gemm(w16[size_t(i % copies16)]); });

    // Agreement of the two candidates on the same weights (copy 0).
    p.weight = w[0];
    p.rows_per_warp = 0;
    CHECK_STATUS(anvil::cuda::launch_gemv(p, g_stream));
    f32_to_f16_kernel<<<unsigned((nx + 255) / 256), 256, 0, g_stream>>>(x, nx, x16);
    gemm(w16[0]);
    CHECK_CUDA(cudaStreamSynchronize(g_stream));
    std::vector<float> a(size_t(n * sh.out)), b(a.size());
    CHECK_CUDA(cudaMemcpy(a.data(), y, a.size() * 4, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(b.data(), y_blas, b.size() * 4, cudaMemcpyDeviceToHost));
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      max_ref = std::max(max_ref, double(std::fabs(b[i])));
      max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
    }

    auto gbs = [&](double us) { return double(w_bytes) / (us * 1e-6) / 1e9; };
    std::printf(
        "| %s | %s | %d | %.2f | %.2f | %.0f | %.0f%% | %.2f / %.2f | %.0f%% | %s | %.2f | %.2f | %.1fx | %.1e |\n",
        sh.name, std::string(anvil::dtype_name(sh.type)).c_str(), n, t_default, t_gemv_only, gbs(t_gemv_only),
        100.0 * gbs(t_gemv_only) / copy_gbs, t_graph, t_graph_gemv_only, 100.0 * gbs(t_graph_gemv_only) / copy_gbs,
        variants.c_str(), t_deq_blas, t_blas, t_deq_blas / t_default, max_diff / std::max(max_ref, 1e-30));
    std::fflush(stdout);
  }

  for (auto* p : w) CHECK_CUDA(cudaFree(p));
  for (auto* p : w16) CHECK_CUDA(cudaFree(p));
  CHECK_CUDA(cudaFree(w16_tmp));
  CHECK_CUDA(cudaFree(x));
  CHECK_CUDA(cudaFree(x16));
  CHECK_CUDA(cudaFree(y));
  CHECK_CUDA(cudaFree(y_blas));
  CHECK_CUDA(cudaFree(scratch));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {  // no options: --help (or anything else) prints what the tool does
    const bool help = std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h";
    std::fprintf(help ? stdout : stderr, "%s", "bench-cuda-gemv: the quantized decode GEMV (Q4_K, Q6_K, Q8_0 on Qwen shapes, n = 1, 2, 4, 8)\nagainst the device-to-device copy bandwidth and dequantize + cuBLAS, as a Markdown table on stdout\n(bench/NOTES.md). Runs on the first CUDA device; takes no options.\n");
    if (!help) std::fprintf(stderr, "unknown argument: %s\n", argv[1]);
    return help ? 0 : 2;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbs = copy_bandwidth_gbs();
  std::printf("device: %s, %d SMs, L2 %d MB; device-to-device copy (read + write): %.0f GB/s\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_gbs);
  CHECK_CUDA(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  cublasHandle_t blas;
  CHECK_CUBLAS(cublasCreate(&blas));
  CHECK_CUBLAS(cublasSetStream(blas, g_stream));

  const Shape shapes[] = {
      {"Qwen3-4B q 2560->4096", DType::Q4_K, 2560, 4096},
      {"Qwen3-4B gate/up 2560->9728", DType::Q4_K, 2560, 9728},
      {"Qwen3-4B down 9728->2560", DType::Q4_K, 9728, 2560},
      {"Qwen2.5-7B gate/up 3584->18944", DType::Q4_K, 3584, 18944},
      {"Qwen3-4B LM head 2560->151936", DType::Q6_K, 2560, 151936},
      {"Qwen3-4B down 9728->2560", DType::Q6_K, 9728, 2560},
      {"Qwen3-4B gate/up 2560->9728", DType::Q8_0, 2560, 9728},
  };
  std::printf(
      "\n| shape | type | n | anvil (quantize x + gemv) us | gemv only us | gemv GB/s | of copy bw | "
      "graph: anvil / gemv only us | graph gemv of copy bw | gemv only, rows/warp 1 / 2 / 4 us | dequant+cuBLAS us | cuBLAS f16 alone us | deq+cuBLAS / anvil | max diff / max|y| |\n"
      "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|\n");
  for (const Shape& s : shapes) bench_shape(s, copy_gbs, blas);
  CHECK_CUBLAS(cublasDestroy(blas));
  return 0;
}
