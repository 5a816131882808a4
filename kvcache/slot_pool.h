// SlotPool: fixed-size per-sequence state slots (Qwen3.5 DeltaNet layers keep a conv state and
// f32 state matrices per sequence; the Engine sizes the device memory, this hands out indices).
//
// Unlike KV pages, recurrent state is one slot per sequence and cannot be shared by prefix: it
// summarises the whole history. A slot that held another sequence's state must be zeroed
// before use, so allocate() says whether it needs a reset. (Forking a sequence with state needs
// a slot copy; that arrives with the Qwen3.5 engine work.)
//
// Not thread-safe: the scheduler thread owns it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace anvil::kvcache {

class SlotPool {
 public:
  struct Lease {
    int32_t slot = -1;
    bool needs_reset = true;  // the slot's memory may hold an earlier sequence's state
  };

  // slots_start_zeroed: the Engine zeroed all slot memory when it allocated it, so a slot's
  // first use needs no reset.
  explicit SlotPool(int32_t n_slots, bool slots_start_zeroed = false);

  int32_t n_slots() const { return int32_t(in_use_.size()); }
  int32_t n_free() const { return int32_t(free_.size()); }
  bool in_use(int32_t slot) const { return slot >= 0 && slot < n_slots() && in_use_[size_t(slot)]; }

  // Error: out_of_memory with the numbers when every slot is taken.
  Expected<Lease> allocate();
  // Error (and no change): invalid_argument for a slot that is not in use.
  Status free(int32_t slot);

 private:
  std::vector<bool> in_use_;
  std::vector<bool> dirty_;   // has held a sequence's state since it was last zeroed
  std::vector<int32_t> free_;  // a stack; lowest ids first on a fresh pool
};

}  // namespace anvil::kvcache
