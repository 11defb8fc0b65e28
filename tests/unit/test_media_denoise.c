/* test_media_denoise.c - Denoise at 16 and 48 kHz: noise-only stretches come out at least
 * 15 dB quieter, a harmonic burst keeps its level and timing, lengths are exact, chunked
 * streams match one-shot, AGC lifts a quiet signal; errors. */
#include "test_media_support.h"

/* 3 s: white noise at -30 dBFS RMS throughout, a 200 Hz harmonic burst at 1.0-2.0 s.
 * *clean receives the burst alone (caller frees). */
static rm_buffer_t *noisy(uint32_t rate, double **clean) {
  size_t n = 3 * (size_t)rate;
  rm_buffer_t *b = media_f32(rate, 1, n);
  double *c = calloc(n, sizeof *c);
  unsigned long long seed = 5;
  double amp = pow(10, -30.0 / 20) * sqrt(3.0);
  for (size_t i = 0; i < n; i++) {
    double t = (double)i / rate, s = 0;
    if (t >= 1.0 && t < 2.0)
      for (int k = 1; k <= 10; k++)
        s += 0.1 / k * sin(2 * M_PI * 200 * k * t);
    c[i] = s;
    media_fdata(b)[i] = (float)(s + amp * media_noise(&seed));
  }
  *clean = c;
  return b;
}

static double region_db(const double *x, uint32_t rate, double from, double to) {
  size_t a = (size_t)(from * rate), b = (size_t)(to * rate);
  return 10 * log10(media_energy(x, a, b, 1) / (double)(b - a));
}

static void check_rate(uint32_t rate) {
  double *clean;
  rm_buffer_t *in = noisy(rate, &clean);
  rm_pipeline_t *p = media_node("Denoise", "{}");
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  double *y, *x;
  size_t ny = media_concat(&it, &y);
  media_items_t inn = {.items = {in}, .n = 1};
  size_t nx = media_concat(&inn, &x);
  CU_ASSERT_EQUAL_FATAL(ny, nx);
  double noise_in = region_db(x, rate, 2.3, 3.0), noise_out = region_db(y, rate, 2.3, 3.0);
  double tone_in = region_db(clean, rate, 1.2, 1.9), tone_out = region_db(y, rate, 1.2, 1.9);
  /* timing: the output correlates best with the clean burst at lag 0 */
  long best = 0;
  double best_c = -1e300;
  for (long lag = -40; lag <= 40; lag++) {
    double c = 0;
    for (size_t i = (size_t)(1.2 * rate); i < (size_t)(1.9 * rate); i++)
      c += clean[i] * y[(size_t)((long)i + lag)];
    if (c > best_c) {
      best_c = c;
      best = lag;
    }
  }
  printf("\n    %u Hz: noise %.1f -> %.1f dB, burst %.1f -> %.1f dB, lag %ld ", rate, noise_in,
         noise_out, tone_in, tone_out, best);
  CU_ASSERT(noise_out <= noise_in - 15.0);
  CU_ASSERT(fabs(tone_out - tone_in) <= 2.0);
  CU_ASSERT_EQUAL(best, 0);
  free(x);
  free(y);
  free(clean);
  media_items_free(&it);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

static void test_suppresses_noise_16k(void) { check_rate(16000); }
static void test_suppresses_noise_48k(void) { check_rate(48000); }

static void test_chunked_equals_one_shot_and_length(void) {
  double *clean;
  rm_buffer_t *whole = noisy(16000, &clean);
  free(clean);
  size_t n = 20001; /* not a whole number of frames */
  rm_buffer_t *in = media_f32(16000, 1, n);
  memcpy(in->data, whole->data, n * 4);
  static const size_t cuts[] = {0, 100, 333, 5000, 12345, 20001};
  rm_buffer_t *chunks[5];
  for (size_t k = 0; k < 5; k++) {
    chunks[k] = rm_buffer_new_audio(NULL, 16000, 1, RM_SAMPLE_I16, cuts[k + 1] - cuts[k]);
    rm_audio_convert(media_fdata(in) + cuts[k], RM_SAMPLE_F32, chunks[k]->data, RM_SAMPLE_I16,
                     cuts[k + 1] - cuts[k]);
  }
  rm_pipeline_t *p = media_node("Denoise", "{\"frame_ms\":10,\"format\":\"f32\"}");
  media_items_t one = {0}, many = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &one, &err), 0);
  static const char *const keys[] = {"n"};
  CU_ASSERT_EQUAL_FATAL(media_stream(p, chunks, 5, keys, &many, 1, &err), 0);
  double *a, *b;
  size_t na = media_concat(&one, &a), nb = media_concat(&many, &b);
  CU_ASSERT_EQUAL(na, n);
  CU_ASSERT_EQUAL(nb, n);
  CU_ASSERT_EQUAL(many.items[0]->u.audio.format, RM_SAMPLE_F32);
  size_t diff = 0;
  for (size_t i = 0; i < na && i < nb; i++)
    diff += a[i] != b[i]; /* i16 chunks hold what the node rounds f32 input to anyway */
  CU_ASSERT_EQUAL(diff, 0);
  free(a);
  free(b);
  media_items_free(&one);
  media_items_free(&many);
  rm_pipeline_free(p);
  for (size_t k = 0; k < 5; k++)
    rm_buffer_unref(chunks[k]);
  rm_buffer_unref(in);
  rm_buffer_unref(whole);
}

/* A quiet harmonic signal (-40 dBFS RMS, 4 Hz syllable envelope) is raised towards the
 * -12 dBFS target by AGC. */
static void test_agc_lifts_quiet_signal(void) {
  size_t n = 5 * 16000;
  rm_buffer_t *in = media_f32(16000, 1, n);
  double e = 0;
  for (size_t i = 0; i < n; i++) {
    double t = (double)i / 16000, v = 0;
    for (int k = 1; k <= 10; k++)
      v += sin(2 * M_PI * 200 * k * t) / k;
    v *= 0.6 + 0.4 * sin(2 * M_PI * 4 * t);
    media_fdata(in)[i] = (float)v;
    e += v * v;
  }
  double scale = 0.01 / sqrt(e / (double)n);
  for (size_t i = 0; i < n; i++)
    media_fdata(in)[i] *= (float)scale;
  rm_pipeline_t *p = media_node("Denoise", "{\"agc\":true,\"suppress_db\":0}");
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  double *y;
  size_t ny = media_concat(&it, &y);
  CU_ASSERT_EQUAL(ny, n);
  double level = region_db(y, 16000, 4.0, 5.0);
  printf("\n    AGC: -40 dBFS in, %.1f dBFS after 4 s ", level);
  CU_ASSERT(level >= -40 + 10);
  free(y);
  media_items_free(&it);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

static void test_params_inputs_registry(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("Denoise"));
  media_expect_create_error("Denoise", "{\"frame_ms\":15}", "frame_ms");
  media_expect_param_error("Denoise", "{\"suppress_db\":-1}", "suppress_db");
  media_expect_param_error("Denoise", "{\"agc\":\"yes\"}", "agc");
  media_expect_param_error("Denoise", "{\"agc_level_dbfs\":3}", "agc_level_dbfs");
  media_expect_rate_refused("Denoise");
}

/* An empty input is still one item in a one-shot run: empty, at the input's rate, channels
 * and format (Denoise in both modes, and AutoGain, which shares its streaming). */
static void test_empty_input_gives_one_empty_item(void) {
  static const char *const nodes[][2] = {
      {"Denoise", "{}"}, {"Denoise", "{\"mode\":\"lsa\"}"}, {"AutoGain", "{}"}};
  for (size_t k = 0; k < sizeof nodes / sizeof nodes[0]; k++) {
    rm_pipeline_t *p = media_node(nodes[k][0], nodes[k][1]);
    rm_buffer_t *in = media_f32(16000, 2, 0);
    media_items_t it = {0};
    media_run_one_empty(p, in, 16000, &it);
    CU_ASSERT_EQUAL(it.items[0]->u.audio.channels, 2);
    CU_ASSERT_EQUAL(it.items[0]->u.audio.format, RM_SAMPLE_F32);
    media_items_free(&it);
    rm_buffer_unref(in);
    rm_pipeline_free(p);
  }
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_params_inputs_registry),
                                         RM_TEST(test_suppresses_noise_16k),
                                         RM_TEST(test_suppresses_noise_48k),
                                         RM_TEST(test_chunked_equals_one_shot_and_length),
                                         RM_TEST(test_agc_lifts_quiet_signal),
                                         RM_TEST(test_empty_input_gives_one_empty_item),
                                         {NULL, NULL}};
  rm_test_suite("media_denoise", cases);
  return rm_test_run();
}
