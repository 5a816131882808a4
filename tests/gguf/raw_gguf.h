// Builds GGUF images byte by byte, recording where each field lands, so tests can corrupt one
// field and check that the reader names it and its byte offset.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace anvil::gguf::test {

template <typename T>
std::vector<uint8_t> le(T x) {
  std::vector<uint8_t> b(sizeof(T));
  std::memcpy(b.data(), &x, sizeof(T));
  return b;
}

inline std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A string as GGUF stores it: u64 length then the bytes.
inline std::vector<uint8_t> gstr(const std::string& s) {
  std::vector<uint8_t> b(8 + s.size());
  const uint64_t n = s.size();
  std::memcpy(b.data(), &n, 8);
  if (n) std::memcpy(b.data() + 8, s.data(), n);
  return b;
}

// An array value: element type, count, then the already-encoded items.
inline std::vector<uint8_t> garr(uint32_t elem_type, uint64_t count, const std::vector<uint8_t>& items) {
  return cat({le<uint32_t>(elem_type), le<uint64_t>(count), items});
}

struct RawKv {
  std::string key;
  uint32_t type;
  std::vector<uint8_t> payload;
  std::optional<uint64_t> key_len;  // overrides the stored key length
};

struct RawTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type;
  uint64_t offset;
  std::optional<uint64_t> name_len;
};

struct RawSpec {
  uint32_t magic = 0x46554747;
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors, n_kv;  // override the true counts
  std::vector<RawKv> kvs;
  std::vector<RawTensor> tensors;
  uint32_t pad_to = 32;         // padding before the data section
  std::vector<uint8_t> data;
};

struct RawImage {
  std::vector<uint8_t> bytes;
  std::map<std::string, uint64_t> at;  // "magic", "kv2.value", "ti1.offset", "data", ...
};

inline RawImage build(const RawSpec& s) {
  RawImage img;
  auto& b = img.bytes;
  auto put = [&](const std::string& mark, const std::vector<uint8_t>& x) {
    if (!mark.empty()) img.at[mark] = b.size();
    b.insert(b.end(), x.begin(), x.end());
  };
  put("magic", le(s.magic));
  put("version", le(s.version));
  put("n_tensors", le<uint64_t>(s.n_tensors.value_or(s.tensors.size())));
  put("n_kv", le<uint64_t>(s.n_kv.value_or(s.kvs.size())));
  for (size_t i = 0; i < s.kvs.size(); ++i) {
    const RawKv& kv = s.kvs[i];
    const std::string p = "kv" + std::to_string(i) + ".";
    put(p + "key", le<uint64_t>(kv.key_len.value_or(kv.key.size())));
    put("", std::vector<uint8_t>(kv.key.begin(), kv.key.end()));
    put(p + "type", le(kv.type));
    put(p + "value", kv.payload);
  }
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    const RawTensor& t = s.tensors[i];
    const std::string p = "ti" + std::to_string(i) + ".";
    put(p + "name", le<uint64_t>(t.name_len.value_or(t.name.size())));
    put("", std::vector<uint8_t>(t.name.begin(), t.name.end()));
    put(p + "n_dims", le<uint32_t>(uint32_t(t.dims.size())));
    for (size_t d = 0; d < t.dims.size(); ++d) put(p + "dim" + std::to_string(d), le(t.dims[d]));
    put(p + "type", le(t.type));
    put(p + "offset", le(t.offset));
  }
  img.at["end_of_infos"] = b.size();
  while (b.size() % s.pad_to) b.push_back(0);
  put("data", s.data);
  return img;
}

}  // namespace anvil::gguf::test
