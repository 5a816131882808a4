// Prints what a GGUF model file holds, through anvil's public C++ API.
//   model_info MODEL.gguf
#include <anvil/anvil.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
    return 2;
  }
  try {
    const anvil::ModelInfo info = anvil::read_model_info(argv[1]);
    std::printf("anvil %s\narchitecture: %s\ntensors: %llu\nparams: %llu\nbytes: %llu\n", anvil::version().c_str(),
                info.architecture.c_str(), (unsigned long long)info.n_tensors, (unsigned long long)info.n_params,
                (unsigned long long)info.n_bytes);
  } catch (const anvil::ApiError& e) {
    std::fprintf(stderr, "error (%d): %s\n", int(e.code()), e.what());
    return 1;
  }
  return 0;
}
