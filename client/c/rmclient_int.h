/* rmclient_int.h - librmclient internals shared by its modules (not installed). */
#ifndef RMCLIENT_INT_H
#define RMCLIENT_INT_H

#include <grpc/grpc.h>
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

/* One unary call of `method` ("/pkg.Service/Method") with request `req` (and x-request-id
 * when request_id is not NULL); on OK decodes
 * the answer as `resp_desc` into *out (free with protobuf_c_message_free_unpacked(.., NULL)).
 * Returns 0 or RM_CLIENT_ESTATUS / EPROTO / ENOMEM / EINTERNAL with err filled. Any
 * thread: each call has its own completion queue. */
int rm__client_unary(rm_client_t *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms,
                     const char *request_id, ProtobufCMessage **out, rm_client_error_t *err);

/* A result wrapping an unpacked response, which it takes even on failure. NULL on OOM. */
rm_client_result_t *rm__client_result_new(Remotemedia__V1__ExecuteResponse *resp);

#endif
