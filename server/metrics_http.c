/* metrics_http.c - GET /metrics, /healthz and /readyz with libmicrohttpd (metrics_http.h). */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "bytebuf.h"
#include "grpc/health/v1/health.pb-c.h"
#include "health.h"
#include "log.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "self_call.h"
#include "stats.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* A client holding connections open (a request sent a byte at a time never times out: the
 * timeout is for inactivity) gets at most MAX_PER_IP of them, so one address cannot take every
 * connection and blind the scraper: it would need MAX_CONNECTIONS / MAX_PER_IP addresses. A
 * scraper uses one. */
#define MAX_CONNECTIONS 64
#define MAX_PER_IP 8
#define CONNECTION_TIMEOUT_S 10
/* While a connection cannot be taken (no file descriptor left, or MAX_CONNECTIONS open), the
 * accept thread looks again this often: MHD's own accept busy-waits on a listener it cannot
 * accept from (100 % of a CPU and ~160,000 log lines a second while the process is out of
 * descriptors and a scrape is pending), so the listener is ours. */
#define RETRY_MS 100
/* The health check of /healthz and /readyz must end within this (deploy/k8s gives its probes
 * 5 s); a result younger than HEALTH_FRESH_NS answers without a new check, so requests in a
 * loop cost at most two checks a second. */
#define CHECK_DEADLINE_MS 4000
#define HEALTH_FRESH_NS (500ull * 1000000ull)
/* How long a stop waits for the health requests it resumed to be answered. */
#define STOP_ANSWER_S 2
/* MHD's messages and the accept thread's: at most LOG_BURST lines per LOG_WINDOW_NS, the rest
 * counted and reported with the next line that goes out. */
#define LOG_BURST 10
#define LOG_WINDOW_NS (10ull * 1000000000ull)

/* A health check's outcome: the call's code, the status, when it ended (0: none yet). */
typedef struct health_result {
  uint64_t at_ns;
  grpc_status_code code;
  int serving;
} health_result_t;

/* A /healthz or /readyz request waiting, suspended, for the next check. */
typedef struct health_waiter {
  struct MHD_Connection *conn;
  health_result_t result;
  struct health_waiter *next;
} health_waiter_t;

struct rm_metrics_http {
  struct MHD_Daemon *d;
  rm_server_t *server;
  /* the health checker (checker_main): its thread, the requests waiting, the last result */
  pthread_mutex_t hmu;
  pthread_cond_t hcv;
  health_waiter_t *waiting;
  health_result_t last;
  int stopping;
  pthread_t checker;
  int checker_started;
  rm_self_call_slot_t check_slot;
  int held; /* health requests suspended and not yet completed (on_completed), under hmu */
  const rm_budget_t *budget;
  int port;
  int lfd;     /* the listening socket */
  int wake[2]; /* a byte written to wake[1] stops the accept thread */
  pthread_t thread;
  int thread_started;
};

/* ---------------------------------------------------------------- the log, bounded */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t log_window_ns; /* start of the current window */
static unsigned log_in_window, log_dropped;

/* Writes one metrics_http line at level unless LOG_BURST went out in this window already.
 * Any thread. */
static void log_bounded(rm_log_level_t level, const char *msg) {
  uint64_t now = rm_clock_ns();
  pthread_mutex_lock(&log_mu);
  if (!log_window_ns || now - log_window_ns >= LOG_WINDOW_NS) {
    log_window_ns = now;
    log_in_window = 0;
  }
  int out = log_in_window < LOG_BURST;
  unsigned dropped = 0;
  if (out) {
    log_in_window++;
    dropped = log_dropped;
    log_dropped = 0;
  } else {
    log_dropped++;
  }
  pthread_mutex_unlock(&log_mu);
  if (!out)
    return;
  if (dropped)
    RM_LOG(level, "metrics_http", "{s:s, s:i}", "message", msg, "suppressed", (int)dropped);
  else
    RM_LOG(level, "metrics_http", "{s:s}", "message", msg);
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result rc = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* ---------------------------------------------------------------- /healthz and /readyz */

/* A health Check of PipelineService through the server's own gRPC port (rm_self_call, with a
 * token of the server's when it has them), so a probe without a token learns what a gRPC
 * health probe would: that a polling thread answers calls, and the status. The call's code;
 * the status in *serving (1 SERVING) when it is OK. */
static grpc_status_code self_check(rm_metrics_http_t *h, int *serving) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = "remotemedia.v1.PipelineService";
  grpc_byte_buffer *request = rm_bytebuf_pack(&req.base), *response = NULL;
  grpc_status_code code = rm_self_call(h->server, "/grpc.health.v1.Health/Check", request,
                                       CHECK_DEADLINE_MS, &h->check_slot, NULL, &response);
  grpc_byte_buffer_destroy(request);
  *serving = 0;
  if (code == GRPC_STATUS_OK) { /* no message or an unreadable one reads as empty */
    rm_bytebuf_view_t v;
    int viewed = response && rm_bytebuf_view_init(&v, response) == 0;
    ProtobufCMessage *r = rm_bytebuf_unpack(&grpc__health__v1__health_check_response__descriptor,
                                            viewed ? v.data : NULL, viewed ? v.len : 0);
    if (viewed)
      rm_bytebuf_view_destroy(&v);
    *serving = r && ((Grpc__Health__V1__HealthCheckResponse *)r)->status ==
                        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (!r)
      code = GRPC_STATUS_INTERNAL;
    rm_bytebuf_unpack_free(r);
  }
  grpc_byte_buffer_destroy(response);
  if (code != GRPC_STATUS_OK && code != GRPC_STATUS_CANCELLED)
    log_bounded(RM_LOG_WARN, "a health check through the gRPC port failed (/healthz, /readyz)");
  return code;
}

/* The checker thread: runs one check whenever requests wait for one (their connections
 * suspended, so the MHD thread goes on serving /metrics), hands its result to every request
 * that waited meanwhile and resumes them; a result younger than HEALTH_FRESH_NS answers a
 * request at once (on_request). On stop it resumes the rest with `stopping`. */
static void *checker_main(void *arg) {
  rm_metrics_http_t *h = arg;
  pthread_mutex_lock(&h->hmu);
  for (;;) {
    while (!h->waiting && !h->stopping)
      pthread_cond_wait(&h->hcv, &h->hmu);
    if (h->stopping)
      break;
    pthread_mutex_unlock(&h->hmu);
    int serving;
    grpc_status_code code = self_check(h, &serving);
    pthread_mutex_lock(&h->hmu);
    h->last = (health_result_t){.at_ns = rm_clock_ns(), .code = code, .serving = serving};
    for (health_waiter_t *w = h->waiting, *next; w; w = next) {
      next = w->next; /* w may be freed once its connection is resumed */
      w->result = h->last;
      MHD_resume_connection(w->conn);
    }
    h->waiting = NULL;
  }
  for (health_waiter_t *w = h->waiting, *next; w; w = next) {
    next = w->next; /* its result stays empty: health_request answers "stopping" */
    MHD_resume_connection(w->conn);
  }
  h->waiting = NULL;
  pthread_mutex_unlock(&h->hmu);
  return NULL;
}

/* A result that may answer without a new check: younger than HEALTH_FRESH_NS, and taken with
 * the health status the service holds now (a drain that began since then is seen at once). */
static int fresh(const health_result_t *r) {
  return r->at_ns && rm_clock_ns() - r->at_ns < HEALTH_FRESH_NS &&
         (r->code != GRPC_STATUS_OK || r->serving == rm_health_serving());
}

/* The answer of /healthz (ready 0) or /readyz (1) from a check's result. */
static enum MHD_Result reply_health(struct MHD_Connection *conn, const health_result_t *r,
                                    int ready) {
  if (r->code != GRPC_STATUS_OK)
    return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                      r->code == GRPC_STATUS_DEADLINE_EXCEEDED
                          ? "not ok: the health check through the gRPC port took too long\n"
                      : r->code == GRPC_STATUS_CANCELLED
                          ? "not ok: the server is stopping\n"
                          : "not ok: the health check through the gRPC port failed\n");
  if (!ready) /* liveness: it answered, whatever the status (a drain is alive) */
    return reply_text(conn, MHD_HTTP_OK, "ok\n");
  return r->serving ? reply_text(conn, MHD_HTTP_OK, "SERVING\n")
                    : reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "NOT_SERVING\n");
}

/* /healthz (liveness) and /readyz (readiness: PipelineService's status). A request either
 * gets a fresh result at once or waits, suspended, for the checker's next one (con_cls holds
 * its waiter until MHD completes the request: on_completed). When the server cannot call
 * itself (rm_self_call_impossible): the process answering, and the health service's status. */
static enum MHD_Result health_request(rm_metrics_http_t *h, struct MHD_Connection *conn, int ready,
                                      void **con_cls) {
  if (rm_self_call_impossible(h->server)) {
    if (!ready)
      return reply_text(conn, MHD_HTTP_OK, "ok (not checked through the gRPC port)\n");
    health_result_t r = {.code = GRPC_STATUS_OK, .serving = rm_health_serving()};
    return reply_health(conn, &r, ready);
  }
  health_waiter_t *w = *con_cls;
  if (w) { /* resumed by the checker */
    health_result_t r = w->result;
    if (!r.code && !r.at_ns) /* stopped before a check ended */
      r.code = GRPC_STATUS_CANCELLED;
    return reply_health(conn, &r, ready);
  }
  pthread_mutex_lock(&h->hmu);
  health_result_t last = h->last;
  int stopping = h->stopping;
  if (!stopping && !fresh(&last)) {
    w = rm_calloc(1, sizeof *w);
    if (w) {
      w->conn = conn;
      w->next = h->waiting;
      h->waiting = w;
      *con_cls = w;
      h->held++;
      /* suspended before the checker can resume it: it needs the lock to take the list */
      MHD_suspend_connection(conn);
      pthread_cond_signal(&h->hcv);
    }
  }
  pthread_mutex_unlock(&h->hmu);
  if (w)
    return MHD_YES;
  if (stopping)
    last = (health_result_t){.code = GRPC_STATUS_CANCELLED};
  else if (!last.at_ns) /* out of memory and no result yet */
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  return reply_health(conn, &last, ready);
}

/* MHD's request-completed callback: frees a health request's waiter (rm_metrics_http_stop
 * waits for the last one). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  rm_metrics_http_t *h = cls;
  (void)conn, (void)toe;
  if (!*con_cls)
    return;
  rm_free(*con_cls);
  *con_cls = NULL;
  pthread_mutex_lock(&h->hmu);
  if (--h->held == 0)
    pthread_cond_broadcast(&h->hcv);
  pthread_mutex_unlock(&h->hmu);
}

/* MHD's access handler: runs on its thread, one request at a time. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  rm_metrics_http_t *h = cls;
  (void)version, (void)upload_data, (void)upload_data_size;
  int live = strcmp(url, "/healthz") == 0, ready = strcmp(url, "/readyz") == 0;
  if (!live && !ready && strcmp(url, "/metrics") != 0)
    return reply_text(conn, MHD_HTTP_NOT_FOUND,
                      "not found: the metrics are at /metrics, health at /healthz and /readyz\n");
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  /* probes that send no token (docs/security.md, --health-needs-token) */
  if (live || ready)
    return health_request(h, conn, ready, con_cls);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  rm_stats_workers_t w;
  rm_server_worker_load(h->server, &w.queued, &w.busy, &w.threads);
  int rc = f ? rm_stats_write_exposition(f, h->budget, &w) : RM_ENOMEM;
  if (f && fclose(f) != 0 && !rc)
    rc = RM_EIO;
  if (rc) {
    free(buf);
    RM_LOG(RM_LOG_ERROR, "metrics_failed", "{s:s}", "error", rm_strerror(rc));
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "the metrics could not be written\n");
  }
  /* open_memstream's buffer is malloc'd: MHD frees it with free() */
  struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(buf);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
  enum MHD_Result q = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return q;
}

/* MHD's own error messages go to the JSON log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  log_bounded(RM_LOG_WARN, msg);
}

/* ---------------------------------------------------------------- accepting */

static int is_exhaustion(int e) {
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* An accept error that is the connection's, not the listener's: accept(2) says to treat the
 * network errors already pending on a new connection like EAGAIN and try again. */
static int is_transient(int e) {
  return e == EINTR || e == EAGAIN || e == EWOULDBLOCK || e == ECONNABORTED || e == EPROTO ||
         e == ENETDOWN || e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
         e == EOPNOTSUPP || e == ENETUNREACH;
}

/* Waits ms for the stop byte: 1 when it came. */
static int wait_stop(rm_metrics_http_t *h, int ms) {
  struct pollfd p = {.fd = h->wake[0], .events = POLLIN};
  return poll(&p, 1, ms) > 0;
}

/* The accept thread: takes connections from the listener and hands them to MHD, which serves
 * them on its own thread; backs off RETRY_MS while a connection cannot be taken. */
static void *accept_main(void *arg) {
  rm_metrics_http_t *h = arg;
  int failing = 0; /* the last poll or accept failed */
  for (;;) {
    struct pollfd p[2] = {{.fd = h->lfd, .events = POLLIN}, {.fd = h->wake[0], .events = POLLIN}};
    int n = poll(p, 2, -1), poll_errno = errno;
    if (n < 0 && poll_errno == EINTR)
      continue;
    if (n > 0 && p[1].revents)
      break;
    if (n < 0 || !(p[0].revents & POLLIN)) { /* a poll error, or POLLERR/POLLHUP alone */
      if (!failing)
        log_bounded(RM_LOG_ERROR, n < 0 ? "cannot wait for connections: poll failed"
                                        : "the metrics listener reports an error");
      failing = 1;
      if (wait_stop(h, RETRY_MS)) /* never spin, never give up */
        break;
      continue;
    }
    /* at MAX_CONNECTIONS the connection waits in the backlog, as with MHD's own listener */
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    if (info && info->num_connections >= MAX_CONNECTIONS) {
      if (wait_stop(h, RETRY_MS))
        break;
      continue;
    }
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int fd = accept4(h->lfd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      int e = errno;
      if (is_transient(e))
        continue;
      if (!failing) { /* one line per episode (and at most LOG_BURST per window) */
        char msg[160];
        snprintf(msg, sizeof msg, "cannot accept a connection: %s; trying again every %d ms",
                 strerror(e), RETRY_MS);
        log_bounded(is_exhaustion(e) ? RM_LOG_WARN : RM_LOG_ERROR, msg);
      }
      failing = 1;
      if (wait_stop(h, RETRY_MS))
        break;
      continue;
    }
    if (failing) {
      log_bounded(RM_LOG_INFO, "accepting connections again");
      failing = 0;
    }
    /* MHD closes the socket itself when it refuses it (per-address limit) */
    MHD_add_connection(h->d, fd, (const struct sockaddr *)&addr, len);
  }
  return NULL;
}

/* A listening socket on ai: its descriptor, or -1 with errno set. */
static int listen_on(const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ai->ai_family == AF_INET6) /* [::] is IPv6 only, as MHD had it */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return 0;
  if (a.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
  return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

int rm_metrics_http_start(const char *listen, rm_server_t *server, rm_metrics_http_t **out,
                          rm_error_t *err) {
  *out = NULL;
  char host[256], port[8];
  if (rm_config_split_address(listen, host, sizeof host, port, sizeof port))
    return rm_error_set(err, RM_EPARAM, NULL, "metrics-listen",
                        "--metrics-listen must be HOST:PORT or [IPv6]:PORT, not '%s'", listen);
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai)
    return rm_error_set(err, RM_EPARAM, NULL, "metrics-listen", "--metrics-listen %s: %s", listen,
                        gai_strerror(gai));
  rm_metrics_http_t *h = rm_calloc(1, sizeof *h);
  if (!h) {
    freeaddrinfo(ai);
    return rm_error_set(err, RM_ENOMEM, NULL, "metrics-listen", "out of memory");
  }
  h->server = server;
  h->budget = rm_server_budget(server);
  pthread_mutex_init(&h->hmu, NULL);
  pthread_cond_init(&h->hcv, NULL);
  pthread_mutex_init(&h->check_slot.mu, NULL);
  h->wake[0] = h->wake[1] = -1;
  h->lfd = listen_on(ai);
  int e = errno;
  freeaddrinfo(ai);
  if (h->lfd < 0) {
    rm_free(h);
    return rm_error_set(err, RM_EIO, NULL, "metrics-listen",
                        "cannot serve metrics on %s: cannot bind to port %s: %s (address in use "
                        "or not local?)",
                        listen, port, strerror(e));
  }
  h->port = bound_port(h->lfd);
  /* MHD serves the connections the accept thread hands it (MHD_add_connection needs ITC) */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                   MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
  /* the logger first, so every message of MHD's goes through it */
  h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                          on_mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)MAX_PER_IP,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
  if (h->d && pthread_create(&h->checker, NULL, checker_main, h) == 0)
    h->checker_started = 1;
  if (!h->d || !h->checker_started || pipe2(h->wake, O_CLOEXEC) != 0 ||
      pthread_create(&h->thread, NULL, accept_main, h) != 0) {
    rm_metrics_http_stop(h);
    return rm_error_set(err, RM_EIO, NULL, "metrics-listen",
                        "cannot serve metrics on %s (cannot start its threads)", listen);
  }
  h->thread_started = 1;
  *out = h;
  return 0;
}

int rm_metrics_http_port(const rm_metrics_http_t *h) { return h->port; }

void rm_metrics_http_stop(rm_metrics_http_t *h) {
  if (!h)
    return;
  /* the checker first: a check in flight is cancelled, every waiting request resumed (MHD
   * must not stop with connections suspended), later ones answered "stopping" at once */
  pthread_mutex_lock(&h->hmu);
  h->stopping = 1;
  pthread_cond_signal(&h->hcv);
  pthread_mutex_unlock(&h->hmu);
  rm_self_call_cancel(&h->check_slot);
  if (h->checker_started)
    pthread_join(h->checker, NULL);
  if (h->thread_started) {
    char byte = 1;
    while (write(h->wake[1], &byte, 1) < 0 && errno == EINTR)
      ;
    pthread_join(h->thread, NULL);
  }
  /* the requests the checker resumed are answered before MHD closes their connections
   * (which it would do at once, answer unsent); bounded, as a client may not read */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += STOP_ANSWER_S;
  pthread_mutex_lock(&h->hmu);
  while (h->held && pthread_cond_timedwait(&h->hcv, &h->hmu, &until) == 0)
    ;
  pthread_mutex_unlock(&h->hmu);
  if (h->d)
    MHD_stop_daemon(h->d);
  for (int i = 0; i < 2; i++)
    if (h->wake[i] >= 0)
      close(h->wake[i]);
  close(h->lfd);
  pthread_mutex_destroy(&h->check_slot.mu);
  pthread_cond_destroy(&h->hcv);
  pthread_mutex_destroy(&h->hmu);
  rm_free(h);
}
