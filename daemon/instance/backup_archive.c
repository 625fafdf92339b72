/* daemon/instance/backup_archive.c: reading backup tarballs with libarchive and writing
 * their trees without following links (see backup_archive.h). */
#include "daemon/instance/backup_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "images/archive_load.h"
#include "lib/json.h"
#include "lib/utf8.h"
#include "lib/util.h"
#include "lib/yaml.h"

#define BOMB_FLOOR (1ull << 30)
#define BOMB_RATIO 1000

static void archive_readp(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

/* A reader on `fd` from offset 0, every filter, tar formats. */
static int reader_open(int fd, struct archive **ret, struct berth_error *err)
{
	struct archive *a;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Backup file: %m");
	a = archive_read_new();
	if (!a)
		return image_archive_fail(err);
	image_archive_read_filters(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK) {
		int r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					"Backup file is not a (compressed) tarball: %s",
					archive_error_string(a) ?: "unknown format");
		archive_read_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

static int read_fail(struct archive *a, struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Backup tarball is truncated or corrupt: %s",
			       archive_error_string(a) ?: "read error");
}

/* The next header; a warning (a name libarchive could not convert) is still a header. */
static int next_header(struct archive *a, struct archive_entry **e)
{
	int r = archive_read_next_header(a, e);

	return r == ARCHIVE_WARN ? ARCHIVE_OK : r;
}

static void entry_describe(struct archive_entry *ae, struct backup_entry *e)
{
	*e = (struct backup_entry){
		.path = archive_entry_pathname(ae),
		.type = archive_entry_filetype(ae),
		.symlink = archive_entry_symlink(ae),
		.hardlink = archive_entry_hardlink(ae),
		.devmajor = (unsigned)archive_entry_rdevmajor(ae),
		.devminor = (unsigned)archive_entry_rdevminor(ae),
	};
}

/* The data of the current member, at most BACKUP_CONFIG_MAX bytes, as a new string. */
static int read_small(struct archive *a, struct archive_entry *ae, char **ret, size_t *ret_len,
		      struct berth_error *err)
{
	la_int64_t size = archive_entry_size(ae);
	_cleanup_free_ char *buf = NULL;
	la_ssize_t n;

	if (size < 0 || (uint64_t)size > BACKUP_CONFIG_MAX)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup index or config larger than 1 MiB");
	buf = malloc((size_t)size + 1);
	if (!buf)
		return -ENOMEM;
	n = archive_read_data(a, buf, (size_t)size);
	if (n < 0 || n != size)
		return read_fail(a, err);
	buf[size] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = (size_t)size;
	return 0;
}

int backup_read_index(int fd, struct backup_index **ret, struct berth_error *err)
{
	_cleanup_(archive_readp) struct archive *a = NULL;
	struct archive_entry *ae;
	int r = reader_open(fd, &a, err);

	if (r < 0)
		return r;
	while ((r = next_header(a, &ae)) == ARCHIVE_OK) {
		struct backup_entry e;
		struct backup_member m;
		_cleanup_free_ char *buf = NULL;
		size_t len = 0;

		entry_describe(ae, &e);
		r = backup_member_check(&e, &m, err);
		if (r < 0)
			return r;
		r = m.kind == BACKUP_MEMBER_INDEX;
		backup_member_release(&m);
		if (!r)
			continue;
		r = read_small(a, ae, &buf, &len, err);
		return r < 0 ? r : backup_index_parse(buf, len, ret, err);
	}
	if (r != ARCHIVE_EOF)
		return read_fail(a, err);
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Backup is missing index.yaml");
}

/* ---- scan ---- */

void backup_scan_free(struct backup_scan *s)
{
	if (!s)
		return;
	backup_index_free(s->index);
	json_decref(s->config);
	json_decref(s->trees);
	json_decref(s->bins);
	json_decref(s->disks);
	free(s);
}

/* The decompressed stream so far against the compressed bytes read. */
static int bomb_check(struct archive *a, struct berth_error *err)
{
	uint64_t raw = (uint64_t)archive_filter_bytes(a, -1);
	uint64_t out = (uint64_t)archive_filter_bytes(a, 0);

	if (out > BOMB_FLOOR && raw > 0 && out / raw > BOMB_RATIO)
		return berth_error_set(err, -EFBIG, BERTH_ERR_BAD_REQUEST,
				       "Backup decompresses to more than %d times its size: "
				       "refused as a decompression bomb",
				       BOMB_RATIO);
	return 0;
}

static int scan_limits(struct archive *a, struct archive_entry *ae, struct backup_scan *s,
		       const struct backup_limits *lim, struct berth_error *err)
{
	la_int64_t size = archive_entry_size(ae);

	if (size > 0 && archive_entry_filetype(ae) == AE_IFREG && !archive_entry_hardlink(ae))
		s->bytes += (uint64_t)size;
	if (++s->members > lim->max_members)
		return berth_error_set(err, -EFBIG, BERTH_ERR_BAD_REQUEST,
				       "Backup has more than %" PRIu64 " members",
				       lim->max_members);
	if (s->bytes > lim->max_bytes)
		return berth_error_set(err, -EFBIG, BERTH_ERR_BAD_REQUEST,
				       "Backup holds more than the %" PRIu64
				       " bytes free on the target storage pool",
				       lim->max_bytes);
	return bomb_check(a, err);
}

/* Record member `m` (read at `ae`) in the scan. */
static int scan_member(struct archive *a, struct archive_entry *ae, struct backup_member *m,
		       struct backup_scan *s, struct berth_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = 0;

	if (m->vm)
		s->vm_layout = true;
	else if (m->kind == BACKUP_MEMBER_TREE || m->kind == BACKUP_MEMBER_CONFIG ||
		 m->kind == BACKUP_MEMBER_BIN)
		s->ct_layout = true;
	if (m->is_disk)
		return json_object_set_new(s->disks, m->snap ?: "", json_true()) < 0 ? -ENOMEM : 0;
	switch (m->kind) {
	case BACKUP_MEMBER_INDEX:
		if (s->index)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Backup holds index.yaml twice");
		r = read_small(a, ae, &buf, &len, err);
		return r < 0 ? r : backup_index_parse(buf, len, &s->index, err);
	case BACKUP_MEMBER_CONFIG:
		json_decref(TAKE_PTR(s->config));
		r = read_small(a, ae, &buf, &len, err);
		if (r >= 0)
			r = berth_yaml_parse(buf, len, &s->config, err);
		if (r >= 0)
			r = backup_config_check(s->config, err);
		return r < 0 ? berth_error_wrap(err, -EINVAL, "Invalid backup.yaml") : 0;
	case BACKUP_MEMBER_TREE:
	case BACKUP_MEMBER_SKIP:
		if (!m->snap)
			s->container_tree = true;
		else
			r = json_object_set_new(s->trees, m->snap, json_true());
		return r < 0 ? -ENOMEM : 0;
	case BACKUP_MEMBER_BIN:
		return json_object_set_new(s->bins, m->snap ?: "", json_true()) < 0 ? -ENOMEM : 0;
	default:
		return 0;
	}
}

static bool index_vm(const struct backup_index *ix)
{
	return streq(ix->type, "virtual-machine");
}

/* A member of the other type's layout than index `ix` says. */
static int layout_refuse(const struct backup_index *ix, struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Backup index says type \"%s\" but the tarball holds a %s's layout",
			       ix->type, index_vm(ix) ? "container" : "virtual machine");
}

/* A VM's disks: one for the instance and each listed snapshot, none other. */
static int disks_match(const struct backup_scan *s, struct berth_error *err)
{
	const struct backup_index *ix = s->index;
	const char *k;
	json_t *v, *n;
	size_t i;

	if (!json_object_get(s->disks, ""))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup holds no disk (backup/virtual-machine.img)");
	json_array_foreach(ix->snapshots, i, v)
		if (!json_object_get(s->disks, json_string_value(v)))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Backup index lists snapshot \"%s\" but the tarball "
					       "holds no disk of it",
					       json_string_value(v));
	json_object_foreach(s->disks, k, v) {
		bool listed = !*k;

		json_array_foreach(ix->snapshots, i, n)
			listed |= streq(json_string_value(n), k);
		if (!listed)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Backup holds snapshot \"%s\" that its index does "
					       "not list",
					       k);
	}
	return 0;
}

/* Does what the archive holds match what its index says? */
static int scan_match(const struct backup_scan *s, struct berth_error *err)
{
	const struct backup_index *ix = s->index;
	const char *k;
	json_t *v;
	size_t i;
	json_t *present;

	if (!ix)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup is missing index.yaml");
	if (index_vm(ix) ? s->ct_layout : s->vm_layout)
		return layout_refuse(ix, err);
	present = ix->optimized ? s->bins : s->trees;
	if (ix->optimized ? (s->container_tree || json_object_size(s->trees))
			  : json_object_size(s->bins) > 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup index says optimized=%s but the tarball holds %s",
				       ix->optimized ? "true" : "false",
				       ix->optimized ? "plain directories" : ".bin streams");
	if (ix->optimized ? !json_object_get(s->bins, "") : !s->container_tree)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup holds no instance (%s)",
				       ix->optimized  ? "backup/container.bin"
				       : index_vm(ix) ? "backup/virtual-machine/"
						      : "backup/container/");
	json_array_foreach(ix->snapshots, i, v)
		if (!json_object_get(present, json_string_value(v)))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Backup index lists snapshot \"%s\" but the tarball "
					       "does not hold it",
					       json_string_value(v));
	json_object_foreach(present, k, v) {
		bool listed = !*k;
		json_t *n;

		json_array_foreach(ix->snapshots, i, n)
			listed |= streq(json_string_value(n), k);
		if (!listed)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Backup holds snapshot \"%s\" that its index does "
					       "not list",
					       k);
	}
	return index_vm(ix) ? disks_match(s, err) : 0;
}

/* ---- extraction ---- */

static int openat2_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	return fd < 0 ? -errno : fd;
}

static int member_fail(const char *rel, int r, const char *what, struct berth_error *err)
{
	_cleanup_free_ char *q = berth_utf8_quote(rel);

	if (r == -ELOOP || r == -EXDEV || r == -ENOTDIR)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Refusing backup tarball member \"%s\": it would be written "
				       "through a symlink or outside its directory",
				       q ?: "?");
	if (r == -ENOSPC || r == -EDQUOT)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "No space left on the storage pool writing \"%s\"",
				       q ?: "?");
	return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Restoring \"%s\": %s: %s", q ?: "?",
			       what, strerror(-r));
}

/* Open the parent directory of `rel` below `destfd` (creating missing directories, 0755
 * root, as tar does), without following any symlink; *base points into rel. */
static int open_parent(int destfd, const char *rel, const char **base, int *ret)
{
	const char *slash = strrchr(rel, '/');
	_cleanup_free_ char *dir = slash ? strndup(rel, (size_t)(slash - rel)) : strdup(".");
	_cleanup_close_ int cur = -EBADF;
	char *p, *save = NULL;
	int fd;

	*base = slash ? slash + 1 : rel;
	if (!dir)
		return -ENOMEM;
	fd = openat2_beneath(destfd, dir, O_PATH | O_DIRECTORY);
	if (fd != -ENOENT) {
		*ret = fd;
		return fd < 0 ? fd : 0;
	}
	cur = openat2_beneath(destfd, ".", O_PATH | O_DIRECTORY);
	for (p = strtok_r(dir, "/", &save); p && cur >= 0; p = strtok_r(NULL, "/", &save)) {
		if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST)
			return -errno;
		fd = openat2_beneath(cur, p, O_PATH | O_DIRECTORY);
		close(cur);
		cur = fd;
	}
	if (cur < 0)
		return cur;
	*ret = TAKE_FD(cur);
	return 0;
}

static bool xattr_kept(const char *name)
{
	return berth_startswith(name, "user.") || streq(name, "security.capability") ||
	       streq(name, "system.posix_acl_access") || streq(name, "system.posix_acl_default");
}

/* Owner, mode, xattrs and times of the new inode `fd` (not a symlink). */
static int set_attrs(int fd, struct archive_entry *ae, bool is_dir)
{
	struct timespec ts[2] = {{archive_entry_atime(ae), archive_entry_atime_nsec(ae)},
				 {archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)}};
	const char *name;
	const void *value;
	size_t size;

	if (fchown(fd, (uid_t)archive_entry_uid(ae), (gid_t)archive_entry_gid(ae)) < 0)
		return -errno;
	/* after the chown, which drops set-id bits */
	if (fchmod(fd, archive_entry_perm(ae) & 07777) < 0)
		return -errno;
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK)
		if (xattr_kept(name) && fsetxattr(fd, name, value, size, 0) < 0 &&
		    errno != EOPNOTSUPP)
			return -errno;
	if (!archive_entry_mtime_is_set(ae) || is_dir)
		return 0;
	return futimens(fd, ts) < 0 ? -errno : 0;
}

/* Make room for a new non-directory `base`: an old one of that name goes. */
static int make_room(int pfd, const char *base)
{
	if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT)
		return errno == EISDIR ? -EEXIST : -errno;
	return 0;
}

static int pwrite_all(int fd, const char *p, size_t size, off_t off)
{
	while (size > 0) {
		ssize_t w = pwrite(fd, p, size, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		off += w;
		size -= (size_t)w;
	}
	return 0;
}

#define HOLE_CHUNK 4096

/* `size` bytes at `p` for offset `off` of a new file, those of each HOLE_CHUNK-aligned
 * chunk that is all zeros left unwritten (a hole, which reads as zeros). */
static int pwrite_holes(int fd, const char *p, size_t size, off_t off)
{
	int r = 0;

	for (size_t i = 0; i < size && r >= 0;) {
		size_t n = HOLE_CHUNK - (size_t)((uint64_t)(off + (off_t)i) % HOLE_CHUNK);

		if (n > size - i)
			n = size - i;
		if (p[i] != 0 || memcmp(p + i, p + i + 1, n - 1) != 0)
			r = pwrite_all(fd, p + i, n, off + (off_t)i);
		i += n;
	}
	return r;
}

/* The member's data into the new file `fd`; `holes`: zero chunks not written (a VM's
 * disk stays sparse whether its member is or not). */
static int write_data(struct archive *a, int fd, struct archive_entry *ae, bool holes)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK) {
		int w = holes ? pwrite_holes(fd, buf, size, off) : pwrite_all(fd, buf, size, off);

		if (w < 0)
			return w;
	}
	if (r != ARCHIVE_EOF)
		return -EPROTO;
	/* a sparse file's tail hole */
	return ftruncate(fd, archive_entry_size(ae)) < 0 ? -errno : 0;
}

/* ---- sharing with the tree before ---- */

/* Below this a file is written, not looked up in the tree before: a reflink costs more
 * than writing a small file (the bulk of a root file system's data is in larger ones). */
#define SHARE_MIN (64 << 10)

/* The regular file `rel` of the tree `prevfd`, `size` bytes long, opened for reading
 * without following a symlink and without opening anything but a regular file; -1:
 * none such. */
static int share_open(int prevfd, const char *rel, la_int64_t size)
{
	_cleanup_close_ int path = openat2_beneath(prevfd, rel, O_PATH);
	char proc[64];
	struct stat st;

	if (path < 0 || fstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != size)
		return -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", path);
	return open(proc, O_RDONLY | O_CLOEXEC);
}

/* The first `len` bytes of `src` copied into the new file `fd` (a reflink where the file
 * system makes one; read and written where copy_file_range is refused, e.g. by a seccomp
 * filter or an older kernel: what agreed was not written, so it must be copied). */
static int share_copy(int src, int fd, size_t len)
{
	loff_t in = 0, out = 0;
	char buf[64 << 10];

	while ((size_t)out < len) {
		ssize_t n = copy_file_range(src, &in, fd, &out, len - (size_t)out, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 &&
		    (errno == ENOSYS || errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL)) {
			size_t want = len - (size_t)out;

			n = pread(src, buf, want < sizeof(buf) ? want : sizeof(buf), in);
			if (n > 0 && pwrite(fd, buf, (size_t)n, out) != n)
				return -EIO;
			if (n > 0)
				in += n, out += n;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
	}
	return 0;
}

/* The member's data into the new file `fd`, compared on the way with `prev` (the same
 * file of the tree before, as long): while they agree nothing is written; all alike,
 * the new file shares prev's extents (FICLONE), else what agreed is copied from prev
 * and the rest written. */
static int write_data_shared(struct archive *a, int fd, struct archive_entry *ae, int prev)
{
	_cleanup_free_ char *cmp = NULL;
	size_t cmp_size = 0, same = 0; /* bytes alike from offset 0, not written */
	bool sharing = true;
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK) {
		if (sharing && (uint64_t)off == same) {
			ssize_t n;
			if (size > cmp_size) {
				char *p = realloc(cmp, size);
				if (!p)
					return -ENOMEM;
				cmp = p;
				cmp_size = size;
			}
			n = pread(prev, cmp, size, off);
			if (n == (ssize_t)size && memcmp(cmp, buf, size) == 0) {
				same += size;
				continue;
			}
		}
		if (sharing) {
			sharing = false;
			r = share_copy(prev, fd, same);
			if (r < 0)
				return r;
		}
		r = pwrite_all(fd, buf, size, off);
		if (r < 0)
			return r;
	}
	if (r != ARCHIVE_EOF)
		return -EPROTO;
	if (sharing && (la_int64_t)same == archive_entry_size(ae) && ioctl(fd, FICLONE, prev) == 0)
		return 0;
	if (sharing && (r = share_copy(prev, fd, same)) < 0)
		return r;
	return ftruncate(fd, archive_entry_size(ae)) < 0 ? -errno : 0;
}

/* `prevfd` >= 0: the tree before, whose file of the same name the new one may share. */
static int write_file(struct archive *a, struct archive_entry *ae, int pfd, const char *base,
		      const char *rel, bool holes, int prevfd)
{
	_cleanup_close_ int fd = -EBADF, prev = -EBADF;
	la_int64_t size = archive_entry_size(ae);
	int r = make_room(pfd, base);

	if (r < 0)
		return r;
	fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (prevfd >= 0 && !holes && size >= SHARE_MIN)
		prev = share_open(prevfd, rel, size);
	r = prev >= 0 ? write_data_shared(a, fd, ae, prev) : write_data(a, fd, ae, holes);
	return r < 0 ? r : set_attrs(fd, ae, false);
}

static int write_dir(struct archive_entry *ae, int pfd, const char *base)
{
	_cleanup_close_ int fd = -EBADF;

	if (*base && mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat2_beneath(pfd, *base ? base : ".", O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	return set_attrs(fd, ae, true);
}

static int write_symlink(struct archive_entry *ae, int pfd, const char *base)
{
	struct timespec ts[2] = {{archive_entry_atime(ae), archive_entry_atime_nsec(ae)},
				 {archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)}};
	int r = make_room(pfd, base);

	if (r < 0)
		return r;
	if (symlinkat(archive_entry_symlink(ae), pfd, base) < 0 ||
	    fchownat(pfd, base, (uid_t)archive_entry_uid(ae), (gid_t)archive_entry_gid(ae),
		     AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int write_node(struct archive_entry *ae, int pfd, const char *base)
{
	mode_t type = archive_entry_filetype(ae);
	_cleanup_close_ int fd = -EBADF;
	char proc[64];
	int r = make_room(pfd, base);

	if (r < 0)
		return r;
	if (mknodat(pfd, base, type | 0600, archive_entry_rdev(ae)) < 0)
		return -errno;
	fd = openat2_beneath(pfd, base, O_PATH);
	if (fd < 0)
		return fd;
	if (fchownat(fd, "", (uid_t)archive_entry_uid(ae), (gid_t)archive_entry_gid(ae),
		     AT_EMPTY_PATH) < 0)
		return -errno;
	/* through the descriptor of what was just made: chmod(2) on the name follows a
	 * symlink put there in between */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return chmod(proc, archive_entry_perm(ae) & 0777) < 0 ? -errno : 0;
}

/* A hard link to `target` (a path below destfd): only to a regular file already there. */
static int write_hardlink(int destfd, const char *target, int pfd, const char *base)
{
	_cleanup_close_ int tpfd = -EBADF;
	const char *tbase;
	struct stat st;
	int r = open_parent(destfd, target, &tbase, &tpfd);

	if (r < 0)
		return r;
	if (fstatat(tpfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	r = make_room(pfd, base);
	if (r < 0)
		return r;
	return linkat(tpfd, tbase, pfd, base, 0) < 0 ? -errno : 0;
}

static int write_member(struct archive *a, struct archive_entry *ae, const struct backup_member *m,
			int destfd, int prevfd, struct berth_error *err)
{
	_cleanup_close_ int pfd = -EBADF;
	const char *base = "";
	int r = *m->rel ? open_parent(destfd, m->rel, &base, &pfd) : 0;

	if (r < 0)
		return member_fail(m->rel, r, "opening its directory", err);
	if (!*m->rel)
		pfd = fcntl(destfd, F_DUPFD_CLOEXEC, 3);
	if (pfd < 0)
		return -errno;
	if (m->link_rel) {
		r = write_hardlink(destfd, m->link_rel, pfd, base);
		if (r == -EPERM || r == -ENOENT) {
			_cleanup_free_ char *q = berth_utf8_quote(m->rel);
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Refusing backup tarball member \"%s\": a hard link "
					       "to something that is not a regular file before it",
					       q ?: "?");
		}
	} else if (archive_entry_filetype(ae) == AE_IFREG) {
		r = write_file(a, ae, pfd, base, m->rel, m->is_disk, prevfd);
	} else if (archive_entry_filetype(ae) == AE_IFDIR) {
		r = write_dir(ae, pfd, base);
	} else if (archive_entry_filetype(ae) == AE_IFLNK) {
		r = write_symlink(ae, pfd, base);
	} else {
		r = write_node(ae, pfd, base);
	}
	if (r == -EPROTO)
		return read_fail(a, err);
	return r < 0 ? member_fail(m->rel, r, "writing it", err) : 0;
}

/* ---- the pass ---- */

struct backup_stream {
	struct archive *a;
};

ssize_t backup_stream_read(struct backup_stream *st, void *buf, size_t size,
			   struct berth_error *err)
{
	la_ssize_t n = archive_read_data(st->a, buf, size);

	return n < 0 ? read_fail(st->a, err) : (ssize_t)n;
}

uint64_t backup_stream_done(const struct backup_stream *st)
{
	return (uint64_t)archive_filter_bytes(st->a, -1);
}

/* The place of the tree of `snap` (NULL: the instance's) in d->index's order: the
 * snapshots oldest first, then the instance. */
static int tree_pos(const struct backup_dest *d, const char *snap, size_t *ret,
		    struct berth_error *err)
{
	json_t *n;
	size_t i;

	*ret = json_array_size(d->index->snapshots);
	if (!snap)
		return 0;
	json_array_foreach(d->index->snapshots, i, n)
		if (streq(json_string_value(n), snap)) {
			*ret = i;
			return 0;
		}
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Backup holds snapshot \"%s\" that its index does not list", snap);
}

/* In a chain (d->tree_done), the trees before the one at `p` completed; *pos the tree
 * being written. */
static int chain_to(const struct backup_dest *d, size_t p, size_t *pos, struct berth_error *err)
{
	int r = 0;

	if (p < *pos)
		return berth_error_set(err, -ESPIPE, BERTH_ERR_BAD_REQUEST,
				       "Backup tarball's trees are out of order");
	for (; r >= 0 && *pos < p; (*pos)++)
		r = d->tree_done(json_string_value(json_array_get(d->index->snapshots, *pos)),
				 d->data, err);
	return r;
}

/* The directory of the tree at `p` in `d`; -1: not written. */
static int tree_fd(const struct backup_dest *d, size_t p, size_t *pos, int *ret,
		   struct berth_error *err)
{
	size_t n = json_array_size(d->index->snapshots);

	if (d->only)
		*ret = d->only - 1 == p ? d->container_fd : -1;
	else if (d->tree_done)
		*ret = d->container_fd;
	else
		*ret = p == n ? d->container_fd : d->snap_fds ? d->snap_fds[p] : -1;
	return d->tree_done && !d->only ? chain_to(d, p, pos, err) : 0;
}

/* Write member `m` where `d` says (nothing without `d`); *pos: see chain_to. */
static int member_out(struct archive *a, struct archive_entry *ae, const struct backup_member *m,
		      const struct backup_dest *d, size_t *pos, struct berth_error *err)
{
	struct backup_stream st = {a};
	size_t p = 0;
	int fd = -1, prev = -1, r;

	if (!d)
		return 0;
	if (m->vm != index_vm(d->index) &&
	    (m->kind == BACKUP_MEMBER_TREE || m->kind == BACKUP_MEMBER_CONFIG ||
	     m->kind == BACKUP_MEMBER_BIN || m->kind == BACKUP_MEMBER_SKIP))
		return layout_refuse(d->index, err);
	if (m->kind == BACKUP_MEMBER_BIN)
		return d->bin ? d->bin(m->snap, &st, d->data, err) : 0;
	if (m->kind != BACKUP_MEMBER_TREE || streq(m->rel, "backup.yaml"))
		return 0;
	r = tree_pos(d, m->snap, &p, err);
	if (r >= 0)
		r = tree_fd(d, p, pos, &fd, err);
	/* after tree_fd: a chain's tree_done may have moved share_fd on */
	if (d->share_fd)
		prev = *d->share_fd;
	/* a tree not written (an optimized backup's): the end of the pass refuses it */
	return r < 0 || fd < 0 ? r : write_member(a, ae, m, fd, prev, err);
}

static int pass_all(struct archive *a, const struct backup_limits *lim, const struct backup_dest *d,
		    struct backup_scan *s, struct berth_error *err)
{
	struct archive_entry *ae;
	size_t pos = 0;
	int r;

	while ((r = next_header(a, &ae)) == ARCHIVE_OK) {
		struct backup_entry e;
		struct backup_member m;

		entry_describe(ae, &e);
		r = backup_member_check(&e, &m, err);
		if (r < 0)
			return r;
		r = scan_limits(a, ae, s, lim, err);
		if (r >= 0)
			r = scan_member(a, ae, &m, s, err);
		if (r >= 0)
			r = member_out(a, ae, &m, d, &pos, err);
		backup_member_release(&m);
		if (r < 0)
			return r;
		if (d && d->progress)
			d->progress((uint64_t)archive_filter_bytes(a, -1), d->data);
		if (d && d->cancel && atomic_load(d->cancel))
			return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					       "Import cancelled");
	}
	return r == ARCHIVE_EOF ? bomb_check(a, err) : read_fail(a, err);
}

int backup_restore(int fd, const struct backup_limits *lim, const struct backup_dest *dest,
		   struct backup_scan **ret, struct berth_error *err)
{
	_cleanup_(archive_readp) struct archive *a = NULL;
	_cleanup_(backup_scan_freep) struct backup_scan *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->trees = json_object();
	s->bins = json_object();
	s->disks = json_object();
	if (!s->trees || !s->bins || !s->disks)
		return -ENOMEM;
	r = reader_open(fd, &a, err);
	if (r >= 0)
		r = pass_all(a, lim, dest, s, err);
	if (r >= 0)
		r = scan_match(s, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

int backup_scan(int fd, const struct backup_limits *lim, struct backup_scan **ret,
		struct berth_error *err)
{
	return backup_restore(fd, lim, NULL, ret, err);
}
