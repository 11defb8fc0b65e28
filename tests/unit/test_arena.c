/* test_arena.c - the request arena: alignment, geometric growth, the caller's first block,
 * destroy and re-init, and out-of-memory through the allocator's failure hook. */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rm/arena.h"
#include "test_support.h"

#define ALIGN alignof(max_align_t)

static void test_alignment(void) {
  rm_arena_t a;
  rm_arena_init(&a, NULL, 0);
  for (size_t size = 1; size <= 3 * ALIGN + 1; size++) {
    void *p = rm_arena_alloc(&a, size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    RM_ASSERT_INT((uintptr_t)p % ALIGN, 0);
  }
  /* consecutive small allocations advance by one aligned slot */
  char *x = rm_arena_alloc(&a, 1), *y = rm_arena_alloc(&a, 1);
  RM_ASSERT_INT(y - x, (long long)ALIGN);
  rm_arena_destroy(&a);
}

static void test_caller_block_is_used_first(void) {
  alignas(max_align_t) char first[256];
  rm_arena_t a;
  long live = rm_alloc_live();
  rm_arena_init(&a, first + 1, sizeof first - 1); /* misaligned start gets aligned */
  char *p = rm_arena_alloc(&a, 16);
  CU_ASSERT(p >= first + 1 && p + 16 <= first + sizeof first);
  RM_ASSERT_INT((uintptr_t)p % ALIGN, 0);
  RM_ASSERT_INT(rm_alloc_live(), live); /* nothing allocated */
  CU_ASSERT_PTR_NULL(a.blocks);
  /* what does not fit goes to a new block */
  char *q = rm_arena_alloc(&a, 512);
  CU_ASSERT_PTR_NOT_NULL_FATAL(q);
  CU_ASSERT(q < first || q >= first + sizeof first);
  RM_ASSERT_INT(rm_alloc_live(), live + 1);
  rm_arena_destroy(&a);
  RM_ASSERT_INT(rm_alloc_live(), live);
}

static void test_growth_is_geometric(void) {
  rm_arena_t a;
  rm_arena_init(&a, NULL, 0);
  long live = rm_alloc_live();
  RM_ASSERT_INT(a.next_size, 4096);
  CU_ASSERT_PTR_NOT_NULL(rm_arena_alloc(&a, 1));
  RM_ASSERT_INT(rm_alloc_live(), live + 1);
  RM_ASSERT_INT(a.end - a.cur, 4096 - (long long)ALIGN); /* first block: 4 KiB */
  RM_ASSERT_INT(a.next_size, 8192);
  CU_ASSERT_PTR_NOT_NULL(rm_arena_alloc(&a, 4096)); /* does not fit: an 8 KiB block */
  RM_ASSERT_INT(rm_alloc_live(), live + 2);
  RM_ASSERT_INT(a.end - a.cur, 8192 - 4096);
  RM_ASSERT_INT(a.next_size, 16384);
  /* an allocation larger than the next block gets a block of at least its size */
  CU_ASSERT_PTR_NOT_NULL(rm_arena_alloc(&a, 100000));
  RM_ASSERT_INT(a.end - a.cur, 131072 - 100000);
  RM_ASSERT_INT(rm_alloc_live(), live + 3);
  rm_arena_destroy(&a);
  RM_ASSERT_INT(rm_alloc_live(), live);
}

static void test_destroy_then_reuse(void) {
  rm_arena_t a;
  rm_arena_init(&a, NULL, 0);
  long live = rm_alloc_live();
  for (int i = 0; i < 100; i++)
    CU_ASSERT_PTR_NOT_NULL(rm_arena_alloc(&a, 1000));
  CU_ASSERT(rm_alloc_live() > live);
  rm_arena_destroy(&a);
  RM_ASSERT_INT(rm_alloc_live(), live);
  CU_ASSERT_PTR_NULL(a.blocks);
  CU_ASSERT_PTR_NULL(a.cur);
  rm_arena_destroy(&a); /* twice is harmless */
  rm_arena_init(&a, NULL, 0);
  char *s = rm_arena_strdup(&a, "again");
  RM_ASSERT_STR(s, "again");
  rm_arena_destroy(&a);
  RM_ASSERT_INT(rm_alloc_live(), live);
}

static void test_calloc_and_strdup(void) {
  rm_arena_t a;
  rm_arena_init(&a, NULL, 0);
  unsigned char *z = rm_arena_calloc(&a, 100, 3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(z);
  size_t nonzero = 0;
  for (size_t i = 0; i < 300; i++)
    nonzero += z[i] != 0;
  RM_ASSERT_INT(nonzero, 0);
  char *s = rm_arena_strdup(&a, "hello");
  RM_ASSERT_STR(s, "hello");
  /* overflow of count * size and of the rounded size: NULL, nothing allocated */
  long live = rm_alloc_live();
  CU_ASSERT_PTR_NULL(rm_arena_calloc(&a, SIZE_MAX / 2, 3));
  CU_ASSERT_PTR_NULL(rm_arena_alloc(&a, SIZE_MAX));
  RM_ASSERT_INT(rm_alloc_live(), live);
  rm_arena_destroy(&a);
}

static void test_out_of_memory(void) {
  rm_arena_t a;
  rm_arena_init(&a, NULL, 0);
  long live = rm_alloc_live();
  rm_alloc_fail_after(0);
  CU_ASSERT_PTR_NULL(rm_arena_alloc(&a, 8));
  CU_ASSERT_PTR_NULL(rm_arena_calloc(&a, 2, 8));
  CU_ASSERT_PTR_NULL(rm_arena_strdup(&a, "x"));
  RM_ASSERT_INT(rm_alloc_attempts(), 3);
  rm_alloc_fail_never();
  RM_ASSERT_INT(rm_alloc_live(), live);
  CU_ASSERT_PTR_NULL(a.blocks);
  /* the arena still works once memory is back, and a failure mid-way keeps what it had */
  char *p = rm_arena_alloc(&a, 4000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_alloc_fail_after(0);
  CU_ASSERT_PTR_NULL(rm_arena_alloc(&a, 4000)); /* needs a second block */
  rm_alloc_fail_never();
  memset(p, 1, 4000); /* the first block is intact */
  RM_ASSERT_INT(rm_alloc_live(), live + 1);
  rm_arena_destroy(&a);
  RM_ASSERT_INT(rm_alloc_live(), live);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_alignment),
                                         RM_TEST(test_caller_block_is_used_first),
                                         RM_TEST(test_growth_is_geometric),
                                         RM_TEST(test_destroy_then_reuse),
                                         RM_TEST(test_calloc_and_strdup),
                                         RM_TEST(test_out_of_memory),
                                         {NULL, NULL}};
  rm_test_suite("arena", cases);
  return rm_test_run();
}
