/* status.c - failures (rm_error_t) to gRPC status codes, messages and trailers. */
#include "status.h"

#include "grpc_status.h"

grpc_status_code rm_status_from_error(int code) {
  switch (code) {
  case RM_OK: return GRPC_STATUS_OK;
  case RM_EMANIFEST:
  case RM_EPARAM:
  case RM_EINPUT:
  case RM_ENODE:
  case RM_EBADREQUEST: return GRPC_STATUS_INVALID_ARGUMENT;
  case RM_ENOTYPE:
  case RM_EUNKNOWNSERVICE:
  case RM_ENOTFOUND: return GRPC_STATUS_NOT_FOUND;
  case RM_ELIMIT:
  case RM_ENOMEM: return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case RM_ETIMEDOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
  case RM_ECANCELED: return GRPC_STATUS_CANCELLED;
  case RM_EUNAUTHENTICATED: return GRPC_STATUS_UNAUTHENTICATED;
  case RM_EUNAVAILABLE: return GRPC_STATUS_UNAVAILABLE;
  case RM_EUNIMPLEMENTED: return GRPC_STATUS_UNIMPLEMENTED;
  default: return GRPC_STATUS_INTERNAL;
  }
}

const char *rm_status_kind(int code) {
  switch (code) {
  case RM_EUNAUTHENTICATED: return "unauthenticated";
  case RM_EUNAVAILABLE: return "unavailable";
  case RM_EUNIMPLEMENTED: return "unimplemented";
  case RM_EUNKNOWNSERVICE: return "unknown_service";
  case RM_EBADREQUEST: return "invalid_request";
  case RM_ENOTFOUND: return "not_found";
  default: return rm_strerror(code);
  }
}

int rm_status_code_of(const rm_error_t *err) { return err->code ? err->code : RM_EINTERNAL; }

const char *rm_status_message_of(const rm_error_t *err) {
  return err->code ? err->message : "internal error";
}

static size_t add_trailer(grpc_metadata *out, size_t n, const char *key, const char *value) {
  if (!*value)
    return n;
  out[n].key = grpc_slice_from_static_string(key);
  out[n].value = grpc_slice_from_copied_string(value);
  return n + 1;
}

size_t rm_status_trailers(const rm_error_t *err, grpc_metadata *out) {
  size_t n = add_trailer(out, 0, "rm-error-kind", rm_status_kind(rm_status_code_of(err)));
  if (!err->code) /* an undescribed failure names no node or field */
    return n;
  n = add_trailer(out, n, "rm-failing-node", err->node_id);
  return add_trailer(out, n, "rm-field", err->field);
}

int rm_status_is_bug(grpc_status_code code) { return code == GRPC_STATUS_INTERNAL; }

const char *rm_status_name(grpc_status_code code) { return rm__grpc_status_name((int)code); }
