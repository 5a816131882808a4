// Paged KV writes on CUDA: kv_store (this step's K/V rows into the layer's pages at
// DeviceStep::kv_slots, converted to the KV type) and copy_page (copy-on-write of a shared page).
//
// check_kv_store is kv_store's host validation, shared with the fused qk_norm_rope_store
// (ops_qk_rope.cu), which writes the same rows.
// kv_store is one block per token, threads striding over the row: a row is at most a few KB, so
// there is nothing to tile, and the grid depends only on n_tokens (CUDA-graph launch rule,
// cuda/ops.h); the slot is read on the device. Validation mirrors cpu/ops_attention.cpp exactly,
// reading the slots from the step's host mirror. The kernel still skips a slot outside the layer,
// because a replayed graph runs with slots nobody validated on the host.
// copy_page is two strided device-to-device copies (K and V): no kernel needed.
#include <cuda_fp16.h>

#include <cstdint>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/ops.h"
#include "cuda/pdl.cuh"
#include "cuda/pdl.h"

namespace anvil::cuda {
namespace {

struct KvStoreParams {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t k_stride = 0, v_stride = 0;  // floats between source rows
  void* k_dst = nullptr;
  void* v_dst = nullptr;
  int64_t k_dst_stride = 0, v_dst_stride = 0;  // elements between KV rows
  int64_t kv_rows = 0;
  int32_t cols = 0;
  const int32_t* kv_slots = nullptr;
};

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }

// grid (n_tokens, 2): y = 0 stores K, y = 1 stores V.
template <typename T>
__global__ void kv_store_kernel(KvStoreParams p) {
  pdl_begin();  // cuda/pdl.cuh
  const int64_t t = blockIdx.x;
  const int32_t slot = p.kv_slots[t];
  if (slot < 0 || slot >= p.kv_rows) return;
  const bool is_v = blockIdx.y == 1;
  const float* src = (is_v ? p.v : p.k) + t * (is_v ? p.v_stride : p.k_stride);
  T* dst = static_cast<T*>(is_v ? p.v_dst : p.k_dst) + int64_t(slot) * (is_v ? p.v_dst_stride : p.k_dst_stride);
  for (int32_t c = threadIdx.x; c < p.cols; c += blockDim.x) dst[c] = from_f32<T>(src[c]);
}

Status check_float_stride(const char* op, const char* arg, const Tensor& t, size_t elem) {
  if (t.row_stride % elem != 0)
    return make_error(StatusCode::unsupported, op, ": ", arg, " ", shape_str(t), " has row_stride ", t.row_stride,
                      " bytes, not a whole number of elements");
  return Status::ok();
}

}  // namespace

Status check_kv_store(const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step) {
  ANVIL_RETURN_IF_ERROR(check_step("kv_store", step, step.kv_slots, "kv_slots"));
  ANVIL_RETURN_IF_ERROR(check_kv("kv_store", kv));
  ANVIL_RETURN_IF_ERROR(check_f32("kv_store", "k", k));
  ANVIL_RETURN_IF_ERROR(check_f32("kv_store", "v", v));
  ANVIL_RETURN_IF_ERROR(check_same_shape("kv_store", "k", k, "v", v));
  if (k.rows != step.n_tokens || k.cols != kv.k.cols)
    return make_error(StatusCode::invalid_argument, "kv_store: k/v ", shape_str(k), " must be [", step.n_tokens,
                      " x ", kv.k.cols, "] for KV ", shape_str(kv.k));
  const DeviceStep& hs = host_step(step);
  if (step.n_tokens > 0 && (!step.host || !hs.kv_slots))
    return make_error(StatusCode::invalid_argument, "kv_store: DeviceStep has no host mirror (use this backend's "
                      "prepare_step)");
  for (int32_t t = 0; t < step.n_tokens; ++t) {
    if (hs.kv_slots[t] < 0 || hs.kv_slots[t] >= kv.k.rows)
      return make_error(StatusCode::invalid_argument, "kv_store: KV slot ", hs.kv_slots[t], " of token ", t,
                        " is outside the layer's ", kv.k.rows, " rows");
  }
  const size_t elem = kv.k.type == DType::F32 ? 4 : 2;
  ANVIL_RETURN_IF_ERROR(check_float_stride("kv_store", "k", k, sizeof(float)));
  ANVIL_RETURN_IF_ERROR(check_float_stride("kv_store", "v", v, sizeof(float)));
  ANVIL_RETURN_IF_ERROR(check_float_stride("kv_store", "KV k", kv.k, elem));
  ANVIL_RETURN_IF_ERROR(check_float_stride("kv_store", "KV v", kv.v, elem));
  return Status::ok();
}

Status kv_store(Context& ctx, const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step) {
  ANVIL_RETURN_IF_ERROR(check_kv_store(kv, k, v, step));
  if (step.n_tokens == 0) return Status::ok();
  const size_t elem = kv.k.type == DType::F32 ? 4 : 2;
  KvStoreParams p;
  p.k = static_cast<const float*>(k.data);
  p.v = static_cast<const float*>(v.data);
  p.k_stride = int64_t(k.row_stride / sizeof(float));
  p.v_stride = int64_t(v.row_stride / sizeof(float));
  p.k_dst = kv.k.data;
  p.v_dst = kv.v.data;
  p.k_dst_stride = int64_t(kv.k.row_stride / elem);
  p.v_dst_stride = int64_t(kv.v.row_stride / elem);
  p.kv_rows = kv.k.rows;
  p.cols = int32_t(k.cols);
  p.kv_slots = step.kv_slots;
  const int threads = k.cols >= 256 ? 256 : (k.cols >= 128 ? 128 : 64);
  const dim3 grid(unsigned(step.n_tokens), 2);
  if (kv.k.type == DType::F32) {
    ANVIL_RETURN_IF_ERROR(launch_pdl("kv_store_kernel", kv_store_kernel<float>, grid, dim3(threads), 0, ctx.stream, p));
  } else {
    ANVIL_RETURN_IF_ERROR(
        launch_pdl("kv_store_kernel", kv_store_kernel<__half>, grid, dim3(threads), 0, ctx.stream, p));
  }
  return Status::ok();
}

Status copy_page(Context& ctx, const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size) {
  ANVIL_RETURN_IF_ERROR(check_kv("copy_page", kv));
  if (page_size <= 0)
    return make_error(StatusCode::invalid_argument, "copy_page: page_size ", page_size, " must be positive");
  const int64_t n_pages = kv.k.rows / page_size;
  if (src_page < 0 || src_page >= n_pages || dst_page < 0 || dst_page >= n_pages)
    return make_error(StatusCode::invalid_argument, "copy_page: pages ", src_page, " -> ", dst_page,
                      " outside the layer's ", n_pages, " pages of ", page_size, " tokens");
  if (src_page == dst_page) return Status::ok();
  for (const Tensor* t : {&kv.k, &kv.v}) {
    const auto* base = static_cast<const char*>(t->data);
    const size_t src_off = size_t(src_page) * size_t(page_size) * t->row_stride;
    const size_t dst_off = size_t(dst_page) * size_t(page_size) * t->row_stride;
    ANVIL_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(t->data) + dst_off, t->row_stride, base + src_off,
                                       t->row_stride, t->row_size(), size_t(page_size), cudaMemcpyDeviceToDevice,
                                       ctx.stream));
  }
  return Status::ok();
}

}  // namespace anvil::cuda
