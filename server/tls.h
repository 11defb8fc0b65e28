/* tls.h - server credentials: insecure, TLS, or mutual TLS, from PEM files. */
#ifndef RM_SERVER_TLS_H
#define RM_SERVER_TLS_H

#include <grpc/grpc_security.h>
#include <stddef.h>

#include "config.h"
#include "rm/error.h"

/* New credentials for cfg in *out (insecure when no certificate is configured); release
 * them with grpc_server_credentials_release. Returns 0, or with *out = NULL and err (may
 * be NULL) filled: RM_EIO when a PEM file cannot be read or is empty, RM_EPARAM when gRPC
 * refuses the certificate and key. err->field names the option. Needs grpc_init(). */
int rm_tls_server_credentials(const rm_config_t *cfg, grpc_server_credentials **out,
                              rm_error_t *err);

#endif
