// Workspace and Activations: the scratch memory a forward step runs in.
#include "models/model.h"

namespace anvil::models {

Expected<Tensor> Workspace::f32(size_t slot, int64_t rows, int64_t cols) {
  if (rows < 0 || cols <= 0)
    return make_error(StatusCode::invalid_argument, "workspace: bad shape [", rows, " x ", cols, "]");
  if (slot >= buffers_.size()) buffers_.resize(slot + 1);
  const size_t bytes = size_t(rows) * size_t(cols) * sizeof(float);
  auto& buf = buffers_[slot];
  if (!buf || buf->size() < bytes) {
    buf.reset();  // free the old one first: peak memory is the new size, not both
    auto b = backend_.alloc(bytes > 0 ? bytes : sizeof(float));
    if (!b) return b.status();
    buf = std::move(*b);
  }
  return buf->as_tensor(DType::F32, rows, cols);
}

Expected<Activations> Activations::make(Workspace& ws, const HParams& hp, int64_t n_tokens, int64_t n_logit_rows) {
  Activations a;
  size_t slot = 0;
  auto take = [&](Tensor& t, int64_t rows, int64_t cols) -> Status {
    auto e = ws.f32(slot++, rows, cols);
    if (!e) return e.status();
    t = *e;
    return Status::ok();
  };
  ANVIL_RETURN_IF_ERROR(take(a.x, n_tokens, hp.n_embd));
  ANVIL_RETURN_IF_ERROR(take(a.h, n_tokens, hp.n_embd));
  ANVIL_RETURN_IF_ERROR(take(a.q, n_tokens, hp.q_dim()));
  ANVIL_RETURN_IF_ERROR(take(a.k, n_tokens, hp.kv_dim()));
  ANVIL_RETURN_IF_ERROR(take(a.v, n_tokens, hp.kv_dim()));
  ANVIL_RETURN_IF_ERROR(take(a.attn, n_tokens, hp.q_dim()));
  ANVIL_RETURN_IF_ERROR(take(a.gate, n_tokens, hp.n_ff));
  ANVIL_RETURN_IF_ERROR(take(a.up, n_tokens, hp.n_ff));
  ANVIL_RETURN_IF_ERROR(take(a.last, n_logit_rows, hp.n_embd));
  ANVIL_RETURN_IF_ERROR(take(a.logits, n_logit_rows, hp.n_vocab));
  return a;
}

}  // namespace anvil::models
