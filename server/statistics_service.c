/* statistics_service.c - GetStatistics: per pipeline name and per node type, summed from the
 * counters (stats.h) that also feed /metrics. */
#include "statistics_service.h"

#include <string.h>
#include <time.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/alloc.h"
#include "stats.h"

typedef Remotemedia__V1__StatisticDuration duration_t;

/* One label's messages, in the call's arena. */
typedef struct stat_parts {
  Remotemedia__V1__ExecutionStatistics exec;
  duration_t success, fail, queue, compute;
} stat_parts_t;

static void fill_exec(stat_parts_t *p, const rm_stats_summary_t *s) {
  remotemedia__v1__execution_statistics__init(&p->exec);
  duration_t *d[] = {&p->success, &p->fail, &p->queue, &p->compute};
  for (size_t i = 0; i < 4; i++)
    remotemedia__v1__statistic_duration__init(d[i]);
  p->success.count = s->success_count, p->success.ns = s->success_ns;
  p->fail.count = s->fail_count, p->fail.ns = s->fail_ns;
  p->queue.count = s->queue_count, p->queue.ns = s->queue_ns;
  p->compute.count = s->compute_count, p->compute.ns = s->compute_ns;
  p->exec.success = &p->success;
  p->exec.fail = &p->fail;
  p->exec.queue = &p->queue;
  p->exec.compute = &p->compute;
}

static int build(rm_call_t *call, const Remotemedia__V1__GetStatisticsRequest *req,
                 Remotemedia__V1__GetStatisticsResponse *resp, rm_stats_summary_t *pipes,
                 size_t n_pipes, rm_stats_summary_t *nodes, size_t n_nodes) {
  rm_arena_t *a = rm_call_arena(call);
  const char *only = req->pipeline_name && req->pipeline_name[0] ? req->pipeline_name : NULL;
  size_t np = n_pipes ? n_pipes : 1, nn = n_nodes ? n_nodes : 1;
  Remotemedia__V1__PipelineStatistics *ps = rm_arena_calloc(a, np, sizeof *ps);
  Remotemedia__V1__PipelineStatistics **pp = rm_arena_calloc(a, np, sizeof *pp);
  Remotemedia__V1__NodeTypeStatistics *ns = rm_arena_calloc(a, nn, sizeof *ns);
  Remotemedia__V1__NodeTypeStatistics **np_ = rm_arena_calloc(a, nn, sizeof *np_);
  stat_parts_t *parts = rm_arena_calloc(a, np + nn, sizeof *parts);
  if (!ps || !pp || !ns || !np_ || !parts)
    return RM_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n_pipes; i++) {
    if (only && strcmp(only, pipes[i].name) != 0)
      continue;
    remotemedia__v1__pipeline_statistics__init(&ps[k]);
    ps[k].name = (char *)pipes[i].name;
    ps[k].last_run_ms = pipes[i].last_ms;
    ps[k].execution_count = pipes[i].execution_count;
    fill_exec(&parts[k], &pipes[i]);
    ps[k].stats = &parts[k].exec;
    pp[k] = &ps[k];
    k++;
  }
  resp->pipelines = pp;
  resp->n_pipelines = k;
  for (size_t i = 0; i < n_nodes; i++) {
    remotemedia__v1__node_type_statistics__init(&ns[i]);
    ns[i].node_type = (char *)nodes[i].name;
    ns[i].last_run_ms = nodes[i].last_ms;
    ns[i].execution_count = nodes[i].execution_count;
    fill_exec(&parts[np + i], &nodes[i]);
    ns[i].stats = &parts[np + i].exec;
    np_[i] = &ns[i];
  }
  resp->node_types = np_;
  resp->n_node_types = n_nodes;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
  uint64_t start_ns = rm_stats_start_time_ns();
  resp->start_time_ms = start_ns / 1000000;
  resp->uptime_ms = now_ns > start_ns ? (now_ns - start_ns) / 1000000 : 0;
  return 0;
}

static void get_statistics(rm_call_t *call, const ProtobufCMessage *msg) {
  const Remotemedia__V1__GetStatisticsRequest *req =
      (const Remotemedia__V1__GetStatisticsRequest *)msg;
  rm_stats_summary_t *pipes = NULL, *nodes = NULL;
  size_t n_pipes = 0, n_nodes = 0;
  Remotemedia__V1__GetStatisticsResponse resp = REMOTEMEDIA__V1__GET_STATISTICS_RESPONSE__INIT;
  int rc = rm_stats_pipelines(&pipes, &n_pipes);
  if (!rc)
    rc = rm_stats_node_types(&nodes, &n_nodes);
  if (!rc)
    rc = build(call, req, &resp, pipes, n_pipes, nodes, n_nodes);
  if (rc) {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_call_fail(call, &err);
  } else {
    rm_call_reply(call, &resp.base);
  }
  rm_free(pipes);
  rm_free(nodes);
}

void rm_statistics_service_methods(rm_method_t *out) {
  out[0] = (rm_method_t){.path = "/remotemedia.v1.PipelineService/GetStatistics",
                         .kind = RM_RPC_UNARY,
                         .needs_auth = 1,
                         .request = &remotemedia__v1__get_statistics_request__descriptor,
                         .handle = get_statistics};
}
