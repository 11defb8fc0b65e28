/* bytebuf.c - protobuf-c messages to and from gRPC byte buffers. */
#include "bytebuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rm/alloc.h"
#include "rm/wire_proto.h"

grpc_byte_buffer *rm_bytebuf_pack_within(const ProtobufCMessage *msg, size_t bound, size_t *len) {
  grpc_slice slice = grpc_slice_malloc(bound);
  *len = protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  if (*len > bound) /* memory past the buffer is already overwritten: stop here */
    abort();
  grpc_slice packed = *len < bound ? grpc_slice_sub(slice, 0, *len) : grpc_slice_ref(slice);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&packed, 1);
  grpc_slice_unref(packed);
  grpc_slice_unref(slice);
  return bb;
}

grpc_byte_buffer *rm_bytebuf_pack_sized(const ProtobufCMessage *msg, size_t len) {
  size_t packed;
  return rm_bytebuf_pack_within(msg, len, &packed);
}

grpc_byte_buffer *rm_bytebuf_pack(const ProtobufCMessage *msg) {
  return rm_bytebuf_pack_sized(msg, protobuf_c_message_get_packed_size(msg));
}

static void *pb_alloc(void *data, size_t size) {
  (void)data;
  return rm_malloc(size);
}
static void pb_free(void *data, void *ptr) {
  (void)data;
  rm_free(ptr);
}
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

ProtobufCMessage *rm_bytebuf_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                    size_t len) {
  if (rm_wire_check_nesting(desc, data, len, NULL, NULL)) /* protobuf-c would recurse without end */
    return NULL;
  return protobuf_c_message_unpack(desc, &pb_allocator, len, data);
}

void rm_bytebuf_unpack_free(ProtobufCMessage *msg) {
  if (msg)
    protobuf_c_message_free_unpacked(msg, &pb_allocator);
}

/* A message of several slices is copied into one piece with its first large bytes field (a
 * payload: audio samples, tensor data) placed at an address aligned to this, so the engine
 * can read it where it lies instead of copying it again for alignment (rm_wire_buffer_from_proto
 * borrows aligned payloads only). A cache line covers every element type and vector loads. */
#define VIEW_ALIGN 64
/* The fields before a payload (a manifest, map keys, headers) are looked for in the message's
 * first bytes only: a payload that starts later is not aligned. */
#define VIEW_PREFIX 4096

/* The raw, uncompressed slices of bb when it has several (the case that is copied), else 0. */
static size_t raw_slices(grpc_byte_buffer *bb, grpc_slice **slices) {
  if (bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE ||
      bb->data.raw.slice_buffer.count <= 1)
    return 0;
  *slices = bb->data.raw.slice_buffer.slices;
  return bb->data.raw.slice_buffer.count;
}

size_t rm_bytebuf_view_copy_bytes(grpc_byte_buffer *bb) {
  grpc_slice *slices;
  if (raw_slices(bb, &slices))
    return grpc_byte_buffer_length(bb) + VIEW_ALIGN - 1;
  /* one raw slice is viewed as it is; a compressed body is inflated into a copy */
  return bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE
             ? 0
             : grpc_byte_buffer_length(bb);
}

/* Calls run(arg, at, bytes, k) for each run of bytes [from, to) of the message the n slices
 * hold, in order: `at` is the run's offset in the message. */
static void each_run(const grpc_slice *slices, size_t n, size_t from, size_t to,
                     void (*run)(void *arg, size_t at, const uint8_t *bytes, size_t k), void *arg) {
  size_t at = 0;
  for (size_t i = 0; i < n && at < to; i++) {
    size_t k = GRPC_SLICE_LENGTH(slices[i]);
    size_t lo = from > at ? from : at, hi = to < at + k ? to : at + k;
    if (lo < hi)
      run(arg, lo, GRPC_SLICE_START_PTR(slices[i]) + (lo - at), hi - lo);
    at += k;
  }
}

static void copy_run(void *dst, size_t at, const uint8_t *bytes, size_t k) {
  memcpy((uint8_t *)dst + at, bytes, k);
}

static void count_run(void *count, size_t at, const uint8_t *bytes, size_t k) {
  (void)at, (void)bytes, (void)k;
  ++*(size_t *)count;
}

/* Copies bytes [from, to) of the message the n slices hold to dst + from. */
static void copy_range(uint8_t *dst, const grpc_slice *slices, size_t n, size_t from, size_t to) {
  each_run(slices, n, from, to, copy_run, dst);
}

/* A gap is sent back as one borrowed slice per received slice over it (call.c), each an
 * allocation of the core's that no budget sees: a client that sends its payload in tiny pieces
 * (HTTP/2 DATA frames of a few bytes) gets it copied instead. Clients send 8-16 KiB frames. */
#define GAP_SLICE_BYTES 4096

/* How many of the n slices hold bytes of span. */
static size_t slices_over(const grpc_slice *slices, size_t n, rm_wire_span_t span) {
  size_t count = 0;
  each_run(slices, n, span.offset, span.offset + span.length, count_run, &count);
  return count;
}

/* Copies the n slices (len bytes in all) into one new slice, with the payload desc finds (when
 * desc is set), else the message's start, at an aligned address; with `gapped`, the payload's
 * contents are left out when rm_wire_views_skeleton would view them (the view's gap). */
static void copy_aligned(rm_bytebuf_view_t *v, const grpc_slice *slices, size_t n, size_t len,
                         const ProtobufCMessageDescriptor *desc, int gapped) {
  uint8_t prefix[VIEW_PREFIX];
  size_t have = 0;
  for (size_t i = 0; i < n && have < sizeof prefix; i++) {
    size_t k = GRPC_SLICE_LENGTH(slices[i]);
    if (k > sizeof prefix - have)
      k = sizeof prefix - have;
    memcpy(prefix + have, GRPC_SLICE_START_PTR(slices[i]), k);
    have += k;
  }
  long off = desc ? rm_wire_first_payload(desc, prefix, have, len, RM_VIEW_MIN_BYTES) : -1;
  rm_wire_span_t gap = {0, 0};
  if (!gapped || off < 0 || !rm_wire_first_view(desc, prefix, have, len, RM_VIEW_MIN_BYTES, &gap) ||
      gap.offset != (size_t)off || slices_over(slices, n, gap) > gap.length / GAP_SLICE_BYTES + 2)
    gap = (rm_wire_span_t){0, 0};
  v->all = grpc_slice_malloc(len + VIEW_ALIGN - 1);
  uint8_t *base = GRPC_SLICE_START_PTR(v->all);
  size_t pad =
      (VIEW_ALIGN - ((uintptr_t)base + (off > 0 ? (size_t)off : 0)) % VIEW_ALIGN) % VIEW_ALIGN;
  uint8_t *dst = base + pad;
  if (gap.length) {
    copy_range(dst, slices, n, 0, gap.offset);
    copy_range(dst, slices, n, gap.offset + gap.length, len);
    v->gap_at = gap.offset;
    v->gap_len = gap.length;
    v->slices = slices;
    v->n_slices = n;
  } else {
    copy_range(dst, slices, n, 0, len);
  }
  v->data = dst;
  v->len = len;
}

static int view_init(rm_bytebuf_view_t *v, grpc_byte_buffer *bb,
                     const ProtobufCMessageDescriptor *desc, int gapped) {
  grpc_slice *first, *slices;
  v->all = grpc_empty_slice();
  v->data = (const uint8_t *)"";
  v->len = grpc_byte_buffer_length(bb);
  v->gap_at = v->gap_len = v->n_slices = 0;
  v->slices = NULL;
  if (!grpc_byte_buffer_reader_init(&v->reader, bb))
    return -1;
  size_t n = raw_slices(bb, &slices);
  if (v->len && grpc_byte_buffer_reader_peek(&v->reader, &first) &&
      GRPC_SLICE_LENGTH(*first) == v->len) {
    v->data = GRPC_SLICE_START_PTR(*first);
  } else if (v->len && n) {
    copy_aligned(v, slices, n, v->len, desc, gapped);
  } else if (v->len) {
    grpc_byte_buffer_reader_destroy(&v->reader);
    grpc_byte_buffer_reader_init(&v->reader, bb);
    v->all = grpc_byte_buffer_reader_readall(&v->reader);
    v->data = GRPC_SLICE_START_PTR(v->all);
    v->len = GRPC_SLICE_LENGTH(v->all);
  }
  return 0;
}

int rm_bytebuf_view_init_for(rm_bytebuf_view_t *v, grpc_byte_buffer *bb,
                             const ProtobufCMessageDescriptor *desc) {
  return view_init(v, bb, desc, 0);
}

int rm_bytebuf_view_init_gapped(rm_bytebuf_view_t *v, grpc_byte_buffer *bb,
                                const ProtobufCMessageDescriptor *desc) {
  return view_init(v, bb, desc, 1);
}

void rm_bytebuf_view_fill(rm_bytebuf_view_t *v) {
  if (!v->gap_len)
    return;
  copy_range((uint8_t *)(uintptr_t)v->data, v->slices, v->n_slices, v->gap_at,
             v->gap_at + v->gap_len);
  v->gap_len = 0;
}

int rm_bytebuf_view_in_gap(const rm_bytebuf_view_t *v, const uint8_t *p, size_t len) {
  const uint8_t *lo = v->data + v->gap_at, *hi = lo + v->gap_len;
  return v->gap_len && len && p < hi && p + len > lo;
}

typedef struct piece_fn {
  void (*piece)(void *arg, const uint8_t *data, size_t len);
  void *arg;
} piece_fn_t;

static void piece_run(void *arg, size_t at, const uint8_t *bytes, size_t k) {
  piece_fn_t *f = arg;
  (void)at;
  f->piece(f->arg, bytes, k);
}

int rm_bytebuf_view_gap_pieces(const rm_bytebuf_view_t *v, const uint8_t *p, size_t len,
                               void (*piece)(void *arg, const uint8_t *data, size_t len),
                               void *arg) {
  const uint8_t *lo = v->data + v->gap_at;
  if (!v->gap_len || p < lo || len > v->gap_len || (size_t)(p - lo) > v->gap_len - len)
    return 0;
  size_t from = v->gap_at + (size_t)(p - lo);
  piece_fn_t f = {piece, arg};
  each_run(v->slices, v->n_slices, from, from + len, piece_run, &f);
  return 1;
}

int rm_bytebuf_view_init(rm_bytebuf_view_t *v, grpc_byte_buffer *bb) {
  return rm_bytebuf_view_init_for(v, bb, NULL);
}

void rm_bytebuf_view_destroy(rm_bytebuf_view_t *v) {
  grpc_slice_unref(v->all);
  grpc_byte_buffer_reader_destroy(&v->reader);
}
