/* test_media_robust.c - every media node against awkward streams: empty chunks, one-frame
 * chunks, NaN and infinities, every sample format; and the OOM policy: each allocation of
 * a build + run failing in turn gives RM_ENOMEM (never a crash or a leak), then a clean run
 * succeeds. */
#include "test_media_support.h"

/* Audio-in node types with params that accept 48 kHz stereo input. */
static const struct {
  const char *type, *params;
} nodes[] = {
    {"AudioResample", "{\"rate\":16000,\"quality\":\"very-high\"}"},
    {"AudioResample", "{\"rate\":44100,\"channels\":1,\"quality\":\"quick\"}"},
    {"AudioEncode", "{}"},
    {"AudioEncode", "{\"container\":\"flac\",\"subtype\":\"pcm24\"}"},
    {"AudioEncode", "{\"container\":\"ogg\"}"},
    {"LoudnessMeter", "{}"},
    {"LoudnessNormalize", "{\"true_peak_ceiling\":-1}"},
    {"VAD", "{\"speech_audio\":true,\"min_speech_ms\":0}"},
    {"Denoise", "{\"agc\":true}"},
    {"AutoGain", "{}"},
    {"OpusEncode", "{}"},
    {"Spectrogram", "{\"n_fft\":256}"},
    {"MelSpectrogram", "{\"n_fft\":256,\"n_mels\":20,\"fmin\":100,\"fmax\":8000}"},
    {"SilenceTrim", "{\"keep_ms\":5}"},
    {"Mixer", "{\"gains_db\":[-3]}"},
};
#define N_NODES (sizeof nodes / sizeof nodes[0])

static rm_buffer_t *noise(rm_sample_format_t fmt, size_t frames, int specials) {
  rm_buffer_t *b = rm_buffer_new_audio(NULL, 48000, 2, fmt, frames);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  unsigned long long seed = 3 + frames;
  for (size_t i = 0; i < 2 * frames; i++)
    rm_audio_set(b, i, 0.3 * media_noise(&seed));
  if (specials && fmt == RM_SAMPLE_F32 && frames > 40) {
    media_fdata(b)[7] = NAN;
    media_fdata(b)[20] = INFINITY;
    media_fdata(b)[33] = -INFINITY;
    media_fdata(b)[40] = 1e30f;
  }
  return b;
}

/* Every emitted buffer is well formed. */
static void check_items(const media_items_t *it) {
  for (size_t i = 0; i < it->n; i++) {
    rm_error_t err;
    CU_ASSERT_EQUAL(rm_buffer_validate(it->items[i], &err), 0);
  }
}

static void test_awkward_streams(void) {
  static const rm_sample_format_t fmts[] = {RM_SAMPLE_F32, RM_SAMPLE_I16, RM_SAMPLE_I32,
                                            RM_SAMPLE_F64};
  for (size_t k = 0; k < N_NODES; k++) {
    rm_pipeline_t *p = media_node(nodes[k].type, nodes[k].params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    static const char *const keys[] = {"n"};
    rm_error_t err;
    for (size_t f = 0; f < 4; f++) {
      rm_buffer_t *chunks[] = {noise(fmts[f], 0, 0), noise(fmts[f], 4801, 1), noise(fmts[f], 0, 0),
                               noise(fmts[f], 1, 0), noise(fmts[f], 20000, 1)};
      media_items_t it = {0};
      int rc = media_stream(p, chunks, 5, keys, &it, 1, &err);
      if (rc)
        fprintf(stderr, "\n  %s %s: %s\n", nodes[k].type, rm_sample_format_name(fmts[f]),
                err.message);
      CU_ASSERT_EQUAL(rc, 0);
      check_items(&it);
      media_items_free(&it);
      /* a stream of one empty chunk */
      rc = media_run1(p, chunks[0], &it, &err);
      if (rc)
        fprintf(stderr, "\n  %s empty: %s\n", nodes[k].type, err.message);
      CU_ASSERT_EQUAL(rc, 0);
      check_items(&it);
      media_items_free(&it);
      for (size_t c = 0; c < 5; c++)
        rm_buffer_unref(chunks[c]);
    }
    rm_pipeline_free(p);
  }
}

/* Regression: an empty mono f32 buffer has no data pointer, and the mono mix-down copied
 * from it (memcpy from NULL, which UBSan aborts on) in Spectrogram, MelSpectrogram and VAD. */
static void test_empty_mono_f32_has_no_data(void) {
  static const struct {
    const char *type, *params;
  } mono[] = {
      {"Spectrogram", "{\"n_fft\":256}"},
      {"MelSpectrogram", "{\"n_fft\":256,\"n_mels\":20,\"fmin\":100,\"fmax\":8000}"},
      {"VAD", "{}"},
  };
  for (size_t k = 0; k < sizeof mono / sizeof mono[0]; k++) {
    rm_pipeline_t *p = media_node(mono[k].type, mono[k].params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* as the wire layer borrows an empty payload: no bytes, no pointer */
    rm_buffer_t *in = rm_buffer_new_borrowed(RM_KIND_AUDIO, NULL, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    in->u.audio = (rm_audio_info_t){.sample_rate = 16000, .channels = 1, .format = RM_SAMPLE_F32};
    media_items_t it = {0};
    rm_error_t err;
    CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), 0);
    check_items(&it);
    media_items_free(&it);
    rm_buffer_unref(in);
    rm_pipeline_free(p);
  }
}

/* Builds node `k` and runs two chunks through it with allocation number `fail_at` failing. */
static int run_with_failure(size_t k, long fail_at, rm_buffer_t **chunks) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"name\":\"t\",\"nodes\":[{\"id\":\"n\",\"node_type\":\"%s\",\"params\":%s}]}",
           nodes[k].type, nodes[k].params);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  rm_alloc_fail_after(fail_at);
  int rc = rm_manifest_from_json_text(json, strlen(json), &m, &err);
  if (!rc)
    rc = rm_pipeline_new(m, NULL, &p, &err);
  for (size_t c = 0; !rc && c < 2; c++) {
    rm_input_t in = {"n", chunks[c]};
    rm_run_opts_t opts = {.end_of_stream = c == 1};
    rm_result_t *r = NULL;
    rc = rm_pipeline_run(p, &in, 1, &opts, &r, &err);
    rm_result_free(r);
  }
  rm_alloc_fail_never();
  rm_pipeline_free(p);
  rm_manifest_free(m);
  return rc;
}

static void test_out_of_memory_everywhere(void) {
  rm_alloc_install_jansson();
  rm_buffer_t *chunks[] = {noise(RM_SAMPLE_I16, 3000, 0), noise(RM_SAMPLE_I16, 2000, 0)};
  for (size_t k = 0; k < N_NODES; k++) {
    long n;
    int rc = RM_ENOMEM;
    for (n = 0; n < 2000 && rc == RM_ENOMEM; n++) {
      rc = run_with_failure(k, n, chunks);
      if (rc != 0 && rc != RM_ENOMEM)
        fprintf(stderr, "\n  %s: allocation %ld failing gave %s\n", nodes[k].type, n,
                rm_strerror(rc));
      CU_ASSERT(rc == 0 || rc == RM_ENOMEM);
    }
    CU_ASSERT_EQUAL(rc, 0); /* enough allocations: it succeeds */
  }
  rm_buffer_unref(chunks[0]);
  rm_buffer_unref(chunks[1]);
}

/* Every media node is registered with a schema ListNodeTypes can publish: described
 * params whose defaults validate, described ports, the heavy flag on all but the two
 * linear-time nodes. */
static void test_registry_and_schemas(void) {
  static const char *const names[] = {
      "AudioResample", "AudioDecode",    "AudioEncode", "LoudnessMeter", "LoudnessNormalize",
      "VAD",           "Denoise",        "AutoGain",    "OpusEncode",    "OpusDecode",
      "Spectrogram",   "MelSpectrogram", "SilenceTrim", "Mixer"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const rm_node_type_t *t = rm_registry_find(names[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t->name, names[i]);
    CU_ASSERT(t->description && *t->description);
    int cheap = strcmp(names[i], "SilenceTrim") == 0 || strcmp(names[i], "Mixer") == 0;
    CU_ASSERT_EQUAL((t->flags & RM_NODE_HEAVY) != 0, !cheap);
    CU_ASSERT(t->n_inputs == 1 && t->n_outputs >= 1);
    for (size_t k = 0; k < t->n_outputs; k++)
      CU_ASSERT(t->outputs[k].description && *t->outputs[k].description);
    json_t *params = json_object();
    for (size_t k = 0; k < t->n_params; k++) {
      const rm_param_spec_t *ps = &t->params[k];
      CU_ASSERT(ps->description && *ps->description);
      CU_ASSERT((ps->flags & RM_PARAM_REQUIRED) ? ps->default_json == NULL
                                                : ps->default_json != NULL);
      if (ps->flags & RM_PARAM_REQUIRED) /* the smallest legal value */
        json_object_set_new(params, ps->name, json_integer((json_int_t)ps->min));
    }
    json_t *out = NULL;
    rm_error_t err;
    CU_ASSERT_EQUAL(rm_params_validate(t->params, t->n_params, params, "n", &out, &err), 0);
    CU_ASSERT_EQUAL(json_object_size(out), t->n_params);
    json_decref(out);
    json_decref(params);
  }
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_registry_and_schemas),
                                         RM_TEST(test_awkward_streams),
                                         RM_TEST(test_empty_mono_f32_has_no_data),
                                         RM_TEST(test_out_of_memory_everywhere),
                                         {NULL, NULL}};
  rm_test_suite("media_robust", cases);
  return rm_test_run();
}
