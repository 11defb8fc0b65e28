/* reflection.h - server reflection (v1 and v1alpha) from the embedded descriptor set. */
#ifndef RM_SERVER_REFLECTION_H
#define RM_SERVER_REFLECTION_H

#include "server.h"

#define RM_REFLECTION_METHODS 2

/* Indexes the embedded descriptor set. 0, or -1 if it is malformed or memory ran out.
 * Call once before the server starts; rm_reflection_cleanup after it stopped. */
int rm_reflection_init(void);
/* Frees the index; also after a failed rm_reflection_init (frees what it built) or none
 * (a no-op). Main thread. */
void rm_reflection_cleanup(void);
void rm_reflection_methods(rm_method_t *out);

#endif
