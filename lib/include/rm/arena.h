/* arena.h - a bump allocator for memory that lives exactly as long as one request.
 *
 * Allocation is a pointer increment; nothing is freed individually; rm_arena_destroy
 * releases everything at once. The first block may be supplied by the caller (e.g. inside
 * the request's own struct) so small requests allocate nothing at all. Not thread-safe:
 * one request is handled by one thread at a time. */
#ifndef RM_ARENA_H
#define RM_ARENA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rm_arena_block rm_arena_block_t;

typedef struct rm_arena {
  char *cur;                /* next free byte of the current block */
  char *end;                /* end of the current block */
  rm_arena_block_t *blocks; /* blocks allocated by the arena (the caller's is not) */
  size_t next_size;         /* size of the next block to allocate */
} rm_arena_t;

/* Starts an arena whose first block is initial[0..size) (may be NULL/0). */
void rm_arena_init(rm_arena_t *a, void *initial, size_t size);
/* Frees every block the arena allocated (not the caller's first block). The arena may be
 * reused after rm_arena_init; destroying it twice is harmless. a must not be NULL. */
void rm_arena_destroy(rm_arena_t *a);

/* size bytes aligned for any type, uninitialised; NULL when out of memory (rm_malloc
 * fails). rm_arena_calloc zeroes them. */
void *rm_arena_alloc(rm_arena_t *a, size_t size);
void *rm_arena_calloc(rm_arena_t *a, size_t count, size_t size);
/* A copy of s in the arena, NULL when out of memory. */
char *rm_arena_strdup(rm_arena_t *a, const char *s);

#ifdef __cplusplus
}
#endif
#endif
