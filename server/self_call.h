/* self_call.h - unary calls from this process to its own gRPC port: the warm call
 * (warm_call.h) and the metrics listener's /healthz (metrics_http.h). */
#ifndef RM_SERVER_SELF_CALL_H
#define RM_SERVER_SELF_CALL_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

/* The gRPC target the calls go to: a wildcard host as 127.0.0.1 ("ipv4:127.0.0.1:PORT"), a
 * numeric one as an ipv4:/ipv6: target, a name or a unix: address as it is; the bound port. */
void rm_self_call_target(const rm_server_t *s, char *out, size_t cap);

/* Why the server cannot call its own port (a static text), or NULL when it can: with TLS
 * that requires client certificates it holds no client identity. */
const char *rm_self_call_impossible(const rm_server_t *s);

/* Lets another thread cancel the call in flight (rm_self_call_cancel): zero it, then
 * pthread_mutex_init mu. */
typedef struct rm_self_call_slot {
  pthread_mutex_t mu;
  grpc_call *call; /* in flight, under mu */
  int cancelled;   /* under mu: calls end at once with GRPC_STATUS_CANCELLED */
} rm_self_call_slot_t;

/* Cancels the call in slot's flight and every later one. Any thread. */
void rm_self_call_cancel(rm_self_call_slot_t *slot);

/* One unary call of `request` (not consumed) to method `path` on the server's own listening
 * address (rm_self_call_target; no proxy), on a channel of its own,
 * with one of the accepted tokens when the server has any, ending within deadline_ms. The call's
 * status code (GRPC_STATUS_INTERNAL when the batch could not start); the response's length in
 * *received (0: none; NULL: not wanted) and the response in *response (the caller destroys it;
 * NULL: not wanted). With slot (may be NULL), rm_self_call_cancel can end it early. Blocks;
 * not on a polling thread. With TLS the channel trusts exactly the certificate the server
 * presents. Not when rm_self_call_impossible (the callers check). */
grpc_status_code rm_self_call(rm_server_t *s, const char *path, grpc_byte_buffer *request,
                              int64_t deadline_ms, rm_self_call_slot_t *slot, size_t *received,
                              grpc_byte_buffer **response);

#endif
