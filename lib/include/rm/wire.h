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

#ifdef __cplusplus
}
#endif
#endif
