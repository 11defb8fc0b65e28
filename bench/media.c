/* media.c - benchmark: 10 s of 48 kHz stereo f32 through AudioResample(16 kHz mono, high)
 * -> LoudnessNormalize -> VAD, in-process. Prints the median ms per run over N runs and the
 * multiple of real time. Usage: media [runs] (default 31). */
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

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 31;
  if (runs < 1)
    runs = 1;
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
  free(ms);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
  return 0;
}
