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
 * The chain also runs as a server call gets it (wire_bench's signal, a fresh input buffer per
 * call, node time as the metrics count it): RESULT media_chain_fair_*.
 * Usage: media [runs] [conv|chain] (default 31 runs; "conv" runs only the conversion lines,
 * "chain" only the chain's, "fair" only its fair variant, for a profiler). */
#include <malloc.h>
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

/* Sorts x (n values) and returns its median. */
static double med_of(double *x, int n) {
  qsort(x, (size_t)n, sizeof *x, by_value);
  return x[n / 2];
}

static const char chain_manifest[] = "{\"name\":\"media_chain\",\"nodes\":["
                                     "{\"id\":\"resample\",\"node_type\":\"AudioResample\","
                                     "\"params\":{\"rate\":16000,\"channels\":1}},"
                                     "{\"id\":\"loudness\",\"node_type\":\"LoudnessMeter\"},"
                                     "{\"id\":\"vad\",\"node_type\":\"VAD\"}],"
                                     "\"connections\":[{\"from\":\"resample\",\"to\":\"loudness\"},"
                                     "{\"from\":\"resample\",\"to\":\"vad\"}]}";

/* Per-node nanoseconds of one call (on_node), by the chain's node types. */
typedef struct chain_times {
  uint64_t resample, loudness, vad;
} chain_times_t;

static void on_node(void *arg, const char *type, uint64_t ns, int ok) {
  chain_times_t *t = arg;
  (void)ok;
  if (strcmp(type, "AudioResample") == 0)
    t->resample += ns;
  else if (strcmp(type, "LoudnessMeter") == 0)
    t->loudness += ns;
  else if (strcmp(type, "VAD") == 0)
    t->vad += ns;
}

static double thread_cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* One call of the chain on in: on *warm when it is set (compiled once, reused), else on a
 * pipeline compiled for this call from the manifest text (what a server without a cache
 * does). Returns the call's microseconds, or a negative value on failure; *t (optional)
 * receives the nodes' own times (what the server's metrics report as node time) and *cpu_us
 * (optional) the thread's CPU time of the call (the load on a shared machine does not
 * count). */
static double chain_call(rm_pipeline_t *warm, rm_buffer_t *in, chain_times_t *t, double *cpu_us) {
  rm_error_t err;
  chain_times_t own = {0};
  double c0 = thread_cpu_us();
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
  rm_run_opts_t opts = {.end_of_stream = 1, .on_node = on_node, .on_node_arg = &own};
  rm_result_t *res = NULL;
  int rc = rm_pipeline_run(p, &input, 1, &opts, &res, &err);
  rm_result_free(res);
  if (p != warm)
    rm_pipeline_free(p);
  double t1 = now_ms();
  if (cpu_us)
    *cpu_us = thread_cpu_us() - c0;
  if (rc) {
    fprintf(stderr, "chain run failed: %s\n", err.message);
    return -1;
  }
  if (t)
    *t = own;
  return (t1 - t0) * 1e3;
}

/* The signal bench/wire_bench.py sends: 0.25 * sin(2 pi 440 i / (rate * channels)) over the
 * interleaved sample index i (f32 rounding of the same double expression numpy evaluates). */
static rm_buffer_t *wire_signal(size_t frames) {
  rm_buffer_t *b = rm_buffer_new_audio(NULL, 48000, 2, RM_SAMPLE_F32, frames);
  if (!b)
    return NULL;
  float *s = (float *)b->data;
  for (size_t i = 0; i < 2 * frames; i++)
    s[i] = (float)(0.25 * sin(2 * M_PI * 440 * ((double)i / 96000.0)));
  return b;
}

/* A fresh copy of tmpl in a newly allocated buffer: what the server runs on (each request's
 * samples are views into bytes received and copied for that call). */
static rm_buffer_t *fresh_copy(const rm_buffer_t *tmpl) {
  const rm_audio_info_t *a = &tmpl->u.audio;
  rm_buffer_t *b =
      rm_buffer_new_audio(NULL, a->sample_rate, a->channels, a->format, rm_audio_frames(tmpl));
  if (b)
    memcpy(b->data, tmpl->data, tmpl->size);
  return b;
}

/* Per variant and run: the run's wall time, its nodes' own time, the thread's CPU time, and
 * each node's time (us). */
enum { F_RUN, F_NODES, F_CPU, F_RS, F_LM, F_VAD, F_N };
enum { V_WARM, V_FRESH, V_SIG, V_FAIR, V_N };
static const char *const variant_names[V_N] = {
    "warm pipeline, same input buffer", "fresh pipeline per call, same buffer",
    "warm, wire signal, same buffer", "warm, wire signal, fresh buffer"};

/* One run of variant k, its figures stored in f[field] (each an array of runs) at r. */
static int chain_variant(int k, rm_pipeline_t *warm, rm_buffer_t *in, rm_buffer_t *sig,
                         double *f[F_N], int r) {
  rm_buffer_t *buf = k == V_WARM || k == V_FRESH ? rm_buffer_ref(in)
                     : k == V_SIG                ? rm_buffer_ref(sig)
                                                 : fresh_copy(sig);
  chain_times_t t = {0};
  double cpu = 0;
  double run = buf ? chain_call(k == V_FRESH ? NULL : warm, buf, &t, &cpu) : -1;
  rm_buffer_unref(buf);
  f[F_RUN][r] = run;
  f[F_NODES][r] = (double)(t.resample + t.loudness + t.vad) / 1e3;
  f[F_CPU][r] = cpu;
  f[F_RS][r] = (double)t.resample / 1e3;
  f[F_LM][r] = (double)t.loudness / 1e3;
  f[F_VAD][r] = (double)t.vad / 1e3;
  return run < 0;
}

/* The chain, its variants interleaved so all see the same load:
 *   warm   one warm pipeline on the same input buffer every call (bench's bursts signal): the
 *          figure wire_bench compared with until now, kept (RESULT media_chain_warm_us);
 *   fresh  a pipeline compiled per call (same buffer);
 *   sig    the warm pipeline on wire_bench's own signal, same buffer every call;
 *   fair   the warm pipeline on what a server call gets: wire_bench's signal in a buffer
 *          allocated and filled afresh for each call (the copy is not timed).
 * Each reports the run's wall time, its nodes' own time (what the server's metrics call node
 * time, so node time over the wire compares like with like), the thread's CPU time (which
 * the load on a shared machine does not inflate), and per node. */
static int chain_bench(rm_buffer_t *in, int runs, double *warm_us, int only_fair) {
  double *v = malloc((size_t)runs * V_N * F_N * sizeof *v);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *warm = NULL;
  rm_buffer_t *sig = wire_signal(rm_audio_frames(in));
  rm_error_t err;
  if (!v || !sig || rm_manifest_from_json_text(chain_manifest, strlen(chain_manifest), &m, &err) ||
      rm_pipeline_new(m, NULL, &warm, &err)) {
    fprintf(stderr, "chain setup failed\n");
    free(v);
    rm_buffer_unref(sig);
    rm_manifest_free(m);
    return 1;
  }
  rm_manifest_free(m);
  double *col[V_N][F_N];
  for (int k = 0; k < V_N; k++)
    for (int x = 0; x < F_N; x++)
      col[k][x] = v + ((size_t)k * F_N + x) * runs;
  int rc = 0;
  for (int k = only_fair ? V_FAIR : 0; k < V_N && !rc; k++) /* warm-up */
    rc = chain_variant(k, warm, in, sig, col[k], 0);
  for (int r = 0; !rc && r < runs; r++)
    for (int k = only_fair ? V_FAIR : 0; k < V_N && !rc; k++)
      rc = chain_variant(k, warm, in, sig, col[k], r);
  if (!rc) {
    memcpy(warm_us, col[V_WARM][F_RUN], (size_t)runs * sizeof *warm_us);
    double med[V_N][F_N];
    for (int k = 0; k < V_N; k++)
      for (int x = 0; x < F_N; x++)
        med[k][x] = med_of(col[k][x], runs);
    printf("media chain: 10 s of 48 kHz stereo f32 -> AudioResample(16 kHz mono) -> "
           "LoudnessMeter + VAD, medians of %d interleaved runs, us:\n"
           "  %-38s %7s %7s %7s  %7s %7s %7s\n",
           runs, "variant", "run", "nodes", "CPU", "resamp", "loudn", "VAD");
    for (int k = only_fair ? V_FAIR : 0; k < V_N; k++)
      printf("  %-38s %7.0f %7.0f %7.0f  %7.0f %7.0f %7.0f\n", variant_names[k], med[k][F_RUN],
             med[k][F_NODES], med[k][F_CPU], med[k][F_RS], med[k][F_LM], med[k][F_VAD]);
    if (!only_fair) {
      printf("RESULT media_chain_warm_us=%.0f\n", med[V_WARM][F_RUN]);
      printf("RESULT media_chain_fresh_us=%.0f\n", med[V_FRESH][F_RUN]);
    }
    printf("RESULT media_chain_fair_us=%.0f\n", med[V_FAIR][F_RUN]);
    printf("RESULT media_chain_fair_node_us=%.0f\n", med[V_FAIR][F_NODES]);
    printf("RESULT media_chain_fair_cpu_us=%.0f\n", med[V_FAIR][F_CPU]);
    printf("RESULT media_chain_fair_per_node_us=%.0f,%.0f,%.0f\n", med[V_FAIR][F_RS],
           med[V_FAIR][F_LM], med[V_FAIR][F_VAD]);
  }
  free(v);
  rm_buffer_unref(sig);
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
  return med_of(t, runs);
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
  /* the server's heap settings (server/main.c): blocks under 8 MiB come from a heap that keeps
   * up to 16 MiB free, so a run's megabyte buffers do not fault in afresh every time; without
   * them this process paid page faults the server does not (~1 ms per run on this machine when
   * AudioResample still made a mono copy of the whole input), an unfair baseline */
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
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
  if (argc > 2 && (strcmp(argv[2], "chain") == 0 || strcmp(argv[2], "fair") == 0)) {
    rm_pipeline_free(p);
    int rc = chain_bench(in, runs, ms, strcmp(argv[2], "fair") == 0);
    free(ms);
    rm_buffer_unref(in);
    return rc;
  }
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
  double med = med_of(ms, runs); /* sorted: min and max below are its ends */
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
  int rc = chain_bench(in, runs, ms, 0);
  free(ms);
  rm_buffer_unref(in);
  return rc || conv_bench(runs);
}
