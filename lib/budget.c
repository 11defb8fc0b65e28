/* budget.c - memory budgets: limits checked before allocation, parents drawn from in slabs. */
#include "rm/budget.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "budget_int.h"

/* A budget with a parent takes the parent's bytes in slabs of this size, so an allocation
 * that fits in what was already taken touches the budget's own counters only. What a budget
 * holds beyond its use stays below two slabs (the rest goes back as use falls). */
#define SLAB ((size_t)64 * 1024)

struct rm_budget {
  atomic_size_t used;          /* bytes charged to this budget (blocks and rm_budget_charge) */
  atomic_size_t peak;          /* the most `used` since creation or the last reset */
  atomic_size_t external;      /* of used: bytes from rm_budget_charge (library predictions) */
  atomic_size_t external_peak; /* the most `external` since rm__budget_external_peak */
  atomic_size_t reserved;      /* bytes taken from the parent, >= used except for a moment */
  atomic_size_t floor;         /* rm_budget_reserve: reserved does not go below this */
  atomic_int orphaned;         /* rm_budget_free ran: the last discharge frees it */
  atomic_int dead;             /* taken by whoever frees it */
  size_t limit;
  rm_budget_t *parent;
};

static _Thread_local rm_budget_t *current;
static _Thread_local int refused;
static _Thread_local rm_budget_refusal_t refusal;

rm_budget_t *rm_budget_new(size_t limit, rm_budget_t *parent) {
  /* plain calloc: the budget's own memory is not charged to anything */
  rm_budget_t *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->limit = limit;
  b->parent = parent;
  return b;
}

static void destroy(rm_budget_t *b) {
  if (atomic_exchange(&b->dead, 1))
    return;
  size_t r = atomic_exchange(&b->reserved, 0);
  if (b->parent && r)
    rm__budget_discharge(b->parent, r, 0);
  free(b);
}

void rm_budget_free(rm_budget_t *b) {
  if (!b)
    return;
  atomic_store(&b->orphaned, 1);
  if (atomic_load(&b->used) == 0)
    destroy(b);
}

size_t rm_budget_used(const rm_budget_t *b) {
  return atomic_load_explicit(&b->used, memory_order_relaxed);
}
size_t rm_budget_peak(const rm_budget_t *b) {
  return atomic_load_explicit(&b->peak, memory_order_relaxed);
}
size_t rm_budget_limit(const rm_budget_t *b) { return b->limit; }
void rm_budget_reset_peak(rm_budget_t *b) { atomic_store(&b->peak, atomic_load(&b->used)); }

size_t rm__budget_external(const rm_budget_t *b) {
  return b ? atomic_load_explicit(&b->external, memory_order_relaxed) : 0;
}

size_t rm__budget_external_peak(rm_budget_t *b) {
  if (!b)
    return 0;
  size_t now = atomic_load_explicit(&b->external, memory_order_relaxed);
  size_t peak = atomic_exchange_explicit(&b->external_peak, now, memory_order_relaxed);
  return peak > now ? peak : now;
}

rm_budget_t *rm_budget_enter(rm_budget_t *b) {
  rm_budget_t *prev = current;
  current = b;
  return prev;
}

void rm_budget_leave(rm_budget_t *previous) { current = previous; }
rm_budget_t *rm_budget_current(void) { return current; }

static void record_refusal(const rm_budget_t *at, size_t asked, size_t used, int by_parent) {
  refused = 1;
  refusal.asked = asked;
  refusal.used = used;
  refusal.limit = at->limit;
  refusal.by_parent = by_parent;
}

/* Raises *peak to now when now is higher. */
static void raise_peak(atomic_size_t *peak, size_t now) {
  size_t p = atomic_load_explicit(peak, memory_order_relaxed);
  while (now > p && !atomic_compare_exchange_weak_explicit(peak, &p, now, memory_order_relaxed,
                                                           memory_order_relaxed))
    ;
}

/* Gives back what b holds of its parent beyond one slab of slack. */
static void trim(rm_budget_t *b) {
  size_t r = atomic_load(&b->reserved), u = atomic_load(&b->used);
  size_t keep = atomic_load(&b->floor);
  while (r > u + 2 * SLAB && r > keep) {
    size_t give = (r - u - SLAB) & ~(SLAB - 1);
    if (r - give < keep)
      give = r - keep;
    if (atomic_compare_exchange_weak(&b->reserved, &r, r - give)) {
      rm__budget_discharge(b->parent, give, 0);
      return;
    }
    u = atomic_load(&b->used);
  }
}

/* Takes what b's use now needs from its parent: a whole slab when the parent has it, else
 * just the shortfall. 0, or RM_ELIMIT (recorded as a refusal by the parent). */
static int draw(rm_budget_t *b, size_t used_now, size_t asked) {
  for (;;) {
    size_t r = atomic_load(&b->reserved);
    if (used_now <= r)
      return 0;
    size_t need = used_now - r;
    size_t slab = need > SIZE_MAX - SLAB ? need : (need + SLAB - 1) & ~(SLAB - 1);
    size_t got = slab;
    if (rm__budget_charge(b->parent, slab, 0)) {
      got = need;
      if (rm__budget_charge(b->parent, need, 0)) {
        /* the refusal the parent recorded names it: say it is a parent's */
        refusal.asked = asked;
        refusal.by_parent = 1;
        return RM_ELIMIT;
      }
    }
    atomic_fetch_add(&b->reserved, got);
  }
}

int rm__budget_charge(rm_budget_t *b, size_t n, int external) {
  size_t u = atomic_load_explicit(&b->used, memory_order_relaxed);
  for (;;) {
    if (n > SIZE_MAX - u || (b->limit && u + n > b->limit)) {
      record_refusal(b, n, u, 0);
      return RM_ELIMIT;
    }
    if (atomic_compare_exchange_weak_explicit(&b->used, &u, u + n, memory_order_acq_rel,
                                              memory_order_relaxed))
      break;
  }
  u += n;
  if (b->parent && u > atomic_load_explicit(&b->reserved, memory_order_relaxed) && draw(b, u, n)) {
    atomic_fetch_sub(&b->used, n);
    return RM_ELIMIT;
  }
  raise_peak(&b->peak, u);
  if (external)
    raise_peak(&b->external_peak,
               atomic_fetch_add_explicit(&b->external, n, memory_order_relaxed) + n);
  return 0;
}

void rm__budget_discharge(rm_budget_t *b, size_t n, int external) {
  if (external)
    atomic_fetch_sub_explicit(&b->external, n, memory_order_relaxed);
  size_t left = atomic_fetch_sub_explicit(&b->used, n, memory_order_acq_rel) - n;
  if (left == 0 && atomic_load(&b->orphaned)) {
    destroy(b);
    return;
  }
  if (b->parent && atomic_load_explicit(&b->reserved, memory_order_relaxed) > left + 2 * SLAB)
    trim(b);
}

int rm_budget_reserve(rm_budget_t *b, size_t n) {
  if (!b->parent)
    return 0;
  size_t r = atomic_load(&b->reserved);
  if (n > r) {
    if (rm__budget_charge(b->parent, n - r, 0)) {
      refusal.asked = n - r;
      refusal.by_parent = 1;
      return RM_ELIMIT;
    }
    atomic_fetch_add(&b->reserved, n - r);
  }
  atomic_store(&b->floor, n);
  return 0;
}

void rm_budget_unreserve(rm_budget_t *b) {
  atomic_store(&b->floor, 0);
  if (b->parent)
    trim(b);
}

int rm__budget_charge_local(rm_budget_t *b, size_t n) {
  size_t u = atomic_load_explicit(&b->used, memory_order_relaxed);
  for (;;) {
    if (n > SIZE_MAX - u || (b->limit && u + n > b->limit)) {
      record_refusal(b, n, u, 0);
      return RM_ELIMIT;
    }
    if (atomic_compare_exchange_weak(&b->used, &u, u + n))
      break;
  }
  /* counted as if taken from the parent, so neither draw nor trim moves the parent */
  atomic_fetch_add(&b->reserved, n);
  raise_peak(&b->peak, u + n);
  return 0;
}

void rm__budget_discharge_local(rm_budget_t *b, size_t n) {
  atomic_fetch_sub(&b->reserved, n);
  rm__budget_discharge(b, n, 0);
}

int rm_budget_charge(rm_budget_t *b, size_t n) {
  if (!b || !n)
    return 0;
  return rm__budget_charge(b, n, 1);
}

void rm_budget_discharge(rm_budget_t *b, size_t n) {
  if (b && n)
    rm__budget_discharge(b, n, 1);
}

int rm_budget_refused(rm_budget_refusal_t *out) {
  if (!refused)
    return 0;
  if (out)
    *out = refusal;
  return 1;
}

void rm_budget_refusal_clear(void) { refused = 0; }
