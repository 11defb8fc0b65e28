/* denoise.h - the framing engine behind Denoise and AutoGain (denoise.c): libspeexdsp's
 * preprocessor (suppression and/or AGC) or the lsa suppressor, one state per channel, whole
 * frames across chunks, output time-aligned with the input and exactly as long. Internal to
 * lib/nodes (rm__denoise_ prefix). */
#ifndef RM_NODES_DENOISE_H
#define RM_NODES_DENOISE_H

#include "rm/node.h"

typedef struct rm__denoise_cfg {
  const char *type;      /* the node type named in input errors (static storage) */
  int lsa;               /* 1: the lsa suppressor (no AGC); 0: libspeexdsp's preprocessor */
  int suppress_db;       /* largest noise attenuation, dB; 0 turns speex's suppressor off */
  int agc;               /* speex only: automatic gain control */
  double agc_level_dbfs; /* AGC target (speex's AGC level), dBFS */
  int agc_rms;           /* 1: agc_level_dbfs is the speech's RMS level (calibrated) */
  int agc_max_gain_db;   /* AGC: largest gain, dB */
  int frame_ms;          /* 10 or 20 (validated by the caller) */
  int format;            /* output sample format, 0 = the input's */
} rm__denoise_cfg_t;

/* The node instance for cfg (validated by the caller's create()): 0, or RM_ENOMEM with err
 * set. The other four are the node type's process/flush/end_stream/destroy for it. */
int rm__denoise_new(const rm__denoise_cfg_t *cfg, void **state, rm_error_t *err);
int rm__denoise_process(void *state, rm_node_ctx_t *ctx);
int rm__denoise_flush(void *state, rm_node_ctx_t *ctx);
void rm__denoise_end_stream(void *state);
void rm__denoise_destroy(void *state);

#endif
