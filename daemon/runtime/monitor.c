/* daemon/runtime/monitor.c: the per-container monitor (see monitor.h, doc/runtime.md).
 *
 * One process, one poll() loop: the listening socket, its clients, the console pty, a
 * pidfd of PID 1 and a signalfd. States:
 *
 *   BOOTING --(PID 1 ready, see init_ready())--> RUNNING --(stop/restart/kill)--> STOPPING
 *      |                                        |  ^                            |
 *      +--(PID 1 died: start failed)--> DONE    |  +--(reboot, restart)---------+
 *                                               +--(poweroff, exit)--> DONE <---+
 *
 * The child side (clone with new namespaces, then mounts and exec of init) is
 * child_main(); it talks to the monitor over a SOCK_SEQPACKET pair that closes on exec.
 *
 * `exec` requests run a command in the container without a helper process: the monitor
 * forks it straight into the container's pid namespace (exec_start()), the child joins
 * the cgroups and the other namespaces and execs; its pidfd and a close-on-exec pipe are
 * watched by the loop, which reports "started", "failed" and "exit" to the client. */
#include "daemon/runtime/monitor.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <time.h>

#include "daemon/runtime/cgroup.h"
#include "daemon/runtime/console.h"
#include "daemon/runtime/exec.h"
#include "daemon/runtime/idmap.h"
#include "daemon/runtime/mounts.h"
#include "daemon/runtime/net.h"
#include "daemon/runtime/security.h"
#include "daemon/runtime/spec.h"
#include "lib/util.h"

/* How often a booting PID 1 is checked for readiness. */
#define READY_POLL_NS 1000000ULL

enum monitor_state { ST_BOOTING, ST_RUNNING, ST_STOPPING, ST_DONE };
enum stop_kind { STOP_NONE, STOP_STOP, STOP_RESTART };
enum client_kind { CL_NEW, CL_WAIT, CL_CONSOLE, CL_STOP, CL_RESTART, CL_EXEC };

/* The longest request: an exec's options, command and environment, %-encoded. */
#define REQUEST_MAX (256u << 10)
/* The stack of an exec request's child while it shares our memory. */
#define EXEC_CHILD_STACK (256u << 10)
/* How many clients and exec'd commands one poll() watches (the rest wait a turn). */
#define POLL_CLIENTS 64
#define POLL_EXECS 256

struct exec_child;

struct client {
	struct client *next;
	int fd;			/* owned */
	enum client_kind kind;
	char *buf;		/* owned: the request (or, for CL_EXEC, lines) being read */
	size_t len, cap;
	int fds[3];		/* owned or -EBADF: an exec's stdin, stdout, stderr */
	size_t nfds;
	struct exec_child *exec; /* CL_EXEC: its command, NULL once reaped */
};

/* A command run by an `exec` request, our child until reaped. */
struct exec_child {
	struct exec_child *next;
	pid_t pid;
	int pidfd;		/* owned */
	int fail_fd;		/* owned, -EBADF once read: EOF when it exec'd, else a
				 * struct runtime_exec_failure */
	struct client *client;	/* borrowed, NULL once the client left */
};

struct monitor {
	char *rundir;			/* owned */
	struct runtime_spec *spec;	/* owned */
	struct runtime_cgroup *cg;	/* owned */
	struct runtime_console *console; /* owned */
	int listen_fd;
	int signal_fd;
	int report_fd;			/* pipe to `start`, -EBADF once told */
	int init_pidfd;
	pid_t init_pid;
	int pidns_fd;			/* our own pid namespace, to come back to after an exec */
	bool exec_forks_logged;		/* exec_clone() said once why it forks */
	bool frozen;			/* by a `freeze` request, until `unfreeze` or a stop */
	struct runtime_exec_cgroups exec_cgroups; /* PID 1's, for exec'd commands */
	void *exec_stack;		/* EXEC_CHILD_STACK bytes, mapped at the first exec */
	cpu_set_t cpus;			/* our affinity at start, for exec'd commands */
	bool have_cpus;
	int stop_signal;
	enum monitor_state state;
	enum stop_kind stop_kind;
	bool killed;			/* SIGKILL was how it ended */
	uint64_t deadline_ns;		/* next readiness check (BOOTING) or stop timeout
					 * (STOPPING); 0: none */
	uint64_t exec_ns;		/* when PID 1 was exec'd */
	char *reason;			/* owned: how the container ended */
	struct client *clients;		/* owned list */
	struct exec_child *execs;	/* owned list */
	/* The seccomp filter of PID 1 and exec'd commands, compiled by the first boot's
	 * child (child_seccomp); without it each command's child builds its own. */
	struct runtime_seccomp_prog seccomp;
	bool seccomp_ready;
};

static uint64_t now_ns(void)
{
	return berth_monotonic_ns();
}

static char *rpath(const struct monitor *m, const char *name)
{
	return berth_strdup_printf("%s/%s", m->rundir, name);
}

static void log_msg(const char *fmt, ...) _printf_(1, 2);
static void log_msg(const char *fmt, ...)
{
	char ts[BERTH_RFC3339_MAX];
	va_list ap;

	berth_now_rfc3339(ts);
	fprintf(stderr, "%s ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* ---- the child: becomes PID 1 ---- */

static _Noreturn void child_fail(int sock, struct berth_error *err, int r, const char *what)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "error %s: %s", what, berth_error_msg(err, r));
	runtime_send_fds(sock, msg, NULL, 0);
	_exit(1);
}

static int loopback_up(void)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};

	if (s < 0)
		return -errno;
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return -errno;
	return 0;
}

static char **child_env(const struct runtime_spec *spec)
{
	static const char *const defaults[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=linux",
		"HOME=/"};
	char **env = NULL;

	for (char **e = spec->env; e && *e; e++)
		if (!berth_startswith(*e, "container="))
			runtime_strv_push(&env, strdup(*e));
	runtime_strv_push(&env, strdup("container=lxc"));
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
		size_t kl = (size_t)(strchr(defaults[i], '=') - defaults[i]) + 1;
		bool given = false;
		for (char **e = spec->env; e && *e; e++)
			if (strneq(*e, defaults[i], kl))
				given = true;
		if (!given)
			runtime_strv_push(&env, strdup(defaults[i]));
	}
	return env;
}

/* init's seccomp program. The first boot compiles it here, where libseccomp's memory
 * goes away with the exec, and gives it to the monitor as well ("seccomp N" with a memfd
 * of N instructions): exec'd commands get the same filter without libseccomp in the
 * monitor (a compile in a fork of the monitor at the first exec cost about 10 ms of a
 * launch's first exec here). After a reboot the monitor has it already. NULL when it
 * cannot be compiled: runtime_exec_apply_security() then builds it itself and says why,
 * and the monitor forks each command, whose child does the same. */
static const struct runtime_seccomp_prog *child_seccomp(struct monitor *m, int sock,
							struct runtime_seccomp_prog *own)
{
	struct runtime_seccomp_policy pol = runtime_spec_seccomp(m->spec);
	struct berth_error err = {0};
	_cleanup_close_ int fd = -EBADF;
	size_t len;
	char msg[32];

	if (m->seccomp_ready)
		return &m->seccomp;
	if (runtime_seccomp_compile(&pol, own, &err) < 0) {
		berth_error_release(&err);
		return NULL;
	}
	len = (size_t)own->len * sizeof(struct sock_filter);
	fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
	if (fd >= 0 && (len == 0 || write(fd, own->insns, len) == (ssize_t)len)) {
		snprintf(msg, sizeof(msg), "seccomp %u", (unsigned)own->len);
		runtime_send_fds(sock, msg, &fd, 1);
	}
	return own;
}

static _Noreturn void child_main(struct monitor *m, int sock)
{
	struct runtime_seccomp_prog own = {0};
	const struct runtime_spec *spec = m->spec;
	struct berth_error err = {0};
	int fds[256];
	size_t nfds = 0;
	char buf[64];
	int r, slave = m->console->slave;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	r = runtime_recv_fds(sock, buf, sizeof(buf), fds, ARRAY_SIZE(fds), &nfds);
	if (r < 0 || !streq(buf, "go") || nfds != spec->n_mounts + 1)
		_exit(1); /* the monitor went away or failed; it reports why */
	if (!spec->privileged) {
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			child_fail(sock, &err, -errno, "becoming root in the user namespace");
		if (spec->n_gid_map && setgroups(0, NULL) < 0)
			child_fail(sock, &err, -errno, "setgroups");
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* a change of credentials clears it */
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail(sock, &err, -errno, "unsharing the cgroup namespace");
	struct runtime_mounts_in in = {
		.spec = spec, .root_tree = fds[0], .extra = fds + 1, .console_slave = slave,
		.console_path = m->console->slave_path};
	r = runtime_mounts_setup(&in, &err);
	if (r < 0)
		child_fail(sock, &err, r, "setting up mounts");
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	{
		const char *h = spec->hostname ? spec->hostname : spec->name ? spec->name : "berth";
		if (sethostname(h, strlen(h)) < 0)
			child_fail(sock, &err, -errno, "setting the hostname");
	}
	if ((r = loopback_up()) < 0)
		child_fail(sock, &err, r, "bringing up lo");
	if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
		child_fail(sock, &err, -errno, "making the console the controlling terminal");
	if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
		child_fail(sock, &err, -errno, "console as stdio");
	r = runtime_exec_apply_security(spec, child_seccomp(m, sock, &own), &err);
	if (r < 0)
		child_fail(sock, &err, r, "applying security settings");
	char **env = child_env(spec);
	if (!env)
		child_fail(sock, &err, -ENOMEM, "environment");
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execve(spec->init[0], spec->init, env);
	berth_error_set(&err, -errno, BERTH_ERR_INTERNAL, "%s: %m", spec->init[0]);
	child_fail(sock, &err, -errno, "executing init");
}

/* ---- starting the container ---- */

/*
 * The signal that asks this init to power off, from what init[0] is inside the rootfs
 * (symlinks followed), as LXC's lxc.signal.halt: systemd powers off on SIGRTMIN+3,
 * busybox init on SIGUSR2 (after its inittab's shutdown entries: Alpine's OpenRC);
 * sysvinit's init runs its inittab's powerwait/powerfail entries on SIGPWR (an OpenRC
 * image's "telinit 0") and openrc-init its shutdown runlevel, so SIGPWR for the rest.
 */
static int detect_stop_signal(const struct runtime_spec *spec)
{
	_cleanup_close_ int root = open(spec->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int fd = -EBADF;
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
	char link[64], target[4096];
	const char *base;
	ssize_t n;

	if (spec->stop_signal)
		return spec->stop_signal;
	if (root < 0)
		return SIGPWR;
	fd = (int)syscall(SYS_openat2, root, spec->init[0], &how, sizeof(how));
	if (fd < 0)
		return SIGPWR;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return SIGPWR;
	target[n] = '\0';
	base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	if (streq(base, "systemd"))
		return SIGRTMIN + 3;
	if (streq(base, "busybox"))
		return SIGUSR2;
	return SIGPWR;
}

static bool idmap_unsupported(int r)
{
	return r == -EINVAL || r == -EPERM || r == -EOPNOTSUPP || r == -ENOSYS;
}

/* Detached trees for the root and each spec mount, idmapped for the child's userns. */
static int make_trees(struct monitor *m, pid_t pid, int *fds, struct berth_error *err)
{
	const struct runtime_spec *spec = m->spec;
	_cleanup_close_ int userns = -EBADF;
	_cleanup_free_ char *marker = NULL;
	bool shifted;
	int r;

	if (!spec->privileged) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/user", (int)pid);
		userns = open(p, O_RDONLY | O_CLOEXEC);
		if (userns < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening %s: %m", p);
	}
	marker = spec->volume ? berth_strdup_printf("%s/berth-shift", spec->volume) : NULL;
	shifted = marker && access(marker, F_OK) == 0;
	if (!spec->privileged && (shifted || getenv("BERTH_MONITOR_NO_IDMAP"))) {
		r = runtime_idmap_shift(spec, err);
		if (r < 0)
			return r;
		r = runtime_idmap_open_tree(spec->rootfs, -1, false, &fds[0], err);
	} else {
		r = runtime_idmap_open_tree(spec->rootfs, userns, false, &fds[0], err);
		if (r < 0 && userns >= 0 && idmap_unsupported(r)) {
			log_msg("idmapped mounts refused (%s), shifting the rootfs on disk",
				berth_error_msg(err, r));
			r = runtime_idmap_shift(spec, err);
			if (r == 0)
				r = runtime_idmap_open_tree(spec->rootfs, -1, false, &fds[0], err);
		}
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct runtime_mount *mt = &spec->mounts[i];
		r = runtime_idmap_open_tree(mt->source, mt->idmap ? userns : -1, mt->ro, &fds[i + 1],
					    err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int write_pid_file(struct monitor *m, const char *name, pid_t pid)
{
	_cleanup_free_ char *p = rpath(m, name);
	char v[32];

	if (!p)
		return -ENOMEM;
	snprintf(v, sizeof(v), "%d\n", (int)pid);
	return berth_write_file_replace(p, v, strlen(v), 0644);
}

/* The child's "seccomp N" message: N instructions in the memfd `fd`. */
static void keep_seccomp(struct monitor *m, const char *count, int fd)
{
	struct runtime_seccomp_prog prog = {0};
	unsigned long n;
	size_t bytes;
	char *end;

	errno = 0;
	n = strtoul(count, &end, 10);
	if (m->seccomp_ready || fd < 0 || errno || *end || n > BPF_MAXINSNS)
		return;
	bytes = n * sizeof(struct sock_filter);
	prog.insns = n ? malloc(bytes) : NULL;
	if (n && (!prog.insns || pread(fd, prog.insns, bytes, 0) != (ssize_t)bytes)) {
		free(prog.insns);
		return;
	}
	prog.len = (unsigned short)n;
	m->seccomp = prog;
	m->seccomp_ready = true;
}

/* Tell the child to go on, and wait until it exec'd init (the socket closes on exec) or
 * reported an error. */
static int release_child(struct monitor *m, int sock, pid_t pid, struct berth_error *err)
{
	int fds[256];
	size_t n = m->spec->n_mounts + 1, got = 0;
	char msg[1024];
	int r;

	for (size_t i = 0; i < n; i++)
		fds[i] = -EBADF;
	r = make_trees(m, pid, fds, err);
	if (r == 0)
		r = runtime_send_fds(sock, "go", fds, n);
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (r < 0)
		return berth_error_wrap(err, r, "preparing the root filesystem");
	while ((r = runtime_recv_fds(sock, msg, sizeof(msg), fds, 1, &got)) == 0 &&
	       berth_startswith(msg, "seccomp ")) {
		keep_seccomp(m, msg + 8, got ? fds[0] : -EBADF);
		if (got)
			close(fds[0]);
	}
	if (r == -ECONNRESET)
		return 0; /* exec'd (or died; the grace period tells) */
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "waiting for the child: %s",
				       strerror(-r));
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s",
			       berth_startswith(msg, "error ") ? msg + 6 : msg);
}

static int boot(struct monitor *m, struct berth_error *err)
{
	const struct runtime_spec *spec = m->spec;
	struct runtime_cgroup_limits lim = {
		.memory = spec->limits_memory,
		.memory_swap = spec->limits_memory_swap,
		.cpus = spec->limits_cpus,
		.cpu_quota_us = spec->limits_cpu_quota_us,
		.cpu_period_us = spec->limits_cpu_period_us,
		.cpu_share_pct = (uint32_t)spec->limits_cpu_share_pct,
		.cpu_priority_drop = (uint32_t)spec->limits_cpu_priority_drop,
		.processes = spec->limits_processes,
	};
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
			      CLONE_NEWNET | CLONE_PIDFD | SIGCHLD;
	_cleanup_close_ int sp0 = -EBADF;
	int sp[2], pidfd = -EBADF, r;
	pid_t pid;

	r = runtime_cgroup_create(m->cg, &lim, err);
	if (r < 0)
		return r;
	if (!spec->privileged) {
		uint32_t uid, gid;
		flags |= CLONE_NEWUSER;
		if (runtime_idmap_to_host(spec->uid_map, spec->n_uid_map, 0, &uid) == 0 &&
		    runtime_idmap_to_host(spec->gid_map, spec->n_gid_map, 0, &gid) == 0) {
			r = runtime_cgroup_delegate(m->cg, uid, gid);
			if (r < 0)
				return berth_error_set(err, r, BERTH_ERR_INTERNAL,
						       "delegating the cgroup: %s", strerror(-r));
			uint32_t tty = gid;
			runtime_idmap_to_host(spec->gid_map, spec->n_gid_map, 5, &tty);
			if (fchown(m->console->slave, uid, tty) < 0)
				return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
						       "chown of the console: %m");
		}
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "socketpair: %m");
	sp0 = sp[0];
	/* the child finds the rootfs as its cwd, translated into its new mount namespace */
	if (chdir(spec->rootfs) < 0) {
		close(sp[1]);
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "entering \"%s\": %m",
				       spec->rootfs);
	}
	pid = (pid_t)syscall(SYS_clone, flags, NULL, &pidfd, NULL, NULL);
	if (pid == 0) {
		close(sp0);
		child_main(m, sp[1]);
	}
	r = -errno;
	close(sp[1]);
	if (chdir("/") < 0) {
		/* "/" always exists */
	}
	if (pid < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "clone: %s", strerror(-r));
	m->init_pid = pid;
	m->init_pidfd = pidfd;
	if (!spec->privileged && (r = runtime_idmap_write(pid, spec, err)) < 0)
		return r;
	r = runtime_cgroup_attach(m->cg, pid);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "joining the cgroups: %s",
				       strerror(-r));
	if (m->spec->n_nics) {
		uint64_t t0 = now_ns();
		r = runtime_net_setup(spec, pid, err);
		if (r < 0)
			return r;
		log_msg("%zu NIC(s) set up in %llu us", spec->n_nics,
			(unsigned long long)((now_ns() - t0) / 1000));
	}
	r = release_child(m, sp0, pid, err);
	if (r < 0)
		return r;
	m->exec_ns = now_ns();
	write_pid_file(m, "init.pid", pid);
	log_msg("started init, pid %d", (int)pid);
	return 0;
}

/* ---- tearing down ---- */

/* NICs and disks hot-plugged or unplugged while the container ran are in the spec berthd
 * rewrote: the teardown deletes the host ends of those NICs, and a reboot from inside (or
 * a restart) comes back with them. The rest of the spec stays as it was at the start. */
static void reload_nics(struct monitor *m)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *now = NULL;
	_cleanup_free_ char *path = rpath(m, "spec");
	struct berth_error err = {0};

	if (!path || runtime_spec_load(path, &now, &err) < 0) {
		log_msg("re-reading the spec: %s, keeping its NICs as they were",
			berth_error_msg(&err, -ENOMEM));
		berth_error_release(&err);
		return;
	}
	runtime_spec_set_nics(m->spec, now->nics, now->n_nics);
	now->nics = NULL;
	now->n_nics = 0;
	{ /* the old mounts go with `now` */
		struct runtime_mount *mounts = m->spec->mounts;
		size_t n = m->spec->n_mounts;

		m->spec->mounts = now->mounts;
		m->spec->n_mounts = now->n_mounts;
		now->mounts = mounts;
		now->n_mounts = n;
	}
}

static void kill_init(struct monitor *m)
{
	if (m->init_pidfd >= 0)
		pidfd_send_signal(m->init_pidfd, SIGKILL, NULL, 0);
	runtime_cgroup_kill(m->cg);
}

/* Reap PID 1 (killing it if needed), empty the cgroups and remove them. */
static void teardown(struct monitor *m, siginfo_t *ret)
{
	siginfo_t si = {0};

	if (m->init_pidfd >= 0) {
		if (waitid(P_PIDFD, (id_t)m->init_pidfd, &si, WEXITED | WNOHANG) < 0 ||
		    si.si_pid == 0) {
			kill_init(m);
			waitid(P_PIDFD, (id_t)m->init_pidfd, &si, WEXITED);
		}
		close(m->init_pidfd);
	}
	m->init_pidfd = -EBADF;
	m->init_pid = 0;
	runtime_exec_cgroups_release(&m->exec_cgroups);
	for (int i = 0; i < 5000 && !runtime_cgroup_is_empty(m->cg); i++) {
		if (i % 100 == 0)
			runtime_cgroup_kill(m->cg);
		usleep(1000);
	}
	for (int i = 0; i < 100 && runtime_cgroup_destroy(m->cg) < 0; i++)
		usleep(10000);
	reload_nics(m);
	runtime_net_teardown(m->spec);
	if (ret)
		*ret = si;
}

/* ---- clients ---- */

static void client_send(struct client *c, const char *fmt, ...) _printf_(2, 3);
static void client_send(struct client *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client went away; it is dropped on its next poll */
	}
}

static void client_drop(struct monitor *m, struct client *c)
{
	for (struct client **p = &m->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->exec)
		c->exec->client = NULL; /* it runs on; nobody hears of its end */
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	close(c->fd);
	free(c->buf);
	free(c);
}

/* A client that stays after its request (waiting, console, exec): its request buffer
 * goes, the line in it having been handled. */
static void client_keep(struct client *c, enum client_kind kind)
{
	c->kind = kind;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

/* ---- exec ---- */

static void exec_free(struct monitor *m, struct exec_child *e)
{
	for (struct exec_child **p = &m->execs; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	if (e->client)
		e->client->exec = NULL;
	berth_closep(&e->pidfd);
	berth_closep(&e->fail_fd);
	free(e);
}

/* What the child of an exec request needs, made by the monitor before the clone. */
struct exec_child_args {
	struct monitor *m;
	const int *stdio; /* 3 */
	const struct runtime_exec_opts *o;
	int fail_fd;
	const struct runtime_exec_cgroups *cgroups;
	char **env;
	int ns_flags;
	bool pinned;
};

/* The child: stdio from the request, every signal back to its default, the container's
 * cgroups, then its namespaces (the pid one it was born into). It may share the
 * monitor's memory (see exec_start): it allocates nothing and changes no global. */
static int exec_child_main(void *data)
{
	const struct exec_child_args *a = data;
	int r;

	/* Born on the monitor's CPU (see exec_clone): the command may run anywhere it may
	 * (joining the cpuset cgroup then narrows it to the container's CPUs) */
	if (a->pinned)
		sched_setaffinity(0, sizeof(a->m->cpus), &a->m->cpus);
	/* The monitor handles no signal and ignores only SIGPIPE (the rest are blocked for its
	 * signalfd; the mask is reset before the exec) */
	signal(SIGPIPE, SIG_DFL);
	for (int i = 0; i < 3; i++)
		if (dup2(a->stdio[i], i) < 0)
			runtime_exec_fail(a->fail_fd, 1, errno, "stdio");
	r = runtime_exec_cgroups_enter(a->cgroups);
	if (r < 0)
		runtime_exec_fail(a->fail_fd, 1, -r, "joining the container's cgroups");
	if (setns(a->m->init_pidfd, a->ns_flags) < 0)
		runtime_exec_fail(a->fail_fd, 1, errno, "joining the container's namespaces");
	runtime_exec_child(a->o, a->m->spec, a->m->seccomp_ready ? &a->m->seccomp : NULL,
			   a->env, a->fail_fd);
}

/* Start exec_child_main() in the container's pid namespace (joined by the caller). With
 * a compiled seccomp filter and no AppArmor profile to apply, the child shares our memory
 * (berth_spawn_shared): a fork would copy the page tables and fault on every page either
 * side then writes, which costs about a millisecond here. */
static pid_t exec_clone(struct exec_child_args *a)
{
	bool share = a->m->seccomp_ready &&
		     !(a->m->spec->apparmor_profile && runtime_apparmor_enabled()) &&
		     !berth_test_flag("BERTH_TEST_EXEC_FORK");
	pid_t pid = -1;

	if (share && !a->m->exec_stack)
		a->m->exec_stack = berth_spawn_stack_new(EXEC_CHILD_STACK);
	if (share && a->m->exec_stack) {
		/* The child is born on this CPU, where we sleep until it exec'd: waking another
		 * CPU for it costs more here than the two affinity changes */
		int cpu = sched_getcpu();
		cpu_set_t one;

		CPU_ZERO(&one);
		if (a->m->have_cpus && cpu >= 0 && cpu < CPU_SETSIZE) {
			CPU_SET(cpu, &one);
			a->pinned = sched_setaffinity(0, sizeof(one), &one) == 0;
		}
		pid = berth_spawn_shared_on(exec_child_main, a, a->m->exec_stack,
					    EXEC_CHILD_STACK);
		if (a->pinned) {
			int e = errno;
			sched_setaffinity(0, sizeof(a->m->cpus), &a->m->cpus);
			errno = e;
		}
		if (pid > 0)
			return pid;
	}
	if (!a->m->exec_forks_logged) {
		log_msg("exec: forking each command (%s)",
			!share		  ? "no compiled filter, AppArmor or a test"
			: errno == ENOSYS ? "an AddressSanitizer build"
					  : "no shared-memory child");
		a->m->exec_forks_logged = true;
	}
	pid = fork();
	if (pid == 0)
		_exit(exec_child_main(a));
	return pid;
}

/* Fork the command of `c`'s request into the container. 0, or -errno with `why` set. */
static int exec_start(struct monitor *m, struct client *c, const struct runtime_exec_opts *o,
		      const char **why)
{
	struct exec_child_args a = {
		.m = m,
		.stdio = c->fds,
		.o = o,
		.ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
			    CLONE_NEWCGROUP,
	};
	struct exec_child *e;
	int p[2], pidfd, r;
	pid_t pid;

	if (m->init_pidfd < 0 || (m->state != ST_RUNNING && m->state != ST_STOPPING)) {
		*why = "the container is not running";
		return -ESRCH;
	}
	if (m->frozen) { /* its command would join a frozen cgroup and wait there */
		*why = "the container is frozen";
		return -EBUSY;
	}
	runtime_cap_last(); /* read once here, cached for the child */
	if (!runtime_exec_same_userns(m->init_pid))
		a.ns_flags |= CLONE_NEWUSER;
	r = runtime_exec_cgroups_update(&m->exec_cgroups, m->init_pid);
	a.cgroups = &m->exec_cgroups;
	if (r < 0) {
		*why = "reading the container's cgroups";
		return r;
	}
	a.env = runtime_exec_env(o);
	e = a.env ? calloc(1, sizeof(*e)) : NULL;
	if (!e) {
		runtime_strv_free(a.env);
		*why = "out of memory";
		return -ENOMEM;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		runtime_strv_free(a.env);
		free(e);
		*why = "pipe";
		return r;
	}
	a.fail_fd = p[1];
	/* Children are born in the container's pid namespace until we come back to ours:
	 * nothing else forks in between. */
	if (setns(m->init_pidfd, CLONE_NEWPID) < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		runtime_strv_free(a.env);
		free(e);
		*why = "joining the container's pid namespace";
		return r;
	}
	pid = exec_clone(&a);
	r = pid < 0 ? -errno : 0;
	if (setns(m->pidns_fd, CLONE_NEWPID) < 0)
		log_msg("returning to our pid namespace: %m");
	runtime_strv_free(a.env);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		free(e);
		*why = "fork";
		return r;
	}
	/* our child: its pid cannot be reused before we reap it */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	e->pid = pid;
	e->pidfd = pidfd;
	e->fail_fd = p[0];
	e->client = c;
	e->next = m->execs;
	m->execs = e;
	c->exec = e;
	client_keep(c, CL_EXEC);
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
	c->len = 0;
	if (pidfd < 0) { /* cannot watch it: it must not run unseen */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		exec_free(m, e);
		*why = "pidfd_open";
		return -EIO;
	}
	return 0;
}

/* The command exec'd (EOF) or said why it could not. */
static void exec_fail_readable(struct exec_child *e)
{
	struct runtime_exec_failure f;
	ssize_t n;

	do
		n = read(e->fail_fd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	close(e->fail_fd);
	e->fail_fd = -EBADF;
	if (!e->client)
		return;
	if (n == (ssize_t)sizeof(f)) {
		f.msg[sizeof(f.msg) - 1] = '\0';
		for (char *q = f.msg; *q; q++)
			if (*q == '\n')
				*q = ' ';
		client_send(e->client, "failed %s", f.msg);
	} else {
		client_send(e->client, "started %d", (int)e->pid);
	}
}

static void exec_exited(struct monitor *m, struct exec_child *e)
{
	siginfo_t si = {0};

	if (waitid(P_PIDFD, (id_t)e->pidfd, &si, WEXITED | WNOHANG) < 0) {
		if (errno == EINTR)
			return;
	} else if (si.si_pid == 0) {
		return; /* not yet */
	}
	if (e->fail_fd >= 0)
		exec_fail_readable(e); /* "started" or "failed" comes before "exit" */
	if (e->client) {
		struct client *c = e->client;
		client_send(c, "exit %d", si.si_code == CLD_EXITED ? si.si_status
								 : 128 + si.si_status);
		exec_free(m, e);
		client_drop(m, c);
		return;
	}
	exec_free(m, e);
}

/* Undo the %XX escapes of one request word in place. */
static int unescape(char *w)
{
	char *out = w;

	for (char *in = w; *in; in++) {
		if (*in != '%') {
			*out++ = *in;
			continue;
		}
		unsigned v;
		if (!isxdigit((unsigned char)in[1]) || !isxdigit((unsigned char)in[2]) ||
		    sscanf(in + 1, "%2x", &v) != 1 || v == 0)
			return -EINVAL;
		*out++ = (char)v;
		in += 2;
	}
	*out = '\0';
	return 0;
}

/* "exec WORD..." with three fds: the words are `berth-monitor exec`'s options after
 * RUNDIR, each %-escaped. */
static void handle_exec(struct monitor *m, struct client *c, char *words)
{
	struct runtime_exec_opts o = {.rundir = m->rundir, .status_fd = -1};
	_cleanup_free_ char **argv = NULL;
	const char *why = "bad request";
	size_t n = 0;
	int r = -EINVAL;

	for (char *save = NULL, *w = strtok_r(words, " ", &save); w;
	     w = strtok_r(NULL, " ", &save)) {
		char **na = realloc(argv, (n + 2) * sizeof(*argv));
		if (!na || unescape(w) < 0)
			goto fail;
		argv = na;
		argv[n++] = w;
		argv[n] = NULL;
	}
	if (c->nfds != 3 || n > INT_MAX || runtime_exec_parse((int)n, argv, &o) < 0)
		goto fail;
	r = exec_start(m, c, &o, &why);
	free(o.env);
	if (r == 0)
		return;
fail:
	client_send(c, "error %s%s%s", why, r == -EINVAL ? "" : ": ",
		    r == -EINVAL ? "" : strerror(-r));
	client_drop(m, c);
}

static void begin_stop(struct monitor *m, enum stop_kind kind, long timeout_s, int sig)
{
	if (m->state == ST_STOPPING) {
		if (kind == STOP_STOP)
			m->stop_kind = STOP_STOP; /* a stop wins over a pending restart */
		if (timeout_s >= 0) {
			uint64_t d = now_ns() + (uint64_t)timeout_s * 1000000000ULL;
			if (!m->deadline_ns || d < m->deadline_ns)
				m->deadline_ns = d;
		}
		if (sig == SIGKILL)
			m->deadline_ns = now_ns();
		return;
	}
	m->state = ST_STOPPING;
	m->stop_kind = kind;
	m->killed = false;
	m->deadline_ns = timeout_s < 0 ? 0 : now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	if (runtime_cgroup_is_frozen(m->cg))
		runtime_cgroup_freeze(m->cg, false);
	m->frozen = false;
	if (sig == SIGKILL) {
		m->killed = true;
		kill_init(m);
	} else if (m->init_pidfd >= 0) {
		pidfd_send_signal(m->init_pidfd, sig, NULL, 0);
	}
	log_msg("stopping with signal %d, timeout %ld s", sig, timeout_s);
}

/* "limits MEMORY SWAP CPUS QUOTA PERIOD PROCESSES SHARE DROP" (CPUS "-" for none, 0 for the
 * others): the cgroup gets exactly these, and so does the next boot (a restart from inside). */
static void handle_limits(struct monitor *m, struct client *c, const char *args)
{
	unsigned long long mem, quota, period, procs;
	unsigned share, drop;
	_cleanup_free_ char *cpus = NULL;
	char *cpus_copy = NULL;
	struct berth_error err = {0};
	struct runtime_cgroup_limits l = {0};
	int swap, n = 0, r;

	if (sscanf(args, "%llu %d %ms %llu %llu %llu %u %u%n", &mem, &swap, &cpus, &quota,
		   &period, &procs, &share, &drop, &n) != 8 ||
	    args[n] || (swap != 0 && swap != 1) || share > 100 || drop > 10) {
		client_send(c, "error bad limits request");
		return;
	}
	if (!streq(cpus, "-") && !(cpus_copy = strdup(cpus))) {
		client_send(c, "error %s", strerror(ENOMEM));
		return;
	}
	l = (struct runtime_cgroup_limits){.memory = mem, .memory_swap = swap,
					   .cpus = cpus_copy, .cpu_quota_us = quota,
					   .cpu_period_us = period, .processes = procs,
					   .cpu_share_pct = share, .cpu_priority_drop = drop};
	r = runtime_cgroup_set_limits(m->cg, &l, &err);
	if (r < 0) {
		client_send(c, "error %s", berth_error_msg(&err, r));
		berth_error_release(&err);
		free(cpus_copy);
		return;
	}
	m->spec->limits_memory = mem;
	m->spec->limits_memory_swap = swap;
	free(m->spec->limits_cpus);
	m->spec->limits_cpus = cpus_copy;
	m->spec->limits_cpu_quota_us = quota;
	m->spec->limits_cpu_period_us = period;
	m->spec->limits_cpu_share_pct = share;
	m->spec->limits_cpu_priority_drop = drop;
	m->spec->limits_processes = procs;
	log_msg("limits changed");
	client_send(c, "ok");
}

static void handle_request(struct monitor *m, struct client *c, char *line)
{
	long timeout = -1;
	int sig = 0, n = 0;
	unsigned w, h;

	if (streq(line, "status")) {
		const char *state = runtime_cgroup_is_frozen(m->cg) ? "frozen" : "running";
		if (m->state == ST_STOPPING)
			state = "stopping";
		client_send(c, "ok %s %d", state, (int)m->init_pid);
	} else if (sscanf(line, "stop %ld%n %d%n", &timeout, &n, &sig, &n) >= 1 && !line[n]) {
		if (sig < 0 || sig >= _NSIG || sig == SIGSTOP) {
			client_send(c, "error bad signal");
			client_drop(m, c);
			return;
		}
		begin_stop(m, STOP_STOP, timeout, sig ? sig : m->stop_signal);
		client_keep(c, CL_STOP);
		return;
	} else if (streq(line, "kill")) {
		begin_stop(m, STOP_STOP, 0, SIGKILL);
		client_keep(c, CL_STOP);
		return;
	} else if (sscanf(line, "restart %ld%n", &timeout, &n) == 1 && !line[n]) {
		begin_stop(m, STOP_RESTART, timeout, m->stop_signal);
		client_keep(c, CL_RESTART);
		return;
	} else if (streq(line, "freeze") || streq(line, "unfreeze")) {
		int r = runtime_cgroup_freeze(m->cg, line[0] == 'f');
		if (r < 0) {
			client_send(c, "error %s", strerror(-r));
		} else {
			m->frozen = line[0] == 'f';
			client_send(c, "ok");
		}
	} else if (streq(line, "console")) {
		client_send(c, "ok");
		client_keep(c, CL_CONSOLE);
		return;
	} else if (sscanf(line, "console-resize %u %u%n", &w, &h, &n) == 2 && !line[n] &&
		   w < 65536 && h < 65536) {
		int r = runtime_console_resize(m->console, (unsigned short)w, (unsigned short)h);
		if (r < 0)
			client_send(c, "error %s", strerror(-r));
		else
			client_send(c, "ok");
	} else if (streq(line, "wait")) {
		client_keep(c, CL_WAIT);
		return;
	} else if (berth_startswith(line, "exec ")) {
		handle_exec(m, c, line + 5);
		return;
	} else if (berth_startswith(line, "limits ")) {
		handle_limits(m, c, line + 7);
	} else {
		client_send(c, "error unknown request \"%.64s\"", line);
	}
	client_drop(m, c);
}

static void client_readable(struct monitor *m, struct client *c)
{
	char buf[4096];
	ssize_t n;

	if (c->kind == CL_CONSOLE) {
		n = read(c->fd, buf, sizeof(buf));
		if (n <= 0) {
			client_drop(m, c);
			return;
		}
		if (write(m->console->master, buf, (size_t)n) < 0) {
			/* console input is best effort */
		}
		return;
	}
	if (c->kind == CL_EXEC) {
		/* "signal N" lines for the command; EOF: the client left, the command runs on */
		n = read(c->fd, buf, sizeof(buf) - 1);
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN)
				client_drop(m, c);
			return;
		}
		buf[n] = '\0';
		for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save)) {
			int sig, k = 0;
			if (sscanf(l, "signal %d%n", &sig, &k) == 1 && !l[k] && sig > 0 &&
			    sig < _NSIG && c->exec)
				pidfd_send_signal(c->exec->pidfd, sig, NULL, 0);
		}
		return;
	}
	if (c->kind != CL_NEW) {
		/* waiting clients send nothing; EOF or data means they left */
		n = read(c->fd, buf, sizeof(buf));
		if (n <= 0)
			client_drop(m, c);
		return;
	}
	if (c->cap - c->len < 128 && c->cap < REQUEST_MAX) {
		size_t cap = c->cap ? c->cap * 4 : 256;
		char *nb = realloc(c->buf, cap);
		if (!nb) {
			client_drop(m, c);
			return;
		}
		c->buf = nb;
		c->cap = cap;
	}
	if (c->cap - c->len < 2) {
		client_send(c, "error request too long");
		client_drop(m, c);
		return;
	}
	{
		size_t got = 0;
		int r = runtime_recv_fds(c->fd, c->buf + c->len, c->cap - c->len,
					 c->fds + c->nfds, ARRAY_SIZE(c->fds) - c->nfds, &got);
		if (r == -EAGAIN || r == -EINTR)
			return;
		if (r < 0) {
			client_drop(m, c);
			return;
		}
		c->nfds += got;
		c->len += strlen(c->buf + c->len);
	}
	char *nl = strchr(c->buf, '\n');
	if (!nl) {
		if (c->len >= REQUEST_MAX - 2) {
			client_send(c, "error request too long");
			client_drop(m, c);
		}
		return;
	}
	*nl = '\0';
	if (nl > c->buf && nl[-1] == '\r')
		nl[-1] = '\0';
	handle_request(m, c, c->buf);
}

static bool client_alive(const struct monitor *m, const struct client *c)
{
	for (const struct client *x = m->clients; x; x = x->next)
		if (x == c)
			return true;
	return false;
}

static void accept_client(struct monitor *m)
{
	int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct client *c;

	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->fds[0] = c->fds[1] = c->fds[2] = -EBADF;
	c->next = m->clients;
	m->clients = c;
}

static void console_output(struct monitor *m)
{
	char buf[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = runtime_console_read(m->console, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (struct client *c = m->clients; c; c = c->next)
			if (c->kind == CL_CONSOLE &&
			    send(c->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* a slow console client loses output rather than stall the rest */
			}
	}
}

/* ---- the end of a run ---- */

static void report(struct monitor *m, const char *fmt, ...) _printf_(2, 3);
static void report(struct monitor *m, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	int n;

	if (m->report_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(m->report_fd, line, strlen(line)) < 0) {
		/* `start` was killed; nobody to tell */
	}
	close(m->report_fd);
	m->report_fd = -EBADF;
}

static void finish(struct monitor *m)
{
	_cleanup_free_ char *stopped = rpath(m, "stopped");
	const char *reason = m->reason ? m->reason : "poweroff";
	static const char *const files[] = {"monitor.sock", "init.pid", "monitor.pid"};
	char line[1024];

	snprintf(line, sizeof(line), "%s\n", reason);
	if (stopped)
		berth_write_file_replace(stopped, line, strlen(line), 0644);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = rpath(m, files[i]);
		if (p)
			unlink(p);
	}
	while (m->clients) {
		struct client *c = m->clients;
		if (c->kind == CL_WAIT)
			client_send(c, "ok stopped %s", reason);
		else if (c->kind == CL_STOP || c->kind == CL_RESTART)
			client_send(c, "ok %s", m->killed ? "killed" : "stopped");
		client_drop(m, c);
	}
	log_msg("container stopped: %s", reason);
	m->state = ST_DONE;
}

static void set_reason(struct monitor *m, const char *fmt, ...) _printf_(2, 3);
static void set_reason(struct monitor *m, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		return;
	for (char *p = s; *p; p++)
		if (*p == '\n')
			*p = ' ';
	free(m->reason);
	m->reason = s;
}

/* A failed (re)boot: clean up and end. */
static void boot_failed(struct monitor *m, struct berth_error *err, int r)
{
	console_output(m);
	teardown(m, NULL);
	set_reason(m, "failed: %s", berth_error_msg(err, r));
	report(m, "error %s\n", berth_error_msg(err, r));
	finish(m);
}

static void reboot_container(struct monitor *m)
{
	struct berth_error err = {0};
	int r;

	log_msg("rebooting");
	m->state = ST_RUNNING;
	m->deadline_ns = 0;
	r = boot(m, &err);
	if (r < 0) {
		boot_failed(m, &err, r);
		berth_error_release(&err);
		return;
	}
	for (struct client *c = m->clients, *next; c; c = next) {
		next = c->next;
		if (c->kind == CL_RESTART) {
			client_send(c, "ok restarted %d", (int)m->init_pid);
			client_drop(m, c);
		}
	}
	m->stop_kind = STOP_NONE;
}

/* Whether PID 1 is still within start_grace_ms of its exec. */
static bool in_grace(const struct monitor *m)
{
	return now_ns() < m->exec_ns + m->spec->start_grace_ms * 1000000ULL;
}

/* Readiness: PID 1 has started a process of its own (busybox init runs rcS, systemd its
 * first units), so it got past loading and its first steps. An init that never forks is
 * ready once it lived start_grace_ms. */
static bool init_ready(const struct monitor *m)
{
	char path[64], buf[32];
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)m->init_pid,
		 (int)m->init_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	return n > 0;
}

static void init_exited(struct monitor *m)
{
	siginfo_t si = {0};
	bool was_booting = m->state == ST_BOOTING;

	console_output(m);
	teardown(m, &si);
	if (si.si_code == CLD_EXITED)
		log_msg("init exited with status %d", si.si_status);
	else
		log_msg("init killed by signal %d", si.si_status);
	if (was_booting) {
		_cleanup_free_ char *tail = NULL;
		char what[64];
		if (si.si_code == CLD_EXITED)
			snprintf(what, sizeof(what), "init exited with status %d", si.si_status);
		else
			snprintf(what, sizeof(what), "init was killed by signal %d", si.si_status);
		runtime_console_log_tail(m->console, 2048, &tail);
		for (char *p = tail; p && *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		set_reason(m, "failed: %s", what);
		report(m, "error %s; console: %s\n", what, tail ? tail : "");
		finish(m);
		return;
	}
	bool sig = si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED;
	if (m->stop_kind == STOP_NONE && !sig && in_grace(m)) {
		/* ready (it had started a process) but gone within the grace period: the
		 * start was reported, the failure is recorded */
		_cleanup_free_ char *tail = NULL;
		runtime_console_log_tail(m->console, 2048, &tail);
		for (char *p = tail; p && *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		set_reason(m, "failed: init exited with status %d right after the start; console: %s",
			   si.si_status, tail ? tail : "");
		finish(m);
		return;
	}
	if (m->stop_kind == STOP_RESTART ||
	    (m->stop_kind == STOP_NONE && sig && si.si_status == SIGHUP)) {
		reboot_container(m);
		return;
	}
	if (m->killed || (sig && si.si_status == SIGKILL)) {
		m->killed = true;
		set_reason(m, "killed");
	} else {
		set_reason(m, "poweroff");
	}
	finish(m);
}

static void on_timer(struct monitor *m)
{
	if (m->state == ST_BOOTING) {
		if (!init_ready(m) && in_grace(m)) {
			m->deadline_ns = now_ns() + READY_POLL_NS;
			return;
		}
		m->state = ST_RUNNING;
		m->deadline_ns = 0;
		report(m, "ok\n");
		log_msg("init ready after %.1f ms", (double)(now_ns() - m->exec_ns) / 1e6);
	} else if (m->state == ST_STOPPING) {
		log_msg("stop timeout, killing");
		m->killed = true;
		m->deadline_ns = 0;
		kill_init(m);
	}
}

static void on_signal(struct monitor *m)
{
	struct signalfd_siginfo si;

	if (read(m->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_msg("signal %u from pid %u", si.ssi_signo, si.ssi_pid);
	if (m->state == ST_RUNNING || m->state == ST_BOOTING)
		begin_stop(m, STOP_STOP, 30, m->stop_signal);
}

/* ---- the loop ---- */

static void loop(struct monitor *m)
{
	while (m->state != ST_DONE) {
		struct pollfd pf[4 + POLL_CLIENTS + 2 * POLL_EXECS];
		struct client *cl[POLL_CLIENTS];
		struct exec_child *ex[POLL_EXECS];
		nfds_t n = 0, nc = 0, ne = 0;
		int timeout = -1;

		pf[n++] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = m->console->master, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = m->signal_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = m->init_pidfd, .events = POLLIN};
		for (struct client *c = m->clients; c && nc < ARRAY_SIZE(cl); c = c->next) {
			cl[nc++] = c;
			pf[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
		}
		for (struct exec_child *e = m->execs; e && ne < ARRAY_SIZE(ex); e = e->next) {
			ex[ne++] = e;
			pf[n++] = (struct pollfd){.fd = e->fail_fd, .events = POLLIN};
			pf[n++] = (struct pollfd){.fd = e->pidfd, .events = POLLIN};
		}
		if (m->deadline_ns) {
			uint64_t now = now_ns();
			timeout = m->deadline_ns <= now ? 0
						       : (int)((m->deadline_ns - now) / 1000000 + 1);
		}
		int r = poll(pf, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_msg("poll: %m");
			break;
		}
		if (pf[1].revents & POLLIN)
			console_output(m);
		if (pf[2].revents & POLLIN)
			on_signal(m);
		/* execs first: a client dropped below may be one of theirs */
		for (nfds_t i = 0; i < ne; i++) {
			struct pollfd *f = &pf[4 + nc + 2 * i];
			if (f[0].revents && ex[i]->fail_fd >= 0)
				exec_fail_readable(ex[i]);
			if (f[1].revents)
				exec_exited(m, ex[i]); /* may free ex[i] and drop its client */
		}
		for (nfds_t i = 0; i < nc; i++)
			if (pf[4 + i].revents && client_alive(m, cl[i]))
				client_readable(m, cl[i]);
		if (pf[0].revents & POLLIN)
			accept_client(m);
		if (m->init_pidfd >= 0 && (pf[3].revents & POLLIN)) {
			init_exited(m);
			continue;
		}
		if (m->deadline_ns && now_ns() >= m->deadline_ns)
			on_timer(m);
	}
}

/* ---- setup and detaching ---- */

static int listen_on(struct monitor *m, struct berth_error *err)
{
	_cleanup_free_ char *path = rpath(m, "monitor.sock");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (!path)
		return -ENOMEM;
	if (strlen(path) >= sizeof(sa.sun_path))
		return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_INTERNAL,
				       "socket path \"%s\" too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return berth_error_set(err, -EBUSY, BERTH_ERR_CONFLICT,
				       "a monitor already runs for %s", m->rundir);
	}
	unlink(path);
	mode_t old = umask(0177); /* the socket: 0600 */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int r = -errno;
		umask(old);
		close(fd);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "listening on %s: %s", path,
				       strerror(-r));
	}
	umask(old);
	m->listen_fd = fd;
	return 0;
}

static void monitor_free(struct monitor *m)
{
	while (m->clients)
		client_drop(m, m->clients);
	while (m->execs)
		exec_free(m, m->execs);
	berth_closep(&m->pidns_fd);
	runtime_seccomp_prog_release(&m->seccomp);
	runtime_exec_cgroups_release(&m->exec_cgroups);
	if (m->exec_stack)
		munmap(m->exec_stack, EXEC_CHILD_STACK);
	runtime_spec_free(m->spec);
	runtime_cgroup_free(m->cg);
	runtime_console_free(m->console);
	berth_closep(&m->listen_fd);
	berth_closep(&m->signal_fd);
	berth_closep(&m->report_fd);
	berth_closep(&m->init_pidfd);
	free(m->rundir);
	free(m->reason);
}

static int monitor_prepare(struct monitor *m, struct berth_error *err)
{
	_cleanup_free_ char *spec_path = rpath(m, "spec"), *log = rpath(m, "console.log");
	sigset_t mask;
	int r;

	if (!spec_path || !log)
		return -ENOMEM;
	r = runtime_spec_load(spec_path, &m->spec, err);
	if (r < 0)
		return r;
	m->have_cpus = sched_getaffinity(0, sizeof(m->cpus), &m->cpus) == 0;
	{
		_cleanup_free_ char *stopped = rpath(m, "stopped");
		if (stopped)
			unlink(stopped); /* it describes the previous run */
	}
	r = runtime_cgroup_open(m->spec->cgroup, &m->cg);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "cgroup \"%s\": %s",
				       m->spec->cgroup, strerror(-r));
	r = runtime_console_open(log, m->spec->console_log_size, &m->console);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "console: %s", strerror(-r));
	r = listen_on(m, err);
	if (r < 0)
		return r;
	m->pidns_fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (m->pidns_fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "/proc/self/ns/pid: %m");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	m->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (m->signal_fd < 0)
		return -errno;
	m->stop_signal = detect_stop_signal(m->spec);
	write_pid_file(m, "monitor.pid", getpid());
	return 0;
}

/* The detached monitor process. Returns its exit status. */
static int monitor_main(const char *rundir, int report_fd)
{
	struct monitor m = {.listen_fd = -EBADF, .signal_fd = -EBADF, .report_fd = report_fd,
			    .init_pidfd = -EBADF, .pidns_fd = -EBADF};
	struct berth_error err = {0};
	int r;

	m.rundir = strdup(rundir);
	if (!m.rundir)
		return 1;
	r = monitor_prepare(&m, &err);
	if (r < 0) {
		_cleanup_free_ char *stopped = rpath(&m, "stopped");
		char line[1024];
		snprintf(line, sizeof(line), "failed: %s\n", berth_error_msg(&err, r));
		if (stopped && r != -EBUSY)
			berth_write_file_replace(stopped, line, strlen(line), 0644);
		if (m.listen_fd >= 0) {
			_cleanup_free_ char *sock = rpath(&m, "monitor.sock");
			if (sock)
				unlink(sock);
		}
		report(&m, "error %s\n", berth_error_msg(&err, r));
		berth_error_release(&err);
		monitor_free(&m);
		return 1;
	}
	log_msg("monitor %d for %s", (int)getpid(), rundir);
	m.state = ST_BOOTING;
	r = boot(&m, &err);
	if (r < 0) {
		boot_failed(&m, &err, r);
	} else {
		m.deadline_ns = now_ns() + READY_POLL_NS;
		loop(&m);
	}
	berth_error_release(&err);
	monitor_free(&m);
	return 0;
}

int runtime_monitor_start(const char *rundir)
{
	char line[4096];
	size_t len = 0;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "berth-monitor: pipe: %m\n");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "berth-monitor: fork: %m\n");
		return 1;
	}
	if (pid == 0) {
		_cleanup_free_ char *logp = berth_strdup_printf("%s/monitor.log", rundir);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int logfd = logp ? open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
		close(p[0]);
		setsid();
		if (null >= 0) {
			dup2(null, 0);
			dup2(logfd >= 0 ? logfd : null, 1);
			dup2(logfd >= 0 ? logfd : null, 2);
		}
		signal(SIGPIPE, SIG_IGN);
		if (chdir("/") < 0) {
			/* "/" always exists */
		}
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		_exit(monitor_main(rundir, p[1]));
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], line + len, sizeof(line) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(line) - 1)
			break;
	}
	close(p[0]);
	line[len] = '\0';
	if (len >= 2 && strneq(line, "ok", 2)) {
		/* reap nothing: the monitor lives on, reparented */
		return 0;
	}
	if (len == 0)
		fprintf(stderr, "berth-monitor: the monitor exited without saying why\n");
	else
		fprintf(stderr, "berth-monitor: %s%s", berth_startswith(line, "error ") ? line + 6 : line,
			line[len - 1] == '\n' ? "" : "\n");
	waitpid(pid, NULL, 0);
	return 1;
}
