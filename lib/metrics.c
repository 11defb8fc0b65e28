/* metrics.c - pipeline metrics storage and the seed-JSON exports (protobuf: rm/wire.h). */
#include "rm/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/error.h"
#include "rm/metrics_seed.h"

int rm_metrics_init(rm_metrics_t *m, const char *pipeline_id, const char *const *node_ids,
                    size_t n_nodes) {
  memset(m, 0, sizeof *m);
  m->pipeline_id = pipeline_id;
  m->nodes = rm_calloc(n_nodes ? n_nodes : 1, sizeof *m->nodes);
  if (!m->nodes)
    return RM_ENOMEM;
  m->n_nodes = n_nodes;
  for (size_t i = 0; i < n_nodes; i++) {
    m->nodes[i].node_id = node_ids[i];
    m->nodes[i].min_ns = UINT64_MAX;
  }
  return 0;
}

void rm_metrics_destroy(rm_metrics_t *m) {
  if (!m)
    return;
  rm_free(m->nodes);
  m->nodes = NULL;
  m->n_nodes = 0;
}

static pthread_once_t cost_once = PTHREAD_ONCE_INIT;
static uint64_t invocation_cost_ns;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* A record is a few additions, below the clock's useful resolution: time batches of them
 * and take the median batch, like the clock calibration. The volatile pointer keeps the
 * compiler from folding the loop. */
static void calibrate(void) {
  enum { ROUNDS = 9, RECORDS = 512 };
  rm_node_metrics_t node = {.min_ns = UINT64_MAX};
  rm_metrics_t dummy = {.nodes = &node, .n_nodes = 1};
  rm_metrics_t *volatile vm = &dummy;
  uint64_t per[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    uint64_t t0 = rm_clock_ns();
    for (int i = 0; i < RECORDS; i++)
      rm_metrics_record(vm, 0, (uint64_t)i, i & 1);
    per[r] = rm_clock_ns() - t0;
  }
  qsort(per, ROUNDS, sizeof per[0], cmp_u64);
  uint64_t record_ns = (per[ROUNDS / 2] + RECORDS - 1) / RECORDS; /* round up */
  invocation_cost_ns = 2 * rm_clock_read_cost_ns() + record_ns;
}

uint64_t rm_metrics_invocation_cost_ns(void) {
  pthread_once(&cost_once, calibrate);
  return invocation_cost_ns;
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

/* Derived per-node figures shared by both exports. */
typedef struct node_view {
  double success_rate, total_us, avg_us, min_us, max_us;
} node_view_t;

static node_view_t view(const rm_node_metrics_t *n) {
  node_view_t v = {0};
  if (n->execution_count) {
    v.success_rate = (double)n->success_count / (double)n->execution_count;
    v.avg_us = us(n->total_ns) / (double)n->execution_count;
    v.min_us = us(n->min_ns);
    v.max_us = us(n->max_ns);
  }
  v.total_us = us(n->total_ns);
  return v;
}

void rm_metrics_charge_export(rm_metrics_t *m, uint64_t t0) {
  m->overhead_ns += rm_clock_ns() - t0 + rm_clock_read_cost_ns();
}

void rm_metrics_node_figures(const void *m, size_t i, rm_metrics_seed_node_t *f) {
  const rm_node_metrics_t *n = &((const rm_metrics_t *)m)->nodes[i];
  node_view_t v = view(n);
  *f = (rm_metrics_seed_node_t){n->node_id,     n->execution_count, n->success_count,
                                n->error_count, v.success_rate,     v.total_us,
                                v.avg_us,       v.min_us,           v.max_us};
}

void rm_metrics_figures(const rm_metrics_t *m, rm_metrics_seed_t *pf) {
  *pf = (rm_metrics_seed_t){
      m->pipeline_id,  m->total_executions,       m->peak_memory_bytes,
      us(m->total_ns), (double)m->total_ns / 1e6, (double)m->peak_memory_bytes / (1024.0 * 1024.0)};
}

json_t *rm_metrics_to_json(rm_metrics_t *m) {
  uint64_t t0 = rm_clock_ns();
  rm_metrics_seed_t pf;
  rm_metrics_figures(m, &pf);
  json_t *overhead;
  json_t *root = rm_metrics_seed_json(&pf, m->n_nodes, rm_metrics_node_figures, m, &overhead);
  if (!root)
    return NULL;
  /* the overhead gets its value last, when the export has been timed */
  rm_metrics_charge_export(m, t0);
  json_real_set(overhead, us(m->overhead_ns));
  return root;
}

/* ---- the seed JSON as text, written directly ---- */

typedef struct text {
  char *p;
  size_t len, cap;
  int oom;
} text_t;

static int text_reserve(text_t *t, size_t more) {
  if (t->oom)
    return -1;
  if (t->len + more + 1 <= t->cap)
    return 0;
  size_t cap = t->cap ? t->cap : 512;
  while (cap < t->len + more + 1)
    cap *= 2;
  char *p = rm_realloc(t->p, cap);
  if (!p) {
    t->oom = 1;
    return -1;
  }
  t->p = p;
  t->cap = cap;
  return 0;
}

static void text_put(text_t *t, const char *s, size_t n) {
  if (text_reserve(t, n))
    return;
  memcpy(t->p + t->len, s, n);
  t->len += n;
  t->p[t->len] = '\0';
}

#define TEXT_LIT(t, lit) text_put((t), (lit), sizeof(lit) - 1)

static void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(text_t *t, const char *fmt, ...) {
  char buf[128]; /* callers print one key and one number at a time: this always fits */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0)
    text_put(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A JSON string: quotes, backslashes and control characters escaped, UTF-8 kept. */
static void text_string(text_t *t, const char *s) {
  TEXT_LIT(t, "\"");
  for (const char *run = s;; s++) {
    unsigned char c = (unsigned char)*s;
    if (c && c != '"' && c != '\\' && c >= 0x20)
      continue;
    text_put(t, run, (size_t)(s - run));
    if (!c)
      break;
    if (c == '"' || c == '\\')
      text_printf(t, "\\%c", c);
    else
      text_printf(t, "\\u%04x", c);
    run = s + 1;
  }
  TEXT_LIT(t, "\"");
}

/* Whole nanoseconds as exact decimal microseconds ("12.345"): no binary rounding shows. */
static void text_us(text_t *t, uint64_t ns) {
  text_printf(t, "%" PRIu64 ".%03u", ns / 1000, (unsigned)(ns % 1000));
}

/* Any other double, as a real that reads back as the same double: 15 significant digits
 * when they do (0.75, not 0.75000000000000000), else 16 or 17, which always do. */
static void text_real(text_t *t, double v) {
  char buf[40];
  int n = 0;
  for (int digits = 15; digits <= 17; digits++) {
    n = snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (digits == 17 || strtod(buf, NULL) == v)
      break;
  }
  text_put(t, buf, (size_t)n);
  if (!strpbrk(buf, ".eEn")) /* "1" would read back as an integer */
    TEXT_LIT(t, ".0");
}

char *rm_metrics_to_json_text(rm_metrics_t *m, size_t *len) {
  uint64_t t0 = rm_clock_ns();
  text_t head = {0}, tail = {0};
  /* node_metrics first: metrics_overhead_us, which precedes it in the seed's order, is
   * written last so that it includes all of this */
  TEXT_LIT(&tail, ",\"node_metrics\":[");
  for (size_t i = 0; i < m->n_nodes; i++) {
    const rm_node_metrics_t *n = &m->nodes[i];
    node_view_t v = view(n);
    TEXT_LIT(&tail, "{\"node_id\":");
    text_string(&tail, n->node_id ? n->node_id : "");
    text_printf(&tail, ",\"execution_count\":%" PRIu64, n->execution_count);
    text_printf(&tail, ",\"success_count\":%" PRIu64, n->success_count);
    text_printf(&tail, ",\"error_count\":%" PRIu64 ",\"success_rate\":", n->error_count);
    text_real(&tail, v.success_rate);
    TEXT_LIT(&tail, ",\"total_duration_us\":");
    text_us(&tail, n->total_ns);
    TEXT_LIT(&tail, ",\"avg_duration_us\":");
    text_real(&tail, v.avg_us);
    TEXT_LIT(&tail, ",\"min_duration_us\":");
    text_us(&tail, n->execution_count ? n->min_ns : 0);
    TEXT_LIT(&tail, ",\"max_duration_us\":");
    text_us(&tail, n->execution_count ? n->max_ns : 0);
    text_put(&tail, "},", i + 1 < m->n_nodes ? 2 : 1);
  }
  TEXT_LIT(&tail, "]}");
  TEXT_LIT(&head, "{\"pipeline_id\":");
  text_string(&head, m->pipeline_id ? m->pipeline_id : "");
  text_printf(&head, ",\"total_executions\":%" PRIu64, m->total_executions);
  TEXT_LIT(&head, ",\"total_duration_us\":");
  text_us(&head, m->total_ns);
  text_printf(&head, ",\"total_duration_ms\":%" PRIu64 ".%06u", m->total_ns / 1000000,
              (unsigned)(m->total_ns % 1000000));
  text_printf(&head, ",\"peak_memory_bytes\":%" PRIu64, m->peak_memory_bytes);
  TEXT_LIT(&head, ",\"peak_memory_mb\":");
  text_real(&head, (double)m->peak_memory_bytes / (1024.0 * 1024.0));
  TEXT_LIT(&head, ",\"metrics_overhead_us\":");
  text_reserve(&head, 32 + tail.len); /* so that nothing allocates after the clock stops */
  if (head.oom || tail.oom) {
    rm_free(head.p);
    rm_free(tail.p);
    return NULL;
  }
  rm_metrics_charge_export(m, t0);
  text_us(&head, m->overhead_ns);
  text_put(&head, tail.p, tail.len);
  rm_free(tail.p);
  if (len)
    *len = head.len;
  return head.p;
}
