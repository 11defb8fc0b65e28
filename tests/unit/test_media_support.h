/* test_media_support.h - helpers shared by the media node suites (test_media_*.c): one-node
 * pipelines, streamed runs, collecting outputs, signal generators and measures. Header-only
 * (static inline) so each suite stays one binary. */
#ifndef RM_TEST_MEDIA_SUPPORT_H
#define RM_TEST_MEDIA_SUPPORT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/registry.h"
#include "test_support.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* A pipeline of one node "n" of `type` with params (JSON object text). */
static inline rm_pipeline_t *media_node(const char *type, const char *params) {
  char json[4096];
  snprintf(json, sizeof json,
           "{\"name\":\"t\",\"nodes\":[{\"id\":\"n\",\"node_type\":\"%s\",\"params\":%s}]}", type,
           params ? params : "{}");
  return rm_test_pipeline(json);
}

/* Building one node of `type` with params must fail: returns the code, err filled. */
static inline int media_node_error(const char *type, const char *params, rm_error_t *err) {
  char json[4096];
  snprintf(json, sizeof json,
           "{\"name\":\"t\",\"nodes\":[{\"id\":\"n\",\"node_type\":\"%s\",\"params\":%s}]}", type,
           params);
  return rm_test_pipeline_error(json, err);
}

/* Asserts that params fail with RM_EPARAM naming node "n" and `key`. */
static inline void media_expect_param_error(const char *type, const char *params, const char *key) {
  rm_error_t err;
  int rc = media_node_error(type, params, &err);
  CU_ASSERT_EQUAL(rc, RM_EPARAM);
  CU_ASSERT_STRING_EQUAL(err.field, key);
  CU_ASSERT_STRING_EQUAL(err.node_id, "n");
  char quoted[96];
  snprintf(quoted, sizeof quoted, "'%s'", key);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, quoted));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "'n'"));
  if (rc != RM_EPARAM || strcmp(err.field, key) != 0)
    fprintf(stderr, "\n  %s %s: rc=%d field='%s' msg='%s'\n", type, params, rc, err.field,
            err.message);
}

/* A cross-field check in the node's create() must fail with RM_EPARAM naming `key`: the
 * message opens with "node param 'key': " and rm_pipeline_new adds the node id (create()
 * does not know it). */
static inline void media_expect_create_error(const char *type, const char *params,
                                             const char *key) {
  rm_error_t err;
  int rc = media_node_error(type, params, &err);
  CU_ASSERT_EQUAL(rc, RM_EPARAM);
  CU_ASSERT_STRING_EQUAL(err.field, key);
  CU_ASSERT_STRING_EQUAL(err.node_id, "n");
  char prefix[96];
  snprintf(prefix, sizeof prefix, "node param '%s': ", key);
  CU_ASSERT_EQUAL(strncmp(err.message, prefix, strlen(prefix)), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "'n'"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, type));
  if (rc != RM_EPARAM || strcmp(err.field, key) != 0 || !strstr(err.message, "'n'"))
    fprintf(stderr, "\n  %s %s: rc=%d field='%s' msg='%s'\n", type, params, rc, err.field,
            err.message);
}

/* Collected outputs of a port over one or several runs. */
typedef struct media_items {
  rm_buffer_t *items[4096];
  size_t n;
} media_items_t;

static inline void media_items_free(media_items_t *it) {
  for (size_t i = 0; i < it->n; i++)
    rm_buffer_unref(it->items[i]);
  it->n = 0;
}

static inline void media_collect(const rm_result_t *r, const char *key, media_items_t *it) {
  const rm_output_t *o = rm_test_output(r, key);
  for (size_t i = 0; o && i < o->n_items && it->n < 4096; i++)
    it->items[it->n++] = rm_buffer_ref(o->items[i]);
}

/* Runs p over chunks fed to node "n" (end of stream with the last one) and collects the
 * items of each key in keys[] into its[]. Returns the first failing run's code. */
static inline int media_stream(rm_pipeline_t *p, rm_buffer_t **chunks, size_t n_chunks,
                               const char *const *keys, media_items_t *its, size_t n_keys,
                               rm_error_t *err) {
  for (size_t c = 0; c < n_chunks; c++) {
    rm_input_t in = {"n", chunks[c]};
    rm_run_opts_t opts = {.end_of_stream = c + 1 == n_chunks};
    rm_result_t *r = NULL;
    int rc = rm_pipeline_run(p, &in, 1, &opts, &r, err);
    if (!rc)
      for (size_t k = 0; k < n_keys; k++)
        media_collect(r, keys[k], &its[k]);
    rm_result_free(r);
    if (rc)
      return rc;
  }
  return 0;
}

/* One-shot run of one buffer; collects the primary output of "n". */
static inline int media_run1(rm_pipeline_t *p, rm_buffer_t *in, media_items_t *out,
                             rm_error_t *err) {
  static const char *const keys[] = {"n"};
  return media_stream(p, &in, 1, keys, out, 1, err);
}

/* A one-shot run of in whose output is one audio item of no frames at `rate` (a node's one
 * item for an input without output); the items stay in *it for more checks, for the caller
 * to free. */
static inline void media_run_one_empty(rm_pipeline_t *p, rm_buffer_t *in, uint32_t rate,
                                       media_items_t *it) {
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, it, &err), 0);
  CU_ASSERT_EQUAL_FATAL(it->n, 1);
  CU_ASSERT_EQUAL(rm_audio_frames(it->items[0]), 0);
  CU_ASSERT_EQUAL(it->items[0]->u.audio.sample_rate, rate);
}

/* Concatenates audio items as interleaved doubles (rm_audio_get units); returns the
 * sample count, *out rm_malloc'd. */
static inline size_t media_concat(const media_items_t *it, double **out) {
  size_t total = 0;
  for (size_t i = 0; i < it->n; i++)
    total += rm_audio_samples(it->items[i]);
  double *d = malloc((total ? total : 1) * sizeof *d);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  size_t k = 0;
  for (size_t i = 0; i < it->n; i++)
    for (size_t j = 0; j < rm_audio_samples(it->items[i]); j++)
      d[k++] = rm_audio_get(it->items[i], j);
  *out = d;
  return total;
}

/* An f32 buffer (no account) of n frames x ch channels, uninitialised. */
static inline rm_buffer_t *media_f32(uint32_t rate, uint32_t ch, size_t frames) {
  rm_buffer_t *b = rm_buffer_new_audio(NULL, rate, ch, RM_SAMPLE_F32, frames);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  return b;
}

static inline float *media_fdata(rm_buffer_t *b) { return (float *)b->data; }

/* Deterministic uniform noise in [-1, 1) (xorshift), so tests never depend on rand(). */
static inline double media_noise(unsigned long long *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return (double)(*s >> 11) / 4503599627370496.0 - 1.0;
}

/* Sum of squares of a[i] for i in [from, to). */
static inline double media_energy(const double *a, size_t from, size_t to, size_t stride) {
  double e = 0;
  for (size_t i = from; i < to; i++)
    e += a[i * stride] * a[i * stride];
  return e;
}

/* SNR in dB of x against the reference ref over n samples. */
static inline double media_snr_vs(const double *x, const double *ref, size_t n) {
  double s = 0, e = 0;
  for (size_t i = 0; i < n; i++) {
    s += ref[i] * ref[i];
    e += (x[i] - ref[i]) * (x[i] - ref[i]);
  }
  return 10.0 * log10(s / (e > 0 ? e : 1e-300));
}

/* A file of tests/data/audio (RM_TEST_DATA) as malloc'd bytes; the test stops if it cannot
 * be read. */
static inline unsigned char *media_load_fixture(const char *name, size_t *len) {
  const char *dir = getenv("RM_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/audio/%s", dir ? dir : "tests/data", name);
  FILE *f = fopen(path, "rb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *d = malloc(*len);
  CU_ASSERT_FATAL(d && fread(d, 1, *len, f) == *len);
  fclose(f);
  return d;
}

/* A node working on 8-48 kHz refuses 96 kHz input as RM_EINPUT naming sample_rate. */
static inline void media_expect_rate_refused(const char *type) {
  rm_pipeline_t *p = media_node(type, "{}");
  rm_buffer_t *in = media_f32(96000, 1, 960);
  memset(in->data, 0, in->size);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.field, "sample_rate");
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

#endif
