/* node.h - what a node type is (a table of functions registered by name) and the context
 * its process() call works through.
 *
 * Lifecycle of one node instance: create() once when the pipeline is compiled, then
 * process() once per invocation, flush() once at end of stream (if defined), destroy()
 * once. A node's state lives in the instance, so stateful nodes (resamplers, codecs)
 * carry it from one chunk of a stream to the next.
 *
 * Callback rule: if create() fails it must leave *state unset and free what it made;
 * destroy() is then never called. If process() or flush() fails, the buffers it emitted
 * before failing are dropped by the executor, and destroy() still runs later.
 *
 * Input rule: an input buffer may borrow the request's memory, which is gone after the run.
 * A node that needs samples in a later run copies them; it never keeps a reference to an
 * input past the invocation that received it. */
#ifndef RM_NODE_H
#define RM_NODE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rm/buffer.h"
#include "rm/error.h"
#include "rm/params.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  RM_PORT_VARIADIC = 1u << 0,      /* input: any number of connections (fan-in) */
  RM_PORT_SAME_AS_INPUT = 1u << 1, /* output: carries the kind that came in */
  RM_PORT_OPTIONAL = 1u << 2,      /* input: may be left unconnected */
};

typedef struct rm_port_spec {
  const char *name;
  unsigned kinds; /* rm_kind_t mask accepted / produced */
  unsigned flags;
  const char *description;
} rm_port_spec_t;

enum {
  /* The node's cost is not bounded by a small multiple of its input size (codecs,
   * resamplers, FFTs, sleeps): the server runs pipelines containing one off its polling
   * threads. */
  RM_NODE_HEAVY = 1u << 0,
  /* In a run that ends the stream, what flush() emits on a port continues the last item
   * emitted on that port in the same run (a resampler's tail, the last spectrogram frames):
   * the engine joins them, so a one-shot run gives one item where a stream gives several.
   * Joined items must agree: audio of one rate, channel count and format; f32 tensors
   * [frames, bins] with equal bins; binary of one mime type. */
  RM_NODE_JOIN_TAIL = 1u << 1,
  /* The instance carries nothing from one stream into the next: what it keeps is its params
   * and its set-up (a resampler, an FFT plan, a codec), and end_stream() returns it to a
   * state that gives, byte for byte, what a freshly created instance would give on any next
   * stream (an input of another rate or channel count rebuilds the set-up then). One compiled
   * pipeline made only of such nodes may serve any number of unrelated one-shot runs, one at
   * a time, so the server reuses it across requests instead of compiling it again. */
  RM_NODE_REUSABLE = 1u << 2,
  /* process() and flush() never read their inputs' payload bytes (data[]): they emit the
   * input buffers themselves, or nothing, and read only kinds, sizes and metadata. A pipeline
   * made only of such nodes runs on inputs whose payload bytes are not there yet
   * (rm_pipeline_reads_payload). */
  RM_NODE_FORWARDS_PAYLOAD = 1u << 3,
};

typedef struct rm_node_ctx rm_node_ctx_t;

typedef struct rm_node_type {
  const char *name;
  const char *description;
  const rm_param_spec_t *params;
  size_t n_params;
  const rm_port_spec_t *inputs;
  size_t n_inputs;
  const rm_port_spec_t *outputs;
  size_t n_outputs;
  unsigned flags;
  /* params: validated, defaults filled. Node-specific checks (one key against another)
   * fail with RM_EPARAM naming the key; the caller fills err->node_id. */
  int (*create)(const json_t *params, void **state, rm_error_t *err);
  /* One invocation over the inputs in ctx. Returns 0 or a negative RM_E* recorded with
   * rm_node_fail(). */
  int (*process)(void *state, rm_node_ctx_t *ctx);
  /* Optional: end of stream; emit whatever the node still buffers. No inputs in ctx. */
  int (*flush)(void *state, rm_node_ctx_t *ctx);
  /* Optional (required of a stateful RM_NODE_REUSABLE type): the stream is over, so drop
   * what it left in the instance; the next item starts a new stream. Called after the last
   * invocation of a run that ends the stream (after flush()), after any failed process() or
   * flush(), whose partial state must not leak into the next stream, and on every node of a
   * pipeline whose one-shot run failed or stopped (rm_pipeline_end_streams), so it must be
   * harmless on an instance that is already clean. It may keep set-up that the next stream
   * can use again, reset to its initial state (soxr_clear, OPUS_RESET_STATE); it frees
   * scratch above 1 MiB, so an idle cached pipeline holds little. */
  void (*end_stream)(void *state);
  void (*destroy)(void *state);
} rm_node_type_t;

/* Inputs of the current invocation, one per incoming connection in connection order
 * (for a source node: the request's input for it). Borrowed: rm_buffer_ref() to keep. */
size_t rm_node_input_count(const rm_node_ctx_t *ctx);
rm_buffer_t *rm_node_input(const rm_node_ctx_t *ctx, size_t i);
/* Id of the node input i came from, or NULL when it is the request's input. */
const char *rm_node_input_source(const rm_node_ctx_t *ctx, size_t i);

struct rm_limits;
/* The run's buffer limits (rm_limits_t from pipeline.h; 0 fields mean unlimited), so a node
 * can refuse before allocating something rm_node_emit would reject. */
const struct rm_limits *rm_node_limits(const rm_node_ctx_t *ctx);

/* Emits buf on output port `port`, taking ownership of it even on failure. Fails with
 * RM_EINTERNAL for a bad port or a kind the port does not declare, RM_ELIMIT when the
 * buffer is larger than the run's limits, RM_ENOMEM. */
int rm_node_emit(rm_node_ctx_t *ctx, unsigned port, rm_buffer_t *buf);

/* The account new buffers of this node should be created with. */
rm_mem_account_t *rm_node_account(const rm_node_ctx_t *ctx);

/* 0 while the run may continue; RM_ETIMEDOUT or RM_ECANCELED once it must stop. Cheap
 * (one clock read when a deadline is set): long nodes call it every few milliseconds of
 * work and return its code when it is non-zero. */
int rm_node_check(rm_node_ctx_t *ctx);

/* Records a failure of this node (the node id is filled in) and returns code. */
int rm_node_fail(rm_node_ctx_t *ctx, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif
#endif
