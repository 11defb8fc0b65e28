/* status.c - engine error codes to gRPC status codes. */
#include "status.h"

grpc_status_code rm_status_from_error(int code) {
  switch (code) {
  case RM_OK: return GRPC_STATUS_OK;
  case RM_EMANIFEST:
  case RM_EPARAM:
  case RM_EINPUT:
  case RM_ENODE: return GRPC_STATUS_INVALID_ARGUMENT;
  case RM_ENOTYPE: return GRPC_STATUS_NOT_FOUND;
  case RM_ELIMIT:
  case RM_ENOMEM: return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case RM_ETIMEDOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
  case RM_ECANCELED: return GRPC_STATUS_CANCELLED;
  default: return GRPC_STATUS_INTERNAL;
  }
}
