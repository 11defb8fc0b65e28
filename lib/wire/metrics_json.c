/* metrics_json.c - the wire PipelineMetrics message as the seed's JSON (clients' view). */
#include "rm/metrics_seed.h"
#include "rm/wire_proto.h"

static void wire_node(const void *src, size_t i, rm_metrics_seed_node_t *f) {
  const Remotemedia__V1__NodeMetrics *n =
      ((const Remotemedia__V1__PipelineMetrics *)src)->node_metrics[i];
  *f = (rm_metrics_seed_node_t){n->node_id,         n->execution_count, n->success_count,
                                n->error_count,     n->success_rate,    n->total_duration_us,
                                n->avg_duration_us, n->min_duration_us, n->max_duration_us};
}

json_t *rm_wire_metrics_to_json(const Remotemedia__V1__PipelineMetrics *msg) {
  rm_metrics_seed_t pf = {msg->pipeline_id,       msg->total_executions,  msg->peak_memory_bytes,
                          msg->total_duration_us, msg->total_duration_ms, msg->peak_memory_mb};
  json_t *overhead;
  json_t *root = rm_metrics_seed_json(&pf, msg->n_node_metrics, wire_node, msg, &overhead);
  if (root)
    json_real_set(overhead, msg->metrics_overhead_us);
  return root;
}
