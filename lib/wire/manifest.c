/* manifest.c - the wire PipelineManifest as the engine's manifest. */
#include "rm/wire.h"

#include <math.h>

#include "rm/alloc.h"

#define STRUCT_MAX_DEPTH 64 /* nested objects and lists in one params object */

static int value_to_json(const Google__Protobuf__Value *v, int depth, json_t **out,
                         const char *node_id, rm_error_t *err);

static int struct_to_json(const Google__Protobuf__Struct *s, int depth, json_t **out,
                          const char *node_id, rm_error_t *err) {
  json_t *obj = json_object();
  if (!obj)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  for (size_t i = 0; s && i < s->n_fields; i++) {
    json_t *v;
    int rc = value_to_json(s->fields[i]->value, depth + 1, &v, node_id, err);
    if (!rc && json_object_set_new(obj, s->fields[i]->key, v))
      rc = rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
    if (rc) {
      json_decref(obj);
      return rc;
    }
  }
  *out = obj;
  return 0;
}

/* Struct's only number is a double: an integral one within +-2^53 (where doubles are
 * exact) becomes a JSON integer, so integer params validate as they do from JSON text. */
static json_t *number_to_json(double d) {
  if (d == floor(d) && fabs(d) <= 9007199254740992.0)
    return json_integer((json_int_t)d);
  return json_real(d);
}

static int value_to_json(const Google__Protobuf__Value *v, int depth, json_t **out,
                         const char *node_id, rm_error_t *err) {
  if (depth > STRUCT_MAX_DEPTH)
    return rm_error_set(err, RM_EPARAM, node_id, "params",
                        "node '%s' params_object: nested deeper than %d levels", node_id,
                        STRUCT_MAX_DEPTH);
  json_t *j = NULL;
  unsigned long failures = rm_alloc_failures();
  switch (v ? v->kind_case : GOOGLE__PROTOBUF__VALUE__KIND__NOT_SET) {
  case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
    if (!isfinite(v->number_value))
      return rm_error_set(err, RM_EPARAM, node_id, "params",
                          "node '%s' params_object: %g is not a JSON number", node_id,
                          v->number_value);
    j = number_to_json(v->number_value);
    break;
  case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE: j = json_string(v->string_value); break;
  case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE: j = json_boolean(v->bool_value); break;
  case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
    return struct_to_json(v->struct_value, depth, out, node_id, err);
  case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE: {
    json_t *arr = json_array();
    if (!arr)
      break;
    const Google__Protobuf__ListValue *l = v->list_value;
    for (size_t i = 0; l && i < l->n_values; i++) {
      json_t *item;
      int rc = value_to_json(l->values[i], depth + 1, &item, node_id, err);
      if (!rc && json_array_append_new(arr, item))
        rc = rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
      if (rc) {
        json_decref(arr);
        return rc;
      }
    }
    *out = arr;
    return 0;
  }
  default: j = json_null(); break; /* null_value, or a Value with nothing set */
  }
  if (!j && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE &&
      rm_alloc_failures() == failures) /* jansson refuses text that is not UTF-8 */
    return rm_error_set(err, RM_EPARAM, node_id, "params",
                        "node '%s' params_object: a string is not valid UTF-8", node_id);
  if (!j)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  *out = j;
  return 0;
}

int rm_wire_params_from_struct(const Google__Protobuf__Struct *s, const char *node_id, json_t **out,
                               rm_error_t *err) {
  return struct_to_json(s, 0, out, node_id ? node_id : "", err);
}

/* Adds one node: its params from the text or the object, never both. */
static int add_node(rm_manifest_t *m, const Remotemedia__V1__NodeManifest *n, rm_error_t *err) {
  if (!n->params_object)
    return rm_manifest_add_node_text(m, n->id, n->node_type, n->params, err);
  if (n->params && n->params[0])
    return rm_error_set(err, RM_EPARAM, n->id, "params",
                        "node '%s': give params (JSON text) or params_object, not both", n->id);
  json_t *params;
  int rc = rm_wire_params_from_struct(n->params_object, n->id, &params, err);
  if (rc)
    return rc;
  rc = rm_manifest_add_node(m, n->id, n->node_type, params, err);
  json_decref(params);
  return rc;
}

int rm_wire_manifest_from_proto(const Remotemedia__V1__PipelineManifest *msg, rm_manifest_t **out,
                                rm_error_t *err) {
  if (!msg)
    return rm_error_set(err, RM_EMANIFEST, NULL, "manifest", "request has no manifest");
  rm_manifest_t *m = rm_manifest_new(msg->name);
  if (!m)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  int rc = 0;
  for (size_t i = 0; i < msg->n_nodes && !rc; i++)
    rc = add_node(m, msg->nodes[i], err);
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
