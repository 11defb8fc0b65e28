/* auth.c - bearer tokens from a file or a list, checked in constant time. */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include "rm/alloc.h"

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

int rm_auth_new(const rm_config_t *cfg, rm_auth_t **out, char *errbuf, size_t errcap) {
  *out = NULL;
  int from_file = cfg->auth_token_file && *cfg->auth_token_file;
  int from_list = cfg->auth_tokens && *cfg->auth_tokens;
  if (!from_file && !from_list)
    return 0;
  rm_auth_t *a = rm_calloc(1, sizeof *a);
  if (!a)
    return snprintf(errbuf, errcap, "out of memory"), -1;
  if (from_file) {
    FILE *f = fopen(cfg->auth_token_file, "r");
    if (!f) {
      snprintf(errbuf, errcap, "auth-token-file %s cannot be read", cfg->auth_token_file);
      rm_auth_free(a);
      return -1;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
      size_t len = strcspn(line, "\n");
      if (add_token(a, line, len)) {
        fclose(f);
        rm_auth_free(a);
        return snprintf(errbuf, errcap, "out of memory"), -1;
      }
    }
    fclose(f);
  }
  if (from_list) {
    const char *p = cfg->auth_tokens;
    while (*p) {
      size_t len = strcspn(p, ",");
      if (add_token(a, p, len)) {
        rm_auth_free(a);
        return snprintf(errbuf, errcap, "out of memory"), -1;
      }
      p += len + (p[len] == ',');
    }
  }
  if (!a->n) {
    rm_auth_free(a);
    return snprintf(errbuf, errcap, "auth is configured but no token was given"), -1;
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

size_t rm_auth_token_count(const rm_auth_t *a) { return a ? a->n : 0; }

/* Equal lengths compared in full whatever the content. */
static int same(const char *token, const unsigned char *given, size_t len) {
  size_t tl = strlen(token);
  unsigned char diff = (unsigned char)(tl != len);
  for (size_t i = 0; i < len; i++)
    diff |= (unsigned char)(given[i] ^ (unsigned char)token[i < tl ? i : 0]);
  return diff == 0;
}

const char *rm_auth_check(const rm_auth_t *a, const grpc_metadata_array *md) {
  static const char prefix[] = "Bearer ";
  for (size_t i = 0; i < md->count; i++) {
    const grpc_slice *k = &md->metadata[i].key;
    if (GRPC_SLICE_LENGTH(*k) != 13 || memcmp(GRPC_SLICE_START_PTR(*k), "authorization", 13))
      continue;
    const grpc_slice *v = &md->metadata[i].value;
    size_t len = GRPC_SLICE_LENGTH(*v);
    const unsigned char *p = GRPC_SLICE_START_PTR(*v);
    if (len < sizeof prefix - 1 || strncasecmp((const char *)p, prefix, sizeof prefix - 1))
      return "the authorization header must be 'Bearer <token>'";
    p += sizeof prefix - 1;
    len -= sizeof prefix - 1;
    int ok = 0;
    for (size_t t = 0; t < a->n; t++)
      ok |= same(a->tokens[t], p, len);
    return ok ? NULL : "the bearer token is not valid";
  }
  return "missing bearer token (authorization: Bearer <token>)";
}
