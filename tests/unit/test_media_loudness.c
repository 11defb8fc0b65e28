/* test_media_loudness.c - LoudnessMeter and LoudnessNormalize: the EBU Tech 3341 sine
 * cases, normalising pink-ish noise to -23 LUFS, the true-peak ceiling, silence, streams. */
#include "test_media_support.h"

/* Stereo 48 kHz sine of `freq` Hz with peak `amp` in both channels, `secs` long. */
static rm_buffer_t *stereo_sine(double freq, double amp, double secs) {
  size_t n = (size_t)(secs * 48000);
  rm_buffer_t *b = media_f32(48000, 2, n);
  for (size_t i = 0; i < n; i++)
    media_fdata(b)[2 * i] = media_fdata(b)[2 * i + 1] =
        (float)(amp * sin(2 * M_PI * freq * (double)i / 48000));
  return b;
}

/* Pink-ish noise (white noise through Paul Kellet's economy 1/f filter), stereo 48 kHz,
 * scaled by `scale`. */
static rm_buffer_t *pink_noise(double secs, double scale) {
  size_t n = (size_t)(secs * 48000);
  rm_buffer_t *b = media_f32(48000, 2, n);
  unsigned long long seed = 12345;
  for (int c = 0; c < 2; c++) {
    double b0 = 0, b1 = 0, b2 = 0;
    for (size_t i = 0; i < n; i++) {
      double w = media_noise(&seed);
      b0 = 0.99765 * b0 + w * 0.0990460;
      b1 = 0.96300 * b1 + w * 0.2965164;
      b2 = 0.57000 * b2 + w * 1.0526913;
      media_fdata(b)[2 * i + c] = (float)(scale * (b0 + b1 + b2 + w * 0.1848));
    }
  }
  return b;
}

static json_t *json_of(const rm_buffer_t *b) {
  CU_ASSERT_EQUAL_FATAL(b->kind, RM_KIND_JSON);
  json_t *j = json_loadb((const char *)b->data, b->size, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  return j;
}

static double meter_lufs(rm_buffer_t *in) {
  rm_pipeline_t *p = media_node("LoudnessMeter", "{}");
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_EQUAL_FATAL(it.n, 1);
  json_t *j = json_of(it.items[0]);
  double lufs = json_number_value(json_object_get(j, "integrated_lufs"));
  CU_ASSERT(json_is_number(json_object_get(j, "true_peak_dbtp")));
  CU_ASSERT(json_is_number(json_object_get(j, "loudness_range_lu")));
  CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(j, "duration_s")),
                         (double)rm_audio_frames(in) / 48000, 1e-9);
  json_decref(j);
  media_items_free(&it);
  rm_pipeline_free(p);
  return lufs;
}

/* EBU Tech 3341 case 1 shape: a stereo 1 kHz sine at -20 dBFS peak reads -20 LUFS. */
static void test_sine_minus20_dbfs_is_minus20_lufs(void) {
  rm_buffer_t *b = stereo_sine(1000, 0.1, 5.0);
  double lufs = meter_lufs(b);
  printf("\n    -20 dBFS sine: %.3f LUFS ", lufs);
  CU_ASSERT(fabs(lufs - -20.0) <= 0.1);
  rm_buffer_unref(b);
  b = stereo_sine(1000, pow(10, -23.0 / 20), 5.0);
  lufs = meter_lufs(b);
  printf("-23 dBFS sine: %.3f LUFS ", lufs);
  CU_ASSERT(fabs(lufs - -23.0) <= 0.1);
  rm_buffer_unref(b);
}

/* Normalise -> meter in one pipeline: the meter reads the target within 0.1 LU. */
static void test_pink_noise_normalised_to_minus23(void) {
  static const double scales[] = {0.02, 0.3};
  for (size_t k = 0; k < 2; k++) {
    rm_buffer_t *in = pink_noise(4.0, scales[k]);
    rm_pipeline_t *p = rm_test_pipeline(
        "{\"name\":\"t\",\"nodes\":[{\"id\":\"n\",\"node_type\":\"LoudnessNormalize\"},"
        "{\"id\":\"m\",\"node_type\":\"LoudnessMeter\"}],"
        "\"connections\":[{\"from\":\"n\",\"to\":\"m\"}]}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    rm_result_t *r = NULL;
    rm_error_t err;
    static const char *const outs[] = {"m", "n.report"};
    rm_input_t input = {"n", in};
    rm_run_opts_t opts = {.end_of_stream = 1, .output_nodes = outs, .n_output_nodes = 2};
    CU_ASSERT_EQUAL_FATAL(rm_pipeline_run(p, &input, 1, &opts, &r, &err), 0);
    const rm_output_t *m = rm_test_output(r, "m"), *rep = rm_test_output(r, "n.report");
    CU_ASSERT_FATAL(m && m->n_items == 1 && rep && rep->n_items == 1);
    json_t *j = json_of(m->items[0]), *jr = json_of(rep->items[0]);
    double lufs = json_number_value(json_object_get(j, "integrated_lufs"));
    double in_lufs = json_number_value(json_object_get(jr, "input_lufs"));
    double gain = json_number_value(json_object_get(jr, "gain_db"));
    printf("\n    pink noise %.1f LUFS, gain %+.2f dB -> %.3f LUFS ", in_lufs, gain, lufs);
    CU_ASSERT(fabs(lufs - -23.0) <= 0.1);
    CU_ASSERT_DOUBLE_EQUAL(gain, -23.0 - in_lufs, 1e-3);
    CU_ASSERT(json_is_false(json_object_get(jr, "peak_limited")));
    json_decref(j);
    json_decref(jr);
    rm_result_free(r);
    rm_pipeline_free(p);
    rm_buffer_unref(in);
  }
}

/* A -20 LUFS sine pushed to -5 LUFS would peak at -5 dBFS; a -10 dBTP ceiling holds it. */
static void test_true_peak_ceiling(void) {
  rm_buffer_t *in = stereo_sine(997, 0.1, 2.0);
  rm_pipeline_t *p =
      media_node("LoudnessNormalize", "{\"target_lufs\":-5,\"true_peak_ceiling\":-10}");
  static const char *const keys[] = {"n", "n.report"};
  media_items_t its[2] = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_stream(p, &in, 1, keys, its, 2, &err), 0);
  CU_ASSERT_EQUAL_FATAL(its[0].n, 1);
  CU_ASSERT_EQUAL_FATAL(its[1].n, 1);
  double peak = 0;
  const rm_buffer_t *out = its[0].items[0];
  CU_ASSERT_EQUAL(rm_audio_frames(out), rm_audio_frames(in));
  for (size_t i = 0; i < rm_audio_samples(out); i++)
    peak = fmax(peak, fabs(rm_audio_get(out, i)));
  json_t *jr = json_of(its[1].items[0]);
  CU_ASSERT(json_is_true(json_object_get(jr, "peak_limited")));
  CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(jr, "output_true_peak_dbtp")), -10,
                         1e-3);
  printf("\n    limited peak %.2f dBFS, gain %.2f dB ", 20 * log10(peak),
         json_number_value(json_object_get(jr, "gain_db")));
  CU_ASSERT(20 * log10(peak) <= -10.0 + 1e-4);
  CU_ASSERT(20 * log10(peak) >= -10.2);
  json_decref(jr);
  media_items_free(&its[0]);
  media_items_free(&its[1]);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

/* Silence has no integrated loudness: passed through unchanged, reported as null. */
static void test_silence_passes_unchanged(void) {
  int16_t zeros[9600] = {0};
  rm_buffer_t *in = rm_test_audio_i16(zeros, 9600, 16000, 1);
  rm_pipeline_t *p = media_node("LoudnessNormalize", "{}");
  static const char *const keys[] = {"n", "n.report"};
  media_items_t its[2] = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_stream(p, &in, 1, keys, its, 2, &err), 0);
  CU_ASSERT_EQUAL_FATAL(its[0].n, 1);
  CU_ASSERT_EQUAL(its[0].items[0]->u.audio.format, RM_SAMPLE_I16);
  CU_ASSERT_EQUAL(its[0].items[0]->size, in->size);
  CU_ASSERT_EQUAL(memcmp(its[0].items[0]->data, in->data, in->size), 0);
  json_t *jr = json_of(its[1].items[0]);
  CU_ASSERT(json_is_null(json_object_get(jr, "input_lufs")));
  CU_ASSERT_EQUAL(json_number_value(json_object_get(jr, "gain_db")), 0.0);
  json_decref(jr);
  media_items_free(&its[0]);
  media_items_free(&its[1]);
  rm_pipeline_free(p);
  rm_buffer_unref(in);

  p = media_node("LoudnessMeter", "{}");
  media_items_t it = {0};
  in = rm_test_audio_i16(zeros, 100, 16000, 1);
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  jr = json_of(it.items[0]);
  CU_ASSERT(json_is_null(json_object_get(jr, "integrated_lufs")));
  CU_ASSERT(json_is_null(json_object_get(jr, "true_peak_dbtp")));
  json_decref(jr);
  media_items_free(&it);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

/* A stream fed in chunks is measured as a whole: one output at the end, the whole length,
 * the same gain as one-shot. */
static void test_stream_in_chunks(void) {
  rm_buffer_t *whole = pink_noise(2.0, 0.05);
  size_t n = rm_audio_frames(whole), cut = 30001;
  rm_buffer_t *a = media_f32(48000, 2, cut), *b = media_f32(48000, 2, n - cut);
  memcpy(a->data, whole->data, a->size);
  memcpy(b->data, whole->data + a->size, b->size);
  rm_pipeline_t *p = media_node("LoudnessNormalize", "{\"format\":\"f64\"}");
  media_items_t one = {0}, two = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, whole, &one, &err), 0);
  rm_buffer_t *chunks[] = {a, b};
  static const char *const keys[] = {"n"};
  CU_ASSERT_EQUAL_FATAL(media_stream(p, chunks, 2, keys, &two, 1, &err), 0);
  CU_ASSERT_EQUAL_FATAL(one.n, 1);
  CU_ASSERT_EQUAL_FATAL(two.n, 1);
  CU_ASSERT_EQUAL(two.items[0]->u.audio.format, RM_SAMPLE_F64);
  CU_ASSERT_EQUAL(one.items[0]->size, two.items[0]->size);
  CU_ASSERT_EQUAL(memcmp(one.items[0]->data, two.items[0]->data, one.items[0]->size), 0);
  media_items_free(&one);
  media_items_free(&two);
  rm_pipeline_free(p);
  rm_buffer_unref(a);
  rm_buffer_unref(b);
  rm_buffer_unref(whole);
}

/* A request's input may borrow memory that is gone after its run; a stream spanning runs
 * must not read it later (valgrind and ASan would see it). */
static void test_borrowed_input_across_runs(void) {
  rm_buffer_t *ref = pink_noise(1.0, 0.1);
  rm_pipeline_t *p = media_node("LoudnessNormalize", "{}");
  float *mem = malloc(ref->size);
  memcpy(mem, ref->data, ref->size);
  size_t half = ref->size / 2;
  rm_buffer_t *a = rm_buffer_new_borrowed(RM_KIND_AUDIO, mem, half, NULL);
  a->u.audio = ref->u.audio;
  rm_input_t in = {"n", a};
  rm_run_opts_t opts = {.end_of_stream = 0};
  rm_result_t *r = NULL;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_pipeline_run(p, &in, 1, &opts, &r, &err), 0);
  rm_result_free(r);
  rm_buffer_unref(a);
  free(mem); /* the caller's memory is gone */
  rm_buffer_t *b = media_f32(48000, 2, rm_audio_frames(ref) - half / 8);
  memcpy(b->data, ref->data + half, b->size);
  in.buf = b;
  opts.end_of_stream = 1;
  CU_ASSERT_EQUAL_FATAL(rm_pipeline_run(p, &in, 1, &opts, &r, &err), 0);
  const rm_output_t *o = rm_test_output(r, "n");
  CU_ASSERT_FATAL(o && o->n_items == 1);
  CU_ASSERT_EQUAL(o->items[0]->size, ref->size);
  rm_buffer_t *streamed = rm_buffer_ref(o->items[0]);
  media_items_t one = {0};
  rm_result_free(r);
  CU_ASSERT_EQUAL_FATAL(media_run1(p, ref, &one, &err), 0); /* the same as one-shot */
  CU_ASSERT(one.items[0]->size == streamed->size &&
            memcmp(one.items[0]->data, streamed->data, streamed->size) == 0);
  rm_buffer_unref(streamed);
  media_items_free(&one);
  rm_buffer_unref(b);
  rm_buffer_unref(ref);
  rm_pipeline_free(p);
}

/* Regression: 1 Hz audio was answered "libebur128 could not start (out of memory)"
 * (RESOURCE_EXHAUSTED): the rate is the input's fault, below libebur128's 16 Hz. */
static void test_rate_outside_libebur128_is_invalid_input(void) {
  static const char *const types[] = {"LoudnessMeter", "LoudnessNormalize"};
  static const uint32_t rates[] = {1, 15};
  for (size_t t = 0; t < 2; t++) {
    for (size_t k = 0; k < 2; k++) {
      rm_pipeline_t *p = media_node(types[t], "{}");
      CU_ASSERT_PTR_NOT_NULL_FATAL(p);
      rm_buffer_t *in = media_f32(rates[k], 1, 4);
      memset(in->data, 0, in->size);
      media_items_t it = {0};
      rm_error_t err;
      CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), RM_EINPUT);
      CU_ASSERT_STRING_EQUAL(err.node_id, "n");
      CU_ASSERT_STRING_EQUAL(err.field, "sample_rate");
      char want[160];
      snprintf(want, sizeof want, "loudness is measured on audio of 16 Hz or more, not %u Hz",
               rates[k]);
      if (!strstr(err.message, want))
        fprintf(stderr, "\n  message: %s\n", err.message);
      CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
      media_items_free(&it);
      rm_buffer_unref(in);
      /* the node still works on valid audio after the refusal */
      in = media_f32(16000, 1, 1600);
      memset(in->data, 0, in->size);
      CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), 0);
      media_items_free(&it);
      rm_buffer_unref(in);
      rm_pipeline_free(p);
    }
  }
}

static void test_params_and_registry(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("LoudnessNormalize"));
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("LoudnessMeter"));
  CU_ASSERT(rm_registry_find("LoudnessNormalize")->flags & RM_NODE_HEAVY);
  media_expect_param_error("LoudnessNormalize", "{\"target_lufs\":1}", "target_lufs");
  media_expect_param_error("LoudnessNormalize", "{\"target_lufs\":\"-23\"}", "target_lufs");
  media_expect_param_error("LoudnessNormalize", "{\"true_peak_ceiling\":-31}", "true_peak_ceiling");
  media_expect_param_error("LoudnessNormalize", "{\"max_gain_db\":-1}", "max_gain_db");
  media_expect_param_error("LoudnessMeter", "{\"true_peak\":1}", "true_peak");
  media_expect_param_error("LoudnessMeter", "{\"gate\":1}", "gate");
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_params_and_registry),
                                         RM_TEST(test_sine_minus20_dbfs_is_minus20_lufs),
                                         RM_TEST(test_pink_noise_normalised_to_minus23),
                                         RM_TEST(test_true_peak_ceiling),
                                         RM_TEST(test_silence_passes_unchanged),
                                         RM_TEST(test_stream_in_chunks),
                                         RM_TEST(test_borrowed_input_across_runs),
                                         RM_TEST(test_rate_outside_libebur128_is_invalid_input),
                                         {NULL, NULL}};
  rm_test_suite("media_loudness", cases);
  return rm_test_run();
}
