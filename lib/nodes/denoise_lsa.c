/* denoise_lsa.c - the Denoise node's OM-LSA suppressor with an MCRA noise estimate. See
 * denoise_lsa.h. */
#include "nodes/denoise_lsa.h"

#include <fftw3.h>
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"

/* Tuning, per 10 ms (20 ms frames scale the time constants), chosen on the speech corpus
 * (tests/speech, bench/speech). */
#define ALPHA_S 0.8       /* smoothing of the periodogram for MCRA's minimum search */
#define DELTA 2.5         /* S / Smin above this: speech likely present in the bin */
#define ALPHA_P 0.2       /* smoothing of the speech-presence indicator */
#define ALPHA_D 0.99      /* noise update where speech is absent */
#define ALPHA_DD 0.92     /* decision-directed a-priori SNR */
#define XI_MIN 0.003      /* a-priori SNR floor (-25 dB) */
#define PRIOR_ABSENCE 0.5 /* a-priori probability of speech absence (OM-LSA) */
#define MIN_WINDOW_MS 800 /* MCRA's minimum search runs over one to two of these */

struct rm__denoise_lsa {
  size_t hop, win, bins, since_min, min_frames;
  int started;
  double gmin, a_s, a_p, a_d;
  float *w, *in, *ola, *buf;
  fftwf_complex *spec;
  fftwf_plan fwd, inv;
  /* per bin; prev = G^2 gamma of the last frame, pw the periodogram */
  double *noise, *s, *smin, *stmp, *p, *prev, *pw;
};

rm__denoise_lsa_t *rm__denoise_lsa_new(unsigned rate, size_t frame, double floor_db) {
  (void)rate;
  rm__denoise_lsa_t *d = rm_calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->hop = frame;
  d->win = 2 * frame;
  d->bins = d->win / 2 + 1;
  d->gmin = pow(10, -floor_db / 20);
  double k = (double)frame * 100.0 / rate; /* frames per 10 ms */
  d->a_s = pow(ALPHA_S, k);
  d->a_p = pow(ALPHA_P, k);
  d->a_d = pow(ALPHA_D, k);
  d->min_frames = (size_t)(MIN_WINDOW_MS / (10 * k));
  d->w = rm_malloc(d->win * sizeof *d->w);
  d->in = rm_calloc(d->win, sizeof *d->in);
  d->ola = rm_calloc(d->hop, sizeof *d->ola);
  d->buf = rm_malloc(d->win * sizeof *d->buf);
  d->spec = rm_malloc(d->bins * sizeof *d->spec);
  double **arrays[] = {&d->noise, &d->s, &d->smin, &d->stmp, &d->p, &d->prev, &d->pw};
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
  rm_free(d->s);
  rm_free(d->smin);
  rm_free(d->stmp);
  rm_free(d->p);
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

/* MCRA: the noise estimate follows the periodogram where the smoothed one is near its
 * recent minimum (speech absent). */
static void track_noise(rm__denoise_lsa_t *d, const double *pw) {
  int first = !d->started, new_window = ++d->since_min >= d->min_frames;
  for (size_t k = 0; k < d->bins; k++) {
    double sf = 0.25 * pw[k > 0 ? k - 1 : k] + 0.5 * pw[k] + 0.25 * pw[k + 1 < d->bins ? k + 1 : k];
    if (first) {
      d->s[k] = d->smin[k] = d->stmp[k] = d->noise[k] = sf;
      continue;
    }
    d->s[k] = d->a_s * d->s[k] + (1 - d->a_s) * sf;
    d->smin[k] = fmin(d->smin[k], d->s[k]);
    d->stmp[k] = fmin(d->stmp[k], d->s[k]);
    if (new_window) {
      d->smin[k] = fmin(d->stmp[k], d->s[k]);
      d->stmp[k] = d->s[k];
    }
    d->p[k] = d->a_p * d->p[k] + (1 - d->a_p) * (d->s[k] > DELTA * d->smin[k]);
    double a = d->a_d + (1 - d->a_d) * d->p[k];
    d->noise[k] = a * d->noise[k] + (1 - a) * pw[k];
  }
  if (new_window)
    d->since_min = 0;
  d->started = 1;
}

void rm__denoise_lsa_run(rm__denoise_lsa_t *d, const float *x, float *y, size_t stride) {
  size_t hop = d->hop, win = d->win;
  memmove(d->in, d->in + hop, (win - hop) * sizeof *d->in);
  for (size_t i = 0; i < hop; i++)
    d->in[win - hop + i] = x[i * stride];
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
