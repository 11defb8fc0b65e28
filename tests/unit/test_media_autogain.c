/* test_media_autogain.c - AutoGain: parameter and input errors name node and field, output
 * as long as the input in the input's format (or the one asked for), stereo channels levelled
 * independently (identical channels stay identical), a quiet harmonic signal lifted. Speech
 * levels are asserted on the speech corpus (tests/speech/test_speech_autogain.c). */
#include "test_media_support.h"

/* 6 s of a 200 Hz harmonic signal at about -45 dBFS RMS, syllable-like 150 ms bursts, in
 * ch channels (the second at half the first's amplitude when `differ`). */
static rm_buffer_t *quiet(uint32_t rate, uint32_t ch, rm_sample_format_t fmt, int differ) {
  size_t n = 6 * (size_t)rate;
  rm_buffer_t *b = rm_buffer_new_audio(NULL, rate, ch, fmt, n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  for (size_t i = 0; i < n; i++) {
    double t = (double)i / rate, s = 0;
    if (fmod(t, 0.3) < 0.15)
      for (int k = 1; k <= 10; k++)
        s += 0.006 / k * sin(2 * M_PI * 200 * k * t);
    for (uint32_t c = 0; c < ch; c++)
      rm_audio_set(b, i * ch + c, differ && c ? s / 2 : s);
  }
  return b;
}

static double rms_db(const double *x, size_t from, size_t to, size_t stride, size_t off) {
  double e = 0;
  for (size_t i = from; i < to; i++)
    e += x[i * stride + off] * x[i * stride + off];
  return 10 * log10(e / (double)(to - from) + 1e-30);
}

static void test_lifts_quiet_signal(void) {
  static const rm_sample_format_t fmts[] = {RM_SAMPLE_F32, RM_SAMPLE_I16};
  for (size_t f = 0; f < 2; f++) {
    rm_buffer_t *in = quiet(16000, 1, fmts[f], 0);
    rm_pipeline_t *p = media_node("AutoGain", "{}");
    media_items_t it = {0};
    rm_error_t err;
    CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
    double *x, *y;
    media_items_t inn = {.items = {in}, .n = 1};
    size_t nx = media_concat(&inn, &x), ny = media_concat(&it, &y);
    CU_ASSERT_EQUAL(ny, nx);
    for (size_t i = 0; i < it.n; i++)
      CU_ASSERT_EQUAL(it.items[i]->u.audio.format, fmts[f]);
    /* the last second: at least 15 dB louder than the input, never above full scale */
    double gain = rms_db(y, 80000, 96000, 1, 0) - rms_db(x, 80000, 96000, 1, 0);
    CU_ASSERT(gain >= 15);
    for (size_t i = 0; i < ny; i++)
      CU_ASSERT_FATAL(fabs(y[i]) <= 1.0);
    free(x);
    free(y);
    media_items_free(&it);
    rm_buffer_unref(in);
    rm_pipeline_free(p);
  }
}

/* Each channel has its own AGC: identical channels come out identical; a channel at half
 * the other's amplitude is lifted to about the same level (within 2 dB). */
static void test_stereo_channels_independent(void) {
  for (int differ = 0; differ < 2; differ++) {
    rm_buffer_t *in = quiet(48000, 2, RM_SAMPLE_F32, differ);
    rm_pipeline_t *p = media_node("AutoGain", "{\"format\":\"f32\"}");
    media_items_t it = {0};
    rm_error_t err;
    CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
    double *y;
    size_t ny = media_concat(&it, &y);
    CU_ASSERT_EQUAL_FATAL(ny, 2 * 6 * 48000);
    if (!differ) {
      size_t same = 0;
      for (size_t i = 0; i < ny; i += 2)
        same += y[i] == y[i + 1];
      CU_ASSERT_EQUAL(same, ny / 2);
    } else {
      double l = rms_db(y, 240000, 288000, 2, 0), r = rms_db(y, 240000, 288000, 2, 1);
      printf("\n    stereo, right 6 dB below left: left %.2f, right %.2f dBFS ", l, r);
      CU_ASSERT(fabs(l - r) <= 2.0);
    }
    free(y);
    media_items_free(&it);
    rm_buffer_unref(in);
    rm_pipeline_free(p);
  }
}

static void test_errors(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("AutoGain"));
  media_expect_param_error("AutoGain", "{\"target_dbfs\":-10}", "target_dbfs");
  media_expect_param_error("AutoGain", "{\"target_dbfs\":-51}", "target_dbfs");
  media_expect_param_error("AutoGain", "{\"max_gain_db\":61}", "max_gain_db");
  media_expect_param_error("AutoGain", "{\"max_gain_db\":\"x\"}", "max_gain_db");
  media_expect_param_error("AutoGain", "{\"format\":\"u8\"}", "format");
  media_expect_param_error("AutoGain", "{\"suppress_db\":10}", "suppress_db");
  media_expect_create_error("AutoGain", "{\"frame_ms\":15}", "frame_ms");
  media_expect_rate_refused("AutoGain");
  rm_pipeline_t *p = media_node("AutoGain", "{}");
  rm_buffer_t *in = media_f32(16000, 9, 320);
  memset(in->data, 0, in->size);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.field, "channels");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "AutoGain"));
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_lifts_quiet_signal),
                                         RM_TEST(test_stereo_channels_independent),
                                         RM_TEST(test_errors),
                                         {NULL, NULL}};
  rm_test_suite("media_autogain", cases);
  return rm_test_run();
}
