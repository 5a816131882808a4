#include "gguf/value.h"

#include <charconv>
#include <cstdio>
#include <limits>
#include <type_traits>

namespace anvil::gguf {

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "uint8";
    case ValueType::INT8: return "int8";
    case ValueType::UINT16: return "uint16";
    case ValueType::INT16: return "int16";
    case ValueType::UINT32: return "uint32";
    case ValueType::INT32: return "int32";
    case ValueType::FLOAT32: return "float32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "uint64";
    case ValueType::INT64: return "int64";
    case ValueType::FLOAT64: return "float64";
  }
  return "unknown";
}

// The variant's alternatives are declared in on-disk id order, so the index is the id.
using ValueVariant = decltype(Value::v);
static_assert(std::is_same_v<std::variant_alternative_t<size_t(ValueType::FLOAT32), ValueVariant>, float>);
static_assert(std::is_same_v<std::variant_alternative_t<size_t(ValueType::ARRAY), ValueVariant>, Array>);
static_assert(std::is_same_v<std::variant_alternative_t<size_t(ValueType::FLOAT64), ValueVariant>, double>);

ValueType Value::type() const { return static_cast<ValueType>(v.index()); }

namespace {

template <typename T>
constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

std::string format_float(double d, bool single) {
  char buf[64];
  std::to_chars_result r = single ? std::to_chars(buf, buf + sizeof(buf), float(d))
                                  : std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, r.ptr);
}

void append_quoted(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  out += '"';
}

}  // namespace

bool Value::to_int64(int64_t& out) const {
  return std::visit(
      [&](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (kIsInteger<T>) {
          if constexpr (std::is_unsigned_v<T>) {
            if (uint64_t(x) > uint64_t(std::numeric_limits<int64_t>::max())) return false;
          }
          out = int64_t(x);
          return true;
        } else {
          return false;
        }
      },
      v);
}

bool Value::to_uint64(uint64_t& out) const {
  return std::visit(
      [&](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (kIsInteger<T>) {
          if constexpr (std::is_signed_v<T>) {
            if (x < 0) return false;
          }
          out = uint64_t(x);
          return true;
        } else {
          return false;
        }
      },
      v);
}

bool Value::to_double(double& out) const {
  if (const float* f = std::get_if<float>(&v)) {
    out = *f;
    return true;
  }
  if (const double* d = std::get_if<double>(&v)) {
    out = *d;
    return true;
  }
  return false;
}

std::string Value::to_string(size_t max_items) const {
  std::string out;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          out = x ? "true" : "false";
        } else if constexpr (kIsInteger<T>) {
          out = std::to_string(x);
        } else if constexpr (std::is_same_v<T, float>) {
          out = format_float(x, true);
        } else if constexpr (std::is_same_v<T, double>) {
          out = format_float(x, false);
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_quoted(out, x);
        } else {  // Array
          out += '[';
          const size_t shown = x.items.size() < max_items ? x.items.size() : max_items;
          for (size_t i = 0; i < shown; ++i) {
            if (i) out += ", ";
            out += x.items[i].to_string(max_items);
          }
          if (shown < x.items.size()) {
            if (shown) out += ", ";
            out += "... (" + std::to_string(x.items.size()) + " " + value_type_name(x.type) + " items)";
          }
          out += ']';
        }
      },
      v);
  return out;
}

}  // namespace anvil::gguf
