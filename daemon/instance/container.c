/* daemon/instance/container.c: berthd's side of the container runtime (doc/runtime.md).
 *
 * The actions (start, stop, restart, freeze) run on worker threads and talk to the
 * monitor through short blocking connections on its socket. The watcher lives on the loop:
 * one `wait` connection per running container; when it ends (a reply, or EOF because the
 * monitor was killed) the instance is recorded Stopped on a worker, what a dead monitor
 * left is removed, and a lifecycle event is sent unless an action already owns this stop.
 *
 *   watch requested (any thread) --async--> CONNECTING --connected, "wait" sent--> WAITING
 *   WAITING --reply or EOF--> CLOSING --close_cb--> queue_work(record stop) --> freed
 */
#define LOG_CATEGORY "container"
#include "daemon/instance/container.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/instance/volume.h"
#include "daemon/db/db.h"
#include "daemon/instance/disk.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/nic.h"
#include "daemon/instance/proxy.h"
#include "daemon/runtime/cgroup.h"
#include "daemon/runtime/launch.h"
#include "daemon/runtime/spec.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/sha256.h"
#include "lib/util.h"
#include "storage/driver.h"

#define IDMAP_BLOCK 65536
#define SUBID_DEFAULT_START 1000000
#define SUBID_DEFAULT_COUNT 1000000000

/* ---- paths ---- */

char *container_cgroup(const struct berth_daemon *d, const char *project, const char *name)
{
	unsigned char h[BERTH_SHA256_LEN];

	if (streq(d->dir, "/var/lib/berth"))
		return berth_strdup_printf("berth/%s_%s", project, name);
	berth_sha256(d->dir, strlen(d->dir), h);
	return berth_strdup_printf("berth-%02x%02x%02x%02x/%s_%s", h[0], h[1], h[2], h[3], project,
				   name);
}

int container_monitor_binary(char **ret)
{
	return berth_helper_binary("berth-monitor", "BERTH_MONITOR", ret);
}

/* ---- monitor requests ---- */

static int monitor_connect(const char *rundir, int timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = timeout_s};
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/monitor.sock", rundir) >=
	    sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	/* Before connect(): a stopped monitor's full backlog makes connect() wait, and
	 * SO_SNDTIMEO bounds that wait too. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	return TAKE_FD(fd);
}

int container_monitor_connect(const char *rundir, int timeout_s)
{
	return monitor_connect(rundir, timeout_s);
}

/* The instance a run directory belongs to: what follows "<project>_" in its name. */
static const char *rundir_instance(const char *rundir)
{
	const char *base = strrchr(rundir, '/');
	const char *us;

	base = base ? base + 1 : rundir;
	us = strrchr(base, '_');
	return us ? us + 1 : base;
}

int container_timeout_error(const char *name, int timeout_s, struct berth_error *err)
{
	return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_INTERNAL,
			       "Monitor of instance %s did not answer within %ds", name, timeout_s);
}

int container_request(const char *rundir, const char *request, int timeout_s, char **ret,
		      struct berth_error *err)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *line = berth_strdup_printf("%s\n", request);
	char buf[4096];
	size_t len = 0;

	if (timeout_s <= 0)
		return -EINVAL; /* every wait on a monitor is bounded */
	fd = monitor_connect(rundir, timeout_s);
	if (fd == -ETIMEDOUT)
		return container_timeout_error(rundir_instance(rundir), timeout_s, err);
	if (fd < 0)
		return fd;
	if (!line)
		return -ENOMEM;
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		return errno == EAGAIN
			       ? container_timeout_error(rundir_instance(rundir), timeout_s, err)
			       : berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
						 "Cannot talk to the monitor: %m");
	while (len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return container_timeout_error(rundir_instance(rundir), timeout_s, err);
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "No answer from the monitor: %m");
		if (n == 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (berth_startswith(buf, "ok")) {
		*ret = strdup(buf[2] == ' ' ? buf + 3 : buf + 2);
		return *ret ? 0 : -ENOMEM;
	}
	if (berth_startswith(buf, "error "))
		return berth_error_set(err, -EIO, BERTH_ERR_BAD_REQUEST, "%s", buf + 6);
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
			       "The monitor closed the connection without an answer");
}

static bool stuck_probe_begin(const struct berth_daemon *d, const char *project, const char *name);
static void stuck_probe_end(const struct berth_daemon *d, const char *project, const char *name,
			    bool timed_out);

enum container_power container_power(const struct berth_daemon *d, const char *project,
				     const char *name, pid_t *ret_pid)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	_cleanup_free_ char *reply = NULL;
	struct berth_error err = {0};
	char state[32];
	int pid = 0, r;

	if (ret_pid)
		*ret_pid = 0;
	if (!rundir)
		return CONTAINER_STOPPED;
	if (stuck_probe_begin(d, project, name))
		return CONTAINER_UNRESPONSIVE; /* another request is asking it already */
	r = container_request(rundir, "status", CONTAINER_STATUS_TIMEOUT_S, &reply, &err);
	stuck_probe_end(d, project, name, r == -ETIMEDOUT);
	if (r == -ETIMEDOUT)
		log_warn("%s", berth_error_msg(&err, r));
	berth_error_release(&err);
	if (r == -ETIMEDOUT)
		return CONTAINER_UNRESPONSIVE;
	if (r < 0)
		return CONTAINER_STOPPED;
	if (sscanf(reply, "%31s %d", state, &pid) != 2)
		return CONTAINER_STOPPED;
	if (ret_pid)
		*ret_pid = pid;
	if (streq(state, "frozen"))
		return CONTAINER_FROZEN;
	if (streq(state, "stopping"))
		return CONTAINER_STOPPING;
	return CONTAINER_RUNNING;
}

const char *container_power_status(enum container_power p)
{
	static const char *const names[] = {"Stopped", "Running", "Frozen", "Stopping", "Error"};
	return p < CONTAINER_POWER_MAX ? names[p] : "Error";
}

int container_power_code(enum container_power p)
{
	static const int codes[] = {102, 103, 110, 107, 112};
	return p < CONTAINER_POWER_MAX ? codes[p] : 112;
}

/* ---- id maps ---- */

/* Root's range in /etc/subuid or /etc/subgid; when it has none, add LXD's default. */
static int subid_range(const char *file, uint64_t *start, uint64_t *count)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = berth_read_file(file, 1 << 20, &buf, &len);
	FILE *f;

	if (r < 0 && r != -ENOENT)
		return r;
	for (char *line = buf, *next; line && *line; line = next) {
		unsigned long long s, c;
		char user[64];

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "%63[^:]:%llu:%llu", user, &s, &c) == 3 &&
		    (streq(user, "root") || streq(user, "0")) && c >= IDMAP_BLOCK) {
			*start = s;
			*count = c;
			return 0;
		}
	}
	f = fopen(file, "ae");
	if (!f)
		return -errno;
	fprintf(f, "root:%d:%d\n", SUBID_DEFAULT_START, SUBID_DEFAULT_COUNT);
	if (fclose(f) != 0)
		return -errno;
	*start = SUBID_DEFAULT_START;
	*count = SUBID_DEFAULT_COUNT;
	return 0;
}

static char *idmap_json(uint64_t uidbase, uint64_t gidbase, uint64_t size)
{
	json_auto_t *j = json_pack("[{s:b, s:b, s:I, s:i, s:I}, {s:b, s:b, s:I, s:i, s:I}]",
				   "Isuid", 1, "Isgid", 0, "Hostid", (json_int_t)uidbase, "Nsid", 0,
				   "Maprange", (json_int_t)size, "Isuid", 0, "Isgid", 1, "Hostid",
				   (json_int_t)gidbase, "Nsid", 0, "Maprange", (json_int_t)size);
	return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

static pthread_mutex_t idmap_lock = PTHREAD_MUTEX_INITIALIZER;

/* An isolated block of `size` ids, after the shared one, overlapping no other instance's
 * volatile.idmap.base. Returns the offset from the range start. */
static int idmap_allocate(struct db *db, const char *project, const char *name, uint64_t count,
			  uint64_t size, uint64_t *ret, struct berth_error *err)
{
	json_auto_t *all = NULL;
	json_t *inst;
	size_t i;
	uint64_t off = IDMAP_BLOCK;
	bool moved = true;
	int r = db_instance_list(db, NULL, &all, err);

	if (r < 0)
		return r;
	while (moved) {
		moved = false;
		json_array_foreach(all, i, inst) {
			json_t *cfg = json_object_get(inst, "config");
			const char *b = berth_json_string(cfg, "volatile.idmap.base");
			const char *sz = berth_json_string(cfg, "security.idmap.size");
			uint64_t ob, os = sz ? strtoull(sz, NULL, 10) : IDMAP_BLOCK;

			if (!b || (streq(berth_json_string(inst, "project"), project) &&
				   streq(berth_json_string(inst, "name"), name)))
				continue;
			ob = strtoull(b, NULL, 10);
			if (ob < off + size && off < ob + os) {
				off = ob + os;
				moved = true;
			}
		}
	}
	if (off + size > count)
		return berth_error_set(err, -ENOSPC, BERTH_ERR_BAD_REQUEST,
				       "No free id range of %" PRIu64 " for an isolated idmap",
				       size);
	*ret = off;
	return 0;
}

/* Set `key` in the stored (unexpanded) config of the instance. */
static int set_volatile(struct db *db, const char *project, const char *name, const char *const *kv,
			struct berth_error *err)
{
	json_auto_t *inst = NULL;
	json_t *cfg;
	bool same = true;
	int r = db_instance_get(db, project, name, &inst, err);

	if (r < 0)
		return r;
	cfg = json_object_get(inst, "config");
	for (size_t i = 0; kv[i]; i += 2) {
		const char *old = berth_json_string(cfg, kv[i]);
		if (!old || !streq(old, kv[i + 1]))
			same = false;
		json_object_set_new(cfg, kv[i], json_string(kv[i + 1]));
	}
	/* a restart with the same map writes nothing */
	return same ? 0 : db_instance_update(db, project, name, inst, err);
}

static int spec_idmap(struct db *db, struct runtime_spec *spec, const char *project,
		      const char *name, const json_t *cfg, struct berth_error *err)
{
	uint64_t ustart, ucount, gstart, gcount, off = 0, size = IDMAP_BLOCK;
	const char *iso = berth_json_string(cfg, "security.idmap.isolated");
	const char *sz = berth_json_string(cfg, "security.idmap.size");
	bool isolated = iso && streq(iso, "true");
	_cleanup_free_ char *map = NULL, *base_s = NULL;
	int r;

	r = subid_range("/etc/subuid", &ustart, &ucount);
	if (r >= 0)
		r = subid_range("/etc/subgid", &gstart, &gcount);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Cannot read root's subordinate ids: %s", strerror(-r));
	if (sz && isolated)
		size = strtoull(sz, NULL, 10);
	if (size == 0 || size > ucount || size > gcount)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "security.idmap.size %" PRIu64 " does not fit root's range",
				       size);
	if (isolated) {
		const char *b = berth_json_string(cfg, "volatile.idmap.base");

		pthread_mutex_lock(&idmap_lock);
		if (b) {
			off = strtoull(b, NULL, 10);
		} else {
			r = idmap_allocate(db, project, name, ucount < gcount ? ucount : gcount,
					   size, &off, err);
		}
		pthread_mutex_unlock(&idmap_lock);
		if (r < 0)
			return r;
	}
	spec->uid_map = calloc(1, sizeof(*spec->uid_map));
	spec->gid_map = calloc(1, sizeof(*spec->gid_map));
	if (!spec->uid_map || !spec->gid_map)
		return -ENOMEM;
	spec->uid_map[0] = (struct runtime_idmap){0, (uint32_t)(ustart + off), (uint32_t)size};
	spec->gid_map[0] = (struct runtime_idmap){0, (uint32_t)(gstart + off), (uint32_t)size};
	spec->n_uid_map = spec->n_gid_map = 1;
	map = idmap_json(ustart + off, gstart + off, size);
	base_s = berth_strdup_printf("%" PRIu64, off);
	if (!map || !base_s)
		return -ENOMEM;
	{
		const char *kv[] = {"volatile.idmap.next",
				    map,
				    "volatile.idmap.current",
				    map,
				    "volatile.last_state.idmap",
				    map,
				    isolated ? "volatile.idmap.base" : NULL,
				    base_s,
				    NULL};
		return set_volatile(db, project, name, kv, err);
	}
}

/* ---- limits ---- */

/* A cpuset list ("0-3,6") into `set`; -EINVAL when it is not one. */
static int cpulist_parse(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s && *s != '\n') {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;

		if (end == s)
			return -EINVAL;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s)
				return -EINVAL;
		}
		if (b < a || b >= CPU_SETSIZE)
			return -EINVAL;
		for (unsigned long i = a; i <= b; i++)
			CPU_SET(i, set);
		s = *end == ',' ? end + 1 : end;
		if (*s && *s != '\n' && end[0] != ',')
			return -EINVAL;
	}
	return 0;
}

/* How many of this daemon's other running containers use each CPU, from the cpuset.cpus
 * of the cgroups next to `name`'s (an empty v2 file: all of them, which counts for none). */
static void cpu_users(const struct berth_daemon *d, const char *project, const char *name,
		      int users[CPU_SETSIZE])
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = NULL;
	_cleanup_free_ char *rel = container_cgroup(d, project, name);
	const char *dir;
	char *parent, *self;
	DIR *dh;
	struct dirent *de;

	if (!rel || runtime_cgroup_open(rel, &cg) < 0)
		return;
	dir = cg->pure_v2 ? cg->dirs[CGROUP_UNIFIED] : cg->dirs[CGROUP_CPUSET];
	if (!dir || !(parent = strdup(dir)))
		return;
	self = strrchr(parent, '/');
	if (!self) {
		free(parent);
		return;
	}
	*self++ = '\0';
	dh = opendir(parent);
	while (dh && (de = readdir(dh))) {
		_cleanup_free_ char *path = NULL;
		char buf[1024] = "";
		cpu_set_t set;
		FILE *f;

		if (de->d_name[0] == '.' || de->d_type != DT_DIR || streq(de->d_name, self))
			continue;
		path = berth_strdup_printf("%s/%s/cpuset.cpus", parent, de->d_name);
		f = path ? fopen(path, "re") : NULL;
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && cpulist_parse(buf, &set) == 0)
			for (int i = 0; i < CPU_SETSIZE; i++)
				users[i] += CPU_ISSET(i, &set) ? 1 : 0;
		fclose(f);
	}
	if (dh)
		closedir(dh);
	free(parent);
}

/* limits.cpu=N as LXD reads it: N CPUs (all when N is more), those the fewest other
 * containers of this daemon are pinned to, lowest number first on a tie. */
static int pick_cpus(const struct berth_daemon *d, const char *project, const char *name, long n,
		     const cpu_set_t *avail, char **ret)
{
	int users[CPU_SETSIZE] = {0};
	bool mask[CPU_SETSIZE];
	cpu_set_t chosen;

	cpu_users(d, project, name, users);
	CPU_ZERO(&chosen);
	for (long k = 0; k < n && k < CPU_COUNT(avail); k++) {
		int best = -1;
		for (int i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, avail) && !CPU_ISSET(i, &chosen) &&
			    (best < 0 || users[i] < users[best]))
				best = i;
		CPU_SET(best, &chosen);
	}
	for (int i = 0; i < CPU_SETSIZE; i++)
		mask[i] = CPU_ISSET(i, &chosen);
	return runtime_cpulist_format(mask, CPU_SETSIZE, ret);
}

static int spec_cpus(struct runtime_spec *spec, const struct berth_daemon *d, const char *project,
		     const char *name, const char *cpu, struct berth_error *err)
{
	cpu_set_t avail, want;
	long n;

	if (sched_getaffinity(0, sizeof(avail), &avail) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot read the host's CPUs: %m");
	if (!strpbrk(cpu, ",-")) {
		n = strtol(cpu, NULL, 10);
		if (n <= 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid limits.cpu \"%s\"", cpu);
		return pick_cpus(d, project, name, n, &avail, &spec->limits_cpus);
	}
	if (cpulist_parse(cpu, &want) < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid limits.cpu \"%s\"", cpu);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &want) && !CPU_ISSET(i, &avail))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid limits.cpu \"%s\": CPU %d is not "
					       "available on this host",
					       cpu, i);
	spec->limits_cpus = strdup(cpu);
	return spec->limits_cpus ? 0 : -ENOMEM;
}

static int spec_limits(struct runtime_spec *spec, const struct berth_daemon *d, const char *project,
		       const char *name, const json_t *cfg, struct berth_error *err)
{
	const char *mem = berth_json_string(cfg, "limits.memory");
	const char *swap = berth_json_string(cfg, "limits.memory.swap");
	const char *cpu = berth_json_string(cfg, "limits.cpu");
	const char *allow = berth_json_string(cfg, "limits.cpu.allowance");
	const char *prio = berth_json_string(cfg, "limits.cpu.priority");
	const char *procs = berth_json_string(cfg, "limits.processes");
	int r;

	if (mem && berth_endswith(mem, "%")) {
		long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
		double pct = strtod(mem, NULL);

		spec->limits_memory = (uint64_t)((double)pages * (double)psize * pct / 100.0);
	} else if (mem) {
		r = storage_parse_size(mem, "limits.memory", &spec->limits_memory, err);
		if (r < 0)
			return r;
	}
	if (swap)
		spec->limits_memory_swap = !streq(swap, "false");
	if (cpu) {
		r = spec_cpus(spec, d, project, name, cpu, err);
		if (r < 0)
			return r;
	}
	/* as LXD: a percentage is a share of the CPU weight, a time slice a hard quota */
	if (allow && berth_endswith(allow, "%")) {
		spec->limits_cpu_share_pct = strtoull(allow, NULL, 10);
	} else if (allow) {
		unsigned long long q, p;

		if (sscanf(allow, "%llums/%llums", &q, &p) != 2 || q == 0 || p == 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid limits.cpu.allowance \"%s\"", allow);
		spec->limits_cpu_quota_us = q * 1000;
		spec->limits_cpu_period_us = p * 1000;
	}
	if (prio) {
		char *end;
		unsigned long n = strtoul(prio, &end, 10);

		if (!isdigit((unsigned char)prio[0]) || *end || n > 10)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid limits.cpu.priority \"%s\"", prio);
		spec->limits_cpu_priority_drop = 10 - n;
	}
	if (procs)
		spec->limits_processes = strtoull(procs, NULL, 10);
	return 0;
}

static const char *const live_limit_keys[] = {"limits.memory",	     "limits.memory.swap",
					      "limits.cpu",	     "limits.cpu.allowance",
					      "limits.cpu.priority", "limits.processes"};

static bool limits_differ(const json_t *a, const json_t *b)
{
	for (size_t i = 0; i < ARRAY_SIZE(live_limit_keys); i++) {
		const char *va = berth_json_string(a, live_limit_keys[i]);
		const char *vb = berth_json_string(b, live_limit_keys[i]);

		if (!streq(va ?: "", vb ?: ""))
			return true;
	}
	return false;
}

int container_update_limits(struct berth_daemon *d, const char *project, const json_t *before,
			    const json_t *after, struct berth_error *err)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = runtime_spec_new();
	_cleanup_free_ char *rundir = NULL, *req = NULL, *reply = NULL;
	const char *name = berth_json_string(after, "name");
	const json_t *cfg = json_object_get(after, "expanded_config");
	int r;

	if (!spec)
		return -ENOMEM;
	if (!limits_differ(json_object_get(before, "expanded_config"), cfg) ||
	    container_power(d, project, name, NULL) == CONTAINER_STOPPED)
		return 0;
	r = spec_limits(spec, d, project, name, cfg, err);
	if (r < 0)
		return r;
	rundir = container_rundir(d, project, name);
	req = berth_strdup_printf("limits %" PRIu64 " %d %s %" PRIu64 " %" PRIu64 " %" PRIu64
				  " %" PRIu64 " %" PRIu64,
				  spec->limits_memory, spec->limits_memory_swap ? 1 : 0,
				  spec->limits_cpus ?: "-", spec->limits_cpu_quota_us,
				  spec->limits_cpu_period_us, spec->limits_processes,
				  spec->limits_cpu_share_pct, spec->limits_cpu_priority_drop);
	if (!rundir || !req)
		return -ENOMEM;
	r = container_request(rundir, req, 30, &reply, err);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0; /* it stopped meanwhile: the next start reads the new config */
	if (r < 0)
		return berth_error_wrap(err, r, "Failed to apply the limits of \"%s\"", name);
	return 0;
}

/* Keys a running container only reads at its start: the runtime builds the user namespace,
 * seccomp, capabilities, AppArmor and PID 1's environment from them once. */
static const char *const next_start_prefixes[] = {"security.", "raw.", "environment.",
						  "linux.kernel_modules"};

char *container_next_start_notice(struct berth_daemon *d, const char *project, const json_t *before,
				  const json_t *after)
{
	const json_t *a = json_object_get(before, "expanded_config");
	const json_t *b = json_object_get(after, "expanded_config");
	const char *name = berth_json_string(after, "name");
	_cleanup_free_ char *keys = NULL;
	char *msg;

	for (int pass = 0; pass < 2; pass++) {
		const char *key;
		json_t *v;

		json_object_foreach((json_t *)(pass ? a : b), key, v) {
			const char *va = berth_json_string(a, key), *vb = berth_json_string(b, key);
			bool listed = false;
			char *more;

			if ((pass && vb) || streq(va ?: "", vb ?: ""))
				continue; /* the second pass only adds removed keys */
			for (size_t i = 0; i < ARRAY_SIZE(next_start_prefixes); i++)
				listed |= berth_startswith(key, next_start_prefixes[i]);
			if (!listed)
				continue;
			more = berth_strdup_printf("%s%s%s", keys ?: "", keys ? ", " : "", key);
			if (!more)
				return NULL;
			free(keys);
			keys = more;
		}
	}
	if (!keys || container_power(d, project, name, NULL) == CONTAINER_STOPPED)
		return NULL;
	msg = berth_strdup_printf("Instance \"%s\" is running: %s take%s effect at its next start",
				  name, keys, strchr(keys, ',') ? "" : "s");
	return msg;
}

/* security.syscalls.{deny,allow}: names separated by newlines, commas or spaces. */
static int syscall_list(const char *v, char ***list)
{
	_cleanup_free_ char *copy = v ? strdup(v) : NULL;
	char *save = NULL;

	if (!v)
		return 0;
	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, "\n, \t", &save); t; t = strtok_r(NULL, "\n, \t", &save)) {
		char *item = strdup(t);
		int r = item ? runtime_strv_push(list, item) : -ENOMEM;
		if (r < 0)
			return r;
	}
	return 0;
}

/* The spec of instance `inst` (with expanded_config and expanded_devices). */
static int spec_build(struct berth_daemon *d, const char *project, const json_t *inst,
		      struct runtime_spec **ret, struct berth_error *err)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = runtime_spec_new();
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	_cleanup_free_ char *vpath = NULL;
	const char *name = berth_json_string(inst, "name");
	const json_t *cfg = json_object_get(inst, "expanded_config");
	const char *priv = berth_json_string(cfg, "security.privileged");
	const char *raw = berth_json_string(cfg, "raw.lxc");
	const char *deny_default = berth_json_string(cfg, "security.syscalls.deny_default");
	const char *key;
	json_t *val;
	int r;

	if (!spec)
		return -ENOMEM;
	if (raw && *raw)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "raw.lxc is not supported: berth does not use liblxc");
	r = instance_volume_open(d, project, name, &v, err);
	if (r < 0)
		return r;
	if (!v.pool)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" has no root filesystem", name);
	r = storage_volume_path(v.pool, &v.vol, NULL, &vpath);
	if (r < 0)
		return r;
	spec->name = strdup(name);
	spec->project = strdup(project);
	spec->hostname = strdup(name);
	spec->volume = strdup(vpath);
	spec->rootfs = berth_strdup_printf("%s/rootfs", vpath);
	spec->cgroup = container_cgroup(d, project, name);
	if (!spec->name || !spec->project || !spec->hostname || !spec->volume || !spec->rootfs ||
	    !spec->cgroup)
		return -ENOMEM;
	spec->privileged = priv && streq(priv, "true");
	if (!spec->privileged) {
		r = spec_idmap(d->db, spec, project, name, cfg, err);
		if (r < 0)
			return r;
	}
	json_object_foreach((json_t *)cfg, key, val) {
		char *e;

		if (!berth_startswith(key, "environment.") || !json_is_string(val))
			continue;
		e = berth_strdup_printf("%s=%s", key + strlen("environment."),
					json_string_value(val));
		if (!e || runtime_strv_push(&spec->env, e) < 0)
			return -ENOMEM;
	}
	r = spec_limits(spec, d, project, name, cfg, err);
	if (r < 0)
		return r;
	r = syscall_list(berth_json_string(cfg, "security.syscalls.deny"), &spec->seccomp_deny);
	if (r >= 0)
		r = syscall_list(berth_json_string(cfg, "security.syscalls.allow"),
				 &spec->seccomp_allow);
	if (r < 0)
		return r;
	if (spec->seccomp_allow && spec->seccomp_deny)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "security.syscalls.allow and security.syscalls.deny are "
				       "mutually exclusive");
	spec->seccomp_default = !(deny_default && streq(deny_default, "false"));
	r = disk_spec_build(spec, d, project, json_object_get(inst, "expanded_devices"), err);
	if (r < 0)
		return r;
	r = nic_spec_build(d, project, inst, spec, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(spec);
	return 0;
}

/* Remove the parent of this daemon's container cgroups (berth-<hash> or berth) in every
 * hierarchy once it is empty; a busy one stays (rmdir fails). */
static void cgroup_parent_cleanup(const struct berth_daemon *d)
{
	static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	_cleanup_free_ char *rel = container_cgroup(d, "x", "x");
	char *slash = rel ? strchr(rel, '/') : NULL;

	if (!slash)
		return;
	*slash = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		_cleanup_free_ char *top = berth_strdup_printf("%s/%s", roots[i], rel);
		DIR *dir = opendir(roots[i]);
		struct dirent *de;

		if (top)
			rmdir(top);
		if (!dir)
			continue;
		while ((de = readdir(dir))) {
			_cleanup_free_ char *p = NULL;

			if (de->d_name[0] == '.' || de->d_type != DT_DIR)
				continue;
			p = berth_strdup_printf("%s/%s/%s", roots[i], de->d_name, rel);
			if (p)
				rmdir(p);
		}
		closedir(dir);
	}
}

void container_cleanup_cgroups(const struct berth_daemon *d)
{
	cgroup_parent_cleanup(d);
}

/* ---- actions ---- */

static void lifecycle(struct berth_daemon *d, const char *project, const char *name,
		      const char *action)
{
	_cleanup_free_ char *url = instance_url(project, name);

	events_lifecycle(d->events, project, action, url, NULL);
}

static int set_status(struct db *db, const char *project, const char *name, enum container_power p)
{
	return db_instance_set_status(db, project, name, container_power_status(p),
				      container_power_code(p), NULL);
}

/* A stop that an action announced: the watcher must not report it again. */
static void expect_stop(struct berth_daemon *d, const char *project, const char *name, bool on);

/* The next container_power_quick() asks the monitor. */
static void power_forget(struct berth_daemon *d, const char *project, const char *name);

/* A pidfd of the monitor named in `rundir`/monitor.pid (and its pid in *ret_pid), or
 * -errno when there is none. */
static int monitor_pidfd(const char *rundir, int *ret_pid)
{
	_cleanup_free_ char *pidfile = rundir ? berth_strdup_printf("%s/monitor.pid", rundir)
					      : NULL;
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int pid, fd;

	if (!pidfile)
		return -ENOMEM;
	if (berth_read_file(pidfile, 64, &buf, &len) < 0 || sscanf(buf, "%d", &pid) != 1 ||
	    pid <= 0)
		return -ENOENT;
	fd = pidfd_open(pid, 0);
	if (fd < 0)
		return -errno;
	*ret_pid = pid;
	return fd;
}

/* Waits up to `ms` for the container's monitor to be gone (its process exits, through a
 * pidfd); true when it is. */
static bool wait_stopped(struct berth_daemon *d, const char *project, const char *name, int ms)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	int pid;
	_cleanup_close_ int pidfd = monitor_pidfd(rundir, &pid);
	struct pollfd pfd;

	/* With the pidfd open, a monitor that is not answering is gone for good (the pid
	 * in the file may be that of a process that came after it). */
	if (container_power(d, project, name, NULL) == CONTAINER_STOPPED)
		return true;
	if (pidfd < 0)
		return false;
	pfd = (struct pollfd){.fd = pidfd, .events = POLLIN};
	while (poll(&pfd, 1, ms) < 0)
		if (errno != EINTR)
			return false;
	return (pfd.revents & POLLIN) ||
	       container_power(d, project, name, NULL) == CONTAINER_STOPPED;
}

/* What a container that is gone leaves on the host: whatever still runs in its cgroup is
 * killed and the cgroup removed; the monitor's files go from its run directory. */
static void gone_leftovers_remove(struct berth_daemon *d, const char *project, const char *name,
				  const char *rundir)
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = NULL;
	_cleanup_free_ char *rel = container_cgroup(d, project, name);
	const char *files[] = {"monitor.sock", "monitor.pid", "init.pid"};

	if (rel && runtime_cgroup_open(rel, &cg) >= 0)
		runtime_cgroup_remove(cg, 1000);
	for (size_t i = 0; rundir && i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *f = berth_strdup_printf("%s/%s", rundir, files[i]);
		if (f)
			unlink(f);
	}
}

/* After a failed `berth-monitor start` (its timeout, or any failure once the monitor may
 * have forked): kill the monitor it left (by its pid file, if that is still a
 * berth-monitor) and whatever runs in the container's cgroup, and remove the run files,
 * so that nothing keeps booting unwatched. */
static void start_leftovers_kill(struct berth_daemon *d, const char *project, const char *name,
				 const char *rundir)
{
	_cleanup_free_ char *comm = NULL;
	int pid;
	_cleanup_close_ int pidfd = monitor_pidfd(rundir, &pid);
	struct pollfd pfd;
	size_t len;

	/* With the pidfd open, the comm read next is that of the process it signals. */
	if (pidfd >= 0) {
		_cleanup_free_ char *path = berth_strdup_printf("/proc/%d/comm", pid);

		if (path && berth_read_file(path, 64, &comm, &len) >= 0 &&
		    berth_startswith(comm, "berth-monitor")) {
			log_warn("Instance \"%s\": killing the monitor its failed start left",
				 name);
			pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
			pfd = (struct pollfd){.fd = pidfd, .events = POLLIN};
			while (poll(&pfd, 1, 1000) < 0 && errno == EINTR)
				;
		}
	}
	gone_leftovers_remove(d, project, name, rundir);
}

int container_start(struct berth_daemon *d, const char *project, json_t *inst,
		    struct berth_error *err)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = NULL;
	_cleanup_free_ char *rundir = NULL, *specpath = NULL, *monitor = NULL;
	const char *name = berth_json_string(inst, "name");
	struct berth_error serr = {0};
	enum container_power p = container_power(d, project, name, NULL);
	int r;

	if (p == CONTAINER_UNRESPONSIVE)
		return container_timeout_error(name, CONTAINER_STATUS_TIMEOUT_S, err);
	if (p != CONTAINER_STOPPED)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is already running");
	r = container_monitor_binary(&monitor);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Cannot find berth-monitor (set BERTH_MONITOR)");
	r = spec_build(d, project, inst, &spec, err);
	if (r < 0)
		return r;
	rundir = container_rundir(d, project, name);
	specpath = berth_strdup_printf("%s/spec", rundir ? rundir : "");
	if (!rundir || !specpath)
		return -ENOMEM;
	r = berth_mkdir_p(rundir, 0700);
	if (r < 0 || chmod(rundir, 0700) < 0)
		return berth_error_set(err, r < 0 ? r : -errno, BERTH_ERR_INTERNAL,
				       "Cannot create \"%s\"", rundir);
	r = runtime_spec_write(specpath, spec);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot write the spec: %s",
				       strerror(-r));
	r = runtime_monitor_launch(rundir, &serr);
	if (r < 0) {
		const char *msg = berth_error_msg(&serr, r);
		const char *colon = strstr(msg, "): ");

		berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to start \"%s\": %s", name,
				colon ? colon + 3 : msg);
		start_leftovers_kill(d, project, name, rundir);
		cgroup_parent_cleanup(d);
		berth_error_release(&serr);
		return r;
	}
	set_status(d->db, project, name, CONTAINER_RUNNING);
	container_watch(d, project, name);
	/* Devices that need the container running (LXD fails the start when one fails). */
	r = proxy_sync(d, project, name, json_object_get(inst, "expanded_devices"), err);
	if (r < 0) {
		_cleanup_free_ char *reply = NULL;

		expect_stop(d, project, name, true);
		container_request(rundir, "kill", CONTAINER_KILL_TIMEOUT_S, &reply, NULL);
		wait_stopped(d, project, name, 2000);
		proxy_stop_all(d, project, name);
		set_status(d->db, project, name, CONTAINER_STOPPED);
		cgroup_parent_cleanup(d);
		return r;
	}
	lifecycle(d, project, name, "instance-started");
	return 0;
}

static int running_rundir(struct berth_daemon *d, const char *project, const char *name, char **ret,
			  struct berth_error *err)
{
	enum container_power p = container_power(d, project, name, NULL);

	if (p == CONTAINER_UNRESPONSIVE)
		return container_timeout_error(name, CONTAINER_STATUS_TIMEOUT_S, err);
	if (p == CONTAINER_STOPPED)
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "The instance is already stopped");
	*ret = container_rundir(d, project, name);
	return *ret ? 0 : -ENOMEM;
}

int container_stop(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		   bool force, struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL, *reply = NULL, *req = NULL;
	int r = running_rundir(d, project, name, &rundir, err);

	if (r < 0)
		return r;
	/* LXD's default clean-stop timeout when none is given. */
	if (!force && timeout_s < 0)
		timeout_s = 30;
	/* Room for the kill that follows it in the wait below. */
	if (timeout_s > INT_MAX - CONTAINER_KILL_TIMEOUT_S)
		timeout_s = INT_MAX - CONTAINER_KILL_TIMEOUT_S;
	req = force ? strdup("kill") : berth_strdup_printf("stop %d", timeout_s);
	if (!req)
		return -ENOMEM;
	expect_stop(d, project, name, true);
	power_forget(d, project, name);
	/* The monitor answers once the container is down: its own timeout, then the kill. */
	r = container_request(rundir, req,
			      force ? CONTAINER_KILL_TIMEOUT_S
				    : timeout_s + CONTAINER_KILL_TIMEOUT_S,
			      &reply, err);
	power_forget(d, project, name);
	if (r < 0 && container_power(d, project, name, NULL) == CONTAINER_STOPPED) {
		berth_error_release(err); /* it went away under us: stopped all the same */
		r = 0;
	}
	if (r < 0) {
		expect_stop(d, project, name, false);
		return r;
	}
	/* The monitor replies before it exits: wait (briefly) until its socket is gone. */
	wait_stopped(d, project, name, 2000);
	set_status(d->db, project, name, CONTAINER_STOPPED);
	proxy_stop_all(d, project, name);
	cgroup_parent_cleanup(d);
	lifecycle(d, project, name, force ? "instance-stopped" : "instance-shutdown");
	return 0;
}

/* A stop and a start, as LXD does it: the new monitor gets the spec of the config as it
 * is now (limits, devices, NICs changed since the start), which the old monitor's own
 * reboot would not know. */
int container_restart(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		      bool force, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	int r;

	r = container_stop(d, project, name, force ? 0 : timeout_s, force, err);
	/* container_stop waits only briefly for the old monitor to exit; a start while it
	 * still tears down would be refused as "already running", leaving it down. */
	if (r >= 0 && !wait_stopped(d, project, name, 30000))
		r = berth_error_set(err, -ETIMEDOUT, BERTH_ERR_INTERNAL,
				    "Restarting \"%s\": its monitor did not exit within 30 s of "
				    "the stop",
				    name);
	if (r >= 0)
		r = instance_expand_load(d->db, project, name, &inst, err);
	if (r >= 0)
		r = container_start(d, project, inst, err);
	if (r < 0)
		return r;
	lifecycle(d, project, name, "instance-restarted");
	return 0;
}

int container_freeze(struct berth_daemon *d, const char *project, const char *name, bool freeze,
		     struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL, *reply = NULL;
	enum container_power p = container_power(d, project, name, NULL);
	int r;

	if (p == CONTAINER_UNRESPONSIVE)
		return container_timeout_error(name, CONTAINER_STATUS_TIMEOUT_S, err);
	if (p == CONTAINER_STOPPED)
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "The instance isn't running");
	if (freeze && p == CONTAINER_FROZEN)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is already frozen");
	if (!freeze && p != CONTAINER_FROZEN)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is not frozen");
	r = running_rundir(d, project, name, &rundir, err);
	power_forget(d, project, name);
	if (r >= 0)
		r = container_request(rundir, freeze ? "freeze" : "unfreeze", 30, &reply, err);
	power_forget(d, project, name);
	if (r < 0)
		return r;
	set_status(d->db, project, name, freeze ? CONTAINER_FROZEN : CONTAINER_RUNNING);
	lifecycle(d, project, name, freeze ? "instance-paused" : "instance-resumed");
	return 0;
}

json_t *container_state(const struct berth_daemon *d, const char *project, const char *name)
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = NULL;
	_cleanup_free_ char *rel = NULL;
	struct runtime_cgroup_usage u = {0};
	pid_t pid = 0;
	enum container_power p = container_power(d, project, name, &pid);
	json_t *net = NULL;

	if (p != CONTAINER_STOPPED) {
		_cleanup_free_ char *rundir = container_rundir(d, project, name);
		rel = container_cgroup(d, project, name);
		if (rel && runtime_cgroup_open(rel, &cg) >= 0)
			runtime_cgroup_usage(cg, &u);
		if (rundir)
			net = nic_state(rundir, pid);
	}
	return json_pack("{s:s, s:i, s:{}, s:{s:I, s:I, s:I, s:i}, s:o?, s:i, s:I, s:{s:I}}",
			 "status", container_power_status(p), "status_code",
			 container_power_code(p), "disk", "memory", "usage", (json_int_t)u.memory,
			 "usage_peak", (json_int_t)u.memory_peak, "swap_usage", (json_int_t)u.swap,
			 "swap_usage_peak", 0, "network", net, "pid", (int)pid, "processes",
			 (json_int_t)(p == CONTAINER_STOPPED ? 0 : u.pids), "cpu", "usage",
			 (json_int_t)u.cpu_ns);
}

/* ---- the watcher (loop thread) ---- */

struct watch {
	struct container_watcher *w; /* borrowed */
	struct watch *next;
	char *project; /* owned */
	char *name;    /* owned */
	uv_pipe_t pipe;
	uv_connect_t connect;
	uv_write_t write;
	uv_work_t work;
	char reply[256];
	size_t reply_len;
	bool expected; /* an action owns this stop (guarded by w->lock) */
	bool replied;  /* the monitor answered `wait` (it stopped on its own terms) */
	bool closing;
	/* Guarded by w->lock, for container_power(): */
	bool stuck;   /* its last request timed out, no answer since */
	bool probing; /* while stuck: a request asks it again, others answer at once */
	/* Guarded by w->lock, for container_power_quick(): */
	bool waiting;	    /* `wait` sent, no answer yet: the monitor lives */
	bool known_running; /* a status said running since the last action */
	unsigned epoch;	    /* bumped by every action that may change the state */
};

struct container_watcher {
	struct berth_daemon *d; /* borrowed */
	uv_async_t async;
	pthread_mutex_t lock;
	struct watch *pending; /* requested from any thread, not yet connected */
	struct watch *active;  /* loop thread: connected or connecting */
	bool closed;
};

static void watch_free(struct watch *wt)
{
	free(wt->project);
	free(wt->name);
	free(wt);
}

static struct watch *find_watch(struct watch *list, const char *project, const char *name)
{
	for (; list; list = list->next)
		if (streq(list->project, project) && streq(list->name, name))
			return list;
	return NULL;
}

static void unlink_watch(struct watch **list, struct watch *wt)
{
	for (; *list; list = &(*list)->next)
		if (*list == wt) {
			*list = wt->next;
			return;
		}
}

static void expect_stop(struct berth_daemon *d, const char *project, const char *name, bool on)
{
	struct container_watcher *w = d->containers;
	struct watch *wt;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	wt = find_watch(w->active, project, name);
	if (!wt)
		wt = find_watch(w->pending, project, name);
	if (wt)
		wt->expected = on;
	pthread_mutex_unlock(&w->lock);
}

/* What a status said before no longer holds, and neither does one under way. Under the
 * watcher's lock. */
static void watch_stale(struct watch *wt)
{
	wt->epoch++;
	wt->known_running = false;
}

/* A stuck monitor costs one request at a time: while one asks it again, the others
 * hear UNRESPONSIVE at once (true). The caller that gets false asks, then tells
 * stuck_probe_end() how it went. */
static bool stuck_probe_begin(const struct berth_daemon *d, const char *project, const char *name)
{
	struct container_watcher *w = d->containers;
	struct watch *wt;
	bool busy = false;

	if (!w)
		return false;
	pthread_mutex_lock(&w->lock);
	wt = find_watch(w->active, project, name);
	if (wt && wt->stuck) {
		busy = wt->probing;
		wt->probing = true;
	}
	pthread_mutex_unlock(&w->lock);
	return busy;
}

static void stuck_probe_end(const struct berth_daemon *d, const char *project, const char *name,
			    bool timed_out)
{
	struct container_watcher *w = d->containers;
	struct watch *wt;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	wt = find_watch(w->active, project, name);
	if (wt) {
		wt->stuck = timed_out;
		wt->probing = false;
		if (timed_out)
			watch_stale(wt);
	}
	pthread_mutex_unlock(&w->lock);
}

void container_power_forget(struct berth_daemon *d, const char *project, const char *name)
{
	struct container_watcher *w = d->containers;
	struct watch *wt;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	wt = find_watch(w->active, project, name);
	if (wt && !wt->probing) {
		wt->stuck = true;
		watch_stale(wt);
	}
	pthread_mutex_unlock(&w->lock);
}

/* The monitor's side of container_console_open(): the `console` request, its "ok" line
 * read byte by byte so that no console output is swallowed. */
static int console_connect(const char *rundir, int *ret, struct berth_error *err)
{
	struct timeval tv = {0};
	_cleanup_close_ int fd = container_monitor_connect(rundir, CONTAINER_STATUS_TIMEOUT_S);
	const char *base = strrchr(rundir, '/');
	char line[256];
	size_t len = 0;

	base = base ? strchr(base, '_') : NULL;
	if (fd == -ETIMEDOUT)
		return container_timeout_error(base ? base + 1 : rundir, CONTAINER_STATUS_TIMEOUT_S,
					       err);
	if (fd == -ENAMETOOLONG || fd == -ENOMEM || fd == -EMFILE || fd == -ENFILE)
		return fd;
	if (fd < 0)
		return berth_error_set(err, fd, BERTH_ERR_BAD_REQUEST, "Instance is not running");
	if (write(fd, "console\n", 8) != 8)
		return errno == EAGAIN ? container_timeout_error(base ? base + 1 : rundir,
								 CONTAINER_STATUS_TIMEOUT_S, err)
				       : berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
							 "Cannot talk to the monitor: %m");
	while (len < sizeof(line) - 1) {
		ssize_t n = read(fd, line + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return container_timeout_error(base ? base + 1 : rundir,
						       CONTAINER_STATUS_TIMEOUT_S, err);
		if (n <= 0)
			return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
					       "No answer from the monitor");
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	if (!streq(line, "ok"))
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "Console: %s", line);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	*ret = TAKE_FD(fd);
	return 0;
}

int container_console_open(struct berth_daemon *d, const char *project, const char *name, int *ret,
			   struct berth_error *err)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	int r;

	if (!rundir)
		return -ENOMEM;
	r = console_connect(rundir, ret, err);
	if (r == -ETIMEDOUT)
		container_power_forget(d, project, name);
	return r;
}

/* An action is about to change (or just changed) the state: what a status said before
 * may be stale, and so may a status that is under way. */
static void power_forget(struct berth_daemon *d, const char *project, const char *name)
{
	struct container_watcher *w = d->containers;
	struct watch *wt;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	wt = find_watch(w->active, project, name);
	if (wt)
		watch_stale(wt);
	pthread_mutex_unlock(&w->lock);
}

enum container_power container_power_quick(const struct berth_daemon *d, const char *project,
					   const char *name)
{
	struct container_watcher *w = d->containers;
	enum container_power p;
	struct watch *wt;
	unsigned epoch = 0;
	bool watched = false;

	if (w) {
		pthread_mutex_lock(&w->lock);
		wt = find_watch(w->active, project, name);
		if (wt && wt->waiting) {
			if (wt->known_running) {
				pthread_mutex_unlock(&w->lock);
				return CONTAINER_RUNNING;
			}
			epoch = wt->epoch;
			watched = true;
		}
		pthread_mutex_unlock(&w->lock);
	}
	p = container_power(d, project, name, NULL);
	if (watched && p == CONTAINER_RUNNING) {
		pthread_mutex_lock(&w->lock);
		wt = find_watch(w->active, project, name);
		if (wt && wt->waiting && wt->epoch == epoch)
			wt->known_running = true;
		pthread_mutex_unlock(&w->lock);
	}
	return p;
}

/* Worker: record the stop, clean what a killed monitor left, tell the listeners. */
static void watch_work_cb(uv_work_t *req)
{
	struct watch *wt = container_of(req, struct watch, work);
	struct berth_daemon *d = wt->w->d;
	_cleanup_free_ char *rundir = container_rundir(d, wt->project, wt->name);
	bool expected;

	if (container_power(d, wt->project, wt->name, NULL) != CONTAINER_STOPPED)
		return; /* a new monitor already runs (a quick restart from the API) */
	if (!wt->replied && rundir) {
		log_warn("The monitor of \"%s\" went away without a word; cleaning up", wt->name);
		gone_leftovers_remove(d, wt->project, wt->name, rundir);
	}
	pthread_mutex_lock(&wt->w->lock);
	expected = wt->expected;
	pthread_mutex_unlock(&wt->w->lock);
	set_status(d->db, wt->project, wt->name, CONTAINER_STOPPED);
	proxy_stop_all(d, wt->project, wt->name);
	cgroup_parent_cleanup(d);
	if (!expected)
		lifecycle(d, wt->project, wt->name,
			  wt->replied && strstr(wt->reply, "poweroff") ? "instance-shutdown"
								       : "instance-stopped");
}

static void watch_after_work_cb(uv_work_t *req, int status)
{
	struct watch *wt = container_of(req, struct watch, work);

	watch_free(wt);
}

static void watch_close_cb(uv_handle_t *h)
{
	struct watch *wt = h->data;
	struct container_watcher *w = wt->w;

	pthread_mutex_lock(&w->lock);
	unlink_watch(&w->active, wt);
	pthread_mutex_unlock(&w->lock);
	if (w->closed ||
	    uv_queue_work(w->d->loop, &wt->work, watch_work_cb, watch_after_work_cb) < 0)
		watch_free(wt);
}

static void watch_end(struct watch *wt)
{
	if (wt->closing)
		return;
	pthread_mutex_lock(&wt->w->lock);
	wt->waiting = false;
	wt->known_running = false;
	pthread_mutex_unlock(&wt->w->lock);
	wt->closing = true;
	uv_close((uv_handle_t *)&wt->pipe, watch_close_cb);
}

static void watch_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct watch *wt = h->data;

	buf->base = wt->reply + wt->reply_len;
	buf->len = sizeof(wt->reply) - 1 - wt->reply_len;
}

static void watch_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct watch *wt = s->data;

	if (n > 0) {
		wt->reply_len += (size_t)n;
		wt->reply[wt->reply_len] = '\0';
		if (strchr(wt->reply, '\n') || wt->reply_len >= sizeof(wt->reply) - 1) {
			wt->replied = berth_startswith(wt->reply, "ok");
			watch_end(wt);
		}
		return;
	}
	if (n < 0)
		watch_end(wt);
}

static void watch_write_cb(uv_write_t *req, int status)
{
	struct watch *wt = req->data;

	if (status < 0 ||
	    uv_read_start((uv_stream_t *)&wt->pipe, watch_alloc_cb, watch_read_cb) < 0) {
		watch_end(wt);
		return;
	}
	pthread_mutex_lock(&wt->w->lock);
	wt->waiting = true;
	pthread_mutex_unlock(&wt->w->lock);
}

static void watch_connect_cb(uv_connect_t *req, int status)
{
	static char line[] = "wait\n";
	struct watch *wt = req->data;
	uv_buf_t buf = uv_buf_init(line, sizeof(line) - 1);

	wt->write.data = wt;
	if (status < 0 ||
	    uv_write(&wt->write, (uv_stream_t *)&wt->pipe, &buf, 1, watch_write_cb) < 0)
		watch_end(wt);
}

static void watch_start(struct container_watcher *w, struct watch *wt)
{
	_cleanup_free_ char *rundir = container_rundir(w->d, wt->project, wt->name);
	_cleanup_free_ char *sock = rundir ? berth_strdup_printf("%s/monitor.sock", rundir) : NULL;

	wt->pipe.data = wt;
	wt->connect.data = wt;
	if (!sock || uv_pipe_init(w->d->loop, &wt->pipe, 0) < 0) {
		watch_free(wt);
		return;
	}
	pthread_mutex_lock(&w->lock);
	wt->next = w->active;
	w->active = wt;
	pthread_mutex_unlock(&w->lock);
	uv_pipe_connect(&wt->connect, &wt->pipe, sock, watch_connect_cb);
}

static void watcher_async_cb(uv_async_t *a)
{
	struct container_watcher *w = a->data;
	struct watch *list;

	pthread_mutex_lock(&w->lock);
	list = TAKE_PTR(w->pending);
	pthread_mutex_unlock(&w->lock);
	while (list) {
		struct watch *wt = list;

		list = wt->next;
		wt->next = NULL;
		if (w->closed)
			watch_free(wt);
		else
			watch_start(w, wt);
	}
}

int container_watcher_new(struct berth_daemon *d, struct container_watcher **ret)
{
	struct container_watcher *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->d = d;
	pthread_mutex_init(&w->lock, NULL);
	r = uv_async_init(d->loop, &w->async, watcher_async_cb);
	if (r < 0) {
		pthread_mutex_destroy(&w->lock);
		free(w);
		return r;
	}
	w->async.data = w;
	*ret = w;
	return 0;
}

void container_watch(struct berth_daemon *d, const char *project, const char *name)
{
	struct container_watcher *w = d->containers;
	struct watch *wt;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->closed || find_watch(w->active, project, name) ||
	    find_watch(w->pending, project, name)) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	wt = calloc(1, sizeof(*wt));
	if (wt) {
		wt->w = w;
		wt->project = strdup(project);
		wt->name = strdup(name);
		if (!wt->project || !wt->name) {
			watch_free(wt);
			wt = NULL;
		}
	}
	if (wt) {
		wt->next = w->pending;
		w->pending = wt;
	}
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
}

void container_watcher_close(struct container_watcher *w)
{
	if (!w || w->closed)
		return;
	pthread_mutex_lock(&w->lock);
	w->closed = true;
	pthread_mutex_unlock(&w->lock);
	for (struct watch *wt = w->active; wt; wt = wt->next)
		watch_end(wt);
	uv_close((uv_handle_t *)&w->async, NULL);
}

void container_watcher_free(struct container_watcher *w)
{
	if (!w)
		return;
	while (w->pending) {
		struct watch *wt = w->pending;
		w->pending = wt->next;
		watch_free(wt);
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* ---- reconciliation ---- */

int container_reconcile(struct berth_daemon *d)
{
	json_auto_t *all = NULL;
	json_t *inst;
	size_t i;
	int r = db_instance_list(d->db, NULL, &all, NULL);

	if (r < 0)
		return r;
	json_array_foreach(all, i, inst) {
		const char *project = berth_json_string(inst, "project");
		const char *name = berth_json_string(inst, "name");
		const char *status = berth_json_string(inst, "status");
		_cleanup_free_ char *rundir = container_rundir(d, project, name);
		const char *type = berth_json_string(inst, "type");
		enum container_power p;
		struct stat st;

		/* A VM's QEMU is found again at each query (vm_driver.c): nothing to attach. */
		if (type && streq(type, "virtual-machine"))
			continue;
		p = container_power(d, project, name, NULL);
		if (p != CONTAINER_STOPPED) {
			struct berth_error perr = {0};

			log_info("Instance \"%s\" is still running: re-attached", name);
			/* An unresponsive monitor still has a running container: the row says
			 * Running, not Error. */
			set_status(d->db, project, name,
				   p == CONTAINER_UNRESPONSIVE ? CONTAINER_RUNNING : p);
			container_watch(d, project, name);
			/* Helpers outlive berthd: keep those that run, restart the others. */
			if (proxy_instance_updated(d, project, name, &perr) < 0)
				log_warn("Instance \"%s\": %s, ignoring", name,
					 berth_error_msg(&perr, -EIO));
			berth_error_release(&perr);
			continue;
		}
		if ((status && !streq(status, "Stopped")) || (rundir && stat(rundir, &st) == 0)) {
			gone_leftovers_remove(d, project, name, rundir);
			proxy_stop_all(d, project, name);
			if (status && !streq(status, "Stopped")) {
				log_info("Instance \"%s\" no longer runs: marked stopped", name);
				set_status(d->db, project, name, CONTAINER_STOPPED);
			}
		}
	}
	return 0;
}
