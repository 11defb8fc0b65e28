/* metrics.c - pipeline metrics storage and the seed-JSON and protobuf exports. */
#include "rm/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "remotemedia/v1/metrics.pb-c.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/error.h"

int rm_metrics_init(rm_metrics_t *m, const char *pipeline_id, const char *const *node_ids,
                    size_t n_nodes) {
  memset(m, 0, sizeof *m);
  m->pipeline_id = pipeline_id;
  m->nodes = rm_calloc(n_nodes ? n_nodes : 1, sizeof *m->nodes);
  if (!m->nodes)
    return RM_ENOMEM;
  m->n_nodes = n_nodes;
  for (size_t i = 0; i < n_nodes; i++) {
    m->nodes[i].node_id = node_ids[i];
    m->nodes[i].min_ns = UINT64_MAX;
  }
  return 0;
}

void rm_metrics_destroy(rm_metrics_t *m) {
  if (!m)
    return;
  rm_free(m->nodes);
  m->nodes = NULL;
  m->n_nodes = 0;
}

static pthread_once_t cost_once = PTHREAD_ONCE_INIT;
static uint64_t invocation_cost_ns;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* A record is a few additions, below the clock's useful resolution: time batches of them
 * and take the median batch, like the clock calibration. The volatile pointer keeps the
 * compiler from folding the loop. */
static void calibrate(void) {
  enum { ROUNDS = 9, RECORDS = 512 };
  rm_node_metrics_t node = {.min_ns = UINT64_MAX};
  rm_metrics_t dummy = {.nodes = &node, .n_nodes = 1};
  rm_metrics_t *volatile vm = &dummy;
  uint64_t per[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    uint64_t t0 = rm_clock_ns();
    for (int i = 0; i < RECORDS; i++)
      rm_metrics_record(vm, 0, (uint64_t)i, i & 1);
    per[r] = rm_clock_ns() - t0;
  }
  qsort(per, ROUNDS, sizeof per[0], cmp_u64);
  uint64_t record_ns = (per[ROUNDS / 2] + RECORDS - 1) / RECORDS; /* round up */
  invocation_cost_ns = 2 * rm_clock_read_cost_ns() + record_ns;
}

uint64_t rm_metrics_invocation_cost_ns(void) {
  pthread_once(&cost_once, calibrate);
  return invocation_cost_ns;
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

/* Derived per-node figures shared by both exports. */
typedef struct node_view {
  double success_rate, total_us, avg_us, min_us, max_us;
} node_view_t;

static node_view_t view(const rm_node_metrics_t *n) {
  node_view_t v = {0};
  if (n->execution_count) {
    v.success_rate = (double)n->success_count / (double)n->execution_count;
    v.avg_us = us(n->total_ns) / (double)n->execution_count;
    v.min_us = us(n->min_ns);
    v.max_us = us(n->max_ns);
  }
  v.total_us = us(n->total_ns);
  return v;
}

/* Adds the export's own time (plus the clock read that ends it) to the overhead. */
static void charge_export(rm_metrics_t *m, uint64_t t0) {
  m->overhead_ns += rm_clock_ns() - t0 + rm_clock_read_cost_ns();
}

json_t *rm_metrics_to_json(rm_metrics_t *m) {
  uint64_t t0 = rm_clock_ns();
  json_t *nodes = json_array();
  if (!nodes)
    return NULL;
  for (size_t i = 0; i < m->n_nodes; i++) {
    const rm_node_metrics_t *n = &m->nodes[i];
    node_view_t v = view(n);
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "node_id", n->node_id,
                          "execution_count", (json_int_t)n->execution_count, "success_count",
                          (json_int_t)n->success_count, "error_count",
                          (json_int_t)n->error_count, "success_rate", v.success_rate,
                          "total_duration_us", v.total_us, "avg_duration_us", v.avg_us,
                          "min_duration_us", v.min_us, "max_duration_us", v.max_us);
    if (json_array_append_new(nodes, o)) {
      json_decref(nodes);
      return NULL;
    }
  }
  /* metrics_overhead_us gets its real value last, when the export has been timed. */
  json_t *root = json_pack("{s:s, s:I, s:f, s:f, s:I, s:f, s:f, s:o}", "pipeline_id",
                           m->pipeline_id ? m->pipeline_id : "", "total_executions",
                           (json_int_t)m->total_executions, "total_duration_us",
                           us(m->total_ns), "total_duration_ms",
                           (double)m->total_ns / 1e6, "peak_memory_bytes",
                           (json_int_t)m->peak_memory_bytes, "peak_memory_mb",
                           (double)m->peak_memory_bytes / (1024.0 * 1024.0),
                           "metrics_overhead_us", 0.0, "node_metrics", nodes);
  if (!root)
    return NULL;
  charge_export(m, t0);
  json_real_set(json_object_get(root, "metrics_overhead_us"), us(m->overhead_ns));
  return root;
}

int rm_metrics_to_proto(rm_metrics_t *m, Remotemedia__V1__PipelineMetrics *msg) {
  uint64_t t0 = rm_clock_ns();
  size_t n = m->n_nodes;
  /* One allocation: the pointer array, then the messages. */
  void *mem = rm_malloc(n * (sizeof(void *) + sizeof(Remotemedia__V1__NodeMetrics)) + 1);
  if (!mem)
    return RM_ENOMEM;
  Remotemedia__V1__NodeMetrics **ptrs = mem;
  Remotemedia__V1__NodeMetrics *nm = (Remotemedia__V1__NodeMetrics *)(ptrs + n);
  for (size_t i = 0; i < n; i++) {
    const rm_node_metrics_t *src = &m->nodes[i];
    node_view_t v = view(src);
    remotemedia__v1__node_metrics__init(&nm[i]);
    nm[i].node_id = (char *)src->node_id;
    nm[i].execution_count = src->execution_count;
    nm[i].success_count = src->success_count;
    nm[i].error_count = src->error_count;
    nm[i].success_rate = v.success_rate;
    nm[i].total_duration_us = v.total_us;
    nm[i].avg_duration_us = v.avg_us;
    nm[i].min_duration_us = v.min_us;
    nm[i].max_duration_us = v.max_us;
    ptrs[i] = &nm[i];
  }
  msg->pipeline_id = (char *)(m->pipeline_id ? m->pipeline_id : "");
  msg->total_executions = m->total_executions;
  msg->total_duration_us = us(m->total_ns);
  msg->total_duration_ms = (double)m->total_ns / 1e6;
  msg->peak_memory_bytes = m->peak_memory_bytes;
  msg->peak_memory_mb = (double)m->peak_memory_bytes / (1024.0 * 1024.0);
  msg->n_node_metrics = n;
  msg->node_metrics = ptrs;
  charge_export(m, t0);
  msg->metrics_overhead_us = us(m->overhead_ns);
  return 0;
}

void rm_metrics_proto_clear(Remotemedia__V1__PipelineMetrics *msg) {
  rm_free(msg->node_metrics);
  msg->node_metrics = NULL;
  msg->n_node_metrics = 0;
}

json_t *rm_metrics_proto_to_json(const Remotemedia__V1__PipelineMetrics *msg) {
  json_t *nodes = json_array();
  if (!nodes)
    return NULL;
  for (size_t i = 0; i < msg->n_node_metrics; i++) {
    const Remotemedia__V1__NodeMetrics *n = msg->node_metrics[i];
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "node_id",
                          n->node_id, "execution_count", (json_int_t)n->execution_count,
                          "success_count", (json_int_t)n->success_count, "error_count",
                          (json_int_t)n->error_count, "success_rate", n->success_rate,
                          "total_duration_us", n->total_duration_us, "avg_duration_us",
                          n->avg_duration_us, "min_duration_us", n->min_duration_us,
                          "max_duration_us", n->max_duration_us);
    if (json_array_append_new(nodes, o)) {
      json_decref(nodes);
      return NULL;
    }
  }
  return json_pack("{s:s, s:I, s:f, s:f, s:I, s:f, s:f, s:o}", "pipeline_id", msg->pipeline_id,
                   "total_executions", (json_int_t)msg->total_executions, "total_duration_us",
                   msg->total_duration_us, "total_duration_ms", msg->total_duration_ms,
                   "peak_memory_bytes", (json_int_t)msg->peak_memory_bytes, "peak_memory_mb",
                   msg->peak_memory_mb, "metrics_overhead_us", msg->metrics_overhead_us,
                   "node_metrics", nodes);
}
