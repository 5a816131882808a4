#include "models/chat_template.h"

#include <cstdio>
#include <ctime>

#include "core/log.h"
#include "gguf/file.h"
#include "models/tokenizer.h"

namespace anvil::models {

namespace {

constexpr std::string_view kTemplateKey = "tokenizer.chat_template";

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// Jinja's `trim` filter (Python str.strip()) for the whitespace that matters in chat text.
constexpr std::string_view kSpace = " \t\n\r\f\v";
std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(kSpace) - b + 1));
}
std::string_view lstrip_nl(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view rstrip_nl(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

// Reads a Jinja string literal's body starting at `pos` (just past the opening quote or at any
// point inside it) up to `stop` or the closing quote. Returns the unescaped text when `stop` came
// first, nullopt when the literal ended (the text is not a plain literal up to `stop`).
std::optional<std::string> literal_until(std::string_view t, size_t pos, std::string_view stop) {
  std::string out;
  while (pos < t.size()) {
    if (t.substr(pos, stop.size()) == stop) return out;
    const char c = t[pos];
    if (c == '\'' || c == '"') return std::nullopt;
    if (c == '\\' && pos + 1 < t.size()) {
      const char e = t[pos + 1];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      pos += 2;
      continue;
    }
    out += c;
    ++pos;
  }
  return std::nullopt;
}

// ChatML default system prompt: the first literal "<|im_start|>system\n...<|im_end|>" in the
// template whose body is plain text (Qwen2, Qwen2.5, SmolLM write theirs this way).
std::string find_default_system(std::string_view t) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  for (size_t at = t.find(kOpen); at != std::string_view::npos; at = t.find(kOpen, at + 1)) {
    size_t p = at + kOpen.size();
    if (t.substr(p, 2) == "\\n") p += 2;  // escaped newline inside the Jinja literal
    else if (p < t.size() && t[p] == '\n') p += 1;
    else continue;
    if (auto body = literal_until(t, p, "<|im_end|>"); body && !body->empty()) return *body;
  }
  return {};
}

// Gemma 3: the literal after "messages[0]['content'] + '" in the first_user_prefix assignment.
std::string find_gemma_separator(std::string_view t) {
  constexpr std::string_view kSet = "set first_user_prefix = messages[0]['content'] + ";
  const size_t at = t.find(kSet);
  if (at == std::string_view::npos) return "\n\n";
  size_t p = at + kSet.size();
  if (p >= t.size() || (t[p] != '\'' && t[p] != '"')) return "\n\n";
  const std::string_view quote = t.substr(p, 1);
  auto body = literal_until(t, p + 1, quote);
  return body ? *body : "\n\n";
}

// Llama 3.1: `set date_string = "26 Jul 2024"`.
std::string find_fixed_date(std::string_view t) {
  constexpr std::string_view kSet = "set date_string = \"";
  const size_t at = t.find(kSet);
  if (at == std::string_view::npos) return "26 Jul 2024";
  auto body = literal_until(t, at + kSet.size(), "\"");
  return body ? *body : "26 Jul 2024";
}

std::string today_date() {
  // HF's strftime_now("%d %b %Y"): local time, C-locale month abbreviations.
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d %s %04d", tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900);
  return buf;
}

std::optional<ChatFamily> family_from_text(std::string_view t) {
  if (contains(t, "<|im_start|>")) return ChatFamily::chatml;
  if (contains(t, "<start_of_turn>")) return ChatFamily::gemma;
  if (contains(t, "<|start_header_id|>")) return ChatFamily::llama3;
  if (contains(t, "<|user|>") && contains(t, "<|end|>")) return ChatFamily::phi3;
  return std::nullopt;
}

std::optional<ChatFamily> family_from_vocab(const ChatVocab& v) {
  if (!v.has_token) return std::nullopt;
  if (v.has_token("<|im_start|>")) return ChatFamily::chatml;
  if (v.has_token("<start_of_turn>")) return ChatFamily::gemma;
  if (v.has_token("<|start_header_id|>")) return ChatFamily::llama3;
  if (v.has_token("<|user|>") && v.has_token("<|end|>")) return ChatFamily::phi3;
  return std::nullopt;
}

Status check_roles(const std::vector<ChatMessage>& m) {
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string& r = m[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      return make_error(StatusCode::invalid_argument, "chat: message ", i, " has role '", r,
                        "'; only system, user and assistant are supported");
  }
  return Status::ok();
}

}  // namespace

const char* chat_family_name(ChatFamily f) {
  switch (f) {
    case ChatFamily::chatml: return "chatml";
    case ChatFamily::gemma: return "gemma";
    case ChatFamily::llama3: return "llama3";
    case ChatFamily::phi3: return "phi3";
  }
  return "?";
}

Expected<ChatTemplate> ChatTemplate::detect(std::optional<std::string_view> text, const ChatVocab& vocab) {
  ChatTemplate t;
  t.bos_ = vocab.bos;
  t.eos_ = vocab.eos;
  std::optional<ChatFamily> fam;
  if (text) fam = family_from_text(*text);
  t.from_text_ = fam.has_value();
  if (!fam) {
    fam = family_from_vocab(vocab);
    if (!fam) {
      if (!text)
        return make_error(StatusCode::not_found, "chat: the model has no ", kTemplateKey,
                          " and its vocabulary has none of the chat markers anvil knows "
                          "(<|im_start|>, <start_of_turn>, <|start_header_id|>, <|user|>)");
      return make_error(StatusCode::unsupported, "chat: ", kTemplateKey,
                        " is not a ChatML, Gemma, Llama 3 or Phi-3 template and the vocabulary has none "
                        "of their markers");
    }
    if (text)
      log().warn("chat: {} is not a template anvil recognises; using the {} form because the vocabulary "
                 "has its markers",
                 kTemplateKey, chat_family_name(*fam));
  }
  t.family_ = *fam;
  const std::string_view s = (text && t.from_text_) ? *text : std::string_view{};
  switch (t.family_) {
    case ChatFamily::chatml:
      t.stop_strings_ = {"<|im_end|>"};
      t.default_system_ = find_default_system(s);
      t.qwen3_reasoning_ = contains(s, "</think>") && contains(s, "last_query_index");
      t.has_thinking_switch_ = contains(s, "enable_thinking");
      break;
    case ChatFamily::gemma:
      t.stop_strings_ = {"<end_of_turn>"};
      // Gemma 2's template raises on a system message; Gemma 3's folds it (first_user_prefix).
      t.system_folds_ = s.empty() || contains(s, "first_user_prefix");
      t.first_user_sep_ = find_gemma_separator(s);
      break;
    case ChatFamily::llama3:
      t.stop_strings_ = {"<|eot_id|>"};
      t.date_header_ = contains(s, "Cutting Knowledge Date");
      t.date_string_ = contains(s, "strftime_now") ? today_date() : find_fixed_date(s);
      break;
    case ChatFamily::phi3:
      t.stop_strings_ = {"<|end|>"};
      t.phi3_system_ = s.empty() || contains(s, "<|system|>");
      t.phi3_gen_prompt_ = s.empty() || contains(s, "add_generation_prompt");
      t.bos_in_text_ = !s.empty() && contains(s, "bos_token");
      break;
  }
  if (t.bos_.empty()) t.bos_in_text_ = false;  // bos_token renders as "" when there is none
  return t;
}

Expected<ChatTemplate> ChatTemplate::from_gguf(const gguf::File& file, const Tokenizer& tok) {
  std::optional<std::string> text;
  if (file.has(kTemplateKey)) {
    auto s = file.get_string(kTemplateKey);
    if (!s) return s.status();
    text = std::move(*s);
  }
  ChatVocab vocab;
  vocab.has_token = [&tok](std::string_view piece) { return tok.find_token(piece).has_value(); };
  if (tok.bos() >= 0) vocab.bos = tok.token_text(tok.bos());
  if (tok.eos() >= 0) vocab.eos = tok.token_text(tok.eos());
  auto t = detect(text ? std::optional<std::string_view>(*text) : std::nullopt, vocab);
  if (!t) return t.status();
  for (const std::string& s : t->stop_strings_)
    if (auto id = tok.find_token(s)) t->stop_tokens_.push_back(*id);
  return t;
}

Expected<RenderedChat> ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool gen) const {
  ANVIL_RETURN_IF_ERROR(check_roles(messages));
  switch (family_) {
    case ChatFamily::chatml: return render_chatml(messages, gen);
    case ChatFamily::gemma: return render_gemma(messages, gen);
    case ChatFamily::llama3: return render_llama3(messages, gen);
    case ChatFamily::phi3: return render_phi3(messages, gen);
  }
  return make_error(StatusCode::internal, "chat: unknown family");
}

Expected<RenderedChat> ChatTemplate::render_chatml(const std::vector<ChatMessage>& m, bool gen) const {
  RenderedChat r;
  std::string& out = r.text;
  auto turn = [&out](std::string_view role, std::string_view content) {
    out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
  };
  if (!default_system_.empty() && (m.empty() || m[0].role != "system")) turn("system", default_system_);

  // Qwen3: reasoning is kept only on assistant turns after the last user message.
  size_t last_query = m.empty() ? 0 : m.size() - 1;
  for (size_t i = m.size(); i-- > 0;)
    if (m[i].role == "user") {
      last_query = i;
      break;
    }
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].role != "assistant" || !qwen3_reasoning_) {
      turn(m[i].role, m[i].content);
      continue;
    }
    std::string_view content = m[i].content;
    std::string_view reasoning;
    if (const size_t close = content.find("</think>"); close != std::string_view::npos) {
      std::string_view before = rstrip_nl(content.substr(0, close));
      if (const size_t open = before.rfind("<think>"); open != std::string_view::npos)
        before = before.substr(open + 7);
      reasoning = lstrip_nl(before);
      content = lstrip_nl(content.substr(content.rfind("</think>") + 8));
    }
    out.append("<|im_start|>assistant\n");
    if (i > last_query && (i + 1 == m.size() || !reasoning.empty())) {
      out.append("<think>\n").append(lstrip_nl(rstrip_nl(reasoning))).append("\n</think>\n\n");
      out.append(lstrip_nl(content));
    } else {
      out.append(content);
    }
    out.append("<|im_end|>\n");
  }
  if (gen) {
    out.append("<|im_start|>assistant\n");
    if (has_thinking_switch_ && !enable_thinking_) out.append("<think>\n\n</think>\n\n");
  }
  return r;
}

Expected<RenderedChat> ChatTemplate::render_gemma(const std::vector<ChatMessage>& m, bool gen) const {
  RenderedChat r;
  r.text = bos_;
  r.has_bos = !bos_.empty();
  size_t first = 0;
  std::string prefix;
  if (!m.empty() && m[0].role == "system") {
    if (!system_folds_)
      return make_error(StatusCode::invalid_argument, "chat: this Gemma template does not support a system message");
    prefix = m[0].content + first_user_sep_;
    first = 1;
  }
  for (size_t i = first; i < m.size(); ++i) {
    const bool want_user = (i - first) % 2 == 0;
    if ((m[i].role == "user") != want_user || m[i].role == "system")
      return make_error(StatusCode::invalid_argument,
                        "chat: Gemma conversations must alternate user/assistant/user/... (message ", i, " is '",
                        m[i].role, "')");
    const char* role = m[i].role == "assistant" ? "model" : "user";
    r.text.append("<start_of_turn>").append(role).append("\n");
    if (i == first) r.text.append(prefix);
    r.text.append(trim(m[i].content)).append("<end_of_turn>\n");
  }
  if (gen) r.text.append("<start_of_turn>model\n");
  return r;
}

Expected<RenderedChat> ChatTemplate::render_llama3(const std::vector<ChatMessage>& m, bool gen) const {
  RenderedChat r;
  std::string& out = r.text;
  auto turn = [&out](std::string_view role, std::string_view content) {
    out.append("<|start_header_id|>").append(role).append("<|end_header_id|>\n\n");
    out.append(trim(content)).append("<|eot_id|>");
  };
  size_t first = 0;
  if (date_header_) {
    // 3.1+: the system header is always there; the conversation's system text goes at its end.
    out = bos_;
    std::string system;
    if (!m.empty() && m[0].role == "system") {
      system = trim(m[0].content);
      first = 1;
    }
    out.append("<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ")
        .append(date_string_)
        .append("\n\n")
        .append(system)
        .append("<|eot_id|>");
  } else if (!m.empty()) {
    out = bos_;  // 3.0 puts bos_token in front of the first message only
  }
  r.has_bos = !bos_.empty() && !out.empty();
  for (size_t i = first; i < m.size(); ++i) turn(m[i].role, m[i].content);
  if (gen) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return r;
}

Expected<RenderedChat> ChatTemplate::render_phi3(const std::vector<ChatMessage>& m, bool gen) const {
  RenderedChat r;
  std::string& out = r.text;
  if (bos_in_text_) {
    out = bos_;
    r.has_bos = true;
  }
  if (phi3_gen_prompt_) {
    // Phi-3.5 form: every role opens its own block; the prompt ends with the assistant's opening
    // or, without it, with EOS.
    for (const ChatMessage& msg : m) {
      if (msg.role == "system" && (!phi3_system_ || msg.content.empty())) continue;
      out.append("<|").append(msg.role).append("|>\n").append(msg.content).append("<|end|>\n");
    }
    out.append(gen ? "<|assistant|>\n" : eos_);
    return r;
  }
  // Original Phi-3 form: the assistant opening follows every user turn; system turns are not
  // rendered by that template at all.
  for (const ChatMessage& msg : m) {
    if (msg.role == "user") {
      out.append("<|user|>\n").append(msg.content).append("<|end|>\n<|assistant|>\n");
    } else if (msg.role == "assistant") {
      out.append(msg.content).append("<|end|>\n");
    } else if (phi3_system_) {
      out.append("<|system|>\n").append(msg.content).append("<|end|>\n");
    } else {
      log().warn("chat: this Phi-3 template has no system role; the system message is left out");
    }
  }
  return r;
}

}  // namespace anvil::models
