/* health.h - grpc.health.v1.Health: Check and Watch, for the overall server ("") and
 * remotemedia.v1.PipelineService. */
#ifndef RM_SERVER_HEALTH_H
#define RM_SERVER_HEALTH_H

#include "server.h"

#define RM_HEALTH_METHODS 2

void rm_health_methods(rm_method_t *out);
/* Sets SERVING (1) or NOT_SERVING (0) for every service and pushes the change to every
 * Watch stream. Any thread. */
void rm_health_set_serving(int serving);

#endif
