// SentencePiece BPE by token score, with byte fallback.
#include <queue>

#include "models/tokenizer_vocab.h"
#include "models/unicode.h"

namespace anvil::models {

int SpmModel::byte_of_token(std::string_view text) {
  // "<0xAB>"
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = text[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

Expected<SpmModel> SpmModel::build(const Vocab& vocab) {
  SpmModel m;
  m.byte_token_.fill(-1);
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (vocab.type[id] != TokenType::byte) continue;
    const int b = byte_of_token(vocab.text[id]);
    if (b >= 0 && m.byte_token_[b] < 0) m.byte_token_[b] = id;
  }
  return m;
}

// Control, unknown, unused and byte tokens are never the result of a merge (SentencePiece skips
// them too), so typing "<s>" or "<0x41>" gives text tokens.
bool SpmModel::mergeable(const Vocab& vocab, int32_t id) const {
  if (id < 0) return false;
  const TokenType t = vocab.type[id];
  return t == TokenType::normal || t == TokenType::user_defined || t == TokenType::undefined;
}

void SpmModel::encode_text(const Vocab& vocab, std::string_view text, int32_t unk, std::vector<int32_t>& out) const {
  if (text.empty()) return;

  struct Symbol {
    uint32_t offset;
    uint32_t len;  // 0: merged into its left neighbour
    int32_t prev;
    int32_t next;
  };
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8_char_len(text, pos);
    const int32_t i = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), i - 1, -1});
    pos += len;
  }
  for (size_t i = 0; i + 1 < sym.size(); ++i) sym[i].next = static_cast<int32_t>(i + 1);

  struct Candidate {
    float score;
    int32_t left;
    int32_t right;
    uint32_t len;
  };
  struct Worse {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.score != b.score ? a.score < b.score : a.left > b.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, Worse> queue;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t len = sym[left].len + sym[right].len;
    const int32_t id = vocab.find(text.substr(sym[left].offset, len));
    if (!mergeable(vocab, id)) return;
    queue.push({vocab.score[id], left, right, len});
  };
  for (size_t i = 0; i + 1 < sym.size(); ++i) consider(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[c.left];
    Symbol& r = sym[c.right];
    // Lengths only grow, so a changed total means one side took part in another merge.
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len || l.next != c.right) continue;
    l.len = c.len;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    r.len = 0;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  for (int32_t i = 0; i >= 0 && !sym.empty(); i = sym[i].next) {
    const std::string_view piece = text.substr(sym[i].offset, sym[i].len);
    const int32_t id = vocab.find(piece);
    if (mergeable(vocab, id)) {
      out.push_back(id);
      continue;
    }
    // Not a token (merged symbols always are): spell its bytes, or one <unk> for the character
    // when the vocabulary has no byte tokens for it.
    bool spelled = true;
    for (char ch : piece) spelled = spelled && byte_token_[static_cast<uint8_t>(ch)] >= 0;
    if (spelled) {
      for (char ch : piece) out.push_back(byte_token_[static_cast<uint8_t>(ch)]);
    } else if (unk >= 0) {
      out.push_back(unk);
    }
  }
}

}  // namespace anvil::models
