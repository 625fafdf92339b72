/* daemon/runtime/mounts.c: the container's mounts (see mounts.h).
 *
 * Every path inside the container is resolved with openat2(RESOLVE_IN_ROOT) from the new
 * root, so a symlink in an image (say /dev -> /) cannot send a mount onto the host; the
 * mount then goes onto /proc/self/fd/N of the resolved O_PATH fd. */
#include "daemon/runtime/mounts.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/statfs.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>

#include "lib/util.h"

#define MNT_NOSUID_NODEV_NOEXEC (MS_NOSUID | MS_NODEV | MS_NOEXEC)

struct fdpath {
	char s[32];
};

static struct fdpath fdpath(int fd)
{
	struct fdpath p;

	snprintf(p.s, sizeof(p.s), "/proc/self/fd/%d", fd);
	return p;
}

static int open_in_root(int rootfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));

	return fd < 0 ? -errno : fd;
}

/* mkdir -p inside the root over `p`, a writable copy of the path that is given back
 * unchanged; returns an O_PATH fd of the directory. Only syscalls: a forked child of the
 * threaded daemon may run it. */
static int ensure_dir_in(int rootfd, char *p, mode_t mode)
{
	int fd = open_in_root(rootfd, p, O_PATH | O_DIRECTORY);

	if (fd >= 0 || fd != -ENOENT)
		return fd;
	for (char *s = p;; s++) {
		bool last = *s == '\0';
		if (*s != '/' && !last)
			continue;
		if (s == p) /* leading '/' */
			continue;
		*s = '\0';
		fd = open_in_root(rootfd, p, O_PATH | O_DIRECTORY);
		if (fd == -ENOENT) {
			char *slash = strrchr(p, '/');
			_cleanup_close_ int parent = -EBADF;
			const char *name = p;
			if (slash && slash != p) {
				*slash = '\0';
				parent = open_in_root(rootfd, p, O_PATH | O_DIRECTORY);
				*slash = '/';
				name = slash + 1;
			} else {
				parent = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
				if (parent < 0)
					parent = -errno;
				name = slash ? slash + 1 : p;
			}
			if (parent < 0) {
				if (!last)
					*s = '/';
				return parent;
			}
			if (mkdirat(parent, name, mode) < 0 && errno != EEXIST) {
				int e = -errno;
				if (!last)
					*s = '/';
				return e;
			}
			fd = open_in_root(rootfd, p, O_PATH | O_DIRECTORY);
		}
		if (fd < 0 || last) {
			if (!last)
				*s = '/';
			return fd;
		}
		close(fd);
		*s = '/';
	}
}

/* mkdir -p inside the root; returns an O_PATH fd of the directory. */
static int ensure_dir(int rootfd, const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	return ensure_dir_in(rootfd, p, mode);
}

/* Create an empty file `path` inside the root (parents too) with `scratch`, a writable
 * copy of it; returns an O_PATH fd of it. Only syscalls, like ensure_dir_in. */
static int ensure_file_in(int rootfd, const char *path, char *scratch)
{
	_cleanup_close_ int dfd = -EBADF, f = -EBADF;
	char *slash;
	int fd = open_in_root(rootfd, path, O_PATH);

	if (fd >= 0 || fd != -ENOENT)
		return fd;
	slash = strrchr(scratch, '/');
	if (slash && slash != scratch) {
		*slash = '\0';
		dfd = ensure_dir_in(rootfd, scratch, 0755);
		*slash = '/';
	} else {
		dfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
		if (dfd < 0)
			dfd = -errno;
	}
	if (dfd < 0)
		return dfd;
	f = openat(dfd, slash ? slash + 1 : path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		   0644);
	if (f < 0 && errno != EEXIST)
		return -errno;
	return open_in_root(rootfd, path, O_PATH);
}

/* Create an empty file inside the root (parents too); returns an O_PATH fd of it. */
static int ensure_file(int rootfd, const char *path)
{
	_cleanup_free_ char *dir = strdup(path);

	if (!dir)
		return -ENOMEM;
	return ensure_file_in(rootfd, path, dir);
}

static int mount_fs(int rootfd, const char *target, const char *type, unsigned long flags,
		    const char *data, struct berth_error *err)
{
	_cleanup_close_ int fd = ensure_dir(rootfd, target, 0755);

	if (fd < 0)
		return berth_error_set(err, fd, BERTH_ERR_INTERNAL, "creating %s: %s", target,
				       strerror(-fd));
	if (mount(type, fdpath(fd).s, type, flags, data) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mounting %s on %s: %m",
				       type, target);
	return 0;
}

/* Bind `src` (a host path or /proc/self/fd/N) onto `target` inside the root. */
static int bind_onto(int rootfd, const char *src, const char *target, bool rec,
		     struct berth_error *err)
{
	_cleanup_close_ int fd = open_in_root(rootfd, target, O_PATH);

	if (fd < 0)
		return berth_error_set(err, fd, BERTH_ERR_INTERNAL, "opening %s: %s", target,
				       strerror(-fd));
	if (mount(src, fdpath(fd).s, NULL, MS_BIND | (rec ? MS_REC : 0), NULL) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "binding %s onto %s: %m",
				       src, target);
	return 0;
}

static int bind_self(int rootfd, const char *target, bool rec, struct berth_error *err)
{
	_cleanup_close_ int fd = open_in_root(rootfd, target, O_PATH);

	if (fd < 0)
		return berth_error_set(err, fd, BERTH_ERR_INTERNAL, "opening %s: %s", target,
				       strerror(-fd));
	return bind_onto(rootfd, fdpath(fd).s, target, rec, err);
}

static int remount_ro(int rootfd, const char *target, unsigned long keep, struct berth_error *err)
{
	_cleanup_close_ int fd = open_in_root(rootfd, target, O_PATH);

	if (fd < 0)
		return berth_error_set(err, fd, BERTH_ERR_INTERNAL, "opening %s: %s", target,
				       strerror(-fd));
	if (mount(NULL, fdpath(fd).s, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "remounting %s read-only: %m", target);
	return 0;
}

static int setup_proc(int rootfd, struct berth_error *err)
{
	static const char *const masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list",
					     "/proc/sched_debug"};
	int r = mount_fs(rootfd, "/proc", "proc", MNT_NOSUID_NODEV_NOEXEC, NULL, err);

	if (r < 0)
		return r;
	/* /proc/sys read-only but /proc/sys/net writable: bind net first, so that the
	 * recursive bind of sys carries a writable copy of it, then make sys read-only. */
	if ((r = bind_self(rootfd, "/proc/sys/net", false, err)) < 0 ||
	    (r = bind_self(rootfd, "/proc/sys", true, err)) < 0 ||
	    (r = remount_ro(rootfd, "/proc/sys", MNT_NOSUID_NODEV_NOEXEC, err)) < 0)
		return r;
	if (faccessat(rootfd, "proc/sysrq-trigger", F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
	    ((r = bind_self(rootfd, "/proc/sysrq-trigger", false, err)) < 0 ||
	     (r = remount_ro(rootfd, "/proc/sysrq-trigger", MNT_NOSUID_NODEV_NOEXEC, err)) < 0))
		return r; /* kernels without CONFIG_MAGIC_SYSRQ have none */
	for (size_t i = 0; i < ARRAY_SIZE(masked); i++) {
		_cleanup_close_ int fd = open_in_root(rootfd, masked[i], O_PATH);
		if (fd == -ENOENT)
			continue;
		if ((r = bind_onto(rootfd, "/dev/null", masked[i], false, err)) < 0)
			return r;
	}
	return 0;
}

static int setup_sys(int rootfd, struct berth_error *err)
{
	int r = mount_fs(rootfd, "/sys", "sysfs", MNT_NOSUID_NODEV_NOEXEC | MS_RDONLY, NULL, err);

	if (r < 0)
		return r;
	return mount_fs(rootfd, "/sys/fs/cgroup", "cgroup2", MNT_NOSUID_NODEV_NOEXEC, NULL, err);
}

static int setup_dev(int rootfd, const char *console_path, struct berth_error *err)
{
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const links[][2] = {
		{"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
		{"pts/ptmx", "ptmx"},
	};
	_cleanup_close_ int dev = -EBADF;
	char dst[64];
	int r = mount_fs(rootfd, "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536",
			 err);

	if (r < 0)
		return r;
	dev = open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
	if (dev < 0)
		return berth_error_set(err, dev, BERTH_ERR_INTERNAL, "opening /dev: %s",
				       strerror(-dev));
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		_cleanup_close_ int fd = -EBADF;
		snprintf(dst, sizeof(dst), "/dev/%s", nodes[i]);
		fd = ensure_file(rootfd, dst);
		if (fd < 0)
			return berth_error_set(err, fd, BERTH_ERR_INTERNAL, "creating %s: %s", dst,
					       strerror(-fd));
		if ((r = bind_onto(rootfd, dst /* host path, same name */, dst, false, err)) < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		if (symlinkat(links[i][0], dev, links[i][1]) < 0 && errno != EEXIST)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "creating /dev/%s: %m", links[i][1]);
	r = mount_fs(rootfd, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5", NULL);
	if (r < 0) /* gid 5 unmapped */
		r = mount_fs(rootfd, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
			     "newinstance,ptmxmode=0666,mode=0620", err);
	if (r < 0 ||
	    (r = mount_fs(rootfd, "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", err)) <
		    0 ||
	    (r = mount_fs(rootfd, "/dev/mqueue", "mqueue", MNT_NOSUID_NODEV_NOEXEC, NULL, err)) < 0)
		return r;
	{
		_cleanup_close_ int fd = ensure_file(rootfd, "/dev/console");
		if (fd < 0)
			return berth_error_set(err, fd, BERTH_ERR_INTERNAL,
					       "creating /dev/console: %s", strerror(-fd));
	}
	/* by path: an fd opened before clone belongs to the host's mount namespace */
	return bind_onto(rootfd, console_path, "/dev/console", false, err);
}

/* lxcfs's view of /proc files, when lxcfs runs on the host. */
static int setup_lxcfs(int rootfd, struct berth_error *err)
{
	static const char *const files[] = {"cpuinfo", "diskstats", "loadavg", "meminfo",
					    "stat",    "swaps",	    "uptime"};
	struct statfs sf;

	if (statfs("/var/lib/lxcfs/proc", &sf) < 0 || sf.f_type != 0x65735546 /* FUSE */)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char src[64], dst[64];
		int r;
		snprintf(src, sizeof(src), "/var/lib/lxcfs/proc/%s", files[i]);
		snprintf(dst, sizeof(dst), "/proc/%s", files[i]);
		if (access(src, R_OK) < 0)
			continue;
		if ((r = bind_onto(rootfd, src, dst, false, err)) < 0)
			return r;
	}
	return 0;
}

static int setup_extra(int rootfd, const struct runtime_spec *spec, const int *fds,
		       struct berth_error *err)
{
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct runtime_mount *m = &spec->mounts[i];
		_cleanup_close_ int fd = -EBADF;

		if (m->create_dir)
			fd = ensure_dir(rootfd, m->target, 0755);
		else if (m->create_file)
			fd = ensure_file(rootfd, m->target);
		else
			fd = open_in_root(rootfd, m->target, O_PATH);
		if (fd < 0)
			return berth_error_set(err, fd, BERTH_ERR_INTERNAL, "mount target %s: %s",
					       m->target, strerror(-fd));
		if (move_mount(fds[i], "", fd, "",
			       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "mounting %s on %s: %m", m->source, m->target);
	}
	return 0;
}

int runtime_mounts_setup(const struct runtime_mounts_in *in, struct berth_error *err)
{
	_cleanup_close_ int rootfd = -EBADF;
	int r;

	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "making / a slave mount: %m");
	if (move_mount(in->root_tree, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "mounting the root filesystem: %m");
	if (fchdir(in->root_tree) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "entering the root: %m");
	rootfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	if ((r = setup_proc(rootfd, err)) < 0 || (r = setup_sys(rootfd, err)) < 0 ||
	    (r = setup_dev(rootfd, in->console_path, err)) < 0 ||
	    (r = setup_lxcfs(rootfd, err)) < 0 ||
	    (r = setup_extra(rootfd, in->spec, in->extra, err)) < 0)
		return r;
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pivot_root: %m");
	if (umount2(".", MNT_DETACH) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "detaching the old root: %m");
	if (chdir("/") < 0)
		return -errno;
	return 0;
}

/* ---- hot-plug into a running container ----
 *
 * berthd has threads, so the child forked to setns() into the container may inherit a
 * lock (malloc's, stdio's) held by another thread: it only makes raw syscalls on what
 * the parent prepared, and sends back {errno, step}; the parent words the error and
 * bounds its wait. */

#define PLUG_TIMEOUT_MS 30000

enum plug_step {
	PLUG_OK = 0,
	PLUG_SETNS,
	PLUG_UMOUNT,
	PLUG_SETGROUPS,
	PLUG_OPEN_ROOT,
	PLUG_TARGET, /* opening or creating the target */
	PLUG_STAT,
	PLUG_KIND, /* the target exists as the wrong kind of file */
	PLUG_MOVE_MOUNT,
};

struct plug {
	int tree; /* the detached tree to attach; -EBADF to detach */
	const struct runtime_mount *m;
	uid_t uid; /* owner of a target made here */
	gid_t gid;
	char *scratch; /* a writable copy of m->target, made before fork() */
};

struct plug_reply {
	int err;  /* negative errno */
	int step; /* enum plug_step */
};

static struct plug_reply plug_fail(int e, enum plug_step step)
{
	return (struct plug_reply){.err = e < 0 ? e : -EIO, .step = step};
}

/* The target of a hot-plugged mount, made where missing, and refused when it exists as the
 * wrong kind of file. In the child: syscalls only. */
static struct plug_reply plug_target(int rootfd, const struct plug *p, int *out)
{
	const struct runtime_mount *m = p->m;
	_cleanup_close_ int fd = open_in_root(rootfd, m->target, O_PATH | O_NOFOLLOW);
	struct stat st;

	if (fd == -ENOENT) {
		fd = m->create_dir ? ensure_dir_in(rootfd, p->scratch, 0755)
				   : ensure_file_in(rootfd, m->target, p->scratch);
	}
	if (fd < 0)
		return plug_fail(fd, PLUG_TARGET);
	if (fstat(fd, &st) < 0)
		return plug_fail(-errno, PLUG_STAT);
	if (m->create_dir != !!S_ISDIR(st.st_mode))
		return plug_fail(m->create_dir ? -ENOTDIR : -EISDIR, PLUG_KIND);
	*out = fd;
	fd = -EBADF;
	return (struct plug_reply){0};
}

/* In the child, inside the container's mount namespace (root and cwd are its root). */
static struct plug_reply plug_in_ns(const struct plug *p)
{
	_cleanup_close_ int rootfd = -EBADF, fd = -EBADF;
	struct plug_reply rep;

	if (p->tree < 0) {
		if (umount2(p->m->target, UMOUNT_NOFOLLOW | MNT_DETACH) < 0 && errno != EINVAL &&
		    errno != ENOENT)
			return plug_fail(-errno, PLUG_UMOUNT);
		return (struct plug_reply){0};
	}
	/* Look up and create the target as the container's root: what it made is its own,
	 * and an idmapped root (host ids outside its map are refused there) takes it. The
	 * raw syscalls skip libc's all-threads setxid machinery. */
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		return plug_fail(-errno, PLUG_SETGROUPS);
	syscall(SYS_setfsgid, p->gid);
	syscall(SYS_setfsuid, p->uid);
	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return plug_fail(-errno, PLUG_OPEN_ROOT);
	rep = plug_target(rootfd, p, &fd);
	if (rep.err < 0)
		return rep;
	if (move_mount(p->tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return plug_fail(-errno, PLUG_MOVE_MOUNT);
	return (struct plug_reply){0};
}

/* The child's whole life: no allocation, no stdio, no locks. */
static _Noreturn void plug_child(int mntns, const struct plug *p, int wfd)
{
	struct plug_reply rep = setns(mntns, CLONE_NEWNS) < 0 ? plug_fail(-errno, PLUG_SETNS)
							      : plug_in_ns(p);

	if (write(wfd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(1);
	_exit(0);
}

/* The parent's words for what the child reported. */
static int plug_error(const struct plug *p, struct plug_reply rep, struct berth_error *err)
{
	const char *t = p->m->target;
	int e = rep.err;

	switch (rep.step) {
	case PLUG_SETNS:
		return berth_error_set(err, e, BERTH_ERR_INTERNAL,
				       "Entering the instance's mount namespace for \"%s\": %s", t,
				       strerror(-e));
	case PLUG_UMOUNT:
		return berth_error_set(err, e, BERTH_ERR_INTERNAL, "Unmounting \"%s\": %s", t,
				       strerror(-e));
	case PLUG_SETGROUPS:
		return berth_error_set(err, e, BERTH_ERR_INTERNAL, "setgroups for \"%s\": %s", t,
				       strerror(-e));
	case PLUG_OPEN_ROOT:
		return berth_error_set(err, e, BERTH_ERR_INTERNAL,
				       "Opening the root for \"%s\": %s", t, strerror(-e));
	case PLUG_TARGET:
		return berth_error_set(err, e, BERTH_ERR_BAD_REQUEST, "Path \"%s\": %s", t,
				       strerror(-e));
	case PLUG_STAT:
		return berth_error_set(err, e, BERTH_ERR_INTERNAL, "Path \"%s\": %s", t,
				       strerror(-e));
	case PLUG_KIND:
		return berth_error_set(err, e, BERTH_ERR_BAD_REQUEST,
				       "Path \"%s\" exists in the instance and isn't a %s", t,
				       p->m->create_dir ? "directory" : "regular file");
	case PLUG_MOVE_MOUNT:
		return berth_error_set(err, e, BERTH_ERR_INTERNAL, "Mounting on \"%s\": %s", t,
				       strerror(-e));
	default:
		return berth_error_set(err, e, BERTH_ERR_INTERNAL,
				       "The mount helper for \"%s\" failed: %s", t, strerror(-e));
	}
}

/* Read the child's reply within PLUG_TIMEOUT_MS; kill it past that. Returns the bytes read,
 * -ETIMEDOUT, or -errno. */
static ssize_t plug_wait(pid_t pid, int rfd, struct plug_reply *rep)
{
	struct pollfd pfd = {.fd = rfd, .events = POLLIN};
	int64_t deadline = (int64_t)(berth_monotonic_ns() / 1000000) + PLUG_TIMEOUT_MS;
	ssize_t n;

	for (;;) {
		int64_t left = deadline - (int64_t)(berth_monotonic_ns() / 1000000);
		int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			kill(pid, SIGKILL);
			return -ETIMEDOUT;
		}
		break;
	}
	do
		n = read(rfd, rep, sizeof(*rep));
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* A child that setns()es into `mntns` (berthd has threads: it cannot itself) and runs
 * plug_in_ns there; its result comes back over a pipe. */
static int plug_run(int mntns, struct plug *p, struct berth_error *err)
{
	_cleanup_free_ char *scratch = strdup(p->m->target);
	struct plug_reply rep = {0};
	int fds[2], st = 0;
	ssize_t n;
	pid_t pid;

	if (!scratch)
		return -ENOMEM;
	p->scratch = scratch;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(fds[0]);
		close(fds[1]);
		return berth_error_set(err, e, BERTH_ERR_INTERNAL, "fork: %s", strerror(-e));
	}
	if (pid == 0)
		plug_child(mntns, p, fds[1]);
	close(fds[1]);
	n = plug_wait(pid, fds[0], &rep);
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (n == -ETIMEDOUT)
		return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_INTERNAL,
				       "The mount helper for \"%s\" did not answer within %d s: "
				       "killed",
				       p->m->target, PLUG_TIMEOUT_MS / 1000);
	if (n != (ssize_t)sizeof(rep))
		return berth_error_set(err, -EPIPE, BERTH_ERR_INTERNAL,
				       "The mount helper for \"%s\" died (status %d)", p->m->target,
				       st);
	if (rep.err < 0)
		return plug_error(p, rep, err);
	return 0;
}

int runtime_mount_attach(int mntns, int tree, const struct runtime_mount *m, uid_t uid, gid_t gid,
			 struct berth_error *err)
{
	struct plug p = {.tree = tree, .m = m, .uid = uid, .gid = gid};

	return plug_run(mntns, &p, err);
}

int runtime_mount_detach(int mntns, const struct runtime_mount *m, struct berth_error *err)
{
	struct plug p = {.tree = -EBADF, .m = m};

	return plug_run(mntns, &p, err);
}
