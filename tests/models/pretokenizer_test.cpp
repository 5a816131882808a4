// Pre-tokenizer splits and the byte-level mapping.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "models/pretokenizer.h"
#include "models/unicode.h"

using anvil::StatusCode;
using anvil::models::PreTokenizer;

namespace {

std::vector<std::string> split(const std::string& pre, const std::string& text) {
  auto p = PreTokenizer::for_name(pre);
  EXPECT_TRUE(p) << p.status().to_string();
  if (!p) return {};
  std::vector<std::string_view> words;
  p->split(text, words);
  std::string joined;
  for (auto w : words) joined += w;
  EXPECT_EQ(joined, text) << pre << ": pieces must cover the input exactly";
  return {words.begin(), words.end()};
}

using V = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split("gpt2", "Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split("gpt2", "I've 123  apples!!"), (V{"I", "'ve", " 123", " ", " apples", "!!"}));
  EXPECT_EQ(split("gpt2", "a\n\nb"), (V{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split("gpt2", "trailing  "), (V{"trailing", "  "}));
}

TEST(PreTokenizer, Llama3AndQwen) {
  EXPECT_EQ(split("llama-bpe", "12345 I'M"), (V{"123", "45", " I", "'M"}));
  EXPECT_EQ(split("qwen2", "12345"), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split("qwen2", "hi\n\n  there"), (V{"hi", "\n\n", " ", " there"}));
  // Qwen3.5 keeps combining marks inside a word; Qwen2 splits them off.
  EXPECT_EQ(split("qwen35", "re\xCC\x81sume\xCC\x81"), (V{"re\xCC\x81sume\xCC\x81"}));
  EXPECT_EQ(split("qwen2", "re\xCC\x81sume\xCC\x81"), (V{"re", "\xCC\x81sume", "\xCC\x81"}));
}

TEST(PreTokenizer, DigitSplits) {
  EXPECT_EQ(split("starcoder", "x 2024"), (V{"x", " ", "2", "0", "2", "4"}));
  EXPECT_EQ(split("falcon", "1234567"), (V{"123", "456", "7"}));
  EXPECT_EQ(split("deepseek-coder", "ab12"), (V{"ab", "1", "2"}));
  EXPECT_EQ(split("deepseek-llm", "ab 12\n"), (V{"ab", " ", "12", "\n"}));
}

TEST(PreTokenizer, NelIsWhitespace) {
  // U+0085 is White_Space for HF's regex engines; PCRE2 needs telling.
  EXPECT_EQ(split("gpt2", "a\xC2\x85" "b"), (V{"a", "\xC2\x85", "b"}));
}

TEST(PreTokenizer, InvalidUtf8LandsInGaps) {
  const std::string text = "ab\xFF" "cd \xC3";
  const auto words = split("qwen2", text);
  EXPECT_GE(words.size(), 3u);
  EXPECT_EQ(split("deepseek-llm", "\xFF\xFE").size(), 1u);
}

TEST(PreTokenizer, UnknownName) {
  auto p = PreTokenizer::for_name("klingon");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.status().code(), StatusCode::unsupported);
  EXPECT_NE(p.status().message().find("'klingon'"), std::string::npos);
}

TEST(ByteLevel, RoundTrip) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string spelled = anvil::models::bytes_to_byte_level(all);
  std::string back;
  EXPECT_TRUE(anvil::models::byte_level_to_bytes(spelled, back));
  EXPECT_EQ(back, all);
  EXPECT_EQ(anvil::models::bytes_to_byte_level(" \n"), "\xC4\xA0\xC4\x8A");  // "ĠĊ"
}

}  // namespace
