// Host-side argument checks and alignment tests shared by the element-wise op families
// (ops_norm.cu, ops_elementwise.cu, ops_qk_rope.cu).
#pragma once

#include <cstdint>

#include "core/op_checks.h"

namespace anvil::cuda {

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
inline bool rows_aligned16(const Tensor& t) { return aligned16(t.data) && (t.rows <= 1 || t.row_stride % 16 == 0); }

// Device float loads fault on misaligned addresses (the CPU tolerates them): reject such views.
inline Status check_float_aligned(const char* op, const char* arg, const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(t.data) % sizeof(float) != 0 || (t.rows > 1 && t.row_stride % sizeof(float) != 0))
    return make_error(StatusCode::invalid_argument, op, ": ", arg, " ", shape_str(t),
                      " is not 4-byte aligned (data or row_stride ", t.row_stride, ")");
  return Status::ok();
}

// The same check as the CPU's norm weight: any [1, n] / [n, 1] contiguous F32 weight.
inline Status check_vector_weight(const char* op, const Weight& w, int64_t n) {
  if (w.t.type != DType::F32 || w.t.n_elements() != n || !w.t.is_contiguous() || !w.t.data)
    return make_error(StatusCode::invalid_argument, op, ": weight '", w.name, "' ", shape_str(w.t),
                      " must be contiguous F32 with ", n, " elements");
  return Status::ok();
}

}  // namespace anvil::cuda
