// make_host_step (core/backend.h): a StepBatch validated and packed into the host arrays of a
// DeviceStep. The CPU backend uses it as is; device backends copy the arrays to their memory.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"

namespace anvil {

Expected<DeviceStep> make_host_step(const StepBatch& batch, int32_t block_table_width) {
  const int64_t n_tokens = int64_t(batch.tokens.size());
  const int64_t n_seqs = int64_t(batch.seqs.size());
  const int32_t ps = batch.page_size;
  if (ps <= 0) return make_error(StatusCode::invalid_argument, "prepare_step: page_size ", ps, " must be positive");
  if (int64_t(batch.positions.size()) != n_tokens || int64_t(batch.token_seq.size()) != n_tokens)
    return make_error(StatusCode::invalid_argument, "prepare_step: ", n_tokens, " tokens but ",
                      batch.positions.size(), " positions and ", batch.token_seq.size(), " token_seq entries");
  size_t max_blocks = 0;
  int32_t max_context = 0;
  for (int64_t s = 0; s < n_seqs; ++s) {
    const StepSequence& q = batch.seqs[size_t(s)];
    if (q.n_tokens < 0 || q.n_past < 0 || q.first_token < 0 || int64_t(q.first_token) + q.n_tokens > n_tokens)
      return make_error(StatusCode::invalid_argument, "prepare_step: sequence ", s, " (first_token ",
                        q.first_token, ", n_tokens ", q.n_tokens, ", n_past ", q.n_past, ") does not fit the ",
                        n_tokens, " tokens of the step");
    const int64_t ctx = int64_t(q.n_past) + q.n_tokens;
    if (ctx > INT32_MAX)
      return make_error(StatusCode::invalid_argument, "prepare_step: sequence ", s, "'s context ", ctx,
                        " overflows int32");
    const int64_t pages_needed = (ctx + ps - 1) / ps;
    if (int64_t(q.block_table.size()) < pages_needed)
      return make_error(StatusCode::invalid_argument, "prepare_step: sequence ", s, "'s block table has ",
                        q.block_table.size(), " pages of ", ps, " tokens, too few for its ", ctx, " positions");
    for (int64_t b = 0; b < pages_needed; ++b)
      if (q.block_table[size_t(b)] < 0)
        return make_error(StatusCode::invalid_argument, "prepare_step: sequence ", s, "'s block ", b,
                          " has no page (", q.block_table[size_t(b)], ")");
    for (int32_t i = 0; i < q.n_tokens; ++i)
      if (batch.token_seq[size_t(q.first_token + i)] != s)
        return make_error(StatusCode::invalid_argument, "prepare_step: token ", q.first_token + i,
                          " lies in sequence ", s, "'s range but token_seq says ",
                          batch.token_seq[size_t(q.first_token + i)]);
    max_blocks = std::max(max_blocks, q.block_table.size());
    max_context = std::max(max_context, int32_t(ctx));
  }
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int32_t s = batch.token_seq[size_t(t)], pos = batch.positions[size_t(t)];
    if (s < 0 || s >= n_seqs)
      return make_error(StatusCode::invalid_argument, "prepare_step: token ", t, " names sequence ", s, " of ",
                        n_seqs);
    const StepSequence& q = batch.seqs[size_t(s)];
    if (t < q.first_token || t >= int64_t(q.first_token) + q.n_tokens)
      return make_error(StatusCode::invalid_argument, "prepare_step: token ", t, " is outside sequence ", s,
                        "'s range [", q.first_token, ", ", q.first_token + q.n_tokens, ")");
    if (pos < 0 || pos >= q.context_len())
      return make_error(StatusCode::invalid_argument, "prepare_step: token ", t, " of sequence ", s,
                        " has position ", pos, " outside [0, ", q.context_len(), ")");
  }
  max_blocks = std::max(max_blocks, size_t(std::max(block_table_width, 0)));
  const std::vector<int32_t> logit_rows = batch.logit_rows();

  // One array holds everything; the DeviceStep's pointers are views into it.
  const size_t nt = size_t(n_tokens), ns = size_t(n_seqs);
  auto storage = std::make_shared<std::vector<int32_t>>(4 * nt + ns * max_blocks + 4 * ns + logit_rows.size());
  int32_t* p = storage->data();
  const auto take = [&p](size_t n) { int32_t* r = p; p += n; return r; };
  int32_t* tokens = take(nt);
  int32_t* positions = take(nt);
  int32_t* token_seq = take(nt);
  int32_t* kv_slots = take(nt);
  int32_t* tables = take(ns * max_blocks);
  int32_t* context_lens = take(ns);
  int32_t* first = take(ns);
  int32_t* counts = take(ns);
  int32_t* state_slots = take(ns);
  int32_t* rows = take(logit_rows.size());

  std::copy(batch.tokens.begin(), batch.tokens.end(), tokens);
  std::copy(batch.positions.begin(), batch.positions.end(), positions);
  std::copy(batch.token_seq.begin(), batch.token_seq.end(), token_seq);
  for (size_t s = 0; s < ns; ++s) {
    const StepSequence& q = batch.seqs[s];
    int32_t* row = tables + s * max_blocks;
    std::fill(row, row + max_blocks, -1);
    std::copy(q.block_table.begin(), q.block_table.end(), row);
    context_lens[s] = q.context_len();
    first[s] = q.first_token;
    counts[s] = q.n_tokens;
    state_slots[s] = q.state_slot;
  }
  for (size_t t = 0; t < nt; ++t) {
    const int32_t pos = positions[t];
    kv_slots[t] = tables[size_t(token_seq[t]) * max_blocks + size_t(pos / ps)] * ps + pos % ps;
  }
  std::copy(logit_rows.begin(), logit_rows.end(), rows);

  DeviceStep d;
  d.n_tokens = int32_t(n_tokens);
  d.n_seqs = int32_t(n_seqs);
  d.page_size = ps;
  d.max_blocks = int32_t(max_blocks);
  d.max_context = max_context;
  d.tokens = tokens;
  d.positions = positions;
  d.token_seq = token_seq;
  d.kv_slots = kv_slots;
  d.block_tables = tables;
  d.context_lens = context_lens;
  d.seq_first_token = first;
  d.seq_n_tokens = counts;
  d.state_slots = state_slots;
  d.logit_rows = rows;
  d.n_logit_rows = int32_t(logit_rows.size());
  d.storage = std::move(storage);
  return d;
}

}  // namespace anvil
