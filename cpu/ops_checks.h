// Shape checks shared by the CPU op families: each failure names the op, the argument and the
// shapes, as core/backend.h promises.
#pragma once

#include <string>

#include "core/backend.h"
#include "core/status.h"
#include "core/tensor.h"

namespace anvil::cpu {

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

inline Status check_same_shape(const char* op, const char* arg_a, const Tensor& a, const char* arg_b,
                               const Tensor& b) {
  if (a.rows != b.rows || a.cols != b.cols)
    return make_error(StatusCode::invalid_argument, op, ": ", arg_a, " ", shape_str(a), " and ", arg_b, " ",
                      shape_str(b), " differ in shape");
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

}  // namespace anvil::cpu
