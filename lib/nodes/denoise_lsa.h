/* denoise_lsa.h - the Denoise node's own suppressor (mode "lsa"): short-time spectral
 * MMSE log-spectral-amplitude gains (Ephraim-Malah, decision-directed a-priori SNR) weighted
 * by each bin's speech-presence probability (Cohen's OM-LSA) against a noise estimate averaged
 * over noise-only frames (a frame-energy minimum search decides which),
 * sqrt-Hann windows of two frames at 50 % overlap. It delays its output by exactly one frame.
 * Internal to lib/nodes (rm__denoise_lsa_ prefix); one instance per channel and stream; not
 * thread-safe. */
#ifndef RM_NODES_DENOISE_LSA_H
#define RM_NODES_DENOISE_LSA_H

#include <stddef.h>

typedef struct rm__denoise_lsa rm__denoise_lsa_t;

/* A suppressor for frames (hops) of `frame` samples at rate Hz, gains floored at
 * -floor_db dB. NULL on OOM. Plans FFTs (takes the FFTW planner lock). */
rm__denoise_lsa_t *rm__denoise_lsa_new(unsigned rate, size_t frame, double floor_db);
/* NULL is a no-op. */
void rm__denoise_lsa_free(rm__denoise_lsa_t *d);
/* Takes the next frame of input from x (stride apart, full scale 1.0) and writes the frame
 * of output one frame behind it to y (same stride); x and y may alias. */
void rm__denoise_lsa_run(rm__denoise_lsa_t *d, const float *x, float *y, size_t stride);

#endif
