// UTF-8 and the byte <-> unicode mapping of byte-level BPE (GPT-2's bytes_to_unicode).
//
// Byte-level BPE vocabularies store every token as a string of "byte characters": each byte
// 0..255 stands for one printable code point (printable Latin-1 bytes map to themselves, the
// other 68 to U+0100..U+0143), so that any byte sequence has a printable spelling.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace anvil::models {

inline constexpr uint32_t kInvalidCodepoint = 0xFFFFFFFFu;

// Decodes one code point at s[pos] and advances pos. An invalid, overlong, surrogate or truncated
// sequence yields kInvalidCodepoint and advances by exactly one byte, so every byte of hostile
// input is visited once.
uint32_t utf8_next(std::string_view s, size_t& pos);

// Length in bytes of the valid UTF-8 sequence at s[pos], or 1 when it is not valid.
size_t utf8_char_len(std::string_view s, size_t pos);

void utf8_append(std::string& out, uint32_t cp);

// GPT-2's bytes_to_unicode: the code point that spells byte b.
uint32_t byte_to_codepoint(uint8_t b);
// The inverse: the byte spelt by code point cp, or -1 when cp is not a byte character.
int codepoint_to_byte(uint32_t cp);

// The byte-level spelling of raw bytes ("Hello world" -> "HelloĠworld").
std::string bytes_to_byte_level(std::string_view bytes);
// The UTF-8 spelling of one byte's character (1 or 2 bytes long).
const std::string& byte_level_char(uint8_t b);

// Raw bytes from a byte-level spelling. Code points that are not byte characters are copied as
// their UTF-8; returns false when any such code point was met.
bool byte_level_to_bytes(std::string_view byte_level, std::string& out);

}  // namespace anvil::models
