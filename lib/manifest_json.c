/* manifest_json.c - reads the JSON manifest form once, for every builder. */
#include "rm/manifest_json.h"

#include <stdio.h>
#include <string.h>

#include "rm/alloc.h"

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

static int read_node(const json_t *n, size_t i, const rm_manifest_json_sink_t *sink, void *ctx,
                     rm_error_t *err) {
  static const char *const node_keys[] = {"id", "node_type", "params", NULL};
  char where[48];
  snprintf(where, sizeof where, "nodes[%zu]", i);
  if (!json_is_object(n))
    return rm_error_set(err, RM_EMANIFEST, NULL, "nodes", "%s must be an object", where);
  int rc;
  if ((rc = check_keys(n, node_keys, where, err)))
    return rc;
  const char *id = NULL, *type = NULL;
  if ((rc = get_str(n, "id", 1, &id, where, err)) ||
      (rc = get_str(n, "node_type", 1, &type, where, err)))
    return rc;
  json_t *p = json_object_get(n, "params");
  if (p && !json_is_null(p) && !json_is_object(p) && !json_is_string(p))
    return rm_error_set(err, RM_EPARAM, id, "params", "node '%s': params must be a JSON object",
                        id);
  return sink->node(ctx, id, type, json_is_object(p) ? p : NULL,
                    json_is_string(p) ? json_string_value(p) : NULL, err);
}

static int read_connection(const json_t *c, size_t i, const rm_manifest_json_sink_t *sink,
                           void *ctx, rm_error_t *err) {
  static const char *const conn_keys[] = {"from", "to", "from_port", "to_port", NULL};
  char where[48];
  snprintf(where, sizeof where, "connections[%zu]", i);
  if (!json_is_object(c))
    return rm_error_set(err, RM_EMANIFEST, NULL, "connections", "%s must be an object", where);
  int rc;
  if ((rc = check_keys(c, conn_keys, where, err)))
    return rc;
  const char *from = "", *to = "", *fp = "", *tp = "";
  if ((rc = get_str(c, "from", 1, &from, where, err)) ||
      (rc = get_str(c, "to", 1, &to, where, err)) ||
      (rc = get_str(c, "from_port", 0, &fp, where, err)) ||
      (rc = get_str(c, "to_port", 0, &tp, where, err)))
    return rc;
  return sink->connection(ctx, from, fp, to, tp, err);
}

int rm_manifest_json_read(const json_t *root, const rm_manifest_json_sink_t *sink, void *ctx,
                          rm_error_t *err) {
  static const char *const top_keys[] = {"name", "nodes", "connections", NULL};
  int rc;
  if (!json_is_object(root))
    return rm_error_set(err, RM_EMANIFEST, NULL, NULL, "manifest must be a JSON object");
  if ((rc = check_keys(root, top_keys, "manifest", err)))
    return rc;
  const char *name = "";
  if ((rc = get_str(root, "name", 0, &name, "manifest", err)) || (rc = sink->name(ctx, name, err)))
    return rc;
  json_t *nodes = json_object_get(root, "nodes");
  if (nodes && !json_is_array(nodes))
    return rm_error_set(err, RM_EMANIFEST, NULL, "nodes", "manifest: 'nodes' must be an array");
  size_t i;
  json_t *v;
  json_array_foreach(nodes, i, v) {
    if ((rc = read_node(v, i, sink, ctx, err)))
      return rc;
  }
  json_t *conns = json_object_get(root, "connections");
  if (conns && !json_is_array(conns))
    return rm_error_set(err, RM_EMANIFEST, NULL, "connections",
                        "manifest: 'connections' must be an array");
  json_array_foreach(conns, i, v) {
    if ((rc = read_connection(v, i, sink, ctx, err)))
      return rc;
  }
  return 0;
}

int rm_manifest_json_parse_error(const json_error_t *je, unsigned long failures_before,
                                 rm_error_t *err) {
  /* jansson reports a failed allocation as a syntax error (or with no code at all when the
   * very first one fails): the allocator's failure count tells */
  if (rm_alloc_failures() != failures_before || json_error_code(je) == json_error_out_of_memory)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  if (json_error_code(je) == json_error_cannot_open_file)
    return rm_error_set(err, RM_EIO, NULL, NULL, "%s", je->text);
  return rm_error_set(err, RM_EMANIFEST, NULL, NULL,
                      "manifest is not valid JSON: %s (line %d, column %d)", je->text, je->line,
                      je->column);
}
