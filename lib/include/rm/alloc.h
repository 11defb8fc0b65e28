/* alloc.h - the engine's allocator wrappers: one place to count and to fail allocations.
 *
 * Out-of-memory policy (the whole project follows it): every allocation result is
 * checked; on failure the function releases what it had built, returns RM_ENOMEM (or NULL
 * where the function returns a pointer) and leaves its outputs untouched. Nothing aborts
 * or exits on OOM. Tests force failures with rm_alloc_fail_after(). */
#ifndef RM_ALLOC_H
#define RM_ALLOC_H

#include <jansson.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void *rm_malloc(size_t size);
void *rm_calloc(size_t count, size_t size);
void *rm_realloc(void *ptr, size_t size);
void rm_free(void *ptr); /* rm_free(NULL) is a no-op */
char *rm_strdup(const char *s);
char *rm_strndup(const char *s, size_t n);

/* Fault injection for tests, per thread: after `n` more successful allocations on this
 * thread, every following one fails until rm_alloc_fail_never() is called. n = 0 fails the
 * very next allocation. */
void rm_alloc_fail_after(long n);
void rm_alloc_fail_never(void);
/* Allocations attempted on this thread since the last rm_alloc_fail_after/never call. */
long rm_alloc_attempts(void);

/* Allocations through these wrappers that failed on this thread so far (injected or
 * real). jansson's parser reports running out of memory as a syntax error (or as nothing);
 * a caller compares this count before and after the parse to tell the two apart. */
unsigned long rm_alloc_failures(void);

/* Allocations made on this thread through these wrappers minus those freed on it. Across a
 * piece of single-threaded code, a change is what that code leaked (tests use it). */
long rm_alloc_live(void);

/* Installs the wrappers as jansson's allocator so JSON parsing shares the policy and the
 * fault injection. Call once at start-up, before any other thread uses jansson. */
void rm_alloc_install_jansson(void);

/* json_loadb for text a client sent: when an allocation fails (the budget refused it, or an
 * injected failure), the parse is abandoned at once and everything it allocated is freed;
 * NULL then, with rm_alloc_failures() raised (error may be partly written). jansson 2.14
 * itself would go on after a failed growth of its token buffer and overrun it. Any thread;
 * needs rm_alloc_install_jansson (without it, plain json_loadb). */
json_t *rm_json_loadb(const char *text, size_t len, size_t flags, json_error_t *error);
/* rm_json_loadb for long text under a deadline: the parser reads the text through a callback
 * that calls stop(arg) every 64 KiB and abandons the parse when it returns non-zero (NULL, with
 * that value in *stopped; 0 there otherwise). Text of at most 64 KiB is parsed as by
 * rm_json_loadb, never stopped. Any thread. */
json_t *rm_json_loadb_stoppable(const char *text, size_t len, size_t flags, json_error_t *error,
                                int (*stop)(void *arg), void *arg, int *stopped);

/* Pre-faults `bytes` (rounded up to 64 KiB) of the calling thread's malloc heap: takes them
 * from malloc in 64 KiB pieces (below any mmap threshold, so they come from the heap this
 * thread allocates from), writes one byte per page and frees them again. The pages stay in
 * that heap, resident, as long as its free top stays under M_TRIM_THRESHOLD (the server sets
 * 16 MiB) and nobody calls malloc_trim: a first big request then finds warm memory instead
 * of faulting in every page it copies into. Not charged to any budget (it is free memory
 * the allocator keeps, counted in the process's RSS). Returns the bytes pre-faulted (less
 * when malloc failed; 0 for 0). Any thread. */
size_t rm_alloc_warm(size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
