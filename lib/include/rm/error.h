/* error.h - error codes and the error detail record shared by the engine's modules. */
#ifndef RM_ERROR_H
#define RM_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every fallible engine function returns 0 on success or one of these (negative). The
 * code alone decides the gRPC status at the RPC boundary (server/status.c); rm_strerror()
 * gives its stable snake_case name, which also travels as the rm-error-kind trailer. */
typedef enum rm_errcode {
  RM_OK = 0,
  RM_EMANIFEST = -1,  /* the pipeline description is wrong (ids, edges, cycles, kinds) */
  RM_EPARAM = -2,     /* a node's params: unknown key, wrong type, out of range */
  RM_EINPUT = -3,     /* an input buffer is malformed or addressed to the wrong node */
  RM_ENOTYPE = -4,    /* unknown node type */
  RM_ENODE = -5,      /* a node failed while processing valid-looking data */
  RM_ELIMIT = -6,     /* a configured limit was exceeded */
  RM_ENOMEM = -7,     /* an allocation failed */
  RM_ETIMEDOUT = -8,  /* the run's deadline passed */
  RM_ECANCELED = -9,  /* the caller cancelled the run */
  RM_EINTERNAL = -10, /* a bug: an invariant did not hold */
  RM_EIO = -11,       /* a file could not be read or written (tools only) */
} rm_errcode_t;

#define RM_ERROR_NODE_MAX 128
#define RM_ERROR_FIELD_MAX 64
#define RM_ERROR_MSG_MAX 512

/* Detail for the caller: which node, which field, and one human sentence. Callers
 * allocate it (usually on the stack); functions that accept an rm_error_t * fill it only
 * on failure and accept NULL. */
typedef struct rm_error {
  int code;                        /* an rm_errcode_t, 0 when no error was recorded */
  char node_id[RM_ERROR_NODE_MAX]; /* "" when not about one node */
  char field[RM_ERROR_FIELD_MAX];  /* the param key or input field, "" when none */
  char message[RM_ERROR_MSG_MAX];  /* complete sentence naming node and field */
  int retry_later; /* a refusal a later attempt may pass (the server is full, or other calls
                    * hold its memory): the message says "retry later"; rm_error_set clears it */
} rm_error_t;

/* The stable name of an error code ("invalid_manifest", "unknown_node_type", ...), or
 * "unknown_error" for a value outside the enum. Never NULL; static storage. */
const char *rm_strerror(int code);

/* Clears err (code 0, empty strings, retry_later 0). NULL is a no-op. */
void rm_error_clear(rm_error_t *err);

/* Records an error and returns code, so callers can write `return rm_error_set(...)`.
 * node_id and field may be NULL. The message is printf-formatted and truncated to fit.
 * retry_later is cleared (the caller sets it after). A NULL err only returns code. */
int rm_error_set(rm_error_t *err, int code, const char *node_id, const char *field, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));

#ifdef __cplusplus
}
#endif
#endif
