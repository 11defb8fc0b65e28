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

grpc_server_credentials *rm_tls_server_credentials(const rm_config_t *cfg, char *errbuf,
                                                   size_t errcap) {
  if (!*cfg->tls_cert)
    return grpc_insecure_server_credentials_create();
  char *cert = read_pem(cfg->tls_cert), *key = read_pem(cfg->tls_key), *ca = NULL;
  grpc_server_credentials *creds = NULL;
  if (!cert) {
    snprintf(errbuf, errcap, "tls-cert %s cannot be read", cfg->tls_cert);
    goto out;
  }
  if (!key) {
    snprintf(errbuf, errcap, "tls-key %s cannot be read", cfg->tls_key);
    goto out;
  }
  if (*cfg->tls_client_ca && !(ca = read_pem(cfg->tls_client_ca))) {
    snprintf(errbuf, errcap, "tls-client-ca %s cannot be read", cfg->tls_client_ca);
    goto out;
  }
  grpc_ssl_pem_key_cert_pair pair = {key, cert};
  grpc_ssl_client_certificate_request_type req =
      !ca                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
      : cfg->tls_require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  creds = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, req, NULL);
  if (!creds)
    snprintf(errbuf, errcap, "TLS credentials could not be created from %s and %s", cfg->tls_cert,
             cfg->tls_key);
out:
  if (key)
    memset(key, 0, strlen(key));
  rm_free(cert);
  rm_free(key);
  rm_free(ca);
  return creds;
}
