/* test_exec_cache.c - the compiled-pipeline cache key covers every field of rm_limits_t:
 * the struct is exactly its listed fields, and each field changes the key. */
#include <string.h>

#include "exec_cache.h"
#include "test_support.h"

#define FIELD_SIZE(type, name) +sizeof(type)
#define FIELD_COUNT(type, name) +1

/* A field added to rm_limits_t outside RM_LIMITS_FIELDS makes the struct bigger than the
 * listed fields (the list is ordered widest first, so the struct has no padding). */
static void test_struct_is_exactly_the_listed_fields(void) {
  size_t listed = 0 RM_LIMITS_FIELDS(FIELD_SIZE);
  RM_ASSERT_INT(sizeof(rm_limits_t), listed);
  RM_ASSERT_INT(RM_LIMITS_N_FIELDS, 0 RM_LIMITS_FIELDS(FIELD_COUNT));
}

static int same_key(const rm_exec_cache_key_t *a, const rm_exec_cache_key_t *b) {
  return a->hash == b->hash && !memcmp(a->limits, b->limits, sizeof a->limits);
}

/* Every field, set alone to a value that fills its type, gives a key unlike the zero
 * limits' and unlike every other field's. */
static void test_every_field_changes_the_key(void) {
  static const uint8_t manifest[] = "manifest bytes";
  rm_limits_t zero;
  memset(&zero, 0, sizeof zero);
  rm_exec_cache_key_t base, keys[RM_LIMITS_N_FIELDS];
  rm_exec_cache_key_init(&base, &zero, manifest, sizeof manifest);
  size_t n = 0;
#define ONE_FIELD(type, name)                                                                      \
  {                                                                                                \
    rm_limits_t l = zero;                                                                          \
    l.name = (type) ~(type)0;                                                                      \
    rm_exec_cache_key_init(&keys[n], &l, manifest, sizeof manifest);                               \
    CU_ASSERT_FALSE(same_key(&keys[n], &base));                                                    \
    n++;                                                                                           \
  }
  RM_LIMITS_FIELDS(ONE_FIELD)
#undef ONE_FIELD
  RM_ASSERT_INT(n, RM_LIMITS_N_FIELDS);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      CU_ASSERT_FALSE(same_key(&keys[i], &keys[j]));
}

/* The same limits over other manifest bytes are another key; the same over the same, one. */
static void test_manifest_bytes_are_part_of_the_key(void) {
  rm_limits_t l = {.max_nodes = 8, .max_items = 100};
  rm_exec_cache_key_t a, b, c;
  rm_exec_cache_key_init(&a, &l, (const uint8_t *)"abc", 3);
  rm_exec_cache_key_init(&b, &l, (const uint8_t *)"abd", 3);
  rm_exec_cache_key_init(&c, &l, (const uint8_t *)"abc", 3);
  CU_ASSERT(a.hash != b.hash);
  CU_ASSERT(same_key(&a, &c));
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_struct_is_exactly_the_listed_fields),
                                         RM_TEST(test_every_field_changes_the_key),
                                         RM_TEST(test_manifest_bytes_are_part_of_the_key),
                                         {NULL, NULL}};
  rm_test_suite("exec_cache", cases);
  return rm_test_run();
}
