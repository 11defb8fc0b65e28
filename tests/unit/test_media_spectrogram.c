/* test_media_spectrogram.c - Spectrogram / MelSpectrogram: Parseval on white noise, tone
 * peaks in the right linear and mel bins, frame counts, chunked streams, errors. */
#include "test_media_support.h"

static rm_buffer_t *run_one(const char *type, const char *params, rm_buffer_t *in) {
  rm_pipeline_t *p = media_node(type, params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  /* join the items (process + flush) along the frame axis */
  int64_t frames = 0, bins = it.n ? it.items[0]->u.tensor.shape[1] : 0;
  for (size_t i = 0; i < it.n; i++) {
    CU_ASSERT_EQUAL(it.items[i]->kind, RM_KIND_TENSOR);
    CU_ASSERT_EQUAL(it.items[i]->u.tensor.dtype, RM_DTYPE_F32);
    CU_ASSERT_EQUAL(it.items[i]->u.tensor.ndim, 2);
    CU_ASSERT_EQUAL(it.items[i]->u.tensor.shape[1], bins);
    frames += it.items[i]->u.tensor.shape[0];
  }
  int64_t shape[2] = {frames, bins};
  rm_buffer_t *all = rm_buffer_new_tensor(NULL, RM_DTYPE_F32, shape, 2);
  size_t at = 0;
  for (size_t i = 0; i < it.n; i++) {
    memcpy(all->data + at, it.items[i]->data, it.items[i]->size);
    at += it.items[i]->size;
  }
  media_items_free(&it);
  rm_pipeline_free(p);
  return all;
}

static float at2(const rm_buffer_t *t, int64_t f, int64_t b) {
  return ((const float *)t->data)[f * t->u.tensor.shape[1] + b];
}

/* Sum over frames of sum_k c_k P_k / n_fft equals sum_n x^2 times the hann window's power
 * per hop (sum w^2 / hop), Parseval with the window accounted for. */
static void test_parseval_white_noise_1pct(void) {
  size_t n = 32000;
  rm_buffer_t *in = media_f32(16000, 1, n);
  unsigned long long seed = 4242;
  double energy = 0;
  for (size_t i = 0; i < n; i++) {
    float v = (float)(0.5 * media_noise(&seed));
    media_fdata(in)[i] = v;
    energy += (double)v * v;
  }
  int n_fft = 512, hop = 128;
  rm_buffer_t *s = run_one("Spectrogram", "{\"n_fft\":512,\"hop\":128}", in);
  int64_t frames = s->u.tensor.shape[0], bins = s->u.tensor.shape[1];
  CU_ASSERT_EQUAL(bins, n_fft / 2 + 1);
  CU_ASSERT_EQUAL(frames, 1 + (int64_t)n / hop); /* centred */
  double total = 0;
  for (int64_t f = 0; f < frames; f++)
    for (int64_t b = 0; b < bins; b++)
      total += (b == 0 || b == bins - 1 ? 1.0 : 2.0) * at2(s, f, b) / n_fft;
  double wpow = 0;
  for (int i = 0; i < n_fft; i++) {
    double w = 0.5 - 0.5 * cos(2 * M_PI * i / n_fft);
    wpow += w * w;
  }
  double ratio = total / (energy * wpow / hop);
  printf("\n    spectrogram energy / signal energy = %.5f ", ratio);
  CU_ASSERT(fabs(ratio - 1) <= 0.01);
  rm_buffer_unref(s);
  rm_buffer_unref(in);
}

static rm_buffer_t *sine(uint32_t rate, size_t n, double f) {
  rm_buffer_t *b = media_f32(rate, 1, n);
  for (size_t i = 0; i < n; i++)
    media_fdata(b)[i] = (float)(0.5 * sin(2 * M_PI * f * (double)i / rate));
  return b;
}

static int64_t peak_bin(const rm_buffer_t *t) {
  int64_t frames = t->u.tensor.shape[0], bins = t->u.tensor.shape[1], best = 0;
  double best_v = -1e300;
  for (int64_t b = 0; b < bins; b++) {
    double sum = 0;
    for (int64_t f = 2; f < frames - 2; f++) /* skip the zero-padded edge frames */
      sum += at2(t, f, b);
    if (sum > best_v) {
      best_v = sum;
      best = b;
    }
  }
  return best;
}

static void test_tone_peaks_in_linear_bin(void) {
  rm_buffer_t *in = sine(16000, 16000, 1500); /* bin 1500 * 1024 / 16000 = 96 */
  rm_buffer_t *s = run_one("Spectrogram", "{\"n_fft\":1024,\"window\":\"blackman\"}", in);
  CU_ASSERT_EQUAL(peak_bin(s), 96);
  rm_buffer_unref(s);
  /* dB scale is 10 log10 of power */
  rm_buffer_t *p = run_one("Spectrogram", "{\"n_fft\":1024}", in);
  rm_buffer_t *d = run_one("Spectrogram", "{\"n_fft\":1024,\"scale\":\"db\"}", in);
  rm_buffer_t *m = run_one("Spectrogram", "{\"n_fft\":1024,\"scale\":\"magnitude\"}", in);
  rm_buffer_t *l = run_one("Spectrogram", "{\"n_fft\":1024,\"scale\":\"log\"}", in);
  CU_ASSERT_DOUBLE_EQUAL(at2(d, 5, 96), 10 * log10(at2(p, 5, 96)), 1e-3);
  CU_ASSERT_DOUBLE_EQUAL(at2(l, 5, 96), log(at2(p, 5, 96)), 1e-4);
  CU_ASSERT_DOUBLE_EQUAL(at2(l, 5, 400), log(fmax(at2(p, 5, 400), 1e-10)), 1e-4);
  rm_buffer_unref(l);
  CU_ASSERT_DOUBLE_EQUAL(at2(m, 5, 96), sqrt(at2(p, 5, 96)), 1e-3 * at2(m, 5, 96));
  rm_buffer_unref(p);
  rm_buffer_unref(d);
  rm_buffer_unref(m);
  rm_buffer_unref(in);
}

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }

/* A tone peaks in the mel band whose centre is nearest to it on the mel scale. */
static void test_mel_tone_peaks_in_right_bin(void) {
  static const double tones[] = {200, 440, 1000, 2500, 3000, 6000, 7300};
  int n_mels = 40;
  double m_lo = hz_to_mel(50), m_hi = hz_to_mel(7600);
  for (size_t t = 0; t < sizeof tones / sizeof tones[0]; t++) {
    rm_buffer_t *in = sine(16000, 8000, tones[t]);
    rm_buffer_t *s =
        run_one("MelSpectrogram",
                "{\"n_fft\":2048,\"hop\":256,\"n_mels\":40,\"fmin\":50,\"fmax\":7600}", in);
    CU_ASSERT_EQUAL(s->u.tensor.shape[1], n_mels);
    int expect = 0;
    double best = 1e9;
    for (int k = 0; k < n_mels; k++) {
      double centre = m_lo + (m_hi - m_lo) * (k + 1) / (n_mels + 1);
      if (fabs(centre - hz_to_mel(tones[t])) < best) {
        best = fabs(centre - hz_to_mel(tones[t]));
        expect = k;
      }
    }
    int64_t got = peak_bin(s);
    if (got != expect)
      fprintf(stderr, "\n  %g Hz: peak in mel bin %lld, expected %d\n", tones[t], (long long)got,
              expect);
    CU_ASSERT_EQUAL(got, expect);
    rm_buffer_unref(s);
    rm_buffer_unref(in);
  }
}

/* Frame counts with and without centring; a chunked stream gives the one-shot frames. */
static void test_frames_and_streaming(void) {
  rm_buffer_t *in = media_f32(8000, 2, 5000);
  unsigned long long seed = 1;
  for (size_t i = 0; i < 10000; i++)
    media_fdata(in)[i] = (float)media_noise(&seed);
  rm_buffer_t *c = run_one("MelSpectrogram", "{\"n_fft\":400,\"hop\":160,\"n_mels\":20}", in);
  CU_ASSERT_EQUAL(c->u.tensor.shape[0], 1 + 5000 / 160);
  rm_buffer_t *nc = run_one("Spectrogram", "{\"n_fft\":400,\"hop\":160,\"center\":false}", in);
  CU_ASSERT_EQUAL(nc->u.tensor.shape[0], 1 + (5000 - 400) / 160);
  rm_buffer_unref(nc);
  /* chunked */
  static const size_t cuts[] = {0, 7, 399, 1000, 1001, 4444, 5000};
  rm_buffer_t *chunks[6];
  for (size_t k = 0; k < 6; k++) {
    chunks[k] = media_f32(8000, 2, cuts[k + 1] - cuts[k]);
    memcpy(chunks[k]->data, in->data + cuts[k] * 8, chunks[k]->size);
  }
  rm_pipeline_t *p = media_node("MelSpectrogram", "{\"n_fft\":400,\"hop\":160,\"n_mels\":20}");
  media_items_t it = {0};
  static const char *const keys[] = {"n"};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_stream(p, chunks, 6, keys, &it, 1, &err), 0);
  size_t at = 0, diff = 0;
  for (size_t i = 0; i < it.n; i++) {
    const float *a = (const float *)it.items[i]->data;
    for (size_t j = 0; j < it.items[i]->size / 4; j++, at++)
      diff += at >= c->size / 4 ||
              fabsf(a[j] - ((const float *)c->data)[at]) > 1e-5f * fmaxf(1.0f, fabsf(a[j]));
  }
  CU_ASSERT_EQUAL(at, c->size / 4);
  CU_ASSERT_EQUAL(diff, 0);
  media_items_free(&it);
  rm_pipeline_free(p);
  for (size_t k = 0; k < 6; k++)
    rm_buffer_unref(chunks[k]);
  rm_buffer_unref(c);
  rm_buffer_unref(in);
}

static void test_params_inputs_registry(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("Spectrogram"));
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("MelSpectrogram"));
  media_expect_create_error("MelSpectrogram", "{\"fmin\":4000,\"fmax\":3000}", "fmax");
  media_expect_create_error("MelSpectrogram", "{\"fmin\":3000,\"fmax\":3000}", "fmax");
  media_expect_create_error("Spectrogram", "{\"n_fft\":256,\"hop\":300}", "hop");
  media_expect_param_error("Spectrogram", "{\"n_fft\":8}", "n_fft");
  media_expect_param_error("Spectrogram", "{\"window\":\"kaiser\"}", "window");
  media_expect_param_error("Spectrogram", "{\"n_mels\":40}", "n_mels");
  media_expect_param_error("MelSpectrogram", "{\"n_mels\":0}", "n_mels");
  media_expect_param_error("MelSpectrogram", "{\"scale\":\"log2\"}", "scale");
  /* fmax above the input's Nyquist is an input error naming fmax */
  rm_pipeline_t *p = media_node("MelSpectrogram", "{\"fmax\":6000}");
  rm_buffer_t *in = sine(8000, 800, 100);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.field, "fmax");
  CU_ASSERT_EQUAL(it.n, 0);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_params_inputs_registry),   RM_TEST(test_parseval_white_noise_1pct),
      RM_TEST(test_tone_peaks_in_linear_bin), RM_TEST(test_mel_tone_peaks_in_right_bin),
      RM_TEST(test_frames_and_streaming),     {NULL, NULL}};
  rm_test_suite("media_spectrogram", cases);
  return rm_test_run();
}
