/* sysres.h - what the container lets this process use: CPUs (affinity and cgroup CPU
 * quota) and memory (cgroup memory limit, else physical memory), for resource defaults. */
#ifndef RM_SERVER_SYSRES_H
#define RM_SERVER_SYSRES_H

#include <stdint.h>

/* CPUs the process may use: the CPUs of its affinity mask, lowered to the cgroup's CPU quota
 * rounded up (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us, the tightest along the
 * cgroup's path). Never less than 1. root prefixes every path read ("" for this system; a
 * test passes a directory holding proc/self/cgroup and sys/fs/cgroup/...). Any thread. */
int rm_sysres_cpus(const char *root);

/* The CPU quota alone, rounded up: 0 when the cgroups set none (or cannot be read). */
int rm_sysres_cgroup_cpus(const char *root);

/* Bytes of memory the process may use: the tightest cgroup memory limit along its path
 * (v2 memory.max, v1 memory.limit_in_bytes; "max" and v1's near-2^63 value mean none), else
 * physical memory. *from_cgroup (may be NULL) is set to 1 when a cgroup limit applied.
 * Any thread. */
uint64_t rm_sysres_memory(const char *root, int *from_cgroup);

/* The cgroup memory limit alone: 0 when none is set (or none can be read). */
uint64_t rm_sysres_cgroup_memory(const char *root);

/* The process's resident memory in bytes (/proc/self/statm), 0 when it cannot be read.
 * Any thread; a few system calls. */
uint64_t rm_sysres_resident(void);

#endif
