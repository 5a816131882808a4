// Rotary position embedding on CUDA, in place: NORMAL (pairs 2i, 2i+1) and NEOX (pairs i,
// i + rope_dims/2) modes, partial rotary (dims >= rope_dims pass through), linear freq_scale.
//
// The angle is computed exactly as cpu/ops_rope.cpp does (which follows HF transformers):
// inv_freq_i = 1 / powf(base, 2i/d) in f32 (then / (1 / freq_scale)), theta = f32(pos) *
// inv_freq_i in f32, and cos/sin of that f32 angle through double. At position 32k the angle is
// ~3e4 rad, so one ulp of inv_freq moves theta by ~4e-3 rad: any other way of computing
// inv_freq (device powf, exp2/log2) or the angle (double product) would disagree with the
// oracle far beyond 1e-5. So the inv_freq table is computed on the host with the very code the
// CPU runs and passed by value in the kernel's parameters (it depends only on RopeParams, so a
// captured graph stays valid); only rope_dims > 2 * kTablePairs (no real model) computes it on
// the device, through a double pow rounded once, which matches to rounding. The f32 product is
// then bit-identical, and double sincos rounded to f32 matches the CPU's double cos/sin.
//
// One block per token (grid-stride over tokens): the block first fills a shared cos/sin table
// for its token's position (read from DeviceStep::positions in device memory, per the CUDA
// graph launch rule), then rotates every (head, pair) of the row, so the double sincos runs
// once per pair rather than once per head.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/ops.h"

namespace anvil::cuda {
namespace {

constexpr int kTablePairs = 256;  // rope_dims up to 512 use the host table (1 KiB of params)

struct RopeKernelParams {
  float* x = nullptr;
  int64_t x_stride = 0;  // floats between rows
  int32_t n_tokens = 0;
  int32_t n_heads = 0;
  int32_t head_dim = 0;
  int32_t half = 0;            // rope_dims / 2 pairs per head
  int32_t pair_step = 1;       // NORMAL 2, NEOX 1: offset of pair i's first element is i * pair_step
  int32_t stride_in_pair = 1;  // NORMAL 1, NEOX half: the pair's second element
  const int32_t* positions = nullptr;  // device: DeviceStep::positions
  float freq_base = 10000.f;   // for the device fallback (half > kTablePairs)
  float freq_scale = 1.f;
  int32_t rope_dims = 0;
  float inv_freq[kTablePairs] = {};
};

// The CPU's inv_freq, step for step (float exponent, 1 / pow, then HF's division by 1/scale).
float host_inv_freq(const RopeParams& p, int32_t i) {
  const float exponent = float(2 * i) / float(p.rope_dims);
  float inv = 1.0f / std::pow(p.freq_base, exponent);
  if (p.freq_scale != 1.f) inv /= 1.0f / p.freq_scale;
  return inv;
}

__device__ float device_inv_freq(const RopeKernelParams& p, int32_t i) {
  const float exponent = float(2 * i) / float(p.rope_dims);
  float inv = 1.0f / float(pow(double(p.freq_base), double(exponent)));
  if (p.freq_scale != 1.f) inv /= 1.0f / p.freq_scale;
  return inv;
}

__global__ void rope_kernel(const __grid_constant__ RopeKernelParams p) {
  extern __shared__ float table[];  // cos [half], then sin [half]
  float* cos_t = table;
  float* sin_t = table + p.half;
  const int64_t pairs = int64_t(p.n_heads) * p.half;
  for (int64_t t = blockIdx.x; t < p.n_tokens; t += gridDim.x) {
    const float pos = float(p.positions[t]);
    for (int32_t i = threadIdx.x; i < p.half; i += blockDim.x) {
      const float inv = i < kTablePairs ? p.inv_freq[i] : device_inv_freq(p, i);
      const float theta = __fmul_rn(pos, inv);
      double s, c;
      sincos(double(theta), &s, &c);
      cos_t[i] = float(c);
      sin_t[i] = float(s);
    }
    __syncthreads();
    float* row = p.x + t * p.x_stride;
    for (int64_t k = threadIdx.x; k < pairs; k += blockDim.x) {
      const int32_t h = int32_t(k / p.half), i = int32_t(k % p.half);
      float* a = row + int64_t(h) * p.head_dim + int64_t(i) * p.pair_step;
      float* b = a + p.stride_in_pair;
      const float x0 = *a, x1 = *b, c = cos_t[i], s = sin_t[i];
      // Unfused products, as the CPU rounds them (no FMA contraction).
      *a = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
      *b = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    }
    __syncthreads();  // the next token overwrites the table
  }
}

}  // namespace

Status rope(Context& ctx, Tensor x, const RopeParams& p, const DeviceStep& step) {
  ANVIL_RETURN_IF_ERROR(check_step("rope", step, step.positions, "positions"));
  ANVIL_RETURN_IF_ERROR(check_f32("rope", "x", x));
  if (p.n_heads <= 0 || p.head_dim <= 0 || p.rope_dims <= 0 || p.rope_dims > p.head_dim || p.rope_dims % 2 != 0)
    return make_error(StatusCode::invalid_argument, "rope: bad params n_heads ", p.n_heads, ", head_dim ",
                      p.head_dim, ", rope_dims ", p.rope_dims, " (need 0 < rope_dims <= head_dim, even)");
  if (p.mode != RopeMode::normal && p.mode != RopeMode::neox)
    return make_error(StatusCode::invalid_argument, "rope: unknown mode ", int(p.mode));
  if (!(p.freq_base > 0.f) || !std::isfinite(p.freq_scale))
    return make_error(StatusCode::invalid_argument, "rope: freq_base ", p.freq_base, " / freq_scale ",
                      p.freq_scale, " must be positive and finite");
  if (x.cols != int64_t(p.n_heads) * p.head_dim || x.rows != step.n_tokens)
    return make_error(StatusCode::invalid_argument, "rope: x ", shape_str(x), " must be [", step.n_tokens, " x ",
                      int64_t(p.n_heads) * p.head_dim, "] (n_tokens x n_heads ", p.n_heads, " * head_dim ",
                      p.head_dim, ")");
  if (step.n_tokens == 0) return Status::ok();
  if (!step.host)
    return make_error(StatusCode::invalid_argument, "rope: DeviceStep has no host mirror (use the CUDA backend's "
                      "prepare_step)");
  if (reinterpret_cast<uintptr_t>(x.data) % sizeof(float) != 0 || (x.rows > 1 && x.row_stride % sizeof(float) != 0))
    return make_error(StatusCode::invalid_argument, "rope: x ", shape_str(x), " is not 4-byte aligned (row_stride ",
                      x.row_stride, ")");

  const int32_t half = p.rope_dims / 2;
  const size_t table_bytes = 2 * size_t(half) * sizeof(float);
  if (table_bytes > 48 * 1024)
    return make_error(StatusCode::unsupported, "rope: rope_dims ", p.rope_dims, " exceeds the CUDA kernel's ",
                      48 * 1024 / (2 * sizeof(float)) * 2, "-dim angle table");

  RopeKernelParams k;
  k.x = static_cast<float*>(x.data);
  k.x_stride = int64_t(x.row_stride / sizeof(float));
  k.n_tokens = step.n_tokens;
  k.n_heads = p.n_heads;
  k.head_dim = p.head_dim;
  k.half = half;
  k.pair_step = p.mode == RopeMode::normal ? 2 : 1;
  k.stride_in_pair = p.mode == RopeMode::normal ? 1 : half;
  k.positions = step.positions;
  k.freq_base = p.freq_base;
  k.freq_scale = p.freq_scale;
  k.rope_dims = p.rope_dims;
  for (int32_t i = 0; i < std::min(half, kTablePairs); ++i) k.inv_freq[i] = host_inv_freq(p, i);

  const int64_t pairs = int64_t(p.n_heads) * half;
  const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (pairs + 31) / 32 * 32)));
  const unsigned blocks = unsigned(std::min<int64_t>(step.n_tokens, 65535));
  rope_kernel<<<blocks, threads, table_bytes, ctx.stream>>>(k);
  ANVIL_CUDA_CHECK_LAUNCH("rope_kernel");
  return Status::ok();
}

}  // namespace anvil::cuda
