#include "kvcache/page_pool.h"

namespace anvil::kvcache {

PagePool::PagePool(int32_t n_pages)
    : state_(size_t(n_pages > 0 ? n_pages : 0), State::free),
      refcount_(state_.size(), 0),
      idle_pos_(state_.size()) {
  free_.reserve(state_.size());
  for (int32_t p = this->n_pages() - 1; p >= 0; --p) free_.push_back(p);
}

Status PagePool::check_page(int32_t page, const char* what) const {
  if (page < 0 || page >= n_pages())
    return make_error(StatusCode::invalid_argument, "KV page pool: ", what, " of page ", page,
                      " outside [0, ", n_pages(), ")");
  return Status::ok();
}

int32_t PagePool::refcount(int32_t page) const {
  return (page >= 0 && page < n_pages()) ? refcount_[size_t(page)] : 0;
}

bool PagePool::is_free(int32_t page) const {
  return page >= 0 && page < n_pages() && state_[size_t(page)] == State::free;
}

bool PagePool::is_idle(int32_t page) const {
  return page >= 0 && page < n_pages() && state_[size_t(page)] == State::idle;
}

Expected<std::vector<int32_t>> PagePool::allocate(int32_t n) {
  if (n < 0) return make_error(StatusCode::invalid_argument, "KV page pool: allocate of ", n, " pages");
  if (n > n_available())
    return make_error(StatusCode::out_of_memory, "KV page pool exhausted: need ", n, " pages, have ", n_free(),
                      " free + ", n_idle(), " reclaimable cached of ", n_pages(), " (", n_used(), " in use)");
  std::vector<int32_t> pages;
  pages.reserve(size_t(n));
  while (int32_t(pages.size()) < n && !free_.empty()) {
    pages.push_back(free_.back());
    free_.pop_back();
  }
  while (int32_t(pages.size()) < n) {
    const int32_t p = idle_lru_.front();
    idle_lru_.pop_front();
    if (on_reclaim_) on_reclaim_(p);
    pages.push_back(p);
  }
  for (int32_t p : pages) {
    state_[size_t(p)] = State::used;
    refcount_[size_t(p)] = 1;
  }
  return pages;
}

Status PagePool::retain(int32_t page) {
  ANVIL_RETURN_IF_ERROR(check_page(page, "retain"));
  const size_t i = size_t(page);
  switch (state_[i]) {
    case State::free:
      return make_error(StatusCode::internal, "KV page pool: retain of free page ", page);
    case State::idle:
      idle_lru_.erase(idle_pos_[i]);
      state_[i] = State::used;
      refcount_[i] = 1;
      return Status::ok();
    case State::used:
      ++refcount_[i];
      return Status::ok();
  }
  return Status::ok();
}

Status PagePool::release(int32_t page, bool keep_content) {
  ANVIL_RETURN_IF_ERROR(check_page(page, "release"));
  const size_t i = size_t(page);
  if (state_[i] != State::used)
    return make_error(StatusCode::internal, "KV page pool: release of page ", page, " that is not in use");
  if (--refcount_[i] > 0) return Status::ok();
  if (keep_content) {
    state_[i] = State::idle;
    idle_pos_[i] = idle_lru_.insert(idle_lru_.end(), page);
  } else {
    state_[i] = State::free;
    free_.push_back(page);
  }
  return Status::ok();
}

Status PagePool::discard_idle(int32_t page) {
  ANVIL_RETURN_IF_ERROR(check_page(page, "discard"));
  const size_t i = size_t(page);
  if (state_[i] != State::idle)
    return make_error(StatusCode::internal, "KV page pool: discard of page ", page, " that is not idle");
  idle_lru_.erase(idle_pos_[i]);
  state_[i] = State::free;
  free_.push_back(page);
  return Status::ok();
}

}  // namespace anvil::kvcache
