#define PCRE2_CODE_UNIT_WIDTH 8
#include "models/pretokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <utility>

#include "models/unicode.h"

namespace anvil::models {

namespace {

// The split patterns, as the models' HF tokenizer.json files write them (the GPT-2 pattern is
// the ByteLevel pre-tokenizer's built-in one). Each list is applied in order, every step
// splitting the pieces of the previous one.

// GPT-2's ByteLevel regex (also GPT-NeoX/MPT, OLMo, JAIS).
constexpr const char* kGpt2 =
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";

// Llama 3 (tiktoken cl100k-style): case-insensitive contractions, digits in groups of up to 3.
constexpr const char* kLlama3 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// Qwen2 / Qwen2.5 / Qwen3: as Llama 3 but single digits.
constexpr const char* kQwen2 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// Qwen3.5 / 3.6: combining marks (\p{M}) stay inside words.
constexpr const char* kQwen35 =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// DeepSeek LLM: newlines alone, then cased-letter runs (an explicit list of Latin, Greek,
// Cyrillic, Armenian, Georgian, Cherokee, ... ranges), ASCII/full-width punctuation runs,
// trailing whitespace, CJK runs, digit runs.
constexpr const char* kDeepseekLlmLetters =
    R"re(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})re"
    R"re(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})re"
    R"re(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})re"
    R"re(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})re"
    R"re(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})re"
    R"re(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})re"
    R"re(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})re"
    R"re(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})re"
    R"re(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})re"
    R"re(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})re"
    R"re(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})re"
    R"re(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})re"
    R"re(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)re";
constexpr const char* kDeepseekLlmPunct =
    R"re(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)re";
constexpr const char* kDeepseekCjk = R"re([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)re";

// DeepSeek V3 / R1.
constexpr const char* kDeepseekV3Main =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// HF's Punctuation pre-tokenizer: Unicode punctuation plus the ASCII symbols Rust counts as
// punctuation; contiguous runs stay together.
constexpr const char* kPunctRun = R"re([\p{P}\$\+<=>\^~\|`]+)re";

struct Spec {
  const char* name;
  std::vector<const char*> steps;
};

const std::vector<Spec>& specs() {
  static const std::vector<Spec> all = {
      {"gpt2", {kGpt2}},
      {"gpt-2", {kGpt2}},
      {"mpt", {kGpt2}},
      {"olmo", {kGpt2}},
      {"jais", {kGpt2}},
      {"llama-bpe", {kLlama3}},
      {"llama3", {kLlama3}},
      {"dbrx", {kLlama3}},
      {"smaug-bpe", {kLlama3}},
      {"qwen2", {kQwen2}},
      {"stablelm2", {kQwen2}},
      {"qwen35", {kQwen35}},
      {"deepseek-llm",
       {R"re([\r\n])re", kDeepseekLlmLetters, kDeepseekLlmPunct, R"re(\s+$)re", kDeepseekCjk, R"re(\p{N}+)re"}},
      {"deepseek-coder", {R"re([\r\n])re", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kDeepseekCjk, R"re(\p{N})re"}},
      {"deepseek-v3",
       {R"re(\p{N}{1,3})re", R"re([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)re", kDeepseekV3Main}},
      // Falcon: Punctuation, ByteLevel's regex, then digit runs cut into threes.
      {"falcon", {kPunctRun, kGpt2, R"re([0-9][0-9][0-9])re"}},
      // StarCoder family: Digits(individual) before ByteLevel.
      {"starcoder", {R"re(\p{N})re", kGpt2}},
      {"refact", {R"re(\p{N})re", kGpt2}},
      {"command-r", {R"re(\p{N})re", kGpt2}},
      {"smollm", {R"re(\p{N})re", kGpt2}},
      {"codeshell", {R"re(\p{N})re", kGpt2}},
      // What llama.cpp uses for a BPE vocab without a known pre-tokenizer.
      {"default", {kPunctRun, kGpt2, R"re(\p{N}+)re", R"re([0-9][0-9][0-9])re"}},
  };
  return all;
}

// HF's regex engines (Oniguruma, fancy-regex) take \s as Unicode White_Space; PCRE2 with UCP
// takes \p{Z} plus \t\n\v\f\r, which lacks U+0085 (NEL). Add it so both agree.
std::string widen_space_class(std::string_view re) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    if (c == '\\' && i + 1 < re.size()) {
      const char e = re[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (e == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < re.size() && re[i + 1] == '^') out += re[++i];
      if (i + 1 < re.size() && re[i + 1] == ']') out += re[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

// A thread's JIT stack: the default 32 KiB on the machine stack is small for long runs of
// whitespace under (?!\S) backtracking.
struct JitStack {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  JitStack() {
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~JitStack() {
    if (stack) pcre2_jit_stack_free(stack);
    if (context) pcre2_match_context_free(context);
  }
};

pcre2_match_context* thread_match_context() {
  thread_local JitStack js;
  return js.context;
}

struct Step {
  pcre2_code* code = nullptr;
};

}  // namespace

struct PreTokenizer::Impl {
  std::string name;
  std::vector<std::string> patterns;
  std::vector<Step> steps;
  ~Impl() {
    for (auto& s : steps) pcre2_code_free(s.code);
  }

  // Splits `piece` with one step's regex, appending matches and the gaps between them.
  void split_step(const Step& step, std::string_view piece, std::vector<std::string_view>& out) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(step.code, nullptr);
    pcre2_match_context* mctx = thread_match_context();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
    size_t offset = 0;
    size_t last = 0;
    while (md && offset < piece.size()) {
      const int rc = pcre2_match(step.code, subject, piece.size(), offset, 0, md, mctx);
      if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource limit: the rest stays one piece
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t begin = ov[0];
      const size_t end = ov[1];
      if (end <= begin) {  // empty match: step over one character
        offset = begin + utf8_char_len(piece, begin);
        continue;
      }
      if (begin > last) out.push_back(piece.substr(last, begin - last));
      out.push_back(piece.substr(begin, end - begin));
      last = offset = end;
    }
    if (last < piece.size()) out.push_back(piece.substr(last));
    pcre2_match_data_free(md);
  }
};

PreTokenizer::PreTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

const std::vector<std::string>& PreTokenizer::patterns() const { return impl_->patterns; }
const std::string& PreTokenizer::name() const { return impl_->name; }

std::string supported_pre_tokenizers() {
  std::string s;
  for (const auto& spec : specs()) {
    if (!s.empty()) s += ", ";
    s += spec.name;
  }
  return s;
}

Expected<PreTokenizer> PreTokenizer::for_name(std::string_view name) {
  const auto& all = specs();
  const auto it = std::find_if(all.begin(), all.end(), [&](const Spec& s) { return name == s.name; });
  if (it == all.end()) {
    return make_error(StatusCode::unsupported, "tokenizer pre-tokenizer '", name,
                      "' is not supported (supported: ", supported_pre_tokenizers(), ")");
  }
  auto impl = std::make_unique<Impl>();
  impl->name = std::string(name);
  for (const char* src : it->steps) {
    std::string re = widen_space_class(src);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      return make_error(StatusCode::internal, "pre-tokenizer '", name, "': regex does not compile at offset ",
                        static_cast<uint64_t>(err_off), ": ", reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
    impl->steps.push_back({code});
    impl->patterns.push_back(std::move(re));
  }
  return PreTokenizer(std::move(impl));
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  out.clear();
  if (text.empty()) return;
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (const Step& step : impl_->steps) {
    next.clear();
    for (std::string_view piece : current) impl_->split_step(step, piece, next);
    std::swap(current, next);
  }
  out = std::move(current);
}

}  // namespace anvil::models
