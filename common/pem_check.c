/* pem_check.c - PEM credentials checked with OpenSSL before the core uses them (pem_check.h). */
#include "pem_check.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

/* The password OpenSSL is given: none, so an encrypted key fails instead of OpenSSL's default
 * callback prompting on the terminal (at start-up, or in a SIGHUP reload). */
static char no_password[] = "";

int rm__pem_bad_cert(const char *pem, unsigned *count, unsigned *line, const char **why) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  if (!b)
    return -1;
  int bad = 0;
  for (unsigned n = 1;; n++) {
    long before = BIO_tell(b);
    ERR_clear_error();
    X509 *x = PEM_read_bio_X509_AUX(b, NULL, NULL, no_password);
    if (x) {
      X509_free(x);
      continue;
    }
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
      if (count) /* no block left */
        *count = n - 1;
      break;
    }
    const char *at = strstr(pem + (before > 0 ? before : 0), "-----BEGIN");
    *line = 1;
    for (const char *c = pem; at && c < at; c++)
      *line += *c == '\n';
    *why = ERR_reason_error_string(e);
    if (!*why)
      *why = "unknown error";
    bad = (int)n;
    break;
  }
  BIO_free(b);
  ERR_clear_error();
  return bad;
}

STACK_OF(X509) * rm__pem_certs(const char *pem) {
  STACK_OF(X509) *out = sk_X509_new_null();
  BIO *b = out ? BIO_new_mem_buf(pem, -1) : NULL;
  X509 *x;
  while (b && (x = PEM_read_bio_X509_AUX(b, NULL, NULL, no_password)))
    if (!sk_X509_push(out, x)) {
      X509_free(x);
      break;
    }
  if (out && !b) {
    sk_X509_free(out);
    out = NULL;
  }
  BIO_free(b);
  ERR_clear_error();
  return out;
}

rm_pem_key_t rm__pem_check_key(const char *key, const char *cert) {
  BIO *kb = BIO_new_mem_buf(key, -1), *cb = BIO_new_mem_buf(cert, -1);
  EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, no_password) : NULL;
  X509 *x = cb ? PEM_read_bio_X509_AUX(cb, NULL, NULL, no_password) : NULL;
  rm_pem_key_t rc = !kb || !cb                                ? RM_PEM_KEY_NOMEM
                    : !k                                      ? RM_PEM_KEY_UNPARSABLE
                    : !x || X509_check_private_key(x, k) != 1 ? RM_PEM_KEY_MISMATCH
                                                              : RM_PEM_KEY_OK;
  X509_free(x);
  EVP_PKEY_free(k);
  BIO_free(kb);
  BIO_free(cb);
  ERR_clear_error();
  return rc;
}
