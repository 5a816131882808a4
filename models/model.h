// The Model interface: a loaded architecture that turns one StepBatch into logits by calling
// Backend ops (DESIGN.md, "Data flow of one step"). The caller (core/engine) owns the paged KV
// storage and the step's bookkeeping; a model only reads hyperparameters and weights.
//
//   auto model = models::Model::load(file, backend, {});          // Expected<unique_ptr<Model>>
//   models::Workspace ws(backend);
//   auto logits = (*model)->forward(batch, step, ws, kv_layers, state_layers);  // [n_logit_rows, n_vocab]
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/status.h"
#include "core/step_batch.h"
#include "core/tensor.h"
#include "models/hparams.h"

namespace anvil::gguf {
class File;
}

namespace anvil::models {

struct LoadOptions {
  // Called after each tensor is bound: (tensors done, tensors in all, name). For progress displays.
  std::function<void(size_t, size_t, const std::string&)> on_tensor;
};

// One KvLayer per transformer layer (index = layer), allocated by the engine with
// [n_pages * page_size, kv_dim] F32 rows each for K and V.
// Attention layers of a hybrid model (qwen35) have theirs; recurrent layers' entries are empty.
using KvLayers = std::vector<KvLayer>;
// One RecurrentLayer per layer (index = layer): the per-slot conv and delta-rule state of each
// Gated DeltaNet layer (core/backend.h), empty for attention layers and for models without
// recurrent layers (the vector may then be empty).
using RecurrentLayers = std::vector<RecurrentLayer>;

// Scratch activations in backend memory, reused from step to step. Each slot's buffer grows
// when a step needs more and never shrinks, so steady-state decoding allocates nothing.
class Workspace {
 public:
  explicit Workspace(Backend& backend) : backend_(backend) {}
  // An F32 [rows, cols] tensor in slot `slot`; its contents are undefined.
  Expected<Tensor> f32(size_t slot, int64_t rows, int64_t cols);

 private:
  Backend& backend_;
  std::vector<std::shared_ptr<DeviceBuffer>> buffers_;
};

// The activations one forward step of a dense transformer needs.
struct Activations {
  Tensor x;         // [n_tokens, n_embd] the residual stream
  Tensor h;         // [n_tokens, n_embd] normed input of a sublayer, then its output
  Tensor q;         // [n_tokens, n_head * head_dim]
  Tensor k, v;      // [n_tokens, n_head_kv * head_dim]
  Tensor attn;      // [n_tokens, n_head * head_dim]
  Tensor gate, up;  // [n_tokens, n_ff]
  Tensor last;      // [n_logit_rows, n_embd] rows of x whose logits the step returns
  Tensor logits;    // [n_logit_rows, n_vocab]

  static Expected<Activations> make(Workspace& ws, const HParams& hp, int64_t n_tokens, int64_t n_logit_rows);
};

class Model {
 public:
  virtual ~Model() = default;

  // Reads the hyperparameters, picks the architecture's implementation (registry.cpp) and binds
  // every weight to `backend`. `file` must outlive the model (CPU weights point into its mmap).
  // Errors name what is wrong: an unknown architecture, a missing key, a missing tensor, a
  // tensor of the wrong shape or type, a tensor the architecture does not have.
  static Expected<std::unique_ptr<Model>> load(const gguf::File& file, Backend& backend, const LoadOptions& options);

  virtual const HParams& hparams() const = 0;

  // Runs the step: writes the step's K/V into `kv` (at DeviceStep::kv_slots), advances each
  // sequence's recurrent state in `state` (at DeviceStep::state_slots; recurrent layers only)
  // and returns the logits of the rows DeviceStep::logit_rows selects, [n_logit_rows, n_vocab]
  // F32 in `ws` (valid until the next forward with the same workspace).
  virtual Expected<Tensor> forward(const StepBatch& batch, const DeviceStep& step, Workspace& ws, const KvLayers& kv,
                                   const RecurrentLayers& state) = 0;
};

// Per-architecture loaders; registry.cpp maps HParams::arch to them.
Expected<std::unique_ptr<Model>> load_llama_family(const gguf::File& file, Backend& backend, const HParams& hp,
                                                   const LoadOptions& options);
Expected<std::unique_ptr<Model>> load_qwen35(const gguf::File& file, Backend& backend, const HParams& hp,
                                             const LoadOptions& options);
Expected<std::unique_ptr<Model>> load_gemma3(const gguf::File& file, Backend& backend, const HParams& hp,
                                             const LoadOptions& options);

}  // namespace anvil::models
