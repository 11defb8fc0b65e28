/* test_support.h - shared fixtures for the CUnit suites: a main(), manifest and buffer
 * builders. */
#ifndef RM_TEST_SUPPORT_H
#define RM_TEST_SUPPORT_H

#include <CUnit/Basic.h>
#include <stddef.h>
#include <stdint.h>

#include "rm/alloc.h"
#include "rm/buffer.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"

typedef struct rm_test_case {
  const char *name;
  void (*fn)(void);
} rm_test_case_t;

#define RM_TEST(fn) {#fn, fn}

/* Registers one suite of cases (terminated by {NULL, NULL}). */
void rm_test_suite(const char *name, const rm_test_case_t *cases);
/* Runs every registered suite; returns the process exit status (0 = all passed). */
int rm_test_run(void);

/* Parses a JSON manifest; fails the test (and returns NULL) on error. */
rm_manifest_t *rm_test_manifest(const char *json);
/* Builds a pipeline from JSON; fails the test on error. */
rm_pipeline_t *rm_test_pipeline(const char *json);
/* Builds a pipeline that must fail; returns the code, err filled. */
int rm_test_pipeline_error(const char *json, rm_error_t *err);

/* Owned f32/i16 audio buffers holding a copy of the samples. */
rm_buffer_t *rm_test_audio_f32(const float *s, size_t n_samples, uint32_t rate, uint32_t ch);
rm_buffer_t *rm_test_audio_i16(const int16_t *s, size_t n_samples, uint32_t rate, uint32_t ch);
rm_buffer_t *rm_test_json(const char *text);

/* Runs p with one input to `node`; returns the run's code. *res must be freed. */
int rm_test_run1(rm_pipeline_t *p, const char *node, rm_buffer_t *in, int metrics,
                 rm_result_t **res, rm_error_t *err);
/* The output of `key` in r, or NULL. */
const rm_output_t *rm_test_output(const rm_result_t *r, const char *key);

#endif
