/* stream_service.h - remotemedia.v1.PipelineService/StreamPipeline: streaming sessions. */
#ifndef RM_SERVER_STREAM_SERVICE_H
#define RM_SERVER_STREAM_SERVICE_H

#include "server.h"

#define RM_STREAM_SERVICE_METHODS 1

/* Fills out[0..RM_STREAM_SERVICE_METHODS) with the method rows (bidirectional streaming).
 * Sessions are described in docs/streaming.md: one compiled pipeline per session, one
 * message in flight, limits --max-sessions, --session-idle-timeout-ms, --max-session-ms. */
void rm_stream_service_methods(rm_method_t *out);

#endif
