/* sysres.c - CPUs and memory the container allows, read from the affinity mask, the cgroup
 * files along the process's cgroup path (v1 and v2) and sysconf. */
#define _GNU_SOURCE
#include "sysres.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_CAP 4096
#define LINE_CAP 4096
/* cgroup v1 says "no limit" with the largest page-aligned int64 (or more). */
#define V1_UNLIMITED (UINT64_C(1) << 62)

/* A quota of q per period p allows this many CPUs, rounded up (a partial CPU still needs a
 * thread). */
static uint64_t quota_cpus(uint64_t q, uint64_t p) { return q <= p ? 1 : (q + p - 1) / p; }

typedef struct hierarchy {
  char dir[PATH_CAP]; /* the process's cgroup directory, root prefix included */
  size_t base_len;    /* length of the mount point part: the walk stops there */
} hierarchy_t;

/* The first line of root+path into buf (newline removed); 0, or -1 when unreadable. */
static int read_line(const char *root, const char *path, char *buf, size_t cap) {
  char full[PATH_CAP];
  if ((size_t)snprintf(full, sizeof full, "%s%s", root, path) >= sizeof full)
    return -1;
  FILE *f = fopen(full, "re");
  if (!f)
    return -1;
  int rc = fgets(buf, (int)cap, f) ? 0 : -1;
  fclose(f);
  if (rc == 0)
    buf[strcspn(buf, "\n")] = 0;
  return rc;
}

/* Whether the comma-separated list has the entry. */
static int list_has(const char *list, const char *entry) {
  size_t n = strlen(entry);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && memcmp(p, entry, n) == 0)
      return 1;
    p = end ? end + 1 : NULL;
  }
  return 0;
}

/* Calls line_fn(line, arg) for each line of root+path (newline removed) until it returns 0,
 * which is then returned; -1 when the file cannot be read or no line answered. */
static int scan_lines(const char *root, const char *path, int (*line_fn)(char *line, void *arg),
                      void *arg) {
  char full[PATH_CAP], line[LINE_CAP];
  snprintf(full, sizeof full, "%s%s", root, path);
  FILE *f = fopen(full, "re");
  if (!f)
    return -1;
  int rc = -1;
  while (rc < 0 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    rc = line_fn(line, arg);
  }
  fclose(f);
  return rc;
}

typedef struct path_query {
  const char *controller; /* NULL: the v2 unified hierarchy */
  char *out;
  size_t cap;
} path_query_t;

/* A /proc/self/cgroup line "ID:CONTROLLERS:PATH": 0 with q->out = PATH when it is q's. */
static int cgroup_line(char *line, void *arg) {
  path_query_t *q = arg;
  char *c1 = strchr(line, ':');
  char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c2)
    return -1;
  *c1 = 0;
  *c2 = 0;
  const char *controllers = c1 + 1;
  int match = q->controller ? list_has(controllers, q->controller)
                            : (strcmp(line, "0") == 0 && *controllers == 0);
  if (!match || strlen(c2 + 1) >= q->cap)
    return -1;
  strcpy(q->out, c2 + 1);
  return 0;
}

typedef struct mount_query {
  const char *root, *controller, *path; /* path: the process's cgroup path */
  hierarchy_t *h;
} mount_query_t;

/* A /proc/self/mountinfo line "id parent dev ROOT MOUNTPOINT options [optional...] - FSTYPE
 * source SUPEROPTIONS": 0 with q->h filled when it mounts q's hierarchy over q->path. */
static int mount_line(char *line, void *arg) {
  mount_query_t *q = arg;
  char *sep = strstr(line, " - ");
  if (!sep)
    return -1;
  *sep = 0;
  char fstype[64], superopts[LINE_CAP];
  if (sscanf(sep + 3, "%63s %*s %4095s", fstype, superopts) != 2)
    return -1;
  if (q->controller ? strcmp(fstype, "cgroup") != 0 || !list_has(superopts, q->controller)
                    : strcmp(fstype, "cgroup2") != 0)
    return -1;
  char mroot[PATH_CAP], mpoint[PATH_CAP];
  if (sscanf(line, "%*s %*s %*s %4095s %4095s", mroot, mpoint) != 2)
    return -1;
  /* The process's path relative to the mount's root; outside it, the mount says nothing. */
  size_t rlen = strcmp(mroot, "/") == 0 ? 0 : strlen(mroot);
  if (strncmp(q->path, mroot, rlen) != 0 || (q->path[rlen] != '/' && q->path[rlen] != 0))
    return -1;
  const char *rel = q->path + rlen;
  if (strcmp(rel, "/") == 0)
    rel = "";
  int n = snprintf(q->h->dir, sizeof q->h->dir, "%s%s%s", q->root, mpoint, rel);
  if (n < 0 || (size_t)n >= sizeof q->h->dir)
    return -1;
  q->h->base_len = strlen(q->root) + strlen(mpoint);
  return 0;
}

/* Finds the mount of the hierarchy (fstype cgroup2 when controller is NULL, else a cgroup
 * mount whose options name the controller) and the process's directory in it. 0 or -1. */
static int find_hierarchy(const char *root, const char *controller, hierarchy_t *h) {
  char path[PATH_CAP];
  path_query_t pq = {controller, path, sizeof path};
  if (scan_lines(root, "/proc/self/cgroup", cgroup_line, &pq) != 0)
    return -1;
  mount_query_t mq = {root, controller, path, h};
  return scan_lines(root, "/proc/self/mountinfo", mount_line, &mq);
}

/* Calls limit(dir, arg) for the process's directory and each parent up to the mount point
 * and returns the smallest non-zero answer (0: none set anywhere). */
static uint64_t tightest(hierarchy_t *h, uint64_t (*limit)(const char *dir, void *arg), void *arg) {
  uint64_t best = 0;
  for (;;) {
    uint64_t v = limit(h->dir, arg);
    if (v && (!best || v < best))
      best = v;
    if (strlen(h->dir) <= h->base_len)
      break;
    char *slash = strrchr(h->dir + h->base_len, '/');
    if (!slash)
      break;
    *slash = 0;
  }
  return best;
}

static uint64_t v2_cpu(const char *dir, void *arg) {
  (void)arg;
  char line[128];
  unsigned long long quota, period = 100000;
  if (read_line(dir, "/cpu.max", line, sizeof line) != 0 ||
      sscanf(line, "%llu %llu", &quota, &period) < 1 || period == 0)
    return 0; /* unreadable, or "max": no quota here */
  return quota_cpus(quota, period);
}

static uint64_t v1_cpu(const char *dir, void *arg) {
  (void)arg;
  char line[128];
  long long quota, period;
  if (read_line(dir, "/cpu.cfs_quota_us", line, sizeof line) != 0 ||
      sscanf(line, "%lld", &quota) != 1 || quota <= 0)
    return 0; /* -1: no quota */
  if (read_line(dir, "/cpu.cfs_period_us", line, sizeof line) != 0 ||
      sscanf(line, "%lld", &period) != 1 || period <= 0)
    return 0;
  return quota_cpus((uint64_t)quota, (uint64_t)period);
}

static uint64_t memory_file(const char *dir, void *file) {
  char line[128];
  unsigned long long v;
  if (read_line(dir, file, line, sizeof line) != 0 || sscanf(line, "%llu", &v) != 1)
    return 0; /* unreadable, or "max" */
  return v >= V1_UNLIMITED ? 0 : (uint64_t)v;
}

int rm_sysres_cgroup_cpus(const char *root) {
  hierarchy_t h;
  uint64_t n = 0;
  if (find_hierarchy(root, NULL, &h) == 0)
    n = tightest(&h, v2_cpu, NULL);
  if (!n && find_hierarchy(root, "cpu", &h) == 0)
    n = tightest(&h, v1_cpu, NULL);
  return n > 65536 ? 65536 : (int)n;
}

int rm_sysres_cpus(const char *root) {
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    n = CPU_COUNT(&set);
  if (n <= 0) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    n = online > 0 ? (int)online : 1;
  }
  int quota = rm_sysres_cgroup_cpus(root);
  if (quota > 0 && quota < n)
    n = quota;
  return n;
}

uint64_t rm_sysres_cgroup_memory(const char *root) {
  hierarchy_t h;
  uint64_t limit = 0;
  if (find_hierarchy(root, NULL, &h) == 0)
    limit = tightest(&h, memory_file, "/memory.max");
  if (!limit && find_hierarchy(root, "memory", &h) == 0)
    limit = tightest(&h, memory_file, "/memory.limit_in_bytes");
  return limit;
}

uint64_t rm_sysres_memory(const char *root, int *from_cgroup) {
  uint64_t limit = rm_sysres_cgroup_memory(root);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
  if (from_cgroup)
    *from_cgroup = limit && (!phys || limit < phys);
  if (limit && (!phys || limit < phys))
    return limit;
  return phys;
}

uint64_t rm_sysres_resident(void) {
  char line[128];
  unsigned long long size, resident;
  long page = sysconf(_SC_PAGESIZE);
  if (read_line("", "/proc/self/statm", line, sizeof line) != 0 ||
      sscanf(line, "%llu %llu", &size, &resident) != 2 || page <= 0)
    return 0;
  return (uint64_t)resident * (uint64_t)page;
}
