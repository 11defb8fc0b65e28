/* server.h - the gRPC C-core server: polling threads with their completion queues, request
 * slots, admission, the method table, draining and shutdown. Services (pipeline, health,
 * reflection) plug in as rows of rm_method_t; each call is an rm_call_t (call.h). */
#ifndef RM_SERVER_SERVER_H
#define RM_SERVER_SERVER_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "call.h"
#include "config.h"
#include "rm/budget.h"
#include "rm/error.h"

/* Completion-queue tags: every tag is a struct starting with this callback, run on the
 * polling thread that owns the queue with ok = the event's success flag. */
typedef struct rm_tag {
  void (*fn)(struct rm_tag *tag, int ok);
} rm_tag_t;

/* The struct of `type` whose `member` is the tag `ptr` (a tag callback finds its call). */
#define RM_TAG_OWNER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A call, run or session that held more than this gives the heap's free pages back to the
 * system when it ends (malloc_trim(0)): freed big buffers in the middle of a heap are not
 * returned by free() (measured in tests/integration/test_memory.py). */
#define RM_SERVER_TRIM_AFTER_BYTES ((size_t)32 << 20)

typedef enum rm_rpc_kind {
  RM_RPC_UNARY,         /* one request, one reply or fail */
  RM_RPC_SERVER_STREAM, /* one request, then rm_call_write ... rm_call_finish */
  RM_RPC_BIDI_STREAM,   /* rm_call_read / rm_call_write ... rm_call_finish */
} rm_rpc_kind_t;

typedef struct rm_method {
  const char *path; /* "/package.Service/Method" */
  rm_rpc_kind_t kind;
  int needs_auth; /* bearer token checked when auth is on */
  int serve_while_draining;
  int hot; /* the busy path: gets request-slots outstanding requests per queue */
  /* Bidirectional: each message read (its received bytes and their copy into one piece)
   * is charged to the server's budget while the read callback runs; a message the budget
   * refuses is not read (the callback gets RM_ELIMIT, len the bytes asked). */
  int budgeted_reads;
  const ProtobufCMessageDescriptor *request; /* unpacked before handle() */
  /* Unary: must end in exactly one rm_call_reply()/rm_call_fail(), on any thread, now or
   * later; req belongs to the call and lives until the call is destroyed. Streaming: see
   * call.h (the handler owns one reference); req is NULL for bidirectional methods. */
  void (*handle)(rm_call_t *call, const ProtobufCMessage *req);
  /* Unary or server-streaming, instead of handle: gets the request's wire bytes, valid
   * as long as the call (messages may borrow from them), and unpacks what it needs with
   * rm_call_unpack (a handler may skip a part it already knows by its bytes). The same rules as
   * handle. */
  void (*handle_bytes)(rm_call_t *call, const uint8_t *data, size_t len);
  /* handle_bytes may get bytes with a gap (rm_bytebuf_view_init_gapped): the contents of the
   * first payload rm_wire_views_skeleton would view are not there until rm_call_fill_view.
   * A borrowing reply (rm_call_reply_borrowing) sends a range of the gap as the received
   * slices' own bytes. */
  int gapped;
  /* Streaming: the handler writes the call's `call` log line itself (a StreamPipeline
   * session's carries the session's figures); other streams get call.c's at their end. */
  int logs_itself;
  /* filled by the server */
  void *registered;
} rm_method_t;

/* Creates the server (binds the port, registers methods). methods is a NULL-path
 * terminated array that must outlive the server. 0 and *out, or RM_ENOMEM, RM_EIO (port
 * taken, unreadable TLS or token files), RM_EPARAM (a TLS or token file's contents are
 * invalid: a configuration error; err->field names the option), RM_EINTERNAL, with err (may
 * be NULL) describing it. Main thread. */
int rm_server_new(const rm_config_t *cfg, rm_method_t *methods, rm_server_t **out, rm_error_t *err);
/* The bound port (useful with port 0). */
int rm_server_port(const rm_server_t *s);
/* While the server's own warm call runs (warm_call.c): calls that arrive are the server's
 * own (rm_call_own). Set by the main thread, read by any. */
void rm_server_set_own_call(rm_server_t *s, int running);
/* Copies a token the server accepts (for its own calls, self_call.h): 0, or -1 with auth
 * off. Any thread, also during a reload. */
int rm_server_copy_token(const rm_server_t *s, char *out, size_t cap);
int rm_server_own_call(const rm_server_t *s);
/* The worker pool's load now (for /metrics). Any thread. */
void rm_server_worker_load(rm_server_t *s, size_t *queued, int *busy, int *threads);
/* The server's TLS state (tls.h; for its calls to itself, self_call.h), NULL without TLS. */
struct rm_tls *rm_server_tls(const rm_server_t *s);
/* Starts the polling threads and the workers. 0, or RM_ENOMEM with err (may be NULL)
 * filled; then rm_server_shutdown and rm_server_free still clean up. Main thread. */
int rm_server_start(rm_server_t *s, rm_error_t *err);
/* Stop sequence, called from the main thread: drain (new calls other than health get
 * UNAVAILABLE) and wait up to grace_ms for in-flight unary calls and open streaming sessions
 * (which close themselves when they see the drain), then shut the core
 * server down, cancel what is left, wait for every held call, join threads. */
void rm_server_drain(rm_server_t *s);
void rm_server_wait_idle(rm_server_t *s, uint64_t grace_ms);
void rm_server_shutdown(rm_server_t *s);
/* Certificate and token rotation (SIGHUP): re-reads the token file (tokens from the list stay)
 * and the TLS certificate, key and client CA. Calls in flight are unaffected; new calls use
 * the new tokens, new connections the new certificate. A file that cannot be used leaves
 * what it configures as it was and logs "reload_failed" (error, naming the option and the
 * file); then one "reloaded" line (info) lists what changed, what did not and what failed.
 * Main thread, while serving. */
void rm_server_reload(rm_server_t *s);
/* Ends rm_server_wait_idle early (a second SIGTERM/SIGINT). Any thread. */
void rm_server_force(rm_server_t *s);
/* Frees the server after rm_server_shutdown (or one that never started). NULL is a no-op. */
void rm_server_free(rm_server_t *s);

int rm_server_is_draining(const rm_server_t *s);
/* Marks that a call used big memory (above RM_SERVER_TRIM_AFTER_BYTES): when the last unary
 * call in flight ends, the heap's free pages go back to the system (malloc_trim(0)), so
 * what a busy period leaves between live allocations does not stay resident. Nothing when
 * no unary call is in flight (the caller has just trimmed). Any thread. */
void rm_server_trim_when_idle(rm_server_t *s);
/* Once a second while serving (main thread). The gRPC core frees what it held for calls the
 * server never saw (streams it cancelled under --max-core-memory, messages of connections that
 * closed) on its own threads, after the last call of ours that trims: when no call or session
 * is in flight at the tick, the resident size is more than RM_SERVER_IDLE_SLACK_BYTES above the
 * warm size and the heaps' free resident memory (resident less what malloc has handed out) has
 * grown by that much since the last such trim, the heaps' free pages go back to the system
 * (malloc_trim(0), logged as idle_trimmed at debug). What a trim cannot give back (the free
 * top of a thread's heap) is so not trimmed for again every second. */
void rm_server_tick(rm_server_t *s);
#define RM_SERVER_IDLE_SLACK_BYTES ((uint64_t)16 << 20)
/* What the server holds, measured: its resident size above the process's own before the
 * warm-up (/proc/self/statm). Unlike the budget's count it also sees the messages the gRPC core
 * is still receiving and the allocator's free pages. When that plus `more` (bytes about to be
 * touched that are not resident yet) passes max-memory, the heap's free pages go back to the
 * system first (malloc_trim(0), at most once per 20 ms, logged as heap_trimmed at debug) and
 * it is measured again. 1 when it still passes, with the held bytes in *held; else 0 (also
 * when the size is not known). A few system calls: callers ask only before big requests
 * (RM_SERVER_RELIEVE_MIN_BYTES) and big reservations. Any thread. */
int rm_server_relieve(rm_server_t *s, size_t more, uint64_t *held);
/* Requests from this size on are checked with rm_server_relieve. */
#define RM_SERVER_RELIEVE_MIN_BYTES ((size_t)1 << 20)
const rm_config_t *rm_server_config(const rm_server_t *s);

/* Fully-qualified names of the services in the method table, in table order, each once
 * ("remotemedia.v1.PipelineService", ...). Owned by the server; *n set. Any thread. */
const char *const *rm_server_services(const rm_server_t *s, size_t *n);

/* Runs fn(arg) on a worker thread. 0, or a negative RM_E* when the pool is stopping or
 * memory ran out: then fn never runs. Any thread. */
int rm_server_offload(rm_server_t *s, void (*fn)(void *), void *arg);

/* The server-wide memory budget (--max-memory): the parent of every request's budget; calls
 * are handled with it current (rm_budget_enter). Lives until rm_server_free. Any thread. */
rm_budget_t *rm_server_budget(const rm_server_t *s);

/* Concurrency limiter for executions: 1 if a slot was taken, 0 if the limit is reached. */
int rm_server_exec_acquire(rm_server_t *s);
void rm_server_exec_release(rm_server_t *s);
/* 1 when no call but the caller's holds memory a wait would free: no ExecutePipeline call
 * between its admission by bytes and its end (rm__server_memory_call) besides `own` of them
 * (1 when the caller is one), and no open session. What the budget holds then is the
 * server's own (warm heaps, cached pipelines) and the caller's. Any thread; a hint (another
 * call may arrive at once). */
int rm_server_memory_alone(const rm_server_t *s, int own);
/* Limiter for streaming sessions (--max-sessions), apart from executions: 1 if a slot was
 * taken, 0 if the limit is reached. rm_server_wait_idle waits for open sessions too. Any
 * thread. */
int rm_server_session_acquire(rm_server_t *s);
void rm_server_session_release(rm_server_t *s);

#endif
