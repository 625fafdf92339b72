/* daemon/instance/metrics.c: the instance metrics of GET /1.0/metrics (see metrics.h).
 *
 * Per running container, as LXD 5.0.2's container driver reports them: memory.stat and
 * the memory limit (lxd_memory_*), CPU seconds per CPU and mode, block I/O per device,
 * the root disk's filesystem, each interface's counters in the container's network
 * namespace, and its process count. */
#include "daemon/instance/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include "daemon/instance/common.h"
#include "daemon/instance/container.h"
#include "daemon/instance/nic.h"
#include "daemon/runtime/cgroup.h"
#include "daemon/runtime/cgroup_stat.h"
#include "daemon/runtime/spec.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct {
	const char *name;
	const char *help;
} metric_info[METRIC_TYPE_MAX] = {
	[METRIC_CPU_SECONDS_TOTAL] = {"lxd_cpu_seconds_total", "Seconds of CPU time used."},
	[METRIC_DISK_READ_BYTES_TOTAL] = {"lxd_disk_read_bytes_total", "Bytes read."},
	[METRIC_DISK_READS_COMPLETED_TOTAL] = {"lxd_disk_reads_completed_total",
					       "Reads completed."},
	[METRIC_DISK_WRITTEN_BYTES_TOTAL] = {"lxd_disk_written_bytes_total", "Bytes written."},
	[METRIC_DISK_WRITES_COMPLETED_TOTAL] = {"lxd_disk_writes_completed_total",
						"Writes completed."},
	[METRIC_FILESYSTEM_AVAIL_BYTES] = {"lxd_filesystem_avail_bytes",
					   "Bytes available to unprivileged users."},
	[METRIC_FILESYSTEM_FREE_BYTES] = {"lxd_filesystem_free_bytes", "Bytes free."},
	[METRIC_FILESYSTEM_SIZE_BYTES] = {"lxd_filesystem_size_bytes", "Filesystem size in bytes."},
	[METRIC_MEMORY_ACTIVE_ANON_BYTES] = {"lxd_memory_Active_anon_bytes",
					     "Anonymous memory on the active LRU list."},
	[METRIC_MEMORY_ACTIVE_FILE_BYTES] = {"lxd_memory_Active_file_bytes",
					     "File-backed memory on the active LRU list."},
	[METRIC_MEMORY_ACTIVE_BYTES] = {"lxd_memory_Active_bytes",
					"Memory on the active LRU list."},
	[METRIC_MEMORY_CACHED_BYTES] = {"lxd_memory_Cached_bytes", "Page cache."},
	[METRIC_MEMORY_DIRTY_BYTES] = {"lxd_memory_Dirty_bytes",
				       "Memory waiting to be written back to disk."},
	[METRIC_MEMORY_HUGEPAGES_FREE_BYTES] = {"lxd_memory_HugepagesFree_bytes",
						"Free hugetlb memory."},
	[METRIC_MEMORY_HUGEPAGES_TOTAL_BYTES] = {"lxd_memory_HugepagesTotal_bytes",
						 "Used hugetlb memory."},
	[METRIC_MEMORY_INACTIVE_ANON_BYTES] = {"lxd_memory_Inactive_anon_bytes",
					       "Anonymous memory on the inactive LRU list."},
	[METRIC_MEMORY_INACTIVE_FILE_BYTES] = {"lxd_memory_Inactive_file_bytes",
					       "File-backed memory on the inactive LRU list."},
	[METRIC_MEMORY_INACTIVE_BYTES] = {"lxd_memory_Inactive_bytes",
					  "Memory on the inactive LRU list."},
	[METRIC_MEMORY_MAPPED_BYTES] = {"lxd_memory_Mapped_bytes", "Memory-mapped files."},
	[METRIC_MEMORY_MEM_AVAILABLE_BYTES] = {"lxd_memory_MemAvailable_bytes",
					       "Memory available: limit less usage plus cache."},
	[METRIC_MEMORY_MEM_FREE_BYTES] = {"lxd_memory_MemFree_bytes",
					  "Memory free: limit less usage."},
	[METRIC_MEMORY_MEM_TOTAL_BYTES] = {"lxd_memory_MemTotal_bytes",
					   "Memory limit (the host's memory when lower)."},
	[METRIC_MEMORY_RSS_BYTES] = {"lxd_memory_RSS_bytes", "Anonymous and swap cache memory."},
	[METRIC_MEMORY_SHMEM_BYTES] = {"lxd_memory_Shmem_bytes",
				       "Swap-backed page cache (shared memory, tmpfs)."},
	[METRIC_MEMORY_SWAP_BYTES] = {"lxd_memory_Swap_bytes", "Swap in use."},
	[METRIC_MEMORY_UNEVICTABLE_BYTES] = {"lxd_memory_Unevictable_bytes",
					     "Memory that cannot be reclaimed."},
	[METRIC_MEMORY_WRITEBACK_BYTES] = {"lxd_memory_Writeback_bytes",
					   "Memory being written back to disk."},
	[METRIC_NETWORK_RECEIVE_BYTES_TOTAL] = {"lxd_network_receive_bytes_total",
						"Bytes received."},
	[METRIC_NETWORK_RECEIVE_DROP_TOTAL] = {"lxd_network_receive_drop_total",
					       "Received packets dropped."},
	[METRIC_NETWORK_RECEIVE_ERRS_TOTAL] = {"lxd_network_receive_errs_total", "Receive errors."},
	[METRIC_NETWORK_RECEIVE_PACKETS_TOTAL] = {"lxd_network_receive_packets_total",
						  "Packets received."},
	[METRIC_NETWORK_TRANSMIT_BYTES_TOTAL] = {"lxd_network_transmit_bytes_total", "Bytes sent."},
	[METRIC_NETWORK_TRANSMIT_DROP_TOTAL] = {"lxd_network_transmit_drop_total",
						"Sent packets dropped."},
	[METRIC_NETWORK_TRANSMIT_ERRS_TOTAL] = {"lxd_network_transmit_errs_total",
						"Transmit errors."},
	[METRIC_NETWORK_TRANSMIT_PACKETS_TOTAL] = {"lxd_network_transmit_packets_total",
						   "Packets sent."},
	[METRIC_PROCS_TOTAL] = {"lxd_procs_total", "Processes running."},
};

/* ---- the set ---- */

void metrics_set_release(struct metrics_set *m)
{
	for (int i = 0; i < METRIC_TYPE_MAX; i++) {
		if (m->f[i])
			fclose(m->f[i]);
		free(m->buf[i]);
	}
	*m = (struct metrics_set){0};
}

void metrics_format_value(double v, char buf[40])
{
	char e[40];
	int p, exp;

	if (isnan(v) || isinf(v)) {
		snprintf(buf, 40, "%s", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(buf, 40, "0");
		return;
	}
	/* The fewest significant digits that read back as v, then %e or %f by Go's rule
	 * for the shortest form: the exponent below -4 or from 6 up takes %e. */
	for (p = 1; p < 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	snprintf(e, sizeof(e), "%.*e", p - 1, v);
	exp = atoi(strchr(e, 'e') + 1);
	if (exp < -4 || exp >= 6)
		snprintf(buf, 40, "%s", e);
	else
		snprintf(buf, 40, "%.*f", p - 1 - exp > 0 ? p - 1 - exp : 0, v);
}

void metrics_add(struct metrics_set *m, enum metric_type type, const char *labels, double value)
{
	char v[40];

	if (m->error)
		return;
	if (!m->f[type]) {
		m->f[type] = open_memstream(&m->buf[type], &m->len[type]);
		if (!m->f[type]) {
			m->error = -ENOMEM;
			return;
		}
	}
	metrics_format_value(value, v);
	if (labels && *labels)
		fprintf(m->f[type], "%s{%s} %s\n", metric_info[type].name, labels, v);
	else
		fprintf(m->f[type], "%s %s\n", metric_info[type].name, v);
}

char *metrics_labels(const char *name, ...)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool first = true;
	va_list ap;

	if (!f)
		return NULL;
	va_start(ap, name);
	for (const char *k = name; k; k = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);

		if (!v)
			continue;
		fprintf(f, "%s%s=\"", first ? "" : ",", k);
		for (; *v; v++) {
			if (*v == '\\' || *v == '"')
				fprintf(f, "\\%c", *v);
			else if (*v == '\n')
				fputs("\\n", f);
			else
				fputc(*v, f);
		}
		fputc('"', f);
		first = false;
	}
	va_end(ap);
	if (fclose(f) != 0)
		return NULL;
	return TAKE_PTR(buf);
}

/* LXD's TYPE: procs a gauge though it ends in _total, else by the name's suffix. */
static const char *metric_kind(enum metric_type t)
{
	if (t == METRIC_PROCS_TOTAL)
		return "gauge";
	return berth_endswith(metric_info[t].name, "_total") ? "counter" : "gauge";
}

int metrics_set_render(struct metrics_set *m, char **ret)
{
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	FILE *f;
	int r = m->error;

	for (int i = 0; i < METRIC_TYPE_MAX && r == 0; i++)
		if (m->f[i] && fflush(m->f[i]) != 0)
			r = -ENOMEM;
	f = r == 0 ? open_memstream(&out, &len) : NULL;
	if (!f) {
		metrics_set_release(m);
		return r < 0 ? r : -ENOMEM;
	}
	for (int i = 0; i < METRIC_TYPE_MAX; i++) {
		if (!m->f[i])
			continue;
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric_info[i].name, metric_info[i].help,
			metric_info[i].name, metric_kind(i));
		fwrite(m->buf[i], 1, m->len[i], f);
	}
	fputs("# EOF\n", f);
	metrics_set_release(m);
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(out);
	return 0;
}

/* ---- one container ---- */

static uint64_t host_memory(void)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	unsigned long long kib = 0;
	const char *p;

	if (berth_read_file("/proc/meminfo", 1 << 16, &buf, &len) < 0)
		return 0;
	p = strstr(buf, "MemTotal:");
	if (p)
		sscanf(p, "MemTotal: %llu", &kib);
	return (uint64_t)kib * 1024;
}

static void add_memory(struct metrics_set *m, const char *base,
		       const struct runtime_cgroup_usage *u, const struct runtime_cgroup_stat *s)
{
	static const enum metric_type by_stat[MEMSTAT_MAX] = {
		[MEMSTAT_ACTIVE_ANON] = METRIC_MEMORY_ACTIVE_ANON_BYTES,
		[MEMSTAT_ACTIVE_FILE] = METRIC_MEMORY_ACTIVE_FILE_BYTES,
		[MEMSTAT_INACTIVE_ANON] = METRIC_MEMORY_INACTIVE_ANON_BYTES,
		[MEMSTAT_INACTIVE_FILE] = METRIC_MEMORY_INACTIVE_FILE_BYTES,
		[MEMSTAT_UNEVICTABLE] = METRIC_MEMORY_UNEVICTABLE_BYTES,
		[MEMSTAT_WRITEBACK] = METRIC_MEMORY_WRITEBACK_BYTES,
		[MEMSTAT_DIRTY] = METRIC_MEMORY_DIRTY_BYTES,
		[MEMSTAT_MAPPED] = METRIC_MEMORY_MAPPED_BYTES,
		[MEMSTAT_RSS] = METRIC_MEMORY_RSS_BYTES,
		[MEMSTAT_SHMEM] = METRIC_MEMORY_SHMEM_BYTES,
		[MEMSTAT_CACHE] = METRIC_MEMORY_CACHED_BYTES,
	};
	uint64_t total = host_memory(), limit = s->memory_limit;
	double cached = (double)s->memstat[MEMSTAT_CACHE];

	if (s->has_memstat) {
		for (int i = 0; i < MEMSTAT_MAX; i++)
			if (i != MEMSTAT_RSS || s->has_rss)
				metrics_add(m, by_stat[i], base, (double)s->memstat[i]);
		metrics_add(m, METRIC_MEMORY_ACTIVE_BYTES, base,
			    (double)(s->memstat[MEMSTAT_ACTIVE_ANON] +
				     s->memstat[MEMSTAT_ACTIVE_FILE]));
		metrics_add(m, METRIC_MEMORY_INACTIVE_BYTES, base,
			    (double)(s->memstat[MEMSTAT_INACTIVE_ANON] +
				     s->memstat[MEMSTAT_INACTIVE_FILE]));
	}
	/* LXD's effective limit: the cgroup's, or the host's memory when that is less. */
	if (total && limit > total)
		limit = total;
	if (limit && limit != UINT64_MAX) {
		metrics_add(m, METRIC_MEMORY_MEM_TOTAL_BYTES, base, (double)limit);
		metrics_add(m, METRIC_MEMORY_MEM_AVAILABLE_BYTES, base,
			    (double)limit - (double)u->memory + cached);
		metrics_add(m, METRIC_MEMORY_MEM_FREE_BYTES, base,
			    (double)limit - (double)u->memory);
	}
	metrics_add(m, METRIC_MEMORY_SWAP_BYTES, base, (double)u->swap);
}

static void add_cpu_io(struct metrics_set *m, const char *name, const char *project,
		       const char *type, const struct runtime_cgroup_stat *s)
{
	for (size_t i = 0; i < s->n_cpus; i++) {
		char cpu[16];
		_cleanup_free_ char *sys = NULL, *user = NULL;

		snprintf(cpu, sizeof(cpu), "%u", s->cpus[i].cpu);
		sys = metrics_labels("cpu", cpu, "mode", "system", "name", name, "project", project,
				     "type", type, NULL);
		user = metrics_labels("cpu", cpu, "mode", "user", "name", name, "project", project,
				      "type", type, NULL);
		if (!sys || !user) {
			m->error = -ENOMEM;
			return;
		}
		metrics_add(m, METRIC_CPU_SECONDS_TOTAL, sys, (double)s->cpus[i].system / 1e9);
		metrics_add(m, METRIC_CPU_SECONDS_TOTAL, user, (double)s->cpus[i].user / 1e9);
	}
	for (size_t i = 0; i < s->n_io; i++) {
		_cleanup_free_ char *l = metrics_labels("device", s->io[i].device, "name", name,
							"project", project, "type", type, NULL);

		if (!l) {
			m->error = -ENOMEM;
			return;
		}
		metrics_add(m, METRIC_DISK_READ_BYTES_TOTAL, l, (double)s->io[i].read_bytes);
		metrics_add(m, METRIC_DISK_READS_COMPLETED_TOTAL, l, (double)s->io[i].reads);
		metrics_add(m, METRIC_DISK_WRITTEN_BYTES_TOTAL, l, (double)s->io[i].written_bytes);
		metrics_add(m, METRIC_DISK_WRITES_COMPLETED_TOTAL, l, (double)s->io[i].writes);
	}
}

static const char *fstype_name(long magic)
{
	static const struct {
		long magic;
		const char *name;
	} names[] = {
		{EXT4_SUPER_MAGIC, "ext4"},
		{BTRFS_SUPER_MAGIC, "btrfs"},
		{XFS_SUPER_MAGIC, "xfs"},
		{TMPFS_MAGIC, "tmpfs"},
		{OVERLAYFS_SUPER_MAGIC, "overlayfs"},
		{SQUASHFS_MAGIC, "squashfs"},
		{0x2fc12fc1, "zfs"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].magic == magic)
			return names[i].name;
	return NULL;
}

/* The mount source of `path` when it is a mount point, as LXD names the device of a disk
 * (new string; "" otherwise). */
static char *mount_source(const char *path)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	char *line, *save = NULL;

	if (berth_read_file("/proc/self/mounts", 4 << 20, &buf, &len) < 0)
		return strdup("");
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char src[512], dst[4096];

		if (sscanf(line, "%511s %4095s", src, dst) == 2 && streq(dst, path))
			return strdup(src);
	}
	return strdup("");
}

/* The root disk, the one disk every container has (LXD labels its filesystem lines
 * with the project and name only). */
static void add_rootfs(struct metrics_set *m, const char *name, const char *project,
		       const char *rootfs)
{
	_cleanup_free_ char *dev = NULL, *l = NULL;
	struct statfs sf;

	if (!rootfs || statfs(rootfs, &sf) < 0)
		return;
	dev = mount_source(rootfs);
	l = dev ? metrics_labels("device", dev, "fstype", fstype_name((long)sf.f_type),
				 "mountpoint", "/", "name", name, "project", project, NULL)
		: NULL;
	if (!l) {
		m->error = -ENOMEM;
		return;
	}
	metrics_add(m, METRIC_FILESYSTEM_AVAIL_BYTES, l, (double)sf.f_bavail * (double)sf.f_bsize);
	metrics_add(m, METRIC_FILESYSTEM_FREE_BYTES, l, (double)sf.f_bfree * (double)sf.f_bsize);
	metrics_add(m, METRIC_FILESYSTEM_SIZE_BYTES, l, (double)sf.f_blocks * (double)sf.f_bsize);
}

static void add_network(struct metrics_set *m, const char *name, const char *project,
			const char *type, const json_t *net)
{
	static const struct {
		const char *counter;
		enum metric_type type;
	} map[] = {
		{"bytes_received", METRIC_NETWORK_RECEIVE_BYTES_TOTAL},
		{"packets_received", METRIC_NETWORK_RECEIVE_PACKETS_TOTAL},
		{"bytes_sent", METRIC_NETWORK_TRANSMIT_BYTES_TOTAL},
		{"packets_sent", METRIC_NETWORK_TRANSMIT_PACKETS_TOTAL},
		{"errors_received", METRIC_NETWORK_RECEIVE_ERRS_TOTAL},
		{"errors_sent", METRIC_NETWORK_TRANSMIT_ERRS_TOTAL},
		{"packets_dropped_inbound", METRIC_NETWORK_RECEIVE_DROP_TOTAL},
		{"packets_dropped_outbound", METRIC_NETWORK_TRANSMIT_DROP_TOTAL},
	};
	const char *dev;
	json_t *iface;

	json_object_foreach((json_t *)net, dev, iface) {
		json_t *c = json_object_get(iface, "counters");
		_cleanup_free_ char *l = metrics_labels("device", dev, "name", name, "project",
							project, "type", type, NULL);

		if (!l) {
			m->error = -ENOMEM;
			return;
		}
		for (size_t i = 0; i < ARRAY_SIZE(map); i++)
			metrics_add(m, map[i].type, l,
				    (double)json_integer_value(json_object_get(c, map[i].counter)));
	}
}

static int container_collect(struct berth_daemon *d, const char *project, const char *name,
			     struct metrics_set *m)
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = NULL;
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = NULL;
	_cleanup_free_ char *rel = NULL, *rundir = NULL, *specpath = NULL, *base = NULL;
	json_auto_t *net = NULL;
	struct runtime_cgroup_usage u = {0};
	struct runtime_cgroup_stat s = {0};
	pid_t pid = 0;
	enum container_power p = container_power(d, project, name, &pid);
	int r;

	if (p != CONTAINER_RUNNING && p != CONTAINER_FROZEN)
		return 0;
	rel = container_cgroup(d, project, name);
	rundir = container_rundir(d, project, name);
	base = metrics_labels("name", name, "project", project, "type", "container", NULL);
	if (!rel || !rundir || !base)
		return -ENOMEM;
	r = runtime_cgroup_open(rel, &cg);
	if (r >= 0)
		r = runtime_cgroup_usage(cg, &u);
	if (r >= 0)
		r = runtime_cgroup_stat_read(cg, &s);
	if (r == -ENOENT)
		return 0; /* it stopped meanwhile */
	if (r < 0)
		return r;
	add_memory(m, base, &u, &s);
	add_cpu_io(m, name, project, "container", &s);
	runtime_cgroup_stat_release(&s);
	specpath = berth_strdup_printf("%s/spec", rundir);
	if (specpath && runtime_spec_load(specpath, &spec, NULL) >= 0)
		add_rootfs(m, name, project, spec->rootfs);
	net = nic_state(rundir, pid);
	if (net)
		add_network(m, name, project, "container", net);
	metrics_add(m, METRIC_PROCS_TOTAL, base, (double)u.pids);
	return m->error;
}

int metrics_instance_collect(struct berth_daemon *d, const char *project, const json_t *inst,
			     struct metrics_set *m)
{
	const char *status = berth_json_string(inst, "status");
	const char *type = berth_json_string(inst, "type");
	const char *name = berth_json_string(inst, "name");

	if (!name || (status && streq(status, "Stopped")))
		return 0;
	if (type && !streq(type, "container"))
		return 0; /* VMs: see doc/api.md */
	return container_collect(d, project, name, m);
}
