/* tls.c - server credentials from PEM files, checked before use and handed to the core
 * through its certificate-config fetcher so a reload rotates them without a restart. */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pem_check.h"
#include "rm/alloc.h"

struct rm_tls {
  /* A checked configuration the core has not taken yet; the fetcher takes it (exchange
   * with NULL), so each is handed over once. */
  _Atomic(grpc_ssl_server_certificate_config *) pending;
  uint64_t digest; /* of the files in use (or pending), to tell a reload that changes nothing */
  /* The certificate new handshakes present and the one before the last change (a handshake
   * may have started before it): what rm_tls_presents compares with; under mu. */
  pthread_mutex_t mu;
  X509 *leaf, *previous;
  /* With required client certificates, the server's own certificate chain and key when the
   * client CA accepts that chain as a client's (rm_tls_identity); else NULL. Under mu. */
  char *id_cert, *id_key;
};

/* The three PEM texts of a configuration. */
typedef struct pems {
  char *cert, *key, *ca;
} pems_t;

static void pems_free(pems_t *p) {
  if (p->key)
    memset(p->key, 0, strlen(p->key));
  rm_free(p->cert);
  rm_free(p->key);
  rm_free(p->ca);
  memset(p, 0, sizeof *p);
}

/* The whole file of option `field` as a NUL-terminated string into *pem; an empty one cannot
 * be read either, and a NUL byte would end the text the core and OpenSSL see. */
static int read_pem(const char *field, const char *path, char **pem, rm_error_t *err) {
  size_t len = 0;
  int rc = rm__config_read_file(field, field, path, pem, &len, err);
  if (rc)
    return rc;
  size_t text = strlen(*pem);
  if (!len)
    rc = rm__config_fail(err, RM_EIO, field, "%s %s cannot be read: it is empty", field, path);
  else if (text < len)
    rc = rm__config_fail(err, RM_EPARAM, field,
                         "%s %s holds a NUL byte at offset %zu: a PEM file is text", field, path,
                         text);
  if (rc) {
    rm_free(*pem);
    *pem = NULL;
  }
  return rc;
}

/* Every certificate block of a chain or bundle parses (rm__pem_bad_cert): the core would keep
 * the certificates before a damaged block and silently drop the rest, so the server started
 * and clients signed by a CA after it failed every handshake. *count: the certificates held. */
static int check_every_cert(const char *field, const char *path, const char *pem, unsigned *count,
                            rm_error_t *err) {
  unsigned line = 0;
  const char *why = NULL;
  int bad = rm__pem_bad_cert(pem, count, &line, &why);
  if (bad < 0)
    return rm__config_fail(err, RM_ENOMEM, field, "out of memory");
  if (bad)
    return rm__config_fail(err, RM_EPARAM, field,
                           "%s %s: certificate %d (line %u) does not parse (%s); the "
                           "certificates after it would be ignored",
                           field, path, bad, line, why);
  return 0;
}

/* Every certificate parses, the key parses and matches the first, the CA bundle holds a
 * certificate: what gRPC would otherwise find only at the next handshake. */
static int check_pems(const rm_config_t *cfg, const pems_t *p, rm_error_t *err) {
  unsigned certs = 0, cas = 0;
  int rc = check_every_cert("tls-cert", cfg->tls_cert, p->cert, &certs, err);
  if (!rc && p->ca)
    rc = check_every_cert("tls-client-ca", cfg->tls_client_ca, p->ca, &cas, err);
  if (!rc && !certs)
    rc = rm__config_fail(err, RM_EPARAM, "tls-cert", "tls-cert %s holds no PEM certificate",
                         cfg->tls_cert);
  rm_pem_key_t k = rc ? RM_PEM_KEY_OK : rm__pem_check_key(p->key, p->cert);
  if (k == RM_PEM_KEY_NOMEM)
    rc = rm__config_fail(err, RM_ENOMEM, "tls-key", "out of memory");
  else if (k == RM_PEM_KEY_UNPARSABLE)
    rc = rm__config_fail(err, RM_EPARAM, "tls-key", "tls-key %s holds no PEM private key",
                         cfg->tls_key);
  else if (k == RM_PEM_KEY_MISMATCH)
    rc = rm__config_fail(err, RM_EPARAM, "tls-key",
                         "tls-key %s does not match the certificate in tls-cert %s", cfg->tls_key,
                         cfg->tls_cert);
  if (!rc && p->ca && !cas)
    rc = rm__config_fail(err, RM_EPARAM, "tls-client-ca",
                         "tls-client-ca %s holds no PEM certificate", cfg->tls_client_ca);
  ERR_clear_error(); /* the queue is per thread and gRPC reads it too */
  return rc;
}

/* Reads and checks cfg's files into p (freed with pems_free in every case). */
static int load_pems(const rm_config_t *cfg, pems_t *p, rm_error_t *err) {
  memset(p, 0, sizeof *p);
  int rc = read_pem("tls-cert", cfg->tls_cert, &p->cert, err);
  if (!rc)
    rc = read_pem("tls-key", cfg->tls_key, &p->key, err);
  if (!rc && *cfg->tls_client_ca)
    rc = read_pem("tls-client-ca", cfg->tls_client_ca, &p->ca, err);
  if (rc)
    return rc;
  return check_pems(cfg, p, err);
}

/* The first certificate of a checked PEM text; NULL: out of memory (or none). */
static X509 *first_cert(const char *pem) {
  STACK_OF(X509) *all = rm__pem_certs(pem);
  X509 *x = all && sk_X509_num(all) > 0 ? sk_X509_shift(all) : NULL;
  sk_X509_pop_free(all, X509_free);
  return x;
}

/* Whether the client CA bundle accepts the server's own chain as a client's, as the server's
 * handshake will verify it (purpose: TLS client; its extended key usage must allow that). */
static int accepted_as_client(const pems_t *p) {
  STACK_OF(X509) *chain = rm__pem_certs(p->cert), *cas = rm__pem_certs(p->ca);
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int ok = 0;
  if (chain && cas && store && ctx && sk_X509_num(chain) > 0) {
    for (int i = 0; i < sk_X509_num(cas); i++)
      X509_STORE_add_cert(store, sk_X509_value(cas, i));
    if (X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), chain) == 1 &&
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) == 1)
      ok = X509_verify_cert(ctx) == 1;
  }
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(cas, X509_free);
  ERR_clear_error();
  return ok;
}

static void free_secret(char *text) {
  if (text)
    memset(text, 0, strlen(text));
  rm_free(text);
}

/* Sets t's identity for cfg and p (under t->mu when shared): 0, or -1 when memory ran out. */
static int set_identity(rm_tls_t *t, const rm_config_t *cfg, const pems_t *p) {
  char *cert = NULL, *key = NULL;
  if (cfg->tls_require_client_cert && p->ca && accepted_as_client(p)) {
    cert = rm_strdup(p->cert);
    key = rm_strdup(p->key);
    if (!cert || !key) {
      rm_free(cert);
      free_secret(key);
      return -1;
    }
  }
  rm_free(t->id_cert);
  free_secret(t->id_key);
  t->id_cert = cert;
  t->id_key = key;
  return 0;
}

/* FNV-1a over the three texts, each with its terminator. */
static uint64_t digest_of(const pems_t *p) {
  uint64_t h = 1469598103934665603ULL;
  const char *parts[] = {p->cert, p->key, p->ca ? p->ca : ""};
  for (size_t i = 0; i < 3; i++)
    for (const unsigned char *c = (const unsigned char *)parts[i];; c++) {
      h = (h ^ *c) * 1099511628211ULL;
      if (!*c)
        break;
    }
  return h;
}

/* The core's certificate-config callback, run on whichever thread starts a handshake. */
static grpc_ssl_certificate_config_reload_status
fetch(void *user_data, grpc_ssl_server_certificate_config **config) {
  rm_tls_t *t = user_data;
  grpc_ssl_server_certificate_config *next = atomic_exchange(&t->pending, NULL);
  if (!next)
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  *config = next; /* the core owns it now */
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

/* A core certificate config from checked texts (it copies them). The core (1.51) asserts
 * that a fetched config has root certificates even when client certificates are not
 * requested: then the server's own chain stands in, loaded but never used to verify. */
static grpc_ssl_server_certificate_config *make_config(const pems_t *p) {
  grpc_ssl_pem_key_cert_pair pair = {p->key, p->cert};
  return grpc_ssl_server_certificate_config_create(p->ca ? p->ca : p->cert, &pair, 1);
}

int rm_tls_new(const rm_config_t *cfg, rm_tls_t **out, grpc_server_credentials **creds,
               rm_error_t *err) {
  *out = NULL;
  *creds = NULL;
  if (!*cfg->tls_cert) {
    *creds = grpc_insecure_server_credentials_create();
    return 0;
  }
  pems_t p;
  int rc = load_pems(cfg, &p, err);
  rm_tls_t *t = NULL;
  if (rc)
    goto out;
  if (!(t = rm_calloc(1, sizeof *t))) {
    rc = rm__config_fail(err, RM_ENOMEM, "tls-cert", "out of memory");
    goto out;
  }
  pthread_mutex_init(&t->mu, NULL);
  t->digest = digest_of(&p);
  t->leaf = first_cert(p.cert);
  atomic_init(&t->pending, make_config(&p));
  if (!t->leaf || !atomic_load(&t->pending) || set_identity(t, cfg, &p)) {
    rc = rm__config_fail(err, RM_ENOMEM, "tls-cert", "out of memory");
    goto out;
  }
  grpc_ssl_client_certificate_request_type req =
      !p.ca                          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
      : cfg->tls_require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  grpc_ssl_server_credentials_options *opts =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(req, fetch, t);
  *creds = opts ? grpc_ssl_server_credentials_create_with_options(opts) : NULL;
  if (!*creds)
    rc = rm__config_fail(err, RM_EPARAM, "tls-cert",
                         "TLS credentials could not be created from %s and %s", cfg->tls_cert,
                         cfg->tls_key);
out:
  pems_free(&p);
  if (rc) {
    if (*creds)
      grpc_server_credentials_release(*creds);
    *creds = NULL;
    rm_tls_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int rm_tls_reload(rm_tls_t *t, const rm_config_t *cfg, int *changed, rm_error_t *err) {
  pems_t p;
  int rc = load_pems(cfg, &p, err);
  if (!rc) {
    uint64_t d = digest_of(&p);
    if (changed)
      *changed = d != t->digest;
    if (d != t->digest) {
      grpc_ssl_server_certificate_config *next = make_config(&p);
      X509 *leaf = first_cert(p.cert);
      if (!next || !leaf) {
        if (next)
          grpc_ssl_server_certificate_config_destroy(next);
        X509_free(leaf);
        rc = rm__config_fail(err, RM_ENOMEM, "tls-cert", "out of memory");
      } else {
        pthread_mutex_lock(&t->mu);
        X509_free(t->previous);
        t->previous = t->leaf;
        t->leaf = leaf;
        if (set_identity(t, cfg, &p)) /* then none: the probes say what they cannot check */
          set_identity(t, &(rm_config_t){0}, &p);
        grpc_ssl_server_certificate_config *stale = atomic_exchange(&t->pending, next);
        pthread_mutex_unlock(&t->mu);
        if (stale) /* an earlier reload no handshake took yet */
          grpc_ssl_server_certificate_config_destroy(stale);
        t->digest = d;
      }
    }
  }
  pems_free(&p);
  return rc;
}

int rm_tls_presents(rm_tls_t *t, const char *pem) {
  X509 *x = pem ? first_cert(pem) : NULL;
  if (!x)
    return 0;
  pthread_mutex_lock(&t->mu);
  int same = !X509_cmp(x, t->leaf) || (t->previous && !X509_cmp(x, t->previous));
  pthread_mutex_unlock(&t->mu);
  X509_free(x);
  return same;
}

int rm_tls_has_identity(rm_tls_t *t) {
  pthread_mutex_lock(&t->mu);
  int has = t->id_cert != NULL;
  pthread_mutex_unlock(&t->mu);
  return has;
}

int rm_tls_identity(rm_tls_t *t, char **cert, char **key) {
  *cert = *key = NULL;
  pthread_mutex_lock(&t->mu);
  if (t->id_cert) {
    *cert = rm_strdup(t->id_cert);
    *key = rm_strdup(t->id_key);
  }
  pthread_mutex_unlock(&t->mu);
  if (*cert && *key)
    return 1;
  rm_free(*cert);
  free_secret(*key);
  *cert = *key = NULL;
  return 0;
}

char *rm_tls_cert_pem(rm_tls_t *t) {
  char *out = NULL;
  BIO *b = BIO_new(BIO_s_mem());
  pthread_mutex_lock(&t->mu);
  int ok = b && PEM_write_bio_X509(b, t->leaf);
  pthread_mutex_unlock(&t->mu);
  char *data;
  long len = ok ? BIO_get_mem_data(b, &data) : 0;
  if (len > 0 && (out = rm_malloc((size_t)len + 1))) {
    memcpy(out, data, (size_t)len);
    out[len] = 0;
  }
  BIO_free(b);
  ERR_clear_error();
  return out;
}

void rm_tls_free(rm_tls_t *t) {
  if (!t)
    return;
  grpc_ssl_server_certificate_config *left = atomic_load(&t->pending);
  if (left)
    grpc_ssl_server_certificate_config_destroy(left);
  pthread_mutex_destroy(&t->mu);
  X509_free(t->leaf);
  X509_free(t->previous);
  rm_free(t->id_cert);
  free_secret(t->id_key);
  rm_free(t);
}
