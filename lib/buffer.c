/* buffer.c - reference-counted data buffers, sample format conversion, byte accounting. */
#include "rm/buffer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rm/alloc.h"

/* Round to int in the current rounding mode: GCC's builtins vectorise; clang has none of that
 * name (the fuzz and sanitizer builds use it), and lrint gives the same value there. */
#if defined(__clang__)
#define IRINTF(x) ((int)lrintf(x))
#define IRINT(x) ((int)lrint(x))
#else
#define IRINTF(x) __builtin_irintf(x)
#define IRINT(x) __builtin_irint(x)
#endif

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "buffers hold little-endian samples; a big-endian port needs byte swaps");

/* Owned buffers are one allocation: the header, padding to 16 bytes, the payload, a NUL. */
#define HDR_SIZE ((sizeof(rm_buffer_t) + 15u) & ~(size_t)15u)

size_t rm_sample_format_size(int format) {
  switch (format) {
  case RM_SAMPLE_F32: return 4;
  case RM_SAMPLE_I16: return 2;
  case RM_SAMPLE_I32: return 4;
  case RM_SAMPLE_F64: return 8;
  default: return 0;
  }
}

const char *rm_sample_format_name(int format) {
  switch (format) {
  case RM_SAMPLE_F32: return "f32";
  case RM_SAMPLE_I16: return "i16";
  case RM_SAMPLE_I32: return "i32";
  case RM_SAMPLE_F64: return "f64";
  default: return NULL;
  }
}

int rm_sample_format_from_name(const char *name) {
  static const int all[] = {RM_SAMPLE_F32, RM_SAMPLE_I16, RM_SAMPLE_I32, RM_SAMPLE_F64};
  for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
    if (strcmp(name, rm_sample_format_name(all[i])) == 0)
      return all[i];
  return 0;
}

size_t rm_dtype_size(int dtype) {
  switch (dtype) {
  case RM_DTYPE_F32: return 4;
  case RM_DTYPE_F64: return 8;
  case RM_DTYPE_I32: return 4;
  case RM_DTYPE_I64: return 8;
  case RM_DTYPE_U8: return 1;
  case RM_DTYPE_I16: return 2;
  default: return 0;
  }
}

const char *rm_dtype_name(int dtype) {
  switch (dtype) {
  case RM_DTYPE_F32: return "f32";
  case RM_DTYPE_F64: return "f64";
  case RM_DTYPE_I32: return "i32";
  case RM_DTYPE_I64: return "i64";
  case RM_DTYPE_U8: return "u8";
  case RM_DTYPE_I16: return "i16";
  default: return NULL;
  }
}

const char *rm_kind_name(unsigned kind) {
  switch (kind) {
  case RM_KIND_NONE: return "none";
  case RM_KIND_AUDIO: return "audio";
  case RM_KIND_TENSOR: return "tensor";
  case RM_KIND_JSON: return "json";
  case RM_KIND_TEXT: return "text";
  case RM_KIND_BINARY: return "binary";
  default: return "mixed";
  }
}

static void account_add(rm_mem_account_t *a, size_t n) {
  if (!a)
    return;
  a->live++;
  a->current += n;
  if (a->current > a->peak)
    a->peak = a->current;
}

static void account_remove(rm_mem_account_t *a, size_t n) {
  if (!a)
    return;
  a->current -= n;
  if (--a->live == 0 && a->orphaned)
    rm_free(a);
}

void rm_buffer_move_account(rm_buffer_t *buf, rm_mem_account_t *from, rm_mem_account_t *to) {
  if (!buf || !from || buf->account != from || from == to)
    return;
  account_add(to, buf->size);
  buf->account = to;
  account_remove(from, buf->size);
}

rm_mem_account_t *rm_mem_account_new(void) { return rm_calloc(1, sizeof(rm_mem_account_t)); }

void rm_mem_account_free(rm_mem_account_t *a) {
  if (!a)
    return;
  if (a->live == 0)
    rm_free(a);
  else
    a->orphaned = 1;
}

rm_buffer_t *rm_buffer_new(rm_kind_t kind, size_t size, rm_mem_account_t *account) {
  if (size > SIZE_MAX - HDR_SIZE - 1)
    return NULL;
  uint8_t *mem = rm_malloc(HDR_SIZE + size + 1);
  if (!mem)
    return NULL;
  rm_buffer_t *b = (rm_buffer_t *)mem;
  memset(b, 0, sizeof *b);
  b->kind = kind;
  b->data = mem + HDR_SIZE;
  b->data[size] = '\0';
  b->size = size;
  b->refs = 1;
  b->account = account;
  account_add(account, size);
  return b;
}

rm_buffer_t *rm_buffer_new_audio(rm_mem_account_t *account, uint32_t sample_rate, uint32_t channels,
                                 rm_sample_format_t format, size_t frames) {
  size_t bps = rm_sample_format_size(format);
  if (!bps || !channels || frames > SIZE_MAX / channels / bps)
    return NULL;
  rm_buffer_t *b = rm_buffer_new(RM_KIND_AUDIO, frames * channels * bps, account);
  if (!b)
    return NULL;
  b->u.audio.sample_rate = sample_rate;
  b->u.audio.channels = channels;
  b->u.audio.format = format;
  return b;
}

rm_buffer_t *rm_buffer_new_tensor(rm_mem_account_t *account, rm_dtype_t dtype, const int64_t *shape,
                                  uint32_t ndim) {
  size_t total = rm_dtype_size(dtype);
  if (!total || ndim > RM_TENSOR_MAX_DIMS)
    return NULL;
  for (uint32_t i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return NULL;
    if (shape[i] && total > SIZE_MAX / (uint64_t)shape[i])
      return NULL;
    total *= (size_t)shape[i];
  }
  rm_buffer_t *b = rm_buffer_new(RM_KIND_TENSOR, total, account);
  if (!b)
    return NULL;
  b->u.tensor.dtype = dtype;
  b->u.tensor.ndim = ndim;
  for (uint32_t i = 0; i < ndim; i++)
    b->u.tensor.shape[i] = shape[i];
  return b;
}

rm_buffer_t *rm_buffer_new_text(rm_mem_account_t *account, rm_kind_t kind, const char *text,
                                size_t len) {
  rm_buffer_t *b = rm_buffer_new(kind, len, account);
  if (b && len)
    memcpy(b->data, text, len);
  return b;
}

rm_buffer_t *rm_buffer_new_binary(rm_mem_account_t *account, const void *data, size_t len,
                                  const char *mime_type) {
  rm_buffer_t *b = rm_buffer_new(RM_KIND_BINARY, len, account);
  if (!b)
    return NULL;
  if (len)
    memcpy(b->data, data, len);
  if (mime_type && *mime_type) {
    b->mime_type = rm_strdup(mime_type);
    if (!b->mime_type) {
      rm_buffer_unref(b);
      return NULL;
    }
  }
  return b;
}

rm_buffer_t *rm_buffer_new_borrowed(rm_kind_t kind, const void *data, size_t size,
                                    rm_mem_account_t *account) {
  rm_buffer_t *b = rm_malloc(sizeof *b);
  if (!b)
    return NULL;
  memset(b, 0, sizeof *b);
  b->kind = kind;
  b->data = (uint8_t *)data;
  b->size = size;
  b->refs = 1;
  b->borrowed = 1;
  b->account = account;
  account_add(account, size);
  return b;
}

/* borrowed: 0 payload in the buffer's block, 1 the caller's, ADOPTED a block of its own */
#define ADOPTED 2

rm_buffer_t *rm__buffer_adopt(rm_kind_t kind, void *data, size_t size, rm_mem_account_t *account) {
  rm_buffer_t *b = rm_buffer_new_borrowed(kind, data, size, account);
  if (b)
    b->borrowed = ADOPTED;
  return b;
}

int rm__buffer_grow(rm_buffer_t **buf, size_t size) {
  rm_buffer_t *b = *buf;
  if (b->refs != 1 || b->borrowed == 1)
    return RM_EINTERNAL;
  if (size <= b->size)
    return 0;
  size_t old = b->size;
  if (b->borrowed == ADOPTED) {
    uint8_t *data = rm_realloc(b->data, size);
    if (!data)
      return RM_ENOMEM;
    b->data = data;
  } else {
    if (size > SIZE_MAX - HDR_SIZE - 1)
      return RM_ENOMEM;
    uint8_t *mem = rm_realloc(b, HDR_SIZE + size + 1);
    if (!mem)
      return RM_ENOMEM;
    b = (rm_buffer_t *)(void *)mem;
    b->data = mem + HDR_SIZE;
    b->data[size] = '\0';
  }
  b->size = size;
  if (b->account) {
    b->account->current += size - old;
    if (b->account->current > b->account->peak)
      b->account->peak = b->account->current;
  }
  *buf = b;
  return 0;
}

rm_buffer_t *rm_buffer_ref(rm_buffer_t *buf) {
  buf->refs++;
  return buf;
}

void rm_buffer_unref(rm_buffer_t *buf) {
  if (!buf || --buf->refs > 0)
    return;
  account_remove(buf->account, buf->size);
  if (buf->borrowed == ADOPTED)
    rm_free(buf->data);
  rm_free(buf->mime_type);
  rm_free(buf); /* owned payloads live in the same allocation */
}

int rm_buffer_validate(const rm_buffer_t *buf, rm_error_t *err) {
  switch (buf->kind) {
  case RM_KIND_AUDIO: {
    const rm_audio_info_t *a = &buf->u.audio;
    size_t bps = rm_sample_format_size(a->format);
    if (!bps)
      return rm_error_set(err, RM_EINPUT, NULL, "format",
                          "audio format %d is not one of f32, i16, i32, f64", (int)a->format);
    if (a->sample_rate < 1 || a->sample_rate > 768000)
      return rm_error_set(err, RM_EINPUT, NULL, "sample_rate",
                          "audio sample_rate %u is outside 1..768000", a->sample_rate);
    if (a->channels < 1 || a->channels > 64)
      return rm_error_set(err, RM_EINPUT, NULL, "channels", "audio channels %u is outside 1..64",
                          a->channels);
    if (buf->size % (bps * a->channels))
      return rm_error_set(
          err, RM_EINPUT, NULL, "samples",
          "audio samples hold %zu bytes, not a whole number of %u-channel %s frames", buf->size,
          a->channels, rm_sample_format_name(a->format));
    return 0;
  }
  case RM_KIND_TENSOR: {
    const rm_tensor_info_t *t = &buf->u.tensor;
    size_t total = rm_dtype_size(t->dtype);
    if (!total)
      return rm_error_set(err, RM_EINPUT, NULL, "dtype", "tensor dtype %d is not supported",
                          (int)t->dtype);
    if (t->ndim > RM_TENSOR_MAX_DIMS)
      return rm_error_set(err, RM_EINPUT, NULL, "shape",
                          "tensor has %u dimensions, at most %d allowed", t->ndim,
                          RM_TENSOR_MAX_DIMS);
    for (uint32_t i = 0; i < t->ndim; i++) {
      if (t->shape[i] < 0)
        return rm_error_set(err, RM_EINPUT, NULL, "shape", "tensor dimension %u is negative", i);
      if (t->shape[i] && total > SIZE_MAX / (uint64_t)t->shape[i])
        return rm_error_set(err, RM_EINPUT, NULL, "shape", "tensor shape overflows");
      total *= (size_t)t->shape[i];
    }
    if (total != buf->size)
      return rm_error_set(err, RM_EINPUT, NULL, "data",
                          "tensor data holds %zu bytes but its shape and dtype need %zu", buf->size,
                          total);
    return 0;
  }
  case RM_KIND_JSON:
  case RM_KIND_TEXT:
  case RM_KIND_BINARY: return 0;
  default: return rm_error_set(err, RM_EINPUT, NULL, "kind", "buffer has no data kind");
  }
}

size_t rm_audio_samples(const rm_buffer_t *buf) {
  size_t bps = rm_sample_format_size(buf->u.audio.format);
  return bps ? buf->size / bps : 0;
}

size_t rm_audio_frames(const rm_buffer_t *buf) {
  return buf->u.audio.channels ? rm_audio_samples(buf) / buf->u.audio.channels : 0;
}

/* ---- conversion kernels ----
 * Written for gcc's auto-vectoriser (lib/CMakeLists.txt compiles this file with
 * -fno-math-errno and the cheap cost model, so -O2 vectorises them too): restrict pointers,
 * memcpy loads and stores (payloads may be unaligned views), no per-sample calls or branches.
 * Each equals the scalar definition in rm/buffer.h (rm__sample_load / rm__sample_store) bit
 * for bit: NaN becomes 0 first, the value is clamped to the integer range (the bounds are
 * integers, so clamping before rounding equals clamping after it), and IRINT (__builtin_irint)
 * rounds in the current rounding mode as nearbyint does. Float arithmetic is used only where
 * it is exact (scaling by a power of two). */

static void i16_to_f32(const uint8_t *restrict s, uint8_t *restrict d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int16_t v;
    memcpy(&v, s + 2 * i, 2);
    float f = (float)v * (1.0f / 32768.0f);
    memcpy(d + 4 * i, &f, 4);
  }
}

static void i32_to_f32(const uint8_t *restrict s, uint8_t *restrict d, size_t n) {
  for (size_t i = 0; i < n; i++) { /* int -> float rounds once, as int -> double -> float */
    int32_t v;
    memcpy(&v, s + 4 * i, 4);
    float f = (float)v * (1.0f / 2147483648.0f);
    memcpy(d + 4 * i, &f, 4);
  }
}

static void f32_to_i16(const uint8_t *restrict s, uint8_t *restrict d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float x;
    memcpy(&x, s + 4 * i, 4);
    float y = x * 32768.0f; /* exact: x * 32768.0 in double is the same value */
    y = y == y ? y : 0.0f;
    y = y < -32768.0f ? -32768.0f : y;
    y = y > 32767.0f ? 32767.0f : y;
    int16_t v = (int16_t)IRINTF(y);
    memcpy(d + 2 * i, &v, 2);
  }
}

static void f32_to_i32(const uint8_t *restrict s, uint8_t *restrict d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float x;
    memcpy(&x, s + 4 * i, 4);
    float y = x * 2147483648.0f;
    y = y == y ? y : 0.0f;
    /* the largest float below 2^31 is 2^31 - 128, an integer; 2^31 and above clip to
     * INT32_MAX, which float cannot hold, so it is selected after the conversion */
    float c = y < -2147483648.0f ? -2147483648.0f : y;
    c = c > 2147483520.0f ? 2147483520.0f : c;
    int32_t v = IRINTF(c);
    v = y >= 2147483648.0f ? INT32_MAX : v;
    memcpy(d + 4 * i, &v, 4);
  }
}

static void f64_to_i16(const uint8_t *restrict s, uint8_t *restrict d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double x;
    memcpy(&x, s + 8 * i, 8);
    double y = x * 32768.0;
    y = y == y ? y : 0.0;
    y = y < -32768.0 ? -32768.0 : y;
    y = y > 32767.0 ? 32767.0 : y;
    int16_t v = (int16_t)IRINT(y);
    memcpy(d + 2 * i, &v, 2);
  }
}

static void f64_to_i32(const uint8_t *restrict s, uint8_t *restrict d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double x;
    memcpy(&x, s + 8 * i, 8);
    double y = x * 2147483648.0;
    y = y == y ? y : 0.0;
    y = y < (double)INT32_MIN ? (double)INT32_MIN : y;
    y = y > (double)INT32_MAX ? (double)INT32_MAX : y;
    int32_t v = IRINT(y);
    memcpy(d + 4 * i, &v, 4);
  }
}

static void f32_f64(const uint8_t *restrict s, int src_fmt, uint8_t *restrict d, size_t n) {
  if (src_fmt == RM_SAMPLE_F32) {
    for (size_t i = 0; i < n; i++) {
      float x;
      memcpy(&x, s + 4 * i, 4);
      double y = x;
      memcpy(d + 8 * i, &y, 8);
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      double x;
      memcpy(&x, s + 8 * i, 8);
      float y = (float)x;
      memcpy(d + 4 * i, &y, 4);
    }
  }
}

void rm_audio_convert(const void *src, rm_sample_format_t src_fmt, void *dst,
                      rm_sample_format_t dst_fmt, size_t n) {
  const uint8_t *s = src;
  uint8_t *d = dst;
  if (n == 0) /* empty buffers may have NULL payloads: memmove(NULL, NULL, 0) is UB */
    return;
  if (src_fmt == dst_fmt) {
    memmove(d, s, n * rm_sample_format_size(src_fmt));
    return;
  }
  switch (src_fmt * 8 + dst_fmt) {
  case RM_SAMPLE_I16 * 8 + RM_SAMPLE_F32: i16_to_f32(s, d, n); return;
  case RM_SAMPLE_I32 * 8 + RM_SAMPLE_F32: i32_to_f32(s, d, n); return;
  case RM_SAMPLE_F32 * 8 + RM_SAMPLE_I16: f32_to_i16(s, d, n); return;
  case RM_SAMPLE_F32 * 8 + RM_SAMPLE_I32: f32_to_i32(s, d, n); return;
  case RM_SAMPLE_F64 * 8 + RM_SAMPLE_I16: f64_to_i16(s, d, n); return;
  case RM_SAMPLE_F64 * 8 + RM_SAMPLE_I32: f64_to_i32(s, d, n); return;
  case RM_SAMPLE_F32 * 8 + RM_SAMPLE_F64:
  case RM_SAMPLE_F64 * 8 + RM_SAMPLE_F32: f32_f64(s, src_fmt, d, n); return;
  default: break;
  }
  for (size_t i = 0; i < n; i++)
    rm__sample_store(d, dst_fmt, i, rm__sample_load(s, src_fmt, i));
}

/* Integer samples times factor in double, exactly as rm_audio_set(rm_audio_get(v) * factor):
 * that is round(fl(v / 2^k * factor) * 2^k), and scaling by a power of two commutes with
 * rounding while nothing overflows or goes subnormal (|v / 2^k| >= 2^-31 and factor, 0 or
 * within 2^-60..2^60, as rm__audio_gain checks), so it is round(fl(v * factor)): one
 * multiplication instead of three. */
static void gain_int(const uint8_t *restrict s, uint8_t *restrict d, size_t n, int fmt,
                     double factor) {
  if (fmt == RM_SAMPLE_I16) {
    for (size_t i = 0; i < n; i++) {
      int16_t v;
      memcpy(&v, s + 2 * i, 2);
      double y = (double)v * factor;
      y = y == y ? y : 0.0; /* 0 * inf: unreachable with a finite factor, as the rule says */
      y = y < -32768.0 ? -32768.0 : y;
      y = y > 32767.0 ? 32767.0 : y;
      int16_t o = (int16_t)IRINT(y);
      memcpy(d + 2 * i, &o, 2);
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      int32_t v;
      memcpy(&v, s + 4 * i, 4);
      double y = (double)v * factor;
      y = y == y ? y : 0.0;
      y = y < (double)INT32_MIN ? (double)INT32_MIN : y;
      y = y > (double)INT32_MAX ? (double)INT32_MAX : y;
      int32_t o = IRINT(y);
      memcpy(d + 4 * i, &o, 4);
    }
  }
}

void rm__audio_gain(const void *src, void *dst, rm_sample_format_t fmt, size_t n, double factor) {
  const uint8_t *s = src;
  uint8_t *d = dst;
  if (fmt == RM_SAMPLE_F32) {
    const float f = (float)factor;
    for (size_t i = 0; i < n; i++) {
      float v;
      memcpy(&v, s + 4 * i, 4);
      v *= f;
      memcpy(d + 4 * i, &v, 4);
    }
  } else if (fmt == RM_SAMPLE_F64) {
    for (size_t i = 0; i < n; i++) {
      double v;
      memcpy(&v, s + 8 * i, 8);
      v *= factor;
      memcpy(d + 8 * i, &v, 8);
    }
  } else if (factor == 0 || (fabs(factor) >= 0x1p-60 && fabs(factor) <= 0x1p60)) {
    gain_int(s, d, n, fmt, factor);
  } else { /* the definition itself, outside the range where gain_int equals it */
    for (size_t i = 0; i < n; i++)
      rm__sample_store(d, fmt, i, rm__sample_load(s, fmt, i) * factor);
  }
}

void rm__audio_mix_mono(const void *src, void *dst, rm_sample_format_t fmt, size_t frames,
                        uint32_t channels) {
  const uint8_t *restrict s = src;
  uint8_t *restrict d = dst;
  if (channels == 2 && fmt == RM_SAMPLE_F32) {
    for (size_t f = 0; f < frames; f++) {
      float l, r;
      memcpy(&l, s + 8 * f, 4);
      memcpy(&r, s + 8 * f + 4, 4);
      float m = (float)((0.0 + (double)l + (double)r) / 2.0); /* 0.0 +: -0 + -0 is +0 */
      memcpy(d + 4 * f, &m, 4);
    }
  } else if (channels == 2 && fmt == RM_SAMPLE_I16) {
    /* (l/32768 + r/32768) / 2 * 32768 = (l + r) / 2 exactly; ties round as nearbyint */
    for (size_t f = 0; f < frames; f++) {
      int16_t l, r;
      memcpy(&l, s + 4 * f, 2);
      memcpy(&r, s + 4 * f + 2, 2);
      float y = (float)((int32_t)l + (int32_t)r) * 0.5f;
      int16_t m = (int16_t)IRINTF(y);
      memcpy(d + 2 * f, &m, 2);
    }
  } else {
    for (size_t f = 0; f < frames; f++) {
      double sum = 0;
      for (uint32_t c = 0; c < channels; c++)
        sum += rm__sample_load(s, fmt, f * channels + c);
      rm__sample_store(d, fmt, f, sum / channels);
    }
  }
}

void rm__audio_mean_f32(const void *src, void *dst, size_t frames, uint32_t channels) {
  const uint8_t *restrict s = src;
  uint8_t *restrict d = dst;
  const float scale = 1.0f / (float)channels;
  if (channels == 2) {
    for (size_t f = 0; f < frames; f++) {
      float l, r;
      memcpy(&l, s + 8 * f, 4);
      memcpy(&r, s + 8 * f + 4, 4);
      float m = (0.0f + l + r) * scale; /* the sum starts from +0, as the general loop's */
      memcpy(d + 4 * f, &m, 4);
    }
    return;
  }
  for (size_t f = 0; f < frames; f++) {
    float sum = 0, v;
    for (uint32_t c = 0; c < channels; c++) {
      memcpy(&v, s + 4 * (f * channels + c), 4);
      sum += v;
    }
    float m = sum * scale;
    memcpy(d + 4 * f, &m, 4);
  }
}

void rm__audio_mix_dup(const void *src, void *dst, rm_sample_format_t fmt, size_t frames) {
  const uint8_t *restrict s = src;
  uint8_t *restrict d = dst;
  /* every format stores its own loaded value back unchanged, so the copy is the value */
  switch (rm_sample_format_size(fmt)) {
  case 2:
    for (size_t f = 0; f < frames; f++) {
      uint16_t v;
      memcpy(&v, s + 2 * f, 2);
      memcpy(d + 4 * f, &v, 2);
      memcpy(d + 4 * f + 2, &v, 2);
    }
    break;
  case 4:
    for (size_t f = 0; f < frames; f++) {
      uint32_t v;
      memcpy(&v, s + 4 * f, 4);
      memcpy(d + 8 * f, &v, 4);
      memcpy(d + 8 * f + 4, &v, 4);
    }
    break;
  case 8:
    for (size_t f = 0; f < frames; f++) {
      uint64_t v;
      memcpy(&v, s + 8 * f, 8);
      memcpy(d + 16 * f, &v, 8);
      memcpy(d + 16 * f + 8, &v, 8);
    }
    break;
  default: break;
  }
}

const float *rm_audio_f32_view(const rm_buffer_t *buf, float **tmp) {
  *tmp = NULL;
  size_t n = rm_audio_samples(buf);
  if (buf->u.audio.format == RM_SAMPLE_F32 && ((uintptr_t)buf->data % _Alignof(float)) == 0)
    return (const float *)(void *)buf->data;
  float *out = rm_malloc(n ? n * sizeof(float) : 1);
  if (!out)
    return NULL;
  rm_audio_convert(buf->data, buf->u.audio.format, out, RM_SAMPLE_F32, n);
  *tmp = out;
  return out;
}
