// bench-kernels --backend cuda --op sample: Backend::sample on the CUDA backend (cuda/sampling.cu)
// against what the engine does without it, the Backend default (copy each row to the host and run
// sample_row there), at Qwen's (151936) and Gemma 3's (262144) vocabularies, 1 and 8 rows, and
// four SamplingParams: greedy, top_k 40 at T 0.8, top_p 0.95 at T 0.8 (no top-k: the CPU sorts a
// growing prefix) and the defaults (SamplingParams{}).
//
// Timing: every call waits for its ids, so a row's time is the median over the samples of one
// call's host wall time (after 3 warm-up calls), launch and copy latency included: that is what
// a decode step pays. bytes: n * V * 4, the logits read once; the fraction is of the copy ceiling
// measured in the same run. Logits are random normal (sd 2.5), the same for both candidates, and
// each row's note says whether the two candidates drew the same ids.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_kernels_cuda.h"
#include "core/backend.h"
#include "core/sampler.h"
#include "cuda/backend.h"

namespace anvil::bench {
namespace {

struct SampleConfig {
  const char* name;
  SamplingParams params;
};

std::vector<SampleConfig> sample_configs() {
  SamplingParams greedy;
  greedy.temperature = 0.0f, greedy.top_k = 0, greedy.top_p = 1.0f, greedy.min_p = 0.0f;
  SamplingParams top_k;
  top_k.temperature = 0.8f, top_k.top_k = 40, top_k.top_p = 1.0f, top_k.min_p = 0.0f;
  SamplingParams top_p;
  top_p.temperature = 0.8f, top_p.top_k = 0, top_p.top_p = 0.95f, top_p.min_p = 0.0f;
  return {{"greedy", greedy}, {"top_k=40 T=0.8", top_k}, {"top_p=0.95 T=0.8", top_p}, {"defaults", SamplingParams{}}};
}

// Median wall time of one call, microseconds.
Expected<double> median_call_us(int samples, const std::function<Status()>& call) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) ANVIL_RETURN_IF_ERROR(call());
  std::vector<double> t;
  for (int k = 0; k < samples; ++k) {
    const auto t0 = clock::now();
    ANVIL_RETURN_IF_ERROR(call());
    t.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + std::ptrdiff_t(t.size() / 2), t.end());
  return t[t.size() / 2];
}

Row sample_row_result(const Report& report, const std::string& shape, const char* candidate, double bytes,
                      const Expected<double>& us, const std::string& note) {
  Row r;
  r.op = "sample";
  r.shape = shape;
  r.candidate = candidate;
  r.backend = "cuda";
  r.note = note;
  if (!us) {
    r.error = us.status().to_string();
    return r;
  }
  r.time_us = us.value();
  r.gbps = bytes / (r.time_us * 1e-6) / 1e9;
  r.bandwidth_fraction = report.copy_bandwidth_gbps > 0 ? r.gbps / report.copy_bandwidth_gbps : -1;
  r.roofline_fraction = std::max(r.bandwidth_fraction, 0.0);
  return r;
}

void add_row(Report& report, Row r) {
  if (!r.error.empty())
    std::fprintf(stderr, "  %-11s %-58s %-26s error: %s\n", r.op.c_str(), r.shape.c_str(), r.candidate.c_str(),
                 r.error.c_str());
  else
    std::fprintf(stderr, "  %-11s %-58s %-26s %10.2f us %8.1f GB/s %4.0f%%\n", r.op.c_str(), r.shape.c_str(),
                 r.candidate.c_str(), r.time_us, r.gbps, 100.0 * r.roofline_fraction);
  report.rows.push_back(std::move(r));
}

// Both candidates on one (V, n, config).
Status bench_sample_shape(Report& report, const CudaBenchOptions& opt, Backend& be, int64_t V, int64_t n,
                          const SampleConfig& cfg, const std::string& shape) {
  std::mt19937 rng(uint32_t(V * 31 + n));
  std::normal_distribution<float> g(0.0f, 2.5f);
  std::vector<float> host(static_cast<size_t>(n * V));
  for (float& x : host) x = g(rng);
  auto buf = be.alloc(host.size() * sizeof(float));
  if (!buf) return buf.status();
  const Tensor logits = (*buf)->as_tensor(DType::F32, n, V);
  ANVIL_RETURN_IF_ERROR(be.copy_from_host(logits, host.data()));

  std::vector<SampleRequest> requests(static_cast<size_t>(n));
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].params = cfg.params;
    requests[i].uniform = cfg.params.temperature > 0.0f ? (double(i) + 0.5) / double(n) : 0.0;
  }
  std::vector<int32_t> gpu_ids(static_cast<size_t>(n)), host_ids(static_cast<size_t>(n));
  const double bytes = double(n) * double(V) * sizeof(float);
  auto gpu_call = [&]() { return be.sample(logits, requests, gpu_ids); };
  auto host_call = [&]() { return be.Backend::sample(logits, requests, host_ids); };  // the default, not the override

  const Expected<double> gpu_us = median_call_us(opt.samples, gpu_call);
  const Expected<double> host_us = median_call_us(opt.samples, host_call);
  std::string agree;
  if (gpu_us && host_us) {
    int differ = 0;
    for (size_t i = 0; i < gpu_ids.size(); ++i) differ += gpu_ids[i] != host_ids[i];
    agree = differ == 0 ? "; ids agree with host" : "; ids differ from host in " + std::to_string(differ) + " rows";
  }
  const std::string how = "median of " + std::to_string(opt.samples) + " synchronous calls, host clock";
  add_row(report, sample_row_result(report, shape, "cuda", bytes, gpu_us, how + agree));
  add_row(report, sample_row_result(report, shape, "host", bytes, host_us,
                                    how + "; copy_to_host per row + sample_row (Backend::sample's default)"));
  return Status::ok();
}

}  // namespace

void run_sampling_benchmarks(Report& report, const CudaBenchOptions& opt) {
  const std::vector<std::pair<const char*, int64_t>> vocabs =
      opt.quick ? std::vector<std::pair<const char*, int64_t>>{{"Qwen", 151936}}
                : std::vector<std::pair<const char*, int64_t>>{{"Qwen", 151936}, {"Gemma 3", 262144}};
  auto be = cuda::make_backend(opt.device);
  if (!be) {
    add_row(report, sample_row_result(report, "-", "cuda::make_backend", 0, Expected<double>(be.status()), ""));
    return;
  }
  for (const auto& [model, V] : vocabs)
    for (int64_t n : {1, 8})
      for (const SampleConfig& cfg : sample_configs()) {
        const std::string shape =
            std::string(model) + " V=" + std::to_string(V) + " n=" + std::to_string(n) + " " + cfg.name;
        if (!opt.filter.empty() && ("sample " + shape).find(opt.filter) == std::string::npos) continue;
        if (Status s = bench_sample_shape(report, opt, **be, V, n, cfg, shape); !s)
          add_row(report, sample_row_result(report, shape, "cuda", 0, Expected<double>(s), ""));
      }
}

}  // namespace anvil::bench
