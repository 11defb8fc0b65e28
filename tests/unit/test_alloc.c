/* test_alloc.c - allocation-failure injection: every allocation of a whole request cycle
 * (manifest load, pipeline_new, run, metrics exports) fails in turn, and each time the
 * outcome is success or a clean RM_ENOMEM, never a crash or a leak. Leaks are caught per
 * allocation by the allocator's live-block count, and by valgrind/ASan when the suite runs
 * under them. */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rm/metrics.h"
#include "rm/wire.h"
#include "test_support.h"

/* Every utility node, fan-out (g), fan-in (merge), several items per run (ck), JSON in
 * and out (calc). */
static const char *manifest_text =
    "{'name': 'chaos', 'nodes': ["
    " {'id': 'src', 'node_type': 'PassThrough'},"
    " {'id': 'g', 'node_type': 'Gain', 'params': {'db': 6}},"
    " {'id': 'ck', 'node_type': 'Chunk', 'params': {'frames': 4, 'partial': 'pad'}},"
    " {'id': 'fmt', 'node_type': 'AudioFormat', 'params': '{\\'format\\': \\'i16\\'}'},"
    " {'id': 'mix', 'node_type': 'ChannelMix', 'params': {'mode': 'stereo'}},"
    " {'id': 'merge', 'node_type': 'PassThrough'},"
    " {'id': 'calc', 'node_type': 'Calculator'},"
    " {'id': 'cp', 'node_type': 'PassThrough'},"
    " {'id': 'delay', 'node_type': 'Delay', 'params': {'ms': 0}}],"
    " 'connections': ["
    "  {'from': 'src', 'to': 'g'}, {'from': 'g', 'to': 'ck'}, {'from': 'ck', 'to': 'fmt'},"
    "  {'from': 'g', 'to': 'mix'}, {'from': 'fmt', 'to': 'merge'},"
    "  {'from': 'mix', 'to': 'merge'}, {'from': 'calc', 'to': 'cp'},"
    "  {'from': 'cp', 'to': 'delay'}]}";

/* The same pipeline as a wire message (built without allocating). */
static Remotemedia__V1__NodeManifest wire_nodes[9];
static Remotemedia__V1__NodeManifest *wire_node_ptrs[9];
static Remotemedia__V1__Connection wire_conns[8];
static Remotemedia__V1__Connection *wire_conn_ptrs[8];
static Remotemedia__V1__PipelineManifest wire = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;

static void build_wire(void) {
  static const char *nodes[9][3] = {
      {"src", "PassThrough", ""},
      {"g", "Gain", "{\"db\": 6}"},
      {"ck", "Chunk", "{\"frames\": 4, \"partial\": \"pad\"}"},
      {"fmt", "AudioFormat", "{\"format\": \"i16\"}"},
      {"mix", "ChannelMix", "{\"mode\": \"stereo\"}"},
      {"merge", "PassThrough", ""},
      {"calc", "Calculator", "{}"},
      {"cp", "PassThrough", ""},
      {"delay", "Delay", "{\"ms\": 0}"},
  };
  static const char *conns[8][2] = {{"src", "g"},   {"g", "ck"},      {"ck", "fmt"},
                                    {"g", "mix"},   {"fmt", "merge"}, {"mix", "merge"},
                                    {"calc", "cp"}, {"cp", "delay"}};
  for (int i = 0; i < 9; i++) {
    remotemedia__v1__node_manifest__init(&wire_nodes[i]);
    wire_nodes[i].id = (char *)nodes[i][0];
    wire_nodes[i].node_type = (char *)nodes[i][1];
    wire_nodes[i].params = (char *)nodes[i][2];
    wire_node_ptrs[i] = &wire_nodes[i];
  }
  for (int i = 0; i < 8; i++) {
    remotemedia__v1__connection__init(&wire_conns[i]);
    wire_conns[i].from = (char *)conns[i][0];
    wire_conns[i].to = (char *)conns[i][1];
    wire_conn_ptrs[i] = &wire_conns[i];
  }
  wire.name = "chaos";
  wire.n_nodes = 9;
  wire.nodes = wire_node_ptrs;
  wire.n_connections = 8;
  wire.connections = wire_conn_ptrs;
}

static char *manifest_json; /* manifest_text with double quotes */

static uint32_t fnv1a(const uint8_t *p, size_t n, uint32_t h) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

/* A fingerprint of the outputs, so a run that succeeds under injection can be compared
 * with one that ran freely. */
static void digest(const rm_result_t *r, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < r->n_outputs; i++) {
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < r->outputs[i].n_items; k++)
      h = fnv1a(r->outputs[i].items[k]->data, r->outputs[i].items[k]->size, h);
    int w = snprintf(out + used, cap - used, "%s:%zu:%08x;", r->outputs[i].key,
                     r->outputs[i].n_items, h);
    if (w > 0 && (size_t)w < cap - used)
      used += (size_t)w;
  }
}

typedef struct outcome {
  int rc;
  const char *step; /* where it stopped */
  char digest[512];
} outcome_t;

/* One whole request: load, compile, run with metrics, export both ways. */
static outcome_t cycle(int from_proto, int result_in_arena) {
  outcome_t o = {0, "done", ""};
  rm_error_t err;
  rm_error_clear(&err);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_result_t *r = NULL;
  rm_buffer_t *audio = NULL, *req = NULL;
  json_t *mj = NULL, *back = NULL;
  char *text = NULL;
  Remotemedia__V1__PipelineMetrics msg = REMOTEMEDIA__V1__PIPELINE_METRICS__INIT;
  int have_msg = 0;
  int rc;
  rm_arena_t arena;
  rm_arena_init(&arena, NULL, 0); /* every block of it is an allocation that may fail */

#define STEP(name, expr, has_err)                                                                  \
  do {                                                                                             \
    o.step = name;                                                                                 \
    rc = (expr);                                                                                   \
    if (rc) {                                                                                      \
      if ((has_err) && err.code != rc)                                                             \
        fprintf(stderr, "%s: rc %d but err.code %d (%s)\n", name, rc, err.code, err.message);      \
      if (has_err)                                                                                 \
        RM_ASSERT_INT(err.code, rc);                                                               \
      goto out;                                                                                    \
    }                                                                                              \
  } while (0)

  if (from_proto)
    STEP("manifest_from_proto", rm_wire_manifest_from_proto(&wire, &m, &err), 1);
  else
    STEP("manifest_from_json",
         rm_manifest_from_json_text(manifest_json, strlen(manifest_json), &m, &err), 1);
  STEP("pipeline_new", rm_pipeline_new(m, NULL, &p, &err), 1);
  audio = rm_buffer_new_audio(NULL, 8000, 1, RM_SAMPLE_F32, 10);
  STEP("audio input", audio ? 0 : RM_ENOMEM, 0);
  for (size_t i = 0; i < 10; i++)
    rm_audio_set(audio, i, 0.05 * (double)i);
  static const char calc_req[] = "{\"operation\": \"mean\", \"operands\": [1, 2, 3]}";
  req = rm_buffer_new_text(NULL, RM_KIND_JSON, calc_req, sizeof calc_req - 1);
  STEP("json input", req ? 0 : RM_ENOMEM, 0);
  rm_input_t inputs[2] = {{"src", audio}, {"calc", req}};
  rm_run_opts_t opts = {.metrics = 1, .end_of_stream = 1, .arena = result_in_arena ? &arena : NULL};
  STEP("run", rm_pipeline_run(p, inputs, 2, &opts, &r, &err), 1);
  digest(r, o.digest, sizeof o.digest);
  mj = rm_metrics_to_json(rm_pipeline_metrics(p));
  STEP("metrics_to_json", mj ? 0 : RM_ENOMEM, 0);
  text = json_dumps(mj, JSON_COMPACT);
  STEP("json_dumps", text ? 0 : RM_ENOMEM, 0);
  rm_free(text);
  text = rm_metrics_to_json_text(rm_pipeline_metrics(p), NULL);
  STEP("metrics_to_json_text", text ? 0 : RM_ENOMEM, 0);
  STEP("metrics_to_proto", rm_wire_metrics_to_proto(rm_pipeline_metrics(p), &msg), 0);
  have_msg = 1;
  back = rm_wire_metrics_to_json(&msg);
  STEP("metrics_proto_to_json", back ? 0 : RM_ENOMEM, 0);
  o.step = "done";
#undef STEP
out:
  o.rc = rc;
  json_decref(back);
  if (have_msg)
    rm_wire_metrics_proto_clear(&msg);
  rm_free(text);
  json_decref(mj);
  rm_result_free(r);
  rm_arena_destroy(&arena);
  rm_buffer_unref(req);
  rm_buffer_unref(audio);
  rm_pipeline_free(p);
  rm_manifest_free(m);
  return o;
}

/* Blocks allocated and not freed through the engine's allocator, jansson's included. */
static long heap_in_use(void) { return rm_alloc_live(); }

static void chaos(int from_proto, int result_in_arena) {
  rm_alloc_fail_never();
  outcome_t ref = cycle(from_proto, result_in_arena);
  long total = rm_alloc_attempts();
  RM_ASSERT_INT(ref.rc, 0);
  RM_ASSERT_STR(ref.step, "done");
  CU_ASSERT(total > 100); /* the cycle really allocates: the loop below means something */
  int ok = 0, nomem = 0;
  for (long n = 0; n <= total; n++) {
    long before = heap_in_use();
    rm_alloc_fail_after(n);
    outcome_t o = cycle(from_proto, result_in_arena);
    long attempts = rm_alloc_attempts();
    rm_alloc_fail_never();
    long after = heap_in_use();
    if (o.rc == 0) {
      ok++;
      RM_ASSERT_STR(o.digest, ref.digest);
    } else {
      nomem++;
      if (o.rc != RM_ENOMEM)
        fprintf(stderr, "allocation %ld: %s failed with %s\n", n, o.step, rm_strerror(o.rc));
      RM_ASSERT_INT(o.rc, RM_ENOMEM);
    }
    if (after != before)
      fprintf(stderr, "allocation %ld (%s): %ld blocks leaked\n", n, o.step, after - before);
    RM_ASSERT_INT(after, before);
    /* failing early means fewer attempts, never more */
    CU_ASSERT(attempts <= total);
  }
  /* the last N fails nothing; every earlier one failed something the cycle needed */
  RM_ASSERT_INT(ok, 1);
  RM_ASSERT_INT(nomem, total);
  fprintf(stderr, "[%s: %ld allocations, each failed in turn] ", from_proto ? "proto" : "json",
          total);
}

static void test_every_allocation_of_a_json_cycle_fails_cleanly(void) { chaos(0, 0); }
static void test_every_allocation_of_a_proto_cycle_fails_cleanly(void) { chaos(1, 0); }
static void test_every_allocation_with_the_result_in_an_arena_fails_cleanly(void) { chaos(1, 1); }

/* The injection itself. */
static void test_fail_after_semantics(void) {
  rm_alloc_fail_after(0);
  CU_ASSERT_PTR_NULL(rm_malloc(8));
  CU_ASSERT_PTR_NULL(rm_calloc(1, 8));
  RM_ASSERT_INT(rm_alloc_attempts(), 2);
  rm_alloc_fail_after(2);
  void *a = rm_malloc(8), *b = rm_strdup("x");
  CU_ASSERT_PTR_NOT_NULL(a);
  CU_ASSERT_PTR_NOT_NULL(b);
  CU_ASSERT_PTR_NULL(rm_realloc(a, 16)); /* a stays valid */
  CU_ASSERT_PTR_NULL(rm_strndup("abc", 2));
  RM_ASSERT_INT(rm_alloc_attempts(), 4);
  rm_alloc_fail_never();
  RM_ASSERT_INT(rm_alloc_attempts(), 0);
  void *c = rm_realloc(a, 16);
  CU_ASSERT_PTR_NOT_NULL(c);
  rm_free(c);
  rm_free(b);
  rm_free(NULL);
}

static void *other_thread(void *arg) {
  void *p = rm_malloc(16);
  *(int *)arg = p != NULL;
  rm_free(p);
  return NULL;
}

static void test_injection_is_per_thread(void) {
  int got = 0;
  pthread_t th;
  rm_alloc_fail_after(0);
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, other_thread, &got), 0);
  pthread_join(th, NULL);
  CU_ASSERT_PTR_NULL(rm_malloc(1)); /* this thread still fails */
  rm_alloc_fail_never();
  RM_ASSERT_INT(got, 1);
}

static void test_buffer_failures_leave_account_clean(void) {
  rm_mem_account_t acc = {0};
  rm_alloc_fail_after(0);
  CU_ASSERT_PTR_NULL(rm_buffer_new(RM_KIND_TEXT, 10, &acc));
  CU_ASSERT_PTR_NULL(rm_buffer_new_borrowed(RM_KIND_TEXT, "abc", 3, &acc));
  rm_alloc_fail_after(1); /* the buffer, then not its mime type */
  CU_ASSERT_PTR_NULL(rm_buffer_new_binary(&acc, "abc", 3, "text/plain"));
  rm_alloc_fail_never();
  RM_ASSERT_INT(acc.current, 0);
  RM_ASSERT_INT(acc.live, 0);
  rm_alloc_fail_after(0);
  CU_ASSERT_PTR_NULL(rm_mem_account_new());
  rm_alloc_fail_never();
}

/* Builds a 5-node manifest by hand and exports it; returns 0 or RM_ENOMEM. */
static int build_by_hand(void) {
  rm_manifest_t *m = rm_manifest_new("m");
  int rc = m ? 0 : RM_ENOMEM;
  rm_error_t err;
  rm_error_clear(&err);
  for (int i = 0; !rc && i < 5; i++)
    rc = rm_manifest_add_node(m, "a", "Gain", NULL, &err);
  for (int i = 0; !rc && i < 5; i++)
    rc = rm_manifest_add_connection(m, "a", NULL, "b", "in");
  json_t *j = !rc ? rm_manifest_to_json(m) : NULL;
  if (!rc && !j)
    rc = RM_ENOMEM;
  if (m) /* a failed append leaves the manifest whole */
    CU_ASSERT(m->n_nodes <= 5 && m->n_conns <= 5);
  json_decref(j);
  rm_manifest_free(m);
  return rc;
}

static void test_manifest_builders_fail_cleanly(void) {
  rm_alloc_fail_never();
  RM_ASSERT_INT(build_by_hand(), 0);
  long total = rm_alloc_attempts();
  for (long n = 0; n <= total; n++) {
    long before = heap_in_use();
    rm_alloc_fail_after(n);
    int rc = build_by_hand();
    rm_alloc_fail_never();
    RM_ASSERT_INT(rc, n < total ? RM_ENOMEM : 0);
    RM_ASSERT_INT(heap_in_use(), before);
  }
}

/* "[1,1,...,1x": n numbers, then an invalid token. malloc'd, *len set. */
static char *broken_array(size_t n, size_t *len) {
  char *text = malloc(2 * n + 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  text[0] = '[';
  for (size_t i = 0; i < n; i++)
    memcpy(text + 1 + 2 * i, "1,", 2);
  text[2 * n + 1] = 'x';
  *len = 2 * n + 2;
  return text;
}

/* A parse stopped from outside frees all it made and says who stopped it; one never stopped
 * gives what rm_json_loadb gives. */
static int stop_at_third(void *arg) { return ++*(int *)arg == 3 ? RM_ETIMEDOUT : 0; }
static int never(void *arg) {
  (void)arg;
  return 0;
}

static void test_json_stoppable_parse(void) {
  size_t len;
  char *text = broken_array(100000, &len); /* 200 KB: stop() is asked every 64 KiB */
  text[--len - 1] = ']';                   /* "[1,...,1]" */
  long before = heap_in_use();
  int calls = 0, stopped = -1;
  json_error_t je;
  CU_ASSERT_PTR_NULL(rm_json_loadb_stoppable(text, len, 0, &je, stop_at_third, &calls, &stopped));
  RM_ASSERT_INT(stopped, RM_ETIMEDOUT);
  RM_ASSERT_INT(calls, 3);
  RM_ASSERT_INT(heap_in_use(), before);
  json_t *a = rm_json_loadb_stoppable(text, len, 0, &je, never, NULL, &stopped);
  RM_ASSERT_INT(stopped, 0);
  json_t *b = rm_json_loadb(text, len, 0, &je);
  CU_ASSERT(a && b && json_equal(a, b));
  RM_ASSERT_INT(json_array_size(a), 100000);
  json_decref(a);
  json_decref(b);
  /* stopped in the blanks after a whole value, which jansson then takes for the end */
  memset(text, ' ', len);
  memcpy(text, "[1]", 3);
  calls = 0;
  CU_ASSERT_PTR_NULL(rm_json_loadb_stoppable(text, len, 0, &je, stop_at_third, &calls, &stopped));
  RM_ASSERT_INT(stopped, RM_ETIMEDOUT);
  RM_ASSERT_INT(heap_in_use(), before);
  static const char bad[] = "{\"a\": tru}";
  CU_ASSERT_PTR_NULL(rm_json_loadb_stoppable(bad, sizeof bad - 1, 0, &je, never, NULL, &stopped));
  RM_ASSERT_INT(stopped, 0);
  RM_ASSERT_STR(je.text, "invalid token near 'tru'");
  free(text);
}

/* A failed parse frees what it made as jansson frees it, an array's elements first to last,
 * and each free finds its block at once: looked up in a list from its end, the 2M numbers of
 * this broken array took the allocator hours (quadratic; the suite's timeout pins it). */
static void test_json_failed_parse_of_a_long_array_frees_in_linear_time(void) {
  size_t len;
  char *text = broken_array(2000000, &len);
  long before = heap_in_use();
  json_error_t je;
  CU_ASSERT_PTR_NULL(rm_json_loadb(text, len, 0, &je));
  RM_ASSERT_STR(je.text, "invalid token near 'x'");
  RM_ASSERT_INT(heap_in_use(), before);
  free(text);
}

static void init(void) {
  rm_alloc_install_jansson();
  manifest_json = strdup(manifest_text);
  for (char *c = manifest_json; *c; c++)
    if (*c == '\'')
      *c = '"';
  build_wire();
}

/* Minor page faults of the calling thread so far. */
static long thread_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}

/* Writes every byte of a new 3 MiB block; adds the faults that took to *faults and returns
 * the block. */
static char *write_3mib(long *faults) {
  long before = thread_faults();
  char *p = malloc(3u << 20);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memset(p, 1, 3u << 20);
  *faults = thread_faults() - before;
  return p;
}

/* The first thread of the process besides main gets a heap of its own, still untouched. */
static void *warm_thread_main(void *arg) {
  long *faults = arg;
  CU_ASSERT_EQUAL(rm_alloc_warm(4u << 20), (size_t)4 << 20);
  char *a = write_3mib(&faults[0]); /* inside the warmed 4 MiB */
  char *b = write_3mib(&faults[1]); /* 1 MiB of it left: the rest is faulted in */
  free(b);
  free(a);
  return NULL;
}

/* Issue 11: rm_alloc_warm leaves pre-faulted pages in the calling thread's heap, so a block
 * of a few MiB taken from it afterwards is written without faulting its pages in; a second
 * one beyond them is not. With the server's thresholds (main.c); only where malloc is
 * glibc's (ASan and valgrind replace it). First in the suite: no other thread has run. */
static void test_warm_prefaults_the_heap(void) {
  CU_ASSERT_EQUAL(rm_alloc_warm(0), 0);
  CU_ASSERT_EQUAL(rm_alloc_warm(1), (size_t)64 << 10); /* whole 64 KiB pieces */
  if (mallinfo2().arena == 0) {
    printf("\n    malloc is not glibc's here: fault counts skipped");
    return;
  }
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
  long faults[2] = {0, 0};
  pthread_t t;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, warm_thread_main, faults), 0);
  pthread_join(t, NULL);
  printf("\n    3 MiB blocks after rm_alloc_warm(4 MiB): %ld faults, then %ld", faults[0],
         faults[1]);
  CU_ASSERT(faults[0] <= 16);
  CU_ASSERT(faults[1] >= 400); /* 768 pages of 4 KiB, of which at most 256 were warm */
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_warm_prefaults_the_heap), /* first: see there */
      RM_TEST(test_fail_after_semantics),
      RM_TEST(test_injection_is_per_thread),
      RM_TEST(test_buffer_failures_leave_account_clean),
      RM_TEST(test_manifest_builders_fail_cleanly),
      RM_TEST(test_json_stoppable_parse),
      RM_TEST(test_json_failed_parse_of_a_long_array_frees_in_linear_time),
      RM_TEST(test_every_allocation_of_a_json_cycle_fails_cleanly),
      RM_TEST(test_every_allocation_of_a_proto_cycle_fails_cleanly),
      RM_TEST(test_every_allocation_with_the_result_in_an_arena_fails_cleanly),
      {NULL, NULL}};
  init();
  rm_test_suite("alloc", cases);
  int rc = rm_test_run();
  free(manifest_json);
  return rc;
}
