/* anvil: C ABI. Opaque handles, status codes, a thread-local last-error string; nothing
 * throws across it. Every function is safe to call from any thread. */
#ifndef ANVIL_H
#define ANVIL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum anvil_status {
  ANVIL_OK = 0,
  ANVIL_ERR_INVALID_ARGUMENT = 1,
  ANVIL_ERR_NOT_FOUND = 2,
  ANVIL_ERR_IO = 3,
  ANVIL_ERR_CORRUPT_FILE = 4,
  ANVIL_ERR_UNSUPPORTED = 5,
  ANVIL_ERR_OUT_OF_MEMORY = 6,
  ANVIL_ERR_INTERNAL = 7
} anvil_status;

/* "0.1.0" */
const char* anvil_version(void);

/* The message of the last failed call on this thread ("" when none). Valid until the next
 * anvil call on the same thread. */
const char* anvil_last_error(void);

/* What a model file holds, read from its GGUF header without loading weights. */
typedef struct anvil_model_info {
  char architecture[64]; /* general.architecture, e.g. "qwen3" */
  char name[128];        /* general.name, or "" */
  uint32_t gguf_version;
  uint64_t n_tensors;
  uint64_t n_params;     /* elements over all tensors */
  uint64_t n_bytes;      /* tensor data bytes */
} anvil_model_info;

/* Reads and validates a GGUF file's header. On failure returns a code and sets the last error. */
anvil_status anvil_model_info_read(const char* path, anvil_model_info* out);


/* ---- engine and sessions ------------------------------------------------------------------
 * An engine is one loaded model on one backend with its KV cache; sessions are independent
 * sequences on it (one per persona / conversation). Every function may be called from any
 * thread: calls on one engine (and its sessions) are serialised by the engine's lock. Sessions
 * must be freed before their engine. */

typedef struct anvil_engine anvil_engine;
typedef struct anvil_session anvil_session;

typedef struct anvil_engine_params {
  const char* backend;      /* "cpu" (default when NULL) */
  int32_t n_threads;        /* CPU threads; 0 = all */
  int32_t n_ctx;            /* most tokens one session holds; 0 = min(model context, 4096) */
  int32_t n_parallel;       /* sessions the KV cache is sized for; 0 = 1 */
} anvil_engine_params;

typedef struct anvil_sampling_params {
  float temperature;        /* 0 = greedy */
  int32_t top_k;            /* 0 = off */
  float top_p;              /* 1 = off */
  float min_p;              /* 0 = off */
  float repeat_penalty;     /* 1 = off */
  uint64_t seed;
} anvil_sampling_params;

anvil_engine_params anvil_engine_default_params(void);
anvil_sampling_params anvil_sampling_default_params(void);

/* Loads a GGUF model. On failure *out is NULL and the last error says why. */
anvil_status anvil_engine_open(const char* path, const anvil_engine_params* params, anvil_engine** out);
void anvil_engine_free(anvil_engine* engine); /* NULL is fine */
int32_t anvil_engine_n_vocab(const anvil_engine* engine);

/* Text <-> token ids with the model's tokenizer. anvil_tokenize writes at most `capacity` ids
 * and sets *n_tokens to the full count (call again with a larger buffer when it is bigger).
 * add_special: BOS/EOS as the model asks; parse_special: recognise special-token text. */
anvil_status anvil_tokenize(anvil_engine* engine, const char* text, int add_special, int parse_special,
                            int32_t* tokens, int32_t capacity, int32_t* n_tokens);
/* The text of ids; writes at most `capacity` bytes including the NUL and sets *length to the
 * full length without the NUL. */
anvil_status anvil_detokenize(anvil_engine* engine, const int32_t* tokens, int32_t n_tokens, char* text,
                              int32_t capacity, int32_t* length);

anvil_status anvil_session_new(anvil_engine* engine, const anvil_sampling_params* params, anvil_session** out);
void anvil_session_free(anvil_session* session); /* NULL is fine */
/* Appends tokens to the session (one or more forward steps). */
anvil_status anvil_session_prefill(anvil_session* session, const int32_t* tokens, int32_t n_tokens);
/* Samples the next token from the session's last logits, appends it, returns it in *token. */
anvil_status anvil_session_decode_step(anvil_session* session, int32_t* token);
/* 1 when `token` ends generation for this model (EOS, end-of-turn). */
int anvil_token_is_eog(anvil_engine* engine, int32_t token);
/* Forgets the session's tokens and gives its KV back. */
anvil_status anvil_session_reset(anvil_session* session);

#ifdef __cplusplus
}
#endif

#endif /* ANVIL_H */
