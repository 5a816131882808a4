// cuda::matmul: validation (as the CPU backend's check_matmul), then the candidate the tuner
// chose for the weight shape and token count (cuda/matmul_tuning.h), then the bias.
//
// cuBLAS is column-major. A row-major [r, c] matrix with row stride ld is the column-major
// [c, r] matrix with leading dimension ld, so with W [out, in], x [n, in] and y [n, out] all
// row-major, y^T [out, n] = op_T(W as [in, out]) * (x as [in, n]): gemm(op_T, op_N, m = out,
// n = n, k = in, A = W (lda = W's row stride), B = x (ldb = x's), C = y (ldc = y's)). A tile of
// output rows [o0, o0 + r) is then m = r, A = those W rows, C = y + o0.
#include "cuda/matmul.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/dequant.h"
#include "cuda/gemm.h"
#include "cuda/gemv.h"
#include "cuda/gemv_f32.h"
#include "cuda/matmul_tuning.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda {
namespace {

// Scratch budgets of the cuBLAS candidate. An LM head of 151936 x 2560 is 778 MB as f16, so W
// is dequantized in tiles of output rows of at most kDequantBudget bytes; a long prefill's x is
// converted in chunks of tokens of at most kActivationBudget. 64 MiB tiles keep each GEMM large
// (>= 13107 rows at in = 2560) while the scratch stays small beside the weights.
constexpr size_t kDequantBudget = size_t(64) << 20;
constexpr size_t kActivationBudget = size_t(64) << 20;
constexpr int64_t kTileRowMultiple = 128;  // tiles other than the last: a multiple of the GEMM tile

constexpr int kThreads = 256;

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

// Elements between rows of an F32 activation (the cuBLAS leading dimension); a single row may
// have any stride, so it is raised to the row length.
int64_t ld_elements(const Tensor& t, size_t element_bytes) {
  return std::max<int64_t>(int64_t(t.row_stride / element_bytes), t.cols);
}

// ---------------------------------------------------------------------------- small kernels
// x [rows, cols] f32 with row stride x_stride (elements) -> out [rows, cols] f16, contiguous.
__global__ void __launch_bounds__(kThreads)
    f32_to_f16_rows_kernel(const float* __restrict__ x, int64_t x_stride, int64_t cols, int64_t total,
                           __half* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= total) return;
  const int64_t r = i / cols, c = i % cols;
  out[i] = __float2half_rn(x[r * x_stride + c]);
}

// y[t, o] += bias[o], the CPU's order (one f32 add after the product).
__global__ void __launch_bounds__(kThreads)
    add_bias_kernel(float* __restrict__ y, int64_t y_stride, int64_t out, int64_t total,
                    const float* __restrict__ bias) {
  pdl_begin();  // cuda/pdl.cuh
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= total) return;
  const int64_t t = i / out, o = i % out;
  y[t * y_stride + o] += bias[o];
}

unsigned blocks_for(int64_t total) { return unsigned((total + kThreads - 1) / kThreads); }

Status convert_rows_to_f16(Context& ctx, const Tensor& x, int64_t first_row, int64_t rows, __half* out) {
  const int64_t total = rows * x.cols;
  if (total == 0) return Status::ok();
  const float* src = x.row<const float>(first_row);
  f32_to_f16_rows_kernel<<<blocks_for(total), kThreads, 0, ctx.stream>>>(src, ld_elements(x, 4), x.cols, total, out);
  ANVIL_CUDA_CHECK_LAUNCH("f32_to_f16_rows_kernel");
  return Status::ok();
}

Status add_bias(Context& ctx, const Weight& bias, Tensor y) {
  const int64_t total = y.rows * y.cols;
  if (total == 0) return Status::ok();
  ANVIL_RETURN_IF_ERROR(launch_pdl("add_bias_kernel", add_bias_kernel, dim3(blocks_for(total)), dim3(kThreads), 0,
                                   ctx.stream, static_cast<float*>(y.data), ld_elements(y, 4), y.cols, total,
                                   static_cast<const float*>(bias.t.data)));
  return Status::ok();
}

// Runs `body` with the handle in host pointer mode and math mode `math`, then restores the
// handle's previous modes (other op families share ctx.cublas).
template <class Body>
Status with_blas_modes(cublasHandle_t h, cublasMath_t math, Body&& body) {
  cublasPointerMode_t old_pointer;
  cublasMath_t old_math;
  ANVIL_CUBLAS_CHECK(cublasGetPointerMode(h, &old_pointer));
  ANVIL_CUBLAS_CHECK(cublasGetMathMode(h, &old_math));
  ANVIL_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  ANVIL_CUBLAS_CHECK(cublasSetMathMode(h, math));
  const Status st = body();
  ANVIL_CUBLAS_CHECK(cublasSetMathMode(h, old_math));
  ANVIL_CUBLAS_CHECK(cublasSetPointerMode(h, old_pointer));
  return st;
}

// ---------------------------------------------------------------------------- gemv_int8
bool gemv_supports(const Tensor& w, int64_t n) {
  if (n < 1 || n > 8 || w.rows < 1) return false;
  size_t align;
  switch (w.type) {
    case DType::Q4_K:
    case DType::Q5_K: align = 16; break;
    case DType::Q6_K:
    case DType::Q8_0: align = 2; break;
    default: return false;
  }
  return reinterpret_cast<uintptr_t>(w.data) % align == 0 && w.row_stride % align == 0;
}

// The GEMV parameters of y = x W^T, with the activation scratch (not yet quantized).
Expected<GemvParams> gemv_params(Context& ctx, const Tensor& w, const Tensor& x, Tensor y) {
  const int n = int(x.rows);
  const size_t bytes = gemv_scratch_bytes(n, w.cols);
  auto scratch = ctx.scratch(ScratchSlot::gemv_activations, bytes);
  if (!scratch) return scratch.status();
  GemvParams p;
  p.weight_type = w.type;
  p.weight = w.data;
  p.weight_row_stride = int64_t(w.row_stride);
  p.in = w.cols;
  p.out = w.rows;
  p.n = n;
  p.x = static_cast<const float*>(x.data);
  p.x_stride = ld_elements(x, 4);
  p.y = static_cast<float*>(y.data);
  p.y_stride = ld_elements(y, 4);
  p.scratch = *scratch;
  p.scratch_bytes = bytes;
  return p;
}

// Quantizes x into p's scratch unless the copy there is still x's (Context::reuse_quantized_x).
// The caller then launches the GEMV(s) and, if no output overlaps x, marks the copy current.
Status gemv_quantize(Context& ctx, const GemvParams& p, const Tensor& x) {
  const Context::QuantizedX xq{x.data, x.rows, x.cols, x.row_stride};
  if (ctx.reuse_quantized_x && ctx.gemv_x == xq) return Status::ok();
  ctx.gemv_x = {};
  return launch_gemv_quantize_activations(p, ctx.stream);
}

// Whether two F32 views' bytes overlap, each taken as rows x max(stride, cols floats).
bool spans_overlap(const void* a, int64_t a_rows, int64_t a_cols, size_t a_stride, const void* b, int64_t b_rows,
                   int64_t b_cols, size_t b_stride) {
  const auto* ab = static_cast<const char*>(a);
  const auto* bb = static_cast<const char*>(b);
  const size_t a_len = size_t(a_rows) * std::max(a_stride, size_t(a_cols) * 4);
  const size_t b_len = size_t(b_rows) * std::max(b_stride, size_t(b_cols) * 4);
  return ab < bb + b_len && bb < ab + a_len;
}

bool views_overlap(const Tensor& a, const Tensor& b) {
  return spans_overlap(a.data, a.rows, a.cols, a.row_stride, b.data, b.rows, b.cols, b.row_stride);
}

Status gemv_run(Context& ctx, const Tensor& w, const Tensor& x, Tensor y) {
  auto p = gemv_params(ctx, w, x, y);
  if (!p) return p.status();
  ANVIL_RETURN_IF_ERROR(gemv_quantize(ctx, *p, x));
  ANVIL_RETURN_IF_ERROR(launch_gemv_prequantized(*p, ctx.stream));
  // y overlapping x would make the quantized copy stale at once.
  if (!views_overlap(x, y)) gemv_input_written(ctx, x);
  return Status::ok();
}

// ---------------------------------------------------------------------------- gemv_f32
// The exact GEMV (cuda/gemv_f32.h): the weight types and alignments of gemv_int8, n <= 8.
// It reads x as float4: an x that is not 16-byte aligned (a column slice at an odd offset) is
// first copied into aligned scratch (the activations_f16 area, which no call keeps across ops).
Status gemv_f32_run(Context& ctx, const Tensor& w, const Tensor& x, Tensor y) {
  const int n = int(x.rows);
  GemvF32Params p;
  p.weight_type = w.type;
  p.weight = w.data;
  p.weight_row_stride = int64_t(w.row_stride);
  if (w.rows == 1) p.weight_row_stride = std::max<int64_t>(p.weight_row_stride, int64_t(*row_bytes(w.type, uint64_t(w.cols))));
  p.in = w.cols;
  p.out = w.rows;
  p.n = n;
  p.x = static_cast<const float*>(x.data);
  p.x_stride = ld_elements(x, 4);
  p.y = static_cast<float*>(y.data);
  p.y_stride = ld_elements(y, 4);
  if (reinterpret_cast<uintptr_t>(p.x) % 16 != 0 || (n > 1 && p.x_stride % 4 != 0)) {
    const size_t row = size_t(w.cols) * sizeof(float);
    auto copy = ctx.scratch(ScratchSlot::activations_f16, size_t(n) * row);
    if (!copy) return copy.status();
    ANVIL_CUDA_CHECK(cudaMemcpy2DAsync(*copy, row, x.data, size_t(p.x_stride) * sizeof(float), row, size_t(n),
                                       cudaMemcpyDeviceToDevice, ctx.stream));
    p.x = static_cast<const float*>(*copy);
    p.x_stride = w.cols;
  }
  return launch_gemv_f32(p, ctx.stream);
}

// ---------------------------------------------------------------------------- cublas_sgemm
bool sgemm_supports(const Tensor& w, int64_t n) {
  return w.type == DType::F32 && n >= 1 && w.rows >= 1 && w.row_stride % 4 == 0 && fits_int(n) &&
         fits_int(w.rows) && fits_int(ld_elements(w, 4));
}

// Plain f32: the pedantic math mode rules out TF32 and the BF16x9 emulation (both opt-in
// today, but an environment variable or a shared handle's mode must not change this path).
Status sgemm_run(Context& ctx, const Tensor& w, const Tensor& x, Tensor y) {
  const float one = 1.0f, zero = 0.0f;
  return with_blas_modes(ctx.cublas, CUBLAS_PEDANTIC_MATH, [&]() -> Status {
    ANVIL_CUBLAS_CHECK(cublasSgemm(ctx.cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(x.rows), int(w.cols), &one,
                                   static_cast<const float*>(w.data), int(ld_elements(w, 4)),
                                   static_cast<const float*>(x.data), int(ld_elements(x, 4)), &zero,
                                   static_cast<float*>(y.data), int(ld_elements(y, 4))));
    return Status::ok();
  });
}

// ---------------------------------------------------------------------------- cublas_f16
bool f16_direct(const Tensor& w) {
  return w.type == DType::F16 && reinterpret_cast<uintptr_t>(w.data) % 2 == 0 && w.row_stride % 2 == 0;
}

bool cublas_f16_supports(const Tensor& w, int64_t n) {
  if (n < 1 || w.rows < 1 || !has_device_dequantizer(w.type) || !fits_int(n) || !fits_int(w.rows)) return false;
  return !f16_direct(w) || fits_int(ld_elements(w, 2));
}

Status cublas_f16_run(Context& ctx, const Tensor& w, const Tensor& x, Tensor y) {
  const int64_t n = x.rows, in = w.cols, out = w.rows;
  const size_t row_f16 = size_t(in) * sizeof(__half);
  const bool direct = f16_direct(w);

  const int64_t token_chunk = std::clamp<int64_t>(int64_t(kActivationBudget / row_f16), 1, n);
  int64_t row_tile = out;
  if (!direct) {
    row_tile = std::clamp<int64_t>(int64_t(kDequantBudget / row_f16), 1, out);
    if (row_tile < out && row_tile > kTileRowMultiple) row_tile -= row_tile % kTileRowMultiple;
  }
  const int64_t n_tiles = (out + row_tile - 1) / row_tile;

  // Both areas before any kernel of this op is enqueued (a growing area synchronizes and frees).
  auto x16 = ctx.scratch(ScratchSlot::activations_f16, size_t(token_chunk) * row_f16);
  if (!x16) return x16.status();
  __half* w16 = nullptr;
  if (!direct) {
    auto tile = ctx.scratch(ScratchSlot::dequant, size_t(row_tile) * row_f16);
    if (!tile) return tile.status();
    w16 = static_cast<__half*>(*tile);
  }

  const int64_t ldy = ld_elements(y, 4);
  const float one = 1.0f, zero = 0.0f;
  return with_blas_modes(ctx.cublas, CUBLAS_DEFAULT_MATH, [&]() -> Status {
    for (int64_t t0 = 0; t0 < n; t0 += token_chunk) {
      const int64_t nt = std::min(token_chunk, n - t0);
      ANVIL_RETURN_IF_ERROR(convert_rows_to_f16(ctx, x, t0, nt, static_cast<__half*>(*x16)));
      for (int64_t o0 = 0; o0 < out; o0 += row_tile) {
        const int64_t rows = std::min(row_tile, out - o0);
        const void* a = nullptr;
        int64_t lda = in;
        if (direct) {
          a = w.row<const uint8_t>(o0);
          lda = ld_elements(w, 2);
        } else {
          // With a single tile, the one dequantized W serves every token chunk.
          if (n_tiles > 1 || t0 == 0)
            ANVIL_RETURN_IF_ERROR(dequantize_rows(ctx, w, nullptr, o0, rows, DType::F16, w16, row_f16));
          a = w16;
        }
        float* c = y.row<float>(t0) + o0;
        ANVIL_CUBLAS_CHECK(cublasGemmEx(ctx.cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(nt), int(in), &one, a,
                                        CUDA_R_16F, int(lda), *x16, CUDA_R_16F, int(in), &zero, c, CUDA_R_32F,
                                        int(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      }
    }
    return Status::ok();
  });
}

// ---------------------------------------------------------------------------- mma_q
// The tensor-core GEMM on the quantized blocks (cuda/gemm.h): f16 activations, weights
// dequantized in registers, no f16 copy of W. For prefill and wide batches (n > 8).
// Measured (bench-kernels, H100, bench/NOTES.md): faster than dequantize + cuBLAS at n = 32 and
// 64 on every Qwen shape (1.2-2.5x), slower at n = 512 (1.5-2.4x); crossover near 110-170.
constexpr int64_t kMmaMaxTokens = 128;

bool mma_supports(const Tensor& w, int64_t n) {
  return n > 8 && n <= kMmaMaxTokens && gemm_mma_supports(w.type, w.cols, w.rows, n);
}

Status mma_run(Context& ctx, const Tensor& w, const Tensor& x, Tensor y) {
  GemmParams p;
  p.weight_type = w.type;
  p.weight = w.data;
  p.weight_row_stride = int64_t(w.row_stride);
  p.in = w.cols;
  p.out = w.rows;
  p.n = x.rows;
  p.x = x.row<const float>(0);
  p.x_stride = int64_t(x.row_stride / sizeof(float));
  p.y = y.row<float>(0);
  p.y_stride = int64_t(y.row_stride / sizeof(float));
  return launch_gemm_mma(p, ctx);
}

// ---------------------------------------------------------------------------- the table
constexpr MatmulCandidate kCandidates[] = {
    {"gemv_int8", 1e-2, gemv_supports, gemv_run},
    {"gemv_f32", 1e-5, gemv_supports, gemv_f32_run},
    {"cublas_sgemm", 1e-5, sgemm_supports, sgemm_run},
    {"mma_q", 1e-2, mma_supports, mma_run},
    {"cublas_f16", 1e-2, cublas_f16_supports, cublas_f16_run},
};

// The CPU backend's check_matmul, plus what the CUDA candidates need: layout 0, a weight type
// with a device dequantizer, whole-float row strides (cuBLAS leading dimensions are in
// elements) and int-sized shapes.
Status validate(const Weight& w, const Tensor& x, const Tensor& y, const Weight* bias) {
  ANVIL_RETURN_IF_ERROR(check_f32("matmul", "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32("matmul", "y", y));
  if (!w.valid()) return make_error(StatusCode::invalid_argument, "matmul: weight '", w.name, "' is not bound");
  if (x.cols != w.t.cols || y.cols != w.t.rows || x.rows != y.rows)
    return make_error(StatusCode::invalid_argument, "matmul: weight '", w.name, "' ", shape_str(w.t), ", x ",
                      shape_str(x), ", y ", shape_str(y), ": need x [n x ", w.t.cols, "], y [n x ", w.t.rows, "]");
  if (bias && (bias->t.type != DType::F32 || bias->t.n_elements() != w.t.rows || !bias->t.is_contiguous() ||
               !bias->t.data))
    return make_error(StatusCode::invalid_argument, "matmul: bias '", bias->name, "' ", shape_str(bias->t),
                      " must be contiguous F32 with ", w.t.rows, " elements for weight '", w.name, "'");
  if (w.layout != 0)
    return make_error(StatusCode::unsupported, "matmul: weight '", w.name, "' has layout ", w.layout,
                      "; the CUDA backend runs GGUF block order (0)");
  if (!has_device_dequantizer(w.t.type))
    return make_error(StatusCode::unsupported, "matmul: weight '", w.name, "' ", shape_str(w.t),
                      ": no CUDA kernel for this type");
  const auto packed = row_bytes(w.t.type, uint64_t(std::max<int64_t>(w.t.cols, 0)));
  if (w.t.cols <= 0 || !packed || (w.t.rows > 1 && w.t.row_stride < *packed))
    return make_error(StatusCode::invalid_argument, "matmul: weight '", w.name, "' ", shape_str(w.t),
                      " is not whole blocks or has row_stride ", w.t.row_stride);
  if (x.row_stride % 4 != 0 || y.row_stride % 4 != 0)
    return make_error(StatusCode::invalid_argument, "matmul: x ", shape_str(x), " / y ", shape_str(y),
                      " row strides (", x.row_stride, ", ", y.row_stride, " bytes) must be whole floats");
  if (!fits_int(w.t.cols) || !fits_int(ld_elements(x, 4)) || !fits_int(ld_elements(y, 4)))
    return make_error(StatusCode::invalid_argument, "matmul: weight '", w.name, "' ", shape_str(w.t),
                      ": dimensions or strides past INT_MAX elements");
  return Status::ok();
}

Status run_candidate(Context& ctx, const MatmulCandidate& c, const Weight& w, const Tensor& x, Tensor y,
                     const Weight* bias) {
  ANVIL_RETURN_IF_ERROR(c.run(ctx, w.t, x, y));
  if (bias) ANVIL_RETURN_IF_ERROR(add_bias(ctx, *bias, y));
  // Any candidate writing over the activation gemv_int8 quantized last makes that copy stale
  // (gemv_run checks its own y; the others do not know about it).
  const Context::QuantizedX& q = ctx.gemv_x;
  if (q.data && spans_overlap(y.data, y.rows, y.cols, y.row_stride, q.data, q.rows, q.cols, q.stride))
    ctx.gemv_x = {};
  return Status::ok();
}

}  // namespace

std::span<const MatmulCandidate> matmul_candidates() { return kCandidates; }

Status matmul_with(Context& ctx, std::string_view name, const Weight& w, const Tensor& x, Tensor y,
                   const Weight* bias) {
  ANVIL_RETURN_IF_ERROR(validate(w, x, y, bias));
  for (const MatmulCandidate& c : kCandidates) {
    if (name != c.name) continue;
    if (x.rows == 0 || w.t.rows == 0) return Status::ok();
    if (!c.supports(w.t, x.rows))
      return make_error(StatusCode::unsupported, "matmul: candidate ", c.name, " does not run weight '", w.name,
                        "' ", shape_str(w.t), " with ", x.rows, " tokens");
    return run_candidate(ctx, c, w, x, y, bias);
  }
  return make_error(StatusCode::not_found, "matmul: no CUDA candidate named '", std::string(name), "'");
}

Status matmul_cublas(Context& ctx, const Weight& w, const Tensor& x, Tensor y, const Weight* bias) {
  return matmul_with(ctx, "cublas_f16", w, x, y, bias);
}

void gemv_input_written(Context& ctx, const Tensor& x) {
  if (ctx.reuse_quantized_x) ctx.gemv_x = {x.data, x.rows, x.cols, x.row_stride};
}

Expected<std::optional<GemvActivations>> gemv_input_target(Context& ctx, int64_t rows, int64_t cols) {
  if (!ctx.reuse_quantized_x || !ctx.quantize_in_producers || rows < 1 || rows > kGemvTokensPerPass || cols < 1 ||
      cols % 32 != 0)
    return std::optional<GemvActivations>();
  auto scratch = ctx.scratch(ScratchSlot::gemv_activations, gemv_scratch_bytes(int(rows), cols));
  if (!scratch) return scratch.status();
  return std::optional<GemvActivations>(gemv_activation_layout(*scratch, int(rows), cols));
}

Status matmul_group(Context& ctx, const Tensor& x, std::span<const MatmulTarget> targets) {
  for (const MatmulTarget& t : targets) {
    if (!t.w) return make_error(StatusCode::invalid_argument, "matmul_group: a target has no weight");
    ANVIL_RETURN_IF_ERROR(validate(*t.w, x, t.y, t.bias));
  }
  if (x.rows == 0) return Status::ok();
  // Targets whose chosen candidate is the int8 GEMV are launched together per weight type and
  // width (up to 3 per launch); the rest, or everything when an output overlaps x or another
  // output, run one by one.
  bool disjoint = true;
  for (size_t i = 0; i < targets.size(); ++i) {
    disjoint = disjoint && !views_overlap(targets[i].y, x);
    for (size_t j = 0; j < i; ++j) disjoint = disjoint && !views_overlap(targets[i].y, targets[j].y);
  }
  std::vector<bool> done(targets.size(), false);
  if (disjoint) {
    for (size_t i = 0; i < targets.size(); ++i) {
      const Tensor& wi = targets[i].w->t;
      if (done[i] || wi.rows == 0 || tuned_candidate(ctx, wi, x.rows) != &kCandidates[0]) continue;
      std::vector<size_t> group{i};
      for (size_t j = i + 1; j < targets.size() && group.size() < 3; ++j) {
        const Tensor& wj = targets[j].w->t;
        if (!done[j] && wj.rows > 0 && wj.type == wi.type && wj.cols == wi.cols &&
            tuned_candidate(ctx, wj, x.rows) == &kCandidates[0])
          group.push_back(j);
      }
      if (group.size() < 2) continue;
      std::vector<GemvParams> ps;
      for (size_t j : group) {
        auto p = gemv_params(ctx, targets[j].w->t, x, targets[j].y);
        if (!p) return p.status();
        ps.push_back(*p);
      }
      ANVIL_RETURN_IF_ERROR(gemv_quantize(ctx, ps[0], x));
      ANVIL_RETURN_IF_ERROR(launch_gemv_prequantized_group(ps, ctx.stream));
      gemv_input_written(ctx, x);
      for (size_t j : group) {
        if (targets[j].bias) ANVIL_RETURN_IF_ERROR(add_bias(ctx, *targets[j].bias, targets[j].y));
        done[j] = true;
      }
    }
  }
  for (size_t i = 0; i < targets.size(); ++i)
    if (!done[i]) ANVIL_RETURN_IF_ERROR(matmul(ctx, *targets[i].w, x, targets[i].y, targets[i].bias));
  return Status::ok();
}

Status matmul(Context& ctx, const Weight& w, const Tensor& x, Tensor y, const Weight* bias) {
  ANVIL_RETURN_IF_ERROR(validate(w, x, y, bias));
  if (x.rows == 0 || w.t.rows == 0) return Status::ok();
  if (const MatmulCandidate* c = tuned_candidate(ctx, w.t, x.rows)) return run_candidate(ctx, *c, w, x, y, bias);
  return make_error(StatusCode::unsupported, "matmul: no CUDA candidate runs weight '", w.name, "' ",
                    shape_str(w.t), " with ", x.rows, " tokens");
}

}  // namespace anvil::cuda
