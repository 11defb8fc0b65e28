/* corpus.c - builds speech-corpus tracks (utterances, known pauses, noise at a set SNR,
 * ground truth) and measures detectors and suppressors against them. See corpus.h. */
#include "corpus.h"

#include <fftw3.h>
#include <jansson.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/manifest.h"
#include "rm/pipeline.h"

#define N_UTTS 12
#define N_BABBLE 6
#define LEAD_MS 1000    /* variant 1: noise before the first utterance */
#define TAIL_MS 500     /* after the last utterance */
#define PEAK_DB 40.0    /* frames within this of the utterance's loudest make its active level */
#define ACTIVE_DB 15.9  /* a frame is speech above its utterance's active level minus this */
#define BRIDGE_MS 200   /* gaps this short inside an utterance are speech (VAD's hangover) */
#define TRIM_LEVEL 1e-3 /* utterances are trimmed to their first/last sample above this */

/* Pauses between consecutive utterances, ms. */
static const int pauses_ms[N_UTTS - 1] = {1500, 3000, 800,  2500, 4000, 1200,
                                          2000, 3500, 1000, 2800, 1800};

const char *sp_corpus_dir(const char *fallback) {
  const char *d = getenv("RM_SPEECH_CORPUS");
  return d && *d ? d : fallback;
}

const char *sp_noise_name(int noise) {
  static const char *const names[] = {"clean", "white", "pink", "babble"};
  return noise >= 0 && noise < SP_N_NOISES ? names[noise] : "?";
}

/* Reads dir/<stem>_<rate>.wav (mono) into a malloc'd array; NULL on failure. */
static float *load(const char *dir, const char *stem, uint32_t rate, size_t *n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s_%u.wav", dir, stem, rate);
  SF_INFO info = {0};
  SNDFILE *f = sf_open(path, SFM_READ, &info);
  if (!f)
    return NULL;
  float *x = NULL;
  if (info.channels == 1 && (uint32_t)info.samplerate == rate && info.frames > 0) {
    x = malloc((size_t)info.frames * sizeof *x);
    if (x && sf_readf_float(f, x, info.frames) != info.frames) {
      free(x);
      x = NULL;
    }
  }
  *n = x ? (size_t)info.frames : 0;
  sf_close(f);
  return x;
}

/* xorshift64* and Box-Muller: deterministic Gaussian noise. */
static uint64_t next_u64(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1DULL;
}

static double gauss(uint64_t *s) {
  double u1 = ((double)(next_u64(s) >> 11) + 1.0) / 9007199254740993.0;
  double u2 = (double)(next_u64(s) >> 11) / 9007199254740992.0;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static void white(float *y, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    y[i] = (float)gauss(&seed);
}

/* Paul Kellett's pink filter (-3 dB/octave within 0.05 dB above 9 Hz at 44.1 kHz). */
static void pink(float *y, size_t n, uint64_t seed) {
  double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0;
  for (size_t i = 0; i < n; i++) {
    double w = gauss(&seed);
    b0 = 0.99886 * b0 + w * 0.0555179;
    b1 = 0.99332 * b1 + w * 0.0750759;
    b2 = 0.96900 * b2 + w * 0.1538520;
    b3 = 0.86650 * b3 + w * 0.3104856;
    b4 = 0.55000 * b4 + w * 0.5329522;
    b5 = -0.7616 * b5 - w * 0.0168980;
    y[i] = (float)(b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362);
    b6 = w * 0.115926;
  }
}

/* Six other talkers, each looping from its own offset, each at the same RMS. */
static int babble(float *y, size_t n, const char *dir, uint32_t rate) {
  memset(y, 0, n * sizeof *y);
  for (int k = 0; k < N_BABBLE; k++) {
    char stem[16];
    snprintf(stem, sizeof stem, "bab_%02d", k);
    size_t len;
    float *x = load(dir, stem, rate, &len);
    if (!x)
      return -1;
    double e = 0;
    for (size_t i = 0; i < len; i++)
      e += (double)x[i] * x[i];
    float g = (float)(1.0 / sqrt(e / (double)len + 1e-20));
    size_t at = len * (size_t)k / N_BABBLE;
    for (size_t i = 0; i < n; i++, at = at + 1 == len ? 0 : at + 1)
      y[i] += g * x[at];
    free(x);
  }
  return 0;
}

void sp_track_free(sp_track_t *t) {
  free(t->clean);
  free(t->noise);
  free(t->mix);
  free(t->truth);
  memset(t, 0, sizeof *t);
}

/* Loads the utterances, trimmed, in the variant's order; fills lens and returns 0. */
static int load_utts(const char *dir, uint32_t rate, int variant, float **u, size_t *len) {
  for (int k = 0; k < N_UTTS; k++) {
    char stem[16];
    snprintf(stem, sizeof stem, "utt_%02d", variant ? N_UTTS - 1 - k : k);
    size_t n, a = 0, b;
    float *x = load(dir, stem, rate, &n);
    if (!x)
      return -1;
    while (a < n && fabsf(x[a]) <= TRIM_LEVEL)
      a++;
    for (b = n; b > a && fabsf(x[b - 1]) <= TRIM_LEVEL; b--)
      ;
    memmove(x, x + a, (b - a) * sizeof *x);
    u[k] = x;
    len[k] = b - a;
  }
  return 0;
}

static double frame_energy(const float *x, size_t from, size_t to) {
  double e = 0;
  for (size_t i = from; i < to; i++)
    e += (double)x[i] * x[i];
  return e;
}

/* Truth per frame, after ITU-T P.56's activity rule: a frame is speech when its energy is
 * at least its utterance's active level - 15.9 dB (the active level being the mean power of
 * the utterance's frames within 40 dB of its loudest), and gaps up to BRIDGE_MS inside an
 * utterance are filled (P.56's 200 ms hangover, the VAD's default hangover_ms). */
static void make_truth(sp_track_t *t, const size_t *starts, const size_t *lens) {
  size_t fl = t->rate * SP_FRAME_MS / 1000;
  for (size_t k = 0; k < t->n_utts; k++) {
    size_t f0 = starts[k] / fl, f1 = (starts[k] + lens[k] + fl - 1) / fl;
    if (f1 > t->n_frames)
      f1 = t->n_frames;
    double peak = 0, active = 0;
    size_t n_active = 0;
    for (size_t f = f0; f < f1; f++)
      peak = fmax(peak, frame_energy(t->clean, f * fl, (f + 1) * fl));
    for (size_t f = f0; f < f1; f++) {
      double e = frame_energy(t->clean, f * fl, (f + 1) * fl);
      if (e > peak * pow(10, -PEAK_DB / 10))
        active += e, n_active++;
    }
    double thr = active / (double)(n_active ? n_active : 1) * pow(10, -ACTIVE_DB / 10);
    size_t last = (size_t)-1;
    for (size_t f = f0; f < f1; f++) {
      if (frame_energy(t->clean, f * fl, (f + 1) * fl) < thr)
        continue;
      t->truth[f] = 1;
      if (last != (size_t)-1 && (f - last - 1) * SP_FRAME_MS <= BRIDGE_MS)
        memset(t->truth + last + 1, 1, f - last - 1);
      last = f;
    }
  }
}

static int mix_noise(sp_track_t *t, const char *dir, int noise, double snr_db, int variant) {
  uint64_t seed = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)noise << 40) ^ ((uint64_t)variant << 32);
  if (noise == SP_WHITE)
    white(t->noise, t->n, seed);
  else if (noise == SP_PINK)
    pink(t->noise, t->n, seed);
  else if (noise == SP_BABBLE && babble(t->noise, t->n, dir, t->rate))
    return -1;
  if (noise != SP_CLEAN) {
    size_t fl = t->rate * SP_FRAME_MS / 1000, speech = 0;
    double ps = 0, pn = frame_energy(t->noise, 0, t->n) / (double)t->n;
    for (size_t f = 0; f < t->n_frames; f++)
      if (t->truth[f]) {
        ps += frame_energy(t->clean, f * fl, (f + 1) * fl);
        speech += fl;
      }
    ps /= (double)(speech ? speech : 1);
    float g = (float)sqrt(ps / (pn * pow(10, snr_db / 10)));
    for (size_t i = 0; i < t->n; i++)
      t->noise[i] *= g;
  }
  for (size_t i = 0; i < t->n; i++)
    t->mix[i] = t->clean[i] + t->noise[i];
  return 0;
}

int sp_track_make(const char *dir, uint32_t rate, int noise, double snr_db, int variant,
                  sp_track_t *t) {
  memset(t, 0, sizeof *t);
  float *u[N_UTTS] = {0};
  size_t len[N_UTTS], starts[N_UTTS];
  int rc = load_utts(dir, rate, variant, u, len);
  if (!rc) {
    size_t ms = rate / 1000, at = variant ? LEAD_MS * ms : 0;
    for (int k = 0; k < N_UTTS; k++) {
      starts[k] = at;
      at += len[k] + (k + 1 < N_UTTS ? (size_t)pauses_ms[k] * ms : TAIL_MS * ms);
    }
    size_t fl = rate * SP_FRAME_MS / 1000;
    t->rate = rate;
    t->n_utts = N_UTTS;
    t->n_frames = at / fl;
    t->n = t->n_frames * fl;
    t->clean = calloc(t->n, sizeof(float));
    t->noise = calloc(t->n, sizeof(float));
    t->mix = calloc(t->n, sizeof(float));
    t->truth = calloc(t->n_frames, 1);
    rc = t->clean && t->noise && t->mix && t->truth ? 0 : -1;
    for (int k = 0; !rc && k < N_UTTS; k++)
      memcpy(t->clean + starts[k], u[k], len[k] * sizeof(float));
  }
  if (!rc) {
    make_truth(t, starts, len);
    rc = mix_noise(t, dir, noise, snr_db, variant);
  }
  for (int k = 0; k < N_UTTS; k++)
    free(u[k]);
  if (rc)
    sp_track_free(t);
  return rc;
}

void sp_score_segments(const sp_track_t *t, const double (*segs)[2], size_t n, sp_score_t *s) {
  size_t right = 0, speech = 0, hit = 0, fa = 0, k = 0;
  for (size_t f = 0; f < t->n_frames; f++) {
    double c = (double)f * SP_FRAME_MS + SP_FRAME_MS / 2.0;
    while (k < n && segs[k][1] <= c)
      k++;
    int d = k < n && segs[k][0] <= c;
    right += d == t->truth[f];
    speech += t->truth[f];
    hit += d && t->truth[f];
    fa += d && !t->truth[f];
  }
  s->accuracy = (double)right / (double)t->n_frames;
  s->recall = speech ? (double)hit / (double)speech : 1;
  s->false_alarm = t->n_frames > speech ? (double)fa / (double)(t->n_frames - speech) : 0;
  s->fragments = n;
  s->first_ms = n ? segs[0][0] : -1;
}

double sp_segsnr(const sp_track_t *t, const float *y) {
  size_t fl = t->rate * SP_FRAME_MS / 1000, frames = 0;
  double sum = 0;
  for (size_t f = 0; f < t->n_frames; f++) {
    if (!t->truth[f])
      continue;
    double s = 0, e = 0;
    for (size_t i = f * fl; i < (f + 1) * fl; i++) {
      double d = (double)t->clean[i] - y[i];
      s += (double)t->clean[i] * t->clean[i];
      e += d * d;
    }
    sum += fmin(35, fmax(-10, 10 * log10((s + 1e-20) / (e + 1e-20))));
    frames++;
  }
  return frames ? sum / (double)frames : 0;
}

/* Power spectrum (dB) of the Hann-windowed 2*fl samples centred on frame f. */
static void spectrum_db(const float *x, size_t n, size_t f, size_t fl, float *buf,
                        fftwf_complex *out, fftwf_plan plan, double *db, size_t bins) {
  size_t w = 2 * fl;
  long from = (long)(f * fl) - (long)(fl / 2);
  for (size_t i = 0; i < w; i++) {
    long j = from + (long)i;
    double h = 0.5 - 0.5 * cos(2 * M_PI * ((double)i + 0.5) / (double)w);
    buf[i] = j >= 0 && (size_t)j < n ? (float)(h * x[j]) : 0.0f;
  }
  fftwf_execute(plan);
  for (size_t k = 0; k < bins; k++)
    db[k] = 10 * log10((double)out[k][0] * out[k][0] + (double)out[k][1] * out[k][1] + 1e-30);
}

double sp_lsd(const sp_track_t *t, const float *y) {
  size_t fl = t->rate * SP_FRAME_MS / 1000, w = 2 * fl, frames = 0;
  size_t bins = w / 2 + 1, top = (size_t)((double)w * fmin(8000.0, t->rate / 2.0) / t->rate);
  if (top >= bins)
    top = bins - 1;
  float *buf = fftwf_malloc(w * sizeof *buf);
  fftwf_complex *out = fftwf_malloc(bins * sizeof *out);
  double *ds = malloc(bins * sizeof *ds), *dy = malloc(bins * sizeof *dy), sum = 0;
  fftwf_plan plan = fftwf_plan_dft_r2c_1d((int)w, buf, out, FFTW_ESTIMATE);
  for (size_t f = 0; f < t->n_frames; f++) {
    if (!t->truth[f])
      continue;
    spectrum_db(t->clean, t->n, f, fl, buf, out, plan, ds, bins);
    spectrum_db(y, t->n, f, fl, buf, out, plan, dy, bins);
    double peak = -1e300, d2 = 0;
    for (size_t k = 1; k <= top; k++)
      peak = fmax(peak, ds[k]);
    for (size_t k = 1; k <= top; k++) {
      double d = fmax(ds[k], peak - 60) - fmax(dy[k], peak - 60);
      d2 += d * d;
    }
    sum += sqrt(d2 / (double)top);
    frames++;
  }
  fftwf_destroy_plan(plan);
  fftwf_free(buf);
  fftwf_free(out);
  free(ds);
  free(dy);
  return frames ? sum / (double)frames : 0;
}

static int parse_segments(const rm_buffer_t *b, double (**segs)[2], size_t *n) {
  json_t *j = json_loadb((const char *)b->data, b->size, 0, NULL);
  size_t len = json_is_array(j) ? json_array_size(j) : 0, i;
  json_t *s;
  *segs = malloc((len ? len : 1) * sizeof **segs);
  *n = 0;
  if (!*segs || !json_is_array(j)) {
    json_decref(j);
    return -1;
  }
  json_array_foreach(j, i, s) {
    (*segs)[i][0] = json_number_value(json_object_get(s, "start_ms"));
    (*segs)[i][1] = json_number_value(json_object_get(s, "end_ms"));
  }
  *n = len;
  json_decref(j);
  return 0;
}

/* Collects one run's output of node "n" into segs or y (at *at samples). */
static int collect(const rm_result_t *r, double (**segs)[2], size_t *n_segs, float *y, size_t cap,
                   size_t *at) {
  for (size_t i = 0; i < r->n_outputs; i++) {
    const rm_output_t *o = &r->outputs[i];
    if (strcmp(o->key, "n") != 0)
      continue;
    for (size_t k = 0; k < o->n_items; k++) {
      const rm_buffer_t *b = o->items[k];
      if (b->kind == RM_KIND_JSON && segs && parse_segments(b, segs, n_segs))
        return -1;
      if (b->kind == RM_KIND_AUDIO && y) {
        size_t m = rm_audio_samples(b);
        for (size_t j = 0; j < m && *at < cap; j++)
          y[(*at)++] = (float)rm_audio_get(b, j);
      }
    }
  }
  return 0;
}

int sp_run_node(const char *type, const char *params, const sp_track_t *t, const float *x,
                size_t chunk, double (**segs)[2], size_t *n_segs, float **y) {
  char json[2048];
  snprintf(json, sizeof json,
           "{\"name\":\"sp\",\"nodes\":[{\"id\":\"n\",\"node_type\":\"%s\",\"params\":%s}]}", type,
           params);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  if (rm_manifest_from_json_text(json, strlen(json), &m, &err) ||
      rm_pipeline_new(m, NULL, &p, &err)) {
    fprintf(stderr, "sp_run_node %s %s: %s\n", type, params, err.message);
    rm_manifest_free(m);
    return -1;
  }
  rm_manifest_free(m);
  if (segs)
    *segs = NULL, *n_segs = 0;
  float *out = y ? calloc(t->n, sizeof *out) : NULL;
  size_t at = 0, step = chunk ? chunk : t->n;
  int rc = y && !out ? -1 : 0;
  for (size_t off = 0; !rc && off < t->n; off += step) {
    size_t len = off + step <= t->n ? step : t->n - off;
    rm_buffer_t *b = rm_buffer_new_audio(NULL, t->rate, 1, RM_SAMPLE_F32, len);
    if (!b) {
      rc = -1;
      break;
    }
    memcpy(b->data, x + off, len * sizeof *x);
    rm_input_t in = {"n", b};
    rm_run_opts_t opts = {.end_of_stream = off + len == t->n};
    rm_result_t *r = NULL;
    rc = rm_pipeline_run(p, &in, 1, &opts, &r, &err);
    if (rc)
      fprintf(stderr, "sp_run_node %s %s: %s\n", type, params, err.message);
    else
      rc = collect(r, segs, n_segs, out, t->n, &at);
    rm_result_free(r);
    rm_buffer_unref(b);
  }
  rm_pipeline_free(p);
  if (rc || !y)
    free(out);
  else
    *y = out;
  if (rc && segs) {
    free(*segs);
    *segs = NULL;
  }
  return rc ? -1 : 0;
}

double sp_active_db(const sp_track_t *t, const float *y) {
  size_t fl = t->rate * SP_FRAME_MS / 1000, n = 0;
  double e = 0;
  for (size_t f = 0; f < t->n_frames; f++)
    if (t->truth[f]) {
      for (size_t i = f * fl; i < (f + 1) * fl; i++)
        e += (double)y[i] * y[i];
      n += fl;
    }
  return 10 * log10(e / (double)(n ? n : 1) + 1e-30);
}
