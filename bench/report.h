// Benchmark results: one row per (op, shape, candidate), printed as a markdown table and
// written as JSON so runs can be compared over time.
//
// The CPU report uses the first columns only; the CUDA report (bench/bench_kernels_cuda.cu) also
// measures a GEMM ceiling and fills the per-ceiling fractions, notes, errors and unranked
// reference rows, and its markdown then carries the extra columns.
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
  // Optional (CUDA report): the two fractions behind roofline_fraction (its max); < 0 = not given.
  double bandwidth_fraction = -1;  // gbps / Report::copy_bandwidth_gbps
  double compute_fraction = -1;    // tflops / Report::gemm_tflops
  bool ranked = true;     // false: a reference line or the dispatcher, never the winner
  std::string note;       // how it was timed, which kernel the dispatcher chose, agreement, ...
  std::string error;      // non-empty: the op failed (the numbers are 0); never the winner
};

struct Report {
  std::string title;
  std::string machine;          // free text: CPU model, threads, GPU
  double copy_bandwidth_gbps = 0;
  double gemm_tflops = 0;       // dense GEMM ceiling measured in the same run (0: not measured)
  std::string gemm_ceiling;     // what gemm_tflops is ("cuBLAS bf16 8192^3")
  std::vector<Row> rows;

  void mark_winners();
  std::string markdown() const;
  std::string json() const;
};

}  // namespace anvil::bench
