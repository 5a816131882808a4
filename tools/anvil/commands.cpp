#include "anvil/commands.h"

namespace anvil::tools {

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> list = {
      {"generate", "Generate text from a prompt (streamed to stdout; speed on stderr)", setup_generate},
      {"chat", "Chat with a model using its chat template (stdin lines in, replies out)", setup_chat},
      {"logits", "Run token ids through a model and write logits as .npy", setup_logits},
      {"perplexity", "Perplexity of a text file (llama.cpp-style chunks or strided windows)", setup_perplexity},
      {"inspect", "Show a GGUF file's metadata and tensors; dump a tensor as .npy", setup_inspect},
      {"quantize", "Convert an F32/F16/BF16 GGUF to another type (Q4_K_M, Q8_0, ...)", setup_quantize},
  };
  return list;
}

}  // namespace anvil::tools
