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
 * lower-case names: "audio", "tensor", "json", "text", "binary"). It prints the message the
 * wire layer builds for ListNodeTypes (rm_wire_node_types_new), so the translation from the
 * registry's tables is made in one place. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "rm/wire.h"

/* DataKind values 1..5 (0 is unspecified). */
static const char *const kind_names[] = {"audio", "tensor", "json", "text", "binary"};

static json_t *strings_json(char **v, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++)
    if (json_array_append_new(arr, json_string(v[i]))) {
      json_decref(arr);
      arr = NULL;
    }
  return arr;
}

/* The ParamSpec the wire layer built, field for field (it already made the translation:
 * a param without a default is required, a required param publishes no default). */
static json_t *param_json(const Remotemedia__V1__ParamSpec *p) {
  return json_pack("{s:s, s:s, s:s, s:b, s:s, s:b, s:f, s:b, s:f, s:o}", "name", p->name, "type",
                   p->type, "description", p->description, "required", p->required, "default_json",
                   p->default_json, "has_minimum", p->has_minimum, "minimum", p->minimum,
                   "has_maximum", p->has_maximum, "maximum", p->maximum, "enum_values",
                   strings_json(p->enum_values, p->n_enum_values));
}

static json_t *ports_json(Remotemedia__V1__PortSpec **ports, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++) {
    const Remotemedia__V1__PortSpec *p = ports[i];
    json_t *kinds = json_array();
    for (size_t k = 0; kinds && k < p->n_kinds; k++) {
      int v = (int)p->kinds[k];
      if (v < 1 || v > 5 || json_array_append_new(kinds, json_string(kind_names[v - 1]))) {
        json_decref(kinds);
        kinds = NULL;
      }
    }
    if (json_array_append_new(arr, json_pack("{s:s, s:o, s:b, s:b}", "name", p->name, "kinds",
                                             kinds, "variadic", p->variadic, "same_as_input",
                                             p->same_as_input))) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

static json_t *type_json(const Remotemedia__V1__NodeTypeInfo *t) {
  json_t *params = json_array();
  for (size_t j = 0; params && j < t->n_params; j++)
    if (json_array_append_new(params, param_json(t->params[j]))) {
      json_decref(params);
      params = NULL;
    }
  return json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", t->name, "description", t->description,
                   "params", params, "inputs", ports_json(t->inputs, t->n_inputs), "outputs",
                   ports_json(t->outputs, t->n_outputs));
}

static json_t *registry_json(void) {
  Remotemedia__V1__ListNodeTypesResponse *resp = rm_wire_node_types_new();
  if (!resp)
    return NULL;
  json_t *types = json_array();
  for (size_t i = 0; types && i < resp->n_node_types; i++)
    if (json_array_append_new(types, type_json(resp->node_types[i]))) {
      json_decref(types);
      types = NULL;
    }
  rm_wire_node_types_free(resp);
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
