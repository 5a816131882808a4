// Helpers shared by the gguf tests: value equality, random bytes, scratch directories.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "gguf/value.h"

namespace anvil::gguf::test {

// Exact equality; floats compare by bits so NaN payloads and -0.0 count.
inline bool same_value(const Value& a, const Value& b) {
  if (a.v.index() != b.v.index()) return false;
  if (const auto* x = std::get_if<float>(&a.v)) {
    return std::memcmp(x, &std::get<float>(b.v), sizeof(float)) == 0;
  }
  if (const auto* x = std::get_if<double>(&a.v)) {
    return std::memcmp(x, &std::get<double>(b.v), sizeof(double)) == 0;
  }
  if (const auto* x = std::get_if<Array>(&a.v)) {
    const Array& y = std::get<Array>(b.v);
    if (x->type != y.type || x->items.size() != y.items.size()) return false;
    for (size_t i = 0; i < x->items.size(); ++i)
      if (!same_value(x->items[i], y.items[i])) return false;
    return true;
  }
  return std::visit(
      [&](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Array>) {
          return false;  // handled above
        } else {
          return x == std::get<T>(b.v);
        }
      },
      a.v);
}

// Random bytes that are never all zero, so a reader returning zeroed memory cannot pass.
inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = uint8_t(rng());
  if (n) b[0] |= 1;
  return b;
}

inline Value make_array(ValueType t, std::vector<Value> items) {
  Array a;
  a.type = t;
  a.items = std::move(items);
  return Value{std::move(a)};
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// A fresh directory per test, removed when the object goes away.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    path_ = std::filesystem::temp_directory_path() /
            ("anvil_gguf_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace anvil::gguf::test
