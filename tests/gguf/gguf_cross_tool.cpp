// Cross-check helper for gguf_cross_test.py (PyPI gguf vs anvil):
//   gguf_cross_tool write OUT.gguf [ALIGNMENT]  writes a file with every value type and many
//                                               tensor types; prints what it wrote as JSON
//   gguf_cross_tool dump IN.gguf                prints what anvil's reader sees, same JSON shape
// Values are {"type", "value"} (+ "bits" for floats, "hex" for strings; arrays: "elem", "items");
// tensors carry their bytes as hex. Exit 1 with the Status on stderr when anything fails.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "gguf/file.h"
#include "gguf/writer.h"

namespace {

using namespace anvil;
using namespace anvil::gguf;
using nlohmann::json;

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = d[p[i] >> 4];
    s[2 * i + 1] = d[p[i] & 15];
  }
  return s;
}

json to_json(const Value& v) {
  json j;
  j["type"] = value_type_name(v.type());
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Array>) {
          j["elem"] = value_type_name(x.type);
          json items = json::array();
          for (const Value& item : x.items) items.push_back(to_json(item));
          j["items"] = std::move(items);
        } else if constexpr (std::is_same_v<T, std::string>) {
          j["value"] = x;
          j["hex"] = hex(reinterpret_cast<const uint8_t*>(x.data()), x.size());
        } else if constexpr (std::is_same_v<T, float>) {
          uint32_t bits;
          std::memcpy(&bits, &x, 4);
          j["bits"] = bits;
          if (std::isfinite(x)) j["value"] = x;
        } else if constexpr (std::is_same_v<T, double>) {
          uint64_t bits;
          std::memcpy(&bits, &x, 8);
          j["bits"] = bits;
          if (std::isfinite(x)) j["value"] = x;
        } else {
          j["value"] = x;
        }
      },
      v.v);
  return j;
}

json tensor_json(const std::string& name, DType type, const std::vector<uint64_t>& dims, const uint8_t* bytes,
                 uint64_t size) {
  return json{{"name", name},
              {"type", std::string(dtype_name(type))},
              {"type_id", uint32_t(type)},
              {"dims", dims},
              {"hex", hex(bytes, size_t(size))}};
}

Value arr(ValueType t, std::vector<Value> items) {
  Array a;
  a.type = t;
  a.items = std::move(items);
  return Value{std::move(a)};
}

int write_mode(const std::string& path, uint32_t alignment) {
  std::vector<std::pair<std::string, Value>> kv = {
      {"general.architecture", Value{std::string("crosscheck")}},
      {"general.name", Value{std::string("Grüße 🦙 世界")}},
      {"v.uint8", Value{uint8_t(250)}},
      {"v.int8", Value{int8_t(-100)}},
      {"v.uint16", Value{uint16_t(65000)}},
      {"v.int16", Value{int16_t(-32000)}},
      {"v.uint32", Value{uint32_t(4000000000u)}},
      {"v.int32", Value{int32_t(-2000000000)}},
      {"v.float32", Value{-1.25e-7f}},
      {"v.float32.nan", Value{std::numeric_limits<float>::quiet_NaN()}},
      {"v.bool.true", Value{true}},
      {"v.bool.false", Value{false}},
      {"v.string", Value{std::string("line1\nline2\t\"q\"")}},
      {"v.string.empty", Value{std::string()}},
      {"v.uint64", Value{std::numeric_limits<uint64_t>::max() - 5}},
      {"v.int64", Value{std::numeric_limits<int64_t>::min() + 3}},
      {"v.float64", Value{2.718281828459045}},
      {"a.uint8", arr(ValueType::UINT8, {Value{uint8_t(1)}, Value{uint8_t(2)}, Value{uint8_t(255)}})},
      {"a.int8", arr(ValueType::INT8, {Value{int8_t(-1)}})},
      {"a.uint16", arr(ValueType::UINT16, {Value{uint16_t(9)}, Value{uint16_t(10)}})},
      {"a.int16", arr(ValueType::INT16, {Value{int16_t(-9)}})},
      {"a.uint32", arr(ValueType::UINT32, {Value{uint32_t(0)}, Value{uint32_t(4294967295u)}})},
      {"a.int32", arr(ValueType::INT32, {Value{int32_t(3)}, Value{int32_t(-3)}})},
      {"a.float32", arr(ValueType::FLOAT32, {Value{0.5f}, Value{-0.0f}, Value{3e38f}})},
      {"a.bool", arr(ValueType::BOOL, {Value{false}, Value{true}})},
      {"a.string", arr(ValueType::STRING, {Value{std::string("Ġthe")}, Value{std::string("")},
                                           Value{std::string("<|im_start|>")}})},
      {"a.uint64", arr(ValueType::UINT64, {Value{uint64_t(1) << 60}})},
      {"a.int64", arr(ValueType::INT64, {Value{int64_t(-1) << 60}})},
      {"a.float64", arr(ValueType::FLOAT64, {Value{1e-300}, Value{-4.0}})},
      {"a.empty.int32", arr(ValueType::INT32, {})},
      {"a.empty.string", arr(ValueType::STRING, {})},
      {"n.strings", arr(ValueType::ARRAY, {arr(ValueType::STRING, {Value{std::string("a")}, Value{std::string("b")}}),
                                           arr(ValueType::STRING, {}),
                                           arr(ValueType::STRING, {Value{std::string("ü")}})})},
      {"n.ints", arr(ValueType::ARRAY,
                     {arr(ValueType::ARRAY, {arr(ValueType::INT32, {Value{int32_t(1)}, Value{int32_t(2)}})}),
                      arr(ValueType::ARRAY, {})})},
  };
  struct T {
    std::string name;
    DType type;
    std::vector<uint64_t> dims;
  };
  const std::vector<T> specs = {
      {"token_embd.weight", DType::F32, {8, 3}},   {"blk.0.f16", DType::F16, {5, 2, 3}},
      {"blk.0.bf16", DType::BF16, {4}},            {"blk.0.q4_0", DType::Q4_0, {64, 2}},
      {"blk.0.q4_1", DType::Q4_1, {32}},           {"blk.0.q5_0", DType::Q5_0, {32, 1, 2}},
      {"blk.0.q8_0", DType::Q8_0, {96}},           {"blk.0.q2_k", DType::Q2_K, {256}},
      {"blk.0.q3_k", DType::Q3_K, {256}},          {"blk.0.q4_k", DType::Q4_K, {512, 2}},
      {"blk.0.q5_k", DType::Q5_K, {256}},          {"blk.0.q6_k", DType::Q6_K, {256, 1, 1, 2}},
      {"blk.0.q8_k", DType::Q8_K, {256}},          {"blk.0.iq4_nl", DType::IQ4_NL, {32}},
      {"blk.0.iq4_xs", DType::IQ4_XS, {256}},      {"blk.0.i8", DType::I8, {7}},
      {"blk.0.i16", DType::I16, {3}},              {"blk.0.i32", DType::I32, {2, 2}},
      {"blk.0.i64", DType::I64, {2}},              {"blk.0.f64", DType::F64, {3}},
  };
  Writer w(alignment);
  for (const auto& [k, v] : kv) w.set(k, v);
  std::mt19937_64 rng(1234);
  json tensors = json::array();
  for (const T& t : specs) {
    uint64_t size = *row_bytes(t.type, t.dims[0]);
    for (size_t d = 1; d < t.dims.size(); ++d) size *= t.dims[d];
    std::vector<uint8_t> bytes(size);
    for (auto& b : bytes) b = uint8_t(rng());
    bytes[0] |= 1;
    tensors.push_back(tensor_json(t.name, t.type, t.dims, bytes.data(), size));
    if (Status s = w.add_tensor(t.name, t.type, t.dims, std::move(bytes)); !s) {
      std::cerr << s.to_string() << "\n";
      return 1;
    }
  }
  if (Status s = w.write(path); !s) {
    std::cerr << s.to_string() << "\n";
    return 1;
  }
  json metadata = json::array();
  for (const auto& [k, v] : kv) metadata.push_back(json{{"key", k}, {"value", to_json(v)}});
  if (alignment != kDefaultAlignment)
    metadata.push_back(json{{"key", "general.alignment"}, {"value", to_json(Value{alignment})}});
  json out{{"version", 3}, {"alignment", alignment}, {"metadata", metadata}, {"tensors", tensors}};
  std::cout << out.dump(1, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}

int dump_mode(const std::string& path) {
  auto f = File::open(path);
  if (!f) {
    std::cerr << f.status().to_string() << "\n";
    return 1;
  }
  json metadata = json::array();
  for (const KeyValue& kv : f->metadata()) metadata.push_back(json{{"key", kv.key}, {"value", to_json(kv.value)}});
  json tensors = json::array();
  for (const TensorInfo& t : f->tensors()) {
    json j = tensor_json(t.name, t.type, t.dims, f->tensor_data(t), t.size);
    j["offset"] = t.offset;
    tensors.push_back(std::move(j));
  }
  json out{{"version", f->version()},
           {"alignment", f->alignment()},
           {"data_offset", f->data_offset()},
           {"metadata", metadata},
           {"tensors", tensors}};
  std::cout << out.dump(1, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "write") == 0)
    return write_mode(argv[2], argc >= 4 ? uint32_t(std::stoul(argv[3])) : kDefaultAlignment);
  if (argc == 3 && std::strcmp(argv[1], "dump") == 0) return dump_mode(argv[2]);
  std::fprintf(stderr, "usage: %s write OUT.gguf [ALIGNMENT] | dump IN.gguf\n", argv[0]);
  return 2;
}
