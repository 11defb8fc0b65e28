/* bytebuf.c - protobuf-c messages to and from gRPC byte buffers. */
#include "bytebuf.h"

#include "rm/alloc.h"

grpc_byte_buffer *rm_bytebuf_pack_sized(const ProtobufCMessage *msg, size_t len) {
  grpc_slice slice = grpc_slice_malloc(len);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
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
  return protobuf_c_message_unpack(desc, &pb_allocator, len, data);
}

void rm_bytebuf_unpack_free(ProtobufCMessage *msg) {
  if (msg)
    protobuf_c_message_free_unpacked(msg, &pb_allocator);
}

size_t rm_bytebuf_view_copy_bytes(grpc_byte_buffer *bb) {
  if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
      bb->data.raw.slice_buffer.count <= 1)
    return 0;
  return grpc_byte_buffer_length(bb);
}

int rm_bytebuf_view_init(rm_bytebuf_view_t *v, grpc_byte_buffer *bb) {
  grpc_slice *first;
  v->all = grpc_empty_slice();
  v->data = (const uint8_t *)"";
  v->len = grpc_byte_buffer_length(bb);
  if (!grpc_byte_buffer_reader_init(&v->reader, bb))
    return -1;
  if (v->len && grpc_byte_buffer_reader_peek(&v->reader, &first) &&
      GRPC_SLICE_LENGTH(*first) == v->len) {
    v->data = GRPC_SLICE_START_PTR(*first);
  } else if (v->len) {
    grpc_byte_buffer_reader_destroy(&v->reader);
    grpc_byte_buffer_reader_init(&v->reader, bb);
    v->all = grpc_byte_buffer_reader_readall(&v->reader);
    v->data = GRPC_SLICE_START_PTR(v->all);
    v->len = GRPC_SLICE_LENGTH(v->all);
  }
  return 0;
}

void rm_bytebuf_view_destroy(rm_bytebuf_view_t *v) {
  grpc_slice_unref(v->all);
  grpc_byte_buffer_reader_destroy(&v->reader);
}
