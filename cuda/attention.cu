// Attention over the paged KV cache on CUDA (Backend::attention; cpu/ops_attention.cpp is the
// oracle and its validation is mirrored here line for line).
//
// A token t of sequence s at position p attends to positions j in [lo, p] (lo = p - window + 1
// with a sliding window, else 0); position j lives in KV row
// block_tables[s][j / page_size] * page_size + j % page_size. KV is F32 or F16 (what the CPU
// supports); all math is f32 (FMA), so F32 KV matches the CPU's double-accumulated oracle to ~1e-6.
//
// Kernels, chosen per sequence by its token count in the step (and by shape for prefill):
//
// 1. decode_split_kernel + decode_combine_kernel (cuda/attention_decode.cu): sequences with at
//    most kDecodeMaxTokens tokens; split-K over the key range, each KV row read once per GQA group.
// 2. prefill_kernel (cuda/attention_prefill.cu): longer sequences; tiles of (token, head) rows
//    against K/V tiles in shared memory, f32 FMA.
// 3. prefill_mma_kernel (cuda/attention_prefill_mma.cuh): the same tiles on tensor cores for F16
//    KV at head_dim 64/128/256.
//
// cuda/attention_kernels.cuh holds what they share. This file validates and dispatches.

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "core/op_checks.h"
#include "cuda/attention_kernels.cuh"
#include "cuda/ops.h"

namespace anvil::cuda {
namespace {

using attn::AttnArgs;
using attn::ceil_div;
using attn::kDecodeMaxTokens;
using attn::kMaxHeadDim;

// The contract's checks (core/op_checks.h), then what only the CUDA kernels need.
Status validate(const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                const Tensor& out) {
  ANVIL_RETURN_IF_ERROR(check_attention(q, kv, p, step, out));
  if (step.n_tokens > 0 && (!step.host || !step.seq_first_token || !step.seq_n_tokens))
    return make_error(StatusCode::invalid_argument, "attention: DeviceStep has no host mirror or sequence ranges"
                      " (use this backend's prepare_step)");
  const DeviceStep& hs = host_step(step);
  // The kernels also read each token's sequence range; make_host_step guarantees it, a
  // hand-made step may not.
  for (int32_t s = 0; s < hs.n_seqs; ++s) {
    const int32_t first = hs.seq_first_token[s], n = hs.seq_n_tokens[s];
    if (n < 0 || (n > 0 && (first < 0 || int64_t(first) + n > hs.n_tokens)))
      return make_error(StatusCode::invalid_argument, "attention: sequence ", s, " (first token ", first, ", ", n,
                        " tokens) does not fit the step's ", hs.n_tokens, " tokens");
  }

  if (p.head_dim > kMaxHeadDim)
    return make_error(StatusCode::unsupported, "attention: head_dim ", p.head_dim, " > ", kMaxHeadDim,
                      " has no CUDA kernel");
  const size_t elem = kv.k.type == DType::F32 ? 4 : 2;
  if (q.row_stride % sizeof(float) || out.row_stride % sizeof(float) || kv.k.row_stride % elem ||
      kv.v.row_stride % elem)
    return make_error(StatusCode::unsupported, "attention: row strides must be whole elements (q ", q.row_stride,
                      ", out ", out.row_stride, ", K ", kv.k.row_stride, ", V ", kv.v.row_stride, " bytes)");
  return Status::ok();
}

}  // namespace

Status attention(Context& ctx, const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                 Tensor out) {
  ANVIL_RETURN_IF_ERROR(validate(q, kv, p, step, out));
  if (step.n_tokens == 0) return Status::ok();
  const DeviceStep& hs = host_step(step);
  const size_t elem = kv.k.type == DType::F32 ? 4 : 2;

  AttnArgs a;
  a.q = static_cast<const float*>(q.data);
  a.out = static_cast<float*>(out.data);
  a.q_stride = int64_t(q.row_stride / sizeof(float));
  a.out_stride = int64_t(out.row_stride / sizeof(float));
  a.k = kv.k.data;
  a.v = kv.v.data;
  a.k_stride = int64_t(kv.k.row_stride / elem);
  a.v_stride = int64_t(kv.v.row_stride / elem);
  a.n_pages = kv.k.rows / step.page_size;
  a.n_heads = p.n_heads;
  a.group = p.n_heads / p.n_kv_heads;
  a.head_dim = p.head_dim;
  a.scale = p.scale;
  a.softcap = p.softcap;
  a.window = p.sliding_window;
  a.page_size = step.page_size;
  a.max_blocks = step.max_blocks;
  a.positions = step.positions;
  a.token_seq = step.token_seq;
  a.seq_first_token = step.seq_first_token;
  a.seq_n_tokens = step.seq_n_tokens;
  a.block_tables = step.block_tables;

  // Which sequences go where. A decode step (every sequence one token) launches from n_tokens
  // and max_blocks alone (CUDA-graph rule); other steps may size launches from the host mirror.
  int32_t max_seq_tokens = 0;
  int32_t short_first = INT32_MAX, short_end = 0;
  int64_t short_pages = 0;
  std::vector<int32_t> long_seqs;
  for (int32_t s = 0; s < hs.n_seqs; ++s) {
    const int32_t n = hs.seq_n_tokens[s];
    max_seq_tokens = std::max(max_seq_tokens, n);
    if (n == 0) continue;
    if (n > kDecodeMaxTokens) {
      long_seqs.push_back(s);
    } else {
      short_first = std::min(short_first, hs.seq_first_token[s]);
      short_end = std::max(short_end, hs.seq_first_token[s] + n);
      short_pages = std::max<int64_t>(short_pages, ceil_div(hs.context_lens[s], step.page_size));
    }
  }
  if (max_seq_tokens <= 1)
    return attn::run_decode(ctx, a, kv, p.n_kv_heads, 0, step.n_tokens, std::max<int32_t>(step.max_blocks, 1));
  if (short_end > short_first)
    ANVIL_RETURN_IF_ERROR(attn::run_decode(ctx, a, kv, p.n_kv_heads, short_first, short_end - short_first, short_pages));
  if (!long_seqs.empty()) ANVIL_RETURN_IF_ERROR(attn::run_prefill(ctx, a, kv, p.n_kv_heads, hs, long_seqs));
  return Status::ok();
}

}  // namespace anvil::cuda
