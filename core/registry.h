// Kernel registry and tuner: each op has candidates {name, supports, run}; the tuner times the
// supported ones on the real shape (warm-up, median of several runs on fresh random inputs),
// rejects any that disagree with the op's reference beyond the candidate's tolerance, picks
// the fastest, and caches the choice in memory and on disk
// ($ANVIL_TUNE_CACHE, else $XDG_CACHE_HOME/anvil/tuning-<hash>.json, else ~/.cache/anvil/...),
// keyed by an xxhash64 of device, driver, anvil version, op and shape.
//
// Environment:
//   ANVIL_TUNE=off              never measure: use the op's heuristic choice
//   ANVIL_FORCE_KERNEL=op:name  always use candidate `name` for `op` (comma-separated list),
//                               when it supports the shape (else a warning and the usual path)
//   ANVIL_TUNE_CACHE=path       the tuning file to read and write
//
// Generic: each backend registers its candidates and says what identifies its device.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

namespace anvil {

// Built by an op for one shape: owns fresh inputs and an output, and knows how to check an
// output against the op's reference on the same inputs.
class TuningTrial {
 public:
  virtual ~TuningTrial() = default;
  // New random inputs from `seed`; poisons the output and leaves caches cold (as in a forward
  // pass, where the weights of one layer are not in cache when its matmul starts).
  virtual void refresh(uint64_t seed) = 0;
  // Runs candidate `candidate` (an index into the registry's list) on the current inputs.
  virtual Status run(size_t candidate) = 0;
  // Error of the last run's output against the op's reference on the same inputs:
  // max over output rows of ||y_row - ref_row||_2 / ||ref_row||_2 (NaN/inf when poisoned).
  virtual double error() = 0;
  // The last run's time as the trial measured it itself, in seconds (a GPU trial times its
  // kernels with device events, without the launch and synchronization latency the host clock
  // would add); < 0: the tuner times run() with the host clock.
  virtual double measured_seconds() { return -1.0; }
};

// What the tuning key says about the machine, besides op and shape.
struct TuningContext {
  std::string device;  // e.g. "cpu: AMD EPYC, avx512, 2 threads"
  std::string driver;  // e.g. the BLAS library's build string
};

// One candidate's outcome in a measurement (kept for logs, the cache file and tests).
struct CandidateTiming {
  std::string name;
  double median_us = 0;  // 0 when not timed (rejected or failed)
  int runs = 0;
  double error = 0;
  bool accepted = false;
};

// The non-template part of a registry: choices, measurement, the cache.
class KernelTuner {
 public:
  struct Entry {
    std::string name;
    double tolerance;  // max error() that still counts as agreeing with the reference
  };

  KernelTuner(std::string op, std::function<TuningContext()> context);

  // Picks one of `supported` (indices into `all`, non-empty). `fallback` (in `supported`) is
  // the op's heuristic choice: used when tuning is off, and when no candidate agrees.
  size_t choose(const std::string& shape, const std::vector<Entry>& all, const std::vector<size_t>& supported,
                size_t fallback, const std::function<std::unique_ptr<TuningTrial>()>& make_trial);

  // How many shapes this tuner has measured (tests check that cached choices are not re-measured).
  int measurements() const;
  // Timings of the most recent measurement.
  std::vector<CandidateTiming> last_timings() const;
  // Forgets in-memory choices (the disk cache stays): the next choose() reads the file.
  void forget_memory();
  // The tuning file this process reads and writes.
  std::string cache_path() const;

 private:
  std::vector<CandidateTiming> measure(const std::vector<Entry>& all, const std::vector<size_t>& order,
                                       TuningTrial& trial);
  std::string disk_key(const std::string& shape) const;
  std::string load_from_disk(const std::string& shape) const;
  void save_to_disk(const std::string& shape, const std::string& choice,
                    const std::vector<CandidateTiming>& timings) const;

  std::string op_;
  std::function<TuningContext()> context_fn_;
  mutable std::mutex mu_;
  mutable bool have_context_ = false;
  mutable TuningContext context_;
  std::map<std::string, std::string> chosen_;  // shape -> candidate name
  std::vector<CandidateTiming> last_;
  int measurements_ = 0;
  const TuningContext& context() const;
};

// Candidates of one op with arguments `Args`. Candidates are added at start-up (not thread-safe);
// choose() is thread-safe.
template <typename Args>
class KernelRegistry {
 public:
  struct Candidate {
    std::string name;
    double tolerance;  // see KernelTuner::Entry
    std::function<bool(const Args&)> supports;
    std::function<Status(const Args&)> run;
  };

  KernelRegistry(std::string op, std::function<TuningContext()> context) : tuner_(std::move(op), std::move(context)) {}

  void add(Candidate c) { candidates_.push_back(std::move(c)); }
  const std::vector<Candidate>& candidates() const { return candidates_; }
  KernelTuner& tuner() { return tuner_; }

  // The candidate that runs `args`, whose shape key is `shape`; null when none supports it.
  // `heuristic` names the op's untuned preference; `make_trial` builds a measurement of `shape`.
  const Candidate* choose(const std::string& shape, const Args& args, const std::string& heuristic,
                          const std::function<std::unique_ptr<TuningTrial>()>& make_trial) {
    std::vector<KernelTuner::Entry> all;
    std::vector<size_t> supported;
    size_t fallback = SIZE_MAX;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      all.push_back({candidates_[i].name, candidates_[i].tolerance});
      if (!candidates_[i].supports(args)) continue;
      supported.push_back(i);
      if (candidates_[i].name == heuristic || fallback == SIZE_MAX) fallback = i;
    }
    if (supported.empty()) return nullptr;
    if (supported.size() == 1) return &candidates_[supported[0]];
    return &candidates_[tuner_.choose(shape, all, supported, fallback, make_trial)];
  }

 private:
  std::vector<Candidate> candidates_;
  KernelTuner tuner_;
};

// The candidate ANVIL_FORCE_KERNEL names for `op` ("matmul:blas,attention:flash": the first
// entry for the op), or "".
std::string forced_kernel(const std::string& op);

// Relative error of `out` against `ref` as TuningTrial::error() defines it, for `rows` rows of
// `cols` floats with the given strides (in floats).
double max_row_relative_error(const float* out, size_t out_stride, const float* ref, size_t ref_stride,
                              int64_t rows, int64_t cols);

}  // namespace anvil
