/* metrics_http.h - the Prometheus endpoint: GET /metrics on its own HTTP port
 * (--metrics-listen): an accept thread of its own hands connections to libmicrohttpd, which serves
 * them on its thread. */
#ifndef RM_SERVER_METRICS_HTTP_H
#define RM_SERVER_METRICS_HTTP_H

#include "rm/budget.h"
#include "rm/error.h"

typedef struct rm_metrics_http rm_metrics_http_t;

/* Starts serving the exposition (stats.h) of the counters and the memory budget b (may be
 * NULL; must outlive the endpoint) on listen ("HOST:PORT", "[IPv6]:PORT"; port 0 picks a
 * free one). GET or HEAD /metrics answers 200 in text format 0.0.4, other paths 404, other
 * methods 405. 0 and *out, or RM_EPARAM (the address does not parse or resolve) / RM_EIO
 * (it cannot be bound) / RM_ENOMEM, with err (may be NULL) naming "metrics-listen". Main
 * thread. */
int rm_metrics_http_start(const char *listen, const rm_budget_t *b, rm_metrics_http_t **out,
                          rm_error_t *err);
/* The bound port. */
int rm_metrics_http_port(const rm_metrics_http_t *h);
/* Stops the thread (a scrape in progress completes first) and frees h. NULL is a no-op.
 * Main thread. */
void rm_metrics_http_stop(rm_metrics_http_t *h);

#endif
