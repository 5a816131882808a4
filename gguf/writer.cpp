#include "gguf/writer.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "gguf/file.h"
#include "gguf/parse.h"

namespace anvil::gguf {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

constexpr uint32_t kVersion = 3;
constexpr const char* kAlignmentKey = "general.alignment";

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>& out) : out_(out) {}
  template <typename T>
  void put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put(uint64_t(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void put_value(const Value& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, bool>) {
            put(uint8_t(x ? 1 : 0));
          } else if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, Array>) {
            put(uint32_t(x.type));
            put(uint64_t(x.items.size()));
            for (const Value& item : x.items) put_value(item);
          } else {
            put(x);
          }
        },
        v.v);
  }

 private:
  std::vector<uint8_t>& out_;
};

// Arrays must hold one element type and nest no deeper than the reader accepts, or the file
// would not read back.
Status check_value(const std::string& key, const Value& v, int depth) {
  const Array* a = std::get_if<Array>(&v.v);
  if (!a) return Status::ok();
  if (depth >= detail::kMaxNesting)
    return make_error(StatusCode::invalid_argument, "key '", key, "': arrays nested deeper than ",
                      detail::kMaxNesting, " levels");
  for (size_t i = 0; i < a->items.size(); ++i) {
    if (a->items[i].type() != a->type)
      return make_error(StatusCode::invalid_argument, "key '", key, "': array of ", value_type_name(a->type),
                        " has element ", i, " of type ", value_type_name(a->items[i].type()));
    ANVIL_RETURN_IF_ERROR(check_value(key, a->items[i], depth + 1));
  }
  return Status::ok();
}

Expected<uint64_t> tensor_size(const std::string& name, DType type, const std::vector<uint64_t>& dims) {
  const std::optional<DTypeTraits> tr = dtype_traits(uint32_t(type));
  if (!tr) return make_error(StatusCode::invalid_argument, "tensor '", name, "': unknown type id ", uint32_t(type));
  if (dims.empty() || dims.size() > size_t(kMaxDims))
    return make_error(StatusCode::invalid_argument, "tensor '", name, "': ", dims.size(),
                      " dims, must be 1..", kMaxDims);
  uint64_t n = 1;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 0) return make_error(StatusCode::invalid_argument, "tensor '", name, "': dims[", d, "] is 0");
    if (__builtin_mul_overflow(n, dims[d], &n) || n > uint64_t(INT64_MAX))
      return make_error(StatusCode::invalid_argument, "tensor '", name, "': element count overflows");
  }
  if (dims[0] % tr->block_size != 0)
    return make_error(StatusCode::invalid_argument, "tensor '", name, "': dims[0] = ", dims[0],
                      " is not a multiple of the ", tr->name, " block size ", tr->block_size);
  uint64_t size = 0;
  if (__builtin_mul_overflow(n / tr->block_size, uint64_t(tr->type_size), &size))
    return make_error(StatusCode::invalid_argument, "tensor '", name, "': byte size overflows");
  return size;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

Writer::Writer(uint32_t alignment) : alignment_(alignment) {}

void Writer::set(std::string key, Value value) {
  if (key == kAlignmentKey) {
    // A wrongly typed alignment is reported by write(); keep the last good one meanwhile.
    if (const uint32_t* a = std::get_if<uint32_t>(&value.v)) alignment_ = *a;
  }
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(value));
}

namespace {
template <typename T>
Value make_array(ValueType type, const std::vector<T>& items) {
  Array a;
  a.type = type;
  a.items.reserve(items.size());
  for (const T& x : items) a.items.push_back(Value{x});
  return Value{std::move(a)};
}
}  // namespace

void Writer::set_array(std::string key, const std::vector<std::string>& items) {
  set(std::move(key), make_array(ValueType::STRING, items));
}
void Writer::set_array(std::string key, const std::vector<int32_t>& items) {
  set(std::move(key), make_array(ValueType::INT32, items));
}
void Writer::set_array(std::string key, const std::vector<uint32_t>& items) {
  set(std::move(key), make_array(ValueType::UINT32, items));
}
void Writer::set_array(std::string key, const std::vector<float>& items) {
  set(std::move(key), make_array(ValueType::FLOAT32, items));
}

Status Writer::add_tensor(std::string name, DType type, std::vector<uint64_t> dims, std::vector<uint8_t> bytes) {
  for (const auto& t : tensors_)
    if (t.name == name) return make_error(StatusCode::invalid_argument, "tensor '", name, "' added twice");
  Expected<uint64_t> size = tensor_size(name, type, dims);
  if (!size) return size.status();
  if (bytes.size() != *size)
    return make_error(StatusCode::invalid_argument, "tensor '", name, "': ", bytes.size(),
                      " bytes given, type and dims need ", *size);
  tensors_.push_back(PendingTensor{std::move(name), type, std::move(dims), *size, std::move(bytes), {}});
  return Status::ok();
}

Status Writer::add_tensor_lazy(std::string name, DType type, std::vector<uint64_t> dims,
                               std::function<Status(uint8_t* dst, uint64_t size)> fill) {
  for (const auto& t : tensors_)
    if (t.name == name) return make_error(StatusCode::invalid_argument, "tensor '", name, "' added twice");
  if (!fill) return make_error(StatusCode::invalid_argument, "tensor '", name, "': empty fill function");
  Expected<uint64_t> size = tensor_size(name, type, dims);
  if (!size) return size.status();
  tensors_.push_back(PendingTensor{std::move(name), type, std::move(dims), *size, {}, std::move(fill)});
  return Status::ok();
}

size_t Writer::n_tensors() const { return tensors_.size(); }

Status Writer::write(const std::string& path, const std::function<void(size_t, size_t)>& progress) const {
  bool has_alignment_key = false;
  for (const auto& [k, v] : kv_) {
    if (k == kAlignmentKey) {
      has_alignment_key = true;
      if (v.type() != ValueType::UINT32)
        return make_error(StatusCode::invalid_argument, "general.alignment must be uint32, got ",
                          value_type_name(v.type()));
    }
    ANVIL_RETURN_IF_ERROR(check_value(k, v, 0));
  }
  const uint32_t alignment = alignment_;
  if (alignment == 0 || !std::has_single_bit(alignment))
    return make_error(StatusCode::invalid_argument, "alignment ", alignment, " is not a nonzero power of two");
  // Readers assume 32 unless told otherwise.
  const bool add_alignment_key = !has_alignment_key && alignment != kDefaultAlignment;

  std::vector<uint8_t> head;
  ByteSink sink(head);
  sink.put(kMagic);
  sink.put(kVersion);
  sink.put(uint64_t(tensors_.size()));
  sink.put(uint64_t(kv_.size() + (add_alignment_key ? 1 : 0)));
  for (const auto& [k, v] : kv_) {
    sink.put_string(k);
    sink.put(uint32_t(v.type()));
    sink.put_value(v);
  }
  if (add_alignment_key) {
    sink.put_string(kAlignmentKey);
    sink.put(uint32_t(ValueType::UINT32));
    sink.put(alignment);
  }
  std::vector<uint64_t> offsets;
  uint64_t data_size = 0;
  uint64_t max_lazy = 0;
  for (const PendingTensor& t : tensors_) {
    data_size = align_up(data_size, alignment);
    offsets.push_back(data_size);
    data_size += t.size;
    if (t.fill) max_lazy = std::max(max_lazy, t.size);
    sink.put_string(t.name);
    sink.put(uint32_t(t.dims.size()));
    for (uint64_t d : t.dims) sink.put(d);
    sink.put(uint32_t(t.type));
    sink.put(offsets.back());
  }
  head.resize(align_up(head.size(), alignment), 0);

  const std::string tmp = path + ".tmp";
  std::unique_ptr<FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) return make_error(StatusCode::io_error, "cannot create '", tmp, "': ", std::strerror(errno));
  auto fail = [&](Status s) {
    f.reset();
    std::remove(tmp.c_str());
    return s;
  };
  auto put = [&](const void* p, size_t n) -> Status {
    if (n && std::fwrite(p, 1, n, f.get()) != n)
      return make_error(StatusCode::io_error, "writing '", tmp, "': ", std::strerror(errno));
    return Status::ok();
  };
  if (Status s = put(head.data(), head.size()); !s) return fail(s);

  std::vector<uint8_t> scratch;
  static const uint8_t kZeros[256] = {};
  uint64_t written = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    while (written < offsets[i]) {
      const size_t n = size_t(std::min<uint64_t>(offsets[i] - written, sizeof(kZeros)));
      if (Status s = put(kZeros, n); !s) return fail(s);
      written += n;
    }
    const uint8_t* src = t.bytes.data();
    if (t.fill) {
      if (scratch.size() < max_lazy) scratch.resize(size_t(max_lazy));
      Status s = t.fill(scratch.data(), t.size);
      if (!s) return fail(Status(s.code(), "tensor '" + t.name + "': " + s.message()));
      src = scratch.data();
    }
    if (Status s = put(src, size_t(t.size)); !s) return fail(s);
    written += t.size;
    if (progress) progress(i + 1, tensors_.size());
  }
  if (std::fflush(f.get()) != 0 || fsync(fileno(f.get())) != 0)
    return fail(make_error(StatusCode::io_error, "flushing '", tmp, "': ", std::strerror(errno)));
  if (std::fclose(f.release()) != 0) {
    std::remove(tmp.c_str());
    return make_error(StatusCode::io_error, "closing '", tmp, "': ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return make_error(StatusCode::io_error, "renaming '", tmp, "' to '", path, "': ", std::strerror(err));
  }
  return Status::ok();
}

}  // namespace anvil::gguf
