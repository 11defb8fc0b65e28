/* manifest.c - the in-memory pipeline description, built by hand or from its JSON form. */
#include "rm/manifest.h"

#include <string.h>

#include "rm/alloc.h"
#include "rm/manifest_json.h"

/* Strings and arrays of a manifest live in its arena, whose first block shares the
 * manifest's own allocation: a small manifest is one malloc and one free. */
#define MANIFEST_INLINE 1024

rm_manifest_t *rm_manifest_new(const char *name) {
  rm_manifest_t *m = rm_malloc(sizeof *m + MANIFEST_INLINE);
  if (!m)
    return NULL;
  memset(m, 0, sizeof *m);
  rm_arena_init(&m->arena, m + 1, MANIFEST_INLINE);
  m->name = rm_arena_strdup(&m->arena, name ? name : "");
  if (!m->name) {
    rm_arena_destroy(&m->arena);
    rm_free(m);
    return NULL;
  }
  return m;
}

void rm_manifest_free(rm_manifest_t *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->n_nodes; i++)
    json_decref(m->nodes[i].params);
  rm_arena_destroy(&m->arena);
  rm_free(m);
}

int rm_manifest_set_name(rm_manifest_t *m, const char *name) {
  char *copy = rm_arena_strdup(&m->arena, name ? name : "");
  if (!copy)
    return RM_ENOMEM;
  m->name = copy;
  return 0;
}

/* Makes room for one more element; capacity doubles (the old array stays in the arena
 * until the manifest is freed, which costs less than a realloc per growth). */
static int grow(rm_arena_t *a, void **arr, size_t n, size_t *cap, size_t elem) {
  if (n < *cap)
    return 0;
  size_t ncap = *cap ? *cap * 2 : 4;
  void *p = rm_arena_alloc(a, ncap * elem);
  if (!p)
    return RM_ENOMEM;
  if (n)
    memcpy(p, *arr, n * elem);
  *arr = p;
  *cap = ncap;
  return 0;
}

int rm_manifest_add_node(rm_manifest_t *m, const char *id, const char *type, const json_t *params,
                         rm_error_t *err) {
  if (params && !json_is_object(params))
    return rm_error_set(err, RM_EPARAM, id, "params", "node '%s': params must be a JSON object",
                        id);
  if (grow(&m->arena, (void **)&m->nodes, m->n_nodes, &m->nodes_cap, sizeof *m->nodes))
    return rm_error_set(err, RM_ENOMEM, id, NULL, "out of memory");
  rm_node_spec_t *n = &m->nodes[m->n_nodes];
  n->id = rm_arena_strdup(&m->arena, id ? id : "");
  n->type = rm_arena_strdup(&m->arena, type ? type : "");
  n->params = params ? json_incref((json_t *)params) : json_object();
  if (!n->id || !n->type || !n->params) {
    json_decref(n->params);
    return rm_error_set(err, RM_ENOMEM, id, NULL, "out of memory");
  }
  m->n_nodes++;
  return 0;
}

int rm_manifest_add_connection(rm_manifest_t *m, const char *from, const char *from_port,
                               const char *to, const char *to_port) {
  if (grow(&m->arena, (void **)&m->conns, m->n_conns, &m->conns_cap, sizeof *m->conns))
    return RM_ENOMEM;
  rm_conn_spec_t *c = &m->conns[m->n_conns];
  c->from = rm_arena_strdup(&m->arena, from ? from : "");
  c->from_port = rm_arena_strdup(&m->arena, from_port ? from_port : "");
  c->to = rm_arena_strdup(&m->arena, to ? to : "");
  c->to_port = rm_arena_strdup(&m->arena, to_port ? to_port : "");
  if (!c->from || !c->from_port || !c->to || !c->to_port)
    return RM_ENOMEM;
  m->n_conns++;
  return 0;
}

/* Parses params given as JSON text; "" means {}. */
static int parse_params_text(const char *text, const char *node_id, json_t **out, rm_error_t *err) {
  if (!text || !*text) {
    *out = json_object();
    return *out ? 0 : rm_error_set(err, RM_ENOMEM, node_id, NULL, "out of memory");
  }
  json_error_t je = {0};
  unsigned long failures = rm_alloc_failures();
  /* any JSON value parses, so "5" is reported as not an object rather than as bad JSON */
  json_t *v = rm_json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!v) {
    /* jansson reports a failed allocation as a syntax error: the failure count tells */
    if (rm_alloc_failures() != failures || json_error_code(&je) == json_error_out_of_memory)
      return rm_error_set(err, RM_ENOMEM, node_id, NULL, "out of memory");
    return rm_error_set(err, RM_EPARAM, node_id, "params",
                        "node '%s': params are not valid JSON: %s (line %d, column %d)", node_id,
                        je.text, je.line, je.column);
  }
  if (!json_is_object(v)) {
    json_decref(v);
    return rm_error_set(err, RM_EPARAM, node_id, "params",
                        "node '%s': params must be a JSON object", node_id);
  }
  *out = v;
  return 0;
}

int rm_manifest_add_node_text(rm_manifest_t *m, const char *id, const char *type,
                              const char *params_text, rm_error_t *err) {
  json_t *params = NULL;
  int rc = parse_params_text(params_text, id, &params, err);
  if (!rc)
    rc = rm_manifest_add_node(m, id, type, params, err);
  json_decref(params);
  return rc;
}

/* ---- the JSON form, read by rm_manifest_json_read ---- */

static int sink_name(void *ctx, const char *name, rm_error_t *err) {
  if (rm_manifest_set_name(ctx, name))
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  return 0;
}

static int sink_node(void *ctx, const char *id, const char *type, const json_t *params,
                     const char *params_text, rm_error_t *err) {
  if (params_text)
    return rm_manifest_add_node_text(ctx, id, type, params_text, err);
  return rm_manifest_add_node(ctx, id, type, params, err);
}

static int sink_connection(void *ctx, const char *from, const char *from_port, const char *to,
                           const char *to_port, rm_error_t *err) {
  if (rm_manifest_add_connection(ctx, from, from_port, to, to_port))
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  return 0;
}

static const rm_manifest_json_sink_t engine_sink = {sink_name, sink_node, sink_connection};

int rm_manifest_from_json(const json_t *root, rm_manifest_t **out, rm_error_t *err) {
  rm_manifest_t *m = rm_manifest_new("");
  if (!m)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  int rc = rm_manifest_json_read(root, &engine_sink, m, err);
  if (rc) {
    rm_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

static int from_loaded(json_t *root, const json_error_t *je, unsigned long failures,
                       rm_manifest_t **out, rm_error_t *err) {
  if (!root)
    return rm_manifest_json_parse_error(je, failures, err);
  int rc = rm_manifest_from_json(root, out, err);
  json_decref(root);
  return rc;
}

int rm_manifest_from_json_text(const char *text, size_t len, rm_manifest_t **out, rm_error_t *err) {
  json_error_t je = {0};
  unsigned long failures = rm_alloc_failures();
  json_t *root = rm_json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  return from_loaded(root, &je, failures, out, err);
}

int rm_manifest_from_file(const char *path, rm_manifest_t **out, rm_error_t *err) {
  json_error_t je = {0};
  unsigned long failures = rm_alloc_failures();
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  return from_loaded(root, &je, failures, out, err);
}

json_t *rm_manifest_to_json(const rm_manifest_t *m) {
  json_t *nodes = json_array(), *conns = json_array();
  json_t *root =
      json_pack("{s:s, s:o, s:o}", "name", m->name, "nodes", nodes, "connections", conns);
  if (!root)
    return NULL;
  for (size_t i = 0; i < m->n_nodes; i++) {
    const rm_node_spec_t *n = &m->nodes[i];
    if (json_array_append_new(nodes, json_pack("{s:s, s:s, s:O}", "id", n->id, "node_type", n->type,
                                               "params", n->params))) {
      json_decref(root);
      return NULL;
    }
  }
  for (size_t i = 0; i < m->n_conns; i++) {
    const rm_conn_spec_t *c = &m->conns[i];
    json_t *o = json_pack("{s:s, s:s}", "from", c->from, "to", c->to);
    if (o && *c->from_port && json_object_set_new(o, "from_port", json_string(c->from_port)))
      json_decref(o), o = NULL;
    if (o && *c->to_port && json_object_set_new(o, "to_port", json_string(c->to_port)))
      json_decref(o), o = NULL;
    if (json_array_append_new(conns, o)) {
      json_decref(root);
      return NULL;
    }
  }
  return root;
}
