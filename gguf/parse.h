// Internal: the GGUF parser and validator behind File::open / File::from_memory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/file.h"

namespace anvil::gguf::detail {

// Arrays of arrays deeper than this are rejected: real files use one level (vocab lists) and a
// cap keeps the recursive parser's stack bounded on hostile input.
inline constexpr int kMaxNesting = 16;

struct ParsedFile {
  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<KeyValue> metadata;
  std::vector<TensorInfo> tensors;
  std::map<std::string, size_t, std::less<>> key_index;
  std::map<std::string, size_t, std::less<>> tensor_index;
};

// Parses and validates a whole GGUF image; on success every tensor's bytes lie inside `bytes`.
Status parse(std::span<const uint8_t> bytes, ParsedFile& out);

}  // namespace anvil::gguf::detail
