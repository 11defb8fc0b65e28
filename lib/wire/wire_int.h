/* wire_int.h - what the wire scanners (scan.c, views.c) share: wire types and the field reader. */
#ifndef RM_WIRE_INT_H
#define RM_WIRE_INT_H

#include <stddef.h>
#include <stdint.h>

/* Protobuf wire types. */
enum { RM_WIRE_VARINT = 0, RM_WIRE_FIXED64 = 1, RM_WIRE_DELIMITED = 2, RM_WIRE_FIXED32 = 5 };

/* views.c replaces a bytes field by a token of this many bytes (a secret and an index), so only
 * longer fields are worth replacing: rm_wire_views_skeleton and rm_wire_first_view both raise
 * a smaller min_len to this plus one. */
#define RM__WIRE_TOKEN_LEN 16

/* Reads the field at msg[*at] and moves *at past it: its tag (number << 3 | wire type) and the
 * bytes of its value after any length prefix (*value_at, *value_len: empty for a varint). 0, or
 * -1 when the bytes are not well-formed the way protobuf-c requires: a tag above 32 bits (it
 * would truncate it), field number 0, varints longer than protobuf-c accepts (5 bytes for tags
 * and lengths), groups, invalid wire types, a value running past len. */
int rm__wire_next_field(const uint8_t *msg, size_t len, size_t *at, uint32_t *tag, size_t *value_at,
                        size_t *value_len);

#endif
