/* tls.h - server credentials: insecure, TLS, or mutual TLS, from PEM files. */
#ifndef RM_SERVER_TLS_H
#define RM_SERVER_TLS_H

#include <grpc/grpc_security.h>
#include <stddef.h>

#include "config.h"

/* New credentials for cfg (insecure when no certificate is configured). NULL with errbuf
 * filled when a file cannot be read. Release with grpc_server_credentials_release. */
grpc_server_credentials *rm_tls_server_credentials(const rm_config_t *cfg, char *errbuf,
                                                   size_t errcap);

#endif
