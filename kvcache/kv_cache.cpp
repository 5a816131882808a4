#include "kvcache/kv_cache.h"

#include <algorithm>
#include <limits>

namespace anvil::kvcache {

Expected<std::unique_ptr<KvCache>> KvCache::create(const KvCacheOptions& options, CopyPage copy_page) {
  if (options.n_pages < 1)
    return make_error(StatusCode::invalid_argument, "KV cache: n_pages must be >= 1, got ", options.n_pages);
  if (options.page_size < 1)
    return make_error(StatusCode::invalid_argument, "KV cache: page_size must be >= 1, got ", options.page_size);
  if (!copy_page) return make_error(StatusCode::invalid_argument, "KV cache: no copy-page callback");
  return std::unique_ptr<KvCache>(new KvCache(options, std::move(copy_page)));
}

KvCache::KvCache(const KvCacheOptions& options, CopyPage copy_page)
    : options_(options),
      copy_page_(std::move(copy_page)),
      pool_(options.n_pages),
      cache_(options.n_pages, options.page_size) {
  // A reclaimed idle page is about to be overwritten: no prompt may find it any more.
  pool_.set_reclaim_listener([this](int32_t page) { cache_.forget(page); });
}

KvCache::Sequence* KvCache::find(SeqId seq) {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : &it->second;
}

const KvCache::Sequence* KvCache::find(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : &it->second;
}

const BlockTable* KvCache::block_table(SeqId seq) const {
  const Sequence* s = find(seq);
  return s ? &s->table : nullptr;
}

int32_t KvCache::n_tokens(SeqId seq) const {
  const Sequence* s = find(seq);
  return s ? s->table.n_tokens() : -1;
}

NewSequence KvCache::add_sequence(std::span<const int32_t> prompt, int32_t adapter_id) {
  const SeqId id = next_id_++;
  Sequence s(page_size());
  s.adapter_id = adapter_id;
  if (options_.prefix_caching && !prompt.empty()) {
    const int32_t max_pages = int32_t((prompt.size() - 1) / size_t(page_size()));
    PrefixMatch m = cache_.match(prompt, adapter_id, max_pages);
    for (int32_t page : m.pages) {
      // Cached pages are used or idle, never free, so retain cannot fail here.
      Status st = pool_.retain(page);
      (void)st;
      s.table.push_page(page);
    }
    s.page_hashes = std::move(m.hashes);
    const int32_t n_cached = s.table.n_pages() * page_size();
    s.table.set_n_tokens(n_cached);
    s.writable_until = n_cached;
    n_prefix_hit_tokens_ += n_cached;
  }
  const int32_t n_cached = s.table.n_tokens();
  seqs_.emplace(id, std::move(s));
  return {id, n_cached};
}

bool KvCache::last_page_shared(const Sequence& s) const {
  const int32_t n = s.table.n_tokens();
  if (n % page_size() == 0) return false;  // no partial page: the next write starts a fresh one
  return pool_.refcount(s.table.pages()[size_t(n / page_size())]) > 1;
}

Expected<int32_t> KvCache::pages_needed(SeqId seq, int32_t n_new) const {
  const Sequence* s = find(seq);
  if (!s) return make_error(StatusCode::not_found, "KV cache: no sequence ", seq);
  if (n_new < 0) return make_error(StatusCode::invalid_argument, "KV cache: append of ", n_new, " tokens");
  if (n_new == 0) return 0;
  return s->table.pages_to_grow(int64_t(s->table.n_tokens()) + n_new) + (last_page_shared(*s) ? 1 : 0);
}

Expected<std::vector<int32_t>> KvCache::prepare_append(SeqId seq, int32_t n_new) {
  Sequence* s = find(seq);
  if (!s) return make_error(StatusCode::not_found, "KV cache: no sequence ", seq);
  if (n_new < 0) return make_error(StatusCode::invalid_argument, "KV cache: append of ", n_new, " tokens");
  const int32_t n = s->table.n_tokens();
  const int64_t target = int64_t(n) + n_new;
  if (target > std::numeric_limits<int32_t>::max() - page_size())
    return make_error(StatusCode::invalid_argument, "KV cache: sequence ", seq, " would hold ", target, " tokens");
  if (n_new == 0) return s->table.pages();

  const bool cow = last_page_shared(*s);
  const int32_t need = s->table.pages_to_grow(target) + (cow ? 1 : 0);
  if (need > pool_.n_available())
    return make_error(StatusCode::out_of_memory, "KV cache: sequence ", seq, " appending ", n_new, " tokens to ", n,
                      " needs ", need, " pages (", cow ? "1 copy-on-write + " : "", need - (cow ? 1 : 0),
                      " new), have ", pool_.n_free(), " free + ", pool_.n_idle(), " reclaimable cached of ",
                      pool_.n_pages(), " (page size ", page_size(), ")");

  if (cow) {
    const int32_t index = n / page_size();
    const int32_t shared = s->table.pages()[size_t(index)];
    auto fresh = pool_.allocate(1);
    if (!fresh) return fresh.status();
    const int32_t page = (*fresh)[0];
    if (Status st = copy_page_(shared, page); !st.is_ok()) {
      Status undo = pool_.release(page, false);
      (void)undo;
      return make_error(st.code(), "KV cache: copy-on-write of page ", shared, " to ", page, ": ", st.message());
    }
    s->table.replace_page(index, page);
    // The shared page keeps its other holders (refcount was > 1), so this never frees it.
    ANVIL_RETURN_IF_ERROR(pool_.release(shared, false));
    ++n_cow_copies_;
  }
  // Checked above: cannot run short.
  ANVIL_RETURN_IF_ERROR(s->table.ensure_capacity(pool_, target));
  s->writable_until = int32_t(target);
  return s->table.pages();
}

Status KvCache::commit(SeqId seq, std::span<const int32_t> tokens) {
  Sequence* s = find(seq);
  if (!s) return make_error(StatusCode::not_found, "KV cache: no sequence ", seq);
  const int32_t n = s->table.n_tokens();
  if (int64_t(n) + int64_t(tokens.size()) > s->writable_until)
    return make_error(StatusCode::invalid_argument, "KV cache: sequence ", seq, " commits ", tokens.size(),
                      " tokens at ", n, " but only [", n, ", ", s->writable_until,
                      ") was prepared (call prepare_append first)");
  const size_t ps = size_t(page_size());
  for (int32_t t : tokens) {
    s->tail.push_back(t);
    if (s->tail.size() < ps) continue;
    const size_t index = s->page_hashes.size();
    const uint64_t parent = index == 0 ? kRootPageHash : s->page_hashes.back();
    const uint64_t h = hash_page(parent, s->tail, s->adapter_id);
    s->page_hashes.push_back(h);
    // false when the same content is cached already (computed twice): this copy stays private.
    if (options_.prefix_caching) cache_.insert(h, parent, s->tail, s->adapter_id, s->table.pages()[index]);
    s->tail.clear();
  }
  s->table.set_n_tokens(n + int32_t(tokens.size()));
  return Status::ok();
}

Expected<SeqId> KvCache::fork(SeqId seq) {
  Sequence* src = find(seq);
  if (!src) return make_error(StatusCode::not_found, "KV cache: no sequence ", seq);
  const int32_t n = src->table.n_tokens();
  Sequence child(page_size());
  child.adapter_id = src->adapter_id;
  child.page_hashes = src->page_hashes;
  child.tail = src->tail;
  // Only the pages holding tokens are shared; reserved capacity beyond stays the source's.
  const int32_t n_shared = BlockTable::pages_for(n, page_size());
  for (int32_t i = 0; i < n_shared; ++i) {
    const int32_t page = src->table.pages()[size_t(i)];
    ANVIL_RETURN_IF_ERROR(pool_.retain(page));
    child.table.push_page(page);
  }
  child.table.set_n_tokens(n);
  child.writable_until = n;
  src->writable_until = n;  // its partial last page may now be shared: prepare again
  const SeqId id = next_id_++;
  seqs_.emplace(id, std::move(child));
  return id;
}

Status KvCache::free_sequence(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return make_error(StatusCode::not_found, "KV cache: no sequence ", seq);
  const bool caching = options_.prefix_caching;
  Status st = it->second.table.release_all(pool_, [&](int32_t page) { return caching && cache_.contains(page); });
  seqs_.erase(it);
  return st;
}

void KvCache::drop_idle_cached() {
  for (int32_t page : pool_.idle_pages()) {
    cache_.forget(page);
    Status st = pool_.discard_idle(page);
    (void)st;
  }
}

KvStats KvCache::stats() const {
  KvStats st;
  st.n_pages = pool_.n_pages();
  st.page_size = page_size();
  st.n_free = pool_.n_free();
  st.n_used = pool_.n_used();
  st.n_idle = pool_.n_idle();
  st.n_cached = cache_.size();
  st.n_sequences = int32_t(seqs_.size());
  st.n_cow_copies = n_cow_copies_;
  st.n_prefix_hit_tokens = n_prefix_hit_tokens_;
  return st;
}

Status KvCache::check_invariants() const {
  const int32_t ps = page_size();
  std::vector<int32_t> refs(size_t(n_pages()), 0);
  for (const auto& [id, s] : seqs_) {
    const BlockTable& t = s.table;
    const int32_t n = t.n_tokens();
    if (t.capacity() < n)
      return make_error(StatusCode::internal, "KV invariant: sequence ", id, " holds ", n, " tokens in ",
                        t.n_pages(), " pages");
    if (s.page_hashes.size() != size_t(n / ps) || s.tail.size() != size_t(n % ps))
      return make_error(StatusCode::internal, "KV invariant: sequence ", id, " has ", s.page_hashes.size(),
                        " page hashes and ", s.tail.size(), " tail tokens for ", n, " tokens");
    if (s.writable_until < n)
      return make_error(StatusCode::internal, "KV invariant: sequence ", id, " writable_until < n_tokens");
    for (int32_t page : t.pages()) {
      if (page < 0 || page >= n_pages())
        return make_error(StatusCode::internal, "KV invariant: sequence ", id, " holds page ", page);
      ++refs[size_t(page)];
    }
    // Pages beyond those holding tokens are reserved capacity, and a reservation is never shared.
    for (int32_t i = BlockTable::pages_for(n, ps); i < t.n_pages(); ++i)
      if (pool_.refcount(t.pages()[size_t(i)]) != 1)
        return make_error(StatusCode::internal, "KV invariant: sequence ", id, " reserved page ",
                          t.pages()[size_t(i)], " is shared");
  }
  int32_t n_free = 0, n_idle = 0;
  for (int32_t p = 0; p < n_pages(); ++p) {
    const int32_t want = refs[size_t(p)];
    if (pool_.refcount(p) != want)
      return make_error(StatusCode::internal, "KV invariant: page ", p, " refcount ", pool_.refcount(p), ", but ",
                        want, " block tables hold it");
    const bool free = pool_.is_free(p), idle = pool_.is_idle(p);
    if (want > 0 && (free || idle))
      return make_error(StatusCode::internal, "KV invariant: page ", p, " is held but ", free ? "free" : "idle");
    if (want == 0 && !free && !idle)
      return make_error(StatusCode::internal, "KV invariant: page ", p, " leaked (unheld, not free or idle)");
    if (idle && !cache_.contains(p))
      return make_error(StatusCode::internal, "KV invariant: idle page ", p, " is not in the prefix cache");
    if (free && cache_.contains(p))
      return make_error(StatusCode::internal, "KV invariant: free page ", p, " is still in the prefix cache");
    n_free += free;
    n_idle += idle;
  }
  if (n_free != pool_.n_free() || n_idle != pool_.n_idle())
    return make_error(StatusCode::internal, "KV invariant: pool counts ", pool_.n_free(), " free ", pool_.n_idle(),
                      " idle, pages say ", n_free, " and ", n_idle);
  return Status::ok();
}

std::optional<int64_t> kv_page_bytes(int32_t n_layers, int32_t kv_width, int32_t page_size, DType dtype) {
  if (n_layers < 0 || kv_width < 0 || page_size < 0) return std::nullopt;
  const auto row = row_bytes(dtype, uint64_t(kv_width));
  if (!row) return std::nullopt;
  const unsigned __int128 bytes = (unsigned __int128)(*row) * uint64_t(page_size) * uint64_t(n_layers) * 2u;
  if (bytes > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return int64_t(bytes);
}

int32_t kv_pages_that_fit(int64_t budget_bytes, int64_t page_bytes) {
  if (budget_bytes <= 0 || page_bytes <= 0) return 0;
  return int32_t(std::min<int64_t>(budget_bytes / page_bytes, std::numeric_limits<int32_t>::max()));
}

}  // namespace anvil::kvcache
