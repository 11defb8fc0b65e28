/* gain.c - Gain: scales audio by a gain in decibels, keeping the sample format. */
#include <math.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

static const rm_param_spec_t params[] = {
    {"db", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -120, 60, "0", NULL,
     "gain in dB; +6.0206 doubles the amplitude. Integer formats clip at full scale."},
};
static const rm_port_spec_t inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t outputs[] = {{"out", RM_KIND_AUDIO, 0, "audio, same format"}};

typedef struct gain {
  double factor;
} gain_t;

static int create(const json_t *p, void **state, rm_error_t *err) {
  gain_t *g = rm_malloc(sizeof *g);
  if (!g)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  g->factor = pow(10.0, rm_params_number(p, "db") / 20.0);
  *state = g;
  return 0;
}

static int process(void *state, rm_node_ctx_t *ctx) {
  const gain_t *g = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  const rm_audio_info_t *a = &in->u.audio;
  rm_buffer_t *out = rm_buffer_new_audio(rm_node_account(ctx), a->sample_rate, a->channels,
                                         a->format, rm_audio_frames(in));
  if (!out)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  int rc = rm__media_gain(ctx, in->data, out->data, a->format, rm_audio_samples(in), g->factor);
  if (rc) {
    rm_buffer_unref(out);
    return rc;
  }
  return rm_node_emit(ctx, 0, out);
}

static void destroy(void *state) { rm_free(state); }

const rm_node_type_t rm__node_type_gain = {
    .name = "Gain",
    .description = "Multiplies every sample by 10^(db/20).",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_REUSABLE,
    .create = create,
    .process = process,
    .destroy = destroy,
};
