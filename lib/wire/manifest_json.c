/* manifest_json.c - the JSON manifest as the wire PipelineManifest (no engine). */
#include <string.h>

#include "rm/alloc.h"
#include "rm/manifest_json.h"
#include "rm/wire_proto.h"

typedef Remotemedia__V1__PipelineManifest manifest_t;
typedef Remotemedia__V1__NodeManifest node_t;
typedef Remotemedia__V1__Connection conn_t;

/* The message being built, with the capacities of its arrays. */
typedef struct build {
  manifest_t *m;
  size_t nodes_cap, conns_cap;
} build_t;

static int oom(rm_error_t *err) {
  return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
}

/* Makes room for one more pointer in *arr (n used, *cap allocated). */
static int grow(void ***arr, size_t n, size_t *cap) {
  if (n < *cap)
    return 0;
  size_t ncap = *cap ? *cap * 2 : 4;
  void **p = rm_realloc(*arr, ncap * sizeof *p);
  if (!p)
    return RM_ENOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

/* A string field that is ours to free: the __INIT default ("") is static. */
static void free_str(char *s) {
  if (s && s != protobuf_c_empty_string)
    rm_free(s);
}

static int sink_name(void *ctx, const char *name, rm_error_t *err) {
  build_t *b = ctx;
  char *copy = rm_strdup(name);
  if (!copy)
    return oom(err);
  free_str(b->m->name);
  b->m->name = copy;
  return 0;
}

/* params as the text the message carries: an object as compact JSON, text as it is. */
static char *params_text(const json_t *params, const char *text) {
  if (!params)
    return rm_strdup(text ? text : "");
  char *dumped = json_dumps(params, JSON_COMPACT); /* jansson's allocator: copy to ours */
  if (!dumped)
    return NULL;
  char *copy = rm_strdup(dumped);
  json_malloc_t jmalloc;
  json_free_t jfree;
  json_get_alloc_funcs(&jmalloc, &jfree);
  jfree(dumped);
  return copy;
}

static int sink_node(void *ctx, const char *id, const char *type, const json_t *params,
                     const char *text, rm_error_t *err) {
  build_t *b = ctx;
  manifest_t *m = b->m;
  if (grow((void ***)&m->nodes, m->n_nodes, &b->nodes_cap))
    return oom(err);
  node_t *n = rm_malloc(sizeof *n);
  if (!n)
    return oom(err);
  remotemedia__v1__node_manifest__init(n);
  n->id = rm_strdup(id);
  n->node_type = rm_strdup(type);
  n->params = params_text(params, text);
  m->nodes[m->n_nodes++] = n; /* owned by m from here, freed with it on failure */
  return n->id && n->node_type && n->params ? 0 : oom(err);
}

static int sink_connection(void *ctx, const char *from, const char *from_port, const char *to,
                           const char *to_port, rm_error_t *err) {
  build_t *b = ctx;
  manifest_t *m = b->m;
  if (grow((void ***)&m->connections, m->n_connections, &b->conns_cap))
    return oom(err);
  conn_t *c = rm_malloc(sizeof *c);
  if (!c)
    return oom(err);
  remotemedia__v1__connection__init(c);
  c->from = rm_strdup(from);
  c->from_port = rm_strdup(from_port);
  c->to = rm_strdup(to);
  c->to_port = rm_strdup(to_port);
  m->connections[m->n_connections++] = c;
  return c->from && c->from_port && c->to && c->to_port ? 0 : oom(err);
}

static const rm_manifest_json_sink_t proto_sink = {sink_name, sink_node, sink_connection};

void rm_wire_manifest_proto_free(manifest_t *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->n_nodes; i++) {
    node_t *n = m->nodes[i];
    free_str(n->id);
    free_str(n->node_type);
    free_str(n->params);
    rm_free(n);
  }
  for (size_t i = 0; i < m->n_connections; i++) {
    conn_t *c = m->connections[i];
    free_str(c->from);
    free_str(c->from_port);
    free_str(c->to);
    free_str(c->to_port);
    rm_free(c);
  }
  rm_free(m->nodes);
  rm_free(m->connections);
  free_str(m->name);
  rm_free(m);
}

static int from_json(const json_t *root, manifest_t **out, rm_error_t *err) {
  build_t b = {rm_malloc(sizeof *b.m), 0, 0};
  if (!b.m)
    return oom(err);
  remotemedia__v1__pipeline_manifest__init(b.m);
  int rc = rm_manifest_json_read(root, &proto_sink, &b, err);
  if (rc) {
    rm_wire_manifest_proto_free(b.m);
    return rc;
  }
  *out = b.m;
  return 0;
}

int rm_wire_manifest_proto_from_text(const char *text, size_t len, manifest_t **out,
                                     rm_error_t *err) {
  json_error_t je = {0};
  unsigned long failures = rm_alloc_failures();
  json_t *root = rm_json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return rm_manifest_json_parse_error(&je, failures, err);
  int rc = from_json(root, out, err);
  json_decref(root);
  return rc;
}
