// launch_gemv_f32: validation and the choice of kernel per weight type, token count and rows per
// warp. The kernels are in gemv_f32_q4k.cu / gemv_f32_q5k.cu / gemv_f32_q6k.cu / gemv_f32_q8_0.cu
// over the skeleton in gemv_f32_kernel.cuh.
#include "cuda/gemv_f32.h"

#include <climits>

#include "cuda/gemv.h"
#include "cuda/gemv_f32_kernel.cuh"

namespace anvil::cuda {
namespace {

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
    default: return make_error(StatusCode::unsupported, "gemv_f32: weight type ", dtype_name(t), " has no CUDA GEMV");
  }
}

Status validate(const GemvF32Params& p, const TypeInfo& info) {
  if (!p.weight || !p.x || !p.y) return make_error(StatusCode::invalid_argument, "gemv_f32: null pointer");
  if (p.n < 1 || p.n > kGemvF32MaxTokens)
    return make_error(StatusCode::invalid_argument, "gemv_f32: n = ", p.n, " (1..", kGemvF32MaxTokens, ")");
  if (p.out < 1 || p.in < 1 || p.in % info.block_values != 0 || p.in / info.block_values > INT_MAX / 8)
    return make_error(StatusCode::invalid_argument, "gemv_f32: in = ", p.in, " must be a positive multiple of ",
                      info.block_values, "; out = ", p.out);
  const int64_t row_bytes = p.in / info.block_values * info.block_bytes;
  if (p.weight_row_stride < row_bytes || p.weight_row_stride % info.weight_align != 0)
    return make_error(StatusCode::invalid_argument, "gemv_f32: weight_row_stride ", p.weight_row_stride, " < ",
                      row_bytes, " or not a multiple of ", info.weight_align);
  if (reinterpret_cast<uintptr_t>(p.weight) % info.weight_align != 0)
    return make_error(StatusCode::invalid_argument, "gemv_f32: weights not ", info.weight_align, "-byte aligned");
  if (p.x_stride < p.in || p.y_stride < p.out)
    return make_error(StatusCode::invalid_argument, "gemv_f32: x_stride ", p.x_stride, " < in or y_stride ",
                      p.y_stride, " < out");
  // The activations are read as float4.
  if (reinterpret_cast<uintptr_t>(p.x) % 16 != 0 || (p.n > 1 && p.x_stride % 4 != 0))
    return make_error(StatusCode::invalid_argument, "gemv_f32: x must be 16-byte aligned with x_stride (",
                      p.x_stride, ") a multiple of 4 elements");
  if (reinterpret_cast<uintptr_t>(p.y) % alignof(float) != 0)
    return make_error(StatusCode::invalid_argument, "gemv_f32: y not float-aligned");
  if (p.rows_per_warp != 0 && p.rows_per_warp != 1 && p.rows_per_warp != 2 && p.rows_per_warp != 4)
    return make_error(StatusCode::invalid_argument, "gemv_f32: rows_per_warp ", p.rows_per_warp, " not 0, 1, 2 or 4");
  const int64_t warps_per_block = gemv_f32_detail::kWarpsPerBlock;
  if ((p.out + warps_per_block - 1) / warps_per_block > int64_t(INT_MAX))
    return make_error(StatusCode::invalid_argument, "gemv_f32: out = ", p.out, " needs too many thread blocks");
  return Status::ok();
}

}  // namespace

Status launch_gemv_f32(const GemvF32Params& p, cudaStream_t stream) {
  auto info = type_info(p.weight_type);
  if (!info) return info.status();
  ANVIL_RETURN_IF_ERROR(validate(p, *info));
  gemv_f32_detail::KernelArgs a;
  a.weight = static_cast<const uint8_t*>(p.weight);
  a.row_stride = p.weight_row_stride;
  a.out = p.out;
  a.blocks_per_row = int(p.in / info->block_values);
  a.x = p.x;
  a.x_stride = p.x_stride;
  a.y = p.y;
  a.y_stride = p.y_stride;
  const int rows_per_warp = p.rows_per_warp ? p.rows_per_warp : gemv_default_rows_per_warp(p.weight_type, p.n, p.out);
  switch (p.weight_type) {
    case DType::Q4_K: return gemv_f32_detail::launch_q4k(a, p.n, rows_per_warp, stream);
    case DType::Q5_K: return gemv_f32_detail::launch_q5k(a, p.n, rows_per_warp, stream);
    case DType::Q6_K: return gemv_f32_detail::launch_q6k(a, p.n, rows_per_warp, stream);
    case DType::Q8_0: return gemv_f32_detail::launch_q8_0(a, p.n, rows_per_warp, stream);
    default: return make_error(StatusCode::unsupported, "gemv_f32: ", dtype_name(p.weight_type));
  }
}

}  // namespace anvil::cuda
