/* daemon/runtime/cgroup.c: a container's cgroups (see cgroup.h).
 *
 * On a hybrid host each v1 controller has its own tree under /sys/fs/cgroup/<name> and
 * the unified tree (no controllers, but systemd inside wants it) sits at
 * /sys/fs/cgroup/unified; limits go to the v1 files. On a pure v2 host there is one tree
 * and the controllers are enabled down the path with cgroup.subtree_control. */
#include "daemon/runtime/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include "lib/util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static const char *const ctrl_dirs[CGROUP_CTRL_MAX] = {
	[CGROUP_CPU] = "cpu",	      [CGROUP_CPUACCT] = "cpuacct", [CGROUP_CPUSET] = "cpuset",
	[CGROUP_MEMORY] = "memory",   [CGROUP_PIDS] = "pids",	    [CGROUP_FREEZER] = "freezer",
	[CGROUP_DEVICES] = "devices", [CGROUP_BLKIO] = "blkio",	    [CGROUP_SYSTEMD] = "systemd",
	[CGROUP_UNIFIED] = "unified",
};

void runtime_cgroup_free(struct runtime_cgroup *cg)
{
	if (!cg)
		return;
	for (int i = 0; i < CGROUP_CTRL_MAX; i++)
		free(cg->dirs[i]);
	free(cg);
}

static bool is_fs(const char *path, long magic)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == magic;
}

int runtime_cgroup_open(const char *rel, struct runtime_cgroup **ret)
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = calloc(1, sizeof(*cg));
	struct stat seen[CGROUP_CTRL_MAX];

	if (!cg)
		return -ENOMEM;
	if (!rel[0] || rel[0] == '/' || strstr(rel, ".."))
		return -EINVAL;
	if (is_fs(CGROUP_ROOT, CGROUP2_SUPER_MAGIC)) {
		cg->pure_v2 = true;
		cg->dirs[CGROUP_UNIFIED] = berth_strdup_printf(CGROUP_ROOT "/%s", rel);
		if (!cg->dirs[CGROUP_UNIFIED])
			return -ENOMEM;
		*ret = TAKE_PTR(cg);
		return 0;
	}
	for (int i = 0; i < CGROUP_CTRL_MAX; i++) {
		_cleanup_free_ char *root = berth_strdup_printf(CGROUP_ROOT "/%s", ctrl_dirs[i]);
		bool dup = false;

		if (!root)
			return -ENOMEM;
		if (stat(root, &seen[i]) < 0 ||
		    !is_fs(root, i == CGROUP_UNIFIED ? CGROUP2_SUPER_MAGIC : CGROUP_SUPER_MAGIC)) {
			seen[i].st_ino = 0;
			continue;
		}
		for (int j = 0; j < i; j++)
			if (cg->dirs[j] && seen[j].st_ino == seen[i].st_ino &&
			    seen[j].st_dev == seen[i].st_dev)
				dup = true;
		if (dup)
			continue;
		cg->dirs[i] = berth_strdup_printf("%s/%s", root, rel);
		if (!cg->dirs[i])
			return -ENOMEM;
	}
	*ret = TAKE_PTR(cg);
	return 0;
}

/* ---- small file helpers ---- */

static int write_at(const char *dir, const char *file, const char *value)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s", dir, file);
	_cleanup_close_ int fd = -EBADF;
	size_t len = strlen(value);

	if (!path)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		return -errno;
	return 0;
}

static int read_at(const char *dir, const char *file, char *buf, size_t size)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s", dir, file);
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

static int read_u64_at(const char *dir, const char *file, uint64_t *ret)
{
	char buf[64];
	int r = read_at(dir, file, buf, sizeof(buf));

	if (r < 0)
		return r;
	if (strneq(buf, "max", 3)) {
		*ret = UINT64_MAX;
		return 0;
	}
	*ret = strtoull(buf, NULL, 10);
	return 0;
}

/* The value of `key` in a flat keyed file (cpu.stat, cgroup.events). */
static int read_key_at(const char *dir, const char *file, const char *key, uint64_t *ret)
{
	char buf[4096];
	size_t kl = strlen(key);
	int r = read_at(dir, file, buf, sizeof(buf));

	if (r < 0)
		return r;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strneq(l, key, kl) && l[kl] == ' ') {
			*ret = strtoull(l + kl + 1, NULL, 10);
			return 0;
		}
	return -ENOENT;
}

/* ---- walking a tree: kill, emptiness, removal ---- */

typedef int (*cgroup_walk_fn)(const char *dir, void *data);

/* Calls `fn` on every directory under `dir`, children before their parent. */
static int walk_bottom_up(const char *dir, cgroup_walk_fn fn, void *data)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		_cleanup_free_ char *sub = NULL;
		int k;

		if (de->d_type != DT_DIR || streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		sub = berth_strdup_printf("%s/%s", dir, de->d_name);
		if (!sub) {
			r = -ENOMEM;
			break;
		}
		k = walk_bottom_up(sub, fn, data);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	{
		int k = fn(dir, data);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}

static int kill_procs_cb(const char *dir, void *data)
{
	char buf[8192];
	int r = read_at(dir, "cgroup.procs", buf, sizeof(buf));

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0)
			kill((pid_t)pid, SIGKILL);
		p = end;
		while (*p == '\n')
			p++;
	}
	return 0;
}

static int count_procs_cb(const char *dir, void *data)
{
	char buf[64];
	int r = read_at(dir, "cgroup.procs", buf, sizeof(buf));

	if (r > 0)
		(*(unsigned *)data)++;
	return 0;
}

static int rmdir_cb(const char *dir, void *data)
{
	if (rmdir(dir) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int runtime_cgroup_kill(const struct runtime_cgroup *cg)
{
	int r = 0;

	for (int i = 0; i < CGROUP_CTRL_MAX; i++) {
		if (!cg->dirs[i])
			continue;
		if (i == CGROUP_UNIFIED && write_at(cg->dirs[i], "cgroup.kill", "1") == 0)
			continue;
		int k = walk_bottom_up(cg->dirs[i], kill_procs_cb, NULL);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}

bool runtime_cgroup_is_empty(const struct runtime_cgroup *cg)
{
	unsigned busy = 0;

	for (int i = 0; i < CGROUP_CTRL_MAX; i++)
		if (cg->dirs[i])
			walk_bottom_up(cg->dirs[i], count_procs_cb, &busy);
	return busy == 0;
}

int runtime_cgroup_wait_empty(const struct runtime_cgroup *cg, int timeout_ms)
{
	const char *dir = cg->dirs[CGROUP_UNIFIED];
	_cleanup_close_ int ino = -EBADF;
	_cleanup_free_ char *events = NULL;
	uint64_t end = berth_monotonic_ns() + (uint64_t)timeout_ms * 1000000u;

	/* cgroup2's cgroup.events changes ("populated 0") when the subtree empties: watch
	 * it. Without it (cgroup v1 only, which tells nothing short of a release agent),
	 * look again every 10 ms. */
	if (dir) {
		events = berth_strdup_printf("%s/cgroup.events", dir);
		if (!events)
			return -ENOMEM;
		ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (ino >= 0 && inotify_add_watch(ino, events, IN_MODIFY) < 0) {
			close(ino);
			ino = -EBADF;
		}
	}
	for (;;) {
		uint64_t now = berth_monotonic_ns();
		struct pollfd pfd = {.fd = ino, .events = POLLIN};
		char buf[4096];
		int left;

		if (runtime_cgroup_is_empty(cg))
			return 0;
		if (now >= end)
			return -ETIMEDOUT;
		left = (int)((end - now) / 1000000u) + 1;
		if (ino < 0) {
			poll(NULL, 0, left < 10 ? left : 10);
			continue;
		}
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return -errno;
		while (read(ino, buf, sizeof(buf)) > 0)
			;
	}
}

int runtime_cgroup_destroy(const struct runtime_cgroup *cg)
{
	int r = 0;

	for (int i = 0; i < CGROUP_CTRL_MAX; i++) {
		if (!cg->dirs[i])
			continue;
		int k = walk_bottom_up(cg->dirs[i], rmdir_cb, NULL);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}

int runtime_cgroup_remove(const struct runtime_cgroup *cg, int timeout_ms)
{
	if (!runtime_cgroup_is_empty(cg)) {
		runtime_cgroup_kill(cg);
		runtime_cgroup_wait_empty(cg, timeout_ms);
	}
	return runtime_cgroup_destroy(cg);
}

/* ---- creation ---- */

/* A new v1 cpuset cgroup starts with empty cpus and mems, which refuses tasks. */
static int cpuset_inherit(const char *dir)
{
	_cleanup_free_ char *parent = strdup(dir);
	char buf[1024];
	char *slash;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	for (int i = 0; i < 2; i++) {
		const char *f = i ? "cpuset.mems" : "cpuset.cpus";
		int r = read_at(dir, f, buf, sizeof(buf));
		if (r < 0)
			return r;
		if (buf[0] && buf[0] != '\n')
			continue;
		r = read_at(parent, f, buf, sizeof(buf));
		if (r < 0)
			return r;
		r = write_at(dir, f, buf);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Pure v2: enable every available controller we use in `dir`'s subtree_control. */
static void v2_enable_controllers(const char *dir)
{
	static const char *const want[] = {"cpu", "cpuset", "memory", "pids", "io"};
	char avail[512];

	if (read_at(dir, "cgroup.controllers", avail, sizeof(avail)) < 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		char op[16];
		if (!strstr(avail, want[i]))
			continue;
		snprintf(op, sizeof(op), "+%s", want[i]);
		write_at(dir, "cgroup.subtree_control", op); /* best effort */
	}
}

/* mkdir each missing component below the hierarchy root (`root_len` bytes of `dir`). */
static int mkdir_levels(const struct runtime_cgroup *cg, int ctrl, size_t root_len)
{
	_cleanup_free_ char *p = strdup(cg->dirs[ctrl]);

	if (!p)
		return -ENOMEM;
	for (char *s = p + root_len + 1;; s++) {
		bool last = *s == '\0';
		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (cg->pure_v2) {
			/* the parent of this level must hand the controllers down */
			char *slash = strrchr(p, '/');
			*slash = '\0';
			v2_enable_controllers(p);
			*slash = '/';
		}
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (ctrl == CGROUP_CPUSET) {
			int r = cpuset_inherit(p);
			if (r < 0)
				return r;
		}
		if (last)
			return 0;
		*s = '/';
	}
}

static size_t root_len_of(int ctrl, const struct runtime_cgroup *cg)
{
	if (cg->pure_v2)
		return strlen(CGROUP_ROOT);
	return strlen(CGROUP_ROOT) + 1 + strlen(ctrl_dirs[ctrl]);
}

static int set_limit(const struct runtime_cgroup *cg, int ctrl, const char *file, const char *value,
		     struct berth_error *err)
{
	int r;

	if (!cg->dirs[ctrl])
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_INTERNAL,
				       "cgroup controller \"%s\" is not available on this host",
				       ctrl_dirs[ctrl]);
	r = write_at(cg->dirs[ctrl], file, value);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "setting %s/%s to \"%s\": %s",
				       cg->dirs[ctrl], file, value, strerror(-r));
	return 0;
}

uint64_t runtime_cgroup_cpu_weight(bool v2, const struct runtime_cgroup_limits *l)
{
	uint64_t full = v2 ? 100 : 1024, least = v2 ? 1 : 2;
	uint64_t pct = l->cpu_share_pct ? l->cpu_share_pct : 100;
	uint64_t w = full * pct / 100;

	w = w > l->cpu_priority_drop ? w - l->cpu_priority_drop : 0;
	return w < least ? least : w;
}

/* The weight file and the default weight of this host's cpu controller. */
static const char *weight_file(const struct runtime_cgroup *cg, int *ctrl, uint64_t *full)
{
	*ctrl = cg->pure_v2 ? CGROUP_UNIFIED : CGROUP_CPU;
	*full = cg->pure_v2 ? 100 : 1024;
	return cg->pure_v2 ? "cpu.weight" : "cpu.shares";
}

/* At creation the cgroup has the full weight: only a lower one is written. */
static int apply_weight(const struct runtime_cgroup *cg, const struct runtime_cgroup_limits *l,
			struct berth_error *err)
{
	uint64_t full, w = runtime_cgroup_cpu_weight(cg->pure_v2, l);
	int ctrl;
	const char *file = weight_file(cg, &ctrl, &full);
	char v[32];

	if (w == full)
		return 0;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)w);
	return set_limit(cg, ctrl, file, v, err);
}

static int apply_limits(const struct runtime_cgroup *cg, const struct runtime_cgroup_limits *l,
			struct berth_error *err)
{
	char v[64];
	int r = 0;
	bool v2 = cg->pure_v2;
	int mem = v2 ? CGROUP_UNIFIED : CGROUP_MEMORY;

	if (l->memory) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->memory);
		r = set_limit(cg, mem, v2 ? "memory.max" : "memory.limit_in_bytes", v, err);
		if (r == 0 && !l->memory_swap) {
			if (v2)
				r = set_limit(cg, mem, "memory.swap.max", "0", err);
			else if (access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
					F_OK) == 0)
				r = set_limit(cg, mem, "memory.memsw.limit_in_bytes", v, err);
		}
		if (r < 0)
			return r;
	}
	if (l->cpus) {
		r = set_limit(cg, v2 ? CGROUP_UNIFIED : CGROUP_CPUSET, "cpuset.cpus", l->cpus, err);
		if (r < 0)
			return r;
	}
	if (l->cpu_quota_us) {
		unsigned long long period = l->cpu_period_us ? l->cpu_period_us : 100000;
		if (v2) {
			snprintf(v, sizeof(v), "%llu %llu", (unsigned long long)l->cpu_quota_us,
				 period);
			r = set_limit(cg, CGROUP_UNIFIED, "cpu.max", v, err);
		} else {
			snprintf(v, sizeof(v), "%llu", period);
			r = set_limit(cg, CGROUP_CPU, "cpu.cfs_period_us", v, err);
			snprintf(v, sizeof(v), "%llu", (unsigned long long)l->cpu_quota_us);
			if (r == 0)
				r = set_limit(cg, CGROUP_CPU, "cpu.cfs_quota_us", v, err);
		}
		if (r < 0)
			return r;
	}
	r = apply_weight(cg, l, err);
	if (r == 0 && l->processes) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->processes);
		r = set_limit(cg, v2 ? CGROUP_UNIFIED : CGROUP_PIDS, "pids.max", v, err);
	}
	return r;
}

/* ---- live changes ---- */

/* A write that resets a limit: a file the host lacks (no swap accounting, a v2 controller
 * not enabled) has nothing to reset. */
static int reset_limit(const struct runtime_cgroup *cg, int ctrl, const char *file,
		       const char *value, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (!cg->dirs[ctrl])
		return 0;
	path = berth_strdup_printf("%s/%s", cg->dirs[ctrl], file);
	if (!path)
		return -ENOMEM;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	return set_limit(cg, ctrl, file, value, err);
}

/* v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every step: lift the
 * combined limit first, then set memory, then put the combined limit back. */
static int live_memory(const struct runtime_cgroup *cg, const struct runtime_cgroup_limits *l,
		       struct berth_error *err)
{
	char v[32] = "max";
	bool noswap = l->memory && !l->memory_swap;
	int r;

	if (l->memory)
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->memory);
	if (cg->pure_v2) {
		r = (l->memory ? set_limit : reset_limit)(cg, CGROUP_UNIFIED, "memory.max", v, err);
		if (r == 0)
			r = reset_limit(cg, CGROUP_UNIFIED, "memory.swap.max", noswap ? "0" : "max",
					err);
		return r;
	}
	r = reset_limit(cg, CGROUP_MEMORY, "memory.memsw.limit_in_bytes", "-1", err);
	if (r == 0)
		r = (l->memory ? set_limit : reset_limit)(cg, CGROUP_MEMORY,
							  "memory.limit_in_bytes",
							  l->memory ? v : "-1", err);
	if (r == 0 && noswap)
		r = reset_limit(cg, CGROUP_MEMORY, "memory.memsw.limit_in_bytes", v, err);
	return r;
}

/* No cpu list: the parent's (v1 copies it, v2 inherits from an empty file). */
static int live_cpuset(const struct runtime_cgroup *cg, const char *cpus, struct berth_error *err)
{
	_cleanup_free_ char *parent = NULL;
	char buf[1024];
	char *slash;
	int r;

	if (cpus)
		return set_limit(cg, cg->pure_v2 ? CGROUP_UNIFIED : CGROUP_CPUSET, "cpuset.cpus",
				 cpus, err);
	if (cg->pure_v2)
		return reset_limit(cg, CGROUP_UNIFIED, "cpuset.cpus", "\n", err);
	if (!cg->dirs[CGROUP_CPUSET])
		return 0;
	parent = strdup(cg->dirs[CGROUP_CPUSET]);
	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	r = read_at(parent, "cpuset.cpus", buf, sizeof(buf));
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "reading %s/cpuset.cpus: %s",
				       parent, strerror(-r));
	return set_limit(cg, CGROUP_CPUSET, "cpuset.cpus", buf, err);
}

static int live_cpu_quota(const struct runtime_cgroup *cg, const struct runtime_cgroup_limits *l,
			  struct berth_error *err)
{
	unsigned long long period = l->cpu_period_us ? l->cpu_period_us : 100000;
	char v[64];
	int r;

	if (cg->pure_v2) {
		if (l->cpu_quota_us)
			snprintf(v, sizeof(v), "%llu %llu", (unsigned long long)l->cpu_quota_us,
				 period);
		else
			snprintf(v, sizeof(v), "max %llu", period);
		return (l->cpu_quota_us ? set_limit : reset_limit)(cg, CGROUP_UNIFIED, "cpu.max", v,
								   err);
	}
	/* lift the quota first: a short period under the old quota could be refused */
	r = reset_limit(cg, CGROUP_CPU, "cpu.cfs_quota_us", "-1", err);
	snprintf(v, sizeof(v), "%llu", period);
	if (r == 0)
		r = (l->cpu_quota_us ? set_limit : reset_limit)(cg, CGROUP_CPU, "cpu.cfs_period_us",
								v, err);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)l->cpu_quota_us);
	if (r == 0 && l->cpu_quota_us)
		r = set_limit(cg, CGROUP_CPU, "cpu.cfs_quota_us", v, err);
	return r;
}

/* The full weight is the default: a host without the file has nothing to reset. */
static int live_cpu_weight(const struct runtime_cgroup *cg, const struct runtime_cgroup_limits *l,
			   struct berth_error *err)
{
	uint64_t full, w = runtime_cgroup_cpu_weight(cg->pure_v2, l);
	int ctrl;
	const char *file = weight_file(cg, &ctrl, &full);
	char v[32];

	snprintf(v, sizeof(v), "%llu", (unsigned long long)w);
	return (w == full ? reset_limit : set_limit)(cg, ctrl, file, v, err);
}

int runtime_cgroup_set_limits(const struct runtime_cgroup *cg,
			      const struct runtime_cgroup_limits *l, struct berth_error *err)
{
	char v[32] = "max";
	int r;

	r = live_memory(cg, l, err);
	if (r == 0)
		r = live_cpuset(cg, l->cpus, err);
	if (r == 0)
		r = live_cpu_quota(cg, l, err);
	if (r == 0)
		r = live_cpu_weight(cg, l, err);
	if (r < 0)
		return r;
	if (l->processes)
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->processes);
	return (l->processes ? set_limit : reset_limit)(cg,
							cg->pure_v2 ? CGROUP_UNIFIED : CGROUP_PIDS,
							"pids.max", v, err);
}

int runtime_cgroup_create(struct runtime_cgroup *cg, const struct runtime_cgroup_limits *limits,
			  struct berth_error *err)
{
	int r;

	if (!runtime_cgroup_is_empty(cg)) {
		runtime_cgroup_kill(cg);
		runtime_cgroup_wait_empty(cg, 5000);
	}
	runtime_cgroup_destroy(cg);
	for (int i = 0; i < CGROUP_CTRL_MAX; i++) {
		if (!cg->dirs[i])
			continue;
		r = mkdir_levels(cg, i, root_len_of(i, cg));
		if (r < 0) {
			runtime_cgroup_destroy(cg);
			return berth_error_set(err, r, BERTH_ERR_INTERNAL, "creating cgroup %s: %s",
					       cg->dirs[i], strerror(-r));
		}
	}
	r = limits ? apply_limits(cg, limits, err) : 0;
	if (r < 0)
		runtime_cgroup_destroy(cg);
	return r;
}

int runtime_cgroup_delegate(const struct runtime_cgroup *cg, uid_t uid, gid_t gid)
{
	static const char *const files[] = {"", "/cgroup.procs", "/cgroup.subtree_control",
					    "/cgroup.threads"};
	const char *dir = cg->dirs[CGROUP_UNIFIED];

	if (!dir)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = berth_strdup_printf("%s%s", dir, files[i]);
		if (!p)
			return -ENOMEM;
		if (chown(p, uid, gid) < 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

int runtime_cgroup_attach(const struct runtime_cgroup *cg, pid_t pid)
{
	char v[32];

	snprintf(v, sizeof(v), "%d", (int)pid);
	for (int i = 0; i < CGROUP_CTRL_MAX; i++) {
		if (!cg->dirs[i])
			continue;
		int r = write_at(cg->dirs[i], "cgroup.procs", v);
		if (r < 0)
			return r;
	}
	return 0;
}

int runtime_cgroup_freeze(const struct runtime_cgroup *cg, bool freeze)
{
	const char *v1 = cg->dirs[CGROUP_FREEZER];

	if (v1) {
		char st[32];
		int r = write_at(v1, "freezer.state", freeze ? "FROZEN" : "THAWED");
		if (r < 0 || !freeze)
			return r;
		/* FREEZING until every task stopped. freezer.state notifies nobody when
		 * it changes: look again every millisecond, for a second at most. */
		for (int i = 0; i < 1000; i++) {
			if (read_at(v1, "freezer.state", st, sizeof(st)) > 0 &&
			    strneq(st, "FROZEN", 6))
				return 0;
			poll(NULL, 0, 1);
		}
		return -ETIMEDOUT;
	}
	if (cg->dirs[CGROUP_UNIFIED])
		return write_at(cg->dirs[CGROUP_UNIFIED], "cgroup.freeze", freeze ? "1" : "0");
	return -EOPNOTSUPP;
}

bool runtime_cgroup_is_frozen(const struct runtime_cgroup *cg)
{
	char st[32];
	uint64_t v = 0;

	if (cg->dirs[CGROUP_FREEZER])
		return read_at(cg->dirs[CGROUP_FREEZER], "freezer.state", st, sizeof(st)) > 0 &&
		       strneq(st, "FROZEN", 6);
	return cg->dirs[CGROUP_UNIFIED] &&
	       read_key_at(cg->dirs[CGROUP_UNIFIED], "cgroup.events", "frozen", &v) == 0 && v;
}

int runtime_cgroup_usage(const struct runtime_cgroup *cg, struct runtime_cgroup_usage *ret)
{
	struct runtime_cgroup_usage u = {0};
	const char *d;

	if (cg->pure_v2) {
		d = cg->dirs[CGROUP_UNIFIED];
		if (read_u64_at(d, "memory.current", &u.memory) == -ENOENT && access(d, F_OK) < 0)
			return -ENOENT;
		read_u64_at(d, "memory.peak", &u.memory_peak);
		read_u64_at(d, "memory.swap.current", &u.swap);
		if (read_key_at(d, "cpu.stat", "usage_usec", &u.cpu_ns) == 0)
			u.cpu_ns *= 1000;
		read_u64_at(d, "pids.current", &u.pids);
	} else {
		uint64_t memsw = 0;
		if ((d = cg->dirs[CGROUP_MEMORY])) {
			if (read_u64_at(d, "memory.usage_in_bytes", &u.memory) == -ENOENT)
				return -ENOENT;
			read_u64_at(d, "memory.max_usage_in_bytes", &u.memory_peak);
			if (read_u64_at(d, "memory.memsw.usage_in_bytes", &memsw) == 0 &&
			    memsw > u.memory)
				u.swap = memsw - u.memory;
		}
		if ((d = cg->dirs[CGROUP_CPUACCT]))
			read_u64_at(d, "cpuacct.usage", &u.cpu_ns);
		else if ((d = cg->dirs[CGROUP_CPU]))
			read_u64_at(d, "cpuacct.usage", &u.cpu_ns); /* cpu,cpuacct together */
		if ((d = cg->dirs[CGROUP_PIDS]))
			read_u64_at(d, "pids.current", &u.pids);
	}
	*ret = u;
	return 0;
}

int runtime_cpulist_format(const bool *set, size_t n, char **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	FILE *f = open_memstream(&buf, &cap);

	if (!f)
		return -errno;
	for (size_t i = 0; i < n; i++) {
		size_t j = i;

		if (!set[i])
			continue;
		while (j + 1 < n && set[j + 1])
			j++;
		if (j - i >= 2)
			fprintf(f, "%s%zu-%zu", len++ ? "," : "", i, j);
		else if (j > i)
			fprintf(f, "%s%zu,%zu", len++ ? "," : "", i, j);
		else
			fprintf(f, "%s%zu", len++ ? "," : "", i);
		i = j;
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(buf);
	return 0;
}
