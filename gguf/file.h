// Read-only view of a GGUF file (v2 and v3), memory-mapped and validated.
//
//   auto f = gguf::File::open("model.gguf");        // Expected<File>
//   if (!f) { log(f.status().to_string()); ... }
//   uint32_t n = f->get_u32("qwen3.block_count").value();
//   const gguf::TensorInfo* t = f->find_tensor("blk.0.attn_q.weight");
//   const uint8_t* bytes = f->tensor_data(*t);   // zero-copy pointer into the mapping
//
// open() validates everything before it returns: magic, version, counts against the file size,
// string lengths, value types, nesting depth, dims (count, product overflow), tensor types,
// offsets/sizes inside the data section, alignment, duplicate keys and tensor names. A failure is
// a Status (corrupt_file / unsupported / io_error) naming the field and its byte offset.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "gguf/value.h"

namespace anvil::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] is the contiguous (row) dimension
  uint64_t offset = 0;         // relative to the start of the data section
  uint64_t size = 0;           // bytes, derived from type and dims
  uint64_t n_elements() const;
  uint64_t row_size() const;   // bytes of one dims[0] row
  uint64_t n_rows() const;     // n_elements / dims[0]
};

struct KeyValue {
  std::string key;
  Value value;
};

class File {
 public:
  static Expected<File> open(const std::string& path);
  // Parses an in-memory image (no copy; the caller keeps `bytes` alive). Used by the fuzzer.
  static Expected<File> from_memory(std::span<const uint8_t> bytes, std::string label = "<memory>");

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  const std::string& path() const;
  uint32_t version() const;
  uint32_t alignment() const;
  uint64_t file_size() const;
  uint64_t data_offset() const;  // absolute offset of the data section

  // Metadata, in file order.
  const std::vector<KeyValue>& metadata() const;
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed accessors: not_found when the key is absent, invalid_argument naming the key, the
  // expected and the actual type when it does not convert exactly.
  Expected<std::string> get_string(std::string_view key) const;
  Expected<uint32_t> get_u32(std::string_view key) const;
  Expected<int64_t> get_i64(std::string_view key) const;
  Expected<uint64_t> get_u64(std::string_view key) const;
  Expected<float> get_f32(std::string_view key) const;
  Expected<bool> get_bool(std::string_view key) const;
  Expected<std::vector<std::string>> get_string_array(std::string_view key) const;
  Expected<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Expected<std::vector<float>> get_float_array(std::string_view key) const;
  // "general.architecture", or an error if absent.
  Expected<std::string> architecture() const;

  // Tensors, in file order.
  const std::vector<TensorInfo>& tensors() const;
  const TensorInfo* find_tensor(std::string_view name) const;
  const uint8_t* tensor_data(const TensorInfo& t) const;

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace anvil::gguf
