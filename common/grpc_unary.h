/* grpc_unary.h - one unary exchange on the gRPC C core, the batch the server's warm call and
 * the C client both send (in rm_common; never exported by librmclient). */
#ifndef RM_GRPC_UNARY_H
#define RM_GRPC_UNARY_H

#include <grpc/grpc.h>

/* Sends md[0..n_md) with `flags`, the message `send` and the close on `call` (created on the
 * pluck queue cq), and receives the answer (*recv, NULL when none: the caller destroys it),
 * the status (*status, *details: the caller unrefs it) and the trailing metadata (into the
 * caller's initialised array); the initial metadata is dropped. Waits until the batch is done:
 * the call's deadline bounds that. Returns what grpc_call_start_batch said (GRPC_CALL_OK: the
 * batch ran), and *completed is 1 when the queue then gave its completion (0: the queue ended
 * first; the outputs are as initialised then). */
grpc_call_error rm__grpc_unary(grpc_call *call, grpc_completion_queue *cq, const grpc_metadata *md,
                               size_t n_md, uint32_t flags, grpc_byte_buffer *send,
                               grpc_byte_buffer **recv, grpc_status_code *status,
                               grpc_slice *details, grpc_metadata_array *trailing, int *completed);

#endif
