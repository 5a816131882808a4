// Writes float32 NumPy .npy files (format 1.0, '<f4', C order), streaming: the data is
// appended in pieces, so a large dequantized tensor never has to fit in memory at once.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/status.h"

namespace anvil::tools {

// The .npy header (magic, version, length, dict padded to a multiple of 64 bytes) for a
// little-endian float32 C-order array of `shape`.
std::string npy_header_f32(const std::vector<uint64_t>& shape);

class NpyWriter {
 public:
  static Expected<NpyWriter> create(const std::string& path, std::vector<uint64_t> shape);
  NpyWriter(NpyWriter&& other) noexcept;
  NpyWriter& operator=(NpyWriter&&) = delete;
  ~NpyWriter();

  Status append(const float* data, uint64_t n);
  // Checks that exactly prod(shape) values were appended and closes the file.
  Status close();

 private:
  NpyWriter(std::string path, std::FILE* f, uint64_t expected) : path_(std::move(path)), f_(f), expected_(expected) {}
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t expected_ = 0, written_ = 0;
};

}  // namespace anvil::tools
