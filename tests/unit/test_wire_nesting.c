/* test_wire_nesting.c - rm_wire_check_nesting: sub-messages nested deeper than protobuf-c may
 * recurse are refused before it unpacks them; RM_WIRE_MAX_NESTING levels still unpack. */
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/struct.pb-c.h"
#include "rm/wire_proto.h"
#include "test_support.h"

/* A growable byte string. */
typedef struct bytes {
  uint8_t *p;
  size_t len;
} bytes_t;

static size_t varint(uint8_t *out, size_t v) {
  size_t n = 0;
  do {
    out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return n;
}

/* b becomes the length-delimited field `number` holding b. */
static void wrap(bytes_t *b, unsigned number) {
  uint8_t head[16];
  size_t h = varint(head, (size_t)number << 3 | 2);
  h += varint(head + h, b->len);
  uint8_t *p = malloc(h + b->len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memcpy(p, head, h);
  memcpy(p + h, b->p, b->len);
  free(b->p);
  b->p = p;
  b->len += h;
}

/* A Value nesting 2k levels below itself: k times Value{list_value: ListValue{values: [.]}},
 * around Value{null_value: 0}. */
static bytes_t nested_value(unsigned k) {
  bytes_t b = {malloc(2), 2};
  b.p[0] = 0x08; /* null_value */
  b.p[1] = 0x00;
  for (unsigned i = 0; i < k; i++) {
    wrap(&b, 1); /* ListValue.values */
    wrap(&b, 6); /* Value.list_value */
  }
  return b;
}

static const ProtobufCMessageDescriptor *const VALUE = &google__protobuf__value__descriptor;
static const ProtobufCMessageDescriptor *const LIST = &google__protobuf__list_value__descriptor;

static void test_the_limit_unpacks_and_one_more_level_is_refused(void) {
  rm_error_t err;
  bytes_t at = nested_value(RM_WIRE_MAX_NESTING / 2); /* exactly the limit */
  RM_ASSERT_INT(rm_wire_check_nesting(VALUE, at.p, at.len, NULL, &err), 0);
  ProtobufCMessage *m = protobuf_c_message_unpack(VALUE, NULL, at.len, at.p);
  CU_ASSERT_PTR_NOT_NULL(m);
  protobuf_c_message_free_unpacked(m, NULL);
  /* the same bytes as a ListValue's values: one level more */
  wrap(&at, 1);
  RM_ASSERT_INT(rm_wire_check_nesting(LIST, at.p, at.len, "params", &err), RM_ELIMIT);
  RM_ASSERT_STR(err.field, "nesting");
  RM_ASSERT_STR(err.message, "the message nests sub-messages more than 256 levels deep "
                             "(params.values.list_value.values...)");
  free(at.p);
  bytes_t below = nested_value(RM_WIRE_MAX_NESTING / 2 - 1);
  wrap(&below, 1); /* a ListValue: 255 levels */
  RM_ASSERT_INT(rm_wire_check_nesting(LIST, below.p, below.len, NULL, &err), 0);
  free(below.p);
}

/* What protobuf-c would have recursed into thousands of levels deep (a 42 KB request crashed
 * the server) is refused at once, without recursion here either; the path names the first
 * levels after the message. */
static void test_thousands_of_levels_are_refused(void) {
  rm_error_t err;
  bytes_t deep = nested_value(20000);
  RM_ASSERT_INT(rm_wire_check_nesting(VALUE, deep.p, deep.len, NULL, &err), RM_ELIMIT);
  RM_ASSERT_STR(err.message, "the message nests sub-messages more than 256 levels deep "
                             "(list_value.values.list_value.values...)");
  RM_ASSERT_INT(rm_wire_check_nesting(VALUE, deep.p, deep.len, NULL, NULL), RM_ELIMIT);
  free(deep.p);
}

/* Fields are read as protobuf-c reads them: a field number 0 in two bytes (skipped by its
 * unpack as an unknown field) or a tag above 32 bits (cut to some field's number) hid what
 * followed from a stricter reader, and protobuf-c then recursed through 20,000 levels after
 * such a prefix. Now the levels behind them are seen, and a message they do not deepen
 * passes; bytes that cannot be read so (truncated) are refused. Short messages are not read,
 * and fields of other types are skipped, not read as levels. */
static void test_fields_are_read_as_protobuf_c_reads_them(void) {
  static const struct {
    uint8_t bytes[8];
    size_t n;
  } prefixes[] = {
      {{0x82, 0x00, 0x00}, 3}, {{0x80, 0x00, 0x00}, 3}, {{0xfa, 0xff, 0xff, 0xff, 0x7f, 0x00}, 6}};
  rm_error_t err;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    for (unsigned k = 100; k <= 20000; k += 19900) { /* 201 levels, then 40,001 */
      bytes_t b = nested_value(k);
      wrap(&b, 1); /* a ListValue */
      uint8_t *p = malloc(prefixes[i].n + b.len);
      CU_ASSERT_PTR_NOT_NULL_FATAL(p);
      memcpy(p, prefixes[i].bytes, prefixes[i].n);
      memcpy(p + prefixes[i].n, b.p, b.len);
      int rc = rm_wire_check_nesting(LIST, p, prefixes[i].n + b.len, NULL, &err);
      RM_ASSERT_INT(rc, k == 100 ? 0 : RM_ELIMIT);
      if (rc)
        RM_ASSERT_STR(err.message, "the message nests sub-messages more than 256 levels deep "
                                   "(values.list_value.values.list_value...)");
      if (k == 100) { /* and protobuf-c unpacks it */
        ProtobufCMessage *m = protobuf_c_message_unpack(LIST, NULL, prefixes[i].n + b.len, p);
        CU_ASSERT_PTR_NOT_NULL(m);
        protobuf_c_message_free_unpacked(m, NULL);
      }
      free(p);
      free(b.p);
    }
  bytes_t deep = nested_value(200);
  RM_ASSERT_INT(rm_wire_check_nesting(VALUE, deep.p, deep.len - 1, NULL, &err), RM_EINPUT);
  RM_ASSERT_STR(err.message, "the message is not well-formed at byte 0");
  free(deep.p);
  bytes_t shallow = nested_value(3);
  shallow.p[0] = 0x07; /* wire type 7: not read, too short to nest that deep */
  RM_ASSERT_INT(rm_wire_check_nesting(VALUE, shallow.p, shallow.len, NULL, &err), 0);
  free(shallow.p);
  /* a long string at the top is skipped, not read as levels */
  bytes_t text = {calloc(1, 4000), 4000};
  memset(text.p, 0x0a, 4000);
  wrap(&text, 3); /* Value.string_value */
  RM_ASSERT_INT(rm_wire_check_nesting(VALUE, text.p, text.len, NULL, &err), 0);
  free(text.p);
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_the_limit_unpacks_and_one_more_level_is_refused),
      RM_TEST(test_thousands_of_levels_are_refused),
      RM_TEST(test_fields_are_read_as_protobuf_c_reads_them),
      {NULL, NULL}};
  rm_test_suite("wire_nesting", cases);
  return rm_test_run();
}
