/* autogain.c - AutoGain: automatic gain control with libspeexdsp's preprocessor AGC (its
 * noise suppressor off), one state per channel, on the Denoise node's framing engine
 * (denoise.h): time-aligned, as long as its input, streams across chunks. */
#include <math.h>

#include "nodes/denoise.h"
#include "nodes/media_util.h"
#include "rm/node.h"

static const rm_param_spec_t params[] = {
    {"target_dbfs", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -50, -22, "-26", NULL,
     "target level of the speech, dBFS: its RMS over speech frames (within 1 dB on the "
     "test corpus); -26 is ITU-T's nominal speech level"},
    {"max_gain_db", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 60, "30", NULL,
     "largest gain applied, dB (the AGC also attenuates loud input)"},
    {"frame_ms", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 10, 20, "20", NULL,
     "processing frame: 10 or 20 ms"},
    {"format", RM_PARAM_ENUM, 0, 0, 0, "\"same\"", rm__media_formats,
     "output sample format; same = the input's. Processing is 16-bit"},
};
static const rm_port_spec_t inputs[] = {
    {"in", RM_KIND_AUDIO, 0,
     "audio, 8-48 kHz, 1-8 channels (each levelled on its own), any format"}};
static const rm_port_spec_t outputs[] = {
    {"out", RM_KIND_AUDIO, 0,
     "the levelled audio, time-aligned with the input: whole frames per chunk, less the first "
     "frame; flush() emits the rest so the stream's output is exactly as long as its input"}};

static int create(const json_t *p, void **state, rm_error_t *err) {
  long long fm = rm_params_integer(p, "frame_ms");
  if (fm != 10 && fm != 20)
    return rm_error_set(err, RM_EPARAM, NULL, "frame_ms",
                        "node param 'frame_ms': %lld is not 10 or 20", fm);
  rm__denoise_cfg_t cfg = {
      .type = "AutoGain",
      .agc = 1,
      .agc_level_dbfs = rm_params_number(p, "target_dbfs"),
      .agc_rms = 1,
      .agc_max_gain_db = (int)lround(rm_params_number(p, "max_gain_db")),
      .frame_ms = (int)fm,
      .format = rm__media_format(rm_params_string(p, "format")),
  };
  return rm__denoise_new(&cfg, state, err);
}

const rm_node_type_t rm__node_type_autogain = {
    .name = "AutoGain",
    .description = "Automatic gain control (libspeexdsp's AGC, no noise suppression): brings "
                   "speech to a target level, per channel, 8-48 kHz; output time-aligned with "
                   "the input; streams across chunks.",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = create,
    .process = rm__denoise_process,
    .flush = rm__denoise_flush,
    .end_stream = rm__denoise_end_stream,
    .destroy = rm__denoise_destroy,
};
