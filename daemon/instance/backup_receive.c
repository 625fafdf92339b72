/* daemon/instance/backup_receive.c: optimized btrfs backups received onto a pool (see
 * backup_receive.h). */
#define LOG_CATEGORY "backup-import"
#include "daemon/instance/backup_receive.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/instance/backup_archive.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

/* The one entry of `dir` not in `known` (names seen before), added to it. */
static int new_entry(const char *dir, json_t *known, char **ret, struct berth_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = -ENOENT;

	if (!d)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening \"%s\": %m", dir);
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
		    json_object_get(known, de->d_name))
			continue;
		json_object_set_new(known, de->d_name, json_true());
		*ret = berth_strdup_printf("%s/%s", dir, de->d_name);
		r = *ret ? 0 : -ENOMEM;
		break;
	}
	closedir(d);
	if (r == -ENOENT)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream made no subvolume");
	return r;
}

/* Run btrfs with `argv`, stdin from `in_fd` (-1: /dev/null); killed when `cancel` (may
 * be NULL) turns true. */
static int btrfs_cmd(const char *const *argv, int in_fd, const atomic_bool *cancel,
		     struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.io = {in_fd >= 0 ? BERTH_SPAWN_FD : BERTH_SPAWN_NULL, BERTH_SPAWN_DEFAULT,
		       BERTH_SPAWN_TO_STDOUT},
		.fds = {in_fd, -1, -1},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
		.cancel = cancel,
	};

	return berth_spawn_run(&s, err);
}

/* Receive the stream of `snap` (NULL: the instance) into `dir`; *ret the subvolume. */
static int receive_one(int fd, const char *snap, const char *spool_dir, const char *dir,
		       json_t *known, const atomic_bool *cancel, char **ret,
		       struct berth_error *err)
{
	_cleanup_close_ int tmp = open(spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	const char *argv[] = {"btrfs", "receive", "-q", "-e", dir, NULL};
	int r;

	if (tmp < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Temporary file in \"%s\": %m", spool_dir);
	r = backup_extract_bin(fd, snap, tmp, err);
	if (r == -ENOENT)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup holds no btrfs stream for %s%s%s",
				       snap ? "snapshot \"" : "the instance", snap ?: "",
				       snap ? "\"" : "");
	if (r >= 0 && lseek(tmp, 0, SEEK_SET) < 0)
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	if (r >= 0)
		r = btrfs_cmd(argv, tmp, cancel, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Receiving the btrfs stream of %s%s%s",
					snap ? "snapshot \"" : "the instance", snap ?: "",
					snap ? "\"" : "");
	return new_entry(dir, known, ret, err);
}

/* Delete every subvolume left in the private directory `dir`, then the directory. */
static void recv_dir_remove(const char *dir, const json_t *known)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)known, k, v) {
		_cleanup_free_ char *p = berth_strdup_printf("%s/%s", dir, k);
		const char *argv[] = {"btrfs", "subvolume", "delete", p, NULL};

		if (p && access(p, F_OK) == 0)
			btrfs_cmd(argv, -1, NULL, NULL);
	}
	if (rmdir(dir) < 0)
		log_warn("Removing \"%s\": %m, ignoring", dir);
}

static int place_snapshots(int fd, const char *spool_dir, struct storage_pool *pool,
			   const struct storage_vol *vol, const json_t *snapshots, const char *dir,
			   json_t *known, json_t *paths, struct berth_error *err)
{
	_cleanup_free_ char *snaps_dir = NULL;
	json_t *n;
	size_t i;
	int r = storage_snapshots_dir(pool, vol, &snaps_dir);

	if (r < 0)
		return r;
	if (json_array_size(snapshots) && mkdir(snaps_dir, 0700) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdir \"%s\": %m",
				       snaps_dir);
	/* received first, moved after: each stream's parent is the one before, which
	 * `btrfs receive` looks for where it was received */
	json_array_foreach(snapshots, i, n) {
		_cleanup_free_ char *got = NULL;

		r = receive_one(fd, json_string_value(n), spool_dir, dir, known, pool->cancel, &got,
				err);
		if (r < 0)
			return r;
		json_object_set_new(paths, json_string_value(n), json_string(got));
	}
	return 0;
}

static int move_snapshots(struct storage_pool *pool, const struct storage_vol *vol,
			  const json_t *snapshots, const json_t *paths, struct berth_error *err)
{
	json_t *n;
	size_t i;

	json_array_foreach(snapshots, i, n) {
		_cleanup_free_ char *dst = NULL;
		const char *got = json_string_value(json_object_get(paths, json_string_value(n)));

		int r;

		if (storage_volume_path(pool, vol, json_string_value(n), &dst) < 0)
			return -ENOMEM;
		/* a read-only subvolume cannot move to another directory: a read-only
		 * snapshot of it goes there, the received one with the rest */
		const char *argv[] = {"btrfs", "subvolume", "snapshot", "-r", got, dst, NULL};
		r = got ? btrfs_cmd(argv, -1, NULL, err) : -ENOENT;
		if (r < 0)
			return berth_error_wrap(err, r, "Placing snapshot \"%s\"",
						json_string_value(n));
	}
	return 0;
}

static int receive_all(int fd, const char *spool_dir, struct storage_pool *pool,
		       const struct storage_vol *vol, const json_t *snapshots, const char *dir,
		       json_t *known, struct berth_error *err)
{
	_cleanup_free_ char *got = NULL, *vol_path = NULL;
	json_auto_t *snap_paths = json_object();
	int r;

	if (!snap_paths || storage_volume_path(pool, vol, NULL, &vol_path) < 0)
		return -ENOMEM;
	r = place_snapshots(fd, spool_dir, pool, vol, snapshots, dir, known, snap_paths, err);
	if (r >= 0)
		r = receive_one(fd, NULL, spool_dir, dir, known, pool->cancel, &got, err);
	if (r >= 0) {
		const char *argv[] = {"btrfs", "subvolume", "snapshot", got, vol_path, NULL};
		r = btrfs_cmd(argv, -1, NULL, err);
	}
	if (r >= 0)
		r = move_snapshots(pool, vol, snapshots, snap_paths, err);
	return r;
}

int backup_receive_btrfs(int fd, const char *spool_dir, struct storage_pool *pool,
			 const struct storage_vol *vol, const json_t *snapshots,
			 struct berth_error *err)
{
	_cleanup_free_ char *dir = berth_strdup_printf("%s/%s/.berth-import-XXXXXX", pool->path,
						       storage_volume_type_dir(vol->type));
	json_auto_t *known = json_object();
	int r;

	if (!dir || !known)
		return -ENOMEM;
	if (!mkdtemp(dir))
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdtemp in \"%s\": %m",
				       pool->path);
	r = receive_all(fd, spool_dir, pool, vol, snapshots, dir, known, err);
	if (r < 0) {
		_cleanup_free_ char *snaps_dir = NULL;

		pool->driver->volume_delete(pool, vol, NULL);
		if (storage_snapshots_dir(pool, vol, &snaps_dir) >= 0)
			rmdir(snaps_dir);
	}
	/* what was moved is no longer in dir; the rest goes */
	recv_dir_remove(dir, known);
	return r;
}
