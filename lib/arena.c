/* arena.c - bump allocation in blocks that grow geometrically. */
#include "rm/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "rm/alloc.h"

#define ALIGN alignof(max_align_t)
#define FIRST_BLOCK 4096u

struct rm_arena_block {
  rm_arena_block_t *next;
  alignas(max_align_t) char data[];
};

void rm_arena_init(rm_arena_t *a, void *initial, size_t size) {
  uintptr_t p = (uintptr_t)initial, aligned = (p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
  if (!initial || size < aligned - p) {
    a->cur = a->end = NULL;
  } else {
    a->cur = (char *)aligned;
    a->end = (char *)initial + size;
  }
  a->blocks = NULL;
  a->next_size = FIRST_BLOCK;
}

void rm_arena_destroy(rm_arena_t *a) {
  rm_arena_block_t *b = a->blocks;
  while (b) {
    rm_arena_block_t *next = b->next;
    rm_free(b);
    b = next;
  }
  a->blocks = NULL;
  a->cur = a->end = NULL;
}

void *rm_arena_alloc(rm_arena_t *a, size_t size) {
  size_t need = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
  if (need < size)
    return NULL; /* overflow */
  if ((size_t)(a->end - a->cur) < need || !a->cur) {
    size_t bsize = a->next_size;
    while (bsize < need)
      bsize *= 2;
    rm_arena_block_t *b = rm_malloc(sizeof *b + bsize);
    if (!b)
      return NULL;
    b->next = a->blocks;
    a->blocks = b;
    a->cur = b->data;
    a->end = b->data + bsize;
    if (a->next_size < (1u << 20))
      a->next_size *= 2;
  }
  void *p = a->cur;
  a->cur += need;
  return p;
}

void *rm_arena_calloc(rm_arena_t *a, size_t count, size_t size) {
  if (size && count > SIZE_MAX / size)
    return NULL;
  void *p = rm_arena_alloc(a, count * size);
  if (p)
    memset(p, 0, count * size);
  return p;
}

char *rm_arena_strdup(rm_arena_t *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = rm_arena_alloc(a, n);
  if (d)
    memcpy(d, s, n);
  return d;
}
