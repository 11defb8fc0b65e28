/* pipeline.c - manifest validation, topological scheduling and the executor. */
#include "rm/pipeline.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rm/alloc.h"
#include "budget_int.h"
#include "rm/arena.h"
#include "rm/budget.h"
#include "rm/clock.h"
#include "rm/registry.h"
#include "rm/utf8.h"

#define ID_MAX 64
#define NAME_MAX_LEN 256

/* Items on one output port. Most ports carry one item per run: it sits in `one` and the
 * list allocates only when a second arrives. */
typedef struct item_list {
  rm_buffer_t **items;
  size_t n, cap;
  rm_buffer_t *one;
} item_list_t;

typedef struct edge {
  size_t from, to; /* node indices (manifest order) */
  unsigned from_port, to_port;
} edge_t;

typedef struct node {
  char *id;
  const rm_node_type_t *type;
  json_t *params;
  void *state;
  int created;
  size_t *in_edges; /* edge indices in connection order */
  size_t n_in;
  size_t n_out_edges;
  unsigned *out_kinds; /* effective kind mask per output port */
  size_t metrics_slot; /* position in execution order */
  /* per run */
  item_list_t *outs; /* one per output port */
  size_t consumers_left;
  unsigned keep;      /* ports (bit o) whose outputs go to the result */
  unsigned asked;     /* ports named in output_nodes: returned even when empty */
  rm_buffer_t *input; /* request input of a source node */
} node_t;

struct rm_pipeline {
  char *name;
  node_t *nodes; /* manifest order */
  size_t n_nodes;
  edge_t *edges;
  size_t n_edges;
  size_t *order; /* execution order: indices into nodes */
  rm_limits_t limits;
  rm_budget_label_t label; /* its budget's, for refusals (owner and limit set) */
  int heavy;
  int reusable;
  int reads_payload;         /* some node's type lacks RM_NODE_FORWARDS_PAYLOAD */
  rm_mem_account_t *account; /* heap: output buffers may outlive the pipeline */
  rm_budget_t *budget;       /* everything p and its runs allocate; may outlive p */
  size_t external;           /* library predictions counted in account->current this run */
  rm_metrics_t metrics;
  uint64_t invocation_cost_ns; /* metrics' cost per timed invocation, calibrated */
  const char **order_ids;
  /* Everything built at compile time lives here and goes in one rm_arena_destroy; the
   * first block is in the same allocation as this struct. Node states, params, item lists
   * and the account are separate: they have lifetimes of their own. */
  rm_arena_t arena;
  uint64_t run_items; /* emitted in the current run, against limits.max_items */
  int flushing;       /* rm_pipeline_flush: source nodes run without inputs */
};

#define PIPELINE_INLINE 2048

struct rm_node_ctx {
  rm_pipeline_t *p;
  node_t *node;
  rm_buffer_t **inputs;
  unsigned *in_ports;
  size_t n_inputs;
  const rm_run_opts_t *opts;
  rm_error_t *err;
  uint64_t items_out;
};

/* ---------------------------------------------------------------- building */

static int valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > ID_MAX)
    return 0;
  for (const char *c = id; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '_' || *c == '-'))
      return 0;
  return 1;
}

/* Printable, and valid UTF-8 (jansson refuses anything else when it exports metrics).
 * Checked here without allocating, so running out of memory is never mistaken for a bad
 * name. */
int rm_pipeline_name_valid(const char *name) {
  size_t len = strlen(name);
  if (len > NAME_MAX_LEN)
    return 0;
  const unsigned char *c = (const unsigned char *)name, *end = c + len;
  while (c < end) {
    if (*c < 0x20 || *c == 0x7f)
      return 0;
    size_t n = rm_utf8_len(c, (size_t)(end - c));
    if (!n)
      return 0;
    c += n;
  }
  return 1;
}

static long find_node(const rm_pipeline_t *p, const char *id) {
  for (size_t i = 0; i < p->n_nodes; i++)
    if (strcmp(p->nodes[i].id, id) == 0)
      return (long)i;
  return -1;
}

static long find_port(const rm_port_spec_t *ports, size_t n, const char *name) {
  if (!*name)
    return n ? 0 : -1;
  for (size_t i = 0; i < n; i++)
    if (strcmp(ports[i].name, name) == 0)
      return (long)i;
  return -1;
}

/* Kinds as "audio|json" for messages. */
static void kinds_text(unsigned mask, char *buf, size_t cap) {
  static const unsigned all[] = {RM_KIND_AUDIO, RM_KIND_TENSOR, RM_KIND_JSON, RM_KIND_TEXT,
                                 RM_KIND_BINARY};
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (!(mask & all[i]))
      continue;
    int w = snprintf(buf + used, cap - used, "%s%s", used ? "|" : "", rm_kind_name(all[i]));
    if (w < 0 || (size_t)w >= cap - used)
      break;
    used += (size_t)w;
  }
  if (!used)
    snprintf(buf, cap, "nothing");
}

static int check_ids(rm_pipeline_t *p, const rm_manifest_t *m, rm_error_t *err) {
  for (size_t i = 0; i < m->n_nodes; i++) {
    const char *id = m->nodes[i].id;
    if (!*id)
      return rm_error_set(err, RM_EMANIFEST, NULL, "id", "nodes[%zu]: node id is empty", i);
    if (!valid_id(id))
      return rm_error_set(err, RM_EMANIFEST, id, "id",
                          "nodes[%zu]: node id '%.80s' is invalid: use 1 to %d characters of "
                          "A-Z a-z 0-9 _ -",
                          i, id, ID_MAX);
    for (size_t j = 0; j < i; j++)
      if (strcmp(m->nodes[j].id, id) == 0)
        return rm_error_set(err, RM_EMANIFEST, id, "id", "duplicate node id '%s'", id);
    p->nodes[i].id = rm_arena_strdup(&p->arena, id);
    if (!p->nodes[i].id)
      return rm_error_set(err, RM_ENOMEM, id, NULL, "out of memory");
    p->n_nodes = i + 1;
  }
  for (size_t i = 0; i < m->n_nodes; i++) {
    const rm_node_type_t *t = rm_registry_find(m->nodes[i].type);
    if (!t)
      return rm_error_set(err, RM_ENOTYPE, m->nodes[i].id, "node_type",
                          "node '%s': unknown node type '%.80s'", m->nodes[i].id, m->nodes[i].type);
    p->nodes[i].type = t;
    p->heavy |= (t->flags & RM_NODE_HEAVY) != 0;
    p->reads_payload |= !(t->flags & RM_NODE_FORWARDS_PAYLOAD);
    if (!(t->flags & RM_NODE_REUSABLE))
      p->reusable = 0;
    p->nodes[i].out_kinds =
        rm_arena_calloc(&p->arena, t->n_outputs ? t->n_outputs : 1, sizeof(unsigned));
    p->nodes[i].outs =
        rm_arena_calloc(&p->arena, t->n_outputs ? t->n_outputs : 1, sizeof(item_list_t));
    if (!p->nodes[i].out_kinds || !p->nodes[i].outs)
      return rm_error_set(err, RM_ENOMEM, m->nodes[i].id, NULL, "out of memory");
  }
  return 0;
}

static int build_edges(rm_pipeline_t *p, const rm_manifest_t *m, rm_error_t *err) {
  p->edges = rm_arena_calloc(&p->arena, m->n_conns ? m->n_conns : 1, sizeof *p->edges);
  if (!p->edges)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  for (size_t i = 0; i < m->n_conns; i++) {
    const rm_conn_spec_t *c = &m->conns[i];
    long from = find_node(p, c->from), to = find_node(p, c->to);
    if (from < 0)
      return rm_error_set(err, RM_EMANIFEST, c->from, "from",
                          "connection %zu (%.80s -> %.80s): node '%.80s' does not exist", i,
                          c->from, c->to, c->from);
    if (to < 0)
      return rm_error_set(err, RM_EMANIFEST, c->to, "to",
                          "connection %zu (%.80s -> %.80s): node '%.80s' does not exist", i,
                          c->from, c->to, c->to);
    const rm_node_type_t *ft = p->nodes[from].type, *tt = p->nodes[to].type;
    long fp = find_port(ft->outputs, ft->n_outputs, c->from_port);
    long tp = find_port(tt->inputs, tt->n_inputs, c->to_port);
    if (fp < 0)
      return rm_error_set(err, RM_EMANIFEST, c->from, "from_port",
                          "connection %zu (%s -> %s): node '%s' (%s) has no output port '%.64s'", i,
                          c->from, c->to, c->from, ft->name,
                          *c->from_port ? c->from_port : "(primary)");
    if (tp < 0)
      return rm_error_set(err, RM_EMANIFEST, c->to, "to_port",
                          "connection %zu (%s -> %s): node '%s' (%s) has no input port '%.64s'", i,
                          c->from, c->to, c->to, tt->name, *c->to_port ? c->to_port : "(primary)");
    p->edges[i] = (edge_t){(size_t)from, (size_t)to, (unsigned)fp, (unsigned)tp};
    p->n_edges = i + 1;
  }
  for (size_t i = 0; i < p->n_nodes; i++) {
    node_t *n = &p->nodes[i];
    size_t cnt = 0;
    for (size_t e = 0; e < p->n_edges; e++)
      cnt += p->edges[e].to == i;
    n->in_edges = rm_arena_calloc(&p->arena, cnt ? cnt : 1, sizeof(size_t));
    if (!n->in_edges)
      return rm_error_set(err, RM_ENOMEM, n->id, NULL, "out of memory");
    for (size_t e = 0; e < p->n_edges; e++) {
      if (p->edges[e].to == i)
        n->in_edges[n->n_in++] = e;
      if (p->edges[e].from == i)
        n->n_out_edges++;
    }
    /* Each non-variadic port takes at most one connection; ports that are neither
     * connected nor optional make the node a source, which is only allowed when no port is
     * connected (the request then feeds its primary port). */
    const rm_node_type_t *t = n->type;
    size_t connected_ports = 0;
    for (unsigned port = 0; port < t->n_inputs; port++) {
      size_t k = 0;
      for (size_t j = 0; j < n->n_in; j++)
        k += p->edges[n->in_edges[j]].to_port == port;
      if (k > 1 && !(t->inputs[port].flags & RM_PORT_VARIADIC))
        return rm_error_set(err, RM_EMANIFEST, n->id, "connections",
                            "node '%s' (%s): input port '%s' accepts one connection, got %zu",
                            n->id, t->name, t->inputs[port].name, k);
      connected_ports += k > 0;
    }
    if (connected_ports) {
      for (unsigned port = 0; port < t->n_inputs; port++) {
        size_t k = 0;
        for (size_t j = 0; j < n->n_in; j++)
          k += p->edges[n->in_edges[j]].to_port == port;
        if (!k && !(t->inputs[port].flags & RM_PORT_OPTIONAL))
          return rm_error_set(err, RM_EMANIFEST, n->id, "connections",
                              "node '%s' (%s): input port '%s' is not connected", n->id, t->name,
                              t->inputs[port].name);
      }
    }
  }
  return 0;
}

/* Kahn's algorithm, ties broken by manifest order so schedules are reproducible. On a
 * cycle, walks predecessors among the unscheduled nodes until one repeats and names the
 * cycle it found. */
static int schedule(rm_pipeline_t *p, rm_error_t *err) {
  size_t n = p->n_nodes;
  size_t *indeg = rm_arena_calloc(&p->arena, n, sizeof *indeg);
  p->order = rm_arena_calloc(&p->arena, n, sizeof *p->order);
  char *placed = rm_arena_calloc(&p->arena, n, 1);
  if (!indeg || !p->order || !placed)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  for (size_t e = 0; e < p->n_edges; e++)
    indeg[p->edges[e].to]++;
  size_t done = 0;
  while (done < n) {
    size_t pick = n;
    for (size_t i = 0; i < n; i++)
      if (!placed[i] && indeg[i] == 0) {
        pick = i;
        break;
      }
    if (pick == n)
      break;
    placed[pick] = 1;
    p->order[done++] = pick;
    for (size_t e = 0; e < p->n_edges; e++)
      if (p->edges[e].from == pick)
        indeg[p->edges[e].to]--;
  }
  int rc = 0;
  if (done < n) {
    /* pred(x): x's first unplaced predecessor. Every unplaced node has one, so iterating
     * pred n times from any of them lands on a cycle of pred, which is a cycle of the
     * graph run backwards. */
    size_t *ring = rm_arena_calloc(&p->arena, n + 1, sizeof *ring);
    if (!ring)
      return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    size_t cur = 0;
    while (placed[cur])
      cur++;
    for (size_t step = 0; step <= n; step++) {
      for (size_t e = 0; e < p->n_edges; e++)
        if (p->edges[e].to == cur && !placed[p->edges[e].from]) {
          cur = p->edges[e].from;
          break;
        }
    }
    size_t len = 0, at = cur;
    do {
      ring[len++] = at;
      for (size_t e = 0; e < p->n_edges; e++)
        if (p->edges[e].to == at && !placed[p->edges[e].from]) {
          at = p->edges[e].from;
          break;
        }
    } while (at != cur && len < n);
    /* ring holds the cycle backwards. Name it from its node listed first in the manifest,
     * so the message does not depend on where the walk happened to enter the cycle. */
    size_t first = 0;
    for (size_t i = 1; i < len; i++)
      if (ring[i] < ring[first])
        first = i;
    cur = ring[first];
    char path[RM_ERROR_MSG_MAX / 2];
    size_t used = 0;
    for (size_t i = 0; i <= len && used < sizeof path; i++) {
      size_t node = ring[(first + len - i % len) % len];
      int w = snprintf(path + used, sizeof path - used, "%s%s", i ? " -> " : "", p->nodes[node].id);
      if (w < 0)
        break;
      used += (size_t)w;
    }
    rc = rm_error_set(err, RM_EMANIFEST, p->nodes[cur].id, "connections", "cycle detected: %s",
                      path);
  }
  return rc;
}

/* Effective output kinds in schedule order, checking every edge. */
static int check_kinds(rm_pipeline_t *p, rm_error_t *err) {
  for (size_t k = 0; k < p->n_nodes; k++) {
    node_t *n = &p->nodes[p->order[k]];
    const rm_node_type_t *t = n->type;
    unsigned in_mask = 0;
    for (size_t j = 0; j < n->n_in; j++) {
      const edge_t *e = &p->edges[n->in_edges[j]];
      const node_t *src = &p->nodes[e->from];
      unsigned produced = src->out_kinds[e->from_port];
      unsigned accepted = t->inputs[e->to_port].kinds;
      if (!(produced & accepted)) {
        char a[64], b[64];
        kinds_text(produced, a, sizeof a);
        kinds_text(accepted, b, sizeof b);
        return rm_error_set(err, RM_EMANIFEST, n->id, "connections",
                            "connection %s -> %s: '%s' produces %s but '%s' (%s) accepts %s",
                            src->id, n->id, src->id, a, n->id, t->name, b);
      }
      in_mask |= produced & accepted;
    }
    if (!n->n_in && t->n_inputs)
      in_mask = t->inputs[0].kinds; /* fed by the request */
    for (size_t o = 0; o < t->n_outputs; o++)
      n->out_kinds[o] =
          (t->outputs[o].flags & RM_PORT_SAME_AS_INPUT) ? in_mask : t->outputs[o].kinds;
  }
  return 0;
}

static const rm_budget_label_t default_label = {"request", "max_memory_bytes"};

/* label's members, each defaulted (rm_budget_label_t). */
static rm_budget_label_t full_label(const rm_budget_label_t *label) {
  rm_budget_label_t out = default_label;
  if (label && label->owner)
    out.owner = label->owner;
  if (label && label->limit)
    out.limit = label->limit;
  if (label) {
    out.parent_tail = label->parent_tail;
    out.parent_arg = label->parent_arg;
  }
  return out;
}

/* After an allocation failed with RM_ENOMEM: when the budget refused it (rather than malloc),
 * records RM_ELIMIT naming the node (n may be NULL; else the pipeline) and the budget that
 * refused (the pipeline's, as label names it, or the server's, followed by what the label's
 * parent_tail says now, NULL: "; retry later", marked retry_later), and returns 1; else 0 (a
 * real out of memory stays RM_ENOMEM). */
static int budget_refusal(const char *pipeline, const rm_budget_label_t *label, const node_t *n,
                          rm_error_t *err) {
  rm_budget_refusal_t r;
  if (!rm_budget_refused(&r))
    return 0;
  char who[RM_ERROR_NODE_MAX + 80];
  if (n)
    snprintf(who, sizeof who, "node '%s' (%s)", n->id, n->type->name);
  else
    snprintf(who, sizeof who, "pipeline '%.80s'", pipeline ? pipeline : "");
  if (!r.by_parent && !r.limit) /* no limit: only a size no allocation can hold is refused */
    rm_error_set(err, RM_ELIMIT, n ? n->id : NULL, "max_memory_bytes",
                 "%s needs %zu more bytes of memory, more than any allocation can hold", who,
                 r.asked);
  else if (r.by_parent) {
    const char *parent_tail = label->parent_tail ? label->parent_tail(label->parent_arg) : NULL;
    rm_error_set(err, RM_ELIMIT, n ? n->id : NULL, "max_memory",
                 "%s needs %zu more bytes of memory, but the server's memory budget has %zu of "
                 "its %zu bytes in use (max-memory)%s",
                 who, r.asked, r.used, r.limit, parent_tail ? parent_tail : "; retry later");
    if (err)
      err->retry_later = parent_tail == NULL;
  } else
    rm_error_set(err, RM_ELIMIT, n ? n->id : NULL, "max_memory_bytes",
                 "%s needs %zu more bytes of memory, above the %s's budget: %zu of its %zu bytes "
                 "in use (%s)",
                 who, r.asked, label->owner, r.used, r.limit, label->limit);
  return 1;
}

static int create_nodes(rm_pipeline_t *p, const rm_manifest_t *m, rm_error_t *err) {
  for (size_t i = 0; i < p->n_nodes; i++) {
    node_t *n = &p->nodes[i];
    const rm_node_type_t *t = n->type;
    int rc = rm_params_validate(t->params, t->n_params, m->nodes[i].params, n->id, &n->params, err);
    if (rc)
      return rc;
    rm_error_t local;
    rm_error_clear(&local);
    rm_budget_refusal_clear();
    rc = t->create(n->params, &n->state, &local);
    if (rc == RM_ENOMEM && budget_refusal(p->name, &p->label, n, err))
      return RM_ELIMIT;
    if (rc) {
      if (err) {
        /* create() does not know its node's id: the message must still name it. Nodes
         * write "node param 'key': ..." (tests rely on that opening), so the id goes at
         * the end unless the message already names it. */
        char quoted[RM_ERROR_NODE_MAX + 2];
        snprintf(quoted, sizeof quoted, "'%s'", n->id);
        if (!local.message[0])
          rm_error_set(err, rc, n->id, local.field, "node '%s' (%s): could not be created: %s",
                       n->id, t->name, rm_strerror(rc));
        else if (strstr(local.message, quoted))
          rm_error_set(err, rc, n->id, local.field, "%s", local.message);
        else
          rm_error_set(err, rc, n->id, local.field, "%s (node '%s', %s)", local.message, n->id,
                       t->name);
      }
      return rc;
    }
    n->created = 1;
  }
  return 0;
}

int rm_pipeline_new(const rm_manifest_t *m, const rm_limits_t *limits, rm_pipeline_t **out,
                    rm_error_t *err) {
  return rm_pipeline_new_labelled(m, limits, NULL, out, err);
}

int rm_pipeline_new_labelled(const rm_manifest_t *m, const rm_limits_t *limits,
                             const rm_budget_label_t *label, rm_pipeline_t **out, rm_error_t *err) {
  rm_error_clear(err);
  rm_budget_label_t full = full_label(label);
  if (m->n_nodes == 0)
    return rm_error_set(err, RM_EMANIFEST, NULL, "nodes", "pipeline has no nodes");
  if (limits && limits->max_nodes && m->n_nodes > limits->max_nodes)
    return rm_error_set(err, RM_ELIMIT, NULL, "nodes",
                        "pipeline has %zu nodes, above the limit of %u", m->n_nodes,
                        limits->max_nodes);
  if (limits && limits->max_connections && m->n_conns > limits->max_connections)
    return rm_error_set(err, RM_ELIMIT, NULL, "connections",
                        "pipeline has %zu connections, above the limit of %u", m->n_conns,
                        limits->max_connections);
  if (!rm_pipeline_name_valid(m->name))
    return rm_error_set(err, RM_EMANIFEST, NULL, "name",
                        "pipeline name must be at most %d bytes of printable UTF-8", NAME_MAX_LEN);
  rm_budget_t *budget =
      rm_budget_new(limits ? (size_t)limits->max_memory_bytes : 0, rm_budget_current());
  if (!budget)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  rm_budget_t *outer = rm_budget_enter(budget);
  rm_budget_refusal_clear();
  int rc;
  rm_pipeline_t *p = rm_malloc(sizeof *p + PIPELINE_INLINE);
  if (!p) {
    rc = budget_refusal(m->name, &full, NULL, err)
             ? RM_ELIMIT
             : rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_budget_leave(outer);
    rm_budget_free(budget);
    return rc;
  }
  memset(p, 0, sizeof *p);
  p->budget = budget;
  p->label = full;
  p->reusable = 1; /* until a node type says otherwise */
  rm_arena_init(&p->arena, p + 1, PIPELINE_INLINE);
  rc = RM_ENOMEM;
  p->name = rm_arena_strdup(&p->arena, m->name);
  p->nodes = rm_arena_calloc(&p->arena, m->n_nodes, sizeof *p->nodes);
  p->account = rm_mem_account_new();
  if (!p->name || !p->nodes || !p->account) {
    rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    goto fail;
  }
  if (limits)
    p->limits = *limits;
  if ((rc = check_ids(p, m, err)) || (rc = build_edges(p, m, err)) || (rc = schedule(p, err)) ||
      (rc = check_kinds(p, err)) || (rc = create_nodes(p, m, err)))
    goto fail;
  p->order_ids = rm_arena_calloc(&p->arena, p->n_nodes, sizeof *p->order_ids);
  if (!p->order_ids) {
    rc = rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    goto fail;
  }
  for (size_t k = 0; k < p->n_nodes; k++) {
    p->order_ids[k] = p->nodes[p->order[k]].id;
    p->nodes[p->order[k]].metrics_slot = k;
  }
  if (rm_metrics_init(&p->metrics, p->name, p->order_ids, p->n_nodes)) {
    rc = rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    goto fail;
  }
  /* calibrated once per process, here rather than inside the first timed run */
  p->invocation_cost_ns = rm_metrics_invocation_cost_ns();
  rm_budget_leave(outer);
  *out = p;
  return 0;
fail:
  if (rc == RM_ENOMEM && budget_refusal(p->name, &p->label, NULL, err))
    rc = RM_ELIMIT;
  rm_budget_leave(outer);
  rm_pipeline_free(p);
  return rc;
}

static void clear_list(item_list_t *l) {
  for (size_t i = 0; i < l->n; i++)
    rm_buffer_unref(l->items[i]);
  l->n = 0;
}

static void free_list(item_list_t *l) {
  clear_list(l);
  if (l->items != &l->one)
    rm_free(l->items);
  l->items = NULL;
  l->cap = 0;
}

static void clear_outputs(node_t *n) {
  if (!n->outs || !n->type)
    return;
  for (size_t o = 0; o < n->type->n_outputs; o++)
    clear_list(&n->outs[o]);
}

void rm_pipeline_free(rm_pipeline_t *p) {
  if (!p)
    return;
  for (size_t i = 0; p->nodes && i < p->n_nodes; i++) {
    node_t *n = &p->nodes[i];
    if (n->created && n->type->destroy)
      n->type->destroy(n->state);
    json_decref(n->params);
    if (n->outs && n->type)
      for (size_t o = 0; o < n->type->n_outputs; o++)
        free_list(&n->outs[o]);
  }
  rm_metrics_destroy(&p->metrics);
  rm_mem_account_free(p->account);
  rm_arena_destroy(&p->arena);
  rm_budget_t *budget = p->budget;
  rm_free(p);
  rm_budget_free(budget); /* stays while results made by p hold blocks */
}

const char *rm_pipeline_name(const rm_pipeline_t *p) { return p->name; }
size_t rm_pipeline_node_count(const rm_pipeline_t *p) { return p->n_nodes; }
int rm_pipeline_is_heavy(const rm_pipeline_t *p) { return p->heavy; }
int rm_pipeline_is_reusable(const rm_pipeline_t *p) { return p->reusable; }
int rm_pipeline_reads_payload(const rm_pipeline_t *p) { return p->reads_payload; }

void rm_pipeline_reset_metrics(rm_pipeline_t *p) {
  rm_metrics_t *m = &p->metrics;
  m->total_executions = 0;
  m->total_ns = 0;
  m->peak_memory_bytes = 0;
  m->overhead_ns = 0;
  for (size_t i = 0; i < m->n_nodes; i++) {
    rm_node_metrics_t *n = &m->nodes[i];
    n->execution_count = n->success_count = n->error_count = 0;
    n->total_ns = n->max_ns = 0;
    n->min_ns = UINT64_MAX;
  }
  p->account->peak = p->account->current;
}
rm_metrics_t *rm_pipeline_metrics(rm_pipeline_t *p) { return &p->metrics; }
rm_mem_account_t *rm_pipeline_account(rm_pipeline_t *p) { return p->account; }
rm_budget_t *rm_pipeline_budget(rm_pipeline_t *p) { return p->budget; }

/* ---------------------------------------------------------------- node context */

size_t rm_node_input_count(const rm_node_ctx_t *ctx) { return ctx->n_inputs; }
rm_buffer_t *rm_node_input(const rm_node_ctx_t *ctx, size_t i) {
  return i < ctx->n_inputs ? ctx->inputs[i] : NULL;
}
const char *rm_node_input_source(const rm_node_ctx_t *ctx, size_t i) {
  if (i >= ctx->n_inputs || i >= ctx->node->n_in)
    return NULL; /* the request's input */
  return ctx->p->nodes[ctx->p->edges[ctx->node->in_edges[i]].from].id;
}
const rm_limits_t *rm_node_limits(const rm_node_ctx_t *ctx) { return &ctx->p->limits; }
rm_mem_account_t *rm_node_account(const rm_node_ctx_t *ctx) { return ctx->p->account; }

int rm_node_fail(rm_node_ctx_t *ctx, int code, const char *field, const char *fmt, ...) {
  if (ctx->err) {
    char msg[RM_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rm_error_set(ctx->err, code, ctx->node->id, field, "node '%s' (%s): %s", ctx->node->id,
                 ctx->node->type->name, msg);
  }
  return code;
}

/* The cancel flag, then the deadline against now (an rm_clock_ns() reading; 0 = read it). */
static int check_stop_at(const rm_run_opts_t *opts, rm_error_t *err, const char *node_id,
                         uint64_t now) {
  if (opts->cancel && atomic_load_explicit(opts->cancel, memory_order_relaxed))
    return rm_error_set(err, RM_ECANCELED, node_id, NULL, "the call was cancelled");
  if (opts->deadline_ns && (now ? now : rm_clock_ns()) >= opts->deadline_ns)
    return rm_error_set(err, RM_ETIMEDOUT, node_id, NULL, "deadline exceeded%s%s%s",
                        node_id ? " before node '" : "", node_id ? node_id : "",
                        node_id ? "' finished" : "");
  return 0;
}

static int check_stop(const rm_run_opts_t *opts, rm_error_t *err, const char *node_id) {
  return check_stop_at(opts, err, node_id, 0);
}

int rm_node_check(rm_node_ctx_t *ctx) { return check_stop(ctx->opts, ctx->err, ctx->node->id); }

/* Limits apply to every buffer, whoever made it. */
/* Limits apply to every buffer, whoever made it. `who` is formatted only on failure:
 * this runs for every emitted item. */
static int check_buffer_limits(const rm_limits_t *lim, const rm_buffer_t *b, const node_t *n,
                               int is_input, rm_error_t *err) {
  int over_bytes = lim->max_buffer_bytes && b->size > lim->max_buffer_bytes;
  int over_samples = b->kind == RM_KIND_AUDIO && lim->max_audio_samples &&
                     rm_audio_samples(b) > lim->max_audio_samples;
  if (!over_bytes && !over_samples)
    return 0;
  char who[160];
  if (is_input)
    snprintf(who, sizeof who, "input for node '%s'", n->id);
  else
    snprintf(who, sizeof who, "node '%s' (%s): output", n->id, n->type->name);
  if (over_bytes)
    return rm_error_set(err, RM_ELIMIT, n->id, "size",
                        "%s holds %zu bytes, above the limit of %llu", who, b->size,
                        (unsigned long long)lim->max_buffer_bytes);
  return rm_error_set(err, RM_ELIMIT, n->id, "samples",
                      "%s holds %zu audio samples, above the limit of %llu", who,
                      rm_audio_samples(b), (unsigned long long)lim->max_audio_samples);
}

static int list_push(item_list_t *l, rm_buffer_t *b) {
  if (!l->items) {
    l->items = &l->one;
    l->cap = 1;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap * 2;
    rm_buffer_t **items;
    if (l->items == &l->one) {
      items = rm_malloc(cap * sizeof *items);
      if (items)
        items[0] = l->one;
    } else {
      items = rm_realloc(l->items, cap * sizeof *items);
    }
    if (!items)
      return RM_ENOMEM;
    l->items = items;
    l->cap = cap;
  }
  l->items[l->n++] = b;
  return 0;
}

int rm_node_emit(rm_node_ctx_t *ctx, unsigned port, rm_buffer_t *buf) {
  node_t *n = ctx->node;
  if (!buf)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if (port >= n->type->n_outputs || !(buf->kind & n->out_kinds[port])) {
    rm_buffer_unref(buf);
    return rm_node_fail(ctx, RM_EINTERNAL, NULL, "emitted %s on port %u, which it does not declare",
                        rm_kind_name(buf->kind), port);
  }
  int rc = check_buffer_limits(&ctx->p->limits, buf, n, 0, ctx->err);
  if (!rc && ctx->p->limits.max_items && ++ctx->p->run_items > ctx->p->limits.max_items)
    rc = rm_error_set(ctx->err, RM_ELIMIT, n->id, "items",
                      "node '%s' (%s): the run produced more than %llu items, the limit", n->id,
                      n->type->name, (unsigned long long)ctx->p->limits.max_items);
  if (!rc && list_push(&n->outs[port], buf))
    rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  if (rc) {
    rm_buffer_unref(buf);
    return rc;
  }
  ctx->items_out++;
  return 0;
}

/* ---------------------------------------------------------------- running */

static void reset_run_state(rm_pipeline_t *p) {
  p->run_items = 0;
  for (size_t i = 0; i < p->n_nodes; i++) {
    node_t *n = &p->nodes[i];
    clear_outputs(n);
    n->consumers_left = n->n_out_edges;
    n->keep = n->asked = 0;
    n->input = NULL;
  }
}

static int bind_inputs(rm_pipeline_t *p, const rm_input_t *inputs, size_t n_inputs,
                       rm_error_t *err) {
  for (size_t i = 0; i < n_inputs; i++) {
    const char *id = inputs[i].node_id ? inputs[i].node_id : "";
    long k = find_node(p, id);
    if (k < 0)
      return rm_error_set(err, RM_EINPUT, NULL, "inputs",
                          "input for node '%.80s': the pipeline has no such node", id);
    node_t *n = &p->nodes[k];
    if (n->n_in)
      return rm_error_set(err, RM_EINPUT, n->id, "inputs",
                          "input for node '%s': the node has incoming connections, its data "
                          "comes from them",
                          n->id);
    if (!n->type->n_inputs)
      return rm_error_set(err, RM_EINPUT, n->id, "inputs", "input for node '%s': %s takes no input",
                          n->id, n->type->name);
    if (n->input)
      return rm_error_set(err, RM_EINPUT, n->id, "inputs", "input for node '%s' is given twice",
                          n->id);
    rm_buffer_t *b = inputs[i].buf;
    if (!b)
      return rm_error_set(err, RM_EINPUT, n->id, "inputs", "input for node '%s' has no buffer",
                          n->id);
    /* Nodes trust buffer metadata (a size that is not whole frames would make them read
     * past the payload), so a malformed input never reaches one. */
    rm_error_t bad;
    rm_error_clear(&bad);
    if (rm_buffer_validate(b, &bad))
      return rm_error_set(err, RM_EINPUT, n->id, bad.field, "input for node '%s': %s", n->id,
                          bad.message);
    if (!(b->kind & n->type->inputs[0].kinds)) {
      char acc[64];
      kinds_text(n->type->inputs[0].kinds, acc, sizeof acc);
      return rm_error_set(err, RM_EINPUT, n->id, "inputs",
                          "input for node '%s': %s accepts %s, got %s", n->id, n->type->name, acc,
                          rm_kind_name(b->kind));
    }
    int rc = check_buffer_limits(&p->limits, b, n, 1, err);
    if (rc)
      return rc;
    n->input = b;
  }
  for (size_t i = 0; i < p->n_nodes; i++) {
    node_t *n = &p->nodes[i];
    if (!n->n_in && n->type->n_inputs && !n->input && !p->flushing &&
        !(n->type->inputs[0].flags & RM_PORT_OPTIONAL))
      return rm_error_set(err, RM_EINPUT, n->id, "inputs",
                          "node '%s' has no input: a node without incoming connections needs "
                          "one in the request's inputs",
                          n->id);
  }
  return 0;
}

/* Splits "id.port" into a node and an output port. */
static int resolve_output(rm_pipeline_t *p, const char *spec, long *node, long *port) {
  const char *dot = strchr(spec, '.');
  size_t len = dot ? (size_t)(dot - spec) : strlen(spec);
  for (size_t i = 0; i < p->n_nodes; i++) {
    if (strlen(p->nodes[i].id) != len || strncmp(p->nodes[i].id, spec, len) != 0)
      continue;
    const rm_node_type_t *t = p->nodes[i].type;
    *node = (long)i;
    *port = find_port(t->outputs, t->n_outputs, dot ? dot + 1 : "");
    return *port >= 0 ? 0 : -1;
  }
  return -1;
}

static int mark_outputs(rm_pipeline_t *p, const rm_run_opts_t *opts, rm_error_t *err) {
  if (!opts->n_output_nodes) {
    for (size_t i = 0; i < p->n_nodes; i++)
      p->nodes[i].keep = p->nodes[i].n_out_edges == 0 ? ~0u : 0;
    return 0;
  }
  for (size_t i = 0; i < opts->n_output_nodes; i++) {
    long node, port;
    if (resolve_output(p, opts->output_nodes[i], &node, &port))
      return rm_error_set(err, RM_EINPUT, NULL, "output_nodes",
                          "output_nodes[%zu]: '%.80s' names no node output port", i,
                          opts->output_nodes[i]);
    if (port >= 32) /* the result can name only the first 32 ports of a node */
      return rm_error_set(err, RM_EINPUT, NULL, "output_nodes",
                          "output_nodes[%zu]: port '%.80s' cannot be returned", i,
                          opts->output_nodes[i]);
    p->nodes[node].keep |= 1u << port;
    p->nodes[node].asked |= 1u << port;
  }
  return 0;
}

/* Releases the outputs of the nodes feeding n once their last consumer has run. */
static void release_upstream(rm_pipeline_t *p, node_t *n) {
  for (size_t j = 0; j < n->n_in; j++) {
    node_t *src = &p->nodes[p->edges[n->in_edges[j]].from];
    if (--src->consumers_left == 0 && !src->keep)
      clear_outputs(src);
  }
}

/* Invocation count: the longest incoming list; lists of one item are reused for every
 * invocation; other lengths must agree. */
static int invocation_count(rm_pipeline_t *p, node_t *n, size_t *count, rm_error_t *err) {
  if (!n->n_in) {
    *count = n->input || !n->type->n_inputs ? 1 : 0;
    return 0;
  }
  size_t maxn = 0;
  const char *longest = NULL; /* the source of the longest list */
  for (size_t j = 0; j < n->n_in; j++) {
    const edge_t *e = &p->edges[n->in_edges[j]];
    size_t len = p->nodes[e->from].outs[e->from_port].n;
    if (len > maxn || !longest) {
      maxn = len;
      longest = p->nodes[e->from].id;
    }
  }
  for (size_t j = 0; j < n->n_in; j++) {
    const edge_t *e = &p->edges[n->in_edges[j]];
    size_t len = p->nodes[e->from].outs[e->from_port].n;
    if (len != maxn && len != 1)
      return rm_error_set(err, RM_ENODE, n->id, "connections",
                          "node '%s' (%s): its inputs carry different numbers of items (%zu "
                          "from '%s', %zu from '%s')",
                          n->id, n->type->name, maxn, longest, len, p->nodes[e->from].id);
  }
  /* if one input is empty the node has nothing to combine */
  for (size_t j = 0; j < n->n_in; j++) {
    const edge_t *e = &p->edges[n->in_edges[j]];
    if (p->nodes[e->from].outs[e->from_port].n == 0)
      maxn = 0;
  }
  *count = maxn;
  return 0;
}

#define JOIN_PORTS_MAX 8

/* Whether b can be appended to a (RM_NODE_JOIN_TAIL rules). */
static int joinable(const rm_buffer_t *a, const rm_buffer_t *b) {
  if (a->kind != b->kind)
    return 0;
  switch (a->kind) {
  case RM_KIND_AUDIO:
    return a->u.audio.sample_rate == b->u.audio.sample_rate &&
           a->u.audio.channels == b->u.audio.channels && a->u.audio.format == b->u.audio.format;
  case RM_KIND_TENSOR:
    return a->u.tensor.dtype == b->u.tensor.dtype && a->u.tensor.ndim == 2 &&
           b->u.tensor.ndim == 2 && a->u.tensor.shape[1] == b->u.tensor.shape[1];
  case RM_KIND_BINARY:
    return (!a->mime_type && !b->mime_type) ||
           (a->mime_type && b->mime_type && !strcmp(a->mime_type, b->mime_type));
  default: return 0;
  }
}

/* Joins the items of port o from index `from` on into one (RM_NODE_JOIN_TAIL). Items that
 * do not agree are left as they are. */
static int join_tail(rm_node_ctx_t *ctx, size_t o, size_t from) {
  item_list_t *l = &ctx->node->outs[o];
  const rm_buffer_t *first = l->items[from];
  size_t total = 0;
  for (size_t i = from; i < l->n; i++) {
    if (!joinable(first, l->items[i]))
      return 0;
    total += l->items[i]->size;
  }
  /* An unshared first item grows in place (realloc: no copy of what it holds, none at all
   * for a large mapped block), else the items are copied into a new one. */
  if (first->refs == 1 && first->borrowed != 1 && !first->mime_type) {
    rm_buffer_t *grown = l->items[from];
    size_t at = grown->size;
    int rc = rm__buffer_grow(&grown, total);
    if (rc == RM_ENOMEM)
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    if (rc == 0) {
      for (size_t i = from + 1; i < l->n; i++) {
        if (l->items[i]->size)
          memcpy(grown->data + at, l->items[i]->data, l->items[i]->size);
        at += l->items[i]->size;
        if (grown->kind == RM_KIND_TENSOR)
          grown->u.tensor.shape[0] += l->items[i]->u.tensor.shape[0];
        rm_buffer_unref(l->items[i]);
      }
      ctx->items_out -= l->n - from - 1;
      l->items[from] = grown;
      l->n = from + 1;
      return check_buffer_limits(&ctx->p->limits, grown, ctx->node, 0, ctx->err);
    }
  }
  rm_buffer_t *joined = rm_buffer_new(first->kind, total, rm_node_account(ctx));
  if (!joined)
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  joined->u = first->u;
  if (first->kind == RM_KIND_TENSOR) {
    int64_t frames = 0;
    for (size_t i = from; i < l->n; i++)
      frames += l->items[i]->u.tensor.shape[0];
    joined->u.tensor.shape[0] = frames;
  }
  if (first->mime_type && !(joined->mime_type = rm_strdup(first->mime_type))) {
    rm_buffer_unref(joined);
    return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
  }
  size_t at = 0;
  for (size_t i = from; i < l->n; i++) {
    if (l->items[i]->size)
      memcpy(joined->data + at, l->items[i]->data, l->items[i]->size);
    at += l->items[i]->size;
    rm_buffer_unref(l->items[i]);
  }
  ctx->items_out -= l->n - from - 1;
  l->items[from] = joined;
  l->n = from + 1;
  return check_buffer_limits(&ctx->p->limits, joined, ctx->node, 0, ctx->err);
}

typedef struct run_scratch {
  rm_buffer_t **inputs;
  unsigned *ports;
} run_scratch_t;

/* Points ctx at invocation k's inputs: the request's input of a source node, else item k
 * (or the only item) of every incoming edge, each checked against its port's kinds.
 * 0, or RM_EINPUT naming the node and the port. */
static int gather_inputs(rm_pipeline_t *p, node_t *n, size_t k, run_scratch_t *s,
                         rm_node_ctx_t *ctx, rm_error_t *err) {
  const rm_node_type_t *t = n->type;
  if (!n->n_in && n->input) {
    s->inputs[0] = n->input;
    s->ports[0] = 0;
    ctx->n_inputs = 1;
  }
  for (size_t j = 0; j < n->n_in; j++) {
    const edge_t *e = &p->edges[n->in_edges[j]];
    const item_list_t *l = &p->nodes[e->from].outs[e->from_port];
    rm_buffer_t *b = l->items[l->n == 1 ? 0 : k];
    /* Validation only knows declared kinds; a pass-through fed by the request can carry
     * any, so what actually arrives is checked before the node reads it. */
    const rm_port_spec_t *port = &t->inputs[e->to_port];
    if (!(b->kind & port->kinds)) {
      char acc[64];
      kinds_text(port->kinds, acc, sizeof acc);
      return rm_error_set(err, RM_EINPUT, n->id, port->name,
                          "node '%s' (%s): input from '%s' is %s, but port '%s' accepts %s", n->id,
                          t->name, p->nodes[e->from].id, rm_kind_name(b->kind), port->name, acc);
    }
    s->inputs[j] = b;
    s->ports[j] = e->to_port;
    ctx->n_inputs = j + 1;
  }
  return 0;
}

/* Calls the type's flush() with no inputs; for a RM_NODE_JOIN_TAIL type, what it emits on
 * a port that already held items is joined to that port's last item. 0 or flush's code or
 * the join's. */
static int flush_and_join(node_t *n, rm_node_ctx_t *ctx) {
  const rm_node_type_t *t = n->type;
  ctx->n_inputs = 0;
  size_t before[JOIN_PORTS_MAX];
  int join = (t->flags & RM_NODE_JOIN_TAIL) && t->n_outputs <= JOIN_PORTS_MAX;
  for (size_t o = 0; join && o < t->n_outputs; o++)
    before[o] = n->outs[o].n;
  int rc = t->flush(n->state, ctx);
  for (size_t o = 0; !rc && join && o < t->n_outputs; o++)
    if (before[o] > 0 && n->outs[o].n > before[o])
      rc = join_tail(ctx, o, before[o] - 1);
  return rc;
}

/* Library memory the nodes hold (predictions charged with rm_budget_charge) counts in the
 * account like buffer bytes, so peak_memory_bytes includes it: synced at the start of a run
 * and after every invocation. Memory a library took and gave back within the invocation (a
 * one-shot LoudnessMeter or AudioEncode sets up, runs and frees libebur128 or libsndfile in
 * its flush) counts at its peak, beside the buffers held after the invocation. */
static void sync_external(rm_pipeline_t *p) {
  size_t now = rm__budget_external(p->budget), within = rm__budget_external_peak(p->budget);
  size_t buffers = p->account->current - p->external;
  p->account->current = buffers + now;
  p->external = now;
  if (buffers + within > p->account->peak)
    p->account->peak = buffers + within;
}

static int run_node(rm_pipeline_t *p, node_t *n, const rm_run_opts_t *opts, run_scratch_t *s,
                    rm_node_result_t *res, rm_error_t *err) {
  size_t count = 0;
  int rc = invocation_count(p, n, &count, err);
  if (rc)
    return rc;
  const rm_node_type_t *t = n->type;
  int do_flush = opts->end_of_stream && t->flush;
  size_t calls = count ? count : (do_flush ? 1 : 0);
  rm_node_ctx_t ctx = {
      .p = p, .node = n, .inputs = s->inputs, .in_ports = s->ports, .opts = opts, .err = err};
  int ended = 0;
  int timed = opts->metrics || opts->on_node;
  for (size_t k = 0; k < calls; k++) {
    if (opts->cancel && atomic_load_explicit(opts->cancel, memory_order_relaxed))
      return check_stop(opts, err, n->id);
    ctx.n_inputs = 0;
    if (k < count && (rc = gather_inputs(p, n, k, s, &ctx, err)))
      return rc;
    /* Two clock reads per invocation and nothing else: what they and the record cost is
     * calibrated once (rm_metrics_invocation_cost_ns) rather than timed by a third read,
     * which would cost as much as it measures. The first read is also the deadline's. */
    uint64_t t0 = timed || opts->deadline_ns ? rm_clock_ns() : 0;
    if ((rc = check_stop_at(opts, err, n->id, t0)))
      return rc;
    rm_budget_refusal_clear();
    rc = k < count ? t->process(n->state, &ctx) : 0;
    if (!rc && do_flush && k == calls - 1)
      rc = flush_and_join(n, &ctx);
    if (rc == RM_ENOMEM && budget_refusal(p->name, &p->label, n, err))
      rc = RM_ELIMIT;
    sync_external(p);
    if (t->end_stream && (rc || (opts->end_of_stream && k == calls - 1))) {
      t->end_stream(n->state);
      ended = 1;
    }
    if (timed) {
      uint64_t t1 = rm_clock_ns(), ns = t1 - t0;
      if (opts->node_span) {
        if (!opts->node_span[0])
          opts->node_span[0] = t0;
        opts->node_span[1] = t1;
      }
      if (opts->metrics) {
        rm_metrics_record(&p->metrics, n->metrics_slot, ns, rc == 0);
        p->metrics.overhead_ns += p->invocation_cost_ns;
      }
      if (opts->on_node)
        opts->on_node(opts->on_node_arg, t->name, ns, rc == 0);
    }
    res->invocations++;
    if (rc) {
      if (err && err->code == 0)
        rm_error_set(err, rc, n->id, NULL, "node '%s' (%s) failed: %s", n->id, t->name,
                     rm_strerror(rc));
      return rc;
    }
  }
  if (opts->end_of_stream && t->end_stream && !ended) /* nothing arrived in the last run */
    t->end_stream(n->state);
  res->items_out = ctx.items_out;
  return 0;
}

/* A kept port is returned when it is the primary one, carries items, or was asked for. */
static int returned(const node_t *n, size_t o) {
  if (o >= 32 || !(n->keep & (1u << o)))
    return 0;
  return o == 0 || n->outs[o].n > 0 || (n->asked & (1u << o));
}

/* The outputs array, their keys and item arrays are one allocation (r->outputs). */
static int collect_outputs(rm_pipeline_t *p, rm_result_t *r, rm_arena_t *arena) {
  size_t n_out = 0, n_items = 0, key_bytes = 0;
  for (size_t k = 0; k < p->n_nodes; k++) {
    node_t *n = &p->nodes[p->order[k]];
    if (!n->keep)
      continue;
    for (size_t o = 0; o < n->type->n_outputs; o++) {
      if (!returned(n, o))
        continue;
      n_out++;
      n_items += n->outs[o].n;
      key_bytes += strlen(n->id) + 1 + strlen(n->type->outputs[o].name) + 1;
    }
  }
  size_t head = n_out * sizeof *r->outputs, items = n_items * sizeof(rm_buffer_t *);
  size_t bytes = head + items + key_bytes + 1;
  uint8_t *block = arena ? rm_arena_alloc(arena, bytes) : rm_malloc(bytes);
  if (!block)
    return RM_ENOMEM;
  r->outputs = (rm_output_t *)(void *)block;
  rm_buffer_t **item_at = (rm_buffer_t **)(void *)(block + head);
  char *key_at = (char *)(block + head + items);
  for (size_t k = 0; k < p->n_nodes; k++) {
    node_t *n = &p->nodes[p->order[k]];
    if (!n->keep)
      continue;
    for (size_t o = 0; o < n->type->n_outputs; o++) {
      item_list_t *l = &n->outs[o];
      if (!returned(n, o))
        continue;
      rm_output_t *out = &r->outputs[r->n_outputs++];
      const char *port = n->type->outputs[o].name;
      size_t id_len = strlen(n->id), port_len = strlen(port);
      out->key = key_at;
      memcpy(key_at, n->id, id_len);
      key_at += id_len;
      if (o > 0) {
        *key_at++ = '.';
        memcpy(key_at, port, port_len);
        key_at += port_len;
      }
      *key_at++ = '\0';
      out->node_id = n->id;
      out->port = port;
      out->items = item_at;
      for (size_t i = 0; i < l->n; i++)
        *item_at++ = rm_buffer_ref(l->items[i]);
      out->n_items = l->n;
    }
  }
  return 0;
}

/* Bytes of the request's input buffers not already counted in p's account; a buffer given
 * to several nodes is held once. */
static size_t request_input_bytes(const rm_pipeline_t *p) {
  size_t bytes = 0;
  for (size_t i = 0; i < p->n_nodes; i++) {
    const rm_buffer_t *b = p->nodes[i].input;
    if (!b || b->account == p->account)
      continue;
    size_t j = 0;
    while (j < i && p->nodes[j].input != b)
      j++;
    if (j == i)
      bytes += b->size;
  }
  return bytes;
}

static int run(rm_pipeline_t *p, const rm_input_t *inputs, size_t n_inputs,
               const rm_run_opts_t *opts, rm_result_t *r, rm_error_t *err) {
  int rc;
  if ((rc = bind_inputs(p, inputs, n_inputs, err)) || (rc = mark_outputs(p, opts, err)))
    return rc;
  /* request inputs are held by the run: count them, against the budget too (the caller's
   * memory, so not drawn from the parents again) */
  size_t held = request_input_bytes(p);
  if (held && rm__budget_charge_local(p->budget, held)) {
    size_t limit = rm_budget_limit(p->budget);
    return rm_error_set(err, RM_ELIMIT, NULL, "max_memory_bytes",
                        "the %s's inputs hold %zu bytes, above its memory budget of %zu bytes "
                        "(%s) with %zu in use",
                        p->label.owner, held, limit, p->label.limit, rm_budget_used(p->budget));
  }
  p->account->current += held;
  rm__budget_external_peak(p->budget); /* this run's library peak starts now */
  sync_external(p);
  size_t max_in = 1;
  for (size_t i = 0; i < p->n_nodes; i++)
    if (p->nodes[i].n_in > max_in)
      max_in = p->nodes[i].n_in;
  rm_buffer_t *small_inputs[16];
  unsigned small_ports[16];
  int small = max_in <= 16;
  run_scratch_t s = {small ? small_inputs : rm_malloc(max_in * sizeof(rm_buffer_t *)),
                     small ? small_ports : rm_malloc(max_in * sizeof(unsigned))};
  if (!s.inputs || !s.ports) {
    rc = rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  } else {
    for (size_t k = 0; k < p->n_nodes; k++) {
      node_t *n = &p->nodes[p->order[k]];
      rc = run_node(p, n, opts, &s, &r->nodes[k], err);
      r->nodes[k].state = rc ? RM_NODE_FAILED : RM_NODE_OK;
      if (rc)
        break;
      release_upstream(p, n);
      if (!n->n_out_edges && !n->keep)
        clear_outputs(n);
    }
  }
  if (!small) {
    rm_free(s.inputs);
    rm_free(s.ports);
  }
  p->account->current -= held;
  if (held)
    rm__budget_discharge_local(p->budget, held);
  if (!rc && (rc = collect_outputs(p, r, opts->arena)))
    rm_error_set(err, rc, NULL, NULL, "out of memory"); /* nothing was collected */
  /* the executor's own allocations (scratch, the outputs) are refused like a node's */
  if (rc == RM_ENOMEM && budget_refusal(p->name, &p->label, NULL, err))
    rc = RM_ELIMIT;
  p->account->current -= p->external; /* library memory counts in the account during runs */
  p->external = 0;
  return rc;
}

static void end_streams(rm_pipeline_t *p) {
  for (size_t i = 0; i < p->n_nodes; i++) {
    node_t *n = &p->nodes[i];
    if (n->created && n->type->end_stream)
      n->type->end_stream(n->state);
  }
}

void rm_pipeline_end_streams(rm_pipeline_t *p) {
  rm_budget_t *outer = rm_budget_enter(p->budget);
  end_streams(p);
  rm_budget_leave(outer);
}

int rm_pipeline_run(rm_pipeline_t *p, const rm_input_t *inputs, size_t n_inputs,
                    const rm_run_opts_t *opts, rm_result_t **out, rm_error_t *err) {
  static const rm_run_opts_t defaults = {.end_of_stream = 1};
  if (!opts)
    opts = &defaults;
  uint64_t t_start = opts->metrics ? rm_clock_ns() : 0;
  if (opts->node_span)
    opts->node_span[0] = opts->node_span[1] = 0;
  size_t peak_before = p->account->peak;
  if (opts->metrics) /* this run's peak starts from what is held now */
    p->account->peak = p->account->current;
  rm_error_clear(err);
  *out = NULL;
  /* the run, its result and whatever its nodes allocate count in p's budget */
  rm_budget_t *outer = rm_budget_enter(p->budget);
  rm_budget_refusal_clear();
  /* the result and its node states are one allocation */
  size_t bytes = sizeof(rm_result_t) + p->n_nodes * sizeof(rm_node_result_t);
  rm_result_t *r = opts->arena ? rm_arena_calloc(opts->arena, 1, bytes) : rm_calloc(1, bytes);
  if (r) {
    r->nodes = (rm_node_result_t *)(void *)(r + 1);
    r->in_arena = opts->arena != NULL;
  }
  if (!r) {
    if (p->account->peak < peak_before)
      p->account->peak = peak_before;
    int code = budget_refusal(p->name, &p->label, NULL, err)
                   ? RM_ELIMIT
                   : rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_budget_leave(outer);
    return code;
  }
  r->n_nodes = p->n_nodes;
  for (size_t k = 0; k < p->n_nodes; k++)
    r->nodes[k].node_id = p->order_ids[k];
  reset_run_state(p);
  int rc = run(p, inputs, n_inputs, opts, r, err);
  reset_run_state(p); /* the result holds its own references */
  /* A one-shot run that failed or stopped may have left nodes mid-stream (a node invoked for
   * some of its items before a deadline or a later node's failure): the next run, maybe an
   * unrelated request on a cached pipeline, must start clean. */
  if (rc && opts->end_of_stream)
    end_streams(p);
  rm_budget_leave(outer);
  if (opts->metrics) {
    rm_metrics_t *m = &p->metrics;
    m->total_executions++;
    m->total_ns += rm_clock_ns() - t_start;
    /* metrics report the peak of the runs they cover, not of runs made without them */
    if (p->account->peak > m->peak_memory_bytes)
      m->peak_memory_bytes = p->account->peak;
    m->overhead_ns += p->invocation_cost_ns; /* the run's own two reads and summary */
  }
  if (p->account->peak < peak_before) /* the account keeps its all-time peak */
    p->account->peak = peak_before;
  *out = r;
  return rc;
}

int rm_pipeline_flush(rm_pipeline_t *p, const rm_run_opts_t *opts, rm_result_t **out,
                      rm_error_t *err) {
  rm_run_opts_t o = opts ? *opts : (rm_run_opts_t){0};
  o.end_of_stream = 1;
  p->flushing = 1;
  int rc = rm_pipeline_run(p, NULL, 0, &o, out, err);
  p->flushing = 0;
  return rc;
}

int rm_pipeline_check_inputs(rm_pipeline_t *p, const rm_input_t *inputs, size_t n_inputs,
                             const rm_run_opts_t *opts, rm_error_t *err) {
  static const rm_run_opts_t defaults = {.end_of_stream = 1};
  reset_run_state(p);
  int rc = bind_inputs(p, inputs, n_inputs, err);
  if (!rc)
    rc = mark_outputs(p, opts ? opts : &defaults, err);
  reset_run_state(p);
  return rc;
}

const char *rm_pipeline_schedule_id(const rm_pipeline_t *p, size_t k) {
  return k < p->n_nodes ? p->order_ids[k] : NULL;
}

void rm_result_move_account(rm_result_t *r, rm_pipeline_t *p, rm_mem_account_t *to) {
  rm_mem_account_t *from = rm_pipeline_account(p);
  for (size_t i = 0; r && i < r->n_outputs; i++)
    for (size_t j = 0; j < r->outputs[i].n_items; j++)
      rm_buffer_move_account(r->outputs[i].items[j], from, to);
}

void rm_result_free(rm_result_t *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->n_outputs; i++)
    for (size_t j = 0; j < r->outputs[i].n_items; j++)
      rm_buffer_unref(r->outputs[i].items[j]);
  if (r->in_arena) /* the arena's owner frees the storage */
    return;
  rm_free(r->outputs); /* keys and item arrays live in the same block */
  rm_free(r);
}
