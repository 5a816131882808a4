// Tensors as the backends see them: a typed 2-D view of device (or host) memory.
//
// Layout follows GGUF/ggml: `cols` (ne0) is the contiguous dimension, `rows` (ne1) the next;
// a row is `row_bytes(type, cols)` bytes and rows are `row_stride` bytes apart. Activations are
// F32 [n_tokens, features]; weights are [out_features, in_features] in any block type, so a
// matmul computes y[t, o] = sum_i x[t, i] * W[o, i].
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace anvil {

enum class DeviceKind { cpu, cuda, vulkan };
const char* device_kind_name(DeviceKind k);

struct Tensor {
  void* data = nullptr;
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_stride = 0;  // bytes between consecutive rows

  static Tensor contiguous(void* data, DType type, int64_t rows, int64_t cols);
  int64_t n_elements() const { return rows * cols; }
  size_t row_size() const;  // bytes of one row's payload
  bool is_contiguous() const { return row_stride == row_size(); }
  // Rows [first, first + n) of this tensor.
  Tensor slice_rows(int64_t first, int64_t n) const;
  // Columns [first, first + n) of an F32 tensor (a strided view, e.g. one head of a QKV row).
  Tensor slice_cols(int64_t first, int64_t n) const;
  // The same contiguous bytes seen as [rows * cols / new_cols, new_cols] (e.g. per-head rows).
  Tensor reshape_cols(int64_t new_cols) const;
  template <typename T>
  T* row(int64_t r) const {
    return reinterpret_cast<T*>(static_cast<char*>(data) + size_t(r) * row_stride);
  }
};

// A model weight bound to a backend: a tensor plus its GGUF name (for errors and tuning keys).
// On the CPU it points into the memory-mapped file (zero copy); on a GPU into device memory,
// possibly repacked into the kernel's layout (`layout` says which).
struct Weight {
  std::string name;
  Tensor t;
  int layout = 0;  // 0: GGUF block order; backends define others
  bool valid() const { return t.data != nullptr; }
};

}  // namespace anvil
