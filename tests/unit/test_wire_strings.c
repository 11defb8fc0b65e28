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

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_strings_with_nul_or_bad_utf8_are_named),
                                         {NULL, NULL}};
  rm_test_suite("wire_strings", cases);
  return rm_test_run();
}
