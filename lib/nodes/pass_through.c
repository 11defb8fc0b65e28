/* pass_through.c - PassThrough: emits its inputs unchanged (shared, not copied); with
 * several incoming connections it merges them (fan-in). */
#include "rm/node.h"

static const rm_port_spec_t inputs[] = {
    {"in", RM_KIND_ANY, RM_PORT_VARIADIC,
     "any data; with several connections, each invocation emits every input in connection "
     "order"}};
static const rm_port_spec_t outputs[] = {{"out", RM_KIND_ANY, RM_PORT_SAME_AS_INPUT, "the input"}};

static int create(const json_t *params, void **state, rm_error_t *err) {
  (void)params, (void)err;
  *state = NULL;
  return 0;
}

static int process(void *state, rm_node_ctx_t *ctx) {
  (void)state;
  size_t n = rm_node_input_count(ctx);
  for (size_t i = 0; i < n; i++) {
    int rc = rm_node_emit(ctx, 0, rm_buffer_ref(rm_node_input(ctx, i)));
    if (rc)
      return rc;
  }
  return 0;
}

const rm_node_type_t rm__node_type_pass_through = {
    .name = "PassThrough",
    .description = "Emits its inputs unchanged, without copying them; merges several "
                   "connections.",
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_REUSABLE | RM_NODE_FORWARDS_PAYLOAD,
    .create = create,
    .process = process,
};
