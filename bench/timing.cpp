#include "bench/timing.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"

namespace anvil::bench {

Timing time_it(const std::function<void()>& fn, int warmup, int min_runs, double min_total_s, int max_runs) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  double total = 0;
  while ((int(t.size()) < min_runs || total < min_total_s) && int(t.size()) < max_runs) {
    const auto a = clock::now();
    fn();
    const double s = std::chrono::duration<double>(clock::now() - a).count();
    t.push_back(s);
    total += s;
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front(), t.back(), int(t.size())};
}

double measure_copy_bandwidth(size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  auto& pool = ThreadPool::global();
  const int64_t chunk = 1 << 20;
  const int64_t n_chunks = int64_t((bytes + chunk - 1) / chunk);
  Timing t = time_it([&] {
    pool.parallel_for(n_chunks, 1, [&](int64_t b0, int64_t e0) {
      const size_t off = size_t(b0) * chunk;
      const size_t end = std::min(bytes, size_t(e0) * chunk);
      std::memcpy(b.data() + off, a.data() + off, end - off);
    });
  });
  return 2.0 * double(bytes) / t.median_s;
}

}  // namespace anvil::bench
