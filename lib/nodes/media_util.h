/* media_util.h - helpers shared by the media nodes: output formats, growable byte
 * arrays, conversions, copies and a mono down-mix that check the deadline as they go,
 * stream-format checks and the FFTW planner lock. Internal to lib/nodes (rm__media_ prefix);
 * every function here follows the OOM policy of alloc.h. */
#ifndef RM_NODES_MEDIA_UTIL_H
#define RM_NODES_MEDIA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rm/budget.h"
#include "rm/buffer.h"
#include "rm/node.h"

/* Values of a node's `format` param: "same" (the input's format) or a sample format.
 * NULL-terminated, for rm_param_spec_t.enum_values. */
extern const char *const rm__media_formats[];
/* Sample formats only (no "same"). */
extern const char *const rm__media_formats_strict[];

/* The sample format a `format` param names, or 0 for "same". */
int rm__media_format(const char *name);

/* A growable array of bytes. Zero-initialise it; rm__media_vec_free releases it. */
typedef struct rm__media_vec {
  uint8_t *data;
  size_t len, cap; /* bytes */
} rm__media_vec_t;

/* Makes room for `extra` more bytes past len. 0 or RM_ENOMEM (vec unchanged). */
int rm__media_vec_reserve(rm__media_vec_t *v, size_t extra);
/* Appends n bytes (src may be NULL to append zeros). 0 or RM_ENOMEM (vec unchanged). */
int rm__media_vec_append(rm__media_vec_t *v, const void *src, size_t n);
/* Drops the first n bytes (n <= len). */
void rm__media_vec_consume(rm__media_vec_t *v, size_t n);
void rm__media_vec_free(rm__media_vec_t *v);
/* v's bytes as an audio buffer of `audio` charged to account, without a copy: v's block,
 * trimmed to its length, becomes the buffer's and v is left empty. NULL when v holds no more
 * than RM_MEDIA_KEEP_BYTES (a small output is better copied into one block with its header)
 * or memory runs out (v unchanged). */
rm_buffer_t *rm__media_vec_adopt(rm__media_vec_t *v, rm_mem_account_t *account,
                                 rm_audio_info_t audio);
/* What an instance may keep of its scratch between streams: a cached pipeline stays small. */
#define RM_MEDIA_KEEP_BYTES ((size_t)1 << 20)
/* Empties v for the next stream, keeping its storage up to RM_MEDIA_KEEP_BYTES (end_stream). */
void rm__media_vec_clear(rm__media_vec_t *v);

/* Deadline and cancel checks in loops over samples. A node reaches rm_node_check() every few
 * ms of work, so a run stops promptly even on a max-size input (max_audio_samples, 32 Mi
 * samples by default): loops over samples run in blocks of RM_MEDIA_BLOCK samples and check
 * between blocks. 64 Ki samples are 20-200 us of conversion (about 2 ms where the first touch
 * of fresh pages is slow) against one clock read for the check. The first block goes unchecked
 * (the pipeline checks before each node), so an input of one block costs no clock read.
 *
 * The helpers below take the node's ctx and return 0, or the check's code (RM_ETIMEDOUT,
 * RM_ECANCELED, recorded on ctx) with the destination partly written. */
#define RM_MEDIA_BLOCK ((size_t)1 << 16)

/* Frames of `channels` samples in one block (at least one). */
static inline size_t rm__media_block_frames(uint32_t channels) {
  return channels && channels < RM_MEDIA_BLOCK ? RM_MEDIA_BLOCK / channels : 1;
}

/* rm_audio_convert of n samples (a copy when the formats are equal). */
int rm__media_convert(rm_node_ctx_t *ctx, const void *src, rm_sample_format_t src_fmt, void *dst,
                      rm_sample_format_t dst_fmt, size_t n);
/* rm__audio_gain of n samples. */
int rm__media_gain(rm_node_ctx_t *ctx, const void *src, void *dst, rm_sample_format_t fmt, size_t n,
                   double factor);
/* memcpy of n bytes, in blocks as long as a block of f32 samples; src NULL writes zeros.
 * Inline: the copies of small items (Chunk's) pay no call for the blocking. */
static inline int rm__media_copy(rm_node_ctx_t *ctx, void *dst, const void *src, size_t n) {
  const size_t block = RM_MEDIA_BLOCK * sizeof(float);
  for (size_t at = 0; at < n; at += block) {
    int rc = at ? rm_node_check(ctx) : 0;
    if (rc)
      return rc;
    size_t k = n - at < block ? n - at : block;
    if (src)
      memcpy((uint8_t *)dst + at, (const uint8_t *)src + at, k);
    else
      memset((uint8_t *)dst + at, 0, k);
  }
  return 0;
}

/* Appends n samples of src (format src_fmt) to v converted to dst_fmt (copied when the formats
 * are equal). 0, RM_ENOMEM recorded on ctx, or the check's code; v's length is unchanged on
 * failure. */
int rm__media_append(rm_node_ctx_t *ctx, rm__media_vec_t *v, const void *src,
                     rm_sample_format_t src_fmt, size_t n, rm_sample_format_t dst_fmt);
/* Appends the mean of all channels of each frame of an audio buffer to v as f32; as
 * rm__media_append. */
int rm__media_append_mono(rm_node_ctx_t *ctx, rm__media_vec_t *v, const rm_buffer_t *buf);

/* Emits on port 0 a new audio buffer of `frames` frames in format fmt, converted from
 * interleaved f32 samples (project rounding and clipping for integer formats). 0, or
 * rm_node_emit's code, or the check's code. */
int rm__media_emit_f32(rm_node_ctx_t *ctx, uint32_t rate, uint32_t channels, rm_sample_format_t fmt,
                       const float *src, size_t frames);

/* A stream's audio format must not change between chunks. The first chunk of a stream
 * (*started == 0) sets *have; later ones must match it. Returns 0 or records RM_ENODE on
 * ctx naming the field "in". */
int rm__media_stream_check(rm_node_ctx_t *ctx, int *started, rm_audio_info_t *have,
                           const rm_audio_info_t *a);

/* Memory a library allocates outside rm_malloc (soxr, fftw, libebur128, libopus, libsndfile),
 * predicted from the parameters before the library is called and charged to the budget
 * current on this thread (the pipeline's, during create() and runs) for as long as the
 * library holds it. Zero-initialise; one charge at a time. */
typedef struct rm__media_charge {
  rm_budget_t *budget;
  size_t bytes;
} rm__media_charge_t;

/* Charges `bytes` (releasing what c held first). 0, or RM_ENOMEM when the budget refuses (the
 * refusal is recorded: the executor answers it as over max_memory_bytes, naming the node). */
int rm__media_charge(rm__media_charge_t *c, size_t bytes);
/* Gives back what c holds; a no-op when it holds nothing. */
void rm__media_release(rm__media_charge_t *c);

/* Upper bounds of what the libraries allocate, measured with mallinfo2 deltas
 * (tests/unit/test_media_predict.c checks them against the libraries on this machine). */
size_t rm__media_soxr_bytes(double in_rate, double out_rate, unsigned channels);
size_t rm__media_fftw_bytes(int n_fft);
size_t rm__media_ebur128_bytes(unsigned channels, unsigned rate);
#define RM_MEDIA_SNDFILE_BYTES ((size_t)4 << 20) /* one open SNDFILE (FLAC, Ogg Vorbis) */
/* soxr_process is fed at most this many input frames per call: its buffers grow with the
 * input given at once (48M output samples at 8 -> 192 kHz took 400 MB), so this bounds them. */
#define RM_MEDIA_SOXR_FEED 4096u

/* FFTW's planner is not thread-safe: hold this lock around every fftwf_plan_* and
 * fftwf_destroy_plan call. Executing a plan needs no lock. */
void rm__media_fft_lock(void);
void rm__media_fft_unlock(void);

/* 10*log10(x) with a floor for x <= 0 (returns -inf-like `floor_db`). */
double rm__media_db10(double x, double floor_db);

#endif
