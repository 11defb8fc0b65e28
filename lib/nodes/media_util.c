/* media_util.c - helpers shared by the media nodes (see media_util.h). */
#include "nodes/media_util.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "rm/alloc.h"

const char *const rm__media_formats[] = {"same", "f32", "i16", "i32", "f64", NULL};
const char *const rm__media_formats_strict[] = {"f32", "i16", "i32", "f64", NULL};

int rm__media_format(const char *name) {
  if (!name || strcmp(name, "same") == 0)
    return 0;
  return rm_sample_format_from_name(name);
}

int rm__media_vec_reserve(rm__media_vec_t *v, size_t extra) {
  if (extra <= v->cap - v->len)
    return 0;
  /* Doubling, but never past what is needed when that is more: a size a client decided
   * (an end record's frame count) is asked of the budget as it is. rm_realloc asks the
   * budget before malloc sees the size, and refuses what no allocation could hold. */
  size_t need = extra > SIZE_MAX - v->len ? SIZE_MAX : v->len + extra;
  size_t cap = v->cap > SIZE_MAX / 2 ? SIZE_MAX : v->cap * 2;
  if (cap < 256)
    cap = 256;
  if (cap < need)
    cap = need;
  uint8_t *grown = rm_realloc(v->data, cap);
  if (!grown)
    return RM_ENOMEM;
  v->data = grown;
  v->cap = cap;
  return 0;
}

int rm__media_vec_append(rm__media_vec_t *v, const void *src, size_t n) {
  if (!n)
    return 0;
  if (rm__media_vec_reserve(v, n))
    return RM_ENOMEM;
  if (src)
    memcpy(v->data + v->len, src, n);
  else
    memset(v->data + v->len, 0, n);
  v->len += n;
  return 0;
}

void rm__media_vec_consume(rm__media_vec_t *v, size_t n) {
  if (n >= v->len) {
    v->len = 0;
    return;
  }
  memmove(v->data, v->data + n, v->len - n);
  v->len -= n;
}

void rm__media_vec_free(rm__media_vec_t *v) {
  rm_free(v->data);
  v->data = NULL;
  v->len = v->cap = 0;
}

rm_buffer_t *rm__media_vec_adopt(rm__media_vec_t *v, rm_mem_account_t *account,
                                 rm_audio_info_t audio) {
  if (v->len <= RM_MEDIA_KEEP_BYTES)
    return NULL;
  uint8_t *data = v->cap > v->len ? rm_realloc(v->data, v->len) : v->data;
  if (!data)
    return NULL;
  v->data = data;
  v->cap = v->len;
  rm_buffer_t *own = rm__buffer_adopt(RM_KIND_AUDIO, data, v->len, account);
  if (!own)
    return NULL;
  own->u.audio = audio;
  *v = (rm__media_vec_t){0};
  return own;
}

void rm__media_vec_clear(rm__media_vec_t *v) {
  if (v->cap > RM_MEDIA_KEEP_BYTES)
    rm__media_vec_free(v);
  v->len = 0;
}

int rm__media_convert(rm_node_ctx_t *ctx, const void *src, rm_sample_format_t src_fmt, void *dst,
                      rm_sample_format_t dst_fmt, size_t n) {
  size_t ss = rm_sample_format_size(src_fmt), ds = rm_sample_format_size(dst_fmt);
  for (size_t at = 0; at < n; at += RM_MEDIA_BLOCK) {
    int rc = at ? rm_node_check(ctx) : 0;
    if (rc)
      return rc;
    size_t k = n - at < RM_MEDIA_BLOCK ? n - at : RM_MEDIA_BLOCK;
    rm_audio_convert((const uint8_t *)src + at * ss, src_fmt, (uint8_t *)dst + at * ds, dst_fmt, k);
  }
  return 0;
}

int rm__media_gain(rm_node_ctx_t *ctx, const void *src, void *dst, rm_sample_format_t fmt, size_t n,
                   double factor) {
  size_t ss = rm_sample_format_size(fmt);
  for (size_t at = 0; at < n; at += RM_MEDIA_BLOCK) {
    int rc = at ? rm_node_check(ctx) : 0;
    if (rc)
      return rc;
    size_t k = n - at < RM_MEDIA_BLOCK ? n - at : RM_MEDIA_BLOCK;
    rm__audio_gain((const uint8_t *)src + at * ss, (uint8_t *)dst + at * ss, fmt, k, factor);
  }
  return 0;
}

int rm__media_append(rm_node_ctx_t *ctx, rm__media_vec_t *v, const void *src,
                     rm_sample_format_t src_fmt, size_t n, rm_sample_format_t dst_fmt) {
  size_t bytes = n * rm_sample_format_size(dst_fmt);
  if (!n) /* v may have no storage yet (no NULL + 0) */
    return 0;
  if (rm__media_vec_reserve(v, bytes))
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  int rc = rm__media_convert(ctx, src, src_fmt, v->data + v->len, dst_fmt, n);
  if (!rc)
    v->len += bytes;
  return rc;
}

int rm__media_append_mono(rm_node_ctx_t *ctx, rm__media_vec_t *v, const rm_buffer_t *buf) {
  size_t frames = rm_audio_frames(buf);
  uint32_t ch = buf->u.audio.channels;
  if (ch == 1 && buf->u.audio.format == RM_SAMPLE_F32)
    return rm__media_append(ctx, v, buf->data, RM_SAMPLE_F32, frames, RM_SAMPLE_F32);
  if (!frames)
    return 0;
  if (rm__media_vec_reserve(v, frames * sizeof(float)))
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  float *mono = (float *)(void *)(v->data + v->len);
  size_t step = rm__media_block_frames(ch);
  for (size_t at = 0; at < frames; at += step) {
    int rc = at ? rm_node_check(ctx) : 0;
    if (rc)
      return rc;
    size_t end = frames - at < step ? frames : at + step;
    for (size_t f = at; f < end; f++) {
      double sum = 0;
      for (uint32_t c = 0; c < ch; c++)
        sum += rm_audio_get(buf, f * ch + c);
      mono[f] = (float)(sum / ch);
    }
  }
  v->len += frames * sizeof(float);
  return 0;
}

int rm__media_emit_f32(rm_node_ctx_t *ctx, uint32_t rate, uint32_t channels, rm_sample_format_t fmt,
                       const float *src, size_t frames) {
  rm_buffer_t *out = rm_buffer_new_audio(rm_node_account(ctx), rate, channels, fmt, frames);
  int rc = out ? rm__media_convert(ctx, src, RM_SAMPLE_F32, out->data, fmt, frames * channels) : 0;
  if (rc) {
    rm_buffer_unref(out);
    return rc;
  }
  return rm_node_emit(ctx, 0, out);
}

int rm__media_stream_check(rm_node_ctx_t *ctx, int *started, rm_audio_info_t *have,
                           const rm_audio_info_t *a) {
  if (!*started) {
    *have = *a;
    *started = 1;
    return 0;
  }
  if (a->sample_rate == have->sample_rate && a->channels == have->channels &&
      a->format == have->format)
    return 0;
  return rm_node_fail(ctx, RM_ENODE, "in",
                      "audio changed from %u Hz %u ch %s to %u Hz %u ch %s mid-stream",
                      have->sample_rate, have->channels, rm_sample_format_name(have->format),
                      a->sample_rate, a->channels, rm_sample_format_name(a->format));
}

int rm__media_charge(rm__media_charge_t *c, size_t bytes) {
  rm__media_release(c);
  rm_budget_t *b = rm_budget_current();
  if (rm_budget_charge(b, bytes))
    return RM_ENOMEM;
  c->budget = b;
  c->bytes = b ? bytes : 0;
  return 0;
}

void rm__media_release(rm__media_charge_t *c) {
  if (c->bytes)
    rm_budget_discharge(c->budget, c->bytes);
  c->budget = NULL;
  c->bytes = 0;
}

/* Per channel: soxr's FIFOs hold a feed's output in doubles about three times over, plus
 * the filter stages; 1 MiB for the rest. Measured maxima (very-high quality, 8 channels,
 * feeds of 4096 frames): 8 -> 192 kHz 10.5 MB (predicted 23.9), 192 -> 8 kHz 4.0 MB (5.9),
 * 44.1 -> 48 kHz 1.9 MB (5.9). */
size_t rm__media_soxr_bytes(double in_rate, double out_rate, unsigned channels) {
  double ratio = out_rate / in_rate;
  double up = ratio > 1 ? ratio : 1;
  double per_ch = RM_MEDIA_SOXR_FEED * up * 8 * 3 + 512 * 1024.0;
  return (size_t)(per_ch * channels) + ((size_t)1 << 20);
}

/* An r2c plan: twiddles and the planner's tables (16384 points: 65 KB; the first plan of a
 * process also builds shared tables, 166 KB). */
size_t rm__media_fftw_bytes(int n_fft) { return ((size_t)256 << 10) + (size_t)n_fft * 8; }

/* libebur128 keeps the last few seconds of every channel in doubles for its gates (measured:
 * 4.0 s per channel at 8 and 48 kHz, 1 ch 48 kHz 1.54 MB, 64 ch 768 kHz 1.18 GB). */
size_t rm__media_ebur128_bytes(unsigned channels, unsigned rate) {
  return (size_t)channels * rate * 33 + ((size_t)64 << 10);
}

static pthread_mutex_t fft_mutex = PTHREAD_MUTEX_INITIALIZER;

void rm__media_fft_lock(void) { pthread_mutex_lock(&fft_mutex); }
void rm__media_fft_unlock(void) { pthread_mutex_unlock(&fft_mutex); }

double rm__media_db10(double x, double floor_db) {
  if (!(x > 0))
    return floor_db;
  double d = 10.0 * log10(x);
  return d < floor_db ? floor_db : d;
}
