/* wire_proto.h - the proto-only half of the wire layer: the wire field scanner, the JSON
 * manifest as a PipelineManifest message, the PipelineMetrics message as the seed's JSON.
 * No engine: the C client links this half (the engine half is rm/wire.h). */
#ifndef RM_WIRE_PROTO_H
#define RM_WIRE_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "remotemedia/v1/manifest.pb-c.h"
#include "remotemedia/v1/metrics.pb-c.h"
#include "rm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A range of a message's wire bytes. */
typedef struct rm_wire_span {
  size_t offset;
  size_t length;
} rm_wire_span_t;

/* Finds a length-delimited field (a sub-message, string or bytes) at the top level of a
 * message's wire bytes without unpacking anything: a caller can look at one part by its
 * bytes (the server keys compiled pipelines by the manifest's bytes) and unpack the rest.
 * Returns 1 when the field occurs exactly once (*field: the whole field, tag and length
 * prefix included; *value: its contents), 0 when it does not occur, RM_EINPUT when it
 * occurs more than once (protobuf would merge the copies), with another wire type, or when
 * the top level is not well-formed (groups count as not well-formed). Either span may be
 * NULL; they are written only when 1 is returned. Pure: any thread. */
int rm_wire_find_field(const uint8_t *msg, size_t len, uint32_t number, rm_wire_span_t *field,
                       rm_wire_span_t *value);

/* Checks every string field of a message of len bytes that desc describes, in sub-messages
 * too: protobuf-c unpacks a string holding a NUL byte as the part before it (it keeps no
 * length) and does not check UTF-8. 0, or RM_EINPUT with err naming the field's path (e.g.
 * "inputs.value.text.text", after `prefix` and a dot when prefix is not NULL: the name of
 * the field the message came in), the byte, and for a request's input the node
 * (err->node_id). Call it on bytes protobuf-c unpacked: what is not well-formed is not looked
 * at. Pure: any thread. */
int rm_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                          const char *prefix, rm_error_t *err);

/* Levels of sub-messages one message may nest (a google.protobuf.Struct's values nest without
 * end): protobuf-c unpacks (and frees) them by recursion, one stack frame per level with no
 * limit of its own, so a 42 KB request of nested values overflowed a thread's stack. Node
 * params of the 64 JSON levels the manifest allows take at most 3 + 3 x 64. */
#define RM_WIRE_MAX_NESTING 256
/* Checks, without recursion, that a message of len bytes that desc describes nests at most
 * RM_WIRE_MAX_NESTING levels of sub-messages below itself, reading its fields as protobuf-c
 * does (a field number 0 in two bytes, a tag above 32 bits cut to 32). 0; RM_EINPUT (err: the
 * byte) when a message long enough to nest that deep cannot be read so (its unpack would fail
 * too, or might recurse past what is not read); else RM_ELIMIT with err (may be NULL): field
 * "nesting", the names of the first four levels (`prefix`, when not NULL, the field the
 * message came in, the first). Call it before protobuf-c unpacks the bytes. Pure: any thread. */
int rm_wire_check_nesting(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                          const char *prefix, rm_error_t *err);

/* The offset of the first bytes field of min_len bytes or more (a payload: audio samples,
 * tensor data) in a message of len bytes that desc describes, looking into sub-messages up to
 * RM_WIRE_FIRST_PAYLOAD_DEPTH levels down, when it starts within the first `have` bytes, which
 * are all prefix holds (fields may run past them). -1 when none does or the bytes read are not
 * well-formed (an unpack says why). Pure: any thread. */
#define RM_WIRE_FIRST_PAYLOAD_DEPTH 8
long rm_wire_first_payload(const ProtobufCMessageDescriptor *desc, const uint8_t *prefix,
                           size_t have, size_t len, size_t min_len);

/* Sub-message levels rm_wire_views_* look into (the request, its inputs entry, the
 * DataBuffer, the AudioBuffer/TensorBuffer/BinaryBuffer); deeper ones are copied whole. */
#define RM_WIRE_VIEW_DEPTH 4

/* The first field rm_wire_views_skeleton would replace by a token (a non-repeated bytes field
 * of min_len bytes or more, within RM_WIRE_VIEW_DEPTH levels), when it starts within the first
 * `have` bytes of a message of len bytes that desc describes (prefix holds them): 1 and *value,
 * the span of its contents, which rm_wire_views_skeleton then skips without reading them; 0
 * when there is none or the bytes read are not well-formed. Pure: any thread. */
int rm_wire_first_view(const ProtobufCMessageDescriptor *desc, const uint8_t *prefix, size_t have,
                       size_t len, size_t min_len, rm_wire_span_t *value);

/* Unpacking without copying large payloads, step 1: writes msg's skeleton to out (room for
 * len bytes; the skeleton is never longer), the same message with the top-level field
 * `skip` (0: none) left out and every non-repeated bytes field of at least min_len bytes
 * replaced by a short token; spans[i] is where the i-th replaced field's contents are in
 * msg (at most max_spans are replaced, later ones are copied). Unpack the skeleton with
 * protobuf-c, then call rm_wire_views_patch. 0, or RM_EINPUT when msg is not well-formed
 * down to RM_WIRE_VIEW_DEPTH (unpack msg itself then, to report what protobuf-c says). Any
 * thread. With out NULL, only *out_len and *n_spans are computed (spans is not used): size
 * the buffers with that call first. */
int rm_wire_views_skeleton(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                           uint32_t skip, size_t min_len, uint8_t *out, size_t *out_len,
                           rm_wire_span_t *spans, size_t max_spans, size_t *n_spans);
/* Step 2: points every token left in the unpacked skeleton at its span of base (the msg given
 * to rm_wire_views_skeleton), which must outlive the message; the fields become read-only
 * views, so free the message with an allocator whose free ignores them (an arena), never
 * free_unpacked with malloc's. Tokens a later field overrode are simply gone. NULL msg: no-op. Any
 * thread. */
void rm_wire_views_patch(ProtobufCMessage *msg, const uint8_t *base, const rm_wire_span_t *spans,
                         size_t n_spans);

/* The wire manifest for the JSON form's text (len bytes), read by rm_manifest_json_read
 * (same keys, same errors as the engine's loader). Params objects become compact JSON text,
 * params strings are sent as they are (the engine parses them), absent/null params as "".
 * Built with rm_malloc; release it with rm_wire_manifest_proto_free. 0, or RM_EMANIFEST
 * (shape, or "manifest is not valid JSON: ...") / RM_EPARAM / RM_ENOMEM with err filled
 * (*out untouched). Any thread. */
int rm_wire_manifest_proto_from_text(const char *text, size_t len,
                                     Remotemedia__V1__PipelineManifest **out, rm_error_t *err);
/* Frees a manifest from rm_wire_manifest_proto_from_text. NULL is a no-op. */
void rm_wire_manifest_proto_free(Remotemedia__V1__PipelineManifest *m);

/* The seed's JSON object (rm_metrics_seed_json) for a metrics message. New reference, NULL
 * on OOM. Pure: any thread. */
json_t *rm_wire_metrics_to_json(const Remotemedia__V1__PipelineMetrics *msg);

#ifdef __cplusplus
}
#endif
#endif
