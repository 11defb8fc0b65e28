/* registry.c - the node type table, generated from nodes/node_list.h. */
#include "rm/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RM_NODE(sym) extern const rm_node_type_t sym;
#include "nodes/node_list.h"
#undef RM_NODE

#define RM_NODE(sym) &sym,
static const rm_node_type_t *table[] = {
#include "nodes/node_list.h"
};
#undef RM_NODE

#define N_TYPES (sizeof table / sizeof table[0])

static pthread_once_t once = PTHREAD_ONCE_INIT;

static int by_name(const void *a, const void *b) {
  const rm_node_type_t *x = *(const rm_node_type_t *const *)a;
  const rm_node_type_t *y = *(const rm_node_type_t *const *)b;
  return strcmp(x->name, y->name);
}

static void sort_table(void) { qsort(table, N_TYPES, sizeof table[0], by_name); }

const rm_node_type_t *rm_registry_find(const char *name) {
  pthread_once(&once, sort_table);
  const rm_node_type_t key = {.name = name};
  const rm_node_type_t *kp = &key;
  const rm_node_type_t **hit = bsearch(&kp, table, N_TYPES, sizeof table[0], by_name);
  return hit ? *hit : NULL;
}

size_t rm_registry_count(void) { return N_TYPES; }

const rm_node_type_t *rm_registry_at(size_t i) {
  pthread_once(&once, sort_table);
  return i < N_TYPES ? table[i] : NULL;
}
