// Benchmark results: one row per (op, shape, candidate), printed as a markdown table and
// written as JSON so runs can be compared over time.
#pragma once

#include <string>
#include <vector>

namespace anvil::bench {

struct Row {
  std::string op;         // "dequantize"
  std::string shape;      // "Q4_K 4096x4096"
  std::string candidate;  // "cpu_reference"
  std::string backend;    // "cpu"
  double time_us = 0;
  double gbps = 0;        // bytes moved (read + written) per second / 1e9
  double tflops = 0;      // 0 when the op is not FLOP-bound
  double roofline_fraction = 0;  // of the ceiling measured in the same run
  bool winner = false;    // fastest candidate for this (op, shape)
};

struct Report {
  std::string title;
  std::string machine;          // free text: CPU model, threads, GPU
  double copy_bandwidth_gbps = 0;
  std::vector<Row> rows;

  void mark_winners();
  std::string markdown() const;
  std::string json() const;
};

}  // namespace anvil::bench
