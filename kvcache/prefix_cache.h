// PrefixCache: full KV pages found by their content, so prompts that start alike share pages.
//
// A full page is named by a chained hash: hash_page(parent, tokens, adapter) where parent is the
// previous page's hash (kRootPageHash for page 0). Equal hashes therefore mean "same tokens at
// the same positions after the same prefix under the same adapter" — the K/V of a page depend
// on everything before it and on the LoRA adapter, so all three go in. Only full pages are
// cached: a partial page is still being written.
//
// A 64-bit collision would silently hand out wrong K/V, so each entry also keeps its tokens,
// parent hash and adapter and find() compares them; a collision becomes a miss.
//
// The cache only indexes pages; it holds no references. PagePool keeps a cached page's content
// while its refcount is 0 (an idle page) and tells the cache (forget) when it reclaims it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace anvil::kvcache {

inline constexpr uint64_t kRootPageHash = 0x616e76696c4b5630ull;  // "anvilKV0": parent of page 0

// xxhash64 of the page's token ids and the adapter id, seeded with the parent page's hash.
uint64_t hash_page(uint64_t parent_hash, std::span<const int32_t> tokens, int32_t adapter_id);

struct PrefixMatch {
  std::vector<int32_t> pages;    // cached pages of the prompt's first pages, in order
  std::vector<uint64_t> hashes;  // their chained hashes
};

class PrefixCache {
 public:
  PrefixCache(int32_t n_pages, int32_t page_size);

  int32_t page_size() const { return page_size_; }
  int32_t size() const { return int32_t(by_hash_.size()); }
  bool contains(int32_t page) const;
  // The chained hash a cached page was registered under (page must be cached).
  uint64_t hash_of(int32_t page) const { return entries_[size_t(page)].hash; }

  // The longest run of cached pages that holds tokens[0, k * page_size) for k <= max_pages.
  PrefixMatch match(std::span<const int32_t> tokens, int32_t adapter_id, int32_t max_pages) const;
  // The page cached under this hash whose tokens, parent and adapter are exactly these.
  std::optional<int32_t> find(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens,
                              int32_t adapter_id) const;
  // Registers a full page (tokens.size() == page_size). Returns false and changes nothing when
  // the hash already names a page (the same content computed twice: the first copy stays the
  // shared one) or this page is already registered.
  bool insert(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens, int32_t adapter_id,
              int32_t page);
  // The page's content is gone (reclaimed or discarded); no-op when it is not cached.
  void forget(int32_t page);

 private:
  struct Entry {
    bool cached = false;
    uint64_t hash = 0;
    uint64_t parent_hash = 0;
    int32_t adapter_id = -1;
    std::vector<int32_t> tokens;
  };
  int32_t page_size_;
  std::vector<Entry> entries_;  // by page id
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace anvil::kvcache
