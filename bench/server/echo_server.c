/* echo_server.c - the baseline for throughput: a bare gRPC C-core server that answers every
 * call to one method with the request bytes, one completion queue and one polling thread,
 * 64 outstanding request slots. With "sink" it answers an empty message instead (the floor for
 * a call that sends megabytes and gets a small answer: the transport alone).
 * Usage: echo_server [host:port] [method-path] [sink] */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64

typedef struct slot {
  int state; /* 0 = waiting for a call, 1 = replying */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  int cancelled;
  grpc_slice details;
} slot_t;

static grpc_server *server;
static grpc_completion_queue *cq;
static void *method;
static slot_t slots[SLOTS];
static int sink;

static void request(slot_t *s) {
  s->state = 0;
  grpc_metadata_array_init(&s->md);
  s->payload = NULL;
  grpc_server_request_registered_call(server, method, &s->call, &s->deadline, &s->md, &s->payload,
                                      cq, cq, s);
}

static void reply(slot_t *s) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  if (sink && s->payload) {
    grpc_byte_buffer_destroy(s->payload);
    s->payload = grpc_raw_byte_buffer_create(NULL, 0);
  }
  ops[1].data.send_message.send_message = s->payload;
  ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
  s->details = grpc_empty_slice();
  ops[2].data.send_status_from_server.status_details = &s->details;
  ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[3].data.recv_close_on_server.cancelled = &s->cancelled;
  s->state = 1;
  grpc_call_start_batch(s->call, ops, 4, s, NULL);
}

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1:50099";
  const char *path = argc > 2 ? argv[2] : "/remotemedia.v1.PipelineService/ExecutePipeline";
  sink = argc > 3 && strcmp(argv[3], "sink") == 0;
  grpc_init();
  grpc_arg args[] = {{GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}}};
  grpc_channel_args ch_args = {1, args};
  server = grpc_server_create(&ch_args, NULL);
  cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(server, cq, NULL);
  method =
      grpc_server_register_method(server, path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(server, addr, creds);
  grpc_server_credentials_release(creds);
  if (port <= 0) {
    fprintf(stderr, "echo_server: cannot listen on %s\n", addr);
    return 1;
  }
  grpc_server_start(server);
  for (int i = 0; i < SLOTS; i++)
    request(&slots[i]);
  fprintf(stderr, "{\"event\":\"listening\",\"port\":%d}\n", port);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE)
      break;
    slot_t *s = ev.tag;
    if (s->state == 0 && ev.success) {
      reply(s);
    } else if (s->state == 1) {
      if (s->payload)
        grpc_byte_buffer_destroy(s->payload);
      grpc_metadata_array_destroy(&s->md);
      grpc_call_unref(s->call);
      request(s);
    }
  }
  return 0;
}
