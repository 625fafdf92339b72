/* tests/unit/test_cgroup.c: runtime_cgroup_set_limits() (daemon/runtime/cgroup.c), the
 * live change of a running container's limits, on a fake cgroup tree in a temp dir laid
 * out as a pure v2 host (one directory, cgroup2 file names) and as a v1/hybrid host (a
 * directory per controller): each limit set, then each lifted, a file the host lacks
 * skipped when lifting, a missing controller refused when setting; and the CPU weight
 * limits.cpu.allowance (a percentage) and limits.cpu.priority give, as LXD computes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/runtime/cgroup.h"
#include "lib/util.h"

struct fake {
	char root[64];
	struct runtime_cgroup cg;
};

static void put(const char *dir, const char *file, const char *value)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(value, f);
	fclose(f);
}

/* The file's text, newline dropped; "<none>" when it does not exist. */
static const char *get(const char *dir, const char *file)
{
	static char buf[256];
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return "<none>";
	buf[0] = '\0';
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static char *mkdirf(const char *root, const char *sub)
{
	char *p = berth_strdup_printf("%s/%s", root, sub);

	assert_non_null(p);
	assert_int_equal(berth_mkdir_p(p, 0755), 0);
	return p;
}

/* Empty every file the set call may write (the kernel's files have no offsets to keep). */
static void clear(const struct fake *f)
{
	static const char *const files[] = {"memory.max",
					    "memory.swap.max",
					    "cpuset.cpus",
					    "cpu.max",
					    "pids.max",
					    "memory.limit_in_bytes",
					    "memory.memsw.limit_in_bytes",
					    "cpu.cfs_quota_us",
					    "cpu.cfs_period_us",
					    "cpu.weight",
					    "cpu.shares"};

	for (int i = 0; i < CGROUP_CTRL_MAX; i++)
		for (size_t k = 0; f->cg.dirs[i] && k < ARRAY_SIZE(files); k++)
			if (strcmp(get(f->cg.dirs[i], files[k]), "<none>") != 0)
				put(f->cg.dirs[i], files[k], "");
}

static void fake_release(struct fake *f)
{
	char cmd[128];

	for (int i = 0; i < CGROUP_CTRL_MAX; i++)
		free(f->cg.dirs[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
}

static void fake_v2(struct fake *f, bool swap_file)
{
	memset(f, 0, sizeof(*f));
	strcpy(f->root, "/tmp/berth-test-cgroup.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->cg.pure_v2 = true;
	f->cg.dirs[CGROUP_UNIFIED] = mkdirf(f->root, "berth/default_c1");
	put(f->cg.dirs[CGROUP_UNIFIED], "memory.max", "");
	if (swap_file)
		put(f->cg.dirs[CGROUP_UNIFIED], "memory.swap.max", "");
	put(f->cg.dirs[CGROUP_UNIFIED], "cpuset.cpus", "");
	put(f->cg.dirs[CGROUP_UNIFIED], "cpu.max", "");
	put(f->cg.dirs[CGROUP_UNIFIED], "cpu.weight", "");
	put(f->cg.dirs[CGROUP_UNIFIED], "pids.max", "");
}

static void test_v2_set_and_lift(void **state)
{
	struct runtime_cgroup_limits l = {.memory = 64 << 20,
					  .memory_swap = false,
					  .cpus = "1",
					  .cpu_quota_us = 25000,
					  .cpu_period_us = 100000,
					  .processes = 50};
	struct berth_error err = {0};
	struct fake f;
	const char *d;

	(void)state;
	fake_v2(&f, true);
	d = f.cg.dirs[CGROUP_UNIFIED];
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(d, "memory.max"), "67108864");
	assert_string_equal(get(d, "memory.swap.max"), "0");
	assert_string_equal(get(d, "cpuset.cpus"), "1");
	assert_string_equal(get(d, "cpu.max"), "25000 100000");
	assert_string_equal(get(d, "cpu.weight"), "100");
	assert_string_equal(get(d, "pids.max"), "50");

	/* a percentage: a lower weight and no quota; a priority below 10 lowers it more */
	clear(&f);
	l.cpu_quota_us = l.cpu_period_us = 0;
	l.cpu_share_pct = 50;
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(d, "cpu.weight"), "50");
	assert_string_equal(get(d, "cpu.max"), "max 100000");
	clear(&f);
	l.cpu_priority_drop = 10 - 3;
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(d, "cpu.weight"), "43");
	l.cpu_share_pct = 0;

	/* swap allowed, a 10ms/50ms slice */
	clear(&f);
	l.memory_swap = true;
	l.cpu_quota_us = 10000;
	l.cpu_period_us = 50000;
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(d, "memory.swap.max"), "max");
	assert_string_equal(get(d, "cpu.max"), "10000 50000");
	assert_string_equal(get(d, "cpu.weight"), "93");

	/* everything lifted: max, an empty cpuset (the parent's), no quota */
	clear(&f);
	l = (struct runtime_cgroup_limits){.memory_swap = true};
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(d, "memory.max"), "max");
	assert_string_equal(get(d, "memory.swap.max"), "max");
	assert_string_equal(get(d, "cpuset.cpus"), "");
	assert_string_equal(get(d, "cpu.max"), "max 100000");
	assert_string_equal(get(d, "cpu.weight"), "100");
	assert_string_equal(get(d, "pids.max"), "max");
	assert_null(err.msg);
	fake_release(&f);
}

static void test_v2_missing_files(void **state)
{
	struct runtime_cgroup_limits l = {.memory = 1 << 20, .memory_swap = false};
	struct berth_error err = {0};
	struct fake f;

	(void)state;
	/* no swap accounting: a memory limit without swap still applies */
	fake_v2(&f, false);
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(f.cg.dirs[CGROUP_UNIFIED], "memory.max"), "1048576");
	assert_string_equal(get(f.cg.dirs[CGROUP_UNIFIED], "memory.swap.max"), "<none>");
	/* no pids controller enabled: lifting is fine, setting names the file */
	{
		char *p = berth_strdup_printf("%s/pids.max", f.cg.dirs[CGROUP_UNIFIED]);
		assert_int_equal(unlink(p), 0);
		free(p);
	}
	l = (struct runtime_cgroup_limits){0};
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	l.processes = 10;
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "pids.max"));
	berth_error_release(&err);
	fake_release(&f);
}

static void test_v1_set_and_lift(void **state)
{
	struct runtime_cgroup_limits l = {.memory = 96 << 20,
					  .memory_swap = false,
					  .cpus = "0,2",
					  .cpu_quota_us = 50000,
					  .processes = 7,
					  .cpu_priority_drop = 10 - 5};
	struct berth_error err = {0};
	struct fake f;
	char *cs_parent;

	(void)state;
	memset(&f, 0, sizeof(f));
	strcpy(f.root, "/tmp/berth-test-cgroup.XXXXXX");
	assert_non_null(mkdtemp(f.root));
	f.cg.dirs[CGROUP_CPU] = mkdirf(f.root, "cpu/berth/default_c1");
	f.cg.dirs[CGROUP_CPUSET] = mkdirf(f.root, "cpuset/berth/default_c1");
	f.cg.dirs[CGROUP_MEMORY] = mkdirf(f.root, "memory/berth/default_c1");
	f.cg.dirs[CGROUP_PIDS] = mkdirf(f.root, "pids/berth/default_c1");
	cs_parent = berth_strdup_printf("%s/cpuset/berth", f.root);
	put(cs_parent, "cpuset.cpus", "0-3\n");
	put(f.cg.dirs[CGROUP_CPU], "cpu.cfs_quota_us", "");
	put(f.cg.dirs[CGROUP_CPU], "cpu.cfs_period_us", "");
	put(f.cg.dirs[CGROUP_CPU], "cpu.shares", "");
	put(f.cg.dirs[CGROUP_CPUSET], "cpuset.cpus", "");
	put(f.cg.dirs[CGROUP_MEMORY], "memory.limit_in_bytes", "");
	put(f.cg.dirs[CGROUP_MEMORY], "memory.memsw.limit_in_bytes", "");
	put(f.cg.dirs[CGROUP_PIDS], "pids.max", "");

	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(f.cg.dirs[CGROUP_MEMORY], "memory.limit_in_bytes"), "100663296");
	assert_string_equal(get(f.cg.dirs[CGROUP_MEMORY], "memory.memsw.limit_in_bytes"),
			    "100663296");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPUSET], "cpuset.cpus"), "0,2");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPU], "cpu.cfs_period_us"), "100000");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPU], "cpu.cfs_quota_us"), "50000");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPU], "cpu.shares"), "1019");
	assert_string_equal(get(f.cg.dirs[CGROUP_PIDS], "pids.max"), "7");

	/* 25%: a quarter of the shares, the quota lifted */
	clear(&f);
	l.cpu_quota_us = 0;
	l.cpu_priority_drop = 0;
	l.cpu_share_pct = 25;
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(f.cg.dirs[CGROUP_CPU], "cpu.shares"), "256");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPU], "cpu.cfs_quota_us"), "-1");

	clear(&f);
	l = (struct runtime_cgroup_limits){.memory_swap = true};
	assert_int_equal(runtime_cgroup_set_limits(&f.cg, &l, &err), 0);
	assert_string_equal(get(f.cg.dirs[CGROUP_MEMORY], "memory.limit_in_bytes"), "-1");
	assert_string_equal(get(f.cg.dirs[CGROUP_MEMORY], "memory.memsw.limit_in_bytes"), "-1");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPUSET], "cpuset.cpus"), "0-3");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPU], "cpu.cfs_quota_us"), "-1");
	assert_string_equal(get(f.cg.dirs[CGROUP_CPU], "cpu.shares"), "1024");
	assert_string_equal(get(f.cg.dirs[CGROUP_PIDS], "pids.max"), "max");
	free(cs_parent);
	fake_release(&f);
}

/* LXD's figures: full weight times the percentage (truncated), less 10 - priority, and
 * never below what the kernel takes (v1 2, v2 1). */
static void test_cpu_weight(void **state)
{
	struct runtime_cgroup_limits l = {0};

	(void)state;
	assert_int_equal(runtime_cgroup_cpu_weight(false, &l), 1024);
	assert_int_equal(runtime_cgroup_cpu_weight(true, &l), 100);
	l.cpu_share_pct = 50;
	assert_int_equal(runtime_cgroup_cpu_weight(false, &l), 512);
	assert_int_equal(runtime_cgroup_cpu_weight(true, &l), 50);
	l.cpu_share_pct = 33;
	assert_int_equal(runtime_cgroup_cpu_weight(false, &l), 337);
	assert_int_equal(runtime_cgroup_cpu_weight(true, &l), 33);
	l.cpu_share_pct = 10;
	l.cpu_priority_drop = 10;
	assert_int_equal(runtime_cgroup_cpu_weight(false, &l), 92);
	assert_int_equal(runtime_cgroup_cpu_weight(true, &l), 1);
	l.cpu_share_pct = 100;
	l.cpu_priority_drop = 1;
	assert_int_equal(runtime_cgroup_cpu_weight(false, &l), 1023);
	assert_int_equal(runtime_cgroup_cpu_weight(true, &l), 99);
	l.cpu_share_pct = 1;
	l.cpu_priority_drop = 10;
	assert_int_equal(runtime_cgroup_cpu_weight(false, &l), 2);
}

static void check_list(const bool *set, size_t n, const char *want)
{
	char *got = NULL;

	assert_int_equal(runtime_cpulist_format(set, n, &got), 0);
	assert_string_equal(got, want);
	free(got);
}

/* limits.cpu=N picks CPUs by number; the list sent to the monitor must stay short on
 * big hosts (96 CPUs one by one were 277 characters, past the old 255 limit). */
static void test_cpulist_format(void **state)
{
	bool set[1024] = {0};

	(void)state;
	check_list(set, 1024, "");
	for (int i = 0; i < 96; i++)
		set[i] = true;
	check_list(set, 1024, "0-95");
	check_list(set, 96, "0-95");
	memset(set, 0, sizeof(set));
	set[0] = set[1] = set[2] = set[3] = set[6] = true;
	set[8] = set[9] = set[10] = set[11] = true;
	check_list(set, 1024, "0-3,6,8-11");
	memset(set, 0, sizeof(set));
	set[1] = set[2] = set[5] = set[1023] = true;
	check_list(set, 1024, "1,2,5,1023");
	memset(set, 0, sizeof(set));
	for (int i = 0; i < 96; i += 2)
		set[i] = true;
	check_list(set, 96,
		   "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,"
		   "42,44,46,48,50,52,54,56,58,60,62,64,66,68,70,72,74,76,78,80,"
		   "82,84,86,88,90,92,94");
	memset(set, 0, sizeof(set));
	for (int i = 48; i < 96; i++)
		set[i] = true;
	set[100] = set[101] = set[102] = true;
	check_list(set, 1024, "48-95,100-102");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_set_and_lift), cmocka_unit_test(test_v2_missing_files),
		cmocka_unit_test(test_v1_set_and_lift), cmocka_unit_test(test_cpu_weight),
		cmocka_unit_test(test_cpulist_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
