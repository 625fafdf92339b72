/* agent/files.c: the instance files API inside the guest: pull (content, mode, owner,
 * type; a directory's entries; a symlink's target), push (a file written to a temporary
 * name and renamed over the destination, so no reader sees it half-written; a directory;
 * a symlink), delete, mkdir. Paths are absolute and taken as they are: the agent runs as
 * root in the guest, and the host's user may do anything root there may. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct info {
	uint8_t type;
	uint32_t mode, uid, gid;
	uint64_t size;
	uint64_t mtime_s; /* modification time */
	uint32_t mtime_ns;
	const char *target;
};

static bool streq_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static int send_info(struct agent_conn *c, uint32_t id, const struct info *i)
{
	struct agent_buf p = {0};
	int r;

	agent_buf_u8(&p, i->type);
	agent_buf_u32(&p, i->mode);
	agent_buf_u32(&p, i->uid);
	agent_buf_u32(&p, i->gid);
	agent_buf_u64(&p, i->size);
	agent_buf_u64(&p, i->mtime_s);
	agent_buf_u32(&p, i->mtime_ns);
	agent_buf_str(&p, i->target);
	r = p.failed ? -ENOMEM : agent_send(c, AGENT_T_FILE_INFO, id, p.data, p.len);
	agent_buf_release(&p);
	return r;
}

static int one_path(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len,
		    const char **ret)
{
	struct agent_rd rd;
	const char *path;

	agent_rd_init(&rd, p, len);
	path = agent_rd_str(&rd);
	if (agent_rd_done(&rd) < 0 || path[0] != '/')
		return agent_send_error(c, id, -EINVAL, "path must be absolute");
	*ret = path;
	return 1;
}

/* Open for reading the regular file at `path` that lstat found as `was`: O_NONBLOCK, so
 * that a FIFO or device swapped in since cannot block the agent, and refused unless it is
 * still that very file. */
static int open_regular(const char *path, const struct stat *was)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || fcntl(fd, F_SETFL, O_RDONLY) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_dev != was->st_dev || st.st_ino != was->st_ino)
		r = -ESTALE; /* replaced since the lstat */
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int get_file(struct agent_conn *c, uint32_t id, const char *path, const struct stat *st,
		    struct info *i)
{
	uint8_t buf[AGENT_CHUNK];
	uint64_t left = i->size; /* what FILE_INFO announced: a file growing meanwhile is cut */
	ssize_t n = 0;
	int fd = open_regular(path, st), r;

	if (fd < 0)
		return agent_send_error(c, id, fd, "open \"%s\": %s", path, strerror(-fd));
	r = send_info(c, id, i);
	while (r >= 0 && left > 0) {
		n = read(fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		left -= (uint64_t)n;
		r = agent_send(c, AGENT_T_FILE_DATA, id, buf, (size_t)n);
	}
	if (r >= 0 && n < 0) /* the host drops what came: the error ends the transfer */
		r = agent_send_error(c, id, -errno, "read \"%s\": %s", path, strerror(errno));
	else if (r >= 0)
		r = agent_send(c, AGENT_T_FILE_END, id, NULL, 0);
	close(fd);
	return r;
}

/* The entries but "." and "..", as strs packed into data frames. */
static int get_dir(struct agent_conn *c, uint32_t id, const char *path, struct info *i)
{
	struct agent_buf p = {0};
	struct dirent *de;
	DIR *d = opendir(path);
	int r;

	if (!d)
		return agent_send_error(c, id, -errno, "opendir \"%s\": %s", path, strerror(errno));
	r = send_info(c, id, i);
	while (r >= 0 && (de = readdir(d))) {
		if (streq_dot(de->d_name))
			continue;
		if (p.len + strlen(de->d_name) + 5 > AGENT_CHUNK) {
			r = agent_send(c, AGENT_T_FILE_DATA, id, p.data, p.len);
			p.len = 0;
		}
		agent_buf_str(&p, de->d_name);
		if (p.failed)
			r = -ENOMEM;
	}
	if (r >= 0 && p.len > 0)
		r = agent_send(c, AGENT_T_FILE_DATA, id, p.data, p.len);
	if (r >= 0)
		r = agent_send(c, AGENT_T_FILE_END, id, NULL, 0);
	agent_buf_release(&p);
	closedir(d);
	return r;
}

int agent_file_get(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	char target[PATH_MAX];
	const char *path;
	struct stat st;
	struct info i;
	ssize_t n;
	int r = one_path(c, id, p, len, &path);

	if (r <= 0)
		return r;
	if (lstat(path, &st) < 0)
		return agent_send_error(c, id, -errno, "\"%s\": %s", path, strerror(errno));
	i = (struct info){.mode = st.st_mode & 07777,
			  .uid = st.st_uid,
			  .gid = st.st_gid,
			  .size = (uint64_t)st.st_size,
			  .mtime_s = (uint64_t)st.st_mtim.tv_sec,
			  .mtime_ns = (uint32_t)st.st_mtim.tv_nsec,
			  .target = ""};
	if (S_ISREG(st.st_mode)) {
		i.type = AGENT_FILE_REGULAR;
		return get_file(c, id, path, &st, &i);
	}
	if (S_ISDIR(st.st_mode)) {
		i.type = AGENT_FILE_DIRECTORY;
		return get_dir(c, id, path, &i);
	}
	if (!S_ISLNK(st.st_mode))
		return agent_send_error(c, id, -EINVAL, "\"%s\": not a file, directory or symlink",
					path);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return agent_send_error(c, id, -errno, "readlink \"%s\": %s", path,
					strerror(errno));
	target[n] = 0;
	i.type = AGENT_FILE_SYMLINK;
	i.target = target;
	r = send_info(c, id, &i);
	return r < 0 ? r : agent_send(c, AGENT_T_FILE_END, id, NULL, 0);
}

/* Follow symlinks in the last component of `path` (a relative target joined lexically to
 * the link's directory, as LXD's sftp server and berth's containers do), at most 40:
 * a new string naming what is not a symlink, or does not exist. */
static int follow_last(const char *path, char **ret)
{
	char buf[PATH_MAX], *cur = strdup(path);
	struct stat st;

	for (int hops = 0; cur && hops <= 40; hops++) {
		const char *slash;
		char *next;
		ssize_t n;

		if (lstat(cur, &st) < 0 || !S_ISLNK(st.st_mode)) {
			*ret = cur;
			return 0;
		}
		n = readlink(cur, buf, sizeof(buf) - 1);
		if (n < 0) {
			free(cur);
			return -errno;
		}
		buf[n] = 0;
		slash = strrchr(cur, '/');
		next = malloc(strlen(cur) + (size_t)n + 2);
		if (next && buf[0] == '/')
			strcpy(next, buf);
		else if (next)
			sprintf(next, "%.*s/%s", (int)(slash - cur), cur, buf);
		free(cur);
		cur = next;
	}
	if (!cur)
		return -ENOMEM;
	free(cur);
	return -ELOOP;
}

/* Owner and mode, as LXD 5.0.2: what the request gives (else root's and `def_mode`)
 * applies to what it creates; an existing file keeps its own unless MODIFY_PERM. */
static void put_attrs(struct agent_chan *ch, const struct stat *st, bool exists, uint32_t def_mode)
{
	bool keep = exists && !(ch->put_flags & AGENT_PUT_MODIFY_PERM);

	if (keep || (exists && ch->put_mode == AGENT_ID_NONE))
		ch->put_mode = st->st_mode & 07777;
	else if (ch->put_mode == AGENT_ID_NONE)
		ch->put_mode = def_mode;
	if (keep || (exists && ch->put_uid == AGENT_ID_NONE))
		ch->put_uid = st->st_uid;
	else if (ch->put_uid == AGENT_ID_NONE)
		ch->put_uid = 0;
	if (keep || (exists && ch->put_gid == AGENT_ID_NONE))
		ch->put_gid = st->st_gid;
	else if (ch->put_gid == AGENT_ID_NONE)
		ch->put_gid = 0;
}

/* Copy what `path` (found by lstat as `st`) holds into `fd` (an append starts from the
 * old content). */
static int copy_into(const char *path, const struct stat *st, int fd)
{
	char buf[AGENT_CHUNK];
	ssize_t n;
	int in = open_regular(path, st), r = 0;

	if (in < 0)
		return in;
	while (r >= 0 && (n = read(in, buf, sizeof(buf))) != 0)
		r = n < 0 ? (errno == EINTR ? 0 : -errno) : agent_write_all(fd, buf, (size_t)n, -1);
	close(in);
	return r;
}

/* A regular file: resolve the destination, open a temporary file beside it (holding the
 * old content when appending), so that data goes straight to it and the rename at the
 * end replaces the destination whole. */
static int put_open(struct agent_chan *ch)
{
	_Static_assert(sizeof(".berth-agent.XXXXXX") < 32, "temporary name");
	char *dest = NULL;
	struct stat st;
	bool exists;
	size_t dlen;
	int r = follow_last(ch->put_path, &dest);

	if (r < 0)
		return r;
	free(ch->put_path);
	ch->put_path = dest;
	exists = lstat(dest, &st) == 0;
	if (exists && !S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EEXIST;
	put_attrs(ch, &st, exists, 0644);
	dlen = (size_t)(strrchr(dest, '/') - dest);
	ch->put_tmp = malloc(dlen + 32);
	if (!ch->put_tmp)
		return -ENOMEM;
	snprintf(ch->put_tmp, dlen + 32, "%.*s/.berth-agent.XXXXXX", (int)dlen, dest);
	ch->put_fd = mkostemp(ch->put_tmp, O_CLOEXEC);
	if (ch->put_fd < 0) {
		free(ch->put_tmp);
		ch->put_tmp = NULL;
		return -errno;
	}
	if (exists && (ch->put_flags & AGENT_PUT_APPEND)) {
		r = copy_into(dest, &st, ch->put_fd);
		if (r < 0)
			return r;
	}
	if (fchown(ch->put_fd, ch->put_uid, ch->put_gid) < 0 ||
	    fchmod(ch->put_fd, ch->put_mode & 07777) < 0)
		return -errno;
	return 0;
}

int agent_file_put(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	struct agent_chan *ch;
	struct agent_rd rd;
	const char *path, *target;
	uint8_t type, flags;
	uint32_t mode, uid, gid;
	int r;

	agent_rd_init(&rd, p, len);
	type = agent_rd_u8(&rd);
	flags = agent_rd_u8(&rd);
	mode = agent_rd_u32(&rd);
	uid = agent_rd_u32(&rd);
	gid = agent_rd_u32(&rd);
	path = agent_rd_str(&rd);
	target = agent_rd_str(&rd);
	if (agent_rd_done(&rd) < 0 || type == 0 || type >= AGENT_FILE_TYPE_MAX)
		return agent_send_error(c, id, -EBADMSG, "malformed FILE_PUT");
	if (path[0] != '/' || streq_dot(strrchr(path, '/') + 1) || !strrchr(path, '/')[1])
		return agent_send_error(c, id, -EINVAL, "\"%s\": not an absolute file path", path);
	if (type == AGENT_FILE_SYMLINK && !target[0])
		return agent_send_error(c, id, -EINVAL, "\"%s\": a symlink needs a target", path);
	ch = agent_chan_new(c, id, &r);
	if (!ch)
		return agent_send_error(c, id, r, "channel %u: %s", id,
					r == -EBUSY ? "in use" : "too many channels");
	ch->kind = AGENT_CHAN_PUT;
	ch->put_type = type;
	ch->put_flags = flags;
	ch->put_mode = mode;
	ch->put_uid = uid;
	ch->put_gid = gid;
	ch->put_path = strdup(path);
	ch->put_target = strdup(target);
	if (!ch->put_path || !ch->put_target) {
		agent_chan_release(ch);
		return -ENOMEM;
	}
	if (type == AGENT_FILE_REGULAR)
		ch->put_err = put_open(ch);
	return 0;
}

int agent_file_data(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len)
{
	if (ch->put_err < 0)
		return 0; /* reported at the end */
	if (ch->put_type != AGENT_FILE_REGULAR) {
		ch->put_err = -EINVAL;
		return 0;
	}
	while (len > 0) {
		ssize_t n = write(ch->put_fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ch->put_err = -errno;
			return 0;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The directory holding `path`'s last component, opened; that component's name in *name
 * (pointing into `path`). */
static int open_parent(const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd;

	if (!slash || (size_t)(slash - path) >= sizeof(dir))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*name = slash + 1;
	return fd;
}

/* Owner and mode of directory `name` in `dirfd`, set through a descriptor of its own that
 * never follows a symlink: a guest user who may write in the parent cannot swap a link to
 * something else in between. `made`: the agent just made it, so it must still be root's. */
static int dir_set_perm(int dirfd, const char *name, bool made, uint32_t uid, uint32_t gid,
			uint32_t mode)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISDIR(st.st_mode) || (made && st.st_uid != geteuid()))
		r = -EPERM; /* not what was made */
	else if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode & 07777) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* A directory: made if missing; one already there is left alone (its owner and mode
 * changed only with MODIFY_PERM). */
static int put_directory(struct agent_chan *ch)
{
	const char *name;
	struct stat st;
	bool exists = lstat(ch->put_path, &st) == 0;
	int dfd, r;

	if (exists && !S_ISDIR(st.st_mode))
		return -EEXIST;
	if (exists && !(ch->put_flags & AGENT_PUT_MODIFY_PERM))
		return 0;
	put_attrs(ch, &st, exists, 0750);
	dfd = open_parent(ch->put_path, &name);
	if (dfd < 0)
		return dfd;
	r = !exists && mkdirat(dfd, name, 0700) < 0 ? -errno : 0;
	if (r >= 0)
		r = dir_set_perm(dfd, name, !exists, ch->put_uid, ch->put_gid, ch->put_mode);
	close(dfd);
	return r;
}

/* A symlink: made if the path is free; the same link already there is fine, anything
 * else there is not replaced (-EEXIST), as 5.0.2. Owned by the given ids, else root. */
static int put_symlink(struct agent_chan *ch)
{
	char cur[PATH_MAX];
	ssize_t n = readlink(ch->put_path, cur, sizeof(cur) - 1);

	if (n >= 0) {
		cur[n] = 0;
		return strcmp(cur, ch->put_target) == 0 ? 0 : -EEXIST;
	}
	if (symlink(ch->put_target, ch->put_path) < 0)
		return -errno;
	if (lchown(ch->put_path, ch->put_uid == AGENT_ID_NONE ? 0 : ch->put_uid,
		   ch->put_gid == AGENT_ID_NONE ? 0 : ch->put_gid) < 0) {
		int r = -errno;

		unlink(ch->put_path);
		return r;
	}
	return 0;
}

static int put_finish(struct agent_chan *ch)
{
	switch (ch->put_type) {
	case AGENT_FILE_REGULAR:
		if (close(ch->put_fd) < 0) {
			ch->put_fd = -EBADF;
			return -errno;
		}
		ch->put_fd = -EBADF;
		if (rename(ch->put_tmp, ch->put_path) < 0)
			return -errno;
		free(ch->put_tmp);
		ch->put_tmp = NULL; /* renamed: not to be unlinked */
		return 0;
	case AGENT_FILE_DIRECTORY:
		return put_directory(ch);
	default:
		return put_symlink(ch);
	}
}

int agent_file_end(struct agent_conn *c, struct agent_chan *ch)
{
	uint32_t id = ch->id;
	char path[PATH_MAX];
	int r = ch->put_err;

	snprintf(path, sizeof(path), "%s", ch->put_path);
	if (r >= 0)
		r = put_finish(ch);
	agent_chan_release(ch); /* unlinks a temporary file left */
	if (r < 0)
		return agent_send_error(c, id, r, "push \"%s\": %s", path, strerror(-r));
	return agent_send(c, AGENT_T_OK, id, NULL, 0);
}

int agent_file_delete(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	const char *path;
	struct stat st;
	int r = one_path(c, id, p, len, &path);

	if (r <= 0)
		return r;
	if (lstat(path, &st) < 0 || (S_ISDIR(st.st_mode) ? rmdir(path) : unlink(path)) < 0)
		return agent_send_error(c, id, -errno, "delete \"%s\": %s", path, strerror(errno));
	return agent_send(c, AGENT_T_OK, id, NULL, 0);
}

/* mkdir of one directory, owned and moded as asked; `exist_ok` for parents. Made 0700
 * first, its owner and mode then set by descriptor (umask may have taken bits). */
static int mkdir_one(const char *path, uint32_t mode, uint32_t uid, uint32_t gid, bool exist_ok)
{
	const char *name;
	struct stat st;
	int dfd = open_parent(path, &name), r = 0;

	if (dfd < 0)
		return dfd;
	if (!name[0]) /* "/" itself */
		r = exist_ok ? 0 : -EEXIST;
	else if (mkdirat(dfd, name, 0700) < 0)
		r = errno == EEXIST && exist_ok && fstatat(dfd, name, &st, 0) == 0 &&
				    S_ISDIR(st.st_mode)
			    ? 0
			    : -errno;
	else
		r = dir_set_perm(dfd, name, true, uid == AGENT_ID_NONE ? 0 : uid,
				 gid == AGENT_ID_NONE ? 0 : gid, mode);
	close(dfd);
	return r;
}

int agent_file_mkdir(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	char path[PATH_MAX];
	struct agent_rd rd;
	uint8_t parents;
	uint32_t mode, uid, gid;
	const char *want;
	int r = 0;

	agent_rd_init(&rd, p, len);
	parents = agent_rd_u8(&rd);
	mode = agent_rd_u32(&rd);
	uid = agent_rd_u32(&rd);
	gid = agent_rd_u32(&rd);
	want = agent_rd_str(&rd);
	if (agent_rd_done(&rd) < 0 || want[0] != '/' || strlen(want) >= sizeof(path))
		return agent_send_error(c, id, -EINVAL, "malformed MKDIR or relative path");
	if (mode == AGENT_ID_NONE)
		mode = 0755;
	strcpy(path, want);
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = 0;
	/* with parents: each prefix ending before a '/', then the whole path */
	for (char *s = path + 1; parents && r >= 0 && (s = strchr(s, '/')); s++) {
		if (s[-1] == '/')
			continue; /* "//" */
		*s = 0;
		r = mkdir_one(path, mode, uid, gid, true);
		*s = '/';
	}
	if (r >= 0)
		r = mkdir_one(path, mode, uid, gid, parents);
	if (r < 0)
		return agent_send_error(c, id, r, "mkdir \"%s\": %s", want, strerror(-r));
	return agent_send(c, AGENT_T_OK, id, NULL, 0);
}
