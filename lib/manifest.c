/* manifest.c - loading pipeline descriptions from JSON and from the wire message. */
#include "rm/manifest.h"

#include <string.h>

#include "remotemedia/v1/manifest.pb-c.h"
#include "rm/alloc.h"

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

/* jansson's parser reports a failed allocation as a syntax error (or with no code at all),
 * so a parse that failed while an allocation failed is taken for what it is. */
static int parse_ran_out_of_memory(const json_error_t *je, unsigned long failures_before) {
  /* the count first: when the very first allocation fails jansson leaves *je unwritten */
  return rm_alloc_failures() != failures_before || json_error_code(je) == json_error_out_of_memory;
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
  json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!v) {
    if (parse_ran_out_of_memory(&je, failures))
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

/* Reads an optional string member; wrong type is an error naming `where`. */
static int get_str(const json_t *obj, const char *key, int required, const char **out,
                   const char *where, rm_error_t *err) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    if (required)
      return rm_error_set(err, RM_EMANIFEST, NULL, key, "%s: missing '%s'", where, key);
    *out = "";
    return 0;
  }
  if (!json_is_string(v))
    return rm_error_set(err, RM_EMANIFEST, NULL, key, "%s: '%s' must be a string", where, key);
  *out = json_string_value(v);
  return 0;
}

static int check_keys(const json_t *obj, const char *const *allowed, const char *where,
                      rm_error_t *err) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
      ok |= strcmp(*a, key) == 0;
    if (!ok)
      return rm_error_set(err, RM_EMANIFEST, NULL, key, "%s: unknown key '%s'", where, key);
  }
  return 0;
}

static int load_json(const json_t *root, rm_manifest_t *m, rm_error_t *err) {
  static const char *const top_keys[] = {"name", "nodes", "connections", NULL};
  static const char *const node_keys[] = {"id", "node_type", "params", NULL};
  static const char *const conn_keys[] = {"from", "to", "from_port", "to_port", NULL};
  int rc;
  if (!json_is_object(root))
    return rm_error_set(err, RM_EMANIFEST, NULL, NULL, "manifest must be a JSON object");
  if ((rc = check_keys(root, top_keys, "manifest", err)))
    return rc;
  const char *name = "";
  if ((rc = get_str(root, "name", 0, &name, "manifest", err)))
    return rc;
  if (rm_manifest_set_name(m, name))
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");

  json_t *nodes = json_object_get(root, "nodes");
  if (nodes && !json_is_array(nodes))
    return rm_error_set(err, RM_EMANIFEST, NULL, "nodes", "manifest: 'nodes' must be an array");
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    char where[48];
    snprintf(where, sizeof where, "nodes[%zu]", i);
    if (!json_is_object(n))
      return rm_error_set(err, RM_EMANIFEST, NULL, "nodes", "%s must be an object", where);
    if ((rc = check_keys(n, node_keys, where, err)))
      return rc;
    const char *id, *type;
    if ((rc = get_str(n, "id", 1, &id, where, err)) ||
        (rc = get_str(n, "node_type", 1, &type, where, err)))
      return rc;
    json_t *p = json_object_get(n, "params"), *params = NULL;
    if (json_is_string(p)) {
      if ((rc = parse_params_text(json_string_value(p), id, &params, err)))
        return rc;
    } else if (p && !json_is_null(p) && !json_is_object(p)) {
      return rm_error_set(err, RM_EPARAM, id, "params", "node '%s': params must be a JSON object",
                          id);
    } else if (json_is_object(p)) {
      params = json_incref(p);
    }
    rc = rm_manifest_add_node(m, id, type, params, err);
    json_decref(params);
    if (rc)
      return rc;
  }

  json_t *conns = json_object_get(root, "connections");
  if (conns && !json_is_array(conns))
    return rm_error_set(err, RM_EMANIFEST, NULL, "connections",
                        "manifest: 'connections' must be an array");
  json_t *c;
  json_array_foreach(conns, i, c) {
    char where[48];
    snprintf(where, sizeof where, "connections[%zu]", i);
    if (!json_is_object(c))
      return rm_error_set(err, RM_EMANIFEST, NULL, "connections", "%s must be an object", where);
    if ((rc = check_keys(c, conn_keys, where, err)))
      return rc;
    const char *from = "", *to = "", *fp = "", *tp = "";
    if ((rc = get_str(c, "from", 1, &from, where, err)) ||
        (rc = get_str(c, "to", 1, &to, where, err)) ||
        (rc = get_str(c, "from_port", 0, &fp, where, err)) ||
        (rc = get_str(c, "to_port", 0, &tp, where, err)))
      return rc;
    if (rm_manifest_add_connection(m, from, fp, to, tp))
      return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  return 0;
}

int rm_manifest_from_json(const json_t *root, rm_manifest_t **out, rm_error_t *err) {
  rm_manifest_t *m = rm_manifest_new("");
  if (!m)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  int rc = load_json(root, m, err);
  if (rc) {
    rm_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

static int from_loaded(json_t *root, const json_error_t *je, unsigned long failures,
                       rm_manifest_t **out, rm_error_t *err) {
  if (!root) {
    if (parse_ran_out_of_memory(je, failures))
      return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    if (json_error_code(je) == json_error_cannot_open_file)
      return rm_error_set(err, RM_EIO, NULL, NULL, "%s", je->text);
    return rm_error_set(err, RM_EMANIFEST, NULL, NULL,
                        "manifest is not valid JSON: %s (line %d, column %d)", je->text, je->line,
                        je->column);
  }
  int rc = rm_manifest_from_json(root, out, err);
  json_decref(root);
  return rc;
}

int rm_manifest_from_json_text(const char *text, size_t len, rm_manifest_t **out, rm_error_t *err) {
  json_error_t je = {0};
  unsigned long failures = rm_alloc_failures();
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  return from_loaded(root, &je, failures, out, err);
}

int rm_manifest_from_file(const char *path, rm_manifest_t **out, rm_error_t *err) {
  json_error_t je = {0};
  unsigned long failures = rm_alloc_failures();
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  return from_loaded(root, &je, failures, out, err);
}

int rm_manifest_from_proto(const Remotemedia__V1__PipelineManifest *msg, rm_manifest_t **out,
                           rm_error_t *err) {
  if (!msg)
    return rm_error_set(err, RM_EMANIFEST, NULL, "manifest", "request has no manifest");
  rm_manifest_t *m = rm_manifest_new(msg->name);
  if (!m)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  int rc = 0;
  for (size_t i = 0; i < msg->n_nodes && !rc; i++) {
    const Remotemedia__V1__NodeManifest *n = msg->nodes[i];
    json_t *params = NULL;
    rc = parse_params_text(n->params, n->id, &params, err);
    if (!rc)
      rc = rm_manifest_add_node(m, n->id, n->node_type, params, err);
    json_decref(params);
  }
  for (size_t i = 0; i < msg->n_connections && !rc; i++) {
    const Remotemedia__V1__Connection *c = msg->connections[i];
    if (rm_manifest_add_connection(m, c->from, c->from_port, c->to, c->to_port))
      rc = rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  if (rc) {
    rm_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
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
