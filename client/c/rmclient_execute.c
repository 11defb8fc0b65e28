/* rmclient_execute.c - ExecutePipeline: input views to the request message, the response
 * to a result of output views, and the metrics message to the seed's JSON. */
#include <stdlib.h>
#include <string.h>

#include "rm/wire_proto.h"
#include "rmclient_int.h"

static int execute_request(rm_client_t *c, const Remotemedia__V1__ExecuteRequest *req,
                           int64_t timeout_ms, const char *request_id, rm_client_result_t **out,
                           rm_client_error_t *err);

/* ------------------------------------------------------------------ buffer views */

rm_client_buffer_t rm_client_buffer_audio(const void *samples, size_t bytes, uint32_t sample_rate,
                                          uint32_t channels, rm_client_audio_format_t format) {
  rm_client_buffer_t b = {.kind = RM_CLIENT_AUDIO,
                          .data = samples,
                          .size = bytes,
                          .sample_rate = sample_rate,
                          .channels = channels,
                          .format = format};
  return b;
}

rm_client_buffer_t rm_client_buffer_tensor(const void *data, size_t bytes, rm_client_dtype_t dtype,
                                           const int64_t *shape, size_t ndim) {
  rm_client_buffer_t b = {.kind = RM_CLIENT_TENSOR,
                          .data = data,
                          .size = bytes,
                          .dtype = dtype,
                          .shape = shape,
                          .ndim = ndim};
  return b;
}

rm_client_buffer_t rm_client_buffer_json(const char *json) {
  rm_client_buffer_t b = {.kind = RM_CLIENT_JSON, .data = json, .size = json ? strlen(json) : 0};
  return b;
}

rm_client_buffer_t rm_client_buffer_text(const char *text) {
  rm_client_buffer_t b = {.kind = RM_CLIENT_TEXT, .data = text, .size = text ? strlen(text) : 0};
  return b;
}

rm_client_buffer_t rm_client_buffer_binary(const void *data, size_t bytes, const char *mime_type) {
  rm_client_buffer_t b = {
      .kind = RM_CLIENT_BINARY, .data = data, .size = bytes, .mime_type = mime_type};
  return b;
}

size_t rm_client_audio_format_size(int format) {
  switch (format) {
  case RM_CLIENT_F32: return 4;
  case RM_CLIENT_I16: return 2;
  case RM_CLIENT_I32: return 4;
  case RM_CLIENT_F64: return 8;
  default: return 0;
  }
}

const char *rm_client_audio_format_name(int format) {
  switch (format) {
  case RM_CLIENT_F32: return "f32";
  case RM_CLIENT_I16: return "i16";
  case RM_CLIENT_I32: return "i32";
  case RM_CLIENT_F64: return "f64";
  default: return NULL;
  }
}

size_t rm_client_dtype_size(int dtype) {
  switch (dtype) {
  case RM_CLIENT_DTYPE_U8: return 1;
  case RM_CLIENT_DTYPE_I16: return 2;
  case RM_CLIENT_DTYPE_F32:
  case RM_CLIENT_DTYPE_I32: return 4;
  case RM_CLIENT_DTYPE_F64:
  case RM_CLIENT_DTYPE_I64: return 8;
  default: return 0;
  }
}

const char *rm_client_dtype_name(int dtype) {
  static const char *const names[] = {NULL, "f32", "f64", "i32", "i64", "u8", "i16"};
  return dtype >= 1 && dtype <= RM_CLIENT_DTYPE_I16 ? names[dtype] : NULL;
}

const char *rm_client_kind_name(int kind) {
  switch (kind) {
  case RM_CLIENT_AUDIO: return "audio";
  case RM_CLIENT_TENSOR: return "tensor";
  case RM_CLIENT_JSON: return "json";
  case RM_CLIENT_TEXT: return "text";
  case RM_CLIENT_BINARY: return "binary";
  default: return "unknown";
  }
}

/* ------------------------------------------------------------------ the request */

int rm__client_check_input(const rm_client_input_t *in, size_t i, rm_client_error_t *err) {
  const rm_client_buffer_t *b = &in->buffer;
  if (!in->node_id || !*in->node_id)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "inputs[%zu] has no node id", i);
  if (b->kind < RM_CLIENT_AUDIO || b->kind > RM_CLIENT_BINARY)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "input for node '%s': unknown kind %d",
                           in->node_id, (int)b->kind);
  if (!b->data && (b->size || b->kind == RM_CLIENT_JSON || b->kind == RM_CLIENT_TEXT))
    return rm__client_fail(err, RM_CLIENT_EINVAL, "input for node '%s': data is NULL", in->node_id);
  if (b->kind == RM_CLIENT_TENSOR && b->ndim && !b->shape)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "input for node '%s': shape is NULL",
                           in->node_id);
  return 0;
}

int rm__client_limits_to_proto(const rm_client_limits_t *in,
                               Remotemedia__V1__ExecutionLimits *out) {
  remotemedia__v1__execution_limits__init(out);
  out->max_nodes = in->max_nodes;
  out->max_audio_samples = in->max_audio_samples;
  out->max_input_bytes = in->max_input_bytes;
  out->max_execution_ms = in->max_execution_ms;
  return out->max_nodes || out->max_audio_samples || out->max_input_bytes || out->max_execution_ms;
}

void rm__client_to_wire(const rm_client_buffer_t *b, rm__client_wire_t *w) {
  remotemedia__v1__data_buffer__init(&w->msg);
  switch (b->kind) {
  case RM_CLIENT_AUDIO:
    remotemedia__v1__audio_buffer__init(&w->u.audio);
    w->u.audio.samples.data = (uint8_t *)b->data;
    w->u.audio.samples.len = b->size;
    w->u.audio.sample_rate = b->sample_rate;
    w->u.audio.channels = b->channels;
    w->u.audio.format = (Remotemedia__V1__AudioFormat)b->format;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
    w->msg.audio = &w->u.audio;
    break;
  case RM_CLIENT_TENSOR:
    remotemedia__v1__tensor_buffer__init(&w->u.tensor);
    w->u.tensor.data.data = (uint8_t *)b->data;
    w->u.tensor.data.len = b->size;
    w->u.tensor.shape = (int64_t *)b->shape;
    w->u.tensor.n_shape = b->ndim;
    w->u.tensor.dtype = (Remotemedia__V1__TensorDtype)b->dtype;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_TENSOR;
    w->msg.tensor = &w->u.tensor;
    break;
  case RM_CLIENT_JSON:
    remotemedia__v1__json_buffer__init(&w->u.json);
    w->u.json.json = (char *)b->data;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_JSON;
    w->msg.json = &w->u.json;
    break;
  case RM_CLIENT_TEXT:
    remotemedia__v1__text_buffer__init(&w->u.text);
    w->u.text.text = (char *)b->data;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_TEXT;
    w->msg.text = &w->u.text;
    break;
  case RM_CLIENT_BINARY:
    remotemedia__v1__binary_buffer__init(&w->u.binary);
    w->u.binary.data.data = (uint8_t *)b->data;
    w->u.binary.data.len = b->size;
    if (b->mime_type)
      w->u.binary.mime_type = (char *)b->mime_type;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY;
    w->msg.binary = &w->u.binary;
    break;
  }
}

/* The wire manifest for the JSON text, read by the wire layer (the same reader as the
 * engine's): its shape errors are RM_CLIENT_EMANIFEST with the same message. */
int rm__client_manifest_from_json(const char *text, Remotemedia__V1__PipelineManifest **out,
                                  rm_client_error_t *err) {
  rm_error_t e;
  int rc = rm_wire_manifest_proto_from_text(text, strlen(text), out, &e);
  if (rc)
    return rm__client_fail(err, rc == RM_ENOMEM ? RM_CLIENT_ENOMEM : RM_CLIENT_EMANIFEST, "%s",
                           e.message);
  return 0;
}

/* Builds the ExecuteRequest for the arguments of rm_client_execute and hands it to fn
 * (which must not keep it); returns what fn returns, or the building error. */
typedef int (*request_fn)(const Remotemedia__V1__ExecuteRequest *req, void *arg,
                          rm_client_error_t *err);

static int with_request(const char *manifest_json, const rm_client_input_t *inputs, size_t n_inputs,
                        const rm_client_exec_opts_t *opts, request_fn fn, void *arg,
                        rm_client_error_t *err) {
  static const rm_client_exec_opts_t defaults;
  if (!opts)
    opts = &defaults;
  if (opts->n_output_nodes && !opts->output_nodes)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "output_nodes is NULL");
  for (size_t i = 0; i < n_inputs; i++) {
    int rc = rm__client_check_input(&inputs[i], i, err);
    if (rc)
      return rc;
  }
  Remotemedia__V1__PipelineManifest *manifest = NULL;
  int rc = rm__client_manifest_from_json(manifest_json, &manifest, err);
  if (rc)
    return rc;
  size_t n = n_inputs ? n_inputs : 1;
  rm__client_wire_t *wires = calloc(n, sizeof *wires);
  Remotemedia__V1__ExecuteRequest__InputsEntry *entries = calloc(n, sizeof *entries);
  Remotemedia__V1__ExecuteRequest__InputsEntry **ptrs = calloc(n, sizeof *ptrs);
  if (!wires || !entries || !ptrs) {
    rc = rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  } else {
    for (size_t i = 0; i < n_inputs; i++) {
      rm__client_to_wire(&inputs[i].buffer, &wires[i]);
      remotemedia__v1__execute_request__inputs_entry__init(&entries[i]);
      entries[i].key = (char *)inputs[i].node_id;
      entries[i].value = &wires[i].msg;
      ptrs[i] = &entries[i];
    }
    Remotemedia__V1__ExecutionLimits limits;
    int has_limits = rm__client_limits_to_proto(&opts->limits, &limits);
    Remotemedia__V1__ExecuteRequest req = REMOTEMEDIA__V1__EXECUTE_REQUEST__INIT;
    req.manifest = manifest;
    req.inputs = ptrs;
    req.n_inputs = n_inputs;
    req.enable_metrics = opts->enable_metrics != 0;
    req.limits = has_limits ? &limits : NULL;
    req.client_version = "rmclient-c/" RM_CLIENT_VERSION;
    req.output_nodes = (char **)opts->output_nodes;
    req.n_output_nodes = opts->n_output_nodes;
    rc = fn(&req, arg, err);
  }
  free(wires);
  free(entries);
  free(ptrs);
  rm_wire_manifest_proto_free(manifest);
  return rc;
}

typedef struct execute_call {
  rm_client_t *c;
  int64_t timeout_ms;
  const char *request_id;
  void *out;
} execute_call_t;

static int execute_fn(const Remotemedia__V1__ExecuteRequest *req, void *arg,
                      rm_client_error_t *err) {
  execute_call_t *a = arg;
  return execute_request(a->c, req, a->timeout_ms, a->request_id, a->out, err);
}

int rm_client_execute(rm_client_t *c, const char *manifest_json, const rm_client_input_t *inputs,
                      size_t n_inputs, const rm_client_exec_opts_t *opts, rm_client_result_t **out,
                      rm_client_error_t *err) {
  if (!c || !manifest_json || !out || (n_inputs && !inputs))
    return rm__client_fail(err, RM_CLIENT_EINVAL, "client, manifest, inputs and out are required");
  if (opts && opts->request_id && rm__client_check_metadata(opts->request_id, "request_id", err))
    return RM_CLIENT_EINVAL;
  execute_call_t a = {c, opts ? opts->timeout_ms : 0, opts ? opts->request_id : NULL, out};
  return with_request(manifest_json, inputs, n_inputs, opts, execute_fn, &a, err);
}

static int validate_fn(const Remotemedia__V1__ExecuteRequest *req, void *arg,
                       rm_client_error_t *err) {
  execute_call_t *a = arg;
  return rm__client_unary(a->c, "/remotemedia.v1.PipelineService/ValidatePipeline", &req->base,
                          &remotemedia__v1__validate_response__descriptor, a->timeout_ms,
                          a->request_id, (ProtobufCMessage **)a->out, err);
}

int rm_client_validate(rm_client_t *c, const char *manifest_json, const rm_client_input_t *inputs,
                       size_t n_inputs, const rm_client_exec_opts_t *opts,
                       Remotemedia__V1__ValidateResponse **out, rm_client_error_t *err) {
  if (!c || !manifest_json || !out || (n_inputs && !inputs))
    return rm__client_fail(err, RM_CLIENT_EINVAL, "client, manifest, inputs and out are required");
  if (opts && opts->request_id && rm__client_check_metadata(opts->request_id, "request_id", err))
    return RM_CLIENT_EINVAL;
  execute_call_t a = {c, opts ? opts->timeout_ms : 0, opts ? opts->request_id : NULL, out};
  return with_request(manifest_json, inputs, n_inputs, opts, validate_fn, &a, err);
}

void rm_client_validation_free(Remotemedia__V1__ValidateResponse *m) {
  if (m)
    remotemedia__v1__validate_response__free_unpacked(m, NULL);
}

typedef struct packed {
  uint8_t **out;
  size_t *len;
} packed_t;

static int pack_fn(const Remotemedia__V1__ExecuteRequest *req, void *arg, rm_client_error_t *err) {
  packed_t *p = arg;
  size_t len = remotemedia__v1__execute_request__get_packed_size(req);
  uint8_t *bytes = malloc(len ? len : 1);
  if (!bytes)
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  *p->len = remotemedia__v1__execute_request__pack(req, bytes);
  *p->out = bytes;
  return 0;
}

int rm_client_request_pack(const char *manifest_json, const rm_client_input_t *inputs,
                           size_t n_inputs, const rm_client_exec_opts_t *opts, uint8_t **out,
                           size_t *len, rm_client_error_t *err) {
  if (!manifest_json || !out || !len || (n_inputs && !inputs))
    return rm__client_fail(err, RM_CLIENT_EINVAL, "manifest, inputs, out and len are required");
  packed_t p = {out, len};
  return with_request(manifest_json, inputs, n_inputs, opts, pack_fn, &p, err);
}

/* ExecutePipeline for a built request, with x-request-id when request_id is not NULL. */
static int execute_request(rm_client_t *c, const Remotemedia__V1__ExecuteRequest *req,
                           int64_t timeout_ms, const char *request_id, rm_client_result_t **out,
                           rm_client_error_t *err) {
  ProtobufCMessage *msg = NULL;
  int rc = rm__client_unary(c, "/remotemedia.v1.PipelineService/ExecutePipeline", &req->base,
                            &remotemedia__v1__execute_response__descriptor, timeout_ms, request_id,
                            &msg, err);
  if (rc)
    return rc;
  return rm__client_result_new((Remotemedia__V1__ExecuteResponse *)msg, out, err);
}

int rm_client_execute_request(rm_client_t *c, const Remotemedia__V1__ExecuteRequest *req,
                              int64_t timeout_ms, rm_client_result_t **out,
                              rm_client_error_t *err) {
  if (!c || !req || !out)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "client, request and out are required");
  return execute_request(c, req, timeout_ms, NULL, out, err);
}

/* ------------------------------------------------------------------ the result */

struct rm_client_result {
  Remotemedia__V1__ExecuteResponse *resp;
  rm_client_output_t *outputs; /* sorted by key */
  size_t n_outputs;
  rm_client_buffer_t *items; /* every output's items, back to back */
};

static void from_wire(const Remotemedia__V1__DataBuffer *w, rm_client_buffer_t *b) {
  memset(b, 0, sizeof *b);
  switch (w ? w->kind_case : REMOTEMEDIA__V1__DATA_BUFFER__KIND__NOT_SET) {
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO:
    b->kind = RM_CLIENT_AUDIO;
    b->data = w->audio->samples.data;
    b->size = w->audio->samples.len;
    b->sample_rate = w->audio->sample_rate;
    b->channels = w->audio->channels;
    b->format = (rm_client_audio_format_t)w->audio->format;
    break;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TENSOR:
    b->kind = RM_CLIENT_TENSOR;
    b->data = w->tensor->data.data;
    b->size = w->tensor->data.len;
    b->dtype = (rm_client_dtype_t)w->tensor->dtype;
    b->shape = w->tensor->shape;
    b->ndim = w->tensor->n_shape;
    break;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_JSON:
    b->kind = RM_CLIENT_JSON;
    b->data = w->json->json;
    b->size = strlen(w->json->json);
    break;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TEXT:
    b->kind = RM_CLIENT_TEXT;
    b->data = w->text->text;
    b->size = strlen(w->text->text);
    break;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY:
    b->kind = RM_CLIENT_BINARY;
    b->data = w->binary->data.data;
    b->size = w->binary->data.len;
    b->mime_type = w->binary->mime_type;
    break;
  default: /* an empty DataBuffer: kind 0, no data */ break;
  }
}

static int by_key(const void *a, const void *b) {
  return strcmp(((const rm_client_output_t *)a)->key, ((const rm_client_output_t *)b)->key);
}

int rm__client_outputs_build(size_t n, const char *const *keys,
                             Remotemedia__V1__NodeOutput *const *values,
                             rm_client_output_t **outputs, rm_client_buffer_t **items,
                             rm_client_error_t *err) {
  size_t n_items = 0;
  for (size_t i = 0; i < n; i++)
    if (values[i])
      n_items += values[i]->n_items;
  rm_client_output_t *outs = calloc(n ? n : 1, sizeof *outs);
  rm_client_buffer_t *its = calloc(n_items ? n_items : 1, sizeof *its);
  if (!outs || !its) {
    free(outs);
    free(its);
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const Remotemedia__V1__NodeOutput *no = values[i];
    rm_client_output_t *o = &outs[i];
    o->key = keys[i];
    o->node_id = no && no->node_id[0] ? no->node_id : keys[i];
    o->port = no ? no->port : "";
    o->items = &its[k];
    o->n_items = no ? no->n_items : 0;
    for (size_t j = 0; j < o->n_items; j++, k++) {
      from_wire(no->items[j], &its[k]);
      int rc = rm__client_check_item(keys[i], j, &its[k], err);
      if (rc) {
        free(outs);
        free(its);
        return rc;
      }
    }
  }
  qsort(outs, n, sizeof *outs, by_key);
  *outputs = outs;
  *items = its;
  return 0;
}

const rm_client_output_t *rm__client_outputs_find(const rm_client_output_t *outputs, size_t n,
                                                  const char *key) {
  if (!key)
    return NULL;
  rm_client_output_t probe = {.key = key};
  return bsearch(&probe, outputs, n, sizeof *outputs, by_key);
}

int rm__client_result_new(Remotemedia__V1__ExecuteResponse *resp, rm_client_result_t **out,
                          rm_client_error_t *err) {
  rm_client_result_t *r = calloc(1, sizeof *r);
  size_t n = resp->n_outputs;
  const char **keys = calloc(n ? n : 1, sizeof *keys);
  Remotemedia__V1__NodeOutput **values = calloc(n ? n : 1, sizeof *values);
  int rc = rm__client_check_metrics(resp->metrics, err);
  if (!rc && !(r && keys && values))
    rc = rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  if (!rc) {
    for (size_t i = 0; i < n; i++) {
      keys[i] = resp->outputs[i]->key;
      values[i] = resp->outputs[i]->value;
    }
    rc = rm__client_outputs_build(n, keys, values, &r->outputs, &r->items, err);
  }
  free(keys);
  free(values);
  if (rc) {
    free(r);
    remotemedia__v1__execute_response__free_unpacked(resp, NULL);
    return rc;
  }
  r->resp = resp;
  r->n_outputs = n;
  *out = r;
  return 0;
}

void rm_client_result_free(rm_client_result_t *r) {
  if (!r)
    return;
  if (r->resp)
    remotemedia__v1__execute_response__free_unpacked(r->resp, NULL);
  free(r->outputs);
  free(r->items);
  free(r);
}

size_t rm_client_result_count(const rm_client_result_t *r) { return r ? r->n_outputs : 0; }

const rm_client_output_t *rm_client_result_output(const rm_client_result_t *r, size_t i) {
  return r && i < r->n_outputs ? &r->outputs[i] : NULL;
}

const rm_client_output_t *rm_client_result_find(const rm_client_result_t *r, const char *key) {
  return r ? rm__client_outputs_find(r->outputs, r->n_outputs, key) : NULL;
}

const char *rm_client_result_pipeline_name(const rm_client_result_t *r) {
  return r ? r->resp->pipeline_name : NULL;
}

const Remotemedia__V1__PipelineMetrics *rm_client_result_metrics(const rm_client_result_t *r) {
  return r ? r->resp->metrics : NULL;
}

json_t *rm_client_result_metrics_json(const rm_client_result_t *r) {
  return r && r->resp->metrics ? rm_client_metrics_to_json(r->resp->metrics) : NULL;
}

const Remotemedia__V1__ExecuteResponse *rm_client_result_response(const rm_client_result_t *r) {
  return r ? r->resp : NULL;
}

/* ------------------------------------------------------------------ metrics JSON */

json_t *rm_client_metrics_to_json(const Remotemedia__V1__PipelineMetrics *m) {
  return m ? rm_wire_metrics_to_json(m) : NULL; /* the one seed-JSON writer */
}
