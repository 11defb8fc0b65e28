/* fuzz_manifest.c - libFuzzer target for JSON manifests: parse, validate, build. */
#include <stddef.h>
#include <stdint.h>

#include "rm/manifest.h"
#include "rm/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rm_error_t err;
  rm_manifest_t *m = NULL;
  if (rm_manifest_from_json_text((const char *)data, size, &m, &err))
    return 0;
  rm_limits_t limits = {.max_nodes = 64};
  rm_pipeline_t *p = NULL;
  if (!rm_pipeline_new(m, &limits, &p, &err))
    rm_pipeline_free(p);
  json_t *back = rm_manifest_to_json(m);
  json_decref(back);
  rm_manifest_free(m);
  return 0;
}
