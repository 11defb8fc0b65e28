/* metrics.c - the engine's metrics as the wire PipelineMetrics message. */
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/wire.h"

int rm_wire_metrics_to_proto(rm_metrics_t *m, Remotemedia__V1__PipelineMetrics *msg) {
  uint64_t t0 = rm_clock_ns();
  size_t n = m->n_nodes;
  /* One allocation: the pointer array, then the messages. */
  void *mem = rm_malloc(n * (sizeof(void *) + sizeof(Remotemedia__V1__NodeMetrics)) + 1);
  if (!mem)
    return RM_ENOMEM;
  Remotemedia__V1__NodeMetrics **ptrs = mem;
  Remotemedia__V1__NodeMetrics *nm = (Remotemedia__V1__NodeMetrics *)(ptrs + n);
  for (size_t i = 0; i < n; i++) {
    rm_metrics_seed_node_t f;
    rm_metrics_node_figures(m, i, &f);
    remotemedia__v1__node_metrics__init(&nm[i]);
    nm[i].node_id = (char *)f.node_id;
    nm[i].execution_count = f.execution_count;
    nm[i].success_count = f.success_count;
    nm[i].error_count = f.error_count;
    nm[i].success_rate = f.success_rate;
    nm[i].total_duration_us = f.total_us;
    nm[i].avg_duration_us = f.avg_us;
    nm[i].min_duration_us = f.min_us;
    nm[i].max_duration_us = f.max_us;
    ptrs[i] = &nm[i];
  }
  rm_metrics_seed_t pf;
  rm_metrics_figures(m, &pf);
  msg->pipeline_id = (char *)(pf.pipeline_id ? pf.pipeline_id : "");
  msg->total_executions = pf.total_executions;
  msg->total_duration_us = pf.total_us;
  msg->total_duration_ms = pf.total_ms;
  msg->peak_memory_bytes = pf.peak_memory_bytes;
  msg->peak_memory_mb = pf.peak_mb;
  msg->n_node_metrics = n;
  msg->node_metrics = ptrs;
  rm_metrics_charge_export(m, t0);
  msg->metrics_overhead_us = (double)m->overhead_ns / 1000.0;
  return 0;
}

void rm_wire_metrics_proto_clear(Remotemedia__V1__PipelineMetrics *msg) {
  rm_free(msg->node_metrics);
  msg->node_metrics = NULL;
  msg->n_node_metrics = 0;
}
