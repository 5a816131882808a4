// Architecture name -> implementation. Adding an architecture: an Arch value and its name in
// hparams.cpp, a loader here.
#include "gguf/file.h"
#include "models/model.h"

namespace anvil::models {
namespace {

using Loader = Expected<std::unique_ptr<Model>> (*)(const gguf::File&, Backend&, const HParams&, const LoadOptions&);

struct ArchLoader {
  Arch arch;
  Loader load;
};

constexpr ArchLoader kLoaders[] = {
    {Arch::llama, load_llama_family},
    {Arch::qwen2, load_llama_family},
    {Arch::qwen3, load_llama_family},
    {Arch::gemma3, load_gemma3},
    {Arch::qwen35, load_qwen35},
};

}  // namespace

Expected<std::unique_ptr<Model>> Model::load(const gguf::File& file, Backend& backend, const LoadOptions& options) {
  auto hp = read_hparams(file);  // unknown architectures fail here, naming the name
  if (!hp) return hp.status();
  for (const auto& l : kLoaders)
    if (l.arch == hp->arch) return l.load(file, backend, *hp, options);
  return make_error(StatusCode::unsupported, "architecture '", hp->arch_name, "' has no forward pass");
}

}  // namespace anvil::models
