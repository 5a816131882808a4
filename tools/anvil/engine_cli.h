// What the model-running commands (generate, chat, logits, perplexity) share: the options that
// pick a model and a backend, the sampling options, opening an Engine with a load progress
// line, and streaming generated text without splitting UTF-8 characters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/engine.h"
#include "core/sampler.h"
#include "core/session.h"

namespace anvil::tools {

struct ModelCliOptions {
  std::string model;
  std::string backend = "auto";
  int threads = 0;
  int ctx = 0;  // 0: the command's default
  bool quiet = false;
  bool host_sampling = false;  // draw tokens on the host even on a GPU backend
};

// -m/--model (required), --backend, --threads, -q/--quiet; --ctx when ctx_help is given.
void add_model_options(CLI::App& cmd, ModelCliOptions& o, const char* ctx_help = nullptr);
// --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n --presence-penalty
// --frequency-penalty --seed (seed: -1 = random, printed unless quiet), --host-sampling.
void add_sampling_options(CLI::App& cmd, SamplingParams& p, int64_t& seed, ModelCliOptions& o);
SamplingParams resolve_seed(SamplingParams p, int64_t seed, bool quiet);

// Opens the model (a one-line error and exit 1 on any failure: missing file, not a GGUF,
// unknown architecture, missing tensor, ...). Prints what it loaded to stderr unless quiet.
std::unique_ptr<Engine> open_engine_or_fail(const ModelCliOptions& o, EngineOptions e = {});
// The engine's tokenizer, or a one-line error naming why the model has none.
const models::Tokenizer& tokenizer_or_fail(const Engine& e);

// "1,2,3" -> ids (whitespace allowed); a one-line error for anything that is not an integer.
std::vector<int32_t> parse_token_list(const std::string& s);

// Accumulates token pieces and hands out the text that is complete UTF-8 so far.
class TextStream {
 public:
  explicit TextStream(const models::Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);  // newly completed text
  std::string flush();           // whatever is left, complete or not

 private:
  const models::Tokenizer& tok_;
  std::string pending_;
};

}  // namespace anvil::tools
