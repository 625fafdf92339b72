/* daemon/instance/vm_driver.c: the "virtual-machine" instance driver (driver.h): one
 * QEMU process per VM (doc/vm.md, "The VM driver").
 *
 * It sits here, beside container_driver.c, because it joins the instance layer (records,
 * root volumes, events) to the pieces in daemon/vm/ and lib/qmp.c, which know nothing of
 * instances. QEMU runs detached (-daemonize: the starting process exits once QEMU is
 * ready, as berth-monitor's does) in a session of its own, so it outlives berthd; the run
 * directory ($BERTH_DIR/run/<project>_<name>) holds everything berthd needs to find it
 * again: qemu.pid, the QMP and console sockets, the configuration, the VM's own copy of
 * the OVMF variables and the console log. */
#define LOG_CATEGORY "vm"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/instance/common.h"
#include "daemon/instance/container.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/nic.h"
#include "daemon/instance/proxy.h"
#include "daemon/instance/vm_driver.h"
#include "daemon/instance/volume.h"
#include "daemon/runtime/cgroup.h"
#include "daemon/runtime/spec.h"
#include "daemon/storage/custom_volume.h"
#include "daemon/vm/config_drive.h"
#include "daemon/vm/host.h"
#include "daemon/vm/params.h"
#include "daemon/vm/qemu_config.h"
#include "daemon/vm/vmmon_client.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/netlink.h"
#include "lib/qmp.h"
#include "lib/spawn.h"
#include "lib/util.h"
#include "storage/driver.h"

#define VM_QMP_TIMEOUT_MS 5000
#define VM_START_TIMEOUT_MS 60000
#define VM_STOP_DEFAULT_S 30
#define VM_KILL_WAIT_MS 10000
#define VM_VMMON_EXIT_MS 5000
#define VM_STATE_TIMEOUT_MS 1000

static char *run_file(const char *rundir, const char *file)
{
	return berth_strdup_printf("%s/%s", rundir, file);
}

static int vm_unresponsive_error(const char *name, struct berth_error *err)
{
	return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_INTERNAL,
			       "QEMU of instance %s did not answer within %ds", name,
			       VM_QMP_TIMEOUT_MS / 1000);
}

/* ---- finding QEMU ---- */

/* The pid in the run directory's qemu.pid when that process runs, is not a zombie and is
 * this VM's QEMU (its command line names this run directory's qemu.conf); else 0. */
static pid_t qemu_pid(const char *rundir)
{
	_cleanup_free_ char *pidfile = run_file(rundir, "qemu.pid");
	_cleanup_free_ char *conf = run_file(rundir, "qemu.conf");
	_cleanup_free_ char *buf = NULL, *cmd = NULL, *stat = NULL, *path = NULL;
	size_t len = 0, slen = 0;
	const char *p;
	int pid;

	if (!pidfile || !conf || berth_read_file(pidfile, 64, &buf, &len) < 0 ||
	    sscanf(buf, "%d", &pid) != 1 || pid <= 1)
		return 0;
	path = berth_strdup_printf("/proc/%d/cmdline", pid);
	if (!path || berth_read_file(path, 1 << 16, &cmd, &len) < 0)
		return 0;
	for (p = cmd; p < cmd + len; p += strlen(p) + 1)
		if (streq(p, conf))
			break;
	if (p >= cmd + len)
		return 0;
	free(path);
	path = berth_strdup_printf("/proc/%d/stat", pid);
	if (!path || berth_read_file(path, 4096, &stat, &slen) < 0)
		return 0;
	p = strrchr(stat, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X' ? pid : 0;
}

static int qmp_open(const char *rundir, struct berth_qmp **ret, struct berth_error *err)
{
	_cleanup_free_ char *sock = run_file(rundir, "qmp.socket");

	return sock ? berth_qmp_connect(sock, VM_QMP_TIMEOUT_MS, ret, err) : -ENOMEM;
}

/* Run one QMP command in a session of its own (QEMU serves one client at a time). */
static int qmp_run(const char *rundir, const char *command, json_t **ret, struct berth_error *err)
{
	_cleanup_(berth_qmp_freep) struct berth_qmp *q = NULL;
	int r = qmp_open(rundir, &q, err);

	return r < 0 ? r : berth_qmp_execute(q, command, NULL, VM_QMP_TIMEOUT_MS, ret, err);
}

static enum instance_power rundir_power(const char *rundir, pid_t *ret_pid)
{
	json_auto_t *st = NULL;
	const char *status;
	pid_t pid = rundir ? qemu_pid(rundir) : 0;

	if (ret_pid)
		*ret_pid = pid;
	if (!pid)
		return INSTANCE_STOPPED;
	if (qmp_run(rundir, "query-status", &st, NULL) < 0)
		return qemu_pid(rundir) ? INSTANCE_UNRESPONSIVE : INSTANCE_STOPPED;
	status = berth_json_string(st, "status") ?: "";
	if (streq(status, "paused"))
		return INSTANCE_FROZEN;
	if (streq(status, "shutdown"))
		return INSTANCE_STOPPING;
	return INSTANCE_RUNNING;
}

static enum instance_power vm_power(const struct berth_daemon *d, const char *project,
				    const char *name, pid_t *ret_pid)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);

	return rundir_power(rundir, ret_pid);
}

static enum instance_power vm_power_quick(const struct berth_daemon *d, const char *project,
					  const char *name)
{
	return vm_power(d, project, name, NULL);
}

/* ---- helpers of the actions ---- */

static const char *power_status(enum instance_power p)
{
	static const char *const names[] = {"Stopped", "Running", "Frozen", "Stopping", "Error"};

	return p < INSTANCE_POWER_MAX ? names[p] : "Error";
}

static int power_code(enum instance_power p)
{
	static const int codes[] = {102, 103, 110, 107, 112};

	return p < INSTANCE_POWER_MAX ? codes[p] : 112;
}

static void set_status(struct berth_daemon *d, const char *project, const char *name,
		       enum instance_power p)
{
	db_instance_set_status(d->db, project, name, power_status(p), power_code(p), NULL);
}

static void lifecycle(struct berth_daemon *d, const char *project, const char *name,
		      const char *action)
{
	_cleanup_free_ char *url = instance_url(project, name);

	events_lifecycle(d->events, project, action, url, NULL);
}

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Wait at most `ms` for process `pidfd` to end: 0 when it did, -ETIMEDOUT. */
static int wait_exit(int pidfd, int ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : -ETIMEDOUT;
}

/* What a stopped QEMU (or a failed start) leaves that the next start must not find: its
 * pid, its sockets and the agent key of that start, in the run directory and on the config
 * drive; the kernel and initrd older versions copied here. The configuration, the
 * variables, the rest of the config drive and the console log stay. */
static void vm_macvtaps_remove(const char *rundir);

static void remove_run_files(const char *rundir)
{
	static const char *const files[] = {"qemu.pid",	    "qmp.socket", "console.socket",
					    "agent.socket", "agent.key",  "config/berth-agent.key",
					    "kernel",	    "initrd"};

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *f = run_file(rundir, files[i]);

		if (f)
			unlink(f);
	}
	vm_macvtaps_remove(rundir);
}

/* Kill the QEMU of `rundir` at once (a start that failed half-way). */
static void qemu_kill_now(const char *rundir)
{
	pid_t pid = qemu_pid(rundir);
	_cleanup_close_ int fd = pid ? pidfd_of(pid) : -EBADF;

	if (fd >= 0 && syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) == 0)
		wait_exit(fd, VM_KILL_WAIT_MS);
	remove_run_files(rundir);
}

/* ---- NICs: a tap per bridged NIC ---- */

struct vm_nics {
	struct qemu_nic nics[QEMU_PORTS_MAX];
	char macs[QEMU_PORTS_MAX][18];
	const char *bridges[QEMU_PORTS_MAX]; /* borrowed from the spec; NULL: p2p or macvtap */
	const struct runtime_nic *specs[QEMU_PORTS_MAX]; /* borrowed from the spec */
	size_t n;
	int fds[QEMU_PORTS_MAX]; /* owned: the macvtaps' /dev/tapN, QEMU's fds 3, 4... */
	size_t n_fds;
	struct runtime_spec *spec; /* owned: what nic_spec_build made */
};

static void vm_nics_release(struct vm_nics *v)
{
	for (size_t i = 0; i < v->n_fds; i++)
		close(v->fds[i]);
	v->n_fds = 0;
	runtime_spec_free(v->spec);
	v->spec = NULL;
}

/* The instance's NICs as QEMU tap NICs: network= and nictype=bridged ones (their MAC
 * and host name kept in volatile keys, their lease registered, as a container's). QEMU
 * creates each tap (not persistent: it goes with QEMU); vm_nics_attach puts it on its
 * bridge once QEMU runs. */
static int vm_nics_build(struct berth_daemon *d, const char *project, const json_t *inst,
			 struct vm_nics *v, struct berth_error *err)
{
	int r;

	v->spec = runtime_spec_new();
	if (!v->spec)
		return -ENOMEM;
	r = nic_spec_build(d, project, inst, v->spec, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < v->spec->n_nics; i++) {
		const struct runtime_nic *n = &v->spec->nics[i];
		const unsigned char *m = n->hwaddr;

		bool macvtap = n->type == RUNTIME_NIC_MACVLAN;

		if ((n->type != RUNTIME_NIC_VETH || !n->host) && !(macvtap && n->parent))
			return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
					       "NIC \"%s\": a virtual machine takes bridged, p2p "
					       "and macvlan NICs only",
					       n->name);
		if (v->n >= QEMU_PORTS_MAX - QEMU_PORT_FIRST_NIC)
			return berth_error_set(err, -E2BIG, BERTH_ERR_BAD_REQUEST,
					       "Too many NICs for a virtual machine");
		snprintf(v->macs[v->n], sizeof(v->macs[v->n]), "%02x:%02x:%02x:%02x:%02x:%02x",
			 m[0], m[1], m[2], m[3], m[4], m[5]);
		v->nics[v->n] = (struct qemu_nic){
			.name = n->name,
			.kind = macvtap ? QEMU_NIC_MACVTAP : QEMU_NIC_TAP,
			.ifname = macvtap ? NULL : n->host,
			.fd = -1, /* a macvtap's: vm_macvtaps_make */
			.hwaddr = n->has_hwaddr ? v->macs[v->n] : NULL,
			.mtu = n->mtu,
		};
		v->specs[v->n] = n;
		v->bridges[v->n++] = macvtap ? NULL : n->link;
	}
	return 0;
}

/* The run directory's list of the macvtaps this start made, one name a line: they are not
 * QEMU's, so the stop (or the next start) deletes them. */
#define VM_MACVTAPS "macvtaps"

static void vm_macvtaps_remove(const char *rundir)
{
	_cleanup_free_ char *list = run_file(rundir, VM_MACVTAPS), *buf = NULL;
	struct berth_nl nl;
	size_t len = 0;
	char *save = NULL;

	if (!list || berth_read_file(list, 4096, &buf, &len) < 0)
		return;
	if (berth_nl_open(&nl) >= 0) {
		for (char *name = strtok_r(buf, "\n", &save); name;
		     name = strtok_r(NULL, "\n", &save)) {
			struct berth_nl_link l;

			if (berth_nl_link_get(&nl, name, &l) >= 0)
				berth_nl_link_del(&nl, l.index);
		}
		berth_nl_close(&nl);
	}
	unlink(list);
}

void vm_rundir_release(const char *rundir)
{
	vm_macvtaps_remove(rundir);
}

/* Open the character device of macvtap `name` (index `index`): its /dev/tapN, made in the
 * run directory from sysfs's numbers (nothing relies on udev) and removed once open. */
static int macvtap_open(const char *rundir, const char *name, int index, int *ret,
			struct berth_error *err)
{
	_cleanup_free_ char *sys = berth_strdup_printf("/sys/class/net/%s/macvtap/tap%d/dev", name,
						       index);
	_cleanup_free_ char *node = berth_strdup_printf("%s/tap%d", rundir, index), *buf = NULL;
	unsigned maj, min;
	size_t len = 0;
	int fd;

	if (!sys || !node)
		return -ENOMEM;
	if (berth_read_file(sys, 64, &buf, &len) < 0 || sscanf(buf, "%u:%u", &maj, &min) != 2)
		return berth_error_set(err, -ENODEV, BERTH_ERR_INTERNAL,
				       "macvtap \"%s\" has no device in %s", name, sys);
	unlink(node);
	if (mknod(node, S_IFCHR | 0600, makedev(maj, min)) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mknod %s: %m", node);
	fd = open(node, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening %s: %m", node);
	unlink(node);
	if (fd < 0)
		return -EIO;
	*ret = fd;
	return 0;
}

/* A macvtap on its parent for each macvlan NIC, up, its device open as QEMU's fd 3, 4...
 * (LXD gives a VM's macvlan NIC a macvtap too). Their names go to VM_MACVTAPS first. */
static int vm_macvtaps_make(struct vm_nics *v, const char *rundir, struct berth_error *err)
{
	_cleanup_free_ char *list = run_file(rundir, VM_MACVTAPS);
	_cleanup_free_ char *names = strdup("");
	struct berth_nl nl;
	bool any = false;
	int r = 0;

	if (!list || !names)
		return -ENOMEM;
	for (size_t i = 0; i < v->n; i++)
		any |= v->nics[i].kind == QEMU_NIC_MACVTAP;
	if (!any)
		return 0;
	r = berth_nl_open(&nl);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	for (size_t i = 0; i < v->n && r >= 0; i++) {
		const struct runtime_nic *n = v->specs[i];
		struct berth_nl_link parent, tap;
		struct berth_nl_link_change up = BERTH_NL_LINK_CHANGE_INIT;
		uint8_t rnd[4];
		char name[16], *more;

		if (v->nics[i].kind != QEMU_NIC_MACVTAP)
			continue;
		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
			r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "getrandom: %m");
			break;
		}
		snprintf(name, sizeof(name), "mvt%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
		more = berth_strdup_printf("%s%s\n", names, name);
		if (!more) {
			r = -ENOMEM;
			break;
		}
		free(names);
		names = more;
		r = berth_write_file_replace(list, names, strlen(names), 0600);
		if (r >= 0)
			r = berth_nl_link_get(&nl, n->parent, &parent);
		if (r < 0) {
			berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
					"NIC \"%s\": parent \"%s\": %s", n->name, n->parent,
					strerror(-r));
			break;
		}
		r = berth_nl_macvtap_add(&nl, name, parent.index, n->mode,
					 n->has_hwaddr ? n->hwaddr : NULL, n->mtu);
		if (r >= 0)
			r = berth_nl_link_get(&nl, name, &tap);
		if (r >= 0) {
			up.up = 1;
			r = berth_nl_link_set(&nl, tap.index, &up);
		}
		if (r < 0) {
			berth_error_set(err, r, BERTH_ERR_INTERNAL,
					"NIC \"%s\": cannot make macvtap \"%s\" on \"%s\": %s",
					n->name, name, n->parent, strerror(-r));
			break;
		}
		r = macvtap_open(rundir, name, tap.index, &v->fds[v->n_fds], err);
		if (r >= 0)
			v->nics[i].fd = 3 + (int)v->n_fds++;
	}
	berth_nl_close(&nl);
	return r;
}

/* Each tap QEMU made onto its bridge (a p2p NIC's stays alone), up. */
static int vm_nics_attach(const struct vm_nics *v, struct berth_error *err)
{
	struct berth_nl nl;
	int r = v->n ? berth_nl_open(&nl) : 0;

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "netlink: %s", strerror(-r));
	for (size_t i = 0; i < v->n && r >= 0; i++) {
		struct berth_nl_link tap, br;
		struct berth_nl_link_change ch = BERTH_NL_LINK_CHANGE_INIT;

		if (v->nics[i].kind != QEMU_NIC_TAP)
			continue;
		r = berth_nl_link_get(&nl, v->nics[i].ifname, &tap);
		if (r >= 0 && v->bridges[i])
			r = berth_nl_link_get(&nl, v->bridges[i], &br);
		if (r >= 0) {
			if (v->bridges[i])
				ch.master = br.index;
			ch.up = 1;
			r = berth_nl_link_set(&nl, tap.index, &ch);
		}
		if (r < 0)
			berth_error_set(err, r, BERTH_ERR_INTERNAL,
					"Cannot put tap \"%s\" on bridge \"%s\": %s",
					v->nics[i].ifname, v->bridges[i] ?: "(none)", strerror(-r));
	}
	if (v->n)
		berth_nl_close(&nl);
	return r;
}

/* ---- devices other than NICs and the root disk ---- */

static bool dev_true(const json_t *dev, const char *key)
{
	const char *v = berth_json_string(dev, key);

	return v && (streq(v, "true") || streq(v, "1") || streq(v, "yes") || streq(v, "on"));
}

static bool dev_is(const json_t *dev, const char *type)
{
	return streq(berth_json_string(dev, "type") ?: "", type);
}

static bool root_disk_dev(const json_t *dev)
{
	return dev_is(dev, "disk") && streq(berth_json_string(dev, "path") ?: "", "/");
}

_printf_(3, 4) static int dev_refuse(struct berth_error *err, const char *name, const char *fmt,
				     ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg)
		return -ENOMEM;
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Invalid devices: Device validation failed for \"%s\": %s", name,
			       msg);
}

/* What a VM's devices may not be, checked without the database (LXD's words where LXD
 * refuses the same): proxies other than nat=true, disks with shift or raw.mount.options,
 * a shared directory's path that berth-agent's list of mounts cannot carry, a host
 * directory's relative source. */
int vm_devices_check(const json_t *devices, struct berth_error *err)
{
	const char *name, *path;
	json_t *dev;

	json_object_foreach((json_t *)devices, name, dev) {
		if (dev_is(dev, "proxy") && !dev_true(dev, "nat"))
			return dev_refuse(err, name,
					  "Only NAT mode is supported for proxies on VM instances");
		if (!dev_is(dev, "disk") || root_disk_dev(dev))
			continue;
		if (berth_json_string(dev, "shift") && berth_json_string(dev, "pool"))
			return dev_refuse(err, name,
					  "The \"shift\" property cannot be used with custom "
					  "storage volumes");
		if (dev_true(dev, "shift"))
			return dev_refuse(err, name,
					  "The \"shift\" property cannot be used with virtual "
					  "machines");
		if (*(berth_json_string(dev, "raw.mount.options") ?: ""))
			return dev_refuse(err, name,
					  "raw.mount.options cannot be used with virtual machines");
		path = berth_json_string(dev, "path");
		if (path && (*path != '/' || strpbrk(path, "\t\n")))
			return dev_refuse(err, name,
					  "The path of a directory shared with a virtual machine "
					  "must be absolute, without tabs or line breaks");
		if (path && !*(berth_json_string(dev, "pool") ?: "") &&
		    *(berth_json_string(dev, "source") ?: "") != '/')
			return dev_refuse(err, name,
					  "The source of a directory shared with a virtual "
					  "machine must be an absolute path");
	}
	return 0;
}

struct vm_disks {
	struct qemu_disk disks[QEMU_PORTS_MAX];
	char *paths[QEMU_PORTS_MAX];
	int fds[QEMU_PORTS_MAX];    /* owned: each disk's open root.img */
	int fds_ro[QEMU_PORTS_MAX]; /* owned: the same read-only (writable disks), else < 0 */
	size_t n;
	struct qemu_share shares[QEMU_PORTS_MAX];
	char *share_paths[QEMU_PORTS_MAX];
	size_t n_shares;
	char *mounts; /* the config drive's berth-mounts */
};

static void vm_disks_release(struct vm_disks *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free(v->paths[i]);
		close(v->fds[i]);
		if (v->fds_ro[i] >= 0)
			close(v->fds_ro[i]);
	}
	for (size_t i = 0; i < v->n_shares; i++)
		free(v->share_paths[i]);
	free(v->mounts);
	v->n = v->n_shares = 0;
	v->mounts = NULL;
}

/* The directory of custom volume `source` of pool `pool`, whose content type must be
 * block (`block`) or filesystem. */
static int volume_dir(struct berth_daemon *d, const char *project, const char *dname,
		      const char *pool, const char *source, bool block, char **ret,
		      struct berth_error *err)
{
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	_cleanup_free_ char *custom = NULL;
	json_auto_t *vol = NULL;
	int r = db_project_feature_project(d->db, project, "features.storage.volumes", &custom,
					   err);

	if (r >= 0)
		r = db_volume_get(d->db, pool, custom, "custom", source, &vol, err);
	if (r < 0)
		return r;
	if (streq(berth_json_string(vol, "content_type") ?: "", "block") != block)
		return dev_refuse(err, dname,
				  block ? "Custom filesystem volumes require a path to be defined"
					: "Custom block volumes cannot have a path defined");
	r = custom_volume_open(d->db, d->dir, pool, custom, source, NULL, &c, err);
	if (r < 0)
		return r;
	return storage_volume_path(c->pool, &c->vol, NULL, ret) < 0 ? -ENOMEM : 0;
}

/* Open the root.img of block volume `source` for QEMU, read-only when `ro`. Whoever had
 * the volume's directory (a container given it by a path) could have swapped the file for
 * a symlink or a device node: it is opened here, never by QEMU, without following a
 * symlink, and must be a regular file. */
static int block_volume_open(struct berth_daemon *d, const char *project, const char *dname,
			     const char *pool, const char *source, bool ro, char **ret_path,
			     int *ret_fd, int *ret_fd_ro, struct berth_error *err)
{
	_cleanup_free_ char *dir = NULL, *path = NULL;
	_cleanup_close_ int dfd = -EBADF, fd = -EBADF, ro_fd = -EBADF;
	struct stat st;
	int r = volume_dir(d, project, dname, pool, source, true, &dir, err);

	if (r < 0)
		return r;
	path = run_file(dir, "root.img");
	if (!path)
		return -ENOMEM;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd >= 0)
		fd = openat(dfd, "root.img",
			    (ro ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
				    O_CLOEXEC);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": the file of block volume \"%s\" (%s): %m",
				       dname, source, path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return berth_error_set(err, -EPERM, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": the file of block volume \"%s\" (%s) is "
				       "not a regular file",
				       dname, source, path);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fcntl %s: %m", path);
	/* QEMU opens a writable drive read-only first: the same file again, read-only,
	 * through the open fd's own link (no path lookup) */
	if (!ro) {
		char self[64];

		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		ro_fd = open(self, O_RDONLY | O_CLOEXEC);
		if (ro_fd < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Opening %s read-only: %m", path);
	}
	*ret_path = TAKE_PTR(path);
	*ret_fd = TAKE_FD(fd);
	*ret_fd_ro = TAKE_FD(ro_fd);
	return 0;
}

/* A disk device with a path: the directory of a filesystem volume or of the host, shared
 * as 9p and listed in berth-mounts for berth-agent to mount at `path`. */
static int vm_share_add(struct berth_daemon *d, const char *project, const char *name,
			const json_t *dev, struct vm_disks *v, struct berth_error *err)
{
	const char *pool = berth_json_string(dev, "pool");
	const char *source = berth_json_string(dev, "source") ?: "";
	bool ro = dev_true(dev, "readonly");
	char **dir = &v->share_paths[v->n_shares];
	struct stat st;
	char *more;
	int r;

	if (v->n_shares >= ARRAY_SIZE(v->shares))
		return berth_error_set(err, -E2BIG, BERTH_ERR_BAD_REQUEST,
				       "Too many shared directories for a virtual machine");
	if (pool && *pool) {
		r = volume_dir(d, project, name, pool, source, false, dir, err);
	} else if (*source != '/') {
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": the source \"%s\" of a shared directory "
				       "must be an absolute path",
				       name, source);
	} else {
		*dir = strdup(source);
		r = *dir ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	v->n_shares++;
	if (stat(*dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return berth_error_set(err, -ENOTDIR, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": \"%s\" is not a directory (a virtual machine "
				       "takes shared directories and custom block volumes)",
				       name, *dir);
	v->shares[v->n_shares - 1] =
		(struct qemu_share){.name = name, .path = *dir, .readonly = ro};
	more = berth_strdup_printf("%slxd_%s\t%s\t%s\n", v->mounts ?: "", name, ro ? "ro" : "rw",
				   berth_json_string(dev, "path"));
	if (!more)
		return -ENOMEM;
	free(v->mounts);
	v->mounts = more;
	return 0;
}

/* The instance's disk devices: custom block volumes as QEMU disks, directories as
 * shares. */
static int vm_disks_build(struct berth_daemon *d, const char *project, const json_t *inst,
			  struct vm_disks *v, struct berth_error *err)
{
	const json_t *devices = json_object_get(inst, "expanded_devices");
	const char *name;
	json_t *dev;
	int r = vm_devices_check(devices, err);

	if (r < 0)
		return r;
	json_object_foreach((json_t *)devices, name, dev) {
		if (!dev_is(dev, "disk") || root_disk_dev(dev))
			continue;
		if (berth_json_string(dev, "path")) {
			r = vm_share_add(d, project, name, dev, v, err);
			if (r < 0)
				return r;
			continue;
		}
		if (v->n >= ARRAY_SIZE(v->disks))
			return berth_error_set(err, -E2BIG, BERTH_ERR_BAD_REQUEST,
					       "Too many disks for a virtual machine");
		r = block_volume_open(d, project, name, berth_json_string(dev, "pool") ?: "",
				      berth_json_string(dev, "source") ?: "",
				      dev_true(dev, "readonly"), &v->paths[v->n], &v->fds[v->n],
				      &v->fds_ro[v->n], err);
		if (r < 0)
			return r;
		v->disks[v->n] = (struct qemu_disk){
			.name = name,
			.path = v->paths[v->n],
			.readonly = dev_true(dev, "readonly"),
			.fd = -1, /* vm_start_qemu numbers it after the macvtaps' */
		};
		v->n++;
	}
	return 0;
}

/* ---- QEMU's cgroup: <berth's parent>/<project>_<name>, as a container's ---- */

/* Move the running QEMU into its cgroup (no limits: the guest's RAM and CPUs are QEMU's
 * own), so that what it uses is accounted under berth's. A failure is only logged: the
 * VM runs the same without it. */
static void qemu_cgroup_enter(const struct berth_daemon *d, const char *project, const char *name,
			      pid_t pid)
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = NULL;
	_cleanup_free_ char *rel = container_cgroup(d, project, name);
	struct runtime_cgroup_limits none = {0};
	struct berth_error e = {0};
	int r = rel ? runtime_cgroup_open(rel, &cg) : -ENOMEM;

	if (r >= 0)
		r = runtime_cgroup_create(cg, &none, &e);
	if (r >= 0)
		r = runtime_cgroup_attach(cg, pid);
	if (r < 0)
		log_warn("Instance \"%s\": QEMU stays outside its cgroup: %s", name,
			 berth_error_msg(&e, r));
	berth_error_release(&e);
}

/* Remove the (empty) cgroup of a stopped VM. */
static void qemu_cgroup_remove(const struct berth_daemon *d, const char *project, const char *name)
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = NULL;
	_cleanup_free_ char *rel = container_cgroup(d, project, name);

	if (rel && runtime_cgroup_open(rel, &cg) >= 0 && runtime_cgroup_wait_empty(cg, 2000) >= 0)
		runtime_cgroup_destroy(cg);
}

/* ---- start ---- */

/* The raw root.img of the VM's volume, grown (never shrunk) to `size`. */
static int root_disk(struct berth_daemon *d, const char *project, const char *name, uint64_t size,
		     char **ret, struct berth_error *err)
{
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	_cleanup_free_ char *dir = NULL;
	int r = instance_volume_open(d, project, name, &v, err);

	if (r < 0)
		return r;
	if (!v.pool || storage_volume_path(v.pool, &v.vol, NULL, &dir) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" has no root volume", name);
	*ret = run_file(dir, "root.img");
	return *ret ? vm_disk_grow(*ret, size, name, err) : -ENOMEM;
}

/* The VM's own copy of the OVMF variables, made at its first start and kept. */
static int vars_copy(const char *from, const char *to, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r;

	if (access(to, F_OK) == 0)
		return 0;
	r = berth_read_file(from, 64u << 20, &buf, &len);
	if (r >= 0)
		r = berth_write_file_atomic(to, buf, len, 0600);
	return r < 0 ? berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Cannot copy the OVMF variables \"%s\": %s", from,
				       strerror(-r))
		     : 0;
}

/* Write the configuration and run QEMU with -daemonize: it returns once QEMU runs. */
static int qemu_launch(const struct qemu_vm *vm, const char *conf, const int *fds, size_t n_fds,
		       struct berth_error *err)
{
	_cleanup_free_ char *text = NULL;
	char **argv = NULL;
	size_t n = 0;
	int r = qemu_config_render(vm, &text, err);

	if (r < 0)
		return r;
	r = berth_write_file_replace(conf, text, strlen(text), 0600);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing \"%s\": %s", conf,
				       strerror(-r));
	r = qemu_config_argv(vm, conf, &argv, err);
	if (r < 0)
		return r;
	while (argv[n])
		n++;
	{
		const char *full[n + 2];
		_cleanup_(berth_spawn_release) struct berth_spawn s = {
			.argv = full,
			.timeout_ms = VM_START_TIMEOUT_MS,
			.flags = BERTH_SPAWN_SETSID,
			.io = {BERTH_SPAWN_DEFAULT, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_TO_STDOUT},
			.extra_fds = fds,
			.n_extra_fds = n_fds,
		};

		for (size_t i = 0; i < n; i++)
			full[i] = argv[i];
		full[n] = "-daemonize";
		full[n + 1] = NULL;
		r = berth_spawn_run(&s, err);
	}
	qemu_config_argv_free(argv);
	return r;
}

struct vm_paths {
	char *conf, *pid, *qmp, *console, *log, *qlog, *vars, *agent, *key, *config;
	char *kernel, *initrd; /* in the instance's volume, set by vm_boot_setup */
};

static void vm_paths_release(struct vm_paths *p)
{
	free(p->conf), free(p->pid), free(p->qmp), free(p->console), free(p->log);
	free(p->qlog), free(p->vars), free(p->agent), free(p->key), free(p->config);
	free(p->kernel), free(p->initrd);
}

static int vm_paths_of(const char *rundir, struct vm_paths *p)
{
	p->conf = run_file(rundir, "qemu.conf");
	p->pid = run_file(rundir, "qemu.pid");
	p->qmp = run_file(rundir, "qmp.socket");
	p->console = run_file(rundir, "console.socket");
	p->log = run_file(rundir, "console.log");
	p->qlog = run_file(rundir, "qemu.log");
	p->vars = run_file(rundir, "qemu.nvram");
	p->agent = run_file(rundir, "agent.socket");
	p->key = run_file(rundir, "agent.key");
	p->config = run_file(rundir, "config");
	return p->conf && p->pid && p->qmp && p->console && p->log && p->qlog && p->vars &&
			       p->agent && p->key && p->config
		       ? 0
		       : -ENOMEM;
}

/* How the VM boots: the kernel and initrd that were copied out of the image's disk when
 * it was unpacked (kept beside root.img in the volume; the guest's own disk is never
 * parsed on the host), when the image names them and boot.direct is not false; else
 * OVMF with the VM's own copy of its variables. */
static int vm_boot_setup(const json_t *inst, const char *disk, struct vm_paths *p,
			 struct qemu_vm *vm, struct berth_error *err)
{
	const struct vm_host *h = vm_host_get();
	_cleanup_free_ char *dir = strdup(disk);
	struct vm_direct_boot boot;
	char *slash;
	int r = vm_params_direct_boot(inst, &boot, err);

	if (r < 0)
		return r;
	if (r > 0) {
		slash = dir ? strrchr(dir, '/') : NULL;
		if (!slash)
			return -ENOMEM;
		*slash = '\0';
		p->kernel = run_file(dir, VM_BOOT_KERNEL);
		p->initrd = boot.initrd ? run_file(dir, VM_BOOT_INITRD) : NULL;
		if (!p->kernel || (boot.initrd && !p->initrd))
			return -ENOMEM;
		if (access(p->kernel, R_OK) == 0 && (!p->initrd || access(p->initrd, R_OK) == 0)) {
			vm->kernel = p->kernel;
			vm->initrd = p->initrd;
			vm->cmdline = boot.cmdline;
			return 0;
		}
		/* An image volume unpacked before the copies were made there, or whose copy
		 * failed (logged at unpack): the image boots through its firmware too. */
		log_warn("Instance \"%s\": no kernel copied from its image for direct boot; "
			 "booting through the firmware",
			 berth_json_string(inst, "name") ?: "?");
	}
	vm->ovmf_code = h->ovmf_code;
	vm->ovmf_vars = p->vars;
	return vars_copy(h->ovmf_vars, p->vars, err);
}

/* berth-agent's side of this start: a fresh key in agent.key (0400, for berth-vmmon) and
 * the config drive (the host's berth-agent with the same key, the cloud-init keys, the
 * instance's name), which QEMU shares with the guest as the 9p tag "config". */
static int agent_prepare(const json_t *inst, const struct vm_paths *p, const char *mounts,
			 struct berth_error *err)
{
	const json_t *cfg = json_object_get(inst, "expanded_config");
	_cleanup_free_ char *agent = NULL;
	uint8_t key[AGENT_KEY_LEN];
	char hex[2 * AGENT_KEY_LEN + 2];
	struct config_drive cd = {
		.key = key,
		.name = berth_json_string(inst, "name"),
		.user_data = berth_json_string(cfg, "cloud-init.user-data"),
		.vendor_data = berth_json_string(cfg, "cloud-init.vendor-data"),
		.network_config = berth_json_string(cfg, "cloud-init.network-config"),
		.mounts = mounts,
	};
	int r = berth_program_find("berth-agent", &agent);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Cannot find berth-agent (set BERTH_AGENT)");
	r = config_drive_new_key(key);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot draw the agent key: %s",
				       strerror(-r));
	config_drive_key_hex(key, hex);
	r = berth_write_file_replace(p->key, hex, strlen(hex), 0400);
	explicit_bzero(hex, sizeof(hex));
	if (r < 0)
		berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing \"%s\": %s", p->key,
				strerror(-r));
	cd.agent_path = agent;
	if (r >= 0)
		r = config_drive_build(p->config, &cd, err);
	explicit_bzero(key, sizeof(key));
	return r;
}

static int vm_start_qemu(struct berth_daemon *d, const char *project, const json_t *inst,
			 const char *rundir, struct berth_error *err)
{
	const struct vm_host *h = vm_host_get();
	const char *name = berth_json_string(inst, "name");
	_cleanup_(vm_paths_release) struct vm_paths p = {0};
	_cleanup_free_ char *disk = NULL;
	_cleanup_(vm_nics_release) struct vm_nics nics = {0};
	_cleanup_(vm_disks_release) struct vm_disks disks = {0};
	char uuid[37];
	uint64_t size = 0;
	struct qemu_vm vm = {
		.name = name,
		.uuid = uuid,
		.machine = QEMU_MACHINE_Q35,
		.root_format = QEMU_DISK_RAW,
		.root_bus = QEMU_DISK_VIRTIO_BLK,
	};
	int r = vm_host_require(h, err);

	if (r >= 0)
		r = vm_params_limits(inst, &vm.cpus, &vm.memory, err);
	if (r >= 0)
		r = vm_params_root_size(inst, &size, err);
	if (r >= 0)
		r = root_disk(d, project, name, size, &disk, err);
	if (r >= 0)
		r = berth_mkdir_p(rundir, 0700) < 0 ? -ENOMEM : vm_paths_of(rundir, &p);
	if (r >= 0)
		r = vm_boot_setup(inst, disk, &p, &vm, err);
	if (r >= 0)
		r = vm_nics_build(d, project, inst, &nics, err);
	if (r >= 0)
		r = vm_disks_build(d, project, inst, &disks, err);
	if (r >= 0)
		r = agent_prepare(inst, &p, disks.mounts, err);
	if (r < 0)
		return r;
	vm_params_uuid(project, name, uuid);
	vm.qemu = h->qemu;
	vm.accel = h->kvm ? QEMU_ACCEL_KVM : QEMU_ACCEL_TCG;
	vm.root_disk = disk;
	vm.console_socket = p.console;
	vm.console_log = p.log;
	vm.qmp_socket = p.qmp;
	vm.pidfile = p.pid;
	vm.log_file = p.qlog;
	vm.agent_socket = p.agent;
	vm.config_dir = p.config;
	vm.nics = nics.nics;
	vm.n_nics = nics.n;
	vm.disks = disks.disks;
	vm.n_disks = disks.n;
	vm.shares = disks.shares;
	vm.n_shares = disks.n_shares;
	r = vm_macvtaps_make(&nics, rundir, err);
	if (r >= 0) {
		/* QEMU's fds 3, 4...: the macvtaps', then the disks' */
		int fds[3 * QEMU_PORTS_MAX];
		size_t n_fds = 0;

		for (size_t i = 0; i < nics.n_fds; i++)
			fds[n_fds++] = nics.fds[i];
		for (size_t i = 0; i < disks.n; i++) {
			disks.disks[i].fd = 3 + (int)n_fds;
			fds[n_fds++] = disks.fds[i];
			if (disks.fds_ro[i] < 0)
				continue;
			disks.disks[i].fd_ro = 3 + (int)n_fds;
			fds[n_fds++] = disks.fds_ro[i];
		}
		r = qemu_launch(&vm, p.conf, fds, n_fds, err);
	}
	if (r < 0)
		return berth_error_wrap(err, r, "Starting QEMU for instance \"%s\"", name);
	r = vm_nics_attach(&nics, err);
	if (r < 0)
		qemu_kill_now(rundir);
	return r;
}

static void vmmon_wait_gone(const char *rundir, const char *name);

static int vm_start(struct berth_daemon *d, const char *project, json_t *inst,
		    struct berth_error *err)
{
	const char *name = berth_json_string(inst, "name");
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	int r;

	if (!rundir)
		return -ENOMEM;
	if (qemu_pid(rundir))
		return -EALREADY;
	remove_run_files(rundir);
	r = vm_start_qemu(d, project, inst, rundir, err);
	if (r < 0) {
		qemu_kill_now(rundir);
		return r;
	}
	qemu_cgroup_enter(d, project, name, qemu_pid(rundir));
	r = vmmon_start(rundir, err);
	if (r < 0) {
		qemu_kill_now(rundir);
		qemu_cgroup_remove(d, project, name);
		return berth_error_wrap(err, r, "Starting berth-vmmon for instance \"%s\"", name);
	}
	/* nat proxies: nftables rules to the guest's static address, as a container's */
	r = proxy_sync(d, project, name, json_object_get(inst, "expanded_devices"), err);
	if (r < 0) {
		proxy_stop_all(d, project, name);
		qemu_kill_now(rundir);
		vmmon_wait_gone(rundir, name);
		qemu_cgroup_remove(d, project, name);
		return r;
	}
	set_status(d, project, name, INSTANCE_RUNNING);
	lifecycle(d, project, name, "instance-started");
	return 0;
}

/* ---- stop, restart, freeze ---- */

/* berth-vmmon exits when its QEMU does: wait (bounded) until monitor.sock no longer
 * answers, so that a stop leaves no process behind. */
static void vmmon_wait_gone(const char *rundir, const char *name)
{
	uint64_t deadline = berth_monotonic_ns() + (uint64_t)VM_VMMON_EXIT_MS * 1000000;

	for (;;) {
		bool ready = false;
		int r = vmmon_status(rundir, &ready, NULL, NULL);

		if (r == -ENOENT || r == -ECONNREFUSED)
			return;
		if (berth_monotonic_ns() >= deadline) {
			log_warn("Instance \"%s\": berth-vmmon still answers %ds after QEMU "
				 "exited, ignoring",
				 name, VM_VMMON_EXIT_MS / 1000);
			return;
		}
		usleep(50 * 1000);
	}
}

/* Kill QEMU `pidfd` and wait for it. */
static int kill_qemu(const char *name, int pidfd, struct berth_error *err)
{
	if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot kill QEMU of instance %s: %m", name);
	if (wait_exit(pidfd, VM_KILL_WAIT_MS) < 0)
		return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_INTERNAL,
				       "QEMU of instance %s did not die within %ds", name,
				       VM_KILL_WAIT_MS / 1000);
	return 0;
}

/* The ACPI power button (a frozen guest is let run first, or nothing could answer it),
 * then up to `timeout_s` for the guest to power off. */
static int clean_stop(const char *rundir, int pidfd, int timeout_s)
{
	struct berth_error e = {0};
	int r;

	qmp_run(rundir, "cont", NULL, NULL);
	r = qmp_run(rundir, "system_powerdown", NULL, &e);

	if (r < 0) {
		log_info("ACPI power button: %s", berth_error_msg(&e, r));
		berth_error_release(&e);
		return r;
	}
	return wait_exit(pidfd, timeout_s * 1000);
}

static int vm_stop(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		   bool force, struct berth_error *err)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	_cleanup_close_ int pidfd = -EBADF;
	bool clean = false;
	pid_t pid;
	int r = 0;

	if (!rundir)
		return -ENOMEM;
	pid = qemu_pid(rundir);
	if (pid)
		pidfd = pidfd_of(pid);
	if (pidfd >= 0 && !force)
		clean = clean_stop(rundir, pidfd, timeout_s < 0 ? VM_STOP_DEFAULT_S : timeout_s) ==
			0;
	if (pidfd >= 0 && !clean) {
		if (!force)
			log_info("Instance \"%s\" did not power off in time: killing QEMU", name);
		r = kill_qemu(name, pidfd, err);
	}
	if (r < 0)
		return r;
	vmmon_wait_gone(rundir, name);
	remove_run_files(rundir);
	proxy_stop_all(d, project, name);
	qemu_cgroup_remove(d, project, name);
	set_status(d, project, name, INSTANCE_STOPPED);
	lifecycle(d, project, name, clean ? "instance-shutdown" : "instance-stopped");
	return 0;
}

static int vm_restart(struct berth_daemon *d, const char *project, const char *name, int timeout_s,
		      bool force, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	int r = vm_stop(d, project, name, timeout_s, force, err);

	if (r >= 0)
		r = instance_expand_load(d->db, project, name, &inst, err);
	if (r >= 0)
		r = vm_start(d, project, inst, err);
	if (r >= 0)
		lifecycle(d, project, name, "instance-restarted");
	return r;
}

static int vm_freeze(struct berth_daemon *d, const char *project, const char *name, bool freeze,
		     struct berth_error *err)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	int r;

	if (!rundir)
		return -ENOMEM;
	if (!qemu_pid(rundir))
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "The instance isn't running");
	r = qmp_run(rundir, freeze ? "stop" : "cont", NULL, err);
	if (r < 0)
		return r;
	set_status(d, project, name, freeze ? INSTANCE_FROZEN : INSTANCE_RUNNING);
	lifecycle(d, project, name, freeze ? "instance-paused" : "instance-resumed");
	return 0;
}

/* ---- state, console ---- */

/* QEMU's resident memory (bytes) and CPU time (ns) from /proc. */
static void qemu_usage(pid_t pid, uint64_t *ret_rss, uint64_t *ret_cpu_ns)
{
	_cleanup_free_ char *path = berth_strdup_printf("/proc/%d/stat", (int)pid);
	_cleanup_free_ char *buf = NULL;
	unsigned long utime = 0, stime = 0;
	long rss = 0, tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	size_t len = 0;
	const char *p;

	*ret_rss = *ret_cpu_ns = 0;
	if (!path || berth_read_file(path, 4096, &buf, &len) < 0 || !(p = strrchr(buf, ')')))
		return;
	/* after ")": state(3) ... utime(14) stime(15) ... rss(24) */
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
		   "%*u %*u %ld",
		   &utime, &stime, &rss) != 3)
		return;
	*ret_rss = (uint64_t)rss * (uint64_t)page;
	*ret_cpu_ns = (uint64_t)(utime + stime) *
		      (1000000000ull / (uint64_t)(tick > 0 ? tick : 100));
}

int vm_monitor_ensure(const struct berth_daemon *d, const char *project, const char *name,
		      char **ret_rundir, struct berth_error *err)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	bool ready = false;
	int r;

	if (!rundir)
		return -ENOMEM;
	if (!qemu_pid(rundir))
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "Instance is not running");
	r = vmmon_status(rundir, &ready, NULL, NULL);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		log_info("Instance \"%s\": no berth-vmmon answers, starting one", name);
		r = vmmon_start(rundir, err);
		if (r < 0)
			return berth_error_wrap(err, r, "Starting berth-vmmon for instance \"%s\"",
						name);
	}
	*ret_rundir = TAKE_PTR(rundir);
	return 0;
}

/* What the agent says of the guest (network, memory, disk, processes) into `st`, when it
 * answers within VM_STATE_TIMEOUT_MS: a slow or absent agent leaves QEMU's figures. */
static void vm_state_guest(const struct berth_daemon *d, const char *project, const char *name,
			   json_t *st)
{
	static const char *const keys[] = {"network", "disk", "processes"};
	_cleanup_free_ char *rundir = container_rundir(d, project, name), *again = NULL;
	json_auto_t *g = NULL;
	json_t *mem;
	int r = rundir ? vmmon_state(rundir, &g, VM_STATE_TIMEOUT_MS, NULL) : -ENOMEM;

	/* no vmmon (killed): start it again, once */
	if ((r == -ENOENT || r == -ECONNREFUSED) &&
	    vm_monitor_ensure(d, project, name, &again, NULL) >= 0)
		r = vmmon_state(again, &g, VM_STATE_TIMEOUT_MS, NULL);
	if (r < 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (json_object_get(g, keys[i]))
			json_object_set(st, keys[i], json_object_get(g, keys[i]));
	mem = json_object_get(g, "memory");
	if (json_is_object(mem))
		json_object_update(json_object_get(st, "memory"), mem);
}

static json_t *vm_state(const struct berth_daemon *d, const char *project, const char *name)
{
	pid_t pid = 0;
	enum instance_power p = vm_power(d, project, name, &pid);
	uint64_t rss = 0, cpu = 0;
	json_t *st;

	if (pid)
		qemu_usage(pid, &rss, &cpu);
	st = json_pack("{s:s, s:i, s:{}, s:{s:I, s:I, s:I, s:i}, s:{}, s:i, s:i, s:{s:I}}",
		       "status", power_status(p), "status_code", power_code(p), "disk", "memory",
		       "usage", (json_int_t)rss, "usage_peak", (json_int_t)0, "swap_usage",
		       (json_int_t)0, "swap_usage_peak", 0, "network", "pid", (int)pid, "processes",
		       -1, "cpu", "usage", (json_int_t)cpu);
	if (st && p == INSTANCE_RUNNING)
		vm_state_guest(d, project, name, st);
	return st;
}

static int vm_console_open(struct berth_daemon *d, const char *project, const char *name, int *ret,
			   struct berth_error *err)
{
	_cleanup_free_ char *rundir = container_rundir(d, project, name);
	_cleanup_free_ char *sock = rundir ? run_file(rundir, "console.socket") : NULL;
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (!sock)
		return -ENOMEM;
	if (!qemu_pid(rundir))
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "Instance is not running");
	if (strlen(sock) >= sizeof(sa.sun_path))
		return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_INTERNAL,
				       "Console socket path too long: %s", sock);
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot connect to the console of instance %s: %m", name);
	*ret = TAKE_FD(fd);
	return 0;
}

/* ---- what a running VM cannot take yet ---- */

/* A VM has no exec helper: commands run only through berth-vmmon's monitor.sock. */
static int vm_exec_helper(char **ret)
{
	*ret = NULL;
	return -ENOENT;
}

static int vm_update_limits(struct berth_daemon *d, const char *project, const json_t *before,
			    const json_t *after, struct berth_error *err)
{
	return 0; /* read at the next start: vm_next_start_notice says so */
}

static bool not_proxy(const json_t *dev)
{
	return !dev_is(dev, "proxy");
}

static int vm_update_devices(struct berth_daemon *d, const char *project, const json_t *before,
			     const json_t *after, struct berth_error *err)
{
	json_auto_t *gone = container_devices_diff(before, after, not_proxy);
	json_auto_t *added = container_devices_diff(after, before, not_proxy);

	if (!gone || !added)
		return -ENOMEM;
	/* nat proxies are the host's rules: update_outside applies them */
	if (json_object_size(gone) == 0 && json_object_size(added) == 0)
		return 0;
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "Devices cannot be changed on a running virtual machine yet: stop "
			       "it first");
}

/* The stored devices are checked as a VM's (a refusal puts the old record back), and a
 * running VM's nat proxies follow them. */
static int vm_update_outside(struct berth_daemon *d, const char *project, const char *name,
			     struct berth_error *err)
{
	json_auto_t *inst = NULL;
	int r = instance_expand_load(d->db, project, name, &inst, err);

	if (r >= 0)
		r = vm_devices_check(json_object_get(inst, "expanded_devices"), err);
	if (r < 0 || vm_power_quick(d, project, name) == INSTANCE_STOPPED)
		return r;
	return proxy_sync(d, project, name, json_object_get(inst, "expanded_devices"), err);
}

static char *vm_next_start_notice(struct berth_daemon *d, const char *project, const json_t *before,
				  const json_t *after)
{
	static const char *const keys[] = {"limits.cpu", "limits.memory"};
	const json_t *b = json_object_get(before, "expanded_config");
	const json_t *a = json_object_get(after, "expanded_config");

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *x = berth_json_string(b, keys[i]), *y = berth_json_string(a, keys[i]);

		if ((x || y) && (!x || !y || !streq(x, y)))
			return strdup("limits.cpu and limits.memory of a running virtual "
				      "machine apply at its next start");
	}
	return NULL;
}

const struct instance_driver vm_driver = {
	.type = "virtual-machine",
	.power = vm_power,
	.power_quick = vm_power_quick,
	.unresponsive_error = vm_unresponsive_error,
	.run_dir = container_rundir,
	.exec_helper = vm_exec_helper,
	.console_open = vm_console_open,
	.start = vm_start,
	.stop = vm_stop,
	.restart = vm_restart,
	.freeze = vm_freeze,
	.state = vm_state,
	.update_limits = vm_update_limits,
	.update_devices = vm_update_devices,
	.update_outside = vm_update_outside,
	.next_start_notice = vm_next_start_notice,
	.devices_release = nic_release_leases,
	.devices_forget = nic_forget_volatile,
};
