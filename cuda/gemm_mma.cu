// launch_gemm_mma (cuda/gemm.h): validation, the plan (tile configuration, k splits, scratch
// layout), the activation converter, and the launch of the per-type kernels
// (cuda/gemm_mma_{q4k,q5k,q6k,q8_0}.cu over the kernel in cuda/gemm_mma_kernel.cuh).
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/check.h"
#include "cuda/gemm.h"
#include "cuda/gemm_mma_kernel.cuh"
#include "cuda/ops.h"

namespace anvil::cuda {
namespace {

using gemm_detail::kConfigCount;
using gemm_detail::KernelArgs;
using gemm_detail::KernelSpec;
using gemm_detail::kTileK;

constexpr int64_t kMaxDim = int64_t(1) << 30;  // rows, tokens, in: far inside the kernel's int math
constexpr int kMaxSplits = 16;
constexpr int kMaxDevices = 64;

const char* const kConfigNames[kConfigCount] = {"m64n32", "m64n64", "m128n64", "m128n128", "m256n128", "m128n32"};

// Relative compute throughput per SM of each configuration (larger warp tiles reuse each
// activation fragment over more rows). First guesses, to be replaced by bench-cuda-gemm's
// per-configuration columns; only their ratios matter.
constexpr double kConfigEfficiency[kConfigCount] = {0.45, 0.6, 0.8, 0.85, 1.0, 0.55};

struct TypeInfo {
  int index;          // into the per-type caches below
  int block_bytes;    // bytes per row per 256 values
  int weight_align;   // base pointer alignment the copies need
  int stride_align;   // row stride alignment
  void (*specs)(KernelSpec (&)[kConfigCount]);
};

const TypeInfo* type_info(DType t) {
  // Q6_K rows are 210 B per super-block, so rows are only 2-byte aligned; the kernel copies the
  // aligned window around each block, which needs an aligned base so no window starts before it.
  static const TypeInfo q4k{0, 144, 16, 16, gemm_detail::q4k_specs};
  static const TypeInfo q5k{1, 176, 16, 16, gemm_detail::q5k_specs};
  static const TypeInfo q6k{2, 210, 16, 2, gemm_detail::q6k_specs};
  static const TypeInfo q8_0{3, 272, 16, 16, gemm_detail::q8_0_specs};
  switch (t) {
    case DType::Q4_K: return &q4k;
    case DType::Q5_K: return &q5k;
    case DType::Q6_K: return &q6k;
    case DType::Q8_0: return &q8_0;
    default: return nullptr;
  }
}

size_t align256(size_t v) { return (v + 255) & ~size_t(255); }

// Blocks of one kernel resident per SM (0: it cannot run), after raising its dynamic
// shared-memory limit; both once per device and kernel (cudaFuncSetAttribute is not a stream
// operation, so this is safe during graph capture too).
Expected<int> occupancy(const TypeInfo& info, int config, const KernelSpec& spec, int device) {
  static std::atomic<int> cache[kMaxDevices][4][kConfigCount] = {};  // blocks + 1; 0 = not known yet
  std::atomic<int>* slot = device >= 0 && device < kMaxDevices ? &cache[device][info.index][config] : nullptr;
  if (slot) {
    const int known = slot->load(std::memory_order_acquire);
    if (known > 0) return known - 1;
  }
  ANVIL_CUDA_CHECK(cudaFuncSetAttribute(spec.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, spec.smem_bytes));
  int blocks = 0;
  ANVIL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, spec.fn, spec.threads, spec.smem_bytes));
  if (slot) slot->store(blocks + 1, std::memory_order_release);
  return blocks;
}

struct Plan {  // make_plan has raised the chosen kernel's shared-memory limit on this device
  const TypeInfo* info = nullptr;
  KernelSpec spec;
  int config = 0;
  int k_tiles = 0, tiles_m = 0, tiles_n = 0, splits = 1, k_per_split = 0;
  size_t x16_bytes = 0, counters_offset = 0, partials_offset = 0, bytes = 0;
};

Status check_shape(const GemmParams& p) {
  if (p.in < kTileK || p.in % kTileK != 0 || p.in > kMaxDim)
    return make_error(StatusCode::invalid_argument, "gemm_mma: in = ", p.in, " must be a positive multiple of 256");
  if (p.out < 1 || p.out > kMaxDim || p.n < 1 || p.n > kMaxDim)
    return make_error(StatusCode::invalid_argument, "gemm_mma: out = ", p.out, ", n = ", p.n, " out of range");
  return Status::ok();
}

// Relative time of one configuration and split: waves of CTAs, each wave costing what one SM
// does for its `occ` resident CTAs. Compute-bound model; at small n the kernels are bound by the
// weight stream instead, where filling the SMs (what the waves term rewards) matters as well.
double plan_cost(const KernelSpec& s, int config, int occ, int sms, int64_t tiles, int splits, int k_tiles) {
  const int64_t ctas = tiles * splits;
  const int64_t capacity = int64_t(sms) * occ;
  const double waves = double((ctas + capacity - 1) / capacity);
  const int k_per = (k_tiles + splits - 1) / splits;
  const double split_overhead = splits > 1 ? 0.5 : 0.0;  // partial tile written, read back
  return waves * occ * double(s.bm) * s.bn * (k_per + split_overhead) / kConfigEfficiency[config];
}

Expected<Plan> make_plan(const GemmParams& p) {
  Plan plan;
  plan.info = type_info(p.weight_type);
  if (!plan.info)
    return make_error(StatusCode::unsupported, "gemm_mma: weight type ", dtype_name(p.weight_type),
                      " has no tensor-core GEMM");
  ANVIL_RETURN_IF_ERROR(check_shape(p));
  KernelSpec specs[kConfigCount];
  plan.info->specs(specs);
  int device = 0, sms = p.sm_count, smem_optin = 0;
  ANVIL_CUDA_CHECK(cudaGetDevice(&device));
  if (sms <= 0) ANVIL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  ANVIL_CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  for (KernelSpec& s : specs)  // e.g. sm_80 parts allow 163 KB, not 227
    if (s.smem_bytes + 1024 > smem_optin) s.fn = nullptr;
  plan.k_tiles = int(p.in / kTileK);
  if (p.config >= kConfigCount || (p.config >= 0 && !specs[p.config].fn))
    return make_error(StatusCode::invalid_argument, "gemm_mma: config ", p.config, " not available for ",
                      dtype_name(p.weight_type));
  if (p.split_k < 0) return make_error(StatusCode::invalid_argument, "gemm_mma: split_k = ", p.split_k);

  // Candidates: the requested configuration, or (n <= 32) the 32-token ones, or all that fit.
  double best = INFINITY;
  for (int c = 0; c < kConfigCount; ++c) {
    if (!specs[c].fn) continue;
    if (p.config >= 0 && c != p.config) continue;
    if (p.config < 0 && p.n <= 32 && specs[c].bn > 32) continue;
    auto occ = occupancy(*plan.info, c, specs[c], device);  // also raises its smem limit
    if (!occ) return occ.status();
    if (*occ < 1) continue;
    const int64_t tiles = ((p.out + specs[c].bm - 1) / specs[c].bm) * ((p.n + specs[c].bn - 1) / specs[c].bn);
    int lo = 1, hi = 1;
    if (p.split_k > 0) {
      lo = hi = std::min(p.split_k, plan.k_tiles);
    } else if (tiles < int64_t(sms) * *occ) {  // fewer CTAs than one wave: consider splitting k
      hi = int(std::min<int64_t>({kMaxSplits, std::max(1, plan.k_tiles / 2), (int64_t(sms) * *occ) / tiles}));
      hi = std::max(hi, 1);
    }
    for (int s = lo; s <= hi; ++s) {
      const int k_per = (plan.k_tiles + s - 1) / s;
      const int splits = (plan.k_tiles + k_per - 1) / k_per;  // no empty split
      if (splits != s && p.split_k == 0) continue;
      const double cost = plan_cost(specs[c], c, *occ, sms, tiles, splits, plan.k_tiles);
      if (cost < best) {
        best = cost;
        plan.config = c;
        plan.spec = specs[c];
        plan.splits = splits;
        plan.k_per_split = k_per;
      }
    }
  }
  if (!plan.spec.fn) return make_error(StatusCode::internal, "gemm_mma: no configuration can run on this device");
  plan.tiles_m = int((p.out + plan.spec.bm - 1) / plan.spec.bm);
  plan.tiles_n = int((p.n + plan.spec.bn - 1) / plan.spec.bn);
  if (plan.tiles_m > 65535) return make_error(StatusCode::invalid_argument, "gemm_mma: out = ", p.out, " too large");

  plan.x16_bytes = align256(size_t(p.n) * size_t(p.in) * sizeof(__half));
  plan.bytes = plan.x16_bytes;
  if (plan.splits > 1) {
    const size_t tiles = size_t(plan.tiles_m) * size_t(plan.tiles_n);
    plan.counters_offset = plan.bytes;
    plan.partials_offset = plan.counters_offset + align256(tiles * sizeof(unsigned));
    plan.bytes = plan.partials_offset + tiles * size_t(plan.splits) * size_t(plan.spec.bm) * plan.spec.bn * sizeof(float);
  }
  return plan;
}

Status validate(const GemmParams& p, const Plan& plan) {
  if (!p.weight || !p.x || !p.y || !p.scratch) return make_error(StatusCode::invalid_argument, "gemm_mma: null pointer");
  const int64_t row_bytes = p.in / kTileK * plan.info->block_bytes;
  if (p.weight_row_stride < row_bytes || p.weight_row_stride % plan.info->stride_align != 0)
    return make_error(StatusCode::invalid_argument, "gemm_mma: weight_row_stride ", p.weight_row_stride, " < ",
                      row_bytes, " or not a multiple of ", plan.info->stride_align);
  if (reinterpret_cast<uintptr_t>(p.weight) % plan.info->weight_align != 0)
    return make_error(StatusCode::invalid_argument, "gemm_mma: weights not ", plan.info->weight_align,
                      "-byte aligned");
  if (p.x_stride < p.in || p.y_stride < p.out)
    return make_error(StatusCode::invalid_argument, "gemm_mma: x_stride ", p.x_stride, " < in or y_stride ",
                      p.y_stride, " < out");
  if (reinterpret_cast<uintptr_t>(p.scratch) % 16 != 0 || p.scratch_bytes < plan.bytes)
    return make_error(StatusCode::invalid_argument, "gemm_mma: scratch must be 16-byte aligned and hold ", plan.bytes,
                      " bytes (has ", p.scratch_bytes, ")");
  return Status::ok();
}

__device__ __forceinline__ __half to_half_saturated(float v) {
  return __float2half_rn(fabsf(v) > 65504.0f ? copysignf(65504.0f, v) : v);  // NaN stays NaN
}

// x f32 [n, x_stride] -> x16 f16 [n, in] in the kernel's k order (gemm_mma_kernel.cuh): one
// thread per 8 consecutive outputs (one 16-byte store). Output group q (0..31) of a super-block
// is step s = q / 2, slot q % 2; its value j (t = j / 2, half = j % 2) is physical element
// 64 t + 32 hb + 4 w + slot + 2 half with w = s / 2, hb = s % 2. Also zeroes the split-K counters.
__global__ void convert_activations_kernel(const float* __restrict__ x, int64_t x_stride, int64_t in, int64_t n,
                                           __half* __restrict__ x16, unsigned* __restrict__ counters,
                                           int64_t n_counters) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n_counters) counters[i] = 0;
  const int64_t groups_per_token = in / 8;
  if (i >= n * groups_per_token) return;
  const int64_t tok = i / groups_per_token, grp = i % groups_per_token;
  const int64_t sb = grp / 32;
  const int q = int(grp % 32);
  const int s = q / 2, slot = q % 2, w = s / 2, hb = s % 2;
  const float* src = x + tok * x_stride + sb * kTileK + 32 * hb + 4 * w + slot;
  __align__(16) __half v[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = to_half_saturated(src[64 * (j / 2) + 2 * (j % 2)]);
  *reinterpret_cast<uint4*>(x16 + tok * in + sb * kTileK + 8 * q) = *reinterpret_cast<const uint4*>(v);
}

}  // namespace

bool gemm_mma_supports(DType weight_type, int64_t in, int64_t out, int64_t n) {
  return type_info(weight_type) != nullptr && in >= kTileK && in % kTileK == 0 && in <= kMaxDim && out >= 1 &&
         out <= kMaxDim && n >= 1 && n <= kMaxDim;
}

int gemm_config_count() { return kConfigCount; }

const char* gemm_config_name(int config) {
  return config >= 0 && config < kConfigCount ? kConfigNames[config] : "?";
}

std::string gemm_plan_name(const GemmParams& p) {
  auto plan = make_plan(p);
  if (!plan) return "";
  std::string name = kConfigNames[plan->config];
  if (plan->splits > 1) name += " split " + std::to_string(plan->splits);
  return name;
}

size_t gemm_scratch_bytes(const GemmParams& p) {
  auto plan = make_plan(p);
  return plan ? plan->bytes : 0;
}

Status launch_gemm_mma(const GemmParams& p, cudaStream_t stream) {
  auto planned = make_plan(p);
  if (!planned) return planned.status();
  const Plan& plan = *planned;
  ANVIL_RETURN_IF_ERROR(validate(p, plan));

  auto* base = static_cast<uint8_t*>(p.scratch);
  auto* x16 = reinterpret_cast<__half*>(base);
  unsigned* counters = plan.splits > 1 ? reinterpret_cast<unsigned*>(base + plan.counters_offset) : nullptr;
  const int64_t n_counters = plan.splits > 1 ? int64_t(plan.tiles_m) * plan.tiles_n : 0;
  const int64_t convert_threads = std::max<int64_t>(p.n * (p.in / 8), n_counters);
  const int convert_block = 256;
  convert_activations_kernel<<<dim3(unsigned((convert_threads + convert_block - 1) / convert_block)),
                               dim3(convert_block), 0, stream>>>(p.x, p.x_stride, p.in, p.n, x16, counters,
                                                                  n_counters);
  ANVIL_CUDA_CHECK_LAUNCH("convert_activations_kernel");

  KernelArgs a;
  a.weight = static_cast<const uint8_t*>(p.weight);
  a.row_stride = p.weight_row_stride;
  a.out = int(p.out);
  a.x16 = x16;
  a.in = p.in;
  a.n = int(p.n);
  a.y = p.y;
  a.y_stride = p.y_stride;
  a.k_tiles = plan.k_tiles;
  a.k_tiles_per_split = plan.k_per_split;
  a.partials = plan.splits > 1 ? reinterpret_cast<float*>(base + plan.partials_offset) : nullptr;
  a.counters = counters;
  void* args[] = {&a};
  ANVIL_CUDA_CHECK(cudaLaunchKernel(plan.spec.fn, dim3(unsigned(plan.tiles_n), unsigned(plan.tiles_m), unsigned(plan.splits)),
                                    dim3(unsigned(plan.spec.threads)), args, size_t(plan.spec.smem_bytes), stream));
  ANVIL_CUDA_CHECK_LAUNCH("gemm_mma_kernel");
  return Status::ok();
}

Status launch_gemm_mma(GemmParams p, Context& ctx) {
  if (p.sm_count <= 0) p.sm_count = ctx.sm_count;
  auto plan = make_plan(p);
  if (!plan) return plan.status();
  auto mem = ctx.scratch(ScratchSlot::activations_f16, plan->bytes);
  if (!mem) return mem.status();
  p.scratch = *mem;
  p.scratch_bytes = plan->bytes;
  return launch_gemm_mma(p, ctx.stream);
}

}  // namespace anvil::cuda
