/* stats.c - cumulative counters in per-thread shards, summed for the Prometheus exposition
 * and GetStatistics (stats.h). */
#include "stats.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "rm/alloc.h"
#include "rm/error.h"
#include "rm/pipeline.h"
#include "server.h"
#include "status.h"

/* ---------------------------------------------------------------- counters */

/* One writer (the shard's thread), any readers: a relaxed load and store is enough, and
 * costs no locked instruction. */
typedef _Atomic uint64_t ctr_t;
static inline void add(ctr_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}
static inline void set_max(ctr_t *c, uint64_t v) {
  if (v > atomic_load_explicit(c, memory_order_relaxed))
    atomic_store_explicit(c, v, memory_order_relaxed);
}
static inline uint64_t get(const ctr_t *c) {
  return atomic_load_explicit((ctr_t *)c, memory_order_relaxed);
}

/* go-grpc-prometheus's default buckets for grpc_server_handling_seconds. */
static const double grpc_bounds_s[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
#define GRPC_BUCKETS (sizeof grpc_bounds_s / sizeof grpc_bounds_s[0])
/* Node invocations and stream chunks take microseconds to seconds. */
static const double fine_bounds_s[] = {1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                                       .01,  .025, .05,  .1,     .25,  1,    5};
#define FINE_BUCKETS (sizeof fine_bounds_s / sizeof fine_bounds_s[0])
static uint64_t grpc_bounds_ns[GRPC_BUCKETS], fine_bounds_ns[FINE_BUCKETS];

/* Bucket counts are kept per bucket (not cumulative) with +Inf last; the exposition sums. */
static size_t bucket_of(const uint64_t *bounds, size_t n, uint64_t ns) {
  size_t i = 0;
  while (i < n && ns > bounds[i])
    i++;
  return i;
}

typedef struct method_ctr {
  ctr_t started, received, sent;
  ctr_t handled[RM_STATS_CODES];
  ctr_t hist[GRPC_BUCKETS + 1];
  ctr_t sum_ns;
} method_ctr_t;

typedef struct pipe_ctr {
  ctr_t by_code[RM_STATS_CODES]; /* answers; [0] are the successes */
  ctr_t success_ns, fail_ns;
  ctr_t runs, queue_ns, compute_ns; /* runs that started */
  ctr_t last_ms;
} pipe_ctr_t;

typedef struct node_ctr {
  ctr_t ok, fail, ok_ns, fail_ns;
  ctr_t hist[FINE_BUCKETS + 1];
  ctr_t last_ms;
} node_ctr_t;

typedef struct shard {
  struct shard *next;
  method_ctr_t methods[RM_STATS_MAX_METHODS];
  node_ctr_t nodes[RM_STATS_MAX_NODE_TYPES + 1]; /* + "other" */
  ctr_t cache_hit, cache_miss, run_begin, run_end, send_timeouts;
  ctr_t rejected[RM_STATS_REJECT_N];
  ctr_t sess_open, sess_close, chunks, chunk_sum_ns;
  ctr_t chunk_hist[FINE_BUCKETS + 1];
  pipe_ctr_t pipes[]; /* max_pipelines + 1 ("other") */
} shard_t;

/* ---------------------------------------------------------------- labels */

/* Names to indexes, insert-only: readers probe without a lock (a slot's name is published
 * after its index); inserts take the mutex. Past cap every new name is "other" (index cap),
 * and once full a miss no longer takes the mutex. */
typedef struct label_table {
  size_t cap, mask;
  _Atomic(char *) *slot_name;
  int *slot_index;
  char **names; /* by index; names[0..n) are set before n is published */
  atomic_size_t n;
  atomic_int full;
  atomic_int other_used; /* some name was counted as "other" */
  pthread_mutex_t mu;
} label_table_t;

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int table_init(label_table_t *t, size_t cap) {
  size_t slots = 16;
  while (slots < 2 * cap + 2)
    slots *= 2;
  t->cap = cap;
  t->mask = slots - 1;
  t->slot_name = rm_calloc(slots, sizeof *t->slot_name);
  t->slot_index = rm_calloc(slots, sizeof *t->slot_index);
  t->names = rm_calloc(cap + 1, sizeof *t->names);
  atomic_init(&t->n, 0);
  atomic_init(&t->full, cap == 0);
  atomic_init(&t->other_used, 0);
  pthread_mutex_init(&t->mu, NULL);
  return t->slot_name && t->slot_index && t->names ? 0 : RM_ENOMEM;
}

static void table_destroy(label_table_t *t) {
  size_t n = atomic_load(&t->n);
  for (size_t i = 0; t->names && i < n; i++)
    rm_free(t->names[i]);
  rm_free(t->names);
  rm_free(t->slot_index);
  rm_free((void *)t->slot_name);
  if (t->slot_name)
    pthread_mutex_destroy(&t->mu);
  memset(t, 0, sizeof *t);
}

/* The slot holding name, or the empty slot where it would go; *found set. */
static size_t probe(label_table_t *t, const char *name, int *found) {
  size_t i = hash(name) & t->mask;
  for (;;) {
    char *s = atomic_load_explicit(&t->slot_name[i], memory_order_acquire);
    if (!s || strcmp(s, name) == 0) {
      *found = s != NULL;
      return i;
    }
    i = (i + 1) & t->mask;
  }
}

static int other_label(label_table_t *t) {
  if (!atomic_load_explicit(&t->other_used, memory_order_relaxed))
    atomic_store_explicit(&t->other_used, 1, memory_order_relaxed);
  return (int)t->cap;
}

static int table_label(label_table_t *t, const char *name) {
  if (!t->slot_name)
    return -1;
  if (!name)
    name = "";
  /* a name spelled like the overflow label counts in it: two series with one label set would
   * be one to Prometheus */
  if (strlen(name) > RM_STATS_NAME_MAX || strcmp(name, "other") == 0)
    return other_label(t);
  int found;
  size_t i = probe(t, name, &found);
  if (found)
    return t->slot_index[i];
  if (atomic_load_explicit(&t->full, memory_order_relaxed))
    return other_label(t);
  pthread_mutex_lock(&t->mu);
  int label = (int)t->cap;
  i = probe(t, name, &found);
  size_t n = atomic_load_explicit(&t->n, memory_order_relaxed);
  if (found) {
    label = t->slot_index[i];
  } else if (n >= t->cap) {
    atomic_store(&t->full, 1);
  } else {
    /* outside any call's memory budget: the label lives as long as the counters */
    rm_budget_t *outer = rm_budget_enter(NULL);
    char *dup = rm_strdup(name);
    rm_budget_leave(outer);
    if (dup) {
      t->names[n] = dup;
      t->slot_index[i] = label = (int)n;
      atomic_store_explicit(&t->slot_name[i], dup, memory_order_release);
      atomic_store_explicit(&t->n, n + 1, memory_order_release);
    }
  }
  pthread_mutex_unlock(&t->mu);
  return label == (int)t->cap ? other_label(t) : label;
}

/* ---------------------------------------------------------------- state */

static struct {
  const rm_method_t *methods;
  size_t n_methods;
  size_t max_pipelines;
  label_table_t pipes, nodes;
  _Atomic(shard_t *) shards;
  atomic_uint gen;   /* bumped by init and shutdown: threads' cached shards are stale */
  uint64_t start_ns; /* wall clock */
} g;

static _Thread_local shard_t *mine;
static _Thread_local unsigned mine_gen;

/* Per thread, what the label tables answered last, so the hot paths skip the hash and the
 * probe: node types by the address of their name (static storage, rm_run_opts_t.on_node),
 * the last pipeline name by its text. Valid for the generation they were filled in. */
#define NODE_CACHE 8
static _Thread_local struct {
  unsigned gen;
  const char *node_name[NODE_CACHE];
  int node_label[NODE_CACHE];
  const char *pipe_name; /* the table's own copy */
  int pipe_label;
} cache;
/* Wall clock (ms) of the run this thread is in (rm_stats_run_begin), 0 outside runs: the
 * "last run" time of the node types it invokes, read once per run instead of per node. */
static _Thread_local uint64_t run_wall_ms;

static int cache_valid(void) {
  unsigned gen = atomic_load_explicit(&g.gen, memory_order_relaxed);
  if (cache.gen != gen) {
    memset(&cache, 0, sizeof cache);
    cache.gen = gen;
  }
  return gen & 1;
}

static size_t shard_bytes(void) {
  return sizeof(shard_t) + (g.max_pipelines + 1) * sizeof(pipe_ctr_t);
}

/* This thread's shard, allocated on its first count; NULL when memory ran out (the count
 * is lost, the call is not). */
static shard_t *shard(void) {
  unsigned gen = atomic_load_explicit(&g.gen, memory_order_acquire);
  if (mine && mine_gen == gen)
    return mine;
  if (!(gen & 1)) /* not initialised (even generation) */
    return NULL;
  rm_budget_t *outer = rm_budget_enter(NULL); /* the counters' own memory, not a call's */
  shard_t *s = rm_calloc(1, shard_bytes());
  rm_budget_leave(outer);
  if (!s)
    return NULL;
  s->next = atomic_load(&g.shards);
  while (!atomic_compare_exchange_weak(&g.shards, &s->next, s))
    ;
  mine = s;
  mine_gen = gen;
  return s;
}

static uint64_t wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME_COARSE, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void free_all(void) {
  shard_t *s = atomic_exchange(&g.shards, NULL);
  while (s) {
    shard_t *next = s->next;
    rm_free(s);
    s = next;
  }
  table_destroy(&g.pipes);
  table_destroy(&g.nodes);
}

/* The benchmark's switch (bench/server/metrics_cost.sh), not a user option: with
 * RM_BENCH_NO_COUNTERS=1 in the environment nothing is counted, and the call paths skip the
 * counters' clock readings too, so the counters' cost can be measured in one binary. */
static int counters_cut(void) {
  const char *v = getenv("RM_BENCH_NO_COUNTERS");
  return v && *v && strcmp(v, "0") != 0;
}

int rm_stats_init(const rm_method_t *methods, size_t max_pipelines) {
  if (atomic_load(&g.gen) & 1)
    rm_stats_shutdown();
  if (counters_cut())
    return 0;
  for (size_t i = 0; i < GRPC_BUCKETS; i++)
    grpc_bounds_ns[i] = (uint64_t)(grpc_bounds_s[i] * 1e9 + 0.5);
  for (size_t i = 0; i < FINE_BUCKETS; i++)
    fine_bounds_ns[i] = (uint64_t)(fine_bounds_s[i] * 1e9 + 0.5);
  g.methods = methods;
  g.n_methods = 0;
  while (methods && methods[g.n_methods].path && g.n_methods < RM_STATS_MAX_METHODS)
    g.n_methods++;
  g.max_pipelines = max_pipelines;
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  g.start_ns = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
  if (table_init(&g.pipes, max_pipelines) || table_init(&g.nodes, RM_STATS_MAX_NODE_TYPES)) {
    free_all();
    return RM_ENOMEM;
  }
  atomic_fetch_add(&g.gen, 1); /* odd: counting */
  return 0;
}

void rm_stats_shutdown(void) {
  if (!(atomic_load(&g.gen) & 1))
    return;
  atomic_fetch_add(&g.gen, 1);
  free_all();
}

uint64_t rm_stats_start_time_ns(void) { return g.start_ns; }

int rm_stats_counting(void) {
  return (int)(atomic_load_explicit(&g.gen, memory_order_relaxed) & 1);
}

/* ---------------------------------------------------------------- counting */

int rm_stats_method(const rm_method_t *m) {
  if (!m || !g.methods || m < g.methods || m >= g.methods + g.n_methods)
    return -1;
  return (int)(m - g.methods);
}

#define METHOD_SHARD(method)                                                                       \
  shard_t *s = (method) >= 0 ? shard() : NULL;                                                     \
  if (!s)                                                                                          \
    return;                                                                                        \
  method_ctr_t *mc = &s->methods[method]

void rm_stats_call_started(int method) {
  METHOD_SHARD(method);
  add(&mc->started, 1);
}

void rm_stats_msg_received(int method) {
  METHOD_SHARD(method);
  add(&mc->received, 1);
}

void rm_stats_msg_sent(int method) {
  METHOD_SHARD(method);
  add(&mc->sent, 1);
}

static void handled(method_ctr_t *mc, int code, uint64_t ns) {
  add(&mc->handled[code >= 0 && code < RM_STATS_CODES ? code : 2 /* UNKNOWN */], 1);
  add(&mc->hist[bucket_of(grpc_bounds_ns, GRPC_BUCKETS, ns)], 1);
  add(&mc->sum_ns, ns);
}

void rm_stats_call_handled(int method, int code, uint64_t ns) {
  METHOD_SHARD(method);
  handled(mc, code, ns);
}

void rm_stats_call_arrived(int method, int received) {
  METHOD_SHARD(method);
  add(&mc->started, 1);
  if (received)
    add(&mc->received, 1);
}

static void pipeline_done(shard_t *s, const rm_stats_run_t *run, int code, uint64_t total_ns);

void rm_stats_call_ended(int method, int code, uint64_t ns, int sent, const rm_stats_run_t *run) {
  METHOD_SHARD(method);
  if (sent)
    add(&mc->sent, 1);
  handled(mc, code, ns);
  if (run && run->pipeline >= 0 && (size_t)run->pipeline <= g.max_pipelines)
    pipeline_done(s, run, code, ns);
}

int rm_stats_pipeline_label(const char *name) {
  if (!name)
    name = "";
  if (cache_valid() && cache.pipe_name && strcmp(name, cache.pipe_name) == 0)
    return cache.pipe_label;
  /* a name the engine refuses (the call fails) gets no label of its own: its bytes need not be
   * valid UTF-8, which a label value and GetStatistics' name must be */
  int label = rm_pipeline_name_valid(name) ? table_label(&g.pipes, name) : other_label(&g.pipes);
  if (label >= 0 && (size_t)label < g.pipes.cap) {
    cache.pipe_name = g.pipes.names[label];
    cache.pipe_label = label;
  }
  return label;
}

void rm_stats_pipeline_done(const rm_stats_run_t *run, int code, uint64_t total_ns) {
  shard_t *s = run->pipeline >= 0 && (size_t)run->pipeline <= g.max_pipelines ? shard() : NULL;
  if (s)
    pipeline_done(s, run, code, total_ns);
}

static void pipeline_done(shard_t *s, const rm_stats_run_t *run, int code, uint64_t total_ns) {
  pipe_ctr_t *p = &s->pipes[run->pipeline];
  add(&p->by_code[code >= 0 && code < RM_STATS_CODES ? code : 2], 1);
  add(code == 0 ? &p->success_ns : &p->fail_ns, total_ns);
  if (run->ran) {
    add(&p->runs, 1);
    add(&p->queue_ns, run->queue_ns);
    add(&p->compute_ns, run->compute_ns);
  }
  set_max(&p->last_ms, wall_ms());
}

void rm_stats_run_begin(void) {
  shard_t *s = shard();
  if (s) {
    add(&s->run_begin, 1);
    run_wall_ms = wall_ms();
  }
}

void rm_stats_run_end(void) {
  shard_t *s = shard();
  if (s)
    add(&s->run_end, 1);
  run_wall_ms = 0;
}

/* The label of a node type name of static storage. */
static int node_label(const char *node_type) {
  size_t slot = ((uintptr_t)node_type >> 3) % NODE_CACHE;
  if (cache_valid() && cache.node_name[slot] == node_type && node_type)
    return cache.node_label[slot];
  int label = table_label(&g.nodes, node_type);
  if (label >= 0) {
    cache.node_name[slot] = node_type;
    cache.node_label[slot] = label;
  }
  return label;
}

void rm_stats_node(void *arg, const char *node_type, uint64_t ns, int ok) {
  (void)arg;
  shard_t *s = shard();
  int label = s ? node_label(node_type) : -1;
  if (label < 0)
    return;
  node_ctr_t *n = &s->nodes[label];
  add(ok ? &n->ok : &n->fail, 1);
  add(ok ? &n->ok_ns : &n->fail_ns, ns);
  add(&n->hist[bucket_of(fine_bounds_ns, FINE_BUCKETS, ns)], 1);
  set_max(&n->last_ms, run_wall_ms ? run_wall_ms : wall_ms());
}

void rm_stats_rejected(rm_stats_reject_t reason) {
  shard_t *s = reason < RM_STATS_REJECT_N ? shard() : NULL;
  if (s)
    add(&s->rejected[reason], 1);
}

void rm_stats_cache(int hit) {
  shard_t *s = shard();
  if (s)
    add(hit ? &s->cache_hit : &s->cache_miss, 1);
}

void rm_stats_send_timeout(void) {
  shard_t *s = shard();
  if (s)
    add(&s->send_timeouts, 1);
}

void rm_stats_session_open(void) {
  shard_t *s = shard();
  if (s)
    add(&s->sess_open, 1);
}

void rm_stats_session_close(void) {
  shard_t *s = shard();
  if (s)
    add(&s->sess_close, 1);
}

void rm_stats_chunk(uint64_t duration_ns) {
  shard_t *s = shard();
  if (!s)
    return;
  add(&s->chunks, 1);
  add(&s->chunk_sum_ns, duration_ns);
  add(&s->chunk_hist[bucket_of(fine_bounds_ns, FINE_BUCKETS, duration_ns)], 1);
}

/* ---------------------------------------------------------------- summing */

/* Sums the counter at byte offset off of every shard. */
static uint64_t sum_at(size_t off) {
  uint64_t v = 0;
  for (shard_t *s = atomic_load(&g.shards); s; s = s->next)
    v += get((const ctr_t *)((const char *)s + off));
  return v;
}

static uint64_t max_at(size_t off) {
  uint64_t v = 0;
  for (shard_t *s = atomic_load(&g.shards); s; s = s->next) {
    uint64_t x = get((const ctr_t *)((const char *)s + off));
    if (x > v)
      v = x;
  }
  return v;
}

#define SUM(field) sum_at(offsetof(shard_t, field))
/* Offsets into the flexible pipes[] array: offsetof with a variable index is a GNU
 * extension, so compute them. */
#define PIPE_OFF(i, field)                                                                         \
  (offsetof(shard_t, pipes) + (i) * sizeof(pipe_ctr_t) + offsetof(pipe_ctr_t, field))

static const char *label_name(const label_table_t *t, size_t i) {
  return i < t->cap ? t->names[i] : "other";
}

/* Labels seen: names[0..n), plus "other" (index cap) when it counted anything. */
static size_t labels_seen(label_table_t *t, int *other) {
  *other = atomic_load(&t->other_used) != 0;
  return atomic_load_explicit(&t->n, memory_order_acquire);
}

static void summarize_pipe(size_t i, rm_stats_summary_t *o) {
  memset(o, 0, sizeof *o);
  o->name = label_name(&g.pipes, i);
  for (int c = 0; c < RM_STATS_CODES; c++) {
    uint64_t v = sum_at(PIPE_OFF(i, by_code) + (size_t)c * sizeof(ctr_t));
    if (c == 0)
      o->success_count = v;
    else
      o->fail_count += v;
  }
  o->success_ns = sum_at(PIPE_OFF(i, success_ns));
  o->fail_ns = sum_at(PIPE_OFF(i, fail_ns));
  o->execution_count = o->queue_count = o->compute_count = sum_at(PIPE_OFF(i, runs));
  o->queue_ns = sum_at(PIPE_OFF(i, queue_ns));
  o->compute_ns = sum_at(PIPE_OFF(i, compute_ns));
  o->last_ms = max_at(PIPE_OFF(i, last_ms));
}

#define NODE_OFF(i, field)                                                                         \
  (offsetof(shard_t, nodes) + (i) * sizeof(node_ctr_t) + offsetof(node_ctr_t, field))

static void summarize_node(size_t i, rm_stats_summary_t *o) {
  memset(o, 0, sizeof *o);
  o->name = label_name(&g.nodes, i);
  o->success_count = sum_at(NODE_OFF(i, ok));
  o->fail_count = sum_at(NODE_OFF(i, fail));
  o->success_ns = sum_at(NODE_OFF(i, ok_ns));
  o->fail_ns = sum_at(NODE_OFF(i, fail_ns));
  o->execution_count = o->compute_count = o->success_count + o->fail_count;
  o->compute_ns = o->success_ns + o->fail_ns;
  o->last_ms = max_at(NODE_OFF(i, last_ms));
}

static int summaries(label_table_t *t, void (*fill)(size_t, rm_stats_summary_t *),
                     rm_stats_summary_t **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (!t->slot_name)
    return 0;
  int other;
  size_t n = labels_seen(t, &other);
  rm_stats_summary_t *v = rm_calloc(n + 2, sizeof *v);
  if (!v)
    return RM_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    fill(i, &v[k++]);
  if (other) {
    fill(t->cap, &v[k]);
    if (v[k].success_count + v[k].fail_count + v[k].execution_count)
      k++;
  }
  *out = v;
  *n_out = k;
  return 0;
}

int rm_stats_pipelines(rm_stats_summary_t **out, size_t *n) {
  return summaries(&g.pipes, summarize_pipe, out, n);
}

int rm_stats_node_types(rm_stats_summary_t **out, size_t *n) {
  return summaries(&g.nodes, summarize_node, out, n);
}

/* ---------------------------------------------------------------- exposition */

/* A label value in the exposition's escaping: backslash, double quote and newline. */
static void put_label(FILE *f, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      fputc('\\', f), fputc(*v, f);
    else if (*v == '\n')
      fputs("\\n", f);
    else
      fputc(*v, f);
  }
}

static void header(FILE *f, const char *name, const char *type, const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* grpc_code values as go-grpc-prometheus writes them (Go's codes.Code.String()). */
static const char *go_code_name(int c) {
  static const char *const names[RM_STATS_CODES] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  return c >= 0 && c < RM_STATS_CODES ? names[c] : "Unknown";
}

static const char *grpc_type(rm_rpc_kind_t k) {
  return k == RM_RPC_UNARY ? "unary" : k == RM_RPC_SERVER_STREAM ? "server_stream" : "bidi_stream";
}

/* grpc_type="...",grpc_service="...",grpc_method="..." of method row i. */
static void method_labels(FILE *f, size_t i) {
  const char *path = g.methods[i].path + 1; /* "/pkg.Service/Method" */
  const char *slash = strchr(path, '/');
  int svc_len = slash ? (int)(slash - path) : (int)strlen(path);
  fprintf(f, "grpc_type=\"%s\",grpc_service=\"%.*s\",grpc_method=\"%s\"",
          grpc_type(g.methods[i].kind), svc_len, path, slash ? slash + 1 : "");
}

#define MOFF(i, field)                                                                             \
  (offsetof(shard_t, methods) + (i) * sizeof(method_ctr_t) + offsetof(method_ctr_t, field))

static void method_counter(FILE *f, const char *name, const char *help, size_t field_off) {
  header(f, name, "counter", help);
  for (size_t i = 0; i < g.n_methods; i++) {
    fprintf(f, "%s{", name);
    method_labels(f, i);
    fprintf(f, "} %llu\n",
            (unsigned long long)sum_at(offsetof(shard_t, methods) + i * sizeof(method_ctr_t) +
                                       field_off));
  }
}

/* One histogram series: cumulative buckets from per-bucket counts at hist_off (n + 1 of
 * them), the sum (ns at sum_off, or the bucket-less total) and the count. */
static void histogram(FILE *f, const char *name, void (*labels)(FILE *, size_t), size_t li,
                      const double *bounds, size_t n, size_t hist_off, uint64_t sum_ns) {
  uint64_t cum = 0;
  for (size_t b = 0; b <= n; b++) {
    cum += sum_at(hist_off + b * sizeof(ctr_t));
    fprintf(f, "%s_bucket{", name);
    if (labels) {
      labels(f, li);
      fputc(',', f);
    }
    if (b < n)
      fprintf(f, "le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cum);
    else
      fprintf(f, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  }
  const char *open = labels ? "{" : "";
  fprintf(f, "%s_sum%s", name, open);
  if (labels) {
    labels(f, li);
    fputc('}', f);
  }
  fprintf(f, " %.9f\n%s_count%s", (double)sum_ns / 1e9, name, open);
  if (labels) {
    labels(f, li);
    fputc('}', f);
  }
  fprintf(f, " %llu\n", (unsigned long long)cum);
}

static void node_type_label(FILE *f, size_t i) {
  fputs("node_type=\"", f);
  put_label(f, label_name(&g.nodes, i));
  fputc('"', f);
}

static void grpc_metrics(FILE *f) {
  method_counter(f, "grpc_server_started_total", "Total number of RPCs started on the server.",
                 offsetof(method_ctr_t, started));
  method_counter(f, "grpc_server_msg_received_total",
                 "Total number of RPC stream messages received on the server.",
                 offsetof(method_ctr_t, received));
  method_counter(f, "grpc_server_msg_sent_total",
                 "Total number of gRPC stream messages sent by the server.",
                 offsetof(method_ctr_t, sent));
  header(f, "grpc_server_handled_total", "counter",
         "Total number of RPCs completed on the server, regardless of success or failure.");
  for (size_t i = 0; i < g.n_methods; i++)
    for (int c = 0; c < RM_STATS_CODES; c++) {
      fputs("grpc_server_handled_total{", f);
      method_labels(f, i);
      fprintf(f, ",grpc_code=\"%s\"} %llu\n", go_code_name(c),
              (unsigned long long)sum_at(MOFF(i, handled) + (size_t)c * sizeof(ctr_t)));
    }
  header(f, "grpc_server_handling_seconds", "histogram",
         "Histogram of response latency (seconds) of gRPC that had been application-level "
         "handled by the server.");
  for (size_t i = 0; i < g.n_methods; i++)
    histogram(f, "grpc_server_handling_seconds", method_labels, i, grpc_bounds_s, GRPC_BUCKETS,
              MOFF(i, hist), sum_at(MOFF(i, sum_ns)));
}

static void engine_metrics(FILE *f, const rm_budget_t *b) {
  int other;
  size_t n = labels_seen(&g.pipes, &other);
  header(f, "remotemedia_pipeline_runs_total", "counter",
         "ExecutePipeline calls answered, by pipeline name (capped; the rest \"other\") and "
         "gRPC status.");
  for (size_t i = 0; i < n + (other ? 1 : 0); i++) {
    size_t li = i < n ? i : g.pipes.cap;
    for (int c = 0; c < RM_STATS_CODES; c++) {
      uint64_t v = sum_at(PIPE_OFF(li, by_code) + (size_t)c * sizeof(ctr_t));
      if (!v && c) /* OK always, the others once they happened */
        continue;
      fputs("remotemedia_pipeline_runs_total{pipeline=\"", f);
      put_label(f, label_name(&g.pipes, li));
      fprintf(f, "\",status=\"%s\"} %llu\n", rm_status_name(c), (unsigned long long)v);
    }
  }
  size_t nn = labels_seen(&g.nodes, &other);
  size_t nt = nn + (other ? 1 : 0);
  header(f, "remotemedia_node_executions_total", "counter",
         "Node process() invocations by node type and outcome.");
  for (size_t i = 0; i < nt; i++) {
    size_t li = i < nn ? i : g.nodes.cap;
    for (int ok = 1; ok >= 0; ok--) {
      fputs("remotemedia_node_executions_total{", f);
      node_type_label(f, li);
      fprintf(f, ",status=\"%s\"} %llu\n", ok ? "ok" : "error",
              (unsigned long long)sum_at(ok ? NODE_OFF(li, ok) : NODE_OFF(li, fail)));
    }
  }
  header(f, "remotemedia_node_duration_seconds", "histogram",
         "Duration of node process() invocations by node type.");
  for (size_t i = 0; i < nt; i++) {
    size_t li = i < nn ? i : g.nodes.cap;
    histogram(f, "remotemedia_node_duration_seconds", node_type_label, li, fine_bounds_s,
              FINE_BUCKETS, NODE_OFF(li, hist),
              sum_at(NODE_OFF(li, ok_ns)) + sum_at(NODE_OFF(li, fail_ns)));
  }
  uint64_t begun = SUM(run_begin), ended = SUM(run_end);
  header(f, "remotemedia_inflight_runs", "gauge", "Pipeline runs executing now.");
  fprintf(f, "remotemedia_inflight_runs %llu\n",
          (unsigned long long)(begun > ended ? begun - ended : 0));
  static const char *const reasons[RM_STATS_REJECT_N] = {"concurrency", "memory", "limits"};
  header(f, "remotemedia_rejected_total", "counter",
         "Calls refused by max-concurrent, the memory budget or a per-request limit.");
  for (int r = 0; r < RM_STATS_REJECT_N; r++)
    fprintf(f, "remotemedia_rejected_total{reason=\"%s\"} %llu\n", reasons[r],
            (unsigned long long)SUM(rejected[r]));
  header(f, "remotemedia_memory_budget_bytes", "gauge",
         "Bytes of the server-wide memory budget (max-memory) in use.");
  fprintf(f, "remotemedia_memory_budget_bytes %zu\n", b ? rm_budget_used(b) : (size_t)0);
  header(f, "remotemedia_memory_budget_max_bytes", "gauge",
         "The server-wide memory budget (max-memory).");
  fprintf(f, "remotemedia_memory_budget_max_bytes %zu\n", b ? rm_budget_limit(b) : (size_t)0);
  header(f, "remotemedia_send_timeouts_total", "counter",
         "Unary responses cancelled because the client had not taken them within "
         "send-timeout-ms (counted in grpc_server_handled_total with the handler's status).");
  fprintf(f, "remotemedia_send_timeouts_total %llu\n", (unsigned long long)SUM(send_timeouts));
  header(f, "remotemedia_pipeline_cache_hits_total", "counter",
         "ExecutePipeline calls that ran a cached compiled pipeline.");
  fprintf(f, "remotemedia_pipeline_cache_hits_total %llu\n", (unsigned long long)SUM(cache_hit));
  header(f, "remotemedia_pipeline_cache_misses_total", "counter",
         "ExecutePipeline calls that looked in the compiled-pipeline cache and compiled.");
  fprintf(f, "remotemedia_pipeline_cache_misses_total %llu\n", (unsigned long long)SUM(cache_miss));
  uint64_t opened = SUM(sess_open), closed = SUM(sess_close);
  header(f, "remotemedia_stream_sessions_total", "counter", "Streaming sessions opened.");
  fprintf(f, "remotemedia_stream_sessions_total %llu\n", (unsigned long long)opened);
  header(f, "remotemedia_stream_sessions_active", "gauge", "Streaming sessions open now.");
  fprintf(f, "remotemedia_stream_sessions_active %llu\n",
          (unsigned long long)(opened > closed ? opened - closed : 0));
  header(f, "remotemedia_stream_chunks_total", "counter", "Streaming chunks processed.");
  fprintf(f, "remotemedia_stream_chunks_total %llu\n", (unsigned long long)SUM(chunks));
  header(f, "remotemedia_stream_chunk_duration_seconds", "histogram",
         "Processing time of one streaming chunk.");
  histogram(f, "remotemedia_stream_chunk_duration_seconds", NULL, 0, fine_bounds_s, FINE_BUCKETS,
            offsetof(shard_t, chunk_hist), SUM(chunk_sum_ns));
}

/* ---------------------------------------------------------------- process_* */

typedef struct proc_stat {
  double cpu_s;
  uint64_t vsize, rss_bytes;
  double start_s; /* since the epoch */
} proc_stat_t;

/* /proc/self/stat (fields after the command, which may hold spaces) and /proc/stat's btime. */
static int read_proc_stat(proc_stat_t *out) {
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p)
    return -1;
  unsigned long long utime, stime, start, vsize;
  long long rss;
  /* state(3) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24) */
  if (sscanf(p + 2,
             "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
             "%llu %llu %lld",
             &utime, &stime, &start, &vsize, &rss) != 5)
    return -1;
  double hz = (double)sysconf(_SC_CLK_TCK);
  long page = sysconf(_SC_PAGESIZE);
  out->cpu_s = (double)(utime + stime) / hz;
  out->vsize = vsize;
  out->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
  out->start_s = 0;
  f = fopen("/proc/stat", "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f)) {
      unsigned long long btime;
      if (sscanf(line, "btime %llu", &btime) == 1) {
        out->start_s = (double)btime + (double)start / hz;
        break;
      }
    }
    fclose(f);
  }
  return 0;
}

static long open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  long n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static void process_metrics(FILE *f) {
  proc_stat_t ps;
  if (read_proc_stat(&ps) == 0) {
    header(f, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    fprintf(f, "process_cpu_seconds_total %.2f\n", ps.cpu_s);
    header(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fprintf(f, "process_resident_memory_bytes %llu\n", (unsigned long long)ps.rss_bytes);
    header(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    fprintf(f, "process_virtual_memory_bytes %llu\n", (unsigned long long)ps.vsize);
    header(f, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    fprintf(f, "process_start_time_seconds %.2f\n", ps.start_s);
  }
  long fds = open_fds();
  if (fds >= 0) {
    header(f, "process_open_fds", "gauge", "Number of open file descriptors.");
    fprintf(f, "process_open_fds %ld\n", fds);
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    header(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    fprintf(f, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
  }
}

/* Runs and other work offloaded from the polling threads queue for a worker: a queue that
 * does not drain says --workers is too few (inflight_runs only counts what runs). */
static void worker_metrics(FILE *f, const rm_stats_workers_t *w) {
  header(f, "remotemedia_worker_queue_jobs", "gauge",
         "Jobs waiting for a worker: pipeline runs, big requests' unpacking, session chunks.");
  fprintf(f, "remotemedia_worker_queue_jobs %zu\n", w->queued);
  header(f, "remotemedia_workers_busy", "gauge", "Workers running a job now.");
  fprintf(f, "remotemedia_workers_busy %d\n", w->busy);
  header(f, "remotemedia_workers", "gauge", "Worker threads (--workers).");
  fprintf(f, "remotemedia_workers %d\n", w->threads);
}

int rm_stats_write_exposition(FILE *f, const rm_budget_t *b, const rm_stats_workers_t *w) {
  if (!(atomic_load(&g.gen) & 1))
    return RM_EINTERNAL;
  grpc_metrics(f);
  engine_metrics(f, b);
  if (w)
    worker_metrics(f, w);
  process_metrics(f);
  return ferror(f) ? RM_EIO : 0;
}
