#include "gguf/parse.h"

#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string_view>

namespace anvil::gguf::detail {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

// Smallest encoding of one element of each type: lets a count be checked against the bytes left
// before anything is allocated for it.
uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL: return 1;
    case ValueType::UINT16:
    case ValueType::INT16: return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32: return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
    case ValueType::STRING: return 8;  // the length prefix
    case ValueType::ARRAY: return 12;  // element type + count
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= uint32_t(ValueType::FLOAT64); }

// Per kv: key length + key + type + smallest value.
constexpr uint64_t kMinKvSize = 8 + 4 + 1;
// name length + n_dims + one dim + type + offset.
constexpr uint64_t kMinTensorInfoSize = 8 + 4 + 8 + 4 + 8;

class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, ParsedFile& out) : buf_(bytes), out_(out) {}

  Status run() {
    ANVIL_RETURN_IF_ERROR(parse_header());
    ANVIL_RETURN_IF_ERROR(parse_metadata());
    ANVIL_RETURN_IF_ERROR(parse_tensor_infos());
    return check_data_section();
  }

 private:
  enum class Section { header, kv, tensor_info };

  uint64_t size() const { return buf_.size(); }
  uint64_t left() const { return size() - pos_; }

  // "kv 3 ('general.name'), array element [2][7]" — built only when something fails.
  std::string context() const {
    std::string s;
    switch (section_) {
      case Section::header: s = "header"; break;
      case Section::kv: s = "kv "; break;
      case Section::tensor_info: s = "tensor info "; break;
    }
    if (section_ != Section::header) s += std::to_string(item_);
    if (has_name_) {
      s += " ('";
      s += printable(name_);
      s += "')";
    }
    if (!elem_path_.empty()) {
      s += ", array element ";
      for (uint64_t i : elem_path_) {
        s += '[';
        s += std::to_string(i);
        s += ']';
      }
    }
    return s;
  }

  static std::string printable(std::string_view in) {
    constexpr size_t kMax = 80;
    std::string s;
    for (size_t i = 0; i < in.size() && i < kMax; ++i) {
      unsigned char c = in[i];
      s += (c < 0x20 || c == 0x7f) ? '?' : char(c);
    }
    if (in.size() > kMax) s += "...";
    return s;
  }

  template <typename... Args>
  Status fail(StatusCode code, uint64_t at, Args&&... parts) const {
    return make_error(code, context(), ": ", std::forward<Args>(parts)..., " (at byte ", at, ")");
  }
  template <typename... Args>
  Status corrupt(uint64_t at, Args&&... parts) const {
    return fail(StatusCode::corrupt_file, at, std::forward<Args>(parts)...);
  }

  Status need(uint64_t n, const char* what) const {
    if (n > left())
      return corrupt(pos_, "truncated: ", what, " needs ", n, " bytes but the file ends at byte ", size());
    return Status::ok();
  }

  template <typename T>
  Status read(T& out, const char* what) {
    ANVIL_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(&out, buf_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::ok();
  }

  Status read_string(std::string& out, const char* what) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    ANVIL_RETURN_IF_ERROR(read(len, what));
    if (len > left())
      return corrupt(at, what, " length ", len, " is more than the ", left(), " bytes left in the file");
    out.assign(reinterpret_cast<const char*>(buf_.data() + pos_), size_t(len));
    pos_ += len;
    return Status::ok();
  }

  Status read_value_type(ValueType& out, const char* what) {
    const uint64_t at = pos_;
    uint32_t t = 0;
    ANVIL_RETURN_IF_ERROR(read(t, what));
    if (!valid_value_type(t)) return corrupt(at, "unknown ", what, " ", t);
    out = ValueType(t);
    return Status::ok();
  }

  Status parse_header() {
    section_ = Section::header;
    uint32_t magic = 0;
    if (size() < 4) return corrupt(0, "truncated: the file is ", size(), " bytes, too short for the GGUF magic");
    ANVIL_RETURN_IF_ERROR(read(magic, "magic"));
    if (magic != kMagic) {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "0x%08x", magic);
      return corrupt(0, "bad magic ", hex, ", not a GGUF file (expected 'GGUF')");
    }
    const uint64_t version_at = pos_;
    ANVIL_RETURN_IF_ERROR(read(out_.version, "version"));
    const uint32_t v = out_.version;
    if (v == 1)
      return fail(StatusCode::unsupported, version_at,
                  "GGUF version 1 is not supported (v1 used 32-bit counts; re-convert the model to v3)");
    if (v != 2 && v != 3) {
      const uint32_t swapped = __builtin_bswap32(v);
      if (swapped >= 1 && swapped <= 3)
        return fail(StatusCode::unsupported, version_at, "version field reads ", v,
                    ", which is version ", swapped, " byte-swapped: big-endian GGUF files are not supported");
      return fail(StatusCode::unsupported, version_at, "GGUF version ", v, " is not supported (only 2 and 3)");
    }
    const uint64_t tensors_at = pos_;
    ANVIL_RETURN_IF_ERROR(read(n_tensors_, "tensor count"));
    const uint64_t kv_at = pos_;
    ANVIL_RETURN_IF_ERROR(read(n_kv_, "kv count"));
    if (n_kv_ > left() / kMinKvSize)
      return corrupt(kv_at, "kv count ", n_kv_, " cannot fit in the ", left(), " bytes after the header");
    if (n_tensors_ > left() / kMinTensorInfoSize)
      return corrupt(tensors_at, "tensor count ", n_tensors_, " cannot fit in the ", left(),
                     " bytes after the header");
    if (n_kv_ * kMinKvSize + n_tensors_ * kMinTensorInfoSize > left())
      return corrupt(tensors_at, "tensor count ", n_tensors_, " with kv count ", n_kv_,
                     " cannot fit in the ", left(), " bytes after the header");
    return Status::ok();
  }

  Status parse_metadata() {
    section_ = Section::kv;
    out_.metadata.reserve(size_t(n_kv_));
    for (item_ = 0; item_ < n_kv_; ++item_) {
      has_name_ = false;
      const uint64_t key_at = pos_;
      KeyValue kv;
      ANVIL_RETURN_IF_ERROR(read_string(kv.key, "key"));
      name_ = kv.key;
      has_name_ = true;
      if (auto it = out_.key_index.find(kv.key); it != out_.key_index.end())
        return corrupt(key_at, "duplicate key (first defined by kv ", it->second, ")");
      ValueType t = ValueType::UINT8;
      ANVIL_RETURN_IF_ERROR(read_value_type(t, "value type"));
      const uint64_t value_at = pos_;
      ANVIL_RETURN_IF_ERROR(read_value(t, kv.value, 0));
      if (kv.key == "general.alignment") ANVIL_RETURN_IF_ERROR(take_alignment(kv.value, value_at));
      out_.key_index.emplace(kv.key, out_.metadata.size());
      out_.metadata.push_back(std::move(kv));
    }
    has_name_ = false;
    return Status::ok();
  }

  Status take_alignment(const Value& v, uint64_t at) {
    if (v.type() != ValueType::UINT32)
      return corrupt(at, "general.alignment must be uint32, got ", value_type_name(v.type()));
    const uint32_t a = std::get<uint32_t>(v.v);
    if (a == 0 || !std::has_single_bit(a))
      return corrupt(at, "general.alignment ", a, " is not a nonzero power of two");
    out_.alignment = a;
    return Status::ok();
  }

  template <typename T>
  Status read_scalar(Value& out, const char* what) {
    T x;
    ANVIL_RETURN_IF_ERROR(read(x, what));
    out.v = x;
    return Status::ok();
  }

  Status read_value(ValueType t, Value& out, int depth) {
    switch (t) {
      case ValueType::UINT8: return read_scalar<uint8_t>(out, "uint8 value");
      case ValueType::INT8: return read_scalar<int8_t>(out, "int8 value");
      case ValueType::UINT16: return read_scalar<uint16_t>(out, "uint16 value");
      case ValueType::INT16: return read_scalar<int16_t>(out, "int16 value");
      case ValueType::UINT32: return read_scalar<uint32_t>(out, "uint32 value");
      case ValueType::INT32: return read_scalar<int32_t>(out, "int32 value");
      case ValueType::FLOAT32: return read_scalar<float>(out, "float32 value");
      case ValueType::UINT64: return read_scalar<uint64_t>(out, "uint64 value");
      case ValueType::INT64: return read_scalar<int64_t>(out, "int64 value");
      case ValueType::FLOAT64: return read_scalar<double>(out, "float64 value");
      case ValueType::BOOL: {
        // Read as a byte: loading a stored 2 straight into a bool would be undefined.
        uint8_t b = 0;
        ANVIL_RETURN_IF_ERROR(read(b, "bool value"));
        out.v = b != 0;
        return Status::ok();
      }
      case ValueType::STRING: {
        std::string s;
        ANVIL_RETURN_IF_ERROR(read_string(s, "string"));
        out.v = std::move(s);
        return Status::ok();
      }
      case ValueType::ARRAY: return read_array(out, depth);
    }
    return corrupt(pos_, "unknown value type ", uint32_t(t));
  }

  Status read_array(Value& out, int depth) {
    Array arr;
    ANVIL_RETURN_IF_ERROR(read_value_type(arr.type, "array element type"));
    const uint64_t count_at = pos_;
    uint64_t count = 0;
    ANVIL_RETURN_IF_ERROR(read(count, "array length"));
    if (arr.type == ValueType::ARRAY && depth + 1 >= kMaxNesting)
      return corrupt(count_at - 4, "arrays nested deeper than ", kMaxNesting, " levels");
    const uint64_t min_size = min_encoded_size(arr.type);
    if (count > left() / min_size)
      return corrupt(count_at, "array length ", count, " of ", value_type_name(arr.type),
                     " cannot fit in the ", left(), " bytes left in the file");
    arr.items.resize(size_t(count));
    elem_path_.push_back(0);
    for (uint64_t i = 0; i < count; ++i) {
      elem_path_.back() = i;
      ANVIL_RETURN_IF_ERROR(read_value(arr.type, arr.items[i], depth + 1));
    }
    elem_path_.pop_back();
    out.v = std::move(arr);
    return Status::ok();
  }

  Status parse_tensor_infos() {
    section_ = Section::tensor_info;
    if (n_tensors_ > left() / kMinTensorInfoSize)
      return corrupt(pos_, "tensor count ", n_tensors_, " cannot fit in the ", left(),
                     " bytes left after the metadata");
    out_.tensors.reserve(size_t(n_tensors_));
    offset_at_.reserve(size_t(n_tensors_));
    for (item_ = 0; item_ < n_tensors_; ++item_) {
      has_name_ = false;
      const uint64_t name_at = pos_;
      TensorInfo t;
      ANVIL_RETURN_IF_ERROR(read_string(t.name, "tensor name"));
      name_ = t.name;
      has_name_ = true;
      if (auto it = out_.tensor_index.find(t.name); it != out_.tensor_index.end())
        return corrupt(name_at, "duplicate tensor name (first defined by tensor info ", it->second, ")");
      ANVIL_RETURN_IF_ERROR(parse_shape_and_type(t));
      const uint64_t offset_at = pos_;
      ANVIL_RETURN_IF_ERROR(read(t.offset, "offset"));
      if (t.offset % out_.alignment != 0)
        return corrupt(offset_at, "offset ", t.offset, " is not a multiple of the alignment ", out_.alignment);
      out_.tensor_index.emplace(t.name, out_.tensors.size());
      out_.tensors.push_back(std::move(t));
      offset_at_.push_back(offset_at);
    }
    has_name_ = false;
    return Status::ok();
  }

  Status parse_shape_and_type(TensorInfo& t) {
    const uint64_t ndims_at = pos_;
    uint32_t n_dims = 0;
    ANVIL_RETURN_IF_ERROR(read(n_dims, "n_dims"));
    if (n_dims < 1 || n_dims > uint32_t(kMaxDims))
      return corrupt(ndims_at, "n_dims ", n_dims, " is outside 1..", kMaxDims);
    t.dims.resize(n_dims);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = pos_;
      ANVIL_RETURN_IF_ERROR(read(t.dims[d], "dim"));
      if (t.dims[d] == 0) return corrupt(dim_at, "dims[", d, "] is 0");
      // ggml counts elements in int64_t, so the product must fit there.
      if (__builtin_mul_overflow(n_elements, t.dims[d], &n_elements) ||
          n_elements > uint64_t(std::numeric_limits<int64_t>::max()))
        return corrupt(dim_at, "dims product overflows at dims[", d, "] = ", t.dims[d]);
    }
    const uint64_t type_at = pos_;
    uint32_t type_id = 0;
    ANVIL_RETURN_IF_ERROR(read(type_id, "tensor type"));
    const std::optional<DTypeTraits> tr = dtype_traits(type_id);
    if (!tr) return corrupt(type_at, "unknown tensor type ", type_id);
    t.type = tr->type;
    if (t.dims[0] % tr->block_size != 0)
      return corrupt(type_at, "dims[0] = ", t.dims[0], " is not a multiple of the ", tr->name, " block size ",
                     tr->block_size);
    const uint64_t n_blocks = n_elements / tr->block_size;
    if (__builtin_mul_overflow(n_blocks, uint64_t(tr->type_size), &t.size))
      return corrupt(type_at, "tensor byte size overflows (", n_elements, " elements of ", tr->name, ")");
    return Status::ok();
  }

  Status check_data_section() {
    const uint64_t a = out_.alignment;
    // pos_ <= size() and alignments are at most 2^31, so this cannot overflow.
    out_.data_offset = (pos_ + a - 1) / a * a;
    if (out_.tensors.empty()) return Status::ok();
    if (out_.data_offset > size())
      return corrupt(pos_, "the data section would start at byte ", out_.data_offset,
                     " (aligned to ", a, "), past the end of the file (size ", size(), ")");
    const uint64_t data_size = size() - out_.data_offset;
    for (size_t i = 0; i < out_.tensors.size(); ++i) {
      const TensorInfo& t = out_.tensors[i];
      if (t.offset > data_size || t.size > data_size - t.offset) {
        section_ = Section::tensor_info;
        item_ = i;
        name_ = t.name;
        has_name_ = true;
        return corrupt(offset_at_[i], "offset ", t.offset, " + size ", t.size,
                       " ends past the end of the file (size ", size(), ", data section starts at byte ",
                       out_.data_offset, ")");
      }
    }
    return Status::ok();
  }

  std::span<const uint8_t> buf_;
  ParsedFile& out_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  std::vector<uint64_t> offset_at_;

  Section section_ = Section::header;
  uint64_t item_ = 0;
  std::string name_;
  bool has_name_ = false;
  std::vector<uint64_t> elem_path_;
};

}  // namespace

Status parse(std::span<const uint8_t> bytes, ParsedFile& out) {
  out = ParsedFile{};
  return Parser(bytes, out).run();
}

}  // namespace anvil::gguf::detail
