/* metrics_http.c - GET /metrics with libmicrohttpd (metrics_http.h). */
#include "metrics_http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"
#include "rm/alloc.h"
#include "stats.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* A client holding connections open (a request sent a byte at a time never times out: the
 * timeout is for inactivity) gets at most MAX_PER_IP of them, so one address cannot take every
 * connection and blind the scraper: it would need MAX_CONNECTIONS / MAX_PER_IP addresses. A
 * scraper uses one. */
#define MAX_CONNECTIONS 64
#define MAX_PER_IP 8
#define CONNECTION_TIMEOUT_S 10

struct rm_metrics_http {
  struct MHD_Daemon *d;
  const rm_budget_t *budget;
  int port;
};

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

/* MHD's access handler: runs on its thread, one request at a time. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  rm_metrics_http_t *h = cls;
  (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
  if (strcmp(url, "/metrics") != 0)
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  int rc = f ? rm_stats_write_exposition(f, h->budget) : RM_ENOMEM;
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
  RM_LOG(RM_LOG_WARN, "metrics_http", "{s:s}", "message", msg);
}

int rm_metrics_http_start(const char *listen, const rm_budget_t *b, rm_metrics_http_t **out,
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
  h->budget = b;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* the logger first, so every message of MHD's goes through it */
  /* the port is bound through SOCK_ADDR; MHD's own messages name this one */
  h->d = MHD_start_daemon(
      flags, (uint16_t)atoi(port), NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)MAX_PER_IP,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!h->d) {
    rm_free(h);
    return rm_error_set(err, RM_EIO, NULL, "metrics-listen",
                        "cannot serve metrics on %s (address in use or not local?)", listen);
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info ? info->port : atoi(port);
  *out = h;
  return 0;
}

int rm_metrics_http_port(const rm_metrics_http_t *h) { return h->port; }

void rm_metrics_http_stop(rm_metrics_http_t *h) {
  if (!h)
    return;
  MHD_stop_daemon(h->d);
  rm_free(h);
}
