/* vad_stat.c - the VAD node's statistical detector: sub-band likelihood ratio against an
 * MCRA noise estimate, with a short look-ahead at the start of a stream. See vad_stat.h. */
#include "nodes/vad_stat.h"

#include <fftw3.h>
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"

#define MAX_BANDS 24
#define INIT_MS 300       /* look-ahead for the first noise estimate */
#define INIT_QUIET 0.3    /* ... taken from this fraction of its quietest frames */
#define MIN_WINDOW_MS 800 /* MCRA's minimum search runs over one to two of these */

/* Band edges, Hz: about 1/3 octave, 100 Hz - 4 kHz (speech's energy and harmonics). */
static const double edges_hz[] = {100,  200,  300,  400,  510,  630,  770,  920,  1080,
                                  1270, 1480, 1720, 2000, 2320, 2700, 3150, 3700, 4000};
#define N_EDGES (sizeof edges_hz / sizeof edges_hz[0])

/* Tuning, per 10 ms (other frame lengths scale the time constants), chosen on the speech
 * corpus (tests/speech, bench/speech). */
#define ALPHA_S 0.8         /* smoothing of the band energies for MCRA's minimum search */
#define DELTA 5.0           /* S / Smin above this: speech likely present in the band */
#define ALPHA_P 0.2         /* smoothing of the speech-presence indicator */
#define ALPHA_D 0.98        /* noise update where speech is absent */
#define ALPHA_DD 0.98       /* decision-directed a-priori SNR */
#define XI_MIN 0.003        /* a-priori SNR floor (-25 dB) */
#define ETA 0.15            /* mean log likelihood ratio above this: speech */
#define ALPHA_V 0.98        /* smoothing of the noise's spread below the estimate */
#define SPREAD0 2.25        /* initial spread, dB^2 (1.5 dB, until measured) */
#define SPREAD_CAP 4.0      /* dB: deviations are clipped here before they are squared */
#define K_SPREAD 2.5        /* energy margins: this many times the noise's spread ... */
#define MARGIN_MIN 1.0      /* ... and at least this, dB */
#define HYST 0.5            /* inside speech the margins are this fraction */
#define FLOOR_PER_BIN 1e-12 /* noise estimates stay above this times the frame length */

struct rm__vad_stat {
  size_t n, bins, n_bands;
  int frame_ms;
  size_t band_lo[MAX_BANDS], band_hi[MAX_BANDS];
  double min_level; /* mean square */
  double a_s, a_p, a_d;
  float *window, *buf;
  fftwf_complex *spec;
  fftwf_plan plan;
  /* stream */
  size_t init_frames, stored, since_min;
  double *feat; /* init_frames x (n_bands + 1): band energies, frame mean square */
  int ready;
  size_t min_frames;
  double noise[MAX_BANDS], s[MAX_BANDS], smin[MAX_BANDS], stmp[MAX_BANDS], p[MAX_BANDS],
      a2[MAX_BANDS];
  /* the noise's own spread (dB^2) in the two energy measures, from frames below the
   * estimate (noise whatever the decision): total band energy and mean band SNR */
  double spread_t, spread_m;
  int last; /* the previous decision */
};

rm__vad_stat_t *rm__vad_stat_new(uint32_t rate, size_t frame, int frame_ms, double min_level_db) {
  rm__vad_stat_t *s = rm_calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->n = frame;
  s->bins = frame / 2 + 1;
  s->frame_ms = frame_ms;
  s->min_level = pow(10, min_level_db / 10);
  double k = frame_ms / 10.0;
  s->a_s = pow(ALPHA_S, k);
  s->a_p = pow(ALPHA_P, k);
  s->a_d = pow(ALPHA_D, k);
  for (size_t e = 0; e + 1 < N_EDGES && s->n_bands < MAX_BANDS; e++) {
    size_t lo = (size_t)lround(edges_hz[e] * (double)frame / rate);
    size_t hi = (size_t)lround(edges_hz[e + 1] * (double)frame / rate);
    if (hi > s->bins)
      hi = s->bins;
    if (lo < 1)
      lo = 1;
    if (hi > lo) {
      s->band_lo[s->n_bands] = lo;
      s->band_hi[s->n_bands] = hi;
      s->n_bands++;
    }
  }
  s->init_frames = (size_t)(INIT_MS + frame_ms - 1) / (size_t)frame_ms;
  s->min_frames = (size_t)MIN_WINDOW_MS / (size_t)frame_ms;
  s->window = rm_malloc(frame * sizeof *s->window);
  s->buf = rm_malloc(frame * sizeof *s->buf);
  s->spec = rm_malloc(s->bins * sizeof *s->spec);
  s->feat = rm_malloc(s->init_frames * (MAX_BANDS + 1) * sizeof *s->feat);
  if (!s->window || !s->buf || !s->spec || !s->feat) {
    rm__vad_stat_free(s);
    return NULL;
  }
  for (size_t i = 0; i < frame; i++)
    s->window[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * ((double)i + 0.5) / (double)frame));
  rm__media_fft_lock();
  s->plan = fftwf_plan_dft_r2c_1d((int)frame, s->buf, s->spec, FFTW_ESTIMATE);
  rm__media_fft_unlock();
  if (!s->plan) {
    rm__vad_stat_free(s);
    return NULL;
  }
  return s;
}

void rm__vad_stat_free(rm__vad_stat_t *s) {
  if (!s)
    return;
  if (s->plan) {
    rm__media_fft_lock();
    fftwf_destroy_plan(s->plan);
    rm__media_fft_unlock();
  }
  rm_free(s->window);
  rm_free(s->buf);
  rm_free(s->spec);
  rm_free(s->feat);
  rm_free(s);
}

size_t rm__vad_stat_max_decisions(const rm__vad_stat_t *s) { return s->init_frames; }

void rm__vad_stat_reset(rm__vad_stat_t *s) {
  s->stored = 0;
  s->ready = 0;
}

/* Band energies (mean power per bin) and the frame's mean square into f. */
static void features(rm__vad_stat_t *s, const float *x, double *f) {
  double ms = 0;
  for (size_t i = 0; i < s->n; i++) {
    ms += (double)x[i] * x[i];
    s->buf[i] = x[i] * s->window[i];
  }
  fftwf_execute(s->plan);
  for (size_t b = 0; b < s->n_bands; b++) {
    double e = 0;
    for (size_t k = s->band_lo[b]; k < s->band_hi[b]; k++)
      e += (double)s->spec[k][0] * s->spec[k][0] + (double)s->spec[k][1] * s->spec[k][1];
    f[b] = e / (double)(s->band_hi[b] - s->band_lo[b]);
  }
  f[s->n_bands] = ms / (double)s->n;
}

/* The first noise estimate: the mean band energies of the quietest stored frames. */
static void init_noise(rm__vad_stat_t *s) {
  size_t nb = s->n_bands, stride = MAX_BANDS + 1, take = (size_t)(INIT_QUIET * s->stored);
  if (take < 1)
    take = 1;
  double floor = FLOOR_PER_BIN * (double)s->n;
  uint8_t used[(INIT_MS / 10) + 1];
  memset(used, 0, sizeof used);
  for (size_t b = 0; b < nb; b++)
    s->noise[b] = 0;
  for (size_t t = 0; t < take; t++) {
    size_t best = 0;
    double best_e = INFINITY;
    for (size_t i = 0; i < s->stored; i++) {
      double e = 0;
      for (size_t b = 0; b < nb; b++)
        e += s->feat[i * stride + b];
      if (!used[i] && e < best_e)
        best_e = e, best = i;
    }
    used[best] = 1;
    for (size_t b = 0; b < nb; b++)
      s->noise[b] += s->feat[best * stride + b] / (double)take;
  }
  for (size_t b = 0; b < nb; b++) {
    s->noise[b] = fmax(s->noise[b], floor);
    s->s[b] = s->smin[b] = s->stmp[b] = s->noise[b];
    s->p[b] = 0;
    s->a2[b] = 0;
  }
  s->since_min = 0;
  s->spread_t = s->spread_m = SPREAD0;
  s->last = 0;
  s->ready = 1;
}

/* Decides one frame from its features and updates the noise estimate. */
static uint8_t decide(rm__vad_stat_t *s, const double *f) {
  size_t nb = s->n_bands;
  double llr = 0;
  for (size_t b = 0; b < nb; b++) {
    double g = f[b] / s->noise[b];
    double xi = fmax(ALPHA_DD * s->a2[b] + (1 - ALPHA_DD) * fmax(g - 1, 0), XI_MIN);
    llr += g * xi / (1 + xi) - log1p(xi);
    double w = xi / (1 + xi);
    s->a2[b] = w * w * g;
  }
  llr /= (double)nb;
  /* Energy margins: the frame's total band energy over the noise's (which babble crosses
   * often) and its mean band SNR (which pink noise's strong low bands cannot dominate) must
   * both exceed what the noise itself reaches, judged from its spread. */
  double fe = 0, ne = 0, mg = 0;
  for (size_t b = 0; b < nb; b++) {
    fe += f[b];
    ne += s->noise[b];
    mg += f[b] / s->noise[b];
  }
  double dt = 10 * log10(fe / ne + 1e-30), dm = 10 * log10(mg / (double)nb + 1e-30);
  int audible = f[nb] >= s->min_level;
  if (audible) {
    double al = pow(ALPHA_V, s->frame_ms / 10.0), cap = SPREAD_CAP * SPREAD_CAP;
    if (dt < 0)
      s->spread_t = al * s->spread_t + (1 - al) * fmin(dt * dt, cap);
    if (dm < 0)
      s->spread_m = al * s->spread_m + (1 - al) * fmin(dm * dm, cap);
  }
  double h = s->last ? HYST : 1;
  double mt = fmax(MARGIN_MIN, K_SPREAD * sqrt(s->spread_t)) * h;
  double mm = fmax(MARGIN_MIN, K_SPREAD * sqrt(s->spread_m)) * h;
  int speech = audible && llr > ETA && dt > mt && dm > mm;
  s->last = speech;
  /* MCRA: the minimum of the smoothed energies over one to two windows tells where speech
   * is absent; there the noise estimate follows the band energy. */
  int new_window = ++s->since_min >= s->min_frames;
  for (size_t b = 0; b < nb; b++) {
    s->s[b] = s->a_s * s->s[b] + (1 - s->a_s) * f[b];
    s->smin[b] = fmin(s->smin[b], s->s[b]);
    s->stmp[b] = fmin(s->stmp[b], s->s[b]);
    if (new_window) {
      s->smin[b] = fmin(s->stmp[b], s->s[b]);
      s->stmp[b] = s->s[b];
    }
    double present = s->s[b] > DELTA * s->smin[b];
    s->p[b] = s->a_p * s->p[b] + (1 - s->a_p) * present;
    double a = s->a_d + (1 - s->a_d) * s->p[b];
    if (speech && f[b] >= s->noise[b]) /* speech frames only pull the estimate down */
      a = 1;
    s->noise[b] = fmax(a * s->noise[b] + (1 - a) * f[b], FLOOR_PER_BIN * (double)s->n);
  }
  if (new_window)
    s->since_min = 0;
  return (uint8_t)speech;
}

size_t rm__vad_stat_push(rm__vad_stat_t *s, const float *frame, uint8_t *dec) {
  double f[MAX_BANDS + 1];
  if (s->ready) {
    features(s, frame, f);
    dec[0] = decide(s, f);
    return 1;
  }
  features(s, frame, s->feat + s->stored * (MAX_BANDS + 1));
  if (++s->stored < s->init_frames)
    return 0;
  return rm__vad_stat_finish(s, dec);
}

size_t rm__vad_stat_finish(rm__vad_stat_t *s, uint8_t *dec) {
  if (s->ready || !s->stored)
    return 0;
  init_noise(s);
  for (size_t i = 0; i < s->stored; i++)
    dec[i] = decide(s, s->feat + i * (MAX_BANDS + 1));
  size_t n = s->stored;
  s->stored = 0;
  return n;
}
