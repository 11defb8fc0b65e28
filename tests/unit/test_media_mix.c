/* test_media_mix.c - SilenceTrim (exact cut points, margins, held internal silence,
 * streams) and Mixer (gains, lengths, formats, mismatched inputs named by source node). */
#include "test_media_support.h"

/* zeros(lead) + cos tone (starts at full amplitude) + zeros(tail), 16 kHz mono. */
static rm_buffer_t *padded_tone(size_t lead, size_t tone, size_t tail, double amp) {
  rm_buffer_t *b = media_f32(16000, 1, lead + tone + tail);
  memset(b->data, 0, b->size);
  for (size_t i = 0; i < tone; i++)
    media_fdata(b)[lead + i] = (float)(amp * cos(2 * M_PI * 500 * (double)i / 16000));
  /* make the tone's last sample loud too, so the expected cut is exact */
  media_fdata(b)[lead + tone - 1] = (float)amp;
  return b;
}

static void expect_trim(const char *params, rm_buffer_t **chunks, size_t n_chunks,
                        const rm_buffer_t *whole, size_t from, size_t len) {
  rm_pipeline_t *p = media_node("SilenceTrim", params);
  media_items_t it = {0};
  static const char *const keys[] = {"n"};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_stream(p, chunks, n_chunks, keys, &it, 1, &err), 0);
  double *y;
  size_t n = media_concat(&it, &y);
  CU_ASSERT_EQUAL(n, len);
  if (n != len)
    fprintf(stderr, "\n  %s: %zu frames, expected %zu\n", params, n, len);
  size_t diff = 0;
  for (size_t i = 0; i < n && i < len; i++)
    diff += y[i] != rm_audio_get(whole, from + i);
  CU_ASSERT_EQUAL(diff, 0);
  free(y);
  media_items_free(&it);
  rm_pipeline_free(p);
}

static void test_trim_exact_cuts(void) {
  rm_buffer_t *in = padded_tone(4800, 8000, 3200, 0.5);
  expect_trim("{}", &in, 1, in, 4800, 8000);
  expect_trim("{\"keep_ms\":10}", &in, 1, in, 4800 - 160, 8000 + 320);
  expect_trim("{\"mode\":\"start\"}", &in, 1, in, 4800, 8000 + 3200);
  expect_trim("{\"mode\":\"end\"}", &in, 1, in, 0, 4800 + 8000);
  expect_trim("{\"keep_ms\":1000}", &in, 1, in, 0, 16000); /* margins larger than the gaps */
  rm_buffer_unref(in);
}

/* Silence inside the sound is kept; a stream cut anywhere gives the one-shot result. */
static void test_trim_stream_keeps_inner_silence(void) {
  rm_buffer_t *whole = padded_tone(1000, 3000, 2000, 0.5);
  /* a second burst after an inner gap */
  for (size_t i = 0; i < 1500; i++)
    media_fdata(whole)[4500 + i] = (float)(0.25 * cos(0.3 * (double)i));
  media_fdata(whole)[5999] = 0.25f;
  static const size_t cuts[] = {0, 10, 999, 1001, 3990, 4100, 4499, 5000, 5999, 6000};
  rm_buffer_t *chunks[9];
  for (size_t k = 0; k < 9; k++) {
    chunks[k] = media_f32(16000, 1, cuts[k + 1] - cuts[k]);
    memcpy(chunks[k]->data, media_fdata(whole) + cuts[k], chunks[k]->size);
  }
  expect_trim("{}", chunks, 9, whole, 1000, 5000);
  expect_trim("{\"keep_ms\":2}", chunks, 9, whole, 1000 - 32, 32 + 5000); /* no tail to keep */
  for (size_t k = 0; k < 9; k++)
    rm_buffer_unref(chunks[k]);
  rm_buffer_unref(whole);
}

/* Below the threshold everything is silence: one empty buffer. */
static void test_trim_all_silent(void) {
  rm_buffer_t *in = padded_tone(100, 1000, 100, pow(10, -60.0 / 20));
  rm_pipeline_t *p = media_node("SilenceTrim", "{\"threshold_db\":-50}");
  media_items_t it = {0};
  rm_error_t err;
  media_run_one_empty(p, in, 16000, &it);
  media_items_free(&it);
  rm_pipeline_free(p);
  p = media_node("SilenceTrim", "{\"threshold_db\":-70}");
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_EQUAL(rm_audio_frames(it.items[0]), 1000);
  media_items_free(&it);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

#define MIX_PIPELINE(params)                                                                       \
  "{\"name\":\"m\",\"nodes\":[{\"id\":\"a\",\"node_type\":\"PassThrough\"},"                       \
  "{\"id\":\"b\",\"node_type\":\"PassThrough\"},{\"id\":\"mix\",\"node_type\":\"Mixer\","          \
  "\"params\":" params "}],\"connections\":[{\"from\":\"a\",\"to\":\"mix\"},"                      \
  "{\"from\":\"b\",\"to\":\"mix\"}]}"

static int mix2(rm_pipeline_t *p, rm_buffer_t *a, rm_buffer_t *b, rm_buffer_t **out,
                rm_error_t *err) {
  rm_input_t in[2] = {{"a", a}, {"b", b}};
  rm_run_opts_t opts = {.end_of_stream = 1};
  rm_result_t *r = NULL;
  int rc = rm_pipeline_run(p, in, 2, &opts, &r, err);
  *out = NULL;
  const rm_output_t *o = rm_test_output(r, "mix");
  if (!rc && o && o->n_items == 1)
    *out = rm_buffer_ref(o->items[0]);
  rm_result_free(r);
  return rc;
}

static void test_mixer_gains_lengths_formats(void) {
  rm_buffer_t *a = media_f32(16000, 2, 1000);
  int16_t s[2 * 600];
  for (size_t i = 0; i < 2000; i++)
    media_fdata(a)[i] = (float)(0.4 * sin(0.01 * (double)i));
  for (size_t i = 0; i < 1200; i++)
    s[i] = (int16_t)(20000 * cos(0.02 * (double)i));
  rm_buffer_t *b = rm_test_audio_i16(s, 1200, 16000, 2);
  rm_pipeline_t *p = rm_test_pipeline(MIX_PIPELINE("{\"gains_db\":[0,-6.020599913]}"));
  rm_buffer_t *out;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(mix2(p, a, b, &out, &err), 0);
  CU_ASSERT_EQUAL(out->u.audio.format, RM_SAMPLE_F32);
  CU_ASSERT_EQUAL(rm_audio_frames(out), 1000);
  double maxerr = 0;
  for (size_t i = 0; i < 2000; i++) {
    double want = rm_audio_get(a, i) + (i < 1200 ? 0.5 * rm_audio_get(b, i) : 0);
    maxerr = fmax(maxerr, fabs(rm_audio_get(out, i) - want));
  }
  CU_ASSERT(maxerr < 1e-6);
  rm_buffer_unref(out);
  rm_pipeline_free(p);
  /* shortest, i16 output: b's length, clipped sums */
  p = rm_test_pipeline(
      MIX_PIPELINE("{\"length\":\"shortest\",\"format\":\"i16\",\"gains_db\":[24,24]}"));
  CU_ASSERT_EQUAL_FATAL(mix2(p, a, b, &out, &err), 0);
  CU_ASSERT_EQUAL(out->u.audio.format, RM_SAMPLE_I16);
  CU_ASSERT_EQUAL(rm_audio_frames(out), 600);
  size_t clipped = 0;
  for (size_t i = 0; i < 1200; i++)
    clipped += fabs(rm_audio_get(out, i)) >= 32767.0 / 32768;
  CU_ASSERT(clipped > 100);
  rm_buffer_unref(out);
  rm_pipeline_free(p);
  /* first: a's length even when b is longer */
  p = rm_test_pipeline(MIX_PIPELINE("{\"length\":\"first\"}"));
  CU_ASSERT_EQUAL_FATAL(mix2(p, b, a, &out, &err), 0);
  CU_ASSERT_EQUAL(rm_audio_frames(out), 600);
  CU_ASSERT_EQUAL(out->u.audio.format, RM_SAMPLE_I16);
  rm_buffer_unref(out);
  rm_pipeline_free(p);
  rm_buffer_unref(a);
  rm_buffer_unref(b);
}

static void test_mixer_mismatch_errors(void) {
  rm_buffer_t *a = media_f32(16000, 1, 100), *b = media_f32(48000, 1, 100),
              *c = media_f32(16000, 2, 100);
  memset(a->data, 0, a->size);
  memset(b->data, 0, b->size);
  memset(c->data, 0, c->size);
  rm_pipeline_t *p = rm_test_pipeline(MIX_PIPELINE("{}"));
  rm_buffer_t *out;
  rm_error_t err;
  CU_ASSERT_EQUAL(mix2(p, a, b, &out, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.node_id, "mix");
  CU_ASSERT_STRING_EQUAL(err.message,
                         "node 'mix' (Mixer): input from 'a' (16000 Hz 1 ch) and input from 'b' "
                         "(48000 Hz 1 ch) differ; a mix needs one rate and channel count "
                         "(resample first)");
  CU_ASSERT_EQUAL(mix2(p, a, c, &out, &err), RM_EINPUT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "input from 'a' (16000 Hz 1 ch) and input from 'b' "
                                             "(16000 Hz 2 ch)"));
  rm_pipeline_free(p);
  p = rm_test_pipeline(MIX_PIPELINE("{\"gains_db\":[0,0,0]}"));
  CU_ASSERT_EQUAL(mix2(p, a, a, &out, &err), RM_EPARAM);
  CU_ASSERT_STRING_EQUAL(err.field, "gains_db");
  CU_ASSERT_STRING_EQUAL(err.node_id, "mix");
  rm_pipeline_free(p);
  rm_buffer_unref(a);
  rm_buffer_unref(b);
  rm_buffer_unref(c);
}

static void test_params_and_registry(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("SilenceTrim"));
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("Mixer"));
  CU_ASSERT(rm_registry_find("Mixer")->inputs[0].flags & RM_PORT_VARIADIC);
  media_expect_param_error("SilenceTrim", "{\"threshold_db\":1}", "threshold_db");
  media_expect_param_error("SilenceTrim", "{\"mode\":\"middle\"}", "mode");
  media_expect_param_error("SilenceTrim", "{\"keep_ms\":-5}", "keep_ms");
  media_expect_param_error("Mixer", "{\"gains_db\":[0,30]}", "gains_db");
  media_expect_param_error("Mixer", "{\"gains_db\":0}", "gains_db");
  media_expect_param_error("Mixer", "{\"length\":\"max\"}", "length");
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_params_and_registry),
                                         RM_TEST(test_trim_exact_cuts),
                                         RM_TEST(test_trim_stream_keeps_inner_silence),
                                         RM_TEST(test_trim_all_silent),
                                         RM_TEST(test_mixer_gains_lengths_formats),
                                         RM_TEST(test_mixer_mismatch_errors),
                                         {NULL, NULL}};
  rm_test_suite("media_mix", cases);
  return rm_test_run();
}
