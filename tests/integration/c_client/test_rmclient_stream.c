/* test_rmclient_stream.c - librmclient's StreamPipeline API against a real server (started
 * by test_c_stream.py on an ephemeral port): streamed audio equals the unary result, one
 * result per chunk, flush (and its sequence's presence), close with metrics, pipelined
 * sends, receive timeouts, every error path, and cancelling by free.
 *
 * usage: test_rmclient_stream --server ADDR. Exit status 0 = all passed. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rmclient.h"

static const char *server_addr;
static rm_client_t *client;

static const char resample_manifest[] =
    "{\"name\": \"rs-stream\", \"nodes\": ["
    "{\"id\": \"rs\", \"node_type\": \"AudioResample\", \"params\": {\"rate\": 16000}}],"
    " \"connections\": []}";

#define RATE 48000
#define CHUNK 960 /* 20 ms */
#define N_CHUNKS 50
#define WAIT_MS 60000 /* a safety net for a hung server, never a timing assertion */

static float signal_[CHUNK * N_CHUNKS];

static void check_int(long long actual, long long expected, unsigned line, const char *expr) {
  if (actual != expected)
    fprintf(stderr, "line %u: %s is %lld, expected %lld\n", line, expr, actual, expected);
  CU_assertImplementation(actual == expected, line, expr, __FILE__, "", CU_FALSE);
}
#define CHECK_INT(a, e) check_int((long long)(a), (long long)(e), __LINE__, #a)

static int suite_init(void) {
  for (size_t i = 0; i < CHUNK * N_CHUNKS; i++)
    signal_[i] = (float)(0.5 * sin(2 * M_PI * 440.0 * (double)i / RATE));
  rm_client_options_t o = {0};
  o.target = server_addr;
  o.default_timeout_ms = 120000;
  rm_client_error_t err;
  return rm_client_new(&o, &client, &err) ? -1 : 0;
}

static int suite_cleanup(void) {
  rm_client_free(client);
  return 0;
}

static rm_client_buffer_t chunk_of(size_t i) {
  return rm_client_buffer_audio(&signal_[i * CHUNK], CHUNK * sizeof(float), RATE, 1, RM_CLIENT_F32);
}

static rm_client_stream_t *open_stream(const char *manifest, int metrics) {
  rm_client_stream_opts_t so = {.enable_metrics = metrics};
  rm_client_stream_t *s = NULL;
  rm_client_error_t err;
  int rc = rm_client_stream_open(client, manifest, &so, &s, &err);
  if (rc)
    fprintf(stderr, "open: %s: %s\n", rm_client_strerror(rc), err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  return s;
}

/* Appends the f32 samples of output "rs" in r to out (grown), *n samples so far. */
static void append_audio(const rm_client_stream_result_t *r, float **out, size_t *n) {
  const rm_client_output_t *o = rm_client_stream_result_find(r, "rs");
  for (size_t j = 0; o && j < o->n_items; j++) {
    CHECK_INT(o->items[j].kind, RM_CLIENT_AUDIO);
    CHECK_INT(o->items[j].sample_rate, 16000);
    size_t k = o->items[j].size / sizeof(float);
    *out = realloc(*out, (*n + k + 1) * sizeof(float));
    memcpy(*out + *n, o->items[j].data, k * sizeof(float));
    *n += k;
  }
}

static void test_stream_equals_unary(void) {
  rm_client_stream_t *s = open_stream(resample_manifest, 0);
  const Remotemedia__V1__StreamReady *ready = rm_client_stream_ready(s);
  CU_ASSERT_FATAL(ready != NULL);
  CU_ASSERT_STRING_EQUAL(ready->pipeline_name, "rs-stream");
  CU_ASSERT(strlen(ready->session_id) > 0);
  CHECK_INT(ready->n_sources, 1);
  CU_ASSERT_STRING_EQUAL(ready->sources[0]->node_id, "rs");
  CU_ASSERT_STRING_EQUAL(ready->sources[0]->node_type, "AudioResample");
  float *streamed = NULL;
  size_t n = 0;
  rm_client_error_t err;
  for (size_t i = 0; i < N_CHUNKS; i++) { /* one chunk in flight: its answer comes next */
    rm_client_buffer_t b = chunk_of(i);
    CHECK_INT(rm_client_stream_send(s, NULL, &b, i + 1, &err), 0);
    rm_client_stream_result_t *r = NULL;
    CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0);
    CU_ASSERT_FATAL(r != NULL);
    CHECK_INT(rm_client_stream_result_sequence(r), i + 1);
    CHECK_INT(rm_client_stream_result_flushed(r), 0);
    CU_ASSERT(rm_client_stream_result_processing_ns(r) > 0);
    append_audio(r, &streamed, &n);
    rm_client_stream_result_free(r);
  }
  CHECK_INT(rm_client_stream_close_send(s, &err), 0);
  rm_client_stream_result_t *last = NULL;
  CHECK_INT(rm_client_stream_recv(s, &last, WAIT_MS, &err), 0);
  CU_ASSERT_FATAL(last != NULL);
  CHECK_INT(rm_client_stream_result_flushed(last), 1);
  CHECK_INT(rm_client_stream_result_sequence(last), N_CHUNKS);
  append_audio(last, &streamed, &n);
  rm_client_stream_result_free(last);
  rm_client_stream_result_t *none = NULL;
  CHECK_INT(rm_client_stream_recv(s, &none, WAIT_MS, &err), RM_CLIENT_EEND);
  CU_ASSERT_PTR_NULL(none);
  CHECK_INT(rm_client_stream_recv(s, &none, WAIT_MS, &err), RM_CLIENT_EEND); /* stays ended */
  CU_ASSERT_PTR_NULL(rm_client_stream_metrics(s));                           /* not asked */
  rm_client_stream_free(s);

  rm_client_input_t in = {"rs",
                          rm_client_buffer_audio(signal_, sizeof signal_, RATE, 1, RM_CLIENT_F32)};
  rm_client_result_t *res = NULL;
  CU_ASSERT_EQUAL_FATAL(rm_client_execute(client, resample_manifest, &in, 1, NULL, &res, &err), 0);
  const rm_client_output_t *o = rm_client_result_find(res, "rs");
  size_t total = 0;
  for (size_t j = 0; j < o->n_items; j++)
    total += o->items[j].size / sizeof(float);
  CHECK_INT(n, total);
  CHECK_INT(n, CHUNK * N_CHUNKS / 3);
  double maxdiff = 0;
  size_t k = 0;
  for (size_t j = 0; j < o->n_items; j++) {
    const float *p = o->items[j].data;
    for (size_t m = 0; m < o->items[j].size / sizeof(float) && k < n; m++, k++)
      maxdiff = fmax(maxdiff, fabs((double)p[m] - (double)streamed[k]));
  }
  CU_ASSERT(maxdiff <= 1e-6);
  rm_client_result_free(res);
  free(streamed);
}

static void test_pipelined_close_with_metrics(void) {
  rm_client_stream_t *s = open_stream(resample_manifest, 1);
  rm_client_error_t err;
  size_t received = 0, flushed = 0;
  for (size_t i = 0; i < N_CHUNKS; i++) {
    rm_client_buffer_t b = chunk_of(i);
    CHECK_INT(rm_client_stream_send(s, "rs", &b, 10 * (i + 1), &err), 0); /* gaps allowed */
    if (i + 1 - received > 8) {                                           /* a window of 8 */
      rm_client_stream_result_t *r = NULL;
      CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0);
      CHECK_INT(rm_client_stream_result_sequence(r), 10 * (received + 1));
      received++;
      rm_client_stream_result_free(r);
    }
  }
  CHECK_INT(rm_client_stream_flush(s, &err), 0);
  for (;;) {
    rm_client_stream_result_t *r = NULL;
    int rc = rm_client_stream_recv(s, &r, WAIT_MS, &err);
    CHECK_INT(rc, 0);
    if (rc)
      break;
    int fl = rm_client_stream_result_flushed(r);
    CHECK_INT(rm_client_stream_result_sequence(r), fl ? 10 * N_CHUNKS : 10 * (received + 1));
    rm_client_stream_result_free(r);
    if (fl) {
      flushed++;
      break;
    }
    received++;
  }
  CHECK_INT(received, N_CHUNKS);
  CHECK_INT(flushed, 1);
  json_t *m = NULL;
  CHECK_INT(rm_client_stream_close(s, &m, &err), 0);
  CU_ASSERT_FATAL(m != NULL);
  /* every chunk, the flush and the close's flush: one execution each */
  CHECK_INT(json_integer_value(json_object_get(m, "total_executions")), N_CHUNKS + 2);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(m, "pipeline_id")), "rs-stream");
  json_t *nodes = json_object_get(m, "node_metrics");
  CHECK_INT(json_array_size(nodes), 1);
  CHECK_INT(json_integer_value(json_object_get(json_array_get(nodes, 0), "execution_count")),
            N_CHUNKS + 2);
  json_decref(m);
  CU_ASSERT(rm_client_stream_metrics(s) != NULL);
  rm_client_buffer_t b = chunk_of(0);
  CHECK_INT(rm_client_stream_send(s, NULL, &b, 9999, &err), RM_CLIENT_EEND); /* closed */
  rm_client_stream_free(s);
}

static void test_recv_timeout(void) {
  rm_client_stream_t *s = open_stream(resample_manifest, 0);
  rm_client_error_t err;
  rm_client_stream_result_t *r = NULL;
  CHECK_INT(rm_client_stream_recv(s, &r, 50, &err), RM_CLIENT_ETIMEDOUT); /* nothing sent */
  CU_ASSERT_PTR_NULL(r);
  CU_ASSERT_STRING_EQUAL(rm_client_strerror(RM_CLIENT_ETIMEDOUT), "timed_out");
  rm_client_buffer_t b = chunk_of(0);
  CHECK_INT(rm_client_stream_send(s, NULL, &b, 1, &err), 0);
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0); /* the same receive, completed */
  CHECK_INT(rm_client_stream_result_sequence(r), 1);
  rm_client_stream_result_free(r);
  json_t *m = (json_t *)1;
  CHECK_INT(rm_client_stream_close(s, &m, &err), 0);
  CU_ASSERT_PTR_NULL(m); /* metrics not asked for */
  rm_client_stream_free(s);
}

/* Regression: a flush after chunk 0 answered sequence 0, what a flush before any chunk
 * answers: rm_client_stream_result_has_sequence tells them apart. */
static void test_flush_sequence_presence(void) {
  rm_client_stream_t *s = open_stream(resample_manifest, 0);
  rm_client_error_t err;
  rm_client_stream_result_t *r = NULL;
  CHECK_INT(rm_client_stream_flush(s, &err), 0); /* no chunk yet */
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0);
  CHECK_INT(rm_client_stream_result_flushed(r), 1);
  CHECK_INT(rm_client_stream_result_has_sequence(r), 0);
  CHECK_INT(rm_client_stream_result_sequence(r), 0);
  rm_client_stream_result_free(r);
  rm_client_buffer_t b = chunk_of(0);
  CHECK_INT(rm_client_stream_send(s, NULL, &b, 0, &err), 0); /* sequences may start at 0 */
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0);
  CHECK_INT(rm_client_stream_result_flushed(r), 0);
  CHECK_INT(rm_client_stream_result_has_sequence(r), 1);
  CHECK_INT(rm_client_stream_result_sequence(r), 0);
  rm_client_stream_result_free(r);
  CHECK_INT(rm_client_stream_flush(s, &err), 0); /* after chunk 0 */
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0);
  CHECK_INT(rm_client_stream_result_flushed(r), 1);
  CHECK_INT(rm_client_stream_result_has_sequence(r), 1);
  CHECK_INT(rm_client_stream_result_sequence(r), 0);
  rm_client_stream_result_free(r);
  CHECK_INT(rm_client_stream_result_has_sequence(NULL), 0);
  CHECK_INT(rm_client_stream_close(s, NULL, &err), 0);
  rm_client_stream_free(s);
}

static void test_error_repeated_sequence(void) {
  rm_client_stream_t *s = open_stream(resample_manifest, 0);
  rm_client_error_t err;
  rm_client_buffer_t b = chunk_of(0);
  CHECK_INT(rm_client_stream_send(s, NULL, &b, 5, &err), 0);
  CHECK_INT(rm_client_stream_send(s, NULL, &b, 5, &err), 0); /* sending does not wait */
  rm_client_stream_result_t *r = NULL;
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0);
  rm_client_stream_result_free(r);
  r = NULL;
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), RM_CLIENT_ESTATUS);
  CU_ASSERT_PTR_NULL(r);
  CHECK_INT(err.status, 3); /* INVALID_ARGUMENT */
  CU_ASSERT_STRING_EQUAL(err.field, "sequence");
  CU_ASSERT(strstr(err.message, "sequence 5") != NULL);
  memset(&err, 0, sizeof err);
  CHECK_INT(rm_client_stream_send(s, NULL, &b, 6, &err), RM_CLIENT_ESTATUS); /* stays ended */
  CHECK_INT(err.status, 3);
  CHECK_INT(rm_client_stream_close(s, NULL, &err), RM_CLIENT_ESTATUS);
  rm_client_stream_free(s);
}

static void test_error_unknown_source(void) {
  rm_client_stream_t *s = open_stream(resample_manifest, 0);
  rm_client_error_t err;
  rm_client_buffer_t b = chunk_of(0);
  CHECK_INT(rm_client_stream_send(s, "nope", &b, 1, &err), 0);
  rm_client_stream_result_t *r = NULL;
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 3);
  CU_ASSERT(strstr(err.message, "nope") != NULL);
  rm_client_stream_free(s);
}

static void test_error_at_open(void) {
  static const char bad_param[] =
      "{\"name\": \"bad\", \"nodes\": ["
      "{\"id\": \"rs\", \"node_type\": \"AudioResample\", \"params\": {\"rate\": -5}}]}";
  rm_client_stream_t *s = (rm_client_stream_t *)1;
  rm_client_error_t err;
  CHECK_INT(rm_client_stream_open(client, bad_param, NULL, &s, &err), RM_CLIENT_ESTATUS);
  CU_ASSERT(s == (rm_client_stream_t *)1); /* untouched */
  CHECK_INT(err.status, 3);
  CU_ASSERT_STRING_EQUAL(err.node_id, "rs");
  CU_ASSERT_STRING_EQUAL(err.field, "rate");
  static const char unknown_type[] =
      "{\"name\": \"bad\", \"nodes\": [{\"id\": \"x\", \"node_type\": \"NoSuchNode\"}]}";
  CHECK_INT(rm_client_stream_open(client, unknown_type, NULL, &s, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 5); /* NOT_FOUND */
  CU_ASSERT_STRING_EQUAL(err.node_id, "x");
}

static void test_local_errors(void) {
  rm_client_stream_t *s = NULL;
  rm_client_error_t err;
  CHECK_INT(rm_client_stream_open(NULL, resample_manifest, NULL, &s, &err), RM_CLIENT_EINVAL);
  CHECK_INT(rm_client_stream_open(client, NULL, NULL, &s, &err), RM_CLIENT_EINVAL);
  CHECK_INT(rm_client_stream_open(client, "{\"nodes\": 3}", NULL, &s, &err), RM_CLIENT_EMANIFEST);
  rm_client_stream_opts_t so = {.n_output_nodes = 1};
  CHECK_INT(rm_client_stream_open(client, resample_manifest, &so, &s, &err), RM_CLIENT_EINVAL);
  s = open_stream(resample_manifest, 0);
  rm_client_buffer_t bad = {.kind = 42};
  CHECK_INT(rm_client_stream_send(s, NULL, &bad, 1, &err), RM_CLIENT_EINVAL);
  CHECK_INT(rm_client_stream_send(s, NULL, NULL, 1, &err), RM_CLIENT_EINVAL);
  CHECK_INT(rm_client_stream_recv(s, NULL, 0, &err), RM_CLIENT_EINVAL);
  CU_ASSERT_PTR_NULL(rm_client_stream_metrics_json(s));
  CU_ASSERT_PTR_NULL(rm_client_stream_ready(NULL));
  CHECK_INT(rm_client_stream_result_count(NULL), 0);
  rm_client_stream_result_free(NULL);
  rm_client_stream_free(s); /* open, nothing sent: cancelled */
  rm_client_stream_free(NULL);
}

static void test_free_cancels_midstream(void) {
  rm_client_stream_t *s = open_stream(resample_manifest, 1);
  rm_client_error_t err;
  for (size_t i = 0; i < 4; i++) {
    rm_client_buffer_t b = chunk_of(i);
    CHECK_INT(rm_client_stream_send(s, NULL, &b, i + 1, &err), 0);
  }
  rm_client_stream_result_t *r = NULL;
  CHECK_INT(rm_client_stream_recv(s, &r, WAIT_MS, &err), 0);
  rm_client_stream_result_free(r);
  rm_client_stream_free(s); /* results unread, a receive may be pending: all released */
  /* the client is still usable */
  s = open_stream(resample_manifest, 0);
  CHECK_INT(rm_client_stream_close(s, NULL, &err), 0);
  rm_client_stream_free(s);
}

int main(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "--server")) {
    fprintf(stderr, "usage: test_rmclient_stream --server ADDR\n");
    return 2;
  }
  server_addr = argv[2];
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  CU_pSuite s = CU_add_suite("stream", suite_init, suite_cleanup);
  static const struct {
    const char *name;
    CU_TestFunc fn;
  } tests[] = {
      {"stream_equals_unary", test_stream_equals_unary},
      {"pipelined_close_with_metrics", test_pipelined_close_with_metrics},
      {"recv_timeout", test_recv_timeout},
      {"flush_sequence_presence", test_flush_sequence_presence},
      {"error_repeated_sequence", test_error_repeated_sequence},
      {"error_unknown_source", test_error_unknown_source},
      {"error_at_open", test_error_at_open},
      {"local_errors", test_local_errors},
      {"free_cancels_midstream", test_free_cancels_midstream},
  };
  for (size_t i = 0; s && i < sizeof tests / sizeof tests[0]; i++)
    if (!CU_add_test(s, tests[i].name, tests[i].fn))
      s = NULL;
  if (!s) {
    CU_cleanup_registry();
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
  unsigned ran = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  return failed || ran != sizeof tests / sizeof tests[0] ? 1 : 0;
}
