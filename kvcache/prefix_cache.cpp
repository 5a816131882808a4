#include "kvcache/prefix_cache.h"

#include <algorithm>

#define XXH_STATIC_LINKING_ONLY  // XXH64_state_t on the stack
#include <xxhash.h>

namespace anvil::kvcache {

uint64_t hash_page(uint64_t parent_hash, std::span<const int32_t> tokens, int32_t adapter_id) {
  XXH64_state_t state;
  XXH64_reset(&state, parent_hash);
  // The length goes in too, so a short token run can never alias a longer one.
  const uint64_t n = tokens.size();
  XXH64_update(&state, &n, sizeof(n));
  XXH64_update(&state, tokens.data(), tokens.size_bytes());
  XXH64_update(&state, &adapter_id, sizeof(adapter_id));
  return XXH64_digest(&state);
}

PrefixCache::PrefixCache(int32_t n_pages, int32_t page_size)
    : page_size_(page_size), entries_(size_t(n_pages > 0 ? n_pages : 0)) {}

bool PrefixCache::contains(int32_t page) const {
  return page >= 0 && size_t(page) < entries_.size() && entries_[size_t(page)].cached;
}

std::optional<int32_t> PrefixCache::find(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens,
                                         int32_t adapter_id) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const Entry& e = entries_[size_t(it->second)];
  if (e.parent_hash != parent_hash || e.adapter_id != adapter_id ||
      !std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(), tokens.end()))
    return std::nullopt;  // a hash collision: treat as a miss rather than hand out wrong K/V
  return it->second;
}

PrefixMatch PrefixCache::match(std::span<const int32_t> tokens, int32_t adapter_id, int32_t max_pages) const {
  PrefixMatch m;
  uint64_t parent = kRootPageHash;
  const size_t ps = size_t(page_size_);
  for (int32_t i = 0; i < max_pages && (size_t(i) + 1) * ps <= tokens.size(); ++i) {
    const auto page_tokens = tokens.subspan(size_t(i) * ps, ps);
    const uint64_t h = hash_page(parent, page_tokens, adapter_id);
    const auto page = find(h, parent, page_tokens, adapter_id);
    if (!page) break;
    m.pages.push_back(*page);
    m.hashes.push_back(h);
    parent = h;
  }
  return m;
}

bool PrefixCache::insert(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens, int32_t adapter_id,
                         int32_t page) {
  if (page < 0 || size_t(page) >= entries_.size() || tokens.size() != size_t(page_size_)) return false;
  Entry& e = entries_[size_t(page)];
  if (e.cached || by_hash_.contains(hash)) return false;
  e.cached = true;
  e.hash = hash;
  e.parent_hash = parent_hash;
  e.adapter_id = adapter_id;
  e.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, page);
  return true;
}

void PrefixCache::forget(int32_t page) {
  if (!contains(page)) return;
  Entry& e = entries_[size_t(page)];
  by_hash_.erase(e.hash);
  e = Entry{};
}

}  // namespace anvil::kvcache
