/* storage/driver.h: the storage pool driver interface: an ops table per driver (one file
 * each: storage/dir.c, storage/btrfs.c), the pool and volume handles they work on, and
 * the helpers they share (paths, sizes, running a program).
 *
 * On-disk layout under a pool's mount path, as LXD's:
 *	containers/<project>_<name>		containers-snapshots/<project>_<name>/<snap>
 *	virtual-machines/<project>_<name>	virtual-machines-snapshots/...
 *	images/<fingerprint>
 *	custom/<project>_<name>			custom-snapshots/<project>_<name>/<snap>
 *
 * Every op runs synchronously (call it from a worker thread, never the loop) and
 * returns 0 or -errno with `err` set to a message a user can act on. An op that fails
 * leaves nothing behind: what it created is removed before it returns. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

/* Volume types. The values are LXD's database codes; the API (and our storage_volumes
 * rows, whose type column is TEXT) use storage_volume_type_name(). */
enum storage_volume_type {
	STORAGE_VOL_CONTAINER = 0,
	STORAGE_VOL_IMAGE = 1,
	STORAGE_VOL_CUSTOM = 2,
	STORAGE_VOL_VM = 3,
	STORAGE_VOL_MAX,
};

/* A pool as the drivers see it. Built from the database object by storage_pool_new. */
struct storage_pool {
	char *name;	 /* owned */
	char *state_dir; /* owned: berthd's state directory (loop files go to disks/) */
	char *path;	 /* owned: where the pool is mounted, volumes live below it */
	json_t *config;	 /* owned: the pool's config; pool_create may add keys (source) */
	const struct storage_driver *driver; /* borrowed, static */
	/* Borrowed, may be NULL: set by a cancellable operation (an instance created from an
	 * image or as a copy); long work on the pool stops with -ECANCELED once it is true
	 * (unpacks after each entry; a running cp is killed, see storage_copy_tree). */
	const atomic_bool *cancel;
};

/* True when the work under way on `pool` was cancelled (see storage_pool.cancel). */
static inline bool storage_cancelled(const struct storage_pool *pool)
{
	return pool->cancel && atomic_load(pool->cancel);
}

/* A volume: its type and its on-disk name (<project>_<name> for instances and custom
 * volumes, the fingerprint for images). Borrowed strings. */
struct storage_vol {
	enum storage_volume_type type;
	const char *name;
};

struct storage_driver {
	const char *name;
	const char *const *pool_keys;	/* config keys a pool accepts (NULL-terminated) */
	const char *const *volume_keys; /* config keys a volume accepts */
	/* Validate the config (unknown keys, size= where unsupported), create the backing
	 * store and mount it at pool->path. May set config keys (e.g. "source"). */
	int (*pool_create)(struct storage_pool *pool, struct berth_error *err);
	/* Unmount and remove what pool_create made. The pool must hold no volumes. */
	int (*pool_delete)(struct storage_pool *pool, struct berth_error *err);
	/* Make an existing pool usable (daemon start); a mounted pool is left alone. */
	int (*pool_mount)(struct storage_pool *pool, struct berth_error *err);
	/* Undo pool_mount (daemon stop, pool delete). */
	int (*pool_unmount)(struct storage_pool *pool, struct berth_error *err);
	int (*pool_usage)(struct storage_pool *pool, uint64_t *ret_used, uint64_t *ret_total,
			  struct berth_error *err);
	/* An empty volume; `size` > 0 limits it (-EOPNOTSUPP where quotas do not exist). */
	int (*volume_create)(struct storage_pool *pool, const struct storage_vol *vol,
			     uint64_t size, struct berth_error *err);
	/* The volume and all its snapshots. */
	int (*volume_delete)(struct storage_pool *pool, const struct storage_vol *vol,
			     struct berth_error *err);
	/* A read-only point-in-time copy named `snap`. */
	int (*volume_snapshot)(struct storage_pool *pool, const struct storage_vol *vol,
			       const char *snap, struct berth_error *err);
	int (*volume_snapshot_delete)(struct storage_pool *pool, const struct storage_vol *vol,
				      const char *snap, struct berth_error *err);
	/* For a restore that writes each snapshot's files itself (a backup import): an empty
	 * writable snapshot `snap`, made read-only as volume_snapshot's are by
	 * volume_snapshot_seal once filled. volume_delete removes it either way. NULL where
	 * a snapshot must come from the volume: btrfs, whose snapshots must share their
	 * history for `btrfs send -p` (an optimized export) to be right. */
	int (*volume_snapshot_empty)(struct storage_pool *pool, const struct storage_vol *vol,
				     const char *snap, struct berth_error *err);
	int (*volume_snapshot_seal)(struct storage_pool *pool, const struct storage_vol *vol,
				    const char *snap, struct berth_error *err);
	int (*volume_snapshot_rename)(struct storage_pool *pool, const struct storage_vol *vol,
				      const char *snap, const char *new_snap,
				      struct berth_error *err);
	/* Replace the volume's content by snapshot `snap`'s; `size` > 0: its quota. */
	int (*volume_restore)(struct storage_pool *pool, const struct storage_vol *vol,
			      const char *snap, uint64_t size, struct berth_error *err);
	/* A new volume `dst` with `src`'s content (and copies of its snapshots when
	 * `with_snapshots`); `size` > 0: dst's quota. */
	int (*volume_copy)(struct storage_pool *pool, const struct storage_vol *src,
			   const struct storage_vol *dst, bool with_snapshots, uint64_t size,
			   struct berth_error *err);
	/* A new volume `dst` (no snapshots) with the content of snapshot `snap` of `src`. */
	int (*volume_copy_snapshot)(struct storage_pool *pool, const struct storage_vol *src,
				    const char *snap, const struct storage_vol *dst,
				    struct berth_error *err);
	/* Rename the volume and its snapshots (same type). */
	int (*volume_rename)(struct storage_pool *pool, const struct storage_vol *vol,
			     const char *new_name, struct berth_error *err);
	/* Limit (size > 0) or unlimit (0) the volume. */
	int (*volume_set_quota)(struct storage_pool *pool, const struct storage_vol *vol,
				uint64_t size, struct berth_error *err);
};

extern const struct storage_driver storage_driver_dir;
extern const struct storage_driver storage_driver_btrfs;
/* btrfs subvolumes through the kernel's ioctls (storage/btrfs.c), no `btrfs` process: a
 * snapshot of the subvolume `src` at `dst` (read-only or not); the subvolume at `path`
 * deleted (a missing one is fine). */
int storage_btrfs_snapshot(const char *src, const char *dst, bool readonly,
			   struct berth_error *err);
int storage_btrfs_delete(const char *path, struct berth_error *err);

/* The driver called `name`, or NULL. */
const struct storage_driver *storage_driver_find(const char *name);
/* Names of all drivers, NULL-terminated. */
extern const char *const storage_driver_names[];

/* A pool handle for the database object `pool` ({"name","driver","config"}) under state
 * directory `state_dir`. -EINVAL for an unknown driver. Free with storage_pool_free. */
int storage_pool_new(const char *state_dir, const json_t *pool, struct storage_pool **ret,
		     struct berth_error *err);
void storage_pool_free(struct storage_pool *pool);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct storage_pool *, storage_pool_free)

/* "containers", "images", "custom", "virtual-machines"; and the API names "container",
 * "image", "custom", "virtual-machine". */
const char *storage_volume_type_dir(enum storage_volume_type type);
const char *storage_volume_type_name(enum storage_volume_type type);
/* -EINVAL for an unknown API name. */
int storage_volume_type_from_name(const char *name, enum storage_volume_type *ret);

/* Paths (new strings): the volume, its snapshot directory, and one snapshot (`snap`
 * NULL: same as storage_volume_path). -ENOMEM. */
int storage_volume_path(const struct storage_pool *pool, const struct storage_vol *vol,
			const char *snap, char **ret);
int storage_snapshots_dir(const struct storage_pool *pool, const struct storage_vol *vol,
			  char **ret);
/* The on-disk name of a project's volume: "<project>_<name>". */
char *storage_vol_disk_name(const char *project, const char *name);

/* Create the type directories (containers/, custom/, ... and their -snapshots twins) in
 * `path`; existing ones are fine. */
int storage_layout_create(const char *path, struct berth_error *err);
/* Remove the (empty) type directories, then `path` itself; missing ones are fine. A
 * non-empty one is -ENOTEMPTY. */
int storage_layout_remove(const char *path, struct berth_error *err);

/* Parse a size like LXD's: "1GiB", "110MiB", "500MB", "1073741824", "10GB"; 0 is
 * refused. -EINVAL with err naming `what`. */
int storage_parse_size(const char *s, const char *what, uint64_t *ret, struct berth_error *err);
/* Check that every key of `config` is in `keys` (NULL-terminated) or starts with
 * "volatile."; -EINVAL 'Invalid key "x"' otherwise. */
int storage_config_check(const json_t *config, const char *const *keys, struct berth_error *err);

/* Run `argv` (argv[0] an absolute path or a name found by berth_program_find) through
 * lib/spawn with its default environment (PATH=BERTH_SPAWN_PATH, LC_ALL=C), stdin from
 * /dev/null, killed if berthd dies, and wait. A non-zero exit is -EIO with err quoting
 * the program and the tail of its output. Never goes through a shell. */
int storage_run(const char *const *argv, struct berth_error *err);

/* Rename snapshot `snap` of `vol` to `new_snap` (a plain rename(2) for dir and btrfs). */
int storage_snapshot_rename(struct storage_pool *pool, const struct storage_vol *vol,
			    const char *snap, const char *new_snap, struct berth_error *err);

/* Remove a directory tree (`rm -rf --one-file-system`); a missing path is fine. */
int storage_remove_tree(const char *path, struct berth_error *err);
/* Copy the tree `src` to the new path `dst` keeping owners, modes, timestamps, xattrs,
 * ACLs, hardlinks, special files and sparseness; reflinks where the filesystem allows.
 * `dst` must not exist; on failure it is removed. `cancel` (may be NULL; a pool's
 * storage_pool.cancel) stops the copy within a fraction of a second: -ECANCELED. */
int storage_copy_tree(const char *src, const char *dst, const atomic_bool *cancel,
		      struct berth_error *err);

/* Make the existing directory `dst` a copy of the tree `src` (its content removed first,
 * then src copied in as storage_copy_tree does). */
int storage_tree_replace(const char *src, const char *dst, struct berth_error *err);

/* Copy volume `src` of `src_pool` (or its snapshot `src_snap` when not NULL) to the new
 * volume `dst` of another pool `dst_pool`, whatever their drivers, with the snapshots
 * named in `snaps` (NULL-terminated, oldest first; NULL: none) recreated on dst. `size` >
 * 0: dst's quota. On failure dst is removed. */
int storage_volume_transfer(struct storage_pool *src_pool, const struct storage_vol *src,
			    const char *src_snap, struct storage_pool *dst_pool,
			    const struct storage_vol *dst, const char *const *snaps, uint64_t size,
			    struct berth_error *err);

/* Catching write errors that only show at writeback (a full btrfs, a full ext4 under
 * delayed allocation): open an fd on the filesystem of `path` BEFORE writing (syncfs
 * reports the errors recorded since its fd was opened, not older ones, so an fd opened
 * afterwards can miss them), then check: syncfs, -ENOSPC/-EIO with err saying what was
 * being written. */
int storage_writeback_watch(const char *path, int *ret_fd, struct berth_error *err);
int storage_writeback_check(int fd, const char *what, struct berth_error *err);

/* Disk space used by the files of volume `vol`: their allocated blocks, a hardlinked
 * file counted at each of its names (as `du -l`), extents shared with snapshots counted
 * in full. Walks the tree: a worker thread only. */
int storage_volume_usage(const struct storage_pool *pool, const struct storage_vol *vol,
			 uint64_t *ret, struct berth_error *err);
