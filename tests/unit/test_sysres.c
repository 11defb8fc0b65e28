/* test_sysres.c - CPUs and memory from cgroup v1/v2 trees built in a temporary directory. */
#define _GNU_SOURCE
#include <CUnit/Basic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sysres.h"
#include "test_support.h"

static char root[64];

/* Writes text to root+path, creating the directories on the way. */
static void put(const char *path, const char *text) {
  char full[512];
  snprintf(full, sizeof full, "%s%s", root, path);
  for (char *p = full + strlen(root) + 1; *p; p++) {
    if (*p == '/') {
      *p = 0;
      mkdir(full, 0755);
      *p = '/';
    }
  }
  FILE *f = fopen(full, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
}

static int fresh_root(void) {
  snprintf(root, sizeof root, "/tmp/rm_sysres_XXXXXX");
  return mkdtemp(root) ? 0 : -1;
}

static void remove_root(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  CU_ASSERT_EQUAL(system(cmd), 0);
}

/* A v2-only system: the process in /kube/pod/ctr, cgroup2 mounted at /sys/fs/cgroup. */
static void v2_tree(void) {
  CU_ASSERT_EQUAL_FATAL(fresh_root(), 0);
  put("/proc/self/cgroup", "0::/kube/pod/ctr\n");
  put("/proc/self/mountinfo", "25 1 0:22 / / rw - ext4 /dev/sda1 rw\n"
                              "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n");
}

static void test_v2_cpu_quota_rounds_up(void) {
  v2_tree();
  put("/sys/fs/cgroup/kube/pod/ctr/cpu.max", "150000 100000\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_cpus(root), 2);
  put("/sys/fs/cgroup/kube/pod/ctr/cpu.max", "50000 100000\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_cpus(root), 1);
  CU_ASSERT_EQUAL(rm_sysres_cpus(root), 1);
  remove_root();
}

static void test_v2_cpu_tightest_on_path(void) {
  v2_tree();
  put("/sys/fs/cgroup/kube/cpu.max", "300000 100000\n");
  put("/sys/fs/cgroup/kube/pod/cpu.max", "100000 100000\n");
  put("/sys/fs/cgroup/kube/pod/ctr/cpu.max", "max 100000\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_cpus(root), 1);
  remove_root();
}

static void test_v2_no_quota_uses_affinity(void) {
  v2_tree();
  put("/sys/fs/cgroup/kube/pod/ctr/cpu.max", "max 100000\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_cpus(root), 0);
  cpu_set_t set;
  CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof set, &set), 0);
  CU_ASSERT_EQUAL(rm_sysres_cpus(root), CPU_COUNT(&set));
  remove_root();
}

static void test_v2_memory(void) {
  v2_tree();
  put("/sys/fs/cgroup/kube/pod/memory.max", "536870912\n");
  put("/sys/fs/cgroup/kube/pod/ctr/memory.max", "max\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_memory(root), 536870912u);
  int from = -1;
  CU_ASSERT_EQUAL(rm_sysres_memory(root, &from), 536870912u);
  CU_ASSERT_EQUAL(from, 1);
  put("/sys/fs/cgroup/kube/pod/ctr/memory.max", "268435456\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_memory(root), 268435456u);
  remove_root();
}

/* cgroup v1 without a cgroup namespace: the mount's root is the container's own path. */
static void test_v1_cpu_and_memory(void) {
  CU_ASSERT_EQUAL_FATAL(fresh_root(), 0);
  put("/proc/self/cgroup", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n");
  put("/proc/self/mountinfo",
      "31 30 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "34 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "250000\n");
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  put("/sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_cpus(root), 3);
  CU_ASSERT_EQUAL(rm_sysres_cgroup_memory(root), 1073741824u);
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  put("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_cpus(root), 0);
  CU_ASSERT_EQUAL(rm_sysres_cgroup_memory(root), 0);
  remove_root();
}

static void test_no_cgroup_means_physical_memory(void) {
  CU_ASSERT_EQUAL_FATAL(fresh_root(), 0);
  put("/proc/self/cgroup", "0::/\n");
  put("/proc/self/mountinfo", "25 1 0:22 / / rw - ext4 /dev/sda1 rw\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_cpus(root), 0);
  CU_ASSERT_EQUAL(rm_sysres_cgroup_memory(root), 0);
  int from = -1;
  uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  CU_ASSERT_EQUAL(rm_sysres_memory(root, &from), phys);
  CU_ASSERT_EQUAL(from, 0);
  remove_root();
}

/* A path outside the mount's root (another container's mount) tells nothing. */
static void test_path_outside_mount_root_ignored(void) {
  CU_ASSERT_EQUAL_FATAL(fresh_root(), 0);
  put("/proc/self/cgroup", "4:memory:/docker/abcd\n");
  put("/proc/self/mountinfo",
      "34 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  put("/sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n");
  CU_ASSERT_EQUAL(rm_sysres_cgroup_memory(root), 0);
  remove_root();
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_v2_cpu_quota_rounds_up),
                                         RM_TEST(test_v2_cpu_tightest_on_path),
                                         RM_TEST(test_v2_no_quota_uses_affinity),
                                         RM_TEST(test_v2_memory),
                                         RM_TEST(test_v1_cpu_and_memory),
                                         RM_TEST(test_no_cgroup_means_physical_memory),
                                         RM_TEST(test_path_outside_mount_root_ignored),
                                         {NULL, NULL}};
  rm_test_suite("sysres", cases);
  return rm_test_run();
}
