/* pipeline.h - compiling a manifest into a runnable pipeline (validation, topological
 * schedule, node instances) and running it.
 *
 * A compiled pipeline may be run any number of times (a stream feeds it chunk by chunk)
 * but by one thread at a time. Items flow along edges: a node is invoked once per item
 * arriving on its connections (with several incoming connections, the i-th items of each
 * form one invocation and a single item is reused for every invocation). */
#ifndef RM_PIPELINE_H
#define RM_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rm/arena.h"
#include "rm/budget.h"
#include "rm/buffer.h"
#include "rm/error.h"
#include "rm/manifest.h"
#include "rm/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The run's limits; 0 means unlimited. Every field is listed once here, as
 * X(type, name): the struct below and the server's compiled-pipeline cache key are both
 * built from this list, so a new limit cannot be left out of the key. Widest fields first:
 * the struct has no padding, and a unit test (test_exec_cache) checks that its size is the
 * sum of the listed fields' (a field added to the struct outside the list fails it). */
#define RM_LIMITS_FIELDS(X)                                                                        \
  X(uint64_t, max_audio_samples) /* per audio buffer (frames * channels), inputs, emitted */       \
  X(uint64_t, max_buffer_bytes)  /* per buffer, inputs and emitted */                              \
  X(uint64_t, max_items)         /* buffers emitted by all nodes in one run */                     \
  X(uint64_t, max_memory_bytes)  /* the run's memory budget: every byte it allocates, rm_budget */ \
  X(uint32_t, max_nodes)         /* nodes in one pipeline */                                       \
  X(uint32_t, max_connections)   /* edges in one pipeline */

#define RM_LIMITS_MEMBER_(type, name) type name;
typedef struct rm_limits {
  RM_LIMITS_FIELDS(RM_LIMITS_MEMBER_)
} rm_limits_t;
#undef RM_LIMITS_MEMBER_

typedef struct rm_pipeline rm_pipeline_t;

/* Validates m and builds the pipeline: empty pipeline, bad or duplicate ids, unknown node
 * type (RM_ENOTYPE), edges to missing nodes or ports, cycles (naming a node on one), data
 * kinds that cannot meet, params that fail the node's validation, too many nodes
 * (RM_ELIMIT). The manifest is not retained. limits may be NULL. 0 and *out, or an error
 * with err filled (*out untouched). Any thread; the result belongs to the caller.
 *
 * Memory: the pipeline gets a budget of its own (rm_pipeline_budget) of
 * limits->max_memory_bytes (0: no limit of its own), drawing from the budget current on the
 * calling thread (rm_budget_enter; e.g. a server's budget, which must outlive the pipeline
 * and its results). The pipeline is built and every run made under it: an allocation it
 * refuses fails the node with RM_ELIMIT, err->field "max_memory_bytes" (or "max_memory"
 * when a parent refused), naming the node, before the memory is touched. */
int rm_pipeline_new(const rm_manifest_t *m, const rm_limits_t *limits, rm_pipeline_t **out,
                    rm_error_t *err);

/* Whose memory budget a pipeline has and which setting sized it, as the messages of the
 * allocations it refuses name them: "node 'g' (Gain) needs N more bytes of memory, above the
 * <owner>'s budget: U of its L bytes in use (<limit>)", and "the <owner>'s inputs hold N
 * bytes, above its memory budget of L bytes (<limit>) ...". err->field stays
 * "max_memory_bytes". The strings must outlive the pipeline (static storage, usually); a NULL
 * member is "request" / "max_memory_bytes", rm_pipeline_new's. */
typedef struct rm_budget_label {
  const char *owner; /* "request", "session" */
  const char *limit; /* the field or option that set the budget's size */
  /* Asked, on the refusing thread, when the budget's parent (a server's budget) refuses an
   * allocation while the pipeline is created or run: what the refusal says after its
   * figures ("... (max-memory)" + this). NULL, or no function, is "; retry later", marked
   * retry_later, for a parent other calls share and may give back; a caller that knows no
   * wait would help returns its reason (static storage). parent_arg must outlive the
   * pipeline. */
  const char *(*parent_tail)(void *parent_arg);
  void *parent_arg;
} rm_budget_label_t;

/* rm_pipeline_new whose budget's refusals name label's owner and limit (label may be NULL:
 * rm_pipeline_new). A StreamPipeline session's pipeline says "the session's budget". */
int rm_pipeline_new_labelled(const rm_manifest_t *m, const rm_limits_t *limits,
                             const rm_budget_label_t *label, rm_pipeline_t **out, rm_error_t *err);
/* Frees p, its node instances and its metrics. NULL is a no-op. */
void rm_pipeline_free(rm_pipeline_t *p);

const char *rm_pipeline_name(const rm_pipeline_t *p);
/* Non-zero when name is one rm_pipeline_new accepts: at most 256 bytes of printable UTF-8.
 * Any thread. */
int rm_pipeline_name_valid(const char *name);
size_t rm_pipeline_node_count(const rm_pipeline_t *p);
/* Non-zero when some node's type has RM_NODE_HEAVY. */
int rm_pipeline_is_heavy(const rm_pipeline_t *p);
/* Non-zero when every node's type has RM_NODE_REUSABLE: p may serve unrelated runs. */
int rm_pipeline_is_reusable(const rm_pipeline_t *p);
/* Non-zero when some node's type lacks RM_NODE_FORWARDS_PAYLOAD: a run may read its inputs'
 * payload bytes. When 0, the payloads of the inputs need not hold their bytes yet (the
 * server forwards a PassThrough's payload without copying it in). */
int rm_pipeline_reads_payload(const rm_pipeline_t *p);
/* Ends the stream on every node (the type's end_stream), so the next run starts as on a
 * freshly compiled pipeline: what a caller does before reusing p after a stream it abandons.
 * rm_pipeline_run does it itself when a run with end_of_stream fails or stops. Same thread
 * rules as rm_pipeline_run. */
void rm_pipeline_end_streams(rm_pipeline_t *p);
/* Forgets the metrics of earlier runs (counts, durations, peak memory, overhead), so the
 * next run reports only itself. For a reusable pipeline serving a new request. */
void rm_pipeline_reset_metrics(rm_pipeline_t *p);

typedef struct rm_input {
  const char *node_id;
  rm_buffer_t *buf; /* borrowed for the run */
} rm_input_t;

typedef struct rm_run_opts {
  int metrics;              /* record metrics for this run */
  uint64_t deadline_ns;     /* rm_clock_ns() value after which the run stops; 0 = none */
  const atomic_int *cancel; /* the run stops once *cancel != 0 (set from any thread); may be NULL */
  int end_of_stream;        /* call flush() on every node after the items are processed */
  const char *const *output_nodes; /* primary outputs to return; NULL/0 = every sink */
  size_t n_output_nodes;
  /* When set, the result's own storage comes from this arena, which must outlive it
   * (rm_result_free then only drops the result's buffer references): a server saves two
   * allocations per run. NULL: rm_malloc. */
  rm_arena_t *arena;
  /* Called after every node invocation with the node's type name (static storage), the
   * nanoseconds it took (the very figure the metrics record, from the same two clock reads)
   * and whether it succeeded: a server's cumulative counters. NULL = none. Calling thread. */
  void (*on_node)(void *arg, const char *node_type, uint64_t ns, int ok);
  void *on_node_arg;
  /* When set (with on_node or metrics), receives the clock readings that bracket the run's
   * node invocations: [0] the first one's start, [1] the last one's end (both 0 when no node
   * ran), so a server can split a call's time into queue and compute without reading the
   * clock again. Calling thread. */
  uint64_t *node_span;
} rm_run_opts_t;

typedef struct rm_output {
  char *key;           /* node id, or "node_id.port" for a non-primary port; owned */
  const char *node_id; /* borrowed from the pipeline */
  const char *port;    /* static */
  rm_buffer_t **items;
  size_t n_items;
} rm_output_t;

typedef enum rm_node_state {
  RM_NODE_SKIPPED = 0,
  RM_NODE_OK = 1,
  RM_NODE_FAILED = 2,
} rm_node_state_t;

typedef struct rm_node_result {
  const char *node_id; /* borrowed from the pipeline */
  rm_node_state_t state;
  uint64_t invocations;
  uint64_t items_out;
} rm_node_result_t;

typedef struct rm_result {
  rm_output_t *outputs;
  size_t n_outputs;
  rm_node_result_t *nodes; /* execution order */
  size_t n_nodes;
  int in_arena; /* storage from rm_run_opts_t.arena */
} rm_result_t;

/* Runs p over inputs (one per source node that takes input; each keyed node must exist
 * and have no incoming connections: RM_EINPUT otherwise). On success returns 0 and a new
 * result in *out. On failure returns the error (err names the failing node) and still
 * stores a result with the per-node states and no outputs in *out when memory allows
 * (else *out = NULL). Input buffers must be valid (rm_buffer_validate) and outlive the
 * call; outputs may reference them. The inputs' bytes count against p's budget during the
 * run (its own limit only: they are the caller's memory, not drawn from its parents again):
 * inputs alone above max_memory_bytes fail at once with RM_ELIMIT. */
int rm_pipeline_run(rm_pipeline_t *p, const rm_input_t *inputs, size_t n_inputs,
                    const rm_run_opts_t *opts, rm_result_t **out, rm_error_t *err);
/* The end of a stream fed chunk by chunk (runs with end_of_stream 0): a run with no inputs
 * in which every node's flush() emits what it still holds (a resampler's tail, VAD's open
 * segment, an encoder's last frame) and end_stream() drops its state, so the next run
 * starts a new stream. opts as for rm_pipeline_run (end_of_stream is forced on; may be
 * NULL); returns and result as rm_pipeline_run. Same thread rules. */
int rm_pipeline_flush(rm_pipeline_t *p, const rm_run_opts_t *opts, rm_result_t **out,
                      rm_error_t *err);
/* The dry run of rm_pipeline_run: checks inputs and opts->output_nodes exactly as a run
 * would (same errors) and runs no node. opts may be NULL. 0, or RM_EINPUT / RM_ELIMIT with
 * err filled. Same thread rules as rm_pipeline_run. */
int rm_pipeline_check_inputs(rm_pipeline_t *p, const rm_input_t *inputs, size_t n_inputs,
                             const rm_run_opts_t *opts, rm_error_t *err);
/* The id of the k-th node in execution order, NULL when k >= rm_pipeline_node_count(p).
 * Borrowed from p. */
const char *rm_pipeline_schedule_id(const rm_pipeline_t *p, size_t k);

/* A result may outlive its pipeline: its keys and buffers are its own (buffers release
 * their bytes from the pipeline's account even after rm_pipeline_free), only the node_id
 * fields are borrowed from the pipeline. A result made in an arena (rm_run_opts_t.arena)
 * must be freed before the arena is destroyed. NULL is a no-op. */
void rm_result_free(rm_result_t *r);
/* Moves the bytes of r's buffers that count in p's account to `to` (rm_buffer_move_account),
 * so r may be released on another thread while p serves its next run. Same thread as p's
 * runs. */
void rm_result_move_account(rm_result_t *r, rm_pipeline_t *p, rm_mem_account_t *to);

/* The accumulated metrics of every run made with metrics on. */
rm_metrics_t *rm_pipeline_metrics(rm_pipeline_t *p);
/* The memory account of p's buffers (peak is kept across runs). */
rm_mem_account_t *rm_pipeline_account(rm_pipeline_t *p);
/* p's memory budget (see rm_pipeline_new): everything p, its runs and its results hold. */
rm_budget_t *rm_pipeline_budget(rm_pipeline_t *p);

#ifdef __cplusplus
}
#endif
#endif
