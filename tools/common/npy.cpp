#include "common/npy.h"

#include <bit>
#include <cerrno>
#include <cstring>

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian host");

namespace anvil::tools {

std::string npy_header_f32(const std::vector<uint64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(shape[i]);
  }
  if (shape.size() == 1) dict += ',';
  dict += "), }";
  // magic(6) + version(2) + header length(2) + dict + padding + '\n' is a multiple of 64
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(dict.size() & 0xff);
  out += char((dict.size() >> 8) & 0xff);
  out += dict;
  return out;
}

Expected<NpyWriter> NpyWriter::create(const std::string& path, std::vector<uint64_t> shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return make_error(StatusCode::io_error, "cannot create '", path, "': ", std::strerror(errno));
  const std::string header = npy_header_f32(shape);
  if (std::fwrite(header.data(), 1, header.size(), f) != header.size()) {
    std::fclose(f);
    return make_error(StatusCode::io_error, "cannot write '", path, "': ", std::strerror(errno));
  }
  return NpyWriter(path, f, n);
}

NpyWriter::NpyWriter(NpyWriter&& o) noexcept
    : path_(std::move(o.path_)), f_(o.f_), expected_(o.expected_), written_(o.written_) {
  o.f_ = nullptr;
}

NpyWriter::~NpyWriter() {
  if (f_) std::fclose(f_);
}

Status NpyWriter::append(const float* data, uint64_t n) {
  if (!f_) return make_error(StatusCode::internal, "npy writer for '", path_, "' is closed");
  if (written_ + n > expected_) return make_error(StatusCode::internal, "too many values for '", path_, "'");
  if (std::fwrite(data, sizeof(float), n, f_) != n)
    return make_error(StatusCode::io_error, "cannot write '", path_, "': ", std::strerror(errno));
  written_ += n;
  return Status::ok();
}

Status NpyWriter::close() {
  if (!f_) return Status::ok();
  std::FILE* f = f_;
  f_ = nullptr;
  const bool ok = std::fclose(f) == 0;
  if (!ok) return make_error(StatusCode::io_error, "cannot write '", path_, "': ", std::strerror(errno));
  if (written_ != expected_)
    return make_error(StatusCode::internal, "'", path_, "': wrote ", written_, " of ", expected_, " values");
  return Status::ok();
}

}  // namespace anvil::tools
