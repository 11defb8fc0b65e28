/* test_memory_budget.c - the engine under memory budgets: a node over max_memory_bytes fails
 * before allocating, naming itself and the budget; a parent's refusal names the server's;
 * inputs are charged at run start; create() is refused too; the library predictions are
 * upper bounds of what the libraries allocate and count in peak_memory_bytes. */
#include <ebur128.h>
#include <fftw3.h>
#include <malloc.h>
#include <soxr.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/budget.h"
#include "rm/pipeline.h"
#include "test_support.h"

static rm_pipeline_t *build(const char *json, uint64_t max_memory, rm_error_t *err, int *rc) {
  rm_manifest_t *m = rm_test_manifest(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  rm_limits_t lim = {.max_memory_bytes = max_memory};
  rm_pipeline_t *p = NULL;
  *rc = rm_pipeline_new(m, &lim, &p, err);
  rm_manifest_free(m);
  return p;
}

static void test_node_over_budget_fails_before_allocating(void) {
  rm_error_t err;
  int rc;
  rm_pipeline_t *p = build("{'name': 't', 'nodes': [{'id': 'ck', 'node_type': 'Chunk', "
                           "'params': {'frames': 10000000, 'partial': 'pad'}}]}",
                           1 << 20, &err, &rc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  float s[8] = {0};
  rm_buffer_t *in = rm_test_audio_f32(s, 8, 48000, 8);
  rm_result_t *res = NULL;
  unsigned long failures = rm_alloc_failures();
  rc = rm_test_run1(p, "ck", in, 0, &res, &err);
  RM_ASSERT_INT(rc, RM_ELIMIT);
  RM_ASSERT_INT(err.code, RM_ELIMIT);
  RM_ASSERT_STR(err.node_id, "ck");
  RM_ASSERT_STR(err.field, "max_memory_bytes");
  /* 10M frames of 8 f32 channels and the buffer's header: asked before malloc */
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "node 'ck' (Chunk) needs 320000145 more bytes of "
                                             "memory, above the request's budget: "));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, " of its 1048576 bytes in use (max_memory_bytes)"));
  RM_ASSERT_INT(rm_alloc_failures(), failures + 1);
  RM_ASSERT_INT(res->nodes[0].state, RM_NODE_FAILED);
  CU_ASSERT(rm_budget_peak(rm_pipeline_budget(p)) <= 1 << 20);
  rm_result_free(res);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

static void test_parent_refusal_names_the_server_budget(void) {
  rm_budget_t *server = rm_budget_new(4 << 20, NULL);
  rm_budget_t *outer = rm_budget_enter(server);
  rm_error_t err;
  int rc;
  rm_pipeline_t *p = build("{'name': 't', 'nodes': [{'id': 'g', 'node_type': 'AudioFormat', "
                           "'params': {'format': 'f64'}}]}",
                           0, &err, &rc);
  rm_budget_leave(outer);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_PTR_EQUAL(rm_budget_current(), outer);
  /* 4 MB of f32 in, 8 MB of f64 out: over the server's 4 MiB. Asked: the payload, the
   * buffer's 128-byte header and NUL, the allocator's 16-byte header */
  size_t n = 1 << 20;
  float *s = calloc(n, sizeof *s);
  rm_buffer_t *in = rm_test_audio_f32(s, n, 48000, 1);
  rm_result_t *res = NULL;
  rc = rm_test_run1(p, "g", in, 0, &res, &err);
  RM_ASSERT_INT(rc, RM_ELIMIT);
  RM_ASSERT_STR(err.node_id, "g");
  RM_ASSERT_STR(err.field, "max_memory");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "node 'g' (AudioFormat) needs 8388753 more bytes "
                                             "of memory, but the server's memory budget has "));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, " of its 4194304 bytes in use (max-memory)"));
  rm_result_free(res);
  rm_buffer_unref(in);
  free(s);
  rm_pipeline_free(p);
  RM_ASSERT_INT(rm_budget_used(server), 0); /* the pipeline gave back all it drew */
  rm_budget_free(server);
}

static void test_inputs_and_create_are_charged(void) {
  rm_error_t err;
  int rc;
  rm_pipeline_t *p =
      build("{'name': 't', 'nodes': [{'id': 'g', 'node_type': 'Gain'}]}", 1 << 20, &err, &rc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  size_t n = 300000; /* 1.2 MB of input alone is over 1 MiB */
  float *s = calloc(n, sizeof *s);
  rm_buffer_t *in = rm_test_audio_f32(s, n, 48000, 1);
  rm_result_t *res = NULL;
  rc = rm_test_run1(p, "g", in, 0, &res, &err);
  RM_ASSERT_INT(rc, RM_ELIMIT);
  RM_ASSERT_STR(err.field, "max_memory_bytes");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "the request's inputs hold 1200000 bytes, above its "
                                             "memory budget of 1048576 bytes (max_memory_bytes)"));
  rm_result_free(res);
  rm_buffer_unref(in);
  free(s);
  rm_pipeline_free(p);
  /* a 16384-point FFT plan is predicted at 256 KiB + 128 KiB: with the node's own 226 KB of
   * arrays, over 300 KiB at create() */
  p = build("{'name': 't', 'nodes': [{'id': 's', 'node_type': 'Spectrogram', "
            "'params': {'n_fft': 16384}}]}",
            300 << 10, &err, &rc);
  CU_ASSERT_PTR_NULL(p);
  RM_ASSERT_INT(rc, RM_ELIMIT);
  RM_ASSERT_STR(err.node_id, "s");
  RM_ASSERT_STR(err.field, "max_memory_bytes");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "node 's' (Spectrogram) needs 393216 more bytes"));
}

static void test_budget_below_the_pipeline_itself_names_the_budget(void) {
  /* max_memory_bytes 1: the compiled pipeline's own first allocation is refused by the
   * budget, which is named (not a bare out of memory) */
  rm_error_t err;
  int rc;
  rm_pipeline_t *p =
      build("{'name': 't', 'nodes': [{'id': 'g', 'node_type': 'Gain'}]}", 1, &err, &rc);
  CU_ASSERT_PTR_NULL(p);
  RM_ASSERT_ERR(rc, &err, RM_ELIMIT, "", "max_memory_bytes", NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "pipeline 't' needs "));
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, " more bytes of memory, above the request's budget: "
                                             "0 of its 1 bytes in use (max_memory_bytes)"));
}

/* A labelled budget (a streaming session's) is named as such in every refusal: a node's at
 * run time and at create(), the inputs', the pipeline's own; an unlabelled one is the
 * request's. */
static void test_labelled_budget_names_its_owner_and_limit(void) {
  static const rm_budget_label_t session = {"session", "init.limits.max_memory_bytes"};
  rm_limits_t lim = {.max_memory_bytes = 1 << 20};
  rm_error_t err;
  rm_pipeline_t *p = NULL;
  rm_manifest_t *m =
      rm_test_manifest("{'name': 't', 'nodes': [{'id': 'ck', 'node_type': "
                       "'Chunk', 'params': {'frames': 10000000, 'partial': 'pad'}}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_INT(rm_pipeline_new_labelled(m, &lim, &session, &p, &err), 0);
  rm_manifest_free(m);
  float s[8] = {0};
  rm_buffer_t *in = rm_test_audio_f32(s, 8, 48000, 8);
  rm_result_t *res = NULL;
  RM_ASSERT_INT(rm_test_run1(p, "ck", in, 0, &res, &err), RM_ELIMIT);
  RM_ASSERT_STR(err.field, "max_memory_bytes");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "node 'ck' (Chunk) needs 320000145 more bytes of "
                                             "memory, above the session's budget: "));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(err.message, " of its 1048576 bytes in use (init.limits.max_memory_bytes)"));
  rm_result_free(res);
  rm_buffer_unref(in);
  rm_pipeline_free(p);

  m = rm_test_manifest("{'name': 't', 'nodes': [{'id': 'g', 'node_type': 'Gain'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  static const rm_budget_label_t owner_only = {"session", NULL}; /* limit: the default */
  RM_ASSERT_INT(rm_pipeline_new_labelled(m, &lim, &owner_only, &p, &err), 0);
  size_t n = 300000;
  float *big = calloc(n, sizeof *big);
  in = rm_test_audio_f32(big, n, 48000, 1);
  RM_ASSERT_INT(rm_test_run1(p, "g", in, 0, &res, &err), RM_ELIMIT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "the session's inputs hold 1200000 bytes, above its "
                                             "memory budget of 1048576 bytes (max_memory_bytes) "
                                             "with "));
  rm_result_free(res);
  rm_buffer_unref(in);
  free(big);
  rm_pipeline_free(p);

  lim.max_memory_bytes = 1; /* the pipeline's own first allocation */
  p = NULL;
  RM_ASSERT_INT(rm_pipeline_new_labelled(m, &lim, &session, &p, &err), RM_ELIMIT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, " more bytes of memory, above the session's budget: "
                                             "0 of its 1 bytes in use "
                                             "(init.limits.max_memory_bytes)"));
  RM_ASSERT_INT(rm_pipeline_new_labelled(m, &lim, NULL, &p, &err), RM_ELIMIT); /* the default */
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, " more bytes of memory, above the request's budget: "
                                             "0 of its 1 bytes in use (max_memory_bytes)"));
  rm_manifest_free(m);

  /* create(): a 16384-point FFT plan is over 300 KiB */
  m = rm_test_manifest("{'name': 't', 'nodes': [{'id': 's', 'node_type': 'Spectrogram', "
                       "'params': {'n_fft': 16384}}]}");
  lim.max_memory_bytes = 300 << 10;
  RM_ASSERT_INT(rm_pipeline_new_labelled(m, &lim, &session, &p, &err), RM_ELIMIT);
  CU_ASSERT_PTR_NULL(p);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "node 's' (Spectrogram) needs 393216 more bytes of "
                                             "memory, above the session's budget: "));
  rm_manifest_free(m);
}

static void test_unlimited_still_refuses_what_no_allocation_holds(void) {
  /* OpusDecode's end record claims 2^63-1 frames: the padding saturates, the budget (no
   * limit) refuses what cannot be added, nothing reaches malloc */
  rm_error_t err;
  int rc;
  rm_pipeline_t *p =
      build("{'name': 't', 'nodes': [{'id': 'o', 'node_type': 'OpusDecode'}]}", 0, &err, &rc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  static const uint8_t stream[] = {'R',  'M',  'O',  'P',  1,    1,    0,    0,   0,
                                   0,    0xbb, 0x80, 0,    0,    3,    0xc0, 0,   0,
                                   0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  rm_buffer_t *in = rm_buffer_new_binary(NULL, stream, sizeof stream, "application/x-rm-opus");
  rm_result_t *res = NULL;
  rc = rm_test_run1(p, "o", in, 0, &res, &err);
  RM_ASSERT_ERR(rc, &err, RM_ELIMIT, "o", "max_memory_bytes",
                "node 'o' (OpusDecode) needs 18446744073709551615 more bytes of memory, more than "
                "any allocation can hold");
  rm_result_free(res);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

static void test_peak_includes_library_predictions(void) {
  /* Spectrogram n_fft 1024 hop 1024 center false on 4096 f32 samples: 4 frames of 513 bins.
   * The account holds the input (16384 B), the output (4 x 513 x 4 = 8208 B) and the plan's
   * prediction (rm__media_fftw_bytes(1024) = 262144 + 8192) at once. */
  rm_pipeline_t *p = rm_test_pipeline("{'name': 't', 'nodes': [{'id': 's', 'node_type': "
                                      "'Spectrogram', 'params': {'n_fft': 1024, 'hop': 1024, "
                                      "'center': false}}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  float s[4096] = {0};
  rm_buffer_t *in = rm_test_audio_f32(s, 4096, 16000, 1);
  rm_result_t *res = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "s", in, 1, &res, &err), 0);
  RM_ASSERT_INT(rm__media_fftw_bytes(1024), 262144 + 8192);
  RM_ASSERT_INT(rm_pipeline_metrics(p)->peak_memory_bytes, 16384 + 8208 + 262144 + 8192);
  rm_result_free(res);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* A one-shot LoudnessMeter sets libebur128 up, measures and frees it within its flush: its
 * prediction counts at that moment's peak, beside the input and the result held after it
 * (the peak was sampled only after invocations: 16384 + the result, 20 times too low for
 * long inputs). */
static void test_peak_includes_library_memory_freed_within_an_invocation(void) {
  rm_pipeline_t *p =
      rm_test_pipeline("{'name': 't', 'nodes': [{'id': 'l', 'node_type': 'LoudnessMeter'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  float s[4096] = {0};
  rm_buffer_t *in = rm_test_audio_f32(s, 4096, 48000, 1);
  rm_result_t *res = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "l", in, 1, &res, &err), 0);
  rm_buffer_t *out = rm_test_item(res, "l", 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  RM_ASSERT_INT(rm_pipeline_metrics(p)->peak_memory_bytes,
                16384 + out->size + rm__media_ebur128_bytes(1, 48000));
  rm_result_free(res);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* AudioResample maps a stereo input to mono one feed at a time (RM_MEDIA_SOXR_FEED frames):
 * the run's budget holds the input, the output (its reserve and the emitted buffer),
 * libsoxr's prediction and one feed of mapped samples, never a mono copy of the whole input
 * (10 s at 48 kHz: 1.92 MB more). */
static void test_resample_downmix_holds_one_feed(void) {
  rm_pipeline_t *p = rm_test_pipeline("{'name': 't', 'nodes': [{'id': 'r', 'node_type': "
                                      "'AudioResample', 'params': {'rate': 16000, "
                                      "'channels': 1}}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  size_t frames = 480000;
  float *s = calloc(frames * 2, sizeof *s);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  rm_buffer_t *in = rm_test_audio_f32(s, frames * 2, 48000, 2);
  rm_result_t *res = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "r", in, 1, &res, &err), 0);
  RM_ASSERT_INT(rm_audio_frames(res->outputs[0].items[0]), 160000);
  size_t out_reserve = (160000 + 4096) * sizeof(float);
  size_t bound = frames * 2 * sizeof(float) + 2 * out_reserve +
                 rm__media_soxr_bytes(48000, 16000, 1) + RM_MEDIA_SOXR_FEED * sizeof(float) +
                 65536;                                /* the node's state, the buffers' headers */
  size_t peak = rm_budget_peak(rm_pipeline_budget(p)); /* 6,828,870 B; 8,728,493 before */
  CU_ASSERT(peak <= bound);
  CU_ASSERT(peak + frames * sizeof(float) > bound); /* the bound is not loose by a mono copy */
  rm_result_free(res);
  rm_buffer_unref(in);
  free(s);
  rm_pipeline_free(p);
}

static size_t heap_used(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

/* The predictions are upper bounds of what the libraries allocate (mallinfo2 deltas), for the
 * cases that cost them most. */
static void test_predictions_bound_the_libraries(void) {
  static const struct {
    double in, out;
    unsigned ch;
    unsigned long recipe;
  } soxr_cases[] = {{8000, 192000, 8, SOXR_VHQ},
                    {192000, 8000, 8, SOXR_VHQ},
                    {44100, 48000, 2, SOXR_VHQ},
                    {8000, 192000, 1, SOXR_QQ},
                    {48000, 96000, 1, SOXR_HQ}};
  static float in[RM_MEDIA_SOXR_FEED * 8], out[(RM_MEDIA_SOXR_FEED * 24 + 1024) * 8];
  for (size_t i = 0; i < sizeof soxr_cases / sizeof soxr_cases[0]; i++) {
    size_t before = heap_used(), most = 0;
    soxr_quality_spec_t q = soxr_quality_spec(soxr_cases[i].recipe, 0);
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    soxr_error_t e = NULL;
    soxr_t s = soxr_create(soxr_cases[i].in, soxr_cases[i].out, soxr_cases[i].ch, &e, &io, &q, &rt);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    size_t room = sizeof out / sizeof out[0] / soxr_cases[i].ch, idone, odone;
    for (int k = 0; k < 4; k++) {
      soxr_process(s, in, RM_MEDIA_SOXR_FEED, &idone, out, room, &odone);
      most = heap_used() - before > most ? heap_used() - before : most;
    }
    soxr_process(s, NULL, 0, &idone, out, room, &odone);
    most = heap_used() - before > most ? heap_used() - before : most;
    soxr_delete(s);
    size_t predicted = rm__media_soxr_bytes(soxr_cases[i].in, soxr_cases[i].out, soxr_cases[i].ch);
    printf("\n    soxr %g -> %g Hz x%u: %zu B, predicted %zu", soxr_cases[i].in, soxr_cases[i].out,
           soxr_cases[i].ch, most, predicted);
    CU_ASSERT(most <= predicted);
  }
  for (int n = 256; n <= 65536; n *= 16) {
    float *x = fftwf_malloc(sizeof(float) * (size_t)n);
    fftwf_complex *y = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(n / 2 + 1));
    size_t before = heap_used();
    rm__media_fft_lock();
    fftwf_plan plan = fftwf_plan_dft_r2c_1d(n, x, y, FFTW_ESTIMATE);
    rm__media_fft_unlock();
    size_t used = heap_used() - before;
    printf("\n    fftw r2c %d: %zu B, predicted %zu", n, used, rm__media_fftw_bytes(n));
    CU_ASSERT(used <= rm__media_fftw_bytes(n));
    rm__media_fft_lock();
    fftwf_destroy_plan(plan);
    rm__media_fft_unlock();
    fftwf_free(x);
    fftwf_free(y);
  }
  static const unsigned eb[][2] = {{1, 8000}, {2, 48000}, {8, 192000}};
  for (size_t i = 0; i < 3; i++) {
    size_t before = heap_used();
    ebur128_state *st = ebur128_init(eb[i][0], eb[i][1],
                                     EBUR128_MODE_I | EBUR128_MODE_TRUE_PEAK | EBUR128_MODE_LRA);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    size_t used = heap_used() - before;
    printf("\n    ebur128 %u ch %u Hz: %zu B, predicted %zu", eb[i][0], eb[i][1], used,
           rm__media_ebur128_bytes(eb[i][0], eb[i][1]));
    CU_ASSERT(used <= rm__media_ebur128_bytes(eb[i][0], eb[i][1]));
    ebur128_destroy(&st);
  }
}

int main(void) {
  /* large blocks from the heap too, so mallinfo2 sees them whatever the mmap threshold */
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  static const rm_test_case_t cases[] = {
      RM_TEST(test_node_over_budget_fails_before_allocating),
      RM_TEST(test_parent_refusal_names_the_server_budget),
      RM_TEST(test_inputs_and_create_are_charged),
      RM_TEST(test_budget_below_the_pipeline_itself_names_the_budget),
      RM_TEST(test_labelled_budget_names_its_owner_and_limit),
      RM_TEST(test_unlimited_still_refuses_what_no_allocation_holds),
      RM_TEST(test_peak_includes_library_predictions),
      RM_TEST(test_peak_includes_library_memory_freed_within_an_invocation),
      RM_TEST(test_resample_downmix_holds_one_feed),
      RM_TEST(test_predictions_bound_the_libraries),
      {NULL, NULL}};
  rm_test_suite("memory_budget", cases);
  return rm_test_run();
}
