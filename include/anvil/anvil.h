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

#ifdef __cplusplus
}
#endif

#endif /* ANVIL_H */
