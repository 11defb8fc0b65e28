/* server_int.h - what the server (server.c) and its calls (call.c) share; not for the
 * services. */
#ifndef RM_SERVER_SERVER_INT_H
#define RM_SERVER_SERVER_INT_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stddef.h>

#include "server.h"

typedef struct rm__queue rm__queue_t;

/* ThreadSanitizer does not see the ordering the gRPC core (not instrumented) gives: what a
 * thread did before it started a batch happens before the batch's completion runs on a
 * polling thread. RM_TSAN_RELEASE(tag) before starting a batch (or posting a request) and
 * RM_TSAN_ACQUIRE(tag) when its event is taken tell it; no code outside TSan builds. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) /* clang; gcc defines __SANITIZE_THREAD__ */
#define RM_TSAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(RM_TSAN_BUILD)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define RM_TSAN_RELEASE(tag) __tsan_release(tag)
#define RM_TSAN_ACQUIRE(tag) __tsan_acquire(tag)
#else
#define RM_TSAN_RELEASE(tag) ((void)0)
#define RM_TSAN_ACQUIRE(tag) ((void)0)
#endif

/* One outstanding grpc_server_request_(registered_)call. */
typedef struct rm__slot {
  rm_tag_t tag;
  rm__queue_t *q;
  rm_method_t *method; /* NULL: the catch-all for unregistered methods */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_call_details details;
} rm__slot_t;

/* A completion queue and its polling thread. */
struct rm__queue {
  rm_server_t *s;
  grpc_completion_queue *cq;
  pthread_t thread;
  int started;
  rm__slot_t *slots;
  size_t n_slots;
  /* Finished calls kept for reuse (call.c): only this queue's polling thread touches it. */
  rm_call_t *spare;
  size_t n_spare;
};

/* The queue whose polling thread this is (NULL on other threads). */
extern _Thread_local rm__queue_t *rm__this_queue;

/* A request that arrived on q, to be answered. */
typedef struct rm__arrival {
  rm__queue_t *q;
  rm_method_t *m;   /* NULL for an unregistered method */
  grpc_call *gcall; /* the call owns it from here */
  gpr_timespec deadline;
  grpc_metadata_array md; /* moved into the call */
  grpc_byte_buffer *payload;
  int read_payload;    /* the request message is read once the call is admitted (not with it) */
  const char *unknown; /* the path of an unregistered method */
} rm__arrival_t;

/* ---- call.c ---- */

/* Sets up the call for an arrival and either answers reject (when non-NULL: admission
 * refused it) or hands it to its method. Owns everything in a, and the server hold the slot
 * passed on, in every case. Polling thread of a->q. */
void rm__call_start(rm__arrival_t *a, const rm_error_t *reject);
/* Frees q's spare calls. Its polling thread has been joined. */
void rm__call_free_spares(rm__queue_t *q);
/* Measures the core clock's offset once (deadline conversions); any thread, idempotent. */
void rm__call_clock_init(void);

/* Watches the sending of unary responses that hold memory: one the client has not taken
 * within timeout_ms is cancelled (--send-timeout-ms), so a client that reads nothing cannot
 * hold the server's budget for as long as its connection lives. A thread of its own. */
typedef struct rm__send_watch rm__send_watch_t;
/* NULL when the thread cannot start or memory is short. */
rm__send_watch_t *rm__send_watch_start(uint64_t timeout_ms);
/* Stops the thread and frees the watch, once no call is being sent. NULL is a no-op. */
void rm__send_watch_stop(rm__send_watch_t *w);

/* ---- server.c ---- */

/* The server's send watch, NULL when --send-timeout-ms is 0. */
rm__send_watch_t *rm__server_send_watch(const rm_server_t *s);

/* Counts a call the server must wait for at shutdown; release when it is unreffed. */
void rm__server_hold(rm_server_t *s);
void rm__server_release(rm_server_t *s);
/* Whether the server has begun cancelling every call (its shutdown: the grace period ran
 * out, a second signal, or streams left at an idle drain's end): a call that ends now got
 * UNAVAILABLE from the core. Any thread. */
int rm__server_cancelling(const rm_server_t *s);
/* Counts a unary call between arrival and its sent status (what the drain waits for). */
void rm__server_unary_begin(rm_server_t *s);
void rm__server_unary_end(rm_server_t *s);
/* Counts (+1) or uncounts (-1) a call whose request bytes the budget was asked for, from
 * that admission until the call's memory is freed (rm_server_memory_alone). */
void rm__server_memory_call(rm_server_t *s, int delta);

#endif
