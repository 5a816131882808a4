// bench-e2e: end-to-end throughput of a model file on a backend, like llama-bench.
//   pp<P>:   prompt processing, P tokens in one session (prefix caching off), tokens/s
//   tg<N>:   generation, N single-token decode steps after a short prompt, tokens/s
//   tg<N>@B: B sessions decoding together (one step carries B tokens), aggregate tokens/s
// Token ids are random (seeded): throughput, not text quality. Median and spread over -r runs.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/cli.h"
#include "core/engine.h"
#include "core/session.h"

namespace {

using namespace anvil;
using clock_type = std::chrono::steady_clock;

struct Result {
  std::string test;
  int32_t n_tokens = 0;
  std::vector<double> tps;  // one per repetition
  StepPhases phases;        // tg tests: Engine::step's phases over the measured repetitions
  double median() const {
    auto v = tps;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  double stddev() const {
    double m = 0, s = 0;
    for (double x : tps) m += x;
    m /= double(tps.size());
    for (double x : tps) s += (x - m) * (x - m);
    return std::sqrt(s / double(tps.size()));
  }
};

std::vector<int32_t> random_tokens(std::mt19937& rng, int32_t n_vocab, int32_t n) {
  std::uniform_int_distribution<int32_t> d(0, n_vocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = d(rng);
  return t;
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Fails loudly: a benchmark that silently measured an error would be worse than none.
template <typename T>
T must(Expected<T> e, const char* what) {
  if (!e) {
    std::fprintf(stderr, "bench-e2e: %s: %s\n", what, e.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(*e);
}

Result bench_pp(Engine& engine, int32_t n_prompt, int reps, std::mt19937& rng) {
  Result r{"pp" + std::to_string(n_prompt), n_prompt, {}};
  for (int i = 0; i < reps + 1; ++i) {  // first run warms caches and the tuner
    auto s = must(engine.new_session({.temperature = 0}), "new session");
    const auto prompt = random_tokens(rng, engine.n_vocab(), n_prompt);
    const auto t0 = clock_type::now();
    must(s->prefill(prompt), "prefill");
    if (i > 0) r.tps.push_back(n_prompt / seconds_since(t0));
  }
  return r;
}

Result bench_tg(Engine& engine, int32_t n_gen, int32_t batch, int reps, std::mt19937& rng) {
  Result r{"tg" + std::to_string(n_gen) + (batch > 1 ? "@" + std::to_string(batch) : ""), n_gen * batch, {}};
  for (int i = 0; i < reps + 1; ++i) {
    std::vector<std::unique_ptr<Session>> sessions;
    for (int b = 0; b < batch; ++b) {
      sessions.push_back(must(engine.new_session({.temperature = 0}), "new session"));
      const auto prompt = random_tokens(rng, engine.n_vocab(), 8);
      must(sessions.back()->prefill(prompt), "prefill");
    }
    engine.reset_step_phases();
    const auto t0 = clock_type::now();
    for (int32_t t = 0; t < n_gen; ++t) {
      std::vector<SequenceWork> work(static_cast<size_t>(batch));
      for (int b = 0; b < batch; ++b) {
        work[size_t(b)].session = sessions[size_t(b)].get();
        work[size_t(b)].tokens = random_tokens(rng, engine.n_vocab(), 1);
      }
      if (Status st = engine.run(work); !st.is_ok()) {
        std::fprintf(stderr, "bench-e2e: decode step: %s\n", st.to_string().c_str());
        std::exit(1);
      }
    }
    if (i > 0) {
      r.tps.push_back(double(n_gen) * batch / seconds_since(t0));
      r.phases += engine.step_phases();
    }
  }
  return r;
}

// Where a tg test's step time goes (Engine::step's phases), in ms per step.
void print_phases(const Result& r) {
  const StepPhases& p = r.phases;
  if (p.steps == 0) return;
  const double k = 1e3 / double(p.steps);
  std::printf("%s, ms per step (%lld steps): prepare %.3f, forward %.3f, logits to host %.3f, sample %.3f, "
              "commit %.3f; total %.3f\n",
              r.test.c_str(), static_cast<long long>(p.steps), p.prepare_s * k, p.forward_s * k, p.logits_s * k,
              p.sample_s * k, p.commit_s * k, p.total_s() * k);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench-e2e: prompt processing (pp) and generation (tg) tokens/s of a model, like llama-bench"};
  std::string model, backend = "auto", json_path;
  std::vector<int32_t> pps = {512}, tgs = {128}, batches = {1};
  int reps = 3, threads = 0;
  bool phases = false;
  app.add_option("-m,--model", model, "GGUF model file")->required()->check(CLI::ExistingFile);
  app.add_option("--backend", backend, tools::backend_help())->check(tools::backend_validator());
  app.add_option("-p,--n-prompt", pps, "Prompt lengths for pp tests (0 to skip)");
  app.add_option("-n,--n-gen", tgs, "Generated tokens for tg tests (0 to skip)");
  app.add_option("-b,--batch", batches, "Concurrent sessions for tg tests (aggregate tokens/s)");
  app.add_option("-r,--reps", reps, "Repetitions (after one warm-up)")->check(CLI::PositiveNumber);
  app.add_option("-t,--threads", threads, "CPU threads (0: all)");
  app.add_option("--json", json_path, "Also write the results as JSON");
  app.add_flag("--phases", phases,
               "Also print where tg steps spend their time (forward pass, logits copy, sampling, bookkeeping); "
               "synchronizes after each forward pass, so tg figures drop slightly");
  CLI11_PARSE(app, argc, argv);

  int32_t max_b = *std::max_element(batches.begin(), batches.end());
  int32_t max_ctx = 16;
  for (int32_t p : pps) max_ctx = std::max(max_ctx, p);
  for (int32_t n : tgs) max_ctx = std::max(max_ctx, n + 8);
  EngineOptions opt;
  opt.backend = backend;
  opt.n_threads = threads;
  opt.n_ctx = max_ctx;
  opt.n_parallel = std::max<int32_t>(max_b, 1);
  opt.prefix_caching = false;  // random prompts never share, and pp must compute every token
  opt.max_step_tokens = std::max<int32_t>(512, max_b);
  opt.profile_steps = phases;
  std::fprintf(stderr, "loading %s...\n", model.c_str());
  auto engine = must(Engine::open(model, opt), "open");

  std::mt19937 rng(1234);
  std::vector<Result> results;
  for (int32_t p : pps)
    if (p > 0) results.push_back(bench_pp(*engine, p, reps, rng));
  for (int32_t n : tgs)
    for (int32_t b : batches)
      if (n > 0 && b > 0) results.push_back(bench_tg(*engine, n, b, reps, rng));

  const auto& hp = engine->hparams();
  backend = engine->backend().name();
  std::printf("| model | arch | backend | threads | test | t/s |\n|---|---|---|---:|---|---:|\n");
  for (const auto& r : results)
    std::printf("| %s | %s | %s | %d | %s | %.2f ± %.2f |\n", model.substr(model.find_last_of('/') + 1).c_str(),
                hp.arch_name.c_str(), backend.c_str(), threads, r.test.c_str(), r.median(), r.stddev());
  if (phases)
    for (const auto& r : results) print_phases(r);
  if (!json_path.empty()) {
    nlohmann::json j;
    j["model"] = model;
    j["arch"] = hp.arch_name;
    j["backend"] = backend;
    j["threads"] = threads;
    for (const auto& r : results)
      j["results"].push_back({{"test", r.test}, {"tokens_per_s", r.median()}, {"stddev", r.stddev()}, {"runs", r.tps}});
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return 0;
}
