// Token embedding lookup: dequantizes the table rows of the step's token ids.
#include <algorithm>

#include "cpu/backend.h"
#include "core/op_checks.h"
#include "quant/quant.h"

namespace anvil::cpu {

Status embed(const Weight& table, const DeviceStep& step, Tensor out, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(check_step("embed", step, step.tokens, "tokens"));
  ANVIL_RETURN_IF_ERROR(check_f32("embed", "out", out));
  if (!table.valid())
    return make_error(StatusCode::invalid_argument, "embed: table '", table.name, "' is not bound");
  if (!quant::has_reference(table.t.type))
    return make_error(StatusCode::unsupported, "embed: table '", table.name, "' ", shape_str(table.t),
                      ": no dequantizer for this type");
  if (out.rows != step.n_tokens || out.cols != table.t.cols)
    return make_error(StatusCode::invalid_argument, "embed: out ", shape_str(out), " must be [", step.n_tokens,
                      " x ", table.t.cols, "] for table '", table.name, "' ", shape_str(table.t), " and ",
                      step.n_tokens, " tokens");
  // Every id is checked before anything is written: a bad id leaves out untouched.
  for (int32_t t = 0; t < step.n_tokens; ++t) {
    const int32_t id = step.tokens[t];
    if (id < 0 || id >= table.t.rows)
      return make_error(StatusCode::invalid_argument, "embed: token id ", id, " (token ", t,
                        ") is out of range for vocab size ", table.t.rows, " of '", table.name, "'");
  }
  if (step.n_tokens == 0) return Status::ok();
  // Row 0 first, alone: the dequantizer's type/size checks fail identically for every row, so
  // once it succeeds the others cannot fail.
  const auto row = [&](int64_t t) {
    return quant::dequantize_row(table.t.type, table.t.row<const char>(step.tokens[t]), out.row<float>(t),
                                 table.t.cols);
  };
  ANVIL_RETURN_IF_ERROR(row(0));
  pool.parallel_for(step.n_tokens - 1, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, out.cols)),
                    [&](int64_t t0, int64_t t1) {
                      for (int64_t t = t0 + 1; t < t1 + 1; ++t) (void)row(t);
                    });
  return Status::ok();
}

}  // namespace anvil::cpu
