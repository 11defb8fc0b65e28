/* reflection.c - grpc.reflection.v1 and v1alpha ServerReflection, answered from the
 * descriptor set the build embeds (the two versions share one wire format). */
#include "reflection.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "pipeline_service.h"
#include "rm/alloc.h"

extern const unsigned char rm_descriptor_set[];
extern const size_t rm_descriptor_set_size;

typedef struct file_entry {
  const uint8_t *raw; /* the serialized FileDescriptorProto inside the embedded set */
  size_t len;
  Google__Protobuf__FileDescriptorProto *fd;
} file_entry_t;

typedef struct symbol {
  char *name;
  size_t file;
  int is_message;
} symbol_t;

static file_entry_t *files;
static size_t n_files;
static symbol_t *symbols;
static size_t n_symbols, cap_symbols;

/* ---------------------------------------------------------------- index */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return 0;
  }
  return -1;
}

static int add_symbol(const char *scope, const char *name, size_t file, int is_message) {
  if (n_symbols == cap_symbols) {
    size_t cap = cap_symbols ? cap_symbols * 2 : 256;
    symbol_t *g = rm_realloc(symbols, cap * sizeof *g);
    if (!g)
      return -1;
    symbols = g;
    cap_symbols = cap;
  }
  size_t len = strlen(scope) + 1 + strlen(name) + 1;
  char *full = rm_malloc(len);
  if (!full)
    return -1;
  snprintf(full, len, "%s%s%s", scope, *scope ? "." : "", name);
  symbols[n_symbols++] = (symbol_t){full, file, is_message};
  return 0;
}

static int index_enum(const char *scope, const Google__Protobuf__EnumDescriptorProto *e,
                      size_t file) {
  if (add_symbol(scope, e->name, file, 0))
    return -1;
  /* enum values live in the enum's enclosing scope */
  for (size_t i = 0; i < e->n_value; i++)
    if (add_symbol(scope, e->value[i]->name, file, 0))
      return -1;
  return 0;
}

static int index_message(const char *scope, const Google__Protobuf__DescriptorProto *m,
                         size_t file) {
  if (add_symbol(scope, m->name, file, 1))
    return -1;
  const char *full = symbols[n_symbols - 1].name;
  for (size_t i = 0; i < m->n_field; i++)
    if (add_symbol(full, m->field[i]->name, file, 0))
      return -1;
  /* `full` may move when symbols grows: take a copy for the nested scopes */
  char *mine = rm_strdup(full);
  if (!mine)
    return -1;
  int rc = 0;
  for (size_t i = 0; !rc && i < m->n_nested_type; i++)
    rc = index_message(mine, m->nested_type[i], file);
  for (size_t i = 0; !rc && i < m->n_enum_type; i++)
    rc = index_enum(mine, m->enum_type[i], file);
  rm_free(mine);
  return rc;
}

static int index_file(size_t f) {
  const Google__Protobuf__FileDescriptorProto *fd = files[f].fd;
  const char *pkg = fd->package ? fd->package : "";
  for (size_t i = 0; i < fd->n_message_type; i++)
    if (index_message(pkg, fd->message_type[i], f))
      return -1;
  for (size_t i = 0; i < fd->n_enum_type; i++)
    if (index_enum(pkg, fd->enum_type[i], f))
      return -1;
  for (size_t i = 0; i < fd->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = fd->service[i];
    if (add_symbol(pkg, s->name, f, 0))
      return -1;
    char *svc = rm_strdup(symbols[n_symbols - 1].name);
    if (!svc)
      return -1;
    for (size_t j = 0; j < s->n_method; j++)
      if (add_symbol(svc, s->method[j]->name, f, 0)) {
        rm_free(svc);
        return -1;
      }
    rm_free(svc);
  }
  for (size_t i = 0; i < fd->n_extension; i++)
    if (add_symbol(pkg, fd->extension[i]->name, f, 0))
      return -1;
  return 0;
}

int rm_reflection_init(void) {
  const uint8_t *p = rm_descriptor_set, *end = rm_descriptor_set + rm_descriptor_set_size;
  size_t cap = 0;
  while (p < end) {
    uint64_t key, len;
    if (read_varint(&p, end, &key) || key != ((1 << 3) | 2) || read_varint(&p, end, &len) ||
        len > (uint64_t)(end - p))
      return -1; /* FileDescriptorSet holds only field 1, length-delimited */
    if (n_files == cap) {
      cap = cap ? cap * 2 : 16;
      file_entry_t *g = rm_realloc(files, cap * sizeof *g);
      if (!g)
        return -1;
      files = g;
    }
    file_entry_t *fe = &files[n_files];
    fe->raw = p;
    fe->len = (size_t)len;
    fe->fd = google__protobuf__file_descriptor_proto__unpack(NULL, fe->len, fe->raw);
    if (!fe->fd)
      return -1;
    n_files++;
    p += len;
  }
  for (size_t f = 0; f < n_files; f++)
    if (index_file(f))
      return -1;
  return 0;
}

void rm_reflection_cleanup(void) {
  for (size_t i = 0; i < n_files; i++)
    google__protobuf__file_descriptor_proto__free_unpacked(files[i].fd, NULL);
  for (size_t i = 0; i < n_symbols; i++)
    rm_free(symbols[i].name);
  rm_free(files);
  rm_free(symbols);
  files = NULL;
  symbols = NULL;
  n_files = n_symbols = cap_symbols = 0;
}

static long find_file(const char *name) {
  for (size_t i = 0; i < n_files; i++)
    if (!strcmp(files[i].fd->name, name))
      return (long)i;
  return -1;
}

static const symbol_t *find_symbol(const char *name) {
  if (*name == '.') /* fully-qualified with a leading dot */
    name++;
  for (size_t i = 0; i < n_symbols; i++)
    if (!strcmp(symbols[i].name, name))
      return &symbols[i];
  return NULL;
}

/* Appends file f and, after it, every file it depends on (transitively, once each). */
static void collect(size_t f, char *seen, size_t *order, size_t *n) {
  if (seen[f])
    return;
  seen[f] = 1;
  order[(*n)++] = f;
  for (size_t i = 0; i < files[f].fd->n_dependency; i++) {
    long d = find_file(files[f].fd->dependency[i]);
    if (d >= 0)
      collect((size_t)d, seen, order, n);
  }
}

/* ---------------------------------------------------------------- answering */

/* Builds the response for one request, packed into a byte buffer. */
static grpc_byte_buffer *answer(Grpc__Reflection__V1__ServerReflectionRequest *req) {
  Grpc__Reflection__V1__ServerReflectionResponse resp =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  Grpc__Reflection__V1__FileDescriptorResponse fdr =
      GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1__ListServiceResponse lsr = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1__ExtensionNumberResponse enr =
      GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1__ErrorResponse er = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
  Grpc__Reflection__V1__ServiceResponse svc[8];
  Grpc__Reflection__V1__ServiceResponse *svc_ptrs[8];
  ProtobufCBinaryData blobs[64];
  char seen[64] = {0};
  size_t order[64], n_order = 0;
  char text[300];
  resp.valid_host = req->host;
  resp.original_request = req;
  long file = -1;
  const char *what = NULL;

  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
    size_t n;
    const char *const *names = rm_pipeline_service_names(&n);
    for (size_t i = 0; i < n && i < 8; i++) {
      grpc__reflection__v1__service_response__init(&svc[i]);
      svc[i].name = (char *)names[i];
      svc_ptrs[i] = &svc[i];
    }
    lsr.n_service = n < 8 ? n : 8;
    lsr.service = svc_ptrs;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp.list_services_response = &lsr;
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    file = find_file(req->file_by_filename);
    what = req->file_by_filename;
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
    const symbol_t *s = find_symbol(req->file_containing_symbol);
    file = s ? (long)s->file : -1;
    what = req->file_containing_symbol;
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
    const symbol_t *s = find_symbol(req->all_extension_numbers_of_type);
    if (s && s->is_message) { /* none of our messages has extensions */
      enr.base_type_name = req->all_extension_numbers_of_type;
      resp.message_response_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
      resp.all_extension_numbers_response = &enr;
    } else {
      what = req->all_extension_numbers_of_type;
    }
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    snprintf(text, sizeof text, "extension %d of %.200s",
             req->file_containing_extension->extension_number,
             req->file_containing_extension->containing_type);
    what = text;
    break;
  default:
    er.error_code = GRPC_STATUS_INVALID_ARGUMENT;
    er.error_message = "the request sets no message_request";
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp.error_response = &er;
    break;
  }
  if (file >= 0 && n_files <= 64) {
    collect((size_t)file, seen, order, &n_order);
    for (size_t i = 0; i < n_order; i++) {
      blobs[i].data = (uint8_t *)files[order[i]].raw;
      blobs[i].len = files[order[i]].len;
    }
    fdr.file_descriptor_proto = blobs;
    fdr.n_file_descriptor_proto = n_order;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp.file_descriptor_response = &fdr;
  } else if (resp.message_response_case ==
             GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
    char msg[400];
    snprintf(msg, sizeof msg, "%.300s not found", what ? what : "?");
    er.error_code = GRPC_STATUS_NOT_FOUND;
    er.error_message = msg;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp.error_response = &er;
    return rm_pack(&resp.base);
  }
  return rm_pack(&resp.base);
}

/* ---------------------------------------------------------------- the stream */

typedef struct refl {
  rm_tag_t close_tag;
  rm_tag_t io_tag;
  atomic_int refs; /* close batch + the one read/write/status op in flight */
  rm_server_t *s;
  grpc_call *call;
  grpc_byte_buffer *in, *out;
  int close_cancelled;
  enum { READING, WRITING, FINISHING } state;
  grpc_slice details;
} refl_t;

static void refl_unref(refl_t *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1)
    return;
  if (r->in)
    grpc_byte_buffer_destroy(r->in);
  if (r->out)
    grpc_byte_buffer_destroy(r->out);
  grpc_slice_unref(r->details);
  rm_server_t *s = r->s;
  grpc_call_unref(r->call);
  rm_free(r);
  rm_server_release(s);
}

static void on_refl_close(rm_tag_t *tag, int ok) {
  (void)ok;
  refl_unref(RM_TAG_OWNER(tag, refl_t, close_tag));
}

static int start_read(refl_t *r, int with_md) {
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (with_md)
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n].data.recv_message.recv_message = &r->in;
  n++;
  r->state = READING;
  return grpc_call_start_batch(r->call, ops, n, &r->io_tag, NULL) == GRPC_CALL_OK ? 0 : -1;
}

static int finish(refl_t *r, grpc_status_code code, const char *msg) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  op.data.send_status_from_server.status = code;
  grpc_slice_unref(r->details);
  r->details = grpc_slice_from_copied_string(msg);
  op.data.send_status_from_server.status_details = &r->details;
  r->state = FINISHING;
  return grpc_call_start_batch(r->call, &op, 1, &r->io_tag, NULL) == GRPC_CALL_OK ? 0 : -1;
}

static void on_refl_io(rm_tag_t *tag, int ok) {
  refl_t *r = RM_TAG_OWNER(tag, refl_t, io_tag);
  int rc = -1;
  if (r->state == FINISHING || !ok) {
    refl_unref(r);
    return;
  }
  if (r->state == WRITING) {
    grpc_byte_buffer_destroy(r->out);
    r->out = NULL;
    rc = start_read(r, 0);
  } else if (!r->in) { /* the client half-closed: done */
    rc = finish(r, GRPC_STATUS_OK, "");
  } else {
    Grpc__Reflection__V1__ServerReflectionRequest *req =
        (Grpc__Reflection__V1__ServerReflectionRequest *)rm_unpack(
            &grpc__reflection__v1__server_reflection_request__descriptor, r->in);
    grpc_byte_buffer_destroy(r->in);
    r->in = NULL;
    if (!req) {
      rc = finish(r, GRPC_STATUS_INVALID_ARGUMENT,
                  "the request is not a valid ServerReflectionRequest");
    } else {
      r->out = answer(req);
      rm_unpack_free(&req->base);
      if (!r->out) { /* out of memory: end the stream with a status */
        rc = finish(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        if (rc)
          refl_unref(r);
        return;
      }
      grpc_op op;
      memset(&op, 0, sizeof op);
      op.op = GRPC_OP_SEND_MESSAGE;
      op.data.send_message.send_message = r->out;
      r->state = WRITING;
      rc = grpc_call_start_batch(r->call, &op, 1, &r->io_tag, NULL) == GRPC_CALL_OK ? 0 : -1;
    }
  }
  if (rc)
    refl_unref(r);
}

static void refl_start(rm_server_t *s, grpc_call *call, grpc_byte_buffer *payload, void *cq) {
  (void)cq;
  if (payload)
    grpc_byte_buffer_destroy(payload);
  refl_t *r = rm_calloc(1, sizeof *r);
  if (!r) {
    grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(call);
    rm_server_release(s);
    return;
  }
  r->s = s;
  r->call = call;
  r->details = grpc_empty_slice();
  r->close_tag.fn = on_refl_close;
  r->io_tag.fn = on_refl_io;
  atomic_init(&r->refs, 2);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &r->close_cancelled;
  if (grpc_call_start_batch(call, &op, 1, &r->close_tag, NULL) != GRPC_CALL_OK)
    atomic_fetch_sub(&r->refs, 1);
  if (start_read(r, 1))
    refl_unref(r);
}

void rm_reflection_methods(rm_method_t *out) {
  out[0] = (rm_method_t){.path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                         .kind = RM_RPC_STREAM,
                         .needs_auth = 1,
                         .start = refl_start};
  out[1] = (rm_method_t){.path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                         .kind = RM_RPC_STREAM,
                         .needs_auth = 1,
                         .start = refl_start};
}
