/* call.c - one RPC on the server: set-up, arena, reference count, the unary answer and the
 * streaming read/write/finish batches. */
#include "call.h"

#include <grpc/support/alloc.h>
#include <malloc.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "bytebuf.h"
#include "log.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/wire_proto.h"
#include "server_int.h"
#include "stats.h"
#include "status.h"

/* Sanitizer and valgrind builds keep none (RM_SPARE_CALLS=0): a reused call would hide a use
 * after free from them. */
#ifndef RM_SPARE_CALLS
#define RM_SPARE_CALLS 64
#endif

#define CALL_ARENA_INLINE 3072

/* What only a streaming call needs; in its arena, so a unary call pays one NULL pointer. */
typedef struct call_stream {
  rm_call_t *call;
  rm_tag_t read_tag;
  rm_tag_t write_tag;
  grpc_byte_buffer *in, *out;
  rm_call_read_fn read_fn;
  void *read_arg;
  /* the message in the read callback until rm_call_read_release: its bytes, their view and
   * what they hold of the server's budget (budgeted_reads) */
  grpc_byte_buffer *msg;
  rm_bytebuf_view_t view;
  int view_live;
  size_t read_charge;
  rm_call_written_fn write_fn;
  void *write_arg;
  void (*close_fn)(rm_call_t *call, void *arg);
  void *close_arg;
  /* CLOSE_NONE, then whichever of rm_call_on_close (CLOSE_FN_SET) and on_close (CLOSE_SEEN)
   * comes second calls close_fn: a handler that reads its request after the close batch
   * started (read-after-auth) may register when the call has closed already */
  atomic_int close_sync;
  atomic_int md_sent; /* initial metadata went out with an earlier batch */
  /* A read asked for while a read callback runs is started only when on_read has released
   * that callback's message: otherwise the next message could land in msg while on_read,
   * back from the callback, releases it (the next read is often asked for on another thread,
   * from a write's completion, and a message already received completes it at once). */
  atomic_int read_state; /* READ_IDLE, READ_IN_CALLBACK, READ_DEFERRED */
} call_stream_t;

enum { READ_IDLE, READ_IN_CALLBACK, READ_DEFERRED };
enum { CLOSE_NONE, CLOSE_FN_SET, CLOSE_SEEN };

struct rm_call {
  rm_tag_t close_tag;
  rm_tag_t send_tag;
  rm_tag_t request_tag; /* read_request */
  /* The call's batches and handlers (rm_call_ref). At 0 the call is over: it is logged and
   * its grpc_call released (call_unref). */
  atomic_int refs;
  /* What the call's memory is kept for: 1 while refs is above 0, plus one per borrowed slice
   * of a response (packer_append). At 0 that memory is freed (call_free). Kept apart from
   * refs because the core may keep a message it could not send (the client reset the stream)
   * until the call is destroyed, in the stream's flow-control buffer: had the slices held
   * refs, the call would never be released, nor its memory. */
  atomic_int holds;
  rm_server_t *s;
  const rm_config_t *cfg;
  rm__queue_t *home;     /* the queue that received it */
  rm_call_t *next_spare; /* in home->spare once finished */
  rm_method_t *method;
  char *unregistered_path; /* for logs of unknown methods */
  char *peer;              /* for the call's log line, read at its start (gpr string) */
  /* the send watch (rm__send_watch_t) while its response is being sent: links and start
   * under the watch's mutex */
  rm__send_watch_t *watch;
  struct rm_call *watch_prev, *watch_next;
  uint64_t watch_since;
  int watched;
  atomic_int send_timed_out; /* the watch cancelled it */
  grpc_call *call;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  rm_bytebuf_view_t view; /* of payload, while view_live: handlers borrow from it */
  int view_live;
  size_t request_bytes;
  size_t payload_charge;  /* of the server's budget, while the payload (or its copy) lives */
  size_t response_charge; /* of the server's budget, while the packed response lives */
  ProtobufCMessage *request;
  call_stream_t *stream; /* NULL for unary calls */
  size_t unpack_left;    /* of the unpack budget */
  int unpack_exceeded;
  int unpack_refused; /* the server's memory budget refused an unpack allocation */
  /* what the bytes hold that protobuf-c must not unpack: a string it would misread, nesting
   * it would recurse into without end (in the arena) */
  rm_error_t *unpack_error;
  uint64_t deadline_ns;
  atomic_int cancelled; /* read by a worker running the pipeline */
  int close_cancelled;
  int close_started; /* RECV_CLOSE_ON_SERVER posted on its own (cancellation is watched) */
  int combined;      /* the close op rides in the send batch: on_sent drops both refs */
  int on_worker;     /* handled on a worker thread from the start */
  int unary;         /* counted by rm__server_unary_begin */
  int memory_call;   /* counted by rm__server_memory_call */
  int replied;
  int gone;                     /* the answer cannot reach the client, or did not: client_gone() */
  int own;                      /* the server's own warm call (rm_call_own) */
  int logged_at_end;            /* a unary call whose status went out: logged when the call ends */
  atomic_int maybe_gone;        /* its end may be the client's going (rm_call_finish_unless_gone) */
  grpc_status_code client_code; /* what the client got then, for an OK answer */
  atomic_int gone_code;         /* rm_call_gone_status's decision + 1; 0: not decided yet */
  /* a stream counted by its close watch (gone without a status of ours): that status + 1. Not
   * c->code, which a handler ending the stream at that moment writes on its own thread */
  atomic_int closed_code;
  uint64_t t_start;
  uint64_t t_end; /* when the status was handed to the core (count_end); 0 = not yet */
  /* reply, kept alive until the send batch completes */
  grpc_byte_buffer *response;
  grpc_status_code code;
  grpc_slice details;
  grpc_metadata trailers[RM_STATUS_TRAILERS_MAX + 1]; /* + x-request-id */
  size_t n_trailers;
  char kind[32];
  char sequence[24]; /* of the failing stream chunk or flush, "" when none */
  int flushed;       /* the stream's failure is a flush's (rm_call_set_flushed) */
  char note_key[24];
  char *note_value; /* in the arena */
  char *error_text;
  void (*at_end)(void *arg); /* rm_call_at_end */
  void *at_end_arg;
  /* issue 12: counters (stats.h) and the request id */
  int stats_method;      /* row in the method table, -1 for an unregistered method */
  atomic_int stats_done; /* the end was counted */
  rm_stats_run_t run;    /* what a pipeline call did */
  int rid_from_client;   /* x-request-id or traceparent, not generated */
  size_t rid_len;
  char rid[RM_STATUS_REQUEST_ID_MAX + 1];
  grpc_metadata rid_md; /* x-request-id: rid, sent with the initial metadata */
  rm_arena_t arena;     /* the request message and whatever handlers need until the end */
  /* must stay last: not zeroed at creation */
  alignas(max_align_t) char arena_inline[CALL_ARENA_INLINE];
};

/* ---------------------------------------------------------------- lifecycle */

/* A call object for a request arriving on q: a spare one when there is. Polling thread of q. */
static rm_call_t *call_new(rm__queue_t *q) {
  rm_call_t *c = q->spare;
  if (!c)
    return rm_malloc(sizeof *c);
  q->spare = c->next_spare;
  q->n_spare--;
  return c;
}

/* Keeps a finished call for its queue's next request, or frees it. */
static void call_recycle(rm_call_t *c) {
#if RM_SPARE_CALLS > 0
  rm__queue_t *q = c->home;
  if (rm__this_queue == q && q->n_spare < RM_SPARE_CALLS) {
    c->next_spare = q->spare;
    q->spare = c;
    q->n_spare++;
    return;
  }
#endif
  rm_free(c);
}

void rm__call_free_spares(rm__queue_t *q) {
  while (q->spare) {
    rm_call_t *c = q->spare;
    q->spare = c->next_spare;
    rm_free(c);
  }
  q->n_spare = 0;
}

static void client_gone(rm_call_t *c);
static void log_call(rm_call_t *c);

/* The call's memory: what borrowed slices point at, the request's bytes, the arena. */
static void call_free(rm_call_t *c) {
  if (atomic_fetch_sub(&c->holds, 1) != 1)
    return;
  rm_server_t *s = c->s;
  /* the request's bytes (received by the core, maybe a copy of them in one piece) are freed
   * here, after the run's own trim: a big one's pages go back too, or under concurrent load
   * they stay in the heap as free chunks between live ones */
  int trim = c->request_bytes > RM_SERVER_TRIM_AFTER_BYTES;
  if (c->at_end) /* what borrowed slices pointed at; it may live in the arena */
    c->at_end(c->at_end_arg);
  /* c->request and c->stream live in the arena */
  if (c->view_live)
    rm_bytebuf_view_destroy(&c->view);
  if (c->payload)
    grpc_byte_buffer_destroy(c->payload);
  if (c->response)
    grpc_byte_buffer_destroy(c->response);
  rm_budget_discharge(rm_server_budget(s), c->payload_charge + c->response_charge);
  if (c->memory_call)
    rm__server_memory_call(s, -1);
  rm_free(c->error_text);
  rm_free(c->unregistered_path);
  rm_arena_destroy(&c->arena);
  call_recycle(c);
  if (trim) {
    malloc_trim(0);
    rm_server_trim_when_idle(s); /* and again once nothing else holds memory */
  }
  rm__server_release(s);
}

static void count_end(rm_call_t *c);

static void call_unref(rm_call_t *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  int maybe_gone = atomic_load(&c->maybe_gone);
  if (c->logged_at_end || maybe_gone) {
    if (atomic_load(&c->cancelled))
      client_gone(c);
    if (maybe_gone) /* counted now that it is known what the client saw */
      count_end(c);
  }
  /* the send's batch may complete as sent: the close says the call was cut */
  if (c->gone && atomic_load(&c->send_timed_out) && !c->own)
    rm_stats_send_timeout();
  if (c->logged_at_end)
    log_call(c);
  gpr_free(c->peer);
  grpc_slice_unref(c->details);
  for (size_t i = 0; i < c->n_trailers; i++) {
    grpc_slice_unref(c->trailers[i].key);
    grpc_slice_unref(c->trailers[i].value);
  }
  grpc_metadata_array_destroy(&c->md);
  /* the core's hold on a sent message's slices ends with its call object */
  grpc_call_unref(c->call);
  if (c->unary)
    rm__server_unary_end(c->s);
  call_free(c);
}

void rm_call_ref(rm_call_t *c) { atomic_fetch_add(&c->refs, 1); }
void rm_call_unref(rm_call_t *c) { call_unref(c); }

/* What a client that went away saw: DEADLINE_EXCEEDED once its deadline passed (or was a
 * transit time away), UNAVAILABLE when the server cancelled every call (its shutdown), else
 * CANCELLED (it cancelled or its connection closed). */
static grpc_status_code gone_status(rm_call_t *c) {
  int was = atomic_load(&c->gone_code);
  if (was)
    return (grpc_status_code)(was - 1);
  int deadline = c->deadline_ns && rm_clock_ns() + RM_CALL_DEADLINE_TRANSIT_NS >= c->deadline_ns;
  int now = (int)rm_status_from_error(deadline                      ? RM_ETIMEDOUT
                                      : rm__server_cancelling(c->s) ? RM_EUNAVAILABLE
                                                                    : RM_ECANCELED) +
            1;
  /* decided once: whoever asks later (the counters, the log line, a session) gets the same,
   * though the deadline may have passed in between */
  if (!atomic_compare_exchange_strong(&c->gone_code, &was, now))
    now = was;
  return (grpc_status_code)(now - 1);
}

int rm_call_gone_status(rm_call_t *c) { return (int)gone_status(c); }

/* The server cancelled the call (gone_status decided UNAVAILABLE): not the client's doing. */
static int server_cancelled(const rm_call_t *c) {
  return atomic_load(&((rm_call_t *)c)->gone_code) == (int)GRPC_STATUS_UNAVAILABLE + 1;
}

static void on_close(rm_tag_t *tag, int ok) {
  rm_call_t *c = RM_TAG_OWNER(tag, rm_call_t, close_tag);
  (void)ok;
  if (c->close_cancelled)
    atomic_store(&c->cancelled, 1);
  /* gone without a status (a status that may not have reached it is counted at the end) */
  if (c->stream && !atomic_load(&c->maybe_gone) && !atomic_exchange(&c->stats_done, 1)) {
    grpc_status_code code = gone_status(c);
    atomic_store(&c->closed_code, (int)code + 1);
    c->t_end = rm_clock_ns();
    rm_stats_call_handled(c->stats_method, code, c->t_end - c->t_start);
    if (!c->method->logs_itself)
      c->logged_at_end = 1;
  }
  if (c->stream && atomic_exchange(&c->stream->close_sync, CLOSE_SEEN) == CLOSE_FN_SET)
    c->stream->close_fn(c, c->stream->close_arg);
  call_unref(c);
}

void rm_call_watch_cancel(rm_call_t *c) {
  if (c->close_started || c->replied)
    return;
  c->close_started = 1;
  c->close_tag.fn = on_close;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  grpc_call *gcall = c->call; /* read before the release: TSan */
  RM_TSAN_RELEASE(&c->close_tag);
  if (grpc_call_start_batch(gcall, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK)
    call_unref(c);
}

/* ---------------------------------------------------------------- the status */

/* The status the client got: the handler's, unless an OK answer never reached it. */
static grpc_status_code client_status(const rm_call_t *c) {
  int closed = atomic_load(&((rm_call_t *)c)->closed_code);
  if (closed)
    return (grpc_status_code)(closed - 1);
  /* a handler that failed because the server cancelled its call: the client got UNAVAILABLE */
  return c->gone &&
                 (c->code == GRPC_STATUS_OK || atomic_load(&c->maybe_gone) || server_cancelled(c))
             ? c->client_code
             : c->code;
}

/* The client is gone (it cancelled, its deadline passed or its connection closed) before its
 * answer could be delivered: an OK answer is then counted and logged as what the client saw,
 * CANCELLED or DEADLINE_EXCEEDED (docs/observability.md, "What a call is counted and logged as").
 */
static void client_gone(rm_call_t *c) {
  if (c->gone)
    return;
  c->gone = 1;
  c->client_code = gone_status(c);
}

static const char *watch_why(const rm_call_t *c);

static void log_call(rm_call_t *c) {
  if (RM_LOG_INFO < rm_log_threshold || c->own)
    return;
  grpc_status_code code = client_status(c);
  /* the handler's status; for a stream counted at its close, that status */
  grpc_status_code handler = atomic_load(&c->closed_code) ? code : c->code;
  rm_log_level_t level = rm_status_is_bug(code) ? RM_LOG_ERROR : RM_LOG_INFO;
  rm_log_line_t line;
  /* the counters' end: the log line and grpc_server_handling_seconds say the same */
  uint64_t end = c->t_end ? c->t_end : rm_clock_ns();
  rm_log_line_begin_at(&line, level, "call", end);
  if (c->method)
    rm_log_line_plain(&line, "method", c->method->path);
  else /* the client's own path */
    rm_log_line_str(&line, "method", c->unregistered_path ? c->unregistered_path : "?");
  rm_log_line_plain(&line, "status", rm_status_name(code));
  rm_log_line_int(&line, "code", (int)code);
  rm_log_line_us(&line, "duration_us", end - c->t_start);
  if (c->rid_from_client)
    rm_log_line_strn(&line, "request_id", c->rid, c->rid_len);
  else /* generated: hex digits */
    rm_log_line_plain(&line, "request_id", c->rid);
  /* read at the start: once the connection is gone the core says "unknown" */
  char *peer = c->peer ? NULL : grpc_call_get_peer(c->call);
  rm_log_line_str(&line, "peer", c->peer ? c->peer : peer);
  gpr_free(peer);
  if (c->note_value)
    rm_log_line_str(&line, c->note_key, c->note_value);
  int by_server = c->gone && server_cancelled(c);
  /* the watch may cancel a send that had just completed: then the client got it */
  int timed_out = c->gone && atomic_load(&c->send_timed_out);
  if (timed_out) {
    rm_log_line_plain(&line, "handler_status", rm_status_name(handler));
    rm_log_line_plain(&line, "error_kind", "send_timeout");
    rm_log_line_str(&line, "error", watch_why(c));
  } else if (by_server) {
    if (code != handler)
      rm_log_line_plain(&line, "handler_status", rm_status_name(handler));
    rm_log_line_plain(&line, "error_kind", rm_status_kind(RM_EUNAVAILABLE));
    rm_log_line_plain(&line, "error", RM_CALL_SERVER_CANCELLED);
  } else if (code != handler && atomic_load(&c->maybe_gone)) { /* it went without a message */
    rm_log_line_plain(
        &line, "error_kind",
        rm_status_kind(code == GRPC_STATUS_DEADLINE_EXCEEDED ? RM_ETIMEDOUT : RM_ECANCELED));
    rm_log_line_plain(&line, "error",
                      "the call ended without a message: the client cancelled, its deadline "
                      "passed or its connection closed");
  } else if (code != handler) { /* an OK answer the client never got */
    rm_log_line_plain(&line, "handler_status", rm_status_name(handler));
    rm_log_line_plain(&line, "error_kind", "client_gone");
    rm_log_line_plain(&line, "error",
                      "the answer did not reach the client: it cancelled, its "
                      "deadline passed or its connection closed");
  } else if (c->kind[0] && !atomic_load(&c->closed_code)) {
    /* set by failures only; a stream counted at its close is logged as that close (its
     * handler may be failing it at the same moment on a worker) */
    rm_log_line_str(&line, "error_kind", c->kind);
    if (c->error_text)
      rm_log_line_str(&line, "error", c->error_text);
  }
  if (by_server) {
    rm_log_line_bool(&line, "server_cancelled", 1);
  } else if (!timed_out) {
    if (c->gone)
      rm_log_line_bool(&line, "client_gone", 1);
    if (atomic_load(&c->cancelled))
      rm_log_line_bool(&line, "client_cancelled", 1);
  }
  rm_log_line_end(&line);
}

static void watch_remove(rm_call_t *c);

static void on_sent(rm_tag_t *tag, int ok) {
  rm_call_t *c = RM_TAG_OWNER(tag, rm_call_t, send_tag);
  if (c->watch)
    watch_remove(c);
  if (!ok) /* the client went away first */
    client_gone(c);
  if (c->combined && c->close_cancelled)
    atomic_store(&c->cancelled, 1);
  /* A call is logged when it ends, when both its send and its close have completed: only
   * then is it known whether the client got the answer (the send of an answer the client
   * reset may still succeed; its close says cancelled). A StreamPipeline session logs
   * itself. */
  if (!c->stream || !c->method->logs_itself)
    c->logged_at_end = 1;
  /* the core holds its own references on what it still needs: our hold on a borrowing
   * response must go now, or its slices' holds would keep the call's memory forever */
  if (c->response && !c->stream) {
    grpc_byte_buffer_destroy(c->response);
    c->response = NULL;
  }
  if (c->combined)
    call_unref(c);
  call_unref(c);
}

/* Non-zero when initial metadata must go with this batch (always for unary calls). */
static int needs_initial_md(rm_call_t *c) {
  return !c->stream || !atomic_exchange(&c->stream->md_sent, 1);
}

/* The initial metadata op: x-request-id echoed. */
static void initial_md(rm_call_t *c, grpc_op *op) {
  op->op = GRPC_OP_SEND_INITIAL_METADATA;
  op->data.send_initial_metadata.count = 1;
  op->data.send_initial_metadata.metadata = &c->rid_md;
}

/* Counts the call's end before its status leaves, so a client that sees the answer also
 * sees it counted: with the handler's status, as go-grpc-prometheus counts what the handler
 * returned, unless the client is already known to be gone (client_gone). */
static void count_end(rm_call_t *c) {
  if (atomic_exchange(&c->stats_done, 1) || !rm_stats_counting())
    return;
  c->t_end = rm_clock_ns();
  rm_stats_call_ended(c->stats_method, (int)client_status(c), c->t_end - c->t_start,
                      c->response != NULL && !c->gone, &c->run);
}

/* ---------------------------------------------------------------- the send watch */

/* Responses of calls holding less than this are not watched: their memory is small, and the
 * hot path of small calls pays nothing. */
#define WATCH_MIN_BYTES (64u << 10)

struct rm__send_watch {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rm_call_t *head, *tail; /* being sent, oldest first */
  uint64_t timeout_ns;
  int stop;
  pthread_t thread;
  char why[96]; /* the cancelled call's status details */
};

/* What a call the watch cancelled was told (the watch outlives every call). */
static const char *watch_why(const rm_call_t *c) { return rm__server_send_watch(c->s)->why; }

static void watch_add(rm__send_watch_t *w, rm_call_t *c) {
  c->watch = w;
  pthread_mutex_lock(&w->mu);
  c->watch_since = rm_clock_ns();
  c->watch_prev = w->tail;
  c->watch_next = NULL;
  if (w->tail) {
    w->tail->watch_next = c;
  } else {
    w->head = c;
    pthread_cond_signal(&w->cv); /* the watch sleeps until it has a call to watch */
  }
  w->tail = c;
  c->watched = 1;
  pthread_mutex_unlock(&w->mu);
}

static void watch_unlink(rm__send_watch_t *w, rm_call_t *c) {
  if (c->watch_prev)
    c->watch_prev->watch_next = c->watch_next;
  else
    w->head = c->watch_next;
  if (c->watch_next)
    c->watch_next->watch_prev = c->watch_prev;
  else
    w->tail = c->watch_prev;
  c->watched = 0;
}

/* The send ended (or never started): not watched any more. */
static void watch_remove(rm_call_t *c) {
  rm__send_watch_t *w = c->watch;
  pthread_mutex_lock(&w->mu);
  if (c->watched)
    watch_unlink(w, c);
  pthread_mutex_unlock(&w->mu);
  c->watch = NULL;
}

/* Cancels the calls whose response has been sending for longer than the timeout. The send
 * batch holds each watched call until on_sent, which unlinks it under the mutex first. It
 * sleeps until the oldest watched call's time is up (the condition variable waits on
 * rm_clock_ns's monotonic clock), or until watch_add gives it a first call to watch. */
static void *watch_main(void *arg) {
  rm__send_watch_t *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    uint64_t now = rm_clock_ns();
    while (w->head && now - w->head->watch_since >= w->timeout_ns) {
      rm_call_t *c = w->head;
      watch_unlink(w, c);
      atomic_store(&c->send_timed_out, 1);
      int none = 0; /* what the client sees, if it ever reads again */
      atomic_compare_exchange_strong(&c->gone_code, &none, (int)GRPC_STATUS_DEADLINE_EXCEEDED + 1);
      grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED, w->why, NULL);
    }
    if (!w->head) {
      pthread_cond_wait(&w->cv, &w->mu);
      continue;
    }
    uint64_t at = w->head->watch_since + w->timeout_ns;
    struct timespec until = {.tv_sec = (time_t)(at / 1000000000ull),
                             .tv_nsec = (long)(at % 1000000000ull)};
    pthread_cond_timedwait(&w->cv, &w->mu, &until);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

rm__send_watch_t *rm__send_watch_start(uint64_t timeout_ms) {
  rm__send_watch_t *w = rm_calloc(1, sizeof *w);
  if (!w)
    return NULL;
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t attr; /* its waits do not move with the wall clock */
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &attr);
  pthread_condattr_destroy(&attr);
  w->timeout_ns = timeout_ms * 1000000ull;
  snprintf(w->why, sizeof w->why,
           "the client did not take the response within %llu ms (send-timeout-ms)",
           (unsigned long long)timeout_ms);
  if (pthread_create(&w->thread, NULL, watch_main, w)) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    rm_free(w);
    return NULL;
  }
  return w;
}

void rm__send_watch_stop(rm__send_watch_t *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  rm_free(w);
}

static void send_status(rm_call_t *c) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (atomic_load(&c->cancelled)) /* the close watch saw the client go: it gets no answer */
    client_gone(c);
  if (!atomic_load(&c->maybe_gone) || c->gone) /* else once it is known (call_unref) */
    count_end(c);
  if (needs_initial_md(c)) {
    if (c->code == GRPC_STATUS_OK) {
      initial_md(c, &ops[n]);
    } else {
      /* A failure stays a trailers-only response (no headers before the status): gRPC
       * clients retry only those, so the request id rides in the trailers. */
      ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
      c->trailers[c->n_trailers++] = c->rid_md;
    }
    n++;
  }
  if (c->response) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->response;
    n++;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = c->code;
  ops[n].data.send_status_from_server.status_details = &c->details;
  ops[n].data.send_status_from_server.trailing_metadata = c->trailers;
  ops[n].data.send_status_from_server.trailing_metadata_count = c->n_trailers;
  n++;
  if (!c->close_started) {
    /* Nobody watched for cancellation (the call ran inline on its polling thread, which
     * could not have noticed one anyway): one batch instead of two. */
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->close_cancelled;
    n++;
    c->combined = 1;
  }
  c->send_tag.fn = on_sent;
  /* a response that holds memory: the client must take it within --send-timeout-ms */
  rm__send_watch_t *w = c->response && c->payload_charge + c->response_charge >= WATCH_MIN_BYTES
                            ? rm__server_send_watch(c->s)
                            : NULL;
  if (w)
    watch_add(w, c);
  grpc_call *gcall = c->call;
  RM_TSAN_RELEASE(&c->send_tag);
  grpc_call_error e = grpc_call_start_batch(gcall, ops, n, &c->send_tag, NULL);
  if (e != GRPC_CALL_OK) {
    if (w)
      watch_remove(c);
    RM_LOG(RM_LOG_ERROR, "send_failed", "{s:s}", "error", grpc_call_error_to_string(e));
    /* the client must not wait for a status that will never come */
    grpc_call_cancel_with_status(c->call, rm_status_from_error(RM_EINTERNAL),
                                 "the response could not be sent", NULL);
    if (c->response) { /* as on_sent would have */
      grpc_byte_buffer_destroy(c->response);
      c->response = NULL;
    }
    if (c->combined)
      call_unref(c);
    call_unref(c);
  }
}

/* ---------------------------------------------------------------- request ids */

static int is_lower_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

static int all_zero(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != '0')
      return 0;
  return 1;
}

int rm_call_traceparent_id(const char *v, size_t len, char out[33]) {
  /* version "-" trace-id(32) "-" parent-id(16) "-" flags(2), lower-case hex; version ff is
   * invalid, 00 has exactly these fields, a later version may append "-..." */
  if (len < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || !is_lower_hex(v, 2) ||
      !is_lower_hex(v + 3, 32) || !is_lower_hex(v + 36, 16) || !is_lower_hex(v + 53, 2))
    return -1;
  if (memcmp(v, "ff", 2) == 0 || all_zero(v + 3, 32) || all_zero(v + 36, 16))
    return -1;
  if (len > 55 && (memcmp(v, "00", 2) == 0 || v[55] != '-'))
    return -1;
  memcpy(out, v + 3, 32);
  out[32] = '\0';
  return 0;
}

/* A value that can be echoed in a header: visible ASCII and spaces, not empty. */
static int echoable(const uint8_t *v, size_t n) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (v[i] < 0x20 || v[i] > 0x7e)
      return 0;
  return 1;
}

/* z's 16 lower-case hex digits, the most significant first, without a loop over the digits:
 * the nibbles are spread one to a byte, then all mapped to '0'-'9' / 'a'-'f' at once. */
static void hex16(uint64_t z, char out[16]) {
  for (int half = 0; half < 2; half++) {
    uint64_t x = half ? z & 0xffffffffu : z >> 32;
    x = ((x & 0xffff0000ull) << 16) | (x & 0x0000ffffull);
    x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
    x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
    /* a byte of 10-15 gets 'a' - '0' - 10 more than one of 0-9 (no carry between bytes) */
    uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    x += 0x3030303030303030ull + letters * ('a' - '0' - 10);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    x = __builtin_bswap64(x); /* the first digit is the top byte */
#endif
    memcpy(out + 8 * half, &x, 8);
  }
}

/* 32 hex digits from a per-thread generator seeded from the kernel once: ids must be
 * unique, not secret, and a system call per call would cost more than the rest. */
static void generate_id(char out[33]) {
  static _Thread_local uint64_t state;
  static _Thread_local int seeded;
  if (!seeded) {
    if (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state)
      state = rm_clock_ns() ^ (uint64_t)(uintptr_t)&state;
    seeded = 1;
  }
  for (int w = 0; w < 2; w++) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    hex16(z, out + 16 * w);
  }
  out[32] = '\0';
}

/* The call's request id: the client's x-request-id (cut to RM_STATUS_REQUEST_ID_MAX), else
 * the trace id of a valid W3C traceparent, else a generated one. */
static void request_id_init(rm_call_t *c) {
  const grpc_slice *xrid = NULL, *tp = NULL;
  for (size_t i = 0; i < c->md.count; i++) {
    grpc_slice k = c->md.metadata[i].key;
    if (GRPC_SLICE_LENGTH(k) == 12 && memcmp(GRPC_SLICE_START_PTR(k), "x-request-id", 12) == 0)
      xrid = &c->md.metadata[i].value;
    else if (GRPC_SLICE_LENGTH(k) == 11 && memcmp(GRPC_SLICE_START_PTR(k), "traceparent", 11) == 0)
      tp = &c->md.metadata[i].value;
  }
  c->rid_from_client = 1;
  if (xrid && echoable(GRPC_SLICE_START_PTR(*xrid), GRPC_SLICE_LENGTH(*xrid))) {
    size_t n = GRPC_SLICE_LENGTH(*xrid);
    if (n > RM_STATUS_REQUEST_ID_MAX)
      n = RM_STATUS_REQUEST_ID_MAX;
    memcpy(c->rid, GRPC_SLICE_START_PTR(*xrid), n);
    c->rid[n] = '\0';
  } else if (!tp || rm_call_traceparent_id((const char *)GRPC_SLICE_START_PTR(*tp),
                                           GRPC_SLICE_LENGTH(*tp), c->rid)) {
    generate_id(c->rid);
    c->rid_from_client = 0;
  }
  c->rid_len = strlen(c->rid);
  c->rid_md.key = grpc_slice_from_static_string("x-request-id");
  c->rid_md.value = grpc_slice_from_static_buffer(c->rid, c->rid_len);
}

const char *rm_call_request_id(const rm_call_t *c) { return c->rid; }

int rm_call_own(const rm_call_t *c) { return c->own; }

/* A refusal by a limit, counted by reason. */
static void count_rejection(const rm_error_t *err) {
  if (!err || err->code != RM_ELIMIT)
    return;
  rm_stats_rejected(strcmp(err->field, "max_concurrent") == 0 ? RM_STATS_REJECT_CONCURRENCY
                    : strcmp(err->field, "max_memory") == 0   ? RM_STATS_REJECT_MEMORY
                                                              : RM_STATS_REJECT_LIMITS);
}

void rm_call_fail(rm_call_t *c, const rm_error_t *err) {
  if (c->replied++)
    return;
  if (!c->own)
    count_rejection(err);
  /* ErrorInfo names the id the client chose; a generated one is in the initial metadata */
  const char *rid = c->rid_from_client ? c->rid : NULL;
  int code = rm_status_code_of(err);
  const char *message = rm_status_message_of(err);
  c->code = rm_status_from_error(code);
  c->details = grpc_slice_from_copied_string(message);
  c->error_text = rm_strdup(message);
  snprintf(c->kind, sizeof c->kind, "%s", rm_status_kind(code));
  c->n_trailers = rm_status_trailers_seq(err, rid, c->sequence, c->flushed, c->trailers);
  send_status(c);
}

void rm_call_finish_unless_gone(rm_call_t *c, const rm_error_t *err) {
  atomic_store(&c->maybe_gone, 1);
  rm_call_finish(c, err);
}

int rm_call_client_status(const rm_call_t *c) { return (int)client_status(c); }

void rm_call_message_too_big(const rm_call_t *c, rm_error_t *err, const char *what, size_t bytes) {
  rm_error_set(err, RM_ELIMIT, NULL, "max_message_bytes",
               "%s is %zu bytes, above max-message-bytes %llu", what, bytes,
               (unsigned long long)c->cfg->max_message_bytes);
}

/* A response above max-message-bytes fails the call with RM_ELIMIT instead: 1 then. */
static int response_too_big(rm_call_t *c, size_t len) {
  if (len <= c->cfg->max_message_bytes)
    return 0;
  rm_error_t err;
  rm_error_set(&err, RM_ELIMIT, NULL, "max_message_bytes",
               "the response would be %zu bytes, above max-message-bytes %llu", len,
               (unsigned long long)c->cfg->max_message_bytes);
  rm_call_fail(c, &err);
  return 1;
}

void rm_call_reply(rm_call_t *c, const ProtobufCMessage *msg) {
  rm_call_reply_within(c, msg, protobuf_c_message_get_packed_size(msg));
}

void rm_call_reply_within(rm_call_t *c, const ProtobufCMessage *msg, size_t bound) {
  rm_call_fill_view(c); /* packing reads every byte of msg, which may borrow from the view */
  /* a bound above the limit may still be a response within it: only its exact size says */
  if (bound > c->cfg->max_message_bytes)
    bound = protobuf_c_message_get_packed_size(msg);
  if (response_too_big(c, bound))
    return;
  if (c->replied)
    return;
  /* the bound is known before packing: the server's budget is asked first, and stays
   * charged with it (the slice keeps the whole buffer) */
  rm_budget_t *b = rm_server_budget(c->s);
  if (rm_budget_charge(b, bound)) {
    rm_error_t err;
    rm_call_memory_refused(c, &err, "the response", protobuf_c_message_get_packed_size(msg));
    rm_call_fail(c, &err);
    return;
  }
  c->replied++;
  size_t len;
  c->response = rm_bytebuf_pack_within(msg, bound, &len);
  c->response_charge = b ? bound : 0;
  c->code = rm_status_from_error(RM_OK);
  c->details = grpc_empty_slice();
  send_status(c);
}

/* ---------------------------------------------------------------- borrowing replies */

#define REPLY_CHUNK 4096 /* framing bytes are packed into slices of this size */

/* A ProtobufCBuffer building a slice list: large appends become slices pointing at the
 * message's memory (each keeping the call's memory: holds), the rest is copied into chunks,
 * each asked of the budget before it is allocated. Once the budget refuses one (`refused`),
 * the rest is skipped. With count_only, nothing is built: `copied` sums what would be
 * copied. */
typedef struct slice_packer {
  ProtobufCBuffer base;
  rm_call_t *c;
  rm_budget_t *budget;
  size_t min_borrow;
  int count_only;
  int refused;
  grpc_slice_buffer out;
  grpc_slice chunk;
  size_t used;    /* of chunk */
  size_t copied;  /* count_only: bytes that would be copied */
  size_t charged; /* the chunks' bytes, drawn from the budget */
} slice_packer_t;

static void borrowed_slice_done(void *arg) { call_free(arg); }

/* A slice of the response pointing at the call's memory, which it keeps. */
static void packer_borrow(slice_packer_t *p, const uint8_t *data, size_t len) {
  atomic_fetch_add(&p->c->holds, 1);
  grpc_slice_buffer_add(&p->out, grpc_slice_new_with_user_data((void *)(uintptr_t)data, len,
                                                               borrowed_slice_done, p->c));
}

/* A borrowed slice of the call's received bytes (rm_bytebuf_view_gap_pieces). */
static void packer_add_piece(void *arg, const uint8_t *data, size_t len) {
  packer_borrow(arg, data, len);
}

static void packer_flush(slice_packer_t *p) {
  if (p->used)
    grpc_slice_buffer_add(&p->out, grpc_slice_sub(p->chunk, 0, p->used));
  grpc_slice_unref(p->chunk);
  p->chunk = grpc_empty_slice();
  p->used = 0;
}

static void packer_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
  slice_packer_t *p = (slice_packer_t *)buffer;
  if (p->refused)
    return;
  if (len >= p->min_borrow) {
    if (p->count_only)
      return;
    packer_flush(p);
    /* bytes the request's copy left out (a forwarded payload): the received slices' own */
    if (p->c->view_live && rm_bytebuf_view_gap_pieces(&p->c->view, data, len, packer_add_piece, p))
      return;
    if (p->c->view_live && rm_bytebuf_view_in_gap(&p->c->view, data, len))
      rm_bytebuf_view_fill(&p->c->view);
    packer_borrow(p, data, len);
    return;
  }
  if (p->count_only || !len) {
    p->copied += len;
    return;
  }
  if (GRPC_SLICE_LENGTH(p->chunk) - p->used < len) {
    packer_flush(p);
    size_t size = len > REPLY_CHUNK ? len : REPLY_CHUNK;
    if (rm_budget_charge(p->budget, size)) {
      p->refused = 1;
      return;
    }
    p->charged += size;
    p->chunk = grpc_slice_malloc(size);
  }
  memcpy(GRPC_SLICE_START_PTR(p->chunk) + p->used, data, len);
  p->used += len;
}

/* One packing pass: the copied parts' chunks are charged as they are taken, so there is no
 * counting pass first; only a refusal counts, for its message. */
void rm_call_reply_borrowing(rm_call_t *c, const ProtobufCMessage *msg, size_t min_borrow) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (response_too_big(c, len))
    return;
  if (c->replied)
    return;
  slice_packer_t p = {.base = {.append = packer_append},
                      .c = c,
                      .budget = rm_server_budget(c->s),
                      .min_borrow = min_borrow ? min_borrow : 1,
                      .chunk = grpc_empty_slice()};
  /* a gap reaches the packer as a field of its own length (the forwarded payload): one too
   * short to be borrowed would be copied, so its bytes go in first */
  if (c->view_live && c->view.gap_len < p.min_borrow)
    rm_bytebuf_view_fill(&c->view);
  grpc_slice_buffer_init(&p.out);
  protobuf_c_message_pack_to_buffer(msg, &p.base);
  packer_flush(&p);
  if (p.refused) {
    grpc_slice_buffer_destroy(&p.out); /* the borrowed slices' holds on the call go */
    rm_budget_discharge(p.budget, p.charged);
    slice_packer_t count = {
        .base = {.append = packer_append}, .min_borrow = p.min_borrow, .count_only = 1};
    protobuf_c_message_pack_to_buffer(msg, &count.base);
    rm_error_t err;
    rm_call_memory_refused(c, &err, "the response", count.copied);
    rm_call_fail(c, &err);
    return;
  }
  c->response_charge = p.budget ? p.charged : 0;
  c->replied++;
  c->response = grpc_raw_byte_buffer_create(p.out.slices, p.out.count);
  grpc_slice_buffer_destroy(&p.out);
  c->code = rm_status_from_error(RM_OK);
  c->details = grpc_empty_slice();
  send_status(c);
}

void rm_call_fill_view(rm_call_t *c) {
  if (c->view_live)
    rm_bytebuf_view_fill(&c->view);
}

size_t rm_call_view_gap_bytes(const rm_call_t *c) { return c->view_live ? c->view.gap_len : 0; }

void rm_call_fill_view_over(rm_call_t *c, const uint8_t *p, size_t len) {
  if (c->view_live && rm_bytebuf_view_in_gap(&c->view, p, len))
    rm_bytebuf_view_fill(&c->view);
}

void rm_call_at_end(rm_call_t *c, void (*fn)(void *arg), void *arg) {
  c->at_end = fn;
  c->at_end_arg = arg;
}

/* ---------------------------------------------------------------- accessors */

uint64_t rm_call_deadline_ns(const rm_call_t *c) { return c->deadline_ns; }
uint64_t rm_call_arrival_ns(const rm_call_t *c) { return c->t_start; }
size_t rm_call_request_bytes(const rm_call_t *c) { return c->request_bytes; }
const atomic_int *rm_call_cancel_flag(const rm_call_t *c) { return &c->cancelled; }
rm_server_t *rm_call_server(const rm_call_t *c) { return c->s; }
int rm_call_on_worker(const rm_call_t *c) { return c->on_worker; }
rm_arena_t *rm_call_arena(rm_call_t *c) { return &c->arena; }
rm_stats_run_t *rm_call_stats_run(rm_call_t *c) { return &c->run; }

void rm_call_set_sequence(rm_call_t *c, uint64_t sequence) {
  snprintf(c->sequence, sizeof c->sequence, "%llu", (unsigned long long)sequence);
}

void rm_call_set_flushed(rm_call_t *c) { c->flushed = 1; }

void rm_call_set_log_note(rm_call_t *c, const char *key, const char *value) {
  if (RM_LOG_INFO < rm_log_threshold)
    return; /* nobody will read it */
  size_t k = strlen(key);
  if (k >= sizeof c->note_key)
    k = sizeof c->note_key - 1;
  memcpy(c->note_key, key, k);
  c->note_key[k] = '\0';
  c->note_value = NULL;
  if (value) { /* in the arena: the line is written when the call ends */
    size_t n = strlen(value) + 1;
    if ((c->note_value = rm_arena_alloc(&c->arena, n)) != NULL)
      memcpy(c->note_value, value, n);
  }
}

/* ---------------------------------------------------------------- deadlines */

/* rm_clock_ns() minus the core's monotonic clock. Both read CLOCK_MONOTONIC and differ by
 * the core's fixed epoch, so measuring it once saves two clock reads per call. */
static int64_t core_clock_offset_ns;
static pthread_once_t core_clock_once = PTHREAD_ONCE_INIT;

static int64_t timespec_ns(gpr_timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void measure_core_clock_offset(void) {
  int64_t best_gap = INT64_MAX;
  for (int i = 0; i < 16; i++) { /* the tightest of a few bracketing pairs */
    int64_t before = (int64_t)rm_clock_ns();
    int64_t core = timespec_ns(gpr_now(GPR_CLOCK_MONOTONIC));
    int64_t after = (int64_t)rm_clock_ns();
    if (after - before < best_gap) {
      best_gap = after - before;
      core_clock_offset_ns = before + (after - before) / 2 - core;
    }
  }
}

void rm__call_clock_init(void) { pthread_once(&core_clock_once, measure_core_clock_offset); }

/* Client deadline (any clock) to an rm_clock_ns() instant; 0 = none. now: rm_clock_ns(). */
static uint64_t deadline_to_ns(gpr_timespec dl, uint64_t now) {
  gpr_timespec mono = gpr_convert_clock_type(dl, GPR_CLOCK_MONOTONIC);
  /* centuries away (a grpc-timeout may say 99999999H) is as good as none, and its
   * nanoseconds would not fit */
  if (gpr_time_cmp(mono, gpr_inf_future(GPR_CLOCK_MONOTONIC)) >= 0 ||
      mono.tv_sec > INT64_MAX / 1000000000 / 2)
    return 0;
  int64_t at = timespec_ns(mono) + core_clock_offset_ns;
  if (at <= (int64_t)now)
    return now ? now : 1; /* already expired */
  return (uint64_t)at;
}

/* ---------------------------------------------------------------- unpacking */

/* Unpacking allocates in the call's arena, within a budget: protobuf-c builds a struct for
 * every tiny part of a message, so a request of many small parts could otherwise take 20
 * times its size in memory before any limit looks at it. */
typedef struct unpack_budget {
  rm_arena_t *arena;
  size_t left;
  int exceeded;
} unpack_budget_t;

static void *arena_pb_alloc(void *data, size_t size) {
  unpack_budget_t *b = data;
  if (size > b->left) {
    b->exceeded = 1;
    return NULL;
  }
  b->left -= size;
  return rm_arena_alloc(b->arena, size);
}
static void arena_pb_free(void *data, void *ptr) { (void)data, (void)ptr; }

/* Wire bytes are copied once (payloads), structs cost what the parts need: twice the wire
 * size and 1 MiB cover every well-formed request within the node limits. */
#define UNPACK_BUDGET(wire_bytes) (2 * (wire_bytes) + (1u << 20))

/* Keeps err for rm_call_fail_unpack; 1. */
static int keep_unpack_error(rm_call_t *c, const rm_error_t *err) {
  c->unpack_error = rm_arena_alloc(&c->arena, sizeof *err);
  if (c->unpack_error)
    *c->unpack_error = *err;
  return 1;
}

/* A string with a NUL byte, which protobuf-c cuts there unseen, or not UTF-8: 0, or 1 with the
 * error kept for rm_call_fail_unpack. */
static int check_strings(rm_call_t *c, const char *field, const ProtobufCMessageDescriptor *desc,
                         const uint8_t *data, size_t len) {
  rm_error_t err;
  return rm_wire_check_strings(desc, data, len, field, &err) ? keep_unpack_error(c, &err) : 0;
}

ProtobufCMessage *rm_call_unpack(rm_call_t *c, const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *data, size_t len) {
  return rm_call_unpack_field(c, NULL, desc, data, len);
}

ProtobufCMessage *rm_call_unpack_field(rm_call_t *c, const char *field,
                                       const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                       size_t len) {
  rm_error_t deep; /* before protobuf-c recurses into it; not well-formed: "not a valid" */
  int nesting = rm_wire_check_nesting(desc, data, len, field, &deep);
  if (nesting) {
    if (nesting == RM_ELIMIT)
      keep_unpack_error(c, &deep);
    return NULL;
  }
  unpack_budget_t budget = {&c->arena, c->unpack_left, 0};
  ProtobufCAllocator arena_alloc = {arena_pb_alloc, arena_pb_free, &budget};
  rm_budget_refusal_clear();
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &arena_alloc, len, data);
  if (!msg && rm_budget_refused(NULL))
    c->unpack_refused = 1;
  c->unpack_left = budget.left;
  c->unpack_exceeded |= budget.exceeded;
  if (msg && check_strings(c, field, desc, data, len))
    return NULL; /* the message lives in the arena: nothing to free */
  return msg;
}

int rm_call_unpack_refused_bytes(const rm_call_t *c) { return c->unpack_error != NULL; }

void rm_call_fail_unpack(rm_call_t *c) {
  rm_error_t err;
  if (c->unpack_error)
    err = *c->unpack_error;
  else if (c->unpack_refused)
    rm_call_memory_refused(c, &err, "unpacking the request", c->request_bytes);
  else if (c->unpack_exceeded)
    rm_error_set(&err, RM_ELIMIT, NULL, "structures",
                 "the request of %zu bytes unpacks into more than %zu bytes of structures: too "
                 "many small parts",
                 c->request_bytes, (size_t)UNPACK_BUDGET(c->request_bytes));
  else
    rm_error_set(&err, RM_EBADREQUEST, NULL, NULL, "the request is not a valid %s message",
                 c->method->request->name);
  rm_call_fail(c, &err);
}

void rm_call_held_refused(rm_error_t *err, const char *what, size_t bytes, uint64_t held,
                          uint64_t limit) {
  rm_error_set(err, RM_ELIMIT, NULL, "max_memory",
               "%s needs %zu bytes, but the server holds %llu of its %llu bytes "
               "(max-memory, measured resident); retry later",
               what, bytes, (unsigned long long)held, (unsigned long long)limit);
  err->retry_later = 1;
}

void rm_call_memory_refused(const rm_call_t *c, rm_error_t *err, const char *what, size_t bytes) {
  rm_budget_refusal_t r = {0};
  rm_budget_refused(&r);
  if (r.limit && bytes > r.limit) {
    rm_error_set(err, RM_ELIMIT, NULL, "max_memory",
                 "%s needs %zu bytes, more than the server's whole memory budget of %zu bytes "
                 "(max-memory): it cannot be served here",
                 what, bytes, r.limit);
    return;
  }
  int alone = !c->stream && rm_server_memory_alone(c->s, c->memory_call);
  rm_error_set(err, RM_ELIMIT, NULL, "max_memory",
               "%s needs %zu bytes, but the server's memory budget has %zu of its %zu bytes in "
               "use (max-memory)%s",
               what, bytes, r.used, r.limit,
               alone ? ", by the server itself and this call alone: it cannot be served here"
                     : "; retry later");
  err->retry_later = !alone;
}

/* Hands the request's bytes to the method: unpacked (handle) or as they are (handle_bytes).
 * The payload (and its copy in one piece, when it came in several slices) stays in the call
 * until its memory goes (call_free), with its charge: requests are unpacked as views into it
 * (rm_wire_views_*), and a job or a response may still read them after the handler returned.
 * Once the handler has answered, the call may be gone (a worker answering while the polling
 * thread sends): nothing here touches it after the handler. */
static void unpack_and_handle(rm_call_t *c) {
  rm_method_t *m = c->method;
  c->unpack_left = UNPACK_BUDGET(c->request_bytes);
  rm_budget_t *b = rm_server_budget(c->s);
  /* a payload of several slices is copied into one piece first: that copy is asked too */
  size_t copy = rm_bytebuf_view_copy_bytes(c->payload);
  if (rm_budget_charge(b, copy)) {
    rm_error_t err;
    rm_call_memory_refused(c, &err, "the request's copy in one piece", copy);
    rm_call_fail(c, &err);
    return;
  }
  if (b)
    c->payload_charge += copy;
  if ((m->gapped ? rm_bytebuf_view_init_gapped : rm_bytebuf_view_init_for)(&c->view, c->payload,
                                                                           m->request)) {
    rm_call_fail_unpack(c);
    return;
  }
  c->view_live = 1;
  if (m->handle_bytes)
    m->handle_bytes(c, c->view.data, c->view.len);
  else if ((c->request = rm_call_unpack(c, m->request, c->view.data, c->view.len)) != NULL)
    m->handle(c, c->request);
  else
    rm_call_fail_unpack(c);
}

static void unpack_and_handle_job(void *arg) {
  rm_call_t *c = arg;
  rm_budget_t *outer = rm_budget_enter(rm_server_budget(c->s));
  const char *outer_rid = rm_log_set_request_id(c->rid);
  unpack_and_handle(c);
  rm_log_set_request_id(outer_rid);
  rm_budget_leave(outer);
}

/* ---------------------------------------------------------------- set-up */

/* Out of memory before a call object exists: we cannot even answer with trailers; cancel so
 * the client is not left waiting. */
static void refuse_without_call(rm__arrival_t *a) {
  grpc_call_cancel_with_status(a->gcall, rm_status_from_error(RM_ENOMEM), "server out of memory",
                               NULL);
  grpc_metadata_array_destroy(&a->md);
  if (a->payload)
    grpc_byte_buffer_destroy(a->payload);
  grpc_call_unref(a->gcall);
  rm__server_release(a->q->s);
}

/* Streaming calls: their state, the close batch (cancellation and the close hook) watched
 * from the start, and the handler's reference. 0 or RM_ENOMEM (answered). */
static int stream_setup(rm_call_t *c) {
  call_stream_t *st = rm_arena_calloc(&c->arena, 1, sizeof *st);
  if (!st) {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_call_fail(c, &err);
    return RM_ENOMEM;
  }
  st->call = c;
  atomic_init(&st->md_sent, 0);
  atomic_init(&st->close_sync, CLOSE_NONE);
  c->stream = st;
  rm__server_unary_end(c->s); /* streams may stay open across a drain: not waited for */
  c->unary = 0;
  rm_call_watch_cancel(c);
  return 0;
}

/* The request payload of a unary or server-streaming call: missing, big (unpacked on a
 * worker), or handed over here. */
static void handle_request(rm_call_t *c) {
  rm_server_t *s = c->s;
  rm_method_t *m = c->method;
  if (!c->payload) {
    rm_error_t err;
    if (grpc_call_failed_before_recv_message(c->call)) {
      /* the stream ended before its message was whole: the client is gone and gets no
       * answer; counted and logged as what it saw, not as a bad request */
      client_gone(c);
      rm_error_set(&err,
                   c->client_code == GRPC_STATUS_DEADLINE_EXCEEDED ? RM_ETIMEDOUT : RM_ECANCELED,
                   NULL, NULL,
                   "the call ended before its request message arrived: the client cancelled, "
                   "its deadline passed or its connection closed");
    } else {
      rm_error_set(&err, RM_EBADREQUEST, NULL, NULL, "the call carried no request message");
      /* or the client cancelled before sending it (no error then either) */
      rm_call_finish_unless_gone(c, &err);
      return;
    }
    rm_call_fail(c, &err);
    return;
  }
  /* A big request of the busy method is unpacked on a worker too: unpacking megabytes
   * here would stall every call queued behind it on this polling thread. */
  if (m->hot && c->request_bytes > c->cfg->inline_max_bytes) {
    rm_call_watch_cancel(c);
    c->on_worker = 1;
    if (rm_server_offload(s, unpack_and_handle_job, c) == 0)
      return;
    c->on_worker = 0;
    rm_error_t err;
    rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL, "the server is shutting down");
    rm_call_fail(c, &err);
    return;
  }
  unpack_and_handle(c);
}

/* Admission by bytes: a received message above --max-message-bytes is refused, and the rest is
 * charged to the server's budget at once; what does not fit is refused before anything else is
 * done with it. 0 or RM_ELIMIT (answered). */
static int admit(rm_call_t *c) {
  rm_error_t err;
  if (c->payload && c->request_bytes > c->cfg->max_message_bytes) {
    rm_call_message_too_big(c, &err, "the request message", c->request_bytes);
    rm_call_fail(c, &err);
    return RM_ELIMIT;
  }
  rm_budget_t *b = rm_server_budget(c->s);
  if (!c->payload || !c->method->hot || !b)
    return 0;
  /* counted before it asks, so that a refusal sees itself among the calls holding memory */
  c->memory_call = 1;
  rm__server_memory_call(c->s, 1);
  /* the message is resident already: what the server holds must not pass max-memory with it */
  uint64_t held = 0;
  int over = c->request_bytes >= RM_SERVER_RELIEVE_MIN_BYTES && rm_server_relieve(c->s, 0, &held);
  if (rm_budget_charge(b, c->request_bytes)) {
    rm_call_memory_refused(c, &err, "the request", c->request_bytes);
    rm_call_fail(c, &err);
    return RM_ELIMIT;
  }
  if (over) {
    rm_budget_discharge(b, c->request_bytes);
    rm_call_held_refused(&err, "the request", c->request_bytes, held, c->cfg->max_memory);
    rm_call_fail(c, &err);
    return RM_ELIMIT;
  }
  c->payload_charge = c->request_bytes;
  return 0;
}

static void call_start(rm__arrival_t *a, const rm_error_t *reject);
static void call_handle(rm_call_t *c, rm__arrival_t *a, const rm_error_t *reject);

/* The request message of an admitted call (read_request) has arrived, or the call ended
 * before it did: then payload stays NULL and handle_request tells why. */
static void on_request_message(rm_tag_t *tag, int ok) {
  (void)ok;
  rm_call_t *c = RM_TAG_OWNER(tag, rm_call_t, request_tag);
  int hot = c->method->hot;
  rm_budget_t *outer = hot ? rm_budget_enter(rm_server_budget(c->s)) : NULL;
  const char *outer_rid = rm_log_set_request_id(c->rid);
  c->request_bytes = c->payload ? grpc_byte_buffer_length(c->payload) : 0;
  if (c->payload)
    rm_stats_msg_received(c->stats_method);
  if (!admit(c))
    handle_request(c);
  rm_log_set_request_id(outer_rid);
  if (hot)
    rm_budget_leave(outer);
  call_unref(c);
}

/* Reads the request message of a call registered without it, now that the call is admitted
 * (a refused one is answered without its message ever being taken in). */
static void read_request(rm_call_t *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->payload;
  c->request_tag.fn = on_request_message;
  rm_call_ref(c);
  grpc_call *gcall = c->call; /* read before the release: TSan */
  RM_TSAN_RELEASE(&c->request_tag);
  if (grpc_call_start_batch(gcall, &op, 1, &c->request_tag, NULL) != GRPC_CALL_OK) {
    call_unref(c);
    rm_error_t err;
    rm_error_set(&err, RM_EINTERNAL, NULL, NULL, "the request message could not be read");
    rm_call_fail(c, &err);
  }
}

void rm__call_start(rm__arrival_t *a, const rm_error_t *reject) {
  /* An ExecutePipeline call, its arena and whatever its handler allocates count in the
   * server's budget; health, reflection and the small RPCs stay outside it, so a full
   * budget never fails a health check. */
  int hot = a->m && a->m->hot && !reject;
  rm_budget_t *outer = hot ? rm_budget_enter(rm_server_budget(a->q->s)) : NULL;
  call_start(a, reject);
  if (hot)
    rm_budget_leave(outer);
}

static void call_start(rm__arrival_t *a, const rm_error_t *reject) {
  rm_server_t *s = a->q->s;
  rm_call_t *c = call_new(a->q);
  if (!c) {
    refuse_without_call(a);
    return;
  }
  memset(c, 0, offsetof(rm_call_t, arena_inline));
  rm_arena_init(&c->arena, c->arena_inline, sizeof c->arena_inline);
  rm__server_unary_begin(s);
  c->unary = 1;
  atomic_init(&c->refs, 2);  /* the close batch and the send batch (or a stream's handler) */
  atomic_init(&c->holds, 1); /* refs above 0 */
  c->s = s;
  c->cfg = rm_server_config(s);
  c->home = a->q;
  c->method = a->m;
  c->call = a->gcall;
  c->md = a->md;
  c->payload = a->payload;
  c->request_bytes = a->payload ? grpc_byte_buffer_length(a->payload) : 0;
  c->t_start = rm_clock_ns();
  c->deadline_ns = deadline_to_ns(a->deadline, c->t_start);
  c->details = grpc_empty_slice();
  if (a->unknown)
    c->unregistered_path = rm_strdup(a->unknown);
  c->run.pipeline = -1;
  /* decided once, at arrival: a call is the server's own from its start to its end */
  c->own = rm_server_own_call(c->s);
  c->stats_method = c->own ? -1 : rm_stats_method(a->m); /* -1: no method counter */
  if (RM_LOG_INFO >= rm_log_threshold && !c->own)        /* for its log line (log_call) */
    c->peer = grpc_call_get_peer(c->call);
  rm_stats_call_arrived(c->stats_method, a->payload != NULL);
  request_id_init(c);
  const char *outer_rid = rm_log_set_request_id(c->rid);
  call_handle(c, a, reject);
  rm_log_set_request_id(outer_rid);
}

static void call_handle(rm_call_t *c, rm__arrival_t *a, const rm_error_t *reject) {
  if (reject) {
    rm_call_fail(c, reject);
    return;
  }
  if (a->m->kind != RM_RPC_UNARY && stream_setup(c))
    return;
  if (a->read_payload) {
    read_request(c);
    return;
  }
  if (admit(c))
    return;
  if (a->m->kind == RM_RPC_BIDI_STREAM)
    a->m->handle(c, NULL);
  else
    handle_request(c);
}

/* ---------------------------------------------------------------- streaming */

static void read_release(call_stream_t *st) {
  if (st->view_live)
    rm_bytebuf_view_destroy(&st->view);
  st->view_live = 0;
  if (st->msg)
    grpc_byte_buffer_destroy(st->msg);
  st->msg = NULL;
  rm_budget_discharge(rm_server_budget(st->call->s), st->read_charge);
  st->read_charge = 0;
}

void rm_call_read_release(rm_call_t *c) {
  if (c->stream)
    read_release(c->stream);
}

static int start_read(rm_call_t *c);

static void on_read(rm_tag_t *tag, int ok) {
  call_stream_t *st = RM_TAG_OWNER(tag, call_stream_t, read_tag);
  rm_call_t *c = st->call;
  grpc_byte_buffer *in = st->in;
  st->in = NULL;
  if (!ok) {
    st->read_fn(c, RM_ECANCELED, NULL, 0, st->read_arg);
  } else if (!in) {
    /* no message: the client half-closed, or went (a cancel, its deadline, its connection)
     * once messages had arrived, which the core tells by the flag (before the first message
     * it cannot: rm_call_finish_unless_gone) */
    int gone = grpc_call_failed_before_recv_message(c->call);
    st->read_fn(c, gone ? RM_ECANCELED : RM_CALL_END, NULL, 0, st->read_arg);
  } else {
    st->msg = in;
    atomic_store(&st->read_state, READ_IN_CALLBACK);
    /* the message is resident already, and its copy into one piece would be next */
    rm_budget_t *b = c->method->budgeted_reads ? rm_server_budget(c->s) : NULL;
    size_t len = grpc_byte_buffer_length(in);
    size_t charge = b ? len + rm_bytebuf_view_copy_bytes(in) : 0;
    if (len > c->cfg->max_message_bytes) {
      rm_stats_msg_received(c->stats_method);
      st->read_fn(c, RM_CALL_TOO_BIG, NULL, len, st->read_arg);
    } else if (rm_budget_charge(b, charge)) {
      st->read_fn(c, RM_ELIMIT, NULL, charge, st->read_arg);
    } else {
      st->read_charge = charge;
      if (rm_bytebuf_view_init(&st->view, in)) {
        st->read_fn(c, RM_EBADREQUEST, NULL, 0, st->read_arg);
      } else {
        st->view_live = 1;
        rm_stats_msg_received(c->stats_method);
        st->read_fn(c, 0, st->view.data, st->view.len, st->read_arg);
      }
    }
    read_release(st); /* unless the callback did */
    if (atomic_exchange(&st->read_state, READ_IDLE) == READ_DEFERRED && start_read(c))
      st->read_fn(c, RM_ECANCELED, NULL, 0, st->read_arg); /* as a read the call ended */
  }
  call_unref(c);
}

/* Posts the read rm_call_read asked for: 0, or RM_ECANCELED when the call cannot take it. */
static int start_read(rm_call_t *c) {
  call_stream_t *st = c->stream;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (needs_initial_md(c))
    initial_md(c, &ops[n++]);
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n].data.recv_message.recv_message = &st->in;
  n++;
  st->read_tag.fn = on_read;
  rm_call_ref(c);
  grpc_call *gcall = c->call; /* read before the release: TSan */
  RM_TSAN_RELEASE(&st->read_tag);
  if (grpc_call_start_batch(gcall, ops, n, &st->read_tag, NULL) != GRPC_CALL_OK) {
    call_unref(c);
    return RM_ECANCELED;
  }
  return 0;
}

int rm_call_read(rm_call_t *c, rm_call_read_fn fn, void *arg) {
  call_stream_t *st = c->stream;
  st->read_fn = fn;
  st->read_arg = arg;
  int in_callback = READ_IN_CALLBACK;
  if (atomic_compare_exchange_strong(&st->read_state, &in_callback, READ_DEFERRED))
    return 0; /* on_read starts it once the callback's message is released */
  return start_read(c);
}

static void on_written(rm_tag_t *tag, int ok) {
  call_stream_t *st = RM_TAG_OWNER(tag, call_stream_t, write_tag);
  rm_call_t *c = st->call;
  grpc_byte_buffer_destroy(st->out);
  st->out = NULL;
  if (st->write_fn)
    st->write_fn(c, ok, st->write_arg);
  call_unref(c);
}

int rm_call_write(rm_call_t *c, const ProtobufCMessage *msg, rm_call_written_fn fn, void *arg) {
  call_stream_t *st = c->stream;
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > c->cfg->max_message_bytes)
    return RM_ELIMIT;
  grpc_byte_buffer *bb = rm_bytebuf_pack_sized(msg, len);
  if (!bb)
    return RM_ENOMEM;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (needs_initial_md(c))
    initial_md(c, &ops[n++]);
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n].data.send_message.send_message = bb;
  n++;
  st->out = bb;
  st->write_fn = fn;
  st->write_arg = arg;
  st->write_tag.fn = on_written;
  /* read before the batch starts: once it has, the write may complete on a polling thread
   * and the call end there while this (worker) thread is still here */
  int method = c->stats_method;
  rm_call_ref(c);
  grpc_call *gcall = c->call; /* read before the release: TSan */
  RM_TSAN_RELEASE(&st->write_tag);
  if (grpc_call_start_batch(gcall, ops, n, &st->write_tag, NULL) != GRPC_CALL_OK) {
    st->out = NULL;
    grpc_byte_buffer_destroy(bb);
    call_unref(c);
    return RM_ECANCELED;
  }
  rm_stats_msg_sent(method);
  return 0;
}

void rm_call_finish(rm_call_t *c, const rm_error_t *err) {
  if (err) {
    rm_call_fail(c, err);
    return;
  }
  if (c->replied++)
    return;
  c->code = rm_status_from_error(RM_OK);
  c->details = grpc_empty_slice();
  send_status(c);
}

void rm_call_cancel(rm_call_t *c, const rm_error_t *err) {
  grpc_status_code code = rm_status_from_error(rm_status_code_of(err));
  if (!atomic_exchange(&c->stats_done, 1))
    rm_stats_call_handled(c->stats_method, (int)code, rm_clock_ns() - c->t_start);
  grpc_call_cancel_with_status(c->call, code, rm_status_message_of(err), NULL);
}

void rm_call_on_close(rm_call_t *c, void (*fn)(rm_call_t *call, void *arg), void *arg) {
  c->stream->close_fn = fn;
  c->stream->close_arg = arg;
  if (atomic_exchange(&c->stream->close_sync, CLOSE_FN_SET) == CLOSE_SEEN)
    fn(c, arg); /* closed before the handler could register: the close batch's reference
                 * is gone, the handler's keeps the call */
}

void rm_call_peer(const rm_call_t *c, char *out, size_t size) {
  if (c->peer) { /* read at the call's start */
    snprintf(out, size, "%s", c->peer);
    return;
  }
  char *peer = grpc_call_get_peer(c->call);
  snprintf(out, size, "%s", peer ? peer : "");
  gpr_free(peer);
}
