/* manifest_json.h - the one reader of the JSON manifest form, feeding any builder (the
 * engine's rm_manifest_t, the wire PipelineManifest). Knows neither the engine nor proto. */
#ifndef RM_MANIFEST_JSON_H
#define RM_MANIFEST_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "rm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the reader hands to a builder. Each callback returns 0 or a negative RM_E* code
 * with err filled (the reader returns that code at once). Strings are borrowed for the
 * call. Node params arrive as exactly one of: `params` (an object) or `params_text` (the
 * JSON text the manifest gave as a string); both NULL when absent or null. */
typedef struct rm_manifest_json_sink {
  int (*name)(void *ctx, const char *name, rm_error_t *err);
  int (*node)(void *ctx, const char *id, const char *type, const json_t *params,
              const char *params_text, rm_error_t *err);
  int (*connection)(void *ctx, const char *from, const char *from_port, const char *to,
                    const char *to_port, rm_error_t *err);
} rm_manifest_json_sink_t;

/* Reads the JSON form
 *   {"name": "...", "nodes": [{"id", "node_type", "params": {...} | "<json text>"}],
 *    "connections": [{"from", "to", "from_port"?, "to_port"?}]}
 * checking its shape (unknown keys, missing or mistyped members: RM_EMANIFEST naming the
 * key; params neither object, string nor null: RM_EPARAM naming the node and "params"),
 * and calls the sink in document order: name once, then each node, then each connection.
 * Returns 0 or the first error. If a callback fails, no further callback runs. Pure: any
 * thread. */
int rm_manifest_json_read(const json_t *root, const rm_manifest_json_sink_t *sink, void *ctx,
                          rm_error_t *err);

/* The error for a failed jansson parse of a manifest: RM_ENOMEM when an allocation failed
 * during it (rm_alloc_failures() moved from `failures_before`, or jansson says so), RM_EIO
 * when the file could not be opened, else RM_EMANIFEST "manifest is not valid JSON: ...".
 * Returns the code, err filled. */
int rm_manifest_json_parse_error(const json_error_t *je, unsigned long failures_before,
                                 rm_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
