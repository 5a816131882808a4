#include "kvcache/block_table.h"

namespace anvil::kvcache {

Status BlockTable::ensure_capacity(PagePool& pool, int64_t n_tokens) {
  const int32_t grow = pages_to_grow(n_tokens);
  if (grow == 0) return Status::ok();
  auto fresh = pool.allocate(grow);
  if (!fresh) return fresh.status();
  pages_.insert(pages_.end(), fresh->begin(), fresh->end());
  return Status::ok();
}

Status BlockTable::release_all(PagePool& pool, const std::function<bool(int32_t)>& keep) {
  Status first_error;
  for (auto it = pages_.rbegin(); it != pages_.rend(); ++it) {
    Status s = pool.release(*it, keep && keep(*it));
    if (!s.is_ok() && first_error.is_ok()) first_error = std::move(s);
  }
  pages_.clear();
  n_tokens_ = 0;
  return first_error;
}

}  // namespace anvil::kvcache
