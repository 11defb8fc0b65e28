/* server.c - the gRPC C-core server: completion queues and their polling threads, request
 * slots, admission, the worker pool, draining and shutdown. */
#include "server.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "pool.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "server_int.h"
#include "status.h"
#include "sysres.h"
#include "tls.h"

_Thread_local rm__queue_t *rm__this_queue;

struct rm_server {
  const rm_config_t *cfg;
  rm_method_t *methods;
  const char **services; /* each points into a method's path, with its own length ... */
  char *service_names;   /* ... copied NUL-terminated here */
  size_t n_services;
  grpc_server *server;
  rm__queue_t *queues;
  int n_queues;
  int port;
  rm_auth_t *auth;
  rm_tls_t *tls; /* NULL without TLS */
  atomic_int draining;
  atomic_int stopping;
  atomic_int forced;            /* a second signal: stop waiting for in-flight calls */
  atomic_int cancelling;        /* the server cancels every call (rm__server_cancelling) */
  rm__send_watch_t *send_watch; /* --send-timeout-ms; set before the first call */
  atomic_int idle_drain;        /* rm_server_wait_idle saw nothing in flight (not its time-out) */
  atomic_long held;             /* calls we still own */
  atomic_long posted;           /* of them, request slots waiting for a call */
  atomic_ulong arrivals;        /* calls matched to a request slot, ever */
  atomic_long unary;            /* unary calls between arrival and sent status */
  atomic_int trim_pending;      /* rm_server_trim_when_idle: trim when unary drops to 0 */
  atomic_uint_fast64_t relieved_ns; /* rm_server_relieve's last trim */
  uint64_t resident_base;           /* resident bytes before the warm-up (0: unknown) */
  atomic_long executing;            /* ExecutePipeline slots taken */
  atomic_long sessions;     /* StreamPipeline sessions open (what the drain also waits for) */
  atomic_long memory_calls; /* rm__server_memory_call */
  atomic_int own_call;      /* rm_server_set_own_call */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* signalled when held/unary drop */
  rm_pool_t pool;
  rm_budget_t *budget; /* --max-memory: every call and run draws from it; freed last */
  /* start-up warm-up (see warm_thread): one thread at a time, counted down to 0 */
  pthread_mutex_t warm_mu;
  pthread_cond_t warm_cv;
  int warm_left;           /* threads still to warm */
  int warm_arrived;        /* workers holding their warm-up job */
  int warm_abandoned;      /* a job could not be queued: the others stop waiting for it */
  size_t warm_charge;      /* what the warm-up made resident, charged to the budget for good */
  uint64_t warm_resident;  /* what the warm-up made resident, charged or not */
  int tick_trimmed;        /* rm_server_tick has trimmed (main thread) ... */
  int64_t tick_free_after; /* ... leaving this much resident and free (resident_free) */
};

/* ---------------------------------------------------------------- counters */

static void wake_waiters(rm_server_t *s) {
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void rm__server_hold(rm_server_t *s) { atomic_fetch_add(&s->held, 1); }

/* The release that may be the last one takes held to 0 under mu, where rm_server_shutdown
 * reads it: that thread (a core thread, never joined) must be done with s before the waiter,
 * seeing 0, goes on to free it. Others only decrement (request slots keep held high while
 * serving). */
rm__send_watch_t *rm__server_send_watch(const rm_server_t *s) { return s->send_watch; }

int rm__server_cancelling(const rm_server_t *s) {
  return atomic_load(&((rm_server_t *)s)->cancelling);
}

void rm__server_release(rm_server_t *s) {
  long cur = atomic_load(&s->held);
  while (cur > 1)
    if (atomic_compare_exchange_weak(&s->held, &cur, cur - 1))
      return;
  pthread_mutex_lock(&s->mu);
  if (atomic_fetch_sub(&s->held, 1) == 1)
    pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void rm__server_unary_begin(rm_server_t *s) { atomic_fetch_add(&s->unary, 1); }

void rm__server_unary_end(rm_server_t *s) {
  if (atomic_fetch_sub(&s->unary, 1) != 1)
    return;
  wake_waiters(s);
  if (atomic_load(&s->trim_pending) && atomic_exchange(&s->trim_pending, 0))
    malloc_trim(0);
}

void rm_server_trim_when_idle(rm_server_t *s) {
  if (atomic_load(&s->unary) > 0)
    atomic_store(&s->trim_pending, 1);
}

/* Under a sanitizer or valgrind the resident size is mostly theirs (shadow memory, freed
 * blocks held in quarantine), not this program's: the measured check is off there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_NOT_OURS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define RSS_NOT_OURS 1
#endif
#endif
#if !defined(RSS_NOT_OURS) && defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

static int rss_is_ours(void) {
#if defined(RSS_NOT_OURS)
  return 0;
#elif defined(RUNNING_ON_VALGRIND)
  return !RUNNING_ON_VALGRIND;
#else
  return 1;
#endif
}

/* At most one trim per this interval: under sustained pressure every big call would trim. */
#define RELIEVE_INTERVAL_NS (20ull * 1000000ull)

static uint64_t held_now(const rm_server_t *s) {
  uint64_t resident = rm_sysres_resident();
  if (!resident || !s->resident_base)
    return 0;
  return resident > s->resident_base ? resident - s->resident_base : 1;
}

int rm_server_relieve(rm_server_t *s, size_t more, uint64_t *held) {
  *held = held_now(s);
  if (!*held || *held + more <= s->cfg->max_memory)
    return 0;
  uint64_t now = rm_clock_ns();
  uint_fast64_t last = atomic_load(&s->relieved_ns);
  if (now - last >= RELIEVE_INTERVAL_NS &&
      atomic_compare_exchange_strong(&s->relieved_ns, &last, now)) {
    malloc_trim(0);
    uint64_t after = held_now(s);
    RM_LOG(RM_LOG_DEBUG, "heap_trimmed", "{s:I, s:I, s:I}", "held_before", (json_int_t)*held,
           "held_after", (json_int_t)after, "more", (json_int_t)more);
    if (after)
      *held = after;
  }
  return *held + more > s->cfg->max_memory;
}

/* The resident bytes malloc has not handed out (free pages in its heaps; with a constant part,
 * the program's code and stacks): mallinfo2 counts what is in use in every arena and mapped. */
static int64_t resident_free(uint64_t resident) {
  struct mallinfo2 mi = mallinfo2();
  return (int64_t)resident - (int64_t)(mi.uordblks + mi.hblkhd);
}

void rm_server_tick(rm_server_t *s) {
  if (!s->resident_base || atomic_load(&s->unary) || atomic_load(&s->sessions))
    return;
  uint64_t resident = rm_sysres_resident();
  if (!resident || resident <= s->resident_base + s->warm_resident + RM_SERVER_IDLE_SLACK_BYTES)
    return;
  /* what the last trim could not give back (the free tops of thread heaps) is not trimmed
   * for again: only free memory that grew by the slack since */
  int64_t free_now = resident_free(resident);
  if (s->tick_trimmed && free_now <= s->tick_free_after + (int64_t)RM_SERVER_IDLE_SLACK_BYTES)
    return;
  malloc_trim(0);
  uint64_t after = rm_sysres_resident();
  s->tick_free_after = resident_free(after);
  s->tick_trimmed = 1;
  RM_LOG(RM_LOG_DEBUG, "idle_trimmed", "{s:I, s:I}", "held_before",
         (json_int_t)(resident - s->resident_base), "held_after",
         (json_int_t)(after > s->resident_base ? after - s->resident_base : 0));
}

int rm_server_is_draining(const rm_server_t *s) { return atomic_load(&s->draining); }
const rm_config_t *rm_server_config(const rm_server_t *s) { return s->cfg; }
int rm_server_port(const rm_server_t *s) { return s->port; }

void rm_server_set_own_call(rm_server_t *s, int running) {
  atomic_store_explicit(&s->own_call, running != 0, memory_order_relaxed);
}

int rm_server_copy_token(const rm_server_t *s, char *out, size_t cap) {
  return rm_auth_copy_token(s->auth, out, cap);
}

struct rm_tls *rm_server_tls(const rm_server_t *s) {
  return s->tls;
}

int rm_server_own_call(const rm_server_t *s) {
  return atomic_load_explicit(&((rm_server_t *)s)->own_call, memory_order_relaxed);
}

const char *const *rm_server_services(const rm_server_t *s, size_t *n) {
  *n = s->n_services;
  return s->services;
}

int rm_server_exec_acquire(rm_server_t *s) {
  long now = atomic_fetch_add(&s->executing, 1);
  if ((uint64_t)now >= s->cfg->max_concurrent) {
    atomic_fetch_sub(&s->executing, 1);
    return 0;
  }
  return 1;
}

void rm_server_exec_release(rm_server_t *s) { atomic_fetch_sub(&s->executing, 1); }

void rm__server_memory_call(rm_server_t *s, int delta) {
  atomic_fetch_add(&s->memory_calls, delta);
}

int rm_server_memory_alone(const rm_server_t *s, int own) {
  return atomic_load(&s->memory_calls) <= own && atomic_load(&s->sessions) == 0;
}

int rm_server_session_acquire(rm_server_t *s) {
  long now = atomic_fetch_add(&s->sessions, 1);
  if ((uint64_t)now >= s->cfg->max_sessions) {
    rm_server_session_release(s);
    return 0;
  }
  return 1;
}

void rm_server_session_release(rm_server_t *s) {
  if (atomic_fetch_sub(&s->sessions, 1) == 1)
    wake_waiters(s);
}

void rm_server_worker_load(rm_server_t *s, size_t *queued, int *busy, int *threads) {
  rm_pool_load(&s->pool, queued, busy, threads);
}

int rm_server_offload(rm_server_t *s, void (*fn)(void *), void *arg) {
  return rm_pool_submit(&s->pool, fn, arg);
}

/* ---------------------------------------------------------------- arrivals */

/* The request's metadata as HTTP/2 counts a header list (RFC 7540 6.5.2): name and value
 * bytes plus 32 per entry. The core's own limit (create_core_server) is above it, so a
 * call between the two fails alone here. */
static size_t metadata_bytes(const grpc_metadata_array *md) {
  size_t n = 0;
  for (size_t i = 0; i < md->count; i++)
    n += GRPC_SLICE_LENGTH(md->metadata[i].key) + GRPC_SLICE_LENGTH(md->metadata[i].value) + 32;
  return n;
}

/* Admission, before a call is set up: the metadata's size, then auth, then draining. 0, or
 * the refusal in err. */
static int admit(rm_server_t *s, const rm__arrival_t *a, rm_error_t *err) {
  int rc;
  if (!a->m)
    return rm_error_set(err, RM_EUNIMPLEMENTED, NULL, NULL,
                        "method %s is not implemented by this server",
                        a->unknown ? a->unknown : "?");
  size_t md_bytes = metadata_bytes(&a->md);
  if (md_bytes > s->cfg->max_metadata_bytes)
    return rm_error_set(err, RM_ELIMIT, NULL, "max_metadata_bytes",
                        "the request's metadata is %zu bytes, more than max-metadata-bytes (%llu)",
                        md_bytes, (unsigned long long)s->cfg->max_metadata_bytes);
  if (a->m->needs_auth && (rc = rm_auth_check(s->auth, &a->md, err)) != 0)
    return rc;
  if (!a->m->serve_while_draining && atomic_load(&s->draining))
    return rm_error_set(err, RM_EUNAVAILABLE, NULL, NULL,
                        "the server is shutting down; retry on another replica");
  return 0;
}

/* Methods whose request arrives with the call: unary and server-streaming ones, except where
 * the server checks a token first. There the message is read only once the call is admitted
 * (rm__call_start), so a client without a valid token cannot make the server take in
 * messages; the extra read costs about 3k instructions per call (docs/security.md). */
static int payload_with_call(const rm_server_t *s, const rm_method_t *m) {
  return m->kind != RM_RPC_BIDI_STREAM && !(m->needs_auth && s->auth);
}

static int post_slot(rm__slot_t *sl);

/* Every posted slot holds the server (rm__server_hold), so shutdown cannot destroy the core
 * server while a matched call still waits in a queue to be re-armed. The slot's hold passes
 * to the call. */
static void on_request(rm_tag_t *tag, int ok) {
  rm__slot_t *sl = RM_TAG_OWNER(tag, rm__slot_t, tag);
  atomic_fetch_sub(&sl->q->s->posted, 1);
  if (ok)
    atomic_fetch_add(&sl->q->s->arrivals, 1);
  if (!ok) { /* the server is shutting down: this slot is done */
    rm__server_release(sl->q->s);
    return;
  }
  char unknown[256] = "";
  rm__arrival_t a = {.q = sl->q,
                     .m = sl->method,
                     .gcall = sl->call,
                     .deadline = sl->method ? sl->deadline : sl->details.deadline,
                     .md = sl->md,
                     .payload = sl->payload,
                     .read_payload = sl->method && sl->method->kind != RM_RPC_BIDI_STREAM &&
                                     !payload_with_call(sl->q->s, sl->method)};
  if (!a.m) {
    snprintf(unknown, sizeof unknown, "%.*s", (int)GRPC_SLICE_LENGTH(sl->details.method),
             (const char *)GRPC_SLICE_START_PTR(sl->details.method));
    grpc_call_details_destroy(&sl->details);
    a.unknown = unknown;
  }
  /* re-arm first so the slot is never missing while the call runs */
  post_slot(sl);
  rm_error_t reject;
  reject.code = 0;
  /* counted from before admission until the call counts itself: a drain that begins while
   * this thread is between the two (preempted, on a loaded machine) must not find it idle */
  rm__server_unary_begin(sl->q->s);
  if (admit(a.q->s, &a, &reject))
    rm__call_start(&a, &reject);
  else
    rm__call_start(&a, NULL);
  rm__server_unary_end(sl->q->s);
}

static int post_slot(rm__slot_t *sl) {
  rm_server_t *s = sl->q->s;
  if (atomic_load(&s->stopping))
    return -1; /* no new requests once the core server is shutting down */
  rm__server_hold(s);
  sl->call = NULL;
  sl->payload = NULL;
  grpc_metadata_array_init(&sl->md);
  sl->tag.fn = on_request;
  RM_TSAN_RELEASE(&sl->tag);
  grpc_call_error e;
  if (sl->method) {
    e = grpc_server_request_registered_call(
        s->server, sl->method->registered, &sl->call, &sl->deadline, &sl->md,
        payload_with_call(s, sl->method) ? &sl->payload : NULL, sl->q->cq, sl->q->cq, &sl->tag);
  } else {
    grpc_call_details_init(&sl->details);
    e = grpc_server_request_call(s->server, &sl->call, &sl->details, &sl->md, sl->q->cq, sl->q->cq,
                                 &sl->tag);
  }
  if (e == GRPC_CALL_OK)
    atomic_fetch_add(&s->posted, 1);
  if (e != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&sl->md);
    if (!sl->method)
      grpc_call_details_destroy(&sl->details);
    rm__server_release(s);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- warm heaps */

/* Issue 11: a fresh server's first big request faulted in every page its bytes were received
 * and copied into (3.84 MB PassThrough: ~1 950 minor faults, ~85 ms of CPU against ~8 ms
 * warm; a fault costs this machine's VMs tens of microseconds). Each polling thread and worker
 * pre-faults --warm-bytes of the heap it allocates from before the server takes calls; glibc
 * keeps the pages (M_TRIM_THRESHOLD, main.c). One thread at a time: threads that share a malloc
 * arena then share its warm pages instead of each adding their own, so what stays resident is
 * warm-bytes per arena in use, not per thread. */
static void warm_thread(rm_server_t *s) {
  pthread_mutex_lock(&s->warm_mu);
  rm_alloc_warm((size_t)s->cfg->warm_bytes);
  s->warm_left--;
  pthread_cond_broadcast(&s->warm_cv);
  pthread_mutex_unlock(&s->warm_mu);
}

/* A worker's warm-up job: it waits until every worker holds one (or the queueing failed), so
 * no worker runs two and none is left cold. */
static void warm_worker_job(void *arg) {
  rm_server_t *s = arg;
  pthread_mutex_lock(&s->warm_mu);
  s->warm_arrived++;
  pthread_cond_broadcast(&s->warm_cv);
  while (s->warm_arrived < s->cfg->workers && !s->warm_abandoned)
    pthread_cond_wait(&s->warm_cv, &s->warm_mu);
  pthread_mutex_unlock(&s->warm_mu);
  warm_thread(s);
}

/* Queues the workers' warm-ups and waits for every thread's (the polling threads warm
 * themselves as they start). Main thread, before grpc_server_start. */
static void warm_all(rm_server_t *s) {
  int workers = s->cfg->workers;
  for (int i = 0; i < workers; i++)
    if (rm_pool_submit(&s->pool, warm_worker_job, s)) {
      pthread_mutex_lock(&s->warm_mu); /* those workers stay cold: do not wait for them */
      s->warm_left -= workers - i;
      s->warm_abandoned = 1; /* and the queued jobs do not wait for the missing ones */
      pthread_cond_broadcast(&s->warm_cv);
      pthread_mutex_unlock(&s->warm_mu);
      break;
    }
  pthread_mutex_lock(&s->warm_mu);
  while (s->warm_left > 0)
    pthread_cond_wait(&s->warm_cv, &s->warm_mu);
  pthread_mutex_unlock(&s->warm_mu);
}

static void *poll_main(void *arg) {
  rm__queue_t *q = arg;
  rm__this_queue = q;
  if (q->s->cfg->warm_bytes)
    warm_thread(q->s);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(q->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type == GRPC_OP_COMPLETE) {
      rm_tag_t *tag = ev.tag;
      RM_TSAN_ACQUIRE(tag);
      tag->fn(tag, ev.success);
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------- creation */

static int arg_int(grpc_arg *a, const char *key, int value) {
  a->type = GRPC_ARG_INTEGER;
  a->key = (char *)key;
  a->value.integer = value;
  return 1;
}

static grpc_server *create_core_server(const rm_config_t *cfg) {
  grpc_arg args[16];
  size_t n = 0;
  n += arg_int(&args[n], GRPC_ARG_ALLOW_REUSEPORT, 0);
  /* the server checks each message it receives (rm_call_message_too_big): the core's check
   * comes only once it has taken the whole message in, like ours, but fails the call without
   * the server seeing it (no status of ours, no count, no log line) */
  n += arg_int(&args[n], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1);
  n += arg_int(&args[n], GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, (int)cfg->max_message_bytes);
  /* identity only: the core inflates a compressed message whole before anyone can check its
   * size (a 60 KB gzip message became 60 MiB on the polling thread), and media does not
   * compress; a compressed request is refused (UNIMPLEMENTED) */
  n += arg_int(&args[n], GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET,
               1 << GRPC_COMPRESS_NONE);
  n += arg_int(&args[n], GRPC_ARG_KEEPALIVE_TIME_MS, (int)cfg->keepalive_time_ms);
  n += arg_int(&args[n], GRPC_ARG_KEEPALIVE_TIMEOUT_MS, (int)cfg->keepalive_timeout_ms);
  n += arg_int(&args[n], GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
               cfg->keepalive_permit_without_calls);
  n += arg_int(&args[n], GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
               (int)cfg->min_ping_interval_ms);
  n += arg_int(&args[n], GRPC_ARG_MAX_CONCURRENT_STREAMS, (int)cfg->max_concurrent_streams);
  n += arg_int(&args[n], GRPC_ARG_MAX_METADATA_SIZE, (int)rm_config_metadata_hard_limit(cfg));
  if (cfg->max_connection_idle_ms)
    n += arg_int(&args[n], GRPC_ARG_MAX_CONNECTION_IDLE_MS, (int)cfg->max_connection_idle_ms);
  if (cfg->max_connection_age_ms) {
    n += arg_int(&args[n], GRPC_ARG_MAX_CONNECTION_AGE_MS, (int)cfg->max_connection_age_ms);
    n += arg_int(&args[n], GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                 (int)cfg->max_connection_age_grace_ms);
  }
  /* --max-core-memory: the core's own buffers (connections, request messages it takes in
   * before the server sees their call) under a resource quota. Past it the core closes idle
   * connections and cancels streams, any of them, so it is opt-in: a last resort before the
   * container's limit (docs/security.md). */
  grpc_resource_quota *quota = NULL;
  if (cfg->max_core_memory) {
    quota = grpc_resource_quota_create("remotemedia");
    grpc_resource_quota_resize(quota, (size_t)cfg->max_core_memory);
    args[n].type = GRPC_ARG_POINTER;
    args[n].key = (char *)GRPC_ARG_RESOURCE_QUOTA;
    args[n].value.pointer.p = quota;
    args[n].value.pointer.vtable = grpc_resource_quota_arg_vtable();
    n++;
  }
  grpc_channel_args ch_args = {n, args};
  grpc_server *server = grpc_server_create(&ch_args, NULL);
  if (quota)
    grpc_resource_quota_unref(quota); /* the server's channel args hold their own reference */
  return server;
}

/* The service of "/pkg.Service/Method": its start and length. */
static const char *service_of(const char *path, size_t *len) {
  const char *start = path[0] == '/' ? path + 1 : path;
  const char *slash = strchr(start, '/');
  *len = slash ? (size_t)(slash - start) : strlen(start);
  return start;
}

/* The distinct services of the method table, in table order. 0 or RM_ENOMEM. */
static int collect_services(rm_server_t *s) {
  size_t n_methods = 0, bytes = 0;
  for (rm_method_t *m = s->methods; m->path; m++, n_methods++)
    bytes += strlen(m->path) + 1;
  s->services = rm_calloc(n_methods ? n_methods : 1, sizeof *s->services);
  s->service_names = rm_malloc(bytes ? bytes : 1);
  if (!s->services || !s->service_names)
    return RM_ENOMEM;
  char *p = s->service_names;
  for (rm_method_t *m = s->methods; m->path; m++) {
    size_t len;
    const char *svc = service_of(m->path, &len);
    size_t i = 0;
    while (i < s->n_services && (strlen(s->services[i]) != len || memcmp(s->services[i], svc, len)))
      i++;
    if (i < s->n_services)
      continue;
    memcpy(p, svc, len);
    p[len] = '\0';
    s->services[s->n_services++] = p;
    p += len + 1;
  }
  return 0;
}

static int create_queues(rm_server_t *s) {
  s->n_queues = s->cfg->threads;
  s->queues = rm_calloc((size_t)s->n_queues, sizeof *s->queues);
  if (!s->queues)
    return RM_ENOMEM;
  for (int i = 0; i < s->n_queues; i++) {
    s->queues[i].s = s;
    s->queues[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->queues[i].cq, NULL);
  }
  return 0;
}

static int register_methods(rm_server_t *s, rm_error_t *err) {
  for (rm_method_t *m = s->methods; m->path; m++) {
    m->registered = grpc_server_register_method(
        s->server, m->path, NULL,
        payload_with_call(s, m) ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE,
        0);
    if (!m->registered)
      return rm_error_set(err, RM_EINTERNAL, NULL, NULL, "could not register method %s", m->path);
  }
  return 0;
}

static int listen_port(rm_server_t *s, rm_error_t *err) {
  grpc_server_credentials *creds;
  int rc = rm_tls_new(s->cfg, &s->tls, &creds, err);
  if (rc)
    return rc;
  s->port = grpc_server_add_http2_port(s->server, s->cfg->listen, creds);
  grpc_server_credentials_release(creds);
  if (s->port <= 0)
    return rm_error_set(err, RM_EIO, NULL, "listen",
                        "cannot listen on %s (address in use, or not available on this host)",
                        s->cfg->listen);
  return 0;
}

static int server_setup(rm_server_t *s, rm_error_t *err) {
  if (s->cfg->require_auth && !*s->cfg->auth_token_file && !*s->cfg->auth_tokens)
    return rm__config_fail(err, RM_EPARAM, "require-auth",
                           "require-auth is set but no tokens are configured (set "
                           "auth-token-file or auth-tokens)");
  if (s->cfg->health_needs_token && !*s->cfg->auth_token_file && !*s->cfg->auth_tokens)
    return rm__config_fail(err, RM_EPARAM, "health-needs-token",
                           "health-needs-token is set but no tokens are configured (set "
                           "auth-token-file or auth-tokens)");
  int rc = rm_auth_new(s->cfg, &s->auth, err);
  if (rc)
    return rc;
  if (collect_services(s))
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  s->server = create_core_server(s->cfg);
  if (create_queues(s))
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  rc = register_methods(s, err);
  return rc ? rc : listen_port(s, err);
}

int rm_server_new(const rm_config_t *cfg, rm_method_t *methods, rm_server_t **out,
                  rm_error_t *err) {
  *out = NULL;
  rm_server_t *s = rm_calloc(1, sizeof *s);
  if (!s)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  s->cfg = cfg;
  s->methods = methods;
  if (!(s->budget = rm_budget_new((size_t)cfg->max_memory, NULL))) {
    rm_free(s);
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  rm__call_clock_init();
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_mutex_init(&s->warm_mu, NULL);
  pthread_cond_init(&s->warm_cv, NULL);
  rm_pool_init(&s->pool);
  int rc = server_setup(s, err);
  if (rc) {
    rm_server_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* ---------------------------------------------------------------- start and stop */

/* The hot method gets request_slots per queue, other methods a few each, and a catch-all
 * pair so calls to unknown methods get UNIMPLEMENTED instead of hanging. */
static int post_slots(rm_server_t *s, rm__queue_t *q) {
  size_t small = s->cfg->request_slots < 4 ? (size_t)s->cfg->request_slots : 4;
  size_t total = 2;
  for (rm_method_t *m = s->methods; m->path; m++)
    total += m->hot ? (size_t)s->cfg->request_slots : small;
  q->slots = rm_calloc(total, sizeof *q->slots);
  if (!q->slots)
    return RM_ENOMEM;
  for (rm_method_t *m = s->methods; m->path; m++) {
    size_t k = m->hot ? (size_t)s->cfg->request_slots : small;
    for (size_t j = 0; j < k; j++) {
      rm__slot_t *sl = &q->slots[q->n_slots++];
      sl->q = q;
      sl->method = m;
      if (post_slot(sl))
        return RM_ENOMEM;
    }
  }
  for (size_t j = 0; j < 2; j++) {
    rm__slot_t *sl = &q->slots[q->n_slots++];
    sl->q = q;
    sl->method = NULL;
    if (post_slot(sl))
      return RM_ENOMEM;
  }
  return 0;
}

/* The warm heaps are memory the server holds for its calls, so they count in --max-memory:
 * what the warm-up made resident is charged to the budget until the server is freed (left
 * uncharged when the budget is too small to take it). The measure also sees what other threads
 * made resident meanwhile (the core's, the threads' stacks; under a sanitizer its shadow and
 * quarantine), so the charge is at most what the threads were asked to warm: a server of
 * 1 MiB under ASan measured up to its whole budget and then refused every call. Main thread,
 * after warm_all. */
static void charge_warm(rm_server_t *s, uint64_t before) {
  uint64_t after = rm_sysres_resident();
  uint64_t asked = (uint64_t)s->cfg->warm_bytes * (uint64_t)(s->n_queues + s->cfg->workers);
  uint64_t made = before && after > before ? after - before : 0;
  s->warm_resident = made;
  size_t charge = (size_t)(made < asked ? made : asked);
  if (charge && !rm_budget_charge(s->budget, charge))
    s->warm_charge = charge;
}

/* Threads first, then the core server, then the request slots: if a thread cannot be
 * created nothing has been posted yet, so every queue can be shut down and destroyed. */
static int server_start(rm_server_t *s) {
  int warm = s->cfg->warm_bytes > 0;
  s->warm_left = warm ? s->n_queues + s->cfg->workers : 0;
  uint64_t before = rm_sysres_resident();
  s->resident_base = rss_is_ours() ? before : 0; /* 0: no measured check */
  for (int i = 0; i < s->n_queues; i++) {
    if (pthread_create(&s->queues[i].thread, NULL, poll_main, &s->queues[i]))
      return RM_ENOMEM;
    s->queues[i].started = 1;
  }
  int rc = rm_pool_start(&s->pool, s->cfg->workers);
  if (rc)
    return rc;
  if (s->cfg->send_timeout_ms && !(s->send_watch = rm__send_watch_start(s->cfg->send_timeout_ms)))
    return RM_ENOMEM;
  if (warm) { /* before the first call can arrive */
    warm_all(s);
    charge_warm(s, before);
  }
  grpc_server_start(s->server);
  for (int i = 0; i < s->n_queues && !rc; i++)
    rc = post_slots(s, &s->queues[i]);
  return rc;
}

int rm_server_start(rm_server_t *s, rm_error_t *err) {
  int rc = server_start(s);
  return rc ? rm_error_set(err, rc, NULL, NULL, "could not start threads") : 0;
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
  int idle;
  while (!(idle = atomic_load(&s->unary) == 0 && atomic_load(&s->sessions) == 0) &&
         !atomic_load(&s->forced)) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &until))
      break;
  }
  pthread_mutex_unlock(&s->mu);
  atomic_store(&s->idle_drain, idle && !atomic_load(&s->forced));
}

void rm_server_force(rm_server_t *s) {
  atomic_store(&s->forced, 1);
  wake_waiters(s);
}

/* How long an idle drain's shutdown lets calls that raced the GOAWAY (already matched to a
 * request slot, not yet admitted) be answered UNAVAILABLE, which clients retry, before the
 * rest is cancelled (CANCELLED, which they do not). */
#define SETTLE_MS 1000
/* Between an idle drain's two disconnects (core_shutdown). */
#define DISCONNECT_SETTLE_MS 50

/* Shuts the core server down and cancels its calls; blocks until the core is done.
 *
 * idle (the drain ended with nothing in flight): every connection is closed first, and the
 * core shut down right after (docs/hardening.md, "Draining"). Once
 * grpc_server_shutdown_and_notify has been called, gRPC core 1.51 ends a stream whose
 * headers or request message are still being taken in, or arrive before the GOAWAY has
 * taken effect, with CANCELLED itself (Server::CallData::StartNewRpc and PublishNewRpc
 * "zombie" it when ShutdownCalled()), unseen by us, and nobody retries CANCELLED (a proxy
 * passes it through as an ordinary answer). grpc_server_cancel_all_calls before that
 * (Server::CancelAllCalls: disconnect_with_error on every connection, no shutdown needed)
 * ends such a stream with UNAVAILABLE ("Cancelling all calls"), which clients retry. A
 * disconnect is queued behind the work its connection's combiner is doing, so it is given
 * DISCONNECT_SETTLE_MS and repeated for connections opened meanwhile; the shutdown then finds
 * no connection but one opened in the instant between. Nothing of ours
 * is cut: idle means no unary call and no session left, and a refusal cut is UNAVAILABLE
 * either way. Not done in a loop until quiet: a proxy keeps opening connections for as long
 * as the port accepts them (an UNAVAILABLE answer is an HTTP 200 to it), so waiting would
 * only lengthen the time calls sent here are refused. */
/* Cancels every call of the core server: what the client gets is UNAVAILABLE ("Cancelling
 * all calls"), and calls that end now are counted and logged as that (rm__server_cancelling). */
static void cancel_all(rm_server_t *s, grpc_server *server) {
  atomic_store(&s->cancelling, 1);
  grpc_server_cancel_all_calls(server);
}

static void core_shutdown(rm_server_t *s, grpc_server *server, int settle, int idle) {
  grpc_completion_queue *scq = grpc_completion_queue_create_for_pluck(NULL);
  if (idle) {
    cancel_all(s, server);
    /* the disconnects run in each connection's combiner, after what it is doing now (a
     * read being parsed): give them that time, then close what was opened meanwhile */
    unsigned long before = atomic_load(&s->arrivals);
    gpr_sleep_until(gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                 gpr_time_from_millis(DISCONNECT_SETTLE_MS, GPR_TIMESPAN)));
    cancel_all(s, server);
    RM_LOG(RM_LOG_INFO, "disconnected", "{s:I}", "calls_between",
           (json_int_t)(atomic_load(&s->arrivals) - before));
  }
  grpc_server_shutdown_and_notify(server, scq, scq);
  /* and once more now that the listeners are closed: a connection opened in the instant
   * between the last disconnect and the shutdown may already carry a stream the core will
   * zombie (CANCELLED); closing it at once ends that stream UNAVAILABLE on the client */
  if (idle)
    cancel_all(s, server);
  gpr_timespec until = settle ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_millis(SETTLE_MS, GPR_TIMESPAN))
                              : gpr_now(GPR_CLOCK_MONOTONIC);
  if (grpc_completion_queue_pluck(scq, scq, until, NULL).type != GRPC_OP_COMPLETE) {
    /* Anything still running has had its grace period: cancel it. Calls we hold learn of it
     * through their close batch (cancelled flag), so pipelines stop at the next node. */
    cancel_all(s, server);
    grpc_completion_queue_pluck(scq, scq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  }
  grpc_completion_queue_destroy(scq);
}

static void drain_queue(grpc_completion_queue *cq) {
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN)
    ;
}

/* Waits up to SETTLE_MS for every call object to be gone (held counts the posted request
 * slots too): a streaming session is released when its final status is queued, not sent,
 * and an idle drain's disconnect must not cut that status. A health Watch stream stays open
 * across the drain: then the wait ends at its bound. */
static void wait_calls_gone(rm_server_t *s) {
  gpr_timespec stop =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(SETTLE_MS, GPR_TIMESPAN));
  while (atomic_load(&s->held) > atomic_load(&s->posted) &&
         gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), stop) < 0)
    gpr_sleep_until(
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(2, GPR_TIMESPAN)));
}

void rm_server_shutdown(rm_server_t *s) {
  /* the drain ended idle (no forced stop): close the connections first, let racing calls settle */
  int idle = atomic_load(&s->idle_drain) && !atomic_load(&s->forced);
  int settle = (idle || atomic_load(&s->unary) == 0) && !atomic_load(&s->forced);
  atomic_store(&s->draining, 1);
  /* idle: the drain found nothing in flight (calls refused since may be: they end UNAVAILABLE
   * either way) */
  if (idle)
    wait_calls_gone(s);
  atomic_store(&s->stopping, 1);
  core_shutdown(s, s->server, settle, idle);
  pthread_mutex_lock(&s->mu);
  while (atomic_load(&s->held) > 0)
    pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  rm__send_watch_stop(s->send_watch); /* no call is left to send */
  s->send_watch = NULL;
  rm_pool_stop(&s->pool);
  grpc_server_destroy(s->server);
  s->server = NULL;
  for (int i = 0; i < s->n_queues; i++)
    grpc_completion_queue_shutdown(s->queues[i].cq);
  for (int i = 0; i < s->n_queues; i++) {
    if (s->queues[i].started) {
      pthread_join(s->queues[i].thread, NULL);
      s->queues[i].started = 0;
    } else { /* its thread never started (start-up failed): drain it here */
      drain_queue(s->queues[i].cq);
    }
  }
}

void rm_server_free(rm_server_t *s) {
  if (!s)
    return;
  if (s->server) { /* never started, or failed before start */
    core_shutdown(s, s->server, 0, 0);
    grpc_server_destroy(s->server);
    for (int i = 0; s->queues && i < s->n_queues; i++)
      if (s->queues[i].cq)
        grpc_completion_queue_shutdown(s->queues[i].cq);
    for (int i = 0; s->queues && i < s->n_queues; i++)
      if (s->queues[i].cq)
        drain_queue(s->queues[i].cq);
  }
  for (int i = 0; s->queues && i < s->n_queues; i++) {
    if (s->queues[i].cq)
      grpc_completion_queue_destroy(s->queues[i].cq);
    rm_free(s->queues[i].slots);
    rm__call_free_spares(&s->queues[i]); /* its thread has been joined */
  }
  rm_free(s->queues);
  rm__send_watch_stop(s->send_watch); /* start-up failed after it started */
  rm_pool_destroy(&s->pool);
  rm_free(s->services);
  rm_free(s->service_names);
  rm_auth_free(s->auth);
  rm_tls_free(s->tls); /* the core server that used its credentials is gone */
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->warm_mu);
  pthread_cond_destroy(&s->warm_cv);
  rm_budget_t *budget = s->budget;
  rm_budget_discharge(budget, s->warm_charge);
  rm_free(s);
  rm_budget_free(budget); /* after everything charged to it */
}

/* ---------------------------------------------------------------- reload */

/* The file behind a failed reload's option. */
static const char *file_of(const rm_config_t *cfg, const char *field) {
  if (!strcmp(field, "tls-key"))
    return cfg->tls_key;
  if (!strcmp(field, "tls-client-ca"))
    return cfg->tls_client_ca;
  if (!strcmp(field, "auth-token-file"))
    return cfg->auth_token_file;
  return cfg->tls_cert;
}

static void reload_failed(const rm_config_t *cfg, const rm_error_t *err, json_t *failed) {
  json_array_append_new(failed, json_string(err->field));
  RM_LOG(RM_LOG_ERROR, "reload_failed", "{s:s, s:s, s:s, s:s}", "option", err->field, "file",
         file_of(cfg, err->field), "error", err->message, "kept", "the configuration in use");
}

void rm_server_reload(rm_server_t *s) {
  const rm_config_t *cfg = s->cfg;
  json_t *changed = json_array(), *unchanged = json_array(), *failed = json_array();
  json_t *tokens = json_null();
  rm_error_t err;
  int ch = 0;
  if (s->auth && *cfg->auth_token_file) {
    size_t n = 0;
    if (rm_auth_reload(s->auth, cfg, &n, &ch, &err) == 0)
      json_array_append_new(ch ? changed : unchanged, json_string("auth-token-file"));
    else
      reload_failed(cfg, &err, failed);
    tokens = json_integer((json_int_t)n); /* accepted now: the kept set's on failure */
  }
  if (s->tls) {
    if (rm_tls_reload(s->tls, cfg, &ch, &err) == 0)
      json_array_append_new(ch ? changed : unchanged, json_string("tls"));
    else
      reload_failed(cfg, &err, failed);
  }
  int nothing = !(s->auth && *cfg->auth_token_file) && !s->tls;
  RM_LOG(RM_LOG_INFO, "reloaded", "{s:o, s:o, s:o, s:o, s:s}", "changed", changed, "unchanged",
         unchanged, "failed", failed, "tokens", tokens, "files",
         nothing ? "none configured (no auth-token-file, no tls-cert): nothing to reload"
                 : "re-read");
  if (rm_log_threshold > RM_LOG_INFO) { /* RM_LOG did not take them */
    json_decref(changed);
    json_decref(unchanged);
    json_decref(failed);
    json_decref(tokens);
  }
}

rm_budget_t *rm_server_budget(const rm_server_t *s) { return s->budget; }
