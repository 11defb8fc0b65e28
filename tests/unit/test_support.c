/* test_support.c - shared fixtures for the CUnit suites. */
#include "test_support.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rm/error.h"

void rm_test_suite(const char *name, const rm_test_case_t *cases) {
  if (CU_get_registry() == NULL && CU_initialize_registry() != CUE_SUCCESS)
    return;
  CU_pSuite s = CU_add_suite(name, NULL, NULL);
  for (; s && cases->name; cases++)
    CU_add_test(s, cases->name, cases->fn);
}

int rm_test_run(void) {
  if (CU_get_registry() == NULL)
    return 2;
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  unsigned ran = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  return (failed || ran == 0) ? 1 : 0;
}

char *rm_test_unquote(const char *json) {
  char *s = rm_strdup(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  for (char *c = s; *c; c++)
    if (*c == '\'')
      *c = '"';
  return s;
}

static int load(const char *json, rm_manifest_t **m, rm_error_t *err) {
  char *text = rm_test_unquote(json);
  int rc = rm_manifest_from_json_text(text, strlen(text), m, err);
  rm_free(text);
  return rc;
}

rm_manifest_t *rm_test_manifest(const char *json) {
  rm_manifest_t *m = NULL;
  rm_error_t err;
  rm_error_clear(&err);
  if (load(json, &m, &err)) {
    fprintf(stderr, "manifest error: %s\n", err.message);
    CU_FAIL("manifest did not load");
    return NULL;
  }
  return m;
}

rm_pipeline_t *rm_test_pipeline(const char *json) {
  rm_manifest_t *m = rm_test_manifest(json);
  if (!m)
    return NULL;
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  int rc = rm_pipeline_new(m, NULL, &p, &err);
  rm_manifest_free(m);
  if (rc) {
    fprintf(stderr, "pipeline error: %s\n", err.message);
    CU_FAIL("pipeline did not build");
    return NULL;
  }
  return p;
}

int rm_test_pipeline_error(const char *json, rm_error_t *err) {
  rm_manifest_t *m = NULL;
  rm_error_clear(err);
  int rc = load(json, &m, err);
  if (rc)
    return rc;
  rm_pipeline_t *p = NULL;
  rc = rm_pipeline_new(m, NULL, &p, err);
  rm_manifest_free(m);
  rm_pipeline_free(p);
  return rc;
}

static rm_buffer_t *audio(const void *s, size_t n, rm_sample_format_t f, uint32_t rate,
                          uint32_t ch) {
  rm_buffer_t *b = rm_buffer_new_audio(NULL, rate, ch, f, n / ch);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  if (n)
    memcpy(b->data, s, n * rm_sample_format_size(f));
  return b;
}

rm_buffer_t *rm_test_audio_f32(const float *s, size_t n, uint32_t rate, uint32_t ch) {
  return audio(s, n, RM_SAMPLE_F32, rate, ch);
}

rm_buffer_t *rm_test_audio_i16(const int16_t *s, size_t n, uint32_t rate, uint32_t ch) {
  return audio(s, n, RM_SAMPLE_I16, rate, ch);
}

rm_buffer_t *rm_test_audio_i32(const int32_t *s, size_t n, uint32_t rate, uint32_t ch) {
  return audio(s, n, RM_SAMPLE_I32, rate, ch);
}

rm_buffer_t *rm_test_json(const char *text) {
  char *t = rm_test_unquote(text);
  rm_buffer_t *b = rm_buffer_new_text(NULL, RM_KIND_JSON, t, strlen(t));
  rm_free(t);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  return b;
}

int rm_test_run1(rm_pipeline_t *p, const char *node, rm_buffer_t *in, int metrics,
                 rm_result_t **res, rm_error_t *err) {
  rm_input_t input = {node, in};
  rm_run_opts_t opts = {.metrics = metrics, .end_of_stream = 1};
  return rm_pipeline_run(p, &input, in ? 1 : 0, &opts, res, err);
}

const rm_output_t *rm_test_output(const rm_result_t *r, const char *key) {
  for (size_t i = 0; r && i < r->n_outputs; i++)
    if (strcmp(r->outputs[i].key, key) == 0)
      return &r->outputs[i];
  return NULL;
}

rm_buffer_t *rm_test_item(const rm_result_t *r, const char *key, size_t i) {
  const rm_output_t *o = rm_test_output(r, key);
  CU_ASSERT_PTR_NOT_NULL(o);
  if (!o)
    return NULL;
  CU_ASSERT(i < o->n_items);
  return i < o->n_items ? o->items[i] : NULL;
}

/* CUnit copies the condition text, so a formatted one shows the actual value. */
static void report(int ok, unsigned line, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(int ok, unsigned line, const char *file, const char *fmt, ...) {
  char text[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, line, text, file, "", CU_FALSE);
}

void rm__test_str(const char *actual, const char *expected, unsigned line, const char *file,
                  const char *expr) {
  int ok = actual && expected ? strcmp(actual, expected) == 0 : actual == expected;
  report(ok, line, file, "%s == \"%s\" (actual \"%s\")", expr, expected ? expected : "(null)",
         actual ? actual : "(null)");
}

void rm__test_int(long long actual, long long expected, unsigned line, const char *file,
                  const char *expr) {
  report(actual == expected, line, file, "%s == %lld (actual %lld)", expr, expected, actual);
}

void rm__test_near(double actual, double expected, double tol, unsigned line, const char *file,
                   const char *expr) {
  report(fabs(actual - expected) <= tol, line, file, "%s == %.17g +- %g (actual %.17g)", expr,
         expected, tol, actual);
}

void rm__test_err(int rc, const rm_error_t *err, int code, const char *node, const char *field,
                  const char *message, unsigned line, const char *file) {
  report(rc == code, line, file, "rc == %s (actual %s: %s)", rm_strerror(code), rm_strerror(rc),
         err->message);
  report(err->code == code, line, file, "err.code == %s (actual %s)", rm_strerror(code),
         rm_strerror(err->code));
  if (node)
    rm__test_str(err->node_id, node, line, file, "err.node_id");
  if (field)
    rm__test_str(err->field, field, line, file, "err.field");
  if (message)
    rm__test_str(err->message, message, line, file, "err.message");
}

const char *rm_test_node_id(rm_pipeline_t *p, size_t i) {
  const rm_metrics_t *m = rm_pipeline_metrics(p);
  return i < m->n_nodes ? m->nodes[i].node_id : NULL;
}
