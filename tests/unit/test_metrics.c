/* tests/unit/test_metrics.c: the pieces of GET /1.0/metrics that do not need a running
 * container: values written as Go's FormatFloat('g', -1) writes them (LXD's output),
 * label escaping, the text layout (HELP and TYPE per metric in LXD's order, procs a
 * gauge, "# EOF"), and daemon/runtime/cgroup_stat.c on fake v1 and v2 cgroup trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/instance/metrics.h"
#include "daemon/runtime/cgroup_stat.h"
#include "lib/util.h"

static void check_value(double v, const char *want)
{
	char buf[40];

	metrics_format_value(v, buf);
	assert_string_equal(buf, want);
}

static void test_values(void **state)
{
	(void)state;
	check_value(0, "0");
	check_value(1, "1");
	check_value(8192, "8192");
	check_value(123456, "123456");
	check_value(1234567, "1.234567e+06");
	check_value(1000000, "1e+06");
	check_value(80491085824.0, "8.0491085824e+10");
	check_value(0.004, "0.004");
	check_value(1.5, "1.5");
	check_value(0.0001, "0.0001");
	check_value(0.00001, "1e-05");
	check_value(0.1 + 0.2, "0.30000000000000004");
	check_value(-2.5, "-2.5");
	check_value(1e21, "1e+21");
}

static void test_labels(void **state)
{
	char *l = metrics_labels("a", "x\"y\\z\nw", "b", NULL, "c", "v", NULL);

	(void)state;
	assert_non_null(l);
	assert_string_equal(l, "a=\"x\\\"y\\\\z\\nw\",c=\"v\"");
	free(l);
}

static void test_render(void **state)
{
	struct metrics_set m = {0};
	char *text = NULL;

	(void)state;
	metrics_add(&m, METRIC_PROCS_TOTAL, "name=\"c1\"", 3);
	metrics_add(&m, METRIC_CPU_SECONDS_TOTAL, "cpu=\"0\",mode=\"user\"", 0.5);
	metrics_add(&m, METRIC_MEMORY_CACHED_BYTES, NULL, 4096);
	metrics_add(&m, METRIC_CPU_SECONDS_TOTAL, "cpu=\"0\",mode=\"system\"", 0.25);
	assert_int_equal(metrics_set_render(&m, &text), 0);
	assert_string_equal(text, "# HELP lxd_cpu_seconds_total Seconds of CPU time used.\n"
				  "# TYPE lxd_cpu_seconds_total counter\n"
				  "lxd_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 0.5\n"
				  "lxd_cpu_seconds_total{cpu=\"0\",mode=\"system\"} 0.25\n"
				  "# HELP lxd_memory_Cached_bytes Page cache.\n"
				  "# TYPE lxd_memory_Cached_bytes gauge\n"
				  "lxd_memory_Cached_bytes 4096\n"
				  "# HELP lxd_procs_total Processes running.\n"
				  "# TYPE lxd_procs_total gauge\n"
				  "lxd_procs_total{name=\"c1\"} 3\n"
				  "# EOF\n");
	free(text);
	assert_int_equal(metrics_set_render(&m, &text), 0); /* released: empty now */
	assert_string_equal(text, "# EOF\n");
	free(text);
}

static void put(const char *dir, const char *file, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *tmpdir(void)
{
	char t[] = "/tmp/berth-test-metrics.XXXXXX";

	assert_non_null(mkdtemp(t));
	return strdup(t);
}

static void rmdir_all(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_stat_v1(void **state)
{
	struct runtime_cgroup cg = {0};
	struct runtime_cgroup_stat s = {0};
	char *mem = tmpdir(), *cpu = tmpdir(), *blk = tmpdir();

	(void)state;
	put(mem, "memory.limit_in_bytes", "104857600\n");
	put(mem, "memory.stat",
	    "cache 1\nrss 2\ntotal_cache 4096\ntotal_rss 8192\n"
	    "total_active_anon 100\ntotal_inactive_file 7\ntotal_dirty 3\n"
	    "total_mapped_file 5\n");
	put(cpu, "cpuacct.usage_all", "cpu user system\n0 1500000000 250000000\n1 10 20\n");
	put(blk, "blkio.throttle.io_service_bytes_recursive",
	    "250:7 Read 4096\n250:7 Write 8192\n250:7 Sync 1\nTotal 12288\n");
	put(blk, "blkio.throttle.io_serviced_recursive", "250:7 Read 2\n250:7 Write 3\n");
	cg.dirs[CGROUP_MEMORY] = mem;
	cg.dirs[CGROUP_CPUACCT] = cpu;
	cg.dirs[CGROUP_BLKIO] = blk;
	assert_int_equal(runtime_cgroup_stat_read(&cg, &s), 0);
	assert_true(s.has_memstat);
	assert_true(s.has_rss);
	assert_int_equal(s.memory_limit, 104857600);
	assert_int_equal(s.memstat[MEMSTAT_CACHE], 4096); /* total_*, not this cgroup's own */
	assert_int_equal(s.memstat[MEMSTAT_RSS], 8192);
	assert_int_equal(s.memstat[MEMSTAT_ACTIVE_ANON], 100);
	assert_int_equal(s.memstat[MEMSTAT_INACTIVE_FILE], 7);
	assert_int_equal(s.memstat[MEMSTAT_DIRTY], 3);
	assert_int_equal(s.memstat[MEMSTAT_MAPPED], 5);
	assert_int_equal(s.n_cpus, 2);
	assert_int_equal(s.cpus[0].cpu, 0);
	assert_int_equal(s.cpus[0].user, 1500000000);
	assert_int_equal(s.cpus[0].system, 250000000);
	assert_int_equal(s.cpus[1].system, 20);
	assert_int_equal(s.n_io, 1);
	assert_string_equal(s.io[0].device, "250:7"); /* not in /proc/partitions */
	assert_int_equal(s.io[0].read_bytes, 4096);
	assert_int_equal(s.io[0].written_bytes, 8192);
	assert_int_equal(s.io[0].reads, 2);
	assert_int_equal(s.io[0].writes, 3);
	runtime_cgroup_stat_release(&s);
	rmdir_all(mem);
	rmdir_all(cpu);
	rmdir_all(blk);
	free(mem);
	free(cpu);
	free(blk);
}

static void test_stat_v2(void **state)
{
	struct runtime_cgroup cg = {.pure_v2 = true};
	struct runtime_cgroup_stat s = {0};
	char *dir = tmpdir();

	(void)state;
	put(dir, "memory.max", "max\n");
	put(dir, "memory.stat", "anon 9\nfile 4096\nshmem 12\nfile_writeback 1\n");
	put(dir, "cpu.stat", "usage_usec 30\nuser_usec 20\nsystem_usec 10\n");
	put(dir, "io.stat", "250:7 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n");
	cg.dirs[CGROUP_UNIFIED] = dir;
	assert_int_equal(runtime_cgroup_stat_read(&cg, &s), 0);
	assert_false(s.has_rss);
	assert_int_equal(s.memory_limit, UINT64_MAX);
	assert_int_equal(s.memstat[MEMSTAT_CACHE], 4096);
	assert_int_equal(s.memstat[MEMSTAT_SHMEM], 12);
	assert_int_equal(s.memstat[MEMSTAT_WRITEBACK], 1);
	assert_int_equal(s.n_cpus, 1);
	assert_int_equal(s.cpus[0].user, 20000);
	assert_int_equal(s.cpus[0].system, 10000);
	assert_int_equal(s.n_io, 1);
	assert_int_equal(s.io[0].read_bytes, 100);
	assert_int_equal(s.io[0].written_bytes, 200);
	assert_int_equal(s.io[0].reads, 1);
	assert_int_equal(s.io[0].writes, 2);
	runtime_cgroup_stat_release(&s);
	rmdir_all(dir);
	/* The cgroup is gone: -ENOENT. */
	assert_int_equal(runtime_cgroup_stat_read(&cg, &s), -ENOENT);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),	cmocka_unit_test(test_labels),
		cmocka_unit_test(test_render),	cmocka_unit_test(test_stat_v1),
		cmocka_unit_test(test_stat_v2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
