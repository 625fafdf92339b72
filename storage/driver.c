/* storage/driver.c: driver lookup, pool handles, the volume layout, size parsing and the
 * helpers drivers share for running programs (cp, rm, mkfs.btrfs). */
#include <ctype.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/spawn.h"
#include "lib/util.h"
#include "storage/driver.h"

const char *const storage_driver_names[] = {"btrfs", "dir", NULL};

const struct storage_driver *storage_driver_find(const char *name)
{
	if (!name)
		return NULL;
	if (streq(name, "dir"))
		return &storage_driver_dir;
	if (streq(name, "btrfs"))
		return &storage_driver_btrfs;
	return NULL;
}

void storage_pool_free(struct storage_pool *pool)
{
	if (!pool)
		return;
	free(pool->name);
	free(pool->state_dir);
	free(pool->path);
	json_decref(pool->config);
	free(pool);
}

int storage_pool_new(const char *state_dir, const json_t *pool, struct storage_pool **ret,
		     struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *p = calloc(1, sizeof(*p));
	const char *name = berth_json_string(pool, "name");
	const char *driver = berth_json_string(pool, "driver");
	const json_t *config = json_object_get(pool, "config");
	const char *source;

	if (!p || !name)
		return berth_error_set(err, p ? -EINVAL : -ENOMEM, BERTH_ERR_INTERNAL,
				       p ? "Storage pool without a name" : "Out of memory");
	p->driver = storage_driver_find(driver);
	if (!p->driver)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Unknown storage pool driver \"%s\"", driver ? driver : "");
	p->name = strdup(name);
	p->state_dir = strdup(state_dir);
	p->config = json_is_object(config) ? json_deep_copy(config) : json_object();
	/* A dir pool lives in its source directory; everything else is mounted (or
	 * bind-mounted) at storage-pools/<name>, as LXD does. */
	source = berth_json_string(p->config, "source");
	if (p->driver == &storage_driver_dir && source && *source)
		p->path = strdup(source);
	else
		p->path = berth_strdup_printf("%s/storage-pools/%s", state_dir, name);
	if (!p->name || !p->state_dir || !p->config || !p->path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	*ret = TAKE_PTR(p);
	return 0;
}

static const char *const type_dirs[STORAGE_VOL_MAX] = {
	[STORAGE_VOL_CONTAINER] = "containers",
	[STORAGE_VOL_IMAGE] = "images",
	[STORAGE_VOL_CUSTOM] = "custom",
	[STORAGE_VOL_VM] = "virtual-machines",
};
static const char *const type_names[STORAGE_VOL_MAX] = {
	[STORAGE_VOL_CONTAINER] = "container",
	[STORAGE_VOL_IMAGE] = "image",
	[STORAGE_VOL_CUSTOM] = "custom",
	[STORAGE_VOL_VM] = "virtual-machine",
};

const char *storage_volume_type_dir(enum storage_volume_type type)
{
	return type < STORAGE_VOL_MAX ? type_dirs[type] : NULL;
}

const char *storage_volume_type_name(enum storage_volume_type type)
{
	return type < STORAGE_VOL_MAX ? type_names[type] : NULL;
}

int storage_volume_type_from_name(const char *name, enum storage_volume_type *ret)
{
	for (int t = 0; t < STORAGE_VOL_MAX; t++)
		if (name && streq(name, type_names[t])) {
			*ret = (enum storage_volume_type)t;
			return 0;
		}
	return -EINVAL;
}

int storage_volume_path(const struct storage_pool *pool, const struct storage_vol *vol,
			const char *snap, char **ret)
{
	char *p;

	if (snap)
		p = berth_strdup_printf("%s/%s-snapshots/%s/%s", pool->path, type_dirs[vol->type],
					vol->name, snap);
	else
		p = berth_strdup_printf("%s/%s/%s", pool->path, type_dirs[vol->type], vol->name);
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int storage_snapshots_dir(const struct storage_pool *pool, const struct storage_vol *vol,
			  char **ret)
{
	char *p = berth_strdup_printf("%s/%s-snapshots/%s", pool->path, type_dirs[vol->type],
				      vol->name);

	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

char *storage_vol_disk_name(const char *project, const char *name)
{
	return berth_strdup_printf("%s_%s", project, name);
}

int storage_parse_size(const char *s, const char *what, uint64_t *ret, struct berth_error *err)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
		{"", 1},
		{"B", 1},
		{"kB", 1000ULL},
		{"KB", 1000ULL},
		{"MB", 1000ULL * 1000},
		{"GB", 1000ULL * 1000 * 1000},
		{"TB", 1000ULL * 1000 * 1000 * 1000},
		{"KiB", 1ULL << 10},
		{"MiB", 1ULL << 20},
		{"GiB", 1ULL << 30},
		{"TiB", 1ULL << 40},
	};
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v == 0)
		goto bad;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (streq(end, units[i].suffix)) {
			if (v > UINT64_MAX / units[i].mult)
				goto bad;
			*ret = v * units[i].mult;
			return 0;
		}
bad:
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Invalid value \"%s\" for \"%s\": expected a size such as 10GiB",
			       s ? s : "", what);
}

int storage_config_check(const json_t *config, const char *const *keys, struct berth_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)config, key, v) {
		bool ok = berth_startswith(key, "volatile.");

		for (size_t i = 0; keys[i] && !ok; i++)
			ok = streq(key, keys[i]);
		if (!ok)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid key \"%s\"", key);
		if (!json_is_string(v))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for \"%s\": not a string", key);
	}
	return 0;
}

int storage_snapshot_rename(struct storage_pool *pool, const struct storage_vol *vol,
			    const char *snap, const char *new_snap, struct berth_error *err)
{
	_cleanup_free_ char *from = NULL;
	_cleanup_free_ char *to = NULL;

	if (storage_volume_path(pool, vol, snap, &from) < 0 ||
	    storage_volume_path(pool, vol, new_snap, &to) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	if (access(to, F_OK) == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "\"%s\" already exists",
				       to);
	if (rename(from, to) < 0)
		return berth_error_set(err, -errno,
				       errno == ENOENT ? BERTH_ERR_NOT_FOUND : BERTH_ERR_INTERNAL,
				       "rename \"%s\": %m", from);
	return 0;
}

/* ---- layout ---- */

/* The type directories a pool holds, each with its -snapshots twin except images. They
 * are root's alone (0700; a pool made by an older berth is put right at its next open):
 * containers are stored unshifted, their root's files are the host's uid 0 on disk, and
 * another host user who could reach a rootfs could run its setuid binaries as root. */
static const char *const layout[] = {
	"containers",	    "containers-snapshots",	  "custom", "custom-snapshots", "images",
	"virtual-machines", "virtual-machines-snapshots", NULL,
};

int storage_layout_create(const char *path, struct berth_error *err)
{
	for (size_t i = 0; layout[i]; i++) {
		_cleanup_free_ char *p = berth_strdup_printf("%s/%s", path, layout[i]);
		if (!p)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
		if ((mkdir(p, 0700) < 0 && errno != EEXIST) || chmod(p, 0700) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot create \"%s\": %m", p);
	}
	return 0;
}

/* Remove the (empty) layout directories, then the pool directory itself. */
int storage_layout_remove(const char *path, struct berth_error *err)
{
	for (size_t i = 0; layout[i]; i++) {
		_cleanup_free_ char *p = berth_strdup_printf("%s/%s", path, layout[i]);
		if (!p)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
		if (rmdir(p) < 0 && errno != ENOENT)
			return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST,
					       "Cannot remove \"%s\": %m", p);
	}
	if (rmdir(path) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST,
				       "Cannot remove \"%s\": %m", path);
	return 0;
}

/* ---- programs ---- */

#define RUN_OUTPUT_MAX 4096

/* Killed with its parent: a berthd killed with SIGKILL must not leave a cp or rm working
 * on a volume that the next berthd's reconciliation is about to remove. */
static int run_cancellable(const char *const *argv, const atomic_bool *cancel,
			   struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_TO_STDOUT},
		.capture_max = RUN_OUTPUT_MAX,
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
		.cancel = cancel,
	};

	return berth_spawn_run(&s, err);
}

int storage_run(const char *const *argv, struct berth_error *err)
{
	return run_cancellable(argv, NULL, err);
}

int storage_remove_tree(const char *path, struct berth_error *err)
{
	const char *argv[] = {"rm", "-rf", "--one-file-system", "--", path, NULL};

	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	return storage_run(argv, err);
}

int storage_copy_tree(const char *src, const char *dst, const atomic_bool *cancel,
		      struct berth_error *err)
{
	/* -a keeps owners, modes, times, links, special files and hardlinks (within the
	 * tree); --preserve=all adds xattrs and ACLs; -T copies src itself as dst. */
	const char *argv[] = {
		"cp", "-a", "--preserve=all", "--reflink=auto", "--sparse=auto", "-T", "--", src,
		dst,  NULL};
	int r;

	if (access(dst, F_OK) == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT, "\"%s\" already exists",
				       dst);
	r = run_cancellable(argv, cancel, err);
	if (r < 0)
		storage_remove_tree(dst, NULL);
	return r;
}

int storage_tree_replace(const char *src, const char *dst, struct berth_error *err)
{
	/* Empty dst (staying on its filesystem), then copy src's content and attributes in:
	 * with -T and an existing dst, cp merges src into it. */
	const char *clear[] = {"find", dst, "-xdev", "-mindepth", "1", "-delete", NULL};
	const char *copy[] = {
		"cp", "-a", "--preserve=all", "--reflink=auto", "--sparse=auto", "-T", "--", src,
		dst,  NULL};
	int r = storage_run(clear, err);

	return r < 0 ? r : storage_run(copy, err);
}

/* Snapshots first, oldest first, each copied into the new volume and snapshotted there;
 * then the volume's (or snapshot `src_snap`'s) own content. */
int storage_volume_transfer(struct storage_pool *src_pool, const struct storage_vol *src,
			    const char *src_snap, struct storage_pool *dst_pool,
			    const struct storage_vol *dst, const char *const *snaps, uint64_t size,
			    struct berth_error *err)
{
	_cleanup_free_ char *to = NULL;
	_cleanup_free_ char *from = NULL;
	_cleanup_close_ int wb = -EBADF;
	int r;

	if (storage_volume_path(dst_pool, dst, NULL, &to) < 0 ||
	    storage_volume_path(src_pool, src, src_snap, &from) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	r = storage_writeback_watch(dst_pool->path, &wb, err);
	if (r < 0)
		return r;
	r = dst_pool->driver->volume_create(dst_pool, dst, size, err);
	if (r < 0)
		return r;
	for (size_t i = 0; snaps && snaps[i] && r >= 0; i++) {
		_cleanup_free_ char *snap = NULL;

		if (storage_volume_path(src_pool, src, snaps[i], &snap) < 0)
			r = berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
		if (r >= 0)
			r = storage_tree_replace(snap, to, err);
		if (r >= 0)
			r = dst_pool->driver->volume_snapshot(dst_pool, dst, snaps[i], err);
		berth_test_pause("transfer-after-snapshot");
	}
	if (r >= 0)
		r = storage_tree_replace(from, to, err);
	if (r >= 0)
		r = storage_writeback_check(wb, "the copied volume", err);
	if (r < 0)
		dst_pool->driver->volume_delete(dst_pool, dst, NULL);
	return r;
}

int storage_writeback_watch(const char *path, int *ret_fd, struct berth_error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "open \"%s\": %m", path);
	*ret_fd = fd;
	return 0;
}

int storage_writeback_check(int fd, const char *what, struct berth_error *err)
{
	if (syncfs(fd) < 0)
		return berth_error_set(err, -errno,
				       errno == ENOSPC ? BERTH_ERR_BAD_REQUEST : BERTH_ERR_INTERNAL,
				       "Writing %s: %m", what);
	return 0;
}

/* nftw has no user pointer: the walk's state lives in a thread-local (each worker
 * thread walks one tree at a time). */
static _Thread_local uint64_t usage_bytes;

static int usage_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag != FTW_NS)
		usage_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

int storage_volume_usage(const struct storage_pool *pool, const struct storage_vol *vol,
			 uint64_t *ret, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (storage_volume_path(pool, vol, NULL, &path) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	usage_bytes = 0;
	if (nftw(path, usage_visit, 32, FTW_PHYS | FTW_MOUNT) < 0)
		return berth_error_set(err, -errno,
				       errno == ENOENT ? BERTH_ERR_NOT_FOUND : BERTH_ERR_INTERNAL,
				       "Cannot walk \"%s\": %m", path);
	*ret = usage_bytes;
	return 0;
}
