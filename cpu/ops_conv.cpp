// The Gated DeltaNet's causal depthwise conv1d + SiLU (Qwen3.5's ssm_conv1d), continuing each
// sequence from the kernel - 1 inputs its state slot carries (core/backend.h, conv1d_silu).
//
// Per sequence and channel the history is h = [stored inputs; this step's inputs] and
// out[t] = silu(sum_j w[j] h[t + j]); the dot product is accumulated in double (the CPU oracle's
// rule for reductions). A sequence with n_past == 0 reads zeros instead of its slot.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/backend.h"
#include "core/op_checks.h"

namespace anvil::cpu {

Status conv1d_silu(const Tensor& x, const Weight& w, const RecurrentLayer& state, const DeviceStep& step, Tensor out,
                   ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_f32("conv1d_silu", "x", x));
  ANVIL_RETURN_IF_ERROR(check_f32("conv1d_silu", "out", out));
  ANVIL_RETURN_IF_ERROR(check_f32("conv1d_silu", "state.conv", state.conv));
  ANVIL_RETURN_IF_ERROR(check_same_shape("conv1d_silu", "x", x, "out", out));
  const int64_t C = x.cols;
  if (w.t.type != DType::F32 || w.t.rows != C || w.t.cols < 2 || !w.t.data)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: weight '", w.name, "' ", shape_str(w.t),
                      " must be F32 [", C, " x kernel >= 2] for x ", shape_str(x));
  if (x.data == out.data)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: x and out must be distinct (later tokens read "
                      "earlier inputs)");
  const int64_t K = w.t.cols, hist = K - 1;
  if (state.conv.cols != C || state.conv.rows % hist != 0 || state.conv.rows == 0)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: state.conv ", shape_str(state.conv),
                      " must be [n_slots * ", hist, " x ", C, "]");
  if (x.rows != step.n_tokens)
    return make_error(StatusCode::invalid_argument, "conv1d_silu: x ", shape_str(x), " must have ", step.n_tokens,
                      " rows (the step's tokens)");
  ANVIL_RETURN_IF_ERROR(check_state_slots("conv1d_silu", step, state.conv.rows / hist));

  // Split over (sequence, channel block): channels are independent, so each task walks its
  // sequence's tokens in order for a range of channels.
  constexpr int64_t kChannelBlock = 64;
  const int64_t n_blocks = (C + kChannelBlock - 1) / kChannelBlock;
  pool.parallel_for(int64_t(step.n_seqs) * n_blocks, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> h;  // [hist + n, block] of this sequence
    for (int64_t item = i0; item < i1; ++item) {
      const int32_t s = int32_t(item / n_blocks);
      const int64_t c0 = (item % n_blocks) * kChannelBlock, c1 = std::min(C, c0 + kChannelBlock), nc = c1 - c0;
      const int32_t n = step.seq_n_tokens[s], first = step.seq_first_token[s];
      if (n == 0) continue;
      const bool fresh = step.context_lens[s] == n;
      const int64_t slot_row = int64_t(step.state_slots[s]) * hist;
      h.assign(size_t((hist + n) * nc), 0.f);
      if (!fresh)
        for (int64_t j = 0; j < hist; ++j)
          std::copy_n(state.conv.row<const float>(slot_row + j) + c0, nc, h.data() + j * nc);
      for (int32_t t = 0; t < n; ++t) std::copy_n(x.row<const float>(first + t) + c0, nc, h.data() + (hist + t) * nc);
      for (int32_t t = 0; t < n; ++t) {
        float* y = out.row<float>(first + t);
        for (int64_t c = 0; c < nc; ++c) {
          const float* wc = w.t.row<const float>(c0 + c);
          double acc = 0.0;
          for (int64_t j = 0; j < K; ++j) acc += double(wc[j]) * double(h[size_t((t + j) * nc + c)]);
          const float a = float(acc);
          y[c0 + c] = a / (1.0f + std::exp(-a));
        }
      }
      for (int64_t j = 0; j < hist; ++j)
        std::copy_n(h.data() + (n + j) * nc, nc, state.conv.row<float>(slot_row + j) + c0);
    }
  });
  return Status::ok();
}

}  // namespace anvil::cpu
