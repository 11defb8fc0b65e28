/* registry.h - the table of node types, by name. Read-only: any thread. */
#ifndef RM_REGISTRY_H
#define RM_REGISTRY_H

#include <stddef.h>

#include "rm/node.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The type registered under `name` (exact, case-sensitive), or NULL. */
const rm_node_type_t *rm_registry_find(const char *name);
/* Number of registered types and the i-th one (i < count), in name order. */
size_t rm_registry_count(void);
const rm_node_type_t *rm_registry_at(size_t i);

struct Remotemedia__V1__ListNodeTypesResponse;
/* Every registered type, in name order, as the ListNodeTypes message: params with type,
 * range, default (a param without a default is required) and enum values; ports with their
 * kinds. Strings are borrowed from the static tables. New message (rm_malloc), NULL when out
 * of memory; release it with rm_registry_describe_free. Any thread. */
struct Remotemedia__V1__ListNodeTypesResponse *rm_registry_describe(void);
void rm_registry_describe_free(struct Remotemedia__V1__ListNodeTypesResponse *resp);

#ifdef __cplusplus
}
#endif
#endif
