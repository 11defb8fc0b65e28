/* rmclient_manifest.c - the JSON form of a pipeline manifest turned into the wire
 * PipelineManifest. Shape only (keys, types); the server checks the graph and params. */
#include <stdlib.h>
#include <string.h>

#include "rmclient_int.h"

typedef Remotemedia__V1__PipelineManifest manifest_t;
typedef Remotemedia__V1__NodeManifest node_t;
typedef Remotemedia__V1__Connection conn_t;

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

void rm__client_manifest_free(manifest_t *m) {
  if (!m)
    return;
  for (size_t i = 0; m->nodes && i < m->n_nodes; i++) {
    node_t *n = m->nodes[i];
    free(n->id);
    free(n->node_type);
    free(n->params);
    free(n);
  }
  for (size_t i = 0; m->connections && i < m->n_connections; i++) {
    conn_t *c = m->connections[i];
    free(c->from);
    free(c->to);
    free(c->from_port);
    free(c->to_port);
    free(c);
  }
  free(m->nodes);
  free(m->connections);
  free(m->name);
  free(m);
}

/* Rejects keys outside `allowed` (NULL-terminated). */
static int check_keys(json_t *obj, const char *const *allowed, const char *where,
                      rm_client_error_t *err) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    const char *const *a = allowed;
    while (*a && strcmp(*a, key))
      a++;
    if (!*a)
      return rm__client_fail(err, RM_CLIENT_EMANIFEST, "%s: unknown key '%s'", where, key);
  }
  return 0;
}

/* A copy of the string member `key` ("" when absent and optional) in *out. */
static int take_str(json_t *obj, const char *key, int required, char **out, const char *where,
                    rm_client_error_t *err) {
  json_t *v = json_object_get(obj, key);
  if (!v && required)
    return rm__client_fail(err, RM_CLIENT_EMANIFEST, "%s: missing '%s'", where, key);
  if (v && !json_is_string(v))
    return rm__client_fail(err, RM_CLIENT_EMANIFEST, "%s: '%s' must be a string", where, key);
  if (!(*out = dup_str(v ? json_string_value(v) : "")))
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  return 0;
}

/* params: an object (sent as compact JSON text), a string (sent as is), null or absent
 * (sent as "", meaning {}). */
static int take_params(json_t *node, const char *id, char **out, rm_client_error_t *err) {
  json_t *p = json_object_get(node, "params");
  if (json_is_object(p)) {
    char *text = json_dumps(p, JSON_COMPACT); /* jansson's allocator: copy to ours */
    if (!text)
      return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
    *out = dup_str(text);
    json_malloc_t jmalloc;
    json_free_t jfree;
    json_get_alloc_funcs(&jmalloc, &jfree);
    jfree(text);
  } else if (json_is_string(p)) {
    *out = dup_str(json_string_value(p));
  } else if (!p || json_is_null(p)) {
    *out = dup_str("");
  } else {
    return rm__client_fail(err, RM_CLIENT_EMANIFEST, "node '%s': params must be a JSON object", id);
  }
  return *out ? 0 : rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
}

static int load_node(json_t *n, size_t i, manifest_t *m, rm_client_error_t *err) {
  static const char *const keys[] = {"id", "node_type", "params", NULL};
  char where[48];
  snprintf(where, sizeof where, "nodes[%zu]", i);
  if (!json_is_object(n))
    return rm__client_fail(err, RM_CLIENT_EMANIFEST, "%s must be an object", where);
  int rc = check_keys(n, keys, where, err);
  if (rc)
    return rc;
  node_t *node = malloc(sizeof *node);
  if (!node)
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  remotemedia__v1__node_manifest__init(node);
  node->id = node->node_type = node->params = NULL;
  m->nodes[m->n_nodes++] = node; /* owned by m from here, freed with it on failure */
  if ((rc = take_str(n, "id", 1, &node->id, where, err)) ||
      (rc = take_str(n, "node_type", 1, &node->node_type, where, err)) ||
      (rc = take_params(n, node->id, &node->params, err)))
    return rc;
  return 0;
}

static int load_conn(json_t *c, size_t i, manifest_t *m, rm_client_error_t *err) {
  static const char *const keys[] = {"from", "to", "from_port", "to_port", NULL};
  char where[48];
  snprintf(where, sizeof where, "connections[%zu]", i);
  if (!json_is_object(c))
    return rm__client_fail(err, RM_CLIENT_EMANIFEST, "%s must be an object", where);
  int rc = check_keys(c, keys, where, err);
  if (rc)
    return rc;
  conn_t *conn = malloc(sizeof *conn);
  if (!conn)
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  remotemedia__v1__connection__init(conn);
  conn->from = conn->to = conn->from_port = conn->to_port = NULL;
  m->connections[m->n_connections++] = conn;
  if ((rc = take_str(c, "from", 1, &conn->from, where, err)) ||
      (rc = take_str(c, "to", 1, &conn->to, where, err)) ||
      (rc = take_str(c, "from_port", 0, &conn->from_port, where, err)) ||
      (rc = take_str(c, "to_port", 0, &conn->to_port, where, err)))
    return rc;
  return 0;
}

/* An array member (NULL when absent) or an error when it is something else. */
static int get_array(json_t *root, const char *key, json_t **out, rm_client_error_t *err) {
  *out = json_object_get(root, key);
  if (*out && !json_is_array(*out))
    return rm__client_fail(err, RM_CLIENT_EMANIFEST, "manifest: '%s' must be an array", key);
  return 0;
}

static int load(json_t *root, manifest_t *m, rm_client_error_t *err) {
  static const char *const keys[] = {"name", "nodes", "connections", NULL};
  if (!json_is_object(root))
    return rm__client_fail(err, RM_CLIENT_EMANIFEST, "manifest must be a JSON object");
  json_t *nodes, *conns;
  int rc;
  if ((rc = check_keys(root, keys, "manifest", err)) ||
      (rc = take_str(root, "name", 0, &m->name, "manifest", err)) ||
      (rc = get_array(root, "nodes", &nodes, err)) ||
      (rc = get_array(root, "connections", &conns, err)))
    return rc;
  size_t nn = json_array_size(nodes), nc = json_array_size(conns);
  m->nodes = calloc(nn ? nn : 1, sizeof *m->nodes);
  m->connections = calloc(nc ? nc : 1, sizeof *m->connections);
  if (!m->nodes || !m->connections)
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  for (size_t i = 0; i < nn; i++)
    if ((rc = load_node(json_array_get(nodes, i), i, m, err)))
      return rc;
  for (size_t i = 0; i < nc; i++)
    if ((rc = load_conn(json_array_get(conns, i), i, m, err)))
      return rc;
  return 0;
}

int rm__client_manifest_from_json(const char *text, manifest_t **out, rm_client_error_t *err) {
  json_error_t je;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    if (json_error_code(&je) == json_error_out_of_memory)
      return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
    return rm__client_fail(err, RM_CLIENT_EMANIFEST,
                           "manifest is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                           je.column);
  }
  manifest_t *m = calloc(1, sizeof *m);
  if (!m) {
    json_decref(root);
    return rm__client_fail(err, RM_CLIENT_ENOMEM, "out of memory");
  }
  remotemedia__v1__pipeline_manifest__init(m);
  m->name = NULL;
  int rc = load(root, m, err);
  json_decref(root);
  if (rc) {
    rm__client_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
}
