#include "kvcache/slot_pool.h"

namespace anvil::kvcache {

SlotPool::SlotPool(int32_t n_slots, bool slots_start_zeroed)
    : in_use_(size_t(n_slots > 0 ? n_slots : 0), false), dirty_(in_use_.size(), !slots_start_zeroed) {
  for (int32_t s = this->n_slots() - 1; s >= 0; --s) free_.push_back(s);
}

Expected<SlotPool::Lease> SlotPool::allocate() {
  if (free_.empty())
    return make_error(StatusCode::out_of_memory, "state slot pool exhausted: all ", n_slots(), " slots in use");
  const int32_t slot = free_.back();
  free_.pop_back();
  in_use_[size_t(slot)] = true;
  Lease lease{slot, dirty_[size_t(slot)]};
  dirty_[size_t(slot)] = true;  // the new sequence writes its state there
  return lease;
}

Status SlotPool::free(int32_t slot) {
  if (!in_use(slot))
    return make_error(StatusCode::invalid_argument, "state slot pool: free of slot ", slot, " that is not in use (",
                      n_slots(), " slots)");
  in_use_[size_t(slot)] = false;
  free_.push_back(slot);
  return Status::ok();
}

}  // namespace anvil::kvcache
