// PagePool: the page ids of one device's paged KV storage, with reference counts.
//
// Host-side bookkeeping only: the Engine allocates the K/V tensors (n_pages * page_size rows
// per layer) and this pool decides which page a sequence may write. A page is always in exactly
// one of three states:
//   free   - on the free list, holds nothing anyone wants;
//   used   - refcount > 0: that many block tables point at it;
//   idle   - refcount 0 but its content is kept because the prefix cache can hand it to a
//            future prompt; reclaimable, least recently released first, when the free list is
//            empty.
// Keeping the idle LRU here (not in PrefixCache) makes allocation one all-or-nothing decision:
// "free + idle >= n" is the whole capacity check. A reclaimed idle page is reported to the
// reclaim listener so the prefix cache forgets it before anyone can look it up again.
//
// Not thread-safe: the scheduler thread owns it (through KvCache).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <vector>

#include "core/status.h"

namespace anvil::kvcache {

class PagePool {
 public:
  explicit PagePool(int32_t n_pages);
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  int32_t n_pages() const { return int32_t(state_.size()); }
  int32_t n_free() const { return int32_t(free_.size()); }
  int32_t n_idle() const { return int32_t(idle_lru_.size()); }
  int32_t n_used() const { return n_pages() - n_free() - n_idle(); }
  // What allocate() can hand out right now.
  int32_t n_available() const { return n_free() + n_idle(); }

  int32_t refcount(int32_t page) const;  // 0 for free/idle pages and invalid ids
  bool is_free(int32_t page) const;
  bool is_idle(int32_t page) const;

  // n pages, each with refcount 1; all or nothing (on error nothing changed). Free pages go
  // first; then idle pages are reclaimed, least recently released first, each reported to the
  // reclaim listener. Error: out_of_memory naming what was asked and what there is.
  Expected<std::vector<int32_t>> allocate(int32_t n);
  // One more reference. An idle page comes back into use (the prefix cache re-sharing it).
  Status retain(int32_t page);
  // One reference fewer. At zero the page becomes idle when keep_content (the prefix cache still
  // lists it), else free. Error (and no change) on a page that is not in use.
  Status release(int32_t page, bool keep_content);
  // Idle page -> free (the prefix cache dropping it on purpose). Error unless idle.
  Status discard_idle(int32_t page);
  // Idle pages, least recently released first.
  std::vector<int32_t> idle_pages() const { return {idle_lru_.begin(), idle_lru_.end()}; }

  void set_reclaim_listener(std::function<void(int32_t page)> on_reclaim) { on_reclaim_ = std::move(on_reclaim); }

 private:
  enum class State : uint8_t { free, used, idle };
  Status check_page(int32_t page, const char* what) const;

  std::vector<State> state_;
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;  // a stack; the lowest ids come out first on a fresh pool
  std::list<int32_t> idle_lru_;  // front = least recently released
  std::vector<std::list<int32_t>::iterator> idle_pos_;
  std::function<void(int32_t)> on_reclaim_;
};

}  // namespace anvil::kvcache
