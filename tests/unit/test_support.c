/* test_support.c - shared fixtures for the CUnit suites. */
#include "test_support.h"

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

rm_manifest_t *rm_test_manifest(const char *json) {
  rm_manifest_t *m = NULL;
  rm_error_t err;
  rm_error_clear(&err);
  int rc = rm_manifest_from_json_text(json, strlen(json), &m, &err);
  if (rc) {
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
  int rc = rm_manifest_from_json_text(json, strlen(json), &m, err);
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
  memcpy(b->data, s, n * rm_sample_format_size(f));
  return b;
}

rm_buffer_t *rm_test_audio_f32(const float *s, size_t n, uint32_t rate, uint32_t ch) {
  return audio(s, n, RM_SAMPLE_F32, rate, ch);
}

rm_buffer_t *rm_test_audio_i16(const int16_t *s, size_t n, uint32_t rate, uint32_t ch) {
  return audio(s, n, RM_SAMPLE_I16, rate, ch);
}

rm_buffer_t *rm_test_json(const char *text) {
  rm_buffer_t *b = rm_buffer_new_text(NULL, RM_KIND_JSON, text, strlen(text));
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
