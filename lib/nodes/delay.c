/* delay.c - Delay: waits, then emits its input unchanged. For tests of deadlines,
 * cancellation and draining, and for pacing. Honours the run's deadline and cancellation
 * while it waits. */
#include <time.h>

#include "rm/alloc.h"
#include "rm/node.h"

static const rm_param_spec_t params[] = {
    {"ms", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, 0, 600000, "0", NULL,
     "milliseconds to wait per invocation"},
};
static const rm_port_spec_t inputs[] = {{"in", RM_KIND_ANY, 0, "any data"}};
static const rm_port_spec_t outputs[] = {{"out", RM_KIND_ANY, RM_PORT_SAME_AS_INPUT, "the input"}};

static int create(const json_t *p, void **state, rm_error_t *err) {
  long long *ms = rm_malloc(sizeof *ms);
  if (!ms)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  *ms = rm_params_integer(p, "ms");
  *state = ms;
  return 0;
}

static int process(void *state, rm_node_ctx_t *ctx) {
  long long left = *(long long *)state;
  int rc;
  while (left > 0) { /* wake every 5 ms to notice a deadline or a cancellation */
    if ((rc = rm_node_check(ctx)))
      return rc;
    long long step = left < 5 ? left : 5;
    struct timespec ts = {0, step * 1000000L};
    nanosleep(&ts, NULL);
    left -= step;
  }
  if ((rc = rm_node_check(ctx)))
    return rc;
  return rm_node_emit(ctx, 0, rm_buffer_ref(rm_node_input(ctx, 0)));
}

static void destroy(void *state) { rm_free(state); }

const rm_node_type_t rm__node_type_delay = {
    .name = "Delay",
    .description = "Waits `ms` milliseconds, then emits its input unchanged.",
    .params = params,
    .n_params = 1,
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_HEAVY | RM_NODE_REUSABLE | RM_NODE_FORWARDS_PAYLOAD,
    .create = create,
    .process = process,
    .destroy = destroy,
};
