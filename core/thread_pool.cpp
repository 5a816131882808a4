#include "core/thread_pool.h"

#include <algorithm>

namespace anvil {

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

// Takes the next chunk under the lock and runs it outside; false when none is left.
bool ThreadPool::run_one_chunk() {
  int64_t begin, end;
  const std::function<void(int64_t, int64_t)>* job;
  {
    std::lock_guard lk(mu_);
    if (!job_ || next_ >= n_) return false;
    begin = next_;
    end = std::min(n_, begin + chunk_);
    next_ = end;
    job = job_;
  }
  (*job)(begin, end);
  {
    std::lock_guard lk(mu_);
    if (--pending_ == 0) cv_done_.notify_all();
  }
  return true;
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || (job_ && generation_ != seen); });
      if (stop_) return;
      seen = generation_;
    }
    while (run_one_chunk()) {
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  std::lock_guard call(call_mu_);
  const int64_t n_chunks_target = int64_t(size()) * 4;
  const int64_t chunk = std::max(grain, (n + n_chunks_target - 1) / n_chunks_target);
  {
    std::lock_guard lk(mu_);
    job_ = &fn;
    n_ = n;
    chunk_ = chunk;
    next_ = 0;
    pending_ = (n + chunk - 1) / chunk;
    ++generation_;
  }
  cv_work_.notify_all();
  while (run_one_chunk()) {
  }
  std::unique_lock lk(mu_);
  cv_done_.wait(lk, [&] { return pending_ == 0; });
  job_ = nullptr;
}

}  // namespace anvil
