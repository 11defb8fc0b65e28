/* speech.c - benchmark: VAD and Denoise candidates on the synthesized speech corpus
 * (tests/speech), every candidate x noise x SNR x rate. Prints per condition the VAD frame
 * accuracy, speech recall, false-alarm rate, fragments and first-segment start, and the
 * suppressors' segmental SNR gain and log-spectral distance, and AutoGain's output speech
 * level. Mean of the corpus's two tracks. Usage: speech [vad|denoise|autogain|all]
 * [corpus dir|""] [candidate|""] [rate]; generate the corpus first (ctest -R speech.corpus). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
#ifdef RM_BENCH_WEBRTC
#include "webrtc_apm.h"
#endif

static const uint32_t rates[] = {8000, 16000, 48000};
static const char *only_cand; /* argv[3]: one candidate */
static uint32_t only_rate;    /* argv[4]: one rate */
static const double snrs[] = {20, 10, 5, 0};
#define N_RATES (sizeof rates / sizeof rates[0])
#define N_SNRS (sizeof snrs / sizeof snrs[0])

typedef struct vad_cand {
  const char *name;
  const char *params; /* VAD node params, or NULL for WebRTC */
  int webrtc;         /* likelihood */
} vad_cand_t;

static const vad_cand_t vad_cands[] = {
    {"energy", "{\"mode\":\"energy\"}", 0},
    {"stat", "{\"mode\":\"stat\"}", 0},
#ifdef RM_BENCH_WEBRTC
    {"webrtc-verylow", NULL, 0},
    {"webrtc-moderate", NULL, 2},
#endif
};
#define N_VAD (sizeof vad_cands / sizeof vad_cands[0])

#ifdef RM_BENCH_WEBRTC
/* Frame decisions -> segments with the VAD node's rules (bridge <= 200 ms, drop < 50 ms). */
static size_t frames_to_segs(const int *dec, size_t n, double (*segs)[2]) {
  size_t k = 0, last = 0;
  int open = 0;
  double start = 0;
  for (size_t f = 0; f <= n; f++) {
    int d = f < n && dec[f];
    if (d) {
      if (!open)
        start = (double)f * 10, open = 1;
      last = f;
    } else if (open && (f == n || (f - last) * 10 > 200)) {
      double end = (double)(last + 1) * 10;
      if (end - start >= 50)
        segs[k][0] = start, segs[k][1] = end, k++;
      open = 0;
    }
  }
  return k;
}
#endif

static int run_vad(const vad_cand_t *c, const sp_track_t *t, sp_score_t *s) {
  double(*segs)[2] = NULL;
  size_t n = 0;
  if (c->params) {
    const char *ov = getenv("STAT_PARAMS");
    if (sp_run_node("VAD", ov && !strcmp(c->name, "stat") ? ov : c->params, t, t->mix, 0, &segs, &n,
                    NULL))
      return -1;
  } else {
#ifdef RM_BENCH_WEBRTC
    size_t fl = t->rate / 100;
    int *dec = calloc(t->n_frames, sizeof *dec);
    float *buf = malloc(fl * sizeof *buf);
    bench_apm_t *a = bench_apm_new((int)t->rate, -1, c->webrtc, 0);
    segs = malloc((t->n_frames + 1) * sizeof *segs);
    for (size_t f = 0; a && f < t->n_frames; f++) {
      memcpy(buf, t->mix + f * fl, fl * sizeof *buf);
      bench_apm_process(a, buf, &dec[f]);
    }
    n = frames_to_segs(dec, t->n_frames, segs);
    bench_apm_free(a);
    free(buf);
    free(dec);
#endif
  }
  sp_score_segments(t, (const double(*)[2])segs, n, s);
  free(segs);
  return 0;
}

static void vad_table(const char *dir) {
  printf("VAD: frame accuracy / recall / false alarm (fractions of 10 ms frames), fragments per "
         "utterance, first segment start (track 0, speech at 0 ms)\n");
  printf("%-16s %6s %-7s %5s %7s %7s %7s %6s %8s\n", "candidate", "rate", "noise", "snr", "acc",
         "recall", "fa", "frag", "first_ms");
  for (size_t c = 0; c < N_VAD; c++)
    for (size_t r = 0; r < N_RATES; r++)
      for (int noise = 0; noise < SP_N_NOISES; noise++)
        for (size_t k = 0; k < (noise == SP_CLEAN ? 1 : N_SNRS); k++) {
          if ((only_cand && strcmp(only_cand, vad_cands[c].name)) ||
              (only_rate && only_rate != rates[r]))
            continue;
          sp_score_t sum = {0}, s[2];
          size_t utts = 0;
          for (int v = 0; v < 2; v++) {
            sp_track_t t;
            if (sp_track_make(dir, rates[r], noise, snrs[k], v, &t) ||
                run_vad(&vad_cands[c], &t, &s[v])) {
              fprintf(stderr, "corpus or run failed (dir %s)\n", dir);
              exit(1);
            }
            sum.accuracy += s[v].accuracy / 2;
            sum.recall += s[v].recall / 2;
            sum.false_alarm += s[v].false_alarm / 2;
            sum.fragments += s[v].fragments;
            utts += t.n_utts;
            sp_track_free(&t);
          }
          char snr[16];
          snprintf(snr, sizeof snr, noise == SP_CLEAN ? "-" : "%.0f", snrs[k]);
          printf("%-16s %6u %-7s %5s %7.3f %7.3f %7.3f %6.2f %8.1f\n", vad_cands[c].name, rates[r],
                 sp_noise_name(noise), snr, sum.accuracy, sum.recall, sum.false_alarm,
                 (double)sum.fragments / (double)utts, s[0].first_ms);
          fflush(stdout);
        }
}

typedef struct ns_cand {
  const char *name;
  const char *params; /* Denoise params, or NULL for WebRTC */
  int level;
} ns_cand_t;

static const ns_cand_t ns_cands[] = {
    {"speex", "{}", 0},           {"lsa", "{\"mode\":\"lsa\"}", 0},
#ifdef RM_BENCH_WEBRTC
    {"webrtc-moderate", NULL, 1}, {"webrtc-high", NULL, 2},         {"webrtc-veryhigh", NULL, 3},
#endif
};
#define N_NS (sizeof ns_cands / sizeof ns_cands[0])

/* The lag (0-2 frames of 10 ms, in samples) at which y best matches the clean speech over
 * the first 10 s. */
static size_t best_lag(const sp_track_t *t, const float *y) {
  size_t best = 0, max = t->rate / 50;
  double best_c = -1e300;
  for (size_t lag = 0; lag <= max; lag++) {
    double c = 0;
    for (size_t i = 0; i + lag < t->n && i < 10 * (size_t)t->rate; i++)
      c += (double)t->clean[i] * y[i + lag];
    if (c > best_c)
      best_c = c, best = lag;
  }
  return best;
}

static float *run_ns(const ns_cand_t *c, const sp_track_t *t) {
  float *y = NULL;
  if (c->params) {
    const char *ov = getenv("NS_PARAMS");
    if (sp_run_node("Denoise", ov ? ov : c->params, t, t->mix, 0, NULL, NULL, &y))
      return NULL;
    for (int k = 1; k < (getenv("PASSES") ? atoi(getenv("PASSES")) : 1); k++) {
      float *z = NULL;
      sp_run_node("Denoise", c->params, t, y, 0, NULL, NULL, &z);
      free(y);
      y = z;
    }
    return y;
  }
#ifdef RM_BENCH_WEBRTC
  size_t fl = t->rate / 100;
  bench_apm_t *a = bench_apm_new((int)t->rate, c->level, -1, 0);
  y = malloc(t->n * sizeof *y);
  memcpy(y, t->mix, t->n * sizeof *y);
  int voice;
  for (size_t f = 0; a && f < t->n_frames; f++)
    bench_apm_process(a, y + f * fl, &voice);
  bench_apm_free(a);
#endif
  return y;
}

static void denoise_table(const char *dir) {
  printf("\nDenoise: segmental SNR (speech frames, clamped -10..35 dB) in -> out and gain; "
         "log-spectral distance to the clean speech in -> out (dB); output lag\n");
  printf("%-16s %6s %-7s %5s %7s %7s %7s %7s %7s %5s\n", "candidate", "rate", "noise", "snr",
         "seg_in", "seg_out", "gain", "lsd_in", "lsd_out", "lag");
  for (size_t c = 0; c < N_NS; c++)
    for (size_t r = 0; r < N_RATES; r++)
      for (int noise = SP_WHITE; noise < SP_N_NOISES; noise++)
        for (size_t k = 0; k < N_SNRS; k++) {
          if ((only_cand && strcmp(only_cand, ns_cands[c].name)) ||
              (only_rate && only_rate != rates[r]))
            continue;
          double si = 0, so = 0, li = 0, lo = 0;
          size_t lag0 = 0;
          for (int v = 0; v < 2; v++) {
            sp_track_t t;
            float *y = NULL;
            if (sp_track_make(dir, rates[r], noise, snrs[k], v, &t) ||
                !(y = run_ns(&ns_cands[c], &t))) {
              fprintf(stderr, "corpus or run failed (dir %s)\n", dir);
              exit(1);
            }
            size_t lag = best_lag(&t, y);
            if (!v)
              lag0 = lag;
            memmove(y, y + lag, (t.n - lag) * sizeof *y); /* aligned for the measures */
            memset(y + t.n - lag, 0, lag * sizeof *y);
            si += sp_segsnr(&t, t.mix) / 2;
            so += sp_segsnr(&t, y) / 2;
            li += sp_lsd(&t, t.mix) / 2;
            lo += sp_lsd(&t, y) / 2;
            free(y);
            sp_track_free(&t);
          }
          printf("%-16s %6u %-7s %5.0f %7.2f %7.2f %+7.2f %7.2f %7.2f %5zu\n", ns_cands[c].name,
                 rates[r], sp_noise_name(noise), snrs[k], si, so, so - si, li, lo, lag0);
          fflush(stdout);
        }
}

/* AutoGain (default target -26 dBFS): the output's speech level and peak for speech at
 * several levels, clean and at 20 dB SNR, track 1. */
static void autogain_table(const char *dir) {
  static const double levels[] = {-55, -45, -35, -26, -20};
  printf("\nAutoGain (target -26 dBFS, max_gain_db 30): speech RMS over the truth's speech "
         "frames in -> out (dBFS), output peak (dBFS), samples at full scale\n");
  printf("%6s %-7s %7s %7s %7s %7s\n", "rate", "noise", "in", "out", "peak", "clipped");
  for (size_t r = 0; r < N_RATES; r++)
    for (int noise = SP_CLEAN; noise < SP_N_NOISES; noise++)
      for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
        if (only_rate && only_rate != rates[r])
          continue;
        sp_track_t t;
        float *y = NULL;
        if (sp_track_make(dir, rates[r], noise, 20, 1, &t)) {
          fprintf(stderr, "corpus failed (dir %s)\n", dir);
          exit(1);
        }
        float g = (float)pow(10, (levels[k] - sp_active_db(&t, t.clean)) / 20);
        for (size_t i = 0; i < t.n; i++)
          t.mix[i] *= g;
        if (sp_run_node("AutoGain", "{}", &t, t.mix, 0, NULL, NULL, &y)) {
          fprintf(stderr, "run failed\n");
          exit(1);
        }
        double peak = 0;
        size_t clipped = 0;
        for (size_t i = 0; i < t.n; i++) {
          peak = fmax(peak, fabs(y[i]));
          clipped += fabsf(y[i]) >= 32767.0f / 32768.0f;
        }
        printf("%6u %-7s %7.1f %7.2f %7.2f %7zu\n", rates[r], sp_noise_name(noise), levels[k],
               sp_active_db(&t, y), 20 * log10(peak + 1e-30), clipped);
        fflush(stdout);
        free(y);
        sp_track_free(&t);
      }
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "all";
  const char *dir = argc > 2 && *argv[2] ? argv[2] : sp_corpus_dir(RM_SPEECH_CORPUS_DIR);
  only_cand = argc > 3 && *argv[3] ? argv[3] : NULL;
  only_rate = argc > 4 ? (uint32_t)atoi(argv[4]) : 0;
  if (strcmp(what, "vad") && strcmp(what, "denoise") && strcmp(what, "autogain") &&
      strcmp(what, "all")) {
    fprintf(stderr, "usage: speech [vad|denoise|autogain|all] [corpus dir]\n");
    return 2;
  }
  if (!strcmp(what, "vad") || !strcmp(what, "all"))
    vad_table(dir);
  if (!strcmp(what, "denoise") || !strcmp(what, "all"))
    denoise_table(dir);
  if (!strcmp(what, "autogain") || !strcmp(what, "all"))
    autogain_table(dir);
  return 0;
}
