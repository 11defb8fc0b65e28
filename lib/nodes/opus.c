/* opus.c - OpusEncode and OpusDecode: audio <-> Opus packets with libopus, carried in
 * binary buffers with a small length-prefixed framing (docs/nodes-media.md, "Opus
 * framing"): a 16-byte stream header, then [u16 length][packet] records, then an end
 * record giving the stream's exact length. Both sides keep state across chunks. */
#include <opus.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"
#include "rm/pipeline.h"

#define OPUS_MIME "application/x-rm-opus"
#define HEADER_BYTES 16
#define MAX_PACKET 4000
#define MAX_FRAME_48K 5760 /* 120 ms at 48 kHz, the longest frame a packet decodes to */

static int opus_rate_ok(long long rate) {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

static void put16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v & 0xffff);
}
static unsigned get16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

/* ---------------------------------------------------------------- OpusEncode */

static const char *const applications[] = {"audio", "voip", "lowdelay", NULL};
static const rm_param_spec_t enc_params[] = {
    {"bitrate", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 6000, 510000, "64000", NULL,
     "target bits per second"},
    {"complexity", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 10, "10", NULL,
     "encoder effort, 0 (fastest) to 10 (best)"},
    {"frame_ms", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 2.5, 60, "20", NULL,
     "packet duration: 2.5, 5, 10, 20, 40 or 60 ms"},
    {"application", RM_PARAM_ENUM, 0, 0, 0, "\"audio\"", applications,
     "libopus tuning: audio (music, general), voip (speech intelligibility), lowdelay"},
    {"vbr", RM_PARAM_BOOLEAN, 0, 0, 0, "true", NULL, "variable bitrate (false = CBR)"},
};
static const rm_port_spec_t enc_inputs[] = {
    {"in", RM_KIND_AUDIO, 0, "audio at 8, 12, 16, 24 or 48 kHz, 1 or 2 channels, any format"}};
static const rm_port_spec_t enc_outputs[] = {
    {"out", RM_KIND_BINARY, 0,
     "Opus packets in the rm-opus framing (" OPUS_MIME "); the first buffer of a stream starts "
     "with the header, the last one (at end of stream) ends with the end record"}};

typedef struct encoder {
  int bitrate, complexity, application, vbr;
  double frame_ms;
  /* stream */
  int started;
  rm_audio_info_t info;
  OpusEncoder *enc; /* kept across streams of the same rate and channels */
  uint32_t enc_rate, enc_ch;
  rm__media_charge_t lib; /* the encoder state (opus_encoder_get_size: exact) */
  int frame;              /* samples per channel per packet */
  int pre_skip;           /* encoder lookahead, samples */
  int header_out;         /* header already emitted */
  uint64_t frames_in;
  rm__media_vec_t pending; /* f32 samples not yet a whole frame */
  rm__media_vec_t out;     /* bytes of the buffer being built */
} encoder_t;

static int enc_create(const json_t *p, void **state, rm_error_t *err) {
  double ms = rm_params_number(p, "frame_ms");
  if (ms != 2.5 && ms != 5 && ms != 10 && ms != 20 && ms != 40 && ms != 60)
    return rm_error_set(err, RM_EPARAM, NULL, "frame_ms",
                        "node param 'frame_ms': %g is not one of 2.5, 5, 10, 20, 40, 60", ms);
  encoder_t *e = rm_calloc(1, sizeof *e);
  if (!e)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  e->bitrate = (int)rm_params_integer(p, "bitrate");
  e->complexity = (int)rm_params_integer(p, "complexity");
  e->frame_ms = ms;
  const char *app = rm_params_string(p, "application");
  e->application = strcmp(app, "voip") == 0       ? OPUS_APPLICATION_VOIP
                   : strcmp(app, "lowdelay") == 0 ? OPUS_APPLICATION_RESTRICTED_LOWDELAY
                                                  : OPUS_APPLICATION_AUDIO;
  e->vbr = rm_params_boolean(p, "vbr");
  *state = e;
  return 0;
}

static void enc_drop(encoder_t *e) {
  if (e->enc)
    opus_encoder_destroy(e->enc);
  e->enc = NULL;
  rm__media_release(&e->lib);
}

/* The encoder stays, reset to its just-created state with its settings (OPUS_RESET_STATE),
 * for a next stream of the same rate and channels. */
static void enc_reset(void *state) {
  encoder_t *e = state;
  if (!e->enc || opus_encoder_ctl(e->enc, OPUS_RESET_STATE) != OPUS_OK)
    enc_drop(e);
  e->started = e->header_out = 0;
  e->frames_in = 0;
  rm__media_vec_clear(&e->pending);
  rm__media_vec_clear(&e->out);
}

static int enc_start(encoder_t *e, rm_node_ctx_t *ctx, const rm_audio_info_t *a) {
  if (!opus_rate_ok(a->sample_rate))
    return rm_node_fail(ctx, RM_EINPUT, "sample_rate",
                        "Opus encodes 8, 12, 16, 24 or 48 kHz, not %u Hz (resample first)",
                        a->sample_rate);
  if (a->channels > 2)
    return rm_node_fail(ctx, RM_EINPUT, "channels", "Opus encodes 1 or 2 channels, not %u",
                        a->channels);
  int oerr = 0;
  if (e->enc && (e->enc_rate != a->sample_rate || e->enc_ch != a->channels))
    enc_drop(e); /* built for another stream's format */
  if (!e->enc) {
    if (rm__media_charge(&e->lib, (size_t)opus_encoder_get_size((int)a->channels)))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    e->enc =
        opus_encoder_create((opus_int32)a->sample_rate, (int)a->channels, e->application, &oerr);
    if (!e->enc) {
      rm__media_release(&e->lib);
      return rm_node_fail(ctx, oerr == OPUS_ALLOC_FAIL ? RM_ENOMEM : RM_ENODE, NULL,
                          "libopus encoder: %s", opus_strerror(oerr));
    }
    e->enc_rate = a->sample_rate;
    e->enc_ch = a->channels;
  }
  opus_int32 look = 0;
  if (opus_encoder_ctl(e->enc, OPUS_SET_BITRATE(e->bitrate)) != OPUS_OK ||
      opus_encoder_ctl(e->enc, OPUS_SET_COMPLEXITY(e->complexity)) != OPUS_OK ||
      opus_encoder_ctl(e->enc, OPUS_SET_VBR(e->vbr)) != OPUS_OK ||
      opus_encoder_ctl(e->enc, OPUS_GET_LOOKAHEAD(&look)) != OPUS_OK) {
    enc_drop(e);
    return rm_node_fail(ctx, RM_ENODE, NULL, "libopus refused the encoder settings");
  }
  e->frame = (int)(a->sample_rate * e->frame_ms / 1000);
  e->pre_skip = look;
  return 0;
}

/* Appends the stream header to e->out. */
static int enc_header(encoder_t *e) {
  uint8_t h[HEADER_BYTES] = {'R', 'M', 'O', 'P', 1, (uint8_t)e->info.channels};
  put16(h + 6, (unsigned)e->pre_skip);
  put32(h + 8, e->info.sample_rate);
  put32(h + 12, (uint32_t)e->frame);
  e->header_out = 1;
  return rm__media_vec_append(&e->out, h, sizeof h);
}

/* Encodes every whole frame in e->pending as records in e->out. */
static int enc_frames(encoder_t *e, rm_node_ctx_t *ctx) {
  size_t fbytes = (size_t)e->frame * e->info.channels * sizeof(float);
  size_t done = 0;
  int rc = 0;
  while (e->pending.len - done >= fbytes) {
    if (rm__media_vec_reserve(&e->out, 2 + MAX_PACKET))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    uint8_t *rec = e->out.data + e->out.len;
    opus_int32 n = opus_encode_float(e->enc, (const float *)(e->pending.data + done), e->frame,
                                     rec + 2, MAX_PACKET);
    if (n < 0)
      return rm_node_fail(ctx, n == OPUS_ALLOC_FAIL ? RM_ENOMEM : RM_ENODE, NULL,
                          "libopus encode failed: %s", opus_strerror(n));
    put16(rec, (unsigned)n);
    e->out.len += 2 + (size_t)n;
    done += fbytes;
    if ((rc = rm_node_check(ctx)))
      break;
  }
  rm__media_vec_consume(&e->pending, done);
  return rc;
}

static int enc_emit(encoder_t *e, rm_node_ctx_t *ctx) {
  if (!e->out.len)
    return 0;
  rm_buffer_t *b = rm_buffer_new_binary(rm_node_account(ctx), e->out.data, e->out.len, OPUS_MIME);
  e->out.len = 0;
  return rm_node_emit(ctx, 0, b);
}

static int enc_process(void *state, rm_node_ctx_t *ctx) {
  encoder_t *e = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  int first = !e->started;
  int rc = rm__media_stream_check(ctx, &e->started, &e->info, &in->u.audio);
  if (!rc && first)
    rc = enc_start(e, ctx, &in->u.audio);
  if (rc)
    return rc;
  rc = rm__media_append(ctx, &e->pending, in->data, in->u.audio.format, rm_audio_samples(in),
                        RM_SAMPLE_F32);
  if (rc)
    return rc;
  e->frames_in += rm_audio_frames(in);
  if (!e->header_out && enc_header(e))
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if ((rc = enc_frames(e, ctx)))
    return rc;
  return enc_emit(e, ctx);
}

/* Pads the stream with silence so the decoder can output every input sample past the
 * encoder's lookahead, then writes the end record. */
static int enc_flush(void *state, rm_node_ctx_t *ctx) {
  encoder_t *e = state;
  if (!e->started)
    return 0;
  size_t fb = e->info.channels * sizeof(float);
  size_t have = e->pending.len / fb;
  size_t need = have + (size_t)e->pre_skip;
  size_t padded = (need + (size_t)e->frame - 1) / (size_t)e->frame * (size_t)e->frame;
  int rc = 0;
  if (padded && rm__media_vec_append(&e->pending, NULL, (padded - have) * fb))
    rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if (!rc && !e->header_out && enc_header(e))
    rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if (!rc)
    rc = enc_frames(e, ctx);
  if (!rc) {
    uint8_t end[10] = {0};
    put32(end + 2, (uint32_t)(e->frames_in >> 32));
    put32(end + 6, (uint32_t)e->frames_in);
    if (rm__media_vec_append(&e->out, end, sizeof end))
      rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  }
  if (!rc)
    rc = enc_emit(e, ctx);
  return rc;
}

static void enc_destroy(void *state) {
  encoder_t *e = state;
  enc_reset(e);
  enc_drop(e);
  rm__media_vec_free(&e->pending);
  rm__media_vec_free(&e->out);
  rm_free(e);
}

const rm_node_type_t rm__node_type_opus_encode = {
    .name = "OpusEncode",
    .description = "Encodes audio to Opus packets with libopus (rm-opus framing); streams "
                   "across chunks, flush() pads the last frame and writes the end record.",
    .params = enc_params,
    .n_params = sizeof enc_params / sizeof enc_params[0],
    .inputs = enc_inputs,
    .n_inputs = 1,
    .outputs = enc_outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = enc_create,
    .process = enc_process,
    .flush = enc_flush,
    .end_stream = enc_reset,
    .destroy = enc_destroy,
};

/* ---------------------------------------------------------------- OpusDecode */

static const rm_param_spec_t dec_params[] = {
    {"rate", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 48000, "0", NULL,
     "output rate: 8000, 12000, 16000, 24000 or 48000; 0 = the rate the stream was encoded at"},
    {"channels", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 2, "0", NULL,
     "output channels, 1 or 2; 0 = the stream's"},
    {"format", RM_PARAM_ENUM, 0, 0, 0, "\"f32\"", rm__media_formats_strict, "output sample format"},
};
static const rm_port_spec_t dec_inputs[] = {
    {"in", RM_KIND_BINARY, 0, "rm-opus framed packets, whole records per buffer"}};
static const rm_port_spec_t dec_outputs[] = {
    {"out", RM_KIND_AUDIO, 0,
     "decoded audio, delay-compensated: the stream's output is time-aligned with the encoder's "
     "input and, once the end record arrives, exactly as long"}};

typedef struct decoder {
  uint32_t rate_param, ch_param;
  rm_sample_format_t format;
  /* stream */
  int started, ended;
  OpusDecoder *dec; /* kept across streams decoded at the same rate and channels */
  uint32_t dec_rate, dec_ch;
  rm__media_charge_t lib; /* the decoder state (opus_decoder_get_size: exact) */
  uint32_t in_rate, rate, ch;
  uint64_t skip; /* output samples still to drop (pre-skip) */
  uint64_t frames_out;
  float *pcm;          /* one decoded packet */
  rm__media_vec_t out; /* f32 output of one call */
} decoder_t;

static int dec_create(const json_t *p, void **state, rm_error_t *err) {
  long long rate = rm_params_integer(p, "rate");
  if (rate && !opus_rate_ok(rate))
    return rm_error_set(err, RM_EPARAM, NULL, "rate",
                        "node param 'rate': %lld is not one of 8000, 12000, 16000, 24000, 48000 "
                        "(or 0)",
                        rate);
  decoder_t *d = rm_calloc(1, sizeof *d);
  if (d)
    d->pcm = rm_malloc(MAX_FRAME_48K * 2 * sizeof *d->pcm);
  if (!d || !d->pcm) {
    rm_free(d);
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  d->rate_param = (uint32_t)rate;
  d->ch_param = (uint32_t)rm_params_integer(p, "channels");
  d->format = (rm_sample_format_t)rm_sample_format_from_name(rm_params_string(p, "format"));
  *state = d;
  return 0;
}

static void dec_drop(decoder_t *d) {
  if (d->dec)
    opus_decoder_destroy(d->dec);
  d->dec = NULL;
  rm__media_release(&d->lib);
}

/* The decoder stays, reset to its just-created state (OPUS_RESET_STATE), for a next stream
 * decoded at the same rate and channels. */
static void dec_reset(void *state) {
  decoder_t *d = state;
  if (!d->dec || opus_decoder_ctl(d->dec, OPUS_RESET_STATE) != OPUS_OK)
    dec_drop(d);
  d->started = d->ended = 0;
  d->frames_out = 0;
  rm__media_vec_clear(&d->out);
}

static int dec_header(decoder_t *d, rm_node_ctx_t *ctx, const uint8_t *h, size_t len) {
  if (len < HEADER_BYTES || memcmp(h, "RMOP", 4) != 0)
    return rm_node_fail(ctx, RM_EINPUT, "in",
                        "not an rm-opus stream: it must start with the 16-byte RMOP header");
  unsigned version = h[4], ch = h[5], pre_skip = get16(h + 6);
  uint32_t rate = get32(h + 8);
  if (version != 1 || ch < 1 || ch > 2 || !opus_rate_ok(rate))
    return rm_node_fail(ctx, RM_EINPUT, "in", "bad rm-opus header: version %u, %u channels, %u Hz",
                        version, ch, rate);
  d->in_rate = rate;
  d->rate = d->rate_param ? d->rate_param : rate;
  d->ch = d->ch_param ? d->ch_param : ch;
  d->skip = ((uint64_t)pre_skip * d->rate + rate / 2) / rate;
  int oerr = 0;
  if (d->dec && (d->dec_rate != d->rate || d->dec_ch != d->ch))
    dec_drop(d); /* built for another stream's format */
  if (!d->dec) {
    if (rm__media_charge(&d->lib, (size_t)opus_decoder_get_size((int)d->ch)))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    d->dec = opus_decoder_create((opus_int32)d->rate, (int)d->ch, &oerr);
    if (!d->dec) {
      rm__media_release(&d->lib);
      return rm_node_fail(ctx, oerr == OPUS_ALLOC_FAIL ? RM_ENOMEM : RM_ENODE, NULL,
                          "libopus decoder: %s", opus_strerror(oerr));
    }
    d->dec_rate = d->rate;
    d->dec_ch = d->ch;
  }
  d->started = 1;
  return 0;
}

/* Appends n decoded frames to the output, dropping the pre-skip first. */
static int dec_keep(decoder_t *d, const float *pcm, size_t n) {
  size_t drop = d->skip < n ? (size_t)d->skip : n;
  d->skip -= drop;
  return rm__media_vec_append(&d->out, pcm + drop * d->ch, (n - drop) * d->ch * sizeof(float));
}

/* The end record's length is the client's number and pads this call's output: refuse
 * before allocating when the padded output would be over the run's limits. */
static int dec_check_length(const decoder_t *d, rm_node_ctx_t *ctx, uint64_t total) {
  const rm_limits_t *lim = rm_node_limits(ctx);
  /* without a limit the padding saturates and the memory budget refuses it (dec_records) */
  uint64_t max = UINT64_MAX;
  size_t frame_bytes = d->ch * rm_sample_format_size(d->format);
  if (lim->max_audio_samples && lim->max_audio_samples / d->ch < max)
    max = lim->max_audio_samples / d->ch;
  if (lim->max_buffer_bytes && lim->max_buffer_bytes / frame_bytes < max)
    max = lim->max_buffer_bytes / frame_bytes;
  if (max == UINT64_MAX ||
      (double)total * d->rate / d->in_rate - (double)d->frames_out <= (double)max)
    return 0;
  return rm_node_fail(ctx, RM_ELIMIT, "samples",
                      "the end record announces %llu frames: the output would be above the "
                      "run's limits",
                      (unsigned long long)total);
}

static int dec_records(decoder_t *d, rm_node_ctx_t *ctx, const uint8_t *p, size_t len) {
  size_t at = 0;
  while (at < len) {
    if (d->ended)
      return rm_node_fail(ctx, RM_EINPUT, "in", "%zu bytes after the end record", len - at);
    if (len - at < 2)
      return rm_node_fail(ctx, RM_EINPUT, "in", "truncated packet: 1 byte of a record length");
    size_t plen = get16(p + at);
    at += 2;
    if (plen == 0) { /* end record: the stream's exact length */
      if (len - at < 8)
        return rm_node_fail(ctx, RM_EINPUT, "in", "truncated end record");
      uint64_t total = (uint64_t)get32(p + at) << 32 | get32(p + at + 4);
      at += 8;
      if (dec_check_length(d, ctx, total))
        return RM_ELIMIT;
      /* the client decides total (up to 2^64-1): sizes saturate instead of wrapping, and
       * the budget is asked for them before anything is allocated */
      uint64_t want = total > (UINT64_MAX - d->in_rate) / d->rate
                          ? UINT64_MAX
                          : (total * d->rate + d->in_rate / 2) / d->in_rate;
      uint64_t have = d->frames_out + d->out.len / (d->ch * sizeof(float));
      size_t fb = d->ch * sizeof(float);
      size_t pad = want - have > SIZE_MAX / fb ? SIZE_MAX : (size_t)(want - have) * fb;
      if (have < want && rm__media_vec_append(&d->out, NULL, pad))
        return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
      if (have > want) {
        size_t cut = (size_t)(have - want) * d->ch * sizeof(float);
        d->out.len = cut < d->out.len ? d->out.len - cut : 0;
      }
      d->ended = 1;
      continue;
    }
    if (plen > MAX_PACKET)
      return rm_node_fail(ctx, RM_EINPUT, "in",
                          "a packet record announces %zu bytes, above the most an Opus packet may "
                          "hold (%d)",
                          plen, MAX_PACKET);
    if (plen > len - at)
      return rm_node_fail(ctx, RM_EINPUT, "in",
                          "truncated packet: record announces %zu bytes, %zu remain", plen,
                          len - at);
    int n = opus_decode_float(d->dec, p + at, (opus_int32)plen, d->pcm,
                              (int)(MAX_FRAME_48K * d->rate / 48000), 0);
    if (n < 0)
      return rm_node_fail(ctx, n == OPUS_ALLOC_FAIL ? RM_ENOMEM : RM_EINPUT, "in",
                          "corrupt Opus packet at byte %zu: %s", at - 2, opus_strerror(n));
    if (dec_keep(d, d->pcm, (size_t)n))
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    at += plen;
    int rc = rm_node_check(ctx);
    if (rc)
      return rc;
  }
  return 0;
}

static int dec_process(void *state, rm_node_ctx_t *ctx) {
  decoder_t *d = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  const uint8_t *p = in->data;
  size_t len = in->size;
  int rc = 0;
  d->out.len = 0;
  if (!d->started) {
    if ((rc = dec_header(d, ctx, p, len)))
      return rc;
    p += HEADER_BYTES;
    len -= HEADER_BYTES;
  }
  if ((rc = dec_records(d, ctx, p, len)))
    return rc;
  size_t frames = d->out.len / (d->ch * sizeof(float));
  /* a stream that ends without a frame (an empty input) still gives one item, empty, as a
   * one-shot run gives one item per input (AudioResample alike) */
  if (!frames && !(d->ended && !d->frames_out))
    return 0;
  d->frames_out += frames;
  return rm__media_emit_f32(ctx, d->rate, d->ch, d->format, (const float *)d->out.data, frames);
}

static void dec_destroy(void *state) {
  decoder_t *d = state;
  dec_reset(d);
  dec_drop(d);
  rm__media_vec_free(&d->out);
  rm_free(d->pcm);
  rm_free(d);
}

const rm_node_type_t rm__node_type_opus_decode = {
    .name = "OpusDecode",
    .description = "Decodes rm-opus framed packets with libopus into delay-compensated audio; "
                   "truncated or corrupt packets are input errors.",
    .params = dec_params,
    .n_params = sizeof dec_params / sizeof dec_params[0],
    .inputs = dec_inputs,
    .n_inputs = 1,
    .outputs = dec_outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = dec_create,
    .process = dec_process,
    .end_stream = dec_reset, /* a stream cut before its end record keeps what was decoded */
    .destroy = dec_destroy,
};
