/* grpc_unary.c - one unary exchange on the gRPC C core. See grpc_unary.h. */
#include "grpc_unary.h"

#include <string.h>

grpc_call_error rm__grpc_unary(grpc_call *call, grpc_completion_queue *cq, const grpc_metadata *md,
                               size_t n_md, uint32_t flags, grpc_byte_buffer *send,
                               grpc_byte_buffer **recv, grpc_status_code *status,
                               grpc_slice *details, grpc_metadata_array *trailing, int *completed) {
  grpc_metadata_array initial;
  grpc_metadata_array_init(&initial);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = n_md;
  ops[0].data.send_initial_metadata.metadata = n_md ? (grpc_metadata *)md : NULL;
  ops[0].flags = flags;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = trailing;
  ops[5].data.recv_status_on_client.status = status;
  ops[5].data.recv_status_on_client.status_details = details;
  void *tag = ops; /* any unique address: the call's only batch */
  *completed = 0;
  grpc_call_error ce = grpc_call_start_batch(call, ops, 6, tag, NULL);
  if (ce == GRPC_CALL_OK) /* a batch with RECV_STATUS always completes */
    *completed =
        grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type ==
        GRPC_OP_COMPLETE;
  grpc_metadata_array_destroy(&initial);
  return ce;
}
