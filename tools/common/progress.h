// A progress display on stderr for long writes (quantize, make-test-model): item i/n, a bar,
// bytes done, MB/s and ETA. On a terminal one line is redrawn in place; otherwise plain lines
// are printed now and then (every 10% or every few seconds) so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace anvil::tools {

class ProgressBar {
 public:
  // total_bytes is what add_bytes() will sum to; it drives the bar, the rate and the ETA.
  ProgressBar(std::string title, size_t n_items, uint64_t total_bytes, bool enabled = true);
  ~ProgressBar();

  // Item `index` (0-based) starts; `label` is shown beside the bar (a tensor name).
  void begin_item(size_t index, std::string_view label);
  // Work done; callable from any thread.
  void add_bytes(uint64_t bytes);
  // Ends the display (a final line); called by the destructor if not before.
  void finish();

  double elapsed_seconds() const;

 private:
  void render_locked(bool force);

  using Clock = std::chrono::steady_clock;
  std::string title_;
  size_t n_items_;
  uint64_t total_bytes_;
  bool enabled_, tty_, finished_ = false;
  std::mutex mu_;
  size_t item_ = 0;
  std::string label_;
  uint64_t done_bytes_ = 0;
  Clock::time_point start_, last_render_;
  int last_decile_ = -1;
  size_t last_line_len_ = 0;
};

}  // namespace anvil::tools
