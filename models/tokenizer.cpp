// Tokenizer: loading from GGUF, special-token partitioning, encode/decode around the models.
#include "models/tokenizer.h"

#include <algorithm>
#include <array>
#include <optional>

#include "core/log.h"
#include "gguf/file.h"
#include "models/pretokenizer.h"
#include "models/tokenizer_vocab.h"
#include "models/unicode.h"

namespace anvil::models {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Pre-tokenizers whose HF BPE has ignore_merges: a pre-token that is itself in the vocabulary is
// taken whole even if the merges would not build it.
bool pre_ignores_merges(std::string_view pre) {
  return pre == "llama-bpe" || pre == "llama3" || pre == "dbrx" || pre == "smaug-bpe" || pre == "qwen35";
}

// Qwen3.5 / 3.6 ship their vocabulary as tiktoken ranks (ids = ranks), and 232 of its tokens are
// words added whole that no merge of two lower-ranked tokens builds ("加拿大"); tiktoken reaches
// them inside longer text by merging any pair whose concatenation is a token. Ranking pairs by
// the concatenation's id reproduces tiktoken (checked by tests/models against tiktoken itself).
BpeRanking pre_ranking(std::string_view pre) {
  return pre == "qwen35" ? BpeRanking::token_ids : BpeRanking::merges;
}

// Control-token spellings that end a turn; llama.cpp treats the same set as end-of-generation.
constexpr std::array<std::string_view, 10> kEogTexts = {
    "<|eot_id|>", "<|im_end|>",    "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>",         "_<EOT>",  "<|end_of_text|>", "<｜end▁of▁sentence｜>",
};

struct SpecialToken {
  std::string_view text;
  int32_t id;
  bool needs_parse_special;  // control/unknown; user-defined tokens are always recognised
};

struct Fragment {
  int32_t token;          // >= 0: a special token
  std::string_view text;  // raw text when token < 0
};

// An integer id key: absent -> -1; present but not an id of this vocabulary -> -1 with a warning
// (some converters write ids past the end of the token list).
int32_t read_token_id(const gguf::File& f, std::string_view key, int32_t n_vocab) {
  const gguf::Value* v = f.find(key);
  if (!v) return -1;
  int64_t id = -1;
  if (!v->to_int64(id)) {
    log().warn("tokenizer: {} is not an integer ({}); ignored", key, gguf::value_type_name(v->type()));
    return -1;
  }
  if (id < 0 || id >= n_vocab) {
    if (id != -1) log().warn("tokenizer: {} = {} is outside the vocabulary (n_vocab {}); ignored", key, id, n_vocab);
    return -1;
  }
  return static_cast<int32_t>(id);
}

Expected<bool> read_flag(const gguf::File& f, std::string_view key, bool fallback) {
  if (!f.has(key)) return fallback;
  return f.get_bool(key);
}

}  // namespace

struct Tokenizer::Impl {
  TokenizerModel model = TokenizerModel::bpe;
  std::string pre;
  Vocab vocab;
  std::optional<PreTokenizer> pretokenizer;  // BPE only
  std::optional<BpeModel> bpe;
  std::optional<SpmModel> spm;

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;  // SPM: encode " " + text
  std::vector<uint8_t> eog;       // per id
  std::array<std::vector<SpecialToken>, 256> specials;  // by first byte, longest first

  void partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
  void encode_text(std::string_view text, bool first_after_special, std::vector<int32_t>& out) const;
  std::string piece(int32_t id, bool render_special) const;
};

// Splits text at special tokens, leftmost first and longest at each position (HF's added-token
// matching), leaving the text between them as raw fragments.
void Tokenizer::Impl::partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  size_t start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const SpecialToken* hit = nullptr;
    for (const SpecialToken& s : specials[static_cast<uint8_t>(text[i])]) {
      if (s.needs_parse_special && !parse_special) continue;
      if (text.substr(i, s.text.size()) == s.text) {
        hit = &s;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > start) out.push_back({-1, text.substr(start, i - start)});
    out.push_back({hit->id, {}});
    i += hit->text.size();
    start = i;
  }
  if (start < text.size()) out.push_back({-1, text.substr(start)});
}

void Tokenizer::Impl::encode_text(std::string_view text, bool first_after_special, std::vector<int32_t>& out) const {
  if (model == TokenizerModel::bpe) {
    std::vector<std::string_view> words;
    pretokenizer->split(text, words);
    for (std::string_view w : words) bpe->encode_piece(vocab, w, unk, out);
    return;
  }
  // SPM: escape spaces, with the dummy-prefix space at the start and after special tokens
  // (SentencePiece's add_dummy_prefix as llama.cpp applies it per text fragment).
  std::string escaped;
  escaped.reserve(text.size() + text.size() / 2 + 3);
  if (add_space_prefix && first_after_special) escaped += kSpmSpace;
  for (char c : text) {
    if (c == ' ') {
      escaped += kSpmSpace;
    } else {
      escaped += c;
    }
  }
  spm->encode_text(vocab, escaped, unk, out);
}

std::string Tokenizer::Impl::piece(int32_t id, bool render_special) const {
  if (id < 0 || id >= vocab.size()) return {};
  const std::string& text = vocab.text[id];
  switch (vocab.type[id]) {
    case TokenType::control:
      return render_special ? text : std::string();
    case TokenType::unused:
      return {};
    case TokenType::unknown:
      // SentencePiece's surface for <unk>.
      return render_special ? text : std::string(" \xE2\x81\x87 ");
    case TokenType::byte: {
      const int b = SpmModel::byte_of_token(text);
      if (b >= 0) return std::string(1, static_cast<char>(b));
      break;
    }
    case TokenType::user_defined:
      // Added tokens are stored as the text they match. (DeepSeek's single-character ones like
      // "ü" also stand for the bytes its BPE vocabulary lacks, 0xC0 and 0xF5..0xFF; valid text
      // wins, so such a lone byte decodes as the character.)
      if (model == TokenizerModel::bpe) return text;
      break;
    default:
      break;
  }
  std::string out;
  if (model == TokenizerModel::bpe) {
    byte_level_to_bytes(text, out);
    return out;
  }
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    if (text.compare(pos, kSpmSpace.size(), kSpmSpace) == 0) {
      out += ' ';
      pos += kSpmSpace.size();
    } else {
      out += text[pos++];
    }
  }
  return out;
}

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Expected<Tokenizer> Tokenizer::from_gguf(const gguf::File& f) {
  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;

  if (!f.has("tokenizer.ggml.model")) {
    return make_error(StatusCode::not_found, f.path(), ": no tokenizer (tokenizer.ggml.model is missing)");
  }
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model) return model.status();
  if (*model == "gpt2") {
    t.model = TokenizerModel::bpe;
  } else if (*model == "llama") {
    t.model = TokenizerModel::spm;
  } else {
    return make_error(StatusCode::unsupported, f.path(), ": tokenizer model '", *model,
                      "' is not supported (supported: gpt2 = byte-level BPE, llama = SentencePiece BPE)");
  }

  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) return tokens.status();
  if (tokens->empty()) return make_error(StatusCode::corrupt_file, f.path(), ": tokenizer.ggml.tokens is empty");
  if (tokens->size() > static_cast<size_t>(INT32_MAX)) {
    return make_error(StatusCode::corrupt_file, f.path(), ": tokenizer.ggml.tokens has too many entries");
  }
  t.vocab.text = std::move(*tokens);
  const size_t n = t.vocab.text.size();

  t.vocab.type.assign(n, TokenType::normal);
  if (f.has("tokenizer.ggml.token_type")) {
    auto types = f.get_int_array("tokenizer.ggml.token_type");
    if (!types) return types.status();
    if (types->size() != n) {
      return make_error(StatusCode::corrupt_file, f.path(), ": tokenizer.ggml.token_type has ",
                        static_cast<uint64_t>(types->size()), " entries for ", static_cast<uint64_t>(n), " tokens");
    }
    for (size_t i = 0; i < n; ++i) {
      const int64_t v = (*types)[i];
      t.vocab.type[i] = (v >= 0 && v <= 6) ? static_cast<TokenType>(v) : TokenType::normal;
    }
  }

  t.vocab.score.assign(n, 0.0f);
  if (f.has("tokenizer.ggml.scores")) {
    auto scores = f.get_float_array("tokenizer.ggml.scores");
    if (!scores) return scores.status();
    if (scores->size() != n) {
      return make_error(StatusCode::corrupt_file, f.path(), ": tokenizer.ggml.scores has ",
                        static_cast<uint64_t>(scores->size()), " entries for ", static_cast<uint64_t>(n), " tokens");
    }
    t.vocab.score = std::move(*scores);
  }

  t.vocab.id_of.reserve(n);
  for (size_t i = 0; i < n; ++i) t.vocab.id_of.emplace(t.vocab.text[i], static_cast<int32_t>(i));

  const int32_t nv = static_cast<int32_t>(n);
  t.bos = read_token_id(f, "tokenizer.ggml.bos_token_id", nv);
  t.eos = read_token_id(f, "tokenizer.ggml.eos_token_id", nv);
  t.eot = read_token_id(f, "tokenizer.ggml.eot_token_id", nv);
  t.eom = read_token_id(f, "tokenizer.ggml.eom_token_id", nv);
  t.unk = read_token_id(f, "tokenizer.ggml.unknown_token_id", nv);
  t.pad = read_token_id(f, "tokenizer.ggml.padding_token_id", nv);

  const bool spm = t.model == TokenizerModel::spm;
  auto add_bos = read_flag(f, "tokenizer.ggml.add_bos_token", spm);
  if (!add_bos) return add_bos.status();
  auto add_eos = read_flag(f, "tokenizer.ggml.add_eos_token", false);
  if (!add_eos) return add_eos.status();
  auto add_space_prefix = read_flag(f, "tokenizer.ggml.add_space_prefix", spm);
  if (!add_space_prefix) return add_space_prefix.status();
  t.add_bos = *add_bos && t.bos >= 0;
  t.add_eos = *add_eos && t.eos >= 0;
  t.add_space_prefix = *add_space_prefix;

  if (spm) {
    t.pre = "default";
    if (t.unk < 0) t.unk = t.vocab.find("<unk>");
    auto m = SpmModel::build(t.vocab);
    if (!m) return m.status();
    t.spm = std::move(*m);
  } else {
    t.pre = "default";
    if (f.has("tokenizer.ggml.pre")) {
      auto pre = f.get_string("tokenizer.ggml.pre");
      if (!pre) return pre.status();
      t.pre = *pre;
    } else {
      log().warn("tokenizer: {} has no tokenizer.ggml.pre; using the default BPE pre-tokenizer", f.path());
    }
    auto pretok = PreTokenizer::for_name(t.pre);
    if (!pretok) return make_error(pretok.status().code(), f.path(), ": ", pretok.status().message());
    t.pretokenizer.emplace(std::move(*pretok));

    if (!f.has("tokenizer.ggml.merges")) {
      return make_error(StatusCode::not_found, f.path(), ": BPE tokenizer without tokenizer.ggml.merges");
    }
    auto merges = f.get_string_array("tokenizer.ggml.merges");
    if (!merges) return merges.status();
    auto m = BpeModel::build(t.vocab, *merges, pre_ranking(t.pre), pre_ignores_merges(t.pre));
    if (!m) return make_error(m.status().code(), f.path(), ": ", m.status().message());
    t.bpe = std::move(*m);
  }

  // Special tokens recognised in text, longest first within each first byte.
  for (int32_t id = 0; id < nv; ++id) {
    const TokenType ty = t.vocab.type[id];
    if (ty != TokenType::control && ty != TokenType::user_defined && ty != TokenType::unknown) continue;
    const std::string& text = t.vocab.text[id];
    if (text.empty()) continue;
    t.specials[static_cast<uint8_t>(text[0])].push_back({text, id, ty != TokenType::user_defined});
  }
  for (auto& bucket : t.specials) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const SpecialToken& a, const SpecialToken& b) { return a.text.size() > b.text.size(); });
  }

  t.eog.assign(n, 0);
  for (int32_t id : {t.eos, t.eot, t.eom}) {
    if (id >= 0) t.eog[id] = 1;
  }
  for (int32_t id = 0; id < nv; ++id) {
    if (t.vocab.type[id] != TokenType::control && t.vocab.type[id] != TokenType::user_defined) continue;
    if (std::find(kEogTexts.begin(), kEogTexts.end(), t.vocab.text[id]) != kEogTexts.end()) t.eog[id] = 1;
  }

  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const Impl& t = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && t.add_bos) out.push_back(t.bos);

  std::vector<Fragment> fragments;
  t.partition(text, parse_special, fragments);
  bool after_special = true;  // the text start counts as following a special token (SPM prefix)
  for (const Fragment& fr : fragments) {
    if (fr.token >= 0) {
      out.push_back(fr.token);
      after_special = true;
    } else {
      t.encode_text(fr.text, after_special, out);
      after_special = false;
    }
  }

  if (add_special && t.add_eos) out.push_back(t.eos);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  const Impl& t = *impl_;
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    std::string p = t.piece(id, render_special);
    if (p.empty()) continue;
    // Undo the dummy-prefix space of SPM at the start of the text.
    if (at_start && t.model == TokenizerModel::spm && t.add_space_prefix && p[0] == ' ' &&
        token_type(id) != TokenType::control) {
      p.erase(0, 1);
    }
    at_start = false;
    out += p;
  }
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const { return impl_->piece(id, render_special); }

int32_t Tokenizer::n_vocab() const { return impl_->vocab.size(); }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
int32_t Tokenizer::eot() const { return impl_->eot; }
int32_t Tokenizer::unk() const { return impl_->unk; }
int32_t Tokenizer::pad() const { return impl_->pad; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::is_eog(int32_t id) const { return id >= 0 && id < n_vocab() && impl_->eog[id] != 0; }
TokenizerModel Tokenizer::model() const { return impl_->model; }
const std::string& Tokenizer::pre() const { return impl_->pre; }

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string empty;
  return id >= 0 && id < n_vocab() ? impl_->vocab.text[id] : empty;
}

TokenType Tokenizer::token_type(int32_t id) const {
  return id >= 0 && id < n_vocab() ? impl_->vocab.type[id] : TokenType::undefined;
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  const int32_t id = impl_->vocab.find(text);
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

}  // namespace anvil::models
