// Token embedding lookup on the GPU: out[t] = dequantized row tokens[t] of the table, any table
// type cuda/dequant.h handles. The ids are read by the kernel from DeviceStep::tokens (device
// memory), so a captured decode graph replays with the next step's tokens; the launch depends
// only on n_tokens and the table's shape (ops.h launch rule).
//
// Bad ids: the host mirror of the step (host_step) is checked first, so an out-of-range id is
// rejected with the same invalid_argument as the CPU backend and nothing is written. The kernel
// also clamps every id into [0, vocab), so a replayed graph whose new ids were never checked
// here still cannot read outside the table.
#include "core/op_checks.h"
#include "cuda/dequant.h"
#include "cuda/ops.h"

namespace anvil::cuda {

Status embed(Context& ctx, const Weight& table, const DeviceStep& step, Tensor out) {
  ANVIL_RETURN_IF_ERROR(check_step("embed", step, step.tokens, "tokens"));
  ANVIL_RETURN_IF_ERROR(check_f32("embed", "out", out));
  if (!table.valid())
    return make_error(StatusCode::invalid_argument, "embed: table '", table.name, "' is not bound");
  if (!has_device_dequantizer(table.t.type))
    return make_error(StatusCode::unsupported, "embed: table '", table.name, "' ", shape_str(table.t),
                      ": no CUDA dequantizer for this type");
  if (out.rows != step.n_tokens || out.cols != table.t.cols)
    return make_error(StatusCode::invalid_argument, "embed: out ", shape_str(out), " must be [", step.n_tokens,
                      " x ", table.t.cols, "] for table '", table.name, "' ", shape_str(table.t), " and ",
                      step.n_tokens, " tokens");
  if (table.t.rows < 1)
    return make_error(StatusCode::invalid_argument, "embed: table '", table.name, "' has no rows");
  // Only a step that carries its host mirror can be checked here (prepare_step always adds
  // one); its `tokens` are then host memory.
  if (step.host) {
    const DeviceStep& h = *step.host;
    if (h.n_tokens != step.n_tokens || (h.n_tokens > 0 && !h.tokens))
      return make_error(StatusCode::invalid_argument, "embed: the step's host mirror does not match it");
    for (int32_t t = 0; t < h.n_tokens; ++t) {
      const int32_t id = h.tokens[t];
      if (id < 0 || id >= table.t.rows)
        return make_error(StatusCode::invalid_argument, "embed: token id ", id, " (token ", t,
                          ") is out of range for vocab size ", table.t.rows, " of '", table.name, "'");
    }
  }
  if (step.n_tokens == 0) return Status::ok();
  return dequantize_rows(ctx, table.t, step.tokens, 0, step.n_tokens, DType::F32, out.data, out.row_stride);
}

}  // namespace anvil::cuda
