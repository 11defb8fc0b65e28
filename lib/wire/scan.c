/* scan.c - finds fields in a message's wire bytes without unpacking it. */
#include <stdint.h>

#include "rm/wire_proto.h"
#include "wire_int.h"

/* Reads a base-128 varint of at most max_bytes at msg[*at]; 0, or -1 when truncated or
 * longer. */
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

/* rm__wire_next_field over a message that ends at `end` of which msg holds the first `have`
 * bytes: the tag and length are read within them, the value may run past them up to end. */
static int next_field(const uint8_t *msg, size_t have, size_t end, size_t *at, uint32_t *tag,
                      size_t *value_at, size_t *value_len) {
  uint64_t t, n = 0, ignored;
  size_t len = have < end ? have : end;
  if (read_varint(msg, len, at, &t, 5) || t > UINT32_MAX || (t >> 3) == 0)
    return -1;
  switch (t & 7) {
  case RM_WIRE_VARINT:
    if (read_varint(msg, len, at, &ignored, 10))
      return -1;
    break;
  case RM_WIRE_FIXED64: n = 8; break;
  case RM_WIRE_FIXED32: n = 4; break;
  case RM_WIRE_DELIMITED:
    if (read_varint(msg, len, at, &n, 5) || n > INT32_MAX)
      return -1;
    break;
  default: return -1; /* groups (deprecated) and invalid types */
  }
  if (*at > end || n > end - *at)
    return -1;
  *tag = (uint32_t)t;
  *value_at = *at;
  *value_len = (size_t)n;
  *at += (size_t)n;
  return 0;
}

int rm__wire_next_field(const uint8_t *msg, size_t len, size_t *at, uint32_t *tag, size_t *value_at,
                        size_t *value_len) {
  return next_field(msg, len, len, at, tag, value_at, value_len);
}

/* first_payload over the fields at..end of a message desc describes, depth levels down, into
 * sub-messages while depth < max_depth; with views_only, repeated bytes fields do not count
 * (rm_wire_views_skeleton leaves them alone). The offset (and *value_len) or -1. */
static long first_payload_in(const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                             size_t have, size_t at, size_t end, size_t min_len, unsigned depth,
                             unsigned max_depth, int views_only, size_t *value_len) {
  while (at < end && at < have) {
    uint32_t tag;
    size_t value_at, n;
    if (next_field(msg, have, end, &at, &tag, &value_at, &n))
      return -1;
    if ((tag & 7) != RM_WIRE_DELIMITED)
      continue;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, tag >> 3);
    if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < max_depth) {
      long r = first_payload_in(f->descriptor, msg, have, value_at, value_at + n, min_len,
                                depth + 1, max_depth, views_only, value_len);
      if (r >= 0)
        return r;
    } else if (f && f->type == PROTOBUF_C_TYPE_BYTES && n >= min_len &&
               !(views_only && f->label == PROTOBUF_C_LABEL_REPEATED)) {
      *value_len = n;
      return (long)value_at;
    }
  }
  return -1;
}

long rm_wire_first_payload(const ProtobufCMessageDescriptor *desc, const uint8_t *prefix,
                           size_t have, size_t len, size_t min_len) {
  size_t n;
  return first_payload_in(desc, prefix, have, 0, len, min_len, 0, RM_WIRE_FIRST_PAYLOAD_DEPTH, 0,
                          &n);
}

int rm_wire_first_view(const ProtobufCMessageDescriptor *desc, const uint8_t *prefix, size_t have,
                       size_t len, size_t min_len, rm_wire_span_t *value) {
  size_t n;
  if (min_len < RM__WIRE_TOKEN_LEN + 1) /* as rm_wire_views_skeleton */
    min_len = RM__WIRE_TOKEN_LEN + 1;
  long at = first_payload_in(desc, prefix, have, 0, len, min_len, 0, RM_WIRE_VIEW_DEPTH - 1, 1, &n);
  if (at < 0)
    return 0;
  *value = (rm_wire_span_t){(size_t)at, n};
  return 1;
}

int rm_wire_find_field(const uint8_t *msg, size_t len, uint32_t number, rm_wire_span_t *field,
                       rm_wire_span_t *value) {
  int found = 0;
  rm_wire_span_t f = {0, 0}, v = {0, 0};
  size_t at = 0;
  while (at < len) {
    size_t start = at, value_at, n;
    uint32_t tag;
    if (rm__wire_next_field(msg, len, &at, &tag, &value_at, &n))
      return RM_EINPUT;
    if ((tag >> 3) != number)
      continue;
    if ((tag & 7) != RM_WIRE_DELIMITED || found)
      return RM_EINPUT;
    found = 1;
    f = (rm_wire_span_t){start, at - start};
    v = (rm_wire_span_t){value_at, n};
  }
  if (found && field)
    *field = f;
  if (found && value)
    *value = v;
  return found;
}
