// anvil chat -m FILE [--system TEXT] [sampling options]
//
// A conversation on stdin/stdout: each line read is a user turn; the reply streams to stdout.
// The prompt comes from the model's chat template (models/chat_template.h). On a terminal a
// "> " prompt is shown on stderr; with stdin redirected it runs non-interactively, one reply per
// input line, and ends at end of input.
//
// Each turn re-renders the whole conversation; when the session's tokens are a prefix of it only
// the new tokens are computed, otherwise the session restarts and the prefix cache supplies the
// pages the conversations share.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "anvil/commands.h"
#include "anvil/engine_cli.h"
#include "common/cli.h"
#include "models/chat_template.h"

namespace anvil::tools {
namespace {

struct ChatOptions {
  ModelCliOptions model;
  SamplingParams sampling;
  int64_t seed = -1;
  std::string system;
  int n_predict = 512;
};

bool starts_with(const std::vector<int32_t>& a, const std::vector<int32_t>& prefix) {
  return prefix.size() <= a.size() && std::equal(prefix.begin(), prefix.end(), a.begin());
}

int run_chat(const ChatOptions& o) {
  const SamplingParams sp = resolve_seed(o.sampling, o.seed, o.model.quiet);
  std::unique_ptr<Engine> engine = open_engine_or_fail(o.model);
  const models::Tokenizer& tok = tokenizer_or_fail(*engine);
  auto tmpl = models::ChatTemplate::from_gguf(engine->file(), tok);
  check(tmpl.status(), "chat template");
  auto session_e = engine->new_session(sp);
  check(session_e.status(), "sampling options");
  Session& session = **session_e;
  const bool interactive = isatty(STDIN_FILENO) != 0;
  const auto& stops = tmpl->stop_tokens();

  std::vector<models::ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  std::string line;
  for (;;) {
    if (interactive) std::fputs("> ", stderr);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    messages.push_back({"user", line});
    auto rendered = tmpl->apply(messages, /*add_generation_prompt=*/true);
    check(rendered.status(), "chat template");
    const std::vector<int32_t> ids = tok.encode(rendered->text, !rendered->has_bos, /*parse_special=*/true);
    if (int64_t(ids.size()) + o.n_predict > engine->options().n_ctx)
      fail("the conversation (" + std::to_string(ids.size()) + " tokens) plus -n " + std::to_string(o.n_predict) +
           " no longer fits the context (" + std::to_string(engine->options().n_ctx) + " tokens; raise --ctx)");
    if (!starts_with(ids, session.tokens()) || session.tokens().size() == ids.size()) session.reset();
    const std::vector<int32_t> todo(ids.begin() + std::ptrdiff_t(session.tokens().size()), ids.end());

    std::string reply;
    TextStream stream(tok);
    auto stats = session.generate(todo, o.n_predict, [&](int32_t id) {
      if (std::find(stops.begin(), stops.end(), id) != stops.end()) return false;
      const std::string text = stream.push(id);
      reply += text;
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    reply += stream.flush();
    check(stats.status(), "generate");
    std::fputc('\n', stdout);
    std::fflush(stdout);
    for (const auto& s : tmpl->stop_strings())  // a stop marker spelled out as text ends the reply too
      if (auto p = reply.find(s); p != std::string::npos) reply.erase(p);
    messages.push_back({"assistant", reply});
    if (!o.model.quiet && !interactive)
      std::fprintf(stderr, "[%d prompt tokens, %d generated, %.2f tokens/s]\n", stats->n_prompt, stats->n_generated,
                   stats->generate_seconds > 0 ? stats->n_generated / stats->generate_seconds : 0.0);
  }
  return kExitOk;
}

}  // namespace

CommandAction setup_chat(CLI::App& cmd) {
  auto o = std::make_shared<ChatOptions>();
  cmd.footer(
      "Reads one user message per line from stdin and streams each reply to stdout. Interactive on a terminal "
      "(a '> ' prompt on stderr); with stdin redirected it answers each line and exits at end of input.");
  add_model_options(cmd, o->model, "Context size in tokens (default: the model's, at most 4096)");
  cmd.add_option("--system", o->system, "System prompt");
  cmd.add_option("-n,--n-predict", o->n_predict, "Tokens per reply at most")->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  add_sampling_options(cmd, o->sampling, o->seed, o->model);
  return [o] { return run_chat(*o); };
}

}  // namespace anvil::tools
