// Tokenizer metadata for synthetic models: either every tokenizer.* key of a vocab GGUF (the
// model's vocab size is that file's token count), or a made-up GPT-2-style byte-level BPE vocab
// of any size: the 256 byte tokens, a few merges, the special tokens at their ids, "tok<i>"
// fillers (what ../shared/tools/synth_gguf.py writes).
#include <set>
#include <string_view>

#include "gguf/file.h"
#include "make_test_model/model_spec.h"

namespace anvil::tools::mtm {
namespace {

constexpr int32_t kTokenNormal = 1;   // llama.cpp's token types
constexpr int32_t kTokenControl = 3;

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xc0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3f));
  } else {
    out += char(0xe0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3f));
    out += char(0x80 | (cp & 0x3f));
  }
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256, 257, ...
std::vector<std::string> byte_tokens() {
  std::vector<uint32_t> map(256, 0);
  std::vector<bool> printable(256, false);
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xa1; b <= 0xac; ++b) printable[b] = true;
  for (int b = 0xae; b <= 0xff; ++b) printable[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) map[b] = printable[b] ? uint32_t(b) : next++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) append_utf8(out[b], map[b]);
  return out;
}

}  // namespace

Expected<Vocab> load_vocab_file(const std::string& path) {
  auto f = gguf::File::open(path);
  if (!f) return f.status();
  Vocab v;
  for (const auto& kv : f->metadata()) {
    if (kv.key.rfind("tokenizer.", 0) == 0) v.keys.emplace_back(kv.key, kv.value);
  }
  const gguf::Value* tokens = f->find("tokenizer.ggml.tokens");
  const auto* arr = tokens ? std::get_if<gguf::Array>(&tokens->v) : nullptr;
  if (!arr || arr->type != gguf::ValueType::STRING || arr->items.empty())
    return make_error(StatusCode::invalid_argument, "'", path, "' has no tokenizer.ggml.tokens string array");
  v.n_tokens = int64_t(arr->items.size());
  const size_t slash = path.find_last_of('/');
  v.description = slash == std::string::npos ? path : path.substr(slash + 1);
  return v;
}

Vocab synthetic_vocab(const VocabSpec& spec, int64_t n) {
  std::vector<std::string> tokens = byte_tokens();
  const std::vector<std::string> merges = {"\xc4\xa0 t", "\xc4\xa0 a", "i n", "h e", "r e", "o n"};  // "Ġ t", ...
  for (const auto& m : merges) {
    std::string t = m;
    t.erase(t.find(' '), 1);
    tokens.push_back(t);
  }
  const int64_t n_base = int64_t(tokens.size());
  // specials at their real ids, or at the last ids when the vocab is too small for those
  std::vector<std::pair<std::string, int64_t>> specials = spec.specials;
  bool fits = true;
  for (const auto& [name, id] : specials) fits = fits && id >= n_base && id < n;
  if (!fits) {
    for (size_t i = 0; i < specials.size(); ++i) specials[i].second = n - int64_t(specials.size()) + int64_t(i);
  }
  std::vector<std::string> names(static_cast<size_t>(n));
  std::vector<int32_t> types(static_cast<size_t>(n), kTokenNormal);
  for (int64_t i = 0; i < n; ++i) names[size_t(i)] = i < n_base ? tokens[size_t(i)] : "tok" + std::to_string(i);
  auto id_of = [&](const std::string& name) -> int64_t {
    for (const auto& [s, id] : specials)
      if (s == name) return id;
    return -1;
  };
  for (const auto& [s, id] : specials) {
    if (id < n_base) continue;  // vocab too small to hold even the byte tokens and specials
    names[size_t(id)] = s;
    types[size_t(id)] = kTokenControl;
  }

  Vocab v;
  v.n_tokens = n;
  v.description = "synthetic byte-level BPE";
  auto set = [&](std::string key, gguf::Value value) { v.keys.emplace_back(std::move(key), std::move(value)); };
  set("tokenizer.ggml.model", gguf::Value{std::string("gpt2")});
  set("tokenizer.ggml.pre", gguf::Value{spec.pre});
  auto string_array = [](const std::vector<std::string>& items) {
    gguf::Array a;
    a.type = gguf::ValueType::STRING;
    a.items.reserve(items.size());
    for (const auto& s : items) a.items.push_back(gguf::Value{s});
    return gguf::Value{std::move(a)};
  };
  set("tokenizer.ggml.tokens", string_array(names));
  gguf::Array ta;
  ta.type = gguf::ValueType::INT32;
  ta.items.reserve(types.size());
  for (int32_t t : types) ta.items.push_back(gguf::Value{t});
  set("tokenizer.ggml.token_type", gguf::Value{std::move(ta)});
  set("tokenizer.ggml.merges", string_array(merges));
  const int64_t bos = id_of(spec.bos), eos = id_of(spec.eos), pad = id_of(spec.pad);
  if (bos >= n_base) set("tokenizer.ggml.bos_token_id", gguf::Value{uint32_t(bos)});
  if (eos >= n_base) set("tokenizer.ggml.eos_token_id", gguf::Value{uint32_t(eos)});
  if (pad >= n_base) set("tokenizer.ggml.padding_token_id", gguf::Value{uint32_t(pad)});
  set("tokenizer.ggml.add_bos_token", gguf::Value{false});
  return v;
}

}  // namespace anvil::tools::mtm
