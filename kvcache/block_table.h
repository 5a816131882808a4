// BlockTable: one sequence's KV pages in order and how many tokens they hold.
//
// Page i holds positions [i * page_size, (i + 1) * page_size) — the layout StepSequence::
// block_table hands to the kernels. The table may hold more pages than its tokens need
// (capacity reserved for a step that is prepared but not yet committed).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"
#include "kvcache/page_pool.h"

namespace anvil::kvcache {

class BlockTable {
 public:
  explicit BlockTable(int32_t page_size) : page_size_(page_size) {}

  // Pages needed to hold n_tokens (ceil division).
  static int32_t pages_for(int64_t n_tokens, int32_t page_size) {
    return int32_t((n_tokens + page_size - 1) / page_size);
  }

  int32_t page_size() const { return page_size_; }
  const std::vector<int32_t>& pages() const { return pages_; }
  int32_t n_pages() const { return int32_t(pages_.size()); }
  // Positions [0, n_tokens) hold valid KV.
  int32_t n_tokens() const { return n_tokens_; }
  int64_t capacity() const { return int64_t(pages_.size()) * page_size_; }
  // Pages beyond those that n_tokens need.
  int32_t pages_to_grow(int64_t n_tokens) const {
    const int32_t want = pages_for(n_tokens, page_size_);
    return want > n_pages() ? want - n_pages() : 0;
  }

  // Allocates pages until capacity >= n_tokens. All or nothing: on error (out_of_memory from
  // the pool) the table and the pool are unchanged.
  Status ensure_capacity(PagePool& pool, int64_t n_tokens);
  // Appends a page the caller already holds a reference for (a shared prefix page).
  void push_page(int32_t page) { pages_.push_back(page); }
  // Swaps page `index` for `page` (copy-on-write); the caller moves the references.
  void replace_page(int32_t index, int32_t page) { pages_[size_t(index)] = page; }
  // Caller guarantees n <= capacity().
  void set_n_tokens(int32_t n) { n_tokens_ = n; }
  // Drops every page's reference, last page first (so in the idle LRU a sequence's tail pages
  // are reclaimed before its head pages, which prefix more prompts); keep(page) says whether a
  // page's content stays cached. The table ends empty.
  Status release_all(PagePool& pool, const std::function<bool(int32_t)>& keep);

 private:
  int32_t page_size_;
  int32_t n_tokens_ = 0;
  std::vector<int32_t> pages_;
};

}  // namespace anvil::kvcache
