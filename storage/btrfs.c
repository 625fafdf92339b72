/* storage/btrfs.c: the "btrfs" pool driver. Volumes are subvolumes; snapshots, restores
 * and copies are subvolume snapshots made with the kernel's ioctls, so they cost the same
 * whatever the volume holds; sizes are qgroup limits on the referenced bytes.
 *
 * Pool sources, chosen from config "source" (and "size"):
 *   none        a sparse loop file $STATE/disks/<pool>.img of "size" (default 5GiB),
 *               formatted with mkfs.btrfs; "source" becomes the file's path
 *   /dev/...    a block device, formatted with mkfs.btrfs (as LXD does)
 *   a directory on a btrfs filesystem (created as a subvolume when missing), bind-mounted
 * Whatever the source, the pool is mounted at $STATE/storage-pools/<pool>. Loop devices
 * are attached with LO_FLAGS_AUTOCLEAR and the loop fd is closed once mounted, so
 * unmounting the pool detaches the device: nothing leaks when berthd dies. */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>

#include "lib/json.h"
#include "lib/util.h"
#include "storage/driver.h"

#define DEFAULT_LOOP_SIZE "5GiB"

static const char *const volume_keys[] = {"size", NULL};
static const char *const pool_keys[] = {"source", "size", "btrfs.mount_options", NULL};

static int oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

/* ---- subvolumes ---- */

/* Open the parent directory of `path` and point *ret_base at its last component
 * (inside `copy`, a writable copy of path). */
static int open_parent(char *copy, const char **ret_base, struct berth_error *err)
{
	char *slash = strrchr(copy, '/');
	int fd;

	if (!slash || !slash[1])
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL, "Bad path \"%s\"", copy);
	*slash = '\0';
	fd = open(copy[0] ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		*slash = '/';
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot open \"%s\": %s", copy,
				       strerror(-r));
	}
	*ret_base = slash + 1;
	return fd;
}

static int subvol_create(const char *path, struct berth_error *err)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int pfd = -EBADF;
	struct btrfs_ioctl_vol_args a = {0};
	const char *base = NULL;

	if (!copy)
		return oom(err);
	pfd = open_parent(copy, &base, err);
	if (pfd < 0)
		return pfd;
	snprintf(a.name, sizeof(a.name), "%s", base);
	if (ioctl(pfd, BTRFS_IOC_SUBVOL_CREATE, &a) < 0)
		return berth_error_set(err, -errno,
				       errno == EEXIST ? BERTH_ERR_CONFLICT : BERTH_ERR_INTERNAL,
				       "Cannot create subvolume \"%s\": %m", path);
	return 0;
}

static int subvol_snapshot(const char *src, const char *dst, bool readonly, struct berth_error *err)
{
	_cleanup_free_ char *copy = strdup(dst);
	_cleanup_close_ int pfd = -EBADF;
	_cleanup_close_ int sfd = -EBADF;
	struct btrfs_ioctl_vol_args_v2 a = {0};
	const char *base = NULL;

	if (!copy)
		return oom(err);
	sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return berth_error_set(err, -errno,
				       errno == ENOENT ? BERTH_ERR_NOT_FOUND : BERTH_ERR_INTERNAL,
				       "Cannot open \"%s\": %m", src);
	pfd = open_parent(copy, &base, err);
	if (pfd < 0)
		return pfd;
	a.fd = sfd;
	a.flags = readonly ? BTRFS_SUBVOL_RDONLY : 0;
	snprintf(a.name, sizeof(a.name), "%s", base);
	if (ioctl(pfd, BTRFS_IOC_SNAP_CREATE_V2, &a) < 0)
		return berth_error_set(err, -errno,
				       errno == EEXIST ? BERTH_ERR_CONFLICT : BERTH_ERR_INTERNAL,
				       "Cannot snapshot \"%s\" to \"%s\": %m", src, dst);
	return 0;
}

/* Destroy the subvolume at `path`; a missing one is fine. */
static int subvol_delete(const char *path, struct berth_error *err)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int pfd = -EBADF;
	struct btrfs_ioctl_vol_args a = {0};
	const char *base = NULL;

	if (!copy)
		return oom(err);
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	pfd = open_parent(copy, &base, err);
	if (pfd < 0)
		return pfd;
	snprintf(a.name, sizeof(a.name), "%s", base);
	if (ioctl(pfd, BTRFS_IOC_SNAP_DESTROY, &a) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot delete subvolume \"%s\": %m", path);
	return 0;
}

/* Destroy every subvolume in directory `dir`, then the directory; missing is fine. */
static int subvol_delete_all(const char *dir, struct berth_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0
				       : berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
							 "opendir \"%s\": %m", dir);
	while (r >= 0 && (e = readdir(d))) {
		_cleanup_free_ char *p = NULL;

		if (streq(e->d_name, ".") || streq(e->d_name, ".."))
			continue;
		p = berth_strdup_printf("%s/%s", dir, e->d_name);
		r = p ? subvol_delete(p, err) : oom(err);
	}
	closedir(d);
	if (r >= 0 && rmdir(dir) < 0 && errno != ENOENT)
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rmdir \"%s\": %m", dir);
	return r;
}

/* ---- qgroups ---- */

static int quota_set(const char *path, uint64_t size, struct berth_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct btrfs_ioctl_ino_lookup_args look = {.objectid = BTRFS_FIRST_FREE_OBJECTID};
	struct btrfs_ioctl_quota_ctl_args ctl = {.cmd = BTRFS_QUOTA_CTL_ENABLE};
	struct btrfs_ioctl_qgroup_limit_args lim = {0};

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot open \"%s\": %m",
				       path);
	if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &look) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot find the subvolume of \"%s\": %m", path);
	if (size > 0) {
		/* Enabling is a no-op when quotas are on; the rescan it starts on an
		 * existing filesystem must end before limits count right. */
		if (ioctl(fd, BTRFS_IOC_QUOTA_CTL, &ctl) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot enable btrfs quotas: %m");
		ioctl(fd, BTRFS_IOC_QUOTA_RESCAN_WAIT, 0);
	}
	lim.qgroupid = look.treeid;
	lim.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
	lim.lim.max_rfer = size > 0 ? size : UINT64_MAX;
	if (ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &lim) < 0) {
		if (size == 0 && (errno == ENOTCONN || errno == ENOENT))
			return 0; /* quotas off, or no qgroup: nothing to lift */
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot set the size of \"%s\": %m", path);
	}
	return 0;
}

/* ---- loop devices and mounts ---- */

/* Attach `file` to a free loop device (autoclear); the device's fd goes to *ret_fd and
 * its path to *ret_dev. */
static int loop_attach(const char *file, int *ret_fd, char **ret_dev, struct berth_error *err)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int ffd = open(file, O_RDWR | O_CLOEXEC);

	if (ctl < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot open /dev/loop-control: %m");
	if (ffd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot open \"%s\": %m",
				       file);
	for (int tries = 0; tries < 16; tries++) {
		_cleanup_free_ char *dev = NULL;
		_cleanup_close_ int lfd = -EBADF;
		struct loop_config cfg = {.fd = (uint32_t)ffd};
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "No free loop device: %m");
		dev = berth_strdup_printf("/dev/loop%d", n);
		if (!dev)
			return oom(err);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0 && errno == ENOENT) {
			/* /dev without udev (a container): make the node ourselves. */
			if (mknod(dev, S_IFBLK | 0660, makedev(7, (unsigned)n)) < 0 &&
			    errno != EEXIST)
				return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
						       "mknod \"%s\": %m", dev);
			lfd = open(dev, O_RDWR | O_CLOEXEC);
		}
		if (lfd < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot open \"%s\": %m", dev);
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", file);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
			if (errno == EBUSY)
				continue; /* someone took it between GET_FREE and here */
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot attach \"%s\" to \"%s\": %m", file, dev);
		}
		*ret_fd = TAKE_FD(lfd);
		*ret_dev = TAKE_PTR(dev);
		return 0;
	}
	return berth_error_set(err, -EBUSY, BERTH_ERR_INTERNAL, "No free loop device");
}

static const char *mount_options(const struct storage_pool *pool)
{
	const char *o = berth_json_string(pool->config, "btrfs.mount_options");

	return o && *o ? o : "user_subvol_rm_allowed";
}

static bool is_btrfs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BTRFS_SUPER_MAGIC;
}

/* Is a btrfs filesystem mounted right at `path`? */
static bool is_mounted(const char *path)
{
	_cleanup_free_ char *parent = berth_strdup_printf("%s/..", path);
	struct stat a, b;

	if (!parent || stat(path, &a) < 0 || stat(parent, &b) < 0)
		return false;
	return a.st_dev != b.st_dev && is_btrfs(path);
}

static int mount_loop(const struct storage_pool *pool, const char *file, struct berth_error *err)
{
	_cleanup_free_ char *dev = NULL;
	_cleanup_close_ int lfd = -EBADF;
	int r = loop_attach(file, &lfd, &dev, err);

	if (r < 0)
		return r;
	if (mount(dev, pool->path, "btrfs", 0, mount_options(pool)) < 0) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				    "Cannot mount \"%s\" (%s) on \"%s\": %m", file, dev,
				    pool->path);
		ioctl(lfd, LOOP_CLR_FD, 0);
		return r;
	}
	return 0; /* closing lfd leaves the mount as the device's only user */
}

enum source_kind { SOURCE_LOOP, SOURCE_DEVICE, SOURCE_DIR };

static enum source_kind source_kind(const char *source)
{
	struct stat st;

	if (stat(source, &st) == 0 && S_ISBLK(st.st_mode))
		return SOURCE_DEVICE;
	if (stat(source, &st) == 0 && S_ISREG(st.st_mode))
		return SOURCE_LOOP;
	return SOURCE_DIR;
}

static int do_mount(const struct storage_pool *pool, const char *source, struct berth_error *err)
{
	switch (source_kind(source)) {
	case SOURCE_LOOP:
		return mount_loop(pool, source, err);
	case SOURCE_DEVICE:
		if (mount(source, pool->path, "btrfs", 0, mount_options(pool)) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot mount \"%s\" on \"%s\": %m", source,
					       pool->path);
		return 0;
	case SOURCE_DIR:
		if (mount(source, pool->path, NULL, MS_BIND, NULL) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot bind-mount \"%s\" on \"%s\": %m", source,
					       pool->path);
		return 0;
	}
	return -EINVAL;
}

static int mkfs(const char *target, struct berth_error *err)
{
	/* -K: no discard of the whole device first, which can take minutes on a big one. */
	const char *argv[] = {"mkfs.btrfs", "-q", "-f", "-K", target, NULL};
	int r = storage_run(argv, err);

	return r < 0 ? berth_error_wrap(err, r, "Formatting \"%s\"", target) : 0;
}

/* A sparse file of `size` bytes at `path`, formatted. Removed again on failure. */
static int make_loop_file(const char *path, uint64_t size, struct berth_error *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r;

	if (fd < 0)
		return berth_error_set(err, -errno,
				       errno == EEXIST ? BERTH_ERR_CONFLICT : BERTH_ERR_INTERNAL,
				       "Cannot create \"%s\": %m", path);
	if (ftruncate(fd, (off_t)size) < 0) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot size \"%s\": %m",
				    path);
		unlink(path);
		return r;
	}
	r = mkfs(path, err);
	if (r < 0)
		unlink(path);
	return r;
}

/* The source for a new pool: make the loop file, format the device, or check (and
 * create) the directory. *ret_made_file says a loop file was made. */
static int prepare_source(struct storage_pool *pool, const char *source, const char *size_s,
			  bool *ret_made_file, char **ret_source, struct berth_error *err)
{
	_cleanup_free_ char *disks = NULL;
	_cleanup_free_ char *img = NULL;
	uint64_t size = 0;
	int r;

	*ret_made_file = false;
	if (!source || !*source) {
		r = storage_parse_size(size_s ? size_s : DEFAULT_LOOP_SIZE, "size", &size, err);
		if (r < 0)
			return r;
		disks = berth_strdup_printf("%s/disks", pool->state_dir);
		img = berth_strdup_printf("%s/disks/%s.img", pool->state_dir, pool->name);
		if (!disks || !img)
			return oom(err);
		r = berth_mkdir_p(disks, 0700);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Cannot create \"%s\": %s", disks, strerror(-r));
		r = make_loop_file(img, size, err);
		if (r < 0)
			return r;
		*ret_made_file = true;
		*ret_source = TAKE_PTR(img);
		return 0;
	}
	if (size_s)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "\"size\" applies only to a loop file pool (no \"source\")");
	if (source[0] != '/')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "\"source\" must be an absolute path");
	switch (source_kind(source)) {
	case SOURCE_DEVICE:
		r = mkfs(source, err);
		break;
	case SOURCE_LOOP:
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Source \"%s\" is a regular file: give no source and a"
				       " size to make a loop file pool",
				       source);
	case SOURCE_DIR:
	default:
		if (access(source, F_OK) < 0) {
			_cleanup_free_ char *copy = strdup(source);
			if (!copy)
				return oom(err);
			if (!is_btrfs(dirname(copy)))
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "Source \"%s\" isn't on a btrfs"
						       " filesystem",
						       source);
			r = subvol_create(source, err);
		} else {
			r = is_btrfs(source)
				    ? 0
				    : berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						      "Source \"%s\" isn't on a btrfs filesystem",
						      source);
		}
		break;
	}
	if (r < 0)
		return r;
	*ret_source = strdup(source);
	return *ret_source ? 0 : oom(err);
}

static int btrfs_pool_create(struct storage_pool *pool, struct berth_error *err)
{
	_cleanup_free_ char *source = NULL;
	const char *size_s = berth_json_string(pool->config, "size");
	bool made_file = false;
	int r;

	r = storage_config_check(pool->config, pool_keys, err);
	if (r < 0)
		return r;
	if (access(pool->path, F_OK) == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Pool directory \"%s\" already exists", pool->path);
	r = prepare_source(pool, berth_json_string(pool->config, "source"), size_s, &made_file,
			   &source, err);
	if (r < 0)
		return r;
	r = berth_mkdir_p(pool->path, 0711);
	if (r < 0) {
		berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot create \"%s\": %s", pool->path,
				strerror(-r));
		goto fail;
	}
	r = do_mount(pool, source, err);
	if (r < 0)
		goto fail_dir;
	r = storage_layout_create(pool->path, err);
	if (r < 0)
		goto fail_mount;
	json_object_set_new(pool->config, "source", json_string(source));
	if (made_file && !size_s)
		json_object_set_new(pool->config, "size", json_string(DEFAULT_LOOP_SIZE));
	return 0;

fail_mount:
	umount2(pool->path, 0);
fail_dir:
	rmdir(pool->path);
fail:
	if (made_file)
		unlink(source);
	return r;
}

static int btrfs_pool_mount(struct storage_pool *pool, struct berth_error *err)
{
	const char *source = berth_json_string(pool->config, "source");
	int r;

	if (!source || !*source)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Pool \"%s\" has no source", pool->name);
	if (is_mounted(pool->path))
		return 0;
	r = berth_mkdir_p(pool->path, 0711);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot create \"%s\": %s",
				       pool->path, strerror(-r));
	r = do_mount(pool, source, err);
	if (r < 0)
		return r;
	return storage_layout_create(pool->path, err);
}

static int btrfs_pool_unmount(struct storage_pool *pool, struct berth_error *err)
{
	if (umount2(pool->path, 0) < 0 && errno != EINVAL && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot unmount \"%s\": %m",
				       pool->path);
	return 0;
}

static int btrfs_pool_delete(struct storage_pool *pool, struct berth_error *err)
{
	const char *source = berth_json_string(pool->config, "source");
	_cleanup_free_ char *disks = berth_strdup_printf("%s/disks/", pool->state_dir);
	int r;

	if (!disks)
		return oom(err);
	if (!source || !*source)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Pool \"%s\" has no source", pool->name);
	if (!is_mounted(pool->path)) {
		r = btrfs_pool_mount(pool, err);
		if (r < 0)
			return r;
	}
	/* The type directories: on a device or a directory source they would stay (a loop
	 * file goes whole, whatever it holds). */
	if (source_kind(source) != SOURCE_LOOP) {
		r = storage_layout_remove(pool->path, err);
		if (r < 0 && r != -EBUSY)
			return r;
	}
	r = btrfs_pool_unmount(pool, err);
	if (r < 0)
		return r;
	if (rmdir(pool->path) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rmdir \"%s\": %m",
				       pool->path);
	/* Only a loop file we made goes; devices and directories stay the admin's. */
	if (source && berth_startswith(source, disks) && unlink(source) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot remove \"%s\": %m",
				       source);
	return 0;
}

static int btrfs_pool_usage(struct storage_pool *pool, uint64_t *ret_used, uint64_t *ret_total,
			    struct berth_error *err)
{
	struct statvfs st;

	if (statvfs(pool->path, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "statvfs \"%s\": %m",
				       pool->path);
	*ret_total = (uint64_t)st.f_blocks * st.f_frsize;
	*ret_used = (uint64_t)(st.f_blocks - st.f_bfree) * st.f_frsize;
	return 0;
}

/* ---- volumes ---- */

struct paths {
	char *vol;   /* the volume */
	char *snaps; /* its snapshot directory */
};

static void paths_release(struct paths *p)
{
	free(p->vol);
	free(p->snaps);
}

static int paths_get(const struct storage_pool *pool, const struct storage_vol *vol,
		     struct paths *ret, struct berth_error *err)
{
	*ret = (struct paths){0};
	if (storage_volume_path(pool, vol, NULL, &ret->vol) < 0 ||
	    storage_snapshots_dir(pool, vol, &ret->snaps) < 0) {
		paths_release(ret);
		return oom(err);
	}
	return 0;
}

static int btrfs_volume_create(struct storage_pool *pool, const struct storage_vol *vol,
			       uint64_t size, struct berth_error *err)
{
	_cleanup_(paths_release) struct paths p = {0};
	int r = paths_get(pool, vol, &p, err);

	if (r < 0)
		return r;
	r = subvol_create(p.vol, err);
	if (r < 0)
		return r;
	if (size > 0) {
		r = quota_set(p.vol, size, err);
		if (r < 0)
			subvol_delete(p.vol, NULL);
	}
	return r;
}

static int btrfs_volume_delete(struct storage_pool *pool, const struct storage_vol *vol,
			       struct berth_error *err)
{
	_cleanup_(paths_release) struct paths p = {0};
	int r = paths_get(pool, vol, &p, err);

	if (r >= 0)
		r = subvol_delete_all(p.snaps, err);
	if (r >= 0)
		r = subvol_delete(p.vol, err);
	return r;
}

static int btrfs_volume_snapshot(struct storage_pool *pool, const struct storage_vol *vol,
				 const char *snap, struct berth_error *err)
{
	_cleanup_(paths_release) struct paths p = {0};
	_cleanup_free_ char *dst = NULL;
	bool made_dir;
	int r = paths_get(pool, vol, &p, err);

	if (r < 0)
		return r;
	if (storage_volume_path(pool, vol, snap, &dst) < 0)
		return oom(err);
	made_dir = mkdir(p.snaps, 0700) == 0;
	if (!made_dir && errno != EEXIST)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdir \"%s\": %m",
				       p.snaps);
	r = subvol_snapshot(p.vol, dst, true, err);
	if (r < 0 && made_dir)
		rmdir(p.snaps);
	return r;
}

static int btrfs_volume_snapshot_delete(struct storage_pool *pool, const struct storage_vol *vol,
					const char *snap, struct berth_error *err)
{
	_cleanup_(paths_release) struct paths p = {0};
	_cleanup_free_ char *path = NULL;
	int r = paths_get(pool, vol, &p, err);

	if (r < 0)
		return r;
	if (storage_volume_path(pool, vol, snap, &path) < 0)
		return oom(err);
	r = subvol_delete(path, err);
	if (r >= 0)
		rmdir(p.snaps); /* fails while other snapshots remain */
	return r;
}

/* Snapshot the snapshot (writable) next to the volume, then swap and drop the old one. */
static int btrfs_volume_restore(struct storage_pool *pool, const struct storage_vol *vol,
				const char *snap, uint64_t size, struct berth_error *err)
{
	_cleanup_(paths_release) struct paths p = {0};
	_cleanup_free_ char *src = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_free_ char *old = NULL;
	int r = paths_get(pool, vol, &p, err);

	if (r < 0)
		return r;
	if (storage_volume_path(pool, vol, snap, &src) < 0 ||
	    !(tmp = berth_strdup_printf("%s.restore", p.vol)) ||
	    !(old = berth_strdup_printf("%s.old", p.vol)))
		return oom(err);
	subvol_delete(tmp, NULL);
	subvol_delete(old, NULL);
	r = subvol_snapshot(src, tmp, false, err);
	if (r < 0)
		return r;
	if (size > 0) {
		r = quota_set(tmp, size, err);
		if (r < 0)
			goto fail;
	}
	if (rename(p.vol, old) < 0) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m", p.vol);
		goto fail;
	}
	berth_test_pause("restore-mid-swap");
	if (rename(tmp, p.vol) < 0) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m", tmp);
		rename(old, p.vol);
		goto fail;
	}
	return subvol_delete(old, err);
fail:
	subvol_delete(tmp, NULL);
	return r;
}

static int btrfs_volume_copy(struct storage_pool *pool, const struct storage_vol *src,
			     const struct storage_vol *dst, bool with_snapshots, uint64_t size,
			     struct berth_error *err)
{
	_cleanup_(paths_release) struct paths s = {0};
	_cleanup_(paths_release) struct paths d = {0};
	DIR *dir = NULL;
	struct dirent *e;
	int r;

	if ((r = paths_get(pool, src, &s, err)) < 0 || (r = paths_get(pool, dst, &d, err)) < 0)
		return r;
	r = subvol_snapshot(s.vol, d.vol, false, err);
	if (r < 0)
		return r;
	if (size > 0 && (r = quota_set(d.vol, size, err)) < 0)
		goto fail;
	if (!with_snapshots || !(dir = opendir(s.snaps)))
		return 0;
	if (mkdir(d.snaps, 0700) < 0) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdir \"%s\": %m", d.snaps);
		goto fail;
	}
	while ((e = readdir(dir))) {
		_cleanup_free_ char *from = NULL;
		_cleanup_free_ char *to = NULL;

		if (streq(e->d_name, ".") || streq(e->d_name, ".."))
			continue;
		from = berth_strdup_printf("%s/%s", s.snaps, e->d_name);
		to = berth_strdup_printf("%s/%s", d.snaps, e->d_name);
		if (!from || !to) {
			r = oom(err);
			goto fail;
		}
		r = subvol_snapshot(from, to, true, err);
		if (r < 0)
			goto fail;
	}
	closedir(dir);
	return 0;
fail:
	if (dir)
		closedir(dir);
	subvol_delete_all(d.snaps, NULL);
	subvol_delete(d.vol, NULL);
	return r;
}

static int btrfs_volume_copy_snapshot(struct storage_pool *pool, const struct storage_vol *src,
				      const char *snap, const struct storage_vol *dst,
				      struct berth_error *err)
{
	_cleanup_free_ char *from = NULL;
	_cleanup_free_ char *to = NULL;

	if (storage_volume_path(pool, src, snap, &from) < 0 ||
	    storage_volume_path(pool, dst, NULL, &to) < 0)
		return oom(err);
	return subvol_snapshot(from, to, false, err);
}

static int btrfs_volume_rename(struct storage_pool *pool, const struct storage_vol *vol,
			       const char *new_name, struct berth_error *err)
{
	struct storage_vol nv = {.type = vol->type, .name = new_name};
	_cleanup_(paths_release) struct paths from = {0};
	_cleanup_(paths_release) struct paths to = {0};
	int r;

	if ((r = paths_get(pool, vol, &from, err)) < 0 || (r = paths_get(pool, &nv, &to, err)) < 0)
		return r;
	if (access(to.vol, F_OK) == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "\"%s\" already exists",
				       to.vol);
	/* A subvolume renames like a directory, within its filesystem. */
	if (rename(from.vol, to.vol) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m",
				       from.vol);
	if (rename(from.snaps, to.snaps) < 0 && errno != ENOENT) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m",
				    from.snaps);
		rename(to.vol, from.vol);
		return r;
	}
	return 0;
}

static int btrfs_volume_set_quota(struct storage_pool *pool, const struct storage_vol *vol,
				  uint64_t size, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (storage_volume_path(pool, vol, NULL, &path) < 0)
		return oom(err);
	return quota_set(path, size, err);
}

const struct storage_driver storage_driver_btrfs = {
	.name = "btrfs",
	.pool_keys = pool_keys,
	.volume_keys = volume_keys,
	.pool_create = btrfs_pool_create,
	.pool_delete = btrfs_pool_delete,
	.pool_mount = btrfs_pool_mount,
	.pool_unmount = btrfs_pool_unmount,
	.pool_usage = btrfs_pool_usage,
	.volume_create = btrfs_volume_create,
	.volume_delete = btrfs_volume_delete,
	.volume_snapshot = btrfs_volume_snapshot,
	.volume_snapshot_delete = btrfs_volume_snapshot_delete,
	.volume_snapshot_rename = storage_snapshot_rename,
	.volume_restore = btrfs_volume_restore,
	.volume_copy = btrfs_volume_copy,
	.volume_copy_snapshot = btrfs_volume_copy_snapshot,
	.volume_rename = btrfs_volume_rename,
	.volume_set_quota = btrfs_volume_set_quota,
};

int storage_btrfs_snapshot(const char *src, const char *dst, bool readonly, struct berth_error *err)
{
	return subvol_snapshot(src, dst, readonly, err);
}

int storage_btrfs_delete(const char *path, struct berth_error *err)
{
	return subvol_delete(path, err);
}
