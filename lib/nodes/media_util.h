/* media_util.h - helpers shared by the media nodes: output formats, growable byte
 * arrays, mono down-mix, stream-format checks and the FFTW planner lock. Internal to
 * lib/nodes (rm__media_ prefix); every function here follows the OOM policy of alloc.h. */
#ifndef RM_NODES_MEDIA_UTIL_H
#define RM_NODES_MEDIA_UTIL_H

#include <stddef.h>
#include <stdint.h>

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
/* What an instance may keep of its scratch between streams: a cached pipeline stays small. */
#define RM_MEDIA_KEEP_BYTES ((size_t)1 << 20)
/* Empties v for the next stream, keeping its storage up to RM_MEDIA_KEEP_BYTES (end_stream). */
void rm__media_vec_clear(rm__media_vec_t *v);

/* A new audio buffer of `frames` frames in format fmt, converted from interleaved f32
 * samples (project rounding and clipping for integer formats). NULL on OOM. */
rm_buffer_t *rm__media_audio_from_f32(rm_mem_account_t *account, uint32_t rate, uint32_t channels,
                                      rm_sample_format_t fmt, const float *src, size_t frames);

/* The mean of all channels of an audio buffer as a new rm_malloc'd array of
 * rm_audio_frames(buf) floats (at least one element is allocated). NULL on OOM. */
float *rm__media_mono_f32(const rm_buffer_t *buf);

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
