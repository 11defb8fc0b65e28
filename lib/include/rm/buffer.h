/* buffer.h - reference-counted, immutable data buffers and the byte accounting behind
 * peak-memory metrics.
 *
 * A buffer is written once by whoever creates it and read-only after it is emitted, so
 * fan-out shares one buffer between consumers (rm_buffer_ref) instead of copying. Payload
 * bytes are either owned (allocated with the buffer) or borrowed (rm_buffer_new_borrowed: the
 * caller keeps them alive until the last reference is gone). Buffers are not thread-safe:
 * one pipeline run uses them on one thread. */
#ifndef RM_BUFFER_H
#define RM_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "rm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Data kinds are bit flags so ports can accept a set of them. */
typedef enum rm_kind {
  RM_KIND_NONE = 0,
  RM_KIND_AUDIO = 1u << 0,
  RM_KIND_TENSOR = 1u << 1,
  RM_KIND_JSON = 1u << 2,
  RM_KIND_TEXT = 1u << 3,
  RM_KIND_BINARY = 1u << 4,
} rm_kind_t;
#define RM_KIND_ANY 0x1fu

/* Values match remotemedia.v1.AudioFormat. */
typedef enum rm_sample_format {
  RM_SAMPLE_F32 = 1,
  RM_SAMPLE_I16 = 2,
  RM_SAMPLE_I32 = 3,
  RM_SAMPLE_F64 = 4,
} rm_sample_format_t;

/* Values match remotemedia.v1.TensorDtype. */
typedef enum rm_dtype {
  RM_DTYPE_F32 = 1,
  RM_DTYPE_F64 = 2,
  RM_DTYPE_I32 = 3,
  RM_DTYPE_I64 = 4,
  RM_DTYPE_U8 = 5,
  RM_DTYPE_I16 = 6,
} rm_dtype_t;

#define RM_TENSOR_MAX_DIMS 8

/* Bytes held by one pipeline's buffers: `current` now, `peak` the most ever at once.
 * Every buffer created with an account adds its payload size while it lives. An account
 * may be a plain variable (zero-initialised) that outlives its buffers, or come from
 * rm_mem_account_new(), whose buffers may outlive the owner's rm_mem_account_free(). */
typedef struct rm_mem_account {
  size_t current;
  size_t peak;
  /* private */
  size_t live;  /* buffers counting here that are still alive */
  int orphaned; /* rm_mem_account_free() ran: the last live buffer frees the account */
} rm_mem_account_t;

typedef struct rm_audio_info {
  uint32_t sample_rate; /* Hz */
  uint32_t channels;
  rm_sample_format_t format;
} rm_audio_info_t;

typedef struct rm_tensor_info {
  rm_dtype_t dtype;
  uint32_t ndim;
  int64_t shape[RM_TENSOR_MAX_DIMS];
} rm_tensor_info_t;

/* Fields are public for reading; only the creator writes them, before emitting. */
typedef struct rm_buffer {
  rm_kind_t kind;
  uint8_t *data; /* payload; for JSON and TEXT a NUL follows data[size] when owned */
  size_t size;   /* payload bytes */
  union {
    rm_audio_info_t audio;
    rm_tensor_info_t tensor;
  } u;
  char *mime_type; /* BINARY only: owned, may be NULL */
  /* private */
  unsigned refs;
  int borrowed;
  rm_mem_account_t *account;
} rm_buffer_t;

/* Bytes per sample of a format, 0 for an invalid one. */
size_t rm_sample_format_size(int format);
/* "f32", "i16", "i32", "f64" or NULL; and back (returns 0 for an unknown name). */
const char *rm_sample_format_name(int format);
int rm_sample_format_from_name(const char *name);
size_t rm_dtype_size(int dtype);
const char *rm_dtype_name(int dtype);
/* "audio", "tensor", "json", "text", "binary" for a single kind, else "none"/"mixed". */
const char *rm_kind_name(unsigned kind);

/* A zeroed account on the heap, NULL on OOM. */
rm_mem_account_t *rm_mem_account_new(void);
/* Gives up the owner's hold on an account from rm_mem_account_new(): it is freed now when
 * no buffer counts in it, else when the last such buffer is released (so results may
 * outlive the pipeline that made them). NULL is a no-op. Same thread as the buffers. */
void rm_mem_account_free(rm_mem_account_t *a);
/* Moves buf's bytes from account `from` to account `to` when buf counts in `from`; a buffer
 * counting anywhere else is left alone. A result that outlives its run on another thread
 * stops touching the producer's account this way. Neither account may be in use by another
 * thread meanwhile; `from` is freed when it was orphaned and this was its last buffer. */
void rm_buffer_move_account(rm_buffer_t *buf, rm_mem_account_t *from, rm_mem_account_t *to);

/* A new owned buffer of `size` uninitialised payload bytes, one reference. The payload
 * is 16-byte aligned. `account` may be NULL. Returns NULL when out of memory. */
rm_buffer_t *rm_buffer_new(rm_kind_t kind, size_t size, rm_mem_account_t *account);

/* Owned audio buffer for `frames` frames; the payload is uninitialised. NULL on OOM or
 * when the size overflows. */
rm_buffer_t *rm_buffer_new_audio(rm_mem_account_t *account, uint32_t sample_rate, uint32_t channels,
                                 rm_sample_format_t format, size_t frames);

/* Owned tensor buffer with the given shape; payload uninitialised. NULL on OOM/overflow
 * or ndim > RM_TENSOR_MAX_DIMS or a negative dimension. */
rm_buffer_t *rm_buffer_new_tensor(rm_mem_account_t *account, rm_dtype_t dtype, const int64_t *shape,
                                  uint32_t ndim);

/* Owned JSON/TEXT buffer holding a copy of text[0..len) plus a terminating NUL. */
rm_buffer_t *rm_buffer_new_text(rm_mem_account_t *account, rm_kind_t kind, const char *text,
                                size_t len);

/* Owned BINARY buffer holding a copy of data; mime_type copied, may be NULL. */
rm_buffer_t *rm_buffer_new_binary(rm_mem_account_t *account, const void *data, size_t len,
                                  const char *mime_type);

/* A buffer borrowing `data` (not copied, not freed): the caller keeps it alive and
 * unchanged until the last reference is released. The bytes count toward `account` all
 * the same: the pipeline holds them. Metadata (u.audio, ...) is for the caller to set.
 * For JSON/TEXT the bytes need not be NUL-terminated. NULL on OOM. */
rm_buffer_t *rm_buffer_new_borrowed(rm_kind_t kind, const void *data, size_t size,
                                    rm_mem_account_t *account);

/* Internal to the engine (rm__): an owned buffer whose payload is `data`, a block from
 * rm_malloc that the buffer takes over (freed with it), so output built in a growable array
 * becomes a buffer without a copy. NULL on OOM (data is then still the caller's). */
rm_buffer_t *rm__buffer_adopt(rm_kind_t kind, void *data, size_t size, rm_mem_account_t *account);
/* Grows an owned, unshared (one reference) buffer's payload to `size` bytes, keeping its
 * bytes (the new ones uninitialised); *buf may move. 0, or RM_ENOMEM (*buf unchanged), or
 * RM_EINTERNAL for a borrowed or shared buffer. */
int rm__buffer_grow(rm_buffer_t **buf, size_t size);

/* Adds a reference and returns buf. */
rm_buffer_t *rm_buffer_ref(rm_buffer_t *buf);
/* Drops a reference; the last one frees the buffer and releases its bytes from its
 * account. NULL is a no-op. */
void rm_buffer_unref(rm_buffer_t *buf);

/* Checks that a buffer's metadata is consistent with its payload (audio: known format,
 * rate in 1..768000, channels in 1..64, size a whole number of frames; tensor: known dtype,
 * size = product(shape) * dtype size). Returns 0 or RM_EINPUT with err->field set. */
int rm_buffer_validate(const rm_buffer_t *buf, rm_error_t *err);

/* Audio helpers. Frames = samples per channel. */
size_t rm_audio_frames(const rm_buffer_t *buf);
size_t rm_audio_samples(const rm_buffer_t *buf); /* frames * channels */

/* Converts n samples between formats with the project's one convention:
 * integer PCM maps to float as x / 2^(bits-1) (so i16 -32768 is -1.0), float maps to
 * integer as round(x * 2^(bits-1)) clipped to the integer range, NaN becomes 0. Float to
 * float is a plain cast (no clipping). src and dst may not overlap unless formats are equal. */
void rm_audio_convert(const void *src, rm_sample_format_t src_fmt, void *dst,
                      rm_sample_format_t dst_fmt, size_t n);

/* Internal to the engine (rm__), vectorised kernels equal bit for bit to their per-sample
 * definitions with rm_audio_get/rm_audio_set; src and dst may not overlap; any thread.
 * rm__audio_gain: n samples of fmt times factor (f32 multiplies by (float)factor, integer
 * formats round and clip as rm_audio_set). rm__audio_mix_mono: frames of `channels`
 * interleaved samples to their mean. rm__audio_mix_dup: mono frames to stereo pairs. */
void rm__audio_gain(const void *src, void *dst, rm_sample_format_t fmt, size_t n, double factor);
void rm__audio_mix_mono(const void *src, void *dst, rm_sample_format_t fmt, size_t frames,
                        uint32_t channels);
void rm__audio_mix_dup(const void *src, void *dst, rm_sample_format_t fmt, size_t frames);
/* Frames of `channels` interleaved f32 samples to sum_in_float * (1.0f / channels) as f32
 * (AudioResample's down-mix; dst may be unaligned too). */
void rm__audio_mean_f32(const void *src, void *dst, size_t frames, uint32_t channels);

/* Sample i of an audio buffer as a double in full-scale units (integer PCM divided by
 * 2^(bits-1)); safe on unaligned payloads. */
static inline double rm_audio_get(const rm_buffer_t *buf, size_t i);
/* Stores x as sample i with the rm_audio_convert rounding and clipping rules. */
static inline void rm_audio_set(rm_buffer_t *buf, size_t i, double x);

/* Interleaved float32 samples of an audio buffer. If the buffer already holds aligned f32
 * the pointer is into it and *tmp is set to NULL; otherwise the samples are converted into
 * a new rm_malloc array stored in *tmp (the caller rm_free()s it). NULL on OOM. */
const float *rm_audio_f32_view(const rm_buffer_t *buf, float **tmp);

/* ---- inline definitions ---- */
#include <math.h>
#include <string.h>

static inline double rm__sample_load(const uint8_t *p, int fmt, size_t i) {
  switch (fmt) {
  case RM_SAMPLE_F32: {
    float v;
    memcpy(&v, p + 4 * i, 4);
    return v;
  }
  case RM_SAMPLE_I16: {
    int16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v / 32768.0;
  }
  case RM_SAMPLE_I32: {
    int32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v / 2147483648.0;
  }
  case RM_SAMPLE_F64: {
    double v;
    memcpy(&v, p + 8 * i, 8);
    return v;
  }
  }
  return 0.0;
}

static inline int64_t rm__quantise(double x, double scale, int64_t lo, int64_t hi) {
  if (isnan(x))
    return 0;
  double y = nearbyint(x * scale);
  if (y < (double)lo)
    return lo;
  if (y > (double)hi)
    return hi;
  return (int64_t)y;
}

static inline void rm__sample_store(uint8_t *p, int fmt, size_t i, double x) {
  switch (fmt) {
  case RM_SAMPLE_F32: {
    float v = (float)x;
    memcpy(p + 4 * i, &v, 4);
    break;
  }
  case RM_SAMPLE_I16: {
    int16_t v = (int16_t)rm__quantise(x, 32768.0, INT16_MIN, INT16_MAX);
    memcpy(p + 2 * i, &v, 2);
    break;
  }
  case RM_SAMPLE_I32: {
    int32_t v = (int32_t)rm__quantise(x, 2147483648.0, INT32_MIN, INT32_MAX);
    memcpy(p + 4 * i, &v, 4);
    break;
  }
  case RM_SAMPLE_F64: memcpy(p + 8 * i, &x, 8); break;
  }
}

static inline double rm_audio_get(const rm_buffer_t *buf, size_t i) {
  return rm__sample_load(buf->data, buf->u.audio.format, i);
}

static inline void rm_audio_set(rm_buffer_t *buf, size_t i, double x) {
  rm__sample_store(buf->data, buf->u.audio.format, i, x);
}

#ifdef __cplusplus
}
#endif
#endif
