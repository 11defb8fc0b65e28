/* webrtc_apm.h - a C face on WebRTC's AudioProcessing (Debian's webrtc-audio-processing 0.3)
 * for the speech benchmark: noise suppression, voice detection and gain control on mono
 * float audio in 10 ms frames. Benchmark only; the engine does not link it. */
#ifndef RM_BENCH_WEBRTC_APM_H
#define RM_BENCH_WEBRTC_APM_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_apm bench_apm_t;

/* An APM at rate (8000, 16000, 32000 or 48000) with noise suppression at ns_level (0-3,
 * or -1 for off), voice detection at likelihood vad (0 very low - 3 high, or -1 for off)
 * and adaptive digital AGC when agc is non-zero. NULL on failure. */
bench_apm_t *bench_apm_new(int rate, int ns_level, int vad, int agc);
/* Processes one 10 ms frame (rate/100 samples, [-1, 1]) in place; *voice gets the VAD's
 * decision (0 when detection is off). Returns 0 or -1. */
int bench_apm_process(bench_apm_t *a, float *frame, int *voice);
void bench_apm_free(bench_apm_t *a);

#ifdef __cplusplus
}
#endif

#endif
