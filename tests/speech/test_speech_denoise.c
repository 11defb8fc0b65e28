/* test_speech_denoise.c - Denoise on the synthesized speech corpus (tests/speech/corpus.h):
 * segmental SNR gains at 5 dB input for both suppressors (speex, lsa; lsa also at 8 and
 * 48 kHz), output time-aligned with the clean speech (lag 0) and as long as the input, and
 * streams of 10 ms and 20 ms chunks giving exactly the one-buffer output. */
#include "corpus.h"
#include "test_media_support.h"

static const char *dir;

/* The lag (-2..2 frames of 10 ms, in samples) at which y best matches the clean speech over
 * the track's first 10 s. */
static long best_lag(const sp_track_t *t, const float *y) {
  long best = 0, max = (long)t->rate / 50, end = 10 * (long)t->rate;
  double best_c = -1e300;
  for (long lag = -max; lag <= max; lag++) {
    double c = 0;
    for (long i = max; i + max < (long)t->n && i < end; i++)
      c += (double)t->clean[i] * y[i + lag];
    if (c > best_c)
      best_c = c, best = lag;
  }
  return best;
}

/* Gain of segmental SNR at `rate`, 5 dB input, mean of the two tracks, and the lag of the
 * first track's output. */
static double gain_at(uint32_t rate, const char *params, int noise, long *lag) {
  double g = 0;
  for (int v = 0; v < 2; v++) {
    sp_track_t t;
    CU_ASSERT_EQUAL_FATAL(sp_track_make(dir, rate, noise, 5, v, &t), 0);
    float *y = NULL;
    CU_ASSERT_EQUAL_FATAL(sp_run_node("Denoise", params, &t, t.mix, 0, NULL, NULL, &y), 0);
    g += (sp_segsnr(&t, y) - sp_segsnr(&t, t.mix)) / 2;
    if (v == 0)
      *lag = best_lag(&t, y);
    free(y);
    sp_track_free(&t);
  }
  return g;
}

static double gain(const char *params, int noise, long *lag) {
  return gain_at(16000, params, noise, lag);
}

/* Measured gains less 0.1 dB. The goals (6 dB white and pink, 3 dB babble) hold for
 * white noise with both suppressors and for pink with lsa; babble misses them (lsa +2.15);
 * docs/nodes-media.md has the figures. */
static void test_segsnr_gains_aligned(void) {
  static const struct {
    const char *params;
    double white, pink, babble;
  } cases[] = {{"{}", 6.15, 3.8, 0.6}, {"{\"mode\":\"lsa\"}", 7.1, 6.0, 2.05}};
  for (size_t c = 0; c < 2; c++) {
    long lag[3];
    double w = gain(cases[c].params, SP_WHITE, &lag[0]);
    double p = gain(cases[c].params, SP_PINK, &lag[1]);
    double b = gain(cases[c].params, SP_BABBLE, &lag[2]);
    printf("\n    %s at 5 dB: white %+.2f, pink %+.2f, babble %+.2f dB (lags %ld %ld %ld)",
           cases[c].params, w, p, b, lag[0], lag[1], lag[2]);
    CU_ASSERT(w >= 6.0 && w >= cases[c].white);
    CU_ASSERT(p >= cases[c].pink);
    CU_ASSERT(b >= cases[c].babble);
    CU_ASSERT(lag[0] == 0 && lag[1] == 0 && lag[2] == 0);
  }
  printf("\n    ");
}

/* lsa meets the pink-noise goal (>= 6 dB at 5 dB input) at 8 and 48 kHz too (measured +6.07
 * and +6.25), and the white-noise one (+6.34 and +9.18). */
static void test_lsa_goals_other_rates(void) {
  static const uint32_t rates[] = {8000, 48000};
  for (size_t r = 0; r < 2; r++) {
    long lag[2];
    double p = gain_at(rates[r], "{\"mode\":\"lsa\"}", SP_PINK, &lag[0]);
    double w = gain_at(rates[r], "{\"mode\":\"lsa\"}", SP_WHITE, &lag[1]);
    printf("\n    lsa at %u Hz, 5 dB: white %+.2f, pink %+.2f dB", rates[r], w, p);
    CU_ASSERT(p >= 6.0);
    CU_ASSERT(w >= 6.0);
    CU_ASSERT(lag[0] == 0 && lag[1] == 0);
  }
  printf("\n    ");
}

/* 10 ms and 20 ms chunks give exactly the one-buffer output, as long as the input. */
static void test_chunks_equal_one_buffer(void) {
  static const struct {
    uint32_t rate;
    int noise;
    const char *params;
  } cases[] = {{16000, SP_PINK, "{\"mode\":\"lsa\",\"format\":\"f32\"}"},
               {48000, SP_BABBLE, "{\"mode\":\"lsa\",\"frame_ms\":10,\"format\":\"f32\"}"},
               {8000, SP_WHITE, "{\"format\":\"f32\"}"}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    sp_track_t t;
    CU_ASSERT_EQUAL_FATAL(sp_track_make(dir, cases[c].rate, cases[c].noise, 10, 1, &t), 0);
    t.n -= 77; /* not a whole number of frames */
    float *one = NULL;
    CU_ASSERT_EQUAL_FATAL(sp_run_node("Denoise", cases[c].params, &t, t.mix, 0, NULL, NULL, &one),
                          0);
    for (size_t ms = 10; ms <= 20; ms += 10) {
      float *many = NULL;
      CU_ASSERT_EQUAL_FATAL(sp_run_node("Denoise", cases[c].params, &t, t.mix,
                                        cases[c].rate * ms / 1000, NULL, NULL, &many),
                            0);
      CU_ASSERT(memcmp(one, many, t.n * sizeof *one) == 0);
      free(many);
    }
    free(one);
    t.n += 77;
    sp_track_free(&t);
  }
}

int main(void) {
  dir = sp_corpus_dir("tests/speech/corpus");
  static const rm_test_case_t cases[] = {RM_TEST(test_segsnr_gains_aligned),
                                         RM_TEST(test_lsa_goals_other_rates),
                                         RM_TEST(test_chunks_equal_one_buffer),
                                         {NULL, NULL}};
  rm_test_suite("speech_denoise", cases);
  return rm_test_run();
}
