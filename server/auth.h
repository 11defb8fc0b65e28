/* auth.h - bearer-token authentication of calls. */
#ifndef RM_SERVER_AUTH_H
#define RM_SERVER_AUTH_H

#include <grpc/grpc.h>
#include <stddef.h>

#include "config.h"
#include "rm/error.h"

typedef struct rm_auth rm_auth_t;

/* Loads the accepted tokens from cfg: the file (one per line) and/or the comma-separated
 * list; blank lines, lines starting with '#' and surrounding blanks are skipped. *out =
 * NULL when neither is configured (auth off). Returns 0, or with *out = NULL and err (may
 * be NULL) filled: RM_EIO when the file cannot be read, RM_EPARAM when no token remains,
 * RM_ENOMEM. err->field names the option. Tokens are never logged. Free with rm_auth_free. */
int rm_auth_new(const rm_config_t *cfg, rm_auth_t **out, rm_error_t *err);

/* Wipes and frees the tokens. NULL is a no-op. */
void rm_auth_free(rm_auth_t *a);

/* 0 when md carries "authorization: Bearer <accepted token>" (scheme case-insensitive) or
 * when a is NULL (auth off); else RM_EUNAUTHENTICATED with the reason, a sentence the
 * client may see, in err->message (err may be NULL). Comparison time does not depend on
 * where a token differs. Any thread. */
int rm_auth_check(const rm_auth_t *a, const grpc_metadata_array *md, rm_error_t *err);

#endif
