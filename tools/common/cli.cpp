#include "common/cli.h"

#include "core/backend_factory.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <new>

#include <fmt/format.h>

namespace anvil::tools {

void check(const Status& s, std::string_view context) {
  if (s.is_ok()) return;
  if (context.empty()) fail(s.to_string());
  fail(fmt::format("{}: {}", context, s.to_string()));
}

void print_error(std::string_view prog, std::string_view msg) {
  std::string line(msg);
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::fflush(stdout);
  std::fprintf(stderr, "%.*s: error: %s\n", int(prog.size()), prog.data(), line.c_str());
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    print_error(app.get_name(), e.what());
    std::fprintf(stderr, "Run '%s --help' for more information.\n", app.get_name().c_str());
    return kExitUsage;
  }
  return std::nullopt;
}

int run_guarded(std::string_view prog, const std::function<int()>& body) {
  try {
    return body();
  } catch (const ToolError& e) {
    print_error(prog, e.what());
    return e.exit_code();
  } catch (const Error& e) {
    print_error(prog, e.what());
    return kExitError;
  } catch (const std::bad_alloc&) {
    print_error(prog, "out of memory");
    return kExitError;
  } catch (const std::exception& e) {
    print_error(prog, e.what());
    return kExitError;
  }
}

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({sub, prev[j] + 1, cur[j - 1] + 1});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::vector<std::string> close_matches(std::string_view needle, const std::vector<std::string>& candidates,
                                       size_t max) {
  struct Scored {
    bool substring;  // "attn_q" should find "blk.0.attn_q.weight" whatever the length difference
    size_t distance;
    const std::string* name;
  };
  std::vector<Scored> scored;
  const size_t limit = std::max<size_t>(3, needle.size() / 3);
  for (const auto& c : candidates) {
    const bool sub = !needle.empty() && c.find(needle) != std::string::npos;
    const size_t d = edit_distance(needle, c);
    if (sub || d <= limit) scored.push_back({sub, d, &c});
  }
  std::stable_sort(scored.begin(), scored.end(), [](const Scored& a, const Scored& b) {
    if (a.substring != b.substring) return a.substring;
    return a.distance < b.distance;
  });
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < max; ++i) out.push_back(*scored[i].name);
  return out;
}

std::string human_bytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.2f} K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

std::string human_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  if (seconds < 60) return fmt::format("{:.1f} s", seconds);
  const auto s = uint64_t(seconds + 0.5);
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

gguf::File open_gguf_or_fail(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) fail(fmt::format("cannot open '{}': no such file", path));
  if (std::filesystem::is_directory(st)) fail(fmt::format("cannot open '{}': it is a directory", path));
  auto f = gguf::File::open(path);
  if (!f) fail(fmt::format("cannot read '{}' as GGUF: {}", path, f.status().to_string()));
  return std::move(f).value();
}

bool stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }

std::string backend_help() {
  std::string names;
  for (const std::string& n : backend_names()) names += (names.empty() ? "" : ", ") + n;
  return "Backend to run on: " + names + (names.find("cuda") != std::string::npos ? ", cuda:N" : "") +
         " (auto: the GPU when one is usable, else cpu)";
}

CLI::Validator backend_validator() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        return is_backend_name(v) ? std::string() : "unknown backend '" + v + "' (use auto, cpu, cuda or cuda:N)";
      },
      "BACKEND");
}

}  // namespace anvil::tools
