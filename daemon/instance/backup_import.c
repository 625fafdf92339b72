/* daemon/instance/backup_import.c: an instance restored from a backup tarball (see
 * backup_import.h). The volume is made and filled first, then the rows are written in one
 * transaction; a failure on the way removes the volume, as creations from an image do. */
#define LOG_CATEGORY "backup-import"
#include "daemon/instance/backup_import.h"

#include <dirent.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/config_keys.h"
#include "daemon/db/db.h"
#include "daemon/events.h"
#include "daemon/instance/backup_archive.h"
#include "daemon/instance/backup_receive.h"
#include "daemon/instance/common.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/instance.h"
#include "daemon/project/limits.h"
#include "daemon/runtime/idmap.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"
#include "storage/driver.h"

#define MAX_MEMBERS (4u << 20)

struct backup_import {
	struct berth_daemon *d;	    /* borrowed */
	char *project;		    /* owned */
	char *name;		    /* owned: the name it gets */
	char *pool_name;	    /* owned: the pool of its root volume */
	int fd;			    /* owned: the upload */
	uint64_t size;		    /* of the upload */
	struct backup_index *index; /* owned */
	json_t *object;		    /* owned: the instance row, once built */
	json_t *snapshots;	    /* owned: the snapshot rows, once built */
	json_t *config;		    /* owned: the backup config the rows come from */
	struct operation *op;	    /* borrowed while running */
	int last_pct;
};

void backup_import_free(void *p)
{
	struct backup_import *imp = p;

	if (!imp)
		return;
	free(imp->project);
	free(imp->name);
	free(imp->pool_name);
	if (imp->fd >= 0)
		close(imp->fd);
	backup_index_free(imp->index);
	json_decref(imp->object);
	json_decref(imp->snapshots);
	json_decref(imp->config);
	free(imp);
}

static void backup_import_freep(struct backup_import **imp)
{
	backup_import_free(*imp);
}

const char *backup_import_name(const struct backup_import *imp)
{
	return imp->name;
}

static int open_pool(struct berth_daemon *d, const char *name, struct storage_pool **ret,
		     struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(d->db, name, &p, err);

	return r < 0 ? r : storage_pool_new(d->dir, p, ret, err);
}

/* ---- the rows ---- */

/* The pool of the root disk device of `devices` (a map of devices), or NULL. */
static const char *root_disk_pool(const json_t *devices, const char **ret_name)
{
	const char *dname, *pool = NULL;
	json_t *dev;

	json_object_foreach((json_t *)devices, dname, dev)
		if (streq(berth_json_string(dev, "type") ?: "", "disk") &&
		    streq(berth_json_string(dev, "path") ?: "", "/")) {
			pool = berth_json_string(dev, "pool") ?: "";
			if (ret_name)
				*ret_name = dname;
		}
	return pool;
}

/* The root disk on `pool`: the instance's own root device points at it, or, when its
 * profiles give it one on another pool (or none), it gets a local "root" device. */
static int root_device_set(json_t *obj, const json_t *profiles, const char *pool)
{
	json_t *devices = json_object_get(obj, "devices"), *p;
	const char *dname = NULL, *from = NULL;
	size_t i;

	if (root_disk_pool(devices, &dname))
		return json_object_set_new(json_object_get(devices, dname), "pool",
					   json_string(pool));
	json_array_foreach(json_object_get(obj, "profiles"), i, p) {
		const json_t *prof = json_object_get(profiles, json_string_value(p));
		const char *pp = root_disk_pool(json_object_get(prof, "devices"), NULL);
		if (pp)
			from = pp;
	}
	if (from && streq(from, pool))
		return 0;
	return json_object_set_new(devices, "root",
				   json_pack("{s:s, s:s, s:s}", "type", "disk", "path", "/", "pool",
					     pool));
}

/* volatile.* keys are the exporting server's: only those that describe the instance
 * itself (its base image, the MAC addresses of its NICs) are kept; id maps, last states
 * and host-side names are made again at the next start. */
static json_t *config_filtered(const json_t *config)
{
	json_t *out = json_object(), *v;
	const char *k;

	json_object_foreach((json_t *)config, k, v)
		if (!berth_startswith(k, "volatile.") || streq(k, "volatile.base_image") ||
		    berth_endswith(k, ".hwaddr"))
			json_object_set(out, k, v);
	return out;
}

static json_t *map_copy(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_object(v) ? json_deep_copy(v) : json_object();
}

/* The instance row from backup config `c` ("container": an api.Instance). */
static int build_object(struct backup_import *imp, const json_t *c, const json_t *profiles,
			struct berth_error *err)
{
	json_t *inst = json_object_get(c, "container");
	json_t *prof = json_object_get(inst, "profiles");
	const char *arch = berth_json_string(inst, "architecture");
	json_t *archs = json_object_get(imp->d->environment, "architectures"), *a;
	json_auto_t *defp = json_pack("[s]", "default");
	bool known = false;
	size_t i;

	if (!json_is_object(inst))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup holds no instance config (index.yaml's config or "
				       "backup/container/backup.yaml)");
	json_array_foreach(archs, i, a)
		known |= arch && streq(json_string_value(a), arch);
	if (arch && *arch && !known)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Architecture \"%s\" is not supported by this host", arch);
	json_decref(imp->object);
	imp->object =
		json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:O, s:b, s:b}", "name", imp->name,
			  "type", imp->index->type, "architecture",
			  arch && *arch ? json_string(arch) : json_incref(json_array_get(archs, 0)),
			  "description", berth_json_string(inst, "description") ?: "", "config",
			  config_filtered(json_object_get(inst, "config")), "devices",
			  map_copy(inst, "devices"), "profiles", json_is_array(prof) ? prof : defp,
			  "ephemeral", berth_json_bool(inst, "ephemeral", false), "stateful", 0);
	if (!imp->object || root_device_set(imp->object, profiles, imp->pool_name) < 0)
		return -ENOMEM;
	return 0;
}

/* A snapshot row: what the backup config says of it, the instance's config where it
 * says nothing. Never stateful (no CRIU state is restored). */
static json_t *snapshot_row(const struct backup_import *imp, const json_t *c, const char *name)
{
	const json_t *s = backup_config_snapshot(c, name);
	const json_t *base = s ? s : imp->object;
	const char *created = berth_json_string(s, "created_at");
	const char *expires = berth_json_string(s, "expires_at");
	json_t *row = json_pack("{s:s, s:s, s:b, s:o, s:o}", "name", name, "description",
				berth_json_string(s, "description") ?: "", "stateful", 0, "config",
				config_filtered(json_object_get(base, "config")), "devices",
				map_copy(base, "devices"));
	const char *dname = NULL;

	if (!row)
		return NULL;
	if (created && *created)
		json_object_set_new(row, "created_at", json_string(created));
	if (expires && *expires)
		json_object_set_new(row, "expires_at", json_string(expires));
	if (root_disk_pool(json_object_get(row, "devices"), &dname))
		json_object_set_new(json_object_get(json_object_get(row, "devices"), dname), "pool",
				    json_string(imp->pool_name));
	return row;
}

static int build_snapshots(struct backup_import *imp, const json_t *c)
{
	json_t *n;
	size_t i;

	json_decref(imp->snapshots);
	imp->snapshots = json_array();
	if (!imp->snapshots)
		return -ENOMEM;
	json_array_foreach(imp->index->snapshots, i, n)
		if (json_array_append_new(imp->snapshots,
					  snapshot_row(imp, c, json_string_value(n))) < 0)
			return -ENOMEM;
	return 0;
}

/* The rows from config `c`, and what LXD checks of them: profiles that exist, a name not
 * in use, the project's limits. */
static int build_rows(struct backup_import *imp, const json_t *c, struct berth_error *err)
{
	json_auto_t *profiles = NULL, *existing = NULL;
	json_t *p;
	size_t i;
	int r = instance_expand_profiles(imp->d->db, imp->project, &profiles, err);

	json_decref(imp->config);
	imp->config = json_incref((json_t *)c);
	if (r >= 0)
		r = build_object(imp, c, profiles, err);
	if (r >= 0)
		r = build_snapshots(imp, c);
	if (r >= 0)
		r = config_check_all(CONFIG_INSTANCE, json_object_get(imp->object, "config"), err);
	if (r >= 0)
		r = config_check_devices(json_object_get(imp->object, "devices"), err);
	if (r < 0)
		return r;
	json_array_foreach(json_object_get(imp->object, "profiles"), i, p)
		if (!json_object_get(profiles, json_string_value(p)))
			return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
					       "Failed importing backup: Requested profile \"%s\" "
					       "doesn't exist",
					       json_string_value(p));
	r = db_instance_get(imp->d->db, imp->project, imp->name, &existing, err);
	if (r == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Instance \"%s\" already exists", imp->name);
	if (r != -ENOENT)
		return r;
	berth_error_release(err);
	return project_limits_check_instance(imp->d->db, imp->project, imp->object, true, err);
}

/* ---- prepare (in the request) ---- */

/* The pool named by the request, else the backup's when it exists here, else (not for an
 * optimized backup, whose streams are its driver's) the default profile's root pool. */
static int choose_pool(struct backup_import *imp, const char *pool, struct berth_error *err)
{
	json_auto_t *obj = NULL, *profiles = NULL;
	const char *name = pool && *pool ? pool : imp->index->pool;
	const char *def;
	int r = db_pool_get(imp->d->db, name, &obj, err);

	if (r == -ENOENT && (imp->index->optimized || (pool && *pool)))
		return berth_error_set(err, r, BERTH_ERR_NOT_FOUND, "Storage pool not found: %s",
				       name);
	if (r != -ENOENT) {
		imp->pool_name = r < 0 ? NULL : strdup(name);
		return r < 0 ? r : imp->pool_name ? 0 : -ENOMEM;
	}
	berth_error_release(err);
	r = instance_expand_profiles(imp->d->db, imp->project, &profiles, err);
	if (r < 0)
		return r;
	def = root_disk_pool(json_object_get(json_object_get(profiles, "default"), "devices"),
			     NULL);
	if (!def || !*def)
		return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
				       "Failed to get root disk device: the backup's pool \"%s\" "
				       "does not exist and the default profile has none",
				       name);
	imp->pool_name = strdup(def);
	return imp->pool_name ? 0 : -ENOMEM;
}

/* An optimized backup is its driver's own streams: only a pool of that driver takes it,
 * and berth reads btrfs ones only. */
static int optimized_check(struct backup_import *imp, struct berth_error *err)
{
	json_auto_t *pool = NULL;
	const char *driver;
	int r;

	if (!imp->index->optimized)
		return 0;
	r = db_pool_get(imp->d->db, imp->pool_name, &pool, err);
	if (r < 0)
		return r;
	driver = berth_json_string(pool, "driver") ?: "";
	if (!streq(driver, imp->index->backend))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Optimized backup storage driver \"%s\" differs from the "
				       "target storage pool driver \"%s\"",
				       imp->index->backend, driver);
	if (!streq(driver, "btrfs"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Optimized backups of driver \"%s\" cannot be imported "
				       "(btrfs ones can)",
				       driver);
	return 0;
}

/* Free bytes on the pool, for the limits of the import. */
static int pool_free(struct storage_pool *pool, uint64_t *ret, struct berth_error *err)
{
	uint64_t used = 0, total = 0;
	int r = pool->driver->pool_usage(pool, &used, &total, err);

	if (r < 0)
		return r;
	*ret = total > used ? total - used : 0;
	return 0;
}

static int upload_fits(struct backup_import *imp, struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	uint64_t free_bytes = 0;
	int r = open_pool(imp->d, imp->pool_name, &pool, err);

	if (r >= 0)
		r = pool_free(pool, &free_bytes, err);
	if (r < 0)
		return r;
	if (imp->size > free_bytes)
		return berth_error_set(err, -EFBIG, BERTH_ERR_BAD_REQUEST,
				       "The backup (%" PRIu64 " bytes) is larger than the free "
				       "space of storage pool \"%s\" (%" PRIu64 " bytes)",
				       imp->size, imp->pool_name, free_bytes);
	return 0;
}

int backup_import_prepare(struct berth_daemon *d, const char *project, int fd, const char *pool,
			  const char *name, struct backup_import **ret, struct berth_error *err)
{
	_cleanup_(backup_import_freep) struct backup_import *imp = calloc(1, sizeof(*imp));
	const struct instance_driver *drv;
	struct stat st;
	int r;

	if (!imp) {
		close(fd);
		return -ENOMEM;
	}
	imp->fd = fd;
	imp->d = d;
	imp->last_pct = -1;
	imp->project = strdup(project);
	if (!imp->project)
		return -ENOMEM;
	if (fstat(fd, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Backup upload: %m");
	imp->size = (uint64_t)st.st_size;
	r = backup_read_index(fd, &imp->index, err);
	if (r < 0)
		return r;
	imp->name = strdup(name && *name ? name : imp->index->name);
	if (!imp->name)
		return -ENOMEM;
	r = berth_name_check_instance(imp->name, err);
	/* a VM this host could never start is refused, as its creation is */
	if (r >= 0)
		r = instance_driver_get(imp->index->type, imp->name, &drv, err);
	if (r >= 0)
		r = choose_pool(imp, pool, err);
	if (r >= 0)
		r = optimized_check(imp, err);
	if (r >= 0)
		r = upload_fits(imp, err);
	if (r >= 0 && imp->index->config)
		r = build_rows(imp, imp->index->config, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(imp);
	return 0;
}

/* ---- run (the operation) ---- */

static void progress_cb(uint64_t done, void *data)
{
	struct backup_import *imp = data;
	int pct = imp->size ? (int)(done * 100 / imp->size) : 0;
	_cleanup_free_ char *text = NULL;

	if (pct > 100)
		pct = 100;
	if (pct == imp->last_pct || !imp->op)
		return;
	imp->last_pct = pct;
	text = berth_strdup_printf("Restoring: %d%%", pct);
	if (text)
		operation_set_metadata(imp->op,
				       json_pack("{s:s}", "create_instance_from_backup_progress",
						 text));
}

/* The exporter's on-disk shift of a tree: the volatile.last_state.idmap of snapshot
 * `snap`'s config (NULL, or a snapshot without one: the instance's). LXD records there the
 * map its container's files were shifted to on disk, and writes them so into the tarball.
 * *ret is the shift back to berth's unshifted ids; 0 when there is none. */
static int exporter_shift(const struct backup_import *imp, const char *snap,
			  struct runtime_idmap_shift *ret)
{
	const json_t *cfg = json_object_get(json_object_get(imp->config, "container"), "config");
	const json_t *sc = snap ? json_object_get(backup_config_snapshot(imp->config, snap),
						  "config")
				: NULL;
	const char *map = berth_json_string(sc, "volatile.last_state.idmap");
	json_auto_t *j = NULL;
	json_t *e;
	size_t i;

	if (!map)
		map = berth_json_string(cfg, "volatile.last_state.idmap");
	*ret = (struct runtime_idmap_shift){0};
	j = map ? json_loads(map, 0, NULL) : NULL;
	json_array_foreach(j, i, e) {
		json_int_t host = json_integer_value(json_object_get(e, "Hostid"));
		json_int_t range = json_integer_value(json_object_get(e, "Maprange"));

		if (json_integer_value(json_object_get(e, "Nsid")) != 0 || host <= 0 ||
		    host > UINT32_MAX || range <= 0 || range > UINT32_MAX)
			continue;
		if (json_is_true(json_object_get(e, "Isuid")))
			ret->from_uid = (uint32_t)host;
		if (json_is_true(json_object_get(e, "Isgid")))
			ret->from_gid = (uint32_t)host;
		if (!ret->count || (uint32_t)range < ret->count)
			ret->count = (uint32_t)range;
	}
	return ret->count && (ret->from_uid || ret->from_gid);
}

/* Shift the tree at `path` (of snapshot `snap`, NULL: the instance) back from the
 * exporter's map, so that the volume holds container ids as berth's do. */
static int unshift(const struct backup_import *imp, const char *snap, const char *path,
		   struct berth_error *err)
{
	struct runtime_idmap_shift sh;
	int r;

	if (!exporter_shift(imp, snap, &sh))
		return 0;
	r = runtime_idmap_shift_path(path, &sh, err);
	return r < 0 ? berth_error_wrap(err, r,
					"Shifting the backup's files back from its "
					"exporter's id map")
		     : 0;
}

/* The same for a read-only btrfs snapshot: writable for the while (forced: a snapshot of
 * a received subvolume carries its received_uuid, which btrfs then drops; nothing is
 * received against these snapshots any more). */
static int unshift_ro(const struct backup_import *imp, const char *snap, const char *path,
		      struct berth_error *err)
{
	const char *rw[] = {"btrfs", "property", "set", "-f", "-ts", path, "ro", "false", NULL};
	const char *ro[] = {"btrfs", "property", "set", "-ts", path, "ro", "true", NULL};
	struct runtime_idmap_shift sh;
	int r;

	if (!exporter_shift(imp, snap, &sh))
		return 0;
	r = storage_run(rw, err);
	if (r >= 0)
		r = unshift(imp, snap, path, err);
	if (storage_run(ro, r < 0 ? NULL : err) < 0 && r >= 0)
		r = -EIO;
	return r;
}

/* After an optimized restore: the instance, then each snapshot. */
static int unshift_received(struct backup_import *imp, struct storage_pool *pool,
			    const struct storage_vol *vol, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	json_t *n;
	size_t i;
	int r = storage_volume_path(pool, vol, NULL, &path);

	if (r >= 0)
		r = unshift(imp, NULL, path, err);
	json_array_foreach(imp->index->snapshots, i, n) {
		_cleanup_free_ char *sp = NULL;

		if (r < 0)
			return r;
		r = storage_volume_path(pool, vol, json_string_value(n), &sp);
		if (r >= 0)
			r = unshift_ro(imp, json_string_value(n), sp, err);
	}
	return r;
}

/* The directories a plain restore writes: the volume's, and one empty snapshot of it per
 * snapshot of the backup. */
struct trees {
	int container;
	int *snaps;
	size_t n;
};

static void trees_release(struct trees *t)
{
	if (t->container >= 0)
		close(t->container);
	for (size_t i = 0; i < t->n; i++)
		if (t->snaps[i] >= 0)
			close(t->snaps[i]);
	free(t->snaps);
}

static int open_dir(struct storage_pool *pool, const struct storage_vol *vol, const char *snap,
		    int *ret, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (storage_volume_path(pool, vol, snap, &path) < 0)
		return -ENOMEM;
	*ret = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*ret < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening \"%s\": %m", path);
	return 0;
}

static int trees_make(struct backup_import *imp, struct storage_pool *pool,
		      const struct storage_vol *vol, struct trees *t, struct berth_error *err)
{
	size_t n = json_array_size(imp->index->snapshots);
	json_t *s;
	size_t i;
	int r = open_dir(pool, vol, NULL, &t->container, err);

	t->snaps = calloc(n ?: 1, sizeof(*t->snaps));
	if (r < 0 || !t->snaps)
		return r < 0 ? r : -ENOMEM;
	json_array_foreach(imp->index->snapshots, i, s) {
		t->snaps[t->n++] = -1;
		r = pool->driver->volume_snapshot_empty(pool, vol, json_string_value(s), err);
		if (r >= 0)
			r = open_dir(pool, vol, json_string_value(s), &t->snaps[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Back from the exporter's shift, then read-only: each empty snapshot filled, then the
 * instance. */
static int trees_finish(struct backup_import *imp, struct storage_pool *pool,
			const struct storage_vol *vol, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	json_t *n;
	size_t i;
	int r = 0;

	json_array_foreach(imp->index->snapshots, i, n) {
		const char *snap = json_string_value(n);
		_cleanup_free_ char *sp = NULL;

		if (!pool->driver->volume_snapshot_empty)
			break; /* a chain: each done as it was snapshotted */
		r = storage_volume_path(pool, vol, snap, &sp);
		if (r >= 0)
			r = unshift(imp, snap, sp, err);
		if (r >= 0)
			r = pool->driver->volume_snapshot_seal(pool, vol, snap, err);
		if (r < 0)
			return r;
	}
	r = storage_volume_path(pool, vol, NULL, &path);
	return r < 0 ? r : unshift(imp, NULL, path, err);
}

/* The empty snapshots filled in one pass. */
static int trees_fill(struct backup_import *imp, struct storage_pool *pool, const struct trees *t,
		      const struct backup_limits *lim, struct backup_scan **ret,
		      struct berth_error *err)
{
	struct backup_dest dest = {.index = imp->index,
				   .container_fd = t->container,
				   .snap_fds = t->snaps,
				   .progress = progress_cb,
				   .data = imp,
				   .cancel = pool->cancel};

	return backup_restore(imp->fd, lim, &dest, ret, err);
}

/* Empty the directory `path` (the volume between two snapshots). */
static int dir_clear(const char *path, struct berth_error *err)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	int r = 0;

	if (!dir)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening \"%s\": %m", path);
	while (r >= 0 && (de = readdir(dir))) {
		_cleanup_free_ char *p = NULL;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		p = berth_strdup_printf("%s/%s", path, de->d_name);
		r = p ? storage_remove_tree(p, err) : -ENOMEM;
	}
	closedir(dir);
	return r;
}

/* A chain (a pool without volume_snapshot_empty): each snapshot's tree written into the
 * volume, then snapshotted, the volume emptied for the next; the instance's last. On
 * btrfs a file alike in the snapshot just taken shares its extents (a reflink), as the
 * snapshots' did where the backup was made: the restored snapshots take the room of
 * their differences only, and their optimized backups (btrfs send against the snapshot
 * before) stay incremental. */
struct chain {
	struct backup_import *imp;
	struct storage_pool *pool;
	const struct storage_vol *vol;
	const char *path; /* the volume's */
	bool share;
	int last; /* the directory of the snapshot taken last, or -1 */
};

static void chain_release(struct chain *c)
{
	if (c->last >= 0)
		close(c->last);
	c->last = -1;
}

static void chain_progress(uint64_t done, void *data)
{
	progress_cb(done, ((struct chain *)data)->imp);
}

/* The volume holds snapshot `snap`'s tree, whole. */
static int chain_next(const char *snap, void *data, struct berth_error *err)
{
	struct chain *c = data;
	int r = unshift(c->imp, snap, c->path, err);

	if (r >= 0)
		r = c->pool->driver->volume_snapshot(c->pool, c->vol, snap, err);
	if (r >= 0 && c->share) {
		chain_release(c);
		r = open_dir(c->pool, c->vol, snap, &c->last, err);
	}
	log_debug("Restored snapshot \"%s\"'s tree", snap);
	return r < 0 ? r : dir_clear(c->path, err);
}

/* The chain in one pass; *ret what it found. -ESPIPE: the trees are out of order. */
static int chain_fill(struct chain *c, int fd, const struct backup_limits *lim,
		      struct backup_scan **ret, struct berth_error *err)
{
	struct backup_dest dest = {.index = c->imp->index,
				   .container_fd = fd,
				   .tree_done = chain_next,
				   .share_fd = &c->last,
				   .progress = chain_progress,
				   .data = c,
				   .cancel = c->pool->cancel};

	return backup_restore(c->imp->fd, lim, &dest, ret, err);
}

/* The chain for a tarball whose trees are out of order: one pass per tree, into a new
 * volume. */
static int chain_fill_per_tree(struct chain *c, int *fd, const struct backup_limits *lim,
			       struct backup_scan **ret, struct berth_error *err)
{
	const json_t *snaps = c->imp->index->snapshots;
	size_t n = json_array_size(snaps);
	int r;

	chain_release(c);
	c->pool->driver->volume_delete(c->pool, c->vol, NULL);
	close(*fd);
	*fd = -1;
	r = c->pool->driver->volume_create(c->pool, c->vol, 0, err);
	if (r >= 0)
		r = open_dir(c->pool, c->vol, NULL, fd, err);
	for (size_t k = 0; r >= 0 && k <= n; k++) {
		struct backup_dest dest = {.index = c->imp->index,
					   .container_fd = *fd,
					   .only = k + 1,
					   .share_fd = &c->last,
					   .progress = chain_progress,
					   .data = c,
					   .cancel = c->pool->cancel};

		backup_scan_free(*ret);
		*ret = NULL;
		r = backup_restore(c->imp->fd, lim, &dest, ret, err);
		if (r >= 0 && k < n)
			r = chain_next(json_string_value(json_array_get(snaps, k)), c, err);
	}
	return r;
}

/* One pass over the tarball: each member written into its tree as it comes, checked as
 * backup_scan checks it (the instance's into the volume, each snapshot's into its own
 * empty snapshot; or as a chain); then the rows from the backup's config. */
static int fill_plain(struct backup_import *imp, struct storage_pool *pool,
		      const struct storage_vol *vol, struct berth_error *err)
{
	_cleanup_(trees_release) struct trees t = {.container = -1};
	_cleanup_(backup_scan_freep) struct backup_scan *s = NULL;
	_cleanup_free_ char *path = NULL;
	struct backup_limits lim = {.max_members = MAX_MEMBERS};
	_cleanup_(chain_release) struct chain c = {
		.imp = imp,
		.pool = pool,
		.vol = vol,
		.share = streq(pool->driver->name, "btrfs"),
		.last = -1,
	};
	int r = pool_free(pool, &lim.max_bytes, err);

	if (r >= 0 && !pool->driver->volume_snapshot_empty) {
		r = storage_volume_path(pool, vol, NULL, &path);
		c.path = path;
		if (r >= 0)
			r = open_dir(pool, vol, NULL, &t.container, err);
		if (r >= 0)
			r = chain_fill(&c, t.container, &lim, &s, err);
		if (r == -ESPIPE) {
			berth_error_release(err);
			r = chain_fill_per_tree(&c, &t.container, &lim, &s, err);
		}
	} else if (r >= 0) {
		r = trees_make(imp, pool, vol, &t, err);
		if (r >= 0)
			r = trees_fill(imp, pool, &t, &lim, &s, err);
	}
	/* the index read in the request is the one the pass found (the first) */
	if (r >= 0)
		r = build_rows(imp, imp->index->config ?: s->config, err);
	return r < 0 ? r : trees_finish(imp, pool, vol, err);
}

/* An optimized backup: its streams received in one pass, then the rows from its
 * config. */
static int fill_received(struct backup_import *imp, struct storage_pool *pool,
			 const struct storage_vol *vol, struct berth_error *err)
{
	_cleanup_(backup_scan_freep) struct backup_scan *s = NULL;
	struct backup_limits lim = {.max_members = MAX_MEMBERS};
	int r = pool_free(pool, &lim.max_bytes, err);

	if (r >= 0)
		r = backup_receive_btrfs(imp->fd, pool, vol, imp->index, &lim, progress_cb, imp, &s,
					 err);
	if (r >= 0)
		r = build_rows(imp, imp->index->config ?: s->config, err);
	return r < 0 ? r : unshift_received(imp, pool, vol, err);
}

static int fill_volume(struct backup_import *imp, struct storage_pool *pool,
		       const struct storage_vol *vol, struct berth_error *err)
{
	int r;

	if (imp->index->optimized) {
		r = fill_received(imp, pool, vol, err);
		if (r < 0)
			pool->driver->volume_delete(pool, vol, NULL);
		return r;
	}
	r = pool->driver->volume_create(pool, vol, 0, err);
	if (r < 0)
		return r;
	r = fill_plain(imp, pool, vol, err);
	if (r < 0)
		pool->driver->volume_delete(pool, vol, NULL);
	return r;
}

int backup_import_run(struct operation *op, void *data, struct berth_error *err)
{
	struct backup_import *imp = data;
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *disk = storage_vol_disk_name(imp->project, imp->name);
	_cleanup_free_ char *url = instance_url(imp->project, imp->name);
	struct storage_vol vol = {streq(imp->index->type, "virtual-machine")
					  ? STORAGE_VOL_VM
					  : STORAGE_VOL_CONTAINER,
				  disk};
	int r;

	if (!disk || !url)
		return -ENOMEM;
	r = open_pool(imp->d, imp->pool_name, &pool, err);
	if (r < 0)
		return r;
	pool->cancel = operation_cancel_flag(op);
	imp->op = op;
	log_debug("Restoring \"%s\" onto pool \"%s\"", imp->name, pool->name);
	r = fill_volume(imp, pool, &vol, err);
	imp->op = NULL;
	if (r < 0)
		return r;
	log_debug("Restored \"%s\"'s volume", imp->name);
	berth_test_pause("backup-import-after-disk");
	r = db_instance_create_with_volume(imp->d->db, imp->project, imp->object, pool->name,
					   imp->snapshots, err);
	if (r < 0) {
		pool->driver->volume_delete(pool, &vol, NULL);
		return r;
	}
	events_lifecycle(imp->d->events, imp->project, "instance-created", url, NULL);
	return 0;
}
