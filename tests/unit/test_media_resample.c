/* test_media_resample.c - AudioResample: SNR against the analytic sine, pass/stop band,
 * exact lengths, streaming equals one-shot, formats, parameter and input errors. */
#include "test_media_support.h"

/* Resamples a sine of `freq` Hz, amplitude amp, `secs` long, from in_rate to out_rate
 * with `quality`; returns the output samples (mono) in *out and their count. */
static size_t resample_sine(double freq, double amp, uint32_t in_rate, uint32_t out_rate,
                            double secs, const char *quality, double **out) {
  char params[128];
  snprintf(params, sizeof params, "{\"rate\":%u,\"quality\":\"%s\"}", out_rate, quality);
  rm_pipeline_t *p = media_node("AudioResample", params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  size_t n = (size_t)(secs * in_rate);
  rm_buffer_t *in = media_f32(in_rate, 1, n);
  for (size_t i = 0; i < n; i++)
    media_fdata(in)[i] = (float)(amp * sin(2 * M_PI * freq * (double)i / in_rate));
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), 0);
  size_t got = media_concat(&it, out);
  media_items_free(&it);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
  return got;
}

/* SNR of out (at rate) against amp*sin(2 pi f t), skipping `skip` seconds at each end. */
static double sine_snr(const double *out, size_t n, double freq, double amp, uint32_t rate,
                       double skip) {
  size_t from = (size_t)(skip * rate), to = n - from;
  double *ref = malloc((to - from) * sizeof *ref);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
  for (size_t i = from; i < to; i++)
    ref[i - from] = amp * sin(2 * M_PI * freq * (double)i / rate);
  double snr = media_snr_vs(out + from, ref, to - from);
  free(ref);
  return snr;
}

static void check_sine_snr(uint32_t in_rate, uint32_t out_rate) {
  double *out;
  size_t n = resample_sine(1000, 0.5, in_rate, out_rate, 1.0, "very-high", &out);
  CU_ASSERT_EQUAL(n, out_rate); /* 1 s in, exactly 1 s out */
  double snr = sine_snr(out, n, 1000, 0.5, out_rate, 0.05);
  printf("\n    %u -> %u very-high: SNR %.1f dB ", in_rate, out_rate, snr);
  CU_ASSERT(snr >= 100.0);
  free(out);
}

static void test_sine_48k_to_16k_snr_100db(void) { check_sine_snr(48000, 16000); }
static void test_sine_44k1_to_48k_snr_100db(void) { check_sine_snr(44100, 48000); }

/* Gain in dB of a tone through 48k -> 16k very-high, measured on the steady state. */
static double tone_gain_db(double freq) {
  double *out;
  size_t n = resample_sine(freq, 0.5, 48000, 16000, 0.5, "very-high", &out);
  CU_ASSERT_EQUAL(n, 8000);
  size_t from = 800, to = n - 800;
  double e = media_energy(out, from, to, 1) / (double)(to - from);
  free(out);
  return 10 * log10(e / (0.5 * 0.5 / 2));
}

static void test_passband_7k9_kept_9k_rejected_90db(void) {
  double kept = tone_gain_db(7900), cut = tone_gain_db(9000);
  printf("\n    7.9 kHz: %+.3f dB, 9 kHz: %.1f dB ", kept, cut);
  CU_ASSERT(fabs(kept) <= 0.1);
  CU_ASSERT(cut <= -90.0);
}

/* round(n * out / in) frames for a one-shot run, whatever the ratio. */
static void test_exact_length(void) {
  static const struct {
    uint32_t in, out;
    size_t n;
  } cases[] = {{44100, 16000, 1001}, {48000, 44100, 12345}, {8000, 192000, 777},
               {192000, 8000, 100},  {22050, 16000, 1},     {16000, 16000, 999},
               {11025, 48000, 0},    {48000, 16000, 1},     {16000, 16000, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char params[64];
    snprintf(params, sizeof params, "{\"rate\":%u}", cases[c].out);
    rm_pipeline_t *p = media_node("AudioResample", params);
    rm_buffer_t *in = media_f32(cases[c].in, 2, cases[c].n);
    for (size_t i = 0; i < 2 * cases[c].n; i++)
      media_fdata(in)[i] = (float)sin(0.01 * (double)i);
    media_items_t it = {0};
    rm_error_t err;
    CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), 0);
    CU_ASSERT_EQUAL(it.n, 1); /* one item per input, empty when no frame comes out */
    size_t frames = 0;
    for (size_t i = 0; i < it.n; i++) {
      frames += rm_audio_frames(it.items[i]);
      CU_ASSERT_EQUAL(it.items[i]->u.audio.sample_rate, cases[c].out);
      CU_ASSERT_EQUAL(it.items[i]->u.audio.channels, 2);
    }
    size_t want = (size_t)((cases[c].n * (uint64_t)cases[c].out + cases[c].in / 2) / cases[c].in);
    CU_ASSERT_EQUAL(frames, want);
    media_items_free(&it);
    rm_buffer_unref(in);
    rm_pipeline_free(p);
  }
}

/* Feeding a stream in uneven chunks gives the same samples as one call. */
static void test_stream_equals_one_shot(void) {
  size_t n = 24000;
  rm_buffer_t *whole = media_f32(48000, 1, n);
  unsigned long long seed = 7;
  for (size_t i = 0; i < n; i++)
    media_fdata(whole)[i] = (float)(0.3 * sin(0.05 * (double)i) + 0.1 * media_noise(&seed));
  static const size_t cuts[] = {0, 1, 480, 5000, 5001, 17777, 24000};
  rm_buffer_t *chunks[6];
  for (size_t c = 0; c < 6; c++) {
    chunks[c] = media_f32(48000, 1, cuts[c + 1] - cuts[c]);
    memcpy(chunks[c]->data, media_fdata(whole) + cuts[c], chunks[c]->size);
  }
  rm_pipeline_t *p = media_node("AudioResample", "{\"rate\":16000,\"quality\":\"very-high\"}");
  media_items_t one = {0}, many = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, whole, &one, &err), 0);
  static const char *const keys[] = {"n"};
  CU_ASSERT_EQUAL(media_stream(p, chunks, 6, keys, &many, 1, &err), 0);
  double *a, *b;
  size_t na = media_concat(&one, &a), nb = media_concat(&many, &b);
  CU_ASSERT_EQUAL(na, 8000);
  CU_ASSERT_EQUAL(nb, 8000);
  double maxdiff = 0;
  for (size_t i = 0; i < na && i < nb; i++)
    maxdiff = fmax(maxdiff, fabs(a[i] - b[i]));
  CU_ASSERT(maxdiff < 1e-6);
  free(a);
  free(b);
  media_items_free(&one);
  media_items_free(&many);
  for (size_t c = 0; c < 6; c++)
    rm_buffer_unref(chunks[c]);
  rm_buffer_unref(whole);
  rm_pipeline_free(p);
}

/* i16 stereo in: same format out by default; mono down-mix is the mean; format param. */
static void test_formats_and_downmix(void) {
  size_t n = 4800;
  int16_t *s = malloc(2 * n * sizeof *s);
  for (size_t i = 0; i < n; i++) {
    s[2 * i] = (int16_t)(16000 * sin(2 * M_PI * 500 * (double)i / 48000));
    s[2 * i + 1] = (int16_t)(-s[2 * i] / 2);
  }
  rm_buffer_t *in = rm_test_audio_i16(s, 2 * n, 48000, 2);
  rm_pipeline_t *p = media_node("AudioResample", "{\"rate\":24000,\"channels\":1}");
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_FATAL(it.n >= 1);
  CU_ASSERT_EQUAL(it.items[0]->u.audio.format, RM_SAMPLE_I16);
  CU_ASSERT_EQUAL(it.items[0]->u.audio.channels, 1);
  double *out;
  size_t m = media_concat(&it, &out);
  CU_ASSERT_EQUAL(m, 2400);
  /* mean of L and -L/2 is L/4: a 500 Hz sine of amplitude 4000/32768 */
  double *ref = malloc(m * sizeof *ref);
  for (size_t i = 0; i < m; i++)
    ref[i] = 4000.0 / 32768 * sin(2 * M_PI * 500 * (double)i / 24000);
  CU_ASSERT(media_snr_vs(out + 200, ref + 200, m - 400) > 60.0);
  free(ref);
  free(out);
  media_items_free(&it);
  rm_pipeline_free(p);

  p = media_node("AudioResample", "{\"rate\":16000,\"format\":\"f32\"}");
  CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_EQUAL(it.items[0]->u.audio.format, RM_SAMPLE_F32);
  CU_ASSERT_EQUAL(it.items[0]->u.audio.channels, 2);
  media_items_free(&it);
  rm_pipeline_free(p);

  /* mono up-mix to 4 channels duplicates */
  rm_buffer_t *mono = media_f32(16000, 1, 160);
  for (size_t i = 0; i < 160; i++)
    media_fdata(mono)[i] = (float)i / 160;
  p = media_node("AudioResample", "{\"rate\":16000,\"channels\":4}");
  CU_ASSERT_EQUAL(media_run1(p, mono, &it, &err), 0);
  CU_ASSERT_EQUAL(it.items[0]->u.audio.channels, 4);
  CU_ASSERT_EQUAL(rm_audio_frames(it.items[0]), 160);
  CU_ASSERT_EQUAL(rm_audio_get(it.items[0], 4 * 80 + 3), 0.5);
  media_items_free(&it);
  rm_pipeline_free(p);
  rm_buffer_unref(mono);
  rm_buffer_unref(in);
  free(s);
}

static void test_param_errors(void) {
  media_expect_param_error("AudioResample", "{}", "rate");
  media_expect_param_error("AudioResample", "{\"rate\":7999}", "rate");
  media_expect_param_error("AudioResample", "{\"rate\":192001}", "rate");
  media_expect_param_error("AudioResample", "{\"rate\":16000,\"quality\":\"ultra\"}", "quality");
  media_expect_param_error("AudioResample", "{\"rate\":16000,\"channels\":9}", "channels");
  media_expect_param_error("AudioResample", "{\"rate\":16000,\"passband\":0.999}", "passband");
  media_expect_param_error("AudioResample", "{\"rate\":16000,\"format\":\"u8\"}", "format");
  media_expect_param_error("AudioResample", "{\"rate\":16000,\"ratio\":2}", "ratio");
}

static void test_input_errors(void) {
  rm_pipeline_t *p = media_node("AudioResample", "{\"rate\":16000,\"channels\":2}");
  rm_buffer_t *slow = media_f32(4000, 1, 100), *wide = media_f32(48000, 3, 100);
  memset(slow->data, 0, slow->size);
  memset(wide->data, 0, wide->size);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, slow, &it, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.field, "sample_rate");
  CU_ASSERT_STRING_EQUAL(err.node_id, "n");
  CU_ASSERT_EQUAL(media_run1(p, wide, &it, &err), RM_EINPUT); /* 3 -> 2 channels */
  CU_ASSERT_STRING_EQUAL(err.field, "channels");
  /* a stream whose rate changes mid-way */
  rm_buffer_t *a = media_f32(48000, 2, 100), *b = media_f32(44100, 2, 100);
  memset(a->data, 0, a->size);
  memset(b->data, 0, b->size);
  rm_buffer_t *chunks[] = {a, b};
  static const char *const keys[] = {"n"};
  CU_ASSERT_EQUAL(media_stream(p, chunks, 2, keys, &it, 1, &err), RM_ENODE);
  media_items_free(&it);
  /* the failed stream does not poison the next one */
  CU_ASSERT_EQUAL(media_run1(p, b, &it, &err), 0);
  media_items_free(&it);
  rm_buffer_unref(a);
  rm_buffer_unref(b);
  rm_buffer_unref(slow);
  rm_buffer_unref(wide);
  rm_pipeline_free(p);
}

static void test_registered(void) {
  const rm_node_type_t *t = rm_registry_find("AudioResample");
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT(t->flags & RM_NODE_HEAVY);
  CU_ASSERT_PTR_NOT_NULL(t->flush);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_registered),
                                         RM_TEST(test_sine_48k_to_16k_snr_100db),
                                         RM_TEST(test_sine_44k1_to_48k_snr_100db),
                                         RM_TEST(test_passband_7k9_kept_9k_rejected_90db),
                                         RM_TEST(test_exact_length),
                                         RM_TEST(test_stream_equals_one_shot),
                                         RM_TEST(test_formats_and_downmix),
                                         RM_TEST(test_param_errors),
                                         RM_TEST(test_input_errors),
                                         {NULL, NULL}};
  rm_test_suite("media_resample", cases);
  return rm_test_run();
}
