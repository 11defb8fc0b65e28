/* wire.h - the engine half of the wire layer: wire messages <-> engine objects (buffers
 * without copying payload bytes, manifests, metrics, the registry's description). The
 * server and the local runners link it (rm_wire); the proto-only half is rm/wire_proto.h. */
#ifndef RM_WIRE_H
#define RM_WIRE_H

#include "remotemedia/v1/data.pb-c.h"
#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/buffer.h"
#include "rm/error.h"
#include "rm/manifest.h"
#include "rm/metrics.h"
#include "rm/pipeline.h"
#include "rm/wire_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A buffer borrowing msg's payload (msg and the bytes it points at must outlive it; audio
 * and tensor bytes not aligned for their element type, as views into a request may be, are
 * copied instead), with metadata checked by rm_buffer_validate. `account` may be NULL. 0, or
 * RM_EINPUT (err->field names the bad field: "kind", "format", "sample_rate", ...) / RM_ENOMEM. */
int rm_wire_buffer_from_proto(const Remotemedia__V1__DataBuffer *msg, rm_mem_account_t *account,
                              rm_buffer_t **out, rm_error_t *err);

/* Storage for one outgoing DataBuffer and its sub-message. */
typedef struct rm_wire_buffer {
  Remotemedia__V1__DataBuffer msg;
  union {
    Remotemedia__V1__AudioBuffer audio;
    Remotemedia__V1__TensorBuffer tensor;
    Remotemedia__V1__JsonBuffer json;
    Remotemedia__V1__TextBuffer text;
    Remotemedia__V1__BinaryBuffer binary;
  } u;
  int64_t shape[RM_TENSOR_MAX_DIMS];
} rm_wire_buffer_t;

/* Fills w to describe b, borrowing b's bytes (b must outlive any use of w->msg). JSON and
 * TEXT buffers must be NUL-terminated at data[size] (owned buffers always are). */
void rm_wire_buffer_to_proto(const rm_buffer_t *b, rm_wire_buffer_t *w);

/* Fills outs[i] (one per r->outputs[i]) to describe r's outputs, borrowing r's keys, node ids
 * and bytes: item_ptrs and wires have room for every item of every output (their sum), and
 * outs[i].items points into item_ptrs. The callers' map entries (ExecuteResponse and
 * StreamResult alike) then pair r->outputs[i].key with &outs[i]. */
void rm_wire_outputs_to_proto(const rm_result_t *r, Remotemedia__V1__NodeOutput *outs,
                              Remotemedia__V1__DataBuffer **item_ptrs, rm_wire_buffer_t *wires);

/* ---- manifests ---- */

/* The engine manifest for the wire message. params text is parsed here (RM_EPARAM naming
 * the node and "params" when it is not a JSON object), params_object converted by
 * rm_wire_params_from_struct (a node giving both is RM_EPARAM naming it and "params"); a
 * NULL msg is RM_EMANIFEST naming
 * "manifest". 0 and a new manifest in *out, or an error with err filled. Any thread. */
int rm_wire_manifest_from_proto(const Remotemedia__V1__PipelineManifest *msg, rm_manifest_t **out,
                                rm_error_t *err);

/* A node's params_object (a google.protobuf.Struct) as the JSON object the engine reads.
 * Struct has only doubles: an integral number within +-2^53 becomes a JSON integer, any
 * other a real, so integer params take 3 or 3.0 and refuse 3.5 as from JSON text. Lists
 * become arrays, null values null. A NULL s is {}. 0 and a new reference in *out, or
 * RM_EPARAM naming node_id and "params" (a NaN or infinite number, a string that is not
 * UTF-8, nesting deeper than 64) / RM_ENOMEM, with err filled. Any thread. */
int rm_wire_params_from_struct(const Google__Protobuf__Struct *s, const char *node_id, json_t **out,
                               rm_error_t *err);

/* ---- metrics ---- */

/* Fills msg (initialised by the caller with __INIT) with the facts of m. Allocates the
 * node array with rm_malloc: release it with rm_wire_metrics_proto_clear(msg). Export time
 * is added to m's overhead as for the JSON exports. 0 or RM_ENOMEM (msg then needs no
 * clearing). Strings are borrowed from m. */
int rm_wire_metrics_to_proto(rm_metrics_t *m, Remotemedia__V1__PipelineMetrics *msg);
/* Releases what rm_wire_metrics_to_proto allocated in msg; the message itself is the
 * caller's. Clearing twice is harmless; msg must not be NULL. */
void rm_wire_metrics_proto_clear(Remotemedia__V1__PipelineMetrics *msg);
/* At least what msg takes packed as ExecuteResponse.metrics (a field numbered below 16), its tag
 * and length included, found without protobuf-c's walk of every field: each scalar counted
 * at its largest, strings at their length. 0 when the messages' descriptors hold a field the
 * bound does not cover (then only protobuf_c_message_get_packed_size tells). Any thread. */
size_t rm_wire_metrics_field_bound(const Remotemedia__V1__PipelineMetrics *msg);

/* ---- the node registry ---- */

/* Every registered type, in name order, as the ListNodeTypes message: params with type,
 * range, default (a param without a default is required) and enum values; ports with their
 * kinds. Strings are borrowed from the static tables. New message (rm_malloc), NULL when out
 * of memory; release it with rm_wire_node_types_free. Any thread. */
Remotemedia__V1__ListNodeTypesResponse *rm_wire_node_types_new(void);
/* Frees a message from rm_wire_node_types_new. NULL is a no-op. */
void rm_wire_node_types_free(Remotemedia__V1__ListNodeTypesResponse *resp);

#ifdef __cplusplus
}
#endif
#endif
