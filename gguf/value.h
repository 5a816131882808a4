// GGUF metadata values: every scalar type, strings and (nested) arrays.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace anvil::gguf {

// On-disk value type ids (GGUF spec).
enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

const char* value_type_name(ValueType t);  // "uint32", "string", "array", ...

struct Value;

// An array holds elements of one type; arrays of arrays nest.
struct Array {
  ValueType type = ValueType::UINT8;
  std::vector<Value> items;
};

struct Value {
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string, Array,
               uint64_t, int64_t, double>
      v;

  ValueType type() const;

  // Conversions used by typed accessors: any integer type that holds the value exactly,
  // any float type for floating reads. nullopt-like behaviour is expressed by the bool result.
  bool to_int64(int64_t& out) const;
  bool to_uint64(uint64_t& out) const;
  bool to_double(double& out) const;

  // Human-readable rendering; long arrays are abbreviated to their first few items.
  std::string to_string(size_t max_items = 8) const;
};

}  // namespace anvil::gguf
