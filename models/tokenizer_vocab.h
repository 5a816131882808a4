// Internal to the tokenizer: the vocabulary every model shares, and the two segmentation
// models (byte-level BPE, SentencePiece BPE) that turn one piece of text into token ids.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "models/tokenizer.h"

namespace anvil::models {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Vocab {
  std::vector<std::string> text;
  std::vector<TokenType> type;
  std::vector<float> score;  // SPM only
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> id_of;

  int32_t find(std::string_view s) const {
    const auto it = id_of.find(s);
    return it == id_of.end() ? -1 : it->second;
  }
  int32_t size() const { return static_cast<int32_t>(text.size()); }
};

// How BPE ranks an adjacent pair of symbols.
enum class BpeRanking {
  // By the merge list (HF's BPE): only listed pairs merge, earlier first.
  merges,
  // By the id of the concatenation, any pair whose concatenation is a normal token (tiktoken's
  // BPE, for vocabularies whose ids are tiktoken ranks). It also reaches tokens the merge list
  // cannot build from two smaller tokens (words added whole, as in Qwen3.5's vocabulary).
  token_ids,
};

// Byte-level BPE: a piece's bytes start as one symbol each (their byte characters) and the
// adjacent pair of lowest rank is merged until no pair has one (ties go to the leftmost pair).
class BpeModel {
 public:
  // merges: "left right" in rank order. Merges whose sides or result are not tokens are skipped
  // (HF refuses to load such a vocabulary; llama.cpp ignores them). ignore_merges: a piece that
  // is itself a token is taken whole.
  static Expected<BpeModel> build(const Vocab& vocab, const std::vector<std::string>& merges, BpeRanking ranking,
                                  bool ignore_merges);

  // Appends the ids of one pre-tokenized piece (raw bytes).
  void encode_piece(const Vocab& vocab, std::string_view bytes, int32_t unk, std::vector<int32_t>& out) const;

  size_t n_merges() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_token_{};  // the token of each byte's character, -1 if absent
  BpeRanking ranking_ = BpeRanking::merges;
  bool ignore_merges_ = false;
};

// SentencePiece BPE: the text (spaces already escaped to U+2581) starts as one symbol per
// UTF-8 character, and the adjacent pair whose concatenation is the highest-scoring token is
// merged until none is a token; symbols that are not tokens fall back to <0xXX> byte tokens.
class SpmModel {
 public:
  static Expected<SpmModel> build(const Vocab& vocab);
  void encode_text(const Vocab& vocab, std::string_view escaped, int32_t unk, std::vector<int32_t>& out) const;
  // The byte of a <0xXX> token, or -1.
  static int byte_of_token(std::string_view text);

 private:
  bool mergeable(const Vocab& vocab, int32_t id) const;
  std::array<int32_t, 256> byte_token_{};
};

}  // namespace anvil::models
