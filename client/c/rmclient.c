/* rmclient.c - librmclient core: the channel, one blocking unary call on its own
 * completion queue, error detail from statuses and trailers, and the small RPCs
 * (ListNodeTypes, GetVersion, health Check). */
#include <ctype.h>
#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc_status.h"
#include "grpc_unary.h"
#include "pem_check.h"
#include "rm/wire_proto.h"
#include "rmclient_int.h"

#define DEFAULT_MAX_MESSAGE_BYTES (64 * 1024 * 1024)

/* ------------------------------------------------------------------ names */

const char *rm_client_strerror(int code) {
  switch (code) {
  case RM_CLIENT_OK: return "ok";
  case RM_CLIENT_EINVAL: return "invalid_argument";
  case RM_CLIENT_ENOMEM: return "out_of_memory";
  case RM_CLIENT_EIO: return "io_error";
  case RM_CLIENT_EMANIFEST: return "invalid_manifest";
  case RM_CLIENT_ESTATUS: return "status";
  case RM_CLIENT_EPROTO: return "protocol_error";
  case RM_CLIENT_EINTERNAL: return "internal";
  case RM_CLIENT_EEND: return "end_of_stream";
  case RM_CLIENT_ETIMEDOUT: return "timed_out";
  default: return "unknown_error";
  }
}

const char *rm_client_status_name(int status) { return rm__grpc_status_name(status); }

const char *rm_client_health_name(int status) {
  switch (status) {
  case RM_CLIENT_HEALTH_SERVING: return "SERVING";
  case RM_CLIENT_HEALTH_NOT_SERVING: return "NOT_SERVING";
  case RM_CLIENT_HEALTH_SERVICE_UNKNOWN: return "SERVICE_UNKNOWN";
  default: return "UNKNOWN";
  }
}

const char *rm_client_version(void) { return RM_CLIENT_VERSION; }

/* ------------------------------------------------------------------ errors */

static void error_clear(rm_client_error_t *err, int code) {
  memset(err, 0, sizeof *err);
  err->code = code;
}

int rm__client_fail(rm_client_error_t *err, int code, const char *fmt, ...) {
  if (!err)
    return code;
  error_clear(err, code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return code;
}

int rm__client_check_metadata(const char *value, const char *what, rm_client_error_t *err) {
  for (const char *p = value; *p; p++) {
    unsigned char b = (unsigned char)*p;
    if (b < 0x20 || b > 0x7e) /* the value itself is not echoed: it may be a secret */
      return rm__client_fail(err, RM_CLIENT_EINVAL,
                             "%s: byte 0x%02x at offset %zu is not printable ASCII (gRPC metadata "
                             "values are 0x20-0x7E)",
                             what, b, (size_t)(p - value));
  }
  return 0;
}

/* Copies a slice into a NUL-terminated fixed buffer, truncating. */
static void copy_slice(char *dst, size_t cap, grpc_slice s) {
  size_t n = GRPC_SLICE_LENGTH(s);
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, GRPC_SLICE_START_PTR(s), n);
  dst[n] = '\0';
}

static int slice_is(grpc_slice s, const char *str) {
  size_t n = strlen(str);
  return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), str, n) == 0;
}

/* Copies len bytes into a NUL-terminated fixed buffer, truncating. */
static void copy_bytes(char *dst, size_t cap, const void *src, size_t len) {
  if (len >= cap)
    len = cap - 1;
  memcpy(dst, src, len);
  dst[len] = '\0';
}

static void copy_str(char *dst, size_t cap, const char *src) {
  copy_bytes(dst, cap, src, strlen(src));
}

/* The ErrorInfo of a google.rpc.Status into err (reason, domain, kind, node, field,
 * request id). */
static void read_error_info(rm_client_error_t *err, const ProtobufCBinaryData *value) {
  Google__Rpc__ErrorInfo *info = google__rpc__error_info__unpack(NULL, value->len, value->data);
  if (!info)
    return;
  copy_str(err->reason, sizeof err->reason, info->reason);
  copy_str(err->domain, sizeof err->domain, info->domain);
  size_t i = 0;
  for (; info->reason[i] && i < sizeof err->kind - 1; i++)
    err->kind[i] = (char)tolower((unsigned char)info->reason[i]);
  err->kind[i] = '\0';
  for (size_t k = 0; k < info->n_metadata; k++) {
    const char *key = info->metadata[k]->key, *v = info->metadata[k]->value;
    if (!strcmp(key, "node"))
      copy_str(err->node_id, sizeof err->node_id, v);
    else if (!strcmp(key, "field"))
      copy_str(err->field, sizeof err->field, v);
    else if (!strcmp(key, "request_id"))
      copy_str(err->request_id, sizeof err->request_id, v);
  }
  google__rpc__error_info__free_unpacked(info, NULL);
}

static void read_bad_request(rm_client_error_t *err, const ProtobufCBinaryData *value) {
  Google__Rpc__BadRequest *bad = google__rpc__bad_request__unpack(NULL, value->len, value->data);
  if (!bad)
    return;
  for (size_t k = 0; k < bad->n_field_violations && err->n_violations < RM_CLIENT_VIOLATIONS_MAX;
       k++) {
    rm_client_violation_t *v = &err->violations[err->n_violations++];
    copy_str(v->field, sizeof v->field, bad->field_violations[k]->field);
    copy_str(v->description, sizeof v->description, bad->field_violations[k]->description);
  }
  google__rpc__bad_request__free_unpacked(bad, NULL);
}

/* The standard details (grpc-status-details-bin, a google.rpc.Status) into err. A status
 * whose code disagrees with the call's is ignored, as gRPC's own helpers do. */
static void read_details(rm_client_error_t *err, grpc_slice value, grpc_status_code status) {
  Google__Rpc__Status *st =
      google__rpc__status__unpack(NULL, GRPC_SLICE_LENGTH(value), GRPC_SLICE_START_PTR(value));
  if (!st)
    return;
  if (st->code == (int32_t)status) {
    err->has_details = 1;
    for (size_t i = 0; i < st->n_details; i++) {
      const Google__Protobuf__Any *any = st->details[i];
      if (!strcmp(any->type_url, "type.googleapis.com/google.rpc.ErrorInfo"))
        read_error_info(err, &any->value);
      else if (!strcmp(any->type_url, "type.googleapis.com/google.rpc.BadRequest"))
        read_bad_request(err, &any->value);
    }
  }
  google__rpc__status__free_unpacked(st, NULL);
}

int rm__client_status_error(rm_client_error_t *err, grpc_status_code status, grpc_slice details,
                            const grpc_metadata_array *trailing) {
  if (!err)
    return RM_CLIENT_ESTATUS;
  error_clear(err, RM_CLIENT_ESTATUS);
  err->status = (int)status;
  copy_slice(err->message, sizeof err->message, details);
  for (size_t i = 0; i < trailing->count; i++) {
    const grpc_metadata *m = &trailing->metadata[i];
    if (slice_is(m->key, "grpc-status-details-bin"))
      read_details(err, m->value, status);
  }
  /* a server without the standard details: the project's own trailers */
  for (size_t i = 0; i < trailing->count; i++) {
    const grpc_metadata *m = &trailing->metadata[i];
    if (slice_is(m->key, "rm-error-kind") && !err->kind[0])
      copy_slice(err->kind, sizeof err->kind, m->value);
    else if (slice_is(m->key, "rm-failing-node") && !err->node_id[0])
      copy_slice(err->node_id, sizeof err->node_id, m->value);
    else if (slice_is(m->key, "rm-field") && !err->field[0])
      copy_slice(err->field, sizeof err->field, m->value);
  }
  if (!err->message[0])
    snprintf(err->message, sizeof err->message, "the call ended with status %s",
             rm_client_status_name((int)status));
  return RM_CLIENT_ESTATUS;
}

/* ------------------------------------------------------------------ channel */

/* Non-zero when text holds a PEM block of the kind wanted: a certificate under any label
 * OpenSSL reads one under (the core reads them with PEM_read_bio_X509_AUX: "CERTIFICATE",
 * "TRUSTED CERTIFICATE" as openssl x509 -trustout writes it, the old "X509 CERTIFICATE"),
 * or a private key ("-----BEGIN ...PRIVATE KEY-----" on one line). The core takes any text
 * and fails only on the first call (UNAVAILABLE "empty address list"), which reads like a
 * network problem. */
static int has_pem_block(const char *text, int want_key) {
  if (!want_key)
    return strstr(text, "-----BEGIN CERTIFICATE-----") != NULL ||
           strstr(text, "-----BEGIN TRUSTED CERTIFICATE-----") != NULL ||
           strstr(text, "-----BEGIN X509 CERTIFICATE-----") != NULL;
  for (const char *p = text; (p = strstr(p, "-----BEGIN")) != NULL; p++) {
    const char *key = strstr(p, "PRIVATE KEY-----"), *eol = strchr(p, '\n');
    if (key && (!eol || key < eol))
      return 1;
  }
  return 0;
}

/* The PEM text of one credential part: the inline text (option `pem_option`), else the
 * file's contents (`file_option`), else NULL. *owned is what the caller frees. 0,
 * RM_CLIENT_EIO (the file cannot be read), RM_CLIENT_EINVAL (a NUL byte in the file, or no
 * PEM block of that kind in it) or RM_CLIENT_ENOMEM. */
static int pem_part(const char *pem, const char *file, const char *pem_option,
                    const char *file_option, int want_key, const char **out, char **owned,
                    rm_client_error_t *err) {
  static const char *const wanted[] = {"-----BEGIN CERTIFICATE-----",
                                       "-----BEGIN ... PRIVATE KEY-----"};
  *out = NULL;
  *owned = NULL;
  if (pem) {
    if (!has_pem_block(pem, want_key))
      return rm__client_fail(err, RM_CLIENT_EINVAL, "%s holds no PEM %s (%s)", pem_option,
                             want_key ? "private key" : "certificate", wanted[want_key]);
    *out = pem;
    return 0;
  }
  if (!file)
    return 0;
  size_t len = 0;
  if (!(*owned = rm__file_read(file, &len, realloc, free))) {
    if (errno == ENOMEM)
      return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory reading %s", file);
    return rm__client_fail(err, RM_CLIENT_EIO, "%s %s cannot be read: %s", file_option, file,
                           strerror(errno));
  }
  /* the core and OpenSSL would see only the text before it */
  if (strlen(*owned) < len)
    return rm__client_fail(err, RM_CLIENT_EINVAL,
                           "%s %s holds a NUL byte at offset %zu: a PEM file is text", file_option,
                           file, strlen(*owned));
  if (!has_pem_block(*owned, want_key))
    return rm__client_fail(err, RM_CLIENT_EINVAL, "%s %s holds no PEM %s (%s)", file_option, file,
                           want_key ? "private key" : "certificate", wanted[want_key]);
  *out = *owned;
  return 0;
}

/* Every certificate block of a CA bundle or chain parses (rm__pem_bad_cert): the core would
 * keep the certificates before a damaged block and silently drop the rest, so every handshake
 * with a server signed by a CA after it failed UNAVAILABLE and nothing said why. `name` is
 * "tls_ca_file F" or "tls_ca_pem". 0, RM_CLIENT_EINVAL or RM_CLIENT_ENOMEM. */
static int check_certs(const char *pem, const char *name, rm_client_error_t *err) {
  unsigned line = 0;
  const char *why = NULL;
  int bad = rm__pem_bad_cert(pem, NULL, &line, &why);
  if (bad < 0)
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory checking %s", name);
  if (bad)
    return rm__client_fail(err, RM_CLIENT_EINVAL,
                           "%s: certificate %d (line %u) does not parse (%s); the certificates "
                           "after it would be ignored",
                           name, bad, line, why);
  return 0;
}

/* The key parses and matches the first certificate of the chain (what the core sends as
 * the client's), which check_certs has parsed. 0, RM_CLIENT_EINVAL or RM_CLIENT_ENOMEM. */
static int check_key(const char *key, const char *key_name, const char *cert, const char *cert_name,
                     rm_client_error_t *err) {
  switch (rm__pem_check_key(key, cert)) {
  case RM_PEM_KEY_OK: return 0;
  case RM_PEM_KEY_NOMEM:
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory checking %s", key_name);
  case RM_PEM_KEY_UNPARSABLE: /* OpenSSL 3 says only "unsupported" for a damaged or encrypted key */
    return rm__client_fail(err, RM_CLIENT_EINVAL,
                           "%s: the private key does not parse (gRPC takes an unencrypted PEM key)",
                           key_name);
  default:
    return rm__client_fail(err, RM_CLIENT_EINVAL, "%s does not match the certificate in %s",
                           key_name, cert_name);
  }
}

/* "tls_ca_file F" when the text came from a file, else "tls_ca_pem", into buf. */
static const char *part_name(char *buf, size_t size, const char *pem, const char *file,
                             const char *pem_option, const char *file_option) {
  if (pem || !file)
    return pem_option;
  snprintf(buf, size, "%s %s", file_option, file);
  return buf;
}

/* What the core would find only at the first handshake, and then report as UNAVAILABLE:
 * a certificate that does not parse, a key that does not or that is not the certificate's. */
static int check_parts(const rm_client_options_t *o, const char *ca, const char *cert,
                       const char *key, rm_client_error_t *err) {
  char ca_name[RM_CLIENT_MSG_MAX], cert_name[RM_CLIENT_MSG_MAX], key_name[RM_CLIENT_MSG_MAX];
  int rc = 0;
  if (ca)
    rc = check_certs(ca,
                     part_name(ca_name, sizeof ca_name, o->tls_ca_pem, o->tls_ca_file, "tls_ca_pem",
                               "tls_ca_file"),
                     err);
  if (!rc && cert) {
    const char *cn = part_name(cert_name, sizeof cert_name, o->tls_cert_pem, o->tls_cert_file,
                               "tls_cert_pem", "tls_cert_file");
    rc = check_certs(cert, cn, err);
    if (!rc)
      rc = check_key(key,
                     part_name(key_name, sizeof key_name, o->tls_key_pem, o->tls_key_file,
                               "tls_key_pem", "tls_key_file"),
                     cert, cn, err);
  }
  return rc;
}

static int credentials(const rm_client_options_t *o, grpc_channel_credentials **out,
                       rm_client_error_t *err) {
  int has_cert = o->tls_cert_pem || o->tls_cert_file;
  int has_key = o->tls_key_pem || o->tls_key_file;
  int tls = o->tls || o->tls_ca_pem || o->tls_ca_file || has_cert || has_key || o->tls_server_name;
  if (!tls) {
    *out = grpc_insecure_credentials_create();
    return 0;
  }
  if (has_cert != has_key)
    return rm__client_fail(err, RM_CLIENT_EINVAL,
                           "mutual TLS needs both a client certificate and its key");
  const char *ca, *cert, *key;
  char *ca_owned = NULL, *cert_owned = NULL, *key_owned = NULL;
  int rc =
      pem_part(o->tls_ca_pem, o->tls_ca_file, "tls_ca_pem", "tls_ca_file", 0, &ca, &ca_owned, err);
  if (!rc)
    rc = pem_part(o->tls_cert_pem, o->tls_cert_file, "tls_cert_pem", "tls_cert_file", 0, &cert,
                  &cert_owned, err);
  if (!rc)
    rc = pem_part(o->tls_key_pem, o->tls_key_file, "tls_key_pem", "tls_key_file", 1, &key,
                  &key_owned, err);
  if (!rc)
    rc = check_parts(o, ca, cert, key, err);
  if (!rc) {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    *out = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
    if (!*out)
      rc = rm__client_fail(err, RM_CLIENT_EINVAL, "TLS credentials could not be created");
  }
  if (key_owned)
    memset(key_owned, 0, strlen(key_owned));
  free(ca_owned);
  free(cert_owned);
  free(key_owned);
  return rc;
}

static grpc_arg int_arg(const char *key, int value) {
  grpc_arg a;
  a.type = GRPC_ARG_INTEGER;
  a.key = (char *)key;
  a.value.integer = value;
  return a;
}

static grpc_arg str_arg(const char *key, const char *value) {
  grpc_arg a;
  a.type = GRPC_ARG_STRING;
  a.key = (char *)key;
  a.value.string = (char *)value;
  return a;
}

/* ------------------------------------------------------------------ retries */

#define RETRY_DEFAULT_ATTEMPTS 4
#define RETRY_DEFAULT_INITIAL_MS 100
#define RETRY_DEFAULT_MAX_MS 2000
#define RETRY_DEFAULT_MULTIPLIER 2.0
#define RETRY_DEFAULT_CODES "UNAVAILABLE,RESOURCE_EXHAUSTED"
#define RETRY_DEFAULT_BUFFER (16 * 1024 * 1024)

/* The retry policy with its defaults filled in, checked. */
static int retry_resolve(const rm_client_retry_t *in, rm_client_retry_t *r,
                         rm_client_error_t *err) {
  *r = *in;
  if (!r->max_attempts)
    r->max_attempts = RETRY_DEFAULT_ATTEMPTS;
  if (!r->initial_backoff_ms)
    r->initial_backoff_ms = RETRY_DEFAULT_INITIAL_MS;
  if (!r->max_backoff_ms)
    r->max_backoff_ms =
        r->initial_backoff_ms > RETRY_DEFAULT_MAX_MS ? r->initial_backoff_ms : RETRY_DEFAULT_MAX_MS;
  if (r->backoff_multiplier == 0)
    r->backoff_multiplier = RETRY_DEFAULT_MULTIPLIER;
  if (!r->codes)
    r->codes = RETRY_DEFAULT_CODES;
  if (!r->per_rpc_buffer_bytes)
    r->per_rpc_buffer_bytes = RETRY_DEFAULT_BUFFER;
  if (r->disable)
    return 0;
  if (r->max_attempts < 2 || r->max_attempts > 5)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "retry.max_attempts must be 2..5 (gRPC's limit)");
  if (r->initial_backoff_ms < 0 || r->max_backoff_ms < r->initial_backoff_ms)
    return rm__client_fail(err, RM_CLIENT_EINVAL,
                           "retry backoff: 0 < initial_backoff_ms <= max_backoff_ms");
  if (!(r->backoff_multiplier > 0) || r->per_rpc_buffer_bytes < 0)
    return rm__client_fail(err, RM_CLIENT_EINVAL,
                           "retry.backoff_multiplier must be > 0, per_rpc_buffer_bytes >= 0");
  return 0;
}

/* The channel's default service config: ExecutePipeline's retry policy, as JSON text
 * (malloc). 0, RM_CLIENT_EINVAL (no code, or one that is not a status name) or
 * RM_CLIENT_ENOMEM. */
static int retry_service_config(const rm_client_retry_t *r, char **out, rm_client_error_t *err) {
  json_t *codes = json_array();
  int rc = codes ? 0 : RM_CLIENT_ENOMEM;
  /* no name at all: the core would refuse the whole service config and fail every call */
  if (!rc && r->codes[strspn(r->codes, " \t,")] == '\0')
    rc = rm__client_fail(err, RM_CLIENT_EINVAL,
                         "retry.codes lists no status name (give e.g. \"UNAVAILABLE\", or set "
                         "retry.disable)");
  for (const char *p = r->codes; !rc && *p;) {
    size_t n = strcspn(p, ",");
    /* the name without the blanks around it ("UNAVAILABLE, RESOURCE_EXHAUSTED"), as the
     * check above reads them */
    const char *word = p + strspn(p, " \t");
    size_t len = n - (size_t)(word - p);
    while (len > 0 && (word[len - 1] == ' ' || word[len - 1] == '\t'))
      len--;
    int found = 0;
    for (int code = 1; code <= 16 && !found; code++) {
      const char *name = rm_client_status_name(code);
      if (strlen(name) == len && !strncmp(name, word, len))
        found = !json_array_append_new(codes, json_string(name)) || (rc = RM_CLIENT_ENOMEM);
    }
    if (!found && !rc)
      rc = len == 2 && !strncmp(word, "OK", 2)
               ? rm__client_fail(err, RM_CLIENT_EINVAL,
                                 "retry.codes: OK is success, not a status to retry")
               : rm__client_fail(err, RM_CLIENT_EINVAL,
                                 "retry.codes: '%.*s' is not a gRPC status name (UNAVAILABLE, ...)",
                                 (int)len, word);
    p += n + (p[n] == ',');
  }
  char initial[32], max[32];
  snprintf(initial, sizeof initial, "%d.%03ds", r->initial_backoff_ms / 1000,
           r->initial_backoff_ms % 1000);
  snprintf(max, sizeof max, "%d.%03ds", r->max_backoff_ms / 1000, r->max_backoff_ms % 1000);
  json_t *sc = rc ? NULL
                  : json_pack("{s:[{s:[{s:s, s:s}], s:{s:i, s:s, s:s, s:f, s:O}}]}", "methodConfig",
                              "name", "service", "remotemedia.v1.PipelineService", "method",
                              "ExecutePipeline", "retryPolicy", "maxAttempts", r->max_attempts,
                              "initialBackoff", initial, "maxBackoff", max, "backoffMultiplier",
                              r->backoff_multiplier, "retryableStatusCodes", codes);
  json_decref(codes);
  if (rc == RM_CLIENT_ENOMEM || (!rc && (!sc || !(*out = json_dumps(sc, JSON_COMPACT)))))
    rc = rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  json_decref(sc);
  return rc;
}

static int client_new(const rm_client_options_t *o, rm_client_t **out, rm_client_error_t *err) {
  rm_client_retry_t retry;
  char *service_config = NULL;
  int rc = retry_resolve(&o->retry, &retry, err);
  if (!rc && !retry.disable)
    rc = retry_service_config(&retry, &service_config, err);
  if (rc)
    return rc;
  rm_client_t *c = calloc(1, sizeof *c);
  if (!c) {
    free(service_config);
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  }
  c->default_timeout_ms = o->default_timeout_ms;
  c->wait_for_ready = o->wait_for_ready;
  if (o->token) {
    c->auth_len = strlen("Bearer ") + strlen(o->token);
    if (!(c->auth_value = malloc(c->auth_len + 1))) {
      free(c);
      free(service_config);
      return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
    }
    snprintf(c->auth_value, c->auth_len + 1, "Bearer %s", o->token);
  }
  grpc_channel_credentials *creds = NULL;
  rc = credentials(o, &creds, err);
  if (rc) {
    free(c->auth_value);
    free(c);
    free(service_config);
    return rc;
  }
  int max = o->max_message_bytes > 0 ? o->max_message_bytes : DEFAULT_MAX_MESSAGE_BYTES;
  grpc_arg args[11];
  size_t n = 0;
  args[n++] = int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max);
  args[n++] = int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max);
  args[n++] = str_arg(GRPC_ARG_PRIMARY_USER_AGENT_STRING, "rmclient-c/" RM_CLIENT_VERSION);
  if (o->tls_server_name)
    args[n++] = str_arg(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, o->tls_server_name);
  if (o->lb_policy)
    args[n++] = str_arg(GRPC_ARG_LB_POLICY_NAME, o->lb_policy);
  if (o->keepalive_time_ms > 0) {
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, o->keepalive_time_ms);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  }
  args[n++] = int_arg(GRPC_ARG_ENABLE_RETRIES, !retry.disable);
  if (!retry.disable) {
    args[n++] = str_arg(GRPC_ARG_SERVICE_CONFIG, service_config);
    args[n++] = int_arg(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, retry.per_rpc_buffer_bytes);
  }
  grpc_channel_args ch_args = {n, args};
  c->channel = grpc_channel_create(o->target, creds, &ch_args);
  grpc_channel_credentials_release(creds);
  free(service_config); /* the channel keeps its own copy of its arguments */
  if (!c->channel) {    /* the core returns a lame channel rather than NULL; be safe anyway */
    free(c->auth_value);
    free(c);
    return rm__client_fail(err, RM_CLIENT_EINVAL, "cannot create a channel to '%s'", o->target);
  }
  *out = c;
  return 0;
}

int rm_client_new(const rm_client_options_t *opts, rm_client_t **out, rm_client_error_t *err) {
  if (!opts || !out)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "options and out are required");
  if (!opts->target || !*opts->target)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "options.target is required (host:port)");
  if (opts->token && !*opts->token)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "options.token is empty");
  if (opts->token && rm__client_check_metadata(opts->token, "options.token", err))
    return RM_CLIENT_EINVAL;
  grpc_init();
  int rc = client_new(opts, out, err);
  if (rc)
    grpc_shutdown();
  return rc;
}

void rm_client_free(rm_client_t *c) {
  if (!c)
    return;
  grpc_channel_destroy(c->channel);
  if (c->auth_value) {
    memset(c->auth_value, 0, c->auth_len);
    free(c->auth_value);
  }
  free(c);
  grpc_shutdown();
}

/* ------------------------------------------------------------------ one unary call */

gpr_timespec rm__client_deadline(const rm_client_t *c, int64_t timeout_ms) {
  if (timeout_ms == 0)
    timeout_ms = c->default_timeout_ms;
  if (timeout_ms <= 0)
    return gpr_inf_future(GPR_CLOCK_REALTIME);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

/* Unpacks bytes and checks their strings (rm_wire_check_strings: protobuf-c keeps no length,
 * so a NUL byte would cut a string short unseen, and it does not check UTF-8). */
static int unpack_bytes(const ProtobufCMessageDescriptor *desc, const uint8_t *bytes, size_t len,
                        ProtobufCMessage **out, rm_client_error_t *err) {
  *out = protobuf_c_message_unpack(desc, NULL, len, bytes);
  if (!*out)
    return rm__client_fail(err, RM_CLIENT_EPROTO, "the answer is not a valid %s message",
                           desc->name);
  rm_error_t bad;
  if (rm_wire_check_strings(desc, bytes, len, NULL, &bad) == 0)
    return 0;
  protobuf_c_message_free_unpacked(*out, NULL);
  *out = NULL;
  return rm__client_fail(err, RM_CLIENT_EPROTO, "the server's response: %s: %s", desc->name,
                         bad.message);
}

int rm__client_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                      ProtobufCMessage **out, rm_client_error_t *err) {
  grpc_byte_buffer_reader reader;
  *out = NULL;
  if (!grpc_byte_buffer_reader_init(&reader, bb))
    return rm__client_fail(err, RM_CLIENT_EPROTO, "the answer cannot be read");
  int rc;
  grpc_slice *first;
  size_t total = grpc_byte_buffer_length(bb);
  if (total == 0) {
    rc = unpack_bytes(desc, (const uint8_t *)"", 0, out, err);
  } else if (grpc_byte_buffer_reader_peek(&reader, &first) && GRPC_SLICE_LENGTH(*first) == total) {
    /* one slice, the usual case: decode in place */
    rc = unpack_bytes(desc, GRPC_SLICE_START_PTR(*first), total, out, err);
  } else {
    grpc_byte_buffer_reader_destroy(&reader);
    if (!grpc_byte_buffer_reader_init(&reader, bb))
      return rm__client_fail(err, RM_CLIENT_EPROTO, "the answer cannot be read");
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    rc = unpack_bytes(desc, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), out, err);
    grpc_slice_unref(all);
  }
  grpc_byte_buffer_reader_destroy(&reader);
  return rc;
}

int rm__client_unary(rm_client_t *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                     const char *request_id, ProtobufCMessage **out, rm_client_error_t *err) {
  size_t len = protobuf_c_message_get_packed_size(req);
  grpc_slice payload = grpc_slice_malloc(len);
  protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(payload));
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);

  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                             grpc_slice_from_static_string(method), NULL,
                                             rm__client_deadline(c, timeout_ms), NULL);
  grpc_metadata md[2];
  size_t n_md = 0;
  memset(md, 0, sizeof md);
  if (c->auth_value) {
    md[n_md].key = grpc_slice_from_static_string("authorization");
    /* static: the text lives as long as the client, which outlives the call */
    md[n_md++].value = grpc_slice_from_static_buffer(c->auth_value, c->auth_len);
  }
  if (request_id && *request_id) { /* static: the caller's text outlives the call */
    md[n_md].key = grpc_slice_from_static_string("x-request-id");
    md[n_md++].value = grpc_slice_from_static_string(request_id);
  }
  grpc_metadata_array trailing;
  grpc_metadata_array_init(&trailing);
  grpc_byte_buffer *recv = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  int rc = 0, completed;
  /* the call's deadline bounds the wait */
  grpc_call_error ce = rm__grpc_unary(call, cq, md, n_md,
                                      c->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0,
                                      send, &recv, &status, &details, &trailing, &completed);
  if (ce != GRPC_CALL_OK)
    rc = rm__client_fail(err, RM_CLIENT_EINTERNAL, "grpc_call_start_batch failed: %s",
                         grpc_call_error_to_string(ce));
  else if (!completed)
    rc = rm__client_fail(err, RM_CLIENT_EINTERNAL, "the completion queue ended the call");
  else if (status != GRPC_STATUS_OK)
    rc = rm__client_status_error(err, status, details, &trailing);
  else if (!recv)
    rc = rm__client_fail(err, RM_CLIENT_EPROTO, "the server answered OK without a message");
  else
    rc = rm__client_unpack(resp_desc, recv, out, err);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  grpc_completion_queue_destroy(cq);
  if (recv)
    grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&trailing);
  return rc;
}

/* ------------------------------------------------------------------ small RPCs */

int rm_client_list_node_types(rm_client_t *c, int64_t timeout_ms,
                              Remotemedia__V1__ListNodeTypesResponse **out,
                              rm_client_error_t *err) {
  if (!c || !out)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "client and out are required");
  Remotemedia__V1__ListNodeTypesRequest req = REMOTEMEDIA__V1__LIST_NODE_TYPES_REQUEST__INIT;
  ProtobufCMessage *msg = NULL;
  int rc = rm__client_unary(c, "/remotemedia.v1.PipelineService/ListNodeTypes", &req.base,
                            &remotemedia__v1__list_node_types_response__descriptor, timeout_ms,
                            NULL, &msg, err);
  if (!rc)
    *out = (Remotemedia__V1__ListNodeTypesResponse *)msg;
  return rc;
}

void rm_client_node_types_free(Remotemedia__V1__ListNodeTypesResponse *m) {
  if (m)
    remotemedia__v1__list_node_types_response__free_unpacked(m, NULL);
}

int rm_client_server_version(rm_client_t *c, int64_t timeout_ms,
                             Remotemedia__V1__GetVersionResponse **out, rm_client_error_t *err) {
  if (!c || !out)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "client and out are required");
  Remotemedia__V1__GetVersionRequest req = REMOTEMEDIA__V1__GET_VERSION_REQUEST__INIT;
  ProtobufCMessage *msg = NULL;
  int rc = rm__client_unary(c, "/remotemedia.v1.PipelineService/GetVersion", &req.base,
                            &remotemedia__v1__get_version_response__descriptor, timeout_ms, NULL,
                            &msg, err);
  if (!rc)
    *out = (Remotemedia__V1__GetVersionResponse *)msg;
  return rc;
}

void rm_client_server_version_free(Remotemedia__V1__GetVersionResponse *m) {
  if (m)
    remotemedia__v1__get_version_response__free_unpacked(m, NULL);
}

int rm_client_health_check(rm_client_t *c, const char *service, int64_t timeout_ms,
                           rm_client_health_t *status, rm_client_error_t *err) {
  if (!c || !status)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "client and status are required");
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(service ? service : "");
  ProtobufCMessage *msg = NULL;
  int rc = rm__client_unary(c, "/grpc.health.v1.Health/Check", &req.base,
                            &grpc__health__v1__health_check_response__descriptor, timeout_ms, NULL,
                            &msg, err);
  if (rc)
    return rc;
  const Grpc__Health__V1__HealthCheckResponse *resp =
      (const Grpc__Health__V1__HealthCheckResponse *)msg;
  int s = (int)resp->status;
  *status = s >= RM_CLIENT_HEALTH_SERVING && s <= RM_CLIENT_HEALTH_SERVICE_UNKNOWN
                ? (rm_client_health_t)s
                : RM_CLIENT_HEALTH_UNKNOWN;
  protobuf_c_message_free_unpacked(msg, NULL);
  return 0;
}
