/* clock.h - the monotonic nanosecond clock every duration in the engine is taken from. */
#ifndef RM_CLOCK_H
#define RM_CLOCK_H

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds. Any thread. */
static inline uint64_t rm_clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Median cost of one rm_clock_ns() call on this machine, measured once (thread-safe,
 * the first caller measures). Used to account for clock reads the metrics cannot time. */
uint64_t rm_clock_read_cost_ns(void);

#ifdef __cplusplus
}
#endif
#endif
