/* metrics_http.h - the Prometheus endpoint: GET /metrics on its own HTTP port
 * (--metrics-listen), and the health of the server for probes that send no token: /healthz
 * and /readyz. An accept thread of its own hands connections to libmicrohttpd, which serves
 * them on its thread. */
#ifndef RM_SERVER_METRICS_HTTP_H
#define RM_SERVER_METRICS_HTTP_H

#include "rm/error.h"
#include "server.h"

typedef struct rm_metrics_http rm_metrics_http_t;

/* Starts serving the exposition (stats.h) of the counters and the memory budget of server
 * (which must outlive the endpoint) on listen ("HOST:PORT", "[IPv6]:PORT"; port 0 picks a
 * free one). GET or HEAD: /metrics answers 200 in text format 0.0.4; /healthz and /readyz
 * answer from a health Check of PipelineService through the server's own gRPC port
 * (self_call.h, with a token when the server has them; at most 4 s), for probes that send no
 * token: /healthz 200 "ok" when it ends OK, whatever the status (draining included), /readyz
 * 200 "SERVING" when the status is SERVING, else 503 "NOT_SERVING"; a Check that fails is 503
 * for both. The checks run on a thread of their own, one at a time: requests arriving while
 * one runs wait for it (suspended: /metrics is served meanwhile), and a result younger than
 * 0.5 s answers at once unless the health status changed since. When the server cannot
 * call itself (rm_self_call_impossible: TLS requiring client certificates) /healthz is 200
 * and /readyz the health service's status (health.h). Other paths 404, other methods 405.
 * 0 and *out, or RM_EPARAM (the address does not parse or resolve) / RM_EIO (it cannot be
 * bound) / RM_ENOMEM, with err (may be NULL) naming "metrics-listen". Main thread. */
int rm_metrics_http_start(const char *listen, rm_server_t *server, rm_metrics_http_t **out,
                          rm_error_t *err);
/* The bound port. */
int rm_metrics_http_port(const rm_metrics_http_t *h);
/* Stops the threads (a scrape in progress completes first; a health check in flight is
 * cancelled and the requests waiting for it answered 503 "not ok: the server is stopping")
 * and frees h. NULL is a no-op.
 * Main thread. */
void rm_metrics_http_stop(rm_metrics_http_t *h);

#endif
