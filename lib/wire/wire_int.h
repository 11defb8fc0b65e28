/* wire_int.h - what the wire scanners (scan.c, views.c, strings.c) share: wire types and the
 * field reader. */
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

/* Reads a base-128 varint of at most max_bytes at msg[*at]; 0, or -1 when truncated or
 * longer. Inline, one-byte case first: every request's fields are read with it. */
static inline int rm__wire_read_varint(const uint8_t *msg, size_t len, size_t *at, uint64_t *out,
                                       unsigned max_bytes) {
  if (*at < len && msg[*at] < 0x80) { /* most tags and lengths */
    *out = msg[(*at)++];
    return 0;
  }
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 7 * max_bytes; shift += 7) {
    if (*at >= len)
      return -1;
    uint8_t byte = msg[(*at)++];
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

/* Reads the value of a field of wire type `wire` whose tag ended at msg[*at] and moves *at past
 * it: its length prefix (read within len) and the bytes after it, which may run up to end
 * (*value_at, *value_len: empty for a varint). 0, or -1 as for rm__wire_next_field. */
static inline int rm__wire_field_value(const uint8_t *msg, size_t len, size_t end, size_t *at,
                                       unsigned wire, size_t *value_at, size_t *value_len) {
  uint64_t n = 0, ignored;
  switch (wire) {
  case RM_WIRE_VARINT:
    if (rm__wire_read_varint(msg, len, at, &ignored, 10))
      return -1;
    break;
  case RM_WIRE_FIXED64: n = 8; break;
  case RM_WIRE_FIXED32: n = 4; break;
  case RM_WIRE_DELIMITED:
    if (rm__wire_read_varint(msg, len, at, &n, 5) || n > INT32_MAX)
      return -1;
    break;
  default: return -1; /* groups (deprecated) and invalid types */
  }
  if (*at > end || n > end - *at)
    return -1;
  *value_at = *at;
  *value_len = (size_t)n;
  *at += (size_t)n;
  return 0;
}

/* rm__wire_next_field over a message that ends at `end` of which msg holds the first `have`
 * bytes: the tag and length are read within them, the value may run past them up to end. */
static inline int rm__wire_next_field_in(const uint8_t *msg, size_t have, size_t end, size_t *at,
                                         uint32_t *tag, size_t *value_at, size_t *value_len) {
  uint64_t t;
  size_t len = have < end ? have : end;
  if (rm__wire_read_varint(msg, len, at, &t, 5) || t > UINT32_MAX || (t >> 3) == 0 ||
      rm__wire_field_value(msg, len, end, at, (unsigned)(t & 7), value_at, value_len))
    return -1;
  *tag = (uint32_t)t;
  return 0;
}

/* Reads the field at msg[*at] and moves *at past it: its tag (number << 3 | wire type) and the
 * bytes of its value after any length prefix (*value_at, *value_len: empty for a varint). 0, or
 * -1 when the bytes are not well-formed the way protobuf-c requires: a tag above 32 bits (it
 * would truncate it), field number 0, varints longer than protobuf-c accepts (5 bytes for tags
 * and lengths), groups, invalid wire types, a value running past len. */
static inline int rm__wire_next_field(const uint8_t *msg, size_t len, size_t *at, uint32_t *tag,
                                      size_t *value_at, size_t *value_len) {
  return rm__wire_next_field_in(msg, len, len, at, tag, value_at, value_len);
}

#endif
