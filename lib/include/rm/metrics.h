/* metrics.h - per-pipeline execution metrics and their seed-JSON export (the protobuf
 * export is the wire layer's: rm_wire_metrics_to_proto in rm/wire.h).
 *
 * A pipeline's metrics accumulate over every run made with metrics on. Durations come
 * from the monotonic clock in nanoseconds; exports express them in microseconds as
 * doubles so sub-microsecond nodes do not read 0. metrics_overhead counts everything the
 * metrics cost: clock reads, aggregation and the export itself. */
#ifndef RM_METRICS_H
#define RM_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rm/metrics_seed.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rm_node_metrics {
  const char *node_id; /* borrowed from the pipeline */
  uint64_t execution_count;
  uint64_t success_count;
  uint64_t error_count;
  uint64_t total_ns;
  uint64_t min_ns; /* UINT64_MAX until the first execution */
  uint64_t max_ns;
} rm_node_metrics_t;

typedef struct rm_metrics {
  const char *pipeline_id; /* borrowed */
  uint64_t total_executions;
  uint64_t total_ns;
  uint64_t peak_memory_bytes;
  uint64_t overhead_ns;
  rm_node_metrics_t *nodes;
  size_t n_nodes;
} rm_metrics_t;

/* Initialises m for n nodes (ids borrowed, must outlive m). 0 or RM_ENOMEM. */
int rm_metrics_init(rm_metrics_t *m, const char *pipeline_id, const char *const *node_ids,
                    size_t n_nodes);
/* Releases what rm_metrics_init allocated; m may be initialised again. NULL is a no-op. */
void rm_metrics_destroy(rm_metrics_t *m);

/* Adds one process() invocation of node i that took ns and succeeded or not. */
static inline void rm_metrics_record(rm_metrics_t *m, size_t i, uint64_t ns, int ok) {
  rm_node_metrics_t *n = &m->nodes[i];
  n->execution_count++;
  if (ok)
    n->success_count++;
  else
    n->error_count++;
  n->total_ns += ns;
  if (ns < n->min_ns)
    n->min_ns = ns;
  if (ns > n->max_ns)
    n->max_ns = ns;
}

/* What metrics add to one timed node invocation: two monotonic clock reads and one
 * rm_metrics_record, measured once per process (the first caller calibrates; any thread).
 * Runs charge it to overhead_ns per invocation, and once more for the run's own start and
 * end reads, instead of timing themselves with further clock reads. */
uint64_t rm_metrics_invocation_cost_ns(void);

/* The seed's JSON object (keys exactly: pipeline_id, total_executions, total_duration_us,
 * total_duration_ms, peak_memory_bytes, peak_memory_mb, metrics_overhead_us, node_metrics
 * [{node_id, execution_count, success_count, error_count, success_rate,
 * total_duration_us, avg_duration_us, min_duration_us, max_duration_us}]). The time spent
 * exporting is added to m->overhead_ns and included in the value exported; encoding the
 * result afterwards (json_dumps, protobuf packing) cannot be in a value it encodes, so a
 * caller that wants it counted adds it to m->overhead_ns for the next export. New
 * reference, NULL on OOM. */
json_t *rm_metrics_to_json(rm_metrics_t *m);

/* The same document as json_dumps(rm_metrics_to_json(m), JSON_COMPACT), written directly
 * without a json_t tree (several times faster), so its own encoding is part of the
 * metrics_overhead_us it reports. Values read back as the same doubles; durations print
 * as exact decimals of whole nanoseconds ("12.345"). A new NUL-terminated rm_malloc'd
 * string (rm_free it), its length in *len when len is not NULL; NULL on OOM. */
char *rm_metrics_to_json_text(rm_metrics_t *m, size_t *len);

/* The pipeline's and node i's figures as every export presents them (node_figures takes
 * an rm_metrics_t * as `m`, so it can be rm_metrics_seed_json's node_at). Pure. */
void rm_metrics_figures(const rm_metrics_t *m, rm_metrics_seed_t *out);
void rm_metrics_node_figures(const void *m, size_t i, rm_metrics_seed_node_t *out);

/* Adds the time since t0 (a rm_clock_ns() reading), plus the clock read ending it, to
 * m->overhead_ns: every export, in this module or another (the wire layer's protobuf
 * export), charges itself this way before it writes the overhead it reports. */
void rm_metrics_charge_export(rm_metrics_t *m, uint64_t t0);

#ifdef __cplusplus
}
#endif
#endif
