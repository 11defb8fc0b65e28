/* silence_trim.c - SilenceTrim: drops leading and/or trailing silence of a stream, keeping
 * an optional margin. Leading silence is dropped as it arrives; a silent run after sound
 * is held back until more sound comes (it is emitted) or the stream ends (it is dropped). */
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

static const char *const modes[] = {"both", "start", "end", NULL};
static const rm_param_spec_t params[] = {
    {"threshold_db", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -120, 0, "-50", NULL,
     "a frame is sound when some channel's |sample| exceeds this, dBFS"},
    {"mode", RM_PARAM_ENUM, 0, 0, 0, "\"both\"", modes, "which ends of the stream to trim"},
    {"keep_ms", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 10000, "0", NULL,
     "silence kept before the first and after the last sound frame, ms"},
};
static const rm_port_spec_t inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t outputs[] = {
    {"out", RM_KIND_AUDIO, 0, "audio, same format; an all-silent stream gives one empty buffer"}};

typedef struct trim {
  double threshold;
  int trim_start, trim_end;
  double keep_ms;
  /* stream */
  int started, sound, emitted;
  rm_audio_info_t info;
  size_t fb, keep;      /* bytes per frame, frames kept */
  rm__media_vec_t held; /* raw frames: silence before sound (<= keep) or after it */
} trim_t;

static int create(const json_t *p, void **state, rm_error_t *err) {
  trim_t *t = rm_calloc(1, sizeof *t);
  if (!t)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  t->threshold = pow(10, rm_params_number(p, "threshold_db") / 20);
  const char *m = rm_params_string(p, "mode");
  t->trim_start = strcmp(m, "end") != 0;
  t->trim_end = strcmp(m, "start") != 0;
  t->keep_ms = rm_params_number(p, "keep_ms");
  *state = t;
  return 0;
}

static void reset_stream(void *state) {
  trim_t *t = state;
  t->started = t->sound = t->emitted = 0;
  rm__media_vec_clear(&t->held);
}

static int loud(const trim_t *t, const rm_buffer_t *in, size_t frame) {
  uint32_t ch = in->u.audio.channels;
  for (uint32_t c = 0; c < ch; c++)
    if (fabs(rm_audio_get(in, frame * ch + c)) > t->threshold)
      return 1;
  return 0;
}

/* Moves *at over silent frames towards `end`, forward when *at < end, else backward (looking
 * at frame *at - 1), and stops before a loud one. 0, or the deadline check's code. */
static int skip_silence(const trim_t *t, rm_node_ctx_t *ctx, const rm_buffer_t *in, size_t *at,
                        size_t end) {
  size_t i = *at, step = rm__media_block_frames(t->info.channels), left = step;
  int back = i > end, rc = 0;
  while (i != end && !loud(t, in, back ? i - 1 : i)) {
    i = back ? i - 1 : i + 1;
    if (!--left) {
      left = step;
      if ((rc = rm_node_check(ctx)))
        break;
    }
  }
  *at = i;
  return rc;
}

/* Holds n frames from src after what is held. */
static int hold(trim_t *t, rm_node_ctx_t *ctx, const uint8_t *src, size_t n) {
  return rm__media_append(ctx, &t->held, src, t->info.format, n * t->info.channels, t->info.format);
}

static int emit_bytes(trim_t *t, rm_node_ctx_t *ctx, const uint8_t *a, size_t na, const uint8_t *b,
                      size_t nb) {
  size_t frames = (na + nb) / t->fb;
  if (!frames && t->emitted)
    return 0;
  rm_buffer_t *out = rm_buffer_new_audio(rm_node_account(ctx), t->info.sample_rate,
                                         t->info.channels, t->info.format, frames);
  if (!out)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  int rc = na ? rm__media_copy(ctx, out->data, a, na) : 0;
  if (!rc && nb)
    rc = rm__media_copy(ctx, out->data + na, b, nb);
  if (rc) {
    rm_buffer_unref(out);
    return rc;
  }
  t->emitted = 1;
  return rm_node_emit(ctx, 0, out);
}

static int process(void *state, rm_node_ctx_t *ctx) {
  trim_t *t = state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  int first = !t->started;
  int rc = rm__media_stream_check(ctx, &t->started, &t->info, &in->u.audio);
  if (rc)
    return rc;
  if (first) {
    t->fb = rm_sample_format_size(t->info.format) * t->info.channels;
    t->keep = (size_t)llround(t->keep_ms * t->info.sample_rate / 1000);
    t->sound = !t->trim_start;
  }
  size_t frames = rm_audio_frames(in), from = 0;
  if (!t->sound) { /* still in leading silence */
    if ((rc = skip_silence(t, ctx, in, &from, frames)))
      return rc;
    if (from == frames) { /* keep only the last `keep` frames as a margin (copy no more) */
      size_t n = frames < t->keep ? frames : t->keep;
      if (n == t->keep) /* this chunk holds the whole margin */
        t->held.len = 0;
      if ((rc = hold(t, ctx, in->data + (frames - n) * t->fb, n)))
        return rc;
      if (t->held.len > t->keep * t->fb)
        rm__media_vec_consume(&t->held, t->held.len - t->keep * t->fb);
      return 0;
    }
    t->sound = 1;
    size_t margin = from < t->keep ? from : t->keep; /* from this chunk */
    size_t more = t->keep - margin;                  /* from the held frames */
    if (t->held.len > more * t->fb)
      rm__media_vec_consume(&t->held, t->held.len - more * t->fb);
    from -= margin;
  }
  const uint8_t *src = in->data + from * t->fb;
  size_t n = frames - from;
  if (!t->trim_end) {
    rc = emit_bytes(t, ctx, t->held.data, t->held.len, src, n * t->fb);
    t->held.len = 0;
    return rc;
  }
  size_t end = frames; /* one past the last loud frame of this chunk's part */
  if ((rc = skip_silence(t, ctx, in, &end, from)))
    return rc;
  size_t last = end - from;
  if (!last) /* all silent: hold it */
    return hold(t, ctx, src, n);
  rc = emit_bytes(t, ctx, t->held.data, t->held.len, src, last * t->fb);
  t->held.len = 0;
  return rc ? rc : hold(t, ctx, src + last * t->fb, n - last);
}

static int flush(void *state, rm_node_ctx_t *ctx) {
  trim_t *t = state;
  if (!t->started)
    return 0;
  size_t tail = 0;
  if (t->sound) /* trailing silence: keep the margin (all of it if the end is not trimmed) */
    tail = t->trim_end && t->held.len > t->keep * t->fb ? t->keep * t->fb : t->held.len;
  return emit_bytes(t, ctx, t->held.data, tail, NULL, 0);
}

static void destroy(void *state) {
  trim_t *t = state;
  rm__media_vec_free(&t->held);
  rm_free(t);
}

const rm_node_type_t rm__node_type_silence_trim = {
    .name = "SilenceTrim",
    .description = "Drops leading and/or trailing silence (samples below threshold_db) from "
                   "a stream, keeping keep_ms of margin.",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_JOIN_TAIL | RM_NODE_REUSABLE,
    .create = create,
    .process = process,
    .flush = flush,
    .end_stream = reset_stream,
    .destroy = destroy,
};
