/* fuzz_nesting.c - libFuzzer target for rm_wire_check_nesting, the server's guard before every
 * protobuf-c unpack (whose recursion has no limit of its own). The same bytes as an
 * ExecuteRequest and as a StreamRequest:
 * - what the check lets through unpacks within RM_WIRE_MAX_NESTING levels of sub-messages
 *   (deeper would overflow a thread's stack: a crash here);
 * - whatever protobuf-c unpacks, packed again (the form every encoder writes), is let through
 *   exactly when it nests at most that deep. The bytes themselves may be refused though their
 *   unpacked message is shallow: protobuf-c recursed into a deep sub-message it then dropped
 *   (a oneof member replaced by a later one), and that recursion is what the check bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/error.h"
#include "rm/wire_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Unpacking a refused message recurses once per level: only messages this short (at most
 * this many levels, two bytes each) are unpacked to check the refusal. */
#define UNPACK_REFUSED_MAX_BYTES 2048

/* Levels of sub-messages below msg, as protobuf-c unpacked it. */
static unsigned depth_of(const ProtobufCMessage *msg) {
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  const char *base = (const char *)msg;
  unsigned deepest = 0;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    size_t n = 1;
    ProtobufCMessage *const *subs = (ProtobufCMessage *const *)(base + f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      n = *(const size_t *)(base + f->quantifier_offset);
      subs = *(ProtobufCMessage *const *const *)(base + f->offset);
    } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
               *(const uint32_t *)(base + f->quantifier_offset) != f->id) {
      continue;
    }
    for (size_t k = 0; k < n; k++)
      if (subs[k]) {
        unsigned below = 1 + depth_of(subs[k]);
        deepest = below > deepest ? below : deepest;
      }
  }
  return deepest;
}

static void check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size) {
  rm_error_t err;
  rm_error_clear(&err);
  int rc = rm_wire_check_nesting(desc, data, size, NULL, &err);
  if (rc != 0 && rc != RM_ELIMIT && rc != RM_EINPUT)
    abort();
  if (rc == RM_EINPUT || (rc == RM_ELIMIT && size > UNPACK_REFUSED_MAX_BYTES))
    return;
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, size, data);
  if (!m)
    return;
  unsigned depth = depth_of(m);
  if (rc == 0 && depth > RM_WIRE_MAX_NESTING)
    abort();
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *packed = malloc(len ? len : 1);
  if (!packed || protobuf_c_message_pack(m, packed) != len)
    abort();
  int again = rm_wire_check_nesting(desc, packed, len, NULL, &err);
  if (again != (depth > RM_WIRE_MAX_NESTING ? RM_ELIMIT : 0))
    abort();
  free(packed);
  protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(&remotemedia__v1__execute_request__descriptor, data, size);
  check(&remotemedia__v1__stream_request__descriptor, data, size);
  return 0;
}
