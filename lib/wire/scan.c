/* scan.c - finds fields in a message's wire bytes without unpacking it. */
#include <stdint.h>
#include <stdio.h>

#include "rm/wire_proto.h"
#include "wire_int.h"

/* first_payload over the fields at..end of a message desc describes, depth levels down, into
 * sub-messages while depth < max_depth; with views_only, repeated bytes fields do not count
 * (rm_wire_views_skeleton leaves them alone). The offset (and *value_len) or -1. */
static long first_payload_in(const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                             size_t have, size_t at, size_t end, size_t min_len, unsigned depth,
                             unsigned max_depth, int views_only, size_t *value_len) {
  while (at < end && at < have) {
    uint32_t tag;
    size_t value_at, n;
    if (rm__wire_next_field_in(msg, have, end, &at, &tag, &value_at, &n))
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

/* A field the way protobuf-c (1.4) reads it, so the check sees the fields its unpack will: the
 * tag's number from at most 5 bytes with the bits past 32 dropped (a field number 0 in two
 * bytes is field 0, skipped as unknown; a tag above 32 bits is cut to some field's number),
 * then the value as every scanner reads it (rm__wire_field_value). 0, or -1 when the bytes cannot
 * be read that way (its unpack fails on them, or they are refused). */
static int next_field_as_protobuf_c(const uint8_t *msg, size_t end, size_t *at, uint32_t *number,
                                    unsigned *wire, size_t *value_at, size_t *value_len) {
  size_t max = end - *at < 5 ? end - *at : 5, used = 0;
  if (max == 0)
    return -1;
  const uint8_t *d = msg + *at;
  uint32_t num = (uint32_t)(d[0] & 0x7f) >> 3;
  unsigned shift = 4;
  if (!(d[0] & 0x80))
    used = 1;
  for (size_t i = 1; !used && i < max; i++) {
    num |= (uint32_t)(d[i] & 0x7f) << shift; /* bits past 32 are dropped, as there */
    shift += 7;
    if (!(d[i] & 0x80))
      used = i + 1;
  }
  if (!used)
    return -1;
  *at += used;
  if (rm__wire_field_value(msg, end, end, at, d[0] & 7, value_at, value_len))
    return -1;
  *number = num;
  *wire = d[0] & 7;
  return 0;
}

int rm_wire_check_nesting(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                          const char *prefix, rm_error_t *err) {
  if (len / 2 <= RM_WIRE_MAX_NESTING) /* a level takes two bytes at least: tag and length */
    return 0;
  struct {
    const ProtobufCMessageDescriptor *desc;
    size_t end;
    const char *name;
  } level[RM_WIRE_MAX_NESTING + 1];
  unsigned depth = 0;
  level[0].desc = desc;
  level[0].end = len;
  level[0].name = NULL;
  size_t at = 0;
  for (;;) {
    while (depth > 0 && at >= level[depth].end)
      depth--;
    if (at >= len)
      return 0;
    uint32_t number;
    unsigned wire;
    size_t value_at, n, field_at = at;
    /* what cannot be read so is refused: unread, protobuf-c might recurse into it */
    if (next_field_as_protobuf_c(msg, level[depth].end, &at, &number, &wire, &value_at, &n))
      return rm_error_set(err, RM_EINPUT, NULL, NULL, "the message is not well-formed at byte %zu",
                          field_at);
    if (wire != RM_WIRE_DELIMITED)
      continue;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(level[depth].desc, number);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    if (depth == RM_WIRE_MAX_NESTING) {
      char path[160];
      size_t used = (size_t)snprintf(path, sizeof path, "%s", prefix ? prefix : "");
      for (unsigned i = 1; i <= depth && i + (prefix != NULL) <= 4 && used < sizeof path; i++)
        used += (size_t)snprintf(path + used, sizeof path - used, "%s%s", used ? "." : "",
                                 level[i].name);
      return rm_error_set(err, RM_ELIMIT, NULL, "nesting",
                          "the message nests sub-messages more than %d levels deep (%s...)",
                          RM_WIRE_MAX_NESTING, path);
    }
    depth++;
    level[depth].desc = f->descriptor;
    level[depth].end = value_at + n;
    level[depth].name = f->name;
    at = value_at;
  }
}
