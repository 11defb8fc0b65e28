/* pipeline_service.h - the remotemedia.v1.PipelineService methods. */
#ifndef RM_SERVER_PIPELINE_SERVICE_H
#define RM_SERVER_PIPELINE_SERVICE_H

#include <stddef.h>

#include "server.h"

#define RM_PIPELINE_SERVICE_METHODS 4

/* Fills out[0..RM_PIPELINE_SERVICE_METHODS) with the service's method rows. */
void rm_pipeline_service_methods(rm_method_t *out);

#endif
