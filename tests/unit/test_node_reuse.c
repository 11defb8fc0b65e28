/* test_node_reuse.c - a compiled pipeline reused across unrelated runs (the server's cache)
 * gives, byte for byte, what a freshly compiled one gives: for every node type in the
 * registry, after runs on other inputs, other rates and channel counts, an abandoned stream,
 * a refused run, a stopped run and a run that fails half-way. */
#include "test_media_support.h"

#include "rm/manifest.h"

typedef enum { IN_AUDIO, IN_JSON, IN_WAV, IN_OPUS } input_kind_t;

/* Each node type of the registry has at least one case here (test_every_type_covered). */
static const struct {
  const char *type, *params;
  input_kind_t in;
} cases[] = {
    {"PassThrough", "{}", IN_AUDIO},
    {"Gain", "{\"db\":-6}", IN_AUDIO},
    {"AudioFormat", "{\"format\":\"i16\"}", IN_AUDIO},
    {"ChannelMix", "{}", IN_AUDIO},
    {"Chunk", "{\"frames\":1000}", IN_AUDIO},
    {"Chunk", "{\"frames\":700,\"partial\":\"pad\"}", IN_AUDIO},
    {"Calculator", "{}", IN_JSON},
    {"Delay", "{}", IN_AUDIO},
    {"AudioResample", "{\"rate\":16000,\"channels\":1}", IN_AUDIO},
    {"AudioResample", "{\"rate\":24000,\"quality\":\"very-high\"}", IN_AUDIO},
    {"LoudnessMeter", "{}", IN_AUDIO},
    {"LoudnessNormalize", "{\"true_peak_ceiling\":-1}", IN_AUDIO},
    {"AudioDecode", "{}", IN_WAV},
    {"AudioEncode", "{}", IN_AUDIO},
    {"AudioEncode", "{\"container\":\"flac\"}", IN_AUDIO},
    {"OpusEncode", "{}", IN_AUDIO},
    {"OpusDecode", "{}", IN_OPUS},
    {"Spectrogram", "{\"n_fft\":256}", IN_AUDIO},
    {"MelSpectrogram", "{\"n_fft\":512,\"n_mels\":20}", IN_AUDIO},
    {"VAD", "{\"speech_audio\":true,\"min_speech_ms\":0}", IN_AUDIO},
    {"VAD", "{\"mode\":\"stat\"}", IN_AUDIO},
    {"Denoise", "{\"agc\":true}", IN_AUDIO},
    {"Denoise", "{\"mode\":\"lsa\"}", IN_AUDIO},
    {"AutoGain", "{}", IN_AUDIO},
    {"SilenceTrim", "{\"keep_ms\":5}", IN_AUDIO},
    {"Mixer", "{\"gains_db\":[-3]}", IN_AUDIO},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* Silence, then noise over a tone, then silence (VAD and SilenceTrim have work to do). */
static rm_buffer_t *make_signal(uint32_t rate, uint32_t ch, rm_sample_format_t fmt, size_t frames,
                                unsigned long long seed) {
  rm_buffer_t *b = rm_buffer_new_audio(NULL, rate, ch, fmt, frames);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  for (size_t f = 0; f < frames; f++) {
    int loud = f >= frames / 5 && f < frames - frames / 5;
    for (uint32_t c = 0; c < ch; c++) {
      double v = 0;
      if (loud)
        v = 0.4 * sin(2 * M_PI * 440.0 * (double)f / rate + c) + 0.2 * media_noise(&seed);
      rm_audio_set(b, f * ch + c, v);
    }
  }
  return b;
}

/* Runs a one-node pipeline of `type` over in (one-shot) and returns its primary output's
 * only item with a reference. */
static rm_buffer_t *encode_with(const char *type, const char *params, rm_buffer_t *in) {
  rm_pipeline_t *p = media_node(type, params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_EQUAL_FATAL(it.n, 1);
  rm_buffer_t *out = it.items[0];
  rm_pipeline_free(p);
  return out;
}

/* The inputs of a case: 0 is the first request, 1 another of the same format, 2 another
 * rate, channel count and sample format, 3 a short one. */
static rm_buffer_t *case_input(input_kind_t kind, int which) {
  static const char *const json[] = {
      "{\"operation\":\"add\",\"operands\":[1,2,3]}",
      "{\"operation\":\"divide\",\"operands\":[7,2]}",
      "{\"operation\":\"power\",\"operands\":[2,10]}",
      "{\"operation\":\"mean\",\"operands\":[4]}",
  };
  if (kind == IN_JSON)
    return rm_test_json(json[which]);
  rm_buffer_t *a = which == 0   ? make_signal(48000, 2, RM_SAMPLE_F32, 9600, 11)
                   : which == 1 ? make_signal(48000, 2, RM_SAMPLE_F32, 4800, 12)
                   : which == 2 ? make_signal(24000, 1, RM_SAMPLE_I16, 3000, 13)
                                : make_signal(48000, 2, RM_SAMPLE_F32, 900, 14);
  if (kind == IN_AUDIO)
    return a;
  rm_buffer_t *coded =
      kind == IN_WAV ? encode_with("AudioEncode", "{}", a) : encode_with("OpusEncode", "{}", a);
  rm_buffer_unref(a);
  return coded;
}

/* Every output, item by item: kind, metadata and bytes equal. */
static int same_result(const rm_result_t *a, const rm_result_t *b) {
  if (a->n_outputs != b->n_outputs)
    return 0;
  for (size_t i = 0; i < a->n_outputs; i++) {
    const rm_output_t *x = &a->outputs[i], *y = &b->outputs[i];
    if (strcmp(x->key, y->key) || x->n_items != y->n_items)
      return 0;
    for (size_t j = 0; j < x->n_items; j++) {
      const rm_buffer_t *p = x->items[j], *q = y->items[j];
      if (p->kind != q->kind || p->size != q->size ||
          (p->size && memcmp(p->data, q->data, p->size)))
        return 0;
      if (p->kind == RM_KIND_AUDIO && memcmp(&p->u.audio, &q->u.audio, sizeof p->u.audio))
        return 0;
      if (p->kind == RM_KIND_TENSOR &&
          (p->u.tensor.ndim != q->u.tensor.ndim || p->u.tensor.dtype != q->u.tensor.dtype ||
           memcmp(p->u.tensor.shape, q->u.tensor.shape, p->u.tensor.ndim * sizeof(int64_t))))
        return 0;
      if ((p->mime_type == NULL) != (q->mime_type == NULL) ||
          (p->mime_type && strcmp(p->mime_type, q->mime_type)))
        return 0;
    }
  }
  return 1;
}

static rm_pipeline_t *build(const char *json, const rm_limits_t *limits) {
  rm_manifest_t *m = rm_test_manifest(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  int rc = rm_pipeline_new(m, limits, &p, &err);
  rm_manifest_free(m);
  if (rc)
    fprintf(stderr, "\n  %s: %s\n", json, err.message);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  return p;
}

static int run(rm_pipeline_t *p, const char *node, rm_buffer_t *in, const rm_run_opts_t *opts,
               rm_result_t **r) {
  rm_input_t input = {node, in};
  rm_error_t err;
  static const rm_run_opts_t one_shot = {.end_of_stream = 1};
  *r = NULL;
  return rm_pipeline_run(p, &input, 1, opts ? opts : &one_shot, r, &err);
}

/* The cached pipeline's run on in equals a fresh pipeline's (same manifest and limits). */
static void expect_fresh(rm_pipeline_t *cached, const char *json, const rm_limits_t *limits,
                         const char *node, rm_buffer_t *in, const char *what, size_t k) {
  rm_pipeline_t *fresh = build(json, limits);
  rm_result_t *a, *b;
  int rc_a = run(cached, node, in, NULL, &a);
  int rc_b = run(fresh, node, in, NULL, &b);
  CU_ASSERT_EQUAL(rc_a, rc_b);
  int same = a && b && same_result(a, b);
  CU_ASSERT(same);
  if (rc_a != rc_b || !same)
    fprintf(stderr, "\n  %s %s: reused pipeline differs from a fresh one after %s (rc %d/%d)\n",
            cases[k].type, cases[k].params, what, rc_a, rc_b);
  rm_result_free(a);
  rm_result_free(b);
  rm_pipeline_free(fresh);
}

static void one_node_json(char *json, size_t cap, size_t k) {
  snprintf(json, cap,
           "{\"name\":\"t\",\"nodes\":[{\"id\":\"n\",\"node_type\":\"%s\",\"params\":%s}]}",
           cases[k].type, cases[k].params);
}

/* One node: other requests, formats, an abandoned stream, a refused and a stopped run. */
static void reuse_one_node(size_t k) {
  char json[1024];
  one_node_json(json, sizeof json, k);
  rm_buffer_t *in[4];
  for (int i = 0; i < 4; i++)
    in[i] = case_input(cases[k].in, i);
  rm_pipeline_t *p = build(json, NULL);
  rm_result_t *r;
  CU_ASSERT_EQUAL(run(p, "n", in[0], NULL, &r), 0);
  rm_result_free(r);
  expect_fresh(p, json, NULL, "n", in[1], "a first request", k);
  expect_fresh(p, json, NULL, "n", in[2], "another request", k);
  expect_fresh(p, json, NULL, "n", in[0], "another rate and channel count", k);
  /* a stream left open (a client gone mid-stream), then a request refused before any node
   * ran: the pipeline ends the streams it left */
  rm_run_opts_t open_run = {.end_of_stream = 0};
  CU_ASSERT_EQUAL(run(p, "n", in[0], &open_run, &r), 0);
  rm_result_free(r);
  rm_input_t wrong = {"nope", in[1]};
  rm_error_t err;
  static const rm_run_opts_t one_shot = {.end_of_stream = 1};
  CU_ASSERT_EQUAL(rm_pipeline_run(p, &wrong, 1, &one_shot, &r, &err), RM_EINPUT);
  rm_result_free(r);
  expect_fresh(p, json, NULL, "n", in[1], "an open stream and a refused request", k);
  /* an open stream, then a request whose deadline has passed */
  CU_ASSERT_EQUAL(run(p, "n", in[2], &open_run, &r), 0);
  rm_result_free(r);
  rm_run_opts_t late = {.end_of_stream = 1, .deadline_ns = 1};
  CU_ASSERT_EQUAL(run(p, "n", in[0], &late, &r), RM_ETIMEDOUT);
  rm_result_free(r);
  expect_fresh(p, json, NULL, "n", in[0], "an open stream and a missed deadline", k);
  /* an abandoned stream ended by the caller */
  CU_ASSERT_EQUAL(run(p, "n", in[1], &open_run, &r), 0);
  rm_result_free(r);
  rm_pipeline_end_streams(p);
  expect_fresh(p, json, NULL, "n", in[3], "rm_pipeline_end_streams", k);
  rm_pipeline_free(p);
  for (int i = 0; i < 4; i++)
    rm_buffer_unref(in[i]);
}

/* Fails half-way: a Chunk feeds the node several items and the run's item limit stops it
 * after some of its invocations (the node is mid-stream), then a short request that stays
 * within the limit equals a fresh pipeline's. Returns whether the long run failed. */
static int reuse_after_failure(size_t k) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"name\":\"t\",\"nodes\":[{\"id\":\"c\",\"node_type\":\"Chunk\",\"params\":"
           "{\"frames\":1600}},{\"id\":\"n\",\"node_type\":\"%s\",\"params\":%s}],"
           "\"connections\":[{\"from\":\"c\",\"to\":\"n\"}]}",
           cases[k].type, cases[k].params);
  rm_limits_t limits = {.max_items = 9}; /* 6 chunks of the long input, 1 of the short */
  rm_buffer_t *long_in = case_input(IN_AUDIO, 0), *short_in = case_input(IN_AUDIO, 3);
  rm_pipeline_t *p = build(json, &limits);
  rm_result_t *r;
  int rc = run(p, "c", long_in, NULL, &r);
  rm_result_free(r);
  expect_fresh(p, json, &limits, "c", short_in, "a run that failed half-way", k);
  rm_pipeline_free(p);
  rm_buffer_unref(long_in);
  rm_buffer_unref(short_in);
  return rc != 0;
}

static void test_reuse_equals_fresh(void) {
  for (size_t k = 0; k < N_CASES; k++)
    reuse_one_node(k);
}

static void test_reuse_after_failure(void) {
  size_t failed = 0;
  for (size_t k = 0; k < N_CASES; k++)
    if (cases[k].in == IN_AUDIO && strcmp(cases[k].type, "Mixer") != 0)
      failed += (size_t)reuse_after_failure(k);
  /* the stream nodes emit per invocation, so the limit stops them half-way */
  CU_ASSERT(failed >= 10);
}

/* A stream cut inside a packet: the decoder fails half-way, then decodes the next stream as
 * a fresh one would. */
static void test_opus_decode_after_corrupt(void) {
  size_t k = 0;
  while (strcmp(cases[k].type, "OpusDecode") != 0)
    k++;
  char json[1024];
  one_node_json(json, sizeof json, k);
  rm_buffer_t *good = case_input(IN_OPUS, 0), *next = case_input(IN_OPUS, 2);
  rm_buffer_t *cut = rm_buffer_new(RM_KIND_BINARY, good->size - 7, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cut);
  memcpy(cut->data, good->data, cut->size);
  rm_pipeline_t *p = build(json, NULL);
  rm_result_t *r;
  CU_ASSERT_EQUAL(run(p, "n", cut, NULL, &r), RM_EINPUT);
  rm_result_free(r);
  expect_fresh(p, json, NULL, "n", next, "a corrupt stream", k);
  rm_pipeline_free(p);
  rm_buffer_unref(good);
  rm_buffer_unref(next);
  rm_buffer_unref(cut);
}

/* Every registered type is reusable and has a case above, so a new type cannot skip this. */
static void test_every_type_covered(void) {
  for (size_t i = 0; i < rm_registry_count(); i++) {
    const rm_node_type_t *t = rm_registry_at(i);
    size_t k = 0;
    while (k < N_CASES && strcmp(cases[k].type, t->name) != 0)
      k++;
    CU_ASSERT(k < N_CASES);
    CU_ASSERT(t->flags & RM_NODE_REUSABLE);
    if (k == N_CASES || !(t->flags & RM_NODE_REUSABLE))
      fprintf(stderr, "\n  %s: no reuse case or not RM_NODE_REUSABLE\n", t->name);
  }
}

int main(void) {
  static const rm_test_case_t tests[] = {
      {"every_type_covered", test_every_type_covered},
      {"reuse_equals_fresh", test_reuse_equals_fresh},
      {"reuse_after_failure", test_reuse_after_failure},
      {"opus_decode_after_corrupt", test_opus_decode_after_corrupt},
      {NULL, NULL},
  };
  rm_test_suite("node_reuse", tests);
  return rm_test_run();
}
