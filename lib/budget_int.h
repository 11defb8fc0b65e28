/* budget_int.h - the budget internals the allocator and the executor share (not public). */
#ifndef RM_BUDGET_INT_H
#define RM_BUDGET_INT_H

#include <stddef.h>

#include "rm/budget.h"
#include "rm/error.h"

/* Charges n bytes to b (not NULL) and its parents: 0, or RM_ELIMIT with the refusal recorded
 * for this thread. `external` marks bytes a library holds (rm_budget_charge), which
 * rm__budget_external counts apart. Any thread. */
int rm__budget_charge(rm_budget_t *b, size_t n, int external);
/* Gives back n bytes; the last discharge of an orphaned budget frees it. Any thread. */
void rm__budget_discharge(rm_budget_t *b, size_t n, int external);
/* Charges n bytes to b's own limit only, not to its parents (memory a parent already counts,
 * such as a request's inputs): 0 or RM_ELIMIT (recorded). Undo with
 * rm__budget_discharge_local on the same budget. */
int rm__budget_charge_local(rm_budget_t *b, size_t n);
void rm__budget_discharge_local(rm_budget_t *b, size_t n);
/* Bytes charged to b now with rm_budget_charge (0 for NULL). */
size_t rm__budget_external(const rm_budget_t *b);
/* The most bytes charged to b with rm_budget_charge at once since the last call (at least
 * what is charged now), and a new such peak from now (0 for NULL): library memory a node
 * takes and gives back within one invocation. */
size_t rm__budget_external_peak(rm_budget_t *b);

#endif
