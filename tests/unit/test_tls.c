/* test_tls.c - which certificate the server trusts as itself (rm_tls_presents, used by its
 * calls to its own port): the one it presents, and the one before the last reload, never
 * another; rm_tls_cert_pem gives the one it presents. Certificates made by openssl. */
#include <grpc/grpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"
#include "tls.h"

static char dir[64];
static char *pem_a, *pem_b, *pem_c; /* three self-signed certificates' texts */

static char *path_of(const char *name) {
  static char p[128];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static char *slurp(const char *name) {
  FILE *f = fopen(path_of(name), "rb");
  if (!f)
    return NULL;
  char *text = calloc(1, 1 << 16);
  if (text)
    fread(text, 1, (1 << 16) - 1, f);
  fclose(f);
  return text;
}

/* name.pem / name.key: an EC P-256 self-signed certificate. */
static int issue(const char *name) {
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout %s.key -out %s.pem -days 2 -subj /CN=%s 2>/dev/null",
           dir, name, name, name);
  return system(cmd);
}

/* The server's files (cert.pem / cert.key) become certificate `name`'s. */
static void use(const char *name) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "cd %s && cp %s.pem cert.pem && cp %s.key cert.key", dir, name, name);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

static rm_config_t tls_cfg(void) {
  static char cert[128], key[128];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/cert.key", dir);
  rm_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.tls_cert = cert;
  cfg.tls_key = key;
  cfg.tls_client_ca = "";
  return cfg;
}

static void test_presents_its_certificate_and_no_other(void) {
  use("a");
  rm_config_t cfg = tls_cfg();
  rm_tls_t *t;
  grpc_server_credentials *creds;
  CU_ASSERT_EQUAL_FATAL(rm_tls_new(&cfg, &t, &creds, NULL), 0);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_a), 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_b), 0);
  CU_ASSERT_EQUAL(rm_tls_presents(t, "not a certificate"), 0);
  CU_ASSERT_EQUAL(rm_tls_presents(t, ""), 0);
  CU_ASSERT_EQUAL(rm_tls_presents(t, NULL), 0);
  char *own = rm_tls_cert_pem(t);
  CU_ASSERT_PTR_NOT_NULL_FATAL(own);
  CU_ASSERT_EQUAL(strncmp(own, "-----BEGIN CERTIFICATE-----\n", 28), 0);
  CU_ASSERT_EQUAL(rm_tls_presents(t, own), 1);
  rm_free(own);
  grpc_server_credentials_release(creds);
  rm_tls_free(t);
}

/* A reload that changes the certificate: the new one and the one before it (a handshake may
 * have begun before the reload) are the server's; after a second change, the first is not. */
static void test_reload_keeps_the_previous_certificate_only(void) {
  use("a");
  rm_config_t cfg = tls_cfg();
  rm_tls_t *t;
  grpc_server_credentials *creds;
  CU_ASSERT_EQUAL_FATAL(rm_tls_new(&cfg, &t, &creds, NULL), 0);
  int changed = -1;
  CU_ASSERT_EQUAL(rm_tls_reload(t, &cfg, &changed, NULL), 0);
  CU_ASSERT_EQUAL(changed, 0); /* the same files: nothing moves */
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_a), 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_b), 0);
  use("b");
  CU_ASSERT_EQUAL(rm_tls_reload(t, &cfg, &changed, NULL), 0);
  CU_ASSERT_EQUAL(changed, 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_b), 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_a), 1);
  char *own = rm_tls_cert_pem(t);
  CU_ASSERT_PTR_NOT_NULL_FATAL(own);
  CU_ASSERT_EQUAL(rm_tls_presents(t, own), 1);
  CU_ASSERT_EQUAL(strcmp(own, pem_b), 0); /* openssl writes it as openssl wrote the file */
  rm_free(own);
  use("c");
  CU_ASSERT_EQUAL(rm_tls_reload(t, &cfg, &changed, NULL), 0);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_c), 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_b), 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_a), 0);
  /* a reload that fails (the key no longer matches) changes nothing */
  char cmd[256];
  snprintf(cmd, sizeof cmd, "cp %s/a.key %s/cert.key", dir, dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  rm_error_t err;
  CU_ASSERT_EQUAL(rm_tls_reload(t, &cfg, NULL, &err), RM_EPARAM);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_c), 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_b), 1);
  grpc_server_credentials_release(creds);
  rm_tls_free(t);
}

/* A certificate file in the TRUSTED CERTIFICATE form (openssl x509 -trustout), which the core
 * reads: the server starts with it and trusts it as itself (it was read with plain
 * PEM_read_bio_X509, which skips such blocks: start-up failed "out of memory"). */
static void test_trusted_certificate_form(void) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "cd %s && openssl x509 -in a.pem -trustout -out t.pem && cp a.key t.key && "
           "grep -q 'BEGIN TRUSTED CERTIFICATE' t.pem",
           dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  use("t");
  rm_config_t cfg = tls_cfg();
  rm_tls_t *t;
  grpc_server_credentials *creds;
  CU_ASSERT_EQUAL_FATAL(rm_tls_new(&cfg, &t, &creds, NULL), 0);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_a), 1);
  CU_ASSERT_EQUAL(rm_tls_presents(t, pem_b), 0);
  grpc_server_credentials_release(creds);
  rm_tls_free(t);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_presents_its_certificate_and_no_other),
                                         RM_TEST(test_reload_keeps_the_previous_certificate_only),
                                         RM_TEST(test_trusted_certificate_form),
                                         {NULL, NULL}};
  snprintf(dir, sizeof dir, "/tmp/rm_test_tls_XXXXXX");
  if (!mkdtemp(dir) || issue("a") || issue("b") || issue("c")) {
    fprintf(stderr, "test_tls: cannot make certificates with openssl in %s\n", dir);
    return 1;
  }
  pem_a = slurp("a.pem");
  pem_b = slurp("b.pem");
  pem_c = slurp("c.pem");
  if (!pem_a || !pem_b || !pem_c)
    return 1;
  grpc_init();
  rm_test_suite("tls", cases);
  int rc = rm_test_run();
  grpc_shutdown();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd))
    rc = 1;
  free(pem_a);
  free(pem_b);
  free(pem_c);
  return rc;
}
