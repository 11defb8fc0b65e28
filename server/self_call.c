/* self_call.c - unary calls from this process to its own gRPC port. See self_call.h. */
#include "self_call.h"

#include <arpa/inet.h>
#include <grpc/grpc_security.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "grpc_unary.h"
#include "rm/alloc.h"
#include "tls.h"

/* The address a client on this host reaches `listen` at, as a gRPC target: a wildcard host
 * as 127.0.0.1 (gRPC listens on [::] dual-stack, or on 0.0.0.0 where IPv6 is off), the port
 * the bound one. Numeric addresses are given as ipv4:/ipv6: targets, which need no resolver
 * (the DNS resolver's c-ares keeps a few bytes for good); a host name as it is. */
static void local_target(const char *listen, int port, char *out, size_t cap) {
  if (!strncmp(listen, "unix:", 5) || !strncmp(listen, "unix-abstract:", 14)) {
    snprintf(out, cap, "%s", listen);
    return;
  }
  char host[256], given_port[8];
  struct in_addr a4;
  struct in6_addr a6;
  /* a host that does not split (a name too long to bind to) is taken as a wildcard */
  if (rm_config_split_address(listen, host, sizeof host, given_port, sizeof given_port) ||
      !strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
    snprintf(out, cap, "ipv4:127.0.0.1:%d", port);
  else if (inet_pton(AF_INET, host, &a4) == 1)
    snprintf(out, cap, "ipv4:%s:%d", host, port);
  else if (inet_pton(AF_INET6, host, &a6) == 1)
    snprintf(out, cap, "ipv6:[%s]:%d", host, port);
  else
    snprintf(out, cap, "%s:%d", host, port);
}

void rm_self_call_target(const rm_server_t *s, char *out, size_t cap) {
  local_target(rm_server_config(s)->listen, rm_server_port(s), out, cap);
}

const char *rm_self_call_impossible(const rm_server_t *s) {
  const rm_config_t *cfg = rm_server_config(s);
  if (!*cfg->tls_client_ca || !cfg->tls_require_client_cert ||
      rm_tls_has_identity(rm_server_tls(s)))
    return NULL;
  return "TLS with required client certificates: the server holds no client identity (its own "
         "certificate is not one tls-client-ca accepts from a client)";
}

/* With TLS the server is trusted as the peer that presents its certificate: no chain or name
 * to verify (the certificate names the service, not 127.0.0.1, and its CA need not be
 * installed here), and a token goes to nobody else. */
typedef struct pinned {
  grpc_tls_certificate_verifier_external ext; /* user_data: this */
  rm_tls_t *tls;
} pinned_t;

static int pinned_verify(void *user_data, grpc_tls_custom_verification_check_request *request,
                         grpc_tls_on_custom_verification_check_done_cb callback, void *callback_arg,
                         grpc_status_code *status, char **details) {
  (void)callback;
  (void)callback_arg;
  pinned_t *p = user_data;
  if (rm_tls_presents(p->tls, request->peer_info.peer_cert)) {
    *status = GRPC_STATUS_OK;
  } else {
    *status = GRPC_STATUS_UNAUTHENTICATED;
    *details = gpr_strdup("the peer does not present this server's certificate");
  }
  return 1; /* decided synchronously */
}

static void pinned_cancel(void *user_data, grpc_tls_custom_verification_check_request *request) {
  (void)user_data;
  (void)request;
}

static void pinned_destruct(void *user_data) { rm_free(user_data); }

/* Credentials for a channel to the server's own port: insecure, or TLS trusting only the
 * server's certificate. NULL: memory is short. */
static grpc_channel_credentials *own_port_creds(rm_server_t *s) {
  rm_tls_t *tls = rm_server_tls(s);
  if (!tls)
    return grpc_insecure_credentials_create();
  /* roots given, though never used to verify, so the core does not load the system's */
  char *roots = rm_tls_cert_pem(tls);
  pinned_t *p = roots ? rm_calloc(1, sizeof *p) : NULL;
  if (!p) {
    rm_free(roots);
    return NULL;
  }
  p->tls = tls;
  p->ext = (grpc_tls_certificate_verifier_external){.user_data = p,
                                                    .verify = pinned_verify,
                                                    .cancel = pinned_cancel,
                                                    .destruct = pinned_destruct};
  /* required client certificates: the server's own, when the client CA accepts it */
  char *cert, *key;
  grpc_tls_identity_pairs *pairs = NULL;
  if (rm_tls_identity(tls, &cert, &key)) {
    pairs = grpc_tls_identity_pairs_create();
    grpc_tls_identity_pairs_add_pair(pairs, key, cert); /* copies them */
    memset(key, 0, strlen(key));
    rm_free(key);
    rm_free(cert);
  }
  grpc_tls_certificate_verifier *verifier = grpc_tls_certificate_verifier_external_create(&p->ext);
  grpc_tls_certificate_provider *provider =
      grpc_tls_certificate_provider_static_data_create(roots, pairs); /* takes pairs */
  rm_free(roots);
  grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
  grpc_tls_credentials_options_set_certificate_provider(o, provider);
  grpc_tls_credentials_options_watch_root_certs(o);
  if (pairs)
    grpc_tls_credentials_options_watch_identity_key_cert_pairs(o);
  grpc_tls_credentials_options_set_verify_server_cert(o, 0);
  grpc_tls_credentials_options_set_check_call_host(o, 0);
  grpc_tls_credentials_options_set_certificate_verifier(o, verifier);
  grpc_channel_credentials *creds = grpc_tls_credentials_create(o); /* takes o */
  grpc_tls_certificate_provider_release(provider);
  grpc_tls_certificate_verifier_release(verifier);
  return creds;
}

void rm_self_call_cancel(rm_self_call_slot_t *slot) {
  pthread_mutex_lock(&slot->mu);
  slot->cancelled = 1;
  if (slot->call)
    grpc_call_cancel(slot->call, NULL);
  pthread_mutex_unlock(&slot->mu);
}

/* Publishes call in slot (NULL: the call is over): 0, or -1 when the slot was cancelled. */
static int slot_set(rm_self_call_slot_t *slot, grpc_call *call) {
  if (!slot)
    return 0;
  pthread_mutex_lock(&slot->mu);
  int cancelled = slot->cancelled;
  slot->call = cancelled ? NULL : call;
  pthread_mutex_unlock(&slot->mu);
  return cancelled ? -1 : 0;
}

grpc_status_code rm_self_call(rm_server_t *s, const char *path, grpc_byte_buffer *request,
                              int64_t deadline_ms, rm_self_call_slot_t *slot, size_t *received,
                              grpc_byte_buffer **response) {
  if (received)
    *received = 0;
  if (response)
    *response = NULL;
  if (slot_set(slot, NULL))
    return GRPC_STATUS_CANCELLED;
  char target[512];
  rm_self_call_target(s, target, sizeof target);
  grpc_channel_credentials *creds = own_port_creds(s);
  if (!creds)
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  /* straight to the port: an http_proxy in the environment is for the clients' traffic */
  grpc_arg no_proxy = {
      .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_HTTP_PROXY, .value.integer = 0};
  grpc_channel_args args = {1, &no_proxy};
  grpc_channel *ch = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(deadline_ms, GPR_TIMESPAN));
  grpc_call *call =
      grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                               grpc_slice_from_static_string(path), NULL, deadline, NULL);
  /* with tokens, one of them; no copy of it is left on the stack */
  char bearer[sizeof "Bearer " + RM_AUTH_TOKEN_MAX];
  int token = !rm_server_copy_token(s, bearer + 7, sizeof bearer - 7);
  if (token)
    memcpy(bearer, "Bearer ", 7);
  grpc_metadata auth = {.key = grpc_slice_from_static_string("authorization"),
                        .value = grpc_slice_from_copied_string(token ? bearer : "")};
  explicit_bzero(bearer, sizeof bearer);
  grpc_byte_buffer *got = NULL;
  grpc_metadata_array trailing;
  grpc_metadata_array_init(&trailing);
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  int completed;
  if (slot_set(slot, call)) /* cancelled meanwhile: the call never starts */
    code = GRPC_STATUS_CANCELLED;
  else if (rm__grpc_unary(call, cq, &auth, token ? 1 : 0, 0, request, &got, &code, &details,
                          &trailing, &completed) != GRPC_CALL_OK)
    code = GRPC_STATUS_INTERNAL;
  slot_set(slot, NULL);
  if (received)
    *received = got ? grpc_byte_buffer_length(got) : 0;
  if (response)
    *response = got;
  else
    grpc_byte_buffer_destroy(got);
  grpc_slice_unref(details);
  grpc_slice_unref(auth.value);
  grpc_metadata_array_destroy(&trailing);
  grpc_call_unref(call);
  grpc_channel_destroy(ch);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
  return code;
}
