#include "common/progress.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "common/cli.h"

namespace anvil::tools {

ProgressBar::ProgressBar(std::string title, size_t n_items, uint64_t total_bytes, bool enabled)
    : title_(std::move(title)),
      n_items_(n_items),
      total_bytes_(total_bytes),
      enabled_(enabled),
      tty_(stderr_is_tty()),
      start_(Clock::now()),
      last_render_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

void ProgressBar::begin_item(size_t index, std::string_view label) {
  std::lock_guard lock(mu_);
  item_ = index;
  label_ = std::string(label);
  render_locked(false);
}

void ProgressBar::add_bytes(uint64_t bytes) {
  std::lock_guard lock(mu_);
  done_bytes_ += bytes;
  render_locked(false);
}

void ProgressBar::finish() {
  std::lock_guard lock(mu_);
  if (finished_) return;
  item_ = n_items_ ? n_items_ - 1 : 0;
  done_bytes_ = std::max(done_bytes_, total_bytes_);
  label_.clear();
  render_locked(true);
  if (enabled_ && tty_) std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::render_locked(bool force) {
  if (!enabled_ || finished_) return;
  const auto now = Clock::now();
  const double since_last = std::chrono::duration<double>(now - last_render_).count();
  const double frac = total_bytes_ ? std::min(1.0, double(done_bytes_) / double(total_bytes_)) : 1.0;
  const int decile = int(frac * 10);
  if (!force) {
    // a terminal redraws at most 10 times a second; a log gets a line per 10% or per 5 s
    if (tty_ && since_last < 0.1) return;
    if (!tty_ && decile == last_decile_ && since_last < 5.0) return;
    if (!tty_ && frac >= 1.0) return;  // finish() prints the 100% line
  }
  last_render_ = now;
  last_decile_ = decile;

  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? double(done_bytes_) / elapsed : 0.0;
  const double eta = rate > 0 ? double(total_bytes_ - std::min(done_bytes_, total_bytes_)) / rate : -1;
  const size_t width = n_items_ ? fmt::formatted_size("{}", n_items_) : 1;
  std::string line = fmt::format("{} [{:>{}}/{}] ", title_, std::min(item_ + 1, n_items_), width, n_items_);
  if (tty_) {
    constexpr int kBar = 24;
    const int fill = int(frac * kBar);
    line += '[' + std::string(size_t(fill), '#') + std::string(size_t(kBar - fill), '.') + "] ";
  }
  line += fmt::format("{:3.0f}% {} / {}, {:.1f} MB/s", frac * 100, human_bytes(double(done_bytes_)),
                      human_bytes(double(total_bytes_)), rate / 1e6);
  if (force)
    line += fmt::format(", {} elapsed", human_duration(elapsed));
  else
    line += fmt::format(", ETA {}", human_duration(eta));
  if (!label_.empty()) line += "  " + label_;
  if (tty_) {
    const size_t len = line.size();
    if (len < last_line_len_) line += std::string(last_line_len_ - len, ' ');
    last_line_len_ = len;
    std::fprintf(stderr, "\r%s", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace anvil::tools
