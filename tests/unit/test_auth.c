/* test_auth.c - bearer-token authentication: tokens from a file and a list (blank lines,
 * comments, whitespace), configuration errors, and the check of a call's metadata. */
#include <grpc/grpc.h>
#include <stdio.h>
#include <string.h>
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
    const char *file_text, *list, *field;
  } cases[] = {
      {"", NULL, "auth-token-file"},
      {"\n\n  \n# only comments\n\t\r\n", NULL, "auth-token-file"},
      {NULL, ",", "auth-tokens"},
      {NULL, " , \t ,", "auth-tokens"},
      {"#\n", " ,", "auth-token-file"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cases[i].file_text)
      write_tokens(cases[i].file_text);
    rm_config_t cfg = auth_cfg(cases[i].file_text ? token_path : "", cases[i].list);
    rm_auth_t *a = (rm_auth_t *)&cfg;
    rm_error_t err;
    int rc = rm_auth_new(&cfg, &a, &err);
    RM_ASSERT_ERR(rc, &err, RM_EPARAM, "", cases[i].field,
                  "auth is configured but no token was given");
    CU_ASSERT_PTR_NULL(a);
  }
}

static void test_unreadable_file_is_an_error(void) {
  rm_config_t cfg = auth_cfg("/nonexistent/tokens", "ok");
  rm_auth_t *a = (rm_auth_t *)&cfg;
  rm_error_t err;
  int rc = rm_auth_new(&cfg, &a, &err);
  RM_ASSERT_ERR(rc, &err, RM_EIO, "", "auth-token-file",
                "auth-token-file /nonexistent/tokens cannot be read");
  CU_ASSERT_PTR_NULL(a);
  cfg = auth_cfg("/", NULL); /* a directory opens but does not read as lines */
  rc = rm_auth_new(&cfg, &a, &err);
  CU_ASSERT(rc == RM_EIO || rc == RM_EPARAM);
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
                                         {NULL, NULL}};
  if (suite_init())
    return 1;
  rm_test_suite("auth", cases);
  int rc = rm_test_run();
  unlink(token_path);
  return rc;
}
