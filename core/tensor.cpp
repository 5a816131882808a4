#include "core/tensor.h"

#include <cassert>

namespace anvil {

const char* device_kind_name(DeviceKind k) {
  switch (k) {
    case DeviceKind::cpu: return "cpu";
    case DeviceKind::cuda: return "cuda";
    case DeviceKind::vulkan: return "vulkan";
  }
  return "?";
}

Tensor Tensor::contiguous(void* data, DType type, int64_t rows, int64_t cols) {
  Tensor t;
  t.data = data;
  t.type = type;
  t.rows = rows;
  t.cols = cols;
  t.row_stride = size_t(*row_bytes(type, uint64_t(cols)));
  return t;
}

size_t Tensor::row_size() const { return size_t(*row_bytes(type, uint64_t(cols))); }

Tensor Tensor::slice_rows(int64_t first, int64_t n) const {
  assert(first >= 0 && first + n <= rows);
  Tensor t = *this;
  t.data = static_cast<char*>(data) + size_t(first) * row_stride;
  t.rows = n;
  return t;
}

Tensor Tensor::slice_cols(int64_t first, int64_t n) const {
  assert(type == DType::F32 && first >= 0 && first + n <= cols);
  Tensor t = *this;
  t.data = static_cast<char*>(data) + size_t(first) * sizeof(float);
  t.cols = n;
  return t;
}

Tensor Tensor::reshape_cols(int64_t new_cols) const {
  assert(is_contiguous() && (rows * cols) % new_cols == 0);
  return contiguous(data, type, rows * cols / new_cols, new_cols);
}

}  // namespace anvil
