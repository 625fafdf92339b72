/* daemon/runtime/cgroup_stat.h: the detailed counters of a container's cgroups that
 * /1.0/metrics reports as LXD 5.0 does (daemon/api/metrics.c): memory.stat, the memory
 * limit, CPU time per CPU split into user and system, and block I/O per device, on
 * hybrid, pure v1 and pure v2 hosts. runtime_cgroup_usage() (cgroup.h) has the rest.
 *
 * Read only; functions return 0 or -errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/runtime/cgroup.h"

/* memory.stat, as LXD names the keys (v1 total_* and v2 names folded together). */
enum runtime_memstat {
	MEMSTAT_ACTIVE_ANON,
	MEMSTAT_ACTIVE_FILE,
	MEMSTAT_INACTIVE_ANON,
	MEMSTAT_INACTIVE_FILE,
	MEMSTAT_UNEVICTABLE,
	MEMSTAT_WRITEBACK,
	MEMSTAT_DIRTY,
	MEMSTAT_MAPPED,
	MEMSTAT_RSS, /* v1 only */
	MEMSTAT_SHMEM,
	MEMSTAT_CACHE,
	MEMSTAT_MAX,
};

struct runtime_cpu_time {
	unsigned cpu;	 /* CPU number (v2 has no split: one entry, CPU 0) */
	uint64_t user;	 /* ns */
	uint64_t system; /* ns */
};

struct runtime_io_stat {
	char device[64]; /* name from /proc/partitions, else "MAJ:MIN" */
	uint64_t read_bytes, written_bytes, reads, writes;
};

struct runtime_cgroup_stat {
	bool has_memstat;
	bool has_rss; /* memory.stat has an RSS figure (v1's total_rss; v2 has none) */
	uint64_t memstat[MEMSTAT_MAX];
	uint64_t memory_limit;	       /* bytes; UINT64_MAX: none */
	struct runtime_cpu_time *cpus; /* owned */
	size_t n_cpus;
	struct runtime_io_stat *io; /* owned */
	size_t n_io;
};

/* Fill `ret` (release with runtime_cgroup_stat_release()) from what this host's
 * hierarchies have; a file that cannot be read leaves its part empty. -ENOENT when the
 * cgroup is gone. */
int runtime_cgroup_stat_read(const struct runtime_cgroup *cg, struct runtime_cgroup_stat *ret);
void runtime_cgroup_stat_release(struct runtime_cgroup_stat *s);
