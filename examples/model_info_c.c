/* The same through the C ABI, built with pkg-config by tests/install. */
#include <anvil/anvil.h>
#include <stdio.h>

int main(int argc, char** argv) {
  anvil_model_info info;
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
    return 2;
  }
  if (anvil_model_info_read(argv[1], &info) != ANVIL_OK) {
    fprintf(stderr, "error: %s\n", anvil_last_error());
    return 1;
  }
  printf("architecture: %s\ntensors: %llu\n", info.architecture, (unsigned long long)info.n_tensors);
  return 0;
}
