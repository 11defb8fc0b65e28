/* status.c - failures (rm_error_t) to gRPC status codes, messages and trailers. */
#include "status.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "grpc_status.h"
#include "rm/utf8.h"

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

/* ---------------------------------------------------------------- google.rpc.Status */

/* Bounds of the packed parts: every string in them is bounded by rm_error_t's arrays and
 * RM_STATUS_REQUEST_ID_MAX, so these never overflow (a part that would is left out). */
#define INFO_MAX 1024
#define BAD_REQUEST_MAX 1536
#define PATH_MAX_ 320

/* in as valid UTF-8 (protobuf strings must be: decoders reject the whole message
 * otherwise), each byte that does not start a valid sequence replaced by '?', cut to fit
 * cap. Errors echo what clients sent, which may be any bytes. Returns out. */
static char *utf8_clean(const char *in, char *out, size_t cap) {
  const unsigned char *s = (const unsigned char *)in;
  size_t o = 0;
  size_t left = strlen(in);
  while (*s) {
    size_t n = rm_utf8_len(s, left);
    left -= n ? n : 1;
    if (o + (n ? n : 1) >= cap)
      break;
    if (n) {
      memcpy(out + o, s, n);
      o += n;
      s += n;
    } else {
      out[o++] = '?';
      s++;
    }
  }
  out[o] = '\0';
  return out;
}

/* The path of err's field in the request, or "" when err is not about a request field. */
static void violation_path(const rm_error_t *err, char *out, size_t cap) {
  const char *node = err->node_id, *field = err->field;
  out[0] = '\0';
  switch (err->code) {
  case RM_EPARAM:
    if (strcmp(field, "params") == 0 || !field[0])
      snprintf(out, cap, "manifest.nodes[%s].params", node);
    else
      snprintf(out, cap, "manifest.nodes[%s].params.%s", node, field);
    break;
  case RM_ENOTYPE: snprintf(out, cap, "manifest.nodes[%s].node_type", node); break;
  case RM_EMANIFEST:
    if (node[0])
      snprintf(out, cap, "manifest.nodes[%s]%s%s", node, field[0] ? "." : "", field);
    else if (field[0] && strcmp(field, "manifest") != 0)
      snprintf(out, cap, "manifest.%s", field);
    else
      snprintf(out, cap, "manifest");
    break;
  case RM_EINPUT:
    if (node[0])
      snprintf(out, cap, "inputs[%s]%s%s", node, field[0] && strcmp(field, "inputs") ? "." : "",
               strcmp(field, "inputs") ? field : "");
    else
      snprintf(out, cap, "inputs");
    break;
  default: break;
  }
}

/* Packs msg into buf as an Any; 0, or -1 when it does not fit (then it is left out). */
static int pack_any(const ProtobufCMessage *msg, const char *type_url, uint8_t *buf, size_t cap,
                    Google__Protobuf__Any *any) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > cap)
    return -1;
  google__protobuf__any__init(any);
  any->type_url = (char *)type_url;
  any->value.data = buf;
  any->value.len = protobuf_c_message_pack(msg, buf);
  return 0;
}

static grpc_slice details_seq(const rm_error_t *err, const char *request_id, const char *sequence,
                              int flushed);

grpc_slice rm_status_details(const rm_error_t *err, const char *request_id) {
  return details_seq(err, request_id, NULL, 0);
}

static grpc_slice details_seq(const rm_error_t *err, const char *request_id, const char *sequence,
                              int flushed) {
  int code = rm_status_code_of(err);
  char reason[64];
  const char *kind = rm_status_kind(code);
  size_t i = 0;
  for (; kind[i] && i < sizeof reason - 1; i++)
    reason[i] = (char)toupper((unsigned char)kind[i]);
  reason[i] = '\0';
  /* every string the client may have chosen, as valid UTF-8 */
  char rid[RM_STATUS_REQUEST_ID_MAX + 1], node[RM_ERROR_NODE_MAX], field[RM_ERROR_FIELD_MAX];
  char message[RM_ERROR_MSG_MAX], path[PATH_MAX_], raw_path[PATH_MAX_];
  utf8_clean(request_id ? request_id : "", rid, sizeof rid);
  utf8_clean(err->code ? err->node_id : "", node, sizeof node);
  utf8_clean(err->code ? err->field : "", field, sizeof field);
  utf8_clean(rm_status_message_of(err), message, sizeof message);
  violation_path(err, raw_path, sizeof raw_path);
  utf8_clean(raw_path, path, sizeof path);

  /* ErrorInfo */
  Google__Rpc__ErrorInfo info = GOOGLE__RPC__ERROR_INFO__INIT;
  Google__Rpc__ErrorInfo__MetadataEntry md[5], *md_ptrs[5];
  const char *keys[5] = {"node", "field", "request_id", "sequence", "flushed"};
  const char *values[5] = {node, field, rid, sequence ? sequence : "", flushed ? "true" : ""};
  info.reason = reason;
  info.domain = RM_STATUS_DOMAIN;
  info.metadata = md_ptrs;
  for (size_t k = 0; k < 5; k++) {
    if (!values[k][0])
      continue;
    google__rpc__error_info__metadata_entry__init(&md[info.n_metadata]);
    md[info.n_metadata].key = (char *)keys[k];
    md[info.n_metadata].value = (char *)values[k];
    md_ptrs[info.n_metadata] = &md[info.n_metadata];
    info.n_metadata++;
  }
  Google__Protobuf__Any anys[2], *any_ptrs[2];
  size_t n_any = 0;
  uint8_t info_buf[INFO_MAX], bad_buf[BAD_REQUEST_MAX];
  if (pack_any(&info.base, "type.googleapis.com/google.rpc.ErrorInfo", info_buf, sizeof info_buf,
               &anys[n_any]) == 0) {
    any_ptrs[n_any] = &anys[n_any];
    n_any++;
  }

  /* BadRequest, for errors about a field of the request */
  if (path[0]) {
    Google__Rpc__BadRequest__FieldViolation v = GOOGLE__RPC__BAD_REQUEST__FIELD_VIOLATION__INIT;
    Google__Rpc__BadRequest__FieldViolation *v_ptr = &v;
    v.field = path;
    v.description = message;
    Google__Rpc__BadRequest bad = GOOGLE__RPC__BAD_REQUEST__INIT;
    bad.n_field_violations = 1;
    bad.field_violations = &v_ptr;
    if (pack_any(&bad.base, "type.googleapis.com/google.rpc.BadRequest", bad_buf, sizeof bad_buf,
                 &anys[n_any]) == 0) {
      any_ptrs[n_any] = &anys[n_any];
      n_any++;
    }
  }

  Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
  st.code = (int32_t)rm_status_from_error(code);
  st.message = message;
  st.n_details = n_any;
  st.details = any_ptrs;
  grpc_slice out = grpc_slice_malloc(google__rpc__status__get_packed_size(&st));
  google__rpc__status__pack(&st, GRPC_SLICE_START_PTR(out));
  return out;
}

int rm_status_no_retry(const rm_error_t *err) {
  return err->code == RM_ELIMIT && !err->retry_later;
}

size_t rm_status_trailers_full(const rm_error_t *err, const char *request_id, grpc_metadata *out) {
  return rm_status_trailers_seq(err, request_id, NULL, 0, out);
}

size_t rm_status_trailers_seq(const rm_error_t *err, const char *request_id, const char *sequence,
                              int flushed, grpc_metadata *out) {
  size_t n = rm_status_trailers(err, out);
  if (sequence && sequence[0])
    n = add_trailer(out, n, "rm-sequence", sequence);
  if (flushed)
    n = add_trailer(out, n, "rm-flushed", "true");
  out[n].key = grpc_slice_from_static_string("grpc-status-details-bin");
  out[n].value = details_seq(err, request_id, sequence, flushed);
  n++;
  if (rm_status_no_retry(err)) {
    out[n].key = grpc_slice_from_static_string("grpc-retry-pushback-ms");
    out[n].value = grpc_slice_from_static_string("-1");
    n++;
  }
  return n;
}

int rm_status_is_bug(grpc_status_code code) { return code == GRPC_STATUS_INTERNAL; }

const char *rm_status_name(grpc_status_code code) { return rm__grpc_status_name((int)code); }
