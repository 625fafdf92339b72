/* daemon/runtime/monitor_boot.c: a (re)boot of the container (monitor_internal.h): the
 * cgroups and the clone with new namespaces, the idmapped trees of the rootfs and the
 * mounts handed to the child, the NICs, and the child's side (child_main(): mounts,
 * hostname, console, security, exec of init), which talks to the monitor over a
 * SOCK_SEQPACKET pair that closes on exec. Also which signal powers this init off. */
#include "daemon/runtime/monitor_internal.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "daemon/runtime/idmap.h"
#include "daemon/runtime/mounts.h"
#include "daemon/runtime/net.h"

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
	struct runtime_mounts_in in = {.spec = spec,
				       .root_tree = fds[0],
				       .extra = fds + 1,
				       .console_slave = slave,
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
int detect_stop_signal(const struct runtime_spec *spec)
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
	uint64_t attrs = runtime_tree_attrs(spec, false);
	bool shifted;
	int r;

	if (!spec->privileged) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/user", (int)pid);
		userns = open(p, O_RDONLY | O_CLOEXEC);
		if (userns < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening %s: %m",
					       p);
	}
	marker = spec->volume ? berth_strdup_printf("%s/berth-shift", spec->volume) : NULL;
	shifted = marker && access(marker, F_OK) == 0;
	if (!spec->privileged && (shifted || getenv("BERTH_MONITOR_NO_IDMAP"))) {
		r = runtime_idmap_shift(spec, err);
		if (r < 0)
			return r;
		r = runtime_idmap_open_tree(spec->rootfs, -1, attrs, &fds[0], err);
	} else {
		r = runtime_idmap_open_tree(spec->rootfs, userns, attrs, &fds[0], err);
		if (r < 0 && userns >= 0 && idmap_unsupported(r)) {
			log_msg("idmapped mounts refused (%s), shifting the rootfs on disk",
				berth_error_msg(err, r));
			r = runtime_idmap_shift(spec, err);
			if (r == 0)
				r = runtime_idmap_open_tree(spec->rootfs, -1, attrs, &fds[0], err);
		}
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct runtime_mount *mt = &spec->mounts[i];
		r = runtime_idmap_open_tree(mt->source, mt->idmap ? userns : -1,
					    runtime_tree_attrs(spec, mt->ro), &fds[i + 1], err);
		if (r < 0)
			return r;
	}
	return 0;
}

int write_pid_file(struct monitor *m, const char *name, pid_t pid)
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

int boot(struct monitor *m, struct berth_error *err)
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
