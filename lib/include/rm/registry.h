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

/* The registry as the ListNodeTypes message: rm_wire_node_types_new (rm/wire.h). */

#ifdef __cplusplus
}
#endif
#endif
