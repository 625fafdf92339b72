/* daemon/api/storage.c: /1.0/storage-pools and /1.0/storage-pools/{name}[/resources], and
 * mounting every pool when berthd starts (unmounting when it stops).
 *
 * A pool's row and its on-disk existence change together: the driver's work runs as
 * the database transaction's hook, so a failing driver leaves no row and a failing
 * commit makes us undo the driver's work. At start, what a killed berthd left on disk
 * without a row (custom volumes, snapshots, half-done restores) is cleaned up. */
#define LOG_CATEGORY "storage"
#include <dirent.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include "daemon/api/api.h"
#include "daemon/api/storage.h"
#include "daemon/instance/rootfs.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

static const struct berth_json_field pool_fields[] = {
	{"name", BERTH_JSON_STRING, false, false},
	{"driver", BERTH_JSON_STRING, false, true},
	{"description", BERTH_JSON_STRING, false, true},
	{"config", BERTH_JSON_STRING_MAP, false, true},
};

/* Config keys that describe the backing store: fixed once the pool exists. */
static const char *const fixed_keys[] = {"source", "size"};

static char *pool_etag(const json_t *p)
{
	json_auto_t *e = json_pack("{s:O?, s:O?, s:O?, s:O?}", "name", json_object_get(p, "name"),
				   "driver", json_object_get(p, "driver"), "description",
				   json_object_get(p, "description"), "config",
				   json_object_get(p, "config"));
	return e ? api_etag(e) : NULL;
}

static int pool_decorate(json_t *pool, struct berth_error *err)
{
	json_t *used_by = NULL;
	int r = db_pool_used_by(berth_json_string(pool, "name"), &used_by, err);

	if (r < 0)
		return r;
	json_object_set_new(pool, "used_by", used_by);
	json_object_set_new(pool, "locations", json_pack("[s]", "none"));
	if (!json_object_get(pool, "status"))
		json_object_set_new(pool, "status", json_string("Created"));
	return 0;
}

int api_storage_pool_open(struct api_request *req, const char *name, struct storage_pool **ret,
			  struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(name, &p, err);

	if (r < 0)
		return r;
	return storage_pool_new(req->d->dir, p, ret, err);
}

static int list_pools(struct api_request *req, struct api_response *resp,
		      struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_auto_t *out = json_array();
	json_t *p;
	size_t i;
	int r = db_pool_list(&list, err);

	if (r < 0)
		return r;
	json_array_foreach(list, i, p) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u =
				api_url("storage-pools", berth_json_string(p, "name"), NULL);
			json_array_append_new(out, json_string(u));
			continue;
		}
		r = pool_decorate(p, err);
		if (r < 0)
			return r;
		json_array_append(out, p);
	}
	return api_sync(resp, TAKE_PTR(out));
}

struct create_ctx {
	struct storage_pool *pool; /* borrowed */
	json_t *obj;		   /* borrowed: the row being written */
	bool created;		   /* the driver's pool_create succeeded */
};

static int create_hook(void *data, struct berth_error *err)
{
	struct create_ctx *c = data;
	int r = c->pool->driver->pool_create(c->pool, err);

	if (r < 0)
		return r;
	c->created = true;
	json_object_set(c->obj, "config", c->pool->config);
	return 0;
}

static int create_pool(struct api_request *req, struct api_response *resp,
		       struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *obj = NULL;
	struct create_ctx c = {0};
	const char *name, *driver;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, pool_fields, ARRAY_SIZE(pool_fields),
				     "storage pool", err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	driver = berth_json_string(req->body, "driver");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("storage pool name", name, err);
	if (r < 0)
		return r;
	if (!driver || !*driver)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "No driver provided");
	if (!storage_driver_find(driver))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Storage driver \"%s\" isn't supported (dir, btrfs)",
				       driver);
	obj = json_pack("{s:s, s:s, s:s, s:o}", "name", name, "driver", driver, "description",
			berth_json_string(req->body, "description") ?: "", "config",
			berth_json_object_or_empty(req->body, "config"));
	if (!obj)
		return -ENOMEM;
	api_config_drop_empty(json_object_get(obj, "config"));
	r = storage_pool_new(req->d->dir, obj, &pool, err);
	if (r < 0)
		return r;
	r = storage_config_check(pool->config, pool->driver->pool_keys, err);
	if (r < 0)
		return r;
	c.pool = pool;
	c.obj = obj;
	r = db_pool_create(obj, create_hook, &c, err);
	if (r < 0) {
		if (c.created && pool->driver->pool_delete(pool, NULL) < 0)
			log_error("Pool \"%s\" left on disk after a failed commit", name);
		return r;
	}
	log_info("Created storage pool \"%s\" (%s) at \"%s\"", name, driver, pool->path);
	url = api_url("storage-pools", name, NULL);
	events_lifecycle(req->d->events, NULL, "storage-pool-created", url, NULL);
	return api_created(resp, url);
}

static int get_pool(struct api_request *req, struct api_response *resp,
		    struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(req->params[0], &p, err);

	if (r < 0)
		return r;
	resp->etag = pool_etag(p);
	r = pool_decorate(p, err);
	if (r < 0)
		return r;
	return api_sync(resp, TAKE_PTR(p));
}

/* The new config must keep the backing-store keys as they are. */
static int check_fixed_keys(const json_t *cur, const json_t *next, struct berth_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(fixed_keys); i++) {
		const char *a = berth_json_string(cur, fixed_keys[i]);
		const char *b = berth_json_string(next, fixed_keys[i]);

		if (b && (!a || !streq(a, b)))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Changing \"%s\" of an existing pool isn't"
					       " supported",
					       fixed_keys[i]);
	}
	return 0;
}

static int update_pool(struct api_request *req, struct api_response *resp,
		       struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description"};
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *etag = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *cur = NULL;
	json_auto_t *next = NULL;
	json_t *config;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, pool_fields, ARRAY_SIZE(pool_fields),
				     "storage pool", err);
	if (r >= 0)
		r = db_pool_get(req->params[0], &cur, err);
	if (r < 0)
		return r;
	etag = pool_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0)
		return r;
	next = json_deep_copy(cur);
	if (!next)
		return -ENOMEM;
	if (patch) {
		api_patch_merge(next, req->body, fields, ARRAY_SIZE(fields));
	} else {
		json_object_set_new(next, "description",
				    json_string(berth_json_string(req->body, "description") ?: ""));
		config = berth_json_object_or_empty(req->body, "config");
		api_config_drop_empty(config);
		/* PUT without the backing-store keys keeps them (lxc edit shows them). */
		for (size_t i = 0; i < ARRAY_SIZE(fixed_keys); i++) {
			json_t *v = json_object_get(json_object_get(cur, "config"), fixed_keys[i]);
			if (v && !json_object_get(config, fixed_keys[i]))
				json_object_set(config, fixed_keys[i], v);
		}
		json_object_set_new(next, "config", config);
	}
	r = check_fixed_keys(json_object_get(cur, "config"), json_object_get(next, "config"), err);
	if (r >= 0)
		r = storage_pool_new(req->d->dir, next, &pool, err);
	if (r >= 0)
		r = storage_config_check(json_object_get(next, "config"), pool->driver->pool_keys,
					 err);
	if (r >= 0)
		r = db_pool_update(req->params[0], next, err);
	if (r < 0)
		return r;
	url = api_url("storage-pools", req->params[0], NULL);
	events_lifecycle(req->d->events, NULL, "storage-pool-updated", url, NULL);
	return api_sync(resp, NULL);
}

static int put_pool(struct api_request *req, struct api_response *resp,
		    struct berth_error *err)
{
	return update_pool(req, resp, err, false);
}

static int patch_pool(struct api_request *req, struct api_response *resp,
		      struct berth_error *err)
{
	return update_pool(req, resp, err, true);
}

static int delete_hook(void *data, struct berth_error *err)
{
	struct storage_pool *pool = data;

	return pool->driver->pool_delete(pool, err);
}

static int delete_pool(struct api_request *req, struct api_response *resp,
		       struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *url = NULL;
	int r = api_storage_pool_open(req, req->params[0], &pool, err);

	if (r >= 0)
		r = db_pool_delete(req->params[0], delete_hook, pool, err);
	if (r < 0)
		return r;
	log_info("Deleted storage pool \"%s\"", req->params[0]);
	url = api_url("storage-pools", req->params[0], NULL);
	events_lifecycle(req->d->events, NULL, "storage-pool-deleted", url, NULL);
	return api_sync(resp, NULL);
}

static int get_resources(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	uint64_t used = 0, total = 0, iused = 0, itotal = 0;
	struct statvfs st;
	int r = api_storage_pool_open(req, req->params[0], &pool, err);

	if (r >= 0)
		r = pool->driver->pool_usage(pool, &used, &total, err);
	if (r < 0)
		return r;
	if (statvfs(pool->path, &st) == 0) {
		itotal = st.f_files;
		iused = st.f_files - st.f_ffree;
	}
	return api_sync(resp, json_pack("{s:{s:I, s:I}, s:{s:I, s:I}}", "space", "used",
					(json_int_t)used, "total", (json_int_t)total, "inodes",
					"used", (json_int_t)iused, "total", (json_int_t)itotal));
}

/* ---- daemon start and stop ---- */

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
		 " rename", pool->name, orphan, missing);
	return true;
}

/* Make the custom and instance volumes on disk match the rows: a berthd killed between a
 * driver's work and the COMMIT leaves a volume or snapshot without a row (never the
 * reverse: rows are committed after the disk work and removed before it), except in a
 * rename (see reconcile_rename). The others are removed. */
static void reconcile_volumes(struct storage_pool *pool, enum storage_volume_type type)
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
	int r = db_volume_list(pool->name, NULL, storage_volume_type_name(type), &rows, &err);

	if (r < 0 || !want || !custom || !snaps) {
		log_warn("Pool \"%s\": cannot list volumes (%s), not reconciling", pool->name,
			 berth_error_msg(&err, r));
		berth_error_release(&err);
		return;
	}
	json_array_foreach(rows, i, v) {
		_cleanup_free_ char *disk = storage_vol_disk_name(
			berth_json_string(v, "project") ?: "", berth_json_string(v, "name") ?: "");
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
			} else if (!json_object_get(want, e)) {
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
			_cleanup_free_ char *key =
				berth_strdup_printf("%s/%s", e, json_string_value(s));
			if (!key || json_object_get(want, key))
				continue;
			log_warn("Pool \"%s\": removing snapshot \"%s\", which has no database"
				 " record", pool->name, key);
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
static void reconcile_images(struct storage_pool *pool)
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
		    (db_image_fingerprint_used(e, &used, &err) < 0 || used)) {
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
		_cleanup_free_ char *path =
			berth_strdup_printf("%s/%s", disks_dir, json_string_value(e));
		bool known = false;

		json_array_foreach(pools, j, p) {
			const char *source =
				berth_json_string(json_object_get(p, "config"), "source");
			known = known || (path && source && streq(source, path));
		}
		if (known || !path || !berth_endswith(path, ".img"))
			continue;
		log_warn("Removing \"%s\", which no storage pool uses", path);
		unlink(path);
	}
}

int api_storage_pools_mount(const char *state_dir, bool mount)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	json_t *p;
	size_t i;
	int r = db_pool_list(&list, &err), ret = 0;

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
			r = mount ? pool->driver->pool_mount(pool, &err) :
				    pool->driver->pool_unmount(pool, &err);
		if (r >= 0 && mount) {
			reconcile_volumes(pool, STORAGE_VOL_CUSTOM);
			reconcile_volumes(pool, STORAGE_VOL_CONTAINER);
			reconcile_images(pool);
		}
		if (r < 0) {
			log_error("Cannot %s storage pool \"%s\": %s", mount ? "mount" : "unmount",
				  name, berth_error_msg(&err, r));
			berth_error_release(&err);
			ret = r;
		}
	}
	return ret;
}

const struct api_route api_storage_routes[] = {
	{"GET", "/1.0/storage-pools", list_pools, NULL},
	{"POST", "/1.0/storage-pools", create_pool, NULL},
	{"GET", "/1.0/storage-pools/{}", get_pool, NULL},
	{"PUT", "/1.0/storage-pools/{}", put_pool, NULL},
	{"PATCH", "/1.0/storage-pools/{}", patch_pool, NULL},
	{"DELETE", "/1.0/storage-pools/{}", delete_pool, NULL},
	{"GET", "/1.0/storage-pools/{}/resources", get_resources, NULL},
	{0},
};
