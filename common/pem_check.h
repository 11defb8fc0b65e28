/* pem_check.h - what the gRPC core would find wrong in PEM credentials only at a handshake,
 * found before: a certificate block that does not parse, a key that does not or that is not
 * the certificate's. For the server's TLS files and the C client's (in rm_common; never
 * exported by librmclient). */
#ifndef RM_PEM_CHECK_H
#define RM_PEM_CHECK_H

#include <openssl/x509.h>

/* The first certificate block of the NUL-terminated PEM text that does not parse: its number
 * (1-based, counting certificates), with *line (1-based, where its block begins) and *why
 * (OpenSSL's reason, static text) set; 0 when every one parses (*count, may be NULL, is then
 * how many there are: 0 when none), -1 out of memory. The core reads a chain or bundle until a
 * block does not parse and silently keeps those before it, so a damaged block in the middle of a CA
 * bundle drops every CA after it. Blocks of other labels are skipped, as the core skips them;
 * certificates are read as the core reads them (TRUSTED CERTIFICATE too). Clears this thread's
 * OpenSSL error queue (the core reads it too). Any thread. */
int rm__pem_bad_cert(const char *pem, unsigned *count, unsigned *line, const char **why);

/* The certificates of the NUL-terminated PEM text, read as the core reads them (TRUSTED
 * CERTIFICATE too, blocks of other labels skipped), in order up to the first block that does
 * not parse; free with sk_X509_pop_free(certs, X509_free). NULL out of memory. Clears this
 * thread's OpenSSL error queue. Any thread. */
STACK_OF(X509) * rm__pem_certs(const char *pem);

typedef enum rm_pem_key {
  RM_PEM_KEY_OK = 0,
  RM_PEM_KEY_UNPARSABLE, /* no private key that parses (damaged or encrypted) */
  RM_PEM_KEY_MISMATCH,   /* it is not the key of the chain's first certificate */
  RM_PEM_KEY_NOMEM = -1
} rm_pem_key_t;

/* Whether the NUL-terminated PEM key parses and belongs to the first certificate of the PEM
 * chain cert (which should have passed rm__pem_bad_cert). An encrypted key does not parse:
 * OpenSSL is given the empty password, as the core gives it, so it never asks for a passphrase
 * on a terminal. Clears this thread's OpenSSL error queue. Any thread. */
rm_pem_key_t rm__pem_check_key(const char *key, const char *cert);

#endif
