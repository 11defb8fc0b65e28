/* alloc.c - allocator wrappers with per-thread fault injection for tests. */
#include "rm/alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* -1: never fail. Otherwise the number of allocations that may still succeed. */
static _Thread_local long fail_countdown = -1;
static _Thread_local long attempts;

static int should_fail(void) {
  attempts++;
  if (fail_countdown < 0)
    return 0;
  if (fail_countdown == 0)
    return 1;
  fail_countdown--;
  return 0;
}

void *rm_malloc(size_t size) {
  if (should_fail())
    return NULL;
  return malloc(size ? size : 1);
}

void *rm_calloc(size_t count, size_t size) {
  if (should_fail())
    return NULL;
  if (count == 0 || size == 0)
    count = size = 1;
  return calloc(count, size);
}

void *rm_realloc(void *ptr, size_t size) {
  if (should_fail())
    return NULL;
  return realloc(ptr, size ? size : 1);
}

void rm_free(void *ptr) { free(ptr); }

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

void rm_alloc_install_jansson(void) { json_set_alloc_funcs(rm_malloc, rm_free); }
