/* loudness.c - LoudnessMeter and LoudnessNormalize: EBU R 128 / ITU-R BS.1770 loudness
 * with libebur128, measured over a whole stream and reported (or applied) at its end. */
#include <ebur128.h>
#include <math.h>
#include <string.h>

#include "nodes/media_util.h"
#include "rm/alloc.h"
#include "rm/node.h"

/* libebur128 1.2's ebur128_init returns NULL below this rate (and above 2822400 Hz, which
 * rm_buffer_validate's 768 kHz cap already rules out) */
#define EBUR128_MIN_RATE 16u

/* ---------------------------------------------------------------- shared measurement */

/* Samples given to libebur128 per call, with a deadline check between calls: it spends about
 * 110 ns a sample with the true peak on (4x oversampling), so 16 Ki samples are ~2 ms. */
#define METER_SLICE ((size_t)1 << 14)

typedef struct meter {
  int mode;
  int dual_mono;
  int started;
  rm_audio_info_t info;
  ebur128_state *st;
  rm__media_charge_t lib; /* libebur128's memory, predicted */
  uint64_t frames;
} meter_t;

typedef struct measure {
  double integrated;  /* LUFS, -HUGE_VAL when nothing passed the gates */
  double range;       /* LU */
  double true_peak;   /* linear, max over channels */
  double sample_peak; /* linear, max over channels */
} measure_t;

static void meter_reset(meter_t *m) {
  if (m->st)
    ebur128_destroy(&m->st);
  m->st = NULL;
  rm__media_release(&m->lib);
  m->started = 0;
  m->frames = 0;
}

/* Feeds one chunk (any format) to the meter, starting it on the stream's first chunk. */
static int meter_add(meter_t *m, rm_node_ctx_t *ctx, const rm_buffer_t *in) {
  const rm_audio_info_t *a = &in->u.audio;
  int first = !m->started;
  int rc = rm__media_stream_check(ctx, &m->started, &m->info, a);
  if (rc) {
    meter_reset(m);
    return rc;
  }
  if (first) {
    /* libebur128 refuses rates outside its filters' range: that is the input's fault */
    if (a->sample_rate < EBUR128_MIN_RATE) {
      meter_reset(m);
      return rm_node_fail(ctx, RM_EINPUT, "sample_rate",
                          "loudness is measured on audio of %u Hz or more, not %u Hz",
                          EBUR128_MIN_RATE, a->sample_rate);
    }
    if (rm__media_charge(&m->lib, rm__media_ebur128_bytes(a->channels, a->sample_rate))) {
      m->started = 0;
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    }
    m->st = ebur128_init(a->channels, a->sample_rate, m->mode);
    if (!m->st) {
      rm__media_release(&m->lib);
      m->started = 0;
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "libebur128 could not start (out of memory)");
    }
    if (a->channels == 1 && m->dual_mono)
      ebur128_set_channel(m->st, 0, EBUR128_DUAL_MONO);
  }
  size_t frames = rm_audio_frames(in);
  if (!frames)
    return 0;
  /* in slices, converted to f32 a slice at a time unless they are aligned floats already, so
   * a long buffer still notices the deadline */
  size_t step = a->channels < METER_SLICE ? METER_SLICE / a->channels : 1;
  size_t ss = rm_sample_format_size(a->format);
  int direct = a->format == RM_SAMPLE_F32 && (uintptr_t)in->data % _Alignof(float) == 0;
  float *tmp =
      direct ? NULL : rm_malloc((frames < step ? frames : step) * a->channels * sizeof *tmp);
  if (!direct && !tmp)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  for (size_t f = 0; f < frames && !rc; f += step) {
    size_t n = frames - f < step ? frames - f : step;
    const uint8_t *src = in->data + f * a->channels * ss;
    if (!direct)
      rm_audio_convert(src, a->format, tmp, RM_SAMPLE_F32, n * a->channels);
    const float *s = direct ? (const float *)(const void *)src : tmp;
    if (ebur128_add_frames_float(m->st, s, n) != EBUR128_SUCCESS)
      rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "libebur128 failed (out of memory)");
    else
      rc = rm_node_check(ctx);
  }
  rm_free(tmp);
  m->frames += frames;
  return rc;
}

static void meter_result(meter_t *m, measure_t *r) {
  memset(r, 0, sizeof *r);
  r->integrated = -HUGE_VAL;
  if (!m->st)
    return;
  ebur128_loudness_global(m->st, &r->integrated);
  if ((m->mode & EBUR128_MODE_LRA) == EBUR128_MODE_LRA)
    ebur128_loudness_range(m->st, &r->range);
  for (unsigned c = 0; c < m->info.channels; c++) {
    double v = 0;
    if ((m->mode & EBUR128_MODE_TRUE_PEAK) == EBUR128_MODE_TRUE_PEAK &&
        ebur128_true_peak(m->st, c, &v) == EBUR128_SUCCESS && v > r->true_peak)
      r->true_peak = v;
    if (ebur128_sample_peak(m->st, c, &v) == EBUR128_SUCCESS && v > r->sample_peak)
      r->sample_peak = v;
  }
}

/* A number, or null for -inf/NaN (JSON has no infinities). Rounded to 1e-4. */
static json_t *num_or_null(double v) {
  return isfinite(v) ? json_real(round(v * 1e4) / 1e4) : json_null();
}

static double peak_db(double lin) { return lin > 0 ? 20 * log10(lin) : -HUGE_VAL; }

/* Emits a JSON document on `port`, built by the caller (stolen). */
static int emit_json(rm_node_ctx_t *ctx, unsigned port, json_t *doc) {
  char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
  json_decref(doc);
  if (!text)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  rm_buffer_t *b = rm_buffer_new_text(rm_node_account(ctx), RM_KIND_JSON, text, strlen(text));
  json_free_t free_fn;
  json_get_alloc_funcs(NULL, &free_fn);
  free_fn(text);
  return rm_node_emit(ctx, port, b);
}

/* ---------------------------------------------------------------- LoudnessMeter */

static const rm_param_spec_t meter_params[] = {
    {"true_peak", RM_PARAM_BOOLEAN, 0, 0, 0, "true", NULL,
     "measure the true peak (4x oversampled below 96 kHz)"},
    {"loudness_range", RM_PARAM_BOOLEAN, 0, 0, 0, "true", NULL,
     "measure the loudness range (EBU Tech 3342)"},
    {"dual_mono", RM_PARAM_BOOLEAN, 0, 0, 0, "false", NULL,
     "count a mono input twice, as if played on two loudspeakers (+3 LU)"},
};
static const rm_port_spec_t meter_inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t meter_outputs[] = {
    {"out", RM_KIND_JSON, 0,
     "at end of stream: {integrated_lufs, loudness_range_lu, true_peak_dbtp, "
     "sample_peak_dbfs, duration_s, sample_rate, channels}; null where undefined"}};

static int meter_create(const json_t *p, void **state, rm_error_t *err) {
  meter_t *m = rm_calloc(1, sizeof *m);
  if (!m)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  m->mode = EBUR128_MODE_I | EBUR128_MODE_SAMPLE_PEAK;
  if (rm_params_boolean(p, "true_peak"))
    m->mode |= EBUR128_MODE_TRUE_PEAK;
  if (rm_params_boolean(p, "loudness_range"))
    m->mode |= EBUR128_MODE_LRA;
  m->dual_mono = rm_params_boolean(p, "dual_mono");
  *state = m;
  return 0;
}

static int meter_process(void *state, rm_node_ctx_t *ctx) {
  return meter_add(state, ctx, rm_node_input(ctx, 0));
}

static int meter_flush(void *state, rm_node_ctx_t *ctx) {
  meter_t *m = state;
  if (!m->started)
    return 0;
  measure_t r;
  meter_result(m, &r);
  int tp = (m->mode & EBUR128_MODE_TRUE_PEAK) == EBUR128_MODE_TRUE_PEAK;
  int lra = (m->mode & EBUR128_MODE_LRA) == EBUR128_MODE_LRA;
  json_t *doc = json_pack(
      "{s:o, s:o, s:o, s:o, s:f, s:i, s:i}", "integrated_lufs", num_or_null(r.integrated),
      "loudness_range_lu", lra ? num_or_null(r.range) : json_null(), "true_peak_dbtp",
      tp ? num_or_null(peak_db(r.true_peak)) : json_null(), "sample_peak_dbfs",
      num_or_null(peak_db(r.sample_peak)), "duration_s", (double)m->frames / m->info.sample_rate,
      "sample_rate", (json_int_t)m->info.sample_rate, "channels", (json_int_t)m->info.channels);
  meter_reset(m);
  return emit_json(ctx, 0, doc);
}

/* libebur128 1.2 has no reset: a stream's meter is made by ebur128_init when the stream
 * starts (microseconds next to the measurement) and dropped here. */
static void meter_end_stream(void *state) { meter_reset(state); }

static void meter_destroy(void *state) {
  meter_reset(state);
  rm_free(state);
}

const rm_node_type_t rm__node_type_loudness_meter = {
    .name = "LoudnessMeter",
    .description = "Measures integrated loudness (LUFS), loudness range and true peak of a "
                   "stream with libebur128; reports one JSON document at end of stream.",
    .params = meter_params,
    .n_params = sizeof meter_params / sizeof meter_params[0],
    .inputs = meter_inputs,
    .n_inputs = 1,
    .outputs = meter_outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_REUSABLE,
    .create = meter_create,
    .process = meter_process,
    .flush = meter_flush,
    .end_stream = meter_end_stream,
    .destroy = meter_destroy,
};

/* ---------------------------------------------------------------- LoudnessNormalize */

static const rm_param_spec_t norm_params[] = {
    {"target_lufs", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -70, 0, "-23", NULL,
     "integrated loudness to reach, LUFS"},
    {"true_peak_ceiling", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -30, 3, "null",
     NULL, "optional: the gain is lowered so the true peak stays at or below this, dBTP"},
    {"max_gain_db", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 80, "40", NULL,
     "largest boost applied (quiet inputs are not raised further)"},
    {"dual_mono", RM_PARAM_BOOLEAN, 0, 0, 0, "false", NULL,
     "measure a mono input as if played on two loudspeakers (+3 LU)"},
    {"format", RM_PARAM_ENUM, 0, 0, 0, "\"same\"", rm__media_formats,
     "output sample format; same = the input's (integer formats clip at full scale)"},
};
static const rm_port_spec_t norm_inputs[] = {{"in", RM_KIND_AUDIO, 0, "audio, any format"}};
static const rm_port_spec_t norm_outputs[] = {
    {"out", RM_KIND_AUDIO, 0, "at end of stream: the whole stream with the gain applied"},
    {"report", RM_KIND_JSON, 0,
     "at end of stream: {input_lufs, input_true_peak_dbtp, gain_db, output_lufs, "
     "output_true_peak_dbtp, peak_limited}"}};

typedef struct normalizer {
  meter_t m;
  double target, ceiling, max_gain;
  int has_ceiling;
  int format;
  /* The stream's samples as they came (copied: a request's input may borrow memory that
   * is gone after its run, and a stream spans runs). */
  rm__media_vec_t held;
} normalizer_t;

static void norm_release(normalizer_t *n) {
  rm__media_vec_clear(&n->held);
  meter_reset(&n->m);
}

static void norm_end_stream(void *state) { norm_release(state); }

static int norm_create(const json_t *p, void **state, rm_error_t *err) {
  normalizer_t *n = rm_calloc(1, sizeof *n);
  if (!n)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  n->m.mode = EBUR128_MODE_I | EBUR128_MODE_TRUE_PEAK;
  n->m.dual_mono = rm_params_boolean(p, "dual_mono");
  n->target = rm_params_number(p, "target_lufs");
  n->has_ceiling = !rm_params_is_null(p, "true_peak_ceiling");
  n->ceiling = n->has_ceiling ? rm_params_number(p, "true_peak_ceiling") : 0;
  n->max_gain = rm_params_number(p, "max_gain_db");
  n->format = rm__media_format(rm_params_string(p, "format"));
  *state = n;
  return 0;
}

static int norm_process(void *state, rm_node_ctx_t *ctx) {
  normalizer_t *n = state;
  rm_buffer_t *in = rm_node_input(ctx, 0);
  /* the held bytes and the meter's frame count must agree: any failure ends the stream */
  int rc = meter_add(&n->m, ctx, in);
  if (!rc)
    rc = rm__media_append(ctx, &n->held, in->data, in->u.audio.format, rm_audio_samples(in),
                          in->u.audio.format);
  if (rc)
    norm_release(n);
  return rc;
}

/* The whole stream times `factor`, in format fmt, as *out. 0, RM_ENOMEM or the deadline
 * check's code, recorded on ctx. */
static int apply_gain(normalizer_t *n, rm_node_ctx_t *ctx, double factor, rm_sample_format_t fmt,
                      rm_buffer_t **out) {
  const rm_audio_info_t *a = &n->m.info;
  rm_buffer_t *b = rm_buffer_new_audio(rm_node_account(ctx), a->sample_rate, a->channels, fmt,
                                       (size_t)n->m.frames);
  if (!b)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  size_t cnt = (size_t)n->m.frames * a->channels;
  const uint8_t *src = n->held.data;
  int rc = 0;
  if (a->format == fmt) {
    rc = rm__media_gain(ctx, src, b->data, fmt, cnt, factor);
  } else {
    for (size_t at = 0; at < cnt && !rc; at += RM_MEDIA_BLOCK) {
      size_t end = cnt - at < RM_MEDIA_BLOCK ? cnt : at + RM_MEDIA_BLOCK;
      for (size_t k = at; k < end; k++)
        rm_audio_set(b, k, rm__sample_load(src, a->format, k) * factor);
      if (end < cnt)
        rc = rm_node_check(ctx);
    }
  }
  if (rc)
    rm_buffer_unref(b);
  else
    *out = b;
  return rc;
}

static int norm_flush(void *state, rm_node_ctx_t *ctx) {
  normalizer_t *n = state;
  if (!n->m.started)
    return 0;
  measure_t r;
  meter_result(&n->m, &r);
  double gain = 0;
  int limited = 0;
  if (isfinite(r.integrated)) {
    gain = n->target - r.integrated;
    if (gain > n->max_gain)
      gain = n->max_gain;
    double tp_db = peak_db(r.true_peak);
    if (n->has_ceiling && isfinite(tp_db) && tp_db + gain > n->ceiling) {
      gain = n->ceiling - tp_db;
      limited = 1;
    }
  }
  rm_sample_format_t fmt = n->format ? (rm_sample_format_t)n->format : n->m.info.format;
  rm_buffer_t *out = NULL;
  int rc = apply_gain(n, ctx, pow(10, gain / 20), fmt, &out);
  if (rc)
    return rc; /* end_stream() releases the stream */
  json_t *doc = json_pack("{s:o, s:o, s:f, s:o, s:o, s:b}", "input_lufs", num_or_null(r.integrated),
                          "input_true_peak_dbtp", num_or_null(peak_db(r.true_peak)), "gain_db",
                          round(gain * 1e4) / 1e4, "output_lufs", num_or_null(r.integrated + gain),
                          "output_true_peak_dbtp", num_or_null(peak_db(r.true_peak) + gain),
                          "peak_limited", limited);
  norm_release(n);
  rc = rm_node_emit(ctx, 0, out);
  int rc2 = emit_json(ctx, 1, doc);
  return rc ? rc : rc2;
}

static void norm_destroy(void *state) {
  normalizer_t *n = state;
  norm_release(n);
  rm__media_vec_free(&n->held);
  rm_free(n);
}

const rm_node_type_t rm__node_type_loudness_normalize = {
    .name = "LoudnessNormalize",
    .description = "Measures a stream's integrated loudness with libebur128 and applies the "
                   "gain that brings it to `target_lufs`, optionally capped by a true-peak "
                   "ceiling; emits the whole stream at its end.",
    .params = norm_params,
    .n_params = sizeof norm_params / sizeof norm_params[0],
    .inputs = norm_inputs,
    .n_inputs = 1,
    .outputs = norm_outputs,
    .n_outputs = 2,
    .flags = RM_NODE_HEAVY | RM_NODE_REUSABLE,
    .create = norm_create,
    .process = norm_process,
    .flush = norm_flush,
    .end_stream = norm_end_stream,
    .destroy = norm_destroy,
};
