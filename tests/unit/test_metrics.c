/* test_metrics.c - per-node counts, durations, peak memory, overhead and both exports. */
#include <string.h>

#include "rm/metrics.h"
#include "rm/wire.h"
#include "test_support.h"

static const char *calc_chain =
    "{'name': 'calc', 'nodes': [{'id': 'calc', 'node_type': 'Calculator'},"
    " {'id': 'after', 'node_type': 'PassThrough'}],"
    " 'connections': [{'from': 'calc', 'to': 'after'}]}";

static int run_json(rm_pipeline_t *p, const char *node, const char *json, int metrics) {
  rm_buffer_t *in = rm_test_json(json);
  rm_result_t *r = NULL;
  rm_error_t err;
  int rc = rm_test_run1(p, node, in, metrics, &r, &err);
  rm_result_free(r);
  rm_buffer_unref(in);
  return rc;
}

/* Four runs, the third divides by zero. */
static rm_pipeline_t *calc_with_one_failure(void) {
  rm_pipeline_t *p = rm_test_pipeline(calc_chain);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'add', 'operands': [1, 2]}", 1), 0);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'mean', 'operands': [1, 2]}", 1), 0);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'divide', 'operands': [1, 0]}", 1), RM_ENODE);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'max', 'operands': [1, 2]}", 1), 0);
  return p;
}

static void test_counts_after_a_failing_node(void) {
  rm_pipeline_t *p = calc_with_one_failure();
  rm_metrics_t *m = rm_pipeline_metrics(p);
  RM_ASSERT_STR(m->pipeline_id, "calc");
  RM_ASSERT_INT(m->total_executions, 4);
  RM_ASSERT_INT(m->n_nodes, 2);
  RM_ASSERT_STR(m->nodes[0].node_id, "calc");
  RM_ASSERT_INT(m->nodes[0].execution_count, 4);
  RM_ASSERT_INT(m->nodes[0].success_count, 3);
  RM_ASSERT_INT(m->nodes[0].error_count, 1);
  RM_ASSERT_STR(m->nodes[1].node_id, "after");
  RM_ASSERT_INT(m->nodes[1].execution_count, 3); /* skipped when calc failed */
  RM_ASSERT_INT(m->nodes[1].success_count, 3);
  RM_ASSERT_INT(m->nodes[1].error_count, 0);

  json_t *j = rm_metrics_to_json(m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  RM_ASSERT_INT(json_integer_value(json_object_get(j, "total_executions")), 4);
  json_t *nodes = json_object_get(j, "node_metrics");
  RM_ASSERT_INT(json_array_size(nodes), 2);
  json_t *calc = json_array_get(nodes, 0), *after = json_array_get(nodes, 1);
  RM_ASSERT_STR(json_string_value(json_object_get(calc, "node_id")), "calc");
  RM_ASSERT_INT(json_integer_value(json_object_get(calc, "execution_count")), 4);
  RM_ASSERT_INT(json_integer_value(json_object_get(calc, "success_count")), 3);
  RM_ASSERT_INT(json_integer_value(json_object_get(calc, "error_count")), 1);
  RM_ASSERT_NEAR(json_real_value(json_object_get(calc, "success_rate")), 0.75, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(after, "success_rate")), 1.0, 0);
  json_decref(j);
  rm_pipeline_free(p);
}

/* The seed's keys, no more, no fewer. */
static void expect_keys(const json_t *obj, const char *const *keys, size_t n) {
  CU_ASSERT_FATAL(json_is_object(obj));
  RM_ASSERT_INT(json_object_size(obj), n);
  for (size_t i = 0; i < n; i++) {
    int present = json_object_get(obj, keys[i]) != NULL;
    if (!present)
      fprintf(stderr, "missing key %s\n", keys[i]);
    CU_ASSERT(present);
  }
}

static const char *const top_keys[] = {
    "pipeline_id",       "total_executions", "total_duration_us",   "total_duration_ms",
    "peak_memory_bytes", "peak_memory_mb",   "metrics_overhead_us", "node_metrics"};
static const char *const node_keys[] = {"node_id",         "execution_count", "success_count",
                                        "error_count",     "success_rate",    "total_duration_us",
                                        "avg_duration_us", "min_duration_us", "max_duration_us"};
#define N_TOP (sizeof top_keys / sizeof top_keys[0])
#define N_NODE (sizeof node_keys / sizeof node_keys[0])

static void expect_seed_shape(const json_t *j) {
  expect_keys(j, top_keys, N_TOP);
  CU_ASSERT(json_is_string(json_object_get(j, "pipeline_id")));
  CU_ASSERT(json_is_integer(json_object_get(j, "total_executions")));
  CU_ASSERT(json_is_integer(json_object_get(j, "peak_memory_bytes")));
  CU_ASSERT(json_is_real(json_object_get(j, "total_duration_us")));
  CU_ASSERT(json_is_real(json_object_get(j, "metrics_overhead_us")));
  json_t *nodes = json_object_get(j, "node_metrics");
  CU_ASSERT_FATAL(json_is_array(nodes));
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    expect_keys(n, node_keys, N_NODE);
    CU_ASSERT(json_is_integer(json_object_get(n, "execution_count")));
    CU_ASSERT(json_is_real(json_object_get(n, "avg_duration_us")));
  }
}

static void test_json_keys_are_the_seeds(void) {
  rm_pipeline_t *p = calc_with_one_failure();
  json_t *j = rm_metrics_to_json(rm_pipeline_metrics(p));
  expect_seed_shape(j);
  RM_ASSERT_INT(json_array_size(json_object_get(j, "node_metrics")), 2);
  /* and the same keys when built from the wire message (what clients print) */
  Remotemedia__V1__PipelineMetrics msg = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  RM_ASSERT_INT(rm_wire_metrics_to_proto(rm_pipeline_metrics(p), &msg), 0);
  json_t *k = rm_wire_metrics_to_json(&msg);
  expect_seed_shape(k);
  rm_wire_metrics_proto_clear(&msg);
  CU_ASSERT_PTR_NULL(msg.node_metrics);
  RM_ASSERT_INT(msg.n_node_metrics, 0);
  json_decref(k);
  json_decref(j);
  rm_pipeline_free(p);
}

static void test_durations_ordered_and_nonzero(void) {
  rm_pipeline_t *p = rm_test_pipeline("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                                      " {'id': 'b', 'node_type': 'PassThrough'}],"
                                      " 'connections': [{'from': 'a', 'to': 'b'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int i = 0; i < 20; i++)
    RM_ASSERT_INT(run_json(p, "a", "{}", 1), 0);
  rm_metrics_t *m = rm_pipeline_metrics(p);
  uint64_t sum = 0;
  for (size_t i = 0; i < m->n_nodes; i++) {
    const rm_node_metrics_t *n = &m->nodes[i];
    RM_ASSERT_INT(n->execution_count, 20);
    /* a pass-through takes tens of nanoseconds: at ns resolution that is not 0 */
    CU_ASSERT(n->min_ns > 0);
    CU_ASSERT(n->min_ns <= n->max_ns);
    CU_ASSERT(n->min_ns * 20 <= n->total_ns);
    CU_ASSERT(n->total_ns <= n->max_ns * 20);
    sum += n->total_ns;
  }
  CU_ASSERT(sum <= m->total_ns); /* nodes run inside the requests */

  json_t *j = rm_metrics_to_json(m);
  json_t *nodes = json_object_get(j, "node_metrics");
  for (size_t i = 0; i < 2; i++) {
    json_t *n = json_array_get(nodes, i);
    double mn = json_real_value(json_object_get(n, "min_duration_us"));
    double avg = json_real_value(json_object_get(n, "avg_duration_us"));
    double mx = json_real_value(json_object_get(n, "max_duration_us"));
    double total = json_real_value(json_object_get(n, "total_duration_us"));
    CU_ASSERT(avg > 0);
    CU_ASSERT(mn > 0);
    CU_ASSERT(mn <= avg);
    CU_ASSERT(avg <= mx);
    RM_ASSERT_NEAR(total, (double)m->nodes[i].total_ns / 1000.0, 0);
    RM_ASSERT_NEAR(avg, total / 20.0, 1e-9);
    RM_ASSERT_NEAR(mn, (double)m->nodes[i].min_ns / 1000.0, 0);
  }
  double tus = json_real_value(json_object_get(j, "total_duration_us"));
  RM_ASSERT_NEAR(tus, (double)m->total_ns / 1000.0, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(j, "total_duration_ms")), tus / 1000.0, 1e-12);
  json_decref(j);
  rm_pipeline_free(p);
}

/* Nodes never run report zeros, not UINT64_MAX. */
static void test_unexecuted_nodes_export_zero(void) {
  rm_pipeline_t *p = rm_test_pipeline(calc_chain);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'divide', 'operands': [1, 0]}", 1), RM_ENODE);
  json_t *j = rm_metrics_to_json(rm_pipeline_metrics(p));
  json_t *after = json_array_get(json_object_get(j, "node_metrics"), 1);
  RM_ASSERT_STR(json_string_value(json_object_get(after, "node_id")), "after");
  RM_ASSERT_INT(json_integer_value(json_object_get(after, "execution_count")), 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(after, "success_rate")), 0, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(after, "min_duration_us")), 0, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(after, "avg_duration_us")), 0, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(after, "max_duration_us")), 0, 0);
  json_t *calc = json_array_get(json_object_get(j, "node_metrics"), 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(calc, "success_rate")), 0, 0);
  RM_ASSERT_INT(json_integer_value(json_object_get(calc, "error_count")), 1);
  json_decref(j);
  rm_pipeline_free(p);
}

/* What m takes packed as the metrics field of a response. */
static size_t packed_as_field(Remotemedia__V1__PipelineMetrics *m) {
  Remotemedia__V1__ExecuteResponse resp = REMOTEMEDIA__V1__EXECUTE_RESPONSE__INIT;
  resp.metrics = m;
  return remotemedia__v1__execute_response__get_packed_size(&resp);
}

/* The server sizes its packing buffer by the bound: it must hold every value the fields can
 * take. At their longest, each node's eight scalars are counted at 11 bytes (a double takes
 * 9) and the length-delimited fields' framing at 6, so a node's slack is at most 5*2 + 2*5;
 * shorter values (zero takes nothing) only widen the slack. */
static void test_proto_field_bound_holds_any_value(void) {
  rm_pipeline_t *p = calc_with_one_failure();
  Remotemedia__V1__PipelineMetrics msg = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  RM_ASSERT_INT(rm_wire_metrics_to_proto(rm_pipeline_metrics(p), &msg), 0);
  size_t exact = packed_as_field(&msg), bound = rm_wire_metrics_field_bound(&msg);
  CU_ASSERT(bound >= exact);
  rm_wire_metrics_proto_clear(&msg);
  rm_pipeline_free(p);

  /* every field at its longest: 300 nodes (a 3-byte length), 200-byte ids */
  enum { N = 300 };
  static char id[201];
  memset(id, 'x', 200);
  static Remotemedia__V1__NodeMetrics nodes[N];
  static Remotemedia__V1__NodeMetrics *ptrs[N];
  for (size_t i = 0; i < N; i++) {
    remotemedia__v1__node_metrics__init(&nodes[i]);
    nodes[i].node_id = id;
    nodes[i].execution_count = nodes[i].success_count = nodes[i].error_count = UINT64_MAX;
    nodes[i].success_rate = nodes[i].total_duration_us = nodes[i].avg_duration_us = -1e300;
    nodes[i].min_duration_us = nodes[i].max_duration_us = 1e-300;
    ptrs[i] = &nodes[i];
  }
  Remotemedia__V1__PipelineMetrics big = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  big.pipeline_id = id;
  big.total_executions = big.peak_memory_bytes = UINT64_MAX;
  big.total_duration_us = big.total_duration_ms = big.peak_memory_mb = big.metrics_overhead_us =
      -1e300;
  big.node_metrics = ptrs;
  big.n_node_metrics = N;
  exact = packed_as_field(&big);
  bound = rm_wire_metrics_field_bound(&big);
  CU_ASSERT(bound >= exact && bound <= exact + 20 * (N + 1));

  /* and at its shortest: nothing set */
  Remotemedia__V1__PipelineMetrics empty = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  exact = packed_as_field(&empty);
  bound = rm_wire_metrics_field_bound(&empty);
  CU_ASSERT(bound >= exact);
}

static void test_proto_carries_the_same_numbers(void) {
  rm_pipeline_t *p = calc_with_one_failure();
  rm_metrics_t *m = rm_pipeline_metrics(p);
  Remotemedia__V1__PipelineMetrics msg = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  RM_ASSERT_INT(rm_wire_metrics_to_proto(m, &msg), 0);
  json_t *j = rm_metrics_to_json(m);
  RM_ASSERT_STR(msg.pipeline_id, "calc");
  RM_ASSERT_INT(msg.total_executions, 4);
  RM_ASSERT_NEAR(msg.total_duration_us, json_real_value(json_object_get(j, "total_duration_us")),
                 0);
  RM_ASSERT_NEAR(msg.total_duration_ms, json_real_value(json_object_get(j, "total_duration_ms")),
                 0);
  RM_ASSERT_INT(msg.peak_memory_bytes, json_integer_value(json_object_get(j, "peak_memory_bytes")));
  RM_ASSERT_NEAR(msg.peak_memory_mb, json_real_value(json_object_get(j, "peak_memory_mb")), 0);
  /* each export adds its own cost, so the JSON one, made later, reports more */
  CU_ASSERT(msg.metrics_overhead_us > 0);
  CU_ASSERT(json_real_value(json_object_get(j, "metrics_overhead_us")) > msg.metrics_overhead_us);
  RM_ASSERT_INT(msg.n_node_metrics, 2);
  json_t *nodes = json_object_get(j, "node_metrics");
  for (size_t i = 0; i < 2; i++) {
    const Remotemedia__V1__NodeMetrics *n = msg.node_metrics[i];
    json_t *o = json_array_get(nodes, i);
    RM_ASSERT_STR(n->node_id, json_string_value(json_object_get(o, "node_id")));
    RM_ASSERT_INT(n->execution_count, json_integer_value(json_object_get(o, "execution_count")));
    RM_ASSERT_INT(n->success_count, json_integer_value(json_object_get(o, "success_count")));
    RM_ASSERT_INT(n->error_count, json_integer_value(json_object_get(o, "error_count")));
    RM_ASSERT_NEAR(n->success_rate, json_real_value(json_object_get(o, "success_rate")), 0);
    RM_ASSERT_NEAR(n->total_duration_us, json_real_value(json_object_get(o, "total_duration_us")),
                   0);
    RM_ASSERT_NEAR(n->avg_duration_us, json_real_value(json_object_get(o, "avg_duration_us")), 0);
    RM_ASSERT_NEAR(n->min_duration_us, json_real_value(json_object_get(o, "min_duration_us")), 0);
    RM_ASSERT_NEAR(n->max_duration_us, json_real_value(json_object_get(o, "max_duration_us")), 0);
  }
  RM_ASSERT_INT(msg.node_metrics[0]->execution_count, 4);
  RM_ASSERT_NEAR(msg.node_metrics[0]->success_rate, 0.75, 0);

  /* it survives the wire */
  size_t len = remotemedia__v1__pipeline_metrics__get_packed_size(&msg);
  uint8_t *wire = rm_malloc(len);
  remotemedia__v1__pipeline_metrics__pack(&msg, wire);
  Remotemedia__V1__PipelineMetrics *back =
      remotemedia__v1__pipeline_metrics__unpack(NULL, len, wire);
  CU_ASSERT_PTR_NOT_NULL_FATAL(back);
  RM_ASSERT_INT(back->node_metrics[0]->error_count, 1);
  RM_ASSERT_NEAR(back->node_metrics[1]->min_duration_us, msg.node_metrics[1]->min_duration_us, 0);
  remotemedia__v1__pipeline_metrics__free_unpacked(back, NULL);
  rm_free(wire);
  rm_wire_metrics_proto_clear(&msg);
  json_decref(j);
  rm_pipeline_free(p);
}

/* Peak memory of a constructed case, from the documented semantics: request inputs count
 * while the run holds them, buffers a node creates count from creation until their last
 * reference goes (consumers done, or the result released). */
static void test_peak_memory_of_a_known_case(void) {
  rm_pipeline_t *p =
      rm_test_pipeline("{'nodes': [{'id': 'src', 'node_type': 'PassThrough'},"
                       " {'id': 'g', 'node_type': 'Gain', 'params': {'db': -3}},"
                       " {'id': 'fmt', 'node_type': 'AudioFormat', 'params': {'format': 'i16'}}],"
                       " 'connections': [{'from': 'src', 'to': 'g'}, {'from': 'g', 'to': 'fmt'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  static float s[1000];
  rm_buffer_t *in = rm_test_audio_f32(s, 1000, 48000, 1);
  rm_result_t *r1 = NULL, *r2 = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "src", in, 1, &r1, &err), 0);
  /* input f32 1000 samples                       4000 held
   * src passes the same buffer on (no new bytes)  4000
   * g creates f32 1000 samples: +4000             8000
   * fmt creates i16 1000 samples: +2000          10000  <- peak (g's output still held)
   * fmt done: g's output released: -4000          6000
   * run ends: input no longer held: -4000         2000  (fmt's output, in the result) */
  rm_metrics_t *m = rm_pipeline_metrics(p);
  RM_ASSERT_INT(m->peak_memory_bytes, 10000);
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 2000);
  json_t *j = rm_metrics_to_json(m);
  RM_ASSERT_INT(json_integer_value(json_object_get(j, "peak_memory_bytes")), 10000);
  RM_ASSERT_NEAR(json_real_value(json_object_get(j, "peak_memory_mb")), 10000.0 / 1048576.0, 0);
  json_decref(j);

  /* a second run while the first result is still held starts from its 2000 bytes:
   * 2000 + 10000 = 12000 */
  RM_ASSERT_INT(rm_test_run1(p, "src", in, 1, &r2, &err), 0);
  RM_ASSERT_INT(m->peak_memory_bytes, 12000);
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 4000);
  rm_result_free(r1);
  rm_result_free(r2);
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 0);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* One buffer given to two nodes is held once. */
static void test_peak_counts_a_shared_input_once(void) {
  rm_pipeline_t *p = rm_test_pipeline("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                                      " {'id': 'b', 'node_type': 'PassThrough'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  static float s[250];
  rm_buffer_t *in = rm_test_audio_f32(s, 250, 8000, 1);
  rm_input_t inputs[2] = {{"a", in}, {"b", in}};
  rm_run_opts_t opts = {.metrics = 1, .end_of_stream = 1};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_run(p, inputs, 2, &opts, &r, &err), 0);
  RM_ASSERT_INT(rm_pipeline_metrics(p)->peak_memory_bytes, 1000); /* not 2000 */
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 0);
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* A big run made without metrics does not leak into the peak the metrics report. */
static void test_peak_covers_only_metered_runs(void) {
  rm_pipeline_t *p = rm_test_pipeline("{'nodes': [{'id': 'g', 'node_type': 'Gain'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  static float big[4096], small[10];
  rm_buffer_t *b = rm_test_audio_f32(big, 4096, 8000, 1);
  rm_buffer_t *sm = rm_test_audio_f32(small, 10, 8000, 1);
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "g", b, 0, &r, &err), 0);
  rm_result_free(r);
  RM_ASSERT_INT(rm_pipeline_account(p)->peak, 2 * 16384); /* input + output */
  RM_ASSERT_INT(rm_test_run1(p, "g", sm, 1, &r, &err), 0);
  rm_result_free(r);
  RM_ASSERT_INT(rm_pipeline_metrics(p)->peak_memory_bytes, 2 * 40);
  RM_ASSERT_INT(rm_pipeline_account(p)->peak, 2 * 16384); /* the account keeps its all-time peak */
  rm_buffer_unref(b);
  rm_buffer_unref(sm);
  rm_pipeline_free(p);
}

static void test_metrics_off_leaves_metrics_untouched(void) {
  rm_pipeline_t *p = rm_test_pipeline(calc_chain);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_metrics_t *m = rm_pipeline_metrics(p);
  /* fresh: nothing recorded */
  RM_ASSERT_INT(m->total_executions, 0);
  RM_ASSERT_INT(m->total_ns, 0);
  RM_ASSERT_INT(m->overhead_ns, 0);
  RM_ASSERT_INT(m->peak_memory_bytes, 0);
  RM_ASSERT_INT(m->nodes[0].execution_count, 0);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'add', 'operands': [1]}", 0), 0);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'divide', 'operands': [1, 0]}", 0), RM_ENODE);
  RM_ASSERT_INT(m->total_executions, 0);
  RM_ASSERT_INT(m->total_ns, 0);
  RM_ASSERT_INT(m->overhead_ns, 0);
  RM_ASSERT_INT(m->peak_memory_bytes, 0);
  for (size_t i = 0; i < 2; i++) {
    RM_ASSERT_INT(m->nodes[i].execution_count, 0);
    RM_ASSERT_INT(m->nodes[i].total_ns, 0);
    RM_ASSERT_INT(m->nodes[i].min_ns, UINT64_MAX);
    RM_ASSERT_INT(m->nodes[i].max_ns, 0);
  }
  /* and after a metered run, unmetered ones change nothing either */
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'add', 'operands': [1]}", 1), 0);
  rm_metrics_t snap = *m;
  rm_node_metrics_t nodes[2];
  memcpy(nodes, m->nodes, sizeof nodes);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'add', 'operands': [1, 2, 3]}", 0), 0);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'divide', 'operands': [1, 0]}", 0), RM_ENODE);
  CU_ASSERT_EQUAL(memcmp(&snap, m, sizeof snap), 0);
  CU_ASSERT_EQUAL(memcmp(nodes, m->nodes, sizeof nodes), 0);
  rm_pipeline_free(p);
}

/* The overhead is what the code charged itself: one calibrated invocation cost per timed
 * node invocation plus one for the run's own reads, then each export's measured time. */
static void test_overhead_accounting(void) {
  rm_pipeline_t *p = rm_test_pipeline(calc_chain);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  uint64_t cost = rm_metrics_invocation_cost_ns();
  CU_ASSERT(cost > 0);
  rm_metrics_t *m = rm_pipeline_metrics(p);
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'add', 'operands': [1]}", 1), 0);
  RM_ASSERT_INT(m->overhead_ns, 3 * cost); /* calc, after, the run */
  RM_ASSERT_INT(run_json(p, "calc", "{'operation': 'divide', 'operands': [1, 0]}", 1), RM_ENODE);
  RM_ASSERT_INT(m->overhead_ns, 5 * cost); /* calc (failed), the run */
  uint64_t before = m->overhead_ns;
  json_t *j = rm_metrics_to_json(m);
  CU_ASSERT(m->overhead_ns > before);
  RM_ASSERT_NEAR(json_real_value(json_object_get(j, "metrics_overhead_us")),
                 (double)m->overhead_ns / 1000.0, 0);
  json_decref(j);
  rm_pipeline_free(p);
}

/* The direct text export is the tree export, value for value and key for key, in order. */
static void expect_same_document(const json_t *a, const json_t *b, const char *where) {
  CU_ASSERT_EQUAL_FATAL(json_typeof(a), json_typeof(b));
  if (json_is_object(a)) {
    RM_ASSERT_INT(json_object_size(a), json_object_size(b));
    void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
    for (; ia && ib;
         ia = json_object_iter_next((json_t *)a, ia), ib = json_object_iter_next((json_t *)b, ib)) {
      RM_ASSERT_STR(json_object_iter_key(ia), json_object_iter_key(ib));
      if (strcmp(json_object_iter_key(ia), "metrics_overhead_us") != 0) /* grows per export */
        expect_same_document(json_object_iter_value(ia), json_object_iter_value(ib),
                             json_object_iter_key(ia));
    }
  } else if (json_is_array(a)) {
    RM_ASSERT_INT(json_array_size(a), json_array_size(b));
    for (size_t i = 0; i < json_array_size(a) && i < json_array_size(b); i++)
      expect_same_document(json_array_get(a, i), json_array_get(b, i), where);
  } else if (json_is_real(a)) {
    RM_ASSERT_NEAR(json_real_value(a), json_real_value(b), 0); /* the very same double */
  } else if (json_is_integer(a)) {
    RM_ASSERT_INT(json_integer_value(a), json_integer_value(b));
  } else if (json_is_string(a)) {
    RM_ASSERT_STR(json_string_value(a), json_string_value(b));
  }
  if (json_typeof(a) != json_typeof(b))
    fprintf(stderr, "type differs at %s\n", where);
}

static void expect_text_matches_tree(rm_metrics_t *m) {
  size_t len = 0;
  char *text = rm_metrics_to_json_text(m, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  RM_ASSERT_INT(len, strlen(text));
  /* compact, like JSON_COMPACT */
  CU_ASSERT_PTR_NULL(strstr(text, "\": "));
  CU_ASSERT_PTR_NULL(strstr(text, ", \""));
  json_error_t je;
  json_t *parsed = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (!parsed)
    fprintf(stderr, "not JSON: %s\n%s\n", je.text, text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(parsed);
  expect_seed_shape(parsed);
  json_t *tree = rm_metrics_to_json(m);
  expect_same_document(parsed, tree, "root");
  /* and its overhead includes its own making: it was charged before this tree export */
  CU_ASSERT(json_real_value(json_object_get(parsed, "metrics_overhead_us")) > 0);
  json_decref(tree);
  json_decref(parsed);
  rm_free(text);
}

static void test_text_export_is_the_same_document(void) {
  rm_pipeline_t *p = calc_with_one_failure(); /* counts, a failure, real durations */
  expect_text_matches_tree(rm_pipeline_metrics(p));
  rm_pipeline_free(p);
  /* by hand: escapes, a never-run node, round and awkward numbers */
  rm_metrics_t m;
  const char *ids[] = {"x", "y"};
  RM_ASSERT_INT(rm_metrics_init(&m, "quote\" back\\ tab\t caf\xc3\xa9", ids, 2), 0);
  rm_metrics_record(&m, 0, 1000, 1);
  rm_metrics_record(&m, 0, 2, 0);
  rm_metrics_record(&m, 0, 123456789012ull, 1);
  m.total_ns = 1234567;
  m.total_executions = 3;
  m.peak_memory_bytes = 3 * 1048576 + 1;
  expect_text_matches_tree(&m);
  char *text = rm_metrics_to_json_text(&m, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "{\"pipeline_id\":\"quote\\\" back\\\\ tab\\u0009 caf\xc3\xa9\","));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, ",\"total_duration_us\":1234.567,\"total_duration_ms\":1.234567,"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "\"min_duration_us\":0.002,\"max_duration_us\":123456789.012}"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "{\"node_id\":\"y\",\"execution_count\":0,\"success_count\":0,"
                   "\"error_count\":0,\"success_rate\":0.0,\"total_duration_us\":0.000,"
                   "\"avg_duration_us\":0.0,\"min_duration_us\":0.000,"
                   "\"max_duration_us\":0.000}]}"));
  rm_free(text);
  rm_metrics_destroy(&m);
}

static void test_init_destroy(void) {
  rm_metrics_t m;
  const char *ids[] = {"x", "y"};
  RM_ASSERT_INT(rm_metrics_init(&m, "pipe", ids, 2), 0);
  RM_ASSERT_INT(m.n_nodes, 2);
  rm_metrics_record(&m, 1, 500, 1);
  rm_metrics_record(&m, 1, 1500, 0);
  RM_ASSERT_INT(m.nodes[1].execution_count, 2);
  RM_ASSERT_INT(m.nodes[1].min_ns, 500);
  RM_ASSERT_INT(m.nodes[1].max_ns, 1500);
  RM_ASSERT_INT(m.nodes[1].total_ns, 2000);
  json_t *j = rm_metrics_to_json(&m);
  json_t *y = json_array_get(json_object_get(j, "node_metrics"), 1);
  RM_ASSERT_NEAR(json_real_value(json_object_get(y, "avg_duration_us")), 1.0, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(y, "min_duration_us")), 0.5, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(y, "max_duration_us")), 1.5, 0);
  RM_ASSERT_NEAR(json_real_value(json_object_get(y, "success_rate")), 0.5, 0);
  json_decref(j);
  rm_metrics_destroy(&m);
  RM_ASSERT_INT(m.n_nodes, 0);
  rm_metrics_destroy(NULL);
  /* no nodes at all */
  RM_ASSERT_INT(rm_metrics_init(&m, NULL, NULL, 0), 0);
  j = rm_metrics_to_json(&m);
  RM_ASSERT_STR(json_string_value(json_object_get(j, "pipeline_id")), "");
  RM_ASSERT_INT(json_array_size(json_object_get(j, "node_metrics")), 0);
  json_decref(j);
  Remotemedia__V1__PipelineMetrics msg = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  RM_ASSERT_INT(rm_wire_metrics_to_proto(&m, &msg), 0);
  RM_ASSERT_INT(msg.n_node_metrics, 0);
  rm_wire_metrics_proto_clear(&msg);
  rm_metrics_destroy(&m);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_counts_after_a_failing_node),
                                         RM_TEST(test_json_keys_are_the_seeds),
                                         RM_TEST(test_durations_ordered_and_nonzero),
                                         RM_TEST(test_unexecuted_nodes_export_zero),
                                         RM_TEST(test_proto_carries_the_same_numbers),
                                         RM_TEST(test_proto_field_bound_holds_any_value),
                                         RM_TEST(test_peak_memory_of_a_known_case),
                                         RM_TEST(test_peak_counts_a_shared_input_once),
                                         RM_TEST(test_peak_covers_only_metered_runs),
                                         RM_TEST(test_metrics_off_leaves_metrics_untouched),
                                         RM_TEST(test_overhead_accounting),
                                         RM_TEST(test_text_export_is_the_same_document),
                                         RM_TEST(test_init_destroy),
                                         {NULL, NULL}};
  rm_test_suite("metrics", cases);
  return rm_test_run();
}
