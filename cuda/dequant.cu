// dequantize_rows (cuda/dequant.h): one kernel per (weight type, output type), one thread per
// 8-value group of an output row, over the group primitives of cuda/dequant.cuh. Groups of a
// row are consecutive threads, so a warp writes 32 x 8 contiguous values (1 KiB of f32, 512 B
// of f16) with 16-byte stores when the output allows them.
#include "cuda/dequant.h"

#include <cuda_fp16.h>

#include <climits>

#include "cuda/check.h"
#include "cuda/dequant.cuh"

namespace anvil::cuda {
namespace {

using dequant::Block;
using dequant::is_plain;
using dequant::kGroup;

struct DequantParams {
  const uint8_t* src = nullptr;
  int64_t src_row_stride = 0;  // bytes
  int64_t src_rows = 0;        // for clamping row ids
  int64_t cols = 0;
  const int32_t* row_ids = nullptr;  // device; null: rows first_row + i
  int64_t first_row = 0;
  int64_t n_rows = 0;
  void* out = nullptr;
  int64_t out_row_stride = 0;  // bytes
  int64_t groups_per_row = 0;  // ceil(cols / 8)
};

constexpr int kThreads = 256;

template <class Out>
__device__ __forceinline__ Out to_out(float v);
template <>
__device__ __forceinline__ float to_out<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half to_out<__half>(float v) {
  return __float2half_rn(v);
}

// kVec: the row is a multiple of 8 values and the output 16-byte aligned (rows and base), so
// each group is stored with one (f16) or two (f32) 16-byte stores.
template <DType T, class Out, bool kVec>
__global__ void __launch_bounds__(kThreads) dequantize_rows_kernel(const DequantParams p) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= p.n_rows * p.groups_per_row) return;
  const int64_t r = i / p.groups_per_row, g = i % p.groups_per_row;
  int64_t src_row = p.first_row + r;
  if (p.row_ids) {
    const int64_t id = p.row_ids[p.first_row + r];
    src_row = id < 0 ? 0 : (id >= p.src_rows ? p.src_rows - 1 : id);
  }
  const uint8_t* row = p.src + src_row * p.src_row_stride;

  float v[kGroup];
  int valid = kGroup;
  if constexpr (is_plain<T>) {
    const int64_t e0 = int64_t(kGroup) * g;
    valid = p.cols - e0 < kGroup ? int(p.cols - e0) : kGroup;
#pragma unroll
    for (int k = 0; k < kGroup; ++k) v[k] = k < valid ? dequant::plain_value<T>(row, e0 + k) : 0.0f;
  } else {
    constexpr int kGroupsPerBlock = Block<T>::kValues / kGroup;
    Block<T>::group(row + (g / kGroupsPerBlock) * Block<T>::kBytes, int(g % kGroupsPerBlock), v);
  }

  Out* o = reinterpret_cast<Out*>(static_cast<char*>(p.out) + r * p.out_row_stride) + kGroup * g;
  if constexpr (kVec) {
    if constexpr (sizeof(Out) == 4) {
      reinterpret_cast<float4*>(o)[0] = make_float4(v[0], v[1], v[2], v[3]);
      reinterpret_cast<float4*>(o)[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      __align__(16) __half h[kGroup];
#pragma unroll
      for (int k = 0; k < kGroup; ++k) h[k] = to_out<__half>(v[k]);
      *reinterpret_cast<uint4*>(o) = *reinterpret_cast<const uint4*>(h);
    }
  } else {
#pragma unroll
    for (int k = 0; k < kGroup; ++k)
      if (k < valid) o[k] = to_out<Out>(v[k]);
  }
}

template <DType T>
Status launch_type(const DequantParams& p, DType out_type, bool vec, cudaStream_t stream) {
  const int64_t blocks = (p.n_rows * p.groups_per_row + kThreads - 1) / kThreads;
  const dim3 grid{unsigned(blocks)}, block{unsigned(kThreads)};
  if (out_type == DType::F32) {
    if (vec)
      dequantize_rows_kernel<T, float, true><<<grid, block, 0, stream>>>(p);
    else
      dequantize_rows_kernel<T, float, false><<<grid, block, 0, stream>>>(p);
  } else {
    if (vec)
      dequantize_rows_kernel<T, __half, true><<<grid, block, 0, stream>>>(p);
    else
      dequantize_rows_kernel<T, __half, false><<<grid, block, 0, stream>>>(p);
  }
  ANVIL_CUDA_CHECK_LAUNCH("dequantize_rows_kernel");
  return Status::ok();
}

size_t element_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

}  // namespace

bool has_device_dequantizer(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

Status dequantize_rows(Context& ctx, const Tensor& w, const int32_t* row_ids, int64_t first_row, int64_t n_rows,
                       DType out_type, void* out, size_t out_row_stride) {
  if (!has_device_dequantizer(w.type))
    return make_error(StatusCode::unsupported, "dequantize_rows: no CUDA dequantizer for ", dtype_name(w.type));
  if (out_type != DType::F32 && out_type != DType::F16)
    return make_error(StatusCode::invalid_argument, "dequantize_rows: output type ", dtype_name(out_type),
                      " (F32 or F16 only)");
  if (n_rows < 0 || first_row < 0)
    return make_error(StatusCode::invalid_argument, "dequantize_rows: first_row ", first_row, ", n_rows ", n_rows);
  if (n_rows == 0) return Status::ok();

  const auto packed = row_bytes(w.type, uint64_t(w.cols > 0 ? w.cols : 0));
  if (!w.data || w.cols <= 0 || w.rows <= 0 || !packed)
    return make_error(StatusCode::invalid_argument, "dequantize_rows: weight ", dtype_name(w.type), " [", w.rows,
                      " x ", w.cols, "] is empty, has no data or is not whole blocks");
  if (w.rows > 1 && w.row_stride < *packed)
    return make_error(StatusCode::invalid_argument, "dequantize_rows: weight row_stride ", w.row_stride, " < ",
                      *packed, " bytes of a row");
  const size_t src_align = w.type == DType::F32 ? 4 : (w.type == DType::F16 || w.type == DType::BF16) ? 2 : 1;
  if (reinterpret_cast<uintptr_t>(w.data) % src_align != 0 || w.row_stride % src_align != 0)
    return make_error(StatusCode::invalid_argument, "dequantize_rows: ", dtype_name(w.type),
                      " weight data or row stride not ", src_align, "-byte aligned");
  if (!row_ids && first_row + n_rows > w.rows)
    return make_error(StatusCode::invalid_argument, "dequantize_rows: rows [", first_row, ", ", first_row + n_rows,
                      ") past the weight's ", w.rows, " rows");

  const size_t esize = element_bytes(out_type);
  if (!out) return make_error(StatusCode::invalid_argument, "dequantize_rows: null output");
  if (reinterpret_cast<uintptr_t>(out) % esize != 0 || out_row_stride % esize != 0 ||
      (n_rows > 1 && out_row_stride < size_t(w.cols) * esize))
    return make_error(StatusCode::invalid_argument, "dequantize_rows: output row stride ", out_row_stride,
                      " too short for ", w.cols, " ", dtype_name(out_type), " values, or output misaligned");

  DequantParams p;
  p.src = static_cast<const uint8_t*>(w.data);
  p.src_row_stride = int64_t(w.row_stride);
  p.src_rows = w.rows;
  p.cols = w.cols;
  p.row_ids = row_ids;
  p.first_row = first_row;
  p.n_rows = n_rows;
  p.out = out;
  p.out_row_stride = int64_t(out_row_stride);
  p.groups_per_row = (w.cols + kGroup - 1) / kGroup;
  if ((p.n_rows * p.groups_per_row + kThreads - 1) / kThreads > INT_MAX)
    return make_error(StatusCode::invalid_argument, "dequantize_rows: ", n_rows, " rows of ", w.cols,
                      " values is too many for one launch");
  const bool vec = w.cols % kGroup == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0 &&
                   (n_rows == 1 || out_row_stride % 16 == 0);

  switch (w.type) {
    case DType::F32: return launch_type<DType::F32>(p, out_type, vec, ctx.stream);
    case DType::F16: return launch_type<DType::F16>(p, out_type, vec, ctx.stream);
    case DType::BF16: return launch_type<DType::BF16>(p, out_type, vec, ctx.stream);
    case DType::Q4_0: return launch_type<DType::Q4_0>(p, out_type, vec, ctx.stream);
    case DType::Q4_1: return launch_type<DType::Q4_1>(p, out_type, vec, ctx.stream);
    case DType::Q5_0: return launch_type<DType::Q5_0>(p, out_type, vec, ctx.stream);
    case DType::Q5_1: return launch_type<DType::Q5_1>(p, out_type, vec, ctx.stream);
    case DType::Q8_0: return launch_type<DType::Q8_0>(p, out_type, vec, ctx.stream);
    case DType::Q4_K: return launch_type<DType::Q4_K>(p, out_type, vec, ctx.stream);
    case DType::Q5_K: return launch_type<DType::Q5_K>(p, out_type, vec, ctx.stream);
    case DType::Q6_K: return launch_type<DType::Q6_K>(p, out_type, vec, ctx.stream);
    default: return make_error(StatusCode::unsupported, "dequantize_rows: ", dtype_name(w.type));
  }
}

}  // namespace anvil::cuda
