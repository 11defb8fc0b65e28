/* remotemedia_cli_local.c - the CLI's in-process mode: the engine (rm_core) runs the
 * manifest here, and the registry answers `nodes` in the shape ListNodeTypes has. */
#include <stdlib.h>
#include <string.h>

#include "remotemedia_cli.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"
#include "rm/registry.h"
#include "rm/wire.h"

struct cli_local_run {
  rm_pipeline_t *pipeline;
  rm_result_t *result;
  rm_buffer_t **inputs;
  size_t n_inputs;
  rm_client_output_t *outputs;
  rm_client_buffer_t *items;
};

/* The gRPC status the server would answer for an engine error (its status.c mapping), so
 * both modes report failures the same way. */
static int status_of(int code) {
  switch (code) {
  case RM_EMANIFEST:
  case RM_EPARAM:
  case RM_EINPUT:
  case RM_ENODE: return 3;   /* INVALID_ARGUMENT */
  case RM_ENOTYPE: return 5; /* NOT_FOUND */
  case RM_ELIMIT:
  case RM_ENOMEM: return 8;    /* RESOURCE_EXHAUSTED */
  case RM_ETIMEDOUT: return 4; /* DEADLINE_EXCEEDED */
  case RM_ECANCELED: return 1; /* CANCELLED */
  default: return 13;          /* INTERNAL */
  }
}

static int engine_fail(cli_error_t *e, const rm_error_t *err) {
  memset(e, 0, sizeof *e);
  e->exit_code = CLI_FAILED;
  e->status = status_of(err->code);
  snprintf(e->kind, sizeof e->kind, "%s", rm_strerror(err->code));
  snprintf(e->node_id, sizeof e->node_id, "%s", err->node_id);
  snprintf(e->field, sizeof e->field, "%s", err->field);
  snprintf(e->message, sizeof e->message, "%s", err->message);
  return CLI_FAILED;
}

void cli_local_free(cli_local_run_t *run) {
  if (!run)
    return;
  rm_result_free(run->result); /* before the pipeline: result buffers count in its account */
  for (size_t i = 0; i < run->n_inputs; i++)
    rm_buffer_unref(run->inputs[i]);
  rm_pipeline_free(run->pipeline);
  free(run->inputs);
  free(run->outputs);
  free(run->items);
  free(run);
}

/* A borrowed engine buffer over a loaded input. */
static rm_buffer_t *wrap_input(const rm_client_buffer_t *b) {
  static const rm_kind_t kinds[] = {RM_KIND_NONE, RM_KIND_AUDIO, RM_KIND_TENSOR,
                                    RM_KIND_JSON, RM_KIND_TEXT,  RM_KIND_BINARY};
  rm_buffer_t *buf = rm_buffer_new_borrowed(kinds[b->kind], b->data, b->size, NULL);
  if (!buf)
    return NULL;
  if (b->kind == RM_CLIENT_AUDIO) {
    buf->u.audio.sample_rate = b->sample_rate;
    buf->u.audio.channels = b->channels;
    buf->u.audio.format = (rm_sample_format_t)b->format;
  }
  if (b->kind == RM_CLIENT_BINARY && b->mime_type && *b->mime_type &&
      !(buf->mime_type = rm_strdup(b->mime_type))) { /* owned: unref frees it */
    rm_buffer_unref(buf);
    return NULL;
  }
  return buf;
}

static void view_of(const rm_buffer_t *b, rm_client_buffer_t *v) {
  memset(v, 0, sizeof *v);
  v->data = b->data;
  v->size = b->size;
  switch (b->kind) {
  case RM_KIND_AUDIO:
    v->kind = RM_CLIENT_AUDIO;
    v->sample_rate = b->u.audio.sample_rate;
    v->channels = b->u.audio.channels;
    v->format = (rm_client_audio_format_t)b->u.audio.format;
    break;
  case RM_KIND_TENSOR:
    v->kind = RM_CLIENT_TENSOR;
    v->dtype = (rm_client_dtype_t)b->u.tensor.dtype;
    v->shape = b->u.tensor.shape;
    v->ndim = b->u.tensor.ndim;
    break;
  case RM_KIND_JSON: v->kind = RM_CLIENT_JSON; break;
  case RM_KIND_TEXT: v->kind = RM_CLIENT_TEXT; break;
  case RM_KIND_BINARY:
    v->kind = RM_CLIENT_BINARY;
    v->mime_type = b->mime_type;
    break;
  default: break;
  }
}

static int by_key(const void *a, const void *b) {
  return strcmp(((const rm_client_output_t *)a)->key, ((const rm_client_output_t *)b)->key);
}

static int describe(cli_local_run_t *run, int metrics, cli_run_result_t *r, cli_error_t *e) {
  const rm_result_t *res = run->result;
  size_t n_items = 0;
  for (size_t i = 0; i < res->n_outputs; i++)
    n_items += res->outputs[i].n_items;
  run->outputs = calloc(res->n_outputs ? res->n_outputs : 1, sizeof *run->outputs);
  run->items = calloc(n_items ? n_items : 1, sizeof *run->items);
  if (!run->outputs || !run->items)
    return cli_fail(e, CLI_FAILED, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < res->n_outputs; i++) {
    const rm_output_t *o = &res->outputs[i];
    run->outputs[i] = (rm_client_output_t){o->key, o->node_id, o->port, &run->items[k], o->n_items};
    for (size_t j = 0; j < o->n_items; j++)
      view_of(o->items[j], &run->items[k++]);
  }
  qsort(run->outputs, res->n_outputs, sizeof *run->outputs, by_key);
  r->pipeline_name = rm_pipeline_name(run->pipeline);
  r->outputs = run->outputs;
  r->n_outputs = res->n_outputs;
  r->metrics = NULL;
  if (metrics && !(r->metrics = rm_metrics_to_json(rm_pipeline_metrics(run->pipeline))))
    return cli_fail(e, CLI_FAILED, "out of memory");
  return 0;
}

/* The loaded inputs as engine buffers borrowing their bytes, each checked as the server
 * checks a request's: bufs[0..*n_bufs) are set (unref them) even on failure, ins[i] names
 * input i's node and buffer. 0 or the engine error, naming the input. */
static int engine_inputs(const cli_input_t *inputs, size_t n, rm_buffer_t **bufs, size_t *n_bufs,
                         rm_input_t *ins, rm_error_t *err) {
  for (size_t i = 0; i < n; i++) {
    rm_buffer_t *b = wrap_input(&inputs[i].buf);
    if (!b)
      return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    bufs[(*n_bufs)++] = b;
    ins[i] = (rm_input_t){inputs[i].node_id, b};
    int rc = rm_buffer_validate(b, err);
    if (rc) {
      char msg[RM_ERROR_MSG_MAX], field[RM_ERROR_FIELD_MAX];
      snprintf(msg, sizeof msg, "input for node '%.100s': %.380s", inputs[i].node_id, err->message);
      snprintf(field, sizeof field, "%s", err->field);
      return rm_error_set(err, rc, inputs[i].node_id, field, "%s", msg);
    }
  }
  return 0;
}

int cli_local_run(const char *manifest_path, const cli_input_t *inputs, size_t n_inputs,
                  long long timeout_ms, int metrics, cli_local_run_t **out, cli_run_result_t *r,
                  cli_error_t *e) {
  rm_error_t err;
  rm_error_clear(&err);
  rm_manifest_t *m = NULL;
  int rc = rm_manifest_from_file(manifest_path, &m, &err);
  if (rc)
    return cli_fail(e, CLI_USAGE, "%s: %s", manifest_path, err.message);
  cli_local_run_t *run = calloc(1, sizeof *run);
  if (!run || !(run->inputs = calloc(n_inputs ? n_inputs : 1, sizeof *run->inputs))) {
    free(run);
    rm_manifest_free(m);
    return cli_fail(e, CLI_FAILED, "out of memory");
  }
  rc = rm_pipeline_new(m, NULL, &run->pipeline, &err);
  rm_manifest_free(m);
  if (rc) {
    cli_local_free(run);
    return engine_fail(e, &err);
  }
  rm_input_t *ins = calloc(n_inputs ? n_inputs : 1, sizeof *ins);
  if (!ins) {
    cli_local_free(run);
    return cli_fail(e, CLI_FAILED, "out of memory");
  }
  rc = engine_inputs(inputs, n_inputs, run->inputs, &run->n_inputs, ins, &err);
  if (!rc && metrics) /* calibrate the metrics' clock costs before the run is timed */
    (void)rm_metrics_invocation_cost_ns();
  if (!rc) {
    rm_run_opts_t opts = {
        .metrics = metrics,
        .deadline_ns = timeout_ms > 0 ? rm_clock_ns() + (uint64_t)timeout_ms * 1000000ull : 0,
        .end_of_stream = 1,
    };
    rc = rm_pipeline_run(run->pipeline, ins, n_inputs, &opts, &run->result, &err);
  }
  free(ins);
  if (rc) {
    cli_local_free(run);
    return engine_fail(e, &err);
  }
  if ((rc = describe(run, metrics, r, e))) {
    json_decref(r->metrics);
    r->metrics = NULL;
    cli_local_free(run);
    return rc;
  }
  *out = run;
  return 0;
}

/* ------------------------------------------------------------------ validate */

int cli_local_validate(const char *manifest_path, const cli_input_t *inputs, size_t n_inputs,
                       json_t **doc, cli_error_t *e) {
  rm_error_t err;
  rm_error_clear(&err);
  rm_manifest_t *m = NULL;
  if (rm_manifest_from_file(manifest_path, &m, &err))
    return cli_fail(e, CLI_USAGE, "%s: %s", manifest_path, err.message);
  rm_pipeline_t *p = NULL;
  int rc = rm_pipeline_new(m, NULL, &p, &err);
  rm_manifest_free(m);
  size_t n = n_inputs ? n_inputs : 1, n_bufs = 0;
  rm_buffer_t **bufs = calloc(n, sizeof *bufs);
  rm_input_t *ins = calloc(n, sizeof *ins);
  if (!rc && (!bufs || !ins))
    rc = rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
  if (!rc)
    rc = engine_inputs(inputs, n_inputs, bufs, &n_bufs, ins, &err);
  if (!rc)
    rc = rm_pipeline_check_inputs(p, ins, n_inputs, NULL, &err);
  if (!rc) {
    json_t *schedule = json_array();
    for (size_t k = 0; k < rm_pipeline_node_count(p); k++)
      json_array_append_new(schedule, json_string(rm_pipeline_schedule_id(p, k)));
    size_t bytes = rm_pipeline_account(p)->current; /* as the server predicts it */
    for (size_t i = 0; i < n_inputs; i++)
      bytes += inputs[i].buf.size;
    *doc = json_pack("{s:s, s:o, s:I}", "pipeline", rm_pipeline_name(p), "schedule", schedule,
                     "predicted_memory_bytes", (json_int_t)bytes);
    if (!*doc)
      rc = rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  for (size_t i = 0; i < n_bufs; i++)
    rm_buffer_unref(bufs[i]);
  free(bufs);
  free(ins);
  rm_pipeline_free(p);
  return rc ? engine_fail(e, &err) : 0;
}

/* ------------------------------------------------------------------ node types */

void cli_local_node_types_free(Remotemedia__V1__ListNodeTypesResponse *m) {
  rm_wire_node_types_free(m);
}

Remotemedia__V1__ListNodeTypesResponse *cli_local_node_types(void) {
  return rm_wire_node_types_new(); /* exactly what the server's ListNodeTypes publishes */
}
