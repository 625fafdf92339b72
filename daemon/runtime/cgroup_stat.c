/* daemon/runtime/cgroup_stat.c: detailed cgroup counters for /1.0/metrics (see
 * cgroup_stat.h). Each reader parses one kernel file; what a host lacks stays empty. */
#include "daemon/runtime/cgroup_stat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

#define STAT_FILE_MAX (256 * 1024)

static int read_in(const char *dir, const char *file, char **ret)
{
	_cleanup_free_ char *path = NULL;
	size_t len = 0;

	if (!dir)
		return -ENOENT;
	path = berth_strdup_printf("%s/%s", dir, file);
	if (!path)
		return -ENOMEM;
	return berth_read_file(path, STAT_FILE_MAX, ret, &len);
}

/* The next line of `*cursor` (cut in place), or NULL at the end. */
static char *next_line(char **cursor)
{
	char *l = *cursor, *nl;

	if (!l || !*l)
		return NULL;
	nl = strchr(l, '\n');
	if (nl) {
		*nl = '\0';
		*cursor = nl + 1;
	} else {
		*cursor = NULL;
	}
	return l;
}

static int memstat_index(const char *key)
{
	static const struct {
		const char *v1, *v2;
	} names[MEMSTAT_MAX] = {
		[MEMSTAT_ACTIVE_ANON] = {"total_active_anon", "active_anon"},
		[MEMSTAT_ACTIVE_FILE] = {"total_active_file", "active_file"},
		[MEMSTAT_INACTIVE_ANON] = {"total_inactive_anon", "inactive_anon"},
		[MEMSTAT_INACTIVE_FILE] = {"total_inactive_file", "inactive_file"},
		[MEMSTAT_UNEVICTABLE] = {"total_unevictable", "unevictable"},
		[MEMSTAT_WRITEBACK] = {"total_writeback", "file_writeback"},
		[MEMSTAT_DIRTY] = {"total_dirty", "file_dirty"},
		[MEMSTAT_MAPPED] = {"total_mapped_file", "file_mapped"},
		[MEMSTAT_RSS] = {"total_rss", NULL},
		[MEMSTAT_SHMEM] = {"total_shmem", "shmem"},
		[MEMSTAT_CACHE] = {"total_cache", "file"},
	};

	for (int i = 0; i < MEMSTAT_MAX; i++)
		if (streq(key, names[i].v1) || (names[i].v2 && streq(key, names[i].v2)))
			return i;
	return -1;
}

static void read_memory(const struct runtime_cgroup *cg, struct runtime_cgroup_stat *s)
{
	const char *dir = cg->pure_v2 ? cg->dirs[CGROUP_UNIFIED] : cg->dirs[CGROUP_MEMORY];
	_cleanup_free_ char *buf = NULL, *limit = NULL;
	char *cur, *l;

	s->memory_limit = UINT64_MAX;
	if (read_in(dir, cg->pure_v2 ? "memory.max" : "memory.limit_in_bytes", &limit) == 0 &&
	    !berth_startswith(limit, "max"))
		s->memory_limit = strtoull(limit, NULL, 10);
	if (read_in(dir, "memory.stat", &buf) < 0)
		return;
	s->has_memstat = true;
	s->has_rss = !cg->pure_v2;
	cur = buf;
	while ((l = next_line(&cur))) {
		char *sp = strchr(l, ' ');
		int i;

		if (!sp)
			continue;
		*sp = '\0';
		i = memstat_index(l);
		if (i >= 0)
			s->memstat[i] = strtoull(sp + 1, NULL, 10);
	}
}

static int cpu_add(struct runtime_cgroup_stat *s, unsigned cpu, uint64_t user, uint64_t system)
{
	struct runtime_cpu_time *n = realloc(s->cpus, (s->n_cpus + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	s->cpus = n;
	s->cpus[s->n_cpus++] =
		(struct runtime_cpu_time){.cpu = cpu, .user = user, .system = system};
	return 0;
}

/* v1 cpuacct.usage_all: a "cpu user system" header, then one line per CPU in ns. */
static int read_cpu_v1(const char *dir, struct runtime_cgroup_stat *s)
{
	_cleanup_free_ char *buf = NULL;
	char *cur, *l;
	int r = read_in(dir, "cpuacct.usage_all", &buf);

	if (r < 0)
		return r;
	cur = buf;
	while ((l = next_line(&cur))) {
		unsigned cpu;
		unsigned long long user, system;

		if (sscanf(l, "%u %llu %llu", &cpu, &user, &system) != 3)
			continue;
		r = cpu_add(s, cpu, user, system);
		if (r < 0)
			return r;
	}
	return 0;
}

/* v2 cpu.stat: user_usec and system_usec for the whole cgroup. */
static int read_cpu_v2(const char *dir, struct runtime_cgroup_stat *s)
{
	_cleanup_free_ char *buf = NULL;
	unsigned long long user = 0, system = 0;
	char *cur, *l;
	int r = read_in(dir, "cpu.stat", &buf);

	if (r < 0)
		return r;
	cur = buf;
	while ((l = next_line(&cur))) {
		sscanf(l, "user_usec %llu", &user);
		sscanf(l, "system_usec %llu", &system);
	}
	return cpu_add(s, 0, user * 1000, system * 1000);
}

/* The entry of device `majmin` ("8:0"), named as /proc/partitions names it (`parts`),
 * made on first use. NULL when out of memory or `majmin` is not MAJ:MIN. */
static struct runtime_io_stat *io_get(struct runtime_cgroup_stat *s, const char *parts,
				      const char *majmin)
{
	_cleanup_free_ char *copy = parts ? strdup(parts) : NULL;
	struct runtime_io_stat *n;
	unsigned maj, min;
	char name[64], *cur = copy, *l;

	if (sscanf(majmin, "%u:%u", &maj, &min) != 2)
		return NULL;
	snprintf(name, sizeof(name), "%u:%u", maj, min);
	while ((l = next_line(&cur))) {
		unsigned a, b;
		unsigned long long blocks;
		char dev[64];

		if (sscanf(l, " %u %u %llu %63s", &a, &b, &blocks, dev) == 4 && a == maj &&
		    b == min) {
			snprintf(name, sizeof(name), "%s", dev);
			break;
		}
	}
	for (size_t i = 0; i < s->n_io; i++)
		if (streq(s->io[i].device, name))
			return &s->io[i];
	n = realloc(s->io, (s->n_io + 1) * sizeof(*n));
	if (!n)
		return NULL;
	s->io = n;
	n = &s->io[s->n_io++];
	*n = (struct runtime_io_stat){0};
	snprintf(n->device, sizeof(n->device), "%s", name);
	return n;
}

/* v1: blkio.throttle.io_service_bytes_recursive (bytes) and io_serviced_recursive
 * (operations), lines "MAJ:MIN Read|Write|... N". */
static void read_io_v1_file(const char *dir, const char *file, const char *parts, bool bytes,
			    struct runtime_cgroup_stat *s)
{
	_cleanup_free_ char *buf = NULL;
	char *cur, *l;

	if (read_in(dir, file, &buf) < 0)
		return;
	cur = buf;
	while ((l = next_line(&cur))) {
		char majmin[32], op[16];
		unsigned long long v;
		struct runtime_io_stat *io;

		if (sscanf(l, "%31s %15s %llu", majmin, op, &v) != 3 ||
		    (!streq(op, "Read") && !streq(op, "Write")))
			continue;
		io = io_get(s, parts, majmin);
		if (!io)
			continue;
		if (streq(op, "Read"))
			*(bytes ? &io->read_bytes : &io->reads) = v;
		else
			*(bytes ? &io->written_bytes : &io->writes) = v;
	}
}

/* v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...". */
static void read_io_v2(const char *dir, const char *parts, struct runtime_cgroup_stat *s)
{
	_cleanup_free_ char *buf = NULL;
	char *cur, *l;

	if (read_in(dir, "io.stat", &buf) < 0)
		return;
	cur = buf;
	while ((l = next_line(&cur))) {
		char *sp = strchr(l, ' ');
		struct runtime_io_stat *io;

		if (!sp)
			continue;
		*sp = '\0';
		io = io_get(s, parts, l);
		for (char *f = sp + 1; io && f && *f;
		     f = strchr(f, ' ') ? strchr(f, ' ') + 1 : NULL) {
			unsigned long long v;

			if (sscanf(f, "rbytes=%llu", &v) == 1)
				io->read_bytes = v;
			else if (sscanf(f, "wbytes=%llu", &v) == 1)
				io->written_bytes = v;
			else if (sscanf(f, "rios=%llu", &v) == 1)
				io->reads = v;
			else if (sscanf(f, "wios=%llu", &v) == 1)
				io->writes = v;
		}
	}
}

int runtime_cgroup_stat_read(const struct runtime_cgroup *cg, struct runtime_cgroup_stat *ret)
{
	struct runtime_cgroup_stat s = {0};
	_cleanup_free_ char *parts = NULL;
	size_t len = 0;
	const char *dir;
	int r;

	dir = cg->pure_v2 ? cg->dirs[CGROUP_UNIFIED] : cg->dirs[CGROUP_MEMORY];
	if (dir && access(dir, F_OK) < 0)
		return -ENOENT;
	read_memory(cg, &s);
	if (cg->pure_v2)
		r = read_cpu_v2(cg->dirs[CGROUP_UNIFIED], &s);
	else
		r = read_cpu_v1(cg->dirs[CGROUP_CPUACCT] ? cg->dirs[CGROUP_CPUACCT]
							 : cg->dirs[CGROUP_CPU],
				&s);
	if (r == -ENOMEM) {
		runtime_cgroup_stat_release(&s);
		return r;
	}
	berth_read_file("/proc/partitions", STAT_FILE_MAX, &parts, &len);
	if (cg->pure_v2) {
		read_io_v2(cg->dirs[CGROUP_UNIFIED], parts, &s);
	} else {
		read_io_v1_file(cg->dirs[CGROUP_BLKIO], "blkio.throttle.io_service_bytes_recursive",
				parts, true, &s);
		read_io_v1_file(cg->dirs[CGROUP_BLKIO], "blkio.throttle.io_serviced_recursive",
				parts, false, &s);
	}
	*ret = s;
	return 0;
}

void runtime_cgroup_stat_release(struct runtime_cgroup_stat *s)
{
	free(s->cpus);
	free(s->io);
	*s = (struct runtime_cgroup_stat){0};
}
