// anvil: the command-line front end. Subcommands are registered in commands.cpp.
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "anvil/commands.h"
#include "common/cli.h"

int main(int argc, char** argv) {
  using namespace anvil::tools;
  CLI::App app{"anvil: LLM inference runtime (GGUF models; CPU, CUDA and Vulkan backends)", "anvil"};
  app.set_version_flag("--version", "anvil " ANVIL_VERSION_STRING);
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a later option wins
  app.footer("Run 'anvil COMMAND --help' for a command's options.");

  std::vector<std::pair<CLI::App*, CommandAction>> actions;
  for (const Subcommand& sc : subcommands()) {
    CLI::App* cmd = app.add_subcommand(sc.name, sc.summary);
    actions.emplace_back(cmd, sc.setup(*cmd));
  }
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  for (auto& [cmd, action] : actions) {
    if (cmd->parsed()) return run_guarded("anvil " + cmd->get_name(), action);
  }
  return kExitUsage;  // unreachable: require_subcommand(1)
}
