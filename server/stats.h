/* stats.h - the server's one set of cumulative counters (gRPC calls, pipeline runs, node
 * executions, streaming sessions), kept per thread without locks and summed when read by the
 * Prometheus exposition (metrics_http.c) and the GetStatistics RPC.
 *
 * Every counting function is lock-free and allocation-free after a thread's first count (its
 * shard is allocated then, once): each thread writes only its own shard with relaxed atomic
 * stores, readers sum the shards with relaxed loads. Shards outlive their threads, so counts
 * of finished threads stay. Label values are bounded: methods come from the method table,
 * node types from the registry (capped at RM_STATS_MAX_NODE_TYPES), pipeline names are the
 * first --stats-max-pipelines names seen, the rest share the label "other". */
#ifndef RM_SERVER_STATS_H
#define RM_SERVER_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rm/budget.h"

struct rm_method;

#define RM_STATS_MAX_METHODS 32
#define RM_STATS_MAX_NODE_TYPES 64
#define RM_STATS_CODES 17 /* gRPC status codes 0..16 */
/* Longest pipeline name with its own label; longer names count as "other". */
#define RM_STATS_NAME_MAX 128

/* Sets the method table (NULL-path terminated, outliving the counters: rows past
 * RM_STATS_MAX_METHODS are not counted) and the pipeline-name cap, and records the start
 * time. 0 or RM_ENOMEM. Main thread, before any call is counted; calling it again resets
 * every counter (tests). */
int rm_stats_init(const struct rm_method *methods, size_t max_pipelines);
/* Frees every shard and label. No thread may count any more. Main thread. */
void rm_stats_shutdown(void);
/* Non-zero once rm_stats_init has run (and not rm_stats_shutdown): callers skip the clock
 * readings they take only for the counters when it is 0. RM_BENCH_NO_COUNTERS=1 in the
 * environment keeps rm_stats_init from starting the counters (a benchmark switch, not a user
 * option: bench/server/metrics_cost.sh measures what they cost with it). Any thread. */
int rm_stats_counting(void);

/* ---- gRPC server metrics (go-grpc-prometheus names); any thread ---- */

/* The row of m in the method table, -1 for NULL (unregistered methods are not counted:
 * their paths are the client's). Pure. */
int rm_stats_method(const struct rm_method *m);
void rm_stats_call_started(int method);
void rm_stats_msg_received(int method);
void rm_stats_msg_sent(int method);
/* The call ended with status code after ns since it started. */
void rm_stats_call_handled(int method, int code, uint64_t ns);

/* ---- the engine; any thread ---- */

/* The label of a pipeline name: its index among the first max_pipelines names seen, or
 * the index of "other". Lock-free once the name has been seen. NULL is treated as "". */
int rm_stats_pipeline_label(const char *name);

/* What a pipeline call did, filled by its handler and counted when its status goes out
 * (rm_stats_pipeline_done). pipeline < 0: not a pipeline call. */
typedef struct rm_stats_run {
  int pipeline;
  int ran; /* the run started: queue_ns and compute_ns are set */
  uint64_t queue_ns;
  uint64_t compute_ns;
} rm_stats_run_t;

/* A pipeline call answered with code after total_ns since its arrival. */
void rm_stats_pipeline_done(const rm_stats_run_t *run, int code, uint64_t total_ns);

/* The per-call hot path in one shard lookup each. A unary call arrived (started, and
 * received when it carried a message) / ended: rm_stats_msg_sent when sent, then
 * rm_stats_call_handled, then rm_stats_pipeline_done when run is not NULL and names a
 * pipeline. */
void rm_stats_call_arrived(int method, int received);
void rm_stats_call_ended(int method, int code, uint64_t ns, int sent, const rm_stats_run_t *run);
/* A run begins / ends (remotemedia_inflight_runs). The node invocations counted on this
 * thread in between take the run's start as their "last run" wall time (Triton's
 * last_inference: when the request ran), read once per run. */
void rm_stats_run_begin(void);
void rm_stats_run_end(void);
/* One node invocation: the rm_run_opts_t.on_node callback (arg unused). */
void rm_stats_node(void *arg, const char *node_type, uint64_t ns, int ok);

typedef enum rm_stats_reject {
  RM_STATS_REJECT_CONCURRENCY = 0, /* max-concurrent */
  RM_STATS_REJECT_MEMORY = 1,      /* max-memory */
  RM_STATS_REJECT_LIMITS = 2,      /* any per-request limit */
  RM_STATS_REJECT_N = 3,
} rm_stats_reject_t;
void rm_stats_rejected(rm_stats_reject_t reason);

/* The compiled-pipeline cache answered a lookup. */
void rm_stats_cache(int hit);
/* A unary response was cancelled by --send-timeout-ms. */
void rm_stats_send_timeout(void);

/* ---- streaming sessions (StreamPipeline); any thread ---- */

void rm_stats_session_open(void);
void rm_stats_session_close(void);
/* One chunk processed in ns. */
void rm_stats_chunk(uint64_t duration_ns);

/* ---- reading ---- */

/* The worker pool's load at a scrape. */
typedef struct rm_stats_workers {
  size_t queued; /* jobs waiting for a worker */
  int busy;      /* workers running a job */
  int threads;   /* workers */
} rm_stats_workers_t;

/* Appends the Prometheus text exposition (format 0.0.4) of every counter, the memory
 * budget b (may be NULL), the workers' load w (may be NULL) and the process to out. 0, or
 * RM_EIO when writing failed. Any thread; concurrent with counting (each value is read
 * once, atomically). */
int rm_stats_write_exposition(FILE *out, const rm_budget_t *b, const rm_stats_workers_t *w);

/* Summed statistics of one label. */
typedef struct rm_stats_summary {
  const char *name; /* the label value; static or owned by the counters */
  uint64_t success_count, success_ns;
  uint64_t fail_count, fail_ns;
  uint64_t queue_count, queue_ns;
  uint64_t compute_count, compute_ns;
  uint64_t execution_count;
  uint64_t last_ms; /* wall clock, ms since the epoch; 0 = never */
} rm_stats_summary_t;

/* Every pipeline label seen (in first-seen order, "other" last when used) or every node type
 * that ran, summed: a new rm_malloc'd array (rm_free it) in *out and its length in *n.
 * 0 or RM_ENOMEM. Any thread. */
int rm_stats_pipelines(rm_stats_summary_t **out, size_t *n);
int rm_stats_node_types(rm_stats_summary_t **out, size_t *n);

/* Wall clock at rm_stats_init, ns since the epoch. */
uint64_t rm_stats_start_time_ns(void);

#endif
