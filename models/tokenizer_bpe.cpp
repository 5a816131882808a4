// Byte-level BPE by merge rank.
#include <queue>

#include "models/tokenizer_vocab.h"
#include "models/unicode.h"

namespace anvil::models {

Expected<BpeModel> BpeModel::build(const Vocab& vocab, const std::vector<std::string>& merges, BpeRanking ranking,
                                   bool ignore_merges) {
  BpeModel m;
  m.ranking_ = ranking;
  m.ignore_merges_ = ignore_merges;
  for (int b = 0; b < 256; ++b) m.byte_token_[b] = vocab.find(byte_level_char(static_cast<uint8_t>(b)));

  m.merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& line = merges[rank];
    // Byte-level tokens never hold a plain space, so the first space after position 0 splits.
    const size_t sp = line.find(' ', 1);
    if (sp == std::string::npos) {
      return make_error(StatusCode::corrupt_file, "tokenizer.ggml.merges[", static_cast<uint64_t>(rank), "] '",
                        line, "' is not 'left right'");
    }
    const std::string_view left = std::string_view(line).substr(0, sp);
    const std::string_view right = std::string_view(line).substr(sp + 1);
    const int32_t l = vocab.find(left);
    const int32_t r = vocab.find(right);
    joined.assign(left);
    joined.append(right);
    const int32_t result = vocab.find(joined);
    if (l < 0 || r < 0 || result < 0) continue;
    // The first (lowest-rank) occurrence of a pair wins, as in HF.
    m.merges_.try_emplace(key(l, r), Merge{static_cast<int32_t>(rank), result});
  }
  return m;
}

void BpeModel::encode_piece(const Vocab& vocab, std::string_view bytes, int32_t unk, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (ignore_merges_) {
    const int32_t whole = vocab.find(bytes_to_byte_level(bytes));
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }

  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  const int32_t n = static_cast<int32_t>(bytes.size());
  std::vector<Symbol> sym(n);
  for (int32_t i = 0; i < n; ++i) {
    sym[i] = {byte_token_[static_cast<uint8_t>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }

  struct Candidate {
    int32_t rank;
    int32_t left;  // symbol index; the leftmost byte of the pair, so it orders by position
    int32_t left_id;
    int32_t right;
    int32_t right_id;
    int32_t result;
  };
  struct Later {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, Later> queue;
  std::string joined;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t a = sym[left].id;
    const int32_t b = sym[right].id;
    if (a < 0 || b < 0) return;
    if (ranking_ == BpeRanking::token_ids) {
      joined.assign(vocab.text[a]);
      joined.append(vocab.text[b]);
      const int32_t result = vocab.find(joined);
      if (result < 0 || vocab.type[result] != TokenType::normal) return;
      queue.push({result, left, a, right, b, result});
      return;
    }
    const auto it = merges_.find(key(a, b));
    if (it == merges_.end()) return;
    queue.push({it->second.rank, left, a, right, b, it->second.result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[c.left];
    Symbol& r = sym[c.right];
    // Stale when either side was merged away or changed since the pair was queued.
    if (l.id != c.left_id || r.id != c.right_id || l.next != c.right) continue;
    l.id = c.result;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    r.id = -2;  // dead
    r.next = r.prev = -1;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = sym[i].next) {
    if (sym[i].id >= 0) {
      out.push_back(sym[i].id);
    } else if (unk >= 0) {
      out.push_back(unk);  // a byte without a token: only in vocabularies missing byte characters
    }
  }
}

}  // namespace anvil::models
