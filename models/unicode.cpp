#include "models/unicode.h"

#include <array>

namespace anvil::models {

uint32_t utf8_next(std::string_view s, size_t& pos) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = at(pos);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  size_t len = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++pos;
    return kInvalidCodepoint;
  }
  if (pos + len > s.size()) {
    ++pos;
    return kInvalidCodepoint;
  }
  for (size_t i = 1; i < len; ++i) {
    const uint8_t b = at(pos + i);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return kInvalidCodepoint;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++pos;
    return kInvalidCodepoint;
  }
  pos += len;
  return cp;
}

size_t utf8_char_len(std::string_view s, size_t pos) {
  size_t p = pos;
  utf8_next(s, p);
  return p - pos;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

struct ByteTables {
  std::array<uint32_t, 256> to_cp{};
  std::array<std::string, 256> to_utf8;
  ByteTables() {
    // Printable bytes keep their own code point; the rest take U+0100 + n in byte order.
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      utf8_append(to_utf8[b], to_cp[b]);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables t;
  return t;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return tables().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) {
  if (cp < 256) {
    const bool printable = (cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE);
    return printable ? static_cast<int>(cp) : -1;
  }
  if (cp >= 256 && cp < 256 + 68) {
    // The n-th non-printable byte.
    static const std::array<uint8_t, 68> inverse = [] {
      std::array<uint8_t, 68> inv{};
      for (int b = 0; b < 256; ++b) {
        const uint32_t c = byte_to_codepoint(static_cast<uint8_t>(b));
        if (c >= 256) inv[c - 256] = static_cast<uint8_t>(b);
      }
      return inv;
    }();
    return inverse[cp - 256];
  }
  return -1;
}

const std::string& byte_level_char(uint8_t b) { return tables().to_utf8[b]; }

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_level_char(static_cast<uint8_t>(c));
  return out;
}

bool byte_level_to_bytes(std::string_view byte_level, std::string& out) {
  bool all_bytes = true;
  size_t pos = 0;
  while (pos < byte_level.size()) {
    const size_t start = pos;
    const uint32_t cp = utf8_next(byte_level, pos);
    const int b = cp == kInvalidCodepoint ? -1 : codepoint_to_byte(cp);
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      out.append(byte_level.substr(start, pos - start));
      all_bytes = false;
    }
  }
  return all_bytes;
}

}  // namespace anvil::models
