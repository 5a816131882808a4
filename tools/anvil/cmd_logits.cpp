// anvil logits -m FILE --tokens 1,2,3 [--positions all|last|LIST] --out FILE.npy
//
// Runs the model on token ids exactly as given (no BOS added, no tokenizer involved) and writes
// the logits of the selected positions as float32 [n_positions, n_vocab] .npy: the seam the
// model tests compare against reference implementations (scripts/reference, numpy).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "anvil/commands.h"
#include "anvil/engine_cli.h"
#include "common/cli.h"
#include "common/npy.h"

namespace anvil::tools {
namespace {

struct LogitsOptions {
  ModelCliOptions model;
  std::string tokens;
  std::string positions = "all";
  std::string out;
};

// "all", "last" or a comma list of positions (negative counts from the end).
std::vector<int32_t> parse_positions(const std::string& spec, int32_t n) {
  std::vector<int32_t> pos;
  if (spec == "all") {
    for (int32_t i = 0; i < n; ++i) pos.push_back(i);
    return pos;
  }
  if (spec == "last") return {n - 1};
  std::vector<int32_t> list;
  try {
    list = parse_token_list(spec);
  } catch (const ToolError&) {
    fail(fmt::format("--positions: '{}' is not 'all', 'last' or a comma list of positions", spec));
  }
  for (int32_t p : list) {
    const int32_t q = p < 0 ? n + p : p;
    if (q < 0 || q >= n) fail(fmt::format("--positions: {} is outside the {} tokens", p, n));
    pos.push_back(q);
  }
  return pos;
}

int run_logits(const LogitsOptions& o) {
  const std::vector<int32_t> ids = parse_token_list(o.tokens);
  const std::vector<int32_t> positions = parse_positions(o.positions, int32_t(ids.size()));

  EngineOptions eo;
  eo.n_ctx = int32_t(ids.size());
  eo.prefix_caching = false;
  std::unique_ptr<Engine> engine = open_engine_or_fail(o.model, eo);
  auto session = engine->new_session({.temperature = 0});
  check(session.status(), "session");
  auto rows = (*session)->eval_all(ids);
  check(rows.status(), "forward");

  const size_t V = size_t(engine->n_vocab());
  auto writer = NpyWriter::create(o.out, {uint64_t(positions.size()), uint64_t(V)});
  check(writer.status(), o.out);
  for (int32_t p : positions) check(writer->append(rows->data() + size_t(p) * V, V), o.out);
  check(writer->close(), o.out);
  if (!o.model.quiet)
    std::fprintf(stderr, "wrote %s: %zu x %zu float32\n", o.out.c_str(), positions.size(), V);
  return kExitOk;
}

}  // namespace

CommandAction setup_logits(CLI::App& cmd) {
  auto o = std::make_shared<LogitsOptions>();
  cmd.footer(
      "Token ids are fed exactly as given (no BOS is added). The output is float32 [positions, vocab] in C "
      "order, one row per selected position in the order given.");
  add_model_options(cmd, o->model);
  cmd.add_option("--tokens", o->tokens, "Comma-separated token ids, e.g. 1,15043,3186")->required();
  cmd.add_option("--positions", o->positions, "'all', 'last' or a comma list (negative: from the end)")
      ->capture_default_str();
  cmd.add_option("-o,--out", o->out, "Output .npy file")->required();
  return [o] { return run_logits(*o); };
}

}  // namespace anvil::tools
