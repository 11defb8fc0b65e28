/* alloc.c - allocator wrappers with per-thread fault injection for tests. */
#include "rm/alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* -1: never fail. Otherwise the number of allocations that may still succeed. */
static _Thread_local long fail_countdown = -1;
static _Thread_local long attempts;
static _Thread_local unsigned long failures;
static _Thread_local long live;

static int should_fail(void) {
  attempts++;
  if (fail_countdown < 0)
    return 0;
  if (fail_countdown == 0)
    return 1;
  fail_countdown--;
  return 0;
}

/* Books the outcome of one allocation; `fresh` when it makes a new block. */
static void *booked(void *p, int fresh) {
  if (!p)
    failures++;
  else if (fresh)
    live++;
  return p;
}

void *rm_malloc(size_t size) {
  if (should_fail())
    return booked(NULL, 1);
  return booked(malloc(size ? size : 1), 1);
}

void *rm_calloc(size_t count, size_t size) {
  if (should_fail())
    return booked(NULL, 1);
  if (count == 0 || size == 0)
    count = size = 1;
  return booked(calloc(count, size), 1);
}

void *rm_realloc(void *ptr, size_t size) {
  if (should_fail())
    return booked(NULL, ptr == NULL);
  return booked(realloc(ptr, size ? size : 1), ptr == NULL);
}

void rm_free(void *ptr) {
  if (ptr)
    live--;
  free(ptr);
}

char *rm_strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *d = rm_malloc(len + 1);
  if (!d)
    return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

char *rm_strdup(const char *s) { return rm_strndup(s, strlen(s)); }

void rm_alloc_fail_after(long n) {
  fail_countdown = n < 0 ? 0 : n;
  attempts = 0;
}

void rm_alloc_fail_never(void) {
  fail_countdown = -1;
  attempts = 0;
}

long rm_alloc_attempts(void) { return attempts; }

unsigned long rm_alloc_failures(void) { return failures; }

long rm_alloc_live(void) { return live; }

void rm_alloc_install_jansson(void) { json_set_alloc_funcs(rm_malloc, rm_free); }
