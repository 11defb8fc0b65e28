/* vad_stat.h - the VAD node's statistical detector (mode "stat"): a likelihood ratio of
 * speech-plus-noise against noise on band energies, 100 Hz - 8 kHz as the rate allows (Sohn's
 * Gaussian model, decision-directed a-priori SNR), against a speech-presence-controlled noise
 * estimate (MCRA) that frames judged speech cannot raise; energy margins that grow with the
 * noise's own spread (babble's, not white noise's); a fricative cue (the energy above 4 kHz
 * over its noise's, for the bands' total that low noise hides); a voicing cue (periodicity
 * above the noise's) that lowers them; where the noise itself fluctuates (babble, pink),
 * energy held above a fraction of them over 100 ms; and ITU-T P.56's activity rule (nothing
 * 15.9 dB below the speech's tracked active level is speech).  Internal to lib/nodes
 * (rm__vad_stat_ prefix). One instance per stream; not thread-safe. */
#ifndef RM_NODES_VAD_STAT_H
#define RM_NODES_VAD_STAT_H

#include <stddef.h>
#include <stdint.h>

typedef struct rm__vad_stat rm__vad_stat_t;

/* A detector for frames of `frame` samples lasting frame_ms at rate Hz; frames whose mean
 * square is below min_level_db (dBFS) are never speech. NULL on OOM. Plans an FFT (takes
 * the FFTW planner lock). */
rm__vad_stat_t *rm__vad_stat_new(uint32_t rate, size_t frame, int frame_ms, double min_level_db);
/* NULL is a no-op. */
void rm__vad_stat_free(rm__vad_stat_t *s);
/* The rate s was made for. */
uint32_t rm__vad_stat_rate(const rm__vad_stat_t *s);

/* The most decisions one call below returns (dec must hold this many). */
size_t rm__vad_stat_max_decisions(const rm__vad_stat_t *s);

/* Feeds the next frame. The first decisions wait until the noise estimate has seen the
 * stream's first 300 ms (or its end): returns how many frames were decided now, in stream
 * order, written to dec (1 = speech). */
size_t rm__vad_stat_push(rm__vad_stat_t *s, const float *frame, uint8_t *dec);
/* At the end of the stream: decides frames still waiting; returns their count. */
size_t rm__vad_stat_finish(rm__vad_stat_t *s, uint8_t *dec);
/* Forgets the stream: the next push starts a new one, decided exactly as by a detector just
 * made with rm__vad_stat_new (its buffers, FFT plans and window tables are kept). */
void rm__vad_stat_reset(rm__vad_stat_t *s);

#endif
