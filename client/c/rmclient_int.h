/* rmclient_int.h - librmclient internals shared by its modules (not installed). */
#ifndef RMCLIENT_INT_H
#define RMCLIENT_INT_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <protobuf-c/protobuf-c.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm_version.h"
#include "rmclient.h"

#define RM_CLIENT_VERSION RM_VERSION /* librmclient is versioned with the project */

struct rm_client {
  grpc_channel *channel;
  char *auth_value; /* "Bearer <token>", NULL without a token */
  size_t auth_len;
  int64_t default_timeout_ms;
  int wait_for_ready;
};

/* Fills err (if any) with a local error: code, status 0, empty trailers, a printf
 * message. Returns code. */
int rm__client_fail(rm_client_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 0, or RM_CLIENT_EINVAL naming `what` when value (the text of a metadata value: token,
 * request id) has a byte gRPC refuses in a non -bin header: only printable ASCII
 * (0x20-0x7E) passes. Checked before a call, so the core never sees it. */
int rm__client_check_metadata(const char *value, const char *what, rm_client_error_t *err);

/* One unary call of `method` ("/pkg.Service/Method") with request `req` (and x-request-id
 * when request_id is not NULL); on OK decodes
 * the answer as `resp_desc` into *out (free with protobuf_c_message_free_unpacked(.., NULL)).
 * Returns 0 or RM_CLIENT_ESTATUS / EPROTO / ENOMEM / EINTERNAL with err filled. Any
 * thread: each call has its own completion queue. */
int rm__client_unary(rm_client_t *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                     const char *request_id, ProtobufCMessage **out, rm_client_error_t *err);

/* The error of a call that ended with a non-OK status: code RM_CLIENT_ESTATUS, the status
 * message, and the standard details / rm-* trailers. Returns RM_CLIENT_ESTATUS. */
int rm__client_status_error(rm_client_error_t *err, grpc_status_code status, grpc_slice details,
                            const grpc_metadata_array *trailing);

/* The deadline of a call given the caller's timeout (see "Timeouts" in rmclient.h). */
gpr_timespec rm__client_deadline(const rm_client_t *c, int64_t timeout_ms);

/* A received message decoded as desc (in place when it is one slice) into *out, its strings
 * checked (no NUL byte, valid UTF-8: protobuf-c checks neither): 0, or RM_CLIENT_EPROTO with
 * err naming what is wrong (*out NULL). */
int rm__client_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                      ProtobufCMessage **out, rm_client_error_t *err);

/* Storage of one outgoing DataBuffer; payload bytes are borrowed from the caller. */
typedef struct rm__client_wire {
  Remotemedia__V1__DataBuffer msg;
  union {
    Remotemedia__V1__AudioBuffer audio;
    Remotemedia__V1__TensorBuffer tensor;
    Remotemedia__V1__JsonBuffer json;
    Remotemedia__V1__TextBuffer text;
    Remotemedia__V1__BinaryBuffer binary;
  } u;
} rm__client_wire_t;

/* 0, or RM_CLIENT_EINVAL naming inputs[i] when the input view is unusable. */
int rm__client_check_input(const rm_client_input_t *in, size_t i, rm_client_error_t *err);
/* Fills w (borrowing b's bytes) with the wire form of a checked buffer view. */
void rm__client_to_wire(const rm_client_buffer_t *b, rm__client_wire_t *w);
/* Fills out with the limits in; returns non-zero when any is set (send out), 0 when all are
 * the server's (send none). */
int rm__client_limits_to_proto(const rm_client_limits_t *in, Remotemedia__V1__ExecutionLimits *out);
/* The wire manifest of a JSON manifest (free with rm_wire_manifest_proto_free), or
 * RM_CLIENT_EMANIFEST / ENOMEM. */
int rm__client_manifest_from_json(const char *text, Remotemedia__V1__PipelineManifest **out,
                                  rm_client_error_t *err);

/* Output views, sorted by key, of n (key, NodeOutput) pairs: *outputs and *items are
 * calloc'd (free both), the views borrow from values. 0, RM_CLIENT_ENOMEM, or
 * RM_CLIENT_EPROTO (err filled) when an item is inconsistent (rm__client_check_item);
 * nothing is left allocated on failure. */
int rm__client_outputs_build(size_t n, const char *const *keys,
                             Remotemedia__V1__NodeOutput *const *values,
                             rm_client_output_t **outputs, rm_client_buffer_t **items,
                             rm_client_error_t *err);
/* bsearch by key in outputs sorted by rm__client_outputs_build; NULL when absent. */
const rm_client_output_t *rm__client_outputs_find(const rm_client_output_t *outputs, size_t n,
                                                  const char *key);

/* A result wrapping an unpacked response, which it takes even on failure: 0 and *out, or
 * RM_CLIENT_ENOMEM / RM_CLIENT_EPROTO (an inconsistent output or metrics) with err filled. */
int rm__client_result_new(Remotemedia__V1__ExecuteResponse *resp, rm_client_result_t **out,
                          rm_client_error_t *err);

/* Checks of what a server sent (rmclient_check.c); each returns 0 or RM_CLIENT_EPROTO with
 * err naming what is wrong, prefixed "the server's response: ". */
/* Item i of output `key` is consistent: audio of a known format with 1..64 channels,
 * 1..768000 Hz and whole frames; a tensor of a known dtype whose shape (no negative
 * dimension) needs exactly its bytes; JSON that parses. */
int rm__client_check_item(const char *key, size_t i, const rm_client_buffer_t *b,
                          rm_client_error_t *err);
/* Every real of the metrics message is finite (the seed's JSON has no NaN or inf). NULL
 * passes. */
int rm__client_check_metrics(const Remotemedia__V1__PipelineMetrics *m, rm_client_error_t *err);

#endif
