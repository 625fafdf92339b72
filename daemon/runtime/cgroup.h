/* daemon/runtime/cgroup.h: a container's cgroups on hybrid (v1 controllers plus a
 * unified cgroup2 tree), pure v1 and pure v2 hosts: create, limit, delegate, freeze,
 * kill, read usage, destroy (doc/runtime.md, "Creating the container", step 1).
 *
 * Plain C: berth-monitor uses all of it, berthd the usage readers and destroy (to clean
 * up after a monitor that was killed). Functions return 0 or -errno. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"

/* The v1 controllers a container uses, in this order. */
enum runtime_cgroup_ctrl {
	CGROUP_CPU,
	CGROUP_CPUACCT,
	CGROUP_CPUSET,
	CGROUP_MEMORY,
	CGROUP_PIDS,
	CGROUP_FREEZER,
	CGROUP_DEVICES,
	CGROUP_BLKIO,
	CGROUP_SYSTEMD, /* name=systemd */
	CGROUP_UNIFIED, /* the cgroup2 tree (hybrid: /sys/fs/cgroup/unified) */
	CGROUP_CTRL_MAX,
};

struct runtime_cgroup {
	bool pure_v2;		     /* /sys/fs/cgroup itself is cgroup2 */
	char *dirs[CGROUP_CTRL_MAX]; /* owned absolute dirs; NULL: hierarchy absent or a
					   * duplicate of an earlier one (cpu,cpuacct) */
};

struct runtime_cgroup_limits {
	uint64_t memory;	    /* bytes, 0: none */
	bool memory_swap;	    /* false: no swap */
	const char *cpus;	    /* borrowed cpuset list or NULL */
	uint64_t cpu_quota_us;	    /* 0: none */
	uint64_t cpu_period_us;	    /* 0: the kernel's default (100000) */
	uint32_t cpu_share_pct;	    /* soft limit: percent (1-100) of the full CPU weight; 0: 100 */
	uint32_t cpu_priority_drop; /* 10 - limits.cpu.priority (0-10); 0: priority 10 */
	uint64_t processes;	    /* 0: none */
};

struct runtime_cgroup_usage {
	uint64_t memory;      /* bytes in use */
	uint64_t memory_peak; /* bytes, 0 when unknown */
	uint64_t swap;	      /* bytes, 0 when unknown */
	uint64_t cpu_ns;      /* CPU time used */
	uint64_t pids;	      /* tasks */
};

/* Work out the paths of cgroup `rel` (relative to each hierarchy's root) on this host
 * without touching anything. Free with runtime_cgroup_free. */
int runtime_cgroup_open(const char *rel, struct runtime_cgroup **ret);
void runtime_cgroup_free(struct runtime_cgroup *cg);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct runtime_cgroup *, runtime_cgroup_free)

/* Create the directories (parents as needed; cpuset parents get their parent's cpus and
 * mems) and apply `limits`. A leftover cgroup of the same name (a killed monitor) is
 * killed and removed first. */
int runtime_cgroup_create(struct runtime_cgroup *cg, const struct runtime_cgroup_limits *limits,
			  struct berth_error *err);
/* Make the running cgroup's limits exactly `limits`: each limit it leaves at 0/NULL is
 * lifted (memory and pids back to "max", no CPU quota, the full CPU weight, the parent's
 * cpus). Stops at the first write the kernel refuses (say memory below what is in use:
 * -EBUSY), with err naming the file; what was written before stays. */
int runtime_cgroup_set_limits(const struct runtime_cgroup *cg,
			      const struct runtime_cgroup_limits *limits, struct berth_error *err);
/* The CPU weight `limits` asks for, as LXD computes it from limits.cpu.allowance and
 * limits.cpu.priority: the full weight (v1 cpu.shares 1024, v2 cpu.weight 100) times the
 * share percentage, less one per priority step below 10, never below the kernel's
 * minimum (2, 1). */
uint64_t runtime_cgroup_cpu_weight(bool v2, const struct runtime_cgroup_limits *limits);
/* Give the unified directory and its cgroup.procs, cgroup.subtree_control and
 * cgroup.threads to uid:gid, so that systemd inside manages its own subtree. */
int runtime_cgroup_delegate(const struct runtime_cgroup *cg, uid_t uid, gid_t gid);
/* Move `pid` into every hierarchy's directory. */
int runtime_cgroup_attach(const struct runtime_cgroup *cg, pid_t pid);
int runtime_cgroup_freeze(const struct runtime_cgroup *cg, bool freeze);
/* True when the freezer reports the cgroup frozen. */
bool runtime_cgroup_is_frozen(const struct runtime_cgroup *cg);
/* SIGKILL every process in the cgroup and below (cgroup.kill where the kernel has it). */
int runtime_cgroup_kill(const struct runtime_cgroup *cg);
/* True when no process is left in any hierarchy (missing directories count as empty). */
bool runtime_cgroup_is_empty(const struct runtime_cgroup *cg);
/* Wait up to `timeout_ms` for runtime_cgroup_is_empty(): 0, or -ETIMEDOUT. Watches
 * cgroup2's cgroup.events (inotify); a v1-only host is looked at every 10 ms. */
int runtime_cgroup_wait_empty(const struct runtime_cgroup *cg, int timeout_ms);
/* Remove the directories bottom-up, sub-cgroups made inside (by systemd) first. Fails with
 * -EBUSY while processes remain. Missing directories are fine. */
int runtime_cgroup_destroy(const struct runtime_cgroup *cg);
/* What a gone instance leaves: kill whatever still runs in the cgroup, wait up to
 * `timeout_ms` for it to empty, then destroy it. The destroy's result (-EBUSY when a
 * process outlived the wait). */
int runtime_cgroup_remove(const struct runtime_cgroup *cg, int timeout_ms);
/* Usage counters; fields the host cannot tell stay 0. */
int runtime_cgroup_usage(const struct runtime_cgroup *cg, struct runtime_cgroup_usage *ret);
/* Format the CPUs i with set[i] true (0 <= i < n) as a compact cpuset list, runs of three
 * or more as ranges ("0-3,6,8-11"); "" when none. *ret is malloc'd. */
int runtime_cpulist_format(const bool *set, size_t n, char **ret);
