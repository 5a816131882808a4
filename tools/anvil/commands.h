// The `anvil` program's subcommands. Each lives in its own cmd_<name>.cpp; commands.cpp lists
// them in the order `anvil --help` shows. Later issues add generate, chat, logits, perplexity.
#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace anvil::tools {

// What runs once the command line is parsed; returns the process exit code.
using CommandAction = std::function<int()>;

struct Subcommand {
  const char* name;
  const char* summary;  // one line, shown by `anvil --help`
  // Declares the subcommand's options on `cmd` (bound to state the returned action owns).
  std::function<CommandAction(CLI::App& cmd)> setup;
};

const std::vector<Subcommand>& subcommands();

CommandAction setup_inspect(CLI::App& cmd);
CommandAction setup_quantize(CLI::App& cmd);
CommandAction setup_generate(CLI::App& cmd);
CommandAction setup_chat(CLI::App& cmd);
CommandAction setup_logits(CLI::App& cmd);
CommandAction setup_perplexity(CLI::App& cmd);

}  // namespace anvil::tools
