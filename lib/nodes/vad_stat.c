/* vad_stat.c - the VAD node's statistical detector: sub-band likelihood ratio against an
 * MCRA noise estimate, energy margins from the noise's own spread, fricative and voicing cues, and
 * a short look-ahead at the start of a stream. See vad_stat.h. */
#include "nodes/vad_stat.h"

#include <fftw3.h>
#include <stddef.h>
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"

#define MAX_BANDS 24
#define NF (MAX_BANDS + 2) /* features per frame: bands, mean square, voicing */
#define VOICE_MS 40        /* voicing is measured on the last frames covering this */
#define VOICE_LO_HZ 80.0   /* ... band-limited to this ... */
#define VOICE_HI_HZ 1500.0 /* ... and this, over pitch periods of 2.5 - 16 ms */
#define INIT_MS 300        /* look-ahead for the first noise estimate */
#define INIT_QUIET 0.3     /* ... taken from this fraction of its quietest frames */
#define MIN_WINDOW_MS 800  /* MCRA's minimum search runs over one to two of these */

/* Band edges, Hz: about 1/3 octave, 100 Hz - 4 kHz (speech's energy and harmonics), then
 * wider up to 8 kHz (fricatives), each band only where the rate holds it. */
static const double edges_hz[] = {100,  200,  300,  400,  510,  630,  770,  920,  1080, 1270, 1480,
                                  1720, 2000, 2320, 2700, 3150, 3700, 4000, 4700, 5500, 6500, 8000};
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
#define SPREAD0 6.0         /* initial spread, dB^2 (2.45 dB, until measured) */
#define SPREAD_CAP 4.0      /* dB: deviations are clipped here before they are squared */
#define K_SPREAD 3.0        /* energy margins: this many times the noise's spread ... */
#define MARGIN_MIN 1.0      /* ... and at least this, dB */
#define VOICE_MIN 0.65      /* voicing above this ... */
#define VOICE_GAP 0.3       /* ... and this much above the noise's own ... */
#define VOICE_MARGIN 0.3    /* ... needs only this fraction of the energy margins */
#define VOICE_NOISE0 0.5    /* the noise's voicing until measured */
#define SUSTAIN_MS 100      /* the band energy over the noise's, averaged over this ... */
#define SUSTAIN 0.8         /* ... above this fraction of the energy margin: speech, ... */
#define SUSTAIN_LEVEL 0.5   /* ... and half the speech's own level over the noise's, ... */
#define SUSTAIN_SPREAD 2.5  /* ... where the noise's spread exceeds this, dB (babble) */
#define ALPHA_L 0.99        /* smoothing of the speech's level (frames past the full margins) */
#define LEAD_GAP_MS 50      /* the look-ahead: frames above the noise this close before speech */
#define ACTIVE_DB 15.9      /* frames this far below the speech's active level: not speech */
#define ALPHA_A 0.99        /* smoothing of the active level (mean square of strong frames) */
#define HYST 0.5            /* inside speech the margins are this fraction */
#define FLOOR_PER_BIN 1e-12 /* noise estimates stay above this times the frame length */

struct rm__vad_stat {
  uint32_t rate;
  size_t n, bins, n_bands, n_low; /* bands; those below 4 kHz */
  int frame_ms;
  size_t band_lo[MAX_BANDS], band_hi[MAX_BANDS];
  double min_level; /* mean square */
  double a_s, a_p, a_d, a_l, a_a;
  float *window, *buf;
  fftwf_complex *spec;
  fftwf_plan plan;
  /* voicing: normalised autocorrelation of the last VOICE_MS */
  size_t vn, vm, lag_lo, lag_hi, vbin_lo, vbin_hi;
  float *hist, *vbuf, *vwin, *racf;
  double *wacf; /* the window's own autocorrelation, for normalising */
  fftwf_complex *vspec;
  fftwf_plan vfwd, vinv;
  size_t init_frames, min_frames, ring_len;
  double *feat; /* init_frames x NF: band energies, frame mean square, voicing */
  /* stream: from here to the end, zero at the start of each (rm__vad_stat_reset) */
  size_t stored, since_min;
  int ready;
  double noise[MAX_BANDS], s[MAX_BANDS], smin[MAX_BANDS], stmp[MAX_BANDS], p[MAX_BANDS],
      a2[MAX_BANDS];
  /* the noise's own spread (dB^2) in the two energy measures, from frames below the
   * estimate (noise whatever the decision): total band energy and mean band SNR */
  double spread_t, spread_m, spread_h; /* ... and the band energy above 4 kHz */
  double vnoise;                       /* mean voicing of those frames */
  double ring[SUSTAIN_MS / 10];        /* the last frames' energy over the noise's */
  size_t ring_n, ring_at;
  int last;      /* the previous decision */
  double slevel; /* the speech's level over the noise's, dB (strong frames) */
  int weak;      /* the last decided frame was above the noise by a fraction of the margins */
  double active; /* the speech's active level: mean square of strong frames (0: none yet) */
};

rm__vad_stat_t *rm__vad_stat_new(uint32_t rate, size_t frame, int frame_ms, double min_level_db) {
  rm__vad_stat_t *s = rm_calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->rate = rate;
  s->n = frame;
  s->bins = frame / 2 + 1;
  s->frame_ms = frame_ms;
  s->min_level = pow(10, min_level_db / 10);
  double k = frame_ms / 10.0;
  s->a_s = pow(ALPHA_S, k);
  s->a_p = pow(ALPHA_P, k);
  s->a_d = pow(ALPHA_D, k);
  s->a_l = pow(ALPHA_L, k);
  s->a_a = pow(ALPHA_A, k);
  for (size_t e = 0; e + 1 < N_EDGES && s->n_bands < MAX_BANDS; e++) {
    if (2 * edges_hz[e + 1] > rate)
      break;
    size_t lo = (size_t)lround(edges_hz[e] * (double)frame / rate);
    size_t hi = (size_t)lround(edges_hz[e + 1] * (double)frame / rate);
    if (hi > s->bins)
      hi = s->bins;
    if (lo < 1)
      lo = 1;
    if (hi > lo) {
      s->n_low += edges_hz[e + 1] <= 4000;
      s->band_lo[s->n_bands] = lo;
      s->band_hi[s->n_bands] = hi;
      s->n_bands++;
    }
  }
  s->init_frames = (size_t)(INIT_MS + frame_ms - 1) / (size_t)frame_ms;
  s->min_frames = (size_t)MIN_WINDOW_MS / (size_t)frame_ms;
  s->ring_len = (size_t)SUSTAIN_MS / (size_t)frame_ms;
  s->window = rm_malloc(frame * sizeof *s->window);
  s->buf = rm_malloc(frame * sizeof *s->buf);
  s->spec = rm_malloc(s->bins * sizeof *s->spec);
  s->feat = rm_malloc(s->init_frames * (NF) * sizeof *s->feat);
  s->vn = (size_t)((VOICE_MS + frame_ms - 1) / frame_ms) * frame;
  for (s->vm = 64; s->vm < s->vn + s->vn / 2; s->vm *= 2) /* lags up to vn / 2 do not wrap */
    ;
  s->lag_lo = (size_t)(rate / 400);
  s->lag_hi = (size_t)(rate / 62.5);
  if (s->lag_hi > s->vn / 2)
    s->lag_hi = s->vn / 2;
  s->vbin_lo = (size_t)(VOICE_LO_HZ * (double)s->vm / rate);
  s->vbin_hi = (size_t)(VOICE_HI_HZ * (double)s->vm / rate);
  s->hist = rm_calloc(s->vn, sizeof *s->hist);
  s->vbuf = rm_malloc(s->vm * sizeof *s->vbuf);
  s->vwin = rm_malloc(s->vn * sizeof *s->vwin);
  s->racf = rm_malloc(s->vm * sizeof *s->racf);
  s->wacf = rm_malloc(s->vn * sizeof *s->wacf);
  s->vspec = rm_malloc((s->vm / 2 + 1) * sizeof *s->vspec);
  if (!s->window || !s->buf || !s->spec || !s->feat || !s->hist || !s->vbuf || !s->vwin ||
      !s->racf || !s->wacf || !s->vspec) {
    rm__vad_stat_free(s);
    return NULL;
  }
  for (size_t i = 0; i < frame; i++)
    s->window[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * ((double)i + 0.5) / (double)frame));
  rm__media_fft_lock();
  s->plan = fftwf_plan_dft_r2c_1d((int)frame, s->buf, s->spec, FFTW_ESTIMATE);
  s->vfwd = fftwf_plan_dft_r2c_1d((int)s->vm, s->vbuf, s->vspec, FFTW_ESTIMATE);
  s->vinv = fftwf_plan_dft_c2r_1d((int)s->vm, s->vspec, s->racf, FFTW_ESTIMATE);
  rm__media_fft_unlock();
  if (!s->plan || !s->vfwd || !s->vinv) {
    rm__vad_stat_free(s);
    return NULL;
  }
  for (size_t i = 0; i < s->vn; i++)
    s->vwin[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * ((double)i + 0.5) / (double)s->vn));
  for (size_t l = 0; l < s->vn; l++) {
    double r = 0;
    for (size_t i = 0; i + l < s->vn; i++)
      r += (double)s->vwin[i] * s->vwin[i + l];
    s->wacf[l] = r;
  }
  return s;
}

/* Everything under "stream" in the struct goes back to what rm_calloc gave a new detector,
 * and so does the voicing history. */
void rm__vad_stat_reset(rm__vad_stat_t *s) {
  size_t from = offsetof(rm__vad_stat_t, stored);
  memset((char *)s + from, 0, sizeof *s - from);
  memset(s->hist, 0, s->vn * sizeof *s->hist);
}

uint32_t rm__vad_stat_rate(const rm__vad_stat_t *s) { return s->rate; }

void rm__vad_stat_free(rm__vad_stat_t *s) {
  if (!s)
    return;
  if (s->plan) {
    rm__media_fft_lock();
    fftwf_destroy_plan(s->plan);
    rm__media_fft_unlock();
  }
  if (s->vfwd || s->vinv) {
    rm__media_fft_lock();
    if (s->vfwd)
      fftwf_destroy_plan(s->vfwd);
    if (s->vinv)
      fftwf_destroy_plan(s->vinv);
    rm__media_fft_unlock();
  }
  rm_free(s->hist);
  rm_free(s->vbuf);
  rm_free(s->vwin);
  rm_free(s->racf);
  rm_free(s->wacf);
  rm_free(s->vspec);
  rm_free(s->window);
  rm_free(s->buf);
  rm_free(s->spec);
  rm_free(s->feat);
  rm_free(s);
}

size_t rm__vad_stat_max_decisions(const rm__vad_stat_t *s) { return s->init_frames; }

/* Voicing of the last VOICE_MS of signal (hist): the highest normalised
 * autocorrelation over pitch lags of the signal band-limited to 80 - 1500 Hz (Boersma's
 * window-corrected estimate), 0 - 1. */
static double voicing(rm__vad_stat_t *s) {
  double mean = 0;
  for (size_t i = 0; i < s->vn; i++)
    mean += s->hist[i];
  mean /= (double)s->vn;
  for (size_t i = 0; i < s->vn; i++)
    s->vbuf[i] = (float)((s->hist[i] - mean) * s->vwin[i]);
  memset(s->vbuf + s->vn, 0, (s->vm - s->vn) * sizeof *s->vbuf);
  fftwf_execute(s->vfwd);
  for (size_t k = 0; k <= s->vm / 2; k++) {
    int keep = k >= s->vbin_lo && k <= s->vbin_hi;
    double p = (double)s->vspec[k][0] * s->vspec[k][0] + (double)s->vspec[k][1] * s->vspec[k][1];
    s->vspec[k][0] = keep ? (float)p : 0.0f;
    s->vspec[k][1] = 0.0f;
  }
  fftwf_execute(s->vinv);
  double r0 = s->racf[0], best = 0;
  if (r0 <= 1e-20)
    return 0;
  for (size_t l = s->lag_lo; l <= s->lag_hi; l++)
    best = fmax(best, s->racf[l] / r0 * s->wacf[0] / s->wacf[l]);
  return fmin(best, 1.0);
}

/* Band energies (mean power per bin), the frame's mean square and voicing into f. */
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
  /* voicing costs two FFTs: measured now while the look-ahead stores frames, later only
   * when a decision needs it (-1 until then) */
  memmove(s->hist, s->hist + s->n, (s->vn - s->n) * sizeof *s->hist);
  memcpy(s->hist + s->vn - s->n, x, s->n * sizeof *x);
  f[s->n_bands + 1] = s->ready ? -1 : voicing(s);
}

/* The first noise estimate: the mean band energies of the quietest stored frames. */
static void init_noise(rm__vad_stat_t *s) {
  size_t nb = s->n_bands, n = s->stored, order[(INIT_MS / 10) + 1];
  double total[(INIT_MS / 10) + 1];
  for (size_t i = 0; i < n; i++) { /* frames by total band energy, quietest first */
    const double *f = s->feat + i * NF;
    total[i] = 0;
    for (size_t b = 0; b < nb; b++)
      total[i] += f[b];
    size_t j = i;
    for (; j > 0 && total[order[j - 1]] > total[i]; j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
  size_t take = (size_t)(INIT_QUIET * (double)n);
  take = take < 1 ? 1 : take;
  for (size_t b = 0; b < nb; b++) {
    s->noise[b] = 0;
    for (size_t k = 0; k < take; k++)
      s->noise[b] += s->feat[order[k] * NF + b] / (double)take;
    s->noise[b] = fmax(s->noise[b], FLOOR_PER_BIN * (double)s->n);
    s->s[b] = s->smin[b] = s->stmp[b] = s->noise[b];
    s->p[b] = 0;
    s->a2[b] = 0;
  }
  s->since_min = 0;
  s->spread_t = s->spread_m = s->spread_h = SPREAD0;
  s->vnoise = VOICE_NOISE0;
  s->last = 0;
  s->slevel = 0;
  s->active = 0;
  s->ring_n = s->ring_at = 0;
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
  double fh = 0, nh = 0;
  for (size_t b = s->n_low; b < nb; b++)
    fh += f[b], nh += s->noise[b];
  double dt = 10 * log10(fe / ne + 1e-30), dm = 10 * log10(mg / (double)nb + 1e-30);
  double dh = nh > 0 ? 10 * log10(fh / nh + 1e-30) : 0;
  int audible = f[nb] >= s->min_level;
  double vo = f[nb + 1];
  if (audible) {
    double al = pow(ALPHA_V, s->frame_ms / 10.0), cap = SPREAD_CAP * SPREAD_CAP;
    if (dt < 0) {
      s->spread_t = al * s->spread_t + (1 - al) * fmin(dt * dt, cap);
      vo = vo < 0 ? voicing(s) : vo;
      s->vnoise = al * s->vnoise + (1 - al) * vo;
    }
    if (dm < 0)
      s->spread_m = al * s->spread_m + (1 - al) * fmin(dm * dm, cap);
    if (dh < 0)
      s->spread_h = al * s->spread_h + (1 - al) * fmin(dh * dh, cap);
  }
  double mt = fmax(MARGIN_MIN, K_SPREAD * sqrt(s->spread_t));
  double mm = fmax(MARGIN_MIN, K_SPREAD * sqrt(s->spread_m));
  double mh = fmax(MARGIN_MIN, K_SPREAD * sqrt(s->spread_h));
  int strong = audible && llr > ETA && dt > mt && dm > mm;
  /* after a speech frame a fraction of the margins suffices; a voiced frame (more
   * periodic than the noise has been) needs less */
  double h = s->last ? HYST : 1;
  int speech = strong || (audible && llr > ETA && dt > mt * h && dm > mm * h);
  /* fricatives: their energy lies above 4 kHz, where the noise (babble's voiced sounds,
   * pink noise) is weak, so the total band energy misses them; the energy above 4 kHz over
   * its noise's, past margins from its own spread, stands in for it */
  if (!speech && audible && nh > 0 && llr > ETA && dh > mh * h && dm > mm * h)
    speech = 1;
  if (!speech && audible && dm > VOICE_MARGIN * mm * h && dt > VOICE_MARGIN * mt * h) {
    vo = vo < 0 ? voicing(s) : vo;
    speech = vo > fmax(VOICE_MIN, s->vnoise + VOICE_GAP);
  }
  /* babble crosses the margins in single frames; speech stays above them: the mean over
   * the last SUSTAIN_MS needs only a fraction of them */
  s->ring[s->ring_at] = fe / ne;
  s->ring_at = (s->ring_at + 1) % s->ring_len;
  s->ring_n += s->ring_n < s->ring_len;
  double sum = 0;
  for (size_t i = 0; i < s->ring_n; i++)
    sum += s->ring[i];
  double sus = 10 * log10(sum / (double)s->ring_n + 1e-30);
  if (!speech && audible && llr > 0 && sqrt(s->spread_t) > SUSTAIN_SPREAD &&
      sus > fmax(SUSTAIN * mt, SUSTAIN_LEVEL * s->slevel))
    speech = 1;
  /* ITU-T P.56's activity rule: a frame more than ACTIVE_DB below the speech's active level
   * (the power mean of the frames past the full margins) is not speech, whatever the other
   * cues say. Where the noise alone is above that (10 dB SNR and below) it never applies;
   * above it trims the talker's fading tails that the noise no longer hides. */
  if (strong)
    s->active = s->active > 0 ? s->a_a * s->active + (1 - s->a_a) * f[nb] : f[nb];
  if (speech && f[nb] < s->active * pow(10, -ACTIVE_DB / 10))
    speech = 0;
  s->last = speech;
  if (strong)
    s->slevel = s->a_l * s->slevel + (1 - s->a_l) * dt;
  s->weak = audible && llr > 0 && dt > 0 && dm > 0;

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
    if (strong && f[b] >= s->noise[b]) /* frames past the full margins only pull it down */
      a = 1;
    s->noise[b] = fmax(a * s->noise[b] + (1 - a) * f[b], FLOOR_PER_BIN * (double)s->n);
  }
  if (new_window)
    s->since_min = 0;
  return (uint8_t)speech;
}

size_t rm__vad_stat_push(rm__vad_stat_t *s, const float *frame, uint8_t *dec) {
  double f[NF];
  if (s->ready) {
    features(s, frame, f);
    dec[0] = decide(s, f);
    return 1;
  }
  features(s, frame, s->feat + s->stored * (NF));
  if (++s->stored < s->init_frames)
    return 0;
  return rm__vad_stat_finish(s, dec);
}

size_t rm__vad_stat_finish(rm__vad_stat_t *s, uint8_t *dec) {
  if (s->ready || !s->stored)
    return 0;
  init_noise(s);
  uint8_t weak[(INIT_MS / 10) + 1];
  for (size_t i = 0; i < s->stored; i++) {
    dec[i] = decide(s, s->feat + i * (NF));
    weak[i] = (uint8_t)s->weak;
  }
  /* the look-ahead knows where speech goes on: it starts at the earliest of the frames above
   * the noise that lead up to it without a break */
  size_t next = s->stored, gap = (size_t)LEAD_GAP_MS / (size_t)s->frame_ms;
  for (size_t i = s->stored; i-- > 0;) {
    if (dec[i])
      next = i;
    else if (weak[i] && next < s->stored && next - i <= gap + 1)
      dec[i] = 1, next = i;
  }
  size_t n = s->stored;
  s->stored = 0;
  return n;
}
