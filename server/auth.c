/* auth.c - bearer tokens from a file or a list, checked in constant time. */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include "rm/alloc.h"
#include "status.h"

struct rm_auth {
  char **tokens;
  size_t n;
};

static int add_token(rm_auth_t *a, const char *t, size_t len) {
  while (len && (t[len - 1] == ' ' || t[len - 1] == '\t' || t[len - 1] == '\r'))
    len--;
  while (len && (*t == ' ' || *t == '\t'))
    t++, len--;
  if (!len || *t == '#')
    return 0;
  char **grown = rm_realloc(a->tokens, (a->n + 1) * sizeof *grown);
  if (!grown)
    return -1;
  a->tokens = grown;
  if (!(a->tokens[a->n] = rm_strndup(t, len)))
    return -1;
  a->n++;
  return 0;
}

/* The file's lines, each a token. */
static int add_file(rm_auth_t *a, const char *path, rm_error_t *err) {
  FILE *f = fopen(path, "r");
  if (!f)
    return rm__config_fail(err, RM_EIO, "auth-token-file", "auth-token-file %s cannot be read",
                           path);
  char line[4096];
  int rc = 0;
  while (!rc && fgets(line, sizeof line, f))
    if (add_token(a, line, strcspn(line, "\n")))
      rc = rm__config_fail(err, RM_ENOMEM, "auth-token-file", "out of memory");
  fclose(f);
  return rc;
}

/* The comma-separated list's items, each a token. */
static int add_list(rm_auth_t *a, const char *p, rm_error_t *err) {
  while (*p) {
    size_t len = strcspn(p, ",");
    if (add_token(a, p, len))
      return rm__config_fail(err, RM_ENOMEM, "auth-tokens", "out of memory");
    p += len + (p[len] == ',');
  }
  return 0;
}

int rm_auth_new(const rm_config_t *cfg, rm_auth_t **out, rm_error_t *err) {
  *out = NULL;
  int from_file = cfg->auth_token_file && *cfg->auth_token_file;
  int from_list = cfg->auth_tokens && *cfg->auth_tokens;
  if (!from_file && !from_list)
    return 0;
  rm_auth_t *a = rm_calloc(1, sizeof *a);
  if (!a)
    return rm__config_fail(err, RM_ENOMEM, from_file ? "auth-token-file" : "auth-tokens",
                           "out of memory");
  int rc = 0;
  if (from_file)
    rc = add_file(a, cfg->auth_token_file, err);
  if (!rc && from_list)
    rc = add_list(a, cfg->auth_tokens, err);
  if (!rc && !a->n)
    rc = rm__config_fail(err, RM_EPARAM, from_file ? "auth-token-file" : "auth-tokens",
                         "auth is configured but no token was given");
  if (rc) {
    rm_auth_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

void rm_auth_free(rm_auth_t *a) {
  if (!a)
    return;
  for (size_t i = 0; i < a->n; i++) {
    memset(a->tokens[i], 0, strlen(a->tokens[i]));
    rm_free(a->tokens[i]);
  }
  rm_free(a->tokens);
  rm_free(a);
}

/* Equal lengths compared in full whatever the content. */
static int same(const char *token, const unsigned char *given, size_t len) {
  size_t tl = strlen(token);
  unsigned char diff = (unsigned char)(tl != len);
  for (size_t i = 0; i < len; i++)
    diff |= (unsigned char)(given[i] ^ (unsigned char)token[i < tl ? i : 0]);
  return diff == 0;
}

int rm_auth_check(const rm_auth_t *a, const grpc_metadata_array *md, rm_error_t *err) {
  static const char prefix[] = "Bearer ";
  if (!a)
    return 0;
  for (size_t i = 0; i < md->count; i++) {
    const grpc_slice *k = &md->metadata[i].key;
    if (GRPC_SLICE_LENGTH(*k) != 13 || memcmp(GRPC_SLICE_START_PTR(*k), "authorization", 13))
      continue;
    const grpc_slice *v = &md->metadata[i].value;
    size_t len = GRPC_SLICE_LENGTH(*v);
    const unsigned char *p = GRPC_SLICE_START_PTR(*v);
    if (len < sizeof prefix - 1 || strncasecmp((const char *)p, prefix, sizeof prefix - 1))
      return rm_error_set(err, RM_EUNAUTHENTICATED, NULL, NULL,
                          "the authorization header must be 'Bearer <token>'");
    p += sizeof prefix - 1;
    len -= sizeof prefix - 1;
    int ok = 0;
    for (size_t t = 0; t < a->n; t++)
      ok |= same(a->tokens[t], p, len);
    return ok ? 0
              : rm_error_set(err, RM_EUNAUTHENTICATED, NULL, NULL, "the bearer token is not valid");
  }
  return rm_error_set(err, RM_EUNAUTHENTICATED, NULL, NULL,
                      "missing bearer token (authorization: Bearer <token>)");
}
