/* test_speech_vad.c - the VAD on the synthesized speech corpus (tests/speech/corpus.h):
 * frame accuracy goals per noise, SNR and rate for the default detector (mode stat), speech
 * from the first sample found within 30 ms, stat beating the energy detector in noise, and
 * streams of 10 ms and 20 ms chunks giving exactly the one-buffer segments. */
#include "corpus.h"
#include "test_media_support.h"

static const char *dir;

/* Goals by SNR (20, 10, 5 dB): the issue's, for every noise and rate. */
static const double snrs[] = {20, 10, 5};
static const double goal[] = {0.97, 0.93, 0.85};
static const uint32_t rates[] = {8000, 16000, 48000};

/* Segments of a VAD with params over track t fed in chunks of `chunk` samples (0: one). */
static size_t vad_segs(const char *params, const sp_track_t *t, size_t chunk, double (**segs)[2]) {
  size_t n = 0;
  CU_ASSERT_EQUAL_FATAL(sp_run_node("VAD", params, t, t->mix, chunk, segs, &n, NULL), 0);
  return n;
}

/* Mean score of the corpus's two tracks; *first gets track 0's first segment start. */
static double accuracy(const char *params, uint32_t rate, int noise, double snr, double *first) {
  double acc = 0;
  for (int v = 0; v < 2; v++) {
    sp_track_t t;
    CU_ASSERT_EQUAL_FATAL(sp_track_make(dir, rate, noise, snr, v, &t), 0);
    double(*segs)[2];
    size_t n = vad_segs(params, &t, 0, &segs);
    sp_score_t s;
    sp_score_segments(&t, (const double(*)[2])segs, n, &s);
    acc += s.accuracy / 2;
    if (v == 0 && first)
      *first = s.first_ms;
    free(segs);
    sp_track_free(&t);
  }
  return acc;
}

static void test_accuracy_goals(void) {
  for (size_t r = 0; r < 3; r++) {
    double first;
    double clean = accuracy("{}", rates[r], SP_CLEAN, 0, &first);
    printf("\n    %5u Hz clean %.3f", rates[r], clean);
    CU_ASSERT(clean >= 0.95);
    for (int noise = SP_WHITE; noise <= SP_BABBLE; noise++) {
      printf("\n    %5u Hz %-6s", rates[r], sp_noise_name(noise));
      for (size_t k = 0; k < 3; k++) {
        double acc = accuracy("{}", rates[r], noise, snrs[k], NULL);
        printf(" %2.0f dB %.3f%s", snrs[k], acc, acc >= goal[k] ? "" : " (below)");
        CU_ASSERT(acc >= goal[k]);
      }
    }
  }
  printf("\n    ");
}

/* Track 0 starts with speech at its first sample: the first segment starts within 30 ms,
 * clean and in every noise at 20, 10 and 5 dB (the VAD sees the track's first 3 s). */
static void test_speech_from_first_frame(void) {
  for (size_t r = 0; r < 3; r++)
    for (int noise = SP_CLEAN; noise <= SP_BABBLE; noise++)
      for (size_t k = 0; k < (noise == SP_CLEAN ? 1 : 3); k++) {
        sp_track_t t;
        CU_ASSERT_EQUAL_FATAL(sp_track_make(dir, rates[r], noise, snrs[k], 0, &t), 0);
        t.n_frames = t.n_frames < 300 ? t.n_frames : 300; /* the first 3 s suffice */
        t.n = t.n_frames * (t.rate / 100);
        double(*segs)[2];
        size_t n = vad_segs("{}", &t, 0, &segs);
        CU_ASSERT(n > 0 && segs[0][0] <= 30.0);
        if (!(n > 0 && segs[0][0] <= 30.0))
          printf("\n    %u Hz %s %.0f dB: first segment at %.1f ms", rates[r], sp_noise_name(noise),
                 snrs[k], n ? segs[0][0] : -1.0);
        free(segs);
        sp_track_free(&t);
      }
}

/* The energy detector (mode energy, the former default) loses in every noise at 10 dB. */
static void test_stat_beats_energy(void) {
  for (int noise = SP_WHITE; noise <= SP_BABBLE; noise++) {
    double stat = accuracy("{}", 16000, noise, 10, NULL);
    double energy = accuracy("{\"mode\":\"energy\"}", 16000, noise, 10, NULL);
    printf("\n    %s 10 dB: stat %.3f, energy %.3f", sp_noise_name(noise), stat, energy);
    CU_ASSERT(stat > energy + 0.05);
  }
  printf("\n    ");
}

/* 10 ms and 20 ms chunks give exactly the one-buffer segments. */
static void test_chunks_equal_one_buffer(void) {
  static const struct {
    uint32_t rate;
    int noise, variant;
    double snr;
    const char *params;
  } cases[] = {{16000, SP_WHITE, 0, 10, "{}"},
               {48000, SP_BABBLE, 1, 5, "{}"},
               {8000, SP_PINK, 1, 20, "{\"frame_ms\":30}"},
               {16000, SP_BABBLE, 0, 10, "{\"mode\":\"energy\"}"}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    sp_track_t t;
    CU_ASSERT_EQUAL_FATAL(
        sp_track_make(dir, cases[c].rate, cases[c].noise, cases[c].snr, cases[c].variant, &t), 0);
    double(*one)[2];
    size_t n = vad_segs(cases[c].params, &t, 0, &one);
    CU_ASSERT(n > 0);
    for (size_t ms = 10; ms <= 20; ms += 10) {
      double(*many)[2];
      size_t m = vad_segs(cases[c].params, &t, cases[c].rate * ms / 1000, &many);
      CU_ASSERT_EQUAL(m, n);
      CU_ASSERT(m == n && memcmp(one, many, n * sizeof *one) == 0);
      free(many);
    }
    free(one);
    sp_track_free(&t);
  }
}

int main(void) {
  dir = sp_corpus_dir("tests/speech/corpus");
  static const rm_test_case_t cases[] = {RM_TEST(test_accuracy_goals),
                                         RM_TEST(test_speech_from_first_frame),
                                         RM_TEST(test_stat_beats_energy),
                                         RM_TEST(test_chunks_equal_one_buffer),
                                         {NULL, NULL}};
  rm_test_suite("speech_vad", cases);
  return rm_test_run();
}
