/* corpus.h - the speech corpus of the speech-node tests and benchmark: espeak-ng utterances
 * (tests/speech/make_corpus.sh) laid out with known pauses, mixed with white, pink or babble
 * noise at a given SNR from fixed seeds, with per-10-ms ground truth from the clean speech;
 * and the measures (frame accuracy, recall, false alarm, segmental SNR, log-spectral
 * distance). Not thread-safe: one caller at a time. */
#ifndef RM_TEST_SPEECH_CORPUS_H
#define RM_TEST_SPEECH_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#define SP_FRAME_MS 10 /* ground-truth frame */

enum { SP_CLEAN, SP_WHITE, SP_PINK, SP_BABBLE, SP_N_NOISES };

/* One corpus track at one rate. Variant 0 starts with speech at the first sample; variant 1
 * opens with 1 s of noise and has the utterances in reverse order. */
typedef struct sp_track {
  uint32_t rate;
  size_t n;        /* samples (mono) */
  float *clean;    /* the speech alone */
  float *noise;    /* the noise alone, scaled to the SNR (zeros when clean) */
  float *mix;      /* clean + noise: the test input */
  size_t n_frames; /* 10 ms frames */
  uint8_t *truth;  /* per frame: 1 = speech */
  size_t n_utts;   /* utterances in the track */
} sp_track_t;

/* The corpus directory: $RM_SPEECH_CORPUS, else `fallback`. */
const char *sp_corpus_dir(const char *fallback);

/* Builds a track from the corpus in dir. noise is SP_*; snr_db is the active speech level
 * (mean power of the truth's speech frames) over the noise's mean power, ignored for
 * SP_CLEAN. Returns 0, or -1 when a corpus file cannot be read or memory runs out (t is then
 * empty). Free with sp_track_free (a zeroed track is a no-op). */
int sp_track_make(const char *dir, uint32_t rate, int noise, double snr_db, int variant,
                  sp_track_t *t);
void sp_track_free(sp_track_t *t);
const char *sp_noise_name(int noise);

typedef struct sp_score {
  double accuracy, recall, false_alarm; /* fractions of frames */
  size_t fragments;                     /* detected segments */
  double first_ms;                      /* start of the first detected segment, or -1 */
} sp_score_t;

/* Scores detected segments (start_ms, end_ms) against the truth: a frame counts as detected
 * when its centre lies inside a segment. */
void sp_score_segments(const sp_track_t *t, const double (*segs)[2], size_t n, sp_score_t *s);

/* Segmental SNR of y (t->n samples) against the clean speech, dB: the mean over the truth's
 * speech frames of 10 log10(|s|^2 / |s - y|^2), each clamped to [-10, 35] dB. */
double sp_segsnr(const sp_track_t *t, const float *y);

/* Log-spectral distance of y from the clean speech over the truth's speech frames, dB: per
 * frame (Hann-windowed 20 ms around the 10 ms frame), the RMS over bins up to min(8 kHz,
 * Nyquist) of the difference of the two power spectra in dB, each floored 60 dB below the
 * clean frame's strongest bin; averaged over frames. */
double sp_lsd(const sp_track_t *t, const float *y);

/* RMS level of y over the truth's speech frames, dBFS. */
double sp_active_db(const sp_track_t *t, const float *y);

/* Runs a one-node pipeline (node id "n", type, params as JSON object text) over x (t->n
 * mono f32 samples at t->rate) fed in chunks of `chunk` samples (0: one buffer), end of
 * stream with the last. For a VAD, *segs (malloc'd, *n_segs rows) receives the segment
 * list; for an audio node, *y (malloc'd, t->n samples, zero-padded if shorter) receives the
 * primary output. Pass NULL for what is not wanted. Returns 0, or -1 with a message on
 * stderr. */
int sp_run_node(const char *type, const char *params, const sp_track_t *t, const float *x,
                size_t chunk, double (**segs)[2], size_t *n_segs, float **y);

#endif
