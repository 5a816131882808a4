// KvCache: the paged-KV bookkeeping the Engine drives, one per device pool.
//
// Ties together PagePool (page ids, refcounts, idle LRU), one BlockTable per sequence and the
// PrefixCache (full pages by chained content hash). It never touches K/V memory: the Engine
// allocates n_pages * page_size rows of K and V per layer, and copying a page (copy-on-write)
// goes through the CopyPage callback (the Engine calls Backend::copy_page for every layer).
//
// One step of a sequence:
//   auto table = kv.prepare_append(seq, n_new);   // allocates pages, copies a shared page
//   batch.add_sequence(ids, kv.n_tokens(seq), *table, ...);
//   model.forward(batch) ... writes K/V of those n_new positions
//   kv.commit(seq, ids);                           // tokens now count; full pages get cached
// prepare_append is all-or-nothing: out_of_memory (with numbers) leaves everything unchanged,
// so the scheduler can preempt another sequence and try again; nothing is dropped silently.
//
// Sharing: add_sequence() looks the prompt up page by page and shares the longest run of
// cached full pages (refcount + 1); fork() shares every page of a sequence. A page with
// refcount > 1 is never written: the only page a sequence writes that can be shared is its
// partially filled last page after a fork, and prepare_append copies it to a fresh page first.
// When a sequence ends its pages go back: to the free list, or, when the prefix cache lists
// them, to the idle LRU where a later prompt can still find them until the pool needs them.
//
// Not thread-safe: the scheduler thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kvcache/block_table.h"
#include "kvcache/page_pool.h"
#include "kvcache/prefix_cache.h"

namespace anvil::kvcache {

using SeqId = int64_t;

// Copies every layer's K and V rows of page src into page dst.
using CopyPage = std::function<Status(int32_t src_page, int32_t dst_page)>;

struct KvCacheOptions {
  int32_t n_pages = 0;
  int32_t page_size = 16;
  bool prefix_caching = true;  // off: no lookups, nothing cached, freed pages go straight back
};

struct NewSequence {
  SeqId id = -1;
  int32_t n_cached = 0;  // prompt tokens whose K/V are already in shared pages: prefill the rest
};

struct KvStats {
  int32_t n_pages = 0;
  int32_t page_size = 0;
  int32_t n_free = 0;        // on the free list
  int32_t n_used = 0;        // referenced by at least one sequence
  int32_t n_idle = 0;        // unreferenced, cached, reclaimable (n_free + n_idle = available)
  int32_t n_cached = 0;      // pages the prefix cache lists (used or idle)
  int32_t n_sequences = 0;
  int64_t n_cow_copies = 0;       // pages copied because a shared page was about to be written
  int64_t n_prefix_hit_tokens = 0;  // prompt tokens served from the prefix cache
};

class KvCache {
 public:
  // Errors: invalid_argument for n_pages < 1, page_size < 1 or a null copy callback.
  static Expected<std::unique_ptr<KvCache>> create(const KvCacheOptions& options, CopyPage copy_page);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int32_t page_size() const { return options_.page_size; }
  int32_t n_pages() const { return options_.n_pages; }

  // A new sequence for this prompt under this adapter (-1: none). With prefix caching it starts
  // holding the longest cached run of the prompt's full pages; n_cached stays below
  // prompt.size() so the last prompt token is always computed (its logits are needed).
  // Allocates nothing, so it cannot run out of pages.
  NewSequence add_sequence(std::span<const int32_t> prompt, int32_t adapter_id = -1);
  // Pages the next prepare_append(seq, n_new) would take from the pool (new pages plus a
  // copy-on-write page), for the scheduler's budget; compare with stats().n_free + n_idle.
  Expected<int32_t> pages_needed(SeqId seq, int32_t n_new) const;
  // Makes positions [n_tokens, n_tokens + n_new) writable: allocates pages and, when the
  // partially filled last page is shared, copies it to a fresh page (one CopyPage call).
  // Returns the block table for the StepBatch. Calling it again before commit is harmless.
  // Errors: not_found (unknown seq), invalid_argument, out_of_memory (nothing changed), or the
  // copy callback's error (nothing changed).
  Expected<std::vector<int32_t>> prepare_append(SeqId seq, int32_t n_new);
  // The step wrote these tokens' K/V: they now count. Pages that became full are registered in
  // the prefix cache. tokens must fit in the range the last prepare_append made writable.
  Status commit(SeqId seq, std::span<const int32_t> tokens);
  // A new sequence sharing every page of seq (same tokens, same adapter). The shared partial
  // last page is copied by whichever of the two writes into it first; both must call
  // prepare_append again before their next step.
  Expected<SeqId> fork(SeqId seq);
  // The sequence ends; its pages go back (free, or idle if cached). Error: not_found.
  Status free_sequence(SeqId seq);
  // Every idle cached page goes back to the free list (e.g. after a model or adapter reload).
  void drop_idle_cached();

  // nullptr for an unknown sequence.
  const BlockTable* block_table(SeqId seq) const;
  int32_t n_tokens(SeqId seq) const;  // -1 for an unknown sequence
  KvStats stats() const;
  const PagePool& pool() const { return pool_; }
  const PrefixCache& prefix_cache() const { return cache_; }
  // Recomputes every page's refcount from the live block tables and cross-checks the pool, the
  // prefix cache and each sequence's own records; internal error describing the first mismatch.
  Status check_invariants() const;

 private:
  struct Sequence {
    explicit Sequence(int32_t page_size) : table(page_size) {}
    BlockTable table;
    int32_t adapter_id = -1;
    std::vector<uint64_t> page_hashes;  // chained hash of each full page (n_tokens / page_size)
    std::vector<int32_t> tail;          // tokens of the partially filled last page
    int32_t writable_until = 0;         // positions < this may be written (prepare_append)
  };

  KvCache(const KvCacheOptions& options, CopyPage copy_page);
  Sequence* find(SeqId seq);
  const Sequence* find(SeqId seq) const;
  bool last_page_shared(const Sequence& s) const;

  KvCacheOptions options_;
  CopyPage copy_page_;
  PagePool pool_;
  PrefixCache cache_;
  std::unordered_map<SeqId, Sequence> seqs_;
  SeqId next_id_ = 0;
  int64_t n_cow_copies_ = 0;
  int64_t n_prefix_hit_tokens_ = 0;
};

// Bytes of one page in the device pool: K and V, every layer, page_size rows of kv_width
// (n_kv_heads * head_dim) elements of dtype. nullopt on overflow or a width that is not a
// whole number of blocks.
std::optional<int64_t> kv_page_bytes(int32_t n_layers, int32_t kv_width, int32_t page_size, DType dtype);
// How many such pages fit in budget_bytes.
int32_t kv_pages_that_fit(int64_t budget_bytes, int64_t page_bytes);

}  // namespace anvil::kvcache
