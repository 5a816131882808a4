#include "gguf/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "gguf/parse.h"

namespace anvil::gguf {

uint64_t TensorInfo::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

uint64_t TensorInfo::row_size() const {
  if (dims.empty()) return 0;
  return row_bytes(type, dims[0]).value_or(0);
}

uint64_t TensorInfo::n_rows() const {
  if (dims.empty() || dims[0] == 0) return 0;
  return n_elements() / dims[0];
}

struct File::Impl {
  std::string path;
  void* map = nullptr;  // owned mapping (open); null for from_memory
  size_t map_size = 0;
  std::span<const uint8_t> bytes;
  detail::ParsedFile parsed;

  ~Impl() {
    if (map) munmap(map, map_size);
  }
};

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

Expected<File> File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return make_error(err == ENOENT ? StatusCode::not_found : StatusCode::io_error, "cannot open '", path,
                      "': ", std::strerror(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(StatusCode::io_error, "cannot stat '", path, "': ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(StatusCode::io_error, "'", path, "' is not a regular file");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->map_size = size_t(st.st_size);
  if (impl->map_size == 0) {
    ::close(fd);
    return make_error(StatusCode::corrupt_file, "'", path, "': header: the file is empty (at byte 0)");
  }
  void* p = mmap(nullptr, impl->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED)
    return make_error(StatusCode::io_error, "cannot mmap '", path, "' (", impl->map_size,
                      " bytes): ", std::strerror(err));
  impl->map = p;
  impl->bytes = {static_cast<const uint8_t*>(p), impl->map_size};
  Status s = detail::parse(impl->bytes, impl->parsed);
  if (!s.is_ok()) return Status(s.code(), "'" + path + "': " + s.message());
  return File(std::move(impl));
}

Expected<File> File::from_memory(std::span<const uint8_t> bytes, std::string label) {
  auto impl = std::make_unique<Impl>();
  impl->path = std::move(label);
  impl->bytes = bytes;
  Status s = detail::parse(bytes, impl->parsed);
  if (!s.is_ok()) return Status(s.code(), "'" + impl->path + "': " + s.message());
  return File(std::move(impl));
}

const std::string& File::path() const { return impl_->path; }
uint32_t File::version() const { return impl_->parsed.version; }
uint32_t File::alignment() const { return impl_->parsed.alignment; }
uint64_t File::file_size() const { return impl_->bytes.size(); }
uint64_t File::data_offset() const { return impl_->parsed.data_offset; }
const std::vector<KeyValue>& File::metadata() const { return impl_->parsed.metadata; }
const std::vector<TensorInfo>& File::tensors() const { return impl_->parsed.tensors; }

const Value* File::find(std::string_view key) const {
  const auto& idx = impl_->parsed.key_index;
  auto it = idx.find(key);
  return it == idx.end() ? nullptr : &impl_->parsed.metadata[it->second].value;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto& idx = impl_->parsed.tensor_index;
  auto it = idx.find(name);
  return it == idx.end() ? nullptr : &impl_->parsed.tensors[it->second];
}

const uint8_t* File::tensor_data(const TensorInfo& t) const {
  // parse() proved data_offset + offset + size <= file size for every tensor of this file.
  return impl_->bytes.data() + impl_->parsed.data_offset + t.offset;
}

namespace {

std::string describe_type(const Value& v) {
  if (const Array* a = std::get_if<Array>(&v.v)) return std::string("array of ") + value_type_name(a->type);
  return value_type_name(v.type());
}

Status wrong_type(std::string_view key, const char* wanted, const Value& v) {
  return make_error(StatusCode::invalid_argument, "key '", key, "': wanted ", wanted, ", got ", describe_type(v));
}

Status out_of_range(std::string_view key, const char* wanted, const Value& v) {
  return make_error(StatusCode::invalid_argument, "key '", key, "': wanted ", wanted, ", got ", describe_type(v),
                    " ", v.to_string(4), ", which does not fit");
}

const Array* array_of(const Value& v) { return std::get_if<Array>(&v.v); }

bool is_integer_type(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::UINT16:
    case ValueType::INT16:
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::UINT64:
    case ValueType::INT64: return true;
    default: return false;
  }
}

// float64 -> float32 without the undefined behaviour of converting an out-of-range value.
bool double_to_float(double d, float& out) {
  if (std::isfinite(d) && std::fabs(d) > double(std::numeric_limits<float>::max())) return false;
  out = float(d);
  return true;
}

}  // namespace

#define ANVIL_GGUF_LOOKUP(key)                                                                \
  const Value* v = find(key);                                                                 \
  if (!v) return make_error(StatusCode::not_found, "key '", key, "' not found in '", impl_->path, "'")

Expected<std::string> File::get_string(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  if (const std::string* s = std::get_if<std::string>(&v->v)) return *s;
  return wrong_type(key, "string", *v);
}

Expected<uint32_t> File::get_u32(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  if (!is_integer_type(v->type())) return wrong_type(key, "uint32", *v);
  uint64_t x = 0;
  if (!v->to_uint64(x) || x > std::numeric_limits<uint32_t>::max()) return out_of_range(key, "uint32", *v);
  return uint32_t(x);
}

Expected<int64_t> File::get_i64(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  if (!is_integer_type(v->type())) return wrong_type(key, "int64", *v);
  int64_t x = 0;
  if (!v->to_int64(x)) return out_of_range(key, "int64", *v);
  return x;
}

Expected<uint64_t> File::get_u64(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  if (!is_integer_type(v->type())) return wrong_type(key, "uint64", *v);
  uint64_t x = 0;
  if (!v->to_uint64(x)) return out_of_range(key, "uint64", *v);
  return x;
}

Expected<float> File::get_f32(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  double d = 0;
  if (!v->to_double(d)) return wrong_type(key, "float32", *v);
  float f = 0;
  if (!double_to_float(d, f)) return out_of_range(key, "float32", *v);
  return f;
}

Expected<bool> File::get_bool(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  if (const bool* b = std::get_if<bool>(&v->v)) return *b;
  return wrong_type(key, "bool", *v);
}

Expected<std::vector<std::string>> File::get_string_array(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  const Array* a = array_of(*v);
  if (!a || a->type != ValueType::STRING) return wrong_type(key, "array of string", *v);
  std::vector<std::string> out;
  out.reserve(a->items.size());
  for (const Value& item : a->items) out.push_back(std::get<std::string>(item.v));
  return out;
}

Expected<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  const Array* a = array_of(*v);
  if (!a || !is_integer_type(a->type)) return wrong_type(key, "array of integers", *v);
  std::vector<int64_t> out(a->items.size());
  for (size_t i = 0; i < a->items.size(); ++i) {
    if (!a->items[i].to_int64(out[i]))
      return make_error(StatusCode::invalid_argument, "key '", key, "': element ", i, " (",
                        a->items[i].to_string(), ") does not fit in int64");
  }
  return out;
}

Expected<std::vector<float>> File::get_float_array(std::string_view key) const {
  ANVIL_GGUF_LOOKUP(key);
  const Array* a = array_of(*v);
  if (!a || (a->type != ValueType::FLOAT32 && a->type != ValueType::FLOAT64))
    return wrong_type(key, "array of float32", *v);
  std::vector<float> out(a->items.size());
  for (size_t i = 0; i < a->items.size(); ++i) {
    double d = 0;
    if (!a->items[i].to_double(d) || !double_to_float(d, out[i]))
      return make_error(StatusCode::invalid_argument, "key '", key, "': element ", i, " (",
                        a->items[i].to_string(), ") does not fit in float32");
  }
  return out;
}

Expected<std::string> File::architecture() const { return get_string("general.architecture"); }

#undef ANVIL_GGUF_LOOKUP

}  // namespace anvil::gguf
