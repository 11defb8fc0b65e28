/* mixer.c - Mixer: sums several audio inputs (fan-in), each with its own gain. All inputs
 * of one invocation must share sample rate and channel count. */
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

static const char *const lengths[] = {"longest", "shortest", "first", NULL};
static const rm_param_spec_t params[] = {
    {"gains_db", RM_PARAM_NUMBER_ARRAY, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -120, 24, "[]", NULL,
     "gain per input in connection order, dB; [] = 0 dB for all, else one per input"},
    {"length", RM_PARAM_ENUM, 0, 0, 0, "\"longest\"", lengths,
     "output length: the longest input (shorter ones end in silence), the shortest, or the "
     "first input's"},
    {"format", RM_PARAM_ENUM, 0, 0, 0, "\"same\"", rm__media_formats,
     "output sample format; same = the first input's (integer formats clip at full scale)"},
};
static const rm_port_spec_t inputs[] = {
    {"in", RM_KIND_AUDIO, RM_PORT_VARIADIC, "one or more audio inputs, same rate and channels"}};
static const rm_port_spec_t outputs[] = {{"out", RM_KIND_AUDIO, 0, "the mix"}};

#define MAX_GAINS 256

enum { LEN_LONGEST, LEN_SHORTEST, LEN_FIRST };

typedef struct mixer {
  double gains[MAX_GAINS];
  size_t n_gains;
  int length, format;
} mixer_t;

static int create(const json_t *p, void **state, rm_error_t *err) {
  const json_t *g = json_object_get(p, "gains_db");
  if (json_array_size(g) > MAX_GAINS)
    return rm_error_set(err, RM_EPARAM, NULL, "gains_db",
                        "node param 'gains_db': %zu gains, at most %d inputs", json_array_size(g),
                        MAX_GAINS);
  mixer_t *m = rm_calloc(1, sizeof *m);
  if (!m)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  m->n_gains = json_array_size(g);
  for (size_t i = 0; i < m->n_gains; i++)
    m->gains[i] = pow(10, json_number_value(json_array_get(g, i)) / 20);
  const char *len = rm_params_string(p, "length");
  m->length = strcmp(len, "shortest") == 0 ? LEN_SHORTEST
              : strcmp(len, "first") == 0  ? LEN_FIRST
                                           : LEN_LONGEST;
  m->format = rm__media_format(rm_params_string(p, "format"));
  *state = m;
  return 0;
}

static int process(void *state, rm_node_ctx_t *ctx) {
  const mixer_t *m = state;
  size_t n = rm_node_input_count(ctx);
  if (m->n_gains && m->n_gains != n)
    return rm_node_fail(ctx, RM_EPARAM, "gains_db",
                        "gains_db has %zu gains but the node has %zu inputs", m->n_gains, n);
  const rm_buffer_t *first = rm_node_input(ctx, 0);
  const rm_audio_info_t *a0 = &first->u.audio;
  size_t frames = rm_audio_frames(first);
  for (size_t i = 1; i < n; i++) {
    const rm_buffer_t *b = rm_node_input(ctx, i);
    const rm_audio_info_t *a = &b->u.audio;
    if (a->sample_rate != a0->sample_rate || a->channels != a0->channels) {
      const char *s0 = rm_node_input_source(ctx, 0), *si = rm_node_input_source(ctx, i);
      return rm_node_fail(ctx, RM_EINPUT, "in",
                          "input from '%s' (%u Hz %u ch) and input from '%s' (%u Hz %u ch) "
                          "differ; a mix needs one rate and channel count (resample first)",
                          s0 ? s0 : "request", a0->sample_rate, a0->channels, si ? si : "request",
                          a->sample_rate, a->channels);
    }
    size_t f = rm_audio_frames(b);
    if ((m->length == LEN_LONGEST && f > frames) || (m->length == LEN_SHORTEST && f < frames))
      frames = f;
  }
  rm_sample_format_t fmt = m->format ? (rm_sample_format_t)m->format : a0->format;
  rm_buffer_t *out =
      rm_buffer_new_audio(rm_node_account(ctx), a0->sample_rate, a0->channels, fmt, frames);
  double *acc = rm_calloc(frames * a0->channels + 1, sizeof *acc);
  if (!out || !acc) {
    rm_buffer_unref(out);
    rm_free(acc);
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  }
  size_t total = frames * a0->channels;
  /* thousands of connections times millions of samples: the deadline and a cancel are
   * honoured between inputs and between blocks of samples */
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    const rm_buffer_t *b = rm_node_input(ctx, i);
    double g = m->n_gains ? m->gains[i] : 1.0;
    size_t cnt = rm_audio_samples(b) < total ? rm_audio_samples(b) : total;
    for (size_t at = 0; at < cnt && !rc; at += RM_MEDIA_BLOCK) {
      if ((rc = rm_node_check(ctx)))
        break;
      size_t end = cnt - at < RM_MEDIA_BLOCK ? cnt : at + RM_MEDIA_BLOCK;
      for (size_t k = at; k < end; k++)
        acc[k] += g * rm_audio_get(b, k);
    }
  }
  for (size_t at = 0; at < total && !rc; at += RM_MEDIA_BLOCK) {
    size_t end = total - at < RM_MEDIA_BLOCK ? total : at + RM_MEDIA_BLOCK;
    for (size_t k = at; k < end; k++)
      rm_audio_set(out, k, acc[k]);
    if (end < total)
      rc = rm_node_check(ctx);
  }
  rm_free(acc);
  if (rc) {
    rm_buffer_unref(out);
    return rc;
  }
  return rm_node_emit(ctx, 0, out);
}

static void destroy(void *state) { rm_free(state); }

const rm_node_type_t rm__node_type_mixer = {
    .name = "Mixer",
    .description = "Sums its audio inputs (fan-in, connection order) with a gain each; rates "
                   "and channel counts must match.",
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
