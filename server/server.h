/* server.h - the gRPC C-core transport: polling threads with their completion queues,
 * request slots, the call lifecycle of unary methods, the method table, draining and
 * shutdown. Services (pipeline, health, reflection) plug in as rows of rm_method_t. */
#ifndef RM_SERVER_SERVER_H
#define RM_SERVER_SERVER_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rm/arena.h"

typedef struct rm_server rm_server_t;
typedef struct rm_call rm_call_t;

/* Completion-queue tags: every tag is a struct starting with this callback, run on the
 * polling thread that owns the queue with ok = the event's success flag. */
typedef struct rm_tag {
  void (*fn)(struct rm_tag *tag, int ok);
} rm_tag_t;

/* The struct of `type` whose `member` is the tag `ptr` (a tag callback finds its call). */
#define RM_TAG_OWNER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef enum rm_rpc_kind {
  RM_RPC_UNARY,
  RM_RPC_STREAM, /* server- or bidi-streaming: the method's start() owns the call */
} rm_rpc_kind_t;

typedef struct rm_method {
  const char *path; /* "/package.Service/Method" */
  rm_rpc_kind_t kind;
  int needs_auth; /* bearer token checked when auth is on */
  int serve_while_draining;
  int payload_with_request; /* stream methods: the first message arrives with the call */
  int hot;                  /* the busy path: gets request-slots outstanding requests per queue */
  const ProtobufCMessageDescriptor *request; /* unary: unpacked before handle() */
  /* Unary: must end in exactly one rm_call_reply()/rm_call_fail(), on any thread, now or
   * later; req belongs to the call and lives until the call is destroyed. */
  void (*handle)(rm_call_t *call, const ProtobufCMessage *req);
  /* Unary, instead of handle: gets the request's wire bytes, valid only until it returns,
   * and unpacks what it needs with rm_call_unpack (a handler may skip a part it already
   * knows by its bytes). The same rule: exactly one reply or fail. */
  void (*handle_bytes)(rm_call_t *call, const uint8_t *data, size_t len);
  /* Stream: takes ownership of call, payload (may be NULL) and must eventually
   * grpc_call_unref the call and call rm_server_release(). The server has already counted
   * the call with rm_server_hold(). */
  void (*start)(rm_server_t *s, grpc_call *call, grpc_byte_buffer *payload, void *cq_ctx);
  /* filled by the server */
  void *registered;
} rm_method_t;

/* Creates the server (binds the port, registers methods). methods is a NULL-path
 * terminated array that must outlive the server. NULL with errbuf filled on failure
 * (port taken, bad TLS files, ...). */
rm_server_t *rm_server_new(const rm_config_t *cfg, rm_method_t *methods, char *errbuf,
                           size_t errcap);
/* The bound port (useful with port 0). */
int rm_server_port(const rm_server_t *s);
/* Starts the polling threads and the workers. 0 or -1. */
int rm_server_start(rm_server_t *s);
/* Stop sequence, called from the main thread: drain (new calls other than health get
 * UNAVAILABLE) and wait up to grace_ms for in-flight unary calls, then shut the core
 * server down, cancel what is left, wait for every held call, join threads. */
void rm_server_drain(rm_server_t *s);
void rm_server_wait_idle(rm_server_t *s, uint64_t grace_ms);
void rm_server_shutdown(rm_server_t *s);
/* Ends rm_server_wait_idle early (a second SIGTERM/SIGINT). Any thread. */
void rm_server_force(rm_server_t *s);
void rm_server_free(rm_server_t *s);

int rm_server_is_draining(const rm_server_t *s);
const rm_config_t *rm_server_config(const rm_server_t *s);

/* Counts a call the server must wait for at shutdown; release when it is unreffed. */
void rm_server_hold(rm_server_t *s);
void rm_server_release(rm_server_t *s);

/* Runs fn(arg) on a worker thread. 0, or -1 when the pool is stopping (fn not run). */
int rm_server_offload(rm_server_t *s, void (*fn)(void *), void *arg);

/* Concurrency limiter for executions: 1 if a slot was taken, 0 if the limit is reached. */
int rm_server_exec_acquire(rm_server_t *s);
void rm_server_exec_release(rm_server_t *s);

/* ---- unary call API for handlers ---- */

/* Packs msg and sends it with status OK. The message is not retained. Any thread. */
void rm_call_reply(rm_call_t *call, const ProtobufCMessage *msg);
/* Sends a non-OK status. message is the status text; kind/node/field become the trailers
 * rm-error-kind, rm-failing-node, rm-field when non-empty. Any thread. */
void rm_call_fail(rm_call_t *call, grpc_status_code code, const char *message, const char *kind,
                  const char *node, const char *field);

/* Starts watching for client cancellation (and deadline expiry) so rm_call_cancel_flag
 * turns non-zero when it happens. Call it on the polling thread before handing the call to
 * a worker; calls answered inline skip it and save a batch. */
void rm_call_watch_cancel(rm_call_t *call);

/* Non-zero when the call is being handled on a worker thread (big requests are unpacked
 * and handled there from the start): handlers need not offload it again. */
int rm_call_on_worker(const rm_call_t *call);

/* Monotonic deadline of the call in rm_clock_ns() units, 0 when the client set none. */
uint64_t rm_call_deadline_ns(const rm_call_t *call);
/* When the call arrived, in rm_clock_ns() units. */
uint64_t rm_call_arrival_ns(const rm_call_t *call);
/* Non-zero once the client cancelled or the server is force-stopping. */
const atomic_int *rm_call_cancel_flag(const rm_call_t *call);
/* Size in bytes of the request message as received. */
size_t rm_call_request_bytes(const rm_call_t *call);
rm_server_t *rm_call_server(const rm_call_t *call);
/* Keeps the call (and its arena and request) alive past its reply; any thread. */
void rm_call_ref(rm_call_t *call);
void rm_call_unref(rm_call_t *call);

/* Memory that lives until the call is destroyed (after its reply was sent). Use it only
 * from the thread currently handling the call. */
rm_arena_t *rm_call_arena(rm_call_t *call);
/* Unpacks wire bytes into the call's arena (the message lives as long as the call), all
 * unpacks of one call together held to a budget of twice the request's size plus 1 MiB.
 * NULL when the bytes are not a valid message or the budget is spent: answer with
 * rm_call_fail_unpack. Thread currently handling the call. */
ProtobufCMessage *rm_call_unpack(rm_call_t *call, const ProtobufCMessageDescriptor *desc,
                                 const uint8_t *data, size_t len);
/* Fails the call after rm_call_unpack returned NULL: RESOURCE_EXHAUSTED when the budget
 * was spent, else INVALID_ARGUMENT naming the method's request message. */
void rm_call_fail_unpack(rm_call_t *call);
/* Extra fields for the call's log line (e.g. the pipeline name); copied. */
void rm_call_set_log_note(rm_call_t *call, const char *key, const char *value);

/* Packs any message into a new byte buffer (NULL on OOM). */
grpc_byte_buffer *rm_pack(const ProtobufCMessage *msg);
/* Unpacks a byte buffer (NULL buffer or parse failure: NULL); free with rm_unpack_free. */
ProtobufCMessage *rm_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb);
void rm_unpack_free(ProtobufCMessage *msg);

const char *rm_status_name(grpc_status_code code);

#endif
