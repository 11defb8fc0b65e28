/* clock.c - calibration of the cost of a monotonic clock read. */
#include "rm/clock.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t read_cost_ns;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Median over batches of 64 back-to-back reads: robust to a preemption in one batch. */
static void calibrate(void) {
  enum { BATCHES = 31, READS = 64 };
  uint64_t per[BATCHES];
  for (int b = 0; b < BATCHES; b++) {
    uint64_t t0 = rm_clock_ns(), t = t0;
    for (int i = 0; i < READS; i++)
      t = rm_clock_ns();
    per[b] = (t - t0) / READS;
  }
  qsort(per, BATCHES, sizeof per[0], cmp_u64);
  read_cost_ns = per[BATCHES / 2];
  if (read_cost_ns == 0)
    read_cost_ns = 1;
}

uint64_t rm_clock_read_cost_ns(void) {
  pthread_once(&once, calibrate);
  return read_cost_ns;
}
