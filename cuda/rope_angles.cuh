// RoPE's angle table on CUDA, shared by rope (ops_rope.cu) and the fused qk_norm_rope_store
// (ops_qk_rope.cu). ops_rope.cu's file comment explains why the inverse frequencies are computed
// on the host and why cos/sin go through double: both keep the rotation bit-identical to the
// CPU oracle's.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/backend.h"
#include "core/status.h"

namespace anvil::cuda {

constexpr int kRopeTablePairs = 256;  // rope_dims up to 512 use the host table (1 KiB of params)

// Everything a kernel needs to rotate one head; passed by value in kernel parameters (it depends
// only on RopeParams, so a captured graph stays valid).
struct RopeAngles {
  int32_t half = 0;            // rope_dims / 2 pairs per head
  int32_t pair_step = 1;       // NORMAL 2, NEOX 1: offset of pair i's first element is i * pair_step
  int32_t stride_in_pair = 1;  // NORMAL 1, NEOX half: the pair's second element
  int32_t rope_dims = 0;
  float freq_base = 10000.f;   // for the device fallback (half > kRopeTablePairs)
  float freq_scale = 1.f;
  float inv_freq[kRopeTablePairs] = {};
};

// The CPU's inv_freq, step for step (float exponent, 1 / pow, then HF's division by 1/scale).
inline float rope_host_inv_freq(const RopeParams& p, int32_t i) {
  const float exponent = float(2 * i) / float(p.rope_dims);
  float inv = 1.0f / std::pow(p.freq_base, exponent);
  if (p.freq_scale != 1.f) inv /= 1.0f / p.freq_scale;
  return inv;
}

// The params every RoPE op accepts (the CPU's rules) and what the angle table can hold.
inline Status check_rope_params(const char* op, const RopeParams& p) {
  if (p.n_heads <= 0 || p.head_dim <= 0 || p.rope_dims <= 0 || p.rope_dims > p.head_dim || p.rope_dims % 2 != 0)
    return make_error(StatusCode::invalid_argument, op, ": bad params n_heads ", p.n_heads, ", head_dim ",
                      p.head_dim, ", rope_dims ", p.rope_dims, " (need 0 < rope_dims <= head_dim, even)");
  if (p.mode != RopeMode::normal && p.mode != RopeMode::neox)
    return make_error(StatusCode::invalid_argument, op, ": unknown mode ", int(p.mode));
  if (!(p.freq_base > 0.f) || !std::isfinite(p.freq_scale))
    return make_error(StatusCode::invalid_argument, op, ": freq_base ", p.freq_base, " / freq_scale ",
                      p.freq_scale, " must be positive and finite");
  if (2 * size_t(p.rope_dims / 2) * sizeof(float) > 48 * 1024)
    return make_error(StatusCode::unsupported, op, ": rope_dims ", p.rope_dims, " exceeds the CUDA kernel's ",
                      48 * 1024 / (2 * sizeof(float)) * 2, "-dim angle table");
  return Status::ok();
}

inline RopeAngles make_rope_angles(const RopeParams& p) {
  RopeAngles r;
  r.half = p.rope_dims / 2;
  r.pair_step = p.mode == RopeMode::normal ? 2 : 1;
  r.stride_in_pair = p.mode == RopeMode::normal ? 1 : r.half;
  r.rope_dims = p.rope_dims;
  r.freq_base = p.freq_base;
  r.freq_scale = p.freq_scale;
  for (int32_t i = 0; i < r.half && i < kRopeTablePairs; ++i) r.inv_freq[i] = rope_host_inv_freq(p, i);
  return r;
}

#ifdef __CUDACC__
// Beyond the host table (no real model): a double pow rounded once, which matches to rounding.
__device__ inline float rope_inv_freq(const RopeAngles& r, int32_t i) {
  if (i < kRopeTablePairs) return r.inv_freq[i];
  const float exponent = float(2 * i) / float(r.rope_dims);
  float inv = 1.0f / float(pow(double(r.freq_base), double(exponent)));
  if (r.freq_scale != 1.f) inv /= 1.0f / r.freq_scale;
  return inv;
}

// cos_t[i], sin_t[i] for every pair i at position pos, the block's threads striding over pairs
// (the caller synchronises before reading). theta is the f32 product, as on the CPU; cos/sin of
// it in double, rounded to f32.
__device__ inline void rope_fill_table(const RopeAngles& r, int32_t pos, float* cos_t, float* sin_t) {
  for (int32_t i = int32_t(threadIdx.x); i < r.half; i += int32_t(blockDim.x)) {
    const float theta = __fmul_rn(float(pos), rope_inv_freq(r, i));
    double s, c;
    sincos(double(theta), &s, &c);
    cos_t[i] = float(c);
    sin_t[i] = float(s);
  }
}

// The rotated pair, with unfused products rounded as the CPU rounds them (no FMA contraction).
__device__ __forceinline__ void rope_rotate(float x0, float x1, float c, float s, float& y0, float& y1) {
  y0 = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
  y1 = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
}
#endif

}  // namespace anvil::cuda
