/* auth.h - bearer-token authentication of calls. */
#ifndef RM_SERVER_AUTH_H
#define RM_SERVER_AUTH_H

#include <grpc/grpc.h>
#include <stddef.h>

#include "config.h"

typedef struct rm_auth rm_auth_t;

/* Loads accepted tokens from cfg (file and/or list). *out = NULL when auth is off.
 * 0, or -1 with errbuf filled (unreadable file, empty token set). Tokens are never logged. */
int rm_auth_new(const rm_config_t *cfg, rm_auth_t **out, char *errbuf, size_t errcap);
void rm_auth_free(rm_auth_t *a);
size_t rm_auth_token_count(const rm_auth_t *a);

/* NULL when md carries "authorization: Bearer <accepted token>", else the reason (static
 * text). Comparison time does not depend on where a token differs. Any thread. */
const char *rm_auth_check(const rm_auth_t *a, const grpc_metadata_array *md);

#endif
