#include "core/registry.h"

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>
#include <sstream>
#include <string_view>

#include "core/log.h"

#ifndef ANVIL_VERSION_STRING
#define ANVIL_VERSION_STRING "unknown"
#endif

namespace anvil {

namespace {

// Timing policy. Five timed runs after one warm-up is the minimum; short kernels get more runs
// (up to kMaxRuns) until kMinTotalS of timed work, so the median is not one noisy sample.
constexpr int kMinRuns = 5;
constexpr int kMaxRuns = 25;
constexpr double kMinTotalS = 0.05;
// A candidate whose warm-up run is this many times slower than the best median so far has
// lost; it is not timed further (the reference at prefill shapes takes seconds).
constexpr double kHopelessFactor = 3.0;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool tuning_disabled() {
  std::string v = env("ANVIL_TUNE");
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return v == "off" || v == "0" || v == "false" || v == "no";
}

std::string hex64(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

uint64_t hash_parts(std::initializer_list<std::string_view> parts) {
  // A separator byte that never appears in the parts keeps ("ab","c") apart from ("a","bc").
  std::string s;
  for (auto p : parts) {
    s.append(p);
    s.push_back('\x1f');
  }
  return XXH64(s.data(), s.size(), 0);
}

std::filesystem::path cache_dir() {
  const std::string xdg = env("XDG_CACHE_HOME");
  if (!xdg.empty()) return std::filesystem::path(xdg) / "anvil";
  const std::string home = env("HOME");
  if (!home.empty()) return std::filesystem::path(home) / ".cache" / "anvil";
  return std::filesystem::temp_directory_path() / "anvil";
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    log().warn("tuning cache {} is not valid JSON; ignoring it", path);
    return nlohmann::json::object();
  }
  return j;
}

}  // namespace

std::string forced_kernel(const std::string& op) {
  std::stringstream ss(env("ANVIL_FORCE_KERNEL"));
  for (std::string item; std::getline(ss, item, ',');) {
    const auto colon = item.find(':');
    if (colon != std::string::npos && item.substr(0, colon) == op) return item.substr(colon + 1);
  }
  return {};
}

double max_row_relative_error(const float* out, size_t out_stride, const float* ref, size_t ref_stride,
                              int64_t rows, int64_t cols) {
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double diff2 = 0, ref2 = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double a = out[size_t(r) * out_stride + size_t(c)], b = ref[size_t(r) * ref_stride + size_t(c)];
      diff2 += (a - b) * (a - b);
      ref2 += b * b;
    }
    if (!std::isfinite(diff2)) return INFINITY;
    // An all-zero reference row only agrees with an all-zero output.
    const double e = ref2 > 0 ? std::sqrt(diff2 / ref2) : (diff2 > 0 ? INFINITY : 0.0);
    worst = std::max(worst, e);
  }
  return worst;
}

KernelTuner::KernelTuner(std::string op, std::function<TuningContext()> context)
    : op_(std::move(op)), context_fn_(std::move(context)) {}

const TuningContext& KernelTuner::context() const {
  if (!have_context_) {
    context_ = context_fn_ ? context_fn_() : TuningContext{};
    have_context_ = true;
  }
  return context_;
}

int KernelTuner::measurements() const {
  std::lock_guard lk(mu_);
  return measurements_;
}

std::vector<CandidateTiming> KernelTuner::last_timings() const {
  std::lock_guard lk(mu_);
  return last_;
}

void KernelTuner::forget_memory() {
  std::lock_guard lk(mu_);
  chosen_.clear();
}

std::string KernelTuner::cache_path() const {
  const std::string forced = env("ANVIL_TUNE_CACHE");
  if (!forced.empty()) return forced;
  // One file per machine + anvil version; entries inside are keyed per op and shape.
  const auto h = hash_parts({context().device, ANVIL_VERSION_STRING});
  return (cache_dir() / ("tuning-" + hex64(h) + ".json")).string();
}

std::string KernelTuner::disk_key(const std::string& shape) const {
  const auto& c = context();
  return hex64(hash_parts({c.device, c.driver, ANVIL_VERSION_STRING, op_, shape}));
}

std::string KernelTuner::load_from_disk(const std::string& shape) const {
  const nlohmann::json j = read_json(cache_path());
  const auto entries = j.find("entries");
  if (entries == j.end() || !entries->is_object()) return {};
  const auto e = entries->find(disk_key(shape));
  if (e == entries->end() || !e->is_object()) return {};
  return e->value("candidate", std::string());
}

void KernelTuner::save_to_disk(const std::string& shape, const std::string& choice,
                               const std::vector<CandidateTiming>& timings) const {
  const std::string path = cache_path();
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  // Read-merge-write so ops sharing the file keep each other's entries; the rename makes the
  // replacement atomic for readers in other processes.
  nlohmann::json j = read_json(path);
  j["anvil_version"] = ANVIL_VERSION_STRING;
  j["device"] = context().device;
  nlohmann::json times = nlohmann::json::object();
  for (const auto& t : timings)
    times[t.name] = {{"median_us", t.median_us}, {"runs", t.runs}, {"error", t.error}, {"accepted", t.accepted}};
  j["entries"][disk_key(shape)] = {
      {"op", op_}, {"shape", shape}, {"driver", context().driver}, {"candidate", choice}, {"timings", times}};
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f) {
      log().warn("cannot write tuning cache {}; choices are kept in memory only", tmp);
      return;
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) log().warn("cannot replace tuning cache {}: {}", path, ec.message());
}

std::vector<CandidateTiming> KernelTuner::measure(const std::vector<Entry>& all, const std::vector<size_t>& order,
                                                  TuningTrial& trial) {
  using clock = std::chrono::steady_clock;
  std::vector<CandidateTiming> out;
  double best = INFINITY;
  uint64_t seed = 0x616e76696c;  // fixed: the same inputs every time a shape is tuned
  for (size_t idx : order) {
    CandidateTiming t;
    t.name = all[idx].name;
    // Warm-up run, which is also the agreement check.
    trial.refresh(seed++);
    auto a = clock::now();
    Status st = trial.run(idx);
    double warm_s = std::chrono::duration<double>(clock::now() - a).count();
    if (const double d = trial.measured_seconds(); d >= 0) warm_s = d;
    if (!st.is_ok()) {
      log().warn("{}: candidate {} failed while tuning: {}", op_, t.name, st.to_string());
      out.push_back(t);
      continue;
    }
    t.error = trial.error();
    if (!(t.error <= all[idx].tolerance)) {
      log().warn("{}: candidate {} rejected: error {:.3g} vs the reference exceeds its tolerance {:.3g}", op_,
                 t.name, t.error, all[idx].tolerance);
      out.push_back(t);
      continue;
    }
    t.accepted = true;
    if (warm_s > kHopelessFactor * best) {
      t.median_us = warm_s * 1e6;  // one run is enough to know it lost
      t.runs = 1;
      out.push_back(t);
      continue;
    }
    std::vector<double> runs;
    double total = 0;
    while ((int(runs.size()) < kMinRuns || total < kMinTotalS) && int(runs.size()) < kMaxRuns) {
      trial.refresh(seed++);
      a = clock::now();
      st = trial.run(idx);
      double s = std::chrono::duration<double>(clock::now() - a).count();
      if (const double d = trial.measured_seconds(); d >= 0) s = d;
      if (!st.is_ok()) break;
      runs.push_back(s);
      total += s;
    }
    if (!st.is_ok()) {
      log().warn("{}: candidate {} failed while tuning: {}", op_, t.name, st.to_string());
      t.accepted = false;
      out.push_back(t);
      continue;
    }
    std::sort(runs.begin(), runs.end());
    t.runs = int(runs.size());
    t.median_us = runs[runs.size() / 2] * 1e6;
    best = std::min(best, t.median_us * 1e-6);
    out.push_back(t);
  }
  return out;
}

size_t KernelTuner::choose(const std::string& shape, const std::vector<Entry>& all,
                           const std::vector<size_t>& supported, size_t fallback,
                           const std::function<std::unique_ptr<TuningTrial>()>& make_trial) {
  auto find_supported = [&](const std::string& name) -> size_t {
    for (size_t i : supported)
      if (all[i].name == name) return i;
    return SIZE_MAX;
  };

  const std::string forced = forced_kernel(op_);
  if (!forced.empty()) {
    const size_t i = find_supported(forced);
    if (i != SIZE_MAX) return i;
    static std::once_flag warned;
    std::call_once(warned, [&] {
      log().warn("ANVIL_FORCE_KERNEL: {} has no candidate '{}' that supports {}; choosing as usual", op_, forced,
                 shape);
    });
  }
  if (tuning_disabled()) return fallback;

  std::lock_guard lk(mu_);
  if (auto it = chosen_.find(shape); it != chosen_.end()) {
    const size_t i = find_supported(it->second);
    if (i != SIZE_MAX) return i;
  }
  if (const std::string name = load_from_disk(shape); !name.empty()) {
    const size_t i = find_supported(name);
    if (i != SIZE_MAX) {
      chosen_[shape] = name;
      return i;
    }
  }

  // Measure: the heuristic choice first (it sets the bar early), everything else after.
  std::vector<size_t> order{fallback};
  for (size_t i : supported)
    if (i != fallback) order.push_back(i);
  const auto trial = make_trial();
  last_ = measure(all, order, *trial);
  ++measurements_;

  size_t best = SIZE_MAX;
  double best_us = INFINITY;
  std::string summary;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& t = last_[k];
    summary += fmt::format(" {}={}", t.name, t.accepted ? fmt::format("{:.1f}us", t.median_us) : "rejected");
    if (t.accepted && t.median_us < best_us) {
      best_us = t.median_us;
      best = order[k];
    }
  }
  if (best == SIZE_MAX) {
    log().error("{} {}: no candidate agreed with the reference; using {}", op_, shape, all[fallback].name);
    best = fallback;
  }
  log().debug("{} {}: chose {} ({})", op_, shape, all[best].name, summary.substr(1));
  chosen_[shape] = all[best].name;
  save_to_disk(shape, all[best].name, last_);
  return best;
}

}  // namespace anvil
