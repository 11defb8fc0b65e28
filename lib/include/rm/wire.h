/* wire.h - conversion between wire DataBuffer messages and engine buffers, both ways,
 * without copying payload bytes. */
#ifndef RM_WIRE_H
#define RM_WIRE_H

#include "remotemedia/v1/data.pb-c.h"
#include "rm/buffer.h"
#include "rm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A buffer borrowing msg's payload (msg must outlive it), with metadata checked by
 * rm_buffer_validate. `account` may be NULL. 0, or RM_EINPUT (err->field names the bad
 * field: "kind", "format", "sample_rate", ...) / RM_ENOMEM. */
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

#ifdef __cplusplus
}
#endif
#endif
