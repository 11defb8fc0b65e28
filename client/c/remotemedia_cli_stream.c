/* remotemedia_cli_stream.c - `remotemedia stream`: an audio file sent through one
 * StreamPipeline session in fixed-length chunks, at real-time pace or as fast as flow
 * control allows, with per-chunk latency on stderr and run's JSON document on stdout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "remotemedia_cli.h"

#define FAST_WINDOW 8 /* chunks in flight when not pacing: enough to hide the round trip */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t_ns) {
  struct timespec ts = {(time_t)(t_ns / 1000000000), (long)(t_ns % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
    ;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted v[0..n), nearest rank. */
static int64_t quantile(const int64_t *v, size_t n, double q) {
  if (!n)
    return 0;
  size_t k = (size_t)(q * (double)n + 0.999999);
  return v[k ? (k > n ? n - 1 : k - 1) : 0];
}

/* Every result of the session, kept until the document is printed. */
typedef struct results {
  rm_client_stream_result_t **v;
  size_t n, cap;
} results_t;

static int results_push(results_t *r, rm_client_stream_result_t *x) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    rm_client_stream_result_t **g = realloc(r->v, cap * sizeof *g);
    if (!g)
      return -1;
    r->v = g;
    r->cap = cap;
  }
  r->v[r->n++] = x;
  return 0;
}

/* One output key's items across every result, audio of one format joined into one. */
typedef struct merged {
  rm_client_output_t *outputs;
  size_t n;
  rm_client_buffer_t *items; /* owned */
  void **joined;             /* joined audio payloads, owned */
  size_t n_items, n_joined;
} merged_t;

static int by_key(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int same_audio(const rm_client_buffer_t *a, const rm_client_buffer_t *b) {
  return a->kind == RM_CLIENT_AUDIO && b->kind == RM_CLIENT_AUDIO &&
         a->sample_rate == b->sample_rate && a->channels == b->channels && a->format == b->format;
}

/* The items of key across rs, appended to m->items (audio of one format as one item). */
static int merge_key(merged_t *m, const results_t *rs, const char *key) {
  size_t first = m->n_items, count = 0, bytes = 0;
  int all_audio = 1;
  const rm_client_buffer_t *ref = NULL;
  for (size_t i = 0; i < rs->n; i++) {
    const rm_client_output_t *o = rm_client_stream_result_find(rs->v[i], key);
    for (size_t j = 0; o && j < o->n_items; j++) {
      const rm_client_buffer_t *b = &o->items[j];
      if (!ref)
        ref = b;
      all_audio = all_audio && same_audio(ref, b);
      m->items[m->n_items++] = *b;
      count++;
      bytes += b->size;
    }
  }
  if (all_audio && count > 1) {
    unsigned char *p = malloc(bytes ? bytes : 1);
    if (!p)
      return -1;
    size_t off = 0;
    for (size_t k = first; k < first + count; k++) {
      if (m->items[k].size)
        memcpy(p + off, m->items[k].data, m->items[k].size);
      off += m->items[k].size;
    }
    m->joined[m->n_joined++] = p;
    m->items[first].data = p;
    m->items[first].size = bytes;
    m->n_items = first + 1;
  }
  return 0;
}

static void merged_free(merged_t *m) {
  for (size_t i = 0; i < m->n_joined; i++)
    free(m->joined[i]);
  free(m->joined);
  free(m->items);
  free(m->outputs);
}

static int merge(const results_t *rs, merged_t *m) {
  memset(m, 0, sizeof *m);
  size_t n_keys = 0, n_items = 0;
  for (size_t i = 0; i < rs->n; i++) {
    n_keys += rm_client_stream_result_count(rs->v[i]);
    for (size_t k = 0; k < rm_client_stream_result_count(rs->v[i]); k++)
      n_items += rm_client_stream_result_output(rs->v[i], k)->n_items;
  }
  const char **keys = calloc(n_keys ? n_keys : 1, sizeof *keys);
  m->outputs = calloc(n_keys ? n_keys : 1, sizeof *m->outputs);
  m->items = calloc(n_items ? n_items : 1, sizeof *m->items);
  m->joined = calloc(n_keys ? n_keys : 1, sizeof *m->joined);
  if (!keys || !m->outputs || !m->items || !m->joined) {
    free(keys);
    return -1;
  }
  size_t nk = 0;
  for (size_t i = 0; i < rs->n; i++)
    for (size_t k = 0; k < rm_client_stream_result_count(rs->v[i]); k++)
      keys[nk++] = rm_client_stream_result_output(rs->v[i], k)->key;
  qsort(keys, nk, sizeof *keys, by_key);
  for (size_t i = 0; i < nk; i++) {
    if (i && !strcmp(keys[i], keys[i - 1]))
      continue;
    const rm_client_output_t *proto = NULL;
    for (size_t r = 0; r < rs->n && !proto; r++)
      proto = rm_client_stream_result_find(rs->v[r], keys[i]);
    rm_client_output_t *o = &m->outputs[m->n++];
    *o = *proto;
    size_t start = m->n_items;
    if (merge_key(m, rs, keys[i])) {
      free(keys);
      return -1;
    }
    o->items = &m->items[start];
    o->n_items = m->n_items - start;
  }
  free(keys);
  return 0;
}

static int oom(rm_client_error_t *ce) {
  memset(ce, 0, sizeof *ce);
  ce->code = RM_CLIENT_ENOMEM;
  snprintf(ce->message, sizeof ce->message, "out of memory");
  return RM_CLIENT_ENOMEM;
}

/* Latency of one chunk: when it was sent, and what its answer said. */
typedef struct lat {
  int64_t sent_ns;
  int64_t rtt_ns;
  int64_t server_ns;
} lat_t;

/* Receives one result; records its latency when it answers a data chunk. */
static int receive_one(rm_client_stream_t *s, results_t *rs, lat_t *lat, size_t n_chunks,
                       rm_client_error_t *ce) {
  rm_client_stream_result_t *r = NULL;
  int rc = rm_client_stream_recv(s, &r, -1, ce);
  if (rc)
    return rc;
  int64_t t = now_ns();
  uint64_t seq = rm_client_stream_result_sequence(r);
  if (!rm_client_stream_result_flushed(r) && seq >= 1 && seq <= n_chunks) {
    lat_t *l = &lat[seq - 1];
    l->rtt_ns = t - l->sent_ns;
    l->server_ns = (int64_t)rm_client_stream_result_processing_ns(r);
    size_t items = 0;
    for (size_t k = 0; k < rm_client_stream_result_count(r); k++)
      items += rm_client_stream_result_output(r, k)->n_items;
    fprintf(stderr, "chunk %llu rtt_us=%.1f server_us=%.1f items=%zu\n", (unsigned long long)seq,
            (double)l->rtt_ns / 1e3, (double)l->server_ns / 1e3, items);
  }
  if (results_push(rs, r)) {
    rm_client_stream_result_free(r);
    return oom(ce);
  }
  return 0;
}

static void print_summary(const lat_t *lat, size_t n, size_t behind) {
  int64_t *rtt = malloc((n ? n : 1) * sizeof *rtt), *srv = malloc((n ? n : 1) * sizeof *srv);
  if (!rtt || !srv) {
    free(rtt);
    free(srv);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    rtt[i] = lat[i].rtt_ns;
    srv[i] = lat[i].server_ns;
  }
  qsort(rtt, n, sizeof *rtt, cmp_i64);
  qsort(srv, n, sizeof *srv, cmp_i64);
  fprintf(stderr,
          "summary: chunks=%zu rtt_p50_us=%.1f rtt_p99_us=%.1f server_p50_us=%.1f "
          "server_p99_us=%.1f behind=%zu\n",
          n, (double)quantile(rtt, n, 0.5) / 1e3, (double)quantile(rtt, n, 0.99) / 1e3,
          (double)quantile(srv, n, 0.5) / 1e3, (double)quantile(srv, n, 0.99) / 1e3, behind);
  free(rtt);
  free(srv);
}

/* Sends every chunk and reads every result; *behind counts paced chunks sent later than
 * one chunk period after their time. */
static int pump(rm_client_stream_t *s, const cli_stream_opts_t *o, size_t frames_per_chunk,
                size_t n_chunks, lat_t *lat, results_t *rs, size_t *behind, rm_client_error_t *ce) {
  const rm_client_buffer_t *a = o->audio;
  size_t frame_bytes = (size_t)a->channels * rm_client_audio_format_size(a->format);
  size_t total_frames = a->size / frame_bytes;
  int64_t period_ns = (int64_t)o->chunk_ms * 1000000;
  int64_t t0 = now_ns();
  size_t received = 0;
  for (size_t i = 0; i < n_chunks; i++) {
    if (o->realtime) {
      int64_t due = t0 + (int64_t)i * period_ns;
      if (now_ns() > due + period_ns)
        (*behind)++;
      sleep_until(due);
    } else {
      while (i - received >= FAST_WINDOW) {
        int rc = receive_one(s, rs, lat, n_chunks, ce);
        if (rc)
          return rc;
        received++;
      }
    }
    size_t f0 = i * frames_per_chunk;
    size_t nf = total_frames - f0 < frames_per_chunk ? total_frames - f0 : frames_per_chunk;
    rm_client_buffer_t chunk =
        rm_client_buffer_audio((const unsigned char *)a->data + f0 * frame_bytes, nf * frame_bytes,
                               a->sample_rate, a->channels, a->format);
    lat[i].sent_ns = now_ns();
    int rc = rm_client_stream_send(s, o->node_id, &chunk, (uint64_t)i + 1, ce);
    if (rc)
      return rc;
    if (o->realtime) { /* one in flight: the round trip is the chunk's alone */
      rc = receive_one(s, rs, lat, n_chunks, ce);
      if (rc)
        return rc;
      received++;
    }
  }
  int rc = rm_client_stream_close_send(s, ce);
  while (!rc)
    rc = receive_one(s, rs, lat, n_chunks, ce);
  return rc == RM_CLIENT_EEND ? 0 : rc;
}

int cli_stream(rm_client_t *client, const cli_stream_opts_t *o, cli_error_t *e) {
  rm_client_error_t ce_storage, *ce = &ce_storage;
  const rm_client_buffer_t *a = o->audio;
  size_t frame_bytes = (size_t)a->channels * rm_client_audio_format_size(a->format);
  if (a->kind != RM_CLIENT_AUDIO || !frame_bytes)
    return cli_fail(e, CLI_USAGE, "stream: the input file is not audio");
  size_t total_frames = a->size / frame_bytes;
  size_t per = (size_t)((uint64_t)a->sample_rate * (uint64_t)o->chunk_ms / 1000);
  if (!per)
    return cli_fail(e, CLI_USAGE, "stream: --chunk-ms %d is less than one frame at %u Hz",
                    o->chunk_ms, a->sample_rate);
  size_t n_chunks = total_frames ? (total_frames + per - 1) / per : 0;
  lat_t *lat = calloc(n_chunks ? n_chunks : 1, sizeof *lat);
  if (!lat)
    return cli_fail(e, CLI_FAILED, "out of memory");
  rm_client_stream_opts_t so = {
      .timeout_ms = o->timeout_ms, .enable_metrics = o->metrics, .request_id = o->request_id};
  rm_client_stream_t *s = NULL;
  results_t rs = {0};
  size_t behind = 0;
  int rc = rm_client_stream_open(client, o->manifest_text, &so, &s, ce);
  if (!rc)
    rc = pump(s, o, per, n_chunks, lat, &rs, &behind, ce);
  int out = 0;
  if (rc) {
    out = cli_from_client_error(ce, e);
    if (ce->code == RM_CLIENT_EMANIFEST && o->manifest_path) /* named as run names it */
      snprintf(e->message, sizeof e->message, "%s: %s", o->manifest_path, ce_storage.message);
  } else {
    print_summary(lat, n_chunks, behind);
    merged_t m;
    if (merge(&rs, &m)) {
      out = cli_fail(e, CLI_FAILED, "out of memory");
    } else {
      const struct Remotemedia__V1__StreamReady *ready = rm_client_stream_ready(s);
      cli_run_result_t r = {.pipeline_name = ready->pipeline_name,
                            .outputs = m.outputs,
                            .n_outputs = m.n,
                            .metrics = rm_client_stream_metrics_json(s)};
      out = cli_emit_outputs(&r, o->output_dir, o->metrics_json, e);
      if (!out && o->metrics_table)
        cli_print_metrics_table(stderr, r.metrics);
      json_decref(r.metrics);
    }
    merged_free(&m);
  }
  for (size_t i = 0; i < rs.n; i++)
    rm_client_stream_result_free(rs.v[i]);
  free(rs.v);
  rm_client_stream_free(s);
  free(lat);
  return out;
}
