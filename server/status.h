/* status.h - the one place engine error codes become gRPC statuses. */
#ifndef RM_SERVER_STATUS_H
#define RM_SERVER_STATUS_H

#include <grpc/status.h>

#include "rm/error.h"

/* INVALID_ARGUMENT for manifest, params, input and node-data errors; NOT_FOUND for an unknown
 * node type; RESOURCE_EXHAUSTED for limits and memory; DEADLINE_EXCEEDED; CANCELLED;
 * INTERNAL for bugs (and unknown codes). */
grpc_status_code rm_status_from_error(int code);

#endif
