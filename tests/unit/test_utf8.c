/* test_utf8.c - the one UTF-8 validity rule (rm/utf8.h). */
#include "rm/utf8.h"
#include "test_support.h"

static void test_utf8_rules(void) {
  static const struct {
    const char *bytes;
    size_t left, want;
  } cases[] = {
      {"a", 1, 1},
      {"\xc3\xa9", 2, 2},         /* e acute */
      {"\xe2\x82\xac", 3, 3},     /* euro sign */
      {"\xf0\x9f\x98\x80", 4, 4}, /* U+1F600 */
      {"\xc0\x80", 2, 0},         /* overlong NUL */
      {"\xe0\x80\x80", 3, 0},     /* overlong */
      {"\xed\xa0\x80", 3, 0},     /* a surrogate */
      {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
      {"\xe2\x82\xac", 2, 0},     /* cut short */
      {"\x80", 1, 0},             /* a continuation byte first */
      {"\xff", 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    RM_ASSERT_INT(rm_utf8_len((const unsigned char *)cases[i].bytes, cases[i].left), cases[i].want);
  CU_ASSERT(rm_utf8_valid((const unsigned char *)"ok \xc3\xa9\0x", 7));
  CU_ASSERT(!rm_utf8_valid((const unsigned char *)"ok \xc3", 4));
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_utf8_rules), {NULL, NULL}};
  rm_test_suite("utf8", cases);
  return rm_test_run();
}
