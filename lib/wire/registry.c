/* registry.c - the node registry as the ListNodeTypes message: what the server publishes,
 * what clients list without a server and what the Python node schema is dumped from. */
#include <string.h>

#include "rm/alloc.h"
#include "rm/registry.h"
#include "rm/wire.h"

static Remotemedia__V1__DataKind kind_of_bit(unsigned bit) {
  return (Remotemedia__V1__DataKind)(bit + 1); /* RM_KIND_AUDIO = bit 0 = DATA_KIND_AUDIO (1) */
}

static int fill_ports(const rm_port_spec_t *ports, size_t n, Remotemedia__V1__PortSpec ***out,
                      size_t *n_out) {
  Remotemedia__V1__PortSpec **ptrs = rm_calloc(n ? n : 1, sizeof *ptrs);
  if (!ptrs)
    return -1;
  *out = ptrs;
  *n_out = 0;
  for (size_t i = 0; i < n; i++) {
    Remotemedia__V1__PortSpec *p = rm_calloc(1, sizeof *p);
    if (!p)
      return -1;
    remotemedia__v1__port_spec__init(p);
    ptrs[(*n_out)++] = p;
    p->name = (char *)ports[i].name;
    p->variadic = (ports[i].flags & RM_PORT_VARIADIC) != 0;
    p->same_as_input = (ports[i].flags & RM_PORT_SAME_AS_INPUT) != 0;
    p->kinds = rm_calloc(5, sizeof *p->kinds);
    if (!p->kinds)
      return -1;
    for (unsigned b = 0; b < 5; b++)
      if (ports[i].kinds & (1u << b))
        p->kinds[p->n_kinds++] = kind_of_bit(b);
  }
  return 0;
}

static void free_ports(Remotemedia__V1__PortSpec **ptrs, size_t n) {
  for (size_t i = 0; ptrs && i < n; i++) {
    rm_free(ptrs[i]->kinds);
    rm_free(ptrs[i]);
  }
  rm_free(ptrs);
}

static void free_type(Remotemedia__V1__NodeTypeInfo *t) {
  for (size_t j = 0; t->params && j < t->n_params; j++) {
    rm_free(t->params[j]->enum_values);
    rm_free(t->params[j]);
  }
  rm_free(t->params);
  free_ports(t->inputs, t->n_inputs);
  free_ports(t->outputs, t->n_outputs);
  rm_free(t);
}

static Remotemedia__V1__NodeTypeInfo *describe(const rm_node_type_t *nt) {
  Remotemedia__V1__NodeTypeInfo *t = rm_calloc(1, sizeof *t);
  if (!t)
    return NULL;
  remotemedia__v1__node_type_info__init(t);
  t->name = (char *)nt->name;
  t->description = (char *)(nt->description ? nt->description : "");
  t->params = rm_calloc(nt->n_params ? nt->n_params : 1, sizeof *t->params);
  if (!t->params)
    goto fail;
  for (size_t j = 0; j < nt->n_params; j++) {
    const rm_param_spec_t *ps = &nt->params[j];
    Remotemedia__V1__ParamSpec *p = rm_calloc(1, sizeof *p);
    if (!p)
      goto fail;
    remotemedia__v1__param_spec__init(p);
    t->params[t->n_params++] = p;
    p->name = (char *)ps->name;
    p->type = (char *)rm_param_type_name(ps->type);
    p->description = (char *)(ps->description ? ps->description : "");
    p->required = (ps->flags & RM_PARAM_REQUIRED) || !ps->default_json;
    p->default_json =
        (char *)(ps->default_json && !(ps->flags & RM_PARAM_REQUIRED) ? ps->default_json : "");
    p->has_minimum = (ps->flags & RM_PARAM_HAS_MIN) != 0;
    p->minimum = p->has_minimum ? ps->min : 0;
    p->has_maximum = (ps->flags & RM_PARAM_HAS_MAX) != 0;
    p->maximum = p->has_maximum ? ps->max : 0;
    size_t ne = 0;
    for (const char *const *e = ps->enum_values; e && *e; e++)
      ne++;
    if (ne) {
      p->enum_values = rm_calloc(ne, sizeof *p->enum_values);
      if (!p->enum_values)
        goto fail;
      for (size_t e = 0; e < ne; e++)
        p->enum_values[e] = (char *)ps->enum_values[e];
      p->n_enum_values = ne;
    }
  }
  if (fill_ports(nt->inputs, nt->n_inputs, &t->inputs, &t->n_inputs) ||
      fill_ports(nt->outputs, nt->n_outputs, &t->outputs, &t->n_outputs))
    goto fail;
  return t;
fail:
  free_type(t);
  return NULL;
}

Remotemedia__V1__ListNodeTypesResponse *rm_wire_node_types_new(void) {
  Remotemedia__V1__ListNodeTypesResponse *resp = rm_malloc(sizeof *resp);
  if (!resp)
    return NULL;
  remotemedia__v1__list_node_types_response__init(resp);
  size_t n = rm_registry_count();
  resp->node_types = rm_calloc(n ? n : 1, sizeof *resp->node_types);
  if (!resp->node_types) {
    rm_free(resp);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    resp->node_types[i] = describe(rm_registry_at(i));
    if (!resp->node_types[i]) {
      rm_wire_node_types_free(resp);
      return NULL;
    }
    resp->n_node_types++;
  }
  return resp;
}

void rm_wire_node_types_free(Remotemedia__V1__ListNodeTypesResponse *resp) {
  if (!resp)
    return;
  for (size_t i = 0; i < resp->n_node_types; i++)
    free_type(resp->node_types[i]);
  rm_free(resp->node_types);
  rm_free(resp);
}
