/* reflection.c - grpc.reflection.v1 and v1alpha ServerReflection, answered from the
 * descriptor set the build embeds (the two versions share one wire format). */
#include "reflection.h"

#include <stdio.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "bytebuf.h"
#include "rm/alloc.h"
#include "status.h"

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

/* One response being built: the parts it points to live here, on the answering stack. */
typedef struct reply {
  Grpc__Reflection__V1__ServerReflectionResponse resp;
  Grpc__Reflection__V1__FileDescriptorResponse fdr;
  Grpc__Reflection__V1__ListServiceResponse lsr;
  Grpc__Reflection__V1__ExtensionNumberResponse enr;
  Grpc__Reflection__V1__ErrorResponse er;
  Grpc__Reflection__V1__ServiceResponse svc[8];
  Grpc__Reflection__V1__ServiceResponse *svc_ptrs[8];
  ProtobufCBinaryData blobs[64];
  char text[400];
} reply_t;

static void list_services(reply_t *r, const rm_server_t *server) {
  size_t n;
  const char *const *names = rm_server_services(server, &n);
  for (size_t i = 0; i < n && i < 8; i++) {
    grpc__reflection__v1__service_response__init(&r->svc[i]);
    r->svc[i].name = (char *)names[i];
    r->svc_ptrs[i] = &r->svc[i];
  }
  r->lsr.n_service = n < 8 ? n : 8;
  r->lsr.service = r->svc_ptrs;
  r->resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  r->resp.list_services_response = &r->lsr;
}

/* File f and every file it depends on. */
static void file_descriptors(reply_t *r, size_t f) {
  char seen[64] = {0};
  size_t order[64], n_order = 0;
  collect(f, seen, order, &n_order);
  for (size_t i = 0; i < n_order; i++) {
    r->blobs[i].data = (uint8_t *)files[order[i]].raw;
    r->blobs[i].len = files[order[i]].len;
  }
  r->fdr.file_descriptor_proto = r->blobs;
  r->fdr.n_file_descriptor_proto = n_order;
  r->resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  r->resp.file_descriptor_response = &r->fdr;
}

/* An error answered inside the stream (the stream itself goes on). */
static void error_response(reply_t *r, int code, const char *message) {
  r->er.error_code = rm_status_from_error(code);
  r->er.error_message = (char *)message;
  r->resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  r->resp.error_response = &r->er;
}

/* The answer to an extension-numbers request (none of our messages has extensions), or 0
 * when the type is unknown. */
static int extension_numbers(reply_t *r, const char *type) {
  const symbol_t *s = find_symbol(type);
  if (!s || !s->is_message)
    return 0;
  r->enr.base_type_name = (char *)type;
  r->resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
  r->resp.all_extension_numbers_response = &r->enr;
  return 1;
}

/* Fills r->resp for one request. */
static void answer(reply_t *r, const rm_server_t *server,
                   Grpc__Reflection__V1__ServerReflectionRequest *req) {
  char what_text[300];
  const char *what = NULL;
  long file = -1;
  r->resp.valid_host = req->host;
  r->resp.original_request = req;
  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    list_services(r, server);
    return;
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
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
    if (extension_numbers(r, req->all_extension_numbers_of_type))
      return;
    what = req->all_extension_numbers_of_type;
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    snprintf(what_text, sizeof what_text, "extension %d of %.200s",
             req->file_containing_extension->extension_number,
             req->file_containing_extension->containing_type);
    what = what_text;
    break;
  default: error_response(r, RM_EBADREQUEST, "the request sets no message_request"); return;
  }
  if (file >= 0 && n_files <= 64) {
    file_descriptors(r, (size_t)file);
    return;
  }
  snprintf(r->text, sizeof r->text, "%.300s not found", what ? what : "?");
  error_response(r, RM_ENOTFOUND, r->text);
}

/* ---------------------------------------------------------------- the stream
 *
 * One request read, one response written, until the client half-closes; the handler's
 * reference on the call ends with the status (rm_call_finish) or when a read or write finds
 * the call gone (rm_call_unref). */

static void on_request(rm_call_t *call, int rc, const uint8_t *data, size_t len, void *arg);

static void on_written(rm_call_t *call, int ok, void *arg) {
  (void)arg;
  if (!ok || rm_call_read(call, on_request, NULL))
    rm_call_unref(call);
}

static void finish(rm_call_t *call, int code, const char *message) {
  rm_error_t err;
  rm_error_set(&err, code, NULL, NULL, "%s", message);
  rm_call_finish(call, &err);
}

static void on_request(rm_call_t *call, int rc, const uint8_t *data, size_t len, void *arg) {
  (void)arg;
  if (rc == RM_CALL_END) { /* the client half-closed (or went: counted as what it saw) */
    rm_call_finish_unless_gone(call, NULL);
    return;
  }
  if (rc < 0 && rc != RM_EBADREQUEST) { /* the call is gone */
    rm_call_unref(call);
    return;
  }
  if (rc == RM_CALL_TOO_BIG) {
    rm_error_t err;
    rm_call_message_too_big(call, &err, "the request message", len);
    rm_call_finish(call, &err);
    return;
  }
  Grpc__Reflection__V1__ServerReflectionRequest *req =
      rc ? NULL
         : (Grpc__Reflection__V1__ServerReflectionRequest *)rm_bytebuf_unpack(
               &grpc__reflection__v1__server_reflection_request__descriptor, data, len);
  if (!req) {
    finish(call, RM_EBADREQUEST, "the request is not a valid ServerReflectionRequest");
    return;
  }
  reply_t r;
  grpc__reflection__v1__server_reflection_response__init(&r.resp);
  grpc__reflection__v1__file_descriptor_response__init(&r.fdr);
  grpc__reflection__v1__list_service_response__init(&r.lsr);
  grpc__reflection__v1__extension_number_response__init(&r.enr);
  grpc__reflection__v1__error_response__init(&r.er);
  answer(&r, rm_call_server(call), req);
  rc = rm_call_write(call, &r.resp.base, on_written, NULL);
  rm_bytebuf_unpack_free(&req->base);
  if (rc == RM_ENOMEM) /* end the stream with a status */
    finish(call, RM_ENOMEM, "out of memory");
  else if (rc)
    rm_call_unref(call);
}

static void reflect(rm_call_t *call, const ProtobufCMessage *req) {
  (void)req; /* bidirectional: the requests are read one by one */
  if (rm_call_read(call, on_request, NULL))
    rm_call_unref(call);
}

void rm_reflection_methods(rm_method_t *out) {
  out[0] = (rm_method_t){.path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                         .kind = RM_RPC_BIDI_STREAM,
                         .needs_auth = 1,
                         .handle = reflect};
  out[1] = (rm_method_t){.path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                         .kind = RM_RPC_BIDI_STREAM,
                         .needs_auth = 1,
                         .handle = reflect};
}
