/* audio_codec.c - AudioDecode and AudioEncode: WAV, FLAC and Ogg Vorbis bytes <-> audio
 * buffers with libsndfile, reading and writing memory through its virtual I/O. */
#include <pthread.h>
#include <sndfile.h>
#include <stdio.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/sndfile_check.h"
#include "rm/alloc.h"
#include "rm/budget.h"
#include "rm/node.h"

/* ---------------------------------------------------------------- memory files */

/* A file in memory for libsndfile: read from `src`, or written into `out`. */
typedef struct memfile {
  const uint8_t *src;
  size_t src_len;
  rm__media_vec_t out;
  size_t pos;
  int oom; /* a write could not grow the buffer */
} memfile_t;

static size_t mem_len(const memfile_t *m) { return m->src ? m->src_len : m->out.len; }

static sf_count_t vio_filelen(void *user) { return (sf_count_t)mem_len(user); }

static sf_count_t vio_seek(sf_count_t offset, int whence, void *user) {
  memfile_t *m = user;
  sf_count_t base = whence == SEEK_SET   ? 0
                    : whence == SEEK_CUR ? (sf_count_t)m->pos
                                         : (sf_count_t)mem_len(m);
  sf_count_t to = base + offset;
  if (to < 0)
    return -1;
  m->pos = (size_t)to;
  return to;
}

static sf_count_t vio_read(void *ptr, sf_count_t count, void *user) {
  memfile_t *m = user;
  size_t len = mem_len(m);
  const uint8_t *data = m->src ? m->src : m->out.data;
  if (count <= 0 || m->pos >= len)
    return 0;
  size_t n = (size_t)count < len - m->pos ? (size_t)count : len - m->pos;
  memcpy(ptr, data + m->pos, n);
  m->pos += n;
  return (sf_count_t)n;
}

/* Out of memory, a write still reports success and only sets m->oom, which the encoder
 * checks after every call: libsndfile's Ogg Vorbis writer leaks its codec state when a
 * write fails, and the bytes are never emitted anyway. */
static sf_count_t vio_write(const void *ptr, sf_count_t count, void *user) {
  memfile_t *m = user;
  if (m->src || count <= 0)
    return 0;
  size_t n = (size_t)count;
  if (m->oom || (m->pos > m->out.len && rm__media_vec_append(&m->out, NULL, m->pos - m->out.len)) ||
      (m->pos + n > m->out.len && rm__media_vec_reserve(&m->out, m->pos + n - m->out.len))) {
    m->oom = 1;
    m->pos += n;
    return count;
  }
  memcpy(m->out.data + m->pos, ptr, n);
  m->pos += n;
  if (m->pos > m->out.len)
    m->out.len = m->pos;
  return count;
}

static sf_count_t vio_tell(void *user) { return (sf_count_t)((memfile_t *)user)->pos; }

static SF_VIRTUAL_IO vio = {vio_filelen, vio_seek, vio_read, vio_write, vio_tell};

/* ---------------------------------------------------------------- AudioDecode */

static const char *const decode_formats[] = {"auto", "f32", "i16", "i32", "f64", NULL};
static const rm_param_spec_t decode_params[] = {
    {"format", RM_PARAM_ENUM, 0, 0, 0, "\"auto\"", decode_formats,
     "output sample format; auto = the file's precision (8/16-bit PCM -> i16, 24/32-bit PCM "
     "and 24-bit FLAC -> i32, float -> f32, double -> f64, lossy codecs -> f32)"},
    {"max_seconds", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0.001, 86400, "3600",
     NULL, "longest audio decoded; a longer file is a limit error"},
};
static const rm_port_spec_t decode_inputs[] = {
    {"in", RM_KIND_BINARY, 0, "a whole WAV, FLAC or Ogg Vorbis file (any mime type)"}};
static const rm_port_spec_t decode_outputs[] = {
    {"out", RM_KIND_AUDIO, 0, "the decoded audio, one buffer per file"}};

typedef struct decoder {
  int format; /* 0 = auto */
  double max_seconds;
} decoder_t;

static int decode_create(const json_t *p, void **state, rm_error_t *err) {
  decoder_t *d = rm_malloc(sizeof *d);
  if (!d)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  const char *f = rm_params_string(p, "format");
  d->format = strcmp(f, "auto") == 0 ? 0 : rm_sample_format_from_name(f);
  d->max_seconds = rm_params_number(p, "max_seconds");
  *state = d;
  return 0;
}

static rm_sample_format_t native_format(int sf_format) {
  switch (sf_format & SF_FORMAT_SUBMASK) {
  case SF_FORMAT_PCM_S8:
  case SF_FORMAT_PCM_U8:
  case SF_FORMAT_PCM_16:
  case SF_FORMAT_ULAW:
  case SF_FORMAT_ALAW:
  case SF_FORMAT_DPCM_8:
  case SF_FORMAT_DPCM_16: return RM_SAMPLE_I16;
  case SF_FORMAT_PCM_24:
  case SF_FORMAT_PCM_32: return RM_SAMPLE_I32;
  case SF_FORMAT_DOUBLE: return RM_SAMPLE_F64;
  default: return RM_SAMPLE_F32;
  }
}

#define DECODE_BLOCK 4096

/* Reads every frame of sf into v as fmt samples. Float and double are read directly;
 * integer formats through doubles, which hold any PCM sample exactly, so the project's
 * rounding and clipping rules apply. */
static int decode_frames(rm_node_ctx_t *ctx, SNDFILE *sf, const SF_INFO *info,
                         rm_sample_format_t fmt, uint64_t max_frames, rm__media_vec_t *v,
                         uint64_t *frames) {
  size_t ch = (size_t)info->channels, ss = rm_sample_format_size(fmt);
  double *tmp = NULL;
  if (fmt == RM_SAMPLE_I16 || fmt == RM_SAMPLE_I32) {
    tmp = rm_malloc(DECODE_BLOCK * ch * sizeof *tmp);
    if (!tmp)
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  }
  int rc = 0;
  *frames = 0;
  for (;;) {
    if (rm__media_vec_reserve(v, DECODE_BLOCK * ch * ss)) {
      rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
      break;
    }
    void *dst = v->data + v->len;
    sf_count_t got;
    if (fmt == RM_SAMPLE_F32)
      got = sf_readf_float(sf, dst, DECODE_BLOCK);
    else if (fmt == RM_SAMPLE_F64)
      got = sf_readf_double(sf, dst, DECODE_BLOCK);
    else
      got = sf_readf_double(sf, tmp, DECODE_BLOCK);
    if (got <= 0)
      break;
    if (tmp)
      rm_audio_convert(tmp, RM_SAMPLE_F64, dst, fmt, (size_t)got * ch);
    v->len += (size_t)got * ch * ss;
    *frames += (uint64_t)got;
    if (*frames > max_frames) {
      rc = rm_node_fail(ctx, RM_ELIMIT, "max_seconds",
                        "the file holds more than %.3f s of audio (max_seconds)",
                        (double)max_frames / info->samplerate);
      break;
    }
    if ((rc = rm_node_check(ctx)))
      break;
  }
  rm_free(tmp);
  if (!rc && sf_error(sf) != SF_ERR_NO_ERROR)
    rc = rm_node_fail(ctx, RM_EINPUT, "in", "corrupt audio data: %s", sf_strerror(sf));
  return rc;
}

/* Room for the frames the header announces, so the samples are decoded into one block that
 * never moves (doubling would copy them and hold up to twice their size). The header is the
 * client's word: taken only up to max_seconds and to 16 bytes of samples per byte of file
 * (8-bit WAV read as f64 is 8; FLAC compresses PCM about 2:1), and only as a hint: when the
 * room cannot be had, or the file holds more (silence in FLAC, Ogg Vorbis decoded to f32 or
 * f64), the block grows as it decodes, so a header that lies is refused for what the file
 * really holds (truncated, or over max_seconds or the budget), not for its claim. */
static void reserve_announced(const SF_INFO *info, rm_sample_format_t fmt, uint64_t max_frames,
                              size_t file_bytes, rm__media_vec_t *v) {
  if (info->frames <= 0 || info->frames == SF_COUNT_MAX)
    return;
  uint64_t frame_bytes = (uint64_t)info->channels * rm_sample_format_size(fmt);
  uint64_t frames = (uint64_t)info->frames < max_frames ? (uint64_t)info->frames : max_frames;
  uint64_t cap = file_bytes > UINT64_MAX / 16 ? UINT64_MAX : (uint64_t)file_bytes * 16;
  if (frames > cap / frame_bytes)
    frames = cap / frame_bytes;
  /* decode_frames asks room for a whole block before each read, the last (empty) one too */
  frames += DECODE_BLOCK;
  if (frames * frame_bytes <= SIZE_MAX && rm__media_vec_reserve(v, (size_t)(frames * frame_bytes)))
    rm_budget_refusal_clear(); /* not this node's failure: a later one names its own size */
}

/* The decoded samples as the node's output: a big block becomes the buffer itself (trimmed
 * to what it holds, no copy); a small one is copied into a buffer of one block. */
static int emit_decoded(rm_node_ctx_t *ctx, const SF_INFO *info, rm_sample_format_t fmt,
                        uint64_t frames, rm__media_vec_t *v) {
  rm_audio_info_t audio = {(uint32_t)info->samplerate, (uint32_t)info->channels, fmt};
  rm_buffer_t *own = rm__media_vec_adopt(v, rm_node_account(ctx), audio);
  if (own)
    return rm_node_emit(ctx, 0, own);
  rm_buffer_t *out = rm_buffer_new_audio(rm_node_account(ctx), audio.sample_rate, audio.channels,
                                         fmt, (size_t)frames);
  int rc = out ? rm__media_copy(ctx, out->data, v->data, out->size) : 0;
  if (rc)
    rm_buffer_unref(out);
  else
    rc = rm_node_emit(ctx, 0, out);
  return rc;
}

/* Ogg pages carry a CRC and the last page of a stream an end-of-stream flag, so a cut or
 * damaged Ogg file is found before libsndfile sees it (libsndfile 1.2 also leaks the
 * Vorbis header state when it rejects a malformed stream). Returns NULL when every page is
 * whole, intact and the last one ends the stream; otherwise what is wrong, or "" when the
 * deadline check between pages (*rc) stopped it. */
static uint32_t ogg_crc_table[256];

static void ogg_crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t r = i << 24;
    for (int k = 0; k < 8; k++)
      r = r & 0x80000000u ? (r << 1) ^ 0x04c11db7u : r << 1;
    ogg_crc_table[i] = r;
  }
}

static const char *ogg_check(rm_node_ctx_t *ctx, const uint8_t *d, size_t len, int *rc) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, ogg_crc_init);
  size_t at = 0, checked = 0;
  int eos = 0;
  while (at < len) {
    if (at - checked >= RM_MEDIA_BLOCK * 4) { /* bytes, about 1 ms of CRC */
      checked = at;
      if ((*rc = rm_node_check(ctx)))
        return "";
    }
    if (len - at < 27)
      return "truncated Ogg page header";
    if (memcmp(d + at, "OggS", 4) != 0 || d[at + 4] != 0)
      return "bytes between Ogg pages are not a page";
    size_t nseg = d[at + 26], body = 0;
    if (len - at < 27 + nseg)
      return "truncated Ogg page header";
    for (size_t i = 0; i < nseg; i++)
      body += d[at + 27 + i];
    size_t page = 27 + nseg + body;
    if (len - at < page)
      return "truncated Ogg page";
    uint32_t crc = 0, want = (uint32_t)d[at + 22] | (uint32_t)d[at + 23] << 8 |
                             (uint32_t)d[at + 24] << 16 | (uint32_t)d[at + 25] << 24;
    for (size_t i = 0; i < page; i++) {
      uint8_t byte = i >= 22 && i < 26 ? 0 : d[at + i];
      crc = (crc << 8) ^ ogg_crc_table[(crc >> 24) ^ byte];
    }
    if (crc != want)
      return "Ogg page checksum mismatch (corrupt data)";
    eos = (d[at + 5] & 0x04) != 0;
    at += page;
  }
  return eos ? NULL : "truncated Ogg stream: the last page does not end the stream";
}

/* The containers AudioDecode reads: WAV (RIFF, RIFX, RF64 with WAVE), FLAC and Ogg. libsndfile
 * would parse many more (AIFF, AU, CAF, MP3 through mpg123, ...): parsers for client bytes
 * nobody asked for, and library memory outside the prediction. Decided by the first bytes,
 * before libsndfile sees them, and by the format libsndfile then reports. */
static int known_container(const uint8_t *b, size_t n) {
  if (n >= 12 && (!memcmp(b, "RIFF", 4) || !memcmp(b, "RIFX", 4) || !memcmp(b, "RF64", 4)))
    return !memcmp(b + 8, "WAVE", 4);
  return n >= 4 && (!memcmp(b, "fLaC", 4) || !memcmp(b, "OggS", 4));
}

static int known_format(int format) {
  switch (format & SF_FORMAT_TYPEMASK) {
  case SF_FORMAT_WAV:
  case SF_FORMAT_WAVEX:
  case SF_FORMAT_RF64:
  case SF_FORMAT_FLAC:
  case SF_FORMAT_OGG: return 1;
  default: return 0;
  }
}

static int not_a_container(rm_node_ctx_t *ctx, const rm_buffer_t *in) {
  char start[4 * 4 + 1] = "";
  const uint8_t *b = in->data;
  for (size_t i = 0, at = 0; i < 4 && i < in->size; i++)
    at += (size_t)snprintf(start + at, sizeof start - at,
                           b[i] >= 0x20 && b[i] < 0x7f ? "%c" : "\\x%02x", b[i]);
  return rm_node_fail(ctx, RM_EINPUT, "in",
                      "not a WAV, FLAC or Ogg file (%zu bytes starting '%s'): AudioDecode reads "
                      "those containers only",
                      in->size, start);
}

static int decode_process(void *state, rm_node_ctx_t *ctx) {
  const decoder_t *d = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  memfile_t m = {.src = in->data, .src_len = in->size};
  SF_INFO info;
  memset(&info, 0, sizeof info);
  if (!in->size)
    return rm_node_fail(ctx, RM_EINPUT, "in", "the input is empty, not an audio file");
  if (!known_container(in->data, in->size))
    return not_a_container(ctx, in);
  int rc = 0;
  const char *bad = in->size >= 4 && memcmp(in->data, "OggS", 4) == 0
                        ? ogg_check(ctx, in->data, in->size, &rc)
                        : NULL;
  if (bad)
    return rc ? rc : rm_node_fail(ctx, RM_EINPUT, "in", "%s", bad);
  rm__media_charge_t lib = {0}; /* libsndfile's memory while the file is open */
  if (rm__media_charge(&lib, RM_MEDIA_SNDFILE_BYTES))
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  SNDFILE *sf = sf_open_virtual(&vio, SFM_READ, &info, &m);
  if (!sf)
    rm__media_release(&lib);
  if (!sf)
    return rm_node_fail(ctx, RM_EINPUT, "in", "not a decodable audio file (%zu bytes): %s",
                        in->size, sf_strerror(NULL));
  if (!known_format(info.format)) { /* the right magic, another format inside */
    sf_close(sf);
    rm__media_release(&lib);
    return not_a_container(ctx, in);
  }
  if (info.samplerate < 1 || info.samplerate > 768000 || info.channels < 1 || info.channels > 64) {
    rc = rm_node_fail(ctx, RM_EINPUT, "in", "unsupported stream: %d Hz, %d channels",
                      info.samplerate, info.channels);
    sf_close(sf);
    rm__media_release(&lib);
    return rc;
  }
  rm_sample_format_t fmt = d->format ? (rm_sample_format_t)d->format : native_format(info.format);
  rm__media_vec_t v = {0};
  uint64_t frames = 0, max_frames = (uint64_t)(d->max_seconds * info.samplerate);
  reserve_announced(&info, fmt, max_frames, in->size, &v);
  rc = decode_frames(ctx, sf, &info, fmt, max_frames, &v, &frames);
  /* A file shorter than its header says was cut off: libsndfile reads what is there and
   * says so only in its log, so compare with the frame count the header announced. */
  if (!rc && info.frames > 0 && info.frames != SF_COUNT_MAX && frames < (uint64_t)info.frames)
    rc = rm_node_fail(ctx, RM_EINPUT, "in",
                      "truncated audio file: the header announces %lld frames, %llu decoded",
                      (long long)info.frames, (unsigned long long)frames);
  if (!rc && rm_sndfile_cut_short(sf, &info))
    rc = rm_node_fail(ctx, RM_EINPUT, "in", "truncated audio file: %llu frames decoded",
                      (unsigned long long)frames);
  sf_close(sf);
  rm__media_release(&lib);
  if (!rc)
    rc = emit_decoded(ctx, &info, fmt, frames, &v);
  rm__media_vec_free(&v);
  return rc;
}

static void decode_destroy(void *state) { rm_free(state); }

const rm_node_type_t rm__node_type_audio_decode = {
    .name = "AudioDecode",
    .description = "Decodes a WAV (PCM 8-32 bit, float, double), FLAC or Ogg Vorbis file "
                   "held in a binary buffer with libsndfile. Corrupt or truncated files are "
                   "input errors.",
    .params = decode_params,
    .n_params = sizeof decode_params / sizeof decode_params[0],
    .inputs = decode_inputs,
    .n_inputs = 1,
    .outputs = decode_outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_REUSABLE,
    .create = decode_create,
    .process = decode_process,
    .destroy = decode_destroy,
};

/* ---------------------------------------------------------------- AudioEncode */

static const char *const containers[] = {"wav", "flac", "ogg", NULL};
static const char *const subtypes[] = {"auto", "pcm16", "pcm24", "pcm32", "float", "vorbis", NULL};
static const rm_param_spec_t encode_params[] = {
    {"container", RM_PARAM_ENUM, 0, 0, 0, "\"wav\"", containers, "file type"},
    {"subtype", RM_PARAM_ENUM, 0, 0, 0, "\"auto\"", subtypes,
     "sample encoding: wav takes pcm16/pcm24/pcm32/float, flac pcm16/pcm24, ogg vorbis; "
     "auto = pcm16 for wav and flac, vorbis for ogg"},
    {"quality", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 1, "null", NULL,
     "Ogg Vorbis VBR quality, 0 (smallest) to 1 (best); only for ogg; null = libsndfile's "
     "default (0.4)"},
};
static const rm_port_spec_t encode_inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t encode_outputs[] = {
    {"out", RM_KIND_BINARY, 0,
     "at end of stream: the whole file (mime audio/wav, audio/flac or audio/ogg)"}};

enum { SUB_AUTO, SUB_PCM16, SUB_PCM24, SUB_PCM32, SUB_FLOAT, SUB_VORBIS };

typedef struct encoder {
  int container; /* SF_FORMAT_WAV / FLAC / OGG */
  int subtype;   /* SUB_* after defaulting */
  const char *mime;
  double quality; /* < 0: default */
  /* stream */
  int started;
  rm_audio_info_t info;
  SNDFILE *sf;
  rm__media_charge_t lib; /* libsndfile's memory while the file is open */
  memfile_t m;
} encoder_t;

static int encode_create(const json_t *p, void **state, rm_error_t *err) {
  const char *c = rm_params_string(p, "container"), *s = rm_params_string(p, "subtype");
  int sub = SUB_AUTO;
  for (int i = 0; subtypes[i]; i++)
    if (strcmp(s, subtypes[i]) == 0)
      sub = i;
  int container = SF_FORMAT_WAV;
  const char *mime = "audio/wav";
  if (strcmp(c, "flac") == 0) {
    container = SF_FORMAT_FLAC;
    mime = "audio/flac";
    if (sub == SUB_AUTO)
      sub = SUB_PCM16;
    if (sub != SUB_PCM16 && sub != SUB_PCM24)
      return rm_error_set(err, RM_EPARAM, NULL, "subtype",
                          "node param 'subtype': flac stores pcm16 or pcm24, not %s", s);
  } else if (strcmp(c, "ogg") == 0) {
    container = SF_FORMAT_OGG;
    mime = "audio/ogg";
    if (sub == SUB_AUTO)
      sub = SUB_VORBIS;
    if (sub != SUB_VORBIS)
      return rm_error_set(err, RM_EPARAM, NULL, "subtype",
                          "node param 'subtype': ogg stores vorbis, not %s", s);
  } else {
    if (sub == SUB_AUTO)
      sub = SUB_PCM16;
    if (sub == SUB_VORBIS)
      return rm_error_set(err, RM_EPARAM, NULL, "subtype",
                          "node param 'subtype': wav stores pcm16, pcm24, pcm32 or float, not "
                          "vorbis");
  }
  if (!rm_params_is_null(p, "quality") && container != SF_FORMAT_OGG)
    return rm_error_set(err, RM_EPARAM, NULL, "quality",
                        "node param 'quality': only applies to container ogg, not %s", c);
  encoder_t *e = rm_calloc(1, sizeof *e);
  if (!e)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  e->container = container;
  e->subtype = sub;
  e->mime = mime;
  e->quality = rm_params_is_null(p, "quality") ? -1 : rm_params_number(p, "quality");
  *state = e;
  return 0;
}

static void encode_reset(void *state) {
  encoder_t *e = state;
  if (e->sf)
    sf_close(e->sf);
  e->sf = NULL;
  rm__media_release(&e->lib);
  rm__media_vec_free(&e->m.out);
  memset(&e->m, 0, sizeof e->m);
  e->started = 0;
}

static int encode_open(encoder_t *e, rm_node_ctx_t *ctx, const rm_audio_info_t *a) {
  static const int sub_codes[] = {
      0, SF_FORMAT_PCM_16, SF_FORMAT_PCM_24, SF_FORMAT_PCM_32, SF_FORMAT_FLOAT, SF_FORMAT_VORBIS};
  SF_INFO info;
  memset(&info, 0, sizeof info);
  info.samplerate = (int)a->sample_rate;
  info.channels = (int)a->channels;
  info.format = e->container | sub_codes[e->subtype];
  /* libFLAC and libvorbis refuse these only at the first write (sf_format_check passes them),
   * and an empty stream would then come out as an empty file: refuse them here */
  int flac_rate = e->container != SF_FORMAT_FLAC || a->sample_rate <= 65535 ||
                  a->sample_rate % 10 == 0; /* above 65535 Hz FLAC codes steps of 10 Hz */
  int vorbis_rate = e->subtype != SUB_VORBIS || a->sample_rate <= 200000;
  /* libvorbis (1.3.7, and upstream since) picks its 5.1 setup for 6 channels at 40-70 kHz,
   * whose two modes set up one residue twice: each such stream leaks the first (2,848 bytes),
   * outside any budget, so a client could grow the server without end */
  if (e->subtype == SUB_VORBIS && a->channels == 6 && a->sample_rate >= 40000 &&
      a->sample_rate <= 70000)
    return rm_node_fail(ctx, RM_EINPUT, "in",
                        "audio/ogg of 6 channels at 40000-70000 Hz (%u Hz) is not encoded: "
                        "libvorbis's 5.1 setup leaks memory on every stream; use flac, or "
                        "another rate",
                        a->sample_rate);
  if (!flac_rate || !vorbis_rate || !sf_format_check(&info))
    return rm_node_fail(ctx, RM_EINPUT, "in", "%s cannot store %u Hz, %u channels%s", e->mime,
                        a->sample_rate, a->channels,
                        !flac_rate     ? " (above 65535 Hz, FLAC stores multiples of 10 Hz)"
                        : !vorbis_rate ? " (Vorbis stores at most 200000 Hz)"
                                       : "");
  if (rm__media_charge(&e->lib, RM_MEDIA_SNDFILE_BYTES))
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  e->sf = sf_open_virtual(&vio, SFM_WRITE, &info, &e->m);
  if (e->sf && e->m.oom)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if (!e->sf)
    return rm_node_fail(ctx, e->m.oom ? RM_ENOMEM : RM_EINPUT, "in",
                        "libsndfile could not start a %s file of %u Hz, %u channels: %s", e->mime,
                        a->sample_rate, a->channels, sf_strerror(NULL));
  if (e->quality >= 0) {
    double q = e->quality;
    sf_command(e->sf, SFC_SET_VBR_ENCODING_QUALITY, &q, sizeof q);
  }
  return 0;
}

/* Frames handed to libsndfile per write. libvorbis extrapolates the stream's start once,
 * over every frame buffered by then, in a stack array (alloca): one write of millions of
 * frames overflowed a worker's stack (SIGSEGV from a 200 KB request). Bounded writes also let
 * a deadline or a cancel stop a long encode between them. */
#define WRITE_FRAMES 4096

/* Writes frames [from, from + frames) of in, converted for the subtype in tmp (room for
 * WRITE_FRAMES frames of 32-bit samples) unless they are aligned floats already. The number
 * of frames written. */
static sf_count_t write_converted(encoder_t *e, const rm_buffer_t *in, size_t from, size_t frames,
                                  void *tmp) {
  unsigned ch = in->u.audio.channels;
  size_t n = frames * ch, first = from * ch;
  const uint8_t *src =
      (const uint8_t *)in->data + first * rm_sample_format_size(in->u.audio.format);
  if (e->subtype == SUB_FLOAT || e->subtype == SUB_VORBIS) {
    const float *f = tmp;
    if (in->u.audio.format == RM_SAMPLE_F32 && (uintptr_t)src % _Alignof(float) == 0)
      f = (const float *)(const void *)src;
    else
      rm_audio_convert(src, in->u.audio.format, tmp, RM_SAMPLE_F32, n);
    return sf_writef_float(e->sf, f, (sf_count_t)frames);
  }
  if (e->subtype == SUB_PCM16) {
    rm_audio_convert(src, in->u.audio.format, tmp, RM_SAMPLE_I16, n);
    return sf_writef_short(e->sf, tmp, (sf_count_t)frames);
  }
  if (e->subtype == SUB_PCM32) {
    rm_audio_convert(src, in->u.audio.format, tmp, RM_SAMPLE_I32, n);
  } else { /* 24-bit: round to 2^-23, left-aligned as libsndfile expects */
    for (size_t i = 0; i < n; i++)
      ((int32_t *)tmp)[i] = (int32_t)((uint32_t)rm__quantise(rm_audio_get(in, first + i), 8388608.0,
                                                             -8388608, 8388607)
                                      << 8);
  }
  return sf_writef_int(e->sf, (const int *)tmp, (sf_count_t)frames);
}

/* Writes one chunk, WRITE_FRAMES at a time. Integer subtypes get integers rounded by the
 * project's rule (libsndfile would scale floats by 2^15-1 and truncate 24-bit); float and
 * vorbis get floats. */
static int encode_write(encoder_t *e, rm_node_ctx_t *ctx, const rm_buffer_t *in) {
  size_t frames = rm_audio_frames(in);
  unsigned ch = in->u.audio.channels;
  if (!frames)
    return 0;
  void *tmp = rm_malloc((frames < WRITE_FRAMES ? frames : WRITE_FRAMES) * ch * sizeof(int32_t));
  if (!tmp)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  int rc = 0;
  for (size_t at = 0; at < frames && !rc; at += WRITE_FRAMES) {
    size_t k = frames - at < WRITE_FRAMES ? frames - at : WRITE_FRAMES;
    sf_count_t wrote = write_converted(e, in, at, k, tmp);
    if (e->m.oom)
      rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    else if (wrote != (sf_count_t)k)
      rc = rm_node_fail(ctx, RM_ENODE, NULL, "libsndfile write failed: %s", sf_strerror(e->sf));
    else
      rc = rm_node_check(ctx);
  }
  rm_free(tmp);
  return rc;
}

static int encode_process(void *state, rm_node_ctx_t *ctx) {
  encoder_t *e = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  int first = !e->started;
  int rc = rm__media_stream_check(ctx, &e->started, &e->info, &in->u.audio);
  if (!rc && first)
    rc = encode_open(e, ctx, &in->u.audio);
  if (!rc)
    rc = encode_write(e, ctx, in);
  return rc;
}

/* Emits the file. A WAV file is as long as its input: the bytes are copied a block at a time
 * into a buffer made with the mime type and no bytes, then grown (so nothing is copied twice). */
static int emit_file(encoder_t *e, rm_node_ctx_t *ctx) {
  rm_buffer_t *b = rm_buffer_new_binary(rm_node_account(ctx), NULL, 0, e->mime);
  int rc = b ? rm__buffer_grow(&b, e->m.out.len) : RM_ENOMEM;
  if (!rc && (rc = rm__media_copy(ctx, b->data, e->m.out.data, e->m.out.len)) == 0)
    return rm_node_emit(ctx, 0, b);
  rm_buffer_unref(b);
  return rc == RM_ENOMEM ? rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory") : rc;
}

static int encode_flush(void *state, rm_node_ctx_t *ctx) {
  encoder_t *e = state;
  if (!e->started)
    return 0;
  /* libsndfile starts a FLAC encoder at the first write: a stream without a frame would
   * close as an empty file, not a FLAC file of no samples */
  if (e->container == SF_FORMAT_FLAC && !e->m.out.len)
    sf_command(e->sf, SFC_UPDATE_HEADER_NOW, NULL, 0);
  int close_rc = sf_close(e->sf); /* writes the final header and pages */
  e->sf = NULL;
  rm__media_release(&e->lib);
  int rc;
  if (close_rc || e->m.oom)
    rc = rm_node_fail(ctx, e->m.oom ? RM_ENOMEM : RM_ENODE, NULL,
                      "libsndfile could not finish the file: %s",
                      e->m.oom ? "out of memory" : sf_error_number(close_rc));
  else
    rc = emit_file(e, ctx);
  return rc;
}

static void encode_destroy(void *state) {
  encode_reset(state);
  rm_free(state);
}

const rm_node_type_t rm__node_type_audio_encode = {
    .name = "AudioEncode",
    .description = "Encodes a stream of audio into one WAV, FLAC or Ogg Vorbis file with "
                   "libsndfile, emitted at end of stream.",
    .params = encode_params,
    .n_params = sizeof encode_params / sizeof encode_params[0],
    .inputs = encode_inputs,
    .n_inputs = 1,
    .outputs = encode_outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_REUSABLE,
    .create = encode_create,
    .process = encode_process,
    .flush = encode_flush,
    .end_stream = encode_reset,
    .destroy = encode_destroy,
};
