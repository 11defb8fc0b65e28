/* rmclient_check.c - librmclient's checks of what a server sent (its strings are checked as
 * it is unpacked, rm__client_unpack): every output item self-consistent, every metrics number
 * finite. A server that fails them gets RM_CLIENT_EPROTO, never a
 * caller that trusts a tensor's shape or writes a key into a path. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rmclient_int.h"

#define MAX_CHANNELS 64
#define MAX_SAMPLE_RATE 768000

/* ------------------------------------------------------------------ output items */

/* "[2,3]" into out (truncated with "...]" when long). */
static void shape_text(const rm_client_buffer_t *b, char *out, size_t cap) {
  size_t used = (size_t)snprintf(out, cap, "[");
  for (size_t i = 0; i < b->ndim && used < cap; i++)
    used +=
        (size_t)snprintf(out + used, cap - used, "%s%lld", i ? "," : "", (long long)b->shape[i]);
  if (used + 5 >= cap)
    used = cap - 5;
  snprintf(out + used, cap - used, "]");
  if (used == cap - 5)
    snprintf(out + used, cap - used, "...]");
}

/* 0, or a sentence (into why) saying what is inconsistent in b. */
static int item_problem(const rm_client_buffer_t *b, char *why, size_t cap) {
  if (b->kind == RM_CLIENT_AUDIO) {
    size_t width = rm_client_audio_format_size(b->format);
    if (!width)
      return snprintf(why, cap, "audio format %d is not one the protocol defines", (int)b->format);
    if (b->channels < 1 || b->channels > MAX_CHANNELS)
      return snprintf(why, cap, "audio channels %u is not 1..%d", b->channels, MAX_CHANNELS);
    if (b->sample_rate < 1 || b->sample_rate > MAX_SAMPLE_RATE)
      return snprintf(why, cap, "audio sample_rate %u is not 1..%d Hz", b->sample_rate,
                      MAX_SAMPLE_RATE);
    if (b->size % (width * b->channels))
      return snprintf(why, cap,
                      "audio: %zu bytes is not a whole number of %u-channel %s frames (%zu bytes "
                      "each)",
                      b->size, b->channels, rm_client_audio_format_name(b->format),
                      width * b->channels);
    return 0;
  }
  if (b->kind == RM_CLIENT_TENSOR) {
    size_t width = rm_client_dtype_size(b->dtype);
    if (!width)
      return snprintf(why, cap, "tensor dtype %d is not one the protocol defines", (int)b->dtype);
    char shape[96];
    shape_text(b, shape, sizeof shape);
    uint64_t count = 1;
    int overflow = 0;
    for (size_t i = 0; i < b->ndim; i++) {
      if (b->shape[i] < 0)
        return snprintf(why, cap, "tensor shape %s has a negative dimension", shape);
      if (b->shape[i] && count > UINT64_MAX / (uint64_t)b->shape[i])
        overflow = 1;
      count *= (uint64_t)b->shape[i];
    }
    for (size_t i = 0; i < b->ndim && overflow; i++)
      if (!b->shape[i])
        overflow = 0, count = 0; /* a zero dimension: no values at all */
    if (overflow || count > SIZE_MAX / width)
      return snprintf(why, cap,
                      "tensor shape %s has more values than memory can hold, %zu bytes given",
                      shape, b->size);
    if (count * width != b->size)
      return snprintf(why, cap,
                      "tensor shape %s needs %llu values of %s (%llu bytes), %zu bytes given",
                      shape, (unsigned long long)count, rm_client_dtype_name(b->dtype),
                      (unsigned long long)(count * width), b->size);
    return 0;
  }
  if (b->kind == RM_CLIENT_JSON) {
    json_error_t je;
    json_t *v = json_loadb(b->data, b->size, JSON_DECODE_ANY, &je);
    if (!v)
      return snprintf(why, cap, "json is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                      je.column);
    json_decref(v);
  }
  return 0;
}

int rm__client_check_item(const char *key, size_t i, const rm_client_buffer_t *b,
                          rm_client_error_t *err) {
  char why[384];
  if (!item_problem(b, why, sizeof why))
    return 0;
  return rm__client_fail(err, RM_CLIENT_EPROTO,
                         "the server's response: output '%.64s' item %zu: %s", key, i, why);
}

/* ------------------------------------------------------------------ metrics */

#define CHECK_REAL(owner, field, where)                                                            \
  do {                                                                                             \
    if (!isfinite((owner)->field))                                                                 \
      return rm__client_fail(err, RM_CLIENT_EPROTO,                                                \
                             "the server's response: metrics%s: %s is %g (metrics are finite)",    \
                             where, #field, (owner)->field);                                       \
  } while (0)

int rm__client_check_metrics(const Remotemedia__V1__PipelineMetrics *m, rm_client_error_t *err) {
  if (!m)
    return 0;
  CHECK_REAL(m, total_duration_us, "");
  CHECK_REAL(m, total_duration_ms, "");
  CHECK_REAL(m, peak_memory_mb, "");
  CHECK_REAL(m, metrics_overhead_us, "");
  for (size_t i = 0; i < m->n_node_metrics; i++) {
    const Remotemedia__V1__NodeMetrics *n = m->node_metrics[i];
    char where[96];
    snprintf(where, sizeof where, " node '%.64s'", n->node_id);
    CHECK_REAL(n, success_rate, where);
    CHECK_REAL(n, total_duration_us, where);
    CHECK_REAL(n, avg_duration_us, where);
    CHECK_REAL(n, min_duration_us, where);
    CHECK_REAL(n, max_duration_us, where);
  }
  return 0;
}
