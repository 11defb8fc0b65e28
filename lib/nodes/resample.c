/* resample.c - AudioResample: sample-rate conversion with libsoxr, optional mono
 * down-mix or mono up-mix, streaming across chunks with an exact total length. */
#include <soxr.h>
#include <stdint.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

#define RATE_MIN 8000
#define RATE_MAX 192000
#define CH_MAX 8

static const char *const qualities[] = {"quick", "low", "medium", "high", "very-high", NULL};
static const rm_param_spec_t params[] = {
    {"rate", RM_PARAM_INTEGER, RM_PARAM_REQUIRED | RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, RATE_MIN,
     RATE_MAX, NULL, NULL, "output sample rate in Hz"},
    {"channels", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, CH_MAX, "0", NULL,
     "output channels: 0 keeps the input's; 1 down-mixes (mean of channels); from mono any "
     "count duplicates the channel"},
    {"quality", RM_PARAM_ENUM, 0, 0, 0, "\"high\"", qualities,
     "libsoxr recipe: quick (cubic), low/medium (16-bit), high (20-bit), very-high (28-bit, "
     "passband to 0.99 of the output Nyquist)"},
    {"passband", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0.5, 0.995, "null", NULL,
     "band kept flat, as a fraction of the lower Nyquist frequency; null = the recipe's "
     "(0.91 for high, 0.99 for very-high)"},
    {"format", RM_PARAM_ENUM, 0, 0, 0, "\"same\"", rm__media_formats,
     "output sample format; same = the input's"},
};
static const rm_port_spec_t inputs[] = {
    {"in", RM_KIND_AUDIO, 0, "audio, 8-192 kHz, 1-8 channels, any format"}};
static const rm_port_spec_t outputs[] = {
    {"out", RM_KIND_AUDIO, 0, "audio at `rate`; over a whole stream round(n*rate/in_rate) frames"}};

typedef struct resampler {
  uint32_t out_rate;
  uint32_t channels_param;
  unsigned long recipe;
  double passband; /* 0 = the recipe's */
  int format;      /* 0 = same as input */
  /* stream state */
  int started;
  rm_audio_info_t in_info;
  uint32_t out_ch;
  soxr_t soxr;            /* NULL when the rates are equal */
  rm__media_charge_t lib; /* libsoxr's memory, predicted */
  /* what soxr was built for: kept across streams (soxr_clear) and used again when the next
   * stream has the same input rate and output channels */
  uint32_t soxr_rate, soxr_ch;
  uint64_t frames_in, frames_out;
  rm__media_vec_t mixed; /* f32 input after channel mapping */
  rm__media_vec_t out;   /* f32 output of one call */
} resampler_t;

static int create(const json_t *p, void **state, rm_error_t *err) {
  resampler_t *r = rm_calloc(1, sizeof *r);
  if (!r)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  r->out_rate = (uint32_t)rm_params_integer(p, "rate");
  r->channels_param = (uint32_t)rm_params_integer(p, "channels");
  static const unsigned long recipes[] = {SOXR_QQ, SOXR_LQ, SOXR_MQ, SOXR_HQ, SOXR_VHQ};
  const char *q = rm_params_string(p, "quality");
  for (size_t i = 0; qualities[i]; i++)
    if (strcmp(q, qualities[i]) == 0)
      r->recipe = recipes[i];
  r->passband = rm_params_is_null(p, "passband") ? (r->recipe == SOXR_VHQ ? 0.99 : 0)
                                                 : rm_params_number(p, "passband");
  r->format = rm__media_format(rm_params_string(p, "format"));
  *state = r;
  return 0;
}

static void drop_soxr(resampler_t *r) {
  soxr_delete(r->soxr);
  r->soxr = NULL;
  rm__media_release(&r->lib);
}

/* The converter stays, cleared to its just-created state (soxr_clear keeps the filter
 * design, which is most of what soxr_create and the first soxr_process cost). */
static void reset_stream(void *state) {
  resampler_t *r = state;
  if (!r->soxr || soxr_clear(r->soxr))
    drop_soxr(r);
  r->started = 0;
  r->frames_in = r->frames_out = 0;
  rm__media_vec_clear(&r->mixed);
  rm__media_vec_clear(&r->out);
}

/* First chunk of a stream: checks the input against the node's limits and builds the
 * converter. */
static int start_stream(resampler_t *r, rm_node_ctx_t *ctx, const rm_audio_info_t *a) {
  if (a->sample_rate < RATE_MIN || a->sample_rate > RATE_MAX)
    return rm_node_fail(ctx, RM_EINPUT, "sample_rate",
                        "input sample rate %u Hz is outside %d..%d Hz", a->sample_rate, RATE_MIN,
                        RATE_MAX);
  if (a->channels > CH_MAX)
    return rm_node_fail(ctx, RM_EINPUT, "channels", "input has %u channels, at most %d allowed",
                        a->channels, CH_MAX);
  uint32_t out_ch = r->channels_param ? r->channels_param : a->channels;
  if (out_ch != a->channels && out_ch != 1 && a->channels != 1)
    return rm_node_fail(ctx, RM_EINPUT, "channels",
                        "cannot map %u input channels to %u: use 1 output channel or a mono "
                        "input",
                        a->channels, out_ch);
  r->out_ch = out_ch;
  if (r->soxr &&
      (a->sample_rate == r->out_rate || a->sample_rate != r->soxr_rate || out_ch != r->soxr_ch))
    drop_soxr(r); /* built for another stream's format */
  if (a->sample_rate != r->out_rate && !r->soxr) {
    soxr_quality_spec_t q = soxr_quality_spec(r->recipe, 0);
    if (r->passband > 0)
      q.passband_end = r->passband;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    soxr_error_t e = NULL;
    if (rm__media_charge(&r->lib, rm__media_soxr_bytes(a->sample_rate, r->out_rate, out_ch)))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    r->soxr = soxr_create(a->sample_rate, r->out_rate, out_ch, &e, &io, &q, &rt);
    if (!r->soxr || e) {
      soxr_delete(r->soxr);
      r->soxr = NULL;
      return rm_node_fail(ctx, RM_ENODE, NULL, "libsoxr could not be set up: %s",
                          e ? e : "unknown error");
    }
    r->soxr_rate = a->sample_rate;
    r->soxr_ch = out_ch;
  }
  return 0;
}

/* Appends frames [first, first + frames) of the input's channels mapped to out_ch, as f32, to v.
 * 0 or RM_ENOMEM. */
static int map_channels(const resampler_t *r, const rm_buffer_t *in, size_t first, size_t frames,
                        rm__media_vec_t *v) {
  uint32_t ich = in->u.audio.channels, och = r->out_ch;
  const uint8_t *src = in->data + first * ich * rm_sample_format_size(in->u.audio.format);
  if (rm__media_vec_reserve(v, frames * och * sizeof(float)))
    return RM_ENOMEM;
  float *dst = (float *)(void *)(v->data + v->len);
  if (ich == och) {
    rm_audio_convert(src, in->u.audio.format, dst, RM_SAMPLE_F32, frames * och);
  } else if (och == 1 && in->u.audio.format == RM_SAMPLE_F32) {
    rm__audio_mean_f32(src, dst, frames, ich);
  } else if (och == 1) {
    for (size_t f = 0; f < frames; f++) {
      double sum = 0;
      for (uint32_t c = 0; c < ich; c++)
        sum += rm_audio_get(in, (first + f) * ich + c);
      dst[f] = (float)(sum / ich);
    }
  } else { /* mono to och */
    for (size_t f = 0; f < frames; f++) {
      float x = (float)rm_audio_get(in, first + f);
      for (uint32_t c = 0; c < och; c++)
        dst[f * och + c] = x;
    }
  }
  v->len += frames * och * sizeof(float);
  return 0;
}

/* Room in r->out for what n more input frames (0: the flush) can produce, asked of the budget
 * at once rather than doubling up to twice its size. */
static int reserve_out(resampler_t *r, rm_node_ctx_t *ctx, size_t n) {
  size_t expect = (size_t)((double)n * r->out_rate / r->in_info.sample_rate) + 4096;
  if (rm__media_vec_reserve(&r->out, expect * r->out_ch * sizeof(float)))
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  return 0;
}

/* Runs the converter over n frames of src (NULL = flush) until it has consumed them all
 * and produced all it can, appending the output to r->out. */
static int convert(resampler_t *r, rm_node_ctx_t *ctx, const float *src, size_t n) {
  size_t fb = r->out_ch * sizeof(float);
  size_t done_in = 0;
  for (;;) {
    /* fed in slices: libsoxr buffers what one call gives it (see RM_MEDIA_SOXR_FEED) */
    size_t give = n - done_in < RM_MEDIA_SOXR_FEED ? n - done_in : RM_MEDIA_SOXR_FEED;
    size_t room = (size_t)((double)give * r->out_rate / r->in_info.sample_rate) + 1024;
    if (rm__media_vec_reserve(&r->out, room * fb))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    size_t idone = 0, odone = 0;
    soxr_error_t e = soxr_process(r->soxr, src ? src + done_in * r->out_ch : NULL, give, &idone,
                                  r->out.data + r->out.len, room, &odone);
    if (e)
      return rm_node_fail(ctx, RM_ENODE, NULL, "libsoxr failed: %s", e);
    if (!idone && !odone && done_in < n) /* never expected: libsoxr took nothing, gave nothing */
      return rm_node_fail(ctx, RM_EINTERNAL, NULL, "libsoxr made no progress");
    done_in += idone;
    r->out.len += odone * fb;
    int rc = rm_node_check(ctx);
    if (rc)
      return rc;
    if (done_in >= n && odone < room)
      return 0;
  }
}

/* The output's sample format: the `format` param, else the input's. */
static rm_sample_format_t out_format(const resampler_t *r) {
  return r->format ? (rm_sample_format_t)r->format : r->in_info.format;
}

static int emit_out(resampler_t *r, rm_node_ctx_t *ctx, size_t frames) {
  if (!frames)
    return 0;
  rm_sample_format_t fmt = out_format(r);
  size_t bytes = frames * r->out_ch * sizeof(float);
  if (fmt == RM_SAMPLE_F32 && r->out.len == bytes) {
    /* the converted samples become the buffer: no copy */
    rm_buffer_t *own = rm__media_vec_adopt(&r->out, rm_node_account(ctx),
                                           (rm_audio_info_t){r->out_rate, r->out_ch, fmt});
    if (own) {
      r->frames_out += frames;
      return rm_node_emit(ctx, 0, own);
    }
  }
  r->frames_out += frames;
  return rm__media_emit_f32(ctx, r->out_rate, r->out_ch, fmt, (const float *)r->out.data, frames);
}

/* Scratch beyond 1 MiB goes back after a call (a one-shot run over a long signal would hold
 * it until the pipeline is freed); a stream of small chunks keeps reusing its buffers. */
static void drop_big(resampler_t *r) {
  if (r->mixed.cap > ((size_t)1 << 20))
    rm__media_vec_free(&r->mixed);
  if (r->out.cap > ((size_t)1 << 20))
    rm__media_vec_free(&r->out);
}

static int process(void *state, rm_node_ctx_t *ctx) {
  resampler_t *r = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  int first = !r->started;
  int rc = rm__media_stream_check(ctx, &r->started, &r->in_info, &in->u.audio);
  if (rc || (first && (rc = start_stream(r, ctx, &in->u.audio))))
    return rc;
  size_t frames = rm_audio_frames(in);
  if (!frames) /* nothing to convert (and a NULL input would mean "flush" to libsoxr) */
    return 0;
  r->frames_in += frames;
  if (!r->soxr) { /* same rate: the mapped input is the output, mapped a block at a time */
    uint32_t ich = in->u.audio.channels, wide = ich > r->out_ch ? ich : r->out_ch;
    size_t step = rm__media_block_frames(wide);
    r->out.len = 0;
    if (rm__media_vec_reserve(&r->out, frames * r->out_ch * sizeof(float)))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    for (size_t f = 0; f < frames; f += step) {
      if (f && (rc = rm_node_check(ctx)))
        return rc;
      map_channels(r, in, f, frames - f < step ? frames - f : step, &r->out); /* reserved */
    }
  } else {
    r->out.len = 0;
    if ((rc = reserve_out(r, ctx, frames)))
      return rc;
    if (in->u.audio.format == RM_SAMPLE_F32 && in->u.audio.channels == r->out_ch &&
        (uintptr_t)in->data % _Alignof(float) == 0) {
      /* f32 input with the output's channels feeds libsoxr as it is: no copy */
      rc = convert(r, ctx, (const float *)(const void *)in->data, frames);
    } else { /* mapped a feed at a time, converted while it is in the cache */
      for (size_t f = 0; f < frames && !rc; f += RM_MEDIA_SOXR_FEED) {
        size_t n = frames - f < RM_MEDIA_SOXR_FEED ? frames - f : RM_MEDIA_SOXR_FEED;
        r->mixed.len = 0;
        rc = map_channels(r, in, f, n, &r->mixed)
                 ? rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory")
                 : convert(r, ctx, (const float *)r->mixed.data, n);
      }
    }
    if (rc)
      return rc;
  }
  rc = emit_out(r, ctx, r->out.len / (r->out_ch * sizeof(float)));
  drop_big(r);
  return rc;
}

/* Drains the converter and trims or pads the tail so the stream's output holds exactly
 * round(frames_in * out_rate / in_rate) frames. */
static int flush(void *state, rm_node_ctx_t *ctx) {
  resampler_t *r = state;
  if (!r->started)
    return 0;
  int rc = 0;
  r->out.len = 0;
  if (r->soxr && ((rc = reserve_out(r, ctx, 0)) || (rc = convert(r, ctx, NULL, 0))))
    return rc;
  uint64_t in_rate = r->in_info.sample_rate;
  uint64_t want = (r->frames_in * r->out_rate + in_rate / 2) / in_rate;
  size_t fb = r->out_ch * sizeof(float);
  size_t have = r->out.len / fb;
  size_t tail = want > r->frames_out ? (size_t)(want - r->frames_out) : 0;
  if (tail > have && rm__media_vec_append(&r->out, NULL, (tail - have) * fb))
    rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if (!rc)
    rc = emit_out(r, ctx, tail);
  /* a stream too short for one output frame (or empty) still ends with one item, empty, as
   * a one-shot run gives one item per input */
  if (!rc && !r->frames_out)
    rc = rm__media_emit_f32(ctx, r->out_rate, r->out_ch, out_format(r), NULL, 0);
  drop_big(r);
  return rc;
}

static void destroy(void *state) {
  resampler_t *r = state;
  soxr_delete(r->soxr);
  rm__media_release(&r->lib);
  rm__media_vec_free(&r->mixed);
  rm__media_vec_free(&r->out);
  rm_free(r);
}

const rm_node_type_t rm__node_type_audio_resample = {
    .name = "AudioResample",
    .description = "Converts the sample rate with libsoxr (any 8-192 kHz to any), optionally "
                   "down-mixing to mono; streams across chunks, flush() emits the tail.",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = create,
    .process = process,
    .flush = flush,
    .end_stream = reset_stream,
    .destroy = destroy,
};
