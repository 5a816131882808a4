#include "core/step_batch.h"

namespace anvil {

std::vector<int32_t> StepBatch::logit_rows() const {
  std::vector<int32_t> rows;
  for (const auto& s : seqs) {
    if (s.n_tokens == 0) continue;
    if (s.logits_all)
      for (int32_t i = 0; i < s.n_tokens; ++i) rows.push_back(s.first_token + i);
    else
      rows.push_back(s.first_token + s.n_tokens - 1);
  }
  return rows;
}

std::vector<int32_t> StepBatch::kv_slots() const {
  std::vector<int32_t> slots(tokens.size());
  for (size_t t = 0; t < tokens.size(); ++t) {
    const StepSequence& s = seqs[size_t(token_seq[t])];
    const int32_t pos = positions[t];
    slots[t] = s.block_table[size_t(pos / page_size)] * page_size + pos % page_size;
  }
  return slots;
}

int32_t StepBatch::add_sequence(const std::vector<int32_t>& ids, int32_t n_past, std::vector<int32_t> block_table,
                                bool logits_all, int32_t state_slot, int32_t adapter_slot) {
  StepSequence s;
  s.first_token = int32_t(tokens.size());
  s.n_tokens = int32_t(ids.size());
  s.n_past = n_past;
  s.block_table = std::move(block_table);
  s.state_slot = state_slot;
  s.adapter_slot = adapter_slot;
  s.logits_all = logits_all;
  const int32_t idx = int32_t(seqs.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    tokens.push_back(ids[i]);
    positions.push_back(n_past + int32_t(i));
    token_seq.push_back(idx);
  }
  seqs.push_back(std::move(s));
  return idx;
}

}  // namespace anvil
