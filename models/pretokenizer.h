// Pre-tokenizers of byte-level BPE: the regex splits a model's HF tokenizer applies to raw text
// before BPE runs on each piece, chosen by the GGUF key tokenizer.ggml.pre.
//
//   auto pre = PreTokenizer::for_name("qwen2");        // Expected<PreTokenizer>
//   std::vector<std::string_view> words;
//   pre->split("Hello world", words);                   // {"Hello", " world"}
//
// A pre-tokenizer is a sequence of steps; each step splits every current piece with one regex
// (PCRE2, UTF + UCP, JIT when available) and keeps both the matches and the text between them
// as pieces ("isolated" behaviour of HF's Split). Pieces are views into the input and cover it
// exactly, in order. Invalid UTF-8 never matches, so it lands in the gaps and still reaches BPE.
// Thread-safe: split() may run on many threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace anvil::models {

class PreTokenizer {
 public:
  // Names as written by llama.cpp's converter: gpt2/gpt-2, mpt, olmo, jais, llama-bpe/llama3,
  // dbrx, smaug-bpe, qwen2, stablelm2, qwen35, deepseek-llm, deepseek-coder, deepseek-v3, falcon,
  // starcoder, refact, command-r, smollm, codeshell, default. Anything else: unsupported.
  static Expected<PreTokenizer> for_name(std::string_view name);
  // The regex sources of each step (after the \s rewrite below), for diagnostics and tests.
  const std::vector<std::string>& patterns() const;
  const std::string& name() const;

  void split(std::string_view text, std::vector<std::string_view>& out) const;

  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

 private:
  struct Impl;
  explicit PreTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The pre-tokenizer names for_name() accepts, for error messages.
std::string supported_pre_tokenizers();

}  // namespace anvil::models
