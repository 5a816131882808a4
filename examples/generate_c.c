/* The same through the C ABI: generate_c MODEL.gguf PROMPT [N]. */
#include <anvil/anvil.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  anvil_engine* engine = NULL;
  anvil_session* session = NULL;
  int32_t prompt[512], out[512], n_prompt = 0, n_out = 0, len = 0;
  char text[4096];
  int n = argc > 3 ? atoi(argv[3]) : 16;
  if (argc < 3 || n < 0 || n > 512) {
    fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N <= 512]\n", argv[0]);
    return 2;
  }
  anvil_sampling_params greedy = anvil_sampling_default_params();
  greedy.temperature = 0;
  if (anvil_engine_open(argv[1], NULL, &engine) != ANVIL_OK ||
      anvil_tokenize(engine, argv[2], 1, 0, prompt, 512, &n_prompt) != ANVIL_OK || n_prompt > 512 ||
      anvil_session_new(engine, &greedy, &session) != ANVIL_OK ||
      anvil_session_prefill(session, prompt, n_prompt) != ANVIL_OK)
    goto fail;
  while (n_out < n) {
    int32_t t;
    if (anvil_session_decode_step(session, &t) != ANVIL_OK) goto fail;
    if (anvil_token_is_eog(engine, t)) break;
    out[n_out++] = t;
  }
  if (anvil_detokenize(engine, out, n_out, text, sizeof text, &len) != ANVIL_OK) goto fail;
  printf("%s\n", text);
  anvil_session_free(session);
  anvil_engine_free(engine);
  return 0;
fail:
  fprintf(stderr, "error: %s\n", anvil_last_error());
  anvil_session_free(session);
  anvil_engine_free(engine);
  return 1;
}
