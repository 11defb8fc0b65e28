/* fuzz_execute.c - libFuzzer target for the server's request path without the transport:
 * ExecuteRequest bytes -> unpack -> manifest -> pipeline -> inputs -> run -> metrics. Any
 * input must end in a clean error or a result: no crash, no leak, no hang. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"
#include "rm/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Remotemedia__V1__ExecuteRequest *req = remotemedia__v1__execute_request__unpack(NULL, size, data);
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
  if (rm_manifest_from_proto(req->manifest, &m, &err) || rm_pipeline_new(m, &limits, &p, &err))
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
    if (!rm_metrics_to_proto(rm_pipeline_metrics(p), &pm))
      rm_metrics_proto_clear(&pm);
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
