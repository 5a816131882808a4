// launch_gemv: validation, activation quantization, and the choice of kernel per weight type and
// token count. The kernels are in gemv_q4k.cu / gemv_q5k.cu / gemv_q6k.cu / gemv_q8_0.cu over the
// skeletons in gemv_kernel.cuh (every type), gemv_kquant_kernel.cuh (Q4_K/Q5_K, one or two
// tokens) and gemv_mma_kernel.cuh (tensor cores: Q4_K/Q5_K at 2..8 tokens, Q6_K at 6..8).
#include "cuda/gemv.h"

#include <algorithm>

#include "cuda/check.h"
#include "cuda/env_switch.h"
#include "cuda/gemv_kernel.cuh"
#include "cuda/gemv_kquant_kernel.cuh"
#include "cuda/gemv_mma_kernel.cuh"
#include "cuda/gemv_quantize.cuh"

namespace anvil::cuda {
namespace {

using gemv_detail::ActQ8;
using gemv_detail::KernelArgs;

constexpr int kActBlock = 32;  // values per activation scale

// One warp per 32 activations (cuda/gemv_quantize.cuh has the rounding).
__global__ void quantize_q8_kernel(const float* __restrict__ x, int64_t x_stride, int64_t in, int64_t total_blocks,
                                   int8_t* __restrict__ q, float2* __restrict__ ds) {
  pdl_begin();
  const int64_t blk = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (blk >= total_blocks) return;
  const int lane = threadIdx.x & 31;
  const int64_t per_token = in / kActBlock;
  const int64_t t = blk / per_token, j = blk % per_token;
  const float v[1] = {x[t * x_stride + j * kActBlock + lane]};
  int qi[1];
  const float2 block = quantize_q8_block<32, 1>(v, qi);
  q[t * in + j * kActBlock + lane] = static_cast<int8_t>(qi[0]);
  if (lane == 0) ds[t * per_token + j] = block;
}

// ANVIL_CUDA_GEMV_PREFETCH=0 turns the L2 prefetch of gemv_kernel off (A/B measurement).
bool gemv_prefetch_l2() {
  static const bool on = env_switch_on("ANVIL_CUDA_GEMV_PREFETCH");
  return on;
}

size_t align16(size_t v) { return (v + 15) & ~size_t(15); }

ActQ8 activation_view(const GemvParams& p) {
  const GemvActivations l = gemv_activation_layout(p.scratch, p.n, p.in);
  return {l.q, l.ds, p.in};
}

struct TypeInfo {
  int block_values;
  int block_bytes;
  int weight_align;  // bytes the kernel's widest weight load needs
};

Expected<TypeInfo> type_info(DType t) {
  switch (t) {
    case DType::Q4_K: return TypeInfo{256, 144, 16};
    case DType::Q5_K: return TypeInfo{256, 176, 16};
    case DType::Q6_K: return TypeInfo{256, 210, 2};
    case DType::Q8_0: return TypeInfo{32, 34, 2};
    default: return make_error(StatusCode::unsupported, "gemv: weight type ", dtype_name(t), " has no CUDA GEMV");
  }
}

Status validate(const GemvParams& p) {
  auto info = type_info(p.weight_type);
  if (!info) return info.status();
  if (!p.weight || !p.x || !p.y || !p.scratch) return make_error(StatusCode::invalid_argument, "gemv: null pointer");
  if (p.n < 1) return make_error(StatusCode::invalid_argument, "gemv: n = ", p.n);
  if (p.out < 1 || p.in < 1 || p.in % info->block_values != 0)
    return make_error(StatusCode::invalid_argument, "gemv: in = ", p.in, " must be a positive multiple of ",
                      info->block_values, "; out = ", p.out);
  const int64_t row_bytes = p.in / info->block_values * info->block_bytes;
  if (p.weight_row_stride < row_bytes || p.weight_row_stride % info->weight_align != 0)
    return make_error(StatusCode::invalid_argument, "gemv: weight_row_stride ", p.weight_row_stride, " < ", row_bytes,
                      " or not a multiple of ", info->weight_align);
  if (reinterpret_cast<uintptr_t>(p.weight) % info->weight_align != 0)
    return make_error(StatusCode::invalid_argument, "gemv: weights not ", info->weight_align, "-byte aligned");
  if (p.x_stride < p.in || p.y_stride < p.out)
    return make_error(StatusCode::invalid_argument, "gemv: x_stride ", p.x_stride, " < in or y_stride ", p.y_stride,
                      " < out");
  if (reinterpret_cast<uintptr_t>(p.scratch) % 16 != 0 || p.scratch_bytes < gemv_scratch_bytes(p.n, p.in))
    return make_error(StatusCode::invalid_argument, "gemv: scratch must be 16-byte aligned and hold ",
                      gemv_scratch_bytes(p.n, p.in), " bytes (has ", p.scratch_bytes, ")");
  if (p.rows_per_warp != 0 && p.rows_per_warp != 1 && p.rows_per_warp != 2 && p.rows_per_warp != 4)
    return make_error(StatusCode::invalid_argument, "gemv: rows_per_warp ", p.rows_per_warp, " not 0, 1, 2 or 4");
  return Status::ok();
}

}  // namespace

namespace gemv_detail {
// From bench-kernels on the H100 (bench/NOTES.md, both kernels in one lease, us): at n = 1 the
// kquant kernel wins or ties on every Qwen3-4B / Qwen2.5-7B shape (down 11.0 -> 9.4, 7B down
// 29.2 -> 20.8); at n = 2 it wins where rows are few and long (o 7.6 -> 5.6, down 15.6 -> 11.2)
// and loses on wide launches (gate/up 11.8 -> 13.2); at n = 8 it loses everywhere (gate/up
// 19.4 -> 28.2: 116 registers, and each lane loads every token's activations for one row where
// gemv_kernel shares them over R rows). ANVIL_CUDA_GEMV_KQUANT=0 keeps gemv_kernel (A/B).
bool use_kquant_kernel(const KernelArgs& a, int n) {
  static const bool enabled = env_switch_on("ANVIL_CUDA_GEMV_KQUANT");
  if (!enabled || n > 2) return false;
  int64_t rows = 0;
  for (int s = 0; s < a.n_segs; ++s) rows += a.seg[s].out;
  return n == 1 || rows <= 4096;
}

// The tensor-core GEMV (cuda/gemv_mma_kernel.cuh) for the 2..8-token launches use_kquant_kernel
// leaves to gemv_kernel. bench-kernels, H100, one lease (us, GEMV alone, gemv_kernel -> mma):
// Qwen3-4B n = 8 gate 17.9 -> 14.1, gate + up 29.8 -> 20.8, down 20.4 -> 14.6, o 9.2 -> 7.2,
// k/v 5.4 -> 3.9; n = 2 gate + up 17.3 -> 15.8. At n = 2 it loses to the kquant kernel on
// <= 4096 rows (o 4.9 vs 6.2, down 9.8 vs 12.6), which is asked first. bench-e2e with the mma
// kernel at every n = 2..8: tg128 x 8 +11-13% on the three presets, x 2 +0.5-1.6%.
// ANVIL_CUDA_GEMV_MMA=0 keeps gemv_kernel (A/B).
bool use_mma_kernel(int n) {
  static const bool enabled = env_switch_on("ANVIL_CUDA_GEMV_MMA");
  return enabled && n >= 2 && n <= kMmaMaxTokens;
}

// Q6_K on the tensor-core GEMV (one mma.m16n8k16 per 16-value scale group) from 6 tokens up.
// bench-kernels, H100, one lease (us, GEMV alone, gemv_kernel -> mma) at n = 6 / 8:
// Qwen3-4B down 28.4 -> 27.4 / 37.8 -> 29.1, LM head 259 -> 224 / 304 -> 238; Qwen2.5-7B down
// 67.3 -> 55.5 / 108.6 -> 59.5, LM head 408 -> 344 / 383 -> 369; Qwen3.5-4B down 26.4 -> 25.5 /
// 34.6 -> 27.1, LM head 412 -> 359 / 486 -> 381. Below 6 it loses on the 2560-row downs (n = 3:
// 18.9 vs 25.4: 160 tiles of 16 rows leave the SMs short of loads in flight; gemv_kernel runs
// 1 row per warp there) and at n = 2 on every shape but the 7B down (LM heads 163 vs 195, 221
// vs 291). ANVIL_CUDA_GEMV_MMA_Q6K=0 keeps gemv_kernel (A/B).
bool use_mma_kernel_q6k(int n) {
  static const bool enabled = env_switch_on("ANVIL_CUDA_GEMV_MMA_Q6K");
  return enabled && n >= 6 && n <= kMmaMaxTokens;
}
}  // namespace gemv_detail

// Rows per warp when the caller leaves it to us, from one bench-cuda-gemv run on the H100
// (bench/NOTES.md). 2 is best or within ~5% in most rows. Few output rows (down, 2560) leave
// too few warps with 2: 1 row per warp measured 11.6 vs 13.3 us (Q4_K n = 1) and 14.7 vs
// 19.2 us (Q6_K). Many rows and n >= 3 favour 4 rows sharing each activation load (Q6_K LM head
// n = 8: 304 vs 360 us), but not for Q4_K (7B gate/up n = 8: 47.1 vs 40.8 us). Q5_K (same slot
// split as Q4_K, 22% more bytes per block) takes Q4_K's choices; not yet measured. The one-token
// kquant kernel takes the same defaults: R = 1 or 2 was also its best in the probe of
// bench/NOTES.md (gate 9728 rows: R = 2 6.70 us vs R = 1 7.78; down 2560 rows: R = 1 7.05 vs 9.09).
int gemv_default_rows_per_warp(DType t, int n, int64_t out) {
  if (out < 4096 && n <= 2) return 1;
  if (t == DType::Q6_K && n >= 3 && out >= 16384) return 4;
  return 2;
}

GemvActivations gemv_activation_layout(void* scratch, int n, int64_t in) {
  auto* base = static_cast<uint8_t*>(scratch);
  return {reinterpret_cast<int8_t*>(base), reinterpret_cast<float2*>(base + align16(size_t(n) * size_t(in)))};
}

size_t gemv_scratch_bytes(int n, int64_t in) {
  if (n < 1 || in < 1) return 0;
  return align16(size_t(n) * size_t(in)) + size_t(n) * size_t(in / kActBlock) * sizeof(float2);
}

Status launch_gemv_quantize_activations(const GemvParams& p, cudaStream_t stream) {
  ANVIL_RETURN_IF_ERROR(validate(p));
  const ActQ8 act = activation_view(p);
  const int64_t total_blocks = int64_t(p.n) * (p.in / kActBlock);
  const int warps_per_cta = 8;
  const int64_t ctas = (total_blocks + warps_per_cta - 1) / warps_per_cta;
  return launch_pdl("quantize_q8_kernel", quantize_q8_kernel, dim3(unsigned(ctas)), dim3(32 * warps_per_cta), 0, stream,
                    p.x, p.x_stride, p.in, total_blocks, const_cast<int8_t*>(act.q), const_cast<float2*>(act.ds));
}

Status launch_gemv_prequantized_group(std::span<const GemvParams> ps, cudaStream_t stream) {
  if (ps.empty() || ps.size() > size_t(gemv_detail::kMaxSegments))
    return make_error(StatusCode::invalid_argument, "gemv: ", ps.size(), " matrices in one launch (1..",
                      gemv_detail::kMaxSegments, ")");
  const GemvParams& p0 = ps[0];
  int64_t total_out = 0;
  for (const GemvParams& p : ps) {
    ANVIL_RETURN_IF_ERROR(validate(p));
    if (p.weight_type != p0.weight_type || p.in != p0.in || p.n != p0.n || p.x != p0.x ||
        p.x_stride != p0.x_stride || p.scratch != p0.scratch || p.rows_per_warp != p0.rows_per_warp)
      return make_error(StatusCode::invalid_argument, "gemv: the matrices of one launch must share the weight type (",
                        dtype_name(p0.weight_type), " vs ", dtype_name(p.weight_type), "), width (", p0.in, " vs ",
                        p.in, "), tokens, activations, scratch and rows_per_warp");
    total_out += p.out;
  }
  const TypeInfo info = type_info(p0.weight_type).value();  // validate() checked the type
  const int rows_per_warp =
      p0.rows_per_warp ? p0.rows_per_warp : gemv_default_rows_per_warp(p0.weight_type, p0.n, total_out);
  const ActQ8 act = activation_view(p0);
  for (int t0 = 0; t0 < p0.n; t0 += kGemvTokensPerPass) {
    const int nt = std::min(kGemvTokensPerPass, p0.n - t0);
    KernelArgs a{};
    a.n_segs = int(ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      gemv_detail::Segment& g = a.seg[i];
      g.weight = static_cast<const uint8_t*>(ps[i].weight);
      g.row_stride = ps[i].weight_row_stride;
      g.out = ps[i].out;
      g.y = ps[i].y + int64_t(t0) * ps[i].y_stride;
      g.y_stride = ps[i].y_stride;
    }
    a.blocks_per_row = int(p0.in / info.block_values);
    a.prefetch_l2 = gemv_prefetch_l2();
    a.act = {act.q + int64_t(t0) * p0.in, act.ds + int64_t(t0) * (p0.in / kActBlock), p0.in};
    switch (p0.weight_type) {
      case DType::Q4_K: ANVIL_RETURN_IF_ERROR(gemv_detail::launch_q4k(a, nt, rows_per_warp, stream)); break;
      case DType::Q5_K: ANVIL_RETURN_IF_ERROR(gemv_detail::launch_q5k(a, nt, rows_per_warp, stream)); break;
      case DType::Q6_K: ANVIL_RETURN_IF_ERROR(gemv_detail::launch_q6k(a, nt, rows_per_warp, stream)); break;
      case DType::Q8_0: ANVIL_RETURN_IF_ERROR(gemv_detail::launch_q8_0(a, nt, rows_per_warp, stream)); break;
      default: return make_error(StatusCode::unsupported, "gemv: ", dtype_name(p0.weight_type));
    }
  }
  return Status::ok();
}

Status launch_gemv_prequantized(const GemvParams& p, cudaStream_t stream) {
  return launch_gemv_prequantized_group(std::span(&p, 1), stream);
}

Status launch_gemv(const GemvParams& p, cudaStream_t stream) {
  ANVIL_RETURN_IF_ERROR(launch_gemv_quantize_activations(p, stream));
  return launch_gemv_prequantized(p, stream);
}

}  // namespace anvil::cuda
