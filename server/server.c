/* server.c - the gRPC C-core transport: queues, polling threads, request slots, unary call
 * lifecycle, workers, draining and shutdown. */
#include "server.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "grpc_status.h"
#include "log.h"
#include "rm/alloc.h"
#include "rm/arena.h"
#include "rm/clock.h"
#include "tls.h"

/* ---------------------------------------------------------------- types */

typedef struct cq_thread cq_thread_t;

/* One outstanding grpc_server_request_(registered_)call. */
typedef struct slot {
  rm_tag_t tag;
  cq_thread_t *q;
  rm_method_t *method; /* NULL: the catch-all for unregistered methods */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_call_details details;
} slot_t;

struct cq_thread {
  rm_server_t *s;
  grpc_completion_queue *cq;
  pthread_t thread;
  int started;
  slot_t *slots;
  size_t n_slots;
  /* Finished calls kept for reuse: a call is a few KiB (its inline arena), too big for
   * malloc's per-thread cache, and allocating one per request showed in the profile. Only
   * this queue's polling thread touches the list. */
  rm_call_t *spare;
  size_t n_spare;
};

/* Sanitizer and valgrind builds keep none (RM_SPARE_CALLS=0): a reused call would hide a use
 * after free from them. */
#ifndef RM_SPARE_CALLS
#define RM_SPARE_CALLS 64
#endif

/* The queue whose polling thread this is (NULL on other threads). */
static _Thread_local cq_thread_t *this_queue;

typedef struct job {
  void (*fn)(void *);
  void *arg;
  struct job *next;
} job_t;

#define TRAILERS_MAX 3
#define CALL_ARENA_INLINE 3072

struct rm_call {
  rm_tag_t close_tag;
  rm_tag_t send_tag;
  atomic_int refs;
  rm_server_t *s;
  cq_thread_t *home;     /* the queue that received it */
  rm_call_t *next_spare; /* in home->spare once finished */
  rm_method_t *method;
  char *unregistered_path; /* for logs of unknown methods */
  grpc_call *call;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  size_t request_bytes;
  ProtobufCMessage *request;
  size_t unpack_left; /* of the unpack budget */
  int unpack_exceeded;
  uint64_t deadline_ns;
  atomic_int cancelled; /* read by a worker running the pipeline */
  int close_cancelled;
  int close_started; /* RECV_CLOSE_ON_SERVER posted on its own (cancellation is watched) */
  int combined;      /* the close op rides in the send batch: on_sent drops both refs */
  int on_worker;     /* handled on a worker thread from the start */
  int replied;
  uint64_t t_start;
  /* reply, kept alive until the send batch completes */
  grpc_byte_buffer *response;
  grpc_status_code code;
  grpc_slice details;
  grpc_metadata trailers[TRAILERS_MAX];
  size_t n_trailers;
  char kind[32];
  char note_key[24];
  char *note_value; /* in the arena */
  char *error_text;
  rm_arena_t arena; /* the request message and whatever handlers need until the end */
  /* must stay last: not zeroed at creation */
  alignas(max_align_t) char arena_inline[CALL_ARENA_INLINE];
};

struct rm_server {
  const rm_config_t *cfg;
  rm_method_t *methods;
  grpc_server *server;
  cq_thread_t *queues;
  int n_queues;
  int port;
  rm_auth_t *auth;
  atomic_int draining;
  atomic_int stopping;
  atomic_int forced;     /* a second signal: stop waiting for in-flight calls */
  atomic_long held;      /* calls we still own */
  atomic_long unary;     /* unary calls between arrival and sent status */
  atomic_long executing; /* ExecutePipeline slots taken */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* signalled when held/unary drop */
  /* workers */
  pthread_t *workers;
  int n_workers;
  job_t *job_head, *job_tail;
  int jobs_stop;
  pthread_mutex_t job_mu;
  pthread_cond_t job_cv;
};

/* ---------------------------------------------------------------- helpers */

const char *rm_status_name(grpc_status_code code) { return rm__grpc_status_name((int)code); }

static grpc_byte_buffer *pack_sized(const ProtobufCMessage *msg, size_t len) {
  grpc_slice slice = grpc_slice_malloc(len);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

grpc_byte_buffer *rm_pack(const ProtobufCMessage *msg) {
  return pack_sized(msg, protobuf_c_message_get_packed_size(msg));
}

static void *pb_alloc(void *data, size_t size) {
  (void)data;
  return rm_malloc(size);
}
static void pb_free(void *data, void *ptr) {
  (void)data;
  rm_free(ptr);
}
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

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

/* A received message's bytes in one piece: its only slice as it is (the usual case), or
 * its slices copied together. */
typedef struct payload_view {
  grpc_byte_buffer_reader reader;
  grpc_slice all;
  const uint8_t *data;
  size_t len;
} payload_view_t;

/* 0, or -1 when the buffer cannot be read (a compressed body that does not inflate). */
static int payload_view_init(payload_view_t *v, grpc_byte_buffer *bb) {
  grpc_slice *first;
  v->all = grpc_empty_slice();
  v->data = (const uint8_t *)"";
  v->len = grpc_byte_buffer_length(bb);
  if (!grpc_byte_buffer_reader_init(&v->reader, bb))
    return -1;
  if (v->len && grpc_byte_buffer_reader_peek(&v->reader, &first) &&
      GRPC_SLICE_LENGTH(*first) == v->len) {
    v->data = GRPC_SLICE_START_PTR(*first);
  } else if (v->len) {
    grpc_byte_buffer_reader_destroy(&v->reader);
    grpc_byte_buffer_reader_init(&v->reader, bb);
    v->all = grpc_byte_buffer_reader_readall(&v->reader);
    v->data = GRPC_SLICE_START_PTR(v->all);
    v->len = GRPC_SLICE_LENGTH(v->all);
  }
  return 0;
}

static void payload_view_destroy(payload_view_t *v) {
  grpc_slice_unref(v->all);
  grpc_byte_buffer_reader_destroy(&v->reader);
}

ProtobufCMessage *rm_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb) {
  payload_view_t v;
  if (!bb || payload_view_init(&v, bb))
    return NULL;
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &pb_allocator, v.len, v.data);
  payload_view_destroy(&v);
  return msg;
}

void rm_unpack_free(ProtobufCMessage *msg) {
  if (msg)
    protobuf_c_message_free_unpacked(msg, &pb_allocator);
}

void rm_server_hold(rm_server_t *s) { atomic_fetch_add(&s->held, 1); }

void rm_server_release(rm_server_t *s) {
  if (atomic_fetch_sub(&s->held, 1) == 1) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
}

int rm_server_is_draining(const rm_server_t *s) { return atomic_load(&s->draining); }
const rm_config_t *rm_server_config(const rm_server_t *s) { return s->cfg; }
int rm_server_port(const rm_server_t *s) { return s->port; }

int rm_server_exec_acquire(rm_server_t *s) {
  long now = atomic_fetch_add(&s->executing, 1);
  if ((uint64_t)now >= s->cfg->max_concurrent) {
    atomic_fetch_sub(&s->executing, 1);
    return 0;
  }
  return 1;
}

void rm_server_exec_release(rm_server_t *s) { atomic_fetch_sub(&s->executing, 1); }

/* ---------------------------------------------------------------- workers */

static void *worker_main(void *arg) {
  rm_server_t *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->job_mu);
    while (!s->job_head && !s->jobs_stop)
      pthread_cond_wait(&s->job_cv, &s->job_mu);
    job_t *j = s->job_head;
    if (!j) { /* stopping and nothing left */
      pthread_mutex_unlock(&s->job_mu);
      return NULL;
    }
    s->job_head = j->next;
    if (!s->job_head)
      s->job_tail = NULL;
    pthread_mutex_unlock(&s->job_mu);
    j->fn(j->arg);
    rm_free(j);
  }
}

int rm_server_offload(rm_server_t *s, void (*fn)(void *), void *arg) {
  job_t *j = rm_malloc(sizeof *j);
  if (!j)
    return -1;
  *j = (job_t){fn, arg, NULL};
  pthread_mutex_lock(&s->job_mu);
  if (s->jobs_stop) {
    pthread_mutex_unlock(&s->job_mu);
    rm_free(j);
    return -1;
  }
  if (s->job_tail)
    s->job_tail->next = j;
  else
    s->job_head = j;
  s->job_tail = j;
  pthread_cond_signal(&s->job_cv);
  pthread_mutex_unlock(&s->job_mu);
  return 0;
}

/* ---------------------------------------------------------------- unary calls */

/* A call object for a request arriving on q: a spare one when there is. Polling thread of q. */
static rm_call_t *call_new(cq_thread_t *q) {
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
  cq_thread_t *q = c->home;
  if (this_queue == q && q->n_spare < RM_SPARE_CALLS) {
    c->next_spare = q->spare;
    q->spare = c;
    q->n_spare++;
    return;
  }
#endif
  rm_free(c);
}

static void call_unref(rm_call_t *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  rm_server_t *s = c->s;
  /* c->request lives in the arena */
  if (c->payload)
    grpc_byte_buffer_destroy(c->payload);
  if (c->response)
    grpc_byte_buffer_destroy(c->response);
  grpc_slice_unref(c->details);
  for (size_t i = 0; i < c->n_trailers; i++) {
    grpc_slice_unref(c->trailers[i].key);
    grpc_slice_unref(c->trailers[i].value);
  }
  grpc_metadata_array_destroy(&c->md);
  grpc_call_unref(c->call);
  rm_free(c->error_text);
  rm_free(c->unregistered_path);
  rm_arena_destroy(&c->arena);
  call_recycle(c);
  if (atomic_fetch_sub(&s->unary, 1) == 1) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  rm_server_release(s);
}

void rm_call_ref(rm_call_t *c) { atomic_fetch_add(&c->refs, 1); }
void rm_call_unref(rm_call_t *c) { call_unref(c); }

static void on_close(rm_tag_t *tag, int ok) {
  rm_call_t *c = RM_TAG_OWNER(tag, rm_call_t, close_tag);
  (void)ok;
  if (c->close_cancelled)
    atomic_store(&c->cancelled, 1);
  call_unref(c);
}

static void log_call(rm_call_t *c) {
  if (RM_LOG_INFO < rm_log_threshold)
    return;
  rm_log_level_t level = c->code == GRPC_STATUS_INTERNAL ? RM_LOG_ERROR : RM_LOG_INFO;
  rm_log_line_t line;
  uint64_t end = rm_clock_ns();
  rm_log_line_begin_at(&line, level, "call", end);
  if (c->method)
    rm_log_line_plain(&line, "method", c->method->path);
  else /* the client's own path */
    rm_log_line_str(&line, "method", c->unregistered_path ? c->unregistered_path : "?");
  rm_log_line_plain(&line, "status", rm_status_name(c->code));
  rm_log_line_int(&line, "code", (int)c->code);
  rm_log_line_us(&line, "duration_us", end - c->t_start);
  char *peer = grpc_call_get_peer(c->call);
  rm_log_line_str(&line, "peer", peer);
  gpr_free(peer);
  if (c->note_value)
    rm_log_line_str(&line, c->note_key, c->note_value);
  if (c->code != GRPC_STATUS_OK) {
    if (c->kind[0])
      rm_log_line_str(&line, "error_kind", c->kind);
    if (c->error_text)
      rm_log_line_str(&line, "error", c->error_text);
  }
  if (atomic_load(&c->cancelled))
    rm_log_line_bool(&line, "client_cancelled", 1);
  rm_log_line_end(&line);
}

static void on_sent(rm_tag_t *tag, int ok) {
  rm_call_t *c = RM_TAG_OWNER(tag, rm_call_t, send_tag);
  (void)ok; /* not ok: the client went away first; nothing more to do */
  if (c->combined && c->close_cancelled)
    atomic_store(&c->cancelled, 1);
  log_call(c);
  if (c->combined)
    call_unref(c);
  call_unref(c);
}

static void add_trailer(rm_call_t *c, const char *key, const char *value) {
  if (!value || !*value || c->n_trailers == TRAILERS_MAX)
    return;
  c->trailers[c->n_trailers].key = grpc_slice_from_static_string(key);
  c->trailers[c->n_trailers].value = grpc_slice_from_copied_string(value);
  c->n_trailers++;
}

static void send_status(rm_call_t *c) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
  n++;
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
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->send_tag, NULL);
  if (e != GRPC_CALL_OK) {
    RM_LOG(RM_LOG_ERROR, "send_failed", "{s:s}", "error", grpc_call_error_to_string(e));
    /* the client must not wait for a status that will never come */
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL, "the response could not be sent",
                                 NULL);
    if (c->combined)
      call_unref(c);
    call_unref(c);
  }
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
  if (grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK)
    call_unref(c);
}

void rm_call_fail(rm_call_t *c, grpc_status_code code, const char *message, const char *kind,
                  const char *node, const char *field) {
  if (c->replied++)
    return;
  c->code = code;
  c->details = grpc_slice_from_copied_string(message ? message : "");
  c->error_text = message ? rm_strdup(message) : NULL;
  snprintf(c->kind, sizeof c->kind, "%s", kind ? kind : "");
  add_trailer(c, "rm-error-kind", kind);
  add_trailer(c, "rm-failing-node", node);
  add_trailer(c, "rm-field", field);
  send_status(c);
}

void rm_call_reply(rm_call_t *c, const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > c->s->cfg->max_message_bytes) {
    char text[160];
    snprintf(text, sizeof text, "the response would be %zu bytes, above max-message-bytes %llu",
             len, (unsigned long long)c->s->cfg->max_message_bytes);
    rm_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, text, "limit_exceeded", NULL, NULL);
    return;
  }
  if (c->replied++)
    return;
  c->response = pack_sized(msg, len);
  c->code = GRPC_STATUS_OK;
  c->details = grpc_empty_slice();
  send_status(c);
}

uint64_t rm_call_deadline_ns(const rm_call_t *c) { return c->deadline_ns; }
uint64_t rm_call_arrival_ns(const rm_call_t *c) { return c->t_start; }
const atomic_int *rm_call_cancel_flag(const rm_call_t *c) { return &c->cancelled; }
size_t rm_call_request_bytes(const rm_call_t *c) { return c->request_bytes; }
rm_server_t *rm_call_server(const rm_call_t *c) { return c->s; }

rm_arena_t *rm_call_arena(rm_call_t *c) { return &c->arena; }

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

ProtobufCMessage *rm_call_unpack(rm_call_t *c, const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *data, size_t len) {
  unpack_budget_t budget = {&c->arena, c->unpack_left, 0};
  ProtobufCAllocator arena_alloc = {arena_pb_alloc, arena_pb_free, &budget};
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &arena_alloc, len, data);
  c->unpack_left = budget.left;
  c->unpack_exceeded |= budget.exceeded;
  return msg;
}

void rm_call_fail_unpack(rm_call_t *c) {
  char text[200];
  if (c->unpack_exceeded) {
    snprintf(text, sizeof text,
             "the request of %zu bytes unpacks into more than %zu bytes of structures: too "
             "many small parts",
             c->request_bytes, (size_t)UNPACK_BUDGET(c->request_bytes));
    rm_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, text, "limit_exceeded", NULL, NULL);
    return;
  }
  snprintf(text, sizeof text, "the request is not a valid %s message", c->method->request->name);
  rm_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, text, "invalid_request", NULL, NULL);
}

/* Hands the request's bytes to the method: unpacked (handle) or as they are (handle_bytes).
 * The payload leaves the call first: once the handler has answered, the call may be gone
 * (a worker answering while the polling thread sends). */
static void unpack_and_handle(rm_call_t *c) {
  rm_method_t *m = c->method;
  grpc_byte_buffer *payload = c->payload;
  c->payload = NULL;
  c->unpack_left = UNPACK_BUDGET(c->request_bytes);
  payload_view_t v;
  if (payload_view_init(&v, payload)) {
    rm_call_fail_unpack(c);
  } else {
    if (m->handle_bytes)
      m->handle_bytes(c, v.data, v.len);
    else if ((c->request = rm_call_unpack(c, m->request, v.data, v.len)) != NULL)
      m->handle(c, c->request);
    else
      rm_call_fail_unpack(c);
    payload_view_destroy(&v);
  }
  grpc_byte_buffer_destroy(payload);
}

static void unpack_and_handle_job(void *arg) { unpack_and_handle(arg); }

int rm_call_on_worker(const rm_call_t *c) { return c->on_worker; }

/* A call has arrived on a slot: admission checks, then the method. The slot's hold on the
 * server passes to the call. */
static void dispatch(cq_thread_t *q, rm_method_t *m, grpc_call *gcall, gpr_timespec deadline,
                     grpc_metadata_array *md, grpc_byte_buffer *payload, const char *unknown) {
  rm_server_t *s = q->s;
  /* Admission: auth before anything else; then draining. */
  const char *reject = NULL;
  grpc_status_code reject_code = GRPC_STATUS_OK;
  const char *reject_kind = NULL;
  rm_error_t auth_err;
  if (!m) {
    reject_code = GRPC_STATUS_UNIMPLEMENTED;
    reject_kind = "unimplemented";
  } else if (m->needs_auth && rm_auth_check(s->auth, md, &auth_err)) {
    reject = auth_err.message;
    reject_code = GRPC_STATUS_UNAUTHENTICATED;
    reject_kind = "unauthenticated";
  } else if (!m->serve_while_draining && atomic_load(&s->draining)) {
    reject_code = GRPC_STATUS_UNAVAILABLE;
    reject = "the server is shutting down; retry on another replica";
    reject_kind = "unavailable";
  }
  if (m && m->kind == RM_RPC_STREAM && reject_code == GRPC_STATUS_OK) {
    grpc_metadata_array_destroy(md);
    m->start(s, gcall, payload, q);
    return;
  }
  rm_call_t *c = call_new(q);
  if (!c) {
    /* Out of memory: we cannot even answer; cancel so the client is not left waiting. */
    grpc_call_cancel_with_status(gcall, GRPC_STATUS_RESOURCE_EXHAUSTED, "server out of memory",
                                 NULL);
    grpc_metadata_array_destroy(md);
    if (payload)
      grpc_byte_buffer_destroy(payload);
    grpc_call_unref(gcall);
    rm_server_release(s);
    return;
  }
  memset(c, 0, offsetof(rm_call_t, arena_inline));
  rm_arena_init(&c->arena, c->arena_inline, sizeof c->arena_inline);
  atomic_fetch_add(&s->unary, 1);
  atomic_init(&c->refs, 2); /* the close batch and the send batch */
  c->s = s;
  c->home = q;
  c->method = m;
  c->call = gcall;
  c->md = *md;
  c->payload = payload;
  c->request_bytes = payload ? grpc_byte_buffer_length(payload) : 0;
  c->t_start = rm_clock_ns();
  c->deadline_ns = deadline_to_ns(deadline, c->t_start);
  c->details = grpc_empty_slice();
  if (unknown)
    c->unregistered_path = rm_strdup(unknown);
  if (reject_code != GRPC_STATUS_OK) {
    char text[300];
    if (!m) {
      snprintf(text, sizeof text, "method %s is not implemented by this server",
               unknown ? unknown : "?");
      reject = text;
    }
    rm_call_fail(c, reject_code, reject, reject_kind, NULL, NULL);
    return;
  }
  if (!payload) {
    rm_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT,
                 grpc_call_failed_before_recv_message(gcall)
                     ? "the request message could not be received"
                     : "the call carried no request message",
                 "invalid_request", NULL, NULL);
    return;
  }
  /* A big request of the busy method is unpacked on a worker too: unpacking megabytes
   * here would stall every call queued behind it on this polling thread. */
  if (m->hot && c->request_bytes > s->cfg->inline_max_bytes) {
    rm_call_watch_cancel(c);
    c->on_worker = 1;
    if (rm_server_offload(s, unpack_and_handle_job, c) == 0)
      return;
    c->on_worker = 0;
    rm_call_fail(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down", "unavailable", NULL,
                 NULL);
    return;
  }
  unpack_and_handle(c);
}

static int post_slot(slot_t *sl);

/* Every posted slot holds the server (rm_server_hold), so shutdown cannot destroy the core
 * server while a matched call still waits in a queue to be re-armed. */
static void on_request(rm_tag_t *tag, int ok) {
  slot_t *sl = RM_TAG_OWNER(tag, slot_t, tag);
  if (!ok) { /* the server is shutting down: this slot is done */
    rm_server_release(sl->q->s);
    return;
  }
  grpc_call *gcall = sl->call;
  gpr_timespec deadline = sl->method ? sl->deadline : sl->details.deadline;
  grpc_metadata_array md = sl->md;
  grpc_byte_buffer *payload = sl->payload;
  char unknown[256] = "";
  rm_method_t *m = sl->method;
  if (!m) {
    snprintf(unknown, sizeof unknown, "%.*s", (int)GRPC_SLICE_LENGTH(sl->details.method),
             (const char *)GRPC_SLICE_START_PTR(sl->details.method));
    grpc_call_details_destroy(&sl->details);
  }
  /* re-arm first so the slot is never missing while the call runs */
  post_slot(sl);
  dispatch(sl->q, m, gcall, deadline, &md, payload, m ? NULL : unknown);
}

static int post_slot(slot_t *sl) {
  rm_server_t *s = sl->q->s;
  if (atomic_load(&s->stopping))
    return -1; /* no new requests once the core server is shutting down */
  rm_server_hold(s);
  sl->call = NULL;
  sl->payload = NULL;
  grpc_metadata_array_init(&sl->md);
  sl->tag.fn = on_request;
  grpc_call_error e;
  if (sl->method) {
    e = grpc_server_request_registered_call(
        s->server, sl->method->registered, &sl->call, &sl->deadline, &sl->md,
        sl->method->kind == RM_RPC_UNARY || sl->method->payload_with_request ? &sl->payload : NULL,
        sl->q->cq, sl->q->cq, &sl->tag);
  } else {
    grpc_call_details_init(&sl->details);
    e = grpc_server_request_call(s->server, &sl->call, &sl->details, &sl->md, sl->q->cq, sl->q->cq,
                                 &sl->tag);
  }
  if (e != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&sl->md);
    if (!sl->method)
      grpc_call_details_destroy(&sl->details);
    rm_server_release(s);
    return -1;
  }
  return 0;
}

static void *poll_main(void *arg) {
  cq_thread_t *q = arg;
  this_queue = q;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(q->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type == GRPC_OP_COMPLETE) {
      rm_tag_t *tag = ev.tag;
      tag->fn(tag, ev.success);
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

static int arg_int(grpc_arg *a, const char *key, int value) {
  a->type = GRPC_ARG_INTEGER;
  a->key = (char *)key;
  a->value.integer = value;
  return 1;
}

rm_server_t *rm_server_new(const rm_config_t *cfg, rm_method_t *methods, char *errbuf,
                           size_t errcap) {
  rm_server_t *s = rm_calloc(1, sizeof *s);
  if (!s) {
    snprintf(errbuf, errcap, "out of memory");
    return NULL;
  }
  s->cfg = cfg;
  s->methods = methods;
  pthread_once(&core_clock_once, measure_core_clock_offset);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_mutex_init(&s->job_mu, NULL);
  pthread_cond_init(&s->job_cv, NULL);
  rm_error_t err;
  if (rm_auth_new(cfg, &s->auth, &err)) {
    snprintf(errbuf, errcap, "%s", err.message);
    rm_server_free(s);
    return NULL;
  }

  grpc_arg args[16];
  size_t n = 0;
  n += arg_int(&args[n], GRPC_ARG_ALLOW_REUSEPORT, 0);
  n += arg_int(&args[n], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)cfg->max_message_bytes);
  n += arg_int(&args[n], GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, (int)cfg->max_message_bytes);
  n += arg_int(&args[n], GRPC_ARG_KEEPALIVE_TIME_MS, (int)cfg->keepalive_time_ms);
  n += arg_int(&args[n], GRPC_ARG_KEEPALIVE_TIMEOUT_MS, (int)cfg->keepalive_timeout_ms);
  n += arg_int(&args[n], GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
               cfg->keepalive_permit_without_calls);
  n += arg_int(&args[n], GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
               (int)cfg->min_ping_interval_ms);
  n += arg_int(&args[n], GRPC_ARG_MAX_CONCURRENT_STREAMS, (int)cfg->max_concurrent_streams);
  if (cfg->max_connection_idle_ms)
    n += arg_int(&args[n], GRPC_ARG_MAX_CONNECTION_IDLE_MS, (int)cfg->max_connection_idle_ms);
  if (cfg->max_connection_age_ms) {
    n += arg_int(&args[n], GRPC_ARG_MAX_CONNECTION_AGE_MS, (int)cfg->max_connection_age_ms);
    n += arg_int(&args[n], GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                 (int)cfg->max_connection_age_grace_ms);
  }
  grpc_channel_args ch_args = {n, args};
  s->server = grpc_server_create(&ch_args, NULL);

  s->n_queues = cfg->threads;
  s->queues = rm_calloc((size_t)s->n_queues, sizeof *s->queues);
  if (!s->queues) {
    snprintf(errbuf, errcap, "out of memory");
    rm_server_free(s);
    return NULL;
  }
  for (int i = 0; i < s->n_queues; i++) {
    s->queues[i].s = s;
    s->queues[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->queues[i].cq, NULL);
  }
  for (rm_method_t *m = methods; m->path; m++) {
    m->registered = grpc_server_register_method(s->server, m->path, NULL,
                                                m->kind == RM_RPC_UNARY || m->payload_with_request
                                                    ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                                    : GRPC_SRM_PAYLOAD_NONE,
                                                0);
    if (!m->registered) {
      snprintf(errbuf, errcap, "could not register method %s", m->path);
      rm_server_free(s);
      return NULL;
    }
  }
  grpc_server_credentials *creds;
  if (rm_tls_server_credentials(cfg, &creds, &err)) {
    snprintf(errbuf, errcap, "%s", err.message);
    rm_server_free(s);
    return NULL;
  }
  s->port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
  grpc_server_credentials_release(creds);
  if (s->port <= 0) {
    snprintf(errbuf, errcap, "cannot listen on %s (address in use or invalid)", cfg->listen);
    rm_server_free(s);
    return NULL;
  }
  return s;
}

/* Threads first, then the core server, then the request slots: if a thread cannot be
 * created nothing has been posted yet, so every queue can be shut down and destroyed. */
int rm_server_start(rm_server_t *s) {
  for (int i = 0; i < s->n_queues; i++) {
    if (pthread_create(&s->queues[i].thread, NULL, poll_main, &s->queues[i]))
      return -1;
    s->queues[i].started = 1;
  }
  s->workers = rm_calloc((size_t)s->cfg->workers, sizeof *s->workers);
  if (!s->workers)
    return -1;
  for (int i = 0; i < s->cfg->workers; i++) {
    if (pthread_create(&s->workers[i], NULL, worker_main, s))
      return -1;
    s->n_workers++;
  }
  grpc_server_start(s->server);
  /* Slots: the hot method gets request_slots per queue, other methods a few each, and a
   * catch-all pair so calls to unknown methods get UNIMPLEMENTED instead of hanging. */
  size_t small = s->cfg->request_slots < 4 ? (size_t)s->cfg->request_slots : 4;
  for (int i = 0; i < s->n_queues; i++) {
    cq_thread_t *q = &s->queues[i];
    size_t total = 2;
    for (rm_method_t *m = s->methods; m->path; m++)
      total += m->hot ? (size_t)s->cfg->request_slots : small;
    q->slots = rm_calloc(total, sizeof *q->slots);
    if (!q->slots)
      return -1;
    for (rm_method_t *m = s->methods; m->path; m++) {
      size_t k = m->hot ? (size_t)s->cfg->request_slots : small;
      for (size_t j = 0; j < k; j++) {
        slot_t *sl = &q->slots[q->n_slots++];
        sl->q = q;
        sl->method = m;
        if (post_slot(sl))
          return -1;
      }
    }
    for (size_t j = 0; j < 2; j++) {
      slot_t *sl = &q->slots[q->n_slots++];
      sl->q = q;
      sl->method = NULL;
      if (post_slot(sl))
        return -1;
    }
  }
  return 0;
}

void rm_server_drain(rm_server_t *s) { atomic_store(&s->draining, 1); }

void rm_server_wait_idle(rm_server_t *s, uint64_t grace_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)(grace_ms / 1000);
  until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->mu);
  while (atomic_load(&s->unary) > 0 && !atomic_load(&s->forced)) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &until))
      break;
  }
  pthread_mutex_unlock(&s->mu);
}

void rm_server_force(rm_server_t *s) {
  atomic_store(&s->forced, 1);
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void rm_server_shutdown(rm_server_t *s) {
  atomic_store(&s->draining, 1);
  atomic_store(&s->stopping, 1);
  grpc_completion_queue *scq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_server_shutdown_and_notify(s->server, scq, scq);
  /* Anything still running has had its grace period: cancel it. Calls we hold learn of it
   * through their close batch (cancelled flag), so pipelines stop at the next node. */
  grpc_server_cancel_all_calls(s->server);
  grpc_completion_queue_pluck(scq, scq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_completion_queue_destroy(scq);
  pthread_mutex_lock(&s->mu);
  while (atomic_load(&s->held) > 0)
    pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_lock(&s->job_mu);
  s->jobs_stop = 1;
  pthread_cond_broadcast(&s->job_cv);
  pthread_mutex_unlock(&s->job_mu);
  for (int i = 0; i < s->n_workers; i++)
    pthread_join(s->workers[i], NULL);
  s->n_workers = 0;
  grpc_server_destroy(s->server);
  s->server = NULL;
  for (int i = 0; i < s->n_queues; i++)
    grpc_completion_queue_shutdown(s->queues[i].cq);
  for (int i = 0; i < s->n_queues; i++) {
    if (s->queues[i].started) {
      pthread_join(s->queues[i].thread, NULL);
      s->queues[i].started = 0;
    } else { /* its thread never started (start-up failed): drain it here */
      while (grpc_completion_queue_next(s->queues[i].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                 .type != GRPC_QUEUE_SHUTDOWN)
        ;
    }
  }
}

void rm_server_free(rm_server_t *s) {
  if (!s)
    return;
  if (s->server) { /* never started, or failed before start */
    grpc_completion_queue *scq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_shutdown_and_notify(s->server, scq, scq);
    grpc_server_cancel_all_calls(s->server);
    grpc_completion_queue_pluck(scq, scq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_completion_queue_destroy(scq);
    grpc_server_destroy(s->server);
    for (int i = 0; s->queues && i < s->n_queues; i++)
      if (s->queues[i].cq)
        grpc_completion_queue_shutdown(s->queues[i].cq);
    for (int i = 0; s->queues && i < s->n_queues; i++) {
      if (!s->queues[i].cq)
        continue;
      while (grpc_completion_queue_next(s->queues[i].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                 .type != GRPC_QUEUE_SHUTDOWN)
        ;
    }
  }
  for (int i = 0; s->queues && i < s->n_queues; i++) {
    if (s->queues[i].cq)
      grpc_completion_queue_destroy(s->queues[i].cq);
    rm_free(s->queues[i].slots);
    while (s->queues[i].spare) { /* its thread has been joined */
      rm_call_t *c = s->queues[i].spare;
      s->queues[i].spare = c->next_spare;
      rm_free(c);
    }
  }
  rm_free(s->queues);
  rm_free(s->workers);
  rm_auth_free(s->auth);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->job_mu);
  pthread_cond_destroy(&s->job_cv);
  rm_free(s);
}
