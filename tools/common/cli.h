// What every anvil command-line program shares: exit codes, one-line errors, CLI11 parsing with
// those exit codes, and small formatting helpers.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "gguf/file.h"

namespace anvil::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the command ran and failed (bad file, I/O, ...)
inline constexpr int kExitUsage = 2;  // the command line itself is wrong

// A failure with the exit code it should end the program with. Commands throw it from deep
// inside; main prints the message once and exits.
class ToolError : public std::runtime_error {
 public:
  ToolError(int exit_code, const std::string& msg) : std::runtime_error(msg), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

[[noreturn]] inline void fail(const std::string& msg) { throw ToolError(kExitError, msg); }
[[noreturn]] inline void fail_usage(const std::string& msg) { throw ToolError(kExitUsage, msg); }
// Throws ToolError(kExitError) with `context: status` when s is an error.
void check(const Status& s, std::string_view context = {});

// "prog: error: msg" on stderr, one line (newlines in msg become spaces).
void print_error(std::string_view prog, std::string_view msg);

// Parses argv into `app`. Help and version requests print and return 0; parse errors print one
// line (plus a hint to run --help) and return kExitUsage. nullopt: parsed, go on.
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

// Runs `body` and turns ToolError / anvil::Error / std::exception / bad_alloc into a printed
// one-line error and an exit code.
int run_guarded(std::string_view prog, const std::function<int()>& body);

// Up to `max` candidates closest to `needle` (edit distance, substring matches first).
std::vector<std::string> close_matches(std::string_view needle, const std::vector<std::string>& candidates,
                                       size_t max = 3);

// Opens a GGUF file or throws ToolError with a one-line reason ("no such file", "not a GGUF
// file (magic ...)", the parser's message for corrupt files).
gguf::File open_gguf_or_fail(const std::string& path);

// --backend: its help text (the names this build has) and a validator (auto, cpu, cuda, cuda:N).
std::string backend_help();
CLI::Validator backend_validator();

std::string human_bytes(double bytes);        // "1.23 GiB"
std::string human_count(double n);            // "4.02 B", "151.9 M", "2.6 K"
std::string human_duration(double seconds);   // "1:02:03", "4:05", "12.3 s"
std::string join(const std::vector<std::string>& items, std::string_view sep);
bool stderr_is_tty();

}  // namespace anvil::tools
