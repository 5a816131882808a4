// One forward step over several sequences at once: decode tokens of running sequences and
// chunks of pending prefills, side by side (chunked prefill). Built on the host by the
// scheduler/engine; a backend copies what its kernels read into device memory (DeviceStep).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace anvil {

struct StepSequence {
  int32_t first_token = 0;   // index of this sequence's first token in StepBatch::tokens
  int32_t n_tokens = 0;      // tokens of this sequence in this step (1 for decode)
  int32_t n_past = 0;        // tokens already in the KV cache / recurrent state before this step
  // KV pages of this sequence, in order: page i holds positions [i * page_size, (i+1) * page_size).
  // Covers at least n_past + n_tokens positions.
  std::vector<int32_t> block_table;
  int32_t state_slot = -1;   // recurrent-state slot (Qwen3.5 DeltaNet layers), -1 if none
  int32_t adapter_slot = -1; // LoRA adapter slot, -1 for none
  bool logits_all = false;   // logits for every token of the sequence, else only its last
  int32_t context_len() const { return n_past + n_tokens; }
};

struct StepBatch {
  std::vector<int32_t> tokens;     // token ids, sequences contiguous in the order of `seqs`
  std::vector<int32_t> positions;  // position of each token within its sequence
  std::vector<int32_t> token_seq;  // index into `seqs` of each token
  std::vector<StepSequence> seqs;
  int32_t page_size = 16;

  int32_t n_tokens() const { return int32_t(tokens.size()); }
  // Token indices whose logits the step returns, in order (what `logits_all`/last select).
  std::vector<int32_t> logit_rows() const;
  // KV slot of every token: block_table[pos / page_size] * page_size + pos % page_size.
  std::vector<int32_t> kv_slots() const;
  // Appends a sequence's tokens (positions n_past, n_past + 1, ...); returns its index.
  int32_t add_sequence(const std::vector<int32_t>& ids, int32_t n_past, std::vector<int32_t> block_table,
                       bool logits_all = false, int32_t state_slot = -1, int32_t adapter_slot = -1);
};

}  // namespace anvil
