/* health.h - grpc.health.v1.Health: Check and Watch, for the overall server ("") and
 * remotemedia.v1.PipelineService. */
#ifndef RM_SERVER_HEALTH_H
#define RM_SERVER_HEALTH_H

#include "server.h"

#define RM_HEALTH_METHODS 2

/* Check and Watch; with needs_token (--health-needs-token) they need a token like every other
 * method, so their request messages are read only after the check (docs/security.md). */
void rm_health_methods(rm_method_t *out, int needs_token);
/* Sets SERVING (1) or NOT_SERVING (0) for every service and pushes the change to every
 * Watch stream. Any thread. NOT_SERVING until the first call. */
void rm_health_set_serving(int serving);
/* 1 while SERVING. Any thread (the metrics listener's /readyz). */
int rm_health_serving(void);

#endif
