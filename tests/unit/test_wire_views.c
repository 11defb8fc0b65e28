/* test_wire_views.c - unpacking requests with their payloads as views into the wire bytes. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/wire.h"
#include "test_support.h"
#include "test_wire_request.h"

/* An arena for the unpacked messages: a patched message holds views, which free_unpacked
 * must not free, so (as in the server) the allocator's free does nothing and everything goes
 * at once with arena_free_all. */
static void *blocks[4096];
static size_t n_blocks;
static void *arena_alloc(void *data, size_t size) {
  (void)data;
  CU_ASSERT_FATAL(n_blocks < sizeof blocks / sizeof blocks[0]);
  return blocks[n_blocks++] = malloc(size);
}
static void arena_nofree(void *data, void *ptr) { (void)data, (void)ptr; }
static ProtobufCAllocator arena = {arena_alloc, arena_nofree, NULL};
static void arena_free_all(void) {
  while (n_blocks)
    free(blocks[--n_blocks]);
}

/* Skeleton, unpack, patch; NULL when the skeleton is refused. */
static Remotemedia__V1__ExecuteRequest *unpack_views(const uint8_t *buf, size_t len, uint32_t skip,
                                                     size_t *n_out) {
  size_t skel_len, n;
  if (rm_wire_views_skeleton(DESC, buf, len, skip, 512, NULL, &skel_len, NULL, 0, &n))
    return NULL;
  uint8_t *skel = malloc(skel_len + 1);
  rm_wire_span_t *spans = malloc((n + 1) * sizeof *spans);
  size_t written, n2;
  RM_ASSERT_INT(rm_wire_views_skeleton(DESC, buf, len, skip, 512, skel, &written, spans, n, &n2),
                0);
  RM_ASSERT_INT(written, skel_len);
  RM_ASSERT_INT(n2, n);
  CU_ASSERT(skel_len <= len);
  Remotemedia__V1__ExecuteRequest *req =
      (Remotemedia__V1__ExecuteRequest *)protobuf_c_message_unpack(DESC, &arena, skel_len, skel);
  CU_ASSERT_FATAL(req != NULL);
  rm_wire_views_patch(&req->base, buf, spans, n);
  free(skel);
  free(spans);
  *n_out = n;
  return req;
}

static void test_big_payloads_point_into_the_request(void) {
  size_t len, n;
  uint8_t *buf = pack_request(&len);
  Remotemedia__V1__ExecuteRequest *req = unpack_views(buf, len, 1, &n);
  RM_ASSERT_INT(n, 2);
  CU_ASSERT_PTR_NULL(req->manifest); /* skipped */
  RM_ASSERT_INT(req->n_inputs, 3);
  const ProtobufCBinaryData *s0 = &req->inputs[0]->value->audio->samples;
  const ProtobufCBinaryData *s1 = &req->inputs[1]->value->binary->data;
  const ProtobufCBinaryData *s2 = &req->inputs[2]->value->audio->samples;
  RM_ASSERT_INT(s0->len, sizeof big_audio);
  CU_ASSERT(s0->data > buf && s0->data + s0->len <= buf + len); /* a view */
  CU_ASSERT(memcmp(s0->data, big_audio, sizeof big_audio) == 0);
  RM_ASSERT_INT(s1->len, sizeof big_bin);
  CU_ASSERT(s1->data > buf && s1->data + s1->len <= buf + len);
  CU_ASSERT(memcmp(s1->data, big_bin, sizeof big_bin) == 0);
  CU_ASSERT_STRING_EQUAL(req->inputs[1]->value->binary->mime_type, "x/y");
  RM_ASSERT_INT(s2->len, sizeof small_audio); /* below the threshold: protobuf-c's copy */
  CU_ASSERT(s2->data < buf || s2->data >= buf + len);
  CU_ASSERT(memcmp(s2->data, small_audio, sizeof small_audio) == 0);
  RM_ASSERT_INT(req->inputs[0]->value->audio->sample_rate, 16000);
  /* without skipping, the manifest unpacks as usual */
  Remotemedia__V1__ExecuteRequest *whole = unpack_views(buf, len, 0, &n);
  CU_ASSERT_FATAL(whole->manifest != NULL);
  CU_ASSERT_STRING_EQUAL(whole->manifest->name, "views");
  CU_ASSERT(memcmp(whole->inputs[0]->value->audio->samples.data, big_audio, 2000) == 0);
  arena_free_all();
  free(buf);
}

static void test_malformed_bytes_are_refused(void) {
  size_t len, out_len, n;
  uint8_t *buf = pack_request(&len);
  /* cut inside the first input's payload: its length prefix runs past the end */
  RM_ASSERT_INT(rm_wire_views_skeleton(DESC, buf, len - 700, 0, 512, NULL, &out_len, NULL, 0, &n),
                RM_EINPUT);
  uint8_t junk[] = {0x12, 0x05, 0x0a, 0x7f};
  RM_ASSERT_INT(
      rm_wire_views_skeleton(DESC, junk, sizeof junk, 0, 512, NULL, &out_len, NULL, 0, &n),
      RM_EINPUT);
  free(buf);
}

static void test_overridden_oneof_member_is_not_patched(void) {
  /* one inputs entry whose DataBuffer carries audio (big) and then binary (small): the later
   * member wins in protobuf, and the audio's token is simply gone */
  uint8_t payload[600];
  memset(payload, 3, sizeof payload);
  Remotemedia__V1__AudioBuffer a = REMOTEMEDIA__V1__AUDIO_BUFFER__INIT;
  a.samples = (ProtobufCBinaryData){sizeof payload, payload};
  Remotemedia__V1__DataBuffer d1 = REMOTEMEDIA__V1__DATA_BUFFER__INIT;
  d1.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
  d1.audio = &a;
  Remotemedia__V1__BinaryBuffer b = REMOTEMEDIA__V1__BINARY_BUFFER__INIT;
  uint8_t small[16] = {1, 2, 3};
  b.data = (ProtobufCBinaryData){sizeof small, small};
  Remotemedia__V1__DataBuffer d2 = REMOTEMEDIA__V1__DATA_BUFFER__INIT;
  d2.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY;
  d2.binary = &b;
  uint8_t data[1024];
  size_t l1 = remotemedia__v1__data_buffer__pack(&d1, data);
  size_t l2 = remotemedia__v1__data_buffer__pack(&d2, data + l1);
  /* entry {key "k", value <data>} as the request's field 2 */
  uint8_t req[1100];
  size_t dl = l1 + l2, el = 3 + 1 + 2 + dl, at = 0;
  req[at++] = 0x12;
  req[at++] = (uint8_t)(0x80 | (el & 0x7f));
  req[at++] = (uint8_t)(el >> 7);
  req[at++] = 0x0a, req[at++] = 1, req[at++] = 'k';
  req[at++] = 0x12;
  req[at++] = (uint8_t)(0x80 | (dl & 0x7f));
  req[at++] = (uint8_t)(dl >> 7);
  memcpy(req + at, data, dl);
  at += dl;
  size_t n;
  Remotemedia__V1__ExecuteRequest *r = unpack_views(req, at, 1, &n);
  RM_ASSERT_INT(n, 1);
  RM_ASSERT_INT(r->n_inputs, 1);
  RM_ASSERT_INT(r->inputs[0]->value->kind_case, REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY);
  RM_ASSERT_INT(r->inputs[0]->value->binary->data.len, sizeof small);
  CU_ASSERT(memcmp(r->inputs[0]->value->binary->data.data, small, sizeof small) == 0);
  arena_free_all();
}

static void test_misaligned_samples_are_copied(void) {
  alignas(16) static uint8_t raw[64 + 1];
  float f[16];
  for (int i = 0; i < 16; i++)
    f[i] = (float)i * 0.5f;
  Remotemedia__V1__AudioBuffer a = REMOTEMEDIA__V1__AUDIO_BUFFER__INIT;
  a.sample_rate = 16000;
  a.channels = 1;
  a.format = REMOTEMEDIA__V1__AUDIO_FORMAT__AUDIO_FORMAT_F32;
  Remotemedia__V1__DataBuffer d = REMOTEMEDIA__V1__DATA_BUFFER__INIT;
  d.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
  d.audio = &a;
  rm_error_t err;
  for (int shift = 0; shift < 2; shift++) {
    memcpy(raw + shift, f, sizeof f);
    a.samples = (ProtobufCBinaryData){sizeof f, raw + shift};
    rm_buffer_t *b = NULL;
    RM_ASSERT_INT(rm_wire_buffer_from_proto(&d, NULL, &b, &err), 0);
    CU_ASSERT_FATAL(b != NULL);
    RM_ASSERT_INT(b->borrowed, !shift);
    CU_ASSERT((uintptr_t)b->data % 4 == 0);
    CU_ASSERT(memcmp(b->data, f, sizeof f) == 0);
    rm_buffer_unref(b);
  }
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_big_payloads_point_into_the_request),
                                         RM_TEST(test_malformed_bytes_are_refused),
                                         RM_TEST(test_overridden_oneof_member_is_not_patched),
                                         RM_TEST(test_misaligned_samples_are_copied),
                                         {NULL, NULL}};
  rm_test_suite("wire_views", cases);
  return rm_test_run();
}
