#include "anvil/commands.h"

namespace anvil::tools {

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> list = {
      {"inspect", "Show a GGUF file's metadata and tensors; dump a tensor as .npy", setup_inspect},
      {"quantize", "Convert an F32/F16/BF16 GGUF to another type (Q4_K_M, Q8_0, ...)", setup_quantize},
  };
  return list;
}

}  // namespace anvil::tools
