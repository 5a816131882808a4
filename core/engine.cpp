#include "core/engine.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>

#include "core/log.h"
#include "core/session.h"
#include "core/backend_factory.h"

namespace anvil {

namespace {

size_t kv_element_bytes(DType t) { return t == DType::F16 ? 2 : 4; }

}  // namespace

Engine::~Engine() = default;

Expected<std::unique_ptr<Engine>> Engine::open(const std::string& path, const EngineOptions& options) {
  if (options.n_parallel < 1 || options.page_size < 1 || options.max_step_tokens < 1 || options.n_ctx < 0)
    return make_error(StatusCode::invalid_argument, "engine options: n_parallel, page_size and max_step_tokens must "
                      "be positive and n_ctx not negative");
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;

  auto file = gguf::File::open(path);
  if (!file) return file.status();
  e->file_ = std::make_unique<gguf::File>(std::move(*file));

  auto backend = open_backend(options.backend, options.n_threads);
  if (!backend) return backend.status();
  e->backend_ = std::move(*backend);
  if (!e->options_.backend_sampling) e->options_.backend_sampling = e->backend_->kind() != DeviceKind::cpu;
  if (!e->options_.kv_type) e->options_.kv_type = e->backend_->kind() == DeviceKind::cpu ? DType::F32 : DType::F16;
  if (*e->options_.kv_type != DType::F32 && *e->options_.kv_type != DType::F16)
    return make_error(StatusCode::invalid_argument, "engine options: the KV cache type must be F32 or F16, not ",
                      dtype_name(*e->options_.kv_type));
  {
    // Fit check before the first upload: a model that cannot fit fails with the numbers.
    auto hp = models::read_hparams(*e->file_);
    if (!hp) return hp.status();
    if (e->options_.n_ctx == 0) e->options_.n_ctx = std::min(hp->n_ctx_train, 4096);
    e->model_hp_for_fit_ = *hp;
    ANVIL_RETURN_IF_ERROR(e->check_memory_fit());
  }

  auto model = models::Model::load(*e->file_, *e->backend_, options.load);
  if (!model) return model.status();
  e->model_ = std::move(*model);

  auto tok = models::Tokenizer::from_gguf(*e->file_);
  if (tok)
    e->tokenizer_.emplace(std::move(*tok));
  else
    e->tokenizer_error_ = tok.status().to_string();

  const models::HParams& hp = e->hparams();
  // Cached KV pages cannot restore a recurrent layer's state (engine.h): no prefix sharing.
  if (hp.has_recurrent_layers()) e->options_.prefix_caching = false;
  e->ws_ = std::make_unique<models::Workspace>(*e->backend_);
  ANVIL_RETURN_IF_ERROR(e->allocate_kv());
  ANVIL_RETURN_IF_ERROR(e->allocate_recurrent_state());
  return e;
}

int64_t Engine::kv_pool_pages() const {
  return int64_t(kvcache::BlockTable::pages_for(options_.n_ctx, options_.page_size)) * options_.n_parallel;
}

Status Engine::check_memory_fit() const {
  const auto mem = backend_->memory_info();
  if (!mem) return Status::ok();
  const models::HParams& hp = model_hp_for_fit_;
  uint64_t weights = 0;
  for (const gguf::TensorInfo& t : file_->tensors()) weights += t.size;
  int64_t attn_layers = 0;
  for (int32_t il = 0; il < hp.n_layer; ++il) attn_layers += hp.is_recurrent_layer(il) ? 0 : 1;
  const uint64_t kv = uint64_t(kv_pool_pages()) * uint64_t(options_.page_size) * uint64_t(hp.kv_dim()) *
                      kv_element_bytes(*options_.kv_type) * 2 * uint64_t(attn_layers);
  uint64_t state = 0;
  if (hp.has_recurrent_layers())
    state = uint64_t(options_.n_parallel) * uint64_t(hp.n_layer - attn_layers) * sizeof(float) *
            (uint64_t(hp.ssm_conv_kernel - 1) * uint64_t(hp.ssm_conv_channels()) +
             uint64_t(hp.ssm_n_v_heads) * uint64_t(hp.ssm_d_k) * uint64_t(hp.ssm_d_v));
  // Activations and scratch: a step's workspace plus the dequantize tiles, bounded in practice.
  const uint64_t reserve = uint64_t(512) << 20;
  const uint64_t need = weights + kv + state + reserve;
  if (need > mem->free_bytes)
    return make_error(StatusCode::out_of_memory, backend_->name(), " has ", mem->free_bytes >> 20, " MiB free of ",
                      mem->total_bytes >> 20, " MiB, but the model needs ", need >> 20, " MiB: weights ",
                      weights >> 20, " MiB, KV pool ", kv >> 20, " MiB (", kv_pool_pages(), " pages of ",
                      options_.page_size, " tokens, n_ctx ", options_.n_ctx, " x n_parallel ", options_.n_parallel,
                      ", ", dtype_name(*options_.kv_type), "), recurrent state ", state >> 20, " MiB, ",
                      reserve >> 20, " MiB for activations; lower --ctx or the number of parallel sessions");
  return Status::ok();
}

Status Engine::allocate_kv() {
  const models::HParams& hp = hparams();
  const int32_t ps = options_.page_size;
  const int64_t pages = kv_pool_pages();
  if (pages > (int64_t(1) << 30) / ps)
    return make_error(StatusCode::invalid_argument, "engine options: a KV pool of ", pages, " pages of ", ps,
                      " tokens is too large");
  const int32_t n_pages = int32_t(pages);
  const size_t rows = size_t(n_pages) * size_t(ps);
  const DType kv_type = *options_.kv_type;
  const size_t bytes = rows * size_t(hp.kv_dim()) * kv_element_bytes(kv_type);
  log().debug("KV pool: {} pages x {} tokens, {} layers, {:.1f} MiB", n_pages, ps, hp.n_layer,
              2.0 * double(bytes) * hp.n_layer / (1 << 20));
  for (int32_t il = 0; il < hp.n_layer; ++il) {
    KvLayer layer;
    if (hp.is_recurrent_layer(il)) {  // no KV: its state lives in state slots
      kv_layers_.push_back(layer);
      continue;
    }
    for (Tensor* t : {&layer.k, &layer.v}) {
      auto buf = backend_->alloc(bytes);
      if (!buf) return buf.status();
      *t = (*buf)->as_tensor(kv_type, int64_t(rows), hp.kv_dim());
      kv_buffers_.push_back(std::move(*buf));
    }
    kv_layers_.push_back(layer);
  }
  kvcache::KvCacheOptions ko;
  ko.n_pages = n_pages;
  ko.page_size = ps;
  ko.prefix_caching = options_.prefix_caching;
  auto kv = kvcache::KvCache::create(ko, [this](int32_t src, int32_t dst) -> Status {
    for (const KvLayer& layer : kv_layers_)
      if (layer.k.data) ANVIL_RETURN_IF_ERROR(backend_->copy_page(layer, src, dst, options_.page_size));
    return Status::ok();
  });
  if (!kv) return kv.status();
  kv_ = std::move(*kv);
  return Status::ok();
}

Status Engine::allocate_recurrent_state() {
  const models::HParams& hp = hparams();
  state_layers_.assign(size_t(hp.n_layer), RecurrentLayer{});
  if (!hp.has_recurrent_layers()) {
    slots_ = std::make_unique<kvcache::SlotPool>(0, true);
    return Status::ok();
  }
  const int64_t n = options_.n_parallel;
  const int64_t conv_rows = n * (hp.ssm_conv_kernel - 1), conv_cols = hp.ssm_conv_channels();
  const int64_t ssm_rows = n * hp.ssm_n_v_heads * hp.ssm_d_k, ssm_cols = hp.ssm_d_v;
  const std::vector<float> zeros(size_t(std::max(conv_rows * conv_cols, ssm_rows * ssm_cols)), 0.f);
  int64_t total = 0;
  for (int32_t il = 0; il < hp.n_layer; ++il) {
    if (!hp.is_recurrent_layer(il)) continue;
    RecurrentLayer& layer = state_layers_[size_t(il)];
    for (auto [t, rows, cols] : {std::tuple{&layer.conv, conv_rows, conv_cols}, std::tuple{&layer.ssm, ssm_rows, ssm_cols}}) {
      const size_t bytes = size_t(rows * cols) * sizeof(float);
      auto buf = backend_->alloc(bytes);
      if (!buf) return buf.status();
      *t = (*buf)->as_tensor(DType::F32, rows, cols);
      ANVIL_RETURN_IF_ERROR(backend_->copy_from_host(*t, zeros.data()));
      state_buffers_.push_back(std::move(*buf));
      total += int64_t(bytes);
    }
  }
  log().debug("recurrent state: {} slots, {:.1f} MiB", n, double(total) / (1 << 20));
  slots_ = std::make_unique<kvcache::SlotPool>(int32_t(n), /*slots_start_zeroed=*/true);
  return Status::ok();
}

Expected<int32_t> Engine::acquire_state_slot() {
  auto lease = slots_->allocate();
  if (!lease) return lease.status();
  if (lease->needs_reset) {
    const models::HParams& hp = hparams();
    const int64_t conv_rows = hp.ssm_conv_kernel - 1, ssm_rows = int64_t(hp.ssm_n_v_heads) * hp.ssm_d_k;
    const std::vector<float> zeros(size_t(std::max(conv_rows * hp.ssm_conv_channels(), ssm_rows * hp.ssm_d_v)), 0.f);
    for (const RecurrentLayer& layer : state_layers_) {
      if (!layer.ssm.data) continue;
      Status st = backend_->copy_from_host(layer.conv.slice_rows(lease->slot * conv_rows, conv_rows), zeros.data());
      if (st.is_ok()) st = backend_->copy_from_host(layer.ssm.slice_rows(lease->slot * ssm_rows, ssm_rows), zeros.data());
      if (!st.is_ok()) {
        (void)slots_->free(lease->slot);
        return st;
      }
    }
  }
  return lease->slot;
}

void Engine::release_state_slot(int32_t slot) { (void)slots_->free(slot); }

Expected<std::unique_ptr<Session>> Engine::new_session(const SamplingParams& sampling) {
  auto sampler = Sampler::create(sampling);
  if (!sampler) return sampler.status();
  return std::unique_ptr<Session>(new Session(*this, std::move(*sampler)));
}

Status Engine::validate_tokens(const SequenceWork& w) const {
  const int32_t V = n_vocab();
  for (size_t i = w.n_done; i < w.tokens.size(); ++i)
    if (w.tokens[i] < 0 || w.tokens[i] >= V)
      return make_error(StatusCode::invalid_argument, "token id ", w.tokens[i], " (at index ", i,
                        ") is outside the vocabulary [0, ", V, ")");
  const size_t total = w.session->tokens_.size() + (w.tokens.size() - w.n_done);
  if (total > size_t(options_.n_ctx))
    return make_error(StatusCode::invalid_argument, "context full: the session would hold ", total,
                      " tokens, n_ctx is ", options_.n_ctx);
  return Status::ok();
}

namespace {
using step_clock = std::chrono::steady_clock;
double seconds_between(step_clock::time_point a, step_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

Expected<int32_t> Engine::step(std::vector<SequenceWork>& work) {
  const auto t_start = step_clock::now();
  // Decode tokens first (latency of running sequences), then prefill chunks in the given order.
  std::vector<size_t> order;
  for (size_t i = 0; i < work.size(); ++i)
    if (!work[i].done() && work[i].tokens.size() - work[i].n_done == 1) order.push_back(i);
  for (size_t i = 0; i < work.size(); ++i)
    if (!work[i].done() && work[i].tokens.size() - work[i].n_done > 1) order.push_back(i);

  struct Planned {
    size_t item;
    int32_t n;
  };
  std::vector<Planned> planned;
  std::set<const Session*> seen;
  StepBatch batch;
  batch.page_size = options_.page_size;
  int32_t budget = options_.max_step_tokens;
  for (size_t idx : order) {
    if (budget == 0) break;
    SequenceWork& w = work[idx];
    Session* s = w.session;
    if (!s || &s->engine_ != this)
      return make_error(StatusCode::invalid_argument, "step: work item ", idx, " has no session of this engine");
    if (!seen.insert(s).second)
      return make_error(StatusCode::invalid_argument, "step: a session appears twice in one step");
    ANVIL_RETURN_IF_ERROR(validate_tokens(w));
    if (!s->seq_ && hparams().has_recurrent_layers() && !s->state_slot_) {
      auto slot = acquire_state_slot();
      if (!slot) return slot.status();
      s->state_slot_ = *slot;
    }
    if (!s->seq_) {
      // A fresh sequence: reuse cached KV pages of a prompt that starts the same way, unless
      // every token's logits are wanted (cached tokens are not recomputed).
      std::span<const int32_t> prompt;
      if (!w.logits_all && s->tokens_.empty()) prompt = std::span(w.tokens).subspan(w.n_done);
      const kvcache::NewSequence ns = kv_->add_sequence(prompt);
      s->seq_ = ns.id;
      s->tokens_.insert(s->tokens_.end(), prompt.begin(), prompt.begin() + ns.n_cached);
      w.n_done += size_t(ns.n_cached);
    }
    const int32_t n = int32_t(std::min<size_t>(size_t(budget), w.tokens.size() - w.n_done));
    auto table = kv_->prepare_append(*s->seq_, n);
    if (!table) return table.status();
    std::vector<int32_t> ids(w.tokens.begin() + std::ptrdiff_t(w.n_done), w.tokens.begin() + std::ptrdiff_t(w.n_done) + n);
    batch.add_sequence(ids, kv_->n_tokens(*s->seq_), std::move(*table), w.logits_all, s->state_slot_.value_or(-1));
    planned.push_back({idx, n});
    budget -= n;
  }
  if (planned.empty()) return 0;

  auto step = backend_->prepare_step(batch);
  if (!step) return step.status();
  // Decode steps (one token per sequence) of one shape run the same ops on the same buffers:
  // the backend may record them once and replay (CUDA graphs). Prefill steps are not keyed.
  uint64_t graph_key = 0;
  if (std::all_of(batch.seqs.begin(), batch.seqs.end(), [](const StepSequence& q) { return q.n_tokens == 1; }))
    if (step->n_seqs < (1 << 20) && step->max_blocks < (1 << 22) && step->n_logit_rows < (1 << 21))
      graph_key = (uint64_t(step->n_seqs) << 43 | uint64_t(step->max_blocks) << 21 | uint64_t(step->n_logit_rows)) + 1;
  const auto t_prepared = step_clock::now();
  auto logits = backend_->run_step(graph_key, [&] { return model_->forward(batch, *step, *ws_, kv_layers_, state_layers_); });
  if (!logits) return logits.status();
  if (options_.profile_steps) ANVIL_RETURN_IF_ERROR(backend_->synchronize());
  const auto t_forward = step_clock::now();
  const size_t V = size_t(n_vocab());

  // The logit rows come in batch order: every token of a logits_all sequence, else its last.
  // A sequence's single row lands straight in its session's next_logits_ (swapped in at commit:
  // no staging copy, and a failed step leaves last_logits() as it was); logits_all rows land in
  // host_logits_, from which the item's logits are filled.
  std::vector<int64_t> last_row(planned.size());
  std::vector<float*> row_ptr;
  {
    size_t n_all_rows = 0;
    for (const Planned& p : planned)
      if (work[p.item].logits_all) n_all_rows += size_t(p.n);
    host_logits_.resize(n_all_rows * V);
    size_t all_row = 0;
    for (size_t i = 0; i < planned.size(); ++i) {
      const SequenceWork& w = work[planned[i].item];
      if (w.logits_all) {
        for (int32_t k = 0; k < planned[i].n; ++k) row_ptr.push_back(host_logits_.data() + (all_row++) * V);
      } else {
        w.session->next_logits_.resize(V);
        row_ptr.push_back(w.session->next_logits_.data());
      }
      last_row[i] = int64_t(row_ptr.size()) - 1;
    }
  }
  if (int64_t(row_ptr.size()) != logits->rows)
    return make_error(StatusCode::internal, "step: the forward pass returned ", logits->rows, " logit rows for ",
                      row_ptr.size(), " expected");
  ANVIL_RETURN_IF_ERROR(backend_->copy_rows_to_host(*logits, std::vector<void*>(row_ptr.begin(), row_ptr.end())));
  const auto t_logits = step_clock::now();
  // Draws for the items this step finishes that asked for one, before anything is committed
  // (a failed draw leaves the step uncommitted, like a failed forward). Sampling sees each
  // session's history with this step's tokens appended.
  std::vector<size_t> drawn;  // indices into planned
  std::vector<SampleRequest> requests;
  for (size_t i = 0; i < planned.size(); ++i) {
    const SequenceWork& w = work[planned[i].item];
    if (!w.sample || w.logits_all || w.n_done + size_t(planned[i].n) < w.tokens.size()) continue;
    const StepSequence& seq = batch.seqs[i];
    // Only the penalty window of the history matters (all of it for repeat_last_n == -1).
    const std::vector<int32_t>& past = w.session->tokens_;
    const int32_t last_n = w.session->sampler_.params().repeat_last_n;
    const size_t keep = last_n < 0 ? past.size() : std::min(past.size(), size_t(last_n));
    std::vector<int32_t> history(past.end() - std::ptrdiff_t(keep), past.end());
    history.insert(history.end(), batch.tokens.begin() + seq.first_token,
                   batch.tokens.begin() + seq.first_token + seq.n_tokens);
    auto req = w.session->sampler_.request(history, n_vocab());
    if (!req) return req.status();
    requests.push_back(std::move(*req));
    drawn.push_back(i);
  }
  std::vector<int32_t> sampled(drawn.size(), -1);
  // One Backend::sample per run of consecutive rows (usually one: a step of decodes). A run of
  // greedy draws is an argmax over rows already on the host: no device round trip for it.
  for (size_t j0 = 0; j0 < drawn.size();) {
    size_t j1 = j0 + 1;
    while (j1 < drawn.size() && last_row[drawn[j1]] == last_row[drawn[j1 - 1]] + 1) ++j1;
    const size_t n = j1 - j0;
    const bool greedy = std::all_of(requests.begin() + std::ptrdiff_t(j0), requests.begin() + std::ptrdiff_t(j1),
                                    [](const SampleRequest& r) { return r.params.temperature == 0.f; });
    if (greedy) {
      for (size_t j = j0; j < j1; ++j) {
        auto id = sample_row(std::span<const float>(row_ptr[size_t(last_row[drawn[j]])], V), requests[j]);
        if (!id) return id.status();
        sampled[j] = *id;
      }
    } else {
      ANVIL_RETURN_IF_ERROR(backend_->sample(logits->slice_rows(last_row[drawn[j0]], int64_t(n)),
                                             std::span(requests).subspan(j0, n), std::span(sampled).subspan(j0, n)));
    }
    j0 = j1;
  }

  const auto t_sampled = step_clock::now();

  size_t next_draw = 0;
  int32_t n_total = 0;
  for (size_t i = 0; i < planned.size(); ++i) {
    SequenceWork& w = work[planned[i].item];
    Session& s = *w.session;
    const StepSequence& seq = batch.seqs[i];

    std::span<const int32_t> ids(batch.tokens.data() + seq.first_token, size_t(seq.n_tokens));
    ANVIL_RETURN_IF_ERROR(kv_->commit(*s.seq_, ids));
    s.tokens_.insert(s.tokens_.end(), ids.begin(), ids.end());
    if (w.logits_all) {
      const float* first = row_ptr[size_t(last_row[i]) + 1 - size_t(planned[i].n)];
      const float* last = row_ptr[size_t(last_row[i])];
      s.last_logits_.assign(last, last + V);
      w.logits.insert(w.logits.end(), first, first + size_t(planned[i].n) * V);  // rows are adjacent in host_logits_
    } else {
      s.last_logits_.swap(s.next_logits_);
    }
    s.drop_pending();
    w.n_done += ids.size();
    if (next_draw < drawn.size() && drawn[next_draw] == i) {
      w.sampled = sampled[next_draw];
      s.pending_token_ = w.sampled;
      s.pending_request_ = std::move(requests[next_draw]);
      ++next_draw;
    }
    n_total += seq.n_tokens;
  }
  const auto t_end = step_clock::now();
  phases_.steps += 1;
  phases_.prepare_s += seconds_between(t_start, t_prepared);
  phases_.forward_s += seconds_between(t_prepared, t_forward);
  phases_.logits_s += seconds_between(t_forward, t_logits);
  phases_.sample_s += seconds_between(t_logits, t_sampled);
  phases_.commit_s += seconds_between(t_sampled, t_end);
  return n_total;
}

Status Engine::run(std::vector<SequenceWork>& work) {
  for (;;) {
    auto n = step(work);
    if (!n) return n.status();
    if (*n == 0) return Status::ok();
  }
}

}  // namespace anvil
