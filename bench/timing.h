// Timing for benchmarks: warm-up, then the median of repeated runs (robust to the noise of a
// shared machine), with the spread reported so a reader can judge it.
#pragma once

#include <functional>
#include <vector>

namespace anvil::bench {

struct Timing {
  double median_s = 0;
  double min_s = 0;
  double max_s = 0;
  int runs = 0;
};

// Runs `fn` `warmup` times, then until `min_runs` runs and `min_total_s` seconds have passed
// (capped at max_runs), timing each run.
Timing time_it(const std::function<void()>& fn, int warmup = 2, int min_runs = 5, double min_total_s = 0.2,
               int max_runs = 1000);

// Host memory copy bandwidth (bytes read + written per second), measured on `bytes`-sized
// buffers: the CPU roofline every bandwidth-bound kernel is compared against in the same run.
double measure_copy_bandwidth(size_t bytes);

}  // namespace anvil::bench
