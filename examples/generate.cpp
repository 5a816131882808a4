// Generates text with a model through anvil's public C++ API (anvil.hpp over the C ABI).
//   generate MODEL.gguf "PROMPT" [N]
// Greedy decoding; prints the continuation.
#include <anvil/anvil.hpp>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N]\n", argv[0]);
    return 2;
  }
  const int n = argc > 3 ? std::atoi(argv[3]) : 16;
  try {
    anvil::Engine engine(argv[1]);
    anvil_sampling_params greedy = anvil_sampling_default_params();
    greedy.temperature = 0;
    anvil::Session session(engine, greedy);
    const auto ids = session.generate(engine.tokenize(argv[2]), n);
    std::printf("%s\n", engine.detokenize(ids).c_str());
  } catch (const anvil::ApiError& e) {
    std::fprintf(stderr, "error (%d): %s\n", int(e.code()), e.what());
    return 1;
  }
  return 0;
}
