/* bytebuf.h - protobuf-c messages to and from gRPC byte buffers. */
#ifndef RM_SERVER_BYTEBUF_H
#define RM_SERVER_BYTEBUF_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Packs msg, whose packed size is at most bound, into a new one-slice byte buffer of its
 * packed size (*len) that holds a buffer of bound bytes; a message found bigger aborts the
 * process (it was packed past the buffer). The caller destroys it
 * (grpc_byte_buffer_destroy). Any thread. */
grpc_byte_buffer *rm_bytebuf_pack_within(const ProtobufCMessage *msg, size_t bound, size_t *len);
/* Packs msg, whose packed size is len, into a new one-slice byte buffer. NULL on OOM.
 * The caller destroys it (grpc_byte_buffer_destroy). Any thread. */
grpc_byte_buffer *rm_bytebuf_pack_sized(const ProtobufCMessage *msg, size_t len);
/* rm_bytebuf_pack_sized with the message's own packed size. */
grpc_byte_buffer *rm_bytebuf_pack(const ProtobufCMessage *msg);

/* Unpacks bytes with rm_malloc: NULL when they are not a valid message or memory ran out.
 * Free with rm_bytebuf_unpack_free. Any thread. */
ProtobufCMessage *rm_bytebuf_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                    size_t len);
/* Frees what rm_bytebuf_unpack returned; NULL is a no-op. */
void rm_bytebuf_unpack_free(ProtobufCMessage *msg);

/* Payload fields from this size on are read in place (unary requests: views into the received
 * bytes) and answered in place (responses: slices pointing at the output buffers); smaller
 * ones are copied. Below it a copy costs less than the views' skeleton and patching walk and
 * the borrowed slices' bookkeeping: on 4-32 KiB PassThrough calls copying gave 6-13 % more
 * calls/s, at 64 KiB both were equal (bench/wire_bench.py, pinned, 16 streams). */
#define RM_VIEW_MIN_BYTES (32 * 1024)

/* A received message's bytes in one piece: its only slice as it is (the usual case, no
 * copy), or its slices copied together. */
typedef struct rm_bytebuf_view {
  grpc_byte_buffer_reader reader;
  grpc_slice all;
  const uint8_t *data;
  size_t len;
  /* private: data[gap_at, gap_at + gap_len) not copied yet (rm_bytebuf_view_init_gapped);
   * the received slices hold those bytes */
  size_t gap_at, gap_len;
  const grpc_slice *slices;
  size_t n_slices;
} rm_bytebuf_view_t;

/* Views bb, which must outlive the view. 0, or -1 when the buffer cannot be read (a
 * compressed body that does not inflate); rm_bytebuf_view_destroy is needed only after 0. */
int rm_bytebuf_view_init(rm_bytebuf_view_t *v, grpc_byte_buffer *bb);
/* rm_bytebuf_view_init for a message of type desc (NULL: unknown): when its slices are copied
 * into one piece, its first large bytes field (found in its first 4 KiB) lands at a 64-byte
 * aligned address, so it can be read in place (rm_wire_buffer_from_proto copies a misaligned
 * payload). The bytes are the same either way. */
int rm_bytebuf_view_init_for(rm_bytebuf_view_t *v, grpc_byte_buffer *bb,
                             const ProtobufCMessageDescriptor *desc);
/* rm_bytebuf_view_init_for, but when the slices are copied, the contents of the first field
 * rm_wire_views_skeleton would view (rm_wire_first_view) are left out of the copy: a gap of
 * data that holds no bytes yet, at the aligned place they would be copied to. Nothing may read
 * there before rm_bytebuf_view_fill; rm_wire_views_skeleton never does, and
 * rm_bytebuf_view_gap_pieces gives a range of it as the received slices' bytes, so a message
 * that only forwards the field (a PassThrough's response) never copies it. */
int rm_bytebuf_view_init_gapped(rm_bytebuf_view_t *v, grpc_byte_buffer *bb,
                                const ProtobufCMessageDescriptor *desc);
/* Copies the gap's bytes in (no-op without one): data then holds the whole message. */
void rm_bytebuf_view_fill(rm_bytebuf_view_t *v);
/* 1 when [p, p + len) lies in the gap: then piece(arg, data, n) is called for each run of
 * those bytes in the received slices, in order (they live as long as bb). 0 otherwise. */
int rm_bytebuf_view_gap_pieces(const rm_bytebuf_view_t *v, const uint8_t *p, size_t len,
                               void (*piece)(void *arg, const uint8_t *data, size_t len),
                               void *arg);
/* 1 when [p, p + len) and the gap share a byte. */
int rm_bytebuf_view_in_gap(const rm_bytebuf_view_t *v, const uint8_t *p, size_t len);
void rm_bytebuf_view_destroy(rm_bytebuf_view_t *v);
/* Bytes rm_bytebuf_view_init would copy to view bb (0 when bb is one slice; the copy's
 * alignment slack included), so they can be asked of a budget first. */
size_t rm_bytebuf_view_copy_bytes(grpc_byte_buffer *bb);

#endif
