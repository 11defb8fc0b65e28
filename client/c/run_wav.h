/* run_wav.h - remotemedia-run's audio files: sound files to engine buffers and back, with
 * libsndfile. */
#ifndef RM_RUN_WAV_H
#define RM_RUN_WAV_H

#include <stddef.h>

#include "rm/buffer.h"

/* Reads a sound file libsndfile knows (WAV, FLAC, Ogg, ...) into a new audio buffer
 * (account NULL) whose sample format follows the file's: 8/16-bit PCM -> i16, 24/32-bit
 * PCM -> i32, double -> f64, anything else -> f32. Returns 0, or RM_EIO (unreadable, not a
 * sound file) / RM_EINPUT (no frames the engine accepts) / RM_ENOMEM with a sentence in
 * msg. */
int run_wav_read(const char *path, rm_buffer_t **out, char *msg, size_t cap);

/* Writes an audio buffer as a WAV file in its own sample format (i16 -> PCM_16, i32 ->
 * PCM_32, f32 -> FLOAT, f64 -> DOUBLE). 0 or RM_EIO with a sentence in msg. */
int run_wav_write(const char *path, const rm_buffer_t *buf, char *msg, size_t cap);

/* Largest absolute sample in full-scale units (1.0 = 0 dBFS). */
double run_audio_peak(const rm_buffer_t *buf);

#endif
