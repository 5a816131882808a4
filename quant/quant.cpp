// quant.h: argument checks, dispatch by type, and the multithreaded row helpers.
#include "quant/quant.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "core/thread_pool.h"
#include "quant/ref_impl.h"

namespace anvil::quant {
namespace {

Status check_length(DType t, int64_t n, const char* what) {
  if (!has_reference(t)) {
    return make_error(StatusCode::unsupported, what, ": no reference for type ", std::string(dtype_name(t)));
  }
  const auto& tr = traits(t);
  if (n < 0 || n % tr.block_size != 0) {
    return make_error(StatusCode::invalid_argument, what, ": ", n, " elements is not a whole number of ",
                      std::string(tr.name), " blocks (", tr.block_size, ")");
  }
  return Status::ok();
}

// Runs fn(row_begin, row_end) over n_rows rows on the global pool, serially for n_threads == 1
// or on a pool of its own for another explicit thread count.
void for_rows(int64_t n_rows, int64_t n_per_row, int n_threads,
              const std::function<void(int64_t, int64_t)>& fn) {
  // chunks of at least ~64K elements so small tensors do not pay for the hand-off
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, n_per_row));
  if (n_threads == 1 || n_rows <= 1) {
    fn(0, n_rows);
    return;
  }
  ThreadPool& global = ThreadPool::global();
  if (n_threads <= 0 || n_threads == global.size()) {
    global.parallel_for(n_rows, grain, fn);
    return;
  }
  ThreadPool pool(n_threads);
  pool.parallel_for(n_rows, grain, fn);
}

}  // namespace

bool has_reference(DType t) {
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
    case DType::Q8_K:
      return true;
    default:
      return false;
  }
}

Status dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  ANVIL_RETURN_IF_ERROR(check_length(t, n, "dequantize_row"));
  switch (t) {
    case DType::F32: std::memmove(dst, src, size_t(n) * sizeof(float)); break;
    case DType::F16: ref::dequantize_f16(src, dst, n); break;
    case DType::BF16: ref::dequantize_bf16(src, dst, n); break;
    case DType::Q4_0: ref::dequantize_q4_0(src, dst, n); break;
    case DType::Q4_1: ref::dequantize_q4_1(src, dst, n); break;
    case DType::Q5_0: ref::dequantize_q5_0(src, dst, n); break;
    case DType::Q5_1: ref::dequantize_q5_1(src, dst, n); break;
    case DType::Q8_0: ref::dequantize_q8_0(src, dst, n); break;
    case DType::Q4_K: ref::dequantize_q4_k(src, dst, n); break;
    case DType::Q5_K: ref::dequantize_q5_k(src, dst, n); break;
    case DType::Q6_K: ref::dequantize_q6_k(src, dst, n); break;
    case DType::Q8_K: ref::dequantize_q8_k(src, dst, n); break;
    default: return make_error(StatusCode::internal, "dequantize_row: unhandled type");
  }
  return Status::ok();
}

Status quantize_row(DType t, const float* src, void* dst, int64_t n, const float* weights) {
  ANVIL_RETURN_IF_ERROR(check_length(t, n, "quantize_row"));
  switch (t) {
    case DType::F32: std::memmove(dst, src, size_t(n) * sizeof(float)); break;
    case DType::F16: ref::quantize_f16(src, dst, n); break;
    case DType::BF16: ref::quantize_bf16(src, dst, n); break;
    case DType::Q4_0: ref::quantize_q4_0(src, dst, n, weights); break;
    case DType::Q4_1: ref::quantize_q4_1(src, dst, n, weights); break;
    case DType::Q5_0: ref::quantize_q5_0(src, dst, n, weights); break;
    case DType::Q5_1: ref::quantize_q5_1(src, dst, n, weights); break;
    case DType::Q8_0: ref::quantize_q8_0(src, dst, n); break;
    case DType::Q4_K: ref::quantize_q4_k(src, dst, n, weights); break;
    case DType::Q5_K: ref::quantize_q5_k(src, dst, n, weights); break;
    case DType::Q6_K: ref::quantize_q6_k(src, dst, n, weights); break;
    case DType::Q8_K: ref::quantize_q8_k(src, dst, n); break;
    default: return make_error(StatusCode::internal, "quantize_row: unhandled type");
  }
  return Status::ok();
}

Status dequantize_rows(DType t, const void* src, float* dst, int64_t n_per_row, int64_t n_rows,
                       int n_threads) {
  ANVIL_RETURN_IF_ERROR(check_length(t, n_per_row, "dequantize_rows"));
  if (n_rows < 0) return make_error(StatusCode::invalid_argument, "dequantize_rows: n_rows ", n_rows);
  const uint64_t row_size = *row_bytes(t, uint64_t(n_per_row));
  for_rows(n_rows, n_per_row, n_threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      (void)dequantize_row(t, static_cast<const uint8_t*>(src) + uint64_t(r) * row_size,
                           dst + r * n_per_row, n_per_row);
    }
  });
  return Status::ok();
}

Status quantize_rows(DType t, const float* src, void* dst, int64_t n_per_row, int64_t n_rows,
                     int n_threads, const float* weights) {
  ANVIL_RETURN_IF_ERROR(check_length(t, n_per_row, "quantize_rows"));
  if (n_rows < 0) return make_error(StatusCode::invalid_argument, "quantize_rows: n_rows ", n_rows);
  const uint64_t row_size = *row_bytes(t, uint64_t(n_per_row));
  for_rows(n_rows, n_per_row, n_threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      (void)quantize_row(t, src + r * n_per_row, static_cast<uint8_t*>(dst) + uint64_t(r) * row_size,
                         n_per_row, weights);
    }
  });
  return Status::ok();
}

}  // namespace anvil::quant
