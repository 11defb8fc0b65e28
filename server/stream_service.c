/* stream_service.c - StreamPipeline: a session is one compiled pipeline fed chunk by chunk
 * over a bidirectional call, one message in flight at a time (docs/streaming.md). */
#include "stream_service.h"

#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"
#include "rm/registry.h"
#include "rm/wire.h"
#include "stats.h"
#include "status.h"

/* How often the reaper looks at sessions waiting for their client (idle timeout, maximum
 * duration, drain). */
#define REAP_INTERVAL_NS (20ull * 1000000ull)
/* A cancel this close to the client's deadline is the deadline (see pipeline_service.c). */
#define SESSION_ID_LEN 32

typedef enum session_state {
  S_BUSY,    /* one actor (a polling thread or a worker) processes or writes */
  S_READING, /* a read is posted: waiting for the client; the reaper may act */
  S_ENDED,   /* the status is sent or the call is gone: nothing more is posted */
} session_state_t;

typedef struct stream_source {
  const char *node_id; /* borrowed from the manifest */
  const char *type;
  unsigned kinds;
} stream_source_t;

typedef struct session session_t;
struct session {
  pthread_mutex_t mu; /* state, refs */
  session_state_t state;
  int refs;               /* the handler's + a read, a write or a job in flight */
  session_t *prev, *next; /* in the registry */
  rm_call_t *call;
  rm_server_t *server;
  const rm_config_t *cfg;
  char id[SESSION_ID_LEN + 1];
  uint64_t started_ns, read_at_ns, last_metrics_ns;
  /* set by init */
  int inited, counted, metrics, heavy;
  uint32_t every_chunks, every_ms;
  rm_limits_t limits;
  rm_budget_label_t budget_label; /* the session's budget and the setting that sized it */
  uint64_t max_input_bytes, max_execution_ms;
  char **output_nodes;
  size_t n_output_nodes;
  rm_manifest_t *manifest;
  rm_pipeline_t *pipeline;
  stream_source_t *sources;
  size_t n_sources;
  /* progress */
  uint64_t chunks, since_metrics, last_seq;
  int any_seq;
  Remotemedia__V1__StreamRequest *req; /* the message being processed */
  int closing, want_metrics, half_closed;
  size_t peak;
  /* The next step (post_read, metrics, status) runs only once no actor is left: a read
   * callback or a process() still running after its write was posted may be touching the
   * call's read state or the previous run's buffers (s->mu). */
  int acting;    /* actors running: on_read callbacks, process() */
  int step_owed; /* a write completed while an actor ran: the last one takes the step */
  int writing;   /* a write is posted and not completed (s->mu) */
  uint64_t write_at_ns;
  int reaped;     /* the reaper cancelled the call (max-session-ms, a result never read) */
  int maybe_gone; /* it ends for a read without a message: a half-close or the client's going */
  /* for the session's call line (copied: the call may be gone when it is written) */
  grpc_status_code code;
  int client_gone;
  char error_kind[32];
  char error[RM_ERROR_MSG_MAX];
  char request_id[RM_STATUS_REQUEST_ID_MAX + 1];
  char peer[128];
  char pipeline_name[256]; /* the manifest's name once init was read, cut */
};

/* ---------------------------------------------------------------- the registry */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  session_t *head;
  int reaper_running;
} reg = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};

static void *reaper_main(void *arg);

static void registry_add(session_t *s) {
  pthread_mutex_lock(&reg.mu);
  s->next = reg.head;
  if (reg.head)
    reg.head->prev = s;
  reg.head = s;
  if (!reg.reaper_running) {
    pthread_t t;
    if (pthread_create(&t, NULL, reaper_main, NULL) == 0) {
      pthread_detach(t);
      reg.reaper_running = 1;
    } else {
      RM_LOG(RM_LOG_ERROR, "stream_reaper_failed", "{s:s}", "error",
             "could not start the session reaper: idle timeouts are not enforced");
    }
  }
  pthread_mutex_unlock(&reg.mu);
}

static void registry_remove(session_t *s) {
  pthread_mutex_lock(&reg.mu);
  if (s->prev)
    s->prev->next = s->next;
  else
    reg.head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  pthread_cond_broadcast(&reg.cv);
  pthread_mutex_unlock(&reg.mu);
}

/* ---------------------------------------------------------------- lifecycle */

/* The session's one `call` line (docs/observability.md), written when everything it held
 * went back: what a unary call's line says, and the session's own figures. */
static void session_log(session_t *s) {
  if (RM_LOG_INFO < rm_log_threshold)
    return;
  rm_log_line_t line;
  uint64_t end = rm_clock_ns();
  rm_log_line_begin_at(&line, rm_status_is_bug(s->code) ? RM_LOG_ERROR : RM_LOG_INFO, "call", end);
  rm_log_line_plain(&line, "method", "/remotemedia.v1.PipelineService/StreamPipeline");
  rm_log_line_plain(&line, "status", rm_status_name(s->code));
  rm_log_line_int(&line, "code", (int)s->code);
  rm_log_line_us(&line, "duration_us", end - s->started_ns);
  rm_log_line_str(&line, "request_id", s->request_id);
  rm_log_line_str(&line, "peer", s->peer);
  if (s->pipeline_name[0])
    rm_log_line_str(&line, "pipeline", s->pipeline_name);
  if (s->error_kind[0]) {
    rm_log_line_str(&line, "error_kind", s->error_kind);
    rm_log_line_str(&line, "error", s->error);
  }
  if (s->client_gone)
    rm_log_line_bool(&line, "client_gone", 1);
  rm_log_line_str(&line, "session_id", s->id);
  rm_log_line_int(&line, "chunks", (long long)s->chunks);
  rm_log_line_int(&line, "peak_memory_bytes", (long long)s->peak);
  /* after everything the session held went back: tests compare it with the value before */
  rm_log_line_int(&line, "server_memory_used",
                  (long long)rm_budget_used(rm_server_budget(s->server)));
  rm_log_line_end(&line);
}

static void free_request(session_t *s);

/* Frees everything; refs reached 0, so nothing else refers to s. */
static void session_destroy(session_t *s) {
  registry_remove(s);
  free_request(s);
  if (s->pipeline)
    s->peak = rm_budget_peak(rm_pipeline_budget(s->pipeline));
  rm_pipeline_free(s->pipeline);
  rm_manifest_free(s->manifest);
  for (size_t i = 0; i < s->n_output_nodes; i++)
    rm_free(s->output_nodes[i]);
  rm_free(s->output_nodes);
  rm_free(s->sources);
  if (s->counted) {
    rm_server_session_release(s->server);
    rm_stats_session_close();
  }
  session_log(s);
  if (s->peak > RM_SERVER_TRIM_AFTER_BYTES)
    malloc_trim(0);
  pthread_mutex_destroy(&s->mu);
  rm_free(s);
}

static void session_put(session_t *s) {
  pthread_mutex_lock(&s->mu);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&s->mu);
  if (last)
    session_destroy(s);
}

/* Records how the session ended for its call line: err's status (OK when NULL). */
static void record_end(session_t *s, const rm_error_t *err) {
  if (err) {
    s->code = rm_status_from_error(rm_status_code_of(err));
    snprintf(s->error_kind, sizeof s->error_kind, "%s", rm_status_kind(rm_status_code_of(err)));
    snprintf(s->error, sizeof s->error, "%s", rm_status_message_of(err));
  } else {
    s->code = GRPC_STATUS_OK;
    s->error_kind[0] = s->error[0] = '\0';
  }
}

/* Records how the session ended and sends its status; s->mu held, state not S_ENDED. Gives
 * up the handler's references (on the call and on s), which are never the last on s while
 * the caller holds one (an operation in flight or its own). After the reaper cancelled the
 * call, its status stands: the call is only let go. */
static void end_locked(session_t *s, const rm_error_t *err) {
  s->state = S_ENDED;
  s->refs--;
  if (s->reaped) {
    s->client_gone = 0; /* the run failed because the reaper cancelled the call */
    rm_call_unref(s->call);
    return;
  }
  record_end(s, err);
  /* the status's own copies live with the call, outside the server's budget (as for every
   * method but ExecutePipeline), so the budget is back where it was once s is freed */
  rm_budget_t *outer = rm_budget_enter(NULL);
  (s->maybe_gone ? rm_call_finish_unless_gone : rm_call_finish)(s->call, err);
  rm_budget_leave(outer);
}

/* Ends the session with err's status (OK when NULL). The caller holds a reference. */
static void session_end(session_t *s, const rm_error_t *err) {
  pthread_mutex_lock(&s->mu);
  if (s->state != S_ENDED)
    end_locked(s, err);
  pthread_mutex_unlock(&s->mu);
}

/* What a session whose call is gone is logged as, from what the client got (`gone`, a gRPC
 * status) and whether its init had come: UNAVAILABLE is the server cancelling it as it stops,
 * not the client's going. */
static void gone_error(int gone, int inited, rm_error_t *err) {
  int deadline = gone == GRPC_STATUS_DEADLINE_EXCEEDED;
  if (gone == GRPC_STATUS_UNAVAILABLE)
    rm_error_set(err, RM_EUNAVAILABLE, NULL, NULL, "%s", RM_CALL_SERVER_CANCELLED);
  else if (!inited)
    rm_error_set(err, deadline ? RM_ETIMEDOUT : RM_ECANCELED, NULL, NULL,
                 "the stream ended before init: the client cancelled, its deadline passed or its "
                 "connection closed");
  else if (deadline)
    rm_error_set(err, RM_ETIMEDOUT, NULL, NULL, "the call's deadline passed");
  else
    rm_error_set(err, RM_ECANCELED, NULL, NULL,
                 "the client cancelled the call or its connection closed");
}

/* The call of a session that ended for a read without a message has ended (rm_call_at_end): if
 * the status did not reach the client, it had cancelled (or its deadline passed, or its
 * connection closed) rather than half-closed, and the session is logged as that. */
static void maybe_gone_call_ended(void *arg) {
  session_t *s = arg;
  grpc_status_code code = (grpc_status_code)rm_call_client_status(s->call);
  pthread_mutex_lock(&s->mu);
  if (code != s->code) {
    rm_error_t err;
    gone_error(code, 0, &err);
    record_end(s, &err);
    s->client_gone = code != GRPC_STATUS_UNAVAILABLE;
  }
  pthread_mutex_unlock(&s->mu);
  session_put(s); /* the hook's */
}

/* The call is gone (cancelled, deadline, shutdown, or cancelled by the reaper): no status can
 * be sent. Logged as what the client got where the server knows it: the reaper's status, the
 * call's deadline, else CANCELLED. */
static void session_gone(session_t *s) {
  pthread_mutex_lock(&s->mu);
  if (s->state != S_ENDED) {
    s->state = S_ENDED;
    s->refs--;
    if (!s->reaped) {
      rm_error_t err;
      int gone = rm_call_gone_status(s->call);
      gone_error(gone, s->inited, &err);
      record_end(s, &err);
      s->client_gone = gone != GRPC_STATUS_UNAVAILABLE;
    }
    rm_call_unref(s->call);
  }
  pthread_mutex_unlock(&s->mu);
}

/* The reaper ends a session that is busy (a chunk running, or a write the client does not
 * take): its status cannot go out in order behind the write, so the call is cancelled with
 * err's code and message (a cancelled stream carries no trailers). The actor still holds the
 * handler's references and lets them go when its write or run fails (session_gone). s->mu
 * held, state S_BUSY. */
static void cancel_locked(session_t *s, const rm_error_t *err) {
  s->reaped = 1;
  record_end(s, err);
  rm_call_cancel(s->call, err);
}

/* Ends the session with a failure about data chunk `seq`: the message names it and the
 * status carries it (rm-sequence). */
static void fail_chunk(session_t *s, uint64_t seq, rm_error_t *err) {
  char msg[RM_ERROR_MSG_MAX];
  snprintf(msg, sizeof msg, "chunk %" PRIu64 ": %.480s", seq, err->message);
  snprintf(err->message, sizeof err->message, "%s", msg);
  rm_call_set_sequence(s->call, seq);
  session_end(s, err);
}

/* Ends the session with a failure about a flush (FLUSH, CLOSE, the drain or a half-close),
 * identified as its result would have been (sequence, flushed = true): the message names
 * it, "flush after chunk N" (or "flush before any chunk"), and the status carries
 * rm-flushed and, after a chunk, N (rm-sequence). */
static void fail_flush(session_t *s, rm_error_t *err) {
  char msg[RM_ERROR_MSG_MAX];
  if (s->any_seq)
    snprintf(msg, sizeof msg, "flush after chunk %" PRIu64 ": %.470s", s->last_seq, err->message);
  else
    snprintf(msg, sizeof msg, "flush before any chunk: %.470s", err->message);
  snprintf(err->message, sizeof err->message, "%s", msg);
  if (s->any_seq)
    rm_call_set_sequence(s->call, s->last_seq);
  rm_call_set_flushed(s->call);
  session_end(s, err);
}

/* ---------------------------------------------------------------- unpacking */

/* Each message is unpacked with rm_malloc (charged to the server's budget) within twice its
 * size plus 1 MiB of structures, and freed once it is processed. */
typedef struct unpack_budget {
  size_t left;
  int exceeded;
} unpack_budget_t;

static void *pb_alloc(void *data, size_t size) {
  unpack_budget_t *b = data;
  if (size > b->left) {
    b->exceeded = 1;
    return NULL;
  }
  b->left -= size;
  return rm_malloc(size);
}
static void pb_free(void *data, void *ptr) {
  (void)data;
  rm_free(ptr);
}

static unpack_budget_t unpack_left; /* only read by pb_* while unpacking: see free_request */

static void free_message(Remotemedia__V1__StreamRequest *req) {
  if (!req)
    return;
  ProtobufCAllocator a = {pb_alloc, pb_free, &unpack_left};
  protobuf_c_message_free_unpacked(&req->base, &a);
}

static void free_request(session_t *s) {
  free_message(s->req);
  s->req = NULL;
}

static int unpack(session_t *s, const uint8_t *data, size_t len, rm_error_t *err) {
  /* before protobuf-c recurses into it */
  int nesting =
      rm_wire_check_nesting(&remotemedia__v1__stream_request__descriptor, data, len, NULL, err);
  if (nesting == RM_ELIMIT)
    return nesting;
  if (nesting)
    return rm_error_set(err, RM_EBADREQUEST, NULL, NULL,
                        "the message is not a valid remotemedia.v1.StreamRequest");
  unpack_budget_t b = {2 * len + (1u << 20), 0};
  ProtobufCAllocator a = {pb_alloc, pb_free, &b};
  rm_budget_t *outer = rm_budget_enter(rm_server_budget(s->server));
  rm_budget_refusal_clear();
  s->req = (Remotemedia__V1__StreamRequest *)protobuf_c_message_unpack(
      &remotemedia__v1__stream_request__descriptor, &a, len, data);
  int refused = !s->req && rm_budget_refused(NULL);
  rm_budget_leave(outer);
  if (s->req &&
      rm_wire_check_strings(&remotemedia__v1__stream_request__descriptor, data, len, NULL, err)) {
    free_request(s); /* a string protobuf-c cut at a NUL byte, or not UTF-8 */
    return err->code;
  }
  if (s->req)
    return 0;
  if (refused) {
    rm_call_memory_refused(s->call, err, "unpacking the message", len);
    return err->code;
  }
  if (b.exceeded)
    return rm_error_set(err, RM_ELIMIT, NULL, NULL,
                        "a message of %zu bytes unpacks into too many small parts", len);
  return rm_error_set(err, RM_EBADREQUEST, NULL, NULL,
                      "the message is not a valid remotemedia.v1.StreamRequest");
}

/* ---------------------------------------------------------------- writing */

static void post_read(session_t *s);
static void next_step(session_t *s);

/* An actor begins: a read callback or a process(). */
static void act_begin(session_t *s) {
  pthread_mutex_lock(&s->mu);
  s->acting++;
  pthread_mutex_unlock(&s->mu);
}

/* An actor is done with the session's message, run and buffers: when it was the last and a
 * write completed meanwhile, the step after it runs now, on this thread. */
static void act_end(session_t *s) {
  pthread_mutex_lock(&s->mu);
  int step = --s->acting == 0 && s->step_owed;
  if (step)
    s->step_owed = 0;
  pthread_mutex_unlock(&s->mu);
  if (step)
    next_step(s);
}

static void on_written(rm_call_t *call, int ok, void *arg) {
  session_t *s = arg;
  (void)call;
  const char *outer_rid = rm_log_set_request_id(s->request_id);
  pthread_mutex_lock(&s->mu);
  s->writing = 0;
  /* the actor that posted the write may still be freeing what the next chunk's run would
   * use (the result's buffers, in the pipeline's account): the next read waits for it */
  int deferred = ok && s->acting > 0;
  if (deferred)
    s->step_owed = 1;
  pthread_mutex_unlock(&s->mu);
  if (!ok)
    session_gone(s);
  else if (!deferred)
    next_step(s);
  rm_log_set_request_id(outer_rid);
  session_put(s); /* the write's */
}

/* Sends msg (packed now, not retained). 0, or the failure, which has ended the session. */
static int write_msg(session_t *s, Remotemedia__V1__StreamResponse *msg, uint64_t seq) {
  pthread_mutex_lock(&s->mu);
  s->refs++;
  s->writing = 1;
  s->write_at_ns = rm_clock_ns();
  pthread_mutex_unlock(&s->mu);
  int rc = rm_call_write(s->call, &msg->base, on_written, s);
  if (rc) {
    pthread_mutex_lock(&s->mu);
    s->writing = 0;
    pthread_mutex_unlock(&s->mu);
    if (rc == RM_ECANCELED) {
      session_gone(s);
    } else {
      rm_error_t err;
      if (rc == RM_ELIMIT)
        rm_error_set(&err, RM_ELIMIT, NULL, "max_message_bytes",
                     "the response would be %zu bytes, above max-message-bytes %llu",
                     protobuf_c_message_get_packed_size(&msg->base),
                     (unsigned long long)s->cfg->max_message_bytes);
      else
        rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory sending the response");
      /* a result too big to send is its chunk's or its flush's failure */
      int result =
          rc == RM_ELIMIT && msg->message_case == REMOTEMEDIA__V1__STREAM_RESPONSE__MESSAGE_RESULT;
      if (result && msg->result->flushed)
        fail_flush(s, &err);
      else if (result)
        fail_chunk(s, seq, &err);
      else
        session_end(s, &err);
    }
    session_put(s);
  }
  return rc;
}

/* The result of one run, keyed like ExecuteResponse.outputs (each item converted by the
 * wire layer, borrowing the result's bytes), written. Its sequence is seq, set unless the
 * result is a flush's before any data chunk (StreamResult.sequence). 0 or the failure
 * (session ended). */
static int send_result(session_t *s, const rm_result_t *r, uint64_t seq, int flushed,
                       uint64_t processing_ns) {
  size_t n_items = 0;
  for (size_t i = 0; i < r->n_outputs; i++)
    n_items += r->outputs[i].n_items;
  size_t no = r->n_outputs ? r->n_outputs : 1, ni = n_items ? n_items : 1;
  Remotemedia__V1__StreamResult__OutputsEntry *entries = rm_calloc(no, sizeof *entries);
  Remotemedia__V1__StreamResult__OutputsEntry **entry_ptrs = rm_calloc(no, sizeof *entry_ptrs);
  Remotemedia__V1__NodeOutput *outs = rm_calloc(no, sizeof *outs);
  Remotemedia__V1__DataBuffer **item_ptrs = rm_calloc(ni, sizeof *item_ptrs);
  rm_wire_buffer_t *wires = rm_calloc(ni, sizeof *wires);
  int rc = 0;
  if (!entries || !entry_ptrs || !outs || !item_ptrs || !wires) {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory building the result");
    session_end(s, &err);
    rc = RM_ENOMEM;
  } else {
    rm_wire_outputs_to_proto(r, outs, item_ptrs, wires);
    for (size_t i = 0; i < r->n_outputs; i++) {
      remotemedia__v1__stream_result__outputs_entry__init(&entries[i]);
      entries[i].key = r->outputs[i].key;
      entries[i].value = &outs[i];
      entry_ptrs[i] = &entries[i];
    }
    Remotemedia__V1__StreamResult res = REMOTEMEDIA__V1__STREAM_RESULT__INIT;
    if (!flushed || s->any_seq) {
      res.sequence_present_case = REMOTEMEDIA__V1__STREAM_RESULT__SEQUENCE_PRESENT_SEQUENCE;
      res.sequence = seq;
    }
    res.flushed = flushed;
    res.outputs = entry_ptrs;
    res.n_outputs = r->n_outputs;
    res.processing_ns = processing_ns;
    Remotemedia__V1__StreamResponse msg = REMOTEMEDIA__V1__STREAM_RESPONSE__INIT;
    msg.message_case = REMOTEMEDIA__V1__STREAM_RESPONSE__MESSAGE_RESULT;
    msg.result = &res;
    rc = write_msg(s, &msg, seq);
  }
  rm_free(entries);
  rm_free(entry_ptrs);
  rm_free(outs);
  rm_free(item_ptrs);
  rm_free(wires);
  return rc;
}

static int send_metrics(session_t *s, int final) {
  Remotemedia__V1__PipelineMetrics pm = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  if (rm_wire_metrics_to_proto(rm_pipeline_metrics(s->pipeline), &pm)) {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory building the metrics");
    session_end(s, &err);
    return RM_ENOMEM;
  }
  Remotemedia__V1__StreamMetrics sm = REMOTEMEDIA__V1__STREAM_METRICS__INIT;
  sm.metrics = &pm;
  sm.final = final;
  Remotemedia__V1__StreamResponse msg = REMOTEMEDIA__V1__STREAM_RESPONSE__INIT;
  msg.message_case = REMOTEMEDIA__V1__STREAM_RESPONSE__MESSAGE_METRICS;
  msg.metrics = &sm;
  s->since_metrics = 0; /* before the write: once it is posted, the next chunk may run */
  s->last_metrics_ns = rm_clock_ns();
  int rc = write_msg(s, &msg, 0);
  rm_wire_metrics_proto_clear(&pm);
  return rc;
}

/* After a write completed: the metrics still owed, the status of a close, or the next read.
 * S_BUSY, the caller holds a reference. */
static void next_step(session_t *s) {
  pthread_mutex_lock(&s->mu);
  int reaped = s->reaped;
  pthread_mutex_unlock(&s->mu);
  if (reaped) { /* the call is cancelled: nothing more can be sent */
    session_gone(s);
    return;
  }
  if (s->want_metrics) {
    int final = s->closing;
    s->want_metrics = 0;
    send_metrics(s, final);
    return;
  }
  if (s->closing) {
    session_end(s, NULL);
    return;
  }
  post_read(s);
}

/* ---------------------------------------------------------------- processing */

static uint64_t lower(uint64_t server, uint64_t requested) {
  return requested && requested < server ? requested : server;
}

/* The payload bytes of one buffer (what max_input_bytes counts). */
static uint64_t payload_bytes(const Remotemedia__V1__DataBuffer *b) {
  switch (b->kind_case) {
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO: return b->audio->samples.len;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TENSOR: return b->tensor->data.len;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_JSON: return strlen(b->json->json);
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TEXT: return strlen(b->text->text);
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY: return b->binary->data.len;
  default: return 0;
  }
}

/* Run options of one chunk: the per-chunk time limit, the client's deadline, cancellation. */
static rm_run_opts_t run_opts(session_t *s, int *server_deadline) {
  uint64_t client_dl = rm_call_deadline_ns(s->call);
  uint64_t server_dl = rm_clock_ns() + s->max_execution_ms * 1000000ull;
  *server_deadline = !client_dl || server_dl < client_dl;
  return (rm_run_opts_t){
      .metrics = s->metrics,
      .deadline_ns = *server_deadline ? server_dl : client_dl,
      .cancel = rm_call_cancel_flag(s->call),
      .output_nodes = (const char *const *)s->output_nodes,
      .n_output_nodes = s->n_output_nodes,
      /* every node invocation counted as a unary run's are (stats.h) */
      .on_node = rm_stats_counting() ? rm_stats_node : NULL,
  };
}

/* One run of the session's pipeline (a chunk, or a flush when in is NULL), counted as a
 * unary run is: remotemedia_inflight_runs while it runs, its node invocations. */
static int run(session_t *s, const rm_input_t *in, const rm_run_opts_t *opts, rm_result_t **r,
               rm_error_t *err) {
  if (opts->on_node)
    rm_stats_run_begin();
  int rc = in ? rm_pipeline_run(s->pipeline, in, 1, opts, r, err)
              : rm_pipeline_flush(s->pipeline, opts, r, err);
  if (opts->on_node)
    rm_stats_run_end();
  return rc;
}

/* Turns a run's time-outs into the statuses of ExecutePipeline. */
static void run_error(session_t *s, int rc, int server_deadline, rm_error_t *err) {
  int gone = rc == RM_ECANCELED ? rm_call_gone_status(s->call) : GRPC_STATUS_OK;
  /* the client cancelled or its deadline passed (unless reaped), or the server cancelled it */
  if (rc == RM_ECANCELED && gone != GRPC_STATUS_UNAVAILABLE)
    s->client_gone = 1;
  /* as the counters have it (the call's close may have been counted before this run ended) */
  if (gone == GRPC_STATUS_DEADLINE_EXCEEDED)
    rm_error_set(err, RM_ETIMEDOUT, err->node_id, NULL, "deadline exceeded");
  else if (gone == GRPC_STATUS_UNAVAILABLE)
    rm_error_set(err, RM_EUNAVAILABLE, err->node_id, NULL, "%s", RM_CALL_SERVER_CANCELLED);
  else if (rc == RM_ETIMEDOUT && server_deadline)
    rm_error_set(err, RM_ELIMIT, err->node_id, "max_execution_ms",
                 "processing took longer than the execution time limit of %llu ms%s%s%s",
                 (unsigned long long)s->max_execution_ms, err->node_id[0] ? " (at node '" : "",
                 err->node_id, err->node_id[0] ? "')" : "");
  if (!err->code)
    rm_error_set(err, rc, NULL, NULL, "%s", rm_strerror(rc));
}

/* The source node a chunk feeds, or NULL with err filled. */
static const char *chunk_source(session_t *s, const char *node_id, rm_error_t *err) {
  if (!node_id || !node_id[0]) {
    if (s->n_sources == 1)
      return s->sources[0].node_id;
    rm_error_set(err, RM_EINPUT, NULL, "node_id",
                 "the chunk names no source node, and the pipeline has %zu: node_id is needed",
                 s->n_sources);
    return NULL;
  }
  for (size_t i = 0; i < s->n_sources; i++)
    if (strcmp(s->sources[i].node_id, node_id) == 0)
      return s->sources[i].node_id;
  rm_error_set(err, RM_EINPUT, node_id, "node_id",
               "node '%.100s' is not a source node of the pipeline (one without incoming "
               "connections that takes input)",
               node_id);
  return NULL;
}

/* One data message: checks, one run with end_of_stream 0, its result. */
static void process_data(session_t *s, const Remotemedia__V1__StreamData *d) {
  uint64_t t0 = rm_clock_ns();
  uint64_t seq = d->sequence;
  rm_error_t err;
  rm_error_clear(&err);
  if (s->any_seq && seq <= s->last_seq) {
    rm_error_set(&err, RM_EINPUT, NULL, "sequence",
                 "sequence %" PRIu64 " is not above the previous chunk's %" PRIu64, seq,
                 s->last_seq);
    fail_chunk(s, seq, &err);
    return;
  }
  s->any_seq = 1;
  s->last_seq = seq;
  const char *node = chunk_source(s, d->node_id, &err);
  if (!node) {
    fail_chunk(s, seq, &err);
    return;
  }
  if (!d->buffer) {
    rm_error_set(&err, RM_EINPUT, node, "buffer", "the chunk for node '%s' carries no buffer",
                 node);
    fail_chunk(s, seq, &err);
    return;
  }
  uint64_t bytes = payload_bytes(d->buffer);
  if (bytes > s->max_input_bytes) {
    rm_error_set(&err, RM_ELIMIT, node, "max_input_bytes",
                 "the chunk for node '%s' holds %" PRIu64 " bytes, above the limit of %" PRIu64,
                 node, bytes, s->max_input_bytes);
    fail_chunk(s, seq, &err);
    return;
  }
  rm_input_t in = {.node_id = node};
  int rc = rm_wire_buffer_from_proto(d->buffer, NULL, &in.buf, &err);
  if (rc) {
    char msg[RM_ERROR_MSG_MAX], field[RM_ERROR_FIELD_MAX];
    snprintf(msg, sizeof msg, "input for node '%s': %.380s", node, err.message);
    snprintf(field, sizeof field, "%s", err.field);
    rm_error_set(&err, rc, node, field, "%s", msg);
    fail_chunk(s, seq, &err);
    return;
  }
  int server_deadline;
  rm_run_opts_t opts = run_opts(s, &server_deadline);
  rm_result_t *r = NULL;
  rc = run(s, &in, &opts, &r, &err);
  s->chunks++;
  s->since_metrics++;
  if (rc) {
    run_error(s, rc, server_deadline, &err);
    fail_chunk(s, seq, &err);
  } else {
    if (s->metrics &&
        ((s->every_chunks && s->since_metrics >= s->every_chunks) ||
         (s->every_ms && rm_clock_ns() - s->last_metrics_ns >= s->every_ms * 1000000ull)))
      s->want_metrics = 1;
    uint64_t took = rm_clock_ns() - t0;
    rm_stats_chunk(took);
    send_result(s, r, seq, 0, took);
  }
  /* packed by now: the bytes went into the write; the next chunk waits for this actor */
  rm_result_free(r);
  rm_buffer_unref(in.buf);
}

/* FLUSH or CLOSE (or the drain, or the client's half-close): a flush run, its result, and
 * for a close the final metrics and the status. */
static void process_flush(session_t *s, int close) {
  uint64_t t0 = rm_clock_ns();
  rm_error_t err;
  rm_error_clear(&err);
  int server_deadline;
  rm_run_opts_t opts = run_opts(s, &server_deadline);
  rm_result_t *r = NULL;
  int rc = run(s, NULL, &opts, &r, &err);
  if (rc) {
    run_error(s, rc, server_deadline, &err);
    fail_flush(s, &err);
  } else {
    s->closing = close;
    s->want_metrics = close && s->metrics;
    send_result(s, r, s->last_seq, 1, rm_clock_ns() - t0);
  }
  rm_result_free(r);
}

/* The work of one message, under the server's budget (the parent of the pipeline's). */
static void process(session_t *s) {
  /* An actor: once the result's write is posted, its completion may run on a polling
   * thread before this returns, but the next step (the next read, whose chunk would run the
   * pipeline on another thread) waits until this is done with the result, the input and the
   * message (act_end). */
  act_begin(s);
  Remotemedia__V1__StreamRequest *req = s->req;
  s->req = NULL;
  rm_budget_t *outer = rm_budget_enter(rm_server_budget(s->server));
  if (!req) /* drain or half-close */
    process_flush(s, 1);
  else if (req->message_case == REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_DATA)
    process_data(s, req->data);
  else
    process_flush(s, req->control->kind == REMOTEMEDIA__V1__STREAM_CONTROL__KIND__KIND_CLOSE);
  free_message(req);
  rm_budget_leave(outer);
  act_end(s);
}

static void process_job(void *arg) {
  session_t *s = arg;
  const char *outer_rid = rm_log_set_request_id(s->request_id);
  process(s);
  rm_log_set_request_id(outer_rid);
  session_put(s); /* the job's */
}

/* Runs the message here for a light pipeline, on a worker for a heavy one (as unary calls
 * do). S_BUSY. */
static void dispatch(session_t *s) {
  if (!s->heavy) {
    process(s);
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->refs++;
  pthread_mutex_unlock(&s->mu);
  if (rm_server_offload(s->server, process_job, s)) {
    free_request(s);
    rm_error_t err;
    rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL, "the server is shutting down");
    session_end(s, &err);
    session_put(s);
  }
}

/* ---------------------------------------------------------------- init */

static void session_id(char *out) {
  uint8_t raw[SESSION_ID_LEN / 2];
  if (getrandom(raw, sizeof raw, GRND_NONBLOCK) != (ssize_t)sizeof raw) {
    uint64_t t = rm_clock_ns();
    for (size_t i = 0; i < sizeof raw; i++)
      raw[i] = (uint8_t)(t >> (8 * (i % 8))) ^ (uint8_t)i;
  }
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* The nodes a chunk may feed: no incoming connection, an input port. */
static int find_sources(session_t *s, rm_error_t *err) {
  const rm_manifest_t *m = s->manifest;
  s->sources = rm_calloc(m->n_nodes ? m->n_nodes : 1, sizeof *s->sources);
  if (!s->sources)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  for (size_t i = 0; i < m->n_nodes; i++) {
    const rm_node_type_t *t = rm_registry_find(m->nodes[i].type);
    int fed = 0;
    for (size_t c = 0; c < m->n_conns && !fed; c++)
      fed = strcmp(m->conns[c].to, m->nodes[i].id) == 0;
    if (!t || !t->n_inputs || fed)
      continue;
    s->sources[s->n_sources++] =
        (stream_source_t){m->nodes[i].id, m->nodes[i].type, t->inputs[0].kinds};
  }
  if (s->n_sources > 1) {
    /* A chunk feeds one node, and a run needs every source fed (no node's input is
     * optional): such a session could never run a chunk. */
    char names[RM_ERROR_MSG_MAX / 2];
    size_t len = 0;
    for (size_t i = 0; i < s->n_sources && len < sizeof names; i++)
      len += (size_t)snprintf(names + len, sizeof names - len, "%s'%s'", i ? ", " : "",
                              s->sources[i].node_id);
    return rm_error_set(err, RM_EMANIFEST, NULL, "sources",
                        "the pipeline has %zu source nodes (%s): a stream feeds one source node "
                        "per chunk and every chunk runs the whole pipeline, so a streamed "
                        "pipeline needs exactly one (nodes without incoming connections that take "
                        "input)",
                        s->n_sources, names);
  }
  return 0;
}

/* Copies the init's output_nodes, each naming a node of the manifest. */
static int copy_outputs(session_t *s, const Remotemedia__V1__StreamInit *init, rm_error_t *err) {
  if (init->n_output_nodes > s->limits.max_nodes)
    return rm_error_set(err, RM_ELIMIT, NULL, "output_nodes",
                        "init names %zu output_nodes, above the limit of %u", init->n_output_nodes,
                        s->limits.max_nodes);
  if (!init->n_output_nodes)
    return 0;
  s->output_nodes = rm_calloc(init->n_output_nodes, sizeof *s->output_nodes);
  if (!s->output_nodes)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  for (size_t i = 0; i < init->n_output_nodes; i++) {
    const char *spec = init->output_nodes[i];
    size_t len = strcspn(spec, ".");
    int found = 0;
    for (size_t k = 0; k < s->manifest->n_nodes && !found; k++)
      found = strlen(s->manifest->nodes[k].id) == len &&
              strncmp(s->manifest->nodes[k].id, spec, len) == 0;
    if (!found)
      return rm_error_set(err, RM_EINPUT, NULL, "output_nodes",
                          "output_nodes[%zu]: '%.80s' names no node of the pipeline", i, spec);
    if (!(s->output_nodes[i] = rm_strdup(spec)))
      return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    s->n_output_nodes = i + 1;
  }
  return 0;
}

static void effective_limits(session_t *s, const Remotemedia__V1__ExecutionLimits *lim) {
  const rm_config_t *cfg = s->cfg;
  rm_limits_t *out = &s->limits;
  out->max_nodes = (uint32_t)lower(cfg->max_nodes, lim ? lim->max_nodes : 0);
  out->max_audio_samples = lower(cfg->max_audio_samples, lim ? lim->max_audio_samples : 0);
  out->max_buffer_bytes = cfg->max_message_bytes;
  out->max_items = cfg->max_items;
  out->max_memory_bytes = lower(cfg->max_request_memory, lim ? lim->max_memory_bytes : 0);
  /* its refusals name the session's budget and where its size came from */
  s->budget_label.owner = "session";
  s->budget_label.limit =
      lim && lim->max_memory_bytes && lim->max_memory_bytes < cfg->max_request_memory
          ? "init.limits.max_memory_bytes"
          : "max-request-memory";
  out->max_connections = out->max_nodes * 16;
  s->max_input_bytes = lower(cfg->max_input_bytes, lim ? lim->max_input_bytes : 0);
  s->max_execution_ms = lower(cfg->max_execution_ms, lim ? lim->max_execution_ms : 0);
}

static int send_ready(session_t *s) {
  Remotemedia__V1__StreamSource *srcs = rm_calloc(s->n_sources ? s->n_sources : 1, sizeof *srcs);
  Remotemedia__V1__StreamSource **ptrs = rm_calloc(s->n_sources ? s->n_sources : 1, sizeof *ptrs);
  Remotemedia__V1__DataKind *kinds =
      rm_calloc(5 * (s->n_sources ? s->n_sources : 1), sizeof *kinds);
  int rc;
  if (!srcs || !ptrs || !kinds) {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    session_end(s, &err);
    rc = RM_ENOMEM;
  } else {
    for (size_t i = 0; i < s->n_sources; i++) {
      remotemedia__v1__stream_source__init(&srcs[i]);
      srcs[i].node_id = (char *)s->sources[i].node_id;
      srcs[i].node_type = (char *)s->sources[i].type;
      srcs[i].kinds = &kinds[5 * i];
      for (unsigned b = 0; b < 5; b++)
        if (s->sources[i].kinds & (1u << b)) /* RM_KIND_AUDIO = bit 0 = DATA_KIND_AUDIO (1) */
          srcs[i].kinds[srcs[i].n_kinds++] = (Remotemedia__V1__DataKind)(b + 1);
      ptrs[i] = &srcs[i];
    }
    Remotemedia__V1__StreamReady ready = REMOTEMEDIA__V1__STREAM_READY__INIT;
    ready.session_id = s->id;
    ready.pipeline_name = (char *)rm_pipeline_name(s->pipeline);
    ready.sources = ptrs;
    ready.n_sources = s->n_sources;
    Remotemedia__V1__StreamResponse msg = REMOTEMEDIA__V1__STREAM_RESPONSE__INIT;
    msg.message_case = REMOTEMEDIA__V1__STREAM_RESPONSE__MESSAGE_READY;
    msg.ready = &ready;
    rc = write_msg(s, &msg, 0);
  }
  rm_free(srcs);
  rm_free(ptrs);
  rm_free(kinds);
  return rc;
}

/* The init message: a session slot, limits, the compiled pipeline, then ready. On the
 * polling thread, as an ExecutePipeline compiles before it offloads. */
static void process_init(session_t *s) {
  const Remotemedia__V1__StreamInit *init = s->req->init;
  rm_error_t err;
  rm_error_clear(&err);
  int rc = 0;
  if (init->manifest && init->manifest->name) /* for the call line, as ExecutePipeline's */
    snprintf(s->pipeline_name, sizeof s->pipeline_name, "%s", init->manifest->name);
  if (!rm_server_session_acquire(s->server)) {
    rc = rm_error_set(&err, RM_ELIMIT, NULL, "max_sessions",
                      "the server already has its limit of %llu streaming sessions open "
                      "(max-sessions); retry later",
                      (unsigned long long)s->cfg->max_sessions);
    err.retry_later = 1;
  } else {
    s->counted = 1;
    rm_stats_session_open();
    effective_limits(s, init->limits);
    s->metrics = init->enable_metrics;
    s->every_chunks = init->metrics_every_chunks;
    s->every_ms = init->metrics_every_ms;
    const Remotemedia__V1__PipelineManifest *man = init->manifest;
    if (man && man->n_nodes > s->limits.max_nodes)
      rc = rm_error_set(&err, RM_ELIMIT, NULL, "nodes",
                        "pipeline has %zu nodes, above the limit of %u", man->n_nodes,
                        s->limits.max_nodes);
    else if (man && man->n_connections > s->limits.max_connections)
      rc = rm_error_set(&err, RM_ELIMIT, NULL, "connections",
                        "pipeline has %zu connections, above the limit of %u", man->n_connections,
                        s->limits.max_connections);
  }
  rm_budget_t *outer = rm_budget_enter(rm_server_budget(s->server));
  if (!rc)
    rc = rm_wire_manifest_from_proto(init->manifest, &s->manifest, &err);
  if (!rc)
    rc = rm_pipeline_new_labelled(s->manifest, &s->limits, &s->budget_label, &s->pipeline, &err);
  rm_budget_leave(outer);
  if (!rc)
    rc = find_sources(s, &err);
  if (!rc)
    rc = copy_outputs(s, init, &err);
  free_request(s);
  if (rc) {
    session_end(s, &err);
    return;
  }
  s->inited = 1;
  s->heavy = rm_pipeline_is_heavy(s->pipeline);
  s->last_metrics_ns = rm_clock_ns();
  RM_LOG(RM_LOG_DEBUG, "session_start", "{s:s, s:s, s:I}", "session_id", s->id, "pipeline",
         rm_pipeline_name(s->pipeline), "nodes", (json_int_t)rm_pipeline_node_count(s->pipeline));
  send_ready(s);
}

/* ---------------------------------------------------------------- reading */

/* One message from the client: its kind decides what happens (S_BUSY). */
static void handle_message(session_t *s, const uint8_t *data, size_t len) {
  rm_error_t err;
  rm_error_clear(&err);
  int rc = unpack(s, data, len, &err);
  rm_call_read_release(s->call); /* the message is in s->req now: its bytes go */
  if (rc) {
    session_end(s, &err);
    return;
  }
  const Remotemedia__V1__StreamRequest *req = s->req;
  const char *bad = NULL;
  switch (req->message_case) {
  case REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_INIT:
    if (s->inited)
      bad = "a second init: the session is already set up";
    break;
  case REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_DATA:
    if (!s->inited)
      bad = "data before init: the first message of a session carries init";
    break;
  case REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_CONTROL:
    if (!s->inited)
      bad = "control before init: the first message of a session carries init";
    else if (req->control->kind != REMOTEMEDIA__V1__STREAM_CONTROL__KIND__KIND_FLUSH &&
             req->control->kind != REMOTEMEDIA__V1__STREAM_CONTROL__KIND__KIND_CLOSE)
      bad = "control.kind must be KIND_FLUSH or KIND_CLOSE";
    break;
  default: bad = "the message carries none of init, data, control"; break;
  }
  if (bad) {
    rm_error_set(&err, RM_EBADREQUEST, NULL, NULL, "%s", bad);
    free_request(s);
    session_end(s, &err);
  } else if (req->message_case == REMOTEMEDIA__V1__STREAM_REQUEST__MESSAGE_INIT) {
    process_init(s);
  } else {
    dispatch(s);
  }
}

static void on_read(rm_call_t *call, int rc, const uint8_t *data, size_t len, void *arg) {
  session_t *s = arg;
  const char *outer_rid = rm_log_set_request_id(s->request_id);
  pthread_mutex_lock(&s->mu);
  int mine = s->state == S_READING; /* else the reaper took over */
  if (mine)
    s->state = S_BUSY;
  s->acting++; /* an actor until the message's bytes are released (act_end) */
  pthread_mutex_unlock(&s->mu);
  if (!mine) {
  } else if (rc == RM_ELIMIT) { /* the server's budget refused the message's bytes */
    rm_error_t err;
    rm_call_memory_refused(s->call, &err, "the message", len);
    session_end(s, &err);
  } else if (rc == RM_CALL_TOO_BIG) {
    rm_error_t err;
    rm_call_message_too_big(s->call, &err, "the message", len);
    session_end(s, &err);
  } else if (rc < 0 && rc != RM_EBADREQUEST) {
    session_gone(s);
  } else if (rc == RM_EBADREQUEST) {
    rm_error_t err;
    rm_error_set(&err, RM_EBADREQUEST, NULL, NULL, "the message could not be read");
    session_end(s, &err);
  } else if (rc == RM_CALL_END) { /* the client half-closed: a close */
    s->half_closed = 1;
    if (s->inited) {
      dispatch(s);
    } else { /* or the client went before sending it: no error tells which */
      rm_error_t err;
      rm_error_set(&err, RM_EBADREQUEST, NULL, NULL, "the stream ended before init");
      pthread_mutex_lock(&s->mu);
      s->maybe_gone = 1;
      s->refs++; /* the hook's: the session's line waits for what the client saw */
      pthread_mutex_unlock(&s->mu);
      rm_call_at_end(call, maybe_gone_call_ended, s);
      session_end(s, &err);
    }
  } else {
    handle_message(s, data, len);
  }
  rm_call_read_release(call); /* before a last put logs the budget */
  act_end(s);
  rm_log_set_request_id(outer_rid);
  session_put(s); /* the read's */
}

/* The busy session's grace past --max-session-ms: the time to reach its next step, where the
 * status goes out in order with its trailers, before the reaper cancels the call. */
#define BUSY_GRACE_NS (5 * REAP_INTERVAL_NS)

static int past_max(const session_t *s, uint64_t now, uint64_t grace) {
  return s->cfg->max_session_ms &&
         now - s->started_ns >= s->cfg->max_session_ms * 1000000ull + grace;
}

static void max_session_error(session_t *s, rm_error_t *err) {
  rm_error_set(err, RM_ELIMIT, NULL, "max_session_ms",
               "the session has been open for its limit of %llu ms (max-session-ms)",
               (unsigned long long)s->cfg->max_session_ms);
}

/* Waits for the next message, unless the session must end first (S_BUSY). */
static void post_read(session_t *s) {
  uint64_t now = rm_clock_ns();
  if (past_max(s, now, 0)) {
    rm_error_t err;
    max_session_error(s, &err);
    session_end(s, &err);
    return;
  }
  if (rm_server_is_draining(s->server) && !s->half_closed) {
    if (s->inited) { /* flush and close now: the final result and metrics, then OK */
      dispatch(s);
    } else {
      rm_error_t err;
      rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL,
                   "the server is shutting down; retry on another replica");
      session_end(s, &err);
    }
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->state = S_READING;
  s->read_at_ns = now;
  s->refs++;
  pthread_mutex_unlock(&s->mu);
  if (rm_call_read(s->call, on_read, s)) {
    pthread_mutex_lock(&s->mu);
    s->refs--; /* never the last: the caller holds one */
    s->state = S_BUSY;
    pthread_mutex_unlock(&s->mu);
    session_gone(s);
  }
}

/* ---------------------------------------------------------------- the reaper */

/* A session that must end: waiting for its client too long (idle), open too long, or the
 * server draining (S_READING: its status goes out now); or busy past --max-session-ms, or
 * with a result the client has not taken for the idle timeout (S_BUSY: the call is
 * cancelled). reg.mu and s->mu held, s neither ended nor reaped. */
static void reap(session_t *s, uint64_t now) {
  rm_error_t err;
  uint64_t idle_ns = s->cfg->session_idle_timeout_ms * 1000000ull;
  if (s->state == S_BUSY) {
    if (past_max(s, now, BUSY_GRACE_NS)) {
      max_session_error(s, &err);
      cancel_locked(s, &err);
    } else if (s->writing && now - s->write_at_ns >= idle_ns) {
      rm_error_set(&err, RM_ETIMEDOUT, NULL, "session_idle_timeout_ms",
                   "the client read no result for %llu ms (session-idle-timeout-ms)",
                   (unsigned long long)s->cfg->session_idle_timeout_ms);
      cancel_locked(s, &err);
    }
    return;
  }
  if (rm_server_is_draining(s->server)) {
    if (!s->inited) {
      rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL,
                   "the server is shutting down; retry on another replica");
      end_locked(s, &err);
      return;
    }
    s->state = S_BUSY; /* the close runs as a job; the pending read is ignored */
    s->refs++;
    if (rm_server_offload(s->server, process_job, s)) {
      s->refs--;
      rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL, "the server is shutting down");
      end_locked(s, &err);
    }
    return;
  }
  if (now - s->read_at_ns >= idle_ns) {
    rm_error_set(&err, RM_ETIMEDOUT, NULL, "session_idle_timeout_ms",
                 "no message for %llu ms (session-idle-timeout-ms)",
                 (unsigned long long)s->cfg->session_idle_timeout_ms);
    end_locked(s, &err);
  } else if (past_max(s, now, 0)) {
    max_session_error(s, &err);
    end_locked(s, &err);
  }
}

static void *reaper_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&reg.mu);
  while (reg.head) {
    for (session_t *s = reg.head; s; s = s->next) {
      pthread_mutex_lock(&s->mu);
      /* the clock is read under the session's lock: a read posted after an earlier reading
       * would look as if it had waited for ages (read_at_ns above now) */
      if (s->state != S_ENDED && !s->reaped) {
        const char *outer_rid = rm_log_set_request_id(s->request_id);
        reap(s, rm_clock_ns());
        rm_log_set_request_id(outer_rid);
      }
      pthread_mutex_unlock(&s->mu);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)REAP_INTERVAL_NS;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&reg.cv, &reg.mu, &until);
  }
  reg.reaper_running = 0;
  pthread_mutex_unlock(&reg.mu);
  return NULL;
}

/* ---------------------------------------------------------------- the method */

static void stream_pipeline(rm_call_t *call, const ProtobufCMessage *unused) {
  (void)unused;
  session_t *s = rm_calloc(1, sizeof *s);
  if (!s) {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_call_finish(call, &err);
    return;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->state = S_BUSY;
  s->refs = 2; /* the handler's (given up with the call's in session_end / session_gone), and
                * this function's */
  s->call = call;
  s->server = rm_call_server(call);
  s->cfg = rm_server_config(s->server);
  s->started_ns = rm_call_arrival_ns(call);
  s->code = GRPC_STATUS_OK;
  snprintf(s->request_id, sizeof s->request_id, "%s", rm_call_request_id(call));
  rm_call_peer(call, s->peer, sizeof s->peer);
  session_id(s->id);
  registry_add(s);
  post_read(s);
  session_put(s);
}

void rm_stream_service_methods(rm_method_t *out) {
  out[0] = (rm_method_t){.path = "/remotemedia.v1.PipelineService/StreamPipeline",
                         .kind = RM_RPC_BIDI_STREAM,
                         .needs_auth = 1,
                         .budgeted_reads = 1,
                         .logs_itself = 1,
                         .handle = stream_pipeline};
}
