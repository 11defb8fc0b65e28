/* channel_mix.c - ChannelMix: down-mixes to mono or maps to stereo. */
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

static const char *const modes[] = {"mono", "stereo", NULL};
static const rm_param_spec_t params[] = {
    {"mode", RM_PARAM_ENUM, 0, 0, 0, "\"mono\"", modes,
     "mono: mean of all channels. stereo: mono is duplicated, stereo kept, more channels "
     "become L = mean of even-indexed channels, R = mean of odd-indexed ones"},
};
static const rm_port_spec_t inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t outputs[] = {{"out", RM_KIND_AUDIO, 0, "audio, same format"}};

static int create(const json_t *p, void **state, rm_error_t *err) {
  int *stereo = rm_malloc(sizeof *stereo);
  if (!stereo)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  *stereo = strcmp(rm_params_string(p, "mode"), "stereo") == 0;
  *state = stereo;
  return 0;
}

/* Mixes frames [first, first + n) of in into out. */
static void mix(int stereo, const rm_buffer_t *in, rm_buffer_t *out, size_t first, size_t n) {
  uint32_t ch = in->u.audio.channels;
  size_t ss = rm_sample_format_size(in->u.audio.format);
  const uint8_t *src = in->data + first * ch * ss;
  if (!stereo) {
    rm__audio_mix_mono(src, out->data + first * ss, in->u.audio.format, n, ch);
    return;
  }
  if (ch == 1) {
    rm__audio_mix_dup(src, out->data + first * 2 * ss, in->u.audio.format, n);
    return;
  }
  for (size_t f = first; f < first + n; f++) {
    double l = 0, r = 0;
    for (uint32_t c = 0; c < ch; c++)
      *(c % 2 ? &r : &l) += rm_audio_get(in, f * ch + c);
    rm_audio_set(out, 2 * f, l / ((ch + 1) / 2));
    rm_audio_set(out, 2 * f + 1, r / (ch / 2));
  }
}

static int process(void *state, rm_node_ctx_t *ctx) {
  int stereo = *(int *)state;
  rm_buffer_t *in = rm_node_input(ctx, 0);
  const rm_audio_info_t *a = &in->u.audio;
  uint32_t out_ch = stereo ? 2 : 1;
  if (a->channels == out_ch)
    return rm_node_emit(ctx, 0, rm_buffer_ref(in));
  size_t frames = rm_audio_frames(in);
  rm_buffer_t *out =
      rm_buffer_new_audio(rm_node_account(ctx), a->sample_rate, out_ch, a->format, frames);
  if (!out)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  size_t step = rm__media_block_frames(a->channels);
  for (size_t at = 0; at < frames; at += step) {
    int rc = at ? rm_node_check(ctx) : 0;
    if (rc) {
      rm_buffer_unref(out);
      return rc;
    }
    mix(stereo, in, out, at, frames - at < step ? frames - at : step);
  }
  return rm_node_emit(ctx, 0, out);
}

static void destroy(void *state) { rm_free(state); }

const rm_node_type_t rm__node_type_channel_mix = {
    .name = "ChannelMix",
    .description = "Mixes audio down to mono or maps it to stereo.",
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
