/* test_rmclient.c - librmclient against a real remotemedia-server (started by
 * test_c_client.py on an ephemeral port): exact numbers, metrics, every error path,
 * auth, TLS/mTLS and four threads sharing one client.
 *
 * usage: test_rmclient --server ADDR
 *            [--auth-server ADDR --token GOOD]
 *            [--tls-server ADDR --mtls-server ADDR --tls-ca F --tls-other-ca F
 *             --tls-cert F --tls-key F --tls-other-key F]
 * Suites whose servers are not given are not registered. Exit status 0 = all passed. */
#include <CUnit/Basic.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rmclient.h"

static struct {
  const char *server, *auth_server, *token;
  const char *full_server, *limited_server, *draining_server; /* the "eco" suite's */
  const char *tls_server, *mtls_server, *tls_ca, *tls_other_ca, *tls_cert, *tls_key;
  const char *tls_other_key; /* a key of another certificate than tls_cert */
} cfg;

/* The -6.0206 dB factor is 10^(-6.0206/20) = 0.49999997...; halving within 1e-6. */
static const char gain_manifest[] =
    "{\"name\": \"gain-test\", \"nodes\": ["
    "{\"id\": \"src\", \"node_type\": \"PassThrough\"},"
    "{\"id\": \"g\", \"node_type\": \"Gain\", \"params\": {\"db\": -6.0206}}],"
    " \"connections\": [{\"from\": \"src\", \"to\": \"g\"}]}";

/* ------------------------------------------------------------------ helpers */

static void check_str(const char *actual, const char *expected, unsigned line, const char *expr) {
  int ok = actual && expected && !strcmp(actual, expected);
  if (!ok)
    fprintf(stderr, "line %u: %s is \"%s\", expected \"%s\"\n", line, expr,
            actual ? actual : "(null)", expected ? expected : "(null)");
  CU_assertImplementation(ok, line, expr, __FILE__, "", CU_FALSE);
}

static void check_int(long long actual, long long expected, unsigned line, const char *expr) {
  if (actual != expected)
    fprintf(stderr, "line %u: %s is %lld, expected %lld\n", line, expr, actual, expected);
  CU_assertImplementation(actual == expected, line, expr, __FILE__, "", CU_FALSE);
}

#define CHECK_STR(a, e) check_str((a), (e), __LINE__, #a)
#define CHECK_INT(a, e) check_int((long long)(a), (long long)(e), __LINE__, #a)

static rm_client_t *connect_to(const char *target, const char *token) {
  rm_client_options_t o = {0};
  o.target = target;
  o.token = token;
  o.default_timeout_ms = 20000;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  int rc = rm_client_new(&o, &c, &err);
  if (rc)
    fprintf(stderr, "rm_client_new(%s): %s\n", target, err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  return c;
}

static rm_client_t *client; /* the shared plaintext client of the "rpc" suite */

static int rpc_init(void) {
  rm_client_options_t o = {0};
  o.target = cfg.server;
  o.default_timeout_ms = 20000;
  rm_client_error_t err;
  return rm_client_new(&o, &client, &err) ? -1 : 0;
}

static int rpc_cleanup(void) {
  rm_client_free(client);
  client = NULL;
  return 0;
}

/* Runs gain_manifest on n f32 samples; returns the call's code. */
static int run_gain(rm_client_t *c, const float *x, size_t n, int metrics, rm_client_result_t **res,
                    rm_client_error_t *err) {
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, n * sizeof *x, 48000, 1, RM_CLIENT_F32)};
  rm_client_exec_opts_t eo = {.enable_metrics = metrics};
  return rm_client_execute(c, gain_manifest, &in, 1, &eo, res, err);
}

/* Max |out[i] - x[i]/2| of the gain output, or a large number when the shape is wrong. */
static double gain_error(const rm_client_result_t *res, const float *x, size_t n) {
  const rm_client_output_t *o = rm_client_result_find(res, "g");
  if (!o || o->n_items != 1 || o->items[0].kind != RM_CLIENT_AUDIO ||
      o->items[0].format != RM_CLIENT_F32 || o->items[0].size != n * sizeof(float))
    return 1e9;
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    float y;
    memcpy(&y, (const char *)o->items[0].data + 4 * i, 4);
    double d = fabs((double)y - (double)x[i] / 2);
    worst = d > worst ? d : worst;
  }
  return worst;
}

/* Object keys of o, in order, equal `keys` (NULL-terminated) exactly. */
static int keys_exactly(const json_t *o, const char *const *keys) {
  size_t n = 0;
  for (const char *const *k = keys; *k; k++, n++)
    if (!json_object_get(o, *k))
      return fprintf(stderr, "missing key %s\n", *k), 0;
  if (json_object_size(o) != n)
    return fprintf(stderr, "%zu keys, expected %zu\n", json_object_size(o), n), 0;
  return 1;
}

/* ------------------------------------------------------------------ rpc suite */

static void test_gain_halves_amplitude(void) {
  const float x[] = {0.5f, -0.25f, 1.0f, 0.125f, -1.0f, 0.3f, 0.0f, -0.7f};
  size_t n = sizeof x / sizeof x[0];
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  int rc = run_gain(client, x, n, 0, &res, &err);
  if (rc)
    fprintf(stderr, "execute: %s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT(gain_error(res, x, n) < 1e-6);
  CHECK_INT(rm_client_result_count(res), 1);
  const rm_client_output_t *o = rm_client_result_output(res, 0);
  CHECK_STR(o->key, "g");
  CHECK_STR(o->node_id, "g");
  CHECK_INT(o->items[0].sample_rate, 48000);
  CHECK_INT(o->items[0].channels, 1);
  CHECK_STR(rm_client_result_pipeline_name(res), "gain-test");
  const Remotemedia__V1__ExecuteResponse *resp = rm_client_result_response(res);
  CHECK_INT(resp->n_node_results, 2);
  CHECK_STR(resp->node_results[1]->node_id, "g");
  CHECK_INT(resp->node_results[1]->state, REMOTEMEDIA__V1__NODE_RESULT__STATE__STATE_OK);
  rm_client_result_free(res);
}

static void test_metrics_absent_unless_asked(void) {
  const float x[] = {0.5f, -0.5f};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(run_gain(client, x, 2, 0, &res, &err), 0);
  CU_ASSERT_PTR_NULL(rm_client_result_metrics(res));
  CU_ASSERT_PTR_NULL(rm_client_result_metrics_json(res));
  CU_ASSERT_PTR_NULL(rm_client_result_response(res)->metrics);
  rm_client_result_free(res);
}

static void test_metrics_seed_json(void) {
  static const char *const top[] = {"pipeline_id",         "total_executions",  "total_duration_us",
                                    "total_duration_ms",   "peak_memory_bytes", "peak_memory_mb",
                                    "metrics_overhead_us", "node_metrics",      NULL};
  static const char *const per_node[] = {
      "node_id",           "execution_count", "success_count",   "error_count",     "success_rate",
      "total_duration_us", "avg_duration_us", "min_duration_us", "max_duration_us", NULL};
  const float x[] = {0.5f, -0.5f, 0.25f};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(run_gain(client, x, 3, 1, &res, &err), 0);
  CU_ASSERT(gain_error(res, x, 3) < 1e-6);
  const Remotemedia__V1__PipelineMetrics *m = rm_client_result_metrics(res);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CHECK_STR(m->pipeline_id, "gain-test");
  CHECK_INT(m->total_executions, 1);
  CHECK_INT(m->n_node_metrics, 2);
  CU_ASSERT(m->total_duration_us > 0);
  CU_ASSERT(m->peak_memory_bytes >= 3 * sizeof(float));
  CU_ASSERT(m->metrics_overhead_us > 0);

  json_t *j = rm_client_result_metrics_json(res);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT(keys_exactly(j, top));
  CHECK_STR(json_string_value(json_object_get(j, "pipeline_id")), "gain-test");
  CU_ASSERT(json_is_integer(json_object_get(j, "total_executions")));
  CHECK_INT(json_integer_value(json_object_get(j, "total_executions")), 1);
  CU_ASSERT(json_is_integer(json_object_get(j, "peak_memory_bytes")));
  CHECK_INT(json_integer_value(json_object_get(j, "peak_memory_bytes")), m->peak_memory_bytes);
  CU_ASSERT(json_is_real(json_object_get(j, "total_duration_us")));
  CU_ASSERT(json_real_value(json_object_get(j, "total_duration_us")) == m->total_duration_us);
  CU_ASSERT(json_real_value(json_object_get(j, "total_duration_ms")) == m->total_duration_ms);
  CU_ASSERT(json_real_value(json_object_get(j, "peak_memory_mb")) == m->peak_memory_mb);
  CU_ASSERT(json_real_value(json_object_get(j, "metrics_overhead_us")) == m->metrics_overhead_us);
  json_t *nodes = json_object_get(j, "node_metrics");
  CHECK_INT(json_array_size(nodes), 2);
  const char *ids[] = {"src", "g"};
  for (size_t i = 0; i < json_array_size(nodes) && i < 2; i++) {
    json_t *n = json_array_get(nodes, i);
    CU_ASSERT(keys_exactly(n, per_node));
    CHECK_STR(json_string_value(json_object_get(n, "node_id")), ids[i]);
    CHECK_INT(json_integer_value(json_object_get(n, "execution_count")), 1);
    CHECK_INT(json_integer_value(json_object_get(n, "success_count")), 1);
    CHECK_INT(json_integer_value(json_object_get(n, "error_count")), 0);
    CU_ASSERT(json_real_value(json_object_get(n, "success_rate")) == 1.0);
    CU_ASSERT(json_real_value(json_object_get(n, "total_duration_us")) > 0);
    CU_ASSERT(json_real_value(json_object_get(n, "avg_duration_us")) ==
              m->node_metrics[i]->avg_duration_us);
    CU_ASSERT(json_real_value(json_object_get(n, "min_duration_us")) <=
              json_real_value(json_object_get(n, "max_duration_us")));
  }
  json_decref(j);
  rm_client_result_free(res);
}

static void test_error_invalid_param(void) {
  const char *m =
      "{\"name\": \"bad\", \"nodes\": [{\"id\": \"src\", \"node_type\": \"PassThrough\"},"
      "{\"id\": \"g\", \"node_type\": \"Gain\", \"params\": {\"db\": 1000}}],"
      " \"connections\": [{\"from\": \"src\", \"to\": \"g\"}]}";
  const float x[] = {0.5f};
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, sizeof x, 16000, 1, RM_CLIENT_F32)};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CHECK_INT(rm_client_execute(client, m, &in, 1, NULL, &res, &err), RM_CLIENT_ESTATUS);
  CU_ASSERT_PTR_NULL(res);
  CHECK_INT(err.code, RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 3);
  CHECK_STR(rm_client_status_name(err.status), "INVALID_ARGUMENT");
  CHECK_STR(err.kind, "invalid_params");
  CHECK_STR(err.node_id, "g");
  CHECK_STR(err.field, "db");
  CHECK_STR(err.message, "node 'g' param 'db': 1000 is out of range [-120, 60]");
}

static void test_error_unknown_node_type(void) {
  const char *m = "{\"nodes\": [{\"id\": \"x\", \"node_type\": \"NoSuchNode\"}]}";
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CHECK_INT(rm_client_execute(client, m, NULL, 0, NULL, &res, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 5);
  CHECK_STR(rm_client_status_name(err.status), "NOT_FOUND");
  CHECK_STR(err.kind, "unknown_node_type");
  CHECK_STR(err.node_id, "x");
  CHECK_STR(err.field, "node_type");
  CHECK_STR(err.message, "node 'x': unknown node type 'NoSuchNode'");
}

static void test_error_deadline(void) {
  const char *m = "{\"nodes\": [{\"id\": \"src\", \"node_type\": \"PassThrough\"},"
                  "{\"id\": \"d\", \"node_type\": \"Delay\", \"params\": {\"ms\": 2000}}],"
                  " \"connections\": [{\"from\": \"src\", \"to\": \"d\"}]}";
  rm_client_input_t in = {"src", rm_client_buffer_json("{\"a\": 1}")};
  rm_client_exec_opts_t eo = {.timeout_ms = 200};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CHECK_INT(rm_client_execute(client, m, &in, 1, &eo, &res, &err), RM_CLIENT_ESTATUS);
  CU_ASSERT_PTR_NULL(res);
  CHECK_INT(err.status, 4);
  CHECK_STR(rm_client_status_name(err.status), "DEADLINE_EXCEEDED");
  /* The client's own deadline and the server's answer race: the trailers (kind
   * deadline_exceeded, node d) are there only when the server's status arrived first. */
  CU_ASSERT(!err.kind[0] || !strcmp(err.kind, "deadline_exceeded"));
  CU_ASSERT(!err.node_id[0] || !strcmp(err.node_id, "d"));
}

static void test_error_unavailable(void) {
  rm_client_t *c = connect_to("127.0.0.1:1", NULL); /* nothing listens on port 1 */
  rm_client_health_t st = RM_CLIENT_HEALTH_SERVING;
  rm_client_error_t err;
  CHECK_INT(rm_client_health_check(c, NULL, 5000, &st, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 14);
  CHECK_STR(rm_client_status_name(err.status), "UNAVAILABLE");
  CHECK_INT(st, RM_CLIENT_HEALTH_SERVING); /* untouched on failure */
  rm_client_free(c);
}

/* wait_for_ready: the call waits for a connection until its deadline instead of failing
 * at once; lb_policy and keepalive are accepted by the channel. */
static void test_channel_options(void) {
  rm_client_options_t o = {0};
  o.target = "127.0.0.1:1";
  o.wait_for_ready = 1;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_new(&o, &c, &err), 0);
  rm_client_health_t st;
  CHECK_INT(rm_client_health_check(c, NULL, 300, &st, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 4); /* DEADLINE_EXCEEDED, where fail-fast gives UNAVAILABLE */
  rm_client_free(c);

  char target[300];
  snprintf(target, sizeof target, "ipv4:%s", cfg.server);
  o.target = target;
  o.wait_for_ready = 0;
  o.lb_policy = "round_robin";
  o.keepalive_time_ms = 60000;
  o.max_message_bytes = 1 << 20;
  CU_ASSERT_EQUAL_FATAL(rm_client_new(&o, &c, &err), 0);
  st = RM_CLIENT_HEALTH_UNKNOWN;
  CHECK_INT(rm_client_health_check(c, NULL, 20000, &st, &err), 0);
  CHECK_INT(st, RM_CLIENT_HEALTH_SERVING);
  /* max_message_bytes bounds what the client sends: 2 MiB of samples is refused locally */
  size_t n = (2u << 20) / sizeof(float);
  float *x = calloc(n, sizeof *x);
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  rm_client_result_t *res = NULL;
  CHECK_INT(run_gain(c, x, n, 0, &res, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 8); /* RESOURCE_EXHAUSTED */
  free(x);
  rm_client_free(c);
}

/* Messages above gRPC's 4 MiB default both ways: the client raises its limits to 64 MiB. */
static void test_large_messages(void) {
  size_t n = 1500000; /* 6 MB of f32 each way */
  float *x = malloc(n * sizeof *x);
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  for (size_t i = 0; i < n; i++)
    x[i] = (float)((double)(i % 2001) / 1000.0 - 1.0);
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  int rc = run_gain(client, x, n, 0, &res, &err);
  if (rc)
    fprintf(stderr, "execute: %s\n", err.message);
  CU_ASSERT_EQUAL(rc, 0);
  if (!rc)
    CU_ASSERT(gain_error(res, x, n) < 1e-6);
  rm_client_result_free(res);
  free(x);
}

static void test_local_errors(void) {
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CHECK_INT(rm_client_execute(client, "{\"nodes\": [", NULL, 0, NULL, &res, &err),
            RM_CLIENT_EMANIFEST);
  CHECK_INT(err.status, 0);
  CU_ASSERT(strstr(err.message, "manifest is not valid JSON") == err.message);
  CHECK_INT(rm_client_execute(client, "{\"nodes\": [], \"edges\": []}", NULL, 0, NULL, &res, &err),
            RM_CLIENT_EMANIFEST);
  CHECK_STR(err.message, "manifest: unknown key 'edges'");
  CHECK_INT(rm_client_execute(client, "{\"nodes\": [{\"id\": \"a\"}]}", NULL, 0, NULL, &res, &err),
            RM_CLIENT_EMANIFEST);
  CHECK_STR(err.message, "nodes[0]: missing 'node_type'");
  CHECK_INT(rm_client_execute(
                client, "{\"nodes\": [{\"id\": \"a\", \"node_type\": \"Gain\", \"params\": 5}]}",
                NULL, 0, NULL, &res, &err),
            RM_CLIENT_EMANIFEST);
  CHECK_STR(err.message, "node 'a': params must be a JSON object");
  rm_client_input_t bad = {NULL, rm_client_buffer_text("x")};
  CHECK_INT(rm_client_execute(client, gain_manifest, &bad, 1, NULL, &res, &err), RM_CLIENT_EINVAL);
  CU_ASSERT_PTR_NULL(res);

  rm_client_options_t o = {0};
  rm_client_t *c = NULL;
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  o.target = cfg.server;
  o.tls_cert_file = "/nonexistent/cert.pem";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL); /* cert without key */
  o.tls_cert_file = NULL;
  o.tls_ca_file = "/nonexistent/ca.pem";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EIO);
  CU_ASSERT(strstr(err.message, "/nonexistent/ca.pem") != NULL);
  CU_ASSERT_PTR_NULL(c);
  CHECK_STR(rm_client_strerror(RM_CLIENT_ESTATUS), "status");
  CHECK_STR(rm_client_status_name(16), "UNAUTHENTICATED");
  CHECK_STR(rm_client_status_name(99), "UNKNOWN");
}

/* Regression (C2): a token or request id with a byte gRPC metadata refuses (a newline,
 * UTF-8, a control character) was sent to the core, which failed the batch (EINTERNAL
 * "GRPC_CALL_ERROR_INVALID_METADATA") and logged to stderr. It is EINVAL up front now,
 * naming the field, and nothing reaches the core. */
static void test_metadata_not_printable_refused(void) {
  rm_client_options_t o = {0};
  o.target = cfg.server;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  o.token = "g\xc3\xb6\xc3\xb6"
            "d";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "options.token: byte 0xc3 at offset 1 is not printable ASCII (gRPC "
                         "metadata values are 0x20-0x7E)");
  o.token = "a\nb";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "options.token: byte 0x0a at offset 1 is not printable ASCII (gRPC "
                         "metadata values are 0x20-0x7E)");
  o.token = "\x01\x02";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "options.token: byte 0x01 at offset 0 is not printable ASCII (gRPC "
                         "metadata values are 0x20-0x7E)");
  o.token = "";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "options.token is empty");
  CU_ASSERT_PTR_NULL(c);
  o.token = "printable ~!@#$%^&*() token";
  CU_ASSERT_EQUAL_FATAL(rm_client_new(&o, &c, &err), 0);
  rm_client_free(c);

  static const char *const msg_nl =
      "request_id: byte 0x0a at offset 1 is not printable ASCII (gRPC metadata values are "
      "0x20-0x7E)";
  static const char *const msg_utf8 =
      "request_id: byte 0xc3 at offset 1 is not printable ASCII (gRPC metadata values are "
      "0x20-0x7E)";
  const float x[] = {0.5f};
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, sizeof x, 16000, 1, RM_CLIENT_F32)};
  rm_client_exec_opts_t eo = {.request_id = "a\nb"};
  rm_client_result_t *res = NULL;
  CHECK_INT(rm_client_execute(client, gain_manifest, &in, 1, &eo, &res, &err), RM_CLIENT_EINVAL);
  CHECK_INT(err.status, 0);
  CHECK_STR(err.message, msg_nl);
  CU_ASSERT_PTR_NULL(res);
  eo.request_id = "r\xc3\xa9q";
  CHECK_INT(rm_client_execute(client, gain_manifest, &in, 1, &eo, &res, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, msg_utf8);
  Remotemedia__V1__ValidateResponse *v = NULL;
  CHECK_INT(rm_client_validate(client, gain_manifest, &in, 1, &eo, &v, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, msg_utf8);
  CU_ASSERT_PTR_NULL(v);
  rm_client_stream_opts_t so = {.request_id = "a\nb"};
  rm_client_stream_t *s = NULL;
  CHECK_INT(rm_client_stream_open(client, gain_manifest, &so, &s, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, msg_nl);
  CU_ASSERT_PTR_NULL(s);
  /* a printable id still goes through */
  eo.request_id = "req 1/2 ~ok";
  CHECK_INT(rm_client_execute(client, gain_manifest, &in, 1, &eo, &res, &err), 0);
  rm_client_result_free(res);
}

/* A temporary file holding text; its path in path (a "/tmp/rmclient-XXXXXX" buffer). */
static void temp_file(char *path, const char *text) {
  strcpy(path, "/tmp/rmclient-XXXXXX");
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
}

/* Regression (C3): a readable tls_* file without a PEM block was accepted, and every call
 * then failed UNAVAILABLE "empty address list" after most of a second. rm_client_new
 * refuses it (EINVAL naming the option and the file). */
static void test_pem_file_without_block_refused(void) {
  char not_pem[32], cert[32], key[32];
  temp_file(not_pem, "{\"this\": \"is not a certificate\"}\n");
  temp_file(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  temp_file(key, "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n");
  rm_client_options_t o = {0};
  o.target = cfg.server;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  char want[256];
  o.tls_ca_file = not_pem;
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  snprintf(want, sizeof want,
           "tls_ca_file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", not_pem);
  CHECK_STR(err.message, want);
  o.tls_ca_file = cert;
  o.tls_cert_file = not_pem;
  o.tls_key_file = key;
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  snprintf(want, sizeof want,
           "tls_cert_file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", not_pem);
  CHECK_STR(err.message, want);
  o.tls_cert_file = cert;
  o.tls_key_file = cert; /* a certificate is not a key */
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  snprintf(want, sizeof want,
           "tls_key_file %s holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)", cert);
  CHECK_STR(err.message, want);
  o.tls_cert_file = o.tls_key_file = o.tls_ca_file = NULL;
  o.tls_ca_pem = "";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "tls_ca_pem holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  CU_ASSERT_PTR_NULL(c);
  /* files of the right shapes pass this check; these blocks then do not parse (the TLS
   * suite's pem_checks has real ones) */
  o.tls_ca_pem = NULL;
  o.tls_ca_file = cert;
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  snprintf(want, sizeof want,
           "tls_ca_file %s: certificate 1 (line 1) does not parse (ASN1 lib); the certificates "
           "after it would be ignored",
           cert);
  CHECK_STR(err.message, want);
  CU_ASSERT_PTR_NULL(c);
  /* the labels OpenSSL also reads a certificate under, and a key's variants */
  o.tls_cert_file = o.tls_key_file = o.tls_ca_file = NULL;
  static const char *const certs[] = {
      "-----BEGIN TRUSTED CERTIFICATE-----\nMIIB\n-----END TRUSTED CERTIFICATE-----\n",
      "-----BEGIN X509 CERTIFICATE-----\nMIIB\n-----END X509 CERTIFICATE-----\n"};
  static const char *const keys[] = {
      "-----BEGIN PRIVATE KEY-----\nMIG\n-----END PRIVATE KEY-----\n",
      "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----\n"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    o.tls_ca_pem = o.tls_cert_pem = certs[i % 2];
    o.tls_key_pem = keys[i];
    CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL); /* read as a certificate */
    CHECK_STR(err.message, "tls_ca_pem: certificate 1 (line 1) does not parse (ASN1 lib); the "
                           "certificates after it would be ignored");
    o.tls_key_pem = certs[i % 2]; /* still not a key */
    CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
    CHECK_STR(err.message,
              "tls_key_pem holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)");
  }
  o.tls_ca_pem = keys[2];
  o.tls_cert_pem = o.tls_key_pem = NULL;
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "tls_ca_pem holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  unlink(not_pem);
  unlink(cert);
  unlink(key);
}

/* PassThrough returns each kind as it came: the conversions both ways are lossless. */
static void test_every_kind_round_trips(void) {
  const char *m = "{\"nodes\": [{\"id\": \"j\", \"node_type\": \"PassThrough\"},"
                  "{\"id\": \"t\", \"node_type\": \"PassThrough\"},"
                  "{\"id\": \"b\", \"node_type\": \"PassThrough\"},"
                  "{\"id\": \"x\", \"node_type\": \"PassThrough\"},"
                  "{\"id\": \"a\", \"node_type\": \"PassThrough\"}]}";
  const int64_t shape[] = {2, 3};
  const float tensor[6] = {1, 2, 3, 4, 5, 6};
  const unsigned char bin[] = {0, 1, 2, 255, 0, 7};
  const int16_t pcm[] = {-32768, 0, 32767, 1, -1, 1234};
  rm_client_input_t in[] = {
      {"j", rm_client_buffer_json("{\"k\": [1, 2]}")},
      {"t", rm_client_buffer_text("h\xc3\xa9llo")},
      {"b", rm_client_buffer_binary(bin, sizeof bin, "application/x-test")},
      {"x", rm_client_buffer_tensor(tensor, sizeof tensor, RM_CLIENT_DTYPE_F32, shape, 2)},
      {"a", rm_client_buffer_audio(pcm, sizeof pcm, 8000, 2, RM_CLIENT_I16)},
  };
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  int rc = rm_client_execute(client, m, in, 5, NULL, &res, &err);
  if (rc)
    fprintf(stderr, "execute: %s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CHECK_INT(rm_client_result_count(res), 5);
  const char *sorted[] = {"a", "b", "j", "t", "x"};
  for (size_t i = 0; i < 5; i++)
    CHECK_STR(rm_client_result_output(res, i)->key, sorted[i]);
  CU_ASSERT_PTR_NULL(rm_client_result_output(res, 5));
  CU_ASSERT_PTR_NULL(rm_client_result_find(res, "nope"));

  const rm_client_buffer_t *j = &rm_client_result_find(res, "j")->items[0];
  CHECK_INT(j->kind, RM_CLIENT_JSON);
  CHECK_STR(j->data, "{\"k\": [1, 2]}");
  CHECK_INT(j->size, strlen("{\"k\": [1, 2]}"));
  const rm_client_buffer_t *t = &rm_client_result_find(res, "t")->items[0];
  CHECK_INT(t->kind, RM_CLIENT_TEXT);
  CHECK_STR(t->data, "h\xc3\xa9llo");
  const rm_client_buffer_t *b = &rm_client_result_find(res, "b")->items[0];
  CHECK_INT(b->kind, RM_CLIENT_BINARY);
  CHECK_INT(b->size, sizeof bin);
  CU_ASSERT(b->size == sizeof bin && !memcmp(b->data, bin, sizeof bin));
  CHECK_STR(b->mime_type, "application/x-test");
  const rm_client_buffer_t *x = &rm_client_result_find(res, "x")->items[0];
  CHECK_INT(x->kind, RM_CLIENT_TENSOR);
  CHECK_INT(x->dtype, RM_CLIENT_DTYPE_F32);
  CHECK_INT(x->ndim, 2);
  CU_ASSERT(x->ndim == 2 && x->shape[0] == 2 && x->shape[1] == 3);
  CU_ASSERT(x->size == sizeof tensor && !memcmp(x->data, tensor, sizeof tensor));
  const rm_client_buffer_t *a = &rm_client_result_find(res, "a")->items[0];
  CHECK_INT(a->kind, RM_CLIENT_AUDIO);
  CHECK_INT(a->format, RM_CLIENT_I16);
  CHECK_INT(a->sample_rate, 8000);
  CHECK_INT(a->channels, 2);
  CU_ASSERT(a->size == sizeof pcm && !memcmp(a->data, pcm, sizeof pcm));
  rm_client_result_free(res);
}

static void test_json_calculator(void) {
  const char *m = "{\"nodes\": [{\"id\": \"calc\", \"node_type\": \"Calculator\"}]}";
  rm_client_input_t in = {
      "calc", rm_client_buffer_json("{\"operation\": \"add\", \"operands\": [1, 2, 3.5]}")};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_execute(client, m, &in, 1, NULL, &res, &err), 0);
  const rm_client_output_t *o = rm_client_result_find(res, "calc");
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  CHECK_INT(o->n_items, 1);
  json_t *v = json_loads(o->items[0].data, 0, NULL);
  CU_ASSERT(json_real_value(json_object_get(v, "result")) == 6.5 ||
            json_integer_value(json_object_get(v, "result")) == 6.5);
  json_decref(v);
  rm_client_result_free(res);
}

/* A node emitting several items; and output_nodes choosing what comes back. */
static void test_items_and_output_nodes(void) {
  const char *m = "{\"nodes\": [{\"id\": \"src\", \"node_type\": \"PassThrough\"},"
                  "{\"id\": \"c\", \"node_type\": \"Chunk\", \"params\": {\"frames\": 4}}],"
                  " \"connections\": [{\"from\": \"src\", \"to\": \"c\"}]}";
  float x[10];
  for (int i = 0; i < 10; i++)
    x[i] = (float)i / 16;
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, sizeof x, 16000, 1, RM_CLIENT_F32)};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_execute(client, m, &in, 1, NULL, &res, &err), 0);
  const rm_client_output_t *o = rm_client_result_find(res, "c");
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  CHECK_INT(o->n_items, 3);
  size_t sizes[] = {16, 16, 8}, off = 0;
  for (size_t i = 0; i < o->n_items && i < 3; i++) {
    CHECK_INT(o->items[i].size, sizes[i]);
    CU_ASSERT(!memcmp(o->items[i].data, (const char *)x + off, sizes[i]));
    off += sizes[i];
  }
  rm_client_result_free(res);

  const char *const only_src[] = {"src"};
  rm_client_exec_opts_t eo = {.output_nodes = only_src, .n_output_nodes = 1};
  CU_ASSERT_EQUAL_FATAL(rm_client_execute(client, m, &in, 1, &eo, &res, &err), 0);
  CHECK_INT(rm_client_result_count(res), 1);
  CU_ASSERT_PTR_NOT_NULL(rm_client_result_find(res, "src"));
  rm_client_result_free(res);
}

/* A request message built by the caller goes through rm_client_execute_request. */
static void test_execute_request(void) {
  Remotemedia__V1__NodeManifest node = REMOTEMEDIA__V1__NODE_MANIFEST__INIT;
  node.id = "t";
  node.node_type = "PassThrough";
  Remotemedia__V1__NodeManifest *nodes[] = {&node};
  Remotemedia__V1__PipelineManifest man = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;
  man.name = "raw";
  man.nodes = nodes;
  man.n_nodes = 1;
  Remotemedia__V1__TextBuffer text = REMOTEMEDIA__V1__TEXT_BUFFER__INIT;
  text.text = "hello";
  Remotemedia__V1__DataBuffer buf = REMOTEMEDIA__V1__DATA_BUFFER__INIT;
  buf.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_TEXT;
  buf.text = &text;
  Remotemedia__V1__ExecuteRequest__InputsEntry entry =
      REMOTEMEDIA__V1__EXECUTE_REQUEST__INPUTS_ENTRY__INIT;
  entry.key = "t";
  entry.value = &buf;
  Remotemedia__V1__ExecuteRequest__InputsEntry *entries[] = {&entry};
  Remotemedia__V1__ExecuteRequest req = REMOTEMEDIA__V1__EXECUTE_REQUEST__INIT;
  req.manifest = &man;
  req.inputs = entries;
  req.n_inputs = 1;
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_execute_request(client, &req, 0, &res, &err), 0);
  CHECK_STR(rm_client_result_find(res, "t")->items[0].data, "hello");
  CHECK_STR(rm_client_result_pipeline_name(res), "raw");
  rm_client_result_free(res);
}

static void test_list_node_types(void) {
  Remotemedia__V1__ListNodeTypesResponse *types = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_list_node_types(client, 0, &types, &err), 0);
  const Remotemedia__V1__NodeTypeInfo *gain = NULL;
  for (size_t i = 0; i < types->n_node_types; i++)
    if (!strcmp(types->node_types[i]->name, "Gain"))
      gain = types->node_types[i];
  CU_ASSERT_PTR_NOT_NULL_FATAL(gain);
  CHECK_INT(gain->n_params, 1);
  CHECK_STR(gain->params[0]->name, "db");
  CHECK_STR(gain->params[0]->type, "number");
  CHECK_STR(gain->params[0]->default_json, "0");
  CU_ASSERT(gain->params[0]->has_minimum && gain->params[0]->minimum == -120);
  CU_ASSERT(gain->params[0]->has_maximum && gain->params[0]->maximum == 60);
  CHECK_INT(gain->n_inputs, 1);
  CHECK_INT(gain->inputs[0]->n_kinds, 1);
  CHECK_INT(gain->inputs[0]->kinds[0], REMOTEMEDIA__V1__DATA_KIND__DATA_KIND_AUDIO);
  rm_client_node_types_free(types);
  rm_client_node_types_free(NULL);
}

static void test_version_and_health(void) {
  Remotemedia__V1__GetVersionResponse *v = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_server_version(client, 0, &v, &err), 0);
  CHECK_STR(v->protocol_version, "1.0");
  CU_ASSERT(v->server_version[0] != '\0');
  int found = 0;
  for (size_t i = 0; i < v->n_services; i++)
    found |= !strcmp(v->services[i], "remotemedia.v1.PipelineService");
  CU_ASSERT(found);
  rm_client_server_version_free(v);

  rm_client_health_t st = RM_CLIENT_HEALTH_UNKNOWN;
  CHECK_INT(rm_client_health_check(client, NULL, 0, &st, &err), 0);
  CHECK_INT(st, RM_CLIENT_HEALTH_SERVING);
  CHECK_STR(rm_client_health_name(st), "SERVING");
  st = RM_CLIENT_HEALTH_UNKNOWN;
  CHECK_INT(rm_client_health_check(client, "remotemedia.v1.PipelineService", 0, &st, &err), 0);
  CHECK_INT(st, RM_CLIENT_HEALTH_SERVING);
  CHECK_INT(rm_client_health_check(client, "no.such.Service", 0, &st, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 5);
}

/* 4 threads x 50 calls on one client (one channel), each with its own numbers. */
#define N_THREADS 4
#define N_CALLS 50

typedef struct worker {
  int id;
  int ok; /* calls with exactly the expected outputs */
  char first_error[RM_CLIENT_MSG_MAX];
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  for (int i = 0; i < N_CALLS; i++) {
    float x[16];
    for (int k = 0; k < 16; k++)
      x[k] = (float)((w->id * N_CALLS + i) * 16 + k) / 4096.0f - 0.4f;
    rm_client_result_t *res = NULL;
    rm_client_error_t err;
    int rc = run_gain(client, x, 16, i % 2, &res, &err);
    if (rc) {
      if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "%s", err.message);
      continue;
    }
    int metrics_ok = (i % 2) == (rm_client_result_metrics(res) != NULL);
    if (gain_error(res, x, 16) < 1e-6 && metrics_ok)
      w->ok++;
    rm_client_result_free(res);
  }
  return NULL;
}

static void test_threads_share_one_client(void) {
  pthread_t th[N_THREADS];
  worker_t w[N_THREADS];
  memset(w, 0, sizeof w);
  for (int t = 0; t < N_THREADS; t++) {
    w[t].id = t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
  }
  for (int t = 0; t < N_THREADS; t++)
    pthread_join(th[t], NULL);
  for (int t = 0; t < N_THREADS; t++) {
    if (w[t].first_error[0])
      fprintf(stderr, "thread %d: %s\n", t, w[t].first_error);
    CHECK_INT(w[t].ok, N_CALLS);
  }
}

/* ------------------------------------------------------------------ auth suite */

static void test_auth(void) {
  const float x[] = {0.5f};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  rm_client_t *wrong = connect_to(cfg.auth_server, "not-the-token");
  CHECK_INT(run_gain(wrong, x, 1, 0, &res, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 16);
  CHECK_STR(rm_client_status_name(err.status), "UNAUTHENTICATED");
  CHECK_STR(err.kind, "unauthenticated");
  CHECK_STR(err.message, "the bearer token is not valid");
  Remotemedia__V1__ListNodeTypesResponse *types = NULL;
  CHECK_INT(rm_client_list_node_types(wrong, 0, &types, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 16);
  rm_client_free(wrong);

  rm_client_t *none = connect_to(cfg.auth_server, NULL);
  CHECK_INT(run_gain(none, x, 1, 0, &res, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 16);
  rm_client_free(none);

  rm_client_t *good = connect_to(cfg.auth_server, cfg.token);
  int rc = run_gain(good, x, 1, 0, &res, &err);
  if (rc)
    fprintf(stderr, "execute with the right token: %s\n", err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT(gain_error(res, x, 1) < 1e-6);
  rm_client_result_free(res);
  rm_client_health_t st;
  CHECK_INT(rm_client_health_check(good, NULL, 0, &st, &err), 0);
  rm_client_free(good);
}

/* ------------------------------------------------------------------ TLS suite */

static rm_client_t *tls_client(const char *target, const char *ca, int with_cert) {
  rm_client_options_t o = {0};
  o.target = target;
  o.tls_ca_file = ca;
  o.tls_cert_file = with_cert ? cfg.tls_cert : NULL;
  o.tls_key_file = with_cert ? cfg.tls_key : NULL;
  o.default_timeout_ms = 20000;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  int rc = rm_client_new(&o, &c, &err);
  if (rc)
    fprintf(stderr, "rm_client_new(tls %s): %s\n", target, err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  return c;
}

/* The PEM file path as text (malloc), every "CERTIFICATE-----" label renamed to label
 * ("TRUSTED CERTIFICATE", "X509 CERTIFICATE"): the same DER under another name. */
static char *relabelled_pem(const char *path, const char *label) {
  FILE *f = fopen(path, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  static char in[16384];
  size_t n = fread(in, 1, sizeof in - 1, f);
  fclose(f);
  in[n] = '\0';
  char *out = malloc(2 * n + 1), *o = out;
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  for (const char *p = in; *p;) {
    const char *at = strstr(p, "-----BEGIN CERTIFICATE-----");
    const char *end = strstr(p, "-----END CERTIFICATE-----");
    const char *q = at && (!end || at < end) ? at : end;
    if (!q) {
      strcpy(o, p);
      break;
    }
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    o += sprintf(o, "-----%s %s-----", q == at ? "BEGIN" : "END", label);
    p = q + (q == at ? strlen("-----BEGIN CERTIFICATE-----") : strlen("-----END CERTIFICATE-----"));
  }
  return out;
}

/* Regression: the PEM check wanted "-----BEGIN CERTIFICATE-----" and refused the CA as a
 * "TRUSTED CERTIFICATE" or an "X509 CERTIFICATE", which OpenSSL, and so gRPC, reads: each
 * label connects. */
static void test_tls_ca_pem_labels(void) {
  static const char *const labels[] = {"TRUSTED CERTIFICATE", "X509 CERTIFICATE"};
  for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
    char *ca = relabelled_pem(cfg.tls_ca, labels[i]);
    char begin[64];
    snprintf(begin, sizeof begin, "-----BEGIN %s-----\n", labels[i]);
    CU_ASSERT_EQUAL(strncmp(ca, begin, strlen(begin)), 0);
    rm_client_options_t o = {0};
    o.target = cfg.tls_server;
    o.tls_ca_pem = ca;
    o.default_timeout_ms = 20000;
    rm_client_t *c = NULL;
    rm_client_error_t err;
    rm_client_health_t st = RM_CLIENT_HEALTH_UNKNOWN;
    CHECK_INT(rm_client_new(&o, &c, &err), 0);
    if (c) {
      CHECK_INT(rm_client_health_check(c, NULL, 0, &st, &err), 0);
      CHECK_INT(st, RM_CLIENT_HEALTH_SERVING);
    }
    rm_client_free(c);
    free(ca);
  }
}

/* The whole file as a NUL-terminated string (malloc); its length in *len. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char *buf = malloc(65536);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  *len = fread(buf, 1, 65535, f);
  fclose(f);
  buf[*len] = '\0';
  return buf;
}

static unsigned count_lines(const char *s) {
  unsigned n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

/* A temporary file of len bytes (NULs included); its path in path (a 32-byte buffer). */
static void temp_bytes(char *path, const char *bytes, size_t len) {
  strcpy(path, "/tmp/rmclient-XXXXXX");
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_FATAL(write(fd, bytes, len) == (ssize_t)len);
  close(fd);
}

/* rm_client_new refuses o with RM_CLIENT_EINVAL, the message printed from fmt, and no client. */
__attribute__((format(printf, 2, 3))) static void expect_refused(const rm_client_options_t *o,
                                                                 const char *fmt, ...) {
  char want[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(want, sizeof want, fmt, ap);
  va_end(ap);
  rm_client_t *c = NULL;
  rm_client_error_t err;
  CHECK_INT(rm_client_new(o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, want);
  CU_ASSERT_PTR_NULL(c);
  rm_client_free(c);
}

/* Regression: a CA bundle or client chain with a damaged certificate block was accepted (it
 * holds "-----BEGIN CERTIFICATE-----"), the core read it up to that block and silently
 * dropped every certificate after it, and each call failed UNAVAILABLE; a key of another
 * certificate failed the same way. rm_client_new refuses them, naming the option, file,
 * certificate and line. */
static void test_tls_pem_checks(void) {
  size_t other_len, client_len, ca_len;
  char *other = slurp(cfg.tls_other_ca, &other_len);
  char *client_pem = slurp(cfg.tls_cert, &client_len);
  char *ca = slurp(cfg.tls_ca, &ca_len);
  unsigned line = count_lines(other) + 1; /* where the second certificate starts */
  /* the client certificate with a character of its 3rd base64 line out of the alphabet */
  char *damaged = strdup(client_pem);
  char *l = damaged;
  for (int i = 0; i < 3; i++)
    l = strchr(l, '\n') + 1;
  *l = '#';
  char *text = malloc(other_len + client_len + ca_len + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  char bundle[32], cut[32], nul[32], chain[32];
  snprintf(text, other_len + client_len + ca_len + 1, "%s%s%s", other, damaged, ca);
  temp_bytes(bundle, text, strlen(text));
  rm_client_options_t o = {0};
  o.target = cfg.tls_server;
  o.default_timeout_ms = 20000;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  rm_client_health_t st = RM_CLIENT_HEALTH_UNKNOWN;

  /* a valid CA, a damaged block, then the server's CA: the core would use only the first */
  o.tls_ca_file = bundle;
  expect_refused(&o,
                 "tls_ca_file %s: certificate 2 (line %u) does not parse (bad base64 decode); the "
                 "certificates after it would be ignored",
                 bundle, line);
  o.tls_ca_file = NULL;
  o.tls_ca_pem = text;
  expect_refused(&o,
                 "tls_ca_pem: certificate 2 (line %u) does not parse (bad base64 decode); the "
                 "certificates after it would be ignored",
                 line);
  /* without the damaged block the server's CA, after the other one, is used */
  snprintf(text, other_len + client_len + ca_len + 1, "%s%s", other, ca);
  CHECK_INT(rm_client_new(&o, &c, &err), 0);
  if (c) {
    CHECK_INT(rm_client_health_check(c, NULL, 0, &st, &err), 0);
    CHECK_INT(st, RM_CLIENT_HEALTH_SERVING);
  }
  rm_client_free(c);
  c = NULL;
  o.tls_ca_pem = NULL;

  /* a last block cut short; a NUL byte (the core would read the text before it) */
  snprintf(text, other_len + client_len + ca_len + 1, "%s%.200s", other, ca);
  temp_bytes(cut, text, strlen(text));
  o.tls_ca_file = cut;
  expect_refused(&o,
                 "tls_ca_file %s: certificate 2 (line %u) does not parse (bad end line); the "
                 "certificates after it would be ignored",
                 cut, line);
  memcpy(text, other, other_len);
  text[other_len] = '\0';
  memcpy(text + other_len + 1, ca, ca_len);
  temp_bytes(nul, text, other_len + 1 + ca_len);
  o.tls_ca_file = nul;
  expect_refused(&o, "tls_ca_file %s holds a NUL byte at offset %zu: a PEM file is text", nul,
                 other_len);

  /* mutual TLS: a damaged block in the chain, a key of another certificate, a damaged key */
  o.tls_ca_file = cfg.tls_ca;
  o.tls_cert_file = chain;
  snprintf(text, other_len + client_len + ca_len + 1, "%s%s", client_pem, damaged);
  temp_bytes(chain, text, strlen(text));
  o.tls_key_file = cfg.tls_key;
  expect_refused(
      &o,
      "tls_cert_file %s: certificate 2 (line %u) does not parse (bad base64 decode); the "
      "certificates after it would be ignored",
      chain, count_lines(client_pem) + 1);
  o.tls_cert_file = cfg.tls_cert;
  o.tls_key_file = cfg.tls_other_key;
  expect_refused(&o, "tls_key_file %s does not match the certificate in tls_cert_file %s",
                 cfg.tls_other_key, cfg.tls_cert);
  size_t key_len;
  char *key = slurp(cfg.tls_other_key, &key_len);
  o.tls_cert_file = o.tls_key_file = NULL;
  o.tls_cert_pem = client_pem;
  o.tls_key_pem = key;
  expect_refused(&o, "tls_key_pem does not match the certificate in tls_cert_pem");
  l = key;
  for (int i = 0; i < 2; i++)
    l = strchr(l, '\n') + 1;
  *l = '#';
  expect_refused(&o,
                 "tls_key_pem: the private key does not parse (gRPC takes an unencrypted PEM key)");
  /* the pair that belongs together connects */
  o.tls_cert_pem = NULL;
  o.tls_key_pem = NULL;
  o.tls_cert_file = cfg.tls_cert;
  o.tls_key_file = cfg.tls_key;
  o.target = cfg.mtls_server;
  CHECK_INT(rm_client_new(&o, &c, &err), 0);
  if (c)
    CHECK_INT(rm_client_health_check(c, NULL, 0, &st, &err), 0);
  rm_client_free(c);
  unlink(bundle);
  unlink(cut);
  unlink(nul);
  unlink(chain);
  free(key);
  free(text);
  free(damaged);
  free(ca);
  free(client_pem);
  free(other);
}

static void test_tls(void) {
  const float x[] = {0.5f, 0.25f};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  rm_client_health_t st = RM_CLIENT_HEALTH_UNKNOWN;
  rm_client_t *c = tls_client(cfg.tls_server, cfg.tls_ca, 0);
  CHECK_INT(rm_client_health_check(c, NULL, 0, &st, &err), 0);
  CHECK_INT(st, RM_CLIENT_HEALTH_SERVING);
  CU_ASSERT_EQUAL_FATAL(run_gain(c, x, 2, 1, &res, &err), 0);
  CU_ASSERT(gain_error(res, x, 2) < 1e-6);
  CU_ASSERT_PTR_NOT_NULL(rm_client_result_metrics(res));
  rm_client_result_free(res);
  rm_client_free(c);

  /* a CA that did not sign the server's certificate: the handshake fails */
  c = tls_client(cfg.tls_server, cfg.tls_other_ca, 0);
  CHECK_INT(rm_client_health_check(c, NULL, 0, &st, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 14);
  rm_client_free(c);

  /* by IP address with the certificate's DNS name given explicitly; a wrong name fails */
  rm_client_options_t o = {0};
  o.target = cfg.tls_server;
  o.tls_ca_file = cfg.tls_ca;
  o.tls_server_name = "localhost";
  CU_ASSERT_EQUAL_FATAL(rm_client_new(&o, &c, &err), 0);
  CHECK_INT(rm_client_health_check(c, NULL, 20000, &st, &err), 0);
  rm_client_free(c);
  o.tls_server_name = "not-the-server.example";
  CU_ASSERT_EQUAL_FATAL(rm_client_new(&o, &c, &err), 0);
  CHECK_INT(rm_client_health_check(c, NULL, 20000, &st, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 14);
  rm_client_free(c);

  /* plaintext to a TLS port fails too */
  c = connect_to(cfg.tls_server, NULL);
  CHECK_INT(rm_client_health_check(c, NULL, 5000, &st, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 14);
  rm_client_free(c);

  test_tls_ca_pem_labels();
}

static void test_mtls(void) {
  rm_client_error_t err;
  rm_client_health_t st = RM_CLIENT_HEALTH_UNKNOWN;
  rm_client_t *c = tls_client(cfg.mtls_server, cfg.tls_ca, 1);
  CHECK_INT(rm_client_health_check(c, NULL, 0, &st, &err), 0);
  CHECK_INT(st, RM_CLIENT_HEALTH_SERVING);
  const float x[] = {-0.5f};
  rm_client_result_t *res = NULL;
  CU_ASSERT_EQUAL_FATAL(run_gain(c, x, 1, 0, &res, &err), 0);
  CU_ASSERT(gain_error(res, x, 1) < 1e-6);
  rm_client_result_free(res);
  rm_client_free(c);

  /* without a client certificate the server refuses the handshake */
  c = tls_client(cfg.mtls_server, cfg.tls_ca, 0);
  CHECK_INT(rm_client_health_check(c, NULL, 0, &st, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 14);
  rm_client_free(c);
}

/* ------------------------------------------------------------------ main */

/* ------------------------------------------------------------------ eco: details, validate,
 * request, retries */

/* grpc-status-details-bin: reason, domain, request id and the field violation. */
static void test_error_details(void) {
  const char *m =
      "{\"name\": \"bad\", \"nodes\": [{\"id\": \"src\", \"node_type\": \"PassThrough\"},"
      "{\"id\": \"g\", \"node_type\": \"Gain\", \"params\": {\"db\": 1000}}],"
      " \"connections\": [{\"from\": \"src\", \"to\": \"g\"}]}";
  const float x[] = {0.5f};
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, sizeof x, 16000, 1, RM_CLIENT_F32)};
  rm_client_exec_opts_t eo = {.request_id = "req-c-1"};
  rm_client_result_t *res = NULL;
  rm_client_error_t err;
  CHECK_INT(rm_client_execute(client, m, &in, 1, &eo, &res, &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.has_details, 1);
  CHECK_STR(err.reason, "INVALID_PARAMS");
  CHECK_STR(err.domain, "remotemedia.v1");
  CHECK_STR(err.kind, "invalid_params");
  CHECK_STR(err.node_id, "g");
  CHECK_STR(err.field, "db");
  CHECK_STR(err.request_id, "req-c-1");
  CHECK_INT(err.n_violations, 1);
  CHECK_STR(err.violations[0].field, "manifest.nodes[g].params.db");
  CHECK_STR(err.violations[0].description, "node 'g' param 'db': 1000 is out of range [-120, 60]");
  /* a status without the standard details (a local one) leaves them empty */
  CHECK_INT(rm_client_execute(client, "{", NULL, 0, NULL, &res, &err), RM_CLIENT_EMANIFEST);
  CHECK_INT(err.has_details, 0);
  CHECK_STR(err.reason, "");
}

static const char delay_manifest[] =
    "{\"name\": \"dry\", \"nodes\": [{\"id\": \"g\", \"node_type\": \"Gain\"},"
    "{\"id\": \"src\", \"node_type\": \"PassThrough\"},"
    "{\"id\": \"d\", \"node_type\": \"Delay\", \"params\": {\"ms\": 30000}}],"
    " \"connections\": [{\"from\": \"src\", \"to\": \"d\"}, {\"from\": \"d\", \"to\": \"g\"}]}";

static void test_validate(void) {
  float x[100] = {0};
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, sizeof x, 16000, 1, RM_CLIENT_F32)};
  Remotemedia__V1__ValidateResponse *v = NULL;
  rm_client_error_t err;
  /* the 30 s delay is not run: the default 20 s deadline would end the call */
  CU_ASSERT_EQUAL_FATAL(rm_client_validate(client, delay_manifest, &in, 1, NULL, &v, &err), 0);
  CHECK_STR(v->pipeline_name, "dry");
  CHECK_INT(v->n_schedule, 3);
  CHECK_STR(v->schedule[0], "src");
  CHECK_STR(v->schedule[1], "d");
  CHECK_STR(v->schedule[2], "g");
  CU_ASSERT(v->predicted_memory_bytes >= sizeof x);
  rm_client_validation_free(v);
  /* an input for a node fed by an edge: the error ExecutePipeline gives */
  v = NULL;
  rm_client_input_t bad = {"g", in.buffer};
  CHECK_INT(rm_client_validate(client, delay_manifest, &bad, 1, NULL, &v, &err), RM_CLIENT_ESTATUS);
  CU_ASSERT_PTR_NULL(v);
  CHECK_INT(err.status, 3);
  CHECK_STR(err.kind, "invalid_input");
  CHECK_STR(err.node_id, "g");
  rm_client_validation_free(NULL);
}

/* The packed request is the one rm_client_execute sends: unpacked and sent as it is, it
 * gives the same answer. */
static void test_request_pack(void) {
  const float x[] = {0.5f, -0.25f};
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, sizeof x, 48000, 1, RM_CLIENT_F32)};
  rm_client_exec_opts_t eo = {.enable_metrics = 1};
  uint8_t *bytes = NULL;
  size_t len = 0;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_request_pack(gain_manifest, &in, 1, &eo, &bytes, &len, &err), 0);
  Remotemedia__V1__ExecuteRequest *req = remotemedia__v1__execute_request__unpack(NULL, len, bytes);
  free(bytes);
  CU_ASSERT_PTR_NOT_NULL_FATAL(req);
  CHECK_STR(req->manifest->name, "gain-test");
  CHECK_INT(req->n_inputs, 1);
  CHECK_INT(req->enable_metrics, 1);
  rm_client_result_t *res = NULL;
  CU_ASSERT_EQUAL_FATAL(rm_client_execute_request(client, req, 0, &res, &err), 0);
  CU_ASSERT(gain_error(res, x, 2) < 1e-6);
  CU_ASSERT_PTR_NOT_NULL(rm_client_result_metrics(res));
  rm_client_result_free(res);
  remotemedia__v1__execute_request__free_unpacked(req, NULL);
  CHECK_INT(rm_client_request_pack("{", NULL, 0, NULL, &bytes, &len, &err), RM_CLIENT_EMANIFEST);
}

/* Regression (C1): retry.codes "" was accepted, the core then refused the service config
 * and every call failed INVALID_ARGUMENT "Failed to create secure client channel", which
 * read like the server's verdict. rm_client_new refuses it, naming the field. */
static void test_retry_codes_empty_refused(void) {
  rm_client_options_t o = {0};
  o.target = cfg.server;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  static const char *const blank[] = {"", " ", ",", " , "};
  for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
    o.retry.codes = blank[i];
    CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
    CHECK_STR(err.message, "retry.codes lists no status name (give e.g. \"UNAVAILABLE\", or set "
                           "retry.disable)");
  }
  o.retry.codes = "UNAVAILABLE,,RESOURCE_EXHAUSTED";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "retry.codes: '' is not a gRPC status name (UNAVAILABLE, ...)");
  o.retry.codes = "unavailable";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "retry.codes: 'unavailable' is not a gRPC status name (UNAVAILABLE, ...)");
  CU_ASSERT_PTR_NULL(c);
  o.retry.codes = "UNAVAILABLE, OK"; /* a name, but not one gRPC can retry */
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "retry.codes: OK is success, not a status to retry");
  CU_ASSERT_PTR_NULL(c);
  o.retry.codes = ""; /* nothing is retried anyway */
  o.retry.disable = 1;
  CHECK_INT(rm_client_new(&o, &c, &err), 0);
  rm_client_free(c);
}

/* A client with a quick retry policy (3 attempts, 10 ms backoff; UNAVAILABLE and
 * RESOURCE_EXHAUSTED, listed with blanks), or none. */
static rm_client_t *retrying_client(const char *target, int disable) {
  rm_client_options_t o = {0};
  o.target = target;
  o.default_timeout_ms = 20000;
  o.retry.disable = disable;
  o.retry.max_attempts = 3;
  o.retry.initial_backoff_ms = 10;
  o.retry.max_backoff_ms = 10;
  o.retry.codes = " UNAVAILABLE , RESOURCE_EXHAUSTED\t"; /* blanks around names are trimmed */
  rm_client_t *c = NULL;
  rm_client_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_client_new(&o, &c, &err), 0);
  return c;
}

static int run_named(rm_client_t *c, const char *name, rm_client_error_t *err) {
  char m[256];
  snprintf(m, sizeof m,
           "{\"name\": \"%s\", \"nodes\": [{\"id\": \"src\", \"node_type\": \"PassThrough\"},"
           "{\"id\": \"a\", \"node_type\": \"Gain\"}, {\"id\": \"b\", \"node_type\": \"Gain\"}],"
           " \"connections\": [{\"from\": \"src\", \"to\": \"a\"}, {\"from\": \"a\", \"to\": "
           "\"b\"}]}",
           name);
  const float x[] = {0.5f};
  rm_client_input_t in = {"src", rm_client_buffer_audio(x, sizeof x, 16000, 1, RM_CLIENT_F32)};
  rm_client_result_t *res = NULL;
  int rc = rm_client_execute(c, m, &in, 1, NULL, &res, err);
  rm_client_result_free(res);
  return rc;
}

/* The driver counts the server's attempts: 1 without retries, 3 with. */
static void test_retry_full_server(void) {
  rm_client_error_t err;
  rm_client_t *c = retrying_client(cfg.full_server, 1);
  CHECK_INT(run_named(c, "once", &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 8);
  CHECK_STR(err.field, "max_concurrent");
  rm_client_free(c);
  c = retrying_client(cfg.full_server, 0);
  CHECK_INT(run_named(c, "thrice", &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 8);
  rm_client_free(c);
}

/* A per-request limit carries grpc-retry-pushback-ms: -1: one attempt despite retries. */
static void test_retry_pushback(void) {
  rm_client_error_t err;
  rm_client_t *c = retrying_client(cfg.limited_server, 0);
  CHECK_INT(run_named(c, "too-big", &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 8);
  CHECK_STR(err.field, "nodes");
  rm_client_free(c);
}

/* A draining replica answers UNAVAILABLE: retried (the driver counts 3 attempts). */
static void test_retry_draining_server(void) {
  rm_client_error_t err;
  rm_client_t *c = retrying_client(cfg.draining_server, 0);
  CHECK_INT(run_named(c, "drained", &err), RM_CLIENT_ESTATUS);
  CHECK_INT(err.status, 14);
  CHECK_STR(err.kind, "unavailable");
  rm_client_free(c);
}

/* Retry options out of range are refused before anything connects. */
static void test_retry_options(void) {
  rm_client_options_t o = {0};
  o.target = cfg.server;
  rm_client_t *c = NULL;
  rm_client_error_t err;
  o.retry.max_attempts = 6;
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "retry.max_attempts must be 2..5 (gRPC's limit)");
  o.retry.max_attempts = 0;
  o.retry.codes = "UNAVAILABLE,NOPE";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "retry.codes: 'NOPE' is not a gRPC status name (UNAVAILABLE, ...)");
  o.retry.codes = "UNAVAILABLE";
  CHECK_INT(rm_client_new(&o, &c, &err), 0);
  rm_client_free(c);
  /* Regression: blanks around a name were part of it ("' RESOURCE_EXHAUSTED' is not a gRPC
   * status name"); retrying_client's list has them, and its retries are counted */
  o.retry.codes = "UNAVAILABLE, RESOURCE_EXHAUSTED";
  c = NULL;
  CHECK_INT(rm_client_new(&o, &c, &err), 0);
  CU_ASSERT_PTR_NOT_NULL(c);
  rm_client_free(c);
  o.retry.codes = "UNAVAILABLE,\tNOPE ";
  c = NULL;
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "retry.codes: 'NOPE' is not a gRPC status name (UNAVAILABLE, ...)");
  o.retry.codes = "UNAVAILABLE, ,RESOURCE_EXHAUSTED";
  CHECK_INT(rm_client_new(&o, &c, &err), RM_CLIENT_EINVAL);
  CHECK_STR(err.message, "retry.codes: '' is not a gRPC status name (UNAVAILABLE, ...)");
  CU_ASSERT_PTR_NULL(c);
}

static int add_suite(const char *name, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                     const char *const *names, const CU_TestFunc *fns, size_t n) {
  CU_pSuite s = CU_add_suite(name, init, cleanup);
  if (!s)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (!CU_add_test(s, names[i], fns[i]))
      return -1;
  return 0;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--server"))
      cfg.server = v;
    else if (!strcmp(k, "--auth-server"))
      cfg.auth_server = v;
    else if (!strcmp(k, "--token"))
      cfg.token = v;
    else if (!strcmp(k, "--tls-server"))
      cfg.tls_server = v;
    else if (!strcmp(k, "--mtls-server"))
      cfg.mtls_server = v;
    else if (!strcmp(k, "--tls-ca"))
      cfg.tls_ca = v;
    else if (!strcmp(k, "--tls-other-ca"))
      cfg.tls_other_ca = v;
    else if (!strcmp(k, "--tls-cert"))
      cfg.tls_cert = v;
    else if (!strcmp(k, "--tls-key"))
      cfg.tls_key = v;
    else if (!strcmp(k, "--tls-other-key"))
      cfg.tls_other_key = v;
    else if (!strcmp(k, "--full-server"))
      cfg.full_server = v;
    else if (!strcmp(k, "--limited-server"))
      cfg.limited_server = v;
    else if (!strcmp(k, "--draining-server"))
      cfg.draining_server = v;
    else {
      fprintf(stderr, "test_rmclient: unknown argument %s\n", k);
      return 2;
    }
  }
  if (!cfg.server || (argc - 1) % 2) {
    fprintf(stderr, "usage: test_rmclient --server ADDR [--auth-server ADDR --token T] "
                    "[--tls-server ADDR --mtls-server ADDR --tls-ca F --tls-other-ca F "
                    "--tls-cert F --tls-key F --tls-other-key F]\n");
    return 2;
  }
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  static const char *const rpc_names[] = {"gain_halves_amplitude",
                                          "metrics_absent_unless_asked",
                                          "metrics_seed_json",
                                          "error_invalid_param",
                                          "error_unknown_node_type",
                                          "error_deadline",
                                          "error_unavailable",
                                          "local_errors",
                                          "every_kind_round_trips",
                                          "json_calculator",
                                          "items_and_output_nodes",
                                          "execute_request",
                                          "list_node_types",
                                          "version_and_health",
                                          "threads_share_one_client",
                                          "channel_options",
                                          "large_messages",
                                          "metadata_not_printable_refused",
                                          "pem_file_without_block_refused"};
  static const CU_TestFunc rpc_fns[] = {test_gain_halves_amplitude,
                                        test_metrics_absent_unless_asked,
                                        test_metrics_seed_json,
                                        test_error_invalid_param,
                                        test_error_unknown_node_type,
                                        test_error_deadline,
                                        test_error_unavailable,
                                        test_local_errors,
                                        test_every_kind_round_trips,
                                        test_json_calculator,
                                        test_items_and_output_nodes,
                                        test_execute_request,
                                        test_list_node_types,
                                        test_version_and_health,
                                        test_threads_share_one_client,
                                        test_channel_options,
                                        test_large_messages,
                                        test_metadata_not_printable_refused,
                                        test_pem_file_without_block_refused};
  int rc = add_suite("rpc", rpc_init, rpc_cleanup, rpc_names, rpc_fns,
                     sizeof rpc_fns / sizeof rpc_fns[0]);
  if (!rc && cfg.full_server && cfg.limited_server && cfg.draining_server) {
    /* only when the driver asks: the "rpc" suite's counts stay what its driver expects */
    static const char *const names[] = {"error_details",         "validate",
                                        "request_pack",          "retry_options",
                                        "retry_full_server",     "retry_pushback",
                                        "retry_draining_server", "retry_codes_empty_refused"};
    static const CU_TestFunc fns[] = {test_error_details,         test_validate,
                                      test_request_pack,          test_retry_options,
                                      test_retry_full_server,     test_retry_pushback,
                                      test_retry_draining_server, test_retry_codes_empty_refused};
    rc = add_suite("eco", rpc_init, rpc_cleanup, names, fns, sizeof fns / sizeof fns[0]);
  }
  if (!rc && cfg.auth_server && cfg.token) {
    static const char *const names[] = {"auth"};
    static const CU_TestFunc fns[] = {test_auth};
    rc = add_suite("auth", NULL, NULL, names, fns, 1);
  }
  if (!rc && cfg.tls_server && cfg.mtls_server && cfg.tls_ca && cfg.tls_other_ca && cfg.tls_cert &&
      cfg.tls_key && cfg.tls_other_key) {
    static const char *const names[] = {"tls", "mtls", "pem_checks"};
    static const CU_TestFunc fns[] = {test_tls, test_mtls, test_tls_pem_checks};
    rc = add_suite("tls", NULL, NULL, names, fns, 3);
  }
  if (rc) {
    CU_cleanup_registry();
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                    CU_get_number_of_suites_failed();
  unsigned ran = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  return failed || ran == 0 ? 1 : 0;
}
