/* test_wire_strings.c - rm_wire_check_strings: string fields protobuf-c would misread. */
#include <stdlib.h>
#include <string.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/wire.h"
#include "test_support.h"
#include "test_wire_request.h"

/* The first occurrence of the n bytes of what in buf[0..len). */
static uint8_t *find_bytes(uint8_t *buf, size_t len, const char *what, size_t n) {
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(buf + i, what, n) == 0)
      return buf + i;
  CU_FAIL_FATAL("bytes not found");
  return NULL;
}

static void test_strings_with_nul_or_bad_utf8_are_named(void) {
  size_t len;
  uint8_t *buf = pack_request(&len);
  rm_error_t err;
  RM_ASSERT_INT(rm_wire_check_strings(DESC, buf, len, NULL, &err), 0);
  uint8_t *mime = find_bytes(buf, len, "x/y", 3);
  mime[2] = 0; /* protobuf-c would unpack "x/" */
  RM_ASSERT_INT(rm_wire_check_strings(DESC, buf, len, NULL, &err), RM_EINPUT);
  RM_ASSERT_STR(err.node_id, "b");
  RM_ASSERT_STR(err.field, "binary.mime_type");
  RM_ASSERT_STR(err.message, "input for node 'b': string field 'binary.mime_type' holds a NUL "
                             "byte at byte 2: strings must be UTF-8 without NUL bytes (send such "
                             "data as binary)");
  mime[2] = 'y';
  mime[1] = 0xc3; /* a lead byte without its continuation */
  RM_ASSERT_INT(rm_wire_check_strings(DESC, buf, len, NULL, &err), RM_EINPUT);
  CU_ASSERT(strstr(err.message, "is not valid UTF-8 at byte 1") != NULL);
  mime[1] = '/';
  /* a manifest unpacked on its own names its field through the prefix, and no node */
  rm_wire_span_t m;
  RM_ASSERT_INT(rm_wire_find_field(buf, len, 1, NULL, &m), 1);
  uint8_t *name = find_bytes(buf + m.offset, m.length, "views", 5);
  name[2] = 0;
  RM_ASSERT_INT(rm_wire_check_strings(&remotemedia__v1__pipeline_manifest__descriptor,
                                      buf + m.offset, m.length, "manifest", &err),
                RM_EMANIFEST);
  RM_ASSERT_STR(err.node_id, "");
  RM_ASSERT_STR(err.field, "manifest.name");
  /* the same bytes in the whole request */
  RM_ASSERT_INT(rm_wire_check_strings(DESC, buf, len, NULL, &err), RM_EMANIFEST);
  RM_ASSERT_STR(err.field, "manifest.name");
  name[2] = 'e';
  /* a node's string names the node (by its id) and the field within it */
  uint8_t *type = find_bytes(buf + m.offset, m.length, "PassThrough", 11);
  type[4] = 0xff;
  RM_ASSERT_INT(rm_wire_check_strings(DESC, buf, len, NULL, &err), RM_EMANIFEST);
  RM_ASSERT_STR(err.node_id, "a");
  RM_ASSERT_STR(err.field, "node_type");
  RM_ASSERT_STR(err.message, "node 'a': string field 'node_type' is not valid UTF-8 at byte 4: "
                             "strings must be UTF-8 without NUL bytes (send such data as "
                             "binary)");
  free(buf);
}

/* protobuf allows a map entry's value before its key, and a node's params before its id: the
 * string is still named by them (it was named by its path alone). */
static void test_owner_written_after_the_string_still_names_it(void) {
  /* inputs {value: {text: {text: "a\0b"}}, key: "src"}: the entry's fields in reverse order */
  static const uint8_t input[] = {0x12, 0x0e,                                      /* inputs */
                                  0x12, 0x07, 0x22, 0x05, 0x0a, 0x03, 'a', 0, 'b', /* value */
                                  0x0a, 0x03, 's',  'r',  'c'};                    /* key */
  rm_error_t err;
  RM_ASSERT_INT(rm_wire_check_strings(DESC, input, sizeof input, NULL, &err), RM_EINPUT);
  RM_ASSERT_STR(err.node_id, "src");
  RM_ASSERT_STR(err.field, "text.text");
  RM_ASSERT_STR(err.message, "input for node 'src': string field 'text.text' holds a NUL byte at "
                             "byte 1: strings must be UTF-8 without NUL bytes (send such data as "
                             "binary)");
  /* manifest {nodes {params: "{\xff}", id: "g"}} */
  static const uint8_t node[] = {0x0a, 0x0b,                      /* manifest */
                                 0x12, 0x09,                      /* nodes */
                                 0x1a, 0x04, '{', 0xff, '}', ' ', /* params */
                                 0x0a, 0x01, 'g'};                /* id */
  RM_ASSERT_INT(rm_wire_check_strings(DESC, node, sizeof node, NULL, &err), RM_EPARAM);
  RM_ASSERT_STR(err.node_id, "g");
  RM_ASSERT_STR(err.field, "params");
  /* a key given twice: protobuf-c keeps the last, and so does the name */
  static const uint8_t twice[] = {0x12, 0x0f, 0x0a, 0x01, 'x', 0x12, 0x07, 0x22, 0x05,
                                  0x0a, 0x03, 'a',  0,    'b', 0x0a, 0x01, 'y'};
  RM_ASSERT_INT(rm_wire_check_strings(DESC, twice, sizeof twice, NULL, &err), RM_EINPUT);
  RM_ASSERT_STR(err.node_id, "y");
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_strings_with_nul_or_bad_utf8_are_named),
      RM_TEST(test_owner_written_after_the_string_still_names_it),
      {NULL, NULL}};
  rm_test_suite("wire_strings", cases);
  return rm_test_run();
}
