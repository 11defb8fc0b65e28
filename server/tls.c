/* tls.c - server credentials from PEM files. */
#include "tls.h"

#include <stdio.h>
#include <string.h>

#include "file_util.h"
#include "rm/alloc.h"

/* Whole file as a NUL-terminated string, NULL if unreadable or empty. */
static char *read_pem(const char *path) {
  size_t len = 0;
  char *pem = rm__file_read(path, &len, rm_realloc, rm_free);
  if (pem && !len) {
    rm_free(pem);
    return NULL;
  }
  return pem;
}

int rm_tls_server_credentials(const rm_config_t *cfg, grpc_server_credentials **out,
                              rm_error_t *err) {
  *out = NULL;
  if (!*cfg->tls_cert) {
    *out = grpc_insecure_server_credentials_create();
    return 0;
  }
  char *cert = read_pem(cfg->tls_cert), *key = read_pem(cfg->tls_key), *ca = NULL;
  int rc = 0;
  if (!cert) {
    rc = rm__config_fail(err, RM_EIO, "tls-cert", "tls-cert %s cannot be read", cfg->tls_cert);
    goto out;
  }
  if (!key) {
    rc = rm__config_fail(err, RM_EIO, "tls-key", "tls-key %s cannot be read", cfg->tls_key);
    goto out;
  }
  if (*cfg->tls_client_ca && !(ca = read_pem(cfg->tls_client_ca))) {
    rc = rm__config_fail(err, RM_EIO, "tls-client-ca", "tls-client-ca %s cannot be read",
                         cfg->tls_client_ca);
    goto out;
  }
  grpc_ssl_pem_key_cert_pair pair = {key, cert};
  grpc_ssl_client_certificate_request_type req =
      !ca                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
      : cfg->tls_require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  *out = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, req, NULL);
  if (!*out)
    rc = rm__config_fail(err, RM_EPARAM, "tls-cert",
                         "TLS credentials could not be created from %s and %s", cfg->tls_cert,
                         cfg->tls_key);
out:
  if (key)
    memset(key, 0, strlen(key));
  rm_free(cert);
  rm_free(key);
  rm_free(ca);
  return rc;
}
