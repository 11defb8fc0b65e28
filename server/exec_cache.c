/* exec_cache.c - compiled pipelines kept per polling thread, keyed by limits and manifest.
 *
 * Load tests and real clients send the same manifest again and again. A pipeline whose
 * nodes are all RM_NODE_REUSABLE is kept, per thread (a light one on the polling thread that
 * runs it inline, any on the worker that runs a big request), keyed by
 * everything that went into compiling it, and reused by the next identical request: no
 * parsing, validation or allocation. */
#include "exec_cache.h"

#include <pthread.h>
#include <string.h>

#include "rm/alloc.h"

#define CACHE_SLOTS 16

typedef struct cache_entry {
  uint64_t hash;
  char *key; /* the limits words, then the manifest bytes */
  size_t key_len;
  rm_pipeline_t *pipeline;
  uint64_t last_use;
} cache_entry_t;

struct rm_exec_cache {
  cache_entry_t e[CACHE_SLOTS];
  uint64_t tick;
};

/* ---------------------------------------------------------------- keys */

static uint64_t hash_mix(uint64_t h, uint64_t word) {
  h = (h ^ word) * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n) {
  uint64_t word;
  for (; n >= 8; p += 8, n -= 8) {
    memcpy(&word, p, 8);
    h = hash_mix(h, word);
  }
  word = 0;
  memcpy(&word, p, n);
  return hash_mix(h, word ^ ((uint64_t)n << 56));
}

void rm_exec_cache_key_init(rm_exec_cache_key_t *key, const rm_limits_t *l, const uint8_t *manifest,
                            size_t len) {
  size_t i = 0;
#define RM_EXEC_CACHE_WORD_(type, name) key->limits[i++] = (uint64_t)l->name;
  RM_LIMITS_FIELDS(RM_EXEC_CACHE_WORD_)
#undef RM_EXEC_CACHE_WORD_
  key->manifest = manifest;
  key->manifest_len = len;
  key->hash =
      hash_bytes(hash_bytes(0, (const uint8_t *)key->limits, sizeof key->limits), manifest, len);
}

/* ---------------------------------------------------------------- the thread's cache */

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_ok;

static void cache_free(void *arg) { /* a thread's cache goes with the thread */
  rm_exec_cache_t *c = arg;
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    rm_pipeline_free(c->e[i].pipeline);
    rm_free(c->e[i].key);
  }
  rm_free(c);
}

static void cache_init(void) { cache_ok = pthread_key_create(&cache_key, cache_free) == 0; }

rm_exec_cache_t *rm_exec_cache_this_thread(void) {
  pthread_once(&cache_once, cache_init);
  if (!cache_ok)
    return NULL;
  rm_exec_cache_t *c = pthread_getspecific(cache_key);
  if (!c && (c = rm_calloc(1, sizeof *c)) && pthread_setspecific(cache_key, c)) {
    rm_free(c);
    c = NULL;
  }
  return c;
}

/* ---------------------------------------------------------------- entries */

rm_pipeline_t *rm_exec_cache_find(rm_exec_cache_t *c, const rm_exec_cache_key_t *key) {
  size_t lim = sizeof key->limits;
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    cache_entry_t *e = &c->e[i];
    if (e->pipeline && e->hash == key->hash && e->key_len == lim + key->manifest_len &&
        !memcmp(e->key, key->limits, lim) &&
        !memcmp(e->key + lim, key->manifest, key->manifest_len)) {
      e->last_use = ++c->tick;
      return e->pipeline;
    }
  }
  return NULL;
}

int rm_exec_cache_put(rm_exec_cache_t *c, const rm_exec_cache_key_t *key, rm_pipeline_t *p) {
  size_t lim = sizeof key->limits;
  char *bytes = rm_malloc(lim + key->manifest_len);
  if (!bytes)
    return RM_ENOMEM;
  memcpy(bytes, key->limits, lim);
  memcpy(bytes + lim, key->manifest, key->manifest_len);
  cache_entry_t *victim = &c->e[0];
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    if (!c->e[i].pipeline) {
      victim = &c->e[i];
      break;
    }
    if (c->e[i].last_use < victim->last_use)
      victim = &c->e[i];
  }
  rm_pipeline_free(victim->pipeline);
  rm_free(victim->key);
  *victim = (cache_entry_t){key->hash, bytes, lim + key->manifest_len, p, ++c->tick};
  return 0;
}
