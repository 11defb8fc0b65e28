/* health.c - the standard health service; Watch streams are pushed every change. */
#include "health.h"

#include <pthread.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "bytebuf.h"
#include "rm/alloc.h"
#include "status.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus status_t;
#define ST_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define ST_NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define ST_UNKNOWN_SERVICE GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

static const char *const known[] = {"", "remotemedia.v1.PipelineService"};

typedef struct watch {
  rm_call_t *call;
  int known;
  int sending, closed, sent_any; /* under mu */
  status_t last_sent;
  struct watch *next;
} watch_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int serving; /* until serve() starts: the warm call runs before SERVING */
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
    rm_error_t err;
    rm_error_set(&err, RM_EUNKNOWNSERVICE, NULL, "service", "unknown service '%.120s'",
                 req->service);
    rm_call_fail(call, &err);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  pthread_mutex_lock(&mu);
  resp.status = current(1);
  pthread_mutex_unlock(&mu);
  rm_call_reply(call, &resp.base);
}

static void on_watch_sent(rm_call_t *call, int ok, void *arg);

/* Sends the current status if it differs from the last one sent. mu held. */
static void push_locked(watch_t *w) {
  status_t st = current(w->known);
  if (w->sending || w->closed || (w->sent_any && st == w->last_sent))
    return;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = st;
  int rc = rm_call_write(w->call, &resp.base, on_watch_sent, w);
  if (rc == 0) {
    w->sending = 1;
    w->sent_any = 1;
    w->last_sent = st;
  } else if (rc == RM_ENOMEM) { /* end the stream rather than leave the client waiting */
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_call_cancel(w->call, &err);
  }
}

static void on_watch_sent(rm_call_t *call, int ok, void *arg) {
  watch_t *w = arg;
  (void)call;
  pthread_mutex_lock(&mu);
  w->sending = 0;
  if (ok)
    push_locked(w); /* a change may have happened while this one was in flight */
  pthread_mutex_unlock(&mu);
}

/* The stream is over (the client went away or the server stops): w leaves the list and
 * the handler's reference on the call ends. */
static void on_watch_close(rm_call_t *call, void *arg) {
  watch_t *w = arg;
  pthread_mutex_lock(&mu);
  w->closed = 1;
  for (watch_t **p = &watchers; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  pthread_mutex_unlock(&mu);
  rm_call_unref(call);
}

/* Watch: the request's bytes are unpacked here so a bad one is answered as it always was
 * (a cancel, no trailers). w lives in the call's arena. */
static void watch(rm_call_t *call, const uint8_t *data, size_t len) {
  Grpc__Health__V1__HealthCheckRequest *req =
      (Grpc__Health__V1__HealthCheckRequest *)rm_bytebuf_unpack(
          &grpc__health__v1__health_check_request__descriptor, data, len);
  watch_t *w = req ? rm_arena_calloc(rm_call_arena(call), 1, sizeof *w) : NULL;
  if (!w) {
    rm_error_t err;
    rm_error_set(&err, req ? RM_ENOMEM : RM_EBADREQUEST, NULL, NULL, "%s",
                 req ? "out of memory" : "the request is not a valid HealthCheckRequest");
    rm_bytebuf_unpack_free((ProtobufCMessage *)req);
    rm_call_cancel(call, &err);
    rm_call_unref(call);
    return;
  }
  w->call = call;
  w->known = is_known(req->service);
  rm_bytebuf_unpack_free(&req->base);
  pthread_mutex_lock(&mu);
  w->next = watchers;
  watchers = w;
  push_locked(w);
  pthread_mutex_unlock(&mu);
  /* last: with --health-needs-token the request is read after the close was watched, so the
   * call may have closed already, and then on_watch_close runs here and may free w */
  rm_call_on_close(call, on_watch_close, w);
}

void rm_health_set_serving(int on) {
  pthread_mutex_lock(&mu);
  serving = on;
  for (watch_t *w = watchers; w; w = w->next)
    push_locked(w);
  pthread_mutex_unlock(&mu);
}

int rm_health_serving(void) {
  pthread_mutex_lock(&mu);
  int on = serving;
  pthread_mutex_unlock(&mu);
  return on;
}

void rm_health_methods(rm_method_t *out, int needs_token) {
  out[0] = (rm_method_t){.path = "/grpc.health.v1.Health/Check",
                         .kind = RM_RPC_UNARY,
                         .needs_auth = needs_token,
                         .serve_while_draining = 1,
                         .request = &grpc__health__v1__health_check_request__descriptor,
                         .handle = check};
  out[1] = (rm_method_t){.path = "/grpc.health.v1.Health/Watch",
                         .kind = RM_RPC_SERVER_STREAM,
                         .needs_auth = needs_token,
                         .serve_while_draining = 1,
                         .request = &grpc__health__v1__health_check_request__descriptor,
                         .handle_bytes = watch};
}
