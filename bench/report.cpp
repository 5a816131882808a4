#include "bench/report.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

namespace anvil::bench {

void Report::mark_winners() {
  std::map<std::pair<std::string, std::string>, Row*> best;
  for (auto& r : rows) {
    r.winner = false;
    if (!r.ranked || !r.error.empty() || !(r.time_us > 0)) continue;
    auto& b = best[{r.op, r.shape}];
    if (!b || r.time_us < b->time_us) b = &r;
  }
  for (auto& [k, r] : best) r->winner = true;
}

namespace {

// Markdown table cells must not contain '|' or newlines.
std::string cell(std::string s) {
  for (char& c : s)
    if (c == '|') c = '/';
    else if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string percent(double f) {
  if (f < 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", 100.0 * f);
  return buf;
}

}  // namespace

std::string Report::markdown() const {
  bool extended = gemm_tflops > 0;
  for (const auto& r : rows) extended = extended || !r.note.empty() || !r.error.empty() || !r.ranked;
  std::string out = "## " + title + "\n\n" + machine + "\n\nceiling (measured in this run): copy " +
                    std::to_string(int(copy_bandwidth_gbps + 0.5)) + " GB/s";
  if (gemm_tflops > 0)
    out += ", " + (gemm_ceiling.empty() ? std::string("GEMM") : gemm_ceiling) + " " +
           std::to_string(int(gemm_tflops + 0.5)) + " TFLOP/s";
  out += "\n\n";
  char buf[1024];
  if (!extended) {
    out += "| op | shape | candidate | time µs | GB/s | TFLOP/s | % of roofline | winner |\n";
    out += "|---|---|---|---:|---:|---:|---:|:---:|\n";
    for (const auto& r : rows) {
      std::snprintf(buf, sizeof buf, "| %s | %s | %s | %.1f | %.1f | %.3f | %.0f%% | %s |\n", r.op.c_str(),
                    r.shape.c_str(), r.candidate.c_str(), r.time_us, r.gbps, r.tflops, 100.0 * r.roofline_fraction,
                    r.winner ? "✓" : "");
      out += buf;
    }
    return out;
  }
  out += "| op | shape | candidate | time µs | GB/s | TFLOP/s | % of copy bw | % of GEMM peak | % of roofline | "
         "winner | note |\n";
  out += "|---|---|---|---:|---:|---:|---:|---:|---:|:---:|---|\n";
  for (const auto& r : rows) {
    if (!r.error.empty()) {
      std::snprintf(buf, sizeof buf, "| %s | %s | %s | - | - | - | - | - | - |  | **error**: %s |\n", r.op.c_str(),
                    r.shape.c_str(), r.candidate.c_str(), cell(r.error).c_str());
    } else {
      std::snprintf(buf, sizeof buf, "| %s | %s | %s | %.2f | %.1f | %.3f | %s | %s | %.0f%% | %s | %s |\n",
                    r.op.c_str(), r.shape.c_str(), r.candidate.c_str(), r.time_us, r.gbps, r.tflops,
                    percent(r.bandwidth_fraction).c_str(), percent(r.compute_fraction).c_str(),
                    100.0 * r.roofline_fraction, r.winner ? "✓" : "", cell(r.note).c_str());
    }
    out += buf;
  }
  return out;
}

std::string Report::json() const {
  nlohmann::json j;
  j["title"] = title;
  j["machine"] = machine;
  j["copy_bandwidth_gbps"] = copy_bandwidth_gbps;
  if (gemm_tflops > 0) {
    j["gemm_tflops"] = gemm_tflops;
    j["gemm_ceiling"] = gemm_ceiling;
  }
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json row = {{"op", r.op},
                          {"shape", r.shape},
                          {"candidate", r.candidate},
                          {"backend", r.backend},
                          {"time_us", r.time_us},
                          {"gbps", r.gbps},
                          {"tflops", r.tflops},
                          {"roofline_fraction", r.roofline_fraction},
                          {"winner", r.winner}};
    if (r.bandwidth_fraction >= 0) row["bandwidth_fraction"] = r.bandwidth_fraction;
    if (r.compute_fraction >= 0) row["compute_fraction"] = r.compute_fraction;
    if (!r.ranked) row["ranked"] = false;
    if (!r.note.empty()) row["note"] = r.note;
    if (!r.error.empty()) row["error"] = r.error;
    j["rows"].push_back(std::move(row));
  }
  return j.dump(2);
}

}  // namespace anvil::bench
