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
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"
#include "cuda/rope_angles.cuh"

namespace anvil::cuda {
namespace {

struct RopeKernelParams {
  float* x = nullptr;
  int64_t x_stride = 0;  // floats between rows
  int32_t n_tokens = 0;
  int32_t n_heads = 0;
  int32_t head_dim = 0;
  const int32_t* positions = nullptr;  // device: DeviceStep::positions
  RopeAngles r;
};

__global__ void rope_kernel(const __grid_constant__ RopeKernelParams p) {
  extern __shared__ float table[];  // cos [half], then sin [half]
  pdl_begin();                      // cuda/pdl.cuh
  const RopeAngles& r = p.r;
  float* cos_t = table;
  float* sin_t = table + r.half;
  const int64_t pairs = int64_t(p.n_heads) * r.half;
  for (int64_t t = blockIdx.x; t < p.n_tokens; t += gridDim.x) {
    rope_fill_table(r, p.positions[t], cos_t, sin_t);
    __syncthreads();
    float* row = p.x + t * p.x_stride;
    for (int64_t k = threadIdx.x; k < pairs; k += blockDim.x) {
      const int32_t h = int32_t(k / r.half), i = int32_t(k % r.half);
      float* a = row + int64_t(h) * p.head_dim + int64_t(i) * r.pair_step;
      float* b = a + r.stride_in_pair;
      rope_rotate(*a, *b, cos_t[i], sin_t[i], *a, *b);
    }
    __syncthreads();  // the next token overwrites the table
  }
}

}  // namespace

Status rope(Context& ctx, Tensor x, const RopeParams& p, const DeviceStep& step) {
  ANVIL_RETURN_IF_ERROR(check_step("rope", step, step.positions, "positions"));
  ANVIL_RETURN_IF_ERROR(check_f32("rope", "x", x));
  ANVIL_RETURN_IF_ERROR(check_rope_params("rope", p));
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

  RopeKernelParams k;
  k.x = static_cast<float*>(x.data);
  k.x_stride = int64_t(x.row_stride / sizeof(float));
  k.n_tokens = step.n_tokens;
  k.n_heads = p.n_heads;
  k.head_dim = p.head_dim;
  k.positions = step.positions;
  k.r = make_rope_angles(p);

  const int64_t pairs = int64_t(p.n_heads) * k.r.half;
  const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (pairs + 31) / 32 * 32)));
  const unsigned blocks = unsigned(std::min<int64_t>(step.n_tokens, 65535));
  const size_t table_bytes = 2 * size_t(k.r.half) * sizeof(float);
  ANVIL_RETURN_IF_ERROR(
      launch_pdl("rope_kernel", rope_kernel, dim3(blocks), dim3(threads), table_bytes, ctx.stream, k));
  return Status::ok();
}

}  // namespace anvil::cuda
