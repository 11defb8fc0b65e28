/* denoise.c - Denoise: noise suppression (and optional AGC) with libspeexdsp's
 * preprocessor or denoise_lsa.c's OM-LSA suppressor, one state per channel, framed across
 * chunks; output is as long as the input and time-aligned with it (the suppressors'
 * one-frame delay is removed). The framing engine is shared with AutoGain (denoise.h). */
#include <math.h>
#include <speex/speex_preprocess.h>
#include <string.h>

#include "nodes/denoise.h"
#include "nodes/denoise_lsa.h"
#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

#define CH_MAX 8
/* speex's AGC level is not the output's RMS: its loudness measure grows with the frame
 * (sum over bins), so the speech comes out AGC_RMS_DB + 10 log10(frame / 160) below it.
 * Measured on the speech corpus at 8/16/48 kHz, 10 and 20 ms frames (13.6-14.0 dB). */
#define AGC_RMS_DB 13.9

static const char *const modes[] = {"speex", "lsa", NULL};
enum { MODE_SPEEX, MODE_LSA };

static const rm_param_spec_t params[] = {
    {"mode", RM_PARAM_ENUM, 0, 0, 0, "\"speex\"", modes,
     "suppressor: speex (libspeexdsp's preprocessor, 16-bit) or lsa (MMSE log-spectral "
     "amplitude against a noise estimate averaged over noise-only frames, float; stronger on "
     "pink and babble noise)"},
    {"suppress_db", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 100, "30", NULL,
     "largest attenuation of noise, dB"},
    {"agc", RM_PARAM_BOOLEAN, 0, 0, 0, "false", NULL,
     "automatic gain control (speex only; the AutoGain node does AGC alone)"},
    {"agc_level_dbfs", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -60, 0, "-12", NULL,
     "AGC: target level, dBFS"},
    {"agc_max_gain_db", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 60, "30", NULL,
     "AGC: largest gain applied, dB"},
    {"frame_ms", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 10, 20, "20", NULL,
     "processing frame: 10 or 20 ms"},
    {"format", RM_PARAM_ENUM, 0, 0, 0, "\"same\"", rm__media_formats,
     "output sample format; same = the input's. Processing is 16-bit with speex, float with "
     "lsa"},
};
static const rm_port_spec_t inputs[] = {
    {"in", RM_KIND_AUDIO, 0, "audio, 8-48 kHz, 1-8 channels, any format"}};
static const rm_port_spec_t outputs[] = {
    {"out", RM_KIND_AUDIO, 0,
     "the denoised audio, time-aligned with the input: whole frames per chunk, less the "
     "first frame (the suppressor's delay); flush() emits the rest so the stream's output is "
     "exactly as long as its input"}};

typedef struct denoiser {
  const char *type; /* the node type, for messages */
  int mode, suppress, agc, frame_ms, format;
  double agc_level_dbfs;
  int agc_rms, agc_max_gain;
  /* stream */
  int started;
  rm_audio_info_t info;
  size_t frame;
  SpeexPreprocessState *st[CH_MAX];
  rm__denoise_lsa_t *lsa[CH_MAX];
  spx_int16_t *pcm;        /* one channel's frame */
  rm__media_vec_t pending; /* interleaved f32 not yet a whole frame */
  rm__media_vec_t out;     /* interleaved f32 output of one call */
  uint64_t frames_in, frames_out;
  size_t skip; /* output frames still to drop: the preprocessor delays by one frame */
} denoiser_t;

int rm__denoise_new(const rm__denoise_cfg_t *cfg, void **state, rm_error_t *err) {
  denoiser_t *d = rm_calloc(1, sizeof *d);
  if (!d)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  d->type = cfg->type;
  d->mode = cfg->lsa ? MODE_LSA : MODE_SPEEX;
  d->suppress = cfg->suppress_db;
  d->agc = cfg->agc;
  d->agc_level_dbfs = cfg->agc_level_dbfs;
  d->agc_rms = cfg->agc_rms;
  d->agc_max_gain = cfg->agc_max_gain_db;
  d->frame_ms = cfg->frame_ms;
  d->format = cfg->format;
  *state = d;
  return 0;
}

static int create(const json_t *p, void **state, rm_error_t *err) {
  long long fm = rm_params_integer(p, "frame_ms");
  if (fm != 10 && fm != 20)
    return rm_error_set(err, RM_EPARAM, NULL, "frame_ms",
                        "node param 'frame_ms': %lld is not 10 or 20", fm);
  int lsa = strcmp(rm_params_string(p, "mode"), "lsa") == 0;
  if (lsa && rm_params_boolean(p, "agc"))
    return rm_error_set(err, RM_EPARAM, NULL, "agc",
                        "node param 'agc': automatic gain control needs mode speex");
  rm__denoise_cfg_t cfg = {
      .type = "Denoise",
      .lsa = lsa,
      .suppress_db = (int)lround(rm_params_number(p, "suppress_db")),
      .agc = rm_params_boolean(p, "agc"),
      .agc_level_dbfs = rm_params_number(p, "agc_level_dbfs"),
      .agc_max_gain_db = (int)lround(rm_params_number(p, "agc_max_gain_db")),
      .frame_ms = (int)fm,
      .format = rm__media_format(rm_params_string(p, "format")),
  };
  return rm__denoise_new(&cfg, state, err);
}

void rm__denoise_end_stream(void *state) {
  denoiser_t *d = state;
  for (int c = 0; c < CH_MAX; c++) {
    if (d->st[c])
      speex_preprocess_state_destroy(d->st[c]);
    d->st[c] = NULL;
    rm__denoise_lsa_free(d->lsa[c]);
    d->lsa[c] = NULL;
  }
  rm_free(d->pcm);
  d->pcm = NULL;
  d->started = 0;
  d->frames_in = d->frames_out = 0;
  d->skip = 0;
  rm__media_vec_clear(&d->pending);
  rm__media_vec_clear(&d->out);
}

static int start_stream(denoiser_t *d, rm_node_ctx_t *ctx, const rm_audio_info_t *a) {
  if (a->sample_rate < 8000 || a->sample_rate > 48000)
    return rm_node_fail(ctx, RM_EINPUT, "sample_rate",
                        "%s works on 8-48 kHz audio, not %u Hz (resample first)", d->type,
                        a->sample_rate);
  if (a->channels > CH_MAX)
    return rm_node_fail(ctx, RM_EINPUT, "channels", "%s takes at most %d channels, not %u", d->type,
                        CH_MAX, a->channels);
  d->frame = ((size_t)a->sample_rate * (size_t)d->frame_ms + 500) / 1000;
  d->skip = d->frame;
  d->pcm = rm_malloc(d->frame * sizeof *d->pcm);
  if (!d->pcm)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  for (uint32_t c = 0; d->mode == MODE_LSA && c < a->channels; c++)
    if (!(d->lsa[c] = rm__denoise_lsa_new(a->sample_rate, d->frame, d->suppress)))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  for (uint32_t c = 0; d->mode == MODE_SPEEX && c < a->channels; c++) {
    SpeexPreprocessState *st = speex_preprocess_state_init((int)d->frame, (int)a->sample_rate);
    if (!st)
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    d->st[c] = st;
    int on = 1, off = 0, sup = -d->suppress, agc = d->agc, maxg = d->agc_max_gain;
    double db = d->agc_level_dbfs;
    if (d->agc_rms)
      db += AGC_RMS_DB + 10 * log10((double)d->frame / 160.0);
    float level = (float)(32768.0 * pow(10, fmin(db, 0.0) / 20));
    speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_DENOISE, d->suppress ? &on : &off);
    speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &sup);
    speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_AGC, &agc);
    if (d->agc) {
      speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_AGC_LEVEL, &level);
      speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_AGC_MAX_GAIN, &maxg);
    }
  }
  return 0;
}

/* Runs every whole frame of pending through the per-channel states into out. */
static int run_frames(denoiser_t *d, rm_node_ctx_t *ctx) {
  uint32_t ch = d->info.channels;
  size_t fbytes = d->frame * ch * sizeof(float), off = 0;
  d->out.len = 0;
  if (rm__media_vec_reserve(&d->out, d->pending.len))
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  while (d->pending.len - off >= fbytes) {
    const float *src = (const float *)(d->pending.data + off);
    float *dst = (float *)(d->out.data + d->out.len);
    for (uint32_t c = 0; d->mode == MODE_LSA && c < ch; c++)
      rm__denoise_lsa_run(d->lsa[c], src + c, dst + c, ch);
    for (uint32_t c = 0; d->mode == MODE_SPEEX && c < ch; c++) {
      for (size_t i = 0; i < d->frame; i++) {
        float v = src[i * ch + c] * 32768.0f;
        v = v > 32767.0f ? 32767.0f : v < -32768.0f ? -32768.0f : isnan(v) ? 0.0f : v;
        d->pcm[i] = (spx_int16_t)lrintf(v);
      }
      speex_preprocess_run(d->st[c], d->pcm);
      for (size_t i = 0; i < d->frame; i++)
        dst[i * ch + c] = d->pcm[i] / 32768.0f;
    }
    d->out.len += fbytes;
    off += fbytes;
    int rc = rm_node_check(ctx);
    if (rc)
      return rc;
  }
  rm__media_vec_consume(&d->pending, off);
  return 0;
}

/* The output's sample format: the `format` param, else the input's. */
static rm_sample_format_t out_format(const denoiser_t *d) {
  return d->format ? (rm_sample_format_t)d->format : d->info.format;
}

/* Emits up to `frames` frames of out, after dropping what is left of the first frame's
 * delay, never more than the stream's input so far. */
static int emit(denoiser_t *d, rm_node_ctx_t *ctx, size_t frames) {
  size_t drop = frames < d->skip ? frames : d->skip;
  d->skip -= drop;
  frames -= drop;
  if (frames > d->frames_in - d->frames_out)
    frames = (size_t)(d->frames_in - d->frames_out);
  if (!frames)
    return 0;
  rm_sample_format_t fmt = out_format(d);
  const float *src = (const float *)d->out.data + drop * d->info.channels;
  d->frames_out += frames;
  return rm__media_emit_f32(ctx, d->info.sample_rate, d->info.channels, fmt, src, frames);
}

int rm__denoise_process(void *state, rm_node_ctx_t *ctx) {
  denoiser_t *d = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  int first = !d->started;
  int rc = rm__media_stream_check(ctx, &d->started, &d->info, &in->u.audio);
  if (!rc && first)
    rc = start_stream(d, ctx, &in->u.audio);
  if (rc)
    return rc;
  rc = rm__media_append(ctx, &d->pending, in->data, in->u.audio.format, rm_audio_samples(in),
                        RM_SAMPLE_F32);
  if (rc)
    return rc;
  d->frames_in += rm_audio_frames(in);
  if ((rc = run_frames(d, ctx)))
    return rc;
  return emit(d, ctx, d->out.len / (d->info.channels * sizeof(float)));
}

/* Pads the last partial frame with silence and adds one silent frame, which pushes the
 * delayed tail out of the preprocessor; emits only the real part. */
int rm__denoise_flush(void *state, rm_node_ctx_t *ctx) {
  denoiser_t *d = state;
  if (d->started && !d->frames_in) /* an empty stream still ends with one (empty) item */
    return rm__media_emit_f32(ctx, d->info.sample_rate, d->info.channels, out_format(d), NULL, 0);
  if (!d->started || d->frames_out == d->frames_in)
    return 0;
  size_t fb = d->info.channels * sizeof(float), have = d->pending.len / fb;
  int rc = 0;
  if (rm__media_vec_append(&d->pending, NULL, (2 * d->frame - have) * fb))
    rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if (!rc)
    rc = run_frames(d, ctx);
  if (!rc)
    rc = emit(d, ctx, d->out.len / fb);
  return rc;
}

void rm__denoise_destroy(void *state) {
  denoiser_t *d = state;
  rm__denoise_end_stream(d);
  rm__media_vec_free(&d->pending);
  rm__media_vec_free(&d->out);
  rm_free(d);
}

const rm_node_type_t rm__node_type_denoise = {
    .name = "Denoise",
    .description = "Noise suppression with optional AGC (libspeexdsp preprocessor) or an "
                   "OM-LSA suppressor, per channel, 8-48 kHz; output time-aligned with the "
                   "input; streams across chunks.",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = create,
    .process = rm__denoise_process,
    .flush = rm__denoise_flush,
    .end_stream = rm__denoise_end_stream,
    .destroy = rm__denoise_destroy,
};
