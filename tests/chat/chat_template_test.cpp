// Chat templates: detection from published template texts and rendering against the exact text
// HF's apply_chat_template gives for them. The expected strings below are written out from the
// templates' published form (and were checked once with jinja2, as HF renders them).
#include "models/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gguf/file.h"
#include "models/tokenizer.h"

namespace anvil::models {
namespace {

// ---- Published templates (tokenizer_config.json chat_template), abridged where they carry tool
// branches this renderer does not support; the parts detection reads are kept verbatim.

constexpr std::string_view kQwen25 = R"tmpl({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query." }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)tmpl";

constexpr std::string_view kQwen3 = R"tmpl({%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in message.content %}
            {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
            {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %})tmpl";

constexpr std::string_view kSmollm2 = R"tmpl({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %})tmpl";

constexpr std::string_view kGemma3 = R"tmpl({{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
)tmpl";

constexpr std::string_view kGemma2 = R"tmpl({{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %})tmpl";

constexpr std::string_view kLlama30 = R"tmpl({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>

'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>

' }}{% endif %})tmpl";

constexpr std::string_view kLlama31 = R"tmpl({{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)tmpl";

constexpr std::string_view kPhi35 = R"tmpl({% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'user' %}{{'<|user|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>
' + message['content'] + '<|end|>
'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>
' }}{% else %}{{ eos_token }}{% endif %})tmpl";

// llama.cpp's ggml-vocab-phi-3.gguf carries the original Phi-3-mini template.
constexpr std::string_view kPhi3 =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + "
    "message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') "
    "%}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}";

// A vocabulary probe: the listed spellings exist.
ChatVocab vocab_with(std::set<std::string> tokens, std::string bos = "", std::string eos = "") {
  ChatVocab v;
  v.has_token = [tokens = std::move(tokens)](std::string_view s) { return tokens.count(std::string(s)) > 0; };
  v.bos = std::move(bos);
  v.eos = std::move(eos);
  return v;
}

ChatTemplate make(std::string_view text, std::string bos = "", std::string eos = "") {
  auto t = ChatTemplate::detect(text, vocab_with({}, std::move(bos), std::move(eos)));
  EXPECT_TRUE(t.has_value()) << t.status().to_string();
  return std::move(t).value();
}

const std::vector<ChatMessage> kConv = {
    {"user", "Hello!"},
    {"assistant", "Hi there. How can I help?"},
    {"user", "  What is 2+2?\n"},  // surrounding whitespace: Gemma and Llama trim, ChatML keeps
};

std::vector<ChatMessage> with_system(std::vector<ChatMessage> m) {
  m.insert(m.begin(), {"system", "You are terse."});
  return m;
}

std::string render(const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen) {
  auto r = t.apply(m, gen);
  EXPECT_TRUE(r.has_value()) << r.status().to_string();
  return r.has_value() ? r->text : std::string();
}

TEST(ChatTemplate, DetectsFamiliesFromPublishedTemplates) {
  struct Case {
    std::string_view text;
    ChatFamily family;
  };
  const Case cases[] = {{kQwen25, ChatFamily::chatml}, {kQwen3, ChatFamily::chatml},  {kSmollm2, ChatFamily::chatml},
                        {kGemma3, ChatFamily::gemma},  {kGemma2, ChatFamily::gemma},  {kLlama30, ChatFamily::llama3},
                        {kLlama31, ChatFamily::llama3}, {kPhi3, ChatFamily::phi3},    {kPhi35, ChatFamily::phi3}};
  for (const Case& c : cases) {
    auto t = ChatTemplate::detect(c.text, vocab_with({}));
    ASSERT_TRUE(t.has_value()) << t.status().to_string();
    EXPECT_EQ(t->family(), c.family) << c.text.substr(0, 80);
    EXPECT_TRUE(t->from_template_text());
  }
  EXPECT_EQ(make(kQwen25).stop_strings(), std::vector<std::string>{"<|im_end|>"});
  EXPECT_EQ(make(kGemma3).stop_strings(), std::vector<std::string>{"<end_of_turn>"});
  EXPECT_EQ(make(kLlama31).stop_strings(), std::vector<std::string>{"<|eot_id|>"});
  EXPECT_EQ(make(kPhi3).stop_strings(), std::vector<std::string>{"<|end|>"});
}

TEST(ChatTemplate, DefaultSystemPromptComesFromTheTemplate) {
  EXPECT_EQ(make(kQwen25).default_system_prompt(), "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(make(kSmollm2).default_system_prompt(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(make(kQwen3).default_system_prompt(), "");
}

TEST(ChatTemplate, Qwen25) {
  const ChatTemplate t = make(kQwen25);
  EXPECT_EQ(render(t, with_system(kConv), true),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
            "<|im_start|>user\n  What is 2+2?\n<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(t, kConv, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
            "<|im_start|>user\n  What is 2+2?\n<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(t, {kConv[0], kConv[1]}, false),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n");
  EXPECT_FALSE(t.apply(kConv, true)->has_bos);
}

TEST(ChatTemplate, SmolLM2) {
  const ChatTemplate t = make(kSmollm2);
  EXPECT_EQ(render(t, kConv, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
            "<|im_start|>user\n  What is 2+2?\n<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Qwen3) {
  ChatTemplate t = make(kQwen3);
  EXPECT_EQ(render(t, with_system(kConv), true),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
            "<|im_start|>user\n  What is 2+2?\n<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(t, kConv, true),
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
            "<|im_start|>user\n  What is 2+2?\n<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Reasoning in history is dropped; a final assistant turn keeps a (possibly empty) think block.
  const std::vector<ChatMessage> think = {
      {"user", "Hello!"}, {"assistant", "<think>\nLet me greet.\n</think>\n\nHi there."}, {"user", "What is 2+2?"}};
  EXPECT_EQ(render(t, think, true),
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(t, {think[0], think[1]}, false),
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nLet me greet.\n</think>\n\nHi there.<|im_end|>\n");
  EXPECT_EQ(render(t, {kConv[0], kConv[1]}, false),
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\nHi there. How can I help?<|im_end|>\n");
  t.set_enable_thinking(false);
  EXPECT_EQ(render(t, think, true),
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, Gemma3FoldsSystemIntoFirstUserTurn) {
  const ChatTemplate t = make(kGemma3, "<bos>");
  auto r = t.apply(with_system(kConv), true);
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_TRUE(r->has_bos);
  EXPECT_EQ(r->text,
            "<bos><start_of_turn>user\nYou are terse.\n\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(render(t, kConv, true),
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(render(t, {kConv[0], kConv[1]}, false),
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n");
  // The template raises when roles do not alternate.
  auto bad = t.apply({{"user", "a"}, {"user", "b"}}, true);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.status().code(), StatusCode::invalid_argument);
  EXPECT_FALSE(t.apply({{"assistant", "a"}}, true).has_value());
}

TEST(ChatTemplate, Gemma3SeparatorIsReadFromTheTemplate) {
  // Some Gemma 3 GGUFs carry a template that joins system and user text with one newline.
  std::string one_nl(kGemma3);
  const std::string from = "messages[0]['content'] + '\\n\\n'";
  one_nl.replace(one_nl.find(from), from.size(), "messages[0]['content'] + '\\n'");
  EXPECT_EQ(render(make(one_nl, "<bos>"), {{"system", "S"}, {"user", "U"}}, true),
            "<bos><start_of_turn>user\nS\nU<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, Gemma2RejectsSystem) {
  const ChatTemplate t = make(kGemma2, "<bos>");
  EXPECT_EQ(t.apply(with_system(kConv), true).status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(render(t, kConv, true),
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there. How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
}

TEST(ChatTemplate, Llama30) {
  const ChatTemplate t = make(kLlama30, "<|begin_of_text|>");
  auto r = t.apply(with_system(kConv), true);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->has_bos);
  EXPECT_EQ(r->text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(t, kConv, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(t, {kConv[0], kConv[1]}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>");
}

TEST(ChatTemplate, Llama31DateHeader) {
  ChatTemplate t = make(kLlama31, "<|begin_of_text|>");
  EXPECT_EQ(render(t, with_system(kConv), true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(t, kConv, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  t.set_date_string("01 Jan 2030");
  EXPECT_NE(render(t, kConv, false).find("Today Date: 01 Jan 2030\n\n"), std::string::npos);
}

TEST(ChatTemplate, Phi3) {
  const ChatTemplate orig = make(kPhi3, "<s>", "<|endoftext|>");
  auto r = orig.apply(kConv, true);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->has_bos);
  EXPECT_EQ(r->text,
            "<s><|user|>\nHello!<|end|>\n<|assistant|>\nHi there. How can I help?<|end|>\n"
            "<|user|>\n  What is 2+2?\n<|end|>\n<|assistant|>\n");
  // The original template has no system role; HF's rendering leaves the message out.
  EXPECT_EQ(render(orig, with_system(kConv), true), r->text);
  const ChatTemplate p35 = make(kPhi35, "<s>", "<|endoftext|>");
  EXPECT_EQ(render(p35, with_system(kConv), true),
            "<|system|>\nYou are terse.<|end|>\n<|user|>\nHello!<|end|>\n"
            "<|assistant|>\nHi there. How can I help?<|end|>\n<|user|>\n  What is 2+2?\n<|end|>\n<|assistant|>\n");
  EXPECT_EQ(render(p35, {kConv[0], kConv[1]}, false),
            "<|user|>\nHello!<|end|>\n<|assistant|>\nHi there. How can I help?<|end|>\n<|endoftext|>");
}

TEST(ChatTemplate, FallbackByVocabulary) {
  // No template: ChatML when the vocabulary has <|im_start|>.
  auto t = ChatTemplate::detect(std::nullopt, vocab_with({"<|im_start|>", "<|im_end|>"}));
  ASSERT_TRUE(t.has_value()) << t.status().to_string();
  EXPECT_EQ(t->family(), ChatFamily::chatml);
  EXPECT_FALSE(t->from_template_text());
  EXPECT_EQ(render(*t, {{"user", "Hi"}}, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // An unknown template: same fallback (with a warning).
  const std::string_view alien = "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}";
  auto u = ChatTemplate::detect(alien, vocab_with({"<|im_start|>"}));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->family(), ChatFamily::chatml);
  EXPECT_FALSE(u->from_template_text());
  auto g = ChatTemplate::detect(alien, vocab_with({"<start_of_turn>"}, "<bos>"));
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->family(), ChatFamily::gemma);
  // Neither: errors that name the key.
  auto none = ChatTemplate::detect(std::nullopt, vocab_with({"<s>"}));
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.status().code(), StatusCode::not_found);
  EXPECT_NE(none.status().message().find("tokenizer.chat_template"), std::string::npos);
  auto unknown = ChatTemplate::detect(alien, vocab_with({}));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.status().code(), StatusCode::unsupported);
  EXPECT_NE(unknown.status().message().find("tokenizer.chat_template"), std::string::npos);
}

TEST(ChatTemplate, UnsupportedRoles) {
  auto r = make(kQwen25).apply({{"tool", "{}"}}, true);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::invalid_argument);
}

// Every vocab GGUF: those with a template load; those without fail with not_found naming the key
// unless the vocabulary identifies the family.
TEST(ChatTemplate, VocabFiles) {
  namespace fs = std::filesystem;
  const fs::path dir = ANVIL_VOCAB_DIR;
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no vocab dir " << dir;
  int with_template = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".gguf") continue;
    SCOPED_TRACE(entry.path().filename().string());
    auto file = gguf::File::open(entry.path().string());
    ASSERT_TRUE(file.has_value()) << file.status().to_string();
    auto tok = Tokenizer::from_gguf(*file);
    if (!tok) continue;  // the tokenizer tests cover vocabularies anvil cannot load
    auto t = ChatTemplate::from_gguf(*file, *tok);
    if (file->has("tokenizer.chat_template")) {
      ++with_template;
      ASSERT_TRUE(t.has_value()) << t.status().to_string();
      EXPECT_TRUE(t->from_template_text());
      EXPECT_FALSE(t->stop_tokens().empty());
    } else if (!t) {
      EXPECT_EQ(t.status().code(), StatusCode::not_found);
      EXPECT_NE(t.status().message().find("tokenizer.chat_template"), std::string::npos);
    }
    if (entry.path().filename() == "ggml-vocab-phi-3.gguf") {
      ASSERT_TRUE(t.has_value());
      EXPECT_EQ(t->family(), ChatFamily::phi3);
      ASSERT_EQ(t->stop_tokens().size(), 1u);
      EXPECT_EQ(tok->token_text(t->stop_tokens()[0]), "<|end|>");
      auto r = t->apply({{"user", "Hi"}}, true);
      ASSERT_TRUE(r.has_value());
      EXPECT_TRUE(r->has_bos);
      EXPECT_EQ(r->text, "<s><|user|>\nHi<|end|>\n<|assistant|>\n");
    }
  }
  EXPECT_GE(with_template, 1) << "expected ggml-vocab-phi-3.gguf to carry a chat template";
}

}  // namespace
}  // namespace anvil::models
