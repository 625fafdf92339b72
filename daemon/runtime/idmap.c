/* daemon/runtime/idmap.c: id maps, idmapped mounts, on-disk shifting (see idmap.h). */
#include "daemon/runtime/idmap.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"

static int write_proc(pid_t pid, const char *file, const char *text)
{
	char path[64];
	_cleanup_close_ int fd = -EBADF;
	size_t len = strlen(text);

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		return -errno;
	return 0;
}

static int render_map(const struct runtime_idmap *m, size_t n, char **ret)
{
	size_t cap = n * 40 + 1, len = 0;
	char *s = malloc(cap);

	if (!s)
		return -ENOMEM;
	s[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%u %u %u\n", m[i].container, m[i].host,
					m[i].count);
	*ret = s;
	return 0;
}

int runtime_idmap_write(pid_t pid, const struct runtime_spec *spec, struct berth_error *err)
{
	_cleanup_free_ char *uid = NULL, *gid = NULL;
	int r;

	if (!spec->n_gid_map || !spec->n_uid_map) {
		r = write_proc(pid, "setgroups", "deny");
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL, "writing setgroups: %s",
					       strerror(-r));
	}
	if (render_map(spec->uid_map, spec->n_uid_map, &uid) < 0 ||
	    render_map(spec->gid_map, spec->n_gid_map, &gid) < 0)
		return -ENOMEM;
	if (spec->n_uid_map && (r = write_proc(pid, "uid_map", uid)) < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "writing uid_map: %s",
				       strerror(-r));
	if (spec->n_gid_map && (r = write_proc(pid, "gid_map", gid)) < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "writing gid_map: %s",
				       strerror(-r));
	return 0;
}

uint64_t runtime_tree_attrs(const struct runtime_spec *spec, bool ro)
{
	return (ro ? MOUNT_ATTR_RDONLY : 0) | (spec->privileged ? 0 : MOUNT_ATTR_NODEV);
}

int runtime_idmap_open_tree(const char *path, int userns_fd, uint64_t attrs, int *ret,
			    struct berth_error *err)
{
	_cleanup_close_ int fd = open_tree(AT_FDCWD, path,
					   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	struct mount_attr attr = {0};

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "open_tree(\"%s\"): %m",
				       path);
	/* A clone of a shared mount joins its peer group: the container's mounts on it would
	 * show on the host (and pivot_root refuses a shared new root). Where systemd is PID 1,
	 * "/" is shared. */
	attr.propagation = MS_PRIVATE;
	if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "making the copy of \"%s\" private: %m", path);
	memset(&attr, 0, sizeof(attr));
	if (userns_fd >= 0) {
		attr.attr_set = MOUNT_ATTR_IDMAP;
		attr.userns_fd = (uint64_t)userns_fd;
		if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
			int e = errno;
			if (e == EINVAL || e == EOPNOTSUPP || e == ENOSYS)
				return berth_error_set(err, -e, BERTH_ERR_BAD_REQUEST,
						       "idmapped mount of \"%s\": this kernel or "
						       "filesystem does not support it (%s)",
						       path, strerror(e));
			return berth_error_set(err, -e, BERTH_ERR_INTERNAL,
					       "idmapped mount of \"%s\": %s", path, strerror(e));
		}
	}
	if (attrs) {
		memset(&attr, 0, sizeof(attr));
		attr.attr_set = attrs;
		if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "%s%smount of \"%s\": %m",
					       attrs & MOUNT_ATTR_RDONLY ? "read-only " : "",
					       attrs & MOUNT_ATTR_NODEV ? "nodev " : "", path);
	}
	*ret = TAKE_FD(fd);
	return 0;
}

/* ---- on-disk shift ---- */

struct shift {
	uint32_t from_uid, from_gid; /* the bases the tree holds now */
	uint32_t to_uid, to_gid;
	uint32_t count;
};

static uint32_t shift_id(uint32_t id, uint32_t from, uint32_t to, uint32_t count)
{
	if (id >= from && id - from < count)
		return id - from + to;
	return id; /* outside the range: leave it (it maps to nobody inside anyway) */
}

static int shift_entry(int dirfd, const char *name, const struct shift *s)
{
	struct stat st;
	uid_t u;
	gid_t g;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	u = shift_id(st.st_uid, s->from_uid, s->to_uid, s->count);
	g = shift_id(st.st_gid, s->from_gid, s->to_gid, s->count);
	if (u == st.st_uid && g == st.st_gid)
		return 0;
	if (fchownat(dirfd, name, u, g, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	/* chown drops set-id bits; put them back */
	if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) &&
	    fchmodat(dirfd, name, st.st_mode & 07777, 0) < 0)
		return -errno;
	return 0;
}

static int shift_tree(int dirfd, const struct shift *s, dev_t dev)
{
	_cleanup_close_ int dup_fd = dup(dirfd);
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (dup_fd < 0)
		return -errno;
	d = fdopendir(dup_fd);
	if (!d)
		return -errno;
	dup_fd = -EBADF;
	while ((de = readdir(d)) && r == 0) {
		struct stat st;
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		r = shift_entry(dirfd, de->d_name, s);
		if (r < 0)
			break;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode) && st.st_dev == dev) {
			_cleanup_close_ int sub = openat(dirfd, de->d_name,
							 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
								 O_CLOEXEC);
			if (sub < 0) {
				r = -errno;
				break;
			}
			r = shift_tree(sub, s, dev);
		}
	}
	closedir(d);
	return r;
}

int runtime_idmap_shift(const struct runtime_spec *spec, struct berth_error *err)
{
	_cleanup_free_ char *marker = NULL, *old = NULL;
	_cleanup_close_ int root = -EBADF;
	struct shift s = {0};
	char line[96];
	struct stat st;
	int r;

	if (!spec->volume || !spec->n_uid_map || !spec->n_gid_map ||
	    spec->uid_map[0].container != 0 || spec->gid_map[0].container != 0)
		return berth_error_set(
			err, -EINVAL, BERTH_ERR_INTERNAL,
			"cannot shift the root filesystem: no volume or no map of id 0");
	s.to_uid = spec->uid_map[0].host;
	s.to_gid = spec->gid_map[0].host;
	s.count = spec->uid_map[0].count < spec->gid_map[0].count ? spec->uid_map[0].count
								  : spec->gid_map[0].count;
	marker = berth_strdup_printf("%s/berth-shift", spec->volume);
	if (!marker)
		return -ENOMEM;
	r = berth_read_file(marker, 128, &old, NULL);
	if (r == 0) {
		unsigned long fu, fg, fc;
		if (sscanf(old, "%lu %lu %lu", &fu, &fg, &fc) != 3)
			return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
					       "bad shift marker \"%s\"", marker);
		s.from_uid = (uint32_t)fu;
		s.from_gid = (uint32_t)fg;
		if (fc < s.count)
			s.count = (uint32_t)fc;
	} else if (r != -ENOENT) {
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "reading \"%s\": %s", marker,
				       strerror(-r));
	}
	if (s.from_uid == s.to_uid && s.from_gid == s.to_gid)
		return 0;
	root = open(spec->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 || fstat(root, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening \"%s\": %m",
				       spec->rootfs);
	r = shift_entry(root, ".", &s);
	if (r == 0)
		r = shift_tree(root, &s, st.st_dev);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "shifting \"%s\": %s",
				       spec->rootfs, strerror(-r));
	snprintf(line, sizeof(line), "%u %u %u\n", s.to_uid, s.to_gid, s.count);
	r = berth_write_file_atomic(marker, line, strlen(line), 0644);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "writing \"%s\": %s", marker,
				       strerror(-r));
	return 0;
}

int runtime_idmap_shift_path(const char *path, const struct runtime_idmap_shift *sh,
			     struct berth_error *err)
{
	struct shift s = {sh->from_uid, sh->from_gid, sh->to_uid, sh->to_gid, sh->count};
	_cleanup_close_ int root = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int r;

	if (root < 0 || fstat(root, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening \"%s\": %m", path);
	if (s.from_uid == s.to_uid && s.from_gid == s.to_gid)
		return 0;
	r = shift_entry(root, ".", &s);
	if (r == 0)
		r = shift_tree(root, &s, st.st_dev);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "shifting \"%s\": %s", path,
				       strerror(-r));
	return 0;
}

/* ---- probing idmapped mounts ---- */

/* A child in a new user namespace of its own, kept until the parent closes go[1]. */
static pid_t probe_child(const int ready[2], const int go[2])
{
	pid_t pid = fork();
	char c;

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	/* berthd has threads: only async-signal-safe calls from here on. The parent's ends
	 * are closed here, so that `go` reads EOF once the parent closes its own. */
	close(ready[0]);
	close(go[1]);
	if (unshare(CLONE_NEWUSER) < 0 || write(ready[1], "u", 1) != 1)
		_exit(1);
	while (read(go[0], &c, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

int runtime_idmap_probe(const char *path, const struct runtime_spec *spec, struct berth_error *err)
{
	_cleanup_close_ int userns = -EBADF, tree = -EBADF;
	int ready[2], go[2], st, r;
	char c, p[64];
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pipe: %m");
	if (pipe2(go, O_CLOEXEC) < 0) {
		r = -errno;
		close(ready[0]);
		close(ready[1]);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "pipe: %s", strerror(-r));
	}
	pid = probe_child(ready, go);
	close(ready[1]);
	close(go[0]);
	if (pid < 0)
		r = berth_error_set(err, pid, BERTH_ERR_INTERNAL, "fork: %s", strerror(-pid));
	else if (read(ready[0], &c, 1) != 1)
		r = berth_error_set(err, -ECHILD, BERTH_ERR_INTERNAL,
				    "probing idmapped mounts: no user namespace");
	else
		r = runtime_idmap_write(pid, spec, err);
	if (r >= 0) {
		snprintf(p, sizeof(p), "/proc/%d/ns/user", (int)pid);
		userns = open(p, O_RDONLY | O_CLOEXEC);
		r = userns < 0
			    ? berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening %s: %m", p)
			    : runtime_idmap_open_tree(path, userns, 0, &tree, err);
		if (r == -EINVAL || r == -EPERM || r == -EOPNOTSUPP || r == -ENOSYS)
			r = 0; /* refused: the caller falls back to a shift */
		else if (r >= 0)
			r = 1;
	}
	close(ready[0]);
	close(go[1]);
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return r;
}

/* ---- fd passing ---- */

int runtime_send_fds(int sock, const char *msg, const int *fds, size_t n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 250)];
	} u;
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg) + 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (n > 250)
		return -E2BIG;
	if (n) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

int runtime_recv_fds(int sock, char *buf, size_t size, int *fds, size_t max, size_t *ret_n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 250)];
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = size - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t len;
	size_t n = 0;

	do
		len = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (len < 0 && errno == EINTR);
	if (len < 0)
		return -errno;
	if (len == 0)
		return -ECONNRESET;
	buf[len] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < cnt; i++) {
			if (n < max)
				fds[n++] = in[i];
			else
				close(in[i]);
		}
	}
	*ret_n = n;
	return 0;
}
