// libFuzzer target: File::from_memory on arbitrary bytes, then every read path a model loader
// or `anvil inspect` would take. Any crash, sanitizer report or bounds violation is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gguf/file.h"

using namespace anvil;
using namespace anvil::gguf;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void touch_value(const Value& v, int depth) {
  (void)v.to_string();
  (void)v.to_string(2);
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  (void)v.to_int64(i);
  (void)v.to_uint64(u);
  (void)v.to_double(d);
  (void)value_type_name(v.type());
  if (const Array* a = std::get_if<Array>(&v.v)) {
    for (const Value& item : a->items) {
      check(item.type() == a->type);
      touch_value(item, depth + 1);
    }
  }
}

void touch_accessors(const File& f, std::string_view key) {
  (void)f.get_string(key);
  (void)f.get_u32(key);
  (void)f.get_i64(key);
  (void)f.get_u64(key);
  (void)f.get_f32(key);
  (void)f.get_bool(key);
  (void)f.get_string_array(key);
  (void)f.get_int_array(key);
  (void)f.get_float_array(key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = File::from_memory(std::span<const uint8_t>(data, size), "fuzz");
  if (!parsed) {
    check(!parsed.status().message().empty());
    return 0;
  }
  const File& f = *parsed;
  check(f.version() == 2 || f.version() == 3);
  check(f.alignment() != 0 && (f.alignment() & (f.alignment() - 1)) == 0);
  for (const KeyValue& kv : f.metadata()) {
    check(f.find(kv.key) == &kv.value);
    touch_value(kv.value, 0);
    touch_accessors(f, kv.key);
  }
  touch_accessors(f, "no.such.key");
  (void)f.architecture();
  uint64_t sum = 0;
  for (const TensorInfo& t : f.tensors()) {
    check(f.find_tensor(t.name) == &t);
    check(t.size > 0 && t.row_size() * t.n_rows() == t.size);
    const uint8_t* p = f.tensor_data(t);
    check(p >= data && p + t.size <= data + size);
    sum += p[0] + p[t.size - 1];  // ASan would flag a read outside the input
  }
  volatile uint64_t sink = sum;
  (void)sink;
  return 0;
}
