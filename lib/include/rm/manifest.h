/* manifest.h - the in-memory model of a pipeline description, loaded from JSON (the wire
 * message: rm_wire_manifest_from_proto in rm/wire.h). Loading checks shape (types of fields, params
 * parse as a JSON object); graph rules (ids, edges, cycles, kinds) are checked by rm_pipeline_new.
 */
#ifndef RM_MANIFEST_H
#define RM_MANIFEST_H

#include <jansson.h>
#include <stddef.h>

#include "rm/arena.h"
#include "rm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rm_node_spec {
  char *id;
  char *type;
  json_t *params; /* an object, never NULL */
} rm_node_spec_t;

typedef struct rm_conn_spec {
  char *from;
  char *from_port; /* "" = primary port */
  char *to;
  char *to_port; /* "" = primary port */
} rm_conn_spec_t;

/* Read the fields; change them only through the functions below (the strings and arrays
 * live in the manifest's arena). */
typedef struct rm_manifest {
  char *name;
  rm_node_spec_t *nodes;
  size_t n_nodes;
  rm_conn_spec_t *conns;
  size_t n_conns;
  /* private */
  size_t nodes_cap, conns_cap;
  rm_arena_t arena;
} rm_manifest_t;

/* An empty manifest named `name` (NULL = ""). NULL on OOM. */
rm_manifest_t *rm_manifest_new(const char *name);
/* Frees m and everything it holds. NULL is a no-op. */
void rm_manifest_free(rm_manifest_t *m);
/* Renames m. 0 or RM_ENOMEM (the old name is kept). */
int rm_manifest_set_name(rm_manifest_t *m, const char *name);

/* Appends a node; params may be NULL ({}), and is referenced (not stolen). RM_EPARAM if
 * params is not an object, RM_ENOMEM. */
int rm_manifest_add_node(rm_manifest_t *m, const char *id, const char *type, const json_t *params,
                         rm_error_t *err);
/* Appends a node whose params are JSON text (NULL or "" = {}), parsed here: RM_EPARAM
 * naming the node and "params" when it is not a JSON object, RM_ENOMEM. */
int rm_manifest_add_node_text(rm_manifest_t *m, const char *id, const char *type,
                              const char *params_text, rm_error_t *err);
/* Appends an edge; ports may be NULL. 0 or RM_ENOMEM. */
int rm_manifest_add_connection(rm_manifest_t *m, const char *from, const char *from_port,
                               const char *to, const char *to_port);

/* Parses the JSON form:
 *   {"name": "...", "nodes": [{"id", "node_type", "params": {...} | "<json text>"}],
 *    "connections": [{"from", "to", "from_port"?, "to_port"?}]}
 * (read by rm_manifest_json_read). Unknown keys are errors. Returns 0 and a new manifest in *out,
 * or RM_EMANIFEST / RM_EPARAM / RM_ENOMEM with err filled. */
int rm_manifest_from_json(const json_t *root, rm_manifest_t **out, rm_error_t *err);
/* The same from text (not valid JSON: RM_EMANIFEST), and from a file (RM_EIO when it
 * cannot be read). */
int rm_manifest_from_json_text(const char *text, size_t len, rm_manifest_t **out, rm_error_t *err);
int rm_manifest_from_file(const char *path, rm_manifest_t **out, rm_error_t *err);

/* The JSON form of m (new reference), NULL on OOM. */
json_t *rm_manifest_to_json(const rm_manifest_t *m);

#ifdef __cplusplus
}
#endif
#endif
