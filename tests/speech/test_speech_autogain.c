/* test_speech_autogain.c - AutoGain on the synthesized speech corpus (tests/speech/corpus.h):
 * quiet speech (clean, in white noise and babble) brought to within 1 dB of the target RMS
 * over the truth's speech frames at 8, 16 and 48 kHz, loud speech brought down without a
 * clipped sample, max_gain_db honoured, output time-aligned, and 10 ms / 20 ms chunks
 * giving exactly the one-buffer output. */
#include "corpus.h"
#include "test_media_support.h"

static const char *dir;

/* Track 1 (noise first, 20 dB SNR unless clean) scaled so its speech is at level_db dBFS. */
static void make(uint32_t rate, int noise, double level_db, sp_track_t *t) {
  CU_ASSERT_EQUAL_FATAL(sp_track_make(dir, rate, noise, 20, 1, t), 0);
  double g = pow(10, (level_db - sp_active_db(t, t->clean)) / 20);
  for (size_t i = 0; i < t->n; i++) {
    t->clean[i] *= (float)g;
    t->mix[i] *= (float)g;
  }
}

/* The output's speech level (of the clean speech's frames) and its number of samples at full
 * scale; *lag gets the lag (-20..20 ms) at which it best matches the input. */
static double level_out(const sp_track_t *t, const char *params, size_t *clipped, long *lag) {
  float *y = NULL;
  CU_ASSERT_EQUAL_FATAL(sp_run_node("AutoGain", params, t, t->mix, 0, NULL, NULL, &y), 0);
  *clipped = 0;
  for (size_t i = 0; i < t->n; i++)
    *clipped += fabsf(y[i]) >= 32767.0f / 32768.0f;
  long max = (long)t->rate / 50, end = 10 * (long)t->rate;
  double best_c = -1e300;
  for (long l = -max; l <= max; l++) {
    double c = 0;
    for (long i = max; i + max < (long)t->n && i < end; i++)
      c += (double)t->mix[i] * y[i + l];
    if (c > best_c)
      best_c = c, *lag = l;
  }
  double db = sp_active_db(t, y);
  free(y);
  return db;
}

/* Speech at -45 dBFS comes out within 1 dB of the default target, -26 dBFS (measured
 * -26.3 .. -25.7), at every rate and frame size, clean and in noise. */
static void test_quiet_speech_to_target(void) {
  static const struct {
    uint32_t rate;
    int noise;
    const char *params;
  } cases[] = {{16000, SP_CLEAN, "{}"},
               {8000, SP_CLEAN, "{\"frame_ms\":10}"},
               {48000, SP_CLEAN, "{}"},
               {16000, SP_WHITE, "{}"},
               {16000, SP_BABBLE, "{\"frame_ms\":10}"}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    sp_track_t t;
    make(cases[c].rate, cases[c].noise, -45, &t);
    size_t clipped;
    long lag;
    double db = level_out(&t, cases[c].params, &clipped, &lag);
    printf("\n    %u Hz %s %s: -45 -> %.2f dBFS (lag %ld)", cases[c].rate,
           sp_noise_name(cases[c].noise), cases[c].params, db, lag);
    CU_ASSERT(fabs(db - -26) <= 1.0);
    CU_ASSERT_EQUAL(clipped, 0);
    CU_ASSERT_EQUAL(lag, 0);
    sp_track_free(&t);
  }
  printf("\n    ");
}

/* Loud speech (-20 dBFS RMS, peaks at -0.1 dBFS) is brought down to the target, -26 or
 * -22 dBFS, within 1 dB, without a sample at full scale; a target out of max_gain_db's reach
 * stops at input + max_gain_db (within 1 dB). */
static void test_loud_not_clipped_and_max_gain(void) {
  static const struct {
    double in;
    const char *params;
    double want;
  } cases[] = {{-20, "{}", -26},
               {-20, "{\"target_dbfs\":-22}", -22},
               {-60, "{\"max_gain_db\":10}", -50},
               {-45, "{\"target_dbfs\":-40}", -40}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    sp_track_t t;
    make(16000, SP_CLEAN, cases[c].in, &t);
    size_t clipped;
    long lag;
    double db = level_out(&t, cases[c].params, &clipped, &lag);
    printf("\n    %.0f dBFS %s -> %.2f dBFS, %zu clipped", cases[c].in, cases[c].params, db,
           clipped);
    CU_ASSERT(fabs(db - cases[c].want) <= 1.0);
    CU_ASSERT_EQUAL(clipped, 0);
    sp_track_free(&t);
  }
  printf("\n    ");
}

/* 10 ms and 20 ms chunks give exactly the one-buffer output. */
static void test_chunks_equal_one_buffer(void) {
  sp_track_t t;
  make(16000, SP_WHITE, -40, &t);
  t.n -= 77; /* not a whole number of frames */
  const char *params = "{\"format\":\"f32\"}";
  float *one = NULL;
  CU_ASSERT_EQUAL_FATAL(sp_run_node("AutoGain", params, &t, t.mix, 0, NULL, NULL, &one), 0);
  for (size_t ms = 10; ms <= 20; ms += 10) {
    float *many = NULL;
    CU_ASSERT_EQUAL_FATAL(
        sp_run_node("AutoGain", params, &t, t.mix, t.rate * ms / 1000, NULL, NULL, &many), 0);
    CU_ASSERT(memcmp(one, many, t.n * sizeof *one) == 0);
    free(many);
  }
  free(one);
  t.n += 77;
  sp_track_free(&t);
}

int main(void) {
  dir = sp_corpus_dir("tests/speech/corpus");
  static const rm_test_case_t cases[] = {RM_TEST(test_quiet_speech_to_target),
                                         RM_TEST(test_loud_not_clipped_and_max_gain),
                                         RM_TEST(test_chunks_equal_one_buffer),
                                         {NULL, NULL}};
  rm_test_suite("speech_autogain", cases);
  return rm_test_run();
}
