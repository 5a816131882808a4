#include "anvil/engine_cli.h"

#include <chrono>
#include <cstdio>
#include <random>

#include <fmt/format.h>

#include "common/cli.h"
#include "models/tokenizer.h"

namespace anvil::tools {

void add_model_options(CLI::App& cmd, ModelCliOptions& o, const char* ctx_help) {
  cmd.add_option("-m,--model", o.model, "GGUF model file")->required();
  cmd.add_option("--backend", o.backend, backend_help())->check(backend_validator())->capture_default_str();
  cmd.add_option("--threads", o.threads, "CPU threads (0: all cores)")->check(CLI::Range(0, 1024))->capture_default_str();
  if (ctx_help) cmd.add_option("--ctx", o.ctx, ctx_help)->check(CLI::Range(1, 1 << 24));
  cmd.add_flag("-q,--quiet", o.quiet, "No load and speed messages on stderr");
}

void add_sampling_options(CLI::App& cmd, SamplingParams& p, int64_t& seed, ModelCliOptions& o) {
  cmd.add_option("--temp", p.temperature, "Temperature (0: greedy)")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd.add_option("--top-k", p.top_k, "Keep the k most likely tokens (0: off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd.add_option("--top-p", p.top_p, "Nucleus sampling mass (1: off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option("--min-p", p.min_p, "Drop tokens below min_p x the best one's probability (0: off)")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd.add_option("--repeat-penalty", p.repeat_penalty, "Penalty on recently seen tokens (1: off)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--repeat-last-n", p.repeat_last_n, "Tokens the penalties look back over (-1: all)")
      ->check(CLI::Range(-1, 1 << 30))->capture_default_str();
  cmd.add_option("--presence-penalty", p.presence_penalty, "Subtracted once from each recently seen token")
      ->capture_default_str();
  cmd.add_option("--frequency-penalty", p.frequency_penalty, "Subtracted per occurrence of a recently seen token")
      ->capture_default_str();
  cmd.add_option("--seed", seed, "Random seed (-1: random)")->capture_default_str();
  cmd.add_flag("--host-sampling", o.host_sampling,
               "Draw tokens on the host (default on a GPU: on the device; the same tokens either way)");
}

SamplingParams resolve_seed(SamplingParams p, int64_t seed, bool quiet) {
  if (seed < 0) {
    p.seed = std::random_device{}();
    if (!quiet) std::fprintf(stderr, "seed: %llu\n", static_cast<unsigned long long>(p.seed));
  } else {
    p.seed = uint64_t(seed);
  }
  check(validate(p), "sampling options");
  return p;
}

std::unique_ptr<Engine> open_engine_or_fail(const ModelCliOptions& o, EngineOptions e) {
  (void)open_gguf_or_fail(o.model);  // the same one-line reasons as every other command
  e.backend = o.backend;
  e.n_threads = o.threads;
  if (o.ctx > 0) e.n_ctx = o.ctx;
  if (o.host_sampling) e.backend_sampling = false;
  const auto t0 = std::chrono::steady_clock::now();
  size_t last_percent = 0;
  if (!o.quiet && stderr_is_tty()) {
    e.load.on_tensor = [&last_percent](size_t done, size_t total, const std::string&) {
      const size_t pct = total ? done * 100 / total : 100;
      if (pct != last_percent) std::fprintf(stderr, "\rloading: %3zu%%", pct);
      last_percent = pct;
    };
  }
  auto engine = Engine::open(o.model, e);
  if (!o.quiet && stderr_is_tty()) std::fprintf(stderr, "\r");
  if (!engine) fail(fmt::format("cannot load '{}': {}", o.model, engine.status().to_string()));
  if (!o.quiet) {
    const auto& hp = (*engine)->hparams();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "loaded %s: %s, %d layers, d %d, %d/%d heads x %d, vocab %d, on %s, in %.2f s\n",
                 o.model.c_str(), hp.arch_name.c_str(), hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim,
                 hp.n_vocab, (*engine)->backend().name().c_str(), s);
  }
  return std::move(*engine);
}

const models::Tokenizer& tokenizer_or_fail(const Engine& e) {
  if (!e.tokenizer()) fail("the model has no usable tokenizer: " + e.tokenizer_error());
  return *e.tokenizer();
}

std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    const auto b = item.find_first_not_of(" \t\n"), e = item.find_last_not_of(" \t\n");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < INT32_MIN || v > INT32_MAX)
      fail(fmt::format("--tokens: '{}' is not a token id (expected comma-separated integers)", item));
    ids.push_back(int32_t(v));
    i = j + 1;
  }
  if (ids.empty()) fail("--tokens: no token ids given");
  return ids;
}

namespace {
// Length of the longest prefix of s that does not end inside a UTF-8 character.
size_t complete_utf8_prefix(const std::string& s) {
  size_t n = s.size();
  // look at most 3 bytes back for the lead byte of a character that is still incomplete
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return len > back ? n - back : n;
  }
  return n;
}
}  // namespace

std::string TextStream::push(int32_t id) {
  pending_ += tok_.token_to_piece(id, /*render_special=*/false);
  const size_t n = complete_utf8_prefix(pending_);
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  return out;
}

std::string TextStream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace anvil::tools
