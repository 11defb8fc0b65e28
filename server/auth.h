/* auth.h - bearer-token authentication of calls. */
#ifndef RM_SERVER_AUTH_H
#define RM_SERVER_AUTH_H

#include <grpc/grpc.h>
#include <stddef.h>

#include "config.h"
#include "rm/error.h"

/* Longest accepted token, in bytes (a line of the file or an item of the list, without its
 * surrounding blanks). A longer one is a configuration error, never split. */
#define RM_AUTH_TOKEN_MAX 4096

typedef struct rm_auth rm_auth_t;

/* Loads the accepted tokens from cfg: the file (one per line) and/or the comma-separated
 * list; blank lines, lines starting with '#' and surrounding blanks are skipped. *out =
 * NULL when neither is configured (auth off). Returns 0, or with *out = NULL and err (may
 * be NULL) filled: RM_EIO when the file cannot be read, RM_EPARAM when no token remains or
 * a token is longer than RM_AUTH_TOKEN_MAX (the message names the line or item),
 * RM_ENOMEM. err->field names the option. Tokens are never logged. Free with rm_auth_free. */
int rm_auth_new(const rm_config_t *cfg, rm_auth_t **out, rm_error_t *err);

/* Wipes and frees the tokens. No call of rm_auth_check may be running. NULL is a no-op. */
void rm_auth_free(rm_auth_t *a);

/* Re-reads cfg's token file (with cfg's list, which does not change) and swaps the new set
 * in: checks running on other threads finish with the set they started with, later ones
 * see the new one; the old set is freed once no check uses it (this call waits for that,
 * a few microseconds). On any error, with the same codes and messages as rm_auth_new, the
 * set in use stays. *count (may be NULL) gets the number of tokens now accepted (on an
 * error, those of the set kept) and *changed (may be NULL) whether the set differs from the
 * previous one. a must come from
 * cfg (auth on). Reloads are serialised; any thread but a check's. */
int rm_auth_reload(rm_auth_t *a, const rm_config_t *cfg, size_t *count, int *changed,
                   rm_error_t *err);

/* Copies an accepted token into out (cap bytes, NUL-terminated): 0, or -1 when a is NULL or
 * the token does not fit. For the server's own calls (self_call.h). Any thread, also while
 * rm_auth_reload runs (a reader like the checks). */
int rm_auth_copy_token(const rm_auth_t *a, char *out, size_t cap);

/* 0 when md carries "authorization: Bearer <accepted token>" (scheme case-insensitive) or
 * when a is NULL (auth off); else RM_EUNAUTHENTICATED with the reason, a sentence the
 * client may see, in err->message (err may be NULL). Every accepted token is compared, each
 * in full, whatever the content: the time depends on the given token's length and the
 * number of tokens, not on which token matched or where one differs. Takes no lock. Any
 * thread, concurrently with rm_auth_reload. */
int rm_auth_check(const rm_auth_t *a, const grpc_metadata_array *md, rm_error_t *err);

#endif
