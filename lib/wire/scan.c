/* scan.c - finds one field in a message's wire bytes without unpacking it. */
#include <stdint.h>

#include "rm/wire_proto.h"

/* Reads a base-128 varint of at most max_bytes at msg[*at]; 0, or -1 when truncated or
 * longer. protobuf-c reads tags and length prefixes as 32-bit varints of at most 5 bytes and
 * rejects longer ones: so must we, or a request it refuses could get through. */
static int read_varint(const uint8_t *msg, size_t len, size_t *at, uint64_t *out,
                       unsigned max_bytes) {
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

int rm_wire_find_field(const uint8_t *msg, size_t len, uint32_t number, rm_wire_span_t *field,
                       rm_wire_span_t *value) {
  enum { VARINT = 0, FIXED64 = 1, DELIMITED = 2, FIXED32 = 5 };
  int found = 0;
  rm_wire_span_t f = {0, 0}, v = {0, 0};
  size_t at = 0;
  while (at < len) {
    size_t start = at;
    uint64_t tag, n = 0, ignored;
    /* a tag above 32 bits is one protobuf-c would truncate: let it judge the whole */
    if (read_varint(msg, len, &at, &tag, 5) || tag > UINT32_MAX || (tag >> 3) == 0)
      return RM_EINPUT;
    switch (tag & 7) {
    case VARINT:
      if (read_varint(msg, len, &at, &ignored, 10))
        return RM_EINPUT;
      break;
    case FIXED64: n = 8; break;
    case FIXED32: n = 4; break;
    case DELIMITED:
      if (read_varint(msg, len, &at, &n, 5) || n > INT32_MAX)
        return RM_EINPUT;
      break;
    default: return RM_EINPUT; /* groups (deprecated) and invalid types */
    }
    if (n > len - at)
      return RM_EINPUT;
    at += (size_t)n;
    if ((tag >> 3) != number)
      continue;
    if ((tag & 7) != DELIMITED || found)
      return RM_EINPUT;
    found = 1;
    f = (rm_wire_span_t){start, at - start};
    v = (rm_wire_span_t){at - (size_t)n, (size_t)n};
  }
  if (found && field)
    *field = f;
  if (found && value)
    *value = v;
  return found;
}
