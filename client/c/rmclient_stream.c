/* rmclient_stream.c - StreamPipeline: a bidirectional call on its own completion queue,
 * with one outstanding send, one outstanding receive and the status batch. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rm/wire_proto.h"
#include "rmclient_int.h"

#define METHOD "/remotemedia.v1.PipelineService/StreamPipeline"

struct rm_client_stream {
  grpc_completion_queue *cq; /* pluck: each wait names its batch */
  grpc_call *call;
  /* send side: at most one SEND_MESSAGE batch at a time */
  grpc_byte_buffer *send_buf; /* the message in flight, NULL when none */
  int send_pending;           /* its batch has not been plucked yet */
  int send_ok;                /* its batch succeeded */
  int half_closed;            /* close_send done: nothing more may be sent */
  char send_tag;
  /* receive side */
  grpc_metadata_array initial;
  grpc_byte_buffer *recv_buf;
  int recv_pending;
  int recv_ok;
  char recv_tag;
  /* the status batch, started at open */
  pthread_mutex_t status_mu;
  int status_done;
  grpc_status_code status;
  grpc_slice details;
  grpc_metadata_array trailing;
  char status_tag;
  /* what the server said */
  Remotemedia__V1__StreamResponse *ready;   /* owns the StreamReady */
  Remotemedia__V1__StreamResponse *metrics; /* the latest metrics message */
  int ended;                                /* EEND or ESTATUS already seen */
};

struct rm_client_stream_result {
  Remotemedia__V1__StreamResponse *msg;
  rm_client_output_t *outputs;
  size_t n_outputs;
  rm_client_buffer_t *items;
};

/* ------------------------------------------------------------------ the status */

/* Waits for the call's status (it has ended, or ends by its deadline) and turns it into
 * RM_CLIENT_EEND (OK) or the status error. */
static int stream_status(rm_client_stream_t *s, rm_client_error_t *err) {
  pthread_mutex_lock(&s->status_mu);
  if (!s->status_done) {
    grpc_completion_queue_pluck(s->cq, &s->status_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    s->status_done = 1;
  }
  pthread_mutex_unlock(&s->status_mu);
  s->ended = 1;
  if (s->status == GRPC_STATUS_OK)
    return rm__client_fail(err, RM_CLIENT_EEND, "the stream has ended");
  return rm__client_status_error(err, s->status, s->details, &s->trailing);
}

/* ------------------------------------------------------------------ sending */

/* Waits for the message in flight (if any) to reach the transport. 0, or the stream's
 * end (a failed send means the call is over: its status says why). */
static int send_wait(rm_client_stream_t *s, rm_client_error_t *err) {
  if (s->send_pending) {
    grpc_event ev =
        grpc_completion_queue_pluck(s->cq, &s->send_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    s->send_pending = 0;
    s->send_ok = ev.type == GRPC_OP_COMPLETE && ev.success;
  }
  if (s->send_buf) {
    grpc_byte_buffer_destroy(s->send_buf);
    s->send_buf = NULL;
  }
  if (!s->send_ok)
    return stream_status(s, err);
  return 0;
}

/* Starts sending req (and, with half_close, SEND_CLOSE_FROM_CLIENT after it); the first
 * message also carries the initial metadata md[0..n_md). */
static int send_start(rm_client_stream_t *s, const Remotemedia__V1__StreamRequest *req,
                      int half_close, const grpc_metadata *md, size_t n_md, uint32_t md_flags,
                      rm_client_error_t *err) {
  int rc = send_wait(s, err);
  if (rc)
    return rc;
  if (s->ended) /* a receive saw the end: every later call reports it */
    return stream_status(s, err);
  if (s->half_closed)
    return rm__client_fail(err, RM_CLIENT_EEND, "the stream is closed for sending");
  size_t len = remotemedia__v1__stream_request__get_packed_size(req);
  grpc_slice payload = grpc_slice_malloc(len);
  remotemedia__v1__stream_request__pack(req, GRPC_SLICE_START_PTR(payload));
  s->send_buf = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);
  grpc_op ops[3];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  if (md) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = n_md;
    ops[n].data.send_initial_metadata.metadata = n_md ? (grpc_metadata *)md : NULL;
    ops[n++].flags = md_flags;
  }
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = s->send_buf;
  if (half_close) {
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    s->half_closed = 1;
  }
  grpc_call_error ce = grpc_call_start_batch(s->call, ops, n, &s->send_tag, NULL);
  if (ce != GRPC_CALL_OK)
    return rm__client_fail(err, RM_CLIENT_EINTERNAL, "grpc_call_start_batch failed: %s",
                           grpc_call_error_to_string(ce));
  s->send_pending = 1;
  return 0;
}

int rm_client_stream_send(rm_client_stream_t *s, const char *node_id,
                          const rm_client_buffer_t *buffer, uint64_t sequence,
                          rm_client_error_t *err) {
  if (!s || !buffer)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "stream and buffer are required");
  rm_client_input_t in = {node_id && *node_id ? node_id : "(source)", *buffer};
  int rc = rm__client_check_input(&in, (size_t)sequence, err);
  if (rc)
    return rc;
  rm__client_wire_t w;
  rm__client_to_wire(buffer, &w);
  Remotemedia__V1__StreamData data = REMOTEMEDIA__V1__STREAM_DATA__INIT;
  data.node_id = (char *)(node_id ? node_id : "");
  data.buffer = &w.msg;
  data.sequence = sequence;
  Remotemedia__V1__StreamRequest req = REMOTEMEDIA__V1__STREAM_REQUEST__INIT;
  req.message_case = REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_DATA;
  req.data = &data;
  return send_start(s, &req, 0, NULL, 0, 0, err);
}

static int send_control(rm_client_stream_t *s, Remotemedia__V1__StreamControl__Kind kind,
                        int half_close, rm_client_error_t *err) {
  Remotemedia__V1__StreamControl ctl = REMOTEMEDIA__V1__STREAM_CONTROL__INIT;
  ctl.kind = kind;
  Remotemedia__V1__StreamRequest req = REMOTEMEDIA__V1__STREAM_REQUEST__INIT;
  req.message_case = REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_CONTROL;
  req.control = &ctl;
  return send_start(s, &req, half_close, NULL, 0, 0, err);
}

int rm_client_stream_flush(rm_client_stream_t *s, rm_client_error_t *err) {
  if (!s)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "stream is required");
  return send_control(s, REMOTEMEDIA__V1__STREAM_CONTROL__KIND__KIND_FLUSH, 0, err);
}

int rm_client_stream_close_send(rm_client_stream_t *s, rm_client_error_t *err) {
  if (!s)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "stream is required");
  return send_control(s, REMOTEMEDIA__V1__STREAM_CONTROL__KIND__KIND_CLOSE, 1, err);
}

/* ------------------------------------------------------------------ receiving */

static void result_free(rm_client_stream_result_t *r) {
  if (!r)
    return;
  if (r->msg)
    remotemedia__v1__stream_response__free_unpacked(r->msg, NULL);
  free(r->outputs);
  free(r->items);
  free(r);
}

/* A result wrapping msg (taken even on failure): 0 and *out, or RM_CLIENT_ENOMEM /
 * RM_CLIENT_EPROTO (an inconsistent output) with err filled. */
static int result_new(Remotemedia__V1__StreamResponse *msg, rm_client_stream_result_t **out,
                      rm_client_error_t *err) {
  const Remotemedia__V1__StreamResult *res = msg->result;
  size_t n = res->n_outputs;
  rm_client_stream_result_t *r = calloc(1, sizeof *r);
  const char **keys = calloc(n ? n : 1, sizeof *keys);
  Remotemedia__V1__NodeOutput **values = calloc(n ? n : 1, sizeof *values);
  int rc = 0;
  if (!(r && keys && values))
    rc = rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  if (!rc) {
    for (size_t i = 0; i < n; i++) {
      keys[i] = res->outputs[i]->key;
      values[i] = res->outputs[i]->value;
    }
    rc = rm__client_outputs_build(n, keys, values, &r->outputs, &r->items, err);
  }
  free(keys);
  free(values);
  if (rc) {
    free(r);
    remotemedia__v1__stream_response__free_unpacked(msg, NULL);
    return rc;
  }
  r->msg = msg;
  r->n_outputs = n;
  *out = r;
  return 0;
}

/* Ends the call after the server sent something unusable: cancels it, waits for its end
 * (so every later call reports the stream as over) and returns rc, err as it is. */
static int protocol_end(rm_client_stream_t *s, int rc) {
  grpc_call_cancel(s->call, NULL);
  stream_status(s, NULL);
  return rc;
}

/* Waits (until deadline) for the next message: 0 and *out, RM_CLIENT_ETIMEDOUT, or the
 * stream's end. */
static int recv_message(rm_client_stream_t *s, gpr_timespec deadline,
                        Remotemedia__V1__StreamResponse **out, rm_client_error_t *err) {
  if (s->ended)
    return stream_status(s, err);
  if (!s->recv_pending) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_buf;
    grpc_call_error ce = grpc_call_start_batch(s->call, &op, 1, &s->recv_tag, NULL);
    if (ce != GRPC_CALL_OK)
      return rm__client_fail(err, RM_CLIENT_EINTERNAL, "grpc_call_start_batch failed: %s",
                             grpc_call_error_to_string(ce));
    s->recv_pending = 1;
  }
  grpc_event ev = grpc_completion_queue_pluck(s->cq, &s->recv_tag, deadline, NULL);
  if (ev.type == GRPC_QUEUE_TIMEOUT)
    return rm__client_fail(err, RM_CLIENT_ETIMEDOUT, "no result yet");
  s->recv_pending = 0;
  grpc_byte_buffer *bb = s->recv_buf;
  s->recv_buf = NULL;
  if (ev.type != GRPC_OP_COMPLETE || !ev.success || !bb) {
    if (bb)
      grpc_byte_buffer_destroy(bb);
    return stream_status(s, err); /* the server ended the stream */
  }
  ProtobufCMessage *msg = NULL;
  int rc = rm__client_unpack(&remotemedia__v1__stream_response__descriptor, bb, &msg, err);
  grpc_byte_buffer_destroy(bb);
  *out = (Remotemedia__V1__StreamResponse *)msg;
  return rc ? protocol_end(s, rc) : 0;
}

static gpr_timespec wait_deadline(int64_t timeout_ms) {
  if (timeout_ms < 0)
    return gpr_inf_future(GPR_CLOCK_REALTIME); /* the call's own deadline ends the wait */
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

/* The next result (metrics are kept and skipped). */
static int recv_result(rm_client_stream_t *s, gpr_timespec deadline,
                       rm_client_stream_result_t **out, rm_client_error_t *err) {
  for (;;) {
    Remotemedia__V1__StreamResponse *msg = NULL;
    int rc = recv_message(s, deadline, &msg, err);
    if (rc)
      return rc;
    switch (msg->message_case) {
    case REMOTEMEDIA__V1__STREAM_RESPONSE__MESSAGE_METRICS:
      rc = rm__client_check_metrics(msg->metrics ? msg->metrics->metrics : NULL, err);
      if (rc) {
        remotemedia__v1__stream_response__free_unpacked(msg, NULL);
        return protocol_end(s, rc);
      }
      if (s->metrics)
        remotemedia__v1__stream_response__free_unpacked(s->metrics, NULL);
      s->metrics = msg;
      continue;
    case REMOTEMEDIA__V1__STREAM_RESPONSE__MESSAGE_RESULT:
      rc = result_new(msg, out, err);
      return rc == RM_CLIENT_EPROTO ? protocol_end(s, rc) : rc;
    default:
      remotemedia__v1__stream_response__free_unpacked(msg, NULL);
      return protocol_end(s, rm__client_fail(err, RM_CLIENT_EPROTO,
                                             "the server sent a second ready or an empty "
                                             "message in the stream"));
    }
  }
}

int rm_client_stream_recv(rm_client_stream_t *s, rm_client_stream_result_t **out,
                          int64_t timeout_ms, rm_client_error_t *err) {
  if (!s || !out)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "stream and out are required");
  return recv_result(s, wait_deadline(timeout_ms), out, err);
}

int rm_client_stream_close(rm_client_stream_t *s, json_t **metrics, rm_client_error_t *err) {
  if (!s)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "stream is required");
  if (metrics)
    *metrics = NULL;
  int rc = 0;
  if (!s->half_closed && !s->ended)
    rc = rm_client_stream_close_send(s, err);
  while (!rc) {
    rm_client_stream_result_t *r = NULL;
    rc = recv_result(s, gpr_inf_future(GPR_CLOCK_REALTIME), &r, err);
    result_free(r);
  }
  if (rc != RM_CLIENT_EEND)
    return rc;
  if (metrics)
    *metrics = rm_client_stream_metrics_json(s);
  return 0;
}

const Remotemedia__V1__PipelineMetrics *rm_client_stream_metrics(const rm_client_stream_t *s) {
  return s && s->metrics && s->metrics->metrics ? s->metrics->metrics->metrics : NULL;
}

json_t *rm_client_stream_metrics_json(const rm_client_stream_t *s) {
  const Remotemedia__V1__PipelineMetrics *m = rm_client_stream_metrics(s);
  return m ? rm_client_metrics_to_json(m) : NULL;
}

const Remotemedia__V1__StreamReady *rm_client_stream_ready(const rm_client_stream_t *s) {
  return s ? s->ready->ready : NULL;
}

/* ------------------------------------------------------------------ open / free */

void rm_client_stream_free(rm_client_stream_t *s) {
  if (!s)
    return;
  if (s->call) {
    if (!s->status_done)
      grpc_call_cancel(s->call, NULL);
    gpr_timespec inf = gpr_inf_future(GPR_CLOCK_REALTIME);
    if (s->send_pending)
      grpc_completion_queue_pluck(s->cq, &s->send_tag, inf, NULL);
    if (s->recv_pending)
      grpc_completion_queue_pluck(s->cq, &s->recv_tag, inf, NULL);
    if (!s->status_done)
      grpc_completion_queue_pluck(s->cq, &s->status_tag, inf, NULL);
    grpc_call_unref(s->call);
  }
  if (s->send_buf)
    grpc_byte_buffer_destroy(s->send_buf);
  if (s->recv_buf)
    grpc_byte_buffer_destroy(s->recv_buf);
  grpc_completion_queue_shutdown(s->cq);
  grpc_completion_queue_destroy(s->cq);
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->initial);
  grpc_metadata_array_destroy(&s->trailing);
  pthread_mutex_destroy(&s->status_mu);
  if (s->ready)
    remotemedia__v1__stream_response__free_unpacked(s->ready, NULL);
  if (s->metrics)
    remotemedia__v1__stream_response__free_unpacked(s->metrics, NULL);
  free(s);
}

/* The call with its status batch and initial-metadata receive started. */
static int stream_start(rm_client_t *c, int64_t timeout_ms, rm_client_stream_t *s,
                        rm_client_error_t *err) {
  s->cq = grpc_completion_queue_create_for_pluck(NULL);
  s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
                                     grpc_slice_from_static_string(METHOD), NULL,
                                     rm__client_deadline(c, timeout_ms), NULL);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing;
  ops[0].data.recv_status_on_client.status = &s->status;
  ops[0].data.recv_status_on_client.status_details = &s->details;
  grpc_call_error ce = grpc_call_start_batch(s->call, ops, 1, &s->status_tag, NULL);
  if (ce == GRPC_CALL_OK) {
    ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[0].data.recv_initial_metadata.recv_initial_metadata = &s->initial;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &s->recv_buf;
    ce = grpc_call_start_batch(s->call, ops, 2, &s->recv_tag, NULL);
    if (ce == GRPC_CALL_OK)
      s->recv_pending = 1;
  } else {
    s->status_done = 1; /* nothing to wait for */
  }
  if (ce != GRPC_CALL_OK)
    return rm__client_fail(err, RM_CLIENT_EINTERNAL, "grpc_call_start_batch failed: %s",
                           grpc_call_error_to_string(ce));
  return 0;
}

static int send_init(rm_client_t *c, rm_client_stream_t *s, const char *manifest_json,
                     const rm_client_stream_opts_t *o, rm_client_error_t *err) {
  Remotemedia__V1__PipelineManifest *manifest = NULL;
  int rc = rm__client_manifest_from_json(manifest_json, &manifest, err);
  if (rc)
    return rc;
  Remotemedia__V1__ExecutionLimits limits;
  int has_limits = rm__client_limits_to_proto(&o->limits, &limits);
  Remotemedia__V1__StreamInit init = REMOTEMEDIA__V1__STREAM_INIT__INIT;
  init.manifest = manifest;
  init.enable_metrics = o->enable_metrics != 0;
  init.limits = has_limits ? &limits : NULL;
  init.client_version = "rmclient-c/" RM_CLIENT_VERSION;
  init.output_nodes = (char **)o->output_nodes;
  init.n_output_nodes = o->n_output_nodes;
  init.metrics_every_chunks = o->metrics_every_chunks;
  init.metrics_every_ms = o->metrics_every_ms;
  Remotemedia__V1__StreamRequest req = REMOTEMEDIA__V1__STREAM_REQUEST__INIT;
  req.message_case = REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_INIT;
  req.init = &init;

  grpc_metadata md[2];
  size_t n_md = 0;
  memset(md, 0, sizeof md);
  if (c->auth_value) { /* static: the client outlives its streams */
    md[n_md].key = grpc_slice_from_static_string("authorization");
    md[n_md++].value = grpc_slice_from_static_buffer(c->auth_value, c->auth_len);
  }
  if (o->request_id && *o->request_id) { /* copied: the caller's text may not outlive us */
    md[n_md].key = grpc_slice_from_static_string("x-request-id");
    md[n_md++].value = grpc_slice_from_copied_string(o->request_id);
  }
  rc = send_start(s, &req, 0, md, n_md,
                  c->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0, err);
  /* the core copied the metadata when the batch started */
  if (o->request_id && *o->request_id)
    grpc_slice_unref(md[n_md - 1].value);
  rm_wire_manifest_proto_free(manifest);
  return rc;
}

int rm_client_stream_open(rm_client_t *c, const char *manifest_json,
                          const rm_client_stream_opts_t *opts, rm_client_stream_t **out,
                          rm_client_error_t *err) {
  static const rm_client_stream_opts_t defaults;
  if (!c || !manifest_json || !out)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "client, manifest and out are required");
  if (!opts)
    opts = &defaults;
  if (opts->n_output_nodes && !opts->output_nodes)
    return rm__client_fail(err, RM_CLIENT_EINVAL, "output_nodes is NULL");
  if (opts->request_id && rm__client_check_metadata(opts->request_id, "request_id", err))
    return RM_CLIENT_EINVAL;
  rm_client_stream_t *s = calloc(1, sizeof *s);
  if (!s)
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  pthread_mutex_init(&s->status_mu, NULL);
  grpc_metadata_array_init(&s->initial);
  grpc_metadata_array_init(&s->trailing);
  s->details = grpc_empty_slice();
  s->send_ok = 1;
  int rc = stream_start(c, opts->timeout_ms, s, err);
  if (!rc)
    rc = send_init(c, s, manifest_json, opts, err);
  Remotemedia__V1__StreamResponse *msg = NULL;
  if (!rc)
    rc = recv_message(s, gpr_inf_future(GPR_CLOCK_REALTIME), &msg, err);
  if (!rc && msg->message_case != REMOTEMEDIA__V1__STREAM_RESPONSE__MESSAGE_READY) {
    remotemedia__v1__stream_response__free_unpacked(msg, NULL);
    rc = rm__client_fail(err, RM_CLIENT_EPROTO, "the server's first message is not ready");
  }
  if (rc == RM_CLIENT_EEND) /* OK without ready */
    rc = rm__client_fail(err, RM_CLIENT_EPROTO, "the server ended the stream before ready");
  if (rc) {
    rm_client_stream_free(s);
    return rc;
  }
  s->ready = msg;
  *out = s;
  return 0;
}

/* ------------------------------------------------------------------ results */

uint64_t rm_client_stream_result_sequence(const rm_client_stream_result_t *r) {
  return r ? r->msg->result->sequence : 0;
}

int rm_client_stream_result_has_sequence(const rm_client_stream_result_t *r) {
  if (!r)
    return 0;
  const Remotemedia__V1__StreamResult *res = r->msg->result;
  /* a chunk's result always answers one (a server before the field had presence sent none
   * for chunk 0) */
  return !res->flushed ||
         res->sequence_present_case == REMOTEMEDIA__V1__STREAM_RESULT__SEQUENCE_PRESENT_SEQUENCE;
}

int rm_client_stream_result_flushed(const rm_client_stream_result_t *r) {
  return r ? r->msg->result->flushed : 0;
}

uint64_t rm_client_stream_result_processing_ns(const rm_client_stream_result_t *r) {
  return r ? r->msg->result->processing_ns : 0;
}

size_t rm_client_stream_result_count(const rm_client_stream_result_t *r) {
  return r ? r->n_outputs : 0;
}

const rm_client_output_t *rm_client_stream_result_output(const rm_client_stream_result_t *r,
                                                         size_t i) {
  return r && i < r->n_outputs ? &r->outputs[i] : NULL;
}

const rm_client_output_t *rm_client_stream_result_find(const rm_client_stream_result_t *r,
                                                       const char *key) {
  return r ? rm__client_outputs_find(r->outputs, r->n_outputs, key) : NULL;
}

void rm_client_stream_result_free(rm_client_stream_result_t *r) { result_free(r); }
