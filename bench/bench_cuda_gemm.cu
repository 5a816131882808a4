// bench-cuda-gemm: the tensor-core GEMM on quantized weights (cuda/gemm.h) against the
// off-the-shelf candidate — dequantize the whole weight to f16 + cublasGemmEx (implemented here,
// as cuda/matmul.cu's version is being written elsewhere) — and against cuBLAS f16 on weights kept
// resident in f16 (3.5x the memory: the upper bound of the cuBLAS route), on the Qwen prefill
// shapes of bench/NOTES.md and n = 32, 64, 128, 512. Prints one markdown table; TFLOP/s are
// also given as a fraction of a bf16 cuBLAS 8192^3 GEMM measured in the same run.
//
// Timing: CUDA events around a batch of back-to-back launches queued behind a spin kernel (the
// host's launch rate never shows); median of kSamples batches after warm-up. Each launch reads
// the next of several weight copies (>= 256 MB in all, > 5x the 50 MB L2), so weights stream
// from HBM as in a real prefill step; activations (just written by the previous op in a real
// step) stay L2-resident. Weights are random valid blocks (random quants and scales, small f16
// d), activations uniform in [-1, 1): never zeros.
#include <cublas_v2.h>
#include <cuda_bf16.h>
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

#include "core/dtype.h"
#include "core/fp16.h"
#include "cuda/gemm.h"

namespace {

using anvil::DType;

#define CHECK_CUDA(call)                                                                         \
  do {                                                                                           \
    cudaError_t e_ = (call);                                                                     \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)
#define CHECK_CUBLAS(call)                                                                     \
  do {                                                                                         \
    cublasStatus_t s_ = (call);                                                                \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cublasGetStatusName(s_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)
#define CHECK_STATUS(expr)                                                           \
  do {                                                                               \
    anvil::Status s_ = (expr);                                                       \
    if (!s_.is_ok()) {                                                               \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, s_.to_string().c_str()); \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

constexpr size_t kRotateBytes = size_t(256) << 20;
constexpr int kSamples = 25, kWarmup = 3;

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

// Bytes per row per 256 values.
int tile_bytes(DType t) {
  switch (t) {
    case DType::Q4_K: return 144;
    case DType::Q5_K: return 176;
    case DType::Q6_K: return 210;
    default: return 272;  // Q8_0: 8 blocks of 34
  }
}

// Random valid blocks: random bytes, then small positive f16 d (and dmin) at their offsets.
std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t in, Rng& rng) {
  const int64_t row_bytes = in / 256 * tile_bytes(t);
  std::vector<uint8_t> out(size_t(rows * row_bytes));
  for (size_t i = 0; i < out.size(); i += 8) {
    const uint64_t v = rng.next();
    for (size_t k = 0; k < 8 && i + k < out.size(); ++k) out[i + k] = uint8_t(v >> (8 * k));
  }
  const int block_bytes = t == DType::Q8_0 ? 34 : tile_bytes(t);
  for (size_t b = 0; b < out.size() / block_bytes; ++b) {
    uint8_t* blk = out.data() + b * block_bytes;
    const uint16_t d = anvil::fp32_to_fp16(0.001f + 0.01f * rng.uniform());
    const uint16_t dmin = anvil::fp32_to_fp16(0.001f + 0.01f * rng.uniform());
    std::memcpy(blk + (t == DType::Q6_K ? 208 : 0), &d, 2);
    if (t == DType::Q4_K || t == DType::Q5_K) std::memcpy(blk + 2, &dmin, 2);
  }
  return out;
}

// ------------------------------------------------------------------ the cuBLAS candidate's kernels
__device__ float f16_at(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
}

__device__ void q4k_scale_min(const uint8_t* scales, int s, int& sc, int& m) {
  if (s < 4) {
    sc = scales[s] & 63;
    m = scales[s + 4] & 63;
  } else {
    sc = (scales[s + 4] & 15) | ((scales[s - 4] >> 6) << 4);
    m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

// Dequantize to f16: one thread per 8 consecutive values (one sub-block: one scale), one 16-byte
// store. Rows are packed (row stride = row bytes), so the weight is one run of super-blocks.
__global__ void dequant_f16_kernel(DType t, const uint8_t* __restrict__ w, int64_t n_groups, __half* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_groups) return;
  const int64_t sb = i / 32;  // super-block (256 values)
  const int e0 = int(i % 32) * 8;
  __align__(16) __half v[8];
  if (t == DType::Q4_K || t == DType::Q5_K) {
    const bool q5 = t == DType::Q5_K;
    const uint8_t* blk = w + sb * (q5 ? 176 : 144);
    const int c = e0 / 64, l0 = e0 % 64, hb = l0 / 32;
    int sc, m;
    q4k_scale_min(blk + 4, 2 * c + hb, sc, m);
    const float dsc = f16_at(blk) * sc, dm = f16_at(blk + 2) * m;
    const uint8_t* qs = blk + (q5 ? 48 : 16) + 32 * c;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int l = l0 % 32 + k;
      int q = hb ? qs[l] >> 4 : qs[l] & 15;
      if (q5) q |= ((blk[16 + l] >> (2 * c + hb)) & 1) << 4;
      v[k] = __float2half(dsc * float(q) - dm);
    }
  } else if (t == DType::Q6_K) {
    const uint8_t* blk = w + sb * 210;
    const int h = e0 / 128, g = (e0 % 128) / 32, l0 = e0 % 32;
    const float dsc = f16_at(blk + 208) * float(static_cast<int8_t>(blk[192 + e0 / 16]));
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int l = l0 + k;
      const uint8_t ql = blk[64 * h + 32 * (g & 1) + l];
      const int q = ((g < 2 ? ql & 15 : ql >> 4) | (((blk[128 + 32 * h + l] >> (2 * g)) & 3) << 4)) - 32;
      v[k] = __float2half(dsc * float(q));
    }
  } else {  // Q8_0
    const uint8_t* blk = w + sb * 272 + (e0 / 32) * 34;
    const float d = f16_at(blk);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = __float2half(d * float(static_cast<int8_t>(blk[2 + e0 % 32 + k])));
  }
  *reinterpret_cast<uint4*>(out + sb * 256 + e0) = *reinterpret_cast<const uint4*>(v);
}

__global__ void f32_to_f16_kernel(const float* __restrict__ x, int64_t n, __half* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2half(x[i]);
}

__global__ void fill_bf16_kernel(__nv_bfloat16* p, int64_t n, uint32_t seed) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint32_t h = uint32_t(i) * 2654435761u ^ seed;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  p[i] = __float2bfloat16(float(h & 0xffff) / 65536.0f - 0.5f);
}

__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// ------------------------------------------------------------------ timing
cudaStream_t g_stream = nullptr;

// Median over kSamples of the mean time of `batch` launches; launch(i) enqueues repetition i.
double time_us(const std::function<void(int)>& launch, int batch) {
  for (int i = 0; i < kWarmup; ++i) launch(i);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  std::vector<cudaEvent_t> ev(2 * kSamples);
  for (auto& e : ev) CHECK_CUDA(cudaEventCreate(&e));
  int rep = 0;
  for (int s = 0; s < kSamples; ++s) {
    spin_kernel<<<1, 1, 0, g_stream>>>(200000);  // ~100 us: the host queues the batch meanwhile
    CHECK_CUDA(cudaEventRecord(ev[2 * s], g_stream));
    for (int k = 0; k < batch; ++k) launch(rep++);
    CHECK_CUDA(cudaEventRecord(ev[2 * s + 1], g_stream));
  }
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaStreamSynchronize(g_stream));
  std::vector<double> t(kSamples);
  for (int s = 0; s < kSamples; ++s) {
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, ev[2 * s], ev[2 * s + 1]));
    t[s] = 1000.0 * ms / batch;
  }
  for (auto& e : ev) CHECK_CUDA(cudaEventDestroy(e));
  std::nth_element(t.begin(), t.begin() + kSamples / 2, t.end());
  return t[kSamples / 2];
}

// bf16 cuBLAS 8192^3 (the dense-rate ceiling of this run), TFLOP/s, median of 20.
double bf16_peak_tflops(cublasHandle_t blas) {
  const int64_t n = 8192;
  __nv_bfloat16 *a = nullptr, *b = nullptr, *c = nullptr;
  CHECK_CUDA(cudaMalloc(&a, size_t(n * n) * 2));
  CHECK_CUDA(cudaMalloc(&b, size_t(n * n) * 2));
  CHECK_CUDA(cudaMalloc(&c, size_t(n * n) * 2));
  fill_bf16_kernel<<<unsigned((n * n + 255) / 256), 256, 0, g_stream>>>(a, n * n, 1);
  fill_bf16_kernel<<<unsigned((n * n + 255) / 256), 256, 0, g_stream>>>(b, n * n, 2);
  CHECK_CUDA(cudaGetLastError());
  const float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < 23; ++i) {
    CHECK_CUDA(cudaEventRecord(e0, g_stream));
    CHECK_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(n), int(n), &alpha, a, CUDA_R_16BF, int(n), b,
                              CUDA_R_16BF, int(n), &beta, c, CUDA_R_16BF, int(n), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    CHECK_CUDA(cudaEventRecord(e1, g_stream));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 3) t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  CHECK_CUDA(cudaEventDestroy(e0));
  CHECK_CUDA(cudaEventDestroy(e1));
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(b));
  CHECK_CUDA(cudaFree(c));
  return 2.0 * double(n) * n * n / (t[t.size() / 2] * 1e-3) / 1e12;
}

struct Shape {
  const char* name;
  DType type;
  int64_t in, out;
};

void bench_shape(const Shape& sh, double peak_tflops, cublasHandle_t blas) {
  const int64_t row_bytes = sh.in / 256 * tile_bytes(sh.type);
  const size_t w_bytes = size_t(row_bytes * sh.out);
  const size_t f16_bytes = size_t(sh.in * sh.out * 2);
  const int copies = int(std::clamp<size_t>((kRotateBytes + w_bytes - 1) / w_bytes, 2, 64));
  const int copies16 = int(std::clamp<size_t>((kRotateBytes + f16_bytes - 1) / f16_bytes, 2, 64));
  Rng rng{0x9e3779b97f4a7c15ull ^ uint64_t(sh.in * 131 + sh.out)};
  const std::vector<uint8_t> host_w = random_weights(sh.type, sh.out, sh.in, rng);

  std::vector<void*> w(static_cast<size_t>(copies)), w16(static_cast<size_t>(copies16));
  for (auto& p : w) {
    CHECK_CUDA(cudaMalloc(&p, w_bytes));
    CHECK_CUDA(cudaMemcpy(p, host_w.data(), w_bytes, cudaMemcpyHostToDevice));
  }
  const int64_t dq_groups = sh.out * sh.in / 8;
  auto dequant = [&](const void* src, void* dst) {
    dequant_f16_kernel<<<unsigned((dq_groups + 255) / 256), 256, 0, g_stream>>>(
        sh.type, static_cast<const uint8_t*>(src), dq_groups, static_cast<__half*>(dst));
  };
  CHECK_CUDA(cudaDeviceSynchronize());  // pageable uploads may still be in flight; g_stream does not wait
  for (auto& p : w16) {
    CHECK_CUDA(cudaMalloc(&p, f16_bytes));
    dequant(w[0], p);
  }
  CHECK_CUDA(cudaGetLastError());
  void* w16_tmp = nullptr;  // the dequantize + GEMM candidate's own buffer
  CHECK_CUDA(cudaMalloc(&w16_tmp, f16_bytes));

  const int ns[] = {32, 64, 128, 512};
  const int64_t max_n = 512;
  std::vector<float> host_x(size_t(max_n * sh.in));
  for (auto& v : host_x) v = 2.0f * rng.uniform() - 1.0f;
  float *x = nullptr, *y = nullptr, *y_blas = nullptr;
  __half* x16 = nullptr;
  CHECK_CUDA(cudaMalloc(&x, host_x.size() * 4));
  CHECK_CUDA(cudaMalloc(&x16, host_x.size() * 2));
  CHECK_CUDA(cudaMalloc(&y, size_t(max_n * sh.out) * 4));
  CHECK_CUDA(cudaMalloc(&y_blas, size_t(max_n * sh.out) * 4));
  CHECK_CUDA(cudaMemcpy(x, host_x.data(), host_x.size() * 4, cudaMemcpyHostToDevice));

  for (int n : ns) {
    anvil::cuda::GemmParams p;
    p.weight_type = sh.type;
    p.weight_row_stride = row_bytes;
    p.in = sh.in;
    p.out = sh.out;
    p.n = n;
    p.x = x;
    p.x_stride = sh.in;
    p.y = y;
    p.y_stride = sh.out;
    size_t scratch_bytes = anvil::cuda::gemm_scratch_bytes(p);
    for (int c = 0; c < anvil::cuda::gemm_config_count(); ++c) {
      anvil::cuda::GemmParams q = p;
      q.config = c;
      scratch_bytes = std::max(scratch_bytes, anvil::cuda::gemm_scratch_bytes(q));
    }
    void* scratch = nullptr;
    CHECK_CUDA(cudaMalloc(&scratch, scratch_bytes));
    p.scratch = scratch;
    p.scratch_bytes = scratch_bytes;

    const double flop = 2.0 * double(n) * double(sh.in) * double(sh.out);
    const int batch = n >= 256 ? 4 : 10;
    auto anvil_run = [&](int config) {
      return [&, config](int i) {
        anvil::cuda::GemmParams q = p;
        q.weight = w[size_t(i % copies)];
        q.config = config;
        CHECK_STATUS(anvil::cuda::launch_gemm_mma(q, g_stream));
      };
    };
    const double t_anvil = time_us(anvil_run(-1), batch);
    std::string per_config;
    double t_best = INFINITY;
    int best = -1;
    for (int c = 0; c < anvil::cuda::gemm_config_count(); ++c) {
      anvil::cuda::GemmParams q = p;
      q.config = c;
      char buf[48];
      if (anvil::cuda::gemm_scratch_bytes(q) == 0) {
        std::snprintf(buf, sizeof buf, "%s-", per_config.empty() ? "" : " / ");
      } else {
        const double tc = time_us(anvil_run(c), batch);
        if (tc < t_best) t_best = tc, best = c;
        std::snprintf(buf, sizeof buf, "%s%.1f", per_config.empty() ? "" : " / ", tc);
      }
      per_config += buf;
    }

    const float alpha = 1.0f, beta = 0.0f;
    auto gemm = [&](const void* w16p) {
      CHECK_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(sh.out), n, int(sh.in), &alpha, w16p, CUDA_R_16F,
                                int(sh.in), x16, CUDA_R_16F, int(sh.in), &beta, y_blas, CUDA_R_32F, int(sh.out),
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    };
    const int64_t nx = int64_t(n) * sh.in;
    auto convert_x = [&]() {
      f32_to_f16_kernel<<<unsigned((nx + 255) / 256), 256, 0, g_stream>>>(x, nx, x16);
    };
    const double t_deq_blas = time_us(
        [&](int i) {
          dequant(w[size_t(i % copies)], w16_tmp);
          convert_x();
          gemm(w16_tmp);
        },
        batch);
    convert_x();
    const double t_blas = time_us([&](int i) { gemm(w16[size_t(i % copies16)]); }, batch);

    // Agreement with the cuBLAS route on the same weights (copy 0).
    p.weight = w[0];
    CHECK_STATUS(anvil::cuda::launch_gemm_mma(p, g_stream));
    convert_x();
    gemm(w16[0]);
    CHECK_CUDA(cudaStreamSynchronize(g_stream));
    std::vector<float> a(size_t(n * sh.out)), b(a.size());
    CHECK_CUDA(cudaMemcpy(a.data(), y, a.size() * 4, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(b.data(), y_blas, b.size() * 4, cudaMemcpyDeviceToHost));
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      max_ref = std::max(max_ref, double(std::fabs(b[i])));
      max_diff = std::max(max_diff, std::isfinite(a[i]) ? double(std::fabs(a[i] - b[i])) : INFINITY);
    }

    auto tflops = [&](double us) { return flop / (us * 1e-6) / 1e12; };
    std::printf("| %s | %s | %d | %.1f | %.0f | %.0f%% | %s | %s | %s %.1f | %.1f | %.1f | %.2fx | %.1e |\n", sh.name,
                std::string(anvil::dtype_name(sh.type)).c_str(), n, t_anvil, tflops(t_anvil),
                100.0 * tflops(t_anvil) / peak_tflops, anvil::cuda::gemm_plan_name(p).c_str(), per_config.c_str(),
                best >= 0 ? anvil::cuda::gemm_config_name(best) : "-", t_best, t_deq_blas, t_blas,
                t_deq_blas / t_anvil, max_diff / std::max(max_ref, 1e-30));
    std::fflush(stdout);
    CHECK_CUDA(cudaFree(scratch));
  }

  for (auto* p : w) CHECK_CUDA(cudaFree(p));
  for (auto* p : w16) CHECK_CUDA(cudaFree(p));
  CHECK_CUDA(cudaFree(w16_tmp));
  CHECK_CUDA(cudaFree(x));
  CHECK_CUDA(cudaFree(x16));
  CHECK_CUDA(cudaFree(y));
  CHECK_CUDA(cudaFree(y_blas));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {  // no options: --help (or anything else) prints what the tool does
    const bool help = std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h";
    std::fprintf(help ? stdout : stderr, "%s", "bench-cuda-gemm: the tensor-core GEMM on quantized weights against dequantize + cuBLAS and\ncuBLAS f16, as a Markdown table on stdout (bench/NOTES.md). Runs on the first CUDA device;\ntakes no options.\n");
    if (!help) std::fprintf(stderr, "unknown argument: %s\n", argv[1]);
    return help ? 0 : 2;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  CHECK_CUDA(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  cublasHandle_t blas;
  CHECK_CUBLAS(cublasCreate(&blas));
  CHECK_CUBLAS(cublasSetStream(blas, g_stream));
  const double peak = bf16_peak_tflops(blas);
  std::printf("device: %s, %d SMs, L2 %d MB; cuBLAS bf16 8192^3: %.0f TFLOP/s\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20, peak);

  const Shape shapes[] = {
      {"Qwen3-4B gate/up 2560->9728", DType::Q4_K, 2560, 9728},
      {"Qwen3-4B down 9728->2560", DType::Q4_K, 9728, 2560},
      {"Qwen3-4B q 2560->4096", DType::Q4_K, 2560, 4096},
      {"Qwen2.5-7B gate/up 3584->18944", DType::Q4_K, 3584, 18944},
      {"Qwen2.5-7B down 18944->3584", DType::Q4_K, 18944, 3584},
      {"Qwen3-4B down 9728->2560", DType::Q6_K, 9728, 2560},
      {"Qwen3-4B gate/up 2560->9728", DType::Q5_K, 2560, 9728},
      {"Qwen3-4B gate/up 2560->9728", DType::Q8_0, 2560, 9728},
  };
  std::string configs;
  for (int c = 0; c < anvil::cuda::gemm_config_count(); ++c)
    configs += std::string(c ? " / " : "") + anvil::cuda::gemm_config_name(c);
  std::printf(
      "\n| shape | type | n | anvil us | TFLOP/s | of bf16 8192^3 | plan | per config us (%s; default split) | best | "
      "dequant+cuBLAS us | cuBLAS f16 resident us | deq+cuBLAS / anvil | max diff / max|y| |\n"
      "|---|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|\n",
      configs.c_str());
  for (const Shape& s : shapes) bench_shape(s, peak, blas);
  CHECK_CUBLAS(cublasDestroy(blas));
  CHECK_CUDA(cudaStreamDestroy(g_stream));
  return 0;
}
