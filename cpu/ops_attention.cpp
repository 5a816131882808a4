// Paged KV and attention on the CPU: kv_store, attention (causal, GQA, sliding window, softcap)
// and copy_page. KV rows are F32 (the CPU default, so the oracle stays exact) or F16.
//
// A token t of sequence s at position p attends to positions j in [lo, p], lo = max(0, p - window
// + 1) with a sliding window else 0; position j lives in KV row
// block_tables[s][j / page_size] * page_size + j % page_size.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "cpu/backend.h"
#include "core/op_checks.h"

namespace anvil::cpu {
namespace {

// Element i of a KV row as f32.
inline float kv_at(const Tensor& t, int64_t row, int64_t i) {
  if (t.type == DType::F32) return t.row<const float>(row)[i];
  return fp16_to_fp32(t.row<const uint16_t>(row)[i]);
}

void store_row(const Tensor& dst, int64_t row, const float* src) {
  if (dst.type == DType::F32) {
    std::memcpy(dst.row<float>(row), src, size_t(dst.cols) * sizeof(float));
  } else {
    uint16_t* d = dst.row<uint16_t>(row);
    for (int64_t i = 0; i < dst.cols; ++i) d[i] = fp32_to_fp16(src[i]);
  }
}

int32_t window_start(int32_t pos, int32_t window) { return window > 0 ? std::max(0, pos - window + 1) : 0; }

}  // namespace

Status kv_store(const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step) {
  ANVIL_RETURN_IF_ERROR(check_step("kv_store", step, step.kv_slots, "kv_slots"));
  ANVIL_RETURN_IF_ERROR(check_kv("kv_store", kv));
  ANVIL_RETURN_IF_ERROR(check_f32("kv_store", "k", k));
  ANVIL_RETURN_IF_ERROR(check_f32("kv_store", "v", v));
  ANVIL_RETURN_IF_ERROR(check_same_shape("kv_store", "k", k, "v", v));
  if (k.rows != step.n_tokens || k.cols != kv.k.cols)
    return make_error(StatusCode::invalid_argument, "kv_store: k/v ", shape_str(k), " must be [", step.n_tokens,
                      " x ", kv.k.cols, "] for KV ", shape_str(kv.k));
  for (int32_t t = 0; t < step.n_tokens; ++t) {
    if (step.kv_slots[t] < 0 || step.kv_slots[t] >= kv.k.rows)
      return make_error(StatusCode::invalid_argument, "kv_store: KV slot ", step.kv_slots[t], " of token ", t,
                        " is outside the layer's ", kv.k.rows, " rows");
  }
  for (int32_t t = 0; t < step.n_tokens; ++t) {
    store_row(kv.k, step.kv_slots[t], k.row<const float>(t));
    store_row(kv.v, step.kv_slots[t], v.row<const float>(t));
  }
  return Status::ok();
}

Status attention(const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step, Tensor out,
                 ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_attention(q, kv, p, step, out));
  const int32_t ps = step.page_size;

  const int32_t group = p.n_heads / p.n_kv_heads;
  const int32_t hd = p.head_dim;
  pool.parallel_for(int64_t(step.n_tokens) * p.n_heads, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores;
    std::vector<double> acc(static_cast<size_t>(hd));
    for (int64_t item = i0; item < i1; ++item) {
      const int32_t t = int32_t(item / p.n_heads), h = int32_t(item % p.n_heads);
      const int32_t s = step.token_seq[t], pos = step.positions[t];
      const int32_t lo = window_start(pos, p.sliding_window);
      const int32_t* table = step.block_tables + int64_t(s) * step.max_blocks;
      const int64_t kv_col = int64_t(h / group) * hd;
      const float* qh = q.row<const float>(t) + int64_t(h) * hd;
      const auto kv_row = [&](int32_t j) { return int64_t(table[j / ps]) * ps + j % ps; };

      scores.resize(size_t(pos - lo + 1));
      float max_score = -INFINITY;
      for (int32_t j = lo; j <= pos; ++j) {
        const int64_t r = kv_row(j);
        double dot = 0.0;
        for (int32_t d = 0; d < hd; ++d) dot += double(qh[d]) * double(kv_at(kv.k, r, kv_col + d));
        float sc = p.scale * float(dot);
        if (p.softcap > 0.f) sc = p.softcap * std::tanh(sc / p.softcap);
        scores[size_t(j - lo)] = sc;
        max_score = std::max(max_score, sc);
      }
      double denom = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int32_t j = lo; j <= pos; ++j) {
        const float w = std::exp(scores[size_t(j - lo)] - max_score);
        denom += w;
        const int64_t r = kv_row(j);
        for (int32_t d = 0; d < hd; ++d) acc[size_t(d)] += double(w) * double(kv_at(kv.v, r, kv_col + d));
      }
      float* oh = out.row<float>(t) + int64_t(h) * hd;
      for (int32_t d = 0; d < hd; ++d) oh[d] = float(acc[size_t(d)] / denom);
    }
  });
  return Status::ok();
}

Status copy_page(const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size) {
  ANVIL_RETURN_IF_ERROR(check_kv("copy_page", kv));
  if (page_size <= 0)
    return make_error(StatusCode::invalid_argument, "copy_page: page_size ", page_size, " must be positive");
  const int64_t n_pages = kv.k.rows / page_size;
  if (src_page < 0 || src_page >= n_pages || dst_page < 0 || dst_page >= n_pages)
    return make_error(StatusCode::invalid_argument, "copy_page: pages ", src_page, " -> ", dst_page,
                      " outside the layer's ", n_pages, " pages of ", page_size, " tokens");
  if (src_page == dst_page) return Status::ok();
  for (const Tensor* t : {&kv.k, &kv.v}) {
    for (int32_t i = 0; i < page_size; ++i)
      std::memcpy(t->row<char>(int64_t(dst_page) * page_size + i), t->row<const char>(int64_t(src_page) * page_size + i),
                  t->row_size());
  }
  return Status::ok();
}

}  // namespace anvil::cpu
