/* pipeline_service.c - remotemedia.v1.PipelineService: ExecutePipeline, ValidatePipeline,
 * ListNodeTypes, GetVersion, as thin translations between the wire messages and the engine. */
#include "pipeline_service.h"

#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"
#include "rm/registry.h"
#include "rm/wire.h"
#include "bytebuf.h"
#include "exec_cache.h"
#include "rm_version.h"
#include "log.h"
#include "stats.h"
#include "status.h"

#define PROTOCOL_VERSION "1.0"
#define MAX_PARAMS_BYTES (1u << 20) /* all nodes' params text in one request */

/* Lives in the call's arena; holds a reference on the call until job_finish. */
typedef struct exec_job {
  rm_call_t *call;
  rm_server_t *server;
  const Remotemedia__V1__ExecuteRequest *req;
  rm_limits_t limits;
  uint64_t max_input_bytes;
  uint64_t deadline_ns;        /* effective: the earlier of the client's and the server's */
  int server_deadline;         /* the server's execution-time limit is the earlier one */
  uint64_t client_deadline_ns; /* 0 = none */
  uint64_t max_execution_ms;
  rm_manifest_t *manifest;
  rm_pipeline_t *pipeline;
  int cached;    /* the pipeline belongs to this thread's cache, not to the job */
  int reused;    /* a cache hit: compiled by an earlier request */
  int on_worker; /* running on a worker thread, which may wait for memory */
} exec_job_t;

static uint64_t lower(uint64_t server, uint64_t requested) {
  return requested && requested < server ? requested : server;
}

static void job_finish(exec_job_t *job) {
  rm_server_exec_release(job->server);
  if (!job->cached)
    rm_pipeline_free(job->pipeline);
  rm_manifest_free(job->manifest);
  rm_call_unref(job->call); /* last: the job lives in the call's arena */
}

/* What a refusal by the server's budget says while a request's pipeline is created or run
 * (rm_budget_label_t.parent_tail): when no other call holds memory (rm_server_memory_alone;
 * the request's call counts itself since its admission by bytes), what the budget holds is
 * the server's own and this run's, which no wait frees. */
static const char *refusal_tail(void *server) {
  return rm_server_memory_alone(server, 1)
             ? ", by the server itself and this run alone: it cannot be served here"
             : NULL;
}

/* What the refusals of a request's budget name as its size's origin: the request's own
 * limits.max_memory_bytes when it lowered the server's, else --max-request-memory; and what
 * a refusal by the server's budget says (refusal_tail). A function of the limits, which key
 * the compiled-pipeline cache, and of the server, which outlives its cached pipelines. */
static rm_budget_label_t budget_label(rm_server_t *s, const rm_limits_t *l) {
  return (rm_budget_label_t){.owner = "request",
                             .limit = l->max_memory_bytes < rm_server_config(s)->max_request_memory
                                          ? "max_memory_bytes"
                                          : "max-request-memory",
                             .parent_tail = refusal_tail,
                             .parent_arg = s};
}

/* Compiles the pipeline (manifest checks, limits). 0 or the error, already sent. */
static int compile(exec_job_t *job) {
  rm_error_t err;
  rm_error_clear(&err);
  int rc = rm_wire_manifest_from_proto(job->req->manifest, &job->manifest, &err);
  rm_budget_label_t label = budget_label(job->server, &job->limits);
  if (!rc)
    rc = rm_pipeline_new_labelled(job->manifest, &job->limits, &label, &job->pipeline, &err);
  if (rc)
    rm_call_fail(job->call, &err);
  return rc;
}

/* Per-item storage of one response, freed after packing. */
typedef struct response_store {
  Remotemedia__V1__ExecuteResponse msg;
  Remotemedia__V1__ExecuteResponse__OutputsEntry *entries;
  Remotemedia__V1__ExecuteResponse__OutputsEntry **entry_ptrs;
  Remotemedia__V1__NodeOutput *outs;
  Remotemedia__V1__DataBuffer **item_ptrs;
  rm_wire_buffer_t *wires;
  Remotemedia__V1__NodeResult *results;
  Remotemedia__V1__NodeResult **result_ptrs;
  Remotemedia__V1__PipelineMetrics metrics;
  int has_metrics;
} response_store_t;

#define PART_ALIGN alignof(max_align_t)

/* Everything lives in the call's arena except the metrics nodes (rm_wire_metrics_proto_clear). */
static int build_response(response_store_t *st, exec_job_t *job, const rm_result_t *r) {
  rm_arena_t *arena = rm_call_arena(job->call);
  memset(st, 0, sizeof *st);
  remotemedia__v1__execute_response__init(&st->msg);
  size_t n_items = 0;
  for (size_t i = 0; i < r->n_outputs; i++)
    n_items += r->outputs[i].n_items;
  size_t no = r->n_outputs ? r->n_outputs : 1, nr = r->n_nodes ? r->n_nodes : 1;
  size_t ni = n_items ? n_items : 1;
  /* the parts in one zeroed block, each aligned like malloc's memory */
  size_t sizes[] = {no * sizeof *st->entries,    no * sizeof *st->entry_ptrs,
                    no * sizeof *st->outs,       ni * sizeof *st->item_ptrs,
                    ni * sizeof *st->wires,      nr * sizeof *st->results,
                    nr * sizeof *st->result_ptrs};
  size_t total = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    total += sizes[i] = (sizes[i] + PART_ALIGN - 1) & ~(size_t)(PART_ALIGN - 1);
  char *block = rm_arena_calloc(arena, 1, total);
  if (!block)
    return RM_ENOMEM;
  st->entries = (void *)block;
  st->entry_ptrs = (void *)(block += sizes[0]);
  st->outs = (void *)(block += sizes[1]);
  st->item_ptrs = (void *)(block += sizes[2]);
  st->wires = (void *)(block += sizes[3]);
  st->results = (void *)(block += sizes[4]);
  st->result_ptrs = (void *)(block += sizes[5]);
  rm_wire_outputs_to_proto(r, st->outs, st->item_ptrs, st->wires);
  for (size_t i = 0; i < r->n_outputs; i++) {
    remotemedia__v1__execute_response__outputs_entry__init(&st->entries[i]);
    st->entries[i].key = r->outputs[i].key;
    st->entries[i].value = &st->outs[i];
    st->entry_ptrs[i] = &st->entries[i];
  }
  st->msg.outputs = st->entry_ptrs;
  st->msg.n_outputs = r->n_outputs;
  for (size_t i = 0; i < r->n_nodes; i++) {
    Remotemedia__V1__NodeResult *nr_msg = &st->results[i];
    remotemedia__v1__node_result__init(nr_msg);
    nr_msg->node_id = (char *)r->nodes[i].node_id;
    nr_msg->state = r->nodes[i].state == RM_NODE_OK ? REMOTEMEDIA__V1__NODE_RESULT__STATE__STATE_OK
                    : r->nodes[i].state == RM_NODE_FAILED
                        ? REMOTEMEDIA__V1__NODE_RESULT__STATE__STATE_FAILED
                        : REMOTEMEDIA__V1__NODE_RESULT__STATE__STATE_SKIPPED;
    nr_msg->invocations = r->nodes[i].invocations;
    nr_msg->items_out = r->nodes[i].items_out;
    st->result_ptrs[i] = nr_msg;
  }
  st->msg.node_results = st->result_ptrs;
  st->msg.n_node_results = r->n_nodes;
  st->msg.pipeline_name = (char *)rm_pipeline_name(job->pipeline);
  if (job->req->enable_metrics) {
    remotemedia__v1__pipeline_metrics__init(&st->metrics);
    if (rm_wire_metrics_to_proto(rm_pipeline_metrics(job->pipeline), &st->metrics))
      return RM_ENOMEM;
    st->has_metrics = 1;
    st->msg.metrics = &st->metrics;
  }
  return 0;
}

/* Sends the response. With metrics, the packing buffer is sized by their bound: sizing them
 * exactly would walk their fields (a dozen per node) once more than packing does. */
static void reply(rm_call_t *call, response_store_t *st) {
  size_t metrics_bound = st->has_metrics ? rm_wire_metrics_field_bound(&st->metrics) : 0;
  if (!metrics_bound) {
    rm_call_reply(call, &st->msg.base);
    return;
  }
  st->msg.metrics = NULL;
  size_t rest = protobuf_c_message_get_packed_size(&st->msg.base);
  st->msg.metrics = &st->metrics;
  rm_call_reply_within(call, &st->msg.base, rest + metrics_bound);
}

/* The request's inputs as engine buffers borrowing their payloads: inputs[0..*bound) are
 * set (release them with rm_buffer_unref) even on failure. 0 or RM_EINPUT / RM_ENOMEM,
 * the message naming the input. */
static int wire_inputs(const Remotemedia__V1__ExecuteRequest *req, rm_input_t *inputs,
                       size_t *bound, rm_error_t *err) {
  *bound = 0;
  for (size_t i = 0; i < req->n_inputs; i++) {
    const Remotemedia__V1__ExecuteRequest__InputsEntry *e = req->inputs[i];
    if (!e->value)
      return rm_error_set(err, RM_EINPUT, e->key, "inputs", "input for node '%s' is empty", e->key);
    int rc = rm_wire_buffer_from_proto(e->value, NULL, &inputs[i].buf, err);
    if (rc) {
      /* name the input in the message: the wire layer knows only the field */
      char msg[RM_ERROR_MSG_MAX], field[RM_ERROR_FIELD_MAX];
      snprintf(msg, sizeof msg, "input for node '%.100s': %.380s", e->key, err->message);
      snprintf(field, sizeof field, "%s", err->field);
      return rm_error_set(err, rc, e->key, field, "%s", msg);
    }
    inputs[i].node_id = e->key;
    *bound = i + 1;
  }
  return 0;
}

static void run_job_budgeted(exec_job_t *job);

#define MEMORY_WAIT_STEP_NS (5ull * 1000000ull)

/* What a run takes from the server's budget before it starts: RESERVE_PER_INPUT_BYTE times
 * its input bytes (a heavy pipeline holds its input, a converted copy and a few outputs of
 * that size), at least RESERVE_MIN (an eighth of a smaller --max-memory), at most the
 * request's budget. Small requests stay cheap to admit; a big one is refused at once when
 * the server cannot hold what it will need while others run (see try_reserve). */
#define RESERVE_MIN ((size_t)8 << 20)
#define RESERVE_PER_INPUT_BYTE 8

static size_t reservation(const exec_job_t *job) {
  size_t in = rm_call_request_bytes(job->call);
  size_t want = in > SIZE_MAX / RESERVE_PER_INPUT_BYTE ? SIZE_MAX : in * RESERVE_PER_INPUT_BYTE;
  size_t least = RESERVE_MIN;
  uint64_t server = rm_server_config(job->server)->max_memory;
  if (server && server / 8 < least)
    least = (size_t)(server / 8);
  if (want < least)
    want = least;
  return want < job->limits.max_memory_bytes ? want : (size_t)job->limits.max_memory_bytes;
}

/* What a run alone on the server can reserve: what the server's budget (max-memory) has
 * free, or what the measured holding leaves of it when that is less (held 0: not measured). */
static size_t room_alone(exec_job_t *job, uint64_t held) {
  rm_budget_t *sb = rm_server_budget(job->server);
  uint64_t taken = rm_budget_used(sb), limit = rm_budget_limit(sb);
  if (held > taken)
    taken = held;
  return limit > taken ? (size_t)(limit - taken) : 0;
}

/* rm_budget_reserve, and for a big reservation the same against what the server holds,
 * measured (rm_server_relieve): 0, or RM_ELIMIT with *held set when the measure refused (0
 * when the budget did). A run alone on the server (rm_server_memory_alone) is not refused
 * for its reservation while there is room: what the budget holds then is the server's own
 * or its own call's, which no wait would give back, so it reserves what there is and draws
 * beyond as it goes, within the budget (a node that cannot draw fails, naming max_memory,
 * and says it cannot be served: refusal_tail). */
static int try_reserve(exec_job_t *job, rm_budget_t *pb, size_t want, uint64_t *held) {
  uint64_t h = 0;
  /* small runs never measure: they are most calls, and RESERVE_MIN is their floor */
  int over = want > RESERVE_MIN && rm_server_relieve(job->server, want, &h);
  int rc = over ? RM_ELIMIT : rm_budget_reserve(pb, want);
  *held = over ? h : 0;
  if (rc && rm_server_memory_alone(job->server, 1)) {
    size_t room = room_alone(job, h);
    if (room && room < want && !rm_budget_reserve(pb, room)) {
      rm_budget_refusal_clear();
      *held = 0;
      rc = 0;
    }
  }
  return rc;
}

/* try_reserve, retried for up to --memory-wait-ms on a worker thread (a polling thread never
 * waits: it would stall the calls queued behind it) while the call lives and its deadline
 * allows. 0 or RM_ELIMIT (the last refusal recorded; *held as in try_reserve). */
static int reserve(exec_job_t *job, rm_budget_t *pb, size_t want, uint64_t *held) {
  int rc = try_reserve(job, pb, want, held);
  uint64_t wait_ms = rm_server_config(job->server)->memory_wait_ms;
  if (!rc || !wait_ms || !(job->on_worker || rm_call_on_worker(job->call)))
    return rc;
  uint64_t until = rm_clock_ns() + wait_ms * 1000000ull;
  if (job->deadline_ns && job->deadline_ns < until)
    until = job->deadline_ns;
  const atomic_int *cancel = rm_call_cancel_flag(job->call);
  while (rc && rm_clock_ns() < until && !atomic_load(cancel)) {
    struct timespec step = {0, (long)MEMORY_WAIT_STEP_NS};
    nanosleep(&step, NULL);
    rc = try_reserve(job, pb, want, held);
  }
  return rc;
}

/* Binds the request's inputs, runs, answers. Owns job. Any thread: compiling and running
 * draw from the server's budget (the parent of the pipeline's). */
static void run_job(exec_job_t *job) {
  rm_budget_t *outer = rm_budget_enter(rm_server_budget(job->server));
  run_job_budgeted(job);
  rm_budget_leave(outer);
}

/* What a borrowing response points at (the result's buffers, the inputs they may be, the
 * pipeline whose account they count in): released when the call ends, on that thread. */
typedef struct reply_hold {
  rm_result_t *result;
  rm_input_t *inputs;
  size_t n_inputs;
  rm_pipeline_t *pipeline;
  rm_manifest_t *manifest;
  int trim; /* the run was big: give the freed pages back (see RM_SERVER_TRIM_AFTER_BYTES) */
} reply_hold_t;

static void reply_hold_release(void *arg) {
  reply_hold_t *h = arg;
  rm_result_free(h->result); /* before the pipeline: result buffers count in its account */
  for (size_t i = 0; i < h->n_inputs; i++)
    rm_buffer_unref(h->inputs[i].buf);
  rm_pipeline_free(h->pipeline);
  rm_manifest_free(h->manifest);
  if (h->trim)
    malloc_trim(0);
}

/* Sends the response as a slice list whose payloads point at the output buffers. The result
 * and the inputs belong to the call from then on (released at its end, on whichever thread
 * ends it), and so do the pipeline and the manifest when the job owns them. A cached pipeline
 * serves the next call on this thread while the slices may still live, so the result's
 * buffers first move to an account of their own (unless no payload is big enough to
 * borrow). 1 when done; 0: nothing was done, reply the usual way. */
static int has_big_item(const rm_result_t *r) {
  for (size_t i = 0; i < r->n_outputs; i++)
    for (size_t j = 0; j < r->outputs[i].n_items; j++)
      if (r->outputs[i].items[j]->size >= RM_VIEW_MIN_BYTES)
        return 1;
  return 0;
}

static int reply_borrowing(exec_job_t *job, response_store_t *st, rm_result_t *result,
                           rm_input_t *inputs, size_t bound, int big) {
  if (job->cached && !has_big_item(result)) /* nothing to borrow: a flat copy is cheaper */
    return 0;
  reply_hold_t *h = rm_arena_alloc(rm_call_arena(job->call), sizeof *h);
  if (!h)
    return 0;
  if (job->cached) {
    rm_mem_account_t *own = rm_mem_account_new();
    if (!own)
      return 0;
    rm_result_move_account(result, job->pipeline, own);
    rm_mem_account_free(own); /* the last of the moved buffers frees it */
    *h = (reply_hold_t){result, inputs, bound, NULL, NULL, big};
  } else {
    *h = (reply_hold_t){result, inputs, bound, job->pipeline, job->manifest, big};
    job->pipeline = NULL;
    job->manifest = NULL;
  }
  rm_call_at_end(job->call, reply_hold_release, h);
  rm_call_reply_borrowing(job->call, &st->msg.base, RM_VIEW_MIN_BYTES);
  return 1;
}

static void run_job_budgeted(exec_job_t *job) {
  rm_call_t *call = job->call;
  const Remotemedia__V1__ExecuteRequest *req = job->req;
  rm_error_t err;
  rm_error_clear(&err);
  if (!job->pipeline && compile(job)) {
    job_finish(job);
    return;
  }
  /* a PassThrough's payload is sent back from the received slices, never copied in */
  if (rm_pipeline_reads_payload(job->pipeline))
    rm_call_fill_view(call);
  size_t n = req->n_inputs;
  rm_input_t *inputs = rm_arena_calloc(rm_call_arena(call), n ? n : 1, sizeof *inputs);
  rm_result_t *result = NULL;
  int rc = inputs ? 0 : rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
  size_t bound = 0;
  int big = 0;
  if (!rc)
    rc = wire_inputs(req, inputs, &bound, &err);
  if (!rc) {
    RM_LOG(RM_LOG_DEBUG, "pipeline_start", "{s:s, s:I, s:b, s:I}", "pipeline",
           rm_pipeline_name(job->pipeline), "nodes",
           (json_int_t)rm_pipeline_node_count(job->pipeline), "reused", job->reused,
           "forwarded_bytes", (json_int_t)rm_call_view_gap_bytes(call));
    rm_run_opts_t opts = {
        .metrics = req->enable_metrics,
        .deadline_ns = job->deadline_ns,
        .cancel = rm_call_cancel_flag(call),
        .end_of_stream = 1,
        .output_nodes = (const char *const *)req->output_nodes,
        .n_output_nodes = req->n_output_nodes,
        .arena = rm_call_arena(call), /* the result lives as long as the call */
    };
    /* Admission by bytes: what the run is expected to need is taken from the server's
     * budget at once (see reservation()), so a request that cannot start is refused now,
     * before any work; beyond it the run draws as it goes, within its own budget. */
    rm_budget_t *pb = rm_pipeline_budget(job->pipeline);
    size_t want = reservation(job);
    uint64_t held;
    if (reserve(job, pb, want, &held)) {
      if (held)
        rm_call_held_refused(&err, "the run's memory reservation", want, held,
                             rm_server_config(job->server)->max_memory);
      else
        rm_call_memory_refused(job->call, &err, "the run's memory reservation", want);
      rc = err.code;
    } else {
      rm_budget_reset_peak(pb);
      /* counters (stats.h): every node invocation, the queue and compute times, the
       * latter two from the clock readings that time the nodes (no reads of their own) */
      uint64_t span[2] = {0, 0};
      int counting = rm_stats_counting() && !rm_call_own(call);
      if (counting) {
        opts.on_node = rm_stats_node;
        opts.node_span = span;
        rm_stats_run_begin();
      }
      rc = rm_pipeline_run(job->pipeline, inputs, n, &opts, &result, &err);
      if (counting) {
        rm_stats_run_end();
        rm_stats_run_t *counted = rm_call_stats_run(call);
        uint64_t arrival = rm_call_arrival_ns(call);
        if (!span[0]) /* no node ran (failed before the first): all of it was waiting */
          span[0] = span[1] = rm_clock_ns();
        counted->ran = 1;
        counted->queue_ns = span[0] > arrival ? span[0] - arrival : 0;
        counted->compute_ns = span[1] - span[0];
      }
      big = rm_budget_peak(pb) > RM_SERVER_TRIM_AFTER_BYTES;
      if (big)
        rm_server_trim_when_idle(job->server);
      /* what the run did not use goes back before the response is packed (the result
       * stays charged until it is freed) */
      rm_budget_unreserve(pb);
    }
    /* The core cancels a call whose deadline passed: that is a deadline, not a cancel. The
     * client's own timer fires a transit time before ours (the deadline travels as a
     * relative timeout), so a cancel that close to the deadline is the deadline. */
    if (rc == RM_ECANCELED && job->client_deadline_ns &&
        rm_clock_ns() + RM_CALL_DEADLINE_TRANSIT_NS >= job->client_deadline_ns)
      rc = rm_error_set(&err, RM_ETIMEDOUT, err.node_id, NULL, "deadline exceeded%s%s%s",
                        err.node_id[0] ? " at node '" : "", err.node_id, err.node_id[0] ? "'" : "");
    if (rc == RM_ETIMEDOUT && job->server_deadline)
      rm_error_set(&err, RM_ELIMIT, err.node_id, "max_execution_ms",
                   "the pipeline ran longer than the execution time limit of %llu ms%s%s%s",
                   (unsigned long long)job->max_execution_ms, err.node_id[0] ? " (at node '" : "",
                   err.node_id, err.node_id[0] ? "')" : "");
    rc = err.code ? err.code : rc;
  }
  if (rc) {
    rm_call_fail(call, &err);
  } else {
    response_store_t st;
    if (build_response(&st, job, result)) {
      rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory building the response");
      rm_call_fail(call, &err);
    } else if (reply_borrowing(job, &st, result, inputs, bound, big)) {
      result = NULL; /* the call's end releases them */
      bound = 0;
    } else {
      reply(call, &st);
    }
    if (st.has_metrics)
      rm_wire_metrics_proto_clear(&st.metrics);
  }
  rm_result_free(result); /* before the pipeline: result buffers count in its account */
  for (size_t i = 0; i < bound; i++)
    rm_buffer_unref(inputs[i].buf);
  job_finish(job);
  if (big) /* what the run freed goes back to the system, not only to the heap */
    malloc_trim(0);
}

static void run_job_offloaded(void *arg) {
  exec_job_t *job = arg;
  job->on_worker = 1;
  const char *outer_rid = rm_log_set_request_id(rm_call_request_id(job->call));
  run_job(job);
  rm_log_set_request_id(outer_rid);
}

static void offload(exec_job_t *job) {
  rm_call_watch_cancel(job->call);
  if (rm_server_offload(job->server, run_job_offloaded, job)) {
    rm_error_t err;
    rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL, "the server is shutting down");
    rm_call_fail(job->call, &err);
    job_finish(job);
  }
}

/* The payload bytes of all the request's inputs. */
static uint64_t request_input_bytes(const Remotemedia__V1__ExecuteRequest *req) {
  uint64_t bytes = 0;
  for (size_t i = 0; i < req->n_inputs; i++) {
    const Remotemedia__V1__DataBuffer *b = req->inputs[i]->value;
    if (!b)
      continue;
    switch (b->kind_case) {
    case REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO: bytes += b->audio->samples.len; break;
    case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TENSOR: bytes += b->tensor->data.len; break;
    case REMOTEMEDIA__V1__DATA_BUFFER__KIND_JSON: bytes += strlen(b->json->json); break;
    case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TEXT: bytes += strlen(b->text->text); break;
    case REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY: bytes += b->binary->data.len; break;
    default: break;
    }
  }
  return bytes;
}

/* Cheap counts before any parsing: compiling reads params as JSON and compares ids and
 * outputs pairwise, so their number is bounded first (with the engine's messages). 0, or
 * RM_ELIMIT with err naming the field over its limit. */
static int check_request_size(const exec_job_t *job, rm_error_t *err) {
  const Remotemedia__V1__ExecuteRequest *req = job->req;
  const Remotemedia__V1__PipelineManifest *man = req->manifest;
  size_t params_bytes = 0;
  for (size_t i = 0; man && i < man->n_nodes; i++) {
    params_bytes += strlen(man->nodes[i]->params);
    if (man->nodes[i]->params_object) /* its wire size: JSON text would be about as long */
      params_bytes += protobuf_c_message_get_packed_size(&man->nodes[i]->params_object->base);
  }
  uint64_t input_bytes = request_input_bytes(req);
  const rm_limits_t *lim = &job->limits;
  if (man && man->n_nodes > lim->max_nodes) {
    return rm_error_set(err, RM_ELIMIT, NULL, "nodes",
                        "pipeline has %zu nodes, above the limit of %u", man->n_nodes,
                        lim->max_nodes);
  }
  if (man && man->n_connections > lim->max_connections) {
    return rm_error_set(err, RM_ELIMIT, NULL, "connections",
                        "pipeline has %zu connections, above the limit of %u", man->n_connections,
                        lim->max_connections);
  }
  if (req->n_inputs > lim->max_nodes) {
    return rm_error_set(err, RM_ELIMIT, NULL, "inputs",
                        "the request has %zu inputs, above the limit of %u", req->n_inputs,
                        lim->max_nodes);
  }
  if (req->n_output_nodes > lim->max_nodes) {
    return rm_error_set(err, RM_ELIMIT, NULL, "output_nodes",
                        "the request names %zu output_nodes, above the limit of %u",
                        req->n_output_nodes, lim->max_nodes);
  }
  if (params_bytes > MAX_PARAMS_BYTES) {
    return rm_error_set(err, RM_ELIMIT, NULL, "params",
                        "node params total %zu bytes, above the limit of %u", params_bytes,
                        MAX_PARAMS_BYTES);
  }
  if (input_bytes > job->max_input_bytes) {
    return rm_error_set(err, RM_ELIMIT, NULL, "inputs",
                        "the inputs hold %llu bytes, above the limit of %llu",
                        (unsigned long long)input_bytes, (unsigned long long)job->max_input_bytes);
  }
  return 0;
}

/* The server's limits, lowered by the request's own. */
static void effective_limits(const rm_config_t *cfg, const Remotemedia__V1__ExecutionLimits *lim,
                             rm_limits_t *out) {
  out->max_nodes = (uint32_t)lower(cfg->max_nodes, lim ? lim->max_nodes : 0);
  out->max_audio_samples = lower(cfg->max_audio_samples, lim ? lim->max_audio_samples : 0);
  out->max_buffer_bytes = cfg->max_message_bytes;
  out->max_items = cfg->max_items;
  out->max_memory_bytes = lower(cfg->max_request_memory, lim ? lim->max_memory_bytes : 0);
  /* edges are checked pairwise while compiling: bound them with the node limit */
  out->max_connections = out->max_nodes * 16;
}

/* Limits and deadlines: the server's, lowered by the request's own; the execution time
 * limit counts from arrival (a big request may have waited for a worker since). 0, or
 * RM_ETIMEDOUT when the client's deadline has already passed. */
static int job_limits(exec_job_t *job, const rm_config_t *cfg, rm_error_t *err) {
  const Remotemedia__V1__ExecutionLimits *lim = job->req->limits;
  rm_call_t *call = job->call;
  job->max_input_bytes = lower(cfg->max_input_bytes, lim ? lim->max_input_bytes : 0);
  job->max_execution_ms = lower(cfg->max_execution_ms, lim ? lim->max_execution_ms : 0);
  uint64_t now = rm_call_on_worker(call) ? rm_clock_ns() : rm_call_arrival_ns(call);
  uint64_t server_dl = now + job->max_execution_ms * 1000000ull;
  uint64_t client_dl = rm_call_deadline_ns(call);
  job->server_deadline = !client_dl || server_dl < client_dl;
  job->client_deadline_ns = client_dl;
  job->deadline_ns = job->server_deadline ? server_dl : client_dl;
  if (client_dl && client_dl <= now)
    return rm_error_set(err, RM_ETIMEDOUT, NULL, NULL,
                        "the deadline expired before the pipeline started");
  return 0;
}

/* Cache lookup: the pipeline this thread compiled from the same manifest bytes under the
 * same limits, or NULL. Without a hit, a manifest left out of req (manifest_bytes set) is
 * unpacked into it. *cache is the thread's cache when this request may use it. 0, or
 * the unpack failure (answered). */
static int lookup(rm_call_t *call, Remotemedia__V1__ExecuteRequest *req, rm_exec_cache_key_t *key,
                  rm_exec_cache_t **cache, rm_pipeline_t **hit) {
  const rm_config_t *cfg = rm_server_config(rm_call_server(call));
  *hit = NULL;
  /* Big requests run on a worker from the start and use that worker's cache, where heavy
   * pipelines are kept too (a polling thread keeps only light ones: it hands heavy ones to
   * a worker, and an entry is never used by two runs at once). */
  *cache = key->manifest && cfg->pipeline_cache && !rm_call_own(call) ? rm_exec_cache_this_thread()
                                                                      : NULL;
  if (*cache) {
    *hit = rm_exec_cache_find(*cache, key);
    rm_stats_cache(*hit != NULL);
  }
  if (!*hit && key->manifest) {
    req->manifest = (Remotemedia__V1__PipelineManifest *)rm_call_unpack_field(
        call, "manifest", &remotemedia__v1__pipeline_manifest__descriptor, key->manifest,
        key->manifest_len);
    if (!req->manifest) {
      rm_call_fail_unpack(call);
      return RM_EBADREQUEST;
    }
  }
  const char *name = *hit ? rm_pipeline_name(*hit) : req->manifest ? req->manifest->name : "";
  if (name[0])
    rm_call_set_log_note(call, "pipeline", name);
  if (!rm_call_own(call)) /* counted at its status */
    rm_call_stats_run(call)->pipeline = rm_stats_pipeline_label(name);
  return 0;
}

/* A job for the call in its arena, holding an execution slot and a reference on the call.
 * NULL when the server runs its limit of pipelines or memory is short (answered). */
static exec_job_t *job_new(rm_call_t *call, const Remotemedia__V1__ExecuteRequest *req,
                           const rm_limits_t *limits) {
  rm_server_t *s = rm_call_server(call);
  rm_error_t err;
  if (!rm_server_exec_acquire(s)) {
    rm_error_set(
        &err, RM_ELIMIT, NULL, "max_concurrent",
        "the server is already running its limit of %llu pipelines (max-concurrent); retry later",
        (unsigned long long)rm_server_config(s)->max_concurrent);
    err.retry_later = 1;
    rm_call_fail(call, &err);
    return NULL;
  }
  exec_job_t *job = rm_arena_calloc(rm_call_arena(call), 1, sizeof *job);
  if (!job) {
    rm_server_exec_release(s);
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_call_fail(call, &err);
    return NULL;
  }
  rm_call_ref(call);
  job->call = call;
  job->server = s;
  job->req = req;
  job->limits = *limits;
  return job;
}

/* Routing: a cached pipeline runs here; a big request is already on a worker; light
 * pipelines over small requests run right here (a hand-off to a worker would cost more
 * than they do); anything that may take long runs on a worker, so this polling thread
 * keeps serving other calls. Owns job. */
static void route(exec_job_t *job, rm_pipeline_t *hit, rm_exec_cache_t *cache,
                  const rm_exec_cache_key_t *key) {
  if (hit) {
    job->pipeline = hit;
    job->cached = job->reused = 1;
    rm_pipeline_reset_metrics(job->pipeline);
    run_job(job);
    return;
  }
  if (rm_call_on_worker(job->call)) {
    rm_budget_t *outer = rm_budget_enter(rm_server_budget(job->server));
    int rc = compile(job);
    rm_budget_leave(outer);
    if (rc) {
      job_finish(job);
      return;
    }
    if (cache && rm_pipeline_is_reusable(job->pipeline))
      job->cached = rm_exec_cache_put(cache, key, job->pipeline) == 0;
    run_job(job);
    return;
  }
  if (compile(job)) {
    job_finish(job);
    return;
  }
  if (rm_pipeline_is_heavy(job->pipeline)) {
    offload(job);
    return;
  }
  if (cache && rm_pipeline_is_reusable(job->pipeline))
    job->cached = rm_exec_cache_put(cache, key, job->pipeline) == 0;
  run_job(job);
}

/* req without its manifest when manifest_bytes is set: a pipeline this thread compiled from
 * the same bytes runs without them being unpacked again; otherwise they are unpacked here.
 * manifest_bytes live as long as the call. */
static void execute(rm_call_t *call, Remotemedia__V1__ExecuteRequest *req,
                    const uint8_t *manifest_bytes, size_t manifest_len) {
  const rm_config_t *cfg = rm_server_config(rm_call_server(call));
  rm_limits_t limits;
  effective_limits(cfg, req->limits, &limits);
  rm_exec_cache_key_t key = {.manifest = manifest_bytes, .manifest_len = manifest_len};
  if (manifest_bytes && cfg->pipeline_cache)
    rm_exec_cache_key_init(&key, &limits, manifest_bytes, manifest_len);
  rm_exec_cache_t *cache;
  rm_pipeline_t *hit;
  if (lookup(call, req, &key, &cache, &hit))
    return;
  exec_job_t *job = job_new(call, req, &limits);
  if (!job)
    return;
  rm_error_t err;
  /* a hit's manifest passed the size checks under the same limits when it was compiled */
  if (job_limits(job, cfg, &err) || check_request_size(job, &err)) {
    rm_call_fail(call, &err);
    job_finish(job);
    return;
  }
  route(job, hit, cache, &key);
}

#define MANIFEST_FIELD 1 /* ExecuteRequest.manifest */

/* The request without the top-level field `skip` (0: none) and with its payloads of
 * RM_VIEW_MIN_BYTES or more as views into data (smaller ones copied by protobuf-c) (which lives as
 * long as the call), or NULL when there is nothing to view or the bytes are not well-formed (the
 * caller unpacks them the plain way, which reports why). *oom is set when memory ran out. */
static Remotemedia__V1__ExecuteRequest *unpack_views(rm_call_t *call, const uint8_t *data,
                                                     size_t len, uint32_t skip, int *oom) {
  const ProtobufCMessageDescriptor *desc = &remotemedia__v1__execute_request__descriptor;
  size_t skel_len, n;
  *oom = 0;
  if (len < RM_VIEW_MIN_BYTES) /* no payload field can be that long: nothing to view */
    return NULL;
  if (rm_wire_views_skeleton(desc, data, len, skip, RM_VIEW_MIN_BYTES, NULL, &skel_len, NULL, 0,
                             &n) ||
      n == 0)
    return NULL;
  rm_arena_t *arena = rm_call_arena(call);
  uint8_t *skel = rm_arena_alloc(arena, skel_len ? skel_len : 1);
  rm_wire_span_t *spans = rm_arena_alloc(arena, n * sizeof *spans);
  if (!skel || !spans) {
    *oom = 1;
    return NULL;
  }
  if (rm_wire_views_skeleton(desc, data, len, skip, RM_VIEW_MIN_BYTES, skel, &skel_len, spans, n,
                             &n))
    return NULL;
  Remotemedia__V1__ExecuteRequest *req =
      (Remotemedia__V1__ExecuteRequest *)rm_call_unpack(call, desc, skel, skel_len);
  if (req)
    rm_wire_views_patch(&req->base, data, spans, n);
  return req;
}

/* Unpacks the request but for its manifest, which execute() may not need (see there). A
 * manifest field that is missing, repeated or not well-formed unpacks with the rest, and
 * compiling or unpacking reports what is wrong with it. Payloads are views into data. */
static void execute_pipeline(rm_call_t *call, const uint8_t *data, size_t len) {
  rm_wire_span_t field, value;
  const uint8_t *rest = data, *manifest = NULL;
  size_t rest_len = len;
  int found = rm_wire_find_field(data, len, MANIFEST_FIELD, &field, &value) == 1, oom;
  Remotemedia__V1__ExecuteRequest *req =
      unpack_views(call, data, len, found ? MANIFEST_FIELD : 0, &oom);
  if (found) { /* hashed and unpacked as it is (it holds no payload field to leave out) */
    manifest = data + value.offset;
    rm_call_fill_view_over(call, manifest, value.length);
  }
  if (!req && rm_call_unpack_refused_bytes(call)) { /* whole, it fails the same */
    rm_call_fail_unpack(call);
    return;
  }
  if (!req) /* unpacked whole below: every byte is read */
    rm_call_fill_view(call);
  if (!req && found && !oom) {
    rest_len = len - field.length;
    if (field.offset == 0) { /* serializers write fields in number order: it comes first */
      rest = data + field.length;
    } else {
      uint8_t *joined = rm_arena_alloc(rm_call_arena(call), rest_len ? rest_len : 1);
      if (!joined) {
        oom = 1;
      } else {
        memcpy(joined, data, field.offset);
        memcpy(joined + field.offset, data + field.offset + field.length,
               len - field.offset - field.length);
        rest = joined;
      }
    }
  }
  if (oom) {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_call_fail(call, &err);
    return;
  }
  if (!req)
    req = (Remotemedia__V1__ExecuteRequest *)rm_call_unpack(
        call, &remotemedia__v1__execute_request__descriptor, rest, rest_len);
  if (!req) {
    rm_call_fail_unpack(call);
    return;
  }
  execute(call, req, manifest, manifest ? value.length : 0);
}

/* ---------------------------------------------------------------- ValidatePipeline */

/* Everything ExecutePipeline checks before it runs, in the same order and with the same
 * errors, then the schedule and the memory prediction; no node runs. Runs on the polling
 * thread: compiling costs what a cached ExecutePipeline's miss costs. */
static void validate_pipeline(rm_call_t *call, const ProtobufCMessage *msg) {
  const Remotemedia__V1__ExecuteRequest *req = (const Remotemedia__V1__ExecuteRequest *)msg;
  const rm_config_t *cfg = rm_server_config(rm_call_server(call));
  exec_job_t job = {.call = call, .req = req};
  effective_limits(cfg, req->limits, &job.limits);
  job.max_input_bytes = lower(cfg->max_input_bytes, req->limits ? req->limits->max_input_bytes : 0);
  rm_error_t err;
  rm_error_clear(&err);
  rm_manifest_t *manifest = NULL;
  rm_pipeline_t *p = NULL;
  size_t bound = 0;
  rm_input_t *inputs = NULL;
  int rc = check_request_size(&job, &err);
  if (!rc)
    rc = rm_wire_manifest_from_proto(req->manifest, &manifest, &err);
  rm_budget_label_t label = budget_label(rm_call_server(call), &job.limits);
  if (!rc)
    rc = rm_pipeline_new_labelled(manifest, &job.limits, &label, &p, &err);
  if (!rc) {
    inputs =
        rm_arena_calloc(rm_call_arena(call), req->n_inputs ? req->n_inputs : 1, sizeof *inputs);
    rc = inputs ? wire_inputs(req, inputs, &bound, &err)
                : rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  if (!rc) {
    rm_run_opts_t opts = {.output_nodes = (const char *const *)req->output_nodes,
                          .n_output_nodes = req->n_output_nodes};
    rc = rm_pipeline_check_inputs(p, inputs, req->n_inputs, &opts, &err);
  }
  char **schedule = NULL;
  size_t n = p ? rm_pipeline_node_count(p) : 0;
  if (!rc && !(schedule = rm_arena_calloc(rm_call_arena(call), n ? n : 1, sizeof *schedule)))
    rc = rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
  if (rc) {
    rm_call_fail(call, &err);
  } else {
    Remotemedia__V1__ValidateResponse resp = REMOTEMEDIA__V1__VALIDATE_RESPONSE__INIT;
    resp.pipeline_name = (char *)rm_pipeline_name(p);
    for (size_t k = 0; k < n; k++)
      schedule[k] = (char *)rm_pipeline_schedule_id(p, k);
    resp.schedule = schedule;
    resp.n_schedule = n;
    /* the input payloads, plus what the compiled nodes hold in buffers after set-up */
    resp.predicted_memory_bytes = request_input_bytes(req) + rm_pipeline_account(p)->current;
    rm_call_reply(call, &resp.base);
  }
  for (size_t i = 0; i < bound; i++)
    rm_buffer_unref(inputs[i].buf);
  rm_pipeline_free(p);
  rm_manifest_free(manifest);
}

/* ---------------------------------------------------------------- ListNodeTypes */

static void list_node_types(rm_call_t *call, const ProtobufCMessage *msg) {
  (void)msg;
  Remotemedia__V1__ListNodeTypesResponse *resp = rm_wire_node_types_new();
  if (resp) {
    rm_call_reply(call, &resp->base);
  } else {
    rm_error_t err;
    rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
    rm_call_fail(call, &err);
  }
  rm_wire_node_types_free(resp);
}

/* ---------------------------------------------------------------- GetVersion */

static void get_version(rm_call_t *call, const ProtobufCMessage *msg) {
  (void)msg;
  size_t n;
  const char *const *services = rm_server_services(rm_call_server(call), &n);
  Remotemedia__V1__GetVersionResponse resp = REMOTEMEDIA__V1__GET_VERSION_RESPONSE__INIT;
  resp.protocol_version = PROTOCOL_VERSION;
  resp.server_version = RM_VERSION;
  resp.grpc_core_version = (char *)grpc_version_string();
  resp.services = (char **)services;
  resp.n_services = n;
  rm_call_reply(call, &resp.base);
}

void rm_pipeline_service_methods(rm_method_t *out) {
  out[0] = (rm_method_t){.path = "/remotemedia.v1.PipelineService/ExecutePipeline",
                         .kind = RM_RPC_UNARY,
                         .needs_auth = 1,
                         .hot = 1,
                         .request = &remotemedia__v1__execute_request__descriptor,
                         .handle_bytes = execute_pipeline,
                         .gapped = 1};
  out[1] = (rm_method_t){.path = "/remotemedia.v1.PipelineService/ListNodeTypes",
                         .kind = RM_RPC_UNARY,
                         .needs_auth = 1,
                         .request = &remotemedia__v1__list_node_types_request__descriptor,
                         .handle = list_node_types};
  out[2] = (rm_method_t){.path = "/remotemedia.v1.PipelineService/GetVersion",
                         .kind = RM_RPC_UNARY,
                         .needs_auth = 1,
                         .request = &remotemedia__v1__get_version_request__descriptor,
                         .handle = get_version};
  out[3] = (rm_method_t){.path = "/remotemedia.v1.PipelineService/ValidatePipeline",
                         .kind = RM_RPC_UNARY,
                         .needs_auth = 1,
                         .request = &remotemedia__v1__execute_request__descriptor,
                         .handle = validate_pipeline};
}
