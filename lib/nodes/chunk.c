/* chunk.c - Chunk: splits audio into fixed-size frames, carrying the remainder from one
 * invocation to the next so a stream chunks seamlessly. */
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

static const char *const partial_modes[] = {"keep", "pad", "drop", NULL};
static const rm_param_spec_t params[] = {
    {"frames", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 1, 10000000, "1024", NULL,
     "frames (samples per channel) in each chunk"},
    {"partial", RM_PARAM_ENUM, 0, 0, 0, "\"keep\"", partial_modes,
     "the last, shorter chunk at end of stream: keep it short, pad it with silence, or drop it"},
};
static const rm_port_spec_t inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t outputs[] = {{"out", RM_KIND_AUDIO, 0, "one item per chunk"}};

enum { KEEP, PAD, DROP };

/* What emitting one item costs (an allocation, the limits, the output list), in samples
 * copied: tiny chunks are checked against the deadline every 256 items or so. */
#define ITEM_WORK 256

typedef struct chunker {
  size_t frames;
  int partial;
  rm_audio_info_t info; /* of the pending frames */
  uint8_t *pending;     /* < frames frames not yet emitted */
  size_t pending_frames;
} chunker_t;

static int create(const json_t *p, void **state, rm_error_t *err) {
  chunker_t *c = rm_calloc(1, sizeof *c);
  if (!c)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  c->frames = (size_t)rm_params_integer(p, "frames");
  const char *mode = rm_params_string(p, "partial");
  c->partial = strcmp(mode, "pad") == 0 ? PAD : strcmp(mode, "drop") == 0 ? DROP : KEEP;
  *state = c;
  return 0;
}

static size_t frame_bytes(const rm_audio_info_t *a) {
  return rm_sample_format_size(a->format) * a->channels;
}

/* Emits one chunk made of `frames` frames: the pending ones, then src (NULL when the pending
 * frames are all there is, as at flush). */
static int emit_chunk(chunker_t *c, rm_node_ctx_t *ctx, const uint8_t *src, size_t frames,
                      size_t pad_to) {
  size_t fb = frame_bytes(&c->info);
  size_t total = frames > pad_to ? frames : pad_to;
  rm_buffer_t *out = rm_buffer_new_audio(rm_node_account(ctx), c->info.sample_rate,
                                         c->info.channels, c->info.format, total);
  if (!out)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  size_t from_pending = c->pending_frames < frames ? c->pending_frames : frames;
  int rc = 0;
  if (from_pending)
    rc = rm__media_copy(ctx, out->data, c->pending, from_pending * fb);
  if (!rc && src && frames > from_pending)
    rc = rm__media_copy(ctx, out->data + from_pending * fb, src, (frames - from_pending) * fb);
  if (!rc && total > frames) /* zero is silence in all formats */
    rc = rm__media_copy(ctx, out->data + frames * fb, NULL, (total - frames) * fb);
  if (rc) {
    rm_buffer_unref(out);
    return rc;
  }
  c->pending_frames = 0;
  return rm_node_emit(ctx, 0, out);
}

static int process(void *state, rm_node_ctx_t *ctx) {
  chunker_t *c = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  const rm_audio_info_t *a = &in->u.audio;
  if (c->pending_frames && (a->sample_rate != c->info.sample_rate ||
                            a->channels != c->info.channels || a->format != c->info.format))
    return rm_node_fail(
        ctx, RM_ENODE, "in", "audio changed from %u Hz %u ch %s to %u Hz %u ch %s mid-stream",
        c->info.sample_rate, c->info.channels, rm_sample_format_name(c->info.format),
        a->sample_rate, a->channels, rm_sample_format_name(a->format));
  c->info = *a;
  size_t fb = frame_bytes(a);
  size_t avail = rm_audio_frames(in);
  const uint8_t *src = in->data;
  size_t work = 0; /* samples since the last deadline check; an item counts as ITEM_WORK more */
  int rc = 0;
  while (c->pending_frames + avail >= c->frames) {
    size_t take = c->frames - c->pending_frames;
    if ((rc = emit_chunk(c, ctx, src, c->frames, 0)))
      return rc;
    src += take * fb;
    avail -= take;
    if ((work += c->frames * a->channels + ITEM_WORK) >= RM_MEDIA_BLOCK) {
      work = 0;
      if ((rc = rm_node_check(ctx)))
        return rc;
    }
  }
  if (avail) {
    uint8_t *grown = rm_realloc(c->pending, (c->pending_frames + avail) * fb);
    if (!grown)
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    c->pending = grown;
    if ((rc = rm__media_copy(ctx, c->pending + c->pending_frames * fb, src, avail * fb)))
      return rc;
    c->pending_frames += avail;
  }
  return 0;
}

static int flush(void *state, rm_node_ctx_t *ctx) {
  chunker_t *c = state;
  if (!c->pending_frames)
    return 0;
  if (c->partial == DROP) {
    c->pending_frames = 0;
    return 0;
  }
  return emit_chunk(c, ctx, NULL, c->pending_frames, c->partial == PAD ? c->frames : 0);
}

/* A stream that ended early (a failed or stopped run) leaves no frames to the next one. */
static void end_stream(void *state) {
  chunker_t *c = state;
  c->pending_frames = 0;
}

static void destroy(void *state) {
  chunker_t *c = state;
  rm_free(c->pending);
  rm_free(c);
}

const rm_node_type_t rm__node_type_chunk = {
    .name = "Chunk",
    .description = "Splits audio into chunks of a fixed number of frames.",
    .params = params,
    .n_params = 2,
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_REUSABLE,
    .create = create,
    .process = process,
    .flush = flush,
    .end_stream = end_stream,
    .destroy = destroy,
};
