// Every vocab GGUF in ANVIL_VOCAB_DIR opens clean and its tokenizer metadata is consistent.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "gguf/file.h"

namespace anvil::gguf {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> vocab_files() {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ANVIL_VOCAB_DIR, ec))
    if (e.path().extension() == ".gguf") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Token counts as gguf-py 0.19's GGUFReader reports them (an independent reader).
const std::map<std::string, size_t> kExpectedTokens = {
    {"ggml-vocab-deepseek-coder.gguf", 32256}, {"ggml-vocab-deepseek-llm.gguf", 102400},
    {"ggml-vocab-falcon.gguf", 65024},         {"ggml-vocab-gpt-2.gguf", 50257},
    {"ggml-vocab-llama-spm.gguf", 32000},      {"ggml-vocab-mpt.gguf", 50432},
    {"ggml-vocab-phi-3.gguf", 32064},          {"ggml-vocab-refact.gguf", 49216},
    {"ggml-vocab-starcoder.gguf", 49152},
};

TEST(GgufVocab, EveryFileOpensClean) {
  const auto files = vocab_files();
  if (files.empty()) GTEST_SKIP() << "no *.gguf in " << ANVIL_VOCAB_DIR;
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.filename().string());
    auto f = File::open(p.string());
    ASSERT_TRUE(f) << f.status().to_string();
    EXPECT_TRUE(f->version() == 2 || f->version() == 3);
    EXPECT_TRUE(f->tensors().empty());

    const std::string arch = f->architecture().value();
    EXPECT_FALSE(arch.empty());
    EXPECT_FALSE(f->get_string("tokenizer.ggml.model").value().empty());
    const auto tokens = f->get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens) << tokens.status().to_string();
    const size_t n = tokens->size();
    if (auto it = kExpectedTokens.find(p.filename().string()); it != kExpectedTokens.end())
      EXPECT_EQ(n, it->second);
    if (f->has(arch + ".vocab_size")) EXPECT_EQ(f->get_u32(arch + ".vocab_size").value(), n);

    const auto types = f->get_int_array("tokenizer.ggml.token_type");
    ASSERT_TRUE(types) << types.status().to_string();
    EXPECT_EQ(types->size(), n);
    if (f->has("tokenizer.ggml.scores")) EXPECT_EQ(f->get_float_array("tokenizer.ggml.scores").value().size(), n);
    if (f->has("tokenizer.ggml.merges")) EXPECT_FALSE(f->get_string_array("tokenizer.ggml.merges").value().empty());
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                            "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"}) {
      if (!f->has(key)) continue;
      EXPECT_LT(f->get_u32(key).value(), n) << key;
      EXPECT_LT(uint64_t(f->get_i64(key).value()), n) << key;
    }
    for (const char* key : {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"})
      if (f->has(key)) EXPECT_TRUE(f->get_bool(key)) << key;

    // Every id in the expected tokenizations must be a valid index into the vocab.
    std::ifstream out(p.string() + ".out");
    std::string line;
    while (std::getline(out, line)) {
      std::istringstream ids(line);
      uint64_t id;
      while (ids >> id) ASSERT_LT(id, n);
    }
    for (const KeyValue& kv : f->metadata()) EXPECT_FALSE(kv.value.to_string().empty()) << kv.key;
  }
}

}  // namespace
}  // namespace anvil::gguf
