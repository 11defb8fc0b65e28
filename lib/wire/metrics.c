/* metrics.c - the engine's metrics as the wire PipelineMetrics message. */
#include <pthread.h>
#include <string.h>

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

/* ---- the packed size's bound ---- */

/* The most a scalar field takes packed: a one-byte tag (field numbers below 16) and a 10-byte
 * varint (a double or a fixed64 takes 8). */
#define SCALAR_FIELD_MAX 11
/* A length-delimited field's framing: a one-byte tag and a 32-bit varint length. */
#define DELIMITED_FIELD_MAX 6

/* The metrics messages' scalar fields, learnt from their descriptors once; -1 when a
 * descriptor holds a field the bound does not cover. */
static int node_scalars = -1, pipeline_scalars = -1;
static pthread_once_t layout_once = PTHREAD_ONCE_INIT;

static int is_scalar(ProtobufCType t) {
  return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES && t != PROTOBUF_C_TYPE_MESSAGE;
}

/* How many fields of d are single scalars with a one-byte tag, the one-byte-tag single
 * string `string_name` and repeated message `repeated_name` (NULL: none) aside; -1 when any
 * field is none of these. */
static int count_scalars(const ProtobufCMessageDescriptor *d, const char *string_name,
                         const char *repeated_name) {
  int n = 0;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    int repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    if (f->id >= 16)
      return -1;
    if (!strcmp(f->name, string_name) && f->type == PROTOBUF_C_TYPE_STRING && !repeated)
      continue;
    if (repeated_name && !strcmp(f->name, repeated_name) && f->type == PROTOBUF_C_TYPE_MESSAGE &&
        repeated)
      continue;
    if (!is_scalar(f->type) || repeated)
      return -1;
    n++;
  }
  return n;
}

static void learn_layout(void) {
  /* the bound counts the metrics' own tag as one byte: their field in the response */
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
      &remotemedia__v1__execute_response__descriptor, "metrics");
  if (!f || f->id >= 16)
    return;
  node_scalars = count_scalars(&remotemedia__v1__node_metrics__descriptor, "node_id", NULL);
  pipeline_scalars =
      count_scalars(&remotemedia__v1__pipeline_metrics__descriptor, "pipeline_id", "node_metrics");
}

static size_t string_field_max(const char *s) { return DELIMITED_FIELD_MAX + (s ? strlen(s) : 0); }

size_t rm_wire_metrics_field_bound(const Remotemedia__V1__PipelineMetrics *msg) {
  pthread_once(&layout_once, learn_layout);
  if (node_scalars < 0 || pipeline_scalars < 0)
    return 0;
  size_t n = DELIMITED_FIELD_MAX + (size_t)pipeline_scalars * SCALAR_FIELD_MAX +
             string_field_max(msg->pipeline_id);
  for (size_t i = 0; i < msg->n_node_metrics; i++)
    n += DELIMITED_FIELD_MAX + (size_t)node_scalars * SCALAR_FIELD_MAX +
         string_field_max(msg->node_metrics[i]->node_id);
  return n;
}
