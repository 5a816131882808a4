// anvil generate -m FILE -p TEXT -n N [sampling options] [--backend cpu] [--threads N]
//
// Tokenizes the prompt (BOS as the model asks, special tokens recognised), generates up to N
// tokens, streams the text to stdout and prints prompt and generation speed to stderr.
#include <cstdio>
#include <memory>
#include <string>

#include "anvil/commands.h"
#include "anvil/engine_cli.h"
#include "common/cli.h"

namespace anvil::tools {
namespace {

struct GenerateOptions {
  ModelCliOptions model;
  SamplingParams sampling;
  int64_t seed = -1;
  std::string prompt;
  int n_predict = 64;
  bool no_special = false;
  bool echo = false;
};

int run_generate(const GenerateOptions& o) {
  const SamplingParams sp = resolve_seed(o.sampling, o.seed, o.model.quiet);
  std::unique_ptr<Engine> engine = open_engine_or_fail(o.model);
  const models::Tokenizer& tok = tokenizer_or_fail(*engine);
  const std::vector<int32_t> prompt = tok.encode(o.prompt, /*add_special=*/true, /*parse_special=*/!o.no_special);
  if (prompt.empty()) fail("the prompt is empty (and the model adds no BOS)");
  const int32_t n_ctx = engine->options().n_ctx;
  if (int64_t(prompt.size()) + o.n_predict > n_ctx)
    fail("the prompt (" + std::to_string(prompt.size()) + " tokens) plus -n " + std::to_string(o.n_predict) +
         " exceeds the context (" + std::to_string(n_ctx) + " tokens; raise --ctx)");

  auto session = engine->new_session(sp);
  check(session.status(), "sampling options");
  if (o.echo) std::fputs(o.prompt.c_str(), stdout);
  TextStream stream(tok);
  auto stats = (*session)->generate(prompt, o.n_predict, [&](int32_t id) {
    const std::string text = stream.push(id);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  const std::string rest = stream.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  check(stats.status(), "generate");

  if (!o.model.quiet) {
    auto rate = [](int32_t n, double s) { return s > 0 ? n / s : 0.0; };
    std::fprintf(stderr, "prompt: %d tokens in %.3f s (%.2f tokens/s)\n", stats->n_prompt, stats->prompt_seconds,
                 rate(stats->n_prompt, stats->prompt_seconds));
    std::fprintf(stderr, "generation: %d tokens in %.3f s (%.2f tokens/s)%s\n", stats->n_generated,
                 stats->generate_seconds, rate(stats->n_generated, stats->generate_seconds),
                 stats->stopped_at_eog ? ", stopped at end of generation" : "");
  }
  return kExitOk;
}

}  // namespace

CommandAction setup_generate(CLI::App& cmd) {
  auto o = std::make_shared<GenerateOptions>();
  cmd.footer("Text goes to stdout as it is generated; load and speed messages go to stderr.");
  add_model_options(cmd, o->model, "Context size in tokens (default: the model's, at most 4096)");
  cmd.add_option("-p,--prompt", o->prompt, "Prompt text")->required();
  cmd.add_option("-n,--n-predict", o->n_predict, "Tokens to generate at most")->check(CLI::Range(0, 1 << 24))
      ->capture_default_str();
  add_sampling_options(cmd, o->sampling, o->seed, o->model);
  cmd.add_flag("--no-special", o->no_special, "Treat special-token text in the prompt as plain text");
  cmd.add_flag("--echo", o->echo, "Print the prompt before the generated text");
  return [o] { return run_generate(*o); };
}

}  // namespace anvil::tools
