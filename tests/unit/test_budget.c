/* test_budget.c - memory budgets: charges before allocation, refusals told apart from OOM,
 * parents drawn from in slabs, frees on another thread, orphaned budgets. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "rm/alloc.h"
#include "rm/budget.h"
#include "test_support.h"

#define HEAD 16 /* the allocator's block header, charged with every block */
#define SLAB (64 * 1024)

static void test_charge_and_refuse(void) {
  rm_budget_t *b = rm_budget_new(1000, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  rm_budget_refusal_clear();
  RM_ASSERT_INT(rm_budget_charge(b, 600), 0);
  RM_ASSERT_INT(rm_budget_used(b), 600);
  RM_ASSERT_INT(rm_budget_charge(b, 401), RM_ELIMIT);
  rm_budget_refusal_t r;
  RM_ASSERT_INT(rm_budget_refused(&r), 1);
  RM_ASSERT_INT(r.asked, 401);
  RM_ASSERT_INT(r.used, 600);
  RM_ASSERT_INT(r.limit, 1000);
  RM_ASSERT_INT(r.by_parent, 0);
  RM_ASSERT_INT(rm_budget_used(b), 600); /* nothing was charged */
  RM_ASSERT_INT(rm_budget_charge(b, 400), 0);
  RM_ASSERT_INT(rm_budget_peak(b), 1000);
  rm_budget_discharge(b, 1000);
  RM_ASSERT_INT(rm_budget_used(b), 0);
  RM_ASSERT_INT(rm_budget_peak(b), 1000);
  rm_budget_reset_peak(b);
  RM_ASSERT_INT(rm_budget_peak(b), 0);
  rm_budget_refusal_clear();
  RM_ASSERT_INT(rm_budget_refused(&r), 0);
  /* sizes that would wrap are refused, not wrapped */
  RM_ASSERT_INT(rm_budget_charge(b, SIZE_MAX), RM_ELIMIT);
  RM_ASSERT_INT(rm_budget_charge(NULL, 5), 0); /* no budget: nothing to charge */
  rm_budget_free(b);
}

static void test_allocations_are_charged_before_malloc(void) {
  rm_budget_t *b = rm_budget_new(4096, NULL);
  rm_budget_t *prev = rm_budget_enter(b);
  CU_ASSERT_PTR_EQUAL(rm_budget_current(), b);
  unsigned long failures = rm_alloc_failures();
  char *p = rm_malloc(1000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_INT((uintptr_t)p % 16, 0);
  RM_ASSERT_INT(rm_budget_used(b), 1000 + HEAD);
  rm_budget_refusal_clear();
  /* far above the limit: refused before malloc (ASan would abort on a huge malloc) */
  CU_ASSERT_PTR_NULL(rm_malloc(SIZE_MAX / 2));
  CU_ASSERT_PTR_NULL(rm_calloc(SIZE_MAX / 2, 4)); /* overflow: refused before the budget */
  rm_budget_refusal_t r;
  RM_ASSERT_INT(rm_budget_refused(&r), 1);
  RM_ASSERT_INT(r.asked, SIZE_MAX / 2 + HEAD);
  RM_ASSERT_INT(rm_alloc_failures(), failures + 2);
  /* realloc charges the growth first and keeps the block on refusal */
  rm_budget_refusal_clear();
  CU_ASSERT_PTR_NULL(rm_realloc(p, 5000));
  RM_ASSERT_INT(rm_budget_refused(&r), 1);
  RM_ASSERT_INT(r.asked, 4000);
  RM_ASSERT_INT(r.used, 1000 + HEAD);
  char *q = rm_realloc(p, 3000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(q);
  RM_ASSERT_INT(rm_budget_used(b), 3000 + HEAD);
  q = rm_realloc(q, 10);
  RM_ASSERT_INT(rm_budget_used(b), 10 + HEAD);
  char *z = rm_calloc(3, 10);
  RM_ASSERT_INT(z[29], 0);
  RM_ASSERT_INT(rm_budget_used(b), 10 + 30 + 2 * HEAD);
  /* no budget: nothing is charged, but the block still returns to its own */
  rm_budget_enter(NULL);
  char *free_of_budget = rm_malloc(100);
  RM_ASSERT_INT(rm_budget_used(b), 10 + 30 + 2 * HEAD);
  rm_free(q);
  rm_free(z);
  RM_ASSERT_INT(rm_budget_used(b), 0);
  RM_ASSERT_INT(rm_budget_peak(b), 3000 + HEAD);
  rm_free(free_of_budget);
  rm_budget_leave(prev);
  CU_ASSERT_PTR_EQUAL(rm_budget_current(), prev);
  rm_budget_free(b);
}

static void test_parent_is_drawn_in_slabs(void) {
  rm_budget_t *server = rm_budget_new(10 * SLAB, NULL);
  rm_budget_t *a = rm_budget_new(0, server), *b = rm_budget_new(3 * SLAB, server);
  /* a small charge takes one slab of the parent */
  RM_ASSERT_INT(rm_budget_charge(a, 100), 0);
  RM_ASSERT_INT(rm_budget_used(a), 100);
  RM_ASSERT_INT(rm_budget_used(server), SLAB);
  RM_ASSERT_INT(rm_budget_charge(a, 1000), 0); /* within the slab: the parent is not asked */
  RM_ASSERT_INT(rm_budget_used(server), SLAB);
  /* the child's own limit refuses first */
  rm_budget_refusal_clear();
  RM_ASSERT_INT(rm_budget_charge(b, 3 * SLAB + 1), RM_ELIMIT);
  rm_budget_refusal_t r;
  RM_ASSERT_INT(rm_budget_refused(&r), 1);
  RM_ASSERT_INT(r.by_parent, 0);
  RM_ASSERT_INT(r.limit, 3 * SLAB);
  RM_ASSERT_INT(rm_budget_charge(b, 3 * SLAB), 0);
  RM_ASSERT_INT(rm_budget_used(server), 4 * SLAB);
  /* the parent refuses what the children together would exceed: named as the parent */
  rm_budget_refusal_clear();
  RM_ASSERT_INT(rm_budget_charge(a, 7 * SLAB), RM_ELIMIT);
  RM_ASSERT_INT(rm_budget_refused(&r), 1);
  RM_ASSERT_INT(r.by_parent, 1);
  RM_ASSERT_INT(r.asked, 7 * SLAB);
  RM_ASSERT_INT(r.limit, 10 * SLAB);
  RM_ASSERT_INT(r.used, 4 * SLAB);
  RM_ASSERT_INT(rm_budget_used(a), 1100); /* the refused charge left nothing behind */
  /* when a whole slab does not fit, the exact shortfall may */
  RM_ASSERT_INT(rm_budget_charge(a, 7 * SLAB - 1100), 0);
  RM_ASSERT_INT(rm_budget_used(server), 10 * SLAB);
  /* giving back returns the parent's bytes beyond a slab of slack */
  rm_budget_discharge(a, 7 * SLAB - 1100);
  CU_ASSERT(rm_budget_used(server) <= 4 * SLAB + 2 * SLAB);
  rm_budget_discharge(a, 1100);
  rm_budget_discharge(b, 3 * SLAB);
  rm_budget_free(a);
  rm_budget_free(b);
  RM_ASSERT_INT(rm_budget_used(server), 0); /* freed children return all they took */
  RM_ASSERT_INT(rm_budget_peak(server), 10 * SLAB);
  rm_budget_free(server);
}

static void test_reservation_is_taken_at_once_and_held(void) {
  rm_budget_t *server = rm_budget_new(10 * SLAB, NULL);
  rm_budget_t *a = rm_budget_new(6 * SLAB, server), *b = rm_budget_new(6 * SLAB, server);
  RM_ASSERT_INT(rm_budget_reserve(a, 6 * SLAB), 0);
  RM_ASSERT_INT(rm_budget_used(server), 6 * SLAB);
  RM_ASSERT_INT(rm_budget_used(a), 0); /* reserved, not used */
  /* b cannot reserve as much: refused at once, naming the parent, nothing taken */
  rm_budget_refusal_clear();
  RM_ASSERT_INT(rm_budget_reserve(b, 6 * SLAB), RM_ELIMIT);
  rm_budget_refusal_t r;
  RM_ASSERT_INT(rm_budget_refused(&r), 1);
  RM_ASSERT_INT(r.by_parent, 1);
  RM_ASSERT_INT(r.asked, 6 * SLAB);
  RM_ASSERT_INT(r.used, 6 * SLAB);
  RM_ASSERT_INT(rm_budget_used(server), 6 * SLAB);
  /* a's charges come out of its reservation; giving them back keeps it */
  RM_ASSERT_INT(rm_budget_charge(a, 5 * SLAB), 0);
  RM_ASSERT_INT(rm_budget_used(server), 6 * SLAB);
  rm_budget_discharge(a, 5 * SLAB);
  RM_ASSERT_INT(rm_budget_used(server), 6 * SLAB);
  /* unreserving returns it (a slab of slack may stay until a is freed) */
  rm_budget_unreserve(a);
  CU_ASSERT(rm_budget_used(server) <= SLAB);
  RM_ASSERT_INT(rm_budget_reserve(b, 6 * SLAB), 0);
  rm_budget_unreserve(b);
  rm_budget_free(a);
  rm_budget_free(b);
  RM_ASSERT_INT(rm_budget_used(server), 0);
  /* without a parent there is nothing to reserve from */
  RM_ASSERT_INT(rm_budget_reserve(server, 1 << 30), 0);
  rm_budget_free(server);
}

typedef struct handoff {
  void *blocks[64];
} handoff_t;

static void *free_them(void *arg) {
  handoff_t *h = arg;
  for (int i = 0; i < 64; i++)
    rm_free(h->blocks[i]);
  return NULL;
}

static void test_free_on_another_thread_and_orphaning(void) {
  rm_budget_t *server = rm_budget_new(0, NULL);
  rm_budget_t *b = rm_budget_new(1 << 20, server);
  rm_budget_t *prev = rm_budget_enter(b);
  handoff_t h;
  for (int i = 0; i < 64; i++)
    h.blocks[i] = rm_malloc(1000);
  rm_budget_leave(prev);
  RM_ASSERT_INT(rm_budget_used(b), 64 * (1000 + HEAD));
  /* the owner lets go while blocks live: the budget stays until the last block is freed */
  rm_budget_free(b);
  RM_ASSERT_INT(rm_budget_used(server), SLAB);
  pthread_t t;
  RM_ASSERT_INT(pthread_create(&t, NULL, free_them, &h), 0);
  pthread_join(t, NULL);
  RM_ASSERT_INT(rm_budget_used(server), 0); /* the orphan went, returning its slab */
  rm_budget_free(server);
}

typedef struct racer {
  rm_budget_t *b;
  int refused;
} racer_t;

static void *race(void *arg) {
  racer_t *r = arg;
  rm_budget_t *prev = rm_budget_enter(r->b);
  for (int i = 0; i < 20000; i++) {
    void *p = rm_malloc(1000 + (size_t)(i % 7) * 5000);
    if (!p)
      r->refused++;
    rm_free(p);
  }
  rm_budget_leave(prev);
  return NULL;
}

static void test_concurrent_children_balance(void) {
  rm_budget_t *server = rm_budget_new(8 * SLAB, NULL);
  racer_t r[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    r[i] = (racer_t){rm_budget_new(0, server), 0};
    pthread_create(&t[i], NULL, race, &r[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    RM_ASSERT_INT(rm_budget_used(r[i].b), 0);
    rm_budget_free(r[i].b);
  }
  RM_ASSERT_INT(rm_budget_used(server), 0);
  CU_ASSERT(rm_budget_peak(server) <= 8 * SLAB);
  rm_budget_free(server);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_charge_and_refuse),
                                         RM_TEST(test_allocations_are_charged_before_malloc),
                                         RM_TEST(test_parent_is_drawn_in_slabs),
                                         RM_TEST(test_reservation_is_taken_at_once_and_held),
                                         RM_TEST(test_free_on_another_thread_and_orphaning),
                                         RM_TEST(test_concurrent_children_balance),
                                         {NULL, NULL}};
  rm_test_suite("budget", cases);
  return rm_test_run();
}
