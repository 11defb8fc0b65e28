/* test_registry.c - the node type table: lookup by name, order, unique names, and the
 * ListNodeTypes description the wire layer builds from it (rm_wire_node_types_new). */
#include <string.h>

#include "rm/registry.h"
#include "rm/wire.h"
#include "test_support.h"

static void test_find_by_name(void) {
  const rm_node_type_t *t = rm_registry_find("Gain");
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  RM_ASSERT_STR(t->name, "Gain");
  RM_ASSERT_INT(t->n_inputs, 1);
  RM_ASSERT_INT(t->n_outputs, 1);
  RM_ASSERT_STR(t->inputs[0].name, "in");
  RM_ASSERT_INT(t->inputs[0].kinds, RM_KIND_AUDIO);
  CU_ASSERT_PTR_NOT_NULL(t->create);
  CU_ASSERT_PTR_NOT_NULL(t->process);
  const rm_node_type_t *p = rm_registry_find("PassThrough");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_STR(p->name, "PassThrough");
}

static void test_unknown_name(void) {
  CU_ASSERT_PTR_NULL(rm_registry_find("gain")); /* case-sensitive */
  CU_ASSERT_PTR_NULL(rm_registry_find("Gain "));
  CU_ASSERT_PTR_NULL(rm_registry_find(""));
  CU_ASSERT_PTR_NULL(rm_registry_find("NoSuchNode"));
  CU_ASSERT_PTR_NULL(rm_registry_at(rm_registry_count()));
}

static void test_names_unique_and_sorted(void) {
  size_t n = rm_registry_count();
  CU_ASSERT(n >= 20);
  for (size_t i = 0; i < n; i++) {
    const rm_node_type_t *t = rm_registry_at(i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(t->name && *t->name);
    CU_ASSERT(t->description && *t->description);
    CU_ASSERT_PTR_EQUAL(rm_registry_find(t->name), t);
    if (i > 0)
      CU_ASSERT(strcmp(rm_registry_at(i - 1)->name, t->name) < 0); /* strictly: unique */
  }
}

static void test_every_type_is_described(void) {
  Remotemedia__V1__ListNodeTypesResponse *resp = rm_wire_node_types_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
  RM_ASSERT_INT(resp->n_node_types, rm_registry_count());
  for (size_t i = 0; i < resp->n_node_types && i < rm_registry_count(); i++) {
    const rm_node_type_t *t = rm_registry_at(i);
    const Remotemedia__V1__NodeTypeInfo *d = resp->node_types[i];
    RM_ASSERT_STR(d->name, t->name);
    RM_ASSERT_STR(d->description, t->description);
    RM_ASSERT_INT(d->n_params, t->n_params);
    RM_ASSERT_INT(d->n_inputs, t->n_inputs);
    RM_ASSERT_INT(d->n_outputs, t->n_outputs);
    for (size_t j = 0; j < d->n_params && j < t->n_params; j++)
      RM_ASSERT_STR(d->params[j]->name, t->params[j].name);
  }
  rm_wire_node_types_free(resp);
  rm_wire_node_types_free(NULL); /* a no-op */
}

/* Gain's one param as the table declares it and as ListNodeTypes publishes it. */
static void test_param_schema_fields(void) {
  const rm_node_type_t *t = rm_registry_find("Gain");
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  RM_ASSERT_INT(t->n_params, 1);
  const rm_param_spec_t *ps = &t->params[0];
  RM_ASSERT_STR(ps->name, "db");
  RM_ASSERT_INT(ps->type, RM_PARAM_NUMBER);
  RM_ASSERT_INT(ps->flags, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX);
  RM_ASSERT_NEAR(ps->min, -120.0, 0.0);
  RM_ASSERT_NEAR(ps->max, 60.0, 0.0);
  RM_ASSERT_STR(ps->default_json, "0");

  Remotemedia__V1__ListNodeTypesResponse *resp = rm_wire_node_types_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
  const Remotemedia__V1__NodeTypeInfo *gain = NULL, *fmt = NULL;
  for (size_t i = 0; i < resp->n_node_types; i++) {
    if (strcmp(resp->node_types[i]->name, "Gain") == 0)
      gain = resp->node_types[i];
    if (strcmp(resp->node_types[i]->name, "AudioFormat") == 0)
      fmt = resp->node_types[i];
  }
  CU_ASSERT_PTR_NOT_NULL_FATAL(gain);
  const Remotemedia__V1__ParamSpec *db = gain->params[0];
  RM_ASSERT_STR(db->name, "db");
  RM_ASSERT_STR(db->type, "number");
  CU_ASSERT_FALSE(db->required);
  RM_ASSERT_STR(db->default_json, "0");
  CU_ASSERT_TRUE(db->has_minimum);
  RM_ASSERT_NEAR(db->minimum, -120.0, 0.0);
  CU_ASSERT_TRUE(db->has_maximum);
  RM_ASSERT_NEAR(db->maximum, 60.0, 0.0);
  RM_ASSERT_INT(db->n_enum_values, 0);
  RM_ASSERT_INT(gain->inputs[0]->n_kinds, 1);
  RM_ASSERT_INT(gain->inputs[0]->kinds[0], REMOTEMEDIA__V1__DATA_KIND__DATA_KIND_AUDIO);

  /* a required enum: required, no default, its values listed */
  CU_ASSERT_PTR_NOT_NULL_FATAL(fmt);
  const Remotemedia__V1__ParamSpec *f = fmt->params[0];
  RM_ASSERT_STR(f->name, "format");
  RM_ASSERT_STR(f->type, "enum");
  CU_ASSERT_TRUE(f->required);
  RM_ASSERT_STR(f->default_json, "");
  CU_ASSERT_FALSE(f->has_minimum);
  CU_ASSERT(f->n_enum_values >= 2);
  rm_wire_node_types_free(resp);
}

static void test_describe_out_of_memory(void) {
  long live = rm_alloc_live();
  for (long n = 0;; n++) {
    rm_alloc_fail_after(n);
    Remotemedia__V1__ListNodeTypesResponse *resp = rm_wire_node_types_new();
    rm_alloc_fail_never();
    if (resp) {
      rm_wire_node_types_free(resp);
      RM_ASSERT_INT(rm_alloc_live(), live);
      CU_ASSERT(n > 20);
      break;
    }
    RM_ASSERT_INT(rm_alloc_live(), live); /* a failure leaks nothing */
  }
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_find_by_name),
                                         RM_TEST(test_unknown_name),
                                         RM_TEST(test_names_unique_and_sorted),
                                         RM_TEST(test_every_type_is_described),
                                         RM_TEST(test_param_schema_fields),
                                         RM_TEST(test_describe_out_of_memory),
                                         {NULL, NULL}};
  rm_test_suite("registry", cases);
  return rm_test_run();
}
