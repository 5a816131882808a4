// Engine: one loaded model on one backend, its paged KV storage, and the step loop that batches
// several sessions into one forward pass (DESIGN.md, "Data flow of one step").
//
//   auto engine = Engine::open("model.gguf", {.n_parallel = 4});     // Expected<unique_ptr<Engine>>
//   auto s = (*engine)->new_session({.temperature = 0});            // Expected<unique_ptr<Session>>
//   (*s)->generate(prompt_ids, 64, [](int32_t id) { ...; return true; });
//
// Batching several sessions: give step()/run() one SequenceWork per session; each step takes
// the decode tokens (items with one token left) first, then prefill chunks, until the step's
// token budget (max_step_tokens) is spent — chunked prefill beside running decodes.
//
// Memory: the GGUF stays memory-mapped for the engine's lifetime (CPU weights point into it);
// K and V are F32 tensors of n_pages * page_size rows per layer from Backend::alloc, indexed
// by the kvcache module's block tables; full pages are shared between sessions whose prompts
// start alike (prefix cache) and copied before a shared page is written.
//
// Hybrid models (Qwen3.5: Gated DeltaNet layers beside attention layers): attention layers get
// paged KV as above, recurrent layers none; instead each DeltaNet layer has n_parallel state
// slots (conv state [kernel - 1, conv_channels] + F32 delta-rule state [n_v_heads, d_k, d_v]),
// one per live session, handed out by a kvcache::SlotPool on the session's first step, zeroed
// before reuse, and given back by Session::reset() / destruction. Prefix caching is turned off
// for these models (options().prefix_caching reads false): a cached KV page would let a new
// prompt skip tokens, but the recurrent state after those tokens is not cached with it (it
// summarises the whole history and would have to be checkpointed at every page boundary, ~1 MiB
// per layer per page for Qwen3.5-4B). Skipping nothing keeps results exact; checkpointing is a
// possible later optimisation. A failed forward step may leave a hybrid session's recurrent
// state partly advanced: reset() the session after such an error.
//
// Not thread-safe: one thread drives an engine and its sessions. Sessions must not outlive
// their engine.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/sampler.h"
#include "core/status.h"
#include "gguf/file.h"
#include "kvcache/kv_cache.h"
#include "kvcache/slot_pool.h"
#include "models/hparams.h"
#include "models/model.h"
#include "models/tokenizer.h"

namespace anvil {

class Session;

struct EngineOptions {
  std::string backend = "cpu";    // "auto", "cpu", "cuda", "cuda:N" (core/backend_factory.h)
  int n_threads = 0;             // CPU backend threads; 0 = hardware concurrency
  int32_t n_ctx = 0;             // most tokens one session holds; 0 = min(context_length, 4096)
  int32_t n_parallel = 1;        // sessions the KV pool is sized for (each a full n_ctx)
  int32_t page_size = 16;        // tokens per KV page
  int32_t max_step_tokens = 512; // token budget of one forward step
  // KV cache element type: F32 or F16; unset = F32 on the CPU (the oracle stays exact), F16 on
  // GPUs (half the bytes attention reads).
  std::optional<DType> kv_type;
  // Session::decode_step / generate draw each next token with Backend::sample right after the
  // step (on a GPU: on the device, no host pass over the vocabulary; greedy draws stay on the
  // host, where the row already is); the token stream is the host sampler's either way (up to
  // float rounding at a boundary, core/sampler.h). Unset = on for GPU backends (a sampled draw at
  // the default parameters over a 151936-word vocabulary: 0.22 ms on the H100 against 3.0 ms on
  // the host), off on the CPU, which gains nothing from it.
  std::optional<bool> backend_sampling;
  bool prefix_caching = true;    // share full KV pages between prompts that start alike (forced off
                                 // for models with recurrent layers, see above)
  models::LoadOptions load;      // progress callback while binding weights
  // Wait for the forward pass before copying the logits, so that step_phases() tells device time
  // (forward_s) from the copy (logits_s). Costs one extra synchronization per step; for benchmarks.
  bool profile_steps = false;
};

// Wall time of Engine::step's phases, summed over the steps since reset_step_phases().
struct StepPhases {
  int64_t steps = 0;
  double prepare_s = 0;  // planning the batch, KV pages, step arrays to the backend
  double forward_s = 0;  // the forward pass: its launch, and (profile_steps) waiting for it to finish
  double logits_s = 0;   // the logits rows to the host (without profile_steps: also the forward's tail)
  double sample_s = 0;   // draws for the items that asked for one
  double commit_s = 0;   // KV commit, session history, logits handed to sessions and items

  double total_s() const { return prepare_s + forward_s + logits_s + sample_s + commit_s; }
  StepPhases& operator+=(const StepPhases& o) {
    steps += o.steps;
    prepare_s += o.prepare_s;
    forward_s += o.forward_s;
    logits_s += o.logits_s;
    sample_s += o.sample_s;
    commit_s += o.commit_s;
    return *this;
  }
};

// Tokens to append to one session, and what the step loop reports back.
struct SequenceWork {
  Session* session = nullptr;
  std::vector<int32_t> tokens;  // appended in order
  bool logits_all = false;      // keep every token's logits in `logits` (disables prefix-cache reuse);
                                // the last token's row is in session->last_logits() either way
  // Draw the next token from the last token's logits with the session's sampler on the backend
  // (Backend::sample) in the step that finishes the item: `sampled`. Ignored with logits_all.
  bool sample = false;
  // Filled by Engine::step:
  int32_t sampled = -1;         // the drawn token once done(), when `sample`
  size_t n_done = 0;            // tokens of `tokens` already in the session (prefix-cache hits included)
  std::vector<float> logits;    // logits_all: one n_vocab row per token fed (else read session->last_logits())
  bool done() const { return n_done >= tokens.size(); }
};

class Engine {
 public:
  // Opens the GGUF, creates the backend, loads the model (errors name the architecture, key or
  // tensor at fault) and the tokenizer (a model without a usable tokenizer still runs on ids:
  // tokenizer() is then null and tokenizer_error() says why), and allocates the KV pool.
  static Expected<std::unique_ptr<Engine>> open(const std::string& path, const EngineOptions& options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const models::HParams& hparams() const { return model_->hparams(); }
  const gguf::File& file() const { return *file_; }
  Backend& backend() { return *backend_; }
  const models::Tokenizer* tokenizer() const { return tokenizer_ ? &*tokenizer_ : nullptr; }
  const std::string& tokenizer_error() const { return tokenizer_error_; }
  const EngineOptions& options() const { return options_; }
  int32_t n_vocab() const { return hparams().n_vocab; }

  // State slots of the recurrent layers (all free when the model has none: n_slots() == 0).
  const kvcache::SlotPool& state_slots() const { return *slots_; }

  // invalid_argument when the sampling parameters are invalid.
  Expected<std::unique_ptr<Session>> new_session(const SamplingParams& sampling = {});

  // One forward step over the unfinished items (decode items first, then prefill chunks, within
  // max_step_tokens). Returns the number of tokens it computed (0: nothing left to do).
  // Errors: invalid_argument (a token id outside the vocabulary, a session of another engine or
  // twice in one step, n_ctx exceeded), out_of_memory (KV pool full), or the backend's error.
  // A failed step commits nothing: items keep the progress of earlier steps (and prefix-cache
  // hits), so the caller may retry after freeing pages.
  Expected<int32_t> step(std::vector<SequenceWork>& work);
  // step() until every item is done.
  Status run(std::vector<SequenceWork>& work);

  const StepPhases& step_phases() const { return phases_; }
  void reset_step_phases() { phases_ = {}; }

  kvcache::KvStats kv_stats() const { return kv_->stats(); }
  Status check_kv_invariants() const { return kv_->check_invariants(); }

 private:
  friend class Session;
  Engine() = default;
  Status allocate_kv();
  // Weights + KV pool + recurrent state against the backend's free memory, before allocating.
  Status check_memory_fit() const;
  int64_t kv_pool_pages() const;
  Status allocate_recurrent_state();
  // A state slot for a session's first step, zeroed if an earlier sequence used it.
  Expected<int32_t> acquire_state_slot();
  void release_state_slot(int32_t slot);
  Status validate_tokens(const SequenceWork& w) const;

  EngineOptions options_;
  std::unique_ptr<gguf::File> file_;  // declared before model_: outlives the weights pointing into it
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<models::Model> model_;
  std::optional<models::Tokenizer> tokenizer_;
  std::string tokenizer_error_;
  std::unique_ptr<models::Workspace> ws_;
  std::vector<std::shared_ptr<DeviceBuffer>> kv_buffers_;
  models::KvLayers kv_layers_;
  std::vector<std::shared_ptr<DeviceBuffer>> state_buffers_;
  models::RecurrentLayers state_layers_;  // one per layer; empty tensors for attention layers
  std::unique_ptr<kvcache::SlotPool> slots_;
  std::unique_ptr<kvcache::KvCache> kv_;
  std::vector<float> host_logits_;  // a step's logits_all rows (other rows land in their sessions)
  StepPhases phases_;
  models::HParams model_hp_for_fit_;  // read before the model loads, for check_memory_fit
};

}  // namespace anvil
