// bench-kernels --backend cuda, the matmul section: every projection shape of the three models
// (Q4_K, and Q6_K for ffn_down and the LM head) at each token count, each candidate of
// cuda::matmul_candidates() that supports it, the dispatcher and cuBLAS f16 on resident F16
// weights, timed on the stream of this section's own cuda::Context (bench_kernels_cuda.cu
// describes the method; the harness is bench_kernels_cuda_harness.h).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_kernels_cuda_harness.h"
#include "core/backend.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "cuda/gemv.h"
#include "cuda/matmul.h"
#include "cuda/matmul_tuning.h"
#include "cuda/ops.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::bench::cuda_harness {

// ---------------------------------------------------------------------------- matmul
namespace {

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

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

// Reads n16 16-byte words and writes nothing (unless a value no fill produces turns up): what a
// kernel that streams the same weight bytes once can reach, launched (programmatically) in the same
// kind of chain as the GEMV. A short read falls well short of the copy bandwidth (14 MB: 87%,
// 6 MB: 66% on the H100; bench/NOTES.md), so this row is the GEMV's ceiling at its size.
__global__ void read_only_kernel(const uint4* p, int64_t n16, unsigned* sink) {
  constexpr int kIlp = 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  uint32_t x = 0;
  for (int64_t i = first; i < n16; i += stride * kIlp) {
    uint4 v[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) v[k] = i + k * stride < n16 ? __ldg(p + i + k * stride) : make_uint4(0, 0, 0, 0);
    if (i == first) cuda::pdl_wait();  // after the first loads, as the GEMV does
#pragma unroll
    for (int k = 0; k < kIlp; ++k) x ^= v[k].x ^ v[k].y ^ v[k].z ^ v[k].w;
  }
  if (first >= n16) cuda::pdl_wait();
  cuda::pdl_allow_dependents();
  if (x == 0x9e3779b9u) *sink = x;
}

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

}  // namespace

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

namespace {

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

    // The GEMV as decode runs it: x already quantized by the kernel that wrote it (add_rms_norm and
    // glu do, cuda/gemv.h), and for gate/up both matrices in one launch (Backend::matmul_group).
    // Not candidates (the dispatcher's rows include the quantize launch); they show the GEMV alone.
    if (n <= cuda::kGemvTokensPerPass && (sh.type == DType::Q4_K || sh.type == DType::Q5_K ||
                                          sh.type == DType::Q6_K || sh.type == DType::Q8_0)) {
      DevBuf scratch;
      auto params = [&](int i, float* out) {
        cuda::GemvParams p;
        p.weight_type = sh.type;
        p.weight = w.as<char>() + stride * size_t(i % copies);
        p.weight_row_stride = int64_t(*row_bytes(sh.type, uint64_t(sh.in)));
        p.in = sh.in;
        p.out = sh.out;
        p.n = int(n);
        p.x = x.as<float>();
        p.x_stride = sh.in;
        p.y = out;
        p.y_stride = sh.out;
        p.scratch = scratch.p;
        p.scratch_bytes = cuda::gemv_scratch_bytes(int(n), sh.in);
        return p;
      };
      const Status quantized = [&]() -> Status {
        ANVIL_RETURN_IF_ERROR(scratch.alloc(cuda::gemv_scratch_bytes(int(n), sh.in)));
        ANVIL_RETURN_IF_ERROR(cuda::launch_gemv_quantize_activations(params(0, y.as<float>()), ctx.stream));
        BENCH_CUDA(cudaStreamSynchronize(ctx.stream));
        return Status::ok();
      }();
      RowSpec one{"matmul", label, "gemv_int8 alone (x pre-quantized)", double(wbytes) + act_bytes, flops, false};
      if (!quantized) c.add_error(one, quantized);
      else if (!c.lost(one)) {
        Timed t = time_stream(ctx.stream, copies, c.opt.samples, [&](int i) {
          return cuda::launch_gemv_prequantized(params(i, y.as<float>()), ctx.stream);
        });
        one.note = "as in decode, where the producer quantizes x; " + stream_note(t, copies);
        c.add(one, t);
      }
      RowSpec pair{"matmul", label, "gemv_int8 alone, gate + up in one launch", 2 * double(wbytes) + act_bytes,
                   2 * flops, false};
      if (quantized && copies >= 2 && sh.names.find("gate/up") != std::string::npos && !c.lost(pair)) {
        const int pairs = copies / 2;
        Timed t = time_stream(ctx.stream, pairs, c.opt.samples, [&](int i) {
          const cuda::GemvParams ps[2] = {params(2 * (i % pairs), y.as<float>()),
                                          params(2 * (i % pairs) + 1, y_cmp.as<float>())};
          return cuda::launch_gemv_prequantized_group(ps, ctx.stream);
        });
        pair.note = "decode's grouped launch, both matrices' bytes; " + stream_note(t, pairs);
        c.add(pair, t);
      }
    }

    // The read ceiling at this size (once per shape: it does not depend on n).
    if (n == ns.front()) {
      const int grid = std::max(ctx.sm_count, 1) * 8;  // 8 blocks of 256 per SM, 4 loads in flight each
      const auto read_row = [&](const char* what, int matrices, int calls) {
        RowSpec spec{"matmul", label, what, double(wbytes) * matrices, 0, false};
        if (c.lost(spec)) return;
        const int64_t n16 = int64_t((stride * size_t(matrices - 1) + wbytes) / 16);
        Timed t = time_stream(ctx.stream, calls, c.opt.samples, [&](int i) {
          const auto* p = reinterpret_cast<const uint4*>(w.as<char>() + stride * size_t(matrices * (i % calls)));
          return cuda::launch_pdl("read_only_kernel", read_only_kernel, dim3(unsigned(grid)), dim3(256), 0, ctx.stream,
                                  p, n16, tmp.as<unsigned>());
        });
        spec.note = "reads the weight bytes, no math: this size's ceiling; " + stream_note(t, calls);
        c.add(spec, t);
      };
      read_row("ref: read-only kernel", 1, copies);
      if (copies >= 2 && sh.names.find("gate/up") != std::string::npos)
        read_row("ref: read-only kernel, gate + up", 2, copies / 2);
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

}  // namespace

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

}  // namespace anvil::bench::cuda_harness
