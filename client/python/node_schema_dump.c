/* node_schema_dump.c - prints the node registry as JSON for the Python client, in the
 * shape of ListNodeTypes, so `remotemedia.nodes` is generated from the same tables the
 * server publishes and never drifts from them.
 *
 * Usage: rm_node_schema_dump OUT.json   (or "-" for stdout). Exit status 0 or 1.
 *
 * Output: {"node_types": [{"name", "description", "params": [{"name", "type",
 * "description", "required", "default_json", "has_minimum", "minimum", "has_maximum",
 * "maximum", "enum_values"}], "inputs": [{"name", "kinds", "variadic", "same_as_input"}],
 * "outputs": [...]}]}: field for field what the server's ListNodeTypes answers (kinds as
 * lower-case names: "audio", "tensor", "json", "text", "binary"). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "rm/registry.h"

static const char *const kind_names[] = {"audio", "tensor", "json", "text", "binary"};

/* The same translation the server's ListNodeTypes makes: a param without a default is
 * required, and a required param publishes no default. */
static json_t *param_json(const rm_param_spec_t *ps) {
  int required = (ps->flags & RM_PARAM_REQUIRED) || !ps->default_json;
  int has_min = (ps->flags & RM_PARAM_HAS_MIN) != 0;
  int has_max = (ps->flags & RM_PARAM_HAS_MAX) != 0;
  json_t *values = json_array();
  for (const char *const *e = ps->enum_values; values && e && *e; e++)
    if (json_array_append_new(values, json_string(*e))) {
      json_decref(values);
      values = NULL;
    }
  return json_pack("{s:s, s:s, s:s, s:b, s:s, s:b, s:f, s:b, s:f, s:o}", "name", ps->name, "type",
                   rm_param_type_name(ps->type), "description",
                   ps->description ? ps->description : "", "required", required, "default_json",
                   required ? "" : ps->default_json, "has_minimum", has_min, "minimum",
                   has_min ? ps->min : 0.0, "has_maximum", has_max, "maximum",
                   has_max ? ps->max : 0.0, "enum_values", values);
}

static json_t *ports_json(const rm_port_spec_t *ports, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++) {
    json_t *kinds = json_array();
    for (unsigned b = 0; kinds && b < sizeof kind_names / sizeof kind_names[0]; b++)
      if ((ports[i].kinds & (1u << b)) &&
          json_array_append_new(kinds, json_string(kind_names[b]))) {
        json_decref(kinds);
        kinds = NULL;
      }
    if (json_array_append_new(
            arr, json_pack("{s:s, s:o, s:b, s:b}", "name", ports[i].name, "kinds", kinds,
                           "variadic", (ports[i].flags & RM_PORT_VARIADIC) != 0, "same_as_input",
                           (ports[i].flags & RM_PORT_SAME_AS_INPUT) != 0))) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

static json_t *type_json(const rm_node_type_t *nt) {
  json_t *params = json_array();
  for (size_t j = 0; params && j < nt->n_params; j++)
    if (json_array_append_new(params, param_json(&nt->params[j]))) {
      json_decref(params);
      params = NULL;
    }
  return json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", nt->name, "description",
                   nt->description ? nt->description : "", "params", params, "inputs",
                   ports_json(nt->inputs, nt->n_inputs), "outputs",
                   ports_json(nt->outputs, nt->n_outputs));
}

static json_t *registry_json(void) {
  json_t *types = json_array();
  for (size_t i = 0; types && i < rm_registry_count(); i++)
    if (json_array_append_new(types, type_json(rm_registry_at(i)))) {
      json_decref(types);
      return NULL;
    }
  return json_pack("{s:o}", "node_types", types);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT.json|-\n", argv[0]);
    return 1;
  }
  json_t *root = registry_json();
  if (!root) {
    fprintf(stderr, "%s: out of memory\n", argv[0]);
    return 1;
  }
  size_t flags = JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17);
  int rc = strcmp(argv[1], "-") == 0 ? json_dumpf(root, stdout, flags)
                                     : json_dump_file(root, argv[1], flags);
  json_decref(root);
  if (rc) {
    fprintf(stderr, "%s: cannot write %s\n", argv[0], argv[1]);
    return 1;
  }
  return 0;
}
