#include "bench/report.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

namespace anvil::bench {

void Report::mark_winners() {
  std::map<std::pair<std::string, std::string>, Row*> best;
  for (auto& r : rows) {
    r.winner = false;
    auto& b = best[{r.op, r.shape}];
    if (!b || r.time_us < b->time_us) b = &r;
  }
  for (auto& [k, r] : best) r->winner = true;
}

std::string Report::markdown() const {
  std::string out = "## " + title + "\n\n" + machine + "\n\nceiling (measured in this run): copy " +
                    std::to_string(int(copy_bandwidth_gbps + 0.5)) + " GB/s\n\n";
  out += "| op | shape | candidate | time µs | GB/s | TFLOP/s | % of roofline | winner |\n";
  out += "|---|---|---|---:|---:|---:|---:|:---:|\n";
  char buf[512];
  for (const auto& r : rows) {
    std::snprintf(buf, sizeof buf, "| %s | %s | %s | %.1f | %.1f | %.3f | %.0f%% | %s |\n", r.op.c_str(),
                  r.shape.c_str(), r.candidate.c_str(), r.time_us, r.gbps, r.tflops, 100.0 * r.roofline_fraction,
                  r.winner ? "✓" : "");
    out += buf;
  }
  return out;
}

std::string Report::json() const {
  nlohmann::json j;
  j["title"] = title;
  j["machine"] = machine;
  j["copy_bandwidth_gbps"] = copy_bandwidth_gbps;
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rows)
    j["rows"].push_back({{"op", r.op},
                         {"shape", r.shape},
                         {"candidate", r.candidate},
                         {"backend", r.backend},
                         {"time_us", r.time_us},
                         {"gbps", r.gbps},
                         {"tflops", r.tflops},
                         {"roofline_fraction", r.roofline_fraction},
                         {"winner", r.winner}});
  return j.dump(2);
}

}  // namespace anvil::bench
