// The decode GEMV's activation quantization of one 32-value block (cuda/gemv.h's layout), for
// every kernel that writes it: the GEMV's own quantize kernel (cuda/gemv.cu) and the producers
// that hand the GEMV its input ready-quantized (add_rms_norm in cuda/ops_norm.cu, glu in
// cuda/ops_elementwise.cu). One rounding for all of them, so the GEMV's result does not depend on
// who quantized: d = max |x| / 127, q = round-to-nearest-even(x / d), and (d, d * sum q) per block;
// the same as ggml's quantize_row_q8_1.
#pragma once

#include <cuda_runtime.h>

namespace anvil::cuda {

// The block is held by kLanes consecutive, aligned lanes of a warp (all 32 lanes of the warp take
// part in the shuffles), kVals values each (kLanes * kVals == 32). Fills q with the lane's quants
// and returns the block's (d, d * sum q).
template <int kLanes, int kVals>
__device__ __forceinline__ float2 quantize_q8_block(const float (&v)[kVals], int (&q)[kVals]) {
  static_assert(kLanes * kVals == 32, "a block is 32 values");
  float amax = fabsf(v[0]);
#pragma unroll
  for (int i = 1; i < kVals; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int sum = 0;
#pragma unroll
  for (int i = 0; i < kVals; ++i) {
    q[i] = __float2int_rn(v[i] * id);
    sum += q[i];
  }
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  return make_float2(d, d * float(sum));
}

}  // namespace anvil::cuda
