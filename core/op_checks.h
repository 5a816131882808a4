// Shape checks shared by the backends' op families: each failure names the op, the argument and the
// shapes, as core/backend.h promises.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <string>

#include "core/backend.h"
#include "core/status.h"
#include "core/tensor.h"

namespace anvil {

// "[3 x 64 F32]"
// (Appended piecewise: gcc 12's -Wrestrict misfires on `"[" + std::string` chains.)
inline std::string shape_str(const Tensor& t) {
  std::string s(1, '[');
  s += std::to_string(t.rows);
  s += " x ";
  s += std::to_string(t.cols);
  s += ' ';
  s += dtype_name(t.type);
  s += ']';
  return s;
}

// A usable F32 activation: data present (unless empty), non-negative shape, rows not overlapping.
inline Status check_f32(const char* op, const char* arg, const Tensor& t) {
  if (t.type != DType::F32)
    return make_error(StatusCode::invalid_argument, op, ": ", arg, " must be F32, got ", shape_str(t));
  if (t.rows < 0 || t.cols < 0)
    return make_error(StatusCode::invalid_argument, op, ": ", arg, " has a negative shape ", shape_str(t));
  if (t.n_elements() > 0 && t.data == nullptr)
    return make_error(StatusCode::invalid_argument, op, ": ", arg, " ", shape_str(t), " has no data");
  if (t.rows > 1 && t.row_stride < size_t(t.cols) * sizeof(float))
    return make_error(StatusCode::invalid_argument, op, ": ", arg, " ", shape_str(t), " has row_stride ",
                      t.row_stride, " shorter than a row");
  return Status::ok();
}

// Backend::sample's arguments: F32 logits [n, n_vocab > 0] and one request and id slot per row;
// every penalty id inside the row (sample_row would reject it too; device kernels must not
// index past the row).
inline Status check_sample(const Tensor& logits, std::span<const SampleRequest> requests, size_t n_ids) {
  ANVIL_RETURN_IF_ERROR(check_f32("sample", "logits", logits));
  if (logits.cols <= 0) return make_error(StatusCode::invalid_argument, "sample: logits ", shape_str(logits), " have no columns");
  if (requests.size() != size_t(logits.rows) || n_ids != size_t(logits.rows))
    return make_error(StatusCode::invalid_argument, "sample: logits ", shape_str(logits), " but ", requests.size(),
                      " requests and ", n_ids, " id slots");
  for (const SampleRequest& r : requests) {
    ANVIL_RETURN_IF_ERROR(validate(r.params));
    if (!(r.uniform >= 0.0 && r.uniform < 1.0))
      return make_error(StatusCode::invalid_argument, "sample: uniform ", r.uniform, " outside [0, 1)");
    for (const PenaltyCount& pc : r.penalties)
      if (pc.id < 0 || pc.id >= logits.cols || pc.count < 1)
        return make_error(StatusCode::invalid_argument, "sample: penalty entry (", pc.id, ", ", pc.count,
                          ") outside the vocabulary [0, ", logits.cols, ") or with a count below 1");
  }
  return Status::ok();
}

inline Status check_same_shape(const char* op, const char* arg_a, const Tensor& a, const char* arg_b,
                               const Tensor& b) {
  if (a.rows != b.rows || a.cols != b.cols)
    return make_error(StatusCode::invalid_argument, op, ": ", arg_a, " ", shape_str(a), " and ", arg_b, " ",
                      shape_str(b), " differ in shape");
  return Status::ok();
}

// Backend::qk_norm_rope_store's tensors against its params (the ops it runs check the rest).
inline Status check_qk_norm_rope(const Tensor& q_src, const Tensor& q, const Tensor& k, const QkNormRope& p) {
  constexpr const char* op = "qk_norm_rope_store";
  ANVIL_RETURN_IF_ERROR(check_f32(op, "q_src", q_src));
  ANVIL_RETURN_IF_ERROR(check_f32(op, "q", q));
  ANVIL_RETURN_IF_ERROR(check_f32(op, "k", k));
  const int64_t hd = p.rope_q.head_dim;
  if (hd <= 0 || p.rope_k.head_dim != hd || p.rope_q.n_heads <= 0 || p.rope_k.n_heads <= 0)
    return make_error(StatusCode::invalid_argument, op, ": rope_q (", p.rope_q.n_heads, " heads x ", hd,
                      ") and rope_k (", p.rope_k.n_heads, " x ", p.rope_k.head_dim,
                      ") need positive head counts and one head_dim");
  if (q.cols != p.rope_q.n_heads * hd || k.cols != p.rope_k.n_heads * hd || k.rows != q.rows)
    return make_error(StatusCode::invalid_argument, op, ": q ", shape_str(q), " and k ", shape_str(k),
                      " must be [n_tokens x ", p.rope_q.n_heads * hd, "] and [n_tokens x ", p.rope_k.n_heads * hd,
                      "]");
  if ((q.rows > 1 && !q.is_contiguous()) || (k.rows > 1 && !k.is_contiguous()))
    return make_error(StatusCode::invalid_argument, op, ": q ", shape_str(q), " and k ", shape_str(k),
                      " must be contiguous (their heads are normed as [rows x head_dim] views)");
  if (q_src.rows != q.rows * p.rope_q.n_heads || q_src.cols != hd)
    return make_error(StatusCode::invalid_argument, op, ": q_src ", shape_str(q_src), " must be q's heads as [",
                      q.rows * p.rope_q.n_heads, " x ", hd, "]");
  if (!p.q_norm && q.n_elements() > 0 && (q_src.data != q.data || (q_src.rows > 1 && q_src.row_stride != q_src.row_size())))
    return make_error(StatusCode::invalid_argument, op, ": without a q norm, q_src must be q.reshape_cols(", hd,
                      ")");
  return Status::ok();
}

// The step's counts are sane and the per-token array `array` (named `what`) is present.
inline Status check_step(const char* op, const DeviceStep& step, const int32_t* array, const char* what) {
  if (step.n_tokens < 0 || step.n_seqs < 0 || step.page_size <= 0)
    return make_error(StatusCode::invalid_argument, op, ": malformed DeviceStep (n_tokens ", step.n_tokens,
                      ", n_seqs ", step.n_seqs, ", page_size ", step.page_size, ")");
  if (step.n_tokens > 0 && !array)
    return make_error(StatusCode::invalid_argument, op, ": DeviceStep has no ", what, " (use prepare_step)");
  return Status::ok();
}

// Every sequence of the step with tokens has a state slot in [0, n_slots) and consistent token
// ranges (recurrent ops: conv1d_silu, gated_deltanet).
// Reads the step's host mirror (host_step), so it works for device-memory steps too.
inline Status check_state_slots(const char* op, const DeviceStep& device_step, int64_t n_slots) {
  ANVIL_RETURN_IF_ERROR(check_step(op, device_step, device_step.token_seq, "token_seq"));
  const DeviceStep& step = host_step(device_step);
  if (step.n_seqs > 0 && (!step.state_slots || !step.seq_first_token || !step.seq_n_tokens || !step.context_lens))
    return make_error(StatusCode::invalid_argument, op, ": DeviceStep has no state_slots / sequence ranges (use "
                      "prepare_step)");
  for (int32_t s = 0; s < step.n_seqs; ++s) {
    const int32_t first = step.seq_first_token[s], n = step.seq_n_tokens[s];
    if (n == 0) continue;
    if (first < 0 || n < 0 || int64_t(first) + n > step.n_tokens || step.context_lens[s] < n)
      return make_error(StatusCode::invalid_argument, op, ": sequence ", s, " (first token ", first, ", ", n,
                        " tokens, context ", step.context_lens[s], ") does not fit the step's ", step.n_tokens,
                        " tokens");
    if (step.state_slots[s] < 0 || step.state_slots[s] >= n_slots)
      return make_error(StatusCode::invalid_argument, op, ": sequence ", s, " has state slot ", step.state_slots[s],
                        ", the layer has ", n_slots, " slots");
    for (int32_t s2 = 0; s2 < s; ++s2)
      if (step.seq_n_tokens[s2] > 0 && step.state_slots[s2] == step.state_slots[s])
        return make_error(StatusCode::invalid_argument, op, ": sequences ", s2, " and ", s, " share state slot ",
                          step.state_slots[s]);
  }
  return Status::ok();
}

// One layer's paged K and V: F32 or F16, non-empty, the same shape and type.
inline Status check_kv(const char* op, const KvLayer& kv) {
  for (const Tensor* t : {&kv.k, &kv.v}) {
    if (t->type != DType::F32 && t->type != DType::F16)
      return make_error(StatusCode::invalid_argument, op, ": KV tensors must be F32 or F16, got ", shape_str(*t));
    if (!t->data || t->rows <= 0 || t->cols <= 0 || t->row_stride < t->row_size())
      return make_error(StatusCode::invalid_argument, op, ": KV tensor ", shape_str(*t), " is empty or malformed");
  }
  if (kv.k.rows != kv.v.rows || kv.k.cols != kv.v.cols || kv.k.type != kv.v.type)
    return make_error(StatusCode::invalid_argument, op, ": K ", shape_str(kv.k), " and V ", shape_str(kv.v),
                      " differ");
  return Status::ok();
}

// Backend::attention's contract: shapes, params, and every page each token reads present in its
// sequence's block table and in the layer. Reads the step's host mirror (host_step).
inline Status check_attention(const Tensor& q, const KvLayer& kv, const AttentionParams& p,
                              const DeviceStep& device_step, const Tensor& out) {
  const DeviceStep& step = host_step(device_step);
  ANVIL_RETURN_IF_ERROR(check_step("attention", step, step.positions, "positions"));
  ANVIL_RETURN_IF_ERROR(check_kv("attention", kv));
  ANVIL_RETURN_IF_ERROR(check_f32("attention", "q", q));
  ANVIL_RETURN_IF_ERROR(check_f32("attention", "out", out));
  ANVIL_RETURN_IF_ERROR(check_same_shape("attention", "q", q, "out", out));
  if (p.n_heads <= 0 || p.n_kv_heads <= 0 || p.head_dim <= 0 || p.n_heads % p.n_kv_heads != 0)
    return make_error(StatusCode::invalid_argument, "attention: bad heads n_heads ", p.n_heads, ", n_kv_heads ",
                      p.n_kv_heads, ", head_dim ", p.head_dim, " (n_heads must be a multiple of n_kv_heads)");
  // scale 0 would silently give uniform attention; the struct's default is 0, so insist.
  if (!std::isfinite(p.scale) || p.scale == 0.f || !(p.softcap >= 0.f) || p.sliding_window < 0)
    return make_error(StatusCode::invalid_argument, "attention: scale ", p.scale, " must be finite and non-zero",
                      " (usually 1/sqrt(head_dim)), softcap ", p.softcap, " and sliding_window ",
                      p.sliding_window, " >= 0");
  if (q.rows != step.n_tokens || q.cols != int64_t(p.n_heads) * p.head_dim)
    return make_error(StatusCode::invalid_argument, "attention: q ", shape_str(q), " must be [", step.n_tokens,
                      " x ", int64_t(p.n_heads) * p.head_dim, "]");
  if (kv.k.cols != int64_t(p.n_kv_heads) * p.head_dim)
    return make_error(StatusCode::invalid_argument, "attention: KV ", shape_str(kv.k), " must have n_kv_heads ",
                      p.n_kv_heads, " * head_dim ", p.head_dim, " columns");
  if (step.n_tokens > 0 && (!step.token_seq || !step.block_tables || !step.context_lens))
    return make_error(StatusCode::invalid_argument, "attention: DeviceStep has no token_seq / block tables /"
                      " context_lens (use prepare_step)");
  const int32_t ps = step.page_size;
  for (int32_t t = 0; t < step.n_tokens; ++t) {
    const int32_t s = step.token_seq[t], pos = step.positions[t];
    if (s < 0 || s >= step.n_seqs || pos < 0 || pos >= step.context_lens[s])
      return make_error(StatusCode::invalid_argument, "attention: token ", t, " (sequence ", s, ", position ",
                        pos, ") is outside its sequence");
    const int32_t lo = p.sliding_window > 0 ? std::max(0, pos - p.sliding_window + 1) : 0;
    for (int32_t b = lo / ps; b <= pos / ps; ++b) {
      const int32_t page = b < step.max_blocks ? step.block_tables[int64_t(s) * step.max_blocks + b] : -1;
      if (page < 0 || (int64_t(page) + 1) * ps > kv.k.rows)
        return make_error(StatusCode::invalid_argument, "attention: sequence ", s, " block ", b, " -> page ", page,
                          " is not a page of the layer's ", kv.k.rows / ps, " pages of ", ps, " tokens");
    }
  }
  return Status::ok();
}

}  // namespace anvil
