/* metrics_seed.h - the seed's metrics JSON object, built once from any source of figures
 * (live engine metrics, the wire PipelineMetrics). Knows neither the engine nor proto. */
#ifndef RM_METRICS_SEED_H
#define RM_METRICS_SEED_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One node's figures as the seed exports them. */
typedef struct rm_metrics_seed_node {
  const char *node_id; /* NULL reads as "" */
  uint64_t execution_count, success_count, error_count;
  double success_rate, total_us, avg_us, min_us, max_us;
} rm_metrics_seed_node_t;

/* The pipeline's figures. */
typedef struct rm_metrics_seed {
  const char *pipeline_id; /* NULL reads as "" */
  uint64_t total_executions, peak_memory_bytes;
  double total_us, total_ms, peak_mb;
} rm_metrics_seed_t;

/* The seed's object, keys exactly and in the seed's order (pipeline_id, total_executions,
 * total_duration_us, total_duration_ms, peak_memory_bytes, peak_memory_mb,
 * metrics_overhead_us, node_metrics [{node_id, execution_count, success_count, error_count,
 * success_rate, total_duration_us, avg_duration_us, min_duration_us, max_duration_us}]).
 * node_at(src, i, out) fills node i of n. metrics_overhead_us is a real set to 0 and
 * returned (borrowed) in *overhead for the caller to set last, so the time spent here can
 * be in it. New reference, NULL on OOM. Any thread. */
json_t *rm_metrics_seed_json(const rm_metrics_seed_t *pf, size_t n,
                             void (*node_at)(const void *src, size_t i,
                                             rm_metrics_seed_node_t *out),
                             const void *src, json_t **overhead);

#ifdef __cplusplus
}
#endif
#endif
