/* auth.c - bearer tokens from a file or a list, checked in constant time, reloadable while
 * calls are being checked. */
#include "auth.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/alloc.h"
#include "status.h"

/* An immutable set of tokens: built whole, then published; never changed after. */
typedef struct token_set {
  char **tokens;
  size_t *lens;
  size_t n;
} token_set_t;

/* Readers (checks) publish themselves in active[epoch & 1] before they load cur; a reload
 * swaps cur, flips the epoch and waits for the old parity's readers to leave before freeing
 * the old set (a two-slot grace period: no lock on the check's path). */
struct rm_auth {
  _Atomic(token_set_t *) cur;
  atomic_uint epoch;
  atomic_long active[2];
  pthread_mutex_t reload_mu; /* one reload at a time */
};

static void set_free(token_set_t *ts) {
  if (!ts)
    return;
  for (size_t i = 0; i < ts->n; i++) {
    memset(ts->tokens[i], 0, ts->lens[i]);
    rm_free(ts->tokens[i]);
  }
  rm_free(ts->tokens);
  rm_free(ts->lens);
  rm_free(ts);
}

/* Adds t[0..len) trimmed; a blank or '#' item is skipped. 0, -1 out of memory, or 1 when
 * the trimmed token is longer than RM_AUTH_TOKEN_MAX (*tlen gets its length). */
static int add_token(token_set_t *ts, const char *t, size_t len, size_t *tlen) {
  while (len && (t[len - 1] == ' ' || t[len - 1] == '\t' || t[len - 1] == '\r'))
    len--;
  while (len && (*t == ' ' || *t == '\t'))
    t++, len--;
  if (!len || *t == '#')
    return 0;
  if (len > RM_AUTH_TOKEN_MAX) {
    *tlen = len;
    return 1;
  }
  char **grown = rm_realloc(ts->tokens, (ts->n + 1) * sizeof *grown);
  if (!grown)
    return -1;
  ts->tokens = grown;
  size_t *lens = rm_realloc(ts->lens, (ts->n + 1) * sizeof *lens);
  if (!lens)
    return -1;
  ts->lens = lens;
  if (!(ts->tokens[ts->n] = rm_strndup(t, len)))
    return -1;
  ts->lens[ts->n++] = len;
  return 0;
}

/* The file's lines, each a token, read whole whatever their length. A line with a NUL byte
 * is refused: cut at the NUL, its start would become a token the operator never wrote. */
static int add_file(token_set_t *ts, const char *path, rm_error_t *err) {
  char *text;
  size_t len, tlen = 0;
  int rc = rm__config_read_file("auth-token-file", "auth-token-file", path, &text, &len, err);
  if (rc)
    return rc;
  size_t lineno = 0;
  for (const char *p = text, *end = text + len; !rc && p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    lineno++;
    int r = memchr(p, '\0', n) ? 2 : add_token(ts, p, n, &tlen);
    if (r < 0)
      rc = rm__config_fail(err, RM_ENOMEM, "auth-token-file", "out of memory");
    else if (r == 1)
      rc = rm__config_fail(err, RM_EPARAM, "auth-token-file",
                           "auth-token-file %s line %zu: the token is %zu bytes, longer than the "
                           "%d allowed",
                           path, lineno, tlen, RM_AUTH_TOKEN_MAX);
    else if (r == 2)
      rc = rm__config_fail(err, RM_EPARAM, "auth-token-file",
                           "auth-token-file %s line %zu holds a NUL byte", path, lineno);
    p += n + 1;
  }
  memset(text, 0, len);
  rm_free(text);
  return rc;
}

/* The comma-separated list's items, each a token. */
static int add_list(token_set_t *ts, const char *p, rm_error_t *err) {
  size_t item = 0, tlen = 0;
  while (*p) {
    size_t len = strcspn(p, ",");
    item++;
    int r = add_token(ts, p, len, &tlen);
    if (r < 0)
      return rm__config_fail(err, RM_ENOMEM, "auth-tokens", "out of memory");
    if (r > 0)
      return rm__config_fail(err, RM_EPARAM, "auth-tokens",
                             "auth-tokens item %zu: the token is %zu bytes, longer than the %d "
                             "allowed",
                             item, tlen, RM_AUTH_TOKEN_MAX);
    p += len + (p[len] == ',');
  }
  return 0;
}

/* A new set from cfg's file and list; at least one of them is configured. */
static int set_load(const rm_config_t *cfg, token_set_t **out, rm_error_t *err) {
  *out = NULL;
  int from_file = cfg->auth_token_file && *cfg->auth_token_file;
  int from_list = cfg->auth_tokens && *cfg->auth_tokens;
  const char *field = from_file ? "auth-token-file" : "auth-tokens";
  token_set_t *ts = rm_calloc(1, sizeof *ts);
  if (!ts)
    return rm__config_fail(err, RM_ENOMEM, field, "out of memory");
  int rc = 0;
  if (from_file)
    rc = add_file(ts, cfg->auth_token_file, err);
  if (!rc && from_list)
    rc = add_list(ts, cfg->auth_tokens, err);
  if (!rc && !ts->n) {
    if (from_file && from_list)
      rc =
          rm__config_fail(err, RM_EPARAM, field, "auth-token-file %s and auth-tokens hold no token",
                          cfg->auth_token_file);
    else if (from_file)
      rc = rm__config_fail(err, RM_EPARAM, field,
                           "auth-token-file %s holds no token (only blank lines and # comments)",
                           cfg->auth_token_file);
    else
      rc = rm__config_fail(err, RM_EPARAM, field,
                           "auth-tokens holds no token (only commas and blanks)");
  }
  if (rc) {
    set_free(ts);
    return rc;
  }
  *out = ts;
  return 0;
}

int rm_auth_new(const rm_config_t *cfg, rm_auth_t **out, rm_error_t *err) {
  *out = NULL;
  int from_file = cfg->auth_token_file && *cfg->auth_token_file;
  int from_list = cfg->auth_tokens && *cfg->auth_tokens;
  if (!from_file && !from_list)
    return 0;
  token_set_t *ts;
  int rc = set_load(cfg, &ts, err);
  if (rc)
    return rc;
  rm_auth_t *a = rm_calloc(1, sizeof *a);
  if (!a) {
    set_free(ts);
    return rm__config_fail(err, RM_ENOMEM, from_file ? "auth-token-file" : "auth-tokens",
                           "out of memory");
  }
  atomic_init(&a->cur, ts);
  atomic_init(&a->epoch, 0);
  atomic_init(&a->active[0], 0);
  atomic_init(&a->active[1], 0);
  pthread_mutex_init(&a->reload_mu, NULL);
  *out = a;
  return 0;
}

void rm_auth_free(rm_auth_t *a) {
  if (!a)
    return;
  set_free(atomic_load(&a->cur));
  pthread_mutex_destroy(&a->reload_mu);
  rm_free(a);
}

/* The same tokens, in any order (a reload that only reorders lines changes nothing). */
static int same_set(const token_set_t *x, const token_set_t *y) {
  if (x->n != y->n)
    return 0;
  for (size_t i = 0; i < x->n; i++) {
    size_t j = 0;
    while (j < y->n && (x->lens[i] != y->lens[j] || memcmp(x->tokens[i], y->tokens[j], x->lens[i])))
      j++;
    if (j == y->n)
      return 0;
  }
  return 1;
}

int rm_auth_reload(rm_auth_t *a, const rm_config_t *cfg, size_t *count, int *changed,
                   rm_error_t *err) {
  token_set_t *fresh;
  int rc = set_load(cfg, &fresh, err);
  if (rc) {
    if (count) { /* the set kept: only reloads replace it, and they hold reload_mu */
      pthread_mutex_lock(&a->reload_mu);
      *count = atomic_load(&a->cur)->n;
      pthread_mutex_unlock(&a->reload_mu);
    }
    return rc;
  }
  pthread_mutex_lock(&a->reload_mu);
  token_set_t *old = atomic_exchange(&a->cur, fresh);
  /* Checks that loaded `old` registered under the current epoch before loading it: flip
   * the epoch so new checks register elsewhere, then wait for those to leave. */
  unsigned e = atomic_fetch_add(&a->epoch, 1);
  while (atomic_load(&a->active[e & 1]) > 0)
    sched_yield();
  pthread_mutex_unlock(&a->reload_mu);
  if (count)
    *count = fresh->n;
  if (changed)
    *changed = !same_set(old, fresh);
  set_free(old);
  return 0;
}

/* The token equals given[0..len): every byte of given is compared whatever the content. */
static int same(const char *token, size_t tl, const unsigned char *given, size_t len) {
  unsigned char diff = (unsigned char)(tl != len);
  for (size_t i = 0; i < len; i++)
    diff |= (unsigned char)(given[i] ^ (unsigned char)token[i < tl ? i : 0]);
  return diff == 0;
}

/* A reader of the current set registers under the epoch (reader_enter) before it loads cur,
 * and leaves (reader_leave) once done with it: a reload frees the set only after. */
static unsigned reader_enter(rm_auth_t *a) {
  for (;;) {
    unsigned e = atomic_load(&a->epoch);
    atomic_fetch_add(&a->active[e & 1], 1);
    if (atomic_load(&a->epoch) == e)
      return e;
    atomic_fetch_sub(&a->active[e & 1], 1); /* a reload flipped it meanwhile: register again */
  }
}

static void reader_leave(rm_auth_t *a, unsigned e) { atomic_fetch_sub(&a->active[e & 1], 1); }

/* Any token of the current set equals given; all of them are compared. */
static int accepted(const rm_auth_t *ca, const unsigned char *given, size_t len) {
  rm_auth_t *a = (rm_auth_t *)ca; /* the counters change; the tokens are read only */
  unsigned e = reader_enter(a);
  const token_set_t *ts = atomic_load(&a->cur);
  int ok = 0;
  for (size_t t = 0; t < ts->n; t++)
    ok |= same(ts->tokens[t], ts->lens[t], given, len);
  reader_leave(a, e);
  return ok;
}

int rm_auth_copy_token(const rm_auth_t *ca, char *out, size_t cap) {
  if (!ca)
    return -1;
  rm_auth_t *a = (rm_auth_t *)ca;
  unsigned e = reader_enter(a);
  const token_set_t *ts = atomic_load(&a->cur);
  int rc = -1;
  if (ts->n && ts->lens[0] < cap) {
    memcpy(out, ts->tokens[0], ts->lens[0]);
    out[ts->lens[0]] = '\0';
    rc = 0;
  }
  reader_leave(a, e);
  return rc;
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
    return accepted(a, p, len) ? 0
                               : rm_error_set(err, RM_EUNAUTHENTICATED, NULL, NULL,
                                              "the bearer token is not valid");
  }
  return rm_error_set(err, RM_EUNAUTHENTICATED, NULL, NULL,
                      "missing bearer token (authorization: Bearer <token>)");
}
