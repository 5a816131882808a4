// anvil perplexity -m FILE (-f TEXT | --tokens IDS) [--ctx N] [--stride S] [--chunks N]
//
// Two ways to cut the text, both reported as exp(mean negative log-likelihood) over the tokens
// scored:
//   default (llama.cpp's llama-perplexity): non-overlapping chunks of N tokens; in each chunk
//     only the second half is scored — tokens at chunk positions N/2 + 1 .. N - 1, each given all
//     the chunk's tokens before it — so every scored token has at least N/2 tokens of context.
//     With -f and a model that adds BOS, each chunk's first token is replaced by BOS, as
//     llama-perplexity does. Scored per chunk: N - 1 - N/2.
//   --stride S (Hugging Face's "strided" perplexity): windows of N tokens starting every S
//     tokens; each window scores the tokens the previous one did not (the first window every
//     token after its first), until the window reaches the end of the text. With -f and a model
//     that adds BOS, BOS is put in front of the text once.
// --tokens feeds ids exactly as given in both modes (no BOS handling).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "anvil/commands.h"
#include "anvil/engine_cli.h"
#include "common/cli.h"

namespace anvil::tools {
namespace {

struct PerplexityOptions {
  ModelCliOptions model;
  std::string file;
  std::string tokens;
  int stride = 0;
  int max_chunks = 0;
};

struct Window {
  size_t begin, end;  // tokens [begin, end) are fed
  size_t score_from;  // tokens [score_from, end) are scored (score_from > begin)
};

std::vector<Window> plan_windows(size_t n_tokens, size_t ctx, size_t stride) {
  std::vector<Window> w;
  if (stride == 0) {
    for (size_t b = 0; b + ctx <= n_tokens; b += ctx) w.push_back({b, b + ctx, b + ctx / 2 + 1});
    return w;
  }
  size_t prev_end = 0;
  for (size_t b = 0; b + 1 < n_tokens; b += stride) {
    const size_t e = std::min(b + ctx, n_tokens);
    w.push_back({b, e, std::max(prev_end, b + 1)});
    prev_end = e;
    if (e == n_tokens) break;
  }
  return w;
}

int run_perplexity(PerplexityOptions o) {
  if (o.file.empty() == o.tokens.empty()) fail("give exactly one of -f FILE and --tokens IDS");
  const size_t ctx = size_t(o.model.ctx > 0 ? o.model.ctx : 512);
  if (ctx < 2) fail("--ctx must be at least 2");
  if (o.stride < 0 || size_t(o.stride) > ctx) fail("--stride must be in 1..--ctx");
  std::vector<int32_t> ids;
  if (!o.tokens.empty()) ids = parse_token_list(o.tokens);

  EngineOptions eo;
  eo.n_ctx = int32_t(ctx);
  eo.prefix_caching = false;  // every token's logits are needed: nothing would be reused
  std::unique_ptr<Engine> engine = open_engine_or_fail(o.model, eo);
  int32_t bos = -1;
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) fail(fmt::format("cannot open '{}'", o.file));
    std::stringstream ss;
    ss << in.rdbuf();
    const models::Tokenizer& tok = tokenizer_or_fail(*engine);
    ids = tok.encode(ss.str(), /*add_special=*/false, /*parse_special=*/false);
    if (tok.add_bos() && tok.bos() >= 0) bos = tok.bos();
    if (o.stride > 0 && bos >= 0) ids.insert(ids.begin(), bos);
  }
  std::vector<Window> windows = plan_windows(ids.size(), ctx, size_t(o.stride));
  if (o.max_chunks > 0 && windows.size() > size_t(o.max_chunks)) windows.resize(size_t(o.max_chunks));
  if (windows.empty())
    fail(fmt::format("{} tokens are too few for --ctx {} (need at least {})", ids.size(), ctx, o.stride ? 2 : ctx));

  auto session = engine->new_session({.temperature = 0});
  check(session.status(), "session");
  double nll = 0;
  size_t n_scored = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t c = 0; c < windows.size(); ++c) {
    const Window& w = windows[c];
    std::vector<int32_t> chunk(ids.begin() + std::ptrdiff_t(w.begin), ids.begin() + std::ptrdiff_t(w.end));
    if (o.stride == 0 && bos >= 0) chunk[0] = bos;
    (*session)->reset();
    check((*session)->prefill(std::span(chunk).first(1)).status(), "forward");
    auto lp = (*session)->loglikelihood(std::span(chunk).subspan(1));
    check(lp.status(), "forward");
    for (size_t t = w.score_from; t < w.end; ++t) nll -= (*lp)[t - w.begin - 1];
    n_scored += w.end - w.score_from;
    if (!o.model.quiet)
      std::fprintf(stderr, "[%zu/%zu] running perplexity %.4f\n", c + 1, windows.size(), std::exp(nll / double(n_scored)));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("perplexity: %.6f (%zu tokens scored in %zu %s of %zu tokens, %s)\n", std::exp(nll / double(n_scored)),
              n_scored, windows.size(), o.stride ? "windows" : "chunks", ctx,
              o.stride ? fmt::format("stride {}", o.stride).c_str() : "second half of each chunk");
  if (!o.model.quiet)
    std::fprintf(stderr, "%.2f s, %.2f tokens/s\n", seconds, seconds > 0 ? double(windows.size() * ctx) / seconds : 0.0);
  return kExitOk;
}

}  // namespace

CommandAction setup_perplexity(CLI::App& cmd) {
  auto o = std::make_shared<PerplexityOptions>();
  cmd.footer(
      "Default (as llama.cpp's llama-perplexity): non-overlapping chunks of --ctx tokens, each scoring its second "
      "half (positions ctx/2+1 .. ctx-1), the first token of each chunk replaced by BOS when the model adds one. "
      "--stride S: windows of --ctx tokens every S tokens, each scoring the tokens the previous window did not "
      "(Hugging Face's strided perplexity). --tokens feeds ids exactly as given.");
  add_model_options(cmd, o->model, "Tokens per chunk / window (default 512)");
  cmd.add_option("-f,--file", o->file, "Text file to score");
  cmd.add_option("--tokens", o->tokens, "Comma-separated token ids to score instead of a file");
  cmd.add_option("--stride", o->stride, "Window step for strided perplexity (default: llama.cpp chunks)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--chunks", o->max_chunks, "Score at most this many chunks/windows (0: all)")
      ->check(CLI::NonNegativeNumber);
  return [o] { return run_perplexity(*o); };
}

}  // namespace anvil::tools
