/* fuzz_node.c - libFuzzer target for one node type (RM_FUZZ_NODE_TYPE, one binary per type):
 * arbitrary params JSON and an arbitrary buffer of any kind, run through the engine as a
 * stream of one to four chunks. Any input must end in a clean error or a result: no crash,
 * no undefined behaviour, no leak, no hang, never RM_EINTERNAL; and, with the memory budget
 * (RM_FUZZ_BUDGET), no run's engine peak above its budget.
 *
 * Input layout (tests/fuzz/README.md has the long form):
 *   [0] bits 0-2 buffer kind (0 audio, 1 tensor, 2 json, 3 text, 4 binary, 5-7 audio),
 *       bits 3-4 chunks - 1, bit 5 metrics, bit 6 fan-in (two PassThrough sources feed the
 *       node; audio, tensor: the second gets the first half of each chunk)
 *   [1] audio: bits 0-1 format - 1, bits 2-7 channels - 1; tensor: bits 0-2 dtype, bits 3-5
 *       ndim - 1
 *   [2] audio: rate (an index into `rates`); tensor: leading dimension; binary: mime type
 *   [3] memory budget: 16 KiB << (byte % 14), up to 128 MiB
 *   params JSON text, a NUL, then the payload (audio is cut to whole frames). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"
#include "rm/registry.h"
#ifdef RM_FUZZ_BUDGET
#include "rm/budget.h"
#endif

#ifndef RM_FUZZ_NODE_TYPE
#error "RM_FUZZ_NODE_TYPE: the node type this binary fuzzes, e.g. -DRM_FUZZ_NODE_TYPE=\"Gain\""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HEADER = 4, MAX_CHUNKS = 4 };

static const uint32_t rates[16] = {8000,  11025, 12000, 16000, 22050,  24000,  32000,  44100,
                                   48000, 96000, 1,     7,     192000, 768000, 769000, 0};
static const char *const mimes[8] = {NULL,         "audio/wav", "audio/flac", "audio/ogg",
                                     "audio/opus", "",          "x/y",        "audio/x-rm-opus"};

/* The run's per-buffer bounds: small, so each input is fast and the fuzzer looks for
 * defects, not for big work. */
static const rm_limits_t limits = {.max_audio_samples = 1u << 18,
                                   .max_buffer_bytes = 4u << 20,
                                   .max_items = 4096,
                                   .max_nodes = 8,
                                   .max_connections = 8};

/* ---- the memory budget check: one place, compiled only with the budget (RM_FUZZ_BUDGET) */

typedef struct run_budget {
#ifdef RM_FUZZ_BUDGET
  rm_budget_t *budget;
  rm_budget_t *previous;
#endif
  size_t limit;
} run_budget_t;

/* Every engine allocation from here to budget_end is charged to a budget of `limit` bytes. */
static void budget_begin(run_budget_t *rb, size_t limit) {
  rb->limit = limit;
#ifdef RM_FUZZ_BUDGET
  rb->budget = rm_budget_new(limit, NULL);
  if (!rb->budget)
    abort();
  rm_budget_refusal_clear();
  rb->previous = rm_budget_enter(rb->budget);
#endif
}

/* The pipeline's buffers never held more than the budget at once (p may be NULL). */
static void budget_check_pipeline(const run_budget_t *rb, rm_pipeline_t *p) {
#ifdef RM_FUZZ_BUDGET
  if (p && rm_pipeline_account(p)->peak > rb->limit)
    abort();
#else
  (void)rb;
  (void)p;
#endif
}

/* A refused charge is reported as a limit (RM_ELIMIT naming max_memory_bytes), never as
 * out of memory: under the fuzzer a real allocation failure aborts (ASan, -malloc_limit_mb)
 * before any code sees it, so RM_ENOMEM can only be a refusal told wrongly. */
static void budget_check_code(int rc) {
#ifdef RM_FUZZ_BUDGET
  if (rc == RM_ENOMEM)
    abort();
#else
  (void)rc;
#endif
}

/* After everything the run made is freed: the budget's peak stayed within its limit and
 * every byte charged was given back. */
static void budget_end(run_budget_t *rb) {
#ifdef RM_FUZZ_BUDGET
  rm_budget_leave(rb->previous);
  if (rm_budget_peak(rb->budget) > rb->limit || rm_budget_used(rb->budget) != 0)
    abort();
  rm_budget_free(rb->budget);
#else
  (void)rb;
#endif
}

/* ---- input decoding */

typedef struct fuzz_input {
  rm_kind_t kind;
  unsigned chunks, metrics, fan_in;
  rm_audio_info_t audio;
  rm_dtype_t dtype;
  uint32_t ndim;
  int64_t lead;
  const char *mime;
  size_t budget;
  char *params; /* NUL-terminated copy */
  const uint8_t *payload;
  size_t payload_size;
  size_t unit; /* bytes of one frame / element (1 for text kinds) */
} fuzz_input_t;

static int decode(const uint8_t *data, size_t size, fuzz_input_t *in) {
  static const rm_kind_t kinds[8] = {RM_KIND_AUDIO,  RM_KIND_TENSOR, RM_KIND_JSON,  RM_KIND_TEXT,
                                     RM_KIND_BINARY, RM_KIND_AUDIO,  RM_KIND_AUDIO, RM_KIND_AUDIO};
  if (size < HEADER)
    return -1;
  memset(in, 0, sizeof *in);
  in->kind = kinds[data[0] & 7];
  in->chunks = ((data[0] >> 3) & 3) + 1;
  in->metrics = (data[0] >> 5) & 1;
  in->fan_in = (data[0] >> 6) & 1;
  in->audio.format = (rm_sample_format_t)((data[1] & 3) + 1);
  in->audio.channels = (data[1] >> 2) + 1u;
  in->audio.sample_rate = rates[data[2] & 15];
  in->dtype = (rm_dtype_t)(data[1] % 6 + 1);
  in->ndim = ((data[1] >> 3) & 7) + 1;
  in->lead = data[2];
  in->mime = mimes[data[2] & 7];
  in->budget = (size_t)16384 << (data[3] % 14);
  const uint8_t *p = data + HEADER, *end = data + size;
  const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
  size_t plen = nul ? (size_t)(nul - p) : (size_t)(end - p);
  in->params = malloc(plen + 1);
  if (!in->params)
    return -1;
  memcpy(in->params, p, plen);
  in->params[plen] = 0;
  in->payload = nul ? nul + 1 : end;
  in->payload_size = (size_t)(end - in->payload);
  switch (in->kind) {
  case RM_KIND_AUDIO:
    in->unit = rm_sample_format_size(in->audio.format) * in->audio.channels;
    break;
  case RM_KIND_TENSOR: in->unit = rm_dtype_size(in->dtype); break;
  default: in->unit = 1;
  }
  return 0;
}

/* A borrowed buffer over `units` units of payload from `off`, or NULL when it does not
 * validate (the server refuses such inputs before the engine sees them). */
static rm_buffer_t *make_buffer(const fuzz_input_t *in, size_t off, size_t units) {
  rm_buffer_t *b =
      rm_buffer_new_borrowed(in->kind, in->payload + off * in->unit, units * in->unit, NULL);
  if (!b)
    return NULL;
  if (in->kind == RM_KIND_AUDIO) {
    b->u.audio = in->audio;
  } else if (in->kind == RM_KIND_TENSOR) {
    rm_tensor_info_t *t = &b->u.tensor;
    t->dtype = in->dtype;
    t->ndim = in->ndim;
    for (uint32_t i = 0; i < t->ndim; i++)
      t->shape[i] = 1;
    if (t->ndim == 1) {
      t->shape[0] = (int64_t)units;
    } else {
      int64_t lead = in->lead % 16;
      t->shape[0] = lead;
      t->shape[t->ndim - 1] = lead ? (int64_t)units / lead : 0;
      b->size = (size_t)(t->shape[0] * t->shape[t->ndim - 1]) * in->unit;
    }
  } else if (in->kind == RM_KIND_BINARY && in->mime) {
    b->mime_type = rm_strdup(in->mime);
    if (!b->mime_type) {
      rm_buffer_unref(b);
      return NULL;
    }
  }
  if (rm_buffer_validate(b, NULL)) {
    rm_buffer_unref(b);
    return NULL;
  }
  return b;
}

/* ---- the run */

static rm_manifest_t *make_manifest(const fuzz_input_t *in) {
  rm_manifest_t *m = rm_manifest_new("fuzz");
  if (!m || rm_manifest_add_node_text(m, "n", RM_FUZZ_NODE_TYPE, in->params, NULL)) {
    rm_manifest_free(m);
    return NULL;
  }
  if (in->fan_in && (rm_manifest_add_node(m, "a", "PassThrough", NULL, NULL) ||
                     rm_manifest_add_node(m, "b", "PassThrough", NULL, NULL) ||
                     rm_manifest_add_connection(m, "a", NULL, "n", NULL) ||
                     rm_manifest_add_connection(m, "b", NULL, "n", NULL))) {
    rm_manifest_free(m);
    return NULL;
  }
  return m;
}

/* An error code the engine may return for hostile input; RM_EINTERNAL is a bug. With
 * RM_FUZZ_VERBOSE set in the environment, every outcome is printed (for triage). */
static void check_code(int rc, const rm_error_t *err) {
  if (getenv("RM_FUZZ_VERBOSE"))
    fprintf(stderr, "%s: %s\n", rm_strerror(rc), rc ? err->message : "");
  if (rc == RM_EINTERNAL || rc > 0 || rc < RM_EIO)
    abort();
  budget_check_code(rc);
}

static void run_stream(const fuzz_input_t *in, rm_pipeline_t *p) {
  size_t units = in->payload_size / in->unit;
  size_t per = units / in->chunks;
  for (unsigned c = 0; c < in->chunks; c++) {
    size_t off = c * per, n = c + 1 == in->chunks ? units - off : per;
    rm_input_t inputs[2];
    size_t n_in = 0;
    rm_buffer_t *b = make_buffer(in, off, n);
    if (!b)
      return;
    inputs[n_in++] = (rm_input_t){.node_id = in->fan_in ? "a" : "n", .buf = b};
    if (in->fan_in) {
      size_t half = in->kind == RM_KIND_AUDIO || in->kind == RM_KIND_TENSOR ? n / 2 : n;
      rm_buffer_t *b2 = make_buffer(in, off, half);
      if (!b2) {
        rm_buffer_unref(b);
        return;
      }
      inputs[n_in++] = (rm_input_t){.node_id = "b", .buf = b2};
    }
    rm_run_opts_t opts = {.metrics = (int)in->metrics,
                          .end_of_stream = c + 1 == in->chunks,
                          .deadline_ns = rm_clock_ns() + 2000 * 1000000ull};
    rm_result_t *r = NULL;
    rm_error_t err;
    int rc = rm_pipeline_run(p, inputs, n_in, &opts, &r, &err);
    check_code(rc, &err);
    rm_result_free(r);
    for (size_t i = 0; i < n_in; i++)
      rm_buffer_unref(inputs[i].buf);
    if (rc == RM_ETIMEDOUT)
      return;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input_t in;
  if (decode(data, size, &in))
    return 0;
  if (!in.unit) {
    free(in.params);
    return 0;
  }
  long live = rm_alloc_live();
  run_budget_t rb;
  budget_begin(&rb, in.budget);
  rm_manifest_t *m = make_manifest(&in);
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  if (m) {
    int rc = rm_pipeline_new(m, &limits, &p, &err);
    check_code(rc, &err);
  }
  rm_manifest_free(m);
  if (p)
    run_stream(&in, p);
  budget_check_pipeline(&rb, p);
  rm_pipeline_free(p);
  budget_end(&rb);
  /* every engine allocation of the run was given back on this thread */
  if (rm_alloc_live() != live)
    abort();
  free(in.params);
  return 0;
}
