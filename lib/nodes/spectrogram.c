/* spectrogram.c - Spectrogram and MelSpectrogram: short-time Fourier transforms with
 * FFTW (single precision), framed across chunks so a stream gives the same frames as one
 * call. Output tensors are [frames, bins] f32. */
#include <fftw3.h>
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const char *const windows[] = {"hann", "hamming", "blackman", "rect", NULL};
static const char *const scales[] = {"power", "magnitude", "db", "log", NULL};

#define COMMON_PARAMS                                                                              \
  {"n_fft",                                                                                        \
   RM_PARAM_INTEGER,                                                                               \
   RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX,                                                            \
   16,                                                                                             \
   16384,                                                                                          \
   "512",                                                                                          \
   NULL,                                                                                           \
   "FFT size (= window length) in samples"},                                                       \
      {"hop",                                                                                      \
       RM_PARAM_INTEGER,                                                                           \
       RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX,                                                        \
       0,                                                                                          \
       16384,                                                                                      \
       "0",                                                                                        \
       NULL,                                                                                       \
       "samples between frame starts, at most n_fft; 0 = n_fft / 4"},                              \
      {"window", RM_PARAM_ENUM,                                                                    \
       0,        0,                                                                                \
       0,        "\"hann\"",                                                                       \
       windows,  "analysis window (periodic hann, hamming, blackman; rect = none)"},               \
      {"center",                                                                                   \
       RM_PARAM_BOOLEAN,                                                                           \
       0,                                                                                          \
       0,                                                                                          \
       0,                                                                                          \
       "true",                                                                                     \
       NULL,                                                                                       \
       "pad n_fft/2 zeros at both ends of the stream so frame t is centred on sample t*hop: "      \
       "1 + floor(n / hop) frames; false: 1 + floor((n - n_fft) / hop) frames, none if "           \
       "n < n_fft"},                                                                               \
  {                                                                                                \
    "scale", RM_PARAM_ENUM, 0, 0, 0, "\"power\"", scales,                                          \
        "power |X|^2 (unnormalised: sum_k c_k |X_k|^2 = n_fft * sum_n (w x)^2), magnitude "        \
        "|X|, db = 10*log10(max(power, 1e-10)), or log = ln(max(power, 1e-10))"                    \
  }

static const rm_param_spec_t spec_params[] = {COMMON_PARAMS};
static const rm_param_spec_t mel_params[] = {
    COMMON_PARAMS,
    {"n_mels", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 1, 512, "80", NULL,
     "mel bands (triangular filters on the HTK mel scale, peak weight 1)"},
    {"fmin", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 384000, "0", NULL,
     "lowest frequency of the filter bank, Hz"},
    {"fmax", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 1, 384000, "null", NULL,
     "highest frequency, Hz, above fmin and at most half the sample rate; null = half the "
     "sample rate"},
};
static const rm_port_spec_t inputs[] = {
    {"in", RM_KIND_AUDIO, 0, "audio, any format; channels are averaged to mono"}};
static const rm_port_spec_t spec_outputs[] = {
    {"out", RM_KIND_TENSOR, 0, "f32 tensor [frames, n_fft/2 + 1] per chunk with whole frames"}};
static const rm_port_spec_t mel_outputs[] = {
    {"out", RM_KIND_TENSOR, 0, "f32 tensor [frames, n_mels] per chunk with whole frames"}};

enum { SCALE_POWER, SCALE_MAGNITUDE, SCALE_DB, SCALE_LOG };

typedef struct stft {
  int n_fft, hop, center, scale;
  int mel;
  int n_mels;
  double fmin, fmax; /* fmax 0 = rate / 2 */
  float *window;
  float *frame;        /* n_fft inputs to the FFT */
  fftwf_complex *spec; /* n_fft/2 + 1 outputs */
  float *power;        /* n_fft/2 + 1 */
  fftwf_plan plan;
  rm__media_charge_t lib; /* the plan's memory, predicted */
  /* mel filter bank, built for the stream's rate: filter k covers bins
   * [mel_lo[k], mel_lo[k] + mel_len[k]) with weights at mel_w + mel_off[k] */
  int *mel_lo, *mel_len, *mel_off;
  float *mel_w;
  /* stream */
  int started;
  rm_audio_info_t info;
  rm__media_vec_t pending; /* mono f32 samples not yet past every frame that uses them */
} stft_t;

static void stft_free(stft_t *s) {
  if (s->plan) {
    rm__media_fft_lock();
    fftwf_destroy_plan(s->plan);
    rm__media_fft_unlock();
  }
  rm__media_release(&s->lib);
  rm_free(s->window);
  rm_free(s->frame);
  rm_free(s->spec);
  rm_free(s->power);
  rm_free(s->mel_lo);
  rm_free(s->mel_len);
  rm_free(s->mel_off);
  rm_free(s->mel_w);
  rm__media_vec_free(&s->pending);
  rm_free(s);
}

static void make_window(float *w, int n, const char *kind) {
  for (int i = 0; i < n; i++) {
    double x = 2 * M_PI * i / n; /* periodic: the frame repeats at the hop grid */
    double v = 1;
    if (strcmp(kind, "hann") == 0)
      v = 0.5 - 0.5 * cos(x);
    else if (strcmp(kind, "hamming") == 0)
      v = 0.54 - 0.46 * cos(x);
    else if (strcmp(kind, "blackman") == 0)
      v = 0.42 - 0.5 * cos(x) + 0.08 * cos(2 * x);
    w[i] = (float)v;
  }
}

static int create_common(const json_t *p, int mel, void **state, rm_error_t *err) {
  int n_fft = (int)rm_params_integer(p, "n_fft");
  int hop = (int)rm_params_integer(p, "hop");
  if (hop == 0)
    hop = n_fft / 4 ? n_fft / 4 : 1;
  if (hop > n_fft)
    return rm_error_set(err, RM_EPARAM, NULL, "hop",
                        "node param 'hop': %d is larger than n_fft (%d)", hop, n_fft);
  if (mel && !rm_params_is_null(p, "fmax") &&
      rm_params_number(p, "fmax") <= rm_params_number(p, "fmin"))
    return rm_error_set(err, RM_EPARAM, NULL, "fmax",
                        "node param 'fmax': %g Hz must be above fmin (%g Hz)",
                        rm_params_number(p, "fmax"), rm_params_number(p, "fmin"));
  stft_t *s = rm_calloc(1, sizeof *s);
  if (!s)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  s->n_fft = n_fft;
  s->hop = hop;
  s->center = rm_params_boolean(p, "center");
  const char *sc = rm_params_string(p, "scale");
  s->scale = strcmp(sc, "magnitude") == 0 ? SCALE_MAGNITUDE
             : strcmp(sc, "db") == 0      ? SCALE_DB
             : strcmp(sc, "log") == 0     ? SCALE_LOG
                                          : SCALE_POWER;
  s->mel = mel;
  if (mel) {
    s->n_mels = (int)rm_params_integer(p, "n_mels");
    s->fmin = rm_params_number(p, "fmin");
    s->fmax = rm_params_is_null(p, "fmax") ? 0 : rm_params_number(p, "fmax");
  }
  int bins = n_fft / 2 + 1;
  s->window = rm_malloc((size_t)n_fft * sizeof *s->window);
  s->frame = rm_malloc((size_t)n_fft * sizeof *s->frame);
  s->spec = rm_malloc((size_t)bins * sizeof *s->spec);
  s->power = rm_malloc((size_t)bins * sizeof *s->power);
  if (!s->window || !s->frame || !s->spec || !s->power) {
    stft_free(s);
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  make_window(s->window, n_fft, rm_params_string(p, "window"));
  if (rm__media_charge(&s->lib, rm__media_fftw_bytes(n_fft))) {
    stft_free(s);
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  rm__media_fft_lock();
  s->plan = fftwf_plan_dft_r2c_1d(n_fft, s->frame, s->spec, FFTW_ESTIMATE);
  rm__media_fft_unlock();
  if (!s->plan) {
    stft_free(s);
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "FFTW could not plan a %d-point FFT", n_fft);
  }
  *state = s;
  return 0;
}

static int spec_create(const json_t *p, void **state, rm_error_t *err) {
  return create_common(p, 0, state, err);
}
static int mel_create(const json_t *p, void **state, rm_error_t *err) {
  return create_common(p, 1, state, err);
}

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

/* Triangular filters with n_mels + 2 edges equally spaced in mel from fmin to fmax. */
static int build_mel(stft_t *s, rm_node_ctx_t *ctx, uint32_t rate) {
  double nyq = rate / 2.0, fmax = s->fmax > 0 ? s->fmax : nyq;
  if (fmax > nyq)
    return rm_node_fail(ctx, RM_EINPUT, "fmax", "fmax %g Hz is above half the sample rate (%u Hz)",
                        fmax, rate);
  if (s->fmin >= fmax)
    return rm_node_fail(ctx, RM_EINPUT, "fmin", "fmin %g Hz is not below fmax %g Hz", s->fmin,
                        fmax);
  int bins = s->n_fft / 2 + 1, m = s->n_mels;
  rm_free(s->mel_lo);
  rm_free(s->mel_len);
  rm_free(s->mel_off);
  rm_free(s->mel_w);
  s->mel_lo = rm_calloc((size_t)m, sizeof *s->mel_lo);
  s->mel_len = rm_calloc((size_t)m, sizeof *s->mel_len);
  s->mel_off = rm_calloc((size_t)m, sizeof *s->mel_off);
  s->mel_w = rm_malloc((size_t)bins * 2 * sizeof *s->mel_w); /* filters overlap in pairs */
  if (!s->mel_lo || !s->mel_len || !s->mel_off || !s->mel_w)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  double m_lo = hz_to_mel(s->fmin), m_hi = hz_to_mel(fmax);
  int used = 0;
  for (int k = 0; k < m; k++) {
    double f0 = mel_to_hz(m_lo + (m_hi - m_lo) * k / (m + 1));
    double f1 = mel_to_hz(m_lo + (m_hi - m_lo) * (k + 1) / (m + 1));
    double f2 = mel_to_hz(m_lo + (m_hi - m_lo) * (k + 2) / (m + 1));
    s->mel_lo[k] = -1;
    s->mel_off[k] = used;
    for (int b = 0; b < bins; b++) {
      double f = (double)b * rate / s->n_fft;
      double w = fmin((f - f0) / (f1 - f0), (f2 - f) / (f2 - f1));
      if (w <= 0) {
        if (s->mel_lo[k] >= 0)
          break;
        continue;
      }
      if (s->mel_lo[k] < 0)
        s->mel_lo[k] = b;
      if (used >= bins * 2)
        break;
      s->mel_w[used++] = (float)w;
      s->mel_len[k]++;
    }
    if (s->mel_lo[k] < 0)
      s->mel_lo[k] = 0;
  }
  return 0;
}

/* One frame of n_fft samples at src into row (bins or n_mels values). */
static void analyse(stft_t *s, const float *src, float *row) {
  int n = s->n_fft, bins = n / 2 + 1;
  for (int i = 0; i < n; i++)
    s->frame[i] = src[i] * s->window[i];
  fftwf_execute(s->plan);
  int mag = s->scale == SCALE_MAGNITUDE;
  for (int b = 0; b < bins; b++) {
    float re = s->spec[b][0], im = s->spec[b][1];
    float pw = re * re + im * im;
    s->power[b] = mag ? sqrtf(pw) : pw;
  }
  const float *v = s->power;
  int count = bins;
  if (s->mel) {
    for (int k = 0; k < s->n_mels; k++) {
      float acc = 0;
      const float *w = s->mel_w + s->mel_off[k];
      for (int j = 0; j < s->mel_len[k]; j++)
        acc += w[j] * s->power[s->mel_lo[k] + j];
      row[k] = acc;
    }
    v = row;
    count = s->n_mels;
  } else {
    memcpy(row, v, (size_t)bins * sizeof *row);
  }
  if (s->scale == SCALE_DB)
    for (int k = 0; k < count; k++)
      row[k] = (float)(10.0 * log10(fmax(row[k], 1e-10)));
  else if (s->scale == SCALE_LOG)
    for (int k = 0; k < count; k++)
      row[k] = (float)log(fmax(row[k], 1e-10));
}

/* Emits a tensor of every whole frame in pending and drops the samples no later frame
 * needs. */
static int emit_frames(stft_t *s, rm_node_ctx_t *ctx) {
  size_t avail = s->pending.len / sizeof(float), n = (size_t)s->n_fft, hop = (size_t)s->hop;
  if (avail < n)
    return 0;
  size_t frames = (avail - n) / hop + 1;
  int64_t shape[2] = {(int64_t)frames, s->mel ? s->n_mels : s->n_fft / 2 + 1};
  rm_buffer_t *out = rm_buffer_new_tensor(rm_node_account(ctx), RM_DTYPE_F32, shape, 2);
  if (!out)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  const float *x = (const float *)s->pending.data;
  float *rows = (float *)out->data;
  for (size_t f = 0; f < frames; f++) {
    analyse(s, x + f * hop, rows + f * (size_t)shape[1]);
    if ((f & 63) == 63) {
      int rc = rm_node_check(ctx);
      if (rc) {
        rm_buffer_unref(out);
        return rc;
      }
    }
  }
  rm__media_vec_consume(&s->pending, frames * hop * sizeof(float));
  return rm_node_emit(ctx, 0, out);
}

static void reset_stream(void *state) {
  stft_t *s = state;
  s->started = 0;
  rm__media_vec_clear(&s->pending);
}

static int stft_process(void *state, rm_node_ctx_t *ctx) {
  stft_t *s = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  int first = !s->started;
  int rc = rm__media_stream_check(ctx, &s->started, &s->info, &in->u.audio);
  if (!rc && first) {
    if (s->mel)
      rc = build_mel(s, ctx, in->u.audio.sample_rate);
    if (!rc && s->center &&
        rm__media_vec_append(&s->pending, NULL, (size_t)(s->n_fft / 2) * sizeof(float)))
      rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  }
  if (rc)
    return rc;
  if ((rc = rm__media_append_mono(ctx, &s->pending, in)))
    return rc;
  return emit_frames(s, ctx);
}

static int stft_flush(void *state, rm_node_ctx_t *ctx) {
  stft_t *s = state;
  if (!s->started)
    return 0;
  int rc = 0;
  if (s->center) {
    if (rm__media_vec_append(&s->pending, NULL, (size_t)(s->n_fft / 2) * sizeof(float)))
      rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    else
      rc = emit_frames(s, ctx);
  }
  return rc;
}

static void stft_destroy(void *state) { stft_free(state); }

const rm_node_type_t rm__node_type_spectrogram = {
    .name = "Spectrogram",
    .description = "Short-time Fourier transform (FFTW): power, magnitude or dB per bin, as "
                   "an f32 tensor [frames, n_fft/2 + 1].",
    .params = spec_params,
    .n_params = sizeof spec_params / sizeof spec_params[0],
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = spec_outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = spec_create,
    .process = stft_process,
    .flush = stft_flush,
    .end_stream = reset_stream,
    .destroy = stft_destroy,
};

const rm_node_type_t rm__node_type_mel_spectrogram = {
    .name = "MelSpectrogram",
    .description = "Mel-scale spectrogram (FFTW + triangular HTK-mel filter bank), as an f32 "
                   "tensor [frames, n_mels].",
    .params = mel_params,
    .n_params = sizeof mel_params / sizeof mel_params[0],
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = mel_outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = mel_create,
    .process = stft_process,
    .flush = stft_flush,
    .end_stream = reset_stream,
    .destroy = stft_destroy,
};
