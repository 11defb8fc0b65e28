/* test_bytebuf.c - a received message's bytes in one piece: the same bytes whatever the
 * slicing, and a request's audio payload at an aligned address when its slices are copied. */
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytebuf.h"
#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/wire_proto.h"
#include "test_support.h"

/* An ExecuteRequest with a manifest named `name` (its length moves the payload's offset) and
 * one audio input of n f32 samples (i * 0.5). Packed into *len bytes; the caller frees them. */
static uint8_t *packed_request(const char *name, size_t n, size_t *len, size_t *samples_at) {
  Remotemedia__V1__PipelineManifest man = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;
  man.name = (char *)name;
  float *samples = malloc(n * sizeof *samples);
  for (size_t i = 0; i < n; i++)
    samples[i] = (float)i * 0.5f;
  Remotemedia__V1__AudioBuffer audio = REMOTEMEDIA__V1__AUDIO_BUFFER__INIT;
  audio.samples.data = (uint8_t *)samples;
  audio.samples.len = n * sizeof *samples;
  audio.sample_rate = 48000;
  audio.channels = 1;
  audio.format = REMOTEMEDIA__V1__AUDIO_FORMAT__AUDIO_FORMAT_F32;
  Remotemedia__V1__DataBuffer data = REMOTEMEDIA__V1__DATA_BUFFER__INIT;
  data.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
  data.audio = &audio;
  Remotemedia__V1__ExecuteRequest__InputsEntry entry =
      REMOTEMEDIA__V1__EXECUTE_REQUEST__INPUTS_ENTRY__INIT;
  entry.key = "src";
  entry.value = &data;
  Remotemedia__V1__ExecuteRequest__InputsEntry *entries[] = {&entry};
  Remotemedia__V1__ExecuteRequest req = REMOTEMEDIA__V1__EXECUTE_REQUEST__INIT;
  req.manifest = &man;
  req.n_inputs = 1;
  req.inputs = entries;
  *len = remotemedia__v1__execute_request__get_packed_size(&req);
  uint8_t *out = malloc(*len);
  remotemedia__v1__execute_request__pack(&req, out);
  /* the samples are the only run of their bytes in the message */
  *samples_at = SIZE_MAX;
  for (size_t i = 0; i + audio.samples.len <= *len; i++)
    if (memcmp(out + i, samples, audio.samples.len) == 0) {
      *samples_at = i;
      break;
    }
  free(samples);
  return out;
}

/* rm_wire_first_payload (what the copy aligns) finds the samples three messages down from the
 * message's first bytes alone, and nothing shorter than min_len, before `have`, or malformed. */
static void test_first_payload_from_a_prefix(void) {
  size_t len, at;
  uint8_t *msg = packed_request("a manifest name", 1000, &len, &at);
  const ProtobufCMessageDescriptor *d = &remotemedia__v1__execute_request__descriptor;
  RM_ASSERT_INT(rm_wire_first_payload(d, msg, len, len, 512), (long)at);
  RM_ASSERT_INT(rm_wire_first_payload(d, msg, at, len, 512), (long)at); /* a prefix does */
  RM_ASSERT_INT(rm_wire_first_payload(d, msg, at - 1, len, 512), -1);   /* its length cut off */
  RM_ASSERT_INT(rm_wire_first_payload(d, msg, len, len, 4001), -1);     /* 4000 bytes < 4001 */
  uint8_t bad[8] = {0x00, 0x01};                                        /* field number 0 */
  RM_ASSERT_INT(rm_wire_first_payload(d, bad, sizeof bad, sizeof bad, 1), -1);
  free(msg);
}

/* bytes cut into slices of `piece` bytes (the last one shorter). */
static grpc_byte_buffer *sliced(const uint8_t *bytes, size_t len, size_t piece) {
  size_t n = (len + piece - 1) / piece;
  grpc_slice *slices = malloc(n * sizeof *slices);
  for (size_t i = 0; i < n; i++) {
    size_t k = len - i * piece < piece ? len - i * piece : piece;
    slices[i] = grpc_slice_from_copied_buffer((const char *)bytes + i * piece, k);
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
  for (size_t i = 0; i < n; i++)
    grpc_slice_unref(slices[i]);
  free(slices);
  return bb;
}

/* Over manifest names of every length mod 64 and slicings of 16 KiB, 1 KiB, 7 and 1 byte(s):
 * the view holds the message's bytes, and with the request's descriptor the samples start on
 * a 64-byte boundary. */
static void test_several_slices_align_the_payload(void) {
  static const size_t pieces[] = {16384, 1024, 7, 1};
  char name[80];
  for (size_t extra = 0; extra < 64; extra++) {
    memset(name, 'm', extra);
    name[extra] = '\0';
    size_t len, at;
    /* samples past the views' threshold (smaller payloads are copied, aligned or not), in
     * two slices or more */
    uint8_t *bytes = packed_request(name, RM_VIEW_MIN_BYTES / 4 + 1000, &len, &at);
    CU_ASSERT_FATAL(at != SIZE_MAX);
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
      if (pieces[p] == 1 && extra % 16) /* byte by byte is slow: a few names suffice */
        continue;
      grpc_byte_buffer *bb = sliced(bytes, len, pieces[p]);
      CU_ASSERT(rm_bytebuf_view_copy_bytes(bb) >= len);
      rm_bytebuf_view_t v;
      RM_ASSERT_INT(rm_bytebuf_view_init_for(&v, bb, &remotemedia__v1__execute_request__descriptor),
                    0);
      RM_ASSERT_INT(v.len, len);
      CU_ASSERT(memcmp(v.data, bytes, len) == 0);
      RM_ASSERT_INT((uintptr_t)(v.data + at) % 64, 0);
      rm_bytebuf_view_destroy(&v);
      /* without a descriptor: the same bytes */
      RM_ASSERT_INT(rm_bytebuf_view_init(&v, bb), 0);
      RM_ASSERT_INT(v.len, len);
      CU_ASSERT(memcmp(v.data, bytes, len) == 0);
      rm_bytebuf_view_destroy(&v);
      grpc_byte_buffer_destroy(bb);
    }
    free(bytes);
  }
}

/* One slice is viewed where it lies, whatever the descriptor. */
static void test_one_slice_is_not_copied(void) {
  size_t len, at;
  uint8_t *bytes = packed_request("one", 1000, &len, &at);
  grpc_byte_buffer *bb = sliced(bytes, len, len);
  RM_ASSERT_INT(rm_bytebuf_view_copy_bytes(bb), 0);
  rm_bytebuf_view_t v;
  RM_ASSERT_INT(rm_bytebuf_view_init_for(&v, bb, &remotemedia__v1__execute_request__descriptor), 0);
  CU_ASSERT(v.data == GRPC_SLICE_START_PTR(bb->data.raw.slice_buffer.slices[0]));
  RM_ASSERT_INT(v.len, len);
  rm_bytebuf_view_destroy(&v);
  grpc_byte_buffer_destroy(bb);
  free(bytes);
}

/* b[0..n) cut into slices of `piece` bytes and viewed with init (the request's descriptor):
 * the view holds every byte, none left out. */
static void assert_views_whole(const uint8_t *b, size_t n, size_t piece,
                               int (*init)(rm_bytebuf_view_t *, grpc_byte_buffer *,
                                           const ProtobufCMessageDescriptor *)) {
  grpc_byte_buffer *bb = sliced(b, n, piece);
  rm_bytebuf_view_t v;
  RM_ASSERT_INT(init(&v, bb, &remotemedia__v1__execute_request__descriptor), 0);
  RM_ASSERT_INT(v.gap_len, 0);
  RM_ASSERT_INT(v.len, n);
  CU_ASSERT(memcmp(v.data, b, n) == 0);
  rm_bytebuf_view_destroy(&v);
  grpc_byte_buffer_destroy(bb);
}

/* Bytes that are no message (truncated, garbage, a payload past the first 4 KiB) still view as
 * they are: the placement never changes the bytes, and the unpack that follows judges them. */
static void test_any_bytes_view_as_they_are(void) {
  size_t len, at;
  uint8_t *bytes = packed_request("x", 3000, &len, &at);
  uint8_t garbage[5000];
  for (size_t i = 0; i < sizeof garbage; i++)
    garbage[i] = (uint8_t)(i * 131 + 7);
  char big_name[6000];
  memset(big_name, 'n', sizeof big_name - 1);
  big_name[sizeof big_name - 1] = '\0';
  size_t big_len, big_at;
  uint8_t *big = packed_request(big_name, 3000, &big_len, &big_at);
  struct {
    const uint8_t *b;
    size_t n;
  } cases[] = {{bytes, len / 2}, {bytes, 3}, {garbage, sizeof garbage}, {big, big_len}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    assert_views_whole(cases[c].b, cases[c].n, 100, rm_bytebuf_view_init_for);
  free(bytes);
  free(big);
}

/* Collects the pieces rm_bytebuf_view_gap_pieces gives, in order. */
typedef struct pieces {
  uint8_t buf[RM_VIEW_MIN_BYTES + 8192];
  size_t len, count;
} pieces_t;

static void collect(void *arg, const uint8_t *data, size_t len) {
  pieces_t *p = arg;
  if (p->len + len <= sizeof p->buf)
    memcpy(p->buf + p->len, data, len);
  p->len += len;
  p->count++;
}

/* A gapped view copies everything but the samples, which it leaves at their aligned place;
 * any range of them comes out of the received slices exactly, a range reaching past them does
 * not; filled, the view holds the whole message like rm_bytebuf_view_init_for's. */
static void test_gapped_view_leaves_the_payload_in_the_slices(void) {
  static const size_t pieces[] = {16384, 8192, 4096};
  const ProtobufCMessageDescriptor *d = &remotemedia__v1__execute_request__descriptor;
  for (size_t extra = 0; extra < 8; extra++) {
    char name[16];
    memset(name, 'g', extra);
    name[extra] = '\0';
    size_t len, at, n = RM_VIEW_MIN_BYTES / 4 + 1000, bytes_len = n * sizeof(float);
    uint8_t *bytes = packed_request(name, n, &len, &at);
    rm_wire_span_t first;
    RM_ASSERT_INT(rm_wire_first_view(d, bytes, 4096, len, RM_VIEW_MIN_BYTES, &first), 1);
    RM_ASSERT_INT(first.offset, at);
    RM_ASSERT_INT(first.length, bytes_len);
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
      grpc_byte_buffer *bb = sliced(bytes, len, pieces[p]);
      rm_bytebuf_view_t v;
      RM_ASSERT_INT(rm_bytebuf_view_init_gapped(&v, bb, d), 0);
      RM_ASSERT_INT(v.len, len);
      RM_ASSERT_INT(v.gap_at, at);
      RM_ASSERT_INT(v.gap_len, bytes_len);
      RM_ASSERT_INT((uintptr_t)(v.data + at) % 64, 0);
      CU_ASSERT(memcmp(v.data, bytes, at) == 0);
      CU_ASSERT(memcmp(v.data + at + bytes_len, bytes + at + bytes_len, len - at - bytes_len) == 0);
      /* the whole payload, and a piece of it across slice boundaries */
      struct {
        size_t from, n;
      } ranges[] = {{at, bytes_len}, {at + 100, 20000}, {at + bytes_len - 1, 1}};
      static pieces_t got;
      for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        got.len = got.count = 0;
        CU_ASSERT(rm_bytebuf_view_in_gap(&v, v.data + ranges[r].from, ranges[r].n));
        RM_ASSERT_INT(
            rm_bytebuf_view_gap_pieces(&v, v.data + ranges[r].from, ranges[r].n, collect, &got), 1);
        RM_ASSERT_INT(got.len, ranges[r].n);
        CU_ASSERT(memcmp(got.buf, bytes + ranges[r].from, ranges[r].n) == 0);
        /* a run per slice the range touches */
        RM_ASSERT_INT(got.count, (ranges[r].from + ranges[r].n - 1) / pieces[p] -
                                     ranges[r].from / pieces[p] + 1);
      }
      /* ranges that reach past the gap, or lie outside it */
      got.len = got.count = 0;
      RM_ASSERT_INT(rm_bytebuf_view_gap_pieces(&v, v.data + at - 1, 2, collect, &got), 0);
      RM_ASSERT_INT(rm_bytebuf_view_gap_pieces(&v, v.data + at, bytes_len + 1, collect, &got), 0);
      RM_ASSERT_INT(rm_bytebuf_view_gap_pieces(&v, v.data, at, collect, &got), 0);
      RM_ASSERT_INT(got.count, 0);
      CU_ASSERT(rm_bytebuf_view_in_gap(&v, v.data + at - 1, 2));
      CU_ASSERT(!rm_bytebuf_view_in_gap(&v, v.data, at));
      CU_ASSERT(!rm_bytebuf_view_in_gap(&v, v.data + at + bytes_len, 1));
      rm_bytebuf_view_fill(&v);
      RM_ASSERT_INT(v.gap_len, 0);
      CU_ASSERT(memcmp(v.data, bytes, len) == 0);
      CU_ASSERT(!rm_bytebuf_view_in_gap(&v, v.data + at, bytes_len));
      RM_ASSERT_INT(rm_bytebuf_view_gap_pieces(&v, v.data + at, bytes_len, collect, &got), 0);
      rm_bytebuf_view_fill(&v); /* twice: a no-op */
      CU_ASSERT(memcmp(v.data, bytes, len) == 0);
      rm_bytebuf_view_destroy(&v);
      grpc_byte_buffer_destroy(bb);
    }
    free(bytes);
  }
}

/* No gap where nothing is copied (one slice), where the payload is below the views' threshold
 * (the skeleton copies it), where the bytes are no message, or where the payload came in pieces
 * of under 4 KiB on average (each would be a slice of its own in the response). */
static void test_gapped_view_without_a_gap(void) {
  size_t len, at;
  uint8_t *bytes = packed_request("one", RM_VIEW_MIN_BYTES / 4 + 10, &len, &at);
  uint8_t *small = NULL;
  size_t small_len, small_at;
  small = packed_request("small", RM_VIEW_MIN_BYTES / 4 - 1, &small_len, &small_at);
  uint8_t garbage[40000];
  for (size_t i = 0; i < sizeof garbage; i++)
    garbage[i] = (uint8_t)(i * 131 + 7);
  struct {
    const uint8_t *b;
    size_t n, piece;
  } cases[] = {{bytes, len, len},       {small, small_len, 1000}, {garbage, sizeof garbage, 1000},
               {bytes, at + 100, 1000}, {bytes, len, 3000},       {bytes, len, 1024},
               {bytes, len, 7}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    assert_views_whole(cases[c].b, cases[c].n, cases[c].piece, rm_bytebuf_view_init_gapped);
  free(bytes);
  free(small);
}

int main(void) {
  grpc_init();
  static const rm_test_case_t cases[] = {RM_TEST(test_first_payload_from_a_prefix),
                                         RM_TEST(test_several_slices_align_the_payload),
                                         RM_TEST(test_one_slice_is_not_copied),
                                         RM_TEST(test_any_bytes_view_as_they_are),
                                         RM_TEST(test_gapped_view_leaves_the_payload_in_the_slices),
                                         RM_TEST(test_gapped_view_without_a_gap),
                                         {NULL, NULL}};
  rm_test_suite("bytebuf", cases);
  int rc = rm_test_run();
  grpc_shutdown();
  return rc;
}
