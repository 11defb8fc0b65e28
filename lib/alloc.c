/* alloc.c - allocator wrappers: the thread's memory budget asked before malloc, per-thread
 * fault injection for tests. */
#include "rm/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "budget_int.h"
#include "rm/budget.h"

/* Every block starts with this header, so rm_free gives its bytes back to the budget they
 * were charged to on whichever thread frees it. 16 bytes keep the payload 16-byte aligned
 * (malloc's blocks are). A block charges its size plus the header. */
typedef struct block_head {
  rm_budget_t *budget; /* NULL: charged to nothing */
  size_t size;         /* payload bytes asked for */
} block_head_t;
#define HEAD 16u
/* Larger requests fail without reaching malloc (1 TiB: more than any machine this runs on
 * has, and below the sizes sanitizers abort on as "allocation-size-too-big"). */
#define RM_ALLOC_MAX ((size_t)1 << 40)
_Static_assert(sizeof(block_head_t) <= HEAD, "the block header must fit in 16 bytes");

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

static block_head_t *head_of(void *ptr) { return (block_head_t *)(void *)((char *)ptr - HEAD); }

/* A new block of size payload bytes, charged to the thread's budget first; zeroed when
 * `zero`. NULL (counted as a failure) when injected, refused or out of memory. */
static void *block_new(size_t size, int zero) {
  if (should_fail()) {
    failures++;
    return NULL;
  }
  /* the budget is asked first, whatever the size, so a refusal names it */
  size_t total = size > SIZE_MAX - HEAD ? SIZE_MAX : size + HEAD;
  rm_budget_t *b = rm_budget_current();
  if (b && rm__budget_charge(b, total, 0)) {
    failures++;
    return NULL;
  }
  block_head_t *h = size > RM_ALLOC_MAX ? NULL : zero ? calloc(1, total) : malloc(total);
  if (!h) {
    if (b)
      rm__budget_discharge(b, total, 0);
    failures++;
    return NULL;
  }
  h->budget = b;
  h->size = size;
  live++;
  return (char *)h + HEAD;
}

void *rm_malloc(size_t size) { return block_new(size ? size : 1, 0); }

void *rm_calloc(size_t count, size_t size) {
  if (count == 0 || size == 0)
    count = size = 1;
  if (count > SIZE_MAX / size) {
    should_fail(); /* still an attempt */
    failures++;
    return NULL;
  }
  return block_new(count * size, 1);
}

void *rm_realloc(void *ptr, size_t size) {
  if (!ptr)
    return rm_malloc(size);
  if (!size)
    size = 1;
  if (should_fail()) {
    failures++;
    return NULL;
  }
  block_head_t *h = head_of(ptr);
  rm_budget_t *b = h->budget;
  size_t old = h->size;
  /* growth is asked of the block's own budget before the memory is touched */
  if (b && size > old && rm__budget_charge(b, size - old, 0)) {
    failures++;
    return NULL;
  }
  block_head_t *g = size > RM_ALLOC_MAX ? NULL : realloc(h, size + HEAD);
  if (!g) {
    if (b && size > old)
      rm__budget_discharge(b, size - old, 0);
    failures++;
    return NULL;
  }
  g->size = size;
  if (b && size < old)
    rm__budget_discharge(b, old - size, 0);
  return (char *)g + HEAD;
}

void rm_free(void *ptr) {
  if (!ptr)
    return;
  live--;
  block_head_t *h = head_of(ptr);
  rm_budget_t *b = h->budget;
  size_t n = h->size + HEAD;
  free(h);
  if (b)
    rm__budget_discharge(b, n, 0);
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

/* ---- jansson
 *
 * jansson 2.14's lexer ignores a failed growth of its token buffer (lex_save) and then copies
 * the token up to a closing quote past the end of both buffers: a refused allocation inside a
 * parse of client text corrupted the heap (a long JSON string under a small budget killed the
 * server). So a parse through rm_json_loadb never sees an allocation fail: the allocator jumps
 * out of the parse instead, and frees what the parse had allocated and not yet freed, which it
 * keeps a set of meanwhile (blocks are plain rm_malloc blocks: json_dumps' text is freed
 * with rm_free).
 *
 * The set is open addressing with linear probing, at most half full; a removal moves the rest
 * of its run back, so there are no tombstones. Finding a block is O(1) whatever order jansson
 * frees in: a failed parse frees a long array first element first, which made a list searched
 * from its end quadratic (a broken 320 KB array of numbers took 8.6 s to give up). */
static _Thread_local jmp_buf *parse_jump;       /* set while rm_json_loadb parses */
static _Thread_local void **parse_made;         /* the parse's live blocks: the set's slots */
static _Thread_local size_t parse_n, parse_cap; /* blocks; slots (0 or a power of two) */

static _Noreturn void parse_abandon(void) { longjmp(*parse_jump, 1); }

static size_t home(const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
  return (size_t)(h ^ (h >> 32)) & (parse_cap - 1);
}

static void set_put(void *p) {
  size_t i = home(p);
  while (parse_made[i])
    i = (i + 1) & (parse_cap - 1);
  parse_made[i] = p;
  parse_n++;
}

/* Room for one more block. 0, or -1 out of memory (the set unchanged). */
static int set_room(void) {
  if (2 * (parse_n + 1) <= parse_cap)
    return 0;
  size_t old_cap = parse_cap, cap = old_cap ? 2 * old_cap : 64;
  void **old = parse_made, **slots = rm_calloc(cap, sizeof *slots);
  if (!slots)
    return -1;
  parse_made = slots, parse_cap = cap, parse_n = 0;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i])
      set_put(old[i]);
  rm_free(old);
  return 0;
}

static void set_remove(const void *p) {
  if (!parse_cap)
    return;
  size_t mask = parse_cap - 1, i = home(p);
  while (parse_made[i] != p) {
    if (!parse_made[i])
      return; /* not the parse's: allocated before it began */
    i = (i + 1) & mask;
  }
  parse_made[i] = NULL;
  parse_n--;
  /* a later block of the run moves into the hole unless its home lies in (hole, its slot] */
  for (size_t j = (i + 1) & mask; parse_made[j]; j = (j + 1) & mask) {
    size_t k = home(parse_made[j]);
    if (i <= j ? i < k && k <= j : i < k || k <= j)
      continue;
    parse_made[i] = parse_made[j];
    parse_made[j] = NULL;
    i = j;
  }
}

static void *json_alloc(size_t size) {
  void *p = rm_malloc(size);
  if (!parse_jump)
    return p;
  if (!p)
    parse_abandon();
  if (set_room()) {
    rm_free(p);
    parse_abandon();
  }
  set_put(p);
  return p;
}

static void json_release(void *ptr) {
  if (ptr && parse_jump)
    set_remove(ptr);
  rm_free(ptr);
}

void rm_alloc_install_jansson(void) { json_set_alloc_funcs(json_alloc, json_release); }

/* The text handed to json_load_callback a piece at a time, with stop() every STOP_EVERY bytes. */
#define STOP_EVERY ((size_t)64 << 10)
typedef struct pieces {
  const char *text;
  size_t len, at, next_stop;
  int (*stop)(void *arg);
  void *arg;
  int stopped;
} pieces_t;

static size_t read_piece(void *buffer, size_t buflen, void *data) {
  pieces_t *p = data;
  if (p->at >= p->next_stop) {
    p->next_stop = p->at + STOP_EVERY;
    if ((p->stopped = p->stop(p->arg)))
      return (size_t)-1; /* jansson: a read error */
  }
  size_t n = buflen < p->len - p->at ? buflen : p->len - p->at;
  memcpy(buffer, p->text + p->at, n);
  p->at += n;
  return n;
}

/* json_loadb, or json_load_callback over p when p is not NULL. */
static json_t *parse(const char *text, size_t len, size_t flags, json_error_t *error, pieces_t *p) {
  jmp_buf jump;
  json_t *volatile root = NULL;
  parse_n = 0;
  if (setjmp(jump) == 0) {
    parse_jump = &jump;
    root =
        p ? json_load_callback(read_piece, p, flags, error) : json_loadb(text, len, flags, error);
  } else { /* abandoned: what a parse that fails by itself would have freed */
    for (size_t i = 0; i < parse_cap; i++)
      rm_free(parse_made[i]);
  }
  parse_jump = NULL;
  rm_free(parse_made);
  parse_made = NULL;
  parse_n = parse_cap = 0;
  return root;
}

json_t *rm_json_loadb(const char *text, size_t len, size_t flags, json_error_t *error) {
  return parse(text, len, flags, error, NULL);
}

json_t *rm_json_loadb_stoppable(const char *text, size_t len, size_t flags, json_error_t *error,
                                int (*stop)(void *arg), void *arg, int *stopped) {
  pieces_t p = {.text = text, .len = len, .next_stop = STOP_EVERY, .stop = stop, .arg = arg};
  /* text no longer than a piece is never stopped: json_loadb reads it at less cost */
  json_t *root = parse(text, len, flags, error, len > STOP_EVERY ? &p : NULL);
  if (p.stopped) { /* jansson reads a failed read as the end of the text: it may have a value */
    json_decref(root);
    root = NULL;
  }
  *stopped = p.stopped;
  return root;
}

/* 64 KiB: below glibc's smallest mmap threshold (128 KiB), so every piece is heap memory. */
#define WARM_PIECE ((size_t)64 << 10)

size_t rm_alloc_warm(size_t bytes) {
  long ps = sysconf(_SC_PAGESIZE);
  size_t page = ps > 0 ? (size_t)ps : 4096, done = 0;
  void *last = NULL; /* the pieces form a list through their first word */
  int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC); /* without it: user-side touch only */
  while (done < bytes) {
    void **piece = malloc(WARM_PIECE);
    if (!piece)
      break;
    /* The pages are touched twice: by this thread (volatile: the writes must happen, or the
     * compiler may drop malloc and free together), and by the kernel, which fills them from
     * /dev/zero. Under shadow paging with page-table isolation (the PVM guests this was measured
     * on) the kernel's own accesses to user pages (the copies of recvmsg and sendmsg) are mapped
     * apart from the process's: touched only from user space, a fresh server's first 3.84 MB call
     * still spent ~25 ms of CPU in those copies against ~8 ms warm; touched by both, ~11 ms. */
    for (size_t off = 0; off < WARM_PIECE; off += page)
      ((volatile char *)piece)[off] = 0;
    if (zero >= 0 && read(zero, piece, WARM_PIECE) < 0) {
      close(zero);
      zero = -1;
    }
    *(void *volatile *)piece = last;
    last = piece;
    done += WARM_PIECE;
  }
  if (zero >= 0)
    close(zero);
  while (last) { /* newest first: each piece joins the free top of the heap */
    void *prev = *(void *volatile *)last;
    free(last);
    last = prev;
  }
  return done;
}
