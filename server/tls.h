/* tls.h - server credentials: insecure, TLS, or mutual TLS, from PEM files that a reload
 * replaces without a restart (certificate rotation). */
#ifndef RM_SERVER_TLS_H
#define RM_SERVER_TLS_H

#include <grpc/grpc_security.h>
#include <stddef.h>

#include "config.h"
#include "rm/error.h"

typedef struct rm_tls rm_tls_t;

/* New credentials for cfg in *creds (insecure when no certificate is configured, then *out
 * = NULL); release them with grpc_server_credentials_release. With TLS, *out is the state
 * the core asks for the certificate on each new handshake (the credentials point to it: it
 * must outlive every server using them; free it after grpc_server_destroy). Returns 0, or
 * with *creds = *out = NULL and err (may be NULL) filled: RM_EIO when a PEM file cannot be
 * read or is empty, RM_EPARAM when a file holds no PEM certificate / private key, the key
 * does not match the certificate, or gRPC refuses them. err->field names the option. Needs
 * grpc_init(). Main thread. */
int rm_tls_new(const rm_config_t *cfg, rm_tls_t **out, grpc_server_credentials **creds,
               rm_error_t *err);

/* Re-reads cfg's certificate, key and client CA and checks them as rm_tls_new does; when
 * they are valid and differ from those in use, new handshakes (new connections) use them
 * from now on, and connections already open keep theirs. On error (same codes and
 * messages as rm_tls_new) the files in use stay. *changed (may be NULL) says whether the
 * files' contents differ from those in use. Main thread (one reload at a time). */
int rm_tls_reload(rm_tls_t *t, const rm_config_t *cfg, int *changed, rm_error_t *err);

/* 1 when pem's first certificate is the one the server presents to new handshakes, or the one
 * it presented before the last change (a handshake may have begun before it); else 0. Lets
 * the server's calls to itself (self_call.h) trust the peer they reach. Any thread. */
int rm_tls_presents(rm_tls_t *t, const char *pem);

/* With required client certificates (--tls-require-client-cert), copies of the server's own
 * certificate chain and key, PEM, in *cert and *key (rm_free them; zero the key first) when
 * the client CA accepts that chain as a client's, so the server can call its own port: 1;
 * else 0 with both NULL (also when memory is short). Any thread. */
int rm_tls_identity(rm_tls_t *t, char **cert, char **key);
/* 1 when rm_tls_identity would give one. Any thread. */
int rm_tls_has_identity(rm_tls_t *t);

/* A copy of the certificate the server presents to new handshakes, PEM (rm_free it); NULL
 * when memory is short. Any thread. */
char *rm_tls_cert_pem(rm_tls_t *t);

/* Frees the state, after the server using its credentials was destroyed. NULL is a no-op. */
void rm_tls_free(rm_tls_t *t);

#endif
