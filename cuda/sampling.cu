// sample on CUDA (Backend::sample): one token id per logits row, equal to what sample_row()
// (core/sampler.cpp, the oracle) draws from the same row and SampleRequest.
//
// Plan: the host uploads one RowParams per row and the rows' (id, count) penalty pairs in one copy
// from pinned staging, and orders the rows into slots: rows with temperature > 0 ("sampled") first,
// then the greedy ones. Then, all on ctx.stream:
//   prepare_kernel  one block per slot: work[slot] = the row sanitised (NaN -> -inf, +inf ->
//                   FLT_MAX, -0 -> +0) with the penalties applied (penalty_counts' distinct ids in
//                   parallel; a hand-made window with repeated ids in order, by one thread); a
//                   greedy row ends here with a block argmax (first index of the max).
//   CUB sort        the sampled rows' work, descending, keys only: one device-wide radix sort per
//                   row for a few rows (each uses every SM), one segmented sort (a block per row)
//                   for more. Not measured yet: kPerRowSortMaxRows is a guess.
//   draw_kernel     one block per sampled row, over the sorted keys: the kept set is always a
//                   prefix of length m of the order (logit desc, id asc), so top-k, top-p and min-p
//                   only shrink m (k-ary searches over the sorted keys; top-p by a tiled block scan
//                   of exp(l - max)). The kept set is then {l > l[m-1]} plus the lowest ids among
//                   those equal to l[m-1], which decides membership on the unsorted row, so the
//                   draw walks ascending ids as the CPU does: total weight, r = u * total, and a
//                   tiled block scan for the first kept id whose running sum exceeds r.
// and one copy of the ids back, then a stream synchronize (the caller wants the ids now).
// Scratch (ScratchSlot::sampling): n * V floats of work, n_sampled * V sorted keys and CUB's temp
// (about as much again): 8 rows of Gemma 3's 262144 take ~25 MB.
//
// Where it can differ from the CPU: sums are taken in another order (block scans), and the device
// exp() may differ from glibc's by an ulp, so a draw whose r, or a top-p whose target, lies within
// rounding of a boundary may pick the neighbouring token. Everything else is bit-exact: the
// penalties use explicitly rounded float ops (no FMA contraction), and log(min_p) and 1 / T are
// computed on the host as the CPU does.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cub/cub.cuh>
#include <vector>

#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/ops.h"

namespace anvil::cuda {
namespace {

constexpr int kPrepareThreads = 1024;
constexpr int kDrawThreads = 512;
constexpr int kDrawItems = 8;          // consecutive elements per thread in one scan tile
constexpr int kPerRowSortMaxRows = 4;  // up to this many sampled rows: a device-wide sort per row

// One slot's request, as sample_row reads it.
struct RowParams {
  double uniform;
  double inv_temperature;  // 1.0 / double(T), as draw_weights computes it
  double log_min_p;        // std::log(double(min_p)) on the host: the same threshold bits as the CPU
  float temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
  int32_t top_k;
  int32_t row;        // the logits row (and ids entry) of this slot
  int32_t pen_first;  // range in SampleParams::penalties
  int32_t pen_count;
  int32_t pen_serial;  // 1: ids not strictly ascending (a hand-made request): applied in order by one thread
};

struct SampleParams {
  const float* logits = nullptr;
  int64_t logits_stride = 0;  // floats between rows
  int32_t n_vocab = 0;
  const RowParams* rows = nullptr;  // by slot: sampled rows first, then greedy ones
  const int2* penalties = nullptr;  // (id, count)
  float* work = nullptr;            // [n, n_vocab] by slot: sanitised, penalised logits
  const float* sorted = nullptr;    // [n_sampled, n_vocab] by slot: work sorted descending
  int32_t* ids = nullptr;           // [n] by logits row; -1: no token can be sampled
};

__device__ __forceinline__ float canonical_zero(float x) { return x == 0.0f ? 0.0f : x; }

// core/sampler.cpp's sanitize, plus -0 -> +0 so that equal logits have equal bits.
__device__ __forceinline__ float sanitize(float x) {
  if (isnan(x)) return -INFINITY;
  if (x == INFINITY) return FLT_MAX;
  return canonical_zero(x);
}

struct ArgMax {
  float v;
  int32_t i;
};
struct IntMaxOp {
  __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};
struct ArgMaxOp {
  __device__ ArgMax operator()(const ArgMax& a, const ArgMax& b) const {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
  }
};

__global__ void __launch_bounds__(kPrepareThreads) prepare_kernel(SampleParams p) {
  const RowParams rp = p.rows[blockIdx.x];
  const float* src = p.logits + int64_t(rp.row) * p.logits_stride;
  float* w = p.work + int64_t(blockIdx.x) * p.n_vocab;
  for (int i = threadIdx.x; i < p.n_vocab; i += blockDim.x) w[i] = sanitize(src[i]);
  if (rp.pen_count > 0) {
    __syncthreads();
    // Distinct ids (penalty_counts' output) touch distinct logits; repeated ids compound in order.
    const int start = rp.pen_serial ? (threadIdx.x == 0 ? 0 : rp.pen_count) : int(threadIdx.x);
    const int stride = rp.pen_serial ? 1 : int(blockDim.x);
    for (int j = start; j < rp.pen_count; j += stride) {
      const int2 pc = p.penalties[rp.pen_first + j];
      float l = w[pc.x];
      if (l != -INFINITY) {
        // sample_row's float expression, each operation rounded on its own (nvcc would fuse a*b+c).
        l = l > 0.0f ? __fdiv_rn(l, rp.repeat_penalty) : __fmul_rn(l, rp.repeat_penalty);
        l = __fsub_rn(l, __fadd_rn(__fmul_rn(float(pc.y), rp.frequency_penalty), rp.presence_penalty));
        w[pc.x] = canonical_zero(l);
      }
    }
  }
  if (rp.temperature != 0.0f) return;
  __syncthreads();
  ArgMax best{-INFINITY, INT_MAX};
  for (int i = threadIdx.x; i < p.n_vocab; i += blockDim.x) {
    const float v = w[i];
    if (v > best.v) best = {v, i};  // strict: this thread's first index of its max
  }
  using Reduce = cub::BlockReduce<ArgMax, kPrepareThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const ArgMax b = Reduce(tmp).Reduce(best, ArgMaxOp{});
  if (threadIdx.x == 0) p.ids[rp.row] = b.v > -INFINITY ? b.i : -1;
}

// ---- block primitives of draw_kernel (blockDim.x == kDrawThreads; every thread calls them)
using DrawScan = cub::BlockScan<double, kDrawThreads>;
using DrawSum = cub::BlockReduce<double, kDrawThreads>;
using DrawMax = cub::BlockReduce<int, kDrawThreads>;
union DrawShared {
  typename DrawScan::TempStorage scan;
  typename DrawSum::TempStorage sum;
  typename DrawMax::TempStorage max;
};

__device__ double block_sum(double v, DrawShared& sh) {
  __shared__ double out;
  const double s = DrawSum(sh.sum).Sum(v);
  if (threadIdx.x == 0) out = s;
  __syncthreads();
  const double r = out;
  __syncthreads();
  return r;
}

__device__ int block_max(int v, DrawShared& sh) {
  __shared__ int out;
  const int s = DrawMax(sh.max).Reduce(v, IntMaxOp{});
  if (threadIdx.x == 0) out = s;
  __syncthreads();
  const int r = out;
  __syncthreads();
  return r;
}

// The first index in [lo, hi) where `pred` is false, given it holds on a prefix (hi if it holds
// everywhere): a k-ary search, each round one probe per thread (2-3 rounds for a 262144 row).
template <class Pred>
__device__ int partition_point(int lo, int hi, Pred pred) {
  while (lo < hi) {
    const int step = (hi - lo + int(blockDim.x) - 1) / int(blockDim.x);
    const int i = lo + int(threadIdx.x) * step;
    const int c = __syncthreads_count(i < hi && pred(i));  // probes 0..c-1 hold, probe c fails
    const int next_lo = c > 0 ? lo + (c - 1) * step + 1 : lo;
    hi = min(hi, lo + c * step);
    lo = next_lo;
  }
  return lo;
}

// The first i in [0, n) at which the running sum of weight(0..i), in ascending i, exceeds
// `target` (or reaches it, when reach_equal), skipping i with weight(i) == 0 when positive_only;
// -1 if none. Tiles of kDrawThreads * kDrawItems: each thread sums its consecutive items, a block
// exclusive scan places the thread in the running sum, and the tile stops the search if any
// thread crosses.
template <class Weight>
__device__ int first_crossing(int n, Weight weight, double target, bool reach_equal, bool positive_only,
                              DrawShared& sh) {
  __shared__ int found;
  double carry = 0.0;
  for (int base = 0; base < n; base += kDrawThreads * kDrawItems) {
    const int first = base + int(threadIdx.x) * kDrawItems;
    double w[kDrawItems];
    double sum = 0.0;
#pragma unroll
    for (int j = 0; j < kDrawItems; ++j) {
      w[j] = first + j < n ? weight(first + j) : 0.0;
      sum += w[j];
    }
    double prefix, tile;
    DrawScan(sh.scan).ExclusiveSum(sum, prefix, tile);
    if (threadIdx.x == 0) found = INT_MAX;
    __syncthreads();
    double run = carry + prefix;
#pragma unroll
    for (int j = 0; j < kDrawItems; ++j) {
      run += w[j];
      if (first + j < n && (!positive_only || w[j] > 0.0) && (run > target || (reach_equal && run == target))) {
        atomicMin(&found, first + j);
        break;
      }
    }
    __syncthreads();
    const int f = found;
    __syncthreads();  // `found` and the scan storage are reused
    if (f != INT_MAX) return f;
    carry += tile;
  }
  return -1;
}

__global__ void __launch_bounds__(kDrawThreads) draw_kernel(SampleParams p) {
  __shared__ DrawShared sh;
  const RowParams rp = p.rows[blockIdx.x];
  const int V = p.n_vocab;
  const float* keys = p.sorted + int64_t(blockIdx.x) * V;
  const float* w = p.work + int64_t(blockIdx.x) * V;

  // Tokens above -inf are a prefix of the sorted keys; top-k cuts it.
  const int n_valid = partition_point(0, V, [&](int i) { return keys[i] > -INFINITY; });
  if (n_valid == 0) {
    if (threadIdx.x == 0) p.ids[rp.row] = -1;
    return;
  }
  int m = rp.top_k > 0 ? min(n_valid, rp.top_k) : n_valid;
  const double max_l = keys[0];

  // top-p: the shortest prefix whose mass at temperature 1 reaches top_p of the top-k survivors'.
  if (rp.top_p < 1.0f && m > 1) {
    auto mass = [&](int i) { return exp(double(keys[i]) - max_l); };
    double part = 0.0;
    for (int i = threadIdx.x; i < m; i += blockDim.x) part += mass(i);
    const double target = double(rp.top_p) * block_sum(part, sh);
    const int cut = first_crossing(m, mass, target, true, false, sh);
    if (cut >= 0) m = cut + 1;
  }
  // min-p: l - l_max >= log(min_p), a prefix of the sorted keys (the CPU erases l - max < threshold).
  if (rp.min_p > 0.0f && m > 1)
    m = partition_point(0, m, [&](int i) { return !(double(keys[i]) - max_l < rp.log_min_p); });

  // The kept set on the unsorted row: l > kth, or l == kth and id <= kid, where kid is the id of
  // sorted position m - 1 (the equal keys sit in ascending id order in the CPU's order).
  const float kth = keys[m - 1];
  int kid = INT_MAX;
  if (m < V && keys[m] == kth) {  // the cut splits a run of equal logits
    const int first_equal = partition_point(0, m, [&](int i) { return keys[i] > kth; });
    const double rank = double(m - 1 - first_equal);
    kid = first_crossing(
        V, [&](int i) { return w[i] == kth ? 1.0 : 0.0; }, rank, false, true, sh);
  }
  auto kept = [&](int i, float l) { return l > kth || (l == kth && i <= kid); };
  auto weight = [&](int i) {
    const float l = w[i];
    return kept(i, l) ? exp((double(l) - max_l) * rp.inv_temperature) : 0.0;
  };

  double part = 0.0;
  int last_positive = -1, last_kept = -1;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float l = w[i];
    if (!kept(i, l)) continue;
    const double x = exp((double(l) - max_l) * rp.inv_temperature);
    part += x;
    last_kept = i;
    if (x > 0.0) last_positive = i;
  }
  const double total = block_sum(part, sh);
  last_positive = block_max(last_positive, sh);
  last_kept = block_max(last_kept, sh);
  int id = first_crossing(V, weight, rp.uniform * total, false, true, sh);
  // As the CPU: rounding left r at the very top -> the last token with any weight.
  if (id < 0) id = last_positive >= 0 ? last_positive : last_kept;
  if (threadIdx.x == 0) p.ids[rp.row] = id;
}

// Pinned host memory for the upload and the ids, one per host thread, grow-only. Every sample()
// ends with a stream synchronize, so no copy from an earlier call is in flight when it is reused.
class PinnedStaging {
 public:
  PinnedStaging() = default;
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;
  ~PinnedStaging() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  Expected<char*> get(size_t bytes) {
    if (bytes <= bytes_) return ptr_;
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
    const size_t want = std::max<size_t>(bytes, size_t(64) << 10);
    void* p = nullptr;
    ANVIL_CUDA_CHECK(cudaHostAlloc(&p, want, cudaHostAllocPortable));
    ptr_ = static_cast<char*>(p);
    bytes_ = want;
    return ptr_;
  }

 private:
  char* ptr_ = nullptr;
  size_t bytes_ = 0;
};

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Host-side layout of one call: the upload block (row params, penalty pairs, segment offsets),
// and where each array lives in the scratch area.
struct Layout {
  size_t rows_off = 0, pens_off = 0, offsets_off = 0, upload_bytes = 0;
  size_t ids_off = 0, work_off = 0, sorted_off = 0, temp_off = 0, temp_bytes = 0, scratch_bytes = 0;
};

// Enqueues everything after the upload's staging is filled; the caller synchronizes.
Status enqueue(Context& ctx, const SampleParams& p, int n, int n_sampled, char* dev, const char* staging,
               const Layout& lay, int32_t* host_ids) {
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(dev, staging, lay.upload_bytes, cudaMemcpyHostToDevice, ctx.stream));
  prepare_kernel<<<unsigned(n), kPrepareThreads, 0, ctx.stream>>>(p);
  ANVIL_CUDA_CHECK_LAUNCH("prepare_kernel");
  if (n_sampled > 0) {
    const int V = p.n_vocab;
    size_t temp_bytes = lay.temp_bytes;
    float* sorted = reinterpret_cast<float*>(dev + lay.sorted_off);
    if (n_sampled <= kPerRowSortMaxRows) {
      for (int s = 0; s < n_sampled; ++s)
        ANVIL_CUDA_CHECK(cub::DeviceRadixSort::SortKeysDescending(
            dev + lay.temp_off, temp_bytes, p.work + int64_t(s) * V, sorted + int64_t(s) * V, V, 0, 32, ctx.stream));
    } else {
      const int* offsets = reinterpret_cast<const int*>(dev + lay.offsets_off);
      ANVIL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(dev + lay.temp_off, temp_bytes, p.work, sorted,
                                                                         n_sampled * V, n_sampled, offsets, offsets + 1,
                                                                         0, 32, ctx.stream));
    }
    draw_kernel<<<unsigned(n_sampled), kDrawThreads, 0, ctx.stream>>>(p);
    ANVIL_CUDA_CHECK_LAUNCH("draw_kernel");
  }
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(host_ids, p.ids, size_t(n) * sizeof(int32_t), cudaMemcpyDeviceToHost, ctx.stream));
  return Status::ok();
}

}  // namespace

Status sample(Context& ctx, const Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> ids) {
  ANVIL_RETURN_IF_ERROR(check_sample(logits, requests, ids.size()));
  const int64_t n64 = logits.rows, V64 = logits.cols;
  if (n64 == 0) return Status::ok();
  if (reinterpret_cast<uintptr_t>(logits.data) % sizeof(float) != 0 ||
      (n64 > 1 && logits.row_stride % sizeof(float) != 0))
    return make_error(StatusCode::invalid_argument, "sample: logits ", shape_str(logits),
                      " are not 4-byte aligned (data or row_stride ", logits.row_stride, ")");
  if (n64 * V64 > INT32_MAX || V64 > (int64_t(1) << 30))
    return make_error(StatusCode::unsupported, "sample: logits ", shape_str(logits),
                      " exceed 2^31 elements or 2^30 columns");
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  ANVIL_CUDA_CHECK(cudaStreamIsCapturing(ctx.stream, &capture));
  if (capture != cudaStreamCaptureStatusNone)
    return make_error(StatusCode::invalid_argument,
                      "sample: cannot run inside a CUDA graph capture (it waits for "
                      "the ids)");
  const int n = int(n64), V = int(V64);

  // Slots: rows with temperature > 0 first (they are sorted), then the greedy rows.
  std::vector<int32_t> slot_row;
  slot_row.reserve(size_t(n));
  for (int i = 0; i < n; ++i)
    if (requests[size_t(i)].params.temperature > 0.0f) slot_row.push_back(i);
  const int n_sampled = int(slot_row.size());
  for (int i = 0; i < n; ++i)
    if (!(requests[size_t(i)].params.temperature > 0.0f)) slot_row.push_back(i);
  size_t n_pens = 0;
  for (const SampleRequest& r : requests) n_pens += r.penalties.size();
  if (n_pens > size_t(INT32_MAX)) return make_error(StatusCode::unsupported, "sample: ", n_pens, " penalty entries");

  Layout lay;
  lay.rows_off = 0;
  lay.pens_off = align_up(size_t(n) * sizeof(RowParams), 16);
  lay.offsets_off = align_up(lay.pens_off + n_pens * sizeof(int2), 16);
  lay.upload_bytes = lay.offsets_off + size_t(n_sampled + 1) * sizeof(int);
  lay.ids_off = align_up(lay.upload_bytes, 256);
  lay.work_off = align_up(lay.ids_off + size_t(n) * sizeof(int32_t), 256);
  lay.sorted_off = align_up(lay.work_off + size_t(n) * size_t(V) * sizeof(float), 256);
  lay.temp_off = align_up(lay.sorted_off + size_t(n_sampled) * size_t(V) * sizeof(float), 256);
  if (n_sampled > 0) {
    // Size queries only (null storage): nothing is enqueued.
    if (n_sampled <= kPerRowSortMaxRows)
      ANVIL_CUDA_CHECK(cub::DeviceRadixSort::SortKeysDescending(nullptr, lay.temp_bytes,
                                                                static_cast<const float*>(nullptr),
                                                                static_cast<float*>(nullptr), V, 0, 32, ctx.stream));
    else
      ANVIL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(
          nullptr, lay.temp_bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr), n_sampled * V,
          n_sampled, static_cast<const int*>(nullptr), static_cast<const int*>(nullptr), 0, 32, ctx.stream));
  }
  lay.scratch_bytes = lay.temp_off + lay.temp_bytes;

  auto scratch = ctx.scratch(ScratchSlot::sampling, lay.scratch_bytes);
  if (!scratch) return scratch.status();
  char* dev = static_cast<char*>(*scratch);
  thread_local PinnedStaging staging_area;
  const size_t host_ids_off = align_up(lay.upload_bytes, 64);
  auto staging = staging_area.get(host_ids_off + size_t(n) * sizeof(int32_t));
  if (!staging) return staging.status();
  char* host = *staging;

  // Fill the upload block.
  auto* rows = reinterpret_cast<RowParams*>(host + lay.rows_off);
  auto* pens = reinterpret_cast<int2*>(host + lay.pens_off);
  auto* offsets = reinterpret_cast<int*>(host + lay.offsets_off);
  int32_t pen_next = 0;
  for (int s = 0; s < n; ++s) {
    const SampleRequest& r = requests[size_t(slot_row[size_t(s)])];
    const SamplingParams& sp = r.params;
    RowParams rp{};
    rp.uniform = r.uniform;
    rp.inv_temperature = sp.temperature > 0.0f ? 1.0 / double(sp.temperature) : 0.0;
    rp.log_min_p = sp.min_p > 0.0f ? std::log(double(sp.min_p)) : 0.0;
    rp.temperature = sp.temperature;
    rp.top_p = sp.top_p;
    rp.min_p = sp.min_p;
    rp.repeat_penalty = sp.repeat_penalty;
    rp.presence_penalty = sp.presence_penalty;
    rp.frequency_penalty = sp.frequency_penalty;
    rp.top_k = sp.top_k;
    rp.row = slot_row[size_t(s)];
    rp.pen_first = pen_next;
    rp.pen_count = int32_t(r.penalties.size());
    for (size_t j = 1; j < r.penalties.size(); ++j)
      if (r.penalties[j].id <= r.penalties[j - 1].id) rp.pen_serial = 1;
    for (const PenaltyCount& pc : r.penalties) pens[pen_next++] = int2{pc.id, pc.count};
    std::memcpy(rows + s, &rp, sizeof rp);
  }
  for (int s = 0; s <= n_sampled; ++s) offsets[s] = s * V;

  SampleParams p;
  p.logits = static_cast<const float*>(logits.data);
  p.logits_stride = n > 1 ? int64_t(logits.row_stride / sizeof(float)) : 0;
  p.n_vocab = V;
  p.rows = reinterpret_cast<const RowParams*>(dev + lay.rows_off);
  p.penalties = reinterpret_cast<const int2*>(dev + lay.pens_off);
  p.work = reinterpret_cast<float*>(dev + lay.work_off);
  p.sorted = reinterpret_cast<const float*>(dev + lay.sorted_off);
  p.ids = reinterpret_cast<int32_t*>(dev + lay.ids_off);
  auto* host_ids = reinterpret_cast<int32_t*>(host + host_ids_off);

  const Status enqueued = enqueue(ctx, p, n, n_sampled, dev, host, lay, host_ids);
  // Always wait, even after a failed enqueue: the staging must not be reused while a copy is in flight.
  const cudaError_t synced = cudaStreamSynchronize(ctx.stream);
  ANVIL_RETURN_IF_ERROR(enqueued);
  ANVIL_CUDA_CHECK(synced);

  for (int i = 0; i < n; ++i) {
    const int32_t id = host_ids[i];
    if (id < 0 || id >= V)
      return make_error(StatusCode::invalid_argument,
                        "sampling: no token can be sampled (every logit is -inf or NaN after penalties) in row ", i);
    ids[size_t(i)] = id;
  }
  return Status::ok();
}

}  // namespace anvil::cuda
