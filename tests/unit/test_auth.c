/* test_auth.c - bearer-token authentication: tokens from a file and a list (blank lines,
 * comments, whitespace, long tokens), configuration errors, the check of a call's metadata,
 * and reloads, also while other threads check and copy a token. */
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "status.h"
#include "test_support.h"

static char token_path[64];

static void write_tokens(const char *text) {
  FILE *f = fopen(token_path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
}

/* A configuration with only the two auth options set. */
static rm_config_t auth_cfg(const char *file, const char *list) {
  rm_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.auth_token_file = (char *)file;
  cfg.auth_tokens = (char *)list;
  return cfg;
}

/* rm_auth_check over metadata of (key, value) pairs; n pairs. */
static int check_md(const rm_auth_t *a, const char *const *kv, size_t n, rm_error_t *err) {
  grpc_metadata items[8];
  memset(items, 0, sizeof items);
  for (size_t i = 0; i < n; i++) {
    items[i].key = grpc_slice_from_static_string(kv[2 * i]);
    items[i].value = grpc_slice_from_static_string(kv[2 * i + 1]);
  }
  grpc_metadata_array md = {n, n, items};
  rm_error_clear(err);
  return rm_auth_check(a, &md, err);
}

/* One "authorization" header with the given value. */
static int check_value(const rm_auth_t *a, const char *value, rm_error_t *err) {
  const char *kv[] = {"authorization", value};
  return check_md(a, kv, 1, err);
}

#define BAD_TOKEN "the bearer token is not valid"
#define BAD_SCHEME "the authorization header must be 'Bearer <token>'"
#define MISSING "missing bearer token (authorization: Bearer <token>)"

static void expect_rejected(const rm_auth_t *a, const char *value, const char *msg, unsigned line) {
  rm_error_t err;
  int rc = check_value(a, value, &err);
  rm__test_err(rc, &err, RM_EUNAUTHENTICATED, "", "", msg, line, __FILE__);
}
#define EXPECT_REJECTED(a, value, msg) expect_rejected((a), (value), (msg), __LINE__)

static void test_tokens_from_file_skip_blanks_and_comments(void) {
  write_tokens("\n  alpha  \n# a comment\n\t\n\tbeta\r\n   # indented comment\ngamma delta\nlast");
  rm_config_t cfg = auth_cfg(token_path, "");
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  RM_ASSERT_INT(check_value(a, "Bearer alpha", &err), 0);
  RM_ASSERT_INT(check_value(a, "Bearer beta", &err), 0);
  RM_ASSERT_INT(check_value(a, "Bearer gamma delta", &err), 0); /* inner blanks are kept */
  RM_ASSERT_INT(check_value(a, "Bearer last", &err), 0);        /* no final newline */
  EXPECT_REJECTED(a, "Bearer   alpha  ", BAD_TOKEN);            /* the header is not trimmed */
  EXPECT_REJECTED(a, "Bearer # a comment", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer gamma", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer beta\r", BAD_TOKEN);
  rm_auth_free(a);
}

static void test_tokens_from_list_and_file_together(void) {
  write_tokens("from-file\n");
  rm_config_t cfg = auth_cfg(token_path, " one , two,,\tthree\t,");
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  static const char *ok[] = {"Bearer from-file", "Bearer one", "Bearer two", "Bearer three"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    RM_ASSERT_INT(check_value(a, ok[i], &err), 0);
  EXPECT_REJECTED(a, "Bearer  one ", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer one,two", BAD_TOKEN);
  rm_auth_free(a);

  cfg = auth_cfg("", "solo"); /* the list alone */
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  RM_ASSERT_INT(check_value(a, "Bearer solo", &err), 0);
  rm_auth_free(a);
}

static void test_no_auth_configured_is_off(void) {
  rm_config_t cfg = auth_cfg("", "");
  rm_auth_t *a = (rm_auth_t *)&cfg; /* must be reset */
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NULL(a);
  cfg = auth_cfg(NULL, NULL);
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NULL(a);
  RM_ASSERT_INT(check_md(NULL, NULL, 0, &err), 0); /* auth off accepts every call */
  rm_auth_free(NULL);                              /* a no-op */
}

static void test_empty_token_set_is_an_error(void) {
  static const struct {
    const char *file_text, *list, *field, *message; /* %s: the file's path */
  } cases[] = {
      {"", NULL, "auth-token-file",
       "auth-token-file %s holds no token (only blank lines and # comments)"},
      {"\n\n  \n# only comments\n\t\r\n", NULL, "auth-token-file",
       "auth-token-file %s holds no token (only blank lines and # comments)"},
      {NULL, ",", "auth-tokens", "auth-tokens holds no token (only commas and blanks)"},
      {NULL, " , \t ,", "auth-tokens", "auth-tokens holds no token (only commas and blanks)"},
      {"#\n", " ,", "auth-token-file", "auth-token-file %s and auth-tokens hold no token"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cases[i].file_text)
      write_tokens(cases[i].file_text);
    rm_config_t cfg = auth_cfg(cases[i].file_text ? token_path : "", cases[i].list);
    rm_auth_t *a = (rm_auth_t *)&cfg;
    rm_error_t err;
    int rc = rm_auth_new(&cfg, &a, &err);
    char message[512];
    snprintf(message, sizeof message, cases[i].message, token_path);
    RM_ASSERT_ERR(rc, &err, RM_EPARAM, "", cases[i].field, message);
    CU_ASSERT_PTR_NULL(a);
  }
}

static void test_unreadable_file_is_an_error(void) {
  rm_config_t cfg = auth_cfg("/nonexistent/tokens", "ok");
  rm_auth_t *a = (rm_auth_t *)&cfg;
  rm_error_t err;
  int rc = rm_auth_new(&cfg, &a, &err);
  RM_ASSERT_ERR(rc, &err, RM_EIO, "", "auth-token-file",
                "auth-token-file /nonexistent/tokens cannot be read: No such file or directory");
  CU_ASSERT_PTR_NULL(a);
  cfg = auth_cfg("/", NULL);
  rc = rm_auth_new(&cfg, &a, &err);
  RM_ASSERT_ERR(rc, &err, RM_EIO, "", "auth-token-file",
                "auth-token-file / cannot be read: a directory");
  CU_ASSERT_PTR_NULL(a);
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, NULL) < 0, 1); /* err may be NULL */
}

static void test_check(void) {
  rm_config_t cfg = auth_cfg("", "token1,other");
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);

  RM_ASSERT_INT(check_value(a, "Bearer token1", &err), 0);
  RM_ASSERT_INT(check_value(a, "bearer other", &err), 0); /* the scheme is case-insensitive */
  RM_ASSERT_INT(check_value(a, "BEARER token1", &err), 0);

  RM_ASSERT_ERR(check_md(a, NULL, 0, &err), &err, RM_EUNAUTHENTICATED, "", "", MISSING);
  const char *others[] = {"x-api-key", "Bearer token1", "user-agent", "grpc-c"};
  RM_ASSERT_ERR(check_md(a, others, 2, &err), &err, RM_EUNAUTHENTICATED, "", "", MISSING);
  const char *after[] = {"user-agent", "grpc-c", "authorization", "Bearer other"};
  RM_ASSERT_INT(check_md(a, after, 2, &err), 0); /* found among other headers */
  const char *first_wins[] = {"authorization", "Bearer wrong", "authorization", "Bearer token1"};
  RM_ASSERT_ERR(check_md(a, first_wins, 2, &err), &err, RM_EUNAUTHENTICATED, "", "", BAD_TOKEN);

  EXPECT_REJECTED(a, "Basic dXNlcjpwdw==", BAD_SCHEME);
  EXPECT_REJECTED(a, "token1", BAD_SCHEME);
  EXPECT_REJECTED(a, "Bearer", BAD_SCHEME);
  EXPECT_REJECTED(a, "Bearertoken1", BAD_SCHEME);
  EXPECT_REJECTED(a, "", BAD_SCHEME);
  EXPECT_REJECTED(a, "Bearer ", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer wrong", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer Token1", BAD_TOKEN); /* tokens are case-sensitive */
  EXPECT_REJECTED(a, "Bearer token", BAD_TOKEN);  /* a prefix of an accepted token */
  EXPECT_REJECTED(a, "Bearer t", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer token12", BAD_TOKEN); /* an accepted token is its prefix */
  EXPECT_REJECTED(a, "Bearer token1 ", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer  token1", BAD_TOKEN);
  EXPECT_REJECTED(a, "Bearer token1,other", BAD_TOKEN);

  /* a value with a NUL inside: compared by length, not as a C string */
  grpc_metadata item = {.key = grpc_slice_from_static_string("authorization"),
                        .value = grpc_slice_from_static_buffer("Bearer token1\0x", 15)};
  grpc_metadata_array md = {1, 1, &item};
  RM_ASSERT_ERR(rm_auth_check(a, &md, &err), &err, RM_EUNAUTHENTICATED, "", "", BAD_TOKEN);
  RM_ASSERT_INT(rm_auth_check(a, &md, NULL), RM_EUNAUTHENTICATED); /* err may be NULL */
  rm_auth_free(a);
}

/* A token of n bytes whose pieces are not tokens. */
static char *long_token(size_t n, char seed) {
  static const char alphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/";
  char *t = malloc(n + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  for (size_t i = 0; i < n; i++)
    t[i] = alphabet[(i * 7 + (size_t)seed) % (sizeof alphabet - 1)];
  t[n] = '\0';
  return t;
}

/* "Bearer " + the first len bytes of t. */
static int check_token(const rm_auth_t *a, const char *t, size_t len) {
  char *v = malloc(len + 8);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  snprintf(v, len + 8, "Bearer %.*s", (int)len, t);
  rm_error_t err;
  int rc = check_value(a, v, &err);
  free(v);
  return rc;
}

/* issue 10 defect 5: lines are read whole; the old 4,096-byte fgets split a 6,000-byte line
 * into two tokens, each accepted alone. */
static void test_long_tokens_are_read_whole(void) {
  char *t3k = long_token(3000, 'a'), *tmax = long_token(RM_AUTH_TOKEN_MAX, 'b');
  FILE *f = fopen(token_path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fprintf(f, "short\n  %s \r\n%s", t3k, tmax); /* the longest, without a final newline */
  fclose(f);
  rm_config_t cfg = auth_cfg(token_path, NULL);
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  RM_ASSERT_INT(check_token(a, t3k, 3000), 0);
  RM_ASSERT_INT(check_token(a, tmax, RM_AUTH_TOKEN_MAX), 0);
  RM_ASSERT_INT(check_token(a, "short", 5), 0);
  RM_ASSERT_INT(check_token(a, t3k, 1500), RM_EUNAUTHENTICATED); /* halves are no tokens */
  RM_ASSERT_INT(check_token(a, t3k + 1500, 1500), RM_EUNAUTHENTICATED);
  RM_ASSERT_INT(check_token(a, tmax, 4095), RM_EUNAUTHENTICATED); /* what fgets made */
  RM_ASSERT_INT(check_token(a, tmax + 4095, 1), RM_EUNAUTHENTICATED);
  RM_ASSERT_INT(check_token(a, t3k, 2999), RM_EUNAUTHENTICATED);
  rm_auth_free(a);
  /* the list takes tokens of the same length */
  char *list = malloc(3000 + 16);
  CU_ASSERT_PTR_NOT_NULL_FATAL(list);
  snprintf(list, 3000 + 16, "x,%s", t3k);
  cfg = auth_cfg(NULL, list);
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  RM_ASSERT_INT(check_token(a, t3k, 3000), 0);
  RM_ASSERT_INT(check_token(a, t3k, 1500), RM_EUNAUTHENTICATED);
  rm_auth_free(a);
  free(list);
  free(t3k);
  free(tmax);
}

static void test_token_above_the_maximum_is_an_error(void) {
  char *t6k = long_token(6000, 'c');
  FILE *f = fopen(token_path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fprintf(f, "# tokens\nfine\n\n%s\nlater\n", t6k);
  fclose(f);
  rm_config_t cfg = auth_cfg(token_path, NULL);
  rm_auth_t *a = (rm_auth_t *)&cfg;
  rm_error_t err;
  char msg[300];
  snprintf(msg, sizeof msg,
           "auth-token-file %s line 4: the token is 6000 bytes, longer than the 4096 allowed",
           token_path);
  int rc = rm_auth_new(&cfg, &a, &err);
  RM_ASSERT_ERR(rc, &err, RM_EPARAM, "", "auth-token-file", msg);
  CU_ASSERT_PTR_NULL(a);
  t6k[4097] = '\0'; /* one byte above: refused; blanks around it do not count */
  f = fopen(token_path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fprintf(f, "   %s\t\n", t6k);
  fclose(f);
  snprintf(msg, sizeof msg,
           "auth-token-file %s line 1: the token is 4097 bytes, longer than the 4096 allowed",
           token_path);
  rc = rm_auth_new(&cfg, &a, &err);
  RM_ASSERT_ERR(rc, &err, RM_EPARAM, "", "auth-token-file", msg);
  char *list = malloc(5000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(list);
  snprintf(list, 5000, "a,,b,%s", t6k);
  cfg = auth_cfg(NULL, list);
  rc = rm_auth_new(&cfg, &a, &err);
  RM_ASSERT_ERR(rc, &err, RM_EPARAM, "", "auth-tokens",
                "auth-tokens item 4: the token is 4097 bytes, longer than the 4096 allowed");
  CU_ASSERT_PTR_NULL(a);
  free(list);
  free(t6k);
}

/* Writes len bytes of text (NUL bytes included) as the token file. */
static void write_token_bytes(const char *text, size_t len) {
  FILE *f = fopen(token_path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  RM_ASSERT_INT(fwrite(text, 1, len, f), len);
  fclose(f);
}

/* A line "ab\0cd" was cut at the NUL, making "ab" a token; now the file is refused, at
 * start-up and on a reload (which keeps the set in use). */
static void test_line_with_a_nul_byte_is_an_error(void) {
  static const char text[] = "keep-me\nab\0cd\n";
  write_token_bytes(text, sizeof text - 1);
  rm_config_t cfg = auth_cfg(token_path, NULL);
  rm_auth_t *a = (rm_auth_t *)&cfg;
  rm_error_t err;
  char msg[300];
  snprintf(msg, sizeof msg, "auth-token-file %s line 2 holds a NUL byte", token_path);
  RM_ASSERT_ERR(rm_auth_new(&cfg, &a, &err), &err, RM_EPARAM, "", "auth-token-file", msg);
  CU_ASSERT_PTR_NULL(a);
  static const char comment[] = "# a\0b\nkeep-me\n"; /* in a comment too: not a text file */
  write_token_bytes(comment, sizeof comment - 1);
  snprintf(msg, sizeof msg, "auth-token-file %s line 1 holds a NUL byte", token_path);
  RM_ASSERT_ERR(rm_auth_new(&cfg, &a, &err), &err, RM_EPARAM, "", "auth-token-file", msg);

  write_tokens("keep-me\n");
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  write_token_bytes(text, sizeof text - 1);
  size_t n = 0;
  snprintf(msg, sizeof msg, "auth-token-file %s line 2 holds a NUL byte", token_path);
  RM_ASSERT_ERR(rm_auth_reload(a, &cfg, &n, NULL, &err), &err, RM_EPARAM, "", "auth-token-file",
                msg);
  RM_ASSERT_INT(n, 1);
  EXPECT_REJECTED(a, "Bearer ab", BAD_TOKEN);
  RM_ASSERT_INT(check_value(a, "Bearer keep-me", &err), 0);
  rm_auth_free(a);
}

/* A reload of a from cfg and a new set from cfg are both refused with code and message msg;
 * *n is what the reload left in use. */
static void expect_file_refused(rm_auth_t *a, rm_config_t *cfg, int code, const char *msg,
                                size_t *n) {
  rm_error_t err;
  RM_ASSERT_ERR(rm_auth_reload(a, cfg, n, NULL, &err), &err, code, "", "auth-token-file", msg);
  rm_auth_t *b = (rm_auth_t *)cfg;
  RM_ASSERT_ERR(rm_auth_new(cfg, &b, &err), &err, code, "", "auth-token-file", msg);
  CU_ASSERT_PTR_NULL(b);
}

/* A token file that never ends (a link to /dev/zero) grew the server's memory without bound
 * and a FIFO without a writer blocked it for good: what is opened must be a regular file,
 * and opening does not wait. A link to a regular file (Kubernetes secrets) is followed. */
static void test_file_that_is_not_regular_is_an_error(void) {
  char link[80], fifo[80], msg[300];
  snprintf(link, sizeof link, "%s.link", token_path);
  snprintf(fifo, sizeof fifo, "%s.fifo", token_path);
  unlink(link);
  unlink(fifo);
  write_tokens("kept\n");
  RM_ASSERT_INT(symlink(token_path, link), 0);
  rm_config_t cfg = auth_cfg(link, NULL);
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  RM_ASSERT_INT(check_value(a, "Bearer kept", &err), 0);

  RM_ASSERT_INT(unlink(link), 0);
  RM_ASSERT_INT(symlink("/dev/zero", link), 0);
  snprintf(msg, sizeof msg, "auth-token-file %s cannot be read: not a regular file", link);
  size_t n = 0;
  expect_file_refused(a, &cfg, RM_EIO, msg, &n);
  RM_ASSERT_INT(n, 1);

  RM_ASSERT_INT(mkfifo(fifo, 0600), 0);
  cfg = auth_cfg(fifo, NULL);
  snprintf(msg, sizeof msg, "auth-token-file %s cannot be read: not a regular file", fifo);
  expect_file_refused(a, &cfg, RM_EIO, msg, &n);
  RM_ASSERT_INT(check_value(a, "Bearer kept", &err), 0); /* the set in use stays */
  rm_auth_free(a);
  unlink(link);
  unlink(fifo);
}

/* A file of RM_OPERATOR_FILE_MAX bytes is read; one byte more is refused, not read. */
static void test_file_above_the_cap_is_an_error(void) {
  FILE *f = fopen(token_path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  for (int i = 0; i < RM_OPERATOR_FILE_MAX / 16; i++)
    fprintf(f, "tok-%011d\n", i); /* 16 bytes a line */
  fclose(f);
  rm_config_t cfg = auth_cfg(token_path, NULL);
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  RM_ASSERT_INT(check_value(a, "Bearer tok-00000065535", &err), 0);
  f = fopen(token_path, "a");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("x", f);
  fclose(f);
  char msg[300];
  snprintf(msg, sizeof msg, "auth-token-file %s is larger than the 1048576 bytes allowed",
           token_path);
  size_t n = 0;
  expect_file_refused(a, &cfg, RM_EPARAM, msg, &n);
  RM_ASSERT_INT(n, 65536);
  rm_auth_free(a);
}

/* issue 10 defect 8: a reload swaps the set; a failed one keeps it; the list stays. */
static void test_reload(void) {
  write_tokens("old-token\n");
  rm_config_t cfg = auth_cfg(token_path, "from-list");
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  size_t n = 99;
  int changed = -1;
  RM_ASSERT_INT(rm_auth_reload(a, &cfg, &n, &changed, &err), 0); /* the same file */
  RM_ASSERT_INT(n, 2);
  RM_ASSERT_INT(changed, 0);
  write_tokens("new-token\nsecond\n");
  RM_ASSERT_INT(rm_auth_reload(a, &cfg, &n, &changed, &err), 0);
  RM_ASSERT_INT(n, 3);
  RM_ASSERT_INT(changed, 1);
  EXPECT_REJECTED(a, "Bearer old-token", BAD_TOKEN);
  RM_ASSERT_INT(check_value(a, "Bearer new-token", &err), 0);
  RM_ASSERT_INT(check_value(a, "Bearer second", &err), 0);
  RM_ASSERT_INT(check_value(a, "Bearer from-list", &err), 0);
  write_tokens("second\nnew-token\n"); /* reordered: the same set */
  RM_ASSERT_INT(rm_auth_reload(a, &cfg, NULL, &changed, &err), 0);
  RM_ASSERT_INT(changed, 0);
  /* broken files keep the set in use */
  rm_config_t list_cfg = cfg;
  cfg = auth_cfg(token_path, NULL);
  write_tokens("\n# nothing\n");
  char message[512];
  snprintf(message, sizeof message,
           "auth-token-file %s holds no token (only blank lines and # comments)", token_path);
  n = 0;
  RM_ASSERT_ERR(rm_auth_reload(a, &cfg, &n, &changed, &err), &err, RM_EPARAM, "", "auth-token-file",
                message);
  RM_ASSERT_INT(n, 3); /* the set kept: new-token, second, from-list */
  char *t5k = long_token(5000, 'd');
  FILE *f = fopen(token_path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fprintf(f, "ok\n%s\n", t5k);
  fclose(f);
  free(t5k);
  int rc = rm_auth_reload(a, &cfg, NULL, NULL, &err);
  RM_ASSERT_INT(rc, RM_EPARAM);
  RM_ASSERT_STR(err.field, "auth-token-file");
  cfg = list_cfg;
  cfg.auth_token_file = "/nonexistent/tokens";
  RM_ASSERT_ERR(rm_auth_reload(a, &cfg, NULL, NULL, &err), &err, RM_EIO, "", "auth-token-file",
                "auth-token-file /nonexistent/tokens cannot be read: No such file or directory");
  RM_ASSERT_INT(check_value(a, "Bearer new-token", &err), 0); /* still the last good set */
  RM_ASSERT_INT(check_value(a, "Bearer from-list", &err), 0);
  EXPECT_REJECTED(a, "Bearer ok", BAD_TOKEN);
  rm_auth_free(a);
}

typedef struct checker {
  rm_auth_t *a;
  atomic_int *stop;
  long checks, wrong;
} checker_t;

/* Checks without pause while the main thread reloads: "stable" is in every set, so each
 * check must accept it; "gone" is in none. */
static void *check_loop(void *arg) {
  checker_t *c = arg;
  grpc_metadata ok = {.key = grpc_slice_from_static_string("authorization"),
                      .value = grpc_slice_from_static_string("Bearer stable")};
  grpc_metadata no = {.key = grpc_slice_from_static_string("authorization"),
                      .value = grpc_slice_from_static_string("Bearer gone")};
  grpc_metadata_array md_ok = {1, 1, &ok}, md_no = {1, 1, &no};
  while (!atomic_load(c->stop)) {
    c->wrong += rm_auth_check(c->a, &md_ok, NULL) != 0;
    c->wrong += rm_auth_check(c->a, &md_no, NULL) == 0;
    c->checks += 2;
  }
  return NULL;
}

/* Copies the set's first token without pause (the server's own calls do, from the metrics
 * listener's thread) while the main thread reloads: each copy is a whole first token of some
 * set, never bytes of a freed one (which reloads zero). */
static void *copy_loop(void *arg) {
  checker_t *c = arg;
  while (!atomic_load(c->stop)) {
    char tok[32];
    int bad = rm_auth_copy_token(c->a, tok, sizeof tok) != 0;
    if (!bad && strcmp(tok, "stable") != 0) {
      char *end;
      bad = tok[0] != 'v' || strtol(tok + 1, &end, 10) < 0 || end == tok + 1 || *end;
    }
    c->wrong += bad;
    c->checks++;
  }
  return NULL;
}

static void test_reload_while_checking(void) {
  write_tokens("stable\nv0\n");
  rm_config_t cfg = auth_cfg(token_path, NULL);
  rm_auth_t *a = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_auth_new(&cfg, &a, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  atomic_int stop = 0;
  checker_t c[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) { /* three check, one copies */
    c[i] = (checker_t){a, &stop, 0, 0};
    RM_ASSERT_INT(pthread_create(&th[i], NULL, i < 3 ? check_loop : copy_loop, &c[i]), 0);
  }
  for (int r = 0; r < 200; r++) {
    char text[64];
    snprintf(text, sizeof text, "v%d\nstable\nextra-%d\n", r + 1, r);
    write_tokens(text);
    RM_ASSERT_INT(rm_auth_reload(a, &cfg, NULL, NULL, &err), 0);
  }
  atomic_store(&stop, 1);
  long checks = 0, wrong = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    checks += c[i].checks;
    wrong += c[i].wrong;
  }
  CU_ASSERT(checks > 0);
  RM_ASSERT_INT(wrong, 0);
  RM_ASSERT_INT(check_value(a, "Bearer v200", &err), 0);
  EXPECT_REJECTED(a, "Bearer v199", BAD_TOKEN);
  rm_auth_free(a);
}

static int suite_init(void) {
  snprintf(token_path, sizeof token_path, "/tmp/rm_test_auth_XXXXXX");
  int fd = mkstemp(token_path);
  if (fd < 0)
    return 1;
  close(fd);
  return 0;
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_tokens_from_file_skip_blanks_and_comments),
                                         RM_TEST(test_tokens_from_list_and_file_together),
                                         RM_TEST(test_no_auth_configured_is_off),
                                         RM_TEST(test_empty_token_set_is_an_error),
                                         RM_TEST(test_unreadable_file_is_an_error),
                                         RM_TEST(test_check),
                                         RM_TEST(test_long_tokens_are_read_whole),
                                         RM_TEST(test_token_above_the_maximum_is_an_error),
                                         RM_TEST(test_line_with_a_nul_byte_is_an_error),
                                         RM_TEST(test_file_that_is_not_regular_is_an_error),
                                         RM_TEST(test_file_above_the_cap_is_an_error),
                                         RM_TEST(test_reload),
                                         RM_TEST(test_reload_while_checking),
                                         {NULL, NULL}};
  if (suite_init())
    return 1;
  rm_test_suite("auth", cases);
  int rc = rm_test_run();
  unlink(token_path);
  return rc;
}
