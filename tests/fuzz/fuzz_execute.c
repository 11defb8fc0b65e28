/* fuzz_execute.c - libFuzzer target for the server's request path without the transport:
 * ExecuteRequest bytes -> unpack -> manifest -> pipeline -> inputs -> run -> metrics. Any
 * input must end in a clean error or a result: no crash, no leak, no hang. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"
#include "rm/wire.h"
#include "rm/wire_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The server unpacks a request in two parts when its manifest field occurs once (the rest,
 * then the manifest's bytes on their own): that must accept exactly what a whole unpack
 * accepts, with the same manifest. */
static void check_split_unpack(const uint8_t *data, size_t size,
                               const Remotemedia__V1__ExecuteRequest *whole) {
  rm_wire_span_t field, value;
  if (rm_wire_find_field(data, size, 1, &field, &value) != 1)
    return;
  uint8_t *rest = rm_malloc(size - field.length + 1);
  if (!rest)
    return;
  memcpy(rest, data, field.offset);
  memcpy(rest + field.offset, data + field.offset + field.length,
         size - field.offset - field.length);
  Remotemedia__V1__ExecuteRequest *r =
      remotemedia__v1__execute_request__unpack(NULL, size - field.length, rest);
  Remotemedia__V1__PipelineManifest *m =
      remotemedia__v1__pipeline_manifest__unpack(NULL, value.length, data + value.offset);
  if (!whole != !(r && m) || (r && r->manifest))
    abort();
  if (whole && (strcmp(whole->manifest->name, m->name) != 0 ||
                whole->manifest->n_nodes != m->n_nodes || whole->n_inputs != r->n_inputs))
    abort();
  remotemedia__v1__pipeline_manifest__free_unpacked(m, NULL);
  remotemedia__v1__execute_request__free_unpacked(r, NULL);
  rm_free(rest);
}

/* The server leaves the contents of the first field the skeleton replaces out of a request's
 * copy (server/bytebuf.c's gap, found by rm_wire_first_view in the first 4 KiB): the skeleton
 * must never read them. With those bytes scrambled it must come out the same, with or without
 * the manifest skipped, and its first span must be that field. */
static void check_first_view(const uint8_t *data, size_t size) {
  const ProtobufCMessageDescriptor *d = &remotemedia__v1__execute_request__descriptor;
  enum { MIN_LEN = 24, MAX_SPANS = 64 };
  rm_wire_span_t gap;
  if (!rm_wire_first_view(d, data, size < 4096 ? size : 4096, size, MIN_LEN, &gap))
    return;
  uint8_t *scrambled = rm_malloc(size), *a = rm_malloc(size + 1), *b = rm_malloc(size + 1);
  if (!scrambled || !a || !b)
    abort();
  memcpy(scrambled, data, size);
  for (size_t i = 0; i < gap.length; i++)
    scrambled[gap.offset + i] ^= (uint8_t)(0x5a + i);
  for (uint32_t skip = 0; skip <= 1; skip++) {
    rm_wire_span_t sa[MAX_SPANS], sb[MAX_SPANS];
    size_t la, lb, na, nb;
    int ra = rm_wire_views_skeleton(d, data, size, skip, MIN_LEN, a, &la, sa, MAX_SPANS, &na);
    int rb = rm_wire_views_skeleton(d, scrambled, size, skip, MIN_LEN, b, &lb, sb, MAX_SPANS, &nb);
    if (ra != rb || (!ra && (la != lb || na != nb || memcmp(a, b, la) != 0 ||
                             memcmp(sa, sb, na * sizeof *sa) != 0)))
      abort();
    if (!ra && skip == 0 && (na == 0 || sa[0].offset != gap.offset || sa[0].length != gap.length))
      abort();
  }
  rm_free(scrambled);
  rm_free(a);
  rm_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* as the server does before it unpacks (fuzz_nesting checks the guard itself) */
  if (rm_wire_check_nesting(&remotemedia__v1__execute_request__descriptor, data, size, NULL, NULL))
    return 0;
  Remotemedia__V1__ExecuteRequest *req = remotemedia__v1__execute_request__unpack(NULL, size, data);
  check_split_unpack(data, size, req);
  check_first_view(data, size);
  if (!req)
    return 0;
  rm_error_t err;
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_result_t *r = NULL;
  /* small limits keep each input fast: the fuzzer looks for crashes, not for big work */
  rm_limits_t limits = {
      .max_nodes = 32, .max_audio_samples = 1u << 18, .max_buffer_bytes = 4u << 20};
  rm_input_t inputs[8];
  size_t n = 0;
  if (rm_wire_manifest_from_proto(req->manifest, &m, &err) || rm_pipeline_new(m, &limits, &p, &err))
    goto out;
  for (size_t i = 0; i < req->n_inputs && n < 8; i++) {
    if (!req->inputs[i]->value ||
        rm_wire_buffer_from_proto(req->inputs[i]->value, NULL, &inputs[n].buf, &err))
      continue;
    inputs[n++].node_id = req->inputs[i]->key;
  }
  rm_run_opts_t opts = {.metrics = req->enable_metrics,
                        .end_of_stream = 1,
                        .deadline_ns = rm_clock_ns() + 50 * 1000000ull,
                        .output_nodes = (const char *const *)req->output_nodes,
                        .n_output_nodes = req->n_output_nodes};
  rm_pipeline_run(p, inputs, n, &opts, &r, &err);
  if (req->enable_metrics) {
    Remotemedia__V1__PipelineMetrics pm = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
    if (!rm_wire_metrics_to_proto(rm_pipeline_metrics(p), &pm)) {
      /* the server packs the metrics into a buffer of this bound */
      Remotemedia__V1__ExecuteResponse resp = REMOTEMEDIA__V1__EXECUTE_RESPONSE__INIT;
      resp.metrics = &pm;
      size_t bound = rm_wire_metrics_field_bound(&pm); /* 0: not known, none used */
      if (bound && bound < remotemedia__v1__execute_response__get_packed_size(&resp))
        abort();
      rm_wire_metrics_proto_clear(&pm);
    }
  }
out:
  rm_result_free(r);
  for (size_t i = 0; i < n; i++)
    rm_buffer_unref(inputs[i].buf);
  rm_pipeline_free(p);
  rm_manifest_free(m);
  remotemedia__v1__execute_request__free_unpacked(req, NULL);
  return 0;
}
