// Test-only CLI over quant.h, driven by check_against_gguf_py.py:
//   quant_tool dequant TYPE in.bin out.f32             raw blocks -> f32
//   quant_tool quant TYPE in.f32 out.bin [N_PER_ROW [WEIGHTS.f32]]
//                                                      f32 -> raw blocks (rows of N_PER_ROW,
//                                                      default: all one row; optional
//                                                      importance weights, N_PER_ROW floats)
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "quant/quant.h"

namespace {

std::vector<char> read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

bool write_file(const char* path, const void* data, size_t size) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(size));
  return bool(f);
}

int usage() {
  std::fprintf(stderr, "usage: quant_tool dequant TYPE in.bin out.f32 | quant TYPE in.f32 out.bin [N_PER_ROW [W.f32]]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return usage();
  const std::string cmd = argv[1];
  const auto type = anvil::dtype_from_name(argv[2]);
  if (!type) {
    std::fprintf(stderr, "unknown type %s\n", argv[2]);
    return 2;
  }
  const auto& tr = anvil::traits(*type);
  const std::vector<char> in = read_file(argv[3]);
  if (cmd == "dequant") {
    if (in.size() % tr.type_size != 0) {
      std::fprintf(stderr, "%zu bytes is not a whole number of %s blocks\n", in.size(), tr.name);
      return 1;
    }
    const int64_t n = int64_t(in.size() / tr.type_size) * tr.block_size;
    std::vector<float> out(size_t(n), 0.0f);
    const anvil::Status s = anvil::quant::dequantize_row(*type, in.data(), out.data(), n);
    if (!s) {
      std::fprintf(stderr, "%s\n", s.to_string().c_str());
      return 1;
    }
    return write_file(argv[4], out.data(), out.size() * sizeof(float)) ? 0 : 1;
  }
  if (cmd == "quant") {
    const int64_t n = int64_t(in.size() / sizeof(float));
    std::vector<float> x(static_cast<size_t>(n));
    std::copy(in.data(), in.data() + n * sizeof(float), reinterpret_cast<char*>(x.data()));
    const int64_t n_per_row = argc > 5 ? std::stoll(argv[5]) : n;
    std::vector<float> w;
    if (argc > 6) {
      const std::vector<char> wb = read_file(argv[6]);
      w.resize(wb.size() / sizeof(float));
      std::copy(wb.begin(), wb.begin() + w.size() * sizeof(float), reinterpret_cast<char*>(w.data()));
      if (int64_t(w.size()) != n_per_row) {
        std::fprintf(stderr, "weights: %zu floats, expected %lld\n", w.size(), (long long)n_per_row);
        return 1;
      }
    }
    if (n_per_row <= 0 || n % n_per_row != 0) return usage();
    const auto bytes = anvil::row_bytes(*type, uint64_t(n));
    if (!bytes) {
      std::fprintf(stderr, "%lld elements is not a whole number of %s blocks\n", (long long)n, tr.name);
      return 1;
    }
    std::vector<char> out(*bytes);
    const anvil::Status s = anvil::quant::quantize_rows(*type, x.data(), out.data(), n_per_row, n / n_per_row,
                                                        1, w.empty() ? nullptr : w.data());
    if (!s) {
      std::fprintf(stderr, "%s\n", s.to_string().c_str());
      return 1;
    }
    return write_file(argv[4], out.data(), out.size()) ? 0 : 1;
  }
  return usage();
}
