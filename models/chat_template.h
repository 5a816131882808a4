// Chat templates: the prompt text a chat model was trained on, for the families anvil runs.
//
//   auto tmpl = models::ChatTemplate::from_gguf(file, tokenizer);          // Expected<ChatTemplate>
//   auto r = tmpl->apply({{"system", "Be brief."}, {"user", "Hi"}}, /*add_generation_prompt=*/true);
//   auto ids = tokenizer.encode(r->text, /*add_special=*/!r->has_bos, /*parse_special=*/true);
//
// The GGUF key tokenizer.chat_template holds a Jinja program; anvil does not run Jinja. It
// recognises the family by a distinctive substring and renders that family in C++, reproducing
// what HF's apply_chat_template produces for plain system/user/assistant conversations:
//   ChatML   "<|im_start|>"          Qwen2/2.5/3, SmolLM. A default system prompt written in the
//                                    template (Qwen2.5's "You are Qwen, created by Alibaba Cloud.
//                                    ...") is read from the template text and used when the
//                                    conversation has none. Templates with Qwen3's reasoning logic
//                                    drop <think> blocks from assistant turns before the last user
//                                    turn and honour enable_thinking.
//   Gemma    "<start_of_turn>"       BOS; assistant is "model"; contents trimmed; Gemma 3 folds a
//                                    leading system message into the first user turn, Gemma 2
//                                    rejects it; roles must alternate user/assistant.
//   Llama 3  "<|start_header_id|>"   BOS; contents trimmed; the 3.1+ form always opens with a system
//                                    header carrying "Cutting Knowledge Date" / "Today Date".
//   Phi-3    "<|user|>" + "<|end|>"  the template llama.cpp's phi-3 vocab carries (and the 3.5 form
//                                    with <|system|> and add_generation_prompt).
// Without a template the family comes from the vocabulary (<|im_start|> first, then the others'
// markers); without either it is not_found naming tokenizer.chat_template. An unrecognised
// template falls back the same way with a logged warning. Tools, images and other roles are not
// supported (invalid_argument).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace anvil::gguf {
class File;
}

namespace anvil::models {

class Tokenizer;

enum class ChatFamily { chatml, gemma, llama3, phi3 };
const char* chat_family_name(ChatFamily f);  // "chatml", "gemma", "llama3", "phi3"

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct RenderedChat {
  std::string text;
  // The text already starts with the BOS token's spelling (Gemma, Llama 3, Phi-3): encode it with
  // add_special = false (and parse_special = true) so BOS is not added twice.
  bool has_bos = false;
};

// What detection needs from a vocabulary; from_gguf builds it from the Tokenizer.
struct ChatVocab {
  std::function<bool(std::string_view)> has_token;  // by stored spelling
  std::string bos;  // BOS spelling ("" when the vocabulary has none)
  std::string eos;
};

class ChatTemplate {
 public:
  // Reads tokenizer.chat_template (absent is fine when the vocabulary identifies the family).
  static Expected<ChatTemplate> from_gguf(const gguf::File& file, const Tokenizer& tokenizer);
  // The detection from_gguf runs; template_text nullopt = no template in the file.
  static Expected<ChatTemplate> detect(std::optional<std::string_view> template_text, const ChatVocab& vocab);

  // The prompt for `messages`; with add_generation_prompt it ends with the assistant turn's opening.
  // invalid_argument for roles other than system/user/assistant, and where the model's own
  // template raises (Gemma: roles not alternating, a system message in Gemma 2).
  Expected<RenderedChat> apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  ChatFamily family() const { return family_; }
  // True when the family was recognised from the template text, false when from the vocabulary.
  bool from_template_text() const { return from_text_; }
  // Text that ends the assistant's turn ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>").
  const std::vector<std::string>& stop_strings() const { return stop_strings_; }
  // Their token ids (those the vocabulary has; filled by from_gguf, empty after detect()).
  const std::vector<int32_t>& stop_tokens() const { return stop_tokens_; }
  // The system prompt used when the conversation has none ("" when the template adds none).
  const std::string& default_system_prompt() const { return default_system_; }

  // Qwen3-style templates: false appends an empty <think></think> block to the generation prompt.
  void set_enable_thinking(bool on) { enable_thinking_ = on; }
  // Llama 3.1+: the "Today Date:" line. Defaults to today (the template calls strftime_now, which
  // HF provides) or the template's fixed date ("26 Jul 2024").
  void set_date_string(std::string date) { date_string_ = std::move(date); }

 private:
  ChatTemplate() = default;
  Expected<RenderedChat> render_chatml(const std::vector<ChatMessage>& m, bool gen) const;
  Expected<RenderedChat> render_gemma(const std::vector<ChatMessage>& m, bool gen) const;
  Expected<RenderedChat> render_llama3(const std::vector<ChatMessage>& m, bool gen) const;
  Expected<RenderedChat> render_phi3(const std::vector<ChatMessage>& m, bool gen) const;

  ChatFamily family_ = ChatFamily::chatml;
  bool from_text_ = false;
  std::string bos_, eos_;
  std::vector<std::string> stop_strings_;
  std::vector<int32_t> stop_tokens_;
  std::string default_system_;   // ChatML
  bool qwen3_reasoning_ = false;  // ChatML: Qwen3's <think> handling
  bool has_thinking_switch_ = false;
  bool enable_thinking_ = true;
  std::string first_user_sep_ = "\n\n";  // Gemma 3: between the folded system text and the user text
  bool system_folds_ = true;             // Gemma: 3 folds, 2 rejects
  bool date_header_ = false;             // Llama 3.1+
  std::string date_string_;
  bool phi3_system_ = false;             // Phi-3: template renders <|system|>
  bool phi3_gen_prompt_ = false;         // Phi-3 3.5 form: explicit generation prompt / eos
  bool bos_in_text_ = false;             // Phi-3: template starts with bos_token
};

}  // namespace anvil::models
