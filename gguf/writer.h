// Writes GGUF v3: metadata, tensor infos, aligned tensor data. Files it writes read back
// identically with gguf::File and with the PyPI gguf package.
//
//   gguf::Writer w;
//   w.set("general.architecture", std::string("qwen3"));
//   w.set("qwen3.block_count", uint32_t(2));
//   w.add_tensor("token_embd.weight", DType::F32, {256, 4096}, bytes);   // dims in GGUF order
//   Status s = w.write("out.gguf");
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "gguf/value.h"

namespace anvil::gguf {

class Writer {
 public:
  explicit Writer(uint32_t alignment = 32);

  // Adds or replaces a key (keeps first-insertion order). Setting "general.alignment" changes
  // the data alignment.
  void set(std::string key, Value value);
  void set(std::string key, std::string s) { set(std::move(key), Value{std::move(s)}); }
  void set(std::string key, const char* s) { set(std::move(key), Value{std::string(s)}); }
  void set(std::string key, uint32_t v) { set(std::move(key), Value{v}); }
  void set(std::string key, int32_t v) { set(std::move(key), Value{v}); }
  void set(std::string key, uint64_t v) { set(std::move(key), Value{v}); }
  void set(std::string key, float v) { set(std::move(key), Value{v}); }
  void set(std::string key, bool v) { set(std::move(key), Value{v}); }
  void set_array(std::string key, const std::vector<std::string>& items);
  void set_array(std::string key, const std::vector<int32_t>& items);
  void set_array(std::string key, const std::vector<uint32_t>& items);
  void set_array(std::string key, const std::vector<float>& items);

  // Adds a tensor whose bytes are copied now. dims in GGUF order; bytes.size() must equal the
  // size implied by type and dims, else invalid_argument.
  Status add_tensor(std::string name, DType type, std::vector<uint64_t> dims, std::vector<uint8_t> bytes);
  // Adds a tensor whose bytes are produced at write time (for large models: nothing is held in
  // memory). `fill` must write exactly `size` bytes into `dst`.
  Status add_tensor_lazy(std::string name, DType type, std::vector<uint64_t> dims,
                         std::function<Status(uint8_t* dst, uint64_t size)> fill);

  size_t n_tensors() const;
  // Writes the file (atomically: to path + ".tmp" then rename). `progress(done, total)` is
  // called after each tensor when given.
  Status write(const std::string& path,
               const std::function<void(size_t done, size_t total)>& progress = {}) const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<uint64_t> dims;
    uint64_t size;
    std::vector<uint8_t> bytes;
    std::function<Status(uint8_t*, uint64_t)> fill;
  };
  uint32_t alignment_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace anvil::gguf
