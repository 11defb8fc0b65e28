/* status.h - the one place a failure (an rm_error_t) becomes a gRPC status, its message
 * and its trailers. */
#ifndef RM_SERVER_STATUS_H
#define RM_SERVER_STATUS_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <stddef.h>

#include "rm/error.h"

/* Failures only the transport produces. They continue rm_errcode_t's numbering, so one
 * int carries any failure of a call and one table (status.c) maps it to its status. */
typedef enum rm_status_errcode {
  RM_EUNAUTHENTICATED = -100, /* no bearer token, or one the server does not accept */
  RM_EUNAVAILABLE = -101,     /* the server is draining or stopping */
  RM_EUNIMPLEMENTED = -102,   /* no such method */
  RM_EUNKNOWNSERVICE = -103,  /* a health check names a service the server does not run */
  RM_EBADREQUEST = -104,      /* the request message is missing or does not parse */
  RM_ENOTFOUND = -105,        /* a reflection request names a file or symbol we do not have */
} rm_status_errcode_t;

/* Trailers one failure carries at most: rm-error-kind, rm-failing-node, rm-field,
 * rm-sequence, rm-flushed (the project's own), grpc-status-details-bin and
 * grpc-retry-pushback-ms (gRPC's). */
#define RM_STATUS_TRAILERS_MAX 7

/* ErrorInfo.domain of every error this server describes. */
#define RM_STATUS_DOMAIN "remotemedia.v1"
/* The longest request id echoed into ErrorInfo.metadata (longer ones are cut). */
#define RM_STATUS_REQUEST_ID_MAX 128

/* The status of an rm_errcode_t or transport code: INVALID_ARGUMENT for manifest, params,
 * input and node-data errors and bad requests; NOT_FOUND for an unknown node type, service,
 * file or symbol; RESOURCE_EXHAUSTED for limits and memory; DEADLINE_EXCEEDED; CANCELLED;
 * UNAUTHENTICATED; UNAVAILABLE; UNIMPLEMENTED; OK for 0; INTERNAL for bugs and any other
 * value. Any thread. */
grpc_status_code rm_status_from_error(int code);

/* The error kind sent as the rm-error-kind trailer: rm_strerror() for engine codes, the
 * transport's own names for the transport codes ("unauthenticated", "invalid_request",
 * ...), "unknown_error" for any other value. Never NULL; static storage. Any thread. */
const char *rm_status_kind(int code);

/* The code a failure is answered with: err->code, or RM_EINTERNAL when the failure was
 * not described (code 0): a failure is never answered OK. */
int rm_status_code_of(const rm_error_t *err);

/* The status message for a failure: err->message, or "internal error" when the failure
 * was not described. Points into err or static storage. */
const char *rm_status_message_of(const rm_error_t *err);

/* Fills out[0..RM_STATUS_TRAILERS_MAX) with err's trailers (kind, failing node, field;
 * each only when non-empty) and returns how many. The values are copied slices the caller
 * unrefs (keys are static). Any thread. */
size_t rm_status_trailers(const rm_error_t *err, grpc_metadata *out);

/* The standard form of the same failure: a serialized google.rpc.Status {code, message,
 * details} whose details are a google.rpc.ErrorInfo (reason: the error kind in upper case,
 * "INVALID_PARAMS"; domain RM_STATUS_DOMAIN; metadata "node", "field" and "request_id",
 * each only when known) and, for manifest, params, unknown-type and input errors, a
 * google.rpc.BadRequest with one field violation: the path of the bad field in the
 * request ("manifest.nodes[g].params.db", "inputs[src].sample_rate") and the message.
 * request_id (the client's x-request-id, may be NULL) is cut to RM_STATUS_REQUEST_ID_MAX.
 * A new slice the caller unrefs. Any thread. */
grpc_slice rm_status_details(const rm_error_t *err, const char *request_id);

/* Non-zero when sending the same request again cannot succeed although its status is
 * RESOURCE_EXHAUSTED, the code clients retry: a limit (RM_ELIMIT) not marked retry_later.
 * Marked are a full server (max_concurrent, max_sessions) and memory that other calls hold
 * (max_memory, "retry later"), which a retry may well pass (on this replica once they end,
 * or on another); a per-request limit, or memory the server cannot give however long the
 * client waits ("it cannot be served here"), is not. Such failures carry
 * grpc-retry-pushback-ms: -1, which tells gRPC clients not to retry. */
int rm_status_no_retry(const rm_error_t *err);

/* Every trailer of a failure: those of rm_status_trailers, then grpc-status-details-bin
 * (rm_status_details) and, when rm_status_no_retry, grpc-retry-pushback-ms: -1. Fills
 * out[0..RM_STATUS_TRAILERS_MAX) and returns how many; values are slices the caller
 * unrefs. Any thread. */
size_t rm_status_trailers_full(const rm_error_t *err, const char *request_id, grpc_metadata *out);

/* rm_status_trailers_full for a failure of one step of a stream, identified as its result
 * would have been (StreamResult.sequence and .flushed): sequence (in decimal; NULL or "" for
 * none) also goes out as the rm-sequence trailer and as ErrorInfo metadata "sequence", and
 * flushed (a flush's failure, not a chunk's) as rm-flushed: true and ErrorInfo metadata
 * "flushed": "true". Same ownership. Any thread. */
size_t rm_status_trailers_seq(const rm_error_t *err, const char *request_id, const char *sequence,
                              int flushed, grpc_metadata *out);

/* Non-zero for the status of a bug (INTERNAL): such calls are logged as errors. */
int rm_status_is_bug(grpc_status_code code);

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN" outside 0-16. Static storage. */
const char *rm_status_name(grpc_status_code code);

#endif
