/* denoise_lsa.c - the Denoise node's OM-LSA suppressor with a frame-gated noise estimate. See
 * denoise_lsa.h. */
#include "nodes/denoise_lsa.h"

#include <fftw3.h>
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"

/* Tuning, per 10 ms (20 ms frames scale the time constants), chosen on the speech corpus
 * (tests/speech, bench/speech) for segmental SNR and log-spectral distance together. Babble
 * at 5 dB stays below the 3 dB goal: docs/nodes-media.md ("Quality on speech") gives the
 * oracle bounds showing that no gain rule on a stationary noise estimate reaches it. */
#define ALPHA_E 0.7       /* smoothing of the frame energy for the minimum search */
#define GATE 2.0          /* smoothed frame energy / its minimum below this: noise only */
#define GATE_HZ 4000      /* the frame energy counts bins below this (speech's main band) */
#define HANG_MS 60        /* frames after speech that still do not update the noise */
#define ALPHA_N 0.99      /* noise update in noise-only frames (about 1 s) */
#define ALPHA_DD 0.8      /* decision-directed a-priori SNR, per frame */
#define XI_MIN 0.003      /* a-priori SNR floor (-25 dB) */
#define PRIOR_ABSENCE 0.5 /* a-priori probability of speech absence (OM-LSA) */
#define MIN_WINDOW_MS 800 /* the minimum search runs over one to two of these */

struct rm__denoise_lsa {
  size_t hop, win, bins, gate_bins, since_min, min_frames, hang_frames, hang;
  int started;
  double gmin, a_e, a_n;
  double e_s, e_min, e_tmp; /* smoothed frame energy, its minimum, the window's minimum */
  float *w, *in, *ola, *buf;
  fftwf_complex *spec;
  fftwf_plan fwd, inv;
  /* per bin; prev = G^2 gamma of the last frame, pw the periodogram */
  double *noise, *prev, *pw;
};

rm__denoise_lsa_t *rm__denoise_lsa_new(unsigned rate, size_t frame, double floor_db) {
  rm__denoise_lsa_t *d = rm_calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->hop = frame;
  d->win = 2 * frame;
  d->bins = d->win / 2 + 1;
  d->gate_bins = (size_t)((double)GATE_HZ * (double)d->win / rate);
  if (d->gate_bins > d->bins)
    d->gate_bins = d->bins;
  d->gmin = pow(10, -floor_db / 20);
  double k = (double)frame * 100.0 / rate; /* frames per 10 ms */
  d->a_e = pow(ALPHA_E, k);
  d->a_n = pow(ALPHA_N, k);
  d->min_frames = (size_t)(MIN_WINDOW_MS / (10 * k));
  d->hang_frames = (size_t)(HANG_MS / (10 * k));
  d->w = rm_malloc(d->win * sizeof *d->w);
  d->in = rm_calloc(d->win, sizeof *d->in);
  d->ola = rm_calloc(d->hop, sizeof *d->ola);
  d->buf = rm_malloc(d->win * sizeof *d->buf);
  d->spec = rm_malloc(d->bins * sizeof *d->spec);
  double **arrays[] = {&d->noise, &d->prev, &d->pw};
  int ok = d->w && d->in && d->ola && d->buf && d->spec;
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
    ok = (*arrays[i] = rm_calloc(d->bins, sizeof(double))) && ok;
  if (ok) {
    rm__media_fft_lock();
    d->fwd = fftwf_plan_dft_r2c_1d((int)d->win, d->buf, d->spec, FFTW_ESTIMATE);
    d->inv = fftwf_plan_dft_c2r_1d((int)d->win, d->spec, d->buf, FFTW_ESTIMATE);
    rm__media_fft_unlock();
  }
  if (!ok || !d->fwd || !d->inv) {
    rm__denoise_lsa_free(d);
    return NULL;
  }
  for (size_t i = 0; i < d->win; i++) /* sqrt-Hann: w^2 sums to 1 at 50 % overlap */
    d->w[i] = (float)sin(M_PI * (double)i / (double)d->win);
  return d;
}

void rm__denoise_lsa_free(rm__denoise_lsa_t *d) {
  if (!d)
    return;
  if (d->fwd || d->inv) {
    rm__media_fft_lock();
    if (d->fwd)
      fftwf_destroy_plan(d->fwd);
    if (d->inv)
      fftwf_destroy_plan(d->inv);
    rm__media_fft_unlock();
  }
  rm_free(d->w);
  rm_free(d->in);
  rm_free(d->ola);
  rm_free(d->buf);
  rm_free(d->spec);
  rm_free(d->noise);
  rm_free(d->prev);
  rm_free(d->pw);
  rm_free(d);
}

/* exp(E1(v) / 2), E1 the exponential integral, by the usual three-piece approximation. */
static double half_exp_e1(double v) {
  double e1;
  if (v < 0.1)
    e1 = -2.31 * log10(fmax(v, 1e-12)) - 0.6;
  else if (v < 1)
    e1 = -1.544 * log10(v) + 0.166;
  else
    e1 = pow(10, -0.52 * v - 0.26);
  return exp(0.5 * e1);
}

/* The noise estimate: a slow average of the periodogram over noise-only frames, those whose
 * smoothed energy below GATE_HZ stays within GATE of its recent minimum (and not within
 * HANG_MS after speech). A whole-frame decision, not a per-bin one: per-bin minimum tracking
 * (MCRA, this suppressor's first estimator) sat 8 dB below the mean of babble, whose bins
 * are as heavy-tailed as speech's. */
static void track_noise(rm__denoise_lsa_t *d, const double *pw) {
  double e = 0;
  for (size_t k = 1; k < d->gate_bins; k++)
    e += pw[k];
  if (!d->started) {
    d->e_s = d->e_min = d->e_tmp = e;
    memcpy(d->noise, pw, d->bins * sizeof *d->noise);
    d->started = 1;
    return;
  }
  d->e_s = d->a_e * d->e_s + (1 - d->a_e) * e;
  d->e_min = fmin(d->e_min, d->e_s);
  d->e_tmp = fmin(d->e_tmp, d->e_s);
  if (++d->since_min >= d->min_frames) {
    d->e_min = fmin(d->e_tmp, d->e_s);
    d->e_tmp = d->e_s;
    d->since_min = 0;
  }
  if (d->e_s > GATE * d->e_min) {
    d->hang = d->hang_frames;
    return;
  }
  if (d->hang) {
    d->hang--;
    return;
  }
  for (size_t k = 0; k < d->bins; k++) { /* the periodogram smoothed over 3 bins */
    double sf = 0.25 * pw[k > 0 ? k - 1 : k] + 0.5 * pw[k] + 0.25 * pw[k + 1 < d->bins ? k + 1 : k];
    d->noise[k] = d->a_n * d->noise[k] + (1 - d->a_n) * sf;
  }
}

void rm__denoise_lsa_run(rm__denoise_lsa_t *d, const float *x, float *y, size_t stride) {
  size_t hop = d->hop, win = d->win;
  memmove(d->in, d->in + hop, (win - hop) * sizeof *d->in);
  for (size_t i = 0; i < hop; i++) /* NaN and infinities would stick in the estimates */
    d->in[win - hop + i] = isfinite(x[i * stride]) ? x[i * stride] : 0.0f;
  for (size_t i = 0; i < win; i++)
    d->buf[i] = d->in[i] * d->w[i];
  fftwf_execute(d->fwd);
  double *pw = d->pw;
  for (size_t k = 0; k < d->bins; k++)
    pw[k] = (double)d->spec[k][0] * d->spec[k][0] + (double)d->spec[k][1] * d->spec[k][1];
  track_noise(d, pw);
  for (size_t k = 0; k < d->bins; k++) {
    double n = fmax(d->noise[k], 1e-20), g = pw[k] / n;
    double xi = fmax(ALPHA_DD * d->prev[k] + (1 - ALPHA_DD) * fmax(g - 1, 0), XI_MIN);
    double v = xi * g / (1 + xi);
    /* OM-LSA: the LSA gain where speech is present, the floor where it is absent,
     * weighted by the bin's speech-presence probability */
    double pr = 1 / (1 + PRIOR_ABSENCE / (1 - PRIOR_ABSENCE) * (1 + xi) * exp(-fmin(v, 500)));
    double gain = fmin(xi / (1 + xi) * half_exp_e1(v), 1.0);
    gain = fmax(pow(gain, pr) * pow(d->gmin, 1 - pr), d->gmin);
    d->prev[k] = gain * gain * g;
    d->spec[k][0] *= (float)gain;
    d->spec[k][1] *= (float)gain;
  }
  fftwf_execute(d->inv);
  float scale = 1.0f / (float)win;
  for (size_t i = 0; i < hop; i++)
    y[i * stride] = d->ola[i] + d->buf[i] * d->w[i] * scale;
  for (size_t i = 0; i < hop; i++)
    d->ola[i] = d->buf[hop + i] * d->w[hop + i] * scale;
}
