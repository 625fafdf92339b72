/* storage/dir.c: the "dir" pool driver: volumes are plain directories in the pool's
 * source directory; snapshots, restores and copies copy the tree (reflinks where the
 * filesystem has them); no quotas. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "lib/json.h"
#include "lib/util.h"
#include "storage/driver.h"

/* "size" is accepted so that volume_create can say why it is refused. */
static const char *const volume_keys[] = {"size", NULL};
static const char *const pool_keys[] = {"source", NULL};

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return true;
	while ((e = readdir(d)))
		if (!streq(e->d_name, ".") && !streq(e->d_name, "..")) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

static int dir_pool_create(struct storage_pool *pool, struct berth_error *err)
{
	int r = storage_config_check(pool->config, pool_keys, err);

	if (r < 0)
		return r;
	if (access(pool->path, F_OK) == 0 && !dir_is_empty(pool->path))
		return berth_error_set(err, -EEXIST, BERTH_ERR_BAD_REQUEST,
				       "Source path \"%s\" isn't empty", pool->path);
	r = berth_mkdir_p(pool->path, 0711);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot create \"%s\": %s",
				       pool->path, strerror(-r));
	r = storage_layout_create(pool->path, err);
	if (r < 0) {
		storage_layout_remove(pool->path, NULL);
		return r;
	}
	if (!berth_json_string(pool->config, "source"))
		json_object_set_new(pool->config, "source", json_string(pool->path));
	return 0;
}

static int dir_pool_delete(struct storage_pool *pool, struct berth_error *err)
{
	return storage_layout_remove(pool->path, err);
}

static int dir_pool_mount(struct storage_pool *pool, struct berth_error *err)
{
	int r = berth_mkdir_p(pool->path, 0711);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot create \"%s\": %s",
				       pool->path, strerror(-r));
	return storage_layout_create(pool->path, err);
}

static int dir_pool_unmount(struct storage_pool *pool, struct berth_error *err)
{
	return 0;
}

static int dir_pool_usage(struct storage_pool *pool, uint64_t *ret_used, uint64_t *ret_total,
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

static int no_quota(struct berth_error *err)
{
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "The \"dir\" storage driver doesn't support volume size limits"
			       " (\"size\"); use a btrfs pool");
}

static int dir_volume_create(struct storage_pool *pool, const struct storage_vol *vol,
			     uint64_t size, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (size > 0)
		return no_quota(err);
	if (storage_volume_path(pool, vol, NULL, &path) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	if (mkdir(path, 0711) < 0)
		return berth_error_set(err, -errno,
				       errno == EEXIST ? BERTH_ERR_CONFLICT : BERTH_ERR_INTERNAL,
				       "Cannot create \"%s\": %m", path);
	return 0;
}

static int dir_volume_delete(struct storage_pool *pool, const struct storage_vol *vol,
			     struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *snaps = NULL;
	int r;

	if (storage_volume_path(pool, vol, NULL, &path) < 0 ||
	    storage_snapshots_dir(pool, vol, &snaps) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	r = storage_remove_tree(snaps, err);
	if (r < 0)
		return r;
	return storage_remove_tree(path, err);
}

static int dir_volume_snapshot(struct storage_pool *pool, const struct storage_vol *vol,
			       const char *snap, struct berth_error *err)
{
	_cleanup_free_ char *src = NULL;
	_cleanup_free_ char *snaps = NULL;
	_cleanup_free_ char *dst = NULL;
	bool made_dir;
	int r;

	if (storage_volume_path(pool, vol, NULL, &src) < 0 ||
	    storage_snapshots_dir(pool, vol, &snaps) < 0 ||
	    storage_volume_path(pool, vol, snap, &dst) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	made_dir = mkdir(snaps, 0700) == 0;
	if (!made_dir && errno != EEXIST)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot create \"%s\": %m",
				       snaps);
	r = storage_copy_tree(src, dst, pool->cancel, err);
	if (r < 0 && made_dir)
		rmdir(snaps);
	return r;
}

static int dir_volume_snapshot_delete(struct storage_pool *pool, const struct storage_vol *vol,
				      const char *snap, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *snaps = NULL;
	int r;

	if (storage_volume_path(pool, vol, snap, &path) < 0 ||
	    storage_snapshots_dir(pool, vol, &snaps) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	r = storage_remove_tree(path, err);
	if (r < 0)
		return r;
	rmdir(snaps); /* the last snapshot takes its directory with it */
	return 0;
}

/* A snapshot is a plain copy: an empty directory is one to fill, with the volume's mode. */
static int dir_volume_snapshot_empty(struct storage_pool *pool, const struct storage_vol *vol,
				     const char *snap, struct berth_error *err)
{
	_cleanup_free_ char *snaps = NULL;
	_cleanup_free_ char *path = NULL;

	if (storage_snapshots_dir(pool, vol, &snaps) < 0 ||
	    storage_volume_path(pool, vol, snap, &path) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	if (mkdir(snaps, 0700) < 0 && errno != EEXIST)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot create \"%s\": %m",
				       snaps);
	if (mkdir(path, 0711) < 0)
		return berth_error_set(err, -errno,
				       errno == EEXIST ? BERTH_ERR_CONFLICT : BERTH_ERR_INTERNAL,
				       "Cannot create \"%s\": %m", path);
	return 0;
}

/* Nothing to do: the dir driver's snapshots are not read-only. */
static int dir_volume_snapshot_seal(struct storage_pool *pool, const struct storage_vol *vol,
				    const char *snap, struct berth_error *err)
{
	(void)pool, (void)vol, (void)snap, (void)err;
	return 0;
}

/* Copy the snapshot next to the volume, then swap: the volume is never half-restored. */
static int dir_volume_restore(struct storage_pool *pool, const struct storage_vol *vol,
			      const char *snap, uint64_t size, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *src = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_free_ char *old = NULL;
	int r;

	if (size > 0)
		return no_quota(err);
	if (storage_volume_path(pool, vol, NULL, &path) < 0 ||
	    storage_volume_path(pool, vol, snap, &src) < 0 ||
	    !(tmp = berth_strdup_printf("%s.restore", path)) ||
	    !(old = berth_strdup_printf("%s.old", path)))
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	if (access(src, F_OK) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Snapshot \"%s\" not found", snap);
	storage_remove_tree(tmp, NULL);
	storage_remove_tree(old, NULL);
	r = storage_copy_tree(src, tmp, pool->cancel, err);
	if (r < 0)
		return r;
	if (rename(path, old) < 0) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m", path);
		storage_remove_tree(tmp, NULL);
		return r;
	}
	berth_test_pause("restore-mid-swap");
	if (rename(tmp, path) < 0) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m", tmp);
		rename(old, path);
		storage_remove_tree(tmp, NULL);
		return r;
	}
	return storage_remove_tree(old, err);
}

static int dir_volume_copy(struct storage_pool *pool, const struct storage_vol *src,
			   const struct storage_vol *dst, bool with_snapshots, uint64_t size,
			   struct berth_error *err)
{
	_cleanup_free_ char *from = NULL;
	_cleanup_free_ char *to = NULL;
	_cleanup_free_ char *from_snaps = NULL;
	_cleanup_free_ char *to_snaps = NULL;
	int r;

	if (size > 0)
		return no_quota(err);
	if (storage_volume_path(pool, src, NULL, &from) < 0 ||
	    storage_volume_path(pool, dst, NULL, &to) < 0 ||
	    storage_snapshots_dir(pool, src, &from_snaps) < 0 ||
	    storage_snapshots_dir(pool, dst, &to_snaps) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	r = storage_copy_tree(from, to, pool->cancel, err);
	if (r < 0)
		return r;
	if (!with_snapshots || access(from_snaps, F_OK) < 0)
		return 0;
	r = storage_copy_tree(from_snaps, to_snaps, pool->cancel, err);
	if (r < 0)
		storage_remove_tree(to, NULL);
	return r;
}

static int dir_volume_copy_snapshot(struct storage_pool *pool, const struct storage_vol *src,
				    const char *snap, const struct storage_vol *dst,
				    struct berth_error *err)
{
	_cleanup_free_ char *from = NULL;
	_cleanup_free_ char *to = NULL;

	if (storage_volume_path(pool, src, snap, &from) < 0 ||
	    storage_volume_path(pool, dst, NULL, &to) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	return storage_copy_tree(from, to, pool->cancel, err);
}

static int dir_volume_rename(struct storage_pool *pool, const struct storage_vol *vol,
			     const char *new_name, struct berth_error *err)
{
	struct storage_vol nv = {.type = vol->type, .name = new_name};
	_cleanup_free_ char *from = NULL;
	_cleanup_free_ char *to = NULL;
	_cleanup_free_ char *from_snaps = NULL;
	_cleanup_free_ char *to_snaps = NULL;
	int r;

	if (storage_volume_path(pool, vol, NULL, &from) < 0 ||
	    storage_volume_path(pool, &nv, NULL, &to) < 0 ||
	    storage_snapshots_dir(pool, vol, &from_snaps) < 0 ||
	    storage_snapshots_dir(pool, &nv, &to_snaps) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	if (access(to, F_OK) == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "\"%s\" already exists",
				       to);
	if (rename(from, to) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m", from);
	if (rename(from_snaps, to_snaps) < 0 && errno != ENOENT) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "rename \"%s\": %m",
				    from_snaps);
		rename(to, from);
		return r;
	}
	return 0;
}

static int dir_volume_set_quota(struct storage_pool *pool, const struct storage_vol *vol,
				uint64_t size, struct berth_error *err)
{
	return size > 0 ? no_quota(err) : 0;
}

const struct storage_driver storage_driver_dir = {
	.name = "dir",
	.pool_keys = pool_keys,
	.volume_keys = volume_keys,
	.pool_create = dir_pool_create,
	.pool_delete = dir_pool_delete,
	.pool_mount = dir_pool_mount,
	.pool_unmount = dir_pool_unmount,
	.pool_usage = dir_pool_usage,
	.volume_create = dir_volume_create,
	.volume_delete = dir_volume_delete,
	.volume_snapshot = dir_volume_snapshot,
	.volume_snapshot_delete = dir_volume_snapshot_delete,
	.volume_snapshot_empty = dir_volume_snapshot_empty,
	.volume_snapshot_seal = dir_volume_snapshot_seal,
	.volume_snapshot_rename = storage_snapshot_rename,
	.volume_restore = dir_volume_restore,
	.volume_copy = dir_volume_copy,
	.volume_copy_snapshot = dir_volume_copy_snapshot,
	.volume_rename = dir_volume_rename,
	.volume_set_quota = dir_volume_set_quota,
};
