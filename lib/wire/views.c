/* views.c - unpacking a message so its large bytes fields point into the wire bytes. */
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "rm/wire_proto.h"
#include "wire_int.h"

/* A replaced field's contents on the skeleton: a per-process secret and the span's index.
 * A client cannot send these bytes on purpose (it does not know the secret), so a token in
 * the unpacked message is one this module wrote. */
#define SECRET_LEN 12
#define TOKEN_LEN RM__WIRE_TOKEN_LEN /* SECRET_LEN + a 4-byte index */
_Static_assert(TOKEN_LEN == SECRET_LEN + 4, "a token is the secret and an index");
static uint8_t secret[SECRET_LEN];
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void make_secret(void) {
  if (getrandom(secret, sizeof secret, 0) != (ssize_t)sizeof secret) {
    /* no entropy source: a clock and an address still make an unguessable-enough value */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30), b = (uintptr_t)&ts;
    memcpy(secret, &a, 8);
    memcpy(secret + 8, &b, 4);
  }
}

static size_t put_varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    if (out)
      out[n] = byte | (v ? 0x80 : 0);
    n++;
  } while (v);
  return n;
}

typedef struct skel {
  const uint8_t *base; /* the whole message: spans are offsets into it */
  size_t min_len;
  rm_wire_span_t *spans;
  size_t n_spans, max_spans;
  int sizing; /* the caller asked for sizes only: count the spans too */
} skel_t;

/* Writes msg[0..len)'s skeleton at out (when out is not NULL); returns its size, or
 * (size_t)-1 when the bytes are not well-formed. Sub-messages are rewritten down to
 * RM_WIRE_VIEW_DEPTH levels, deeper ones copied as they are. */
static size_t emit(skel_t *k, const ProtobufCMessageDescriptor *desc, const uint8_t *msg,
                   size_t len, uint32_t skip, unsigned depth, uint8_t *out) {
  size_t at = 0, w = 0;
  while (at < len) {
    size_t start = at, value, n;
    uint32_t tag;
    if (rm__wire_next_field(msg, len, &at, &tag, &value, &n))
      return (size_t)-1;
    uint32_t number = (uint32_t)(tag >> 3);
    if (depth == 0 && number == skip)
      continue;
    const ProtobufCFieldDescriptor *f = (tag & 7) == RM_WIRE_DELIMITED
                                            ? protobuf_c_message_descriptor_get_field(desc, number)
                                            : NULL;
    size_t tag_len = put_varint(NULL, tag);
    if (f && f->type == PROTOBUF_C_TYPE_BYTES && f->label != PROTOBUF_C_LABEL_REPEATED &&
        n >= k->min_len && k->n_spans < k->max_spans) {
      if (out) {
        w += put_varint(out + w, tag);
        out[w++] = TOKEN_LEN;
        uint32_t idx = (uint32_t)k->n_spans;
        memcpy(out + w, secret, SECRET_LEN);
        memcpy(out + w + SECRET_LEN, &idx, 4);
        w += TOKEN_LEN;
        k->spans[k->n_spans++] = (rm_wire_span_t){(size_t)(msg + value - k->base), (size_t)n};
      } else {
        w += tag_len + 1 + TOKEN_LEN;
        k->n_spans += k->sizing;
      }
    } else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth + 1 < RM_WIRE_VIEW_DEPTH) {
      size_t sub = emit(k, f->descriptor, msg + value, (size_t)n, skip, depth + 1, NULL);
      if (sub == (size_t)-1)
        return (size_t)-1;
      if (out) {
        w += put_varint(out + w, tag);
        w += put_varint(out + w, sub);
        if (emit(k, f->descriptor, msg + value, (size_t)n, skip, depth + 1, out + w) != sub)
          return (size_t)-1;
        w += sub;
      } else {
        w += tag_len + put_varint(NULL, sub) + sub;
      }
    } else {
      if (out)
        memcpy(out + w, msg + start, at - start);
      w += at - start;
    }
  }
  return w;
}

int rm_wire_views_skeleton(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                           uint32_t skip, size_t min_len, uint8_t *out, size_t *out_len,
                           rm_wire_span_t *spans, size_t max_spans, size_t *n_spans) {
  pthread_once(&secret_once, make_secret);
  skel_t k = {
      msg, min_len < TOKEN_LEN + 1 ? TOKEN_LEN + 1 : min_len, spans, 0, out ? max_spans : SIZE_MAX,
      !out};
  size_t w = emit(&k, desc, msg, len, skip, 0, out);
  if (w == (size_t)-1)
    return RM_EINPUT;
  *out_len = w;
  *n_spans = k.n_spans;
  return 0;
}

static void patch(ProtobufCMessage *m, unsigned depth, const uint8_t *base,
                  const rm_wire_span_t *spans, size_t n_spans) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    char *member = (char *)m + f->offset;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(uint32_t *)((char *)m + f->quantifier_offset) != f->id)
      continue;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth + 1 < RM_WIRE_VIEW_DEPTH) {
      if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t count = *(size_t *)((char *)m + f->quantifier_offset);
        ProtobufCMessage **items = *(ProtobufCMessage ***)member;
        for (size_t j = 0; j < count; j++)
          if (items[j])
            patch(items[j], depth + 1, base, spans, n_spans);
      } else if (*(ProtobufCMessage **)member) {
        patch(*(ProtobufCMessage **)member, depth + 1, base, spans, n_spans);
      }
    } else if (f->type == PROTOBUF_C_TYPE_BYTES && f->label != PROTOBUF_C_LABEL_REPEATED) {
      ProtobufCBinaryData *bd = (ProtobufCBinaryData *)member;
      uint32_t idx;
      if (bd->len != TOKEN_LEN || memcmp(bd->data, secret, SECRET_LEN))
        continue;
      memcpy(&idx, bd->data + SECRET_LEN, 4);
      if (idx < n_spans) {
        bd->data = (uint8_t *)(uintptr_t)(base + spans[idx].offset);
        bd->len = spans[idx].length;
      }
    }
  }
}

void rm_wire_views_patch(ProtobufCMessage *msg, const uint8_t *base, const rm_wire_span_t *spans,
                         size_t n_spans) {
  if (msg && n_spans)
    patch(msg, 0, base, spans, n_spans);
}
