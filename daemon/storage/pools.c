/* daemon/storage/pools.c: mounting every storage pool when berthd starts (unmounting
 * when it stops), and making what is on disk match the database at start.
 *
 * Rows are committed after the disk work and removed before it, so a berthd killed in
 * between leaves things on disk without a row (pools, custom and instance volumes,
 * snapshots, image volumes), a half-done restore, or one volume renamed on disk but not
 * in its row: each is removed, finished or put back here. */
#define LOG_CATEGORY "pools"
#include "daemon/storage/pools.h"

#include <dirent.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/instance/backup_receive.h"
#include "daemon/instance/rootfs.h"
#include "daemon/warnings.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

/* Names of the entries of directory `path` (without . and ..), in a new array. */
static json_t *list_dir(const char *path)
{
	json_t *names = json_array();
	DIR *d = opendir(path);
	struct dirent *e;

	if (!d)
		return names;
	while ((e = readdir(d)))
		if (!streq(e->d_name, ".") && !streq(e->d_name, ".."))
			json_array_append_new(names, json_string(e->d_name));
	closedir(d);
	return names;
}

/* Finish or undo a restore that a dying berthd left half-way (see the drivers' restore:
 * copy or snapshot to "<vol>.restore", rename "<vol>" to "<vol>.old", rename the copy
 * in, delete "<vol>.old"). */
static void reconcile_restore(struct storage_pool *pool, enum storage_volume_type type,
			      const char *entry)
{
	_cleanup_free_ char *base = strdup(entry);
	_cleanup_free_ char *vol_path = NULL;
	_cleanup_free_ char *old_path = NULL;
	struct storage_vol tmp = {type, entry};
	struct storage_vol vol = {type, base};
	bool old = berth_endswith(entry, ".old");

	if (!base)
		return;
	base[strlen(base) - (old ? 4 : 8)] = '\0';
	if (old && storage_volume_path(pool, &vol, NULL, &vol_path) >= 0 &&
	    storage_volume_path(pool, &tmp, NULL, &old_path) >= 0 && access(vol_path, F_OK) < 0) {
		log_warn("Pool \"%s\": putting \"%s\" back after an interrupted restore",
			 pool->name, base);
		if (rename(old_path, vol_path) == 0)
			return;
	}
	log_warn("Pool \"%s\": removing \"%s\" left by an interrupted restore", pool->name, entry);
	pool->driver->volume_delete(pool, &tmp, NULL);
}

/* A rename renames the volume on disk, then its row: a berthd killed in between leaves
 * exactly one volume without a row and one row without a volume. Put the volume (and
 * its snapshot directory) back under the row's name instead of deleting it. Returns
 * true when `orphan` was such a volume. */
static bool reconcile_rename(struct storage_pool *pool, enum storage_volume_type type,
			     const char *orphan, const char *missing, const char *snaps)
{
	struct storage_vol from = {type, orphan}, to = {type, missing};
	_cleanup_free_ char *from_path = NULL, *to_path = NULL;
	_cleanup_free_ char *from_snaps = berth_strdup_printf("%s/%s", snaps, orphan);
	_cleanup_free_ char *to_snaps = berth_strdup_printf("%s/%s", snaps, missing);

	if (!from_snaps || !to_snaps || storage_volume_path(pool, &from, NULL, &from_path) < 0 ||
	    storage_volume_path(pool, &to, NULL, &to_path) < 0)
		return false;
	if (rename(from_path, to_path) < 0)
		return false;
	if (access(from_snaps, F_OK) == 0 && access(to_snaps, F_OK) < 0)
		rename(from_snaps, to_snaps);
	log_warn("Pool \"%s\": volume \"%s\" renamed back to \"%s\" after an interrupted"
		 " rename",
		 pool->name, orphan, missing);
	return true;
}

/* Make the custom and instance volumes on disk match the rows: a berthd killed between a
 * driver's work and the COMMIT leaves a volume or snapshot without a row (never the
 * reverse: rows are committed after the disk work and removed before it), except in a
 * rename (see reconcile_rename). The others are removed. */
static void reconcile_volumes(struct db *db, struct storage_pool *pool,
			      enum storage_volume_type type)
{
	struct berth_error err = {0};
	json_auto_t *rows = NULL;
	json_auto_t *want = json_object();
	json_auto_t *entries = NULL;
	const char *tdir = storage_volume_type_dir(type);
	_cleanup_free_ char *custom = berth_strdup_printf("%s/%s", pool->path, tdir);
	_cleanup_free_ char *snaps = berth_strdup_printf("%s/%s-snapshots", pool->path, tdir);
	json_t *v;
	size_t i;
	int r = db_volume_list(db, pool->name, NULL, storage_volume_type_name(type), &rows, &err);

	if (r < 0 || !want || !custom || !snaps) {
		log_warn("Pool \"%s\": cannot list volumes (%s), not reconciling", pool->name,
			 berth_error_msg(&err, r));
		berth_error_release(&err);
		return;
	}
	json_array_foreach(rows, i, v) {
		_cleanup_free_ char *disk =
			storage_vol_disk_name(berth_json_string(v, "project") ?: "",
					      berth_json_string(v, "name") ?: "");
		if (disk)
			json_object_set_new(want, disk, json_true());
	}
	entries = list_dir(custom);
	{
		/* Rows whose volume is missing, and volumes without a row. */
		const char *missing = NULL, *orphan = NULL;
		size_t n_missing = 0, n_orphans = 0;
		const char *key;
		json_t *val;

		json_object_foreach(want, key, val) {
			_cleanup_free_ char *path = berth_strdup_printf("%s/%s", custom, key);
			if (!strchr(key, '/') && path && access(path, F_OK) < 0) {
				missing = key;
				n_missing++;
			}
		}
		bool restoring = false;

		json_array_foreach(entries, i, v) {
			const char *e = json_string_value(v);
			if (berth_endswith(e, ".old") || berth_endswith(e, ".restore")) {
				restoring = true; /* reconcile_restore owns that case */
			} else if (!json_object_get(want, e) &&
				   !berth_startswith(e, ".berth-import-")) {
				orphan = e;
				n_orphans++;
			}
		}
		if (!restoring && n_missing == 1 && n_orphans == 1 &&
		    reconcile_rename(pool, type, orphan, missing, snaps)) {
			json_decref(entries);
			entries = list_dir(custom);
		}
	}
	json_array_foreach(entries, i, v) {
		const char *e = json_string_value(v);
		struct storage_vol vol = {type, e};

		if (json_object_get(want, e))
			continue;
		if (berth_endswith(e, ".old") || berth_endswith(e, ".restore")) {
			reconcile_restore(pool, type, e);
			continue;
		}
		if (berth_startswith(e, ".berth-import-")) {
			_cleanup_free_ char *path = berth_strdup_printf("%s/%s", custom, e);

			log_warn("Pool \"%s\": removing \"%s\", left by a backup import",
				 pool->name, e);
			if (path)
				backup_receive_dir_remove(path);
			continue;
		}
		log_warn("Pool \"%s\": removing volume \"%s\", which has no database record",
			 pool->name, e);
		pool->driver->volume_delete(pool, &vol, NULL);
	}
	json_decref(entries);
	entries = list_dir(snaps);
	json_array_foreach(entries, i, v) {
		const char *e = json_string_value(v);
		_cleanup_free_ char *dir = berth_strdup_printf("%s/%s", snaps, e);
		json_auto_t *snap_entries = dir ? list_dir(dir) : NULL;
		struct storage_vol vol = {type, e};
		json_t *s;
		size_t j;

		json_array_foreach(snap_entries, j, s) {
			_cleanup_free_ char *key = berth_strdup_printf("%s/%s", e,
								       json_string_value(s));
			if (!key || json_object_get(want, key))
				continue;
			log_warn("Pool \"%s\": removing snapshot \"%s\", which has no database"
				 " record",
				 pool->name, key);
			pool->driver->volume_snapshot_delete(pool, &vol, json_string_value(s),
							     NULL);
		}
		if (dir)
			rmdir(dir); /* only when empty: a volume without snapshots has none */
	}
}

/* Image volumes (images/<fp>, unpacked once per pool) are a cache of the image store:
 * temporary ones left by an interrupted unpack go, and so do those of images no project
 * records any more (deleted images; their instances are independent clones). */
static void reconcile_images(struct db *db, struct storage_pool *pool)
{
	_cleanup_free_ char *dir = berth_strdup_printf("%s/images", pool->path);
	json_auto_t *entries = dir ? list_dir(dir) : NULL;
	json_t *v;
	size_t i;

	json_array_foreach(entries, i, v) {
		const char *e = json_string_value(v);
		struct storage_vol vol = {STORAGE_VOL_IMAGE, e};
		struct berth_error err = {0};
		bool used = true;

		if (!rootfs_is_temporary_image(e) &&
		    (db_image_fingerprint_used(db, e, &used, &err) < 0 || used)) {
			berth_error_release(&err);
			continue;
		}
		log_info("Pool \"%s\": removing image volume \"%s\", %s", pool->name, e,
			 used ? "left by an interrupted unpack" : "whose image is gone");
		pool->driver->volume_delete(pool, &vol, NULL);
	}
}

/* A berthd killed inside a pool creation (after the driver, before COMMIT) leaves
 * storage-pools/<name> (maybe mounted, with its autoclear loop device) and
 * disks/<name>.img without a row: unmount and remove them. */
static void reconcile_pools(const char *state_dir, const json_t *pools)
{
	_cleanup_free_ char *pools_dir = berth_strdup_printf("%s/storage-pools", state_dir);
	_cleanup_free_ char *disks_dir = berth_strdup_printf("%s/disks", state_dir);
	json_auto_t *entries = NULL;
	json_t *e, *p;
	size_t i, j;

	if (!pools_dir || !disks_dir)
		return;
	entries = list_dir(pools_dir);
	json_array_foreach(entries, i, e) {
		const char *name = json_string_value(e);
		_cleanup_free_ char *path = berth_strdup_printf("%s/%s", pools_dir, name);
		bool known = false;

		json_array_foreach(pools, j, p)
			known = known || streq(berth_json_string(p, "name") ?: "", name);
		if (known || !path)
			continue;
		log_warn("Removing storage pool directory \"%s\", which has no database record",
			 path);
		umount2(path, MNT_DETACH);
		storage_layout_remove(path, NULL);
	}
	json_decref(entries);
	entries = list_dir(disks_dir);
	json_array_foreach(entries, i, e) {
		_cleanup_free_ char *path = berth_strdup_printf("%s/%s", disks_dir,
								json_string_value(e));
		bool known = false;

		json_array_foreach(pools, j, p) {
			const char *source = berth_json_string(json_object_get(p, "config"),
							       "source");
			known = known || (path && source && streq(source, path));
		}
		if (known || !path || !berth_endswith(path, ".img"))
			continue;
		log_warn("Removing \"%s\", which no storage pool uses", path);
		unlink(path);
	}
}

/* A pool that cannot be mounted at start is a warning until it mounts at a later start. */
static void pool_warn(struct db *db, const char *name, int r, const struct berth_error *err)
{
	_cleanup_free_ char *url = warnings_entity_url("storage-pools", name, NULL);

	if (!url)
		return;
	if (r >= 0)
		warnings_resolve(db, WARNING_POOL_UNAVAILABLE, NULL, url);
	else
		warnings_raise(db, WARNING_POOL_UNAVAILABLE, NULL, url,
			       "Cannot mount storage pool \"%s\": %s", name,
			       berth_error_msg(err, r));
}

int storage_pools_mount(struct db *db, const char *state_dir, bool mount)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	json_t *p;
	size_t i;
	int r = db_pool_list(db, &list, &err), ret = 0;

	if (r < 0) {
		log_error("Cannot list storage pools: %s", berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	if (mount)
		reconcile_pools(state_dir, list);
	json_array_foreach(list, i, p) {
		_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
		const char *name = berth_json_string(p, "name");

		r = storage_pool_new(state_dir, p, &pool, &err);
		if (r >= 0)
			r = mount ? pool->driver->pool_mount(pool, &err)
				  : pool->driver->pool_unmount(pool, &err);
		if (r >= 0 && mount) {
			reconcile_volumes(db, pool, STORAGE_VOL_CUSTOM);
			reconcile_volumes(db, pool, STORAGE_VOL_CONTAINER);
			reconcile_volumes(db, pool, STORAGE_VOL_VM);
			reconcile_images(db, pool);
		}
		if (mount)
			pool_warn(db, name, r, &err);
		else if (r < 0)
			log_error("Cannot unmount storage pool \"%s\": %s", name,
				  berth_error_msg(&err, r));
		if (r < 0)
			ret = r;
		berth_error_release(&err);
	}
	return ret;
}
