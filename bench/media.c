/* media.c - benchmark: 10 s of 48 kHz stereo f32 through AudioResample(16 kHz mono, high)
 * -> LoudnessNormalize -> VAD, in-process. Prints the median ms per run over N runs and the
 * multiple of real time. Then the chain (AudioResample(16 kHz mono) feeding
 * LoudnessMeter and VAD) with one warm pipeline reused for every call and with a pipeline
 * compiled afresh per call, as machine-readable lines for bench/ scripts:
 *   RESULT media_chain_warm_us=<median>
 *   RESULT media_chain_fresh_us=<median>
 * Last the sample-format conversions and the converting utility nodes on 1 M samples, in ns
 * per sample (median of runs):
 *   RESULT conv_<what>_ns=<median>
 * Usage: media [runs] [conv] (default 31 runs; "conv" runs only the conversion lines). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rm/alloc.h"
#include "rm/manifest.h"
#include "rm/metrics.h"
#include "rm/pipeline.h"

static const char manifest[] = "{\"name\":\"bench_media\",\"nodes\":["
                               "{\"id\":\"resample\",\"node_type\":\"AudioResample\","
                               "\"params\":{\"rate\":16000,\"channels\":1,\"quality\":\"high\"}},"
                               "{\"id\":\"loudness\",\"node_type\":\"LoudnessNormalize\"},"
                               "{\"id\":\"vad\",\"node_type\":\"VAD\"}],"
                               "\"connections\":[{\"from\":\"resample\",\"to\":\"loudness\"},"
                               "{\"from\":\"loudness\",\"to\":\"vad\"}]}";

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static const char chain_manifest[] = "{\"name\":\"media_chain\",\"nodes\":["
                                     "{\"id\":\"resample\",\"node_type\":\"AudioResample\","
                                     "\"params\":{\"rate\":16000,\"channels\":1}},"
                                     "{\"id\":\"loudness\",\"node_type\":\"LoudnessMeter\"},"
                                     "{\"id\":\"vad\",\"node_type\":\"VAD\"}],"
                                     "\"connections\":[{\"from\":\"resample\",\"to\":\"loudness\"},"
                                     "{\"from\":\"resample\",\"to\":\"vad\"}]}";

/* One call of the chain on in: on *warm when it is set (compiled once, reused), else on a
 * pipeline compiled for this call from the manifest text (what a server without a cache
 * does). Returns the call's microseconds, or a negative value on failure. */
static double chain_call(rm_pipeline_t *warm, rm_buffer_t *in) {
  rm_error_t err;
  double t0 = now_ms();
  rm_pipeline_t *p = warm;
  if (!p) {
    rm_manifest_t *m = NULL;
    int rc = rm_manifest_from_json_text(chain_manifest, strlen(chain_manifest), &m, &err);
    if (!rc)
      rc = rm_pipeline_new(m, NULL, &p, &err);
    rm_manifest_free(m);
    if (rc) {
      fprintf(stderr, "chain setup failed: %s\n", err.message);
      return -1;
    }
  }
  rm_input_t input = {"resample", in};
  rm_run_opts_t opts = {.end_of_stream = 1};
  rm_result_t *res = NULL;
  int rc = rm_pipeline_run(p, &input, 1, &opts, &res, &err);
  rm_result_free(res);
  if (p != warm)
    rm_pipeline_free(p);
  double t1 = now_ms();
  if (rc) {
    fprintf(stderr, "chain run failed: %s\n", err.message);
    return -1;
  }
  return (t1 - t0) * 1e3;
}

/* The chain, warm and fresh, interleaved so both see the same load. */
static int chain_bench(rm_buffer_t *in, int runs, double *warm_us) {
  double *fresh_us = malloc((size_t)runs * sizeof *fresh_us);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *warm = NULL;
  rm_error_t err;
  if (!fresh_us || rm_manifest_from_json_text(chain_manifest, strlen(chain_manifest), &m, &err) ||
      rm_pipeline_new(m, NULL, &warm, &err)) {
    fprintf(stderr, "chain setup failed\n");
    free(fresh_us);
    rm_manifest_free(m);
    return 1;
  }
  rm_manifest_free(m);
  int rc = chain_call(warm, in) < 0 || chain_call(NULL, in) < 0; /* warm-up */
  for (int r = 0; !rc && r < runs; r++) {
    warm_us[r] = chain_call(warm, in);
    fresh_us[r] = chain_call(NULL, in);
    rc = warm_us[r] < 0 || fresh_us[r] < 0;
  }
  if (!rc) {
    qsort(warm_us, (size_t)runs, sizeof *warm_us, by_value);
    qsort(fresh_us, (size_t)runs, sizeof *fresh_us, by_value);
    printf("media chain: 10 s of 48 kHz stereo f32 -> AudioResample(16 kHz mono) -> "
           "LoudnessMeter + VAD\n");
    printf("  warm pipeline (reused)   median %.0f us\n", warm_us[runs / 2]);
    printf("  fresh pipeline per call  median %.0f us\n", fresh_us[runs / 2]);
    printf("RESULT media_chain_warm_us=%.0f\n", warm_us[runs / 2]);
    printf("RESULT media_chain_fresh_us=%.0f\n", fresh_us[runs / 2]);
  }
  free(fresh_us);
  rm_pipeline_free(warm);
  return rc;
}

/* ns per sample of fn over n samples, median of runs (after one warm-up). */
static double per_sample_ns(void (*fn)(void *), void *arg, size_t n, int runs, double *t) {
  fn(arg);
  for (int r = 0; r < runs; r++) {
    double t0 = now_ms();
    fn(arg);
    t[r] = (now_ms() - t0) * 1e6 / (double)n;
  }
  qsort(t, (size_t)runs, sizeof *t, by_value);
  return t[runs / 2];
}

typedef struct conv_job {
  const void *src;
  rm_sample_format_t sf, df;
  void *dst;
  size_t n;
  rm_pipeline_t *p; /* a one-node pipeline instead, fed in */
  rm_buffer_t *in;
} conv_job_t;

static void conv_run(void *arg) {
  conv_job_t *j = arg;
  if (!j->p) {
    rm_audio_convert(j->src, j->sf, j->dst, j->df, j->n);
    return;
  }
  rm_input_t input = {"n", j->in};
  rm_run_opts_t opts = {.end_of_stream = 1};
  rm_result_t *res = NULL;
  rm_error_t err;
  if (rm_pipeline_run(j->p, &input, 1, &opts, &res, &err))
    fprintf(stderr, "conversion bench run failed: %s\n", err.message);
  rm_result_free(res);
}

static rm_pipeline_t *one_node(const char *type, const char *params) {
  char text[256];
  snprintf(text, sizeof text,
           "{\"name\":\"conv\",\"nodes\":[{\"id\":\"n\",\"node_type\":\"%s\",\"params\":%s}]}",
           type, params);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  if (rm_manifest_from_json_text(text, strlen(text), &m, &err) ||
      rm_pipeline_new(m, NULL, &p, &err))
    fprintf(stderr, "conversion bench: %s: %s\n", type, err.message);
  rm_manifest_free(m);
  return p;
}

/* Conversions and converting nodes on 2^20 samples (noise at about -6 dBFS). */
static int conv_bench(int runs) {
  const size_t n = (size_t)1 << 20;
  double *t = malloc((size_t)runs * sizeof *t);
  float *f32 = malloc(n * sizeof *f32);
  int16_t *i16 = malloc(n * sizeof *i16);
  int32_t *i32 = malloc(n * sizeof *i32);
  rm_buffer_t *b_i16 = rm_buffer_new_audio(NULL, 48000, 2, RM_SAMPLE_I16, n / 2);
  rm_buffer_t *b_f32 = rm_buffer_new_audio(NULL, 48000, 2, RM_SAMPLE_F32, n / 2);
  rm_buffer_t *b_mono = rm_buffer_new_audio(NULL, 48000, 1, RM_SAMPLE_F32, n);
  if (!t || !f32 || !i16 || !i32 || !b_i16 || !b_f32 || !b_mono)
    return 1;
  unsigned long long seed = 88172645463325252ull;
  for (size_t i = 0; i < n; i++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    f32[i] = (float)((double)(seed >> 11) / 9007199254740992.0 - 0.5);
  }
  memcpy(b_f32->data, f32, n * sizeof *f32);
  memcpy(b_mono->data, f32, n * sizeof *f32);
  rm_audio_convert(f32, RM_SAMPLE_F32, i16, RM_SAMPLE_I16, n);
  rm_audio_convert(f32, RM_SAMPLE_F32, i32, RM_SAMPLE_I32, n);
  memcpy(b_i16->data, i16, n * sizeof *i16);
  struct {
    const char *name;
    conv_job_t job;
  } jobs[] = {
      {"i16_to_f32", {i16, RM_SAMPLE_I16, RM_SAMPLE_F32, f32, n, NULL, NULL}},
      {"f32_to_i16", {f32, RM_SAMPLE_F32, RM_SAMPLE_I16, i16, n, NULL, NULL}},
      {"i32_to_f32", {i32, RM_SAMPLE_I32, RM_SAMPLE_F32, f32, n, NULL, NULL}},
      {"f32_to_i32", {f32, RM_SAMPLE_F32, RM_SAMPLE_I32, i32, n, NULL, NULL}},
      {"gain_i16", {.n = n, .p = one_node("Gain", "{\"db\":-3}"), .in = b_i16}},
      {"gain_f32", {.n = n, .p = one_node("Gain", "{\"db\":-3}"), .in = b_f32}},
      {"mix_stereo_to_mono_f32",
       {.n = n, .p = one_node("ChannelMix", "{\"mode\":\"mono\"}"), .in = b_f32}},
      {"mix_stereo_to_mono_i16",
       {.n = n, .p = one_node("ChannelMix", "{\"mode\":\"mono\"}"), .in = b_i16}},
      {"mix_mono_to_stereo_f32",
       {.n = n, .p = one_node("ChannelMix", "{\"mode\":\"stereo\"}"), .in = b_mono}},
      {"format_i16_to_f32",
       {.n = n, .p = one_node("AudioFormat", "{\"format\":\"f32\"}"), .in = b_i16}},
  };
  printf("conversions: %zu samples, median of %d runs, ns per (input) sample\n", n, runs);
  int rc = 0;
  for (size_t k = 0; k < sizeof jobs / sizeof jobs[0]; k++) {
    if (jobs[k].job.in && !jobs[k].job.p) {
      rc = 1;
      continue;
    }
    printf("RESULT conv_%s_ns=%.3f\n", jobs[k].name,
           per_sample_ns(conv_run, &jobs[k].job, n, runs, t));
    rm_pipeline_free(jobs[k].job.p);
  }
  rm_buffer_unref(b_i16);
  rm_buffer_unref(b_f32);
  rm_buffer_unref(b_mono);
  free(t);
  free(f32);
  free(i16);
  free(i32);
  return rc;
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 31;
  if (runs < 1)
    runs = 1;
  if (argc > 2 && strcmp(argv[2], "conv") == 0)
    return conv_bench(runs);
  const double secs = 10.0;
  const size_t frames = (size_t)(secs * 48000);
  rm_buffer_t *in = rm_buffer_new_audio(NULL, 48000, 2, RM_SAMPLE_F32, frames);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  if (!in || rm_manifest_from_json_text(manifest, strlen(manifest), &m, &err) ||
      rm_pipeline_new(m, NULL, &p, &err)) {
    fprintf(stderr, "setup failed: %s\n", err.message);
    return 1;
  }
  rm_manifest_free(m);
  /* speech-like bursts (harmonic 150 Hz series, 4 Hz envelope) every other second over
   * low noise, so every node has real work */
  float *s = (float *)in->data;
  unsigned long long seed = 88172645463325252ull;
  for (size_t i = 0; i < frames; i++) {
    double t = (double)i / 48000, v = 0;
    if ((int)t % 2 == 1)
      for (int k = 1; k * 150 <= 3000; k++)
        v += 0.1 / k * sin(2 * M_PI * 150 * k * t) * (0.6 + 0.4 * sin(2 * M_PI * 4 * t));
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    v += 0.001 * ((double)(seed >> 11) / 4503599627370496.0 - 1.0);
    s[2 * i] = (float)v;
    s[2 * i + 1] = (float)(0.9 * v);
  }
  double *ms = malloc((size_t)runs * sizeof *ms);
  rm_input_t input = {"resample", in};
  rm_run_opts_t opts = {.end_of_stream = 1, .metrics = 1};
  size_t segments = 0;
  for (int r = -1; r < runs; r++) { /* run -1 warms caches and FFTW plans */
    rm_result_t *res = NULL;
    double t0 = now_ms();
    int rc = rm_pipeline_run(p, &input, 1, &opts, &res, &err);
    double t1 = now_ms();
    if (rc) {
      fprintf(stderr, "run failed: %s\n", err.message);
      return 1;
    }
    if (r >= 0)
      ms[r] = t1 - t0;
    for (size_t i = 0; i < res->n_outputs; i++)
      if (strcmp(res->outputs[i].key, "vad") == 0 && res->outputs[i].n_items)
        segments = (size_t)res->outputs[i].items[0]->size;
    rm_result_free(res);
  }
  qsort(ms, (size_t)runs, sizeof *ms, by_value);
  double med = ms[runs / 2];
  printf("bench/media: 10 s of 48 kHz stereo f32 -> AudioResample(16 kHz mono, high) -> "
         "LoudnessNormalize -> VAD\n");
  printf("runs %d  median %.2f ms  min %.2f ms  max %.2f ms  =>  %.0fx real time  "
         "(VAD JSON %zu bytes)\n",
         runs, med, ms[0], ms[runs - 1], secs * 1000 / med, segments);
  /* where the time goes: the engine's own per-node metrics over all runs */
  json_t *mj = rm_metrics_to_json(rm_pipeline_metrics(p));
  json_t *nodes = json_object_get(mj, "node_metrics");
  for (size_t i = 0; i < json_array_size(nodes); i++) {
    json_t *n = json_array_get(nodes, i);
    printf("  %-9s avg %8.1f us per invocation, %lld invocations\n",
           json_string_value(json_object_get(n, "node_id")),
           json_number_value(json_object_get(n, "avg_duration_us")),
           (long long)json_integer_value(json_object_get(n, "execution_count")));
  }
  json_decref(mj);
  rm_pipeline_free(p);
  int rc = chain_bench(in, runs, ms);
  free(ms);
  rm_buffer_unref(in);
  return rc || conv_bench(runs);
}
