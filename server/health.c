/* health.c - the standard health service; Watch streams are pushed every change. */
#include "health.h"

#include <pthread.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "rm/alloc.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus status_t;
#define ST_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define ST_NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define ST_UNKNOWN_SERVICE GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

static const char *const known[] = {"", "remotemedia.v1.PipelineService"};

typedef struct watch {
  rm_tag_t close_tag;
  rm_tag_t send_tag;
  rm_server_t *s;
  grpc_call *call;
  int refs; /* close batch + send in flight; under mu */
  int known;
  int sending, closed, sent_any;
  status_t last_sent;
  grpc_byte_buffer *bb;
  int close_cancelled;
  struct watch *next;
} watch_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int serving = 1;
static watch_t *watchers;

static int is_known(const char *service) {
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (!strcmp(service, known[i]))
      return 1;
  return 0;
}

static status_t current(int known_service) {
  return !known_service ? ST_UNKNOWN_SERVICE : serving ? ST_SERVING : ST_NOT_SERVING;
}

static void check(rm_call_t *call, const ProtobufCMessage *msg) {
  const Grpc__Health__V1__HealthCheckRequest *req =
      (const Grpc__Health__V1__HealthCheckRequest *)msg;
  if (!is_known(req->service)) {
    char text[200];
    snprintf(text, sizeof text, "unknown service '%.120s'", req->service);
    rm_call_fail(call, GRPC_STATUS_NOT_FOUND, text, "unknown_service", NULL, "service");
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  pthread_mutex_lock(&mu);
  resp.status = current(1);
  pthread_mutex_unlock(&mu);
  rm_call_reply(call, &resp.base);
}

/* Frees w when nothing refers to it any more. Called with mu held; unlocks it. */
static void watch_unref_unlock(watch_t *w) {
  int last = --w->refs == 0;
  pthread_mutex_unlock(&mu);
  if (!last)
    return;
  if (w->bb)
    grpc_byte_buffer_destroy(w->bb);
  rm_server_t *s = w->s;
  grpc_call_unref(w->call);
  rm_free(w);
  rm_server_release(s);
}

static void on_watch_sent(rm_tag_t *tag, int ok);

/* Sends the current status if it differs from the last one sent. mu held. */
static void push_locked(watch_t *w) {
  status_t st = current(w->known);
  if (w->sending || w->closed || (w->sent_any && st == w->last_sent))
    return;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = st;
  if (w->bb)
    grpc_byte_buffer_destroy(w->bb);
  w->bb = rm_pack(&resp.base);
  if (!w->bb) { /* out of memory: end the stream rather than leave the client waiting */
    grpc_call_cancel_with_status(w->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!w->sent_any)
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n].data.send_message.send_message = w->bb;
  n++;
  w->send_tag.fn = on_watch_sent;
  if (grpc_call_start_batch(w->call, ops, n, &w->send_tag, NULL) == GRPC_CALL_OK) {
    w->sending = 1;
    w->refs++;
    w->sent_any = 1;
    w->last_sent = st;
  }
}

static void on_watch_sent(rm_tag_t *tag, int ok) {
  watch_t *w = RM_TAG_OWNER(tag, watch_t, send_tag);
  pthread_mutex_lock(&mu);
  w->sending = 0;
  if (ok)
    push_locked(w); /* a change may have happened while this one was in flight */
  watch_unref_unlock(w);
}

static void on_watch_close(rm_tag_t *tag, int ok) {
  (void)ok;
  watch_t *w = RM_TAG_OWNER(tag, watch_t, close_tag);
  pthread_mutex_lock(&mu);
  w->closed = 1;
  for (watch_t **p = &watchers; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  watch_unref_unlock(w);
}

static void watch_start(rm_server_t *s, grpc_call *call, grpc_byte_buffer *payload, void *cq) {
  (void)cq;
  Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)rm_unpack(
      &grpc__health__v1__health_check_request__descriptor, payload);
  if (payload)
    grpc_byte_buffer_destroy(payload);
  watch_t *w = rm_calloc(1, sizeof *w);
  if (!req || !w) {
    grpc_call_cancel_with_status(
        call, req ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT,
        req ? "out of memory" : "the request is not a valid HealthCheckRequest", NULL);
    if (req)
      rm_unpack_free(&req->base);
    rm_free(w);
    grpc_call_unref(call);
    rm_server_release(s);
    return;
  }
  w->s = s;
  w->call = call;
  w->known = is_known(req->service);
  rm_unpack_free(&req->base);
  w->close_tag.fn = on_watch_close;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &w->close_cancelled;
  pthread_mutex_lock(&mu);
  w->refs = 1;
  if (grpc_call_start_batch(call, &op, 1, &w->close_tag, NULL) != GRPC_CALL_OK) {
    w->refs = 0;
    pthread_mutex_unlock(&mu);
    grpc_call_unref(call);
    rm_free(w);
    rm_server_release(s);
    return;
  }
  w->next = watchers;
  watchers = w;
  push_locked(w);
  pthread_mutex_unlock(&mu);
}

void rm_health_set_serving(int on) {
  pthread_mutex_lock(&mu);
  serving = on;
  for (watch_t *w = watchers; w; w = w->next)
    push_locked(w);
  pthread_mutex_unlock(&mu);
}

void rm_health_methods(rm_method_t *out) {
  out[0] = (rm_method_t){.path = "/grpc.health.v1.Health/Check",
                         .kind = RM_RPC_UNARY,
                         .serve_while_draining = 1,
                         .request = &grpc__health__v1__health_check_request__descriptor,
                         .handle = check};
  out[1] = (rm_method_t){.path = "/grpc.health.v1.Health/Watch",
                         .kind = RM_RPC_STREAM,
                         .serve_while_draining = 1,
                         .payload_with_request = 1,
                         .start = watch_start};
}
