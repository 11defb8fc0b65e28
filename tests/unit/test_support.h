/* test_support.h - shared fixtures for the CUnit suites: a main(), manifest and buffer
 * builders, and assertions that print the actual value when they fail. */
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

#define RM_TEST(fn)                                                                                \
  { #fn, fn }

/* Registers one suite of cases (terminated by {NULL, NULL}). */
void rm_test_suite(const char *name, const rm_test_case_t *cases);
/* Runs every registered suite; returns the process exit status (0 = all passed). */
int rm_test_run(void);

/* The JSON text arguments of the helpers below may use single quotes for double quotes
 * (tests read better without escapes); write \u0027 for a literal apostrophe. */

/* A copy of json with ' turned into " (rm_free it). */
char *rm_test_unquote(const char *json);
/* Parses a JSON manifest; fails the test (and returns NULL) on error. */
rm_manifest_t *rm_test_manifest(const char *json);
/* Builds a pipeline from JSON; fails the test on error. */
rm_pipeline_t *rm_test_pipeline(const char *json);
/* Builds a pipeline that must fail; returns the code, err filled. */
int rm_test_pipeline_error(const char *json, rm_error_t *err);

/* Owned f32/i16 audio buffers holding a copy of the samples (no account). */
rm_buffer_t *rm_test_audio_f32(const float *s, size_t n_samples, uint32_t rate, uint32_t ch);
rm_buffer_t *rm_test_audio_i16(const int16_t *s, size_t n_samples, uint32_t rate, uint32_t ch);
rm_buffer_t *rm_test_audio_i32(const int32_t *s, size_t n_samples, uint32_t rate, uint32_t ch);
/* Owned JSON buffer (single quotes allowed, see above). */
rm_buffer_t *rm_test_json(const char *text);

/* Runs p with one input to `node`; returns the run's code. *res must be freed. */
int rm_test_run1(rm_pipeline_t *p, const char *node, rm_buffer_t *in, int metrics,
                 rm_result_t **res, rm_error_t *err);
/* Id of the i-th node in execution order (the order the pipeline's metrics keep), NULL
 * when i is out of range. */
const char *rm_test_node_id(rm_pipeline_t *p, size_t i);
/* The output of `key` in r, or NULL. */
const rm_output_t *rm_test_output(const rm_result_t *r, const char *key);
/* Item i of output `key` in r, or NULL (the test fails when absent). */
rm_buffer_t *rm_test_item(const rm_result_t *r, const char *key, size_t i);

/* ---- assertions that report the actual value ---- */
void rm__test_str(const char *actual, const char *expected, unsigned line, const char *file,
                  const char *expr);
void rm__test_int(long long actual, long long expected, unsigned line, const char *file,
                  const char *expr);
void rm__test_near(double actual, double expected, double tol, unsigned line, const char *file,
                   const char *expr);
void rm__test_err(int rc, const rm_error_t *err, int code, const char *node, const char *field,
                  const char *message, unsigned line, const char *file);

#define RM_ASSERT_STR(actual, expected)                                                            \
  rm__test_str((actual), (expected), __LINE__, __FILE__, #actual)
#define RM_ASSERT_INT(actual, expected)                                                            \
  rm__test_int((long long)(actual), (long long)(expected), __LINE__, __FILE__, #actual)
#define RM_ASSERT_NEAR(actual, expected, tol)                                                      \
  rm__test_near((actual), (expected), (tol), __LINE__, __FILE__, #actual)
/* rc and err->code equal code, err's node_id, field and message equal the given strings
 * (NULL skips a comparison). */
#define RM_ASSERT_ERR(rc, err, code, node, field, message)                                         \
  rm__test_err((rc), (err), (code), (node), (field), (message), __LINE__, __FILE__)

#endif
