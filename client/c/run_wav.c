/* run_wav.c - remotemedia-run's audio files: libsndfile to engine buffers and back. */
#include "run_wav.h"

#include <math.h>
#include <sndfile.h>
#include <stdio.h>

#include "rm/error.h"

int run_wav_read(const char *path, rm_buffer_t **out, char *msg, size_t cap) {
  SF_INFO info = {0};
  SNDFILE *sf = sf_open(path, SFM_READ, &info);
  if (!sf) {
    snprintf(msg, cap, "%s: %s", path, sf_strerror(NULL));
    return RM_EIO;
  }
  /* Keep integer files integer: a 16-bit WAV read as i16 round-trips bit for bit. */
  rm_sample_format_t fmt;
  switch (info.format & SF_FORMAT_SUBMASK) {
  case SF_FORMAT_PCM_S8:
  case SF_FORMAT_PCM_U8:
  case SF_FORMAT_PCM_16: fmt = RM_SAMPLE_I16; break;
  case SF_FORMAT_PCM_24:
  case SF_FORMAT_PCM_32: fmt = RM_SAMPLE_I32; break;
  case SF_FORMAT_DOUBLE: fmt = RM_SAMPLE_F64; break;
  default: fmt = RM_SAMPLE_F32; break;
  }
  int rc = 0;
  rm_buffer_t *b = NULL;
  if (info.channels < 1 || info.channels > 64 || info.samplerate < 1 || info.samplerate > 768000 ||
      info.frames < 0) {
    snprintf(msg, cap,
             "%s: %d channels at %d Hz is not audio the engine takes (1..64 "
             "channels, 1..768000 Hz)",
             path, info.channels, info.samplerate);
    rc = RM_EINPUT;
  } else if (!(b = rm_buffer_new_audio(NULL, (uint32_t)info.samplerate, (uint32_t)info.channels,
                                       fmt, (size_t)info.frames))) {
    snprintf(msg, cap, "%s: out of memory for %lld frames", path, (long long)info.frames);
    rc = RM_ENOMEM;
  } else {
    sf_count_t want = info.frames, got = 0;
    switch (fmt) {
    case RM_SAMPLE_I16: got = sf_readf_short(sf, (short *)(void *)b->data, want); break;
    case RM_SAMPLE_I32: got = sf_readf_int(sf, (int *)(void *)b->data, want); break;
    case RM_SAMPLE_F64: got = sf_readf_double(sf, (double *)(void *)b->data, want); break;
    default: got = sf_readf_float(sf, (float *)(void *)b->data, want); break;
    }
    if (got != want) {
      snprintf(msg, cap, "%s: read %lld of %lld frames: %s", path, (long long)got, (long long)want,
               sf_strerror(sf));
      rc = RM_EIO;
    }
  }
  sf_close(sf);
  if (rc) {
    rm_buffer_unref(b);
    return rc;
  }
  *out = b;
  return 0;
}

int run_wav_write(const char *path, const rm_buffer_t *buf, char *msg, size_t cap) {
  const rm_audio_info_t *a = &buf->u.audio;
  SF_INFO info = {.samplerate = (int)a->sample_rate, .channels = (int)a->channels};
  switch (a->format) {
  case RM_SAMPLE_I16: info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16; break;
  case RM_SAMPLE_I32: info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_32; break;
  case RM_SAMPLE_F64: info.format = SF_FORMAT_WAV | SF_FORMAT_DOUBLE; break;
  default: info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT; break;
  }
  SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
  if (!sf) {
    snprintf(msg, cap, "%s: %s", path, sf_strerror(NULL));
    return RM_EIO;
  }
  sf_count_t frames = (sf_count_t)rm_audio_frames(buf), put = 0;
  switch (a->format) {
  case RM_SAMPLE_I16:
    put = sf_writef_short(sf, (const short *)(const void *)buf->data, frames);
    break;
  case RM_SAMPLE_I32: put = sf_writef_int(sf, (const int *)(const void *)buf->data, frames); break;
  case RM_SAMPLE_F64:
    put = sf_writef_double(sf, (const double *)(const void *)buf->data, frames);
    break;
  default: put = sf_writef_float(sf, (const float *)(const void *)buf->data, frames); break;
  }
  int rc = 0;
  if (put != frames) {
    snprintf(msg, cap, "%s: wrote %lld of %lld frames: %s", path, (long long)put, (long long)frames,
             sf_strerror(sf));
    rc = RM_EIO;
  }
  if (sf_close(sf) && !rc) {
    snprintf(msg, cap, "%s: could not finish the file", path);
    rc = RM_EIO;
  }
  return rc;
}

double run_audio_peak(const rm_buffer_t *buf) {
  double peak = 0;
  size_t n = rm_audio_samples(buf);
  for (size_t i = 0; i < n; i++) {
    double v = fabs(rm_audio_get(buf, i));
    if (v > peak)
      peak = v;
  }
  return peak;
}
