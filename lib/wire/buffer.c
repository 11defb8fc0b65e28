/* buffer.c - DataBuffer messages <-> engine buffers, borrowing payloads both ways. */
#include "rm/wire.h"

#include <string.h>

#include "rm/alloc.h"

/* A buffer over payload bytes that may be views into a request (rm_wire_views_*): borrowed
 * when they are aligned for their element type, else copied into an owned, aligned buffer, so
 * no node ever loads an element from a misaligned address. */
static rm_buffer_t *payload_buffer(rm_kind_t kind, const uint8_t *data, size_t len, size_t align,
                                   rm_mem_account_t *account) {
  if (align <= 1 || (uintptr_t)data % align == 0)
    return rm_buffer_new_borrowed(kind, data, len, account);
  rm_buffer_t *b = rm_buffer_new(kind, len, account);
  if (b && len)
    memcpy(b->data, data, len);
  return b;
}

int rm_wire_buffer_from_proto(const Remotemedia__V1__DataBuffer *msg, rm_mem_account_t *account,
                              rm_buffer_t **out, rm_error_t *err) {
  rm_buffer_t *b = NULL;
  switch (msg->kind_case) {
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO: {
    const Remotemedia__V1__AudioBuffer *a = msg->audio;
    b = payload_buffer(RM_KIND_AUDIO, a->samples.data, a->samples.len,
                       rm_sample_format_size((int)a->format), account);
    if (b) {
      b->u.audio.sample_rate = a->sample_rate;
      b->u.audio.channels = a->channels;
      b->u.audio.format = (rm_sample_format_t)a->format;
    }
    break;
  }
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TENSOR: {
    const Remotemedia__V1__TensorBuffer *t = msg->tensor;
    if (t->n_shape > RM_TENSOR_MAX_DIMS)
      return rm_error_set(err, RM_EINPUT, NULL, "shape",
                          "tensor has %zu dimensions, at most %d allowed", t->n_shape,
                          RM_TENSOR_MAX_DIMS);
    b = payload_buffer(RM_KIND_TENSOR, t->data.data, t->data.len, rm_dtype_size((int)t->dtype),
                       account);
    if (b) {
      b->u.tensor.dtype = (rm_dtype_t)t->dtype;
      b->u.tensor.ndim = (uint32_t)t->n_shape;
      for (size_t i = 0; i < t->n_shape; i++)
        b->u.tensor.shape[i] = t->shape[i];
    }
    break;
  }
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_JSON:
    b = rm_buffer_new_borrowed(RM_KIND_JSON, msg->json->json, strlen(msg->json->json), account);
    break;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_TEXT:
    b = rm_buffer_new_borrowed(RM_KIND_TEXT, msg->text->text, strlen(msg->text->text), account);
    break;
  case REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY:
    b = rm_buffer_new_borrowed(RM_KIND_BINARY, msg->binary->data.data, msg->binary->data.len,
                               account);
    if (b && msg->binary->mime_type && *msg->binary->mime_type) {
      /* borrowed like the payload: rm_buffer_unref frees mime_type, so copy it */
      b->mime_type = NULL;
      size_t n = strlen(msg->binary->mime_type);
      b->mime_type = rm_strndup(msg->binary->mime_type, n);
      if (!b->mime_type) {
        rm_buffer_unref(b);
        b = NULL;
      }
    }
    break;
  default:
    return rm_error_set(err, RM_EINPUT, NULL, "kind",
                        "the buffer sets none of audio, tensor, "
                        "json, text, binary");
  }
  if (!b)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  int rc = rm_buffer_validate(b, err);
  if (rc) {
    rm_buffer_unref(b);
    return rc;
  }
  *out = b;
  return 0;
}

void rm_wire_buffer_to_proto(const rm_buffer_t *b, rm_wire_buffer_t *w) {
  remotemedia__v1__data_buffer__init(&w->msg);
  switch (b->kind) {
  case RM_KIND_AUDIO:
    remotemedia__v1__audio_buffer__init(&w->u.audio);
    w->u.audio.samples.data = b->data;
    w->u.audio.samples.len = b->size;
    w->u.audio.sample_rate = b->u.audio.sample_rate;
    w->u.audio.channels = b->u.audio.channels;
    w->u.audio.format = (Remotemedia__V1__AudioFormat)b->u.audio.format;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
    w->msg.audio = &w->u.audio;
    break;
  case RM_KIND_TENSOR:
    remotemedia__v1__tensor_buffer__init(&w->u.tensor);
    w->u.tensor.data.data = b->data;
    w->u.tensor.data.len = b->size;
    w->u.tensor.dtype = (Remotemedia__V1__TensorDtype)b->u.tensor.dtype;
    for (uint32_t i = 0; i < b->u.tensor.ndim; i++)
      w->shape[i] = b->u.tensor.shape[i];
    w->u.tensor.n_shape = b->u.tensor.ndim;
    w->u.tensor.shape = w->shape;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_TENSOR;
    w->msg.tensor = &w->u.tensor;
    break;
  case RM_KIND_JSON:
    remotemedia__v1__json_buffer__init(&w->u.json);
    w->u.json.json = (char *)b->data;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_JSON;
    w->msg.json = &w->u.json;
    break;
  case RM_KIND_TEXT:
    remotemedia__v1__text_buffer__init(&w->u.text);
    w->u.text.text = (char *)b->data;
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_TEXT;
    w->msg.text = &w->u.text;
    break;
  case RM_KIND_BINARY:
    remotemedia__v1__binary_buffer__init(&w->u.binary);
    w->u.binary.data.data = b->data;
    w->u.binary.data.len = b->size;
    w->u.binary.mime_type = b->mime_type ? b->mime_type : (char *)"";
    w->msg.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY;
    w->msg.binary = &w->u.binary;
    break;
  default: break;
  }
}

void rm_wire_outputs_to_proto(const rm_result_t *r, Remotemedia__V1__NodeOutput *outs,
                              Remotemedia__V1__DataBuffer **item_ptrs, rm_wire_buffer_t *wires) {
  size_t k = 0;
  for (size_t i = 0; i < r->n_outputs; i++) {
    const rm_output_t *o = &r->outputs[i];
    remotemedia__v1__node_output__init(&outs[i]);
    outs[i].node_id = (char *)o->node_id;
    outs[i].port = (char *)o->port;
    outs[i].items = &item_ptrs[k];
    outs[i].n_items = o->n_items;
    for (size_t j = 0; j < o->n_items; j++, k++) {
      rm_wire_buffer_to_proto(o->items[j], &wires[k]);
      item_ptrs[k] = &wires[k].msg;
    }
  }
}
