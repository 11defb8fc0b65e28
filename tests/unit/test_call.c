/* test_call.c - server/call.c's pure parts: the W3C traceparent a request id is taken from. */
#include <string.h>

#include "call.h"
#include "test_support.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"

static int parse(const char *v, char out[33]) { return rm_call_traceparent_id(v, strlen(v), out); }

static void test_valid_traceparents(void) {
  char id[33] = "";
  RM_ASSERT_INT(parse("00-" TRACE "-00f067aa0ba902b7-01", id), 0);
  RM_ASSERT_STR(id, TRACE);
  /* a later version may append fields */
  memset(id, 0, sizeof id);
  RM_ASSERT_INT(parse("01-" TRACE "-00f067aa0ba902b7-00-extra", id), 0);
  RM_ASSERT_STR(id, TRACE);
}

static void test_invalid_traceparents(void) {
  static const char *const bad[] = {
      "",
      "00-" TRACE "-00f067aa0ba902b7",                           /* no flags */
      "00-" TRACE "-00f067aa0ba902b7-0",                         /* short flags */
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper case */
      "ff-" TRACE "-00f067aa0ba902b7-01",                        /* version ff */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
      "00-" TRACE "-0000000000000000-01",                        /* zero parent id */
      "00-" TRACE "-00f067aa0ba902b7-01-x",                      /* version 00 has no more fields */
      "01-" TRACE "-00f067aa0ba902b7-01x",                       /* more without a dash */
      "00_" TRACE "-00f067aa0ba902b7-01",                        /* separator */
      "0g-" TRACE "-00f067aa0ba902b7-01",                        /* not hex */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char id[33] = "untouched";
    if (parse(bad[i], id) != -1)
      CU_FAIL(bad[i]);
    RM_ASSERT_STR(id, "untouched");
  }
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_valid_traceparents), RM_TEST(test_invalid_traceparents), {NULL, NULL}};
  rm_test_suite("call", cases);
  return rm_test_run();
}
