/* metrics_overhead.c - what per-request metrics cost: a 5-node pipeline of trivial nodes run
 * with metrics off and on, interleaved, plus the cost of each export.
 *
 * usage: metrics_overhead [requests] [PassThrough|Gain]   (defaults: 200000 PassThrough)
 *
 * Every sample times a batch of BATCH requests (one clock read pair per batch, so the
 * timer's own cost is spread thin) and divides. Off and on batches alternate, and which of
 * the two goes first alternates too, so frequency changes and cache drift hit both alike;
 * the overhead figures are percentiles of the per-pair differences on - off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/manifest.h"
#include "rm/metrics.h"
#include "rm/pipeline.h"
#include "rm/wire.h"

enum { BATCH = 8, N_NODES = 5, WARMUP = 20000 };

typedef enum mode { OFF, ON, ON_PROTO, N_MODES } bench_mode_t;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Percentile q (0..1) of v[0..n), sorting v. */
static double pct(double *v, size_t n, double q) {
  qsort(v, n, sizeof *v, cmp_double);
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return v[i];
}

static void die(const char *what, const rm_error_t *err) {
  fprintf(stderr, "metrics_overhead: %s: %s\n", what, err ? err->message : "out of memory");
  exit(1);
}

static rm_pipeline_t *build(const char *type) {
  rm_manifest_t *m = rm_manifest_new("bench");
  rm_error_t err;
  char id[8], prev[8] = "";
  json_t *params = strcmp(type, "Gain") == 0 ? json_pack("{s:f}", "db", -1.0) : NULL;
  for (int i = 0; m && i < N_NODES; i++) {
    snprintf(id, sizeof id, "n%d", i);
    if (rm_manifest_add_node(m, id, type, params, &err))
      die("manifest", &err);
    if (i && rm_manifest_add_connection(m, prev, NULL, id, NULL))
      die("manifest", NULL);
    memcpy(prev, id, sizeof id);
  }
  json_decref(params);
  if (!m)
    die("manifest", NULL);
  rm_pipeline_t *p = NULL;
  if (rm_pipeline_new(m, NULL, &p, &err))
    die("pipeline", &err);
  rm_manifest_free(m);
  return p;
}

static void run_once(rm_pipeline_t *p, const rm_input_t *in, const rm_run_opts_t *opts,
                     uint8_t *wire) {
  rm_result_t *r = NULL;
  rm_error_t err;
  if (rm_pipeline_run(p, in, 1, opts, &r, &err))
    die("run", &err);
  rm_result_free(r);
  if (wire) { /* what the server does with the metrics of a request: export, encode */
    Remotemedia__V1__PipelineMetrics msg = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
    if (rm_wire_metrics_to_proto(rm_pipeline_metrics(p), &msg))
      die("proto export", NULL);
    remotemedia__v1__pipeline_metrics__pack(&msg, wire);
    rm_wire_metrics_proto_clear(&msg);
  }
}

/* Seconds per request of one batch in mode `mode`, in microseconds. */
static double batch_us(rm_pipeline_t *p, const rm_input_t *in, bench_mode_t mode, uint8_t *wire) {
  rm_run_opts_t opts = {.metrics = mode != OFF, .end_of_stream = 1};
  uint64_t t0 = rm_clock_ns();
  for (int i = 0; i < BATCH; i++)
    run_once(p, in, &opts, mode == ON_PROTO ? wire : NULL);
  return (double)(rm_clock_ns() - t0) / 1000.0 / BATCH;
}

int main(int argc, char **argv) {
  long requests = argc > 1 ? atol(argv[1]) : 200000;
  const char *type = argc > 2 ? argv[2] : "PassThrough";
  if (requests < BATCH * 10 || (strcmp(type, "PassThrough") && strcmp(type, "Gain"))) {
    fprintf(stderr, "usage: metrics_overhead [requests >= %d] [PassThrough|Gain]\n", BATCH * 10);
    return 2;
  }
  rm_alloc_install_jansson();
  rm_pipeline_t *p = build(type);
  float samples[16];
  for (int i = 0; i < 16; i++)
    samples[i] = (float)i / 16.0f;
  rm_buffer_t *buf = rm_buffer_new_borrowed(RM_KIND_AUDIO, samples, sizeof samples, NULL);
  buf->u.audio = (rm_audio_info_t){48000, 1, RM_SAMPLE_F32};
  rm_input_t in = {"n0", buf};
  uint8_t wire[4096];

  rm_run_opts_t warm = {.metrics = 1, .end_of_stream = 1};
  for (int i = 0; i < WARMUP; i++) {
    warm.metrics = i & 1;
    run_once(p, &in, &warm, (i & 3) == 3 ? wire : NULL);
  }

  size_t n = (size_t)(requests / BATCH);
  double *t[N_MODES], *d_on = malloc(n * sizeof(double)), *d_proto = malloc(n * sizeof(double));
  for (int k = 0; k < N_MODES; k++)
    t[k] = malloc(n * sizeof(double));
  rm_metrics_t *m = rm_pipeline_metrics(p);
  uint64_t self_ns[N_MODES] = {0};
  for (size_t i = 0; i < n; i++) {
    for (int j = 0; j < N_MODES; j++) {
      bench_mode_t mode = (bench_mode_t)((j + i) % N_MODES); /* rotate who goes first */
      uint64_t before = m->overhead_ns;
      t[mode][i] = batch_us(p, &in, mode, wire);
      self_ns[mode] += m->overhead_ns - before;
    }
    d_on[i] = t[ON][i] - t[OFF][i];
    d_proto[i] = t[ON_PROTO][i] - t[OFF][i];
  }

  /* The seed's export: the JSON object and its text. */
  size_t nj = n / 4;
  double *tj = malloc(nj * sizeof(double)), *tb = malloc(nj * sizeof(double));
  uint64_t json_self_ns = 0;
  for (size_t i = 0; i < nj; i++) {
    uint64_t before = m->overhead_ns;
    uint64_t t0 = rm_clock_ns();
    json_t *j = rm_metrics_to_json(m);
    uint64_t t1 = rm_clock_ns();
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    rm_free(text);
    tj[i] = (double)(rm_clock_ns() - t0) / 1000.0;
    tb[i] = (double)(t1 - t0) / 1000.0;
    json_self_ns += m->overhead_ns - before;
  }

  /* The same document written directly (rm_metrics_to_json_text): encoding included. */
  double *tt = malloc(nj * sizeof(double));
  uint64_t text_self_ns = 0;
  for (size_t i = 0; i < nj; i++) {
    uint64_t before = m->overhead_ns;
    uint64_t t0 = rm_clock_ns();
    char *text = rm_metrics_to_json_text(m, NULL);
    tt[i] = (double)(rm_clock_ns() - t0) / 1000.0;
    if (!text)
      die("text export", NULL);
    rm_free(text);
    text_self_ns += m->overhead_ns - before;
  }

  double per = (double)n * BATCH;
  printf("metrics_overhead: %d x %s, 16-sample f32 input, %zu requests per mode "
         "(batches of %d, interleaved)\n",
         N_NODES, type, n * BATCH, BATCH);
  printf("clock read cost (calibrated)           %8.3f us\n",
         (double)rm_clock_read_cost_ns() / 1000.0);
  printf("request, metrics off           median %8.3f us   p99 %8.3f us\n", pct(t[OFF], n, 0.5),
         pct(t[OFF], n, 0.99));
  printf("request, metrics on            median %8.3f us   p99 %8.3f us\n", pct(t[ON], n, 0.5),
         pct(t[ON], n, 0.99));
  printf("request, on + proto export     median %8.3f us   p99 %8.3f us\n",
         pct(t[ON_PROTO], n, 0.5), pct(t[ON_PROTO], n, 0.99));
  printf("overhead on - off              median %8.3f us   p99 %8.3f us\n", pct(d_on, n, 0.5),
         pct(d_on, n, 0.99));
  printf("overhead on+proto - off        median %8.3f us   p99 %8.3f us   (whole request)\n",
         pct(d_proto, n, 0.5), pct(d_proto, n, 0.99));
  printf("JSON export (to_json + dumps)  median %8.3f us   p99 %8.3f us\n", pct(tj, nj, 0.5),
         pct(tj, nj, 0.99));
  printf("  of which rm_metrics_to_json  median %8.3f us   p99 %8.3f us\n", pct(tb, nj, 0.5),
         pct(tb, nj, 0.99));
  printf("JSON text (to_json_text)       median %8.3f us   p99 %8.3f us\n", pct(tt, nj, 0.5),
         pct(tt, nj, 0.99));
  printf("self-reported metrics_overhead_us per request: run %.3f, run + proto export %.3f, "
         "to_json %.3f, to_json_text %.3f\n",
         (double)self_ns[ON] / per / 1000.0, (double)self_ns[ON_PROTO] / per / 1000.0,
         (double)json_self_ns / (double)nj / 1000.0, (double)text_self_ns / (double)nj / 1000.0);

  for (int k = 0; k < N_MODES; k++)
    free(t[k]);
  free(d_on);
  free(d_proto);
  free(tj);
  free(tb);
  free(tt);
  rm_buffer_unref(buf);
  rm_pipeline_free(p);
  return 0;
}
