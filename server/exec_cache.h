/* exec_cache.h - compiled pipelines kept per polling or worker thread, keyed by what compiled them
 * (the limits and the manifest's wire bytes), so an identical request skips compiling. */
#ifndef RM_SERVER_EXEC_CACHE_H
#define RM_SERVER_EXEC_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "rm/pipeline.h"

typedef struct rm_exec_cache rm_exec_cache_t;

/* The limits as a key: one 64-bit word per field of RM_LIMITS_FIELDS (no padding), so a
 * new limit is part of the key the moment it is part of rm_limits_t. */
#define RM_EXEC_CACHE_COUNT_(type, name) +1
enum { RM_LIMITS_N_FIELDS = 0 RM_LIMITS_FIELDS(RM_EXEC_CACHE_COUNT_) };
#undef RM_EXEC_CACHE_COUNT_

typedef struct rm_exec_cache_key {
  uint64_t limits[RM_LIMITS_N_FIELDS];
  const uint8_t *manifest; /* borrowed: valid while the key is used */
  size_t manifest_len;
  uint64_t hash;
} rm_exec_cache_key_t;

/* Builds the key of a compile under limits from manifest (wire bytes, borrowed). Cannot
 * fail. Any thread. */
void rm_exec_cache_key_init(rm_exec_cache_key_t *key, const rm_limits_t *limits,
                            const uint8_t *manifest, size_t len);

/* This thread's cache, created on first use and freed with the thread; NULL when memory
 * or a thread key cannot be had (then run without it). Inline runs are synchronous on
 * their thread, so an entry is never used by two runs at once. */
rm_exec_cache_t *rm_exec_cache_this_thread(void);

/* The pipeline compiled under key, still owned by the cache, or NULL. Owning thread. */
rm_pipeline_t *rm_exec_cache_find(rm_exec_cache_t *c, const rm_exec_cache_key_t *key);

/* Takes p into the cache under key (copied), evicting the least recently used entry. 0,
 * or RM_ENOMEM: then p stays the caller's. Owning thread. */
int rm_exec_cache_put(rm_exec_cache_t *c, const rm_exec_cache_key_t *key, rm_pipeline_t *p);

#endif
