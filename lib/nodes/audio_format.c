/* audio_format.c - AudioFormat: converts audio between f32, i16, i32 and f64. */
#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

static const char *const formats[] = {"f32", "i16", "i32", "f64", NULL};
static const rm_param_spec_t params[] = {
    {"format", RM_PARAM_ENUM, RM_PARAM_REQUIRED, 0, 0, NULL, formats,
     "target sample format; float to integer rounds and clips at full scale"},
};
static const rm_port_spec_t inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t outputs[] = {{"out", RM_KIND_AUDIO, 0, "audio in the target format"}};

static int create(const json_t *p, void **state, rm_error_t *err) {
  int *fmt = rm_malloc(sizeof *fmt);
  if (!fmt)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  *fmt = rm_sample_format_from_name(rm_params_string(p, "format"));
  *state = fmt;
  return 0;
}

static int process(void *state, rm_node_ctx_t *ctx) {
  rm_sample_format_t target = (rm_sample_format_t) * (int *)state;
  rm_buffer_t *in = rm_node_input(ctx, 0);
  const rm_audio_info_t *a = &in->u.audio;
  if (a->format == target) /* nothing to do: share the buffer */
    return rm_node_emit(ctx, 0, rm_buffer_ref(in));
  rm_buffer_t *out = rm_buffer_new_audio(rm_node_account(ctx), a->sample_rate, a->channels, target,
                                         rm_audio_frames(in));
  if (!out)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  int rc = rm__media_convert(ctx, in->data, a->format, out->data, target, rm_audio_samples(in));
  if (rc) {
    rm_buffer_unref(out);
    return rc;
  }
  return rm_node_emit(ctx, 0, out);
}

static void destroy(void *state) { rm_free(state); }

const rm_node_type_t rm__node_type_audio_format = {
    .name = "AudioFormat",
    .description = "Converts the sample format (integer PCM <-> float, with clipping).",
    .params = params,
    .n_params = 1,
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_REUSABLE,
    .create = create,
    .process = process,
    .destroy = destroy,
};
