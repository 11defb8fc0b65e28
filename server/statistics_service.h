/* statistics_service.h - remotemedia.v1.PipelineService/GetStatistics: the cumulative
 * counters of stats.h in Triton's statistics shape. */
#ifndef RM_SERVER_STATISTICS_SERVICE_H
#define RM_SERVER_STATISTICS_SERVICE_H

#include "server.h"

#define RM_STATISTICS_METHODS 1

/* Fills out[0..RM_STATISTICS_METHODS) with the method rows. */
void rm_statistics_service_methods(rm_method_t *out);

#endif
