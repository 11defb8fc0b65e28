/* test_media_vad.c - VAD on speech-band harmonic bursts separated by low noise: frame
 * accuracy >= 95 % and segment edges within 30 ms; the same signal through libspeexdsp's
 * own VAD, which the node's detector must beat; chunked streams, speech-only audio, errors. */
#include <speex/speex_preprocess.h>

#include "rm/clock.h"
#include "test_media_support.h"

static const double truth[][2] = {{300, 1100}, {1600, 2300}, {2900, 3500}, {4200, 5400}};
#define N_TRUTH (sizeof truth / sizeof truth[0])
#define SIG_MS 6000

/* Bursts of a 150 Hz harmonic series (harmonics up to 3 kHz, 1/k amplitudes, a 4 Hz
 * syllable envelope, 10 ms ramps) over white noise at -55 dBFS RMS, mono f32. */
static rm_buffer_t *speechlike(uint32_t rate) {
  size_t n = (size_t)rate * SIG_MS / 1000;
  rm_buffer_t *b = media_f32(rate, 1, n);
  unsigned long long seed = 77;
  double noise_amp = pow(10, -55.0 / 20) * sqrt(3.0); /* uniform: rms = amp / sqrt(3) */
  for (size_t i = 0; i < n; i++) {
    double t = (double)i / rate, ms = t * 1000, v = noise_amp * media_noise(&seed);
    for (size_t s = 0; s < N_TRUTH; s++) {
      if (ms < truth[s][0] || ms >= truth[s][1])
        continue;
      double ramp = fmin(1, fmin(ms - truth[s][0], truth[s][1] - ms) / 10);
      double env = (0.6 + 0.4 * sin(2 * M_PI * 4 * t)) * ramp;
      double f0 = 150 * (1 + 0.03 * sin(2 * M_PI * 3 * t)),
             phase =
                 2 * M_PI * 150 * t - 0.03 * 150 / 3 * cos(2 * M_PI * 3 * t); /* integral of f0 */
      (void)f0;
      double h = 0;
      for (int k = 1; k * 150 <= 3000; k++)
        h += sin(k * phase) / k;
      v += 0.12 * env * h;
    }
    media_fdata(b)[i] = (float)v;
  }
  return b;
}

typedef struct vad_out {
  double seg[64][2];
  size_t n;
} vad_out_t;

static void parse_segments(const rm_buffer_t *b, vad_out_t *o) {
  CU_ASSERT_EQUAL_FATAL(b->kind, RM_KIND_JSON);
  json_t *j = json_loadb((const char *)b->data, b->size, 0, NULL);
  CU_ASSERT_FATAL(json_is_array(j));
  o->n = 0;
  size_t i;
  json_t *s;
  json_array_foreach(j, i, s) {
    if (o->n < 64) {
      o->seg[o->n][0] = json_number_value(json_object_get(s, "start_ms"));
      o->seg[o->n][1] = json_number_value(json_object_get(s, "end_ms"));
      o->n++;
    }
  }
  json_decref(j);
}

static int in_segs(const double (*segs)[2], size_t n, double ms) {
  for (size_t i = 0; i < n; i++)
    if (ms >= segs[i][0] && ms < segs[i][1])
      return 1;
  return 0;
}

static double check_accuracy(const char *params, uint32_t rate) {
  rm_buffer_t *in = speechlike(rate);
  rm_pipeline_t *p = media_node("VAD", params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_EQUAL_FATAL(it.n, 1);
  vad_out_t o;
  parse_segments(it.items[0], &o);
  size_t right = 0, frames = SIG_MS / 10;
  for (size_t f = 0; f < frames; f++) {
    double centre = f * 10.0 + 5;
    right += in_segs(truth, N_TRUTH, centre) == in_segs((const double(*)[2])o.seg, o.n, centre);
  }
  double acc = 100.0 * (double)right / (double)frames, worst = 0;
  CU_ASSERT_EQUAL(o.n, N_TRUTH);
  for (size_t s = 0; s < o.n && s < N_TRUTH; s++)
    worst = fmax(worst, fmax(fabs(o.seg[s][0] - truth[s][0]), fabs(o.seg[s][1] - truth[s][1])));
  printf("\n    %s %u Hz: %zu segments, frame accuracy %.1f %%, worst edge %.0f ms ", params, rate,
         o.n, acc, worst);
  CU_ASSERT(acc >= 95.0);
  CU_ASSERT(worst <= 30.0);
  media_items_free(&it);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
  return acc;
}

/* libspeexdsp's preprocessor VAD on the same signal, 10 ms frames with the same 200 ms
 * bridging: the frame accuracy it reaches. */
static double speex_accuracy(uint32_t rate) {
  rm_buffer_t *in = speechlike(rate);
  int frame = (int)rate / 100, on = 1;
  SpeexPreprocessState *st = speex_preprocess_state_init(frame, (int)rate);
  speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_VAD, &on);
  int16_t *pcm = malloc((size_t)frame * sizeof *pcm);
  size_t frames = SIG_MS / 10, right = 0;
  int *dec = calloc(frames, sizeof *dec);
  for (size_t f = 0; f < frames; f++) {
    rm_audio_convert(media_fdata(in) + f * (size_t)frame, RM_SAMPLE_F32, pcm, RM_SAMPLE_I16,
                     (size_t)frame);
    dec[f] = speex_preprocess_run(st, pcm) != 0;
  }
  for (size_t f = 0, last = (size_t)-1; f < frames; f++) { /* bridge gaps up to 200 ms */
    if (dec[f]) {
      if (last != (size_t)-1 && f - last <= 20)
        for (size_t g = last + 1; g < f; g++)
          dec[g] = 1;
      last = f;
    }
  }
  for (size_t f = 0; f < frames; f++)
    right += in_segs(truth, N_TRUTH, f * 10.0 + 5) == dec[f];
  free(dec);
  free(pcm);
  speex_preprocess_state_destroy(st);
  rm_buffer_unref(in);
  return 100.0 * (double)right / (double)frames;
}

static void test_accuracy_95pct_edges_30ms(void) {
  double ours = check_accuracy("{}", 16000);
  check_accuracy("{}", 48000);
  check_accuracy("{\"frame_ms\":20}", 8000);
  check_accuracy("{\"frame_ms\":30}", 22050);
  double speex = speex_accuracy(16000);
  printf("\n    libspeexdsp VAD on the same signal: frame accuracy %.1f %% ", speex);
  CU_ASSERT(ours > speex);
}

/* Chunks of 7 ms give the same segments; speech_audio emits each segment's samples. */
static void test_stream_and_speech_audio(void) {
  rm_buffer_t *whole = speechlike(16000);
  size_t n = rm_audio_frames(whole), step = 112, n_chunks = (n + step - 1) / step;
  rm_buffer_t **chunks = malloc(n_chunks * sizeof *chunks);
  for (size_t c = 0; c < n_chunks; c++) {
    size_t len = c + 1 < n_chunks ? step : n - c * step;
    chunks[c] = media_f32(16000, 1, len);
    memcpy(chunks[c]->data, whole->data + c * step * 4, len * 4);
  }
  rm_pipeline_t *p = media_node("VAD", "{\"speech_audio\":true}");
  static const char *const keys[] = {"n", "n.speech"};
  media_items_t its[2] = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_stream(p, chunks, n_chunks, keys, its, 2, &err), 0);
  CU_ASSERT_EQUAL_FATAL(its[0].n, 1);
  vad_out_t o;
  parse_segments(its[0].items[0], &o);
  CU_ASSERT_EQUAL_FATAL(o.n, N_TRUTH);
  CU_ASSERT_EQUAL_FATAL(its[1].n, N_TRUTH);
  for (size_t s = 0; s < N_TRUTH; s++) {
    const rm_buffer_t *a = its[1].items[s];
    size_t start = (size_t)(o.seg[s][0] * 16), len = (size_t)((o.seg[s][1] - o.seg[s][0]) * 16);
    CU_ASSERT_EQUAL(rm_audio_frames(a), len);
    CU_ASSERT(a->size == len * 4 && memcmp(a->data, whole->data + start * 4, a->size) == 0);
  }
  media_items_free(&its[0]);
  media_items_free(&its[1]);
  rm_pipeline_free(p);
  for (size_t c = 0; c < n_chunks; c++)
    rm_buffer_unref(chunks[c]);
  free(chunks);
  rm_buffer_unref(whole);
}

/* Silence gives an empty list; min_speech_ms drops a 30 ms blip. */
static void test_silence_and_blips(void) {
  rm_buffer_t *in = media_f32(16000, 1, 16000);
  memset(in->data, 0, in->size);
  for (size_t i = 8000; i < 8480; i++)
    media_fdata(in)[i] = (float)(0.3 * sin(0.2 * (double)i));
  static const char *const params[] = {"{\"min_speech_ms\":50}", "{\"min_speech_ms\":0}"};
  for (int k = 0; k < 2; k++) {
    rm_pipeline_t *p = media_node("VAD", params[k]);
    media_items_t it = {0};
    rm_error_t err;
    CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
    vad_out_t o;
    parse_segments(it.items[0], &o);
    CU_ASSERT_EQUAL(o.n, (size_t)k);
    if (k && o.n == 1) {
      CU_ASSERT_DOUBLE_EQUAL(o.seg[0][0], 500, 1e-9);
      CU_ASSERT_DOUBLE_EQUAL(o.seg[0][1], 530, 1e-9);
    }
    media_items_free(&it);
    rm_pipeline_free(p);
  }
  rm_buffer_unref(in);
}

/* The segments JSON one run of p gives for in (rm_malloc'd text). */
static char *segments_of(rm_pipeline_t *p, rm_buffer_t *in) {
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_EQUAL_FATAL(it.n, 1);
  char *text = rm_malloc(it.items[0]->size + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  memcpy(text, it.items[0]->data, it.items[0]->size);
  text[it.items[0]->size] = 0;
  media_items_free(&it);
  return text;
}

/* One node, stream after stream (the server's cached pipelines): the detector is kept while
 * the rate stays and rebuilt when it changes, and every stream is decided exactly as by a
 * fresh node, also past the first 300 ms (where the noise tracking starts). */
static void test_streams_after_streams_decide_as_fresh(void) {
  rm_buffer_t *at16 = speechlike(16000), *at48 = speechlike(48000);
  rm_pipeline_t *fresh16 = media_node("VAD", "{}"), *fresh48 = media_node("VAD", "{}");
  rm_pipeline_t *p = media_node("VAD", "{}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char *want16 = segments_of(fresh16, at16), *want48 = segments_of(fresh48, at48);
  CU_ASSERT_EQUAL(want16[0], '[');
  CU_ASSERT(strcmp(want16, "[]") != 0);
  rm_buffer_t *order[] = {at16, at16, at48, at16, at48, at48};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    char *got = segments_of(p, order[i]);
    CU_ASSERT_STRING_EQUAL(got, order[i] == at16 ? want16 : want48);
    rm_free(got);
  }
  rm_free(want16);
  rm_free(want48);
  rm_pipeline_free(p);
  rm_pipeline_free(fresh16);
  rm_pipeline_free(fresh48);
  rm_buffer_unref(at16);
  rm_buffer_unref(at48);
}

static void test_params_inputs_registry(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("VAD"));
  media_expect_create_error("VAD", "{\"frame_ms\":15}", "frame_ms");
  media_expect_param_error("VAD", "{\"frame_ms\":40}", "frame_ms");
  media_expect_param_error("VAD", "{\"method\":\"webrtc\"}", "method");
  media_expect_param_error("VAD", "{\"threshold_db\":0}", "threshold_db");
  media_expect_param_error("VAD", "{\"hangover_ms\":-1}", "hangover_ms");
  media_expect_rate_refused("VAD");
}

/* A long input stops at the deadline inside the node: the VAD never checked it, so a run whose
 * last node was a VAD went minutes past the deadline and succeeded. 20 minutes of 16 kHz audio
 * take the VAD far longer than the 1 ms allowed. */
static void test_long_input_honours_the_deadline(void) {
  rm_pipeline_t *p = media_node("VAD", "{}");
  rm_buffer_t *in = media_f32(16000, 1, (size_t)16000 * 1200);
  unsigned long long seed = 7;
  for (size_t i = 0; i < rm_audio_samples(in); i++)
    media_fdata(in)[i] = (float)(0.1 * media_noise(&seed));
  rm_input_t input = {"n", in};
  rm_run_opts_t opts = {.end_of_stream = 1, .deadline_ns = rm_clock_ns() + 1000000ull};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_run(p, &input, 1, &opts, &r, &err), RM_ETIMEDOUT);
  RM_ASSERT_STR(err.node_id, "n");
  RM_ASSERT_INT(r->nodes[0].state, RM_NODE_FAILED);
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_params_inputs_registry),
                                         RM_TEST(test_accuracy_95pct_edges_30ms),
                                         RM_TEST(test_stream_and_speech_audio),
                                         RM_TEST(test_silence_and_blips),
                                         RM_TEST(test_streams_after_streams_decide_as_fresh),
                                         RM_TEST(test_long_input_honours_the_deadline),
                                         {NULL, NULL}};
  rm_test_suite("media_vad", cases);
  return rm_test_run();
}
