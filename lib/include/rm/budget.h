/* budget.h - memory budgets: every byte the engine allocates is asked of a budget before it
 * is allocated, so no request (and no mix of requests) takes more memory than it was given.
 *
 * A budget has a limit of its own (0: none) and may draw from a parent (the server-wide
 * budget), so a charge succeeds only when it fits at every level. A thread has a current
 * budget (rm_budget_enter); every rm_malloc/rm_calloc/rm_realloc on that thread is charged to
 * it before the memory is touched, and rm_free gives the bytes back to the budget they were
 * charged to, whichever thread frees them. Memory a library allocates outside rm_malloc is
 * charged with rm_budget_charge from a prediction made before the library is called.
 *
 * A refused charge fails the allocation (the caller sees out of memory, as the OOM policy in
 * alloc.h says) and is recorded for the thread, so the code that turns the failure into an
 * error can tell "over budget" (RESOURCE_EXHAUSTED naming max_memory_bytes) from a real
 * out-of-memory. */
#ifndef RM_BUDGET_H
#define RM_BUDGET_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rm_budget rm_budget_t;

/* A new budget of at most `limit` bytes (0: no limit of its own) drawing from `parent` (NULL:
 * none), which must outlive it. NULL when out of memory. Any thread. */
rm_budget_t *rm_budget_new(size_t limit, rm_budget_t *parent);
/* Gives up the owner's hold: b is freed now if nothing is charged to it, else when the last
 * block charged to it is freed (results may outlive the run that made them). Its charges stay
 * on its parent until then. NULL is a no-op. Any thread. */
void rm_budget_free(rm_budget_t *b);

/* Bytes charged now, the most charged at once since creation or the last reset, and the
 * limit. Any thread (the values may be stale by the time they are read). */
size_t rm_budget_used(const rm_budget_t *b);
size_t rm_budget_peak(const rm_budget_t *b);
size_t rm_budget_limit(const rm_budget_t *b);
/* Starts a new peak from the current use. */
void rm_budget_reset_peak(rm_budget_t *b);

/* Makes b (may be NULL: nothing is charged) the budget of this thread's allocations and
 * returns the one it replaces, for rm_budget_leave. Calls nest. */
rm_budget_t *rm_budget_enter(rm_budget_t *b);
/* Restores the budget rm_budget_enter returned. */
void rm_budget_leave(rm_budget_t *previous);
/* This thread's current budget, NULL when none. */
rm_budget_t *rm_budget_current(void);

/* Admission: takes n bytes (b's whole limit, typically) from b's parents at once, so the
 * allocations that follow never need the parents again, and holds them until
 * rm_budget_unreserve even when b's use is lower. 0, or RM_ELIMIT when a parent cannot spare
 * them (nothing taken, the refusal recorded with by_parent). A budget without a parent
 * reserves nothing and returns 0. Same thread as the budget's owner. */
int rm_budget_reserve(rm_budget_t *b, size_t n);
/* Gives back what a reservation holds beyond b's use (a slab of slack stays). */
void rm_budget_unreserve(rm_budget_t *b);

/* Charges n bytes that are not allocated through rm_malloc (a library's own memory, from a
 * prediction made before calling it) to b and its parents. 0, or RM_ELIMIT when some level
 * would go over its limit: nothing is charged and the refusal is recorded for this thread.
 * b NULL charges nothing and returns 0. Any thread. */
int rm_budget_charge(rm_budget_t *b, size_t n);
/* Gives back n bytes charged with rm_budget_charge. */
void rm_budget_discharge(rm_budget_t *b, size_t n);

/* The last refused charge on this thread since rm_budget_refusal_clear. */
typedef struct rm_budget_refusal {
  size_t asked;  /* bytes the refused charge asked for */
  size_t used;   /* bytes charged to the refusing budget at the time */
  size_t limit;  /* its limit */
  int by_parent; /* refused by a parent (the server-wide budget), not by the budget asked */
} rm_budget_refusal_t;
/* 1 and *out filled when a charge was refused on this thread since the last clear, else 0. */
int rm_budget_refused(rm_budget_refusal_t *out);
void rm_budget_refusal_clear(void);

#ifdef __cplusplus
}
#endif
#endif
