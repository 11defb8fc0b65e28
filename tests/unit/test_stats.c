/* test_stats.c - server/stats.c: per-thread counters summed exactly, label caps, and the
 * Prometheus exposition of what was counted. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/alloc.h"
#include "server.h"
#include "stats.h"
#include "test_support.h"

static rm_method_t methods[] = {
    {.path = "/remotemedia.v1.PipelineService/ExecutePipeline", .kind = RM_RPC_UNARY},
    {.path = "/grpc.health.v1.Health/Watch", .kind = RM_RPC_SERVER_STREAM},
    {.path = NULL},
};

static int init(void) { return rm_stats_init(methods, 2); }
static int cleanup(void) {
  rm_stats_shutdown();
  return 0;
}

/* The exposition as a string (free it). */
static char *exposition(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CU_ASSERT_FATAL(f != NULL);
  rm_stats_workers_t w = {.queued = 3, .busy = 1, .threads = 2};
  RM_ASSERT_INT(rm_stats_write_exposition(f, NULL, &w), 0);
  fclose(f);
  return buf;
}

static const rm_stats_summary_t *find(const rm_stats_summary_t *v, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].name, name) == 0)
      return &v[i];
  return NULL;
}

static void test_pipeline_labels_are_capped(void) {
  RM_ASSERT_INT(init(), 0);
  RM_ASSERT_INT(rm_stats_pipeline_label("a"), 0);
  RM_ASSERT_INT(rm_stats_pipeline_label("b"), 1);
  RM_ASSERT_INT(rm_stats_pipeline_label("c"), 2); /* "other" */
  RM_ASSERT_INT(rm_stats_pipeline_label("a"), 0);
  RM_ASSERT_INT(rm_stats_pipeline_label("d"), 2);
  char long_name[RM_STATS_NAME_MAX + 2];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  RM_ASSERT_INT(rm_stats_pipeline_label(long_name), 2);
  rm_stats_run_t run = {.pipeline = 2, .ran = 1, .queue_ns = 5, .compute_ns = 7};
  rm_stats_pipeline_done(&run, 0, 100);
  run.ran = 0;
  rm_stats_pipeline_done(&run, 3, 40);
  rm_stats_summary_t *v;
  size_t n;
  RM_ASSERT_INT(rm_stats_pipelines(&v, &n), 0);
  RM_ASSERT_INT(n, 3);
  RM_ASSERT_STR(v[0].name, "a");
  RM_ASSERT_STR(v[2].name, "other");
  CU_ASSERT(v[2].success_count == 1 && v[2].success_ns == 100);
  CU_ASSERT(v[2].fail_count == 1 && v[2].fail_ns == 40);
  CU_ASSERT(v[2].execution_count == 1 && v[2].queue_ns == 5 && v[2].compute_ns == 7);
  CU_ASSERT(v[2].last_ms > 0);
  CU_ASSERT(v[0].success_count == 0 && v[0].last_ms == 0);
  rm_free(v);
  char *text = exposition();
  CU_ASSERT(strstr(text, "remotemedia_pipeline_runs_total{pipeline=\"other\",status=\"OK\"} 1\n") !=
            NULL);
  CU_ASSERT(strstr(text, "remotemedia_pipeline_runs_total{pipeline=\"other\",status="
                         "\"INVALID_ARGUMENT\"} 1\n") != NULL);
  CU_ASSERT(strstr(text, "remotemedia_pipeline_runs_total{pipeline=\"a\",status=\"OK\"} 0\n") !=
            NULL);
  free(text);
  cleanup();
}

#define THREADS 4
#define PER_THREAD 20000

static void *count_nodes(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    rm_stats_node(NULL, "Gain", 1000, i % 10 != 0);
    rm_stats_call_handled(0, i % 10 ? 0 : 3, 2000000); /* 2 ms */
  }
  return NULL;
}

static void test_threads_are_summed_exactly(void) {
  RM_ASSERT_INT(init(), 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    CU_ASSERT_FATAL(pthread_create(&t[i], NULL, count_nodes, NULL) == 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  /* the threads are gone: their shards are not */
  rm_stats_summary_t *v;
  size_t n;
  RM_ASSERT_INT(rm_stats_node_types(&v, &n), 0);
  RM_ASSERT_INT(n, 1);
  const rm_stats_summary_t *g = find(v, n, "Gain");
  CU_ASSERT_FATAL(g != NULL);
  CU_ASSERT(g->success_count == THREADS * PER_THREAD / 10 * 9);
  CU_ASSERT(g->fail_count == THREADS * PER_THREAD / 10);
  CU_ASSERT(g->execution_count == THREADS * PER_THREAD);
  CU_ASSERT(g->compute_ns == 1000ull * THREADS * PER_THREAD);
  rm_free(v);
  char *text = exposition();
  const char *ex = "grpc_type=\"unary\",grpc_service=\"remotemedia.v1.PipelineService\","
                   "grpc_method=\"ExecutePipeline\"";
  char want[512];
  snprintf(want, sizeof want, "grpc_server_handled_total{%s,grpc_code=\"OK\"} %d\n", ex,
           THREADS * PER_THREAD / 10 * 9);
  CU_ASSERT(strstr(text, want) != NULL);
  snprintf(want, sizeof want, "grpc_server_handled_total{%s,grpc_code=\"InvalidArgument\"} %d\n",
           ex, THREADS * PER_THREAD / 10);
  CU_ASSERT(strstr(text, want) != NULL);
  /* 2 ms: within the 5 ms bucket (cumulative) */
  snprintf(want, sizeof want, "grpc_server_handling_seconds_bucket{%s,le=\"0.005\"} %d\n", ex,
           THREADS * PER_THREAD);
  CU_ASSERT(strstr(text, want) != NULL);
  snprintf(want, sizeof want, "grpc_server_handling_seconds_count{%s} %d\n", ex,
           THREADS * PER_THREAD);
  CU_ASSERT(strstr(text, want) != NULL);
  CU_ASSERT(strstr(text, "remotemedia_node_executions_total{node_type=\"Gain\",status=\"ok\"} "
                         "72000\n") != NULL);
  CU_ASSERT(strstr(text, "grpc_server_started_total{grpc_type=\"server_stream\",grpc_service="
                         "\"grpc.health.v1.Health\",grpc_method=\"Watch\"} 0\n") != NULL);
  free(text);
  cleanup();
}

static void test_streams_rejections_and_gauges(void) {
  RM_ASSERT_INT(init(), 0);
  rm_stats_session_open();
  rm_stats_session_open();
  rm_stats_session_close();
  rm_stats_chunk(30000);
  rm_stats_rejected(RM_STATS_REJECT_MEMORY);
  rm_stats_run_begin();
  rm_stats_cache(1);
  rm_stats_cache(0);
  rm_stats_cache(0);
  RM_ASSERT_INT(rm_stats_method(&methods[1]), 1);
  RM_ASSERT_INT(rm_stats_method(NULL), -1);
  char *text = exposition();
  static const char *const lines[] = {
      "remotemedia_stream_sessions_total 2\n",
      "remotemedia_stream_sessions_active 1\n",
      "remotemedia_stream_chunks_total 1\n",
      "remotemedia_stream_chunk_duration_seconds_bucket{le=\"5e-05\"} 1\n",
      "remotemedia_stream_chunk_duration_seconds_bucket{le=\"1e-05\"} 0\n",
      "remotemedia_stream_chunk_duration_seconds_sum 0.000030000\n",
      "remotemedia_rejected_total{reason=\"memory\"} 1\n",
      "remotemedia_rejected_total{reason=\"concurrency\"} 0\n",
      "remotemedia_inflight_runs 1\n",
      "# TYPE remotemedia_worker_queue_jobs gauge\n",
      "remotemedia_worker_queue_jobs 3\n",
      "remotemedia_workers_busy 1\n",
      "remotemedia_workers 2\n",
      "remotemedia_pipeline_cache_hits_total 1\n",
      "remotemedia_pipeline_cache_misses_total 2\n",
      "# TYPE process_open_fds gauge\n",
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    if (!strstr(text, lines[i]))
      fprintf(stderr, "missing: %s", lines[i]);
    CU_ASSERT(strstr(text, lines[i]) != NULL);
  }
  free(text);
  cleanup();
}

static void test_counting_before_init_is_a_no_op(void) {
  rm_stats_node(NULL, "Gain", 1, 1);
  rm_stats_call_started(0);
  RM_ASSERT_INT(rm_stats_pipeline_label("x"), -1);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CU_ASSERT(rm_stats_write_exposition(f, NULL, NULL) != 0);
  fclose(f);
  free(buf);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_counting_before_init_is_a_no_op),
                                         RM_TEST(test_pipeline_labels_are_capped),
                                         RM_TEST(test_threads_are_summed_exactly),
                                         RM_TEST(test_streams_rejections_and_gauges),
                                         {NULL, NULL}};
  rm_test_suite("stats", cases);
  return rm_test_run();
}
