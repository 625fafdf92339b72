/* daemon/instance/instance.c: what instances do, whatever their type (see instance.h):
 * creation (empty, from an image, as a copy), update with live apply, restore, rename,
 * delete and state changes. What differs by type goes through the instance's driver
 * (driver.h).
 *
 * An instance made from an image or a copy has a root volume (containers/<project>_<name>
 * on the pool its root disk device names) and a volume row recorded with the instance row
 * in one transaction. Disk work comes first on the way in (clone, templates, then rows) and
 * last on the way out (rows, then disk): a berthd killed in between leaves a volume
 * without a row, which the start-up reconciliation (daemon/storage/pools.c) removes,
 * never a row without its volume. */
#define LOG_CATEGORY "instance"
#include "daemon/instance/instance.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/events.h"
#include "daemon/image_cache.h"
#include "daemon/instance/backup.h"
#include "daemon/instance/cleanup.h"
#include "daemon/instance/common.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/rootfs.h"
#include "daemon/vm/params.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/util.h"
#include "storage/driver.h"

/* ---- state ---- */

/* The state of an instance that is not running (no runtime yet: every record is). */
static json_t *stopped_state(const json_t *inst)
{
	return json_pack("{s:O, s:O, s:{}, s:{s:i, s:i, s:i, s:i}, s:n, s:i, s:i, s:{s:i}}",
			 "status", json_object_get(inst, "status"), "status_code",
			 json_object_get(inst, "status_code"), "disk", "memory", "usage", 0,
			 "usage_peak", 0, "swap_usage", 0, "swap_usage_peak", 0, "network", "pid",
			 0, "processes", 0, "cpu", "usage", 0);
}

/* The state: read from the monitor and cgroups unless the record says Stopped. */
json_t *instance_state(struct berth_daemon *d, const char *project, const json_t *inst)
{
	const char *status = berth_json_string(inst, "status");
	const struct instance_driver *drv = NULL;

	if ((status && streq(status, "Stopped")) || instance_driver_of(inst, &drv, NULL) < 0)
		return stopped_state(inst);
	return drv->state(d, project, berth_json_string(inst, "name"));
}

/* ---- checks ---- */

int instance_check_profiles(struct db *db, const char *project, const json_t *profiles,
			    struct berth_error *err)
{
	json_auto_t *map = NULL;
	json_t *n;
	size_t i;
	int r = instance_expand_profiles(db, project, &map, err);

	if (r < 0)
		return r;
	json_array_foreach(profiles, i, n)
		if (!json_object_get(map, json_string_value(n)))
			return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
					       "Profile \"%s\" doesn't exist",
					       json_string_value(n));
	return 0;
}

static bool job_running(const struct instance_job *j)
{
	return j->drv && j->drv->power(j->d, j->project, j->name, NULL) != INSTANCE_STOPPED;
}

int instance_create_check(const struct instance_job *j, struct berth_error *err)
{
	json_auto_t *existing = NULL;
	int r = instance_check_profiles(j->d->db, j->project,
					json_object_get(j->object, "profiles"), err);

	if (r < 0)
		return r;
	r = db_instance_get(j->d->db, j->project, j->name, &existing, err);
	if (r == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Instance \"%s\" already exists", j->name);
	if (r != -ENOENT)
		return r;
	berth_error_release(err);
	return 0;
}

/* 0 when the job's instance is stopped; the driver's error when its monitor does not
 * answer; 1 when it runs. */
static int job_stopped_check(const struct instance_job *j, struct berth_error *err)
{
	enum instance_power p;

	if (!j->drv)
		return 0;
	p = j->drv->power(j->d, j->project, j->name, NULL);
	if (p == INSTANCE_UNRESPONSIVE)
		return j->drv->unresponsive_error(j->name, err);
	return p != INSTANCE_STOPPED;
}

int instance_rename_check(const struct instance_job *j, struct berth_error *err)
{
	json_auto_t *other = NULL;
	int r = job_stopped_check(j, err);

	if (r < 0)
		return r;
	if (r > 0)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Renaming of running instance not allowed");
	r = db_instance_get(j->d->db, j->project, j->new_name, &other, err);
	if (r == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Name \"%s\" already in use", j->new_name);
	berth_error_release(err);
	return 0;
}

int instance_delete_check(const struct instance_job *j, const json_t *inst, struct berth_error *err)
{
	const char *prot;
	int r = job_stopped_check(j, err);

	if (r < 0)
		return r;
	if (r > 0)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "The instance \"%s\" is currently running, stop it first "
				       "or use --force",
				       j->name);
	prot = berth_json_string(json_object_get(inst, "config"), "security.protection.delete");
	if (prot && (streq(prot, "true") || streq(prot, "1")))
		return berth_error_set(err, -EPERM, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" is protected "
				       "(security.protection.delete)",
				       j->name);
	return 0;
}

/* ---- operations ---- */

void instance_job_free(void *p)
{
	struct instance_job *j = p;

	if (!j)
		return;
	free(j->project);
	free(j->name);
	free(j->new_name);
	json_decref(j->object);
	free(j->fingerprint);
	free(j->pool_name);
	free(j->src_name);
	free(j->src_snap);
	free(j->restore);
	free(j->notice);
	free(j->action);
	json_decref(j->snapshots);
	json_decref(j->pull_source);
	json_decref(j->migration);
	instance_volume_release(&j->v);
	free(j);
}

struct instance_job *instance_job_new(struct berth_daemon *d, const char *project, const char *name,
				      const struct instance_driver *drv)
{
	struct instance_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->d = d;
	j->drv = drv;
	j->project = strdup(project);
	j->name = strdup(name);
	j->last_pct = -1;
	if (!j->project || !j->name) {
		instance_job_free(j);
		return NULL;
	}
	return j;
}

static void lifecycle(struct instance_job *j, const char *action, const char *name, json_t *context)
{
	_cleanup_free_ char *url = instance_url(j->project, name);

	events_lifecycle(j->d->events, j->project, action, url, context);
}

int instance_create_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	int r = db_instance_create(j->d->db, j->project, j->object, err);

	if (r < 0)
		return r;
	lifecycle(j, "instance-created", j->name, NULL);
	return 0;
}

/* Store the update; on a running instance, apply the limits that changed, then the
 * devices, then those served from outside (and put the old record, limits and devices
 * back when one fails); drop the leases of NICs that went. */
int instance_update_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	json_auto_t *stored = NULL, *before = NULL, *after = NULL;
	bool running = job_running(j);
	int r = db_instance_get(j->d->db, j->project, j->name, &stored, err);

	if (r >= 0)
		r = instance_expand_load(j->d->db, j->project, j->name, &before, err);
	if (r >= 0)
		r = db_instance_update(j->d->db, j->project, j->name, j->object, err);
	if (r >= 0)
		r = instance_expand_load(j->d->db, j->project, j->name, &after, err);
	if (r < 0)
		return r;
	if (running) {
		r = j->drv->update_limits(j->d, j->project, before, after, err);
		if (r < 0) {
			db_instance_update(j->d->db, j->project, j->name, stored, NULL);
			return r;
		}
		r = j->drv->update_devices(j->d, j->project, before, after, err);
		if (r < 0) {
			j->drv->update_limits(j->d, j->project, after, before, NULL);
			db_instance_update(j->d->db, j->project, j->name, stored, NULL);
			return r;
		}
	}
	r = j->drv ? j->drv->update_outside(j->d, j->project, j->name, err) : 0;
	if (r < 0) {
		if (running) {
			j->drv->update_devices(j->d, j->project, after, before, NULL);
			j->drv->update_limits(j->d, j->project, after, before, NULL);
		}
		if (db_instance_update(j->d->db, j->project, j->name, stored, NULL) >= 0)
			j->drv->update_outside(j->d, j->project, j->name, NULL);
		return r;
	}
	if (!running && j->drv)
		j->drv->devices_release(j->d, j->project, before, after);
	r = j->drv ? j->drv->devices_forget(j->d->db, j->project, before, after, err) : 0;
	if (r < 0)
		return r;
	if (running)
		j->notice = j->drv->next_start_notice(j->d, j->project, before, after);
	if (j->notice && op)
		operation_set_metadata(op, json_pack("{s:s}", "warning", j->notice));
	lifecycle(j, "instance-updated", j->name, NULL);
	return 0;
}

/* volatile.* keys are the server's: an update that does not mention one keeps it. */
void instance_keep_volatile(const json_t *cur, json_t *next)
{
	json_t *ncfg = json_object_get(next, "config");
	const char *key;
	json_t *v;

	json_object_foreach(json_object_get(cur, "config"), key, v)
		if (ncfg && berth_startswith(key, "volatile.") && !json_object_get(ncfg, key))
			json_object_set(ncfg, key, v);
}

static int rename_hook(void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	_cleanup_free_ char *to = storage_vol_disk_name(j->project, j->new_name);
	int r;

	if (!j->v.pool)
		return 0;
	if (!to)
		return -ENOMEM;
	r = j->v.pool->driver->volume_rename(j->v.pool, &j->v.vol, to, err);
	j->done = r >= 0;
	return r;
}

int instance_rename_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	int r = db_instance_rename(j->d->db, j->project, j->name, j->new_name, rename_hook, j, err);

	if (r < 0 && j->done) { /* the commit failed after the volume moved: move it back */
		_cleanup_free_ char *to = storage_vol_disk_name(j->project, j->new_name);
		struct storage_vol nv = {j->v.vol.type, to};

		if (to)
			j->v.pool->driver->volume_rename(j->v.pool, &nv, j->v.disk_name, NULL);
	}
	if (r < 0)
		return r;
	cleanup_logs_rename(j->d, j->project, j->name, j->new_name);
	/* Its backups follow it, as LXD's. */
	if (backup_instance_renamed(j->d, j->project, j->name, j->new_name, err) < 0) {
		log_warn("Instance \"%s\": %s, ignoring", j->new_name, berth_error_msg(err, -EIO));
		berth_error_release(err);
	}
	lifecycle(j, "instance-renamed", j->new_name, json_pack("{s:s}", "old_name", j->name));
	return 0;
}

int instance_delete_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	json_auto_t *before = NULL;
	int r;

	if (instance_expand_load(j->d->db, j->project, j->name, &before, NULL) < 0)
		before = NULL;
	/* Stopped, and the name is still ours: nothing of a new instance of that name can be
	 * in its run directory or cgroup yet. */
	cleanup_instance(j->d, j->project, j->name);
	r = db_instance_delete(j->d->db, j->project, j->name, err);
	if (r < 0)
		return r;
	if (before && j->drv)
		j->drv->devices_release(j->d, j->project, before, NULL);
	if (j->v.pool) {
		/* The volume and its snapshots; what fails here has no row any more and goes at
		 * the next start. */
		r = j->v.pool->driver->volume_delete(j->v.pool, &j->v.vol, err);
		if (r < 0)
			log_warn("Instance \"%s\": removing its volume: %s, ignoring", j->name,
				 berth_error_msg(err, r));
		berth_error_release(err);
	}
	backup_instance_deleted(j->d, j->project, j->name);
	lifecycle(j, "instance-deleted", j->name, NULL);
	return 0;
}

/* ---- root volumes: from an image, as a copy, restored ---- */

static void unpack_progress(uint64_t done, uint64_t total, void *data)
{
	struct instance_job *j = data;
	int pct = total ? (int)(done * 100 / total) : 0;
	_cleanup_free_ char *text = NULL;

	if (pct > 100)
		pct = 100;
	if (pct == j->last_pct || !j->op)
		return;
	j->last_pct = pct;
	text = berth_strdup_printf("Unpack: %d%%", pct);
	if (text)
		operation_set_metadata(j->op,
				       json_pack("{s:s}",
						 "create_instance_from_image_unpack_progress",
						 text));
}

static int open_pool(struct berth_daemon *d, const char *name, struct storage_pool **ret,
		     struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(d->db, name, &p, err);

	return r < 0 ? r : storage_pool_new(d->dir, p, ret, err);
}

/* The job's instance object with its profiles expanded and its name (new in *ret). */
static int job_expanded(struct instance_job *j, json_t **ret, struct berth_error *err)
{
	json_auto_t *profiles = NULL, *inst = json_deep_copy(j->object);
	int r = inst ? instance_expand_profiles(j->d->db, j->project, &profiles, err) : -ENOMEM;

	if (r >= 0)
		r = instance_expand(inst, profiles);
	if (r >= 0 && json_object_set_new(inst, "name", json_string(j->name)) < 0)
		r = -ENOMEM;
	if (r < 0)
		return r;
	*ret = TAKE_PTR(inst);
	return 0;
}

/* A VM's root.img grown to the root disk's size of `inst` (the job's expanded instance;
 * the start grows it too, when the size changed since). */
static int vm_root_grow(struct instance_job *j, const json_t *inst, struct storage_pool *pool,
			const struct storage_vol *vol, struct berth_error *err)
{
	_cleanup_free_ char *dir = NULL, *img = NULL;
	uint64_t size = 0;
	int r = vm_params_root_size(inst, &size, err);

	if (r >= 0 && storage_volume_path(pool, vol, NULL, &dir) < 0)
		r = -ENOMEM;
	if (r >= 0)
		img = berth_strdup_printf("%s/root.img", dir);
	if (r >= 0 && !img)
		r = -ENOMEM;
	return r < 0 ? r : vm_disk_grow(img, size, j->name, err);
}

static int pull_image(struct instance_job *j, struct operation *op, struct berth_error *err);

int instance_create_image_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *images = berth_strdup_printf("%s/images", j->d->dir);
	_cleanup_free_ char *disk = storage_vol_disk_name(j->project, j->name);
	struct storage_vol vol = {instance_volume_type(j->object), disk};
	json_auto_t *inst = NULL;
	int r;

	if (!images || !disk)
		return -ENOMEM;
	if (j->pull_source && !j->fingerprint) {
		r = pull_image(j, op, err);
		if (r < 0)
			return r;
	}
	r = open_pool(j->d, j->pool_name, &pool, err);
	if (r < 0)
		return r;
	pool->cancel = operation_cancel_flag(op);
	j->op = op;
	r = rootfs_image_volume(pool, images, j->fingerprint, unpack_progress, j, err);
	j->op = NULL;
	if (r < 0)
		return berth_error_wrap(err, r, "Unpacking image \"%.12s\" on pool \"%s\"",
					j->fingerprint, pool->name);
	r = job_expanded(j, &inst, err);
	if (r < 0)
		return r;
	r = rootfs_from_image(pool, j->fingerprint, vol.type, disk, inst, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Creating the root volume");
	if (vol.type == STORAGE_VOL_VM) {
		r = vm_root_grow(j, inst, pool, &vol, err);
		if (r < 0) {
			pool->driver->volume_delete(pool, &vol, NULL);
			return r;
		}
	}
	berth_test_pause("instance-create-after-disk");
	r = db_instance_create_with_volume(j->d->db, j->project, j->object, pool->name, NULL, err);
	if (r < 0) {
		pool->driver->volume_delete(pool, &vol, NULL);
		return r;
	}
	lifecycle(j, "instance-created", j->name, NULL);
	return 0;
}

int instance_copy_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	_cleanup_(instance_volume_release) struct instance_volume src = {0};
	_cleanup_free_ char *disk = storage_vol_disk_name(j->project, j->name);
	struct storage_vol vol = {instance_volume_type(j->object), disk};
	struct storage_pool *pool;
	int r;

	if (!disk)
		return -ENOMEM;
	r = instance_volume_open(j->d, j->project, j->src_name, &src, err);
	if (r < 0)
		return r;
	pool = src.pool;
	if (pool)
		pool->cancel = operation_cancel_flag(op);
	if (pool && j->src_snap)
		r = pool->driver->volume_copy_snapshot(pool, &src.vol, j->src_snap, &vol, err);
	else if (pool)
		r = pool->driver->volume_copy(pool, &src.vol, &vol, json_array_size(j->snapshots),
					      0, err);
	if (r >= 0 && pool && vol.type == STORAGE_VOL_CONTAINER) {
		json_auto_t *inst = NULL;

		r = job_expanded(j, &inst, err);
		if (r >= 0)
			r = rootfs_apply_templates(pool, disk, inst, "copy", err);
	}
	if (r >= 0 && pool && storage_cancelled(pool))
		r = -ECANCELED;
	if (r >= 0)
		berth_test_pause("instance-copy-after-disk");
	if (r >= 0)
		r = db_instance_create_with_volume(j->d->db, j->project, j->object,
						   pool ? pool->name : NULL, j->snapshots, err);
	if (r < 0) {
		if (pool)
			pool->driver->volume_delete(pool, &vol, NULL);
		return r;
	}
	lifecycle(j, "instance-created", j->name, NULL);
	return 0;
}

/* Disk first (the drivers' restore is itself crash-safe), then the snapshot's config and
 * devices back onto the instance, as LXD does. */
int instance_restore_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	json_auto_t *snap = NULL;
	json_auto_t *inst = NULL;
	int r = db_snapshot_get(j->d->db, j->project, j->name, j->restore, &snap, err);

	if (r >= 0)
		r = db_instance_get(j->d->db, j->project, j->name, &inst, err);
	if (r >= 0 && j->v.pool)
		r = j->v.pool->driver->volume_restore(j->v.pool, &j->v.vol, j->restore, 0, err);
	if (r < 0)
		return r;
	json_object_set(inst, "config", json_object_get(snap, "config"));
	json_object_set(inst, "devices", json_object_get(snap, "devices"));
	r = db_instance_update(j->d->db, j->project, j->name, inst, err);
	if (r < 0)
		return r;
	lifecycle(j, "instance-restored", j->name, json_pack("{s:s}", "snapshot", j->restore));
	return 0;
}

/* The pool of the root disk device ("path": "/") of `obj` expanded with its profiles. */
static int root_pool(struct db *db, const char *project, const json_t *obj, char **ret,
		     struct berth_error *err)
{
	json_auto_t *profiles = NULL;
	json_auto_t *inst = json_deep_copy(obj);
	json_auto_t *pool_obj = NULL;
	const char *pool = NULL, *dname;
	json_t *dev;
	int r = instance_expand_profiles(db, project, &profiles, err);

	if (r < 0)
		return r;
	if (!inst)
		return -ENOMEM;
	r = instance_expand(inst, profiles);
	if (r < 0)
		return r;
	json_object_foreach(json_object_get(inst, "expanded_devices"), dname, dev)
		if (streq(berth_json_string(dev, "type") ?: "", "disk") &&
		    streq(berth_json_string(dev, "path") ?: "", "/"))
			pool = berth_json_string(dev, "pool");
	if (!pool || !*pool)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Failed to find root disk device with a pool (a disk "
				       "device with path \"/\" in the profiles or devices)");
	r = db_pool_get(db, pool, &pool_obj, err);
	if (r < 0)
		return r == -ENOENT ? berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
						      "Storage pool \"%s\" not found", pool)
				    : r;
	*ret = strdup(pool);
	return *ret ? 0 : -ENOMEM;
}

/* A container from a VM image, or the reverse, could never start: refused as LXD does. */
static int image_type_check(const json_t *img, const json_t *obj, struct berth_error *err)
{
	const char *itype = berth_json_string(img, "type");
	const char *otype = berth_json_string(obj, "type");

	if (!itype || !*itype)
		itype = "container";
	if (!otype || !*otype)
		otype = "container";
	if (streq(itype, otype))
		return 0;
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Requested image's type \"%s\" doesn't match instance type \"%s\"",
			       itype, otype);
}

/* j->fingerprint of project `images` into j->object: the image's properties as image.*
 * config keys, volatile.base_image, and its architecture unless the request named one. */
static int apply_image(struct instance_job *j, const char *images, struct berth_error *err)
{
	json_t *obj = j->object;
	json_t *config = json_object_get(obj, "config");
	json_auto_t *img = NULL;
	const char *key;
	json_t *v;
	int r = db_image_get(j->d->db, images, j->fingerprint, &img, err);

	if (r >= 0)
		r = image_type_check(img, obj, err);
	if (r < 0)
		return r;
	if (!j->arch_given)
		json_object_set(obj, "architecture", json_object_get(img, "architecture"));
	json_object_foreach(json_object_get(img, "properties"), key, v) {
		_cleanup_free_ char *k = berth_strdup_printf("image.%s", key);
		if (k && !json_object_get(config, k))
			json_object_set(config, k, v);
	}
	json_object_set_new(config, "volatile.base_image", json_string(j->fingerprint));
	return 0;
}

/* Source type "image": find the image in the local store (or, with a server, leave the
 * pull to the operation), copy its properties into the config (image.*) and record
 * volatile.base_image, as LXD does. */
int instance_prepare_image(struct instance_job *j, const json_t *body, const json_t *source,
			   struct berth_error *err)
{
	json_t *obj = j->object;
	const char *alias = berth_json_string(source, "alias");
	const char *fp = berth_json_string(source, "fingerprint");
	const char *server = berth_json_string(source, "server");
	_cleanup_free_ char *images = NULL; /* the project whose images it uses */
	int r;

	j->arch_given = *(berth_json_string(body, "architecture") ?: "") != '\0';
	r = db_project_feature_project(j->d->db, j->project, "features.images", &images, err);
	if (r < 0)
		return r;
	if (server && *server) {
		r = image_pull_check(source, err);
		if (r < 0)
			return r;
		j->pull_source = json_deep_copy(source);
		if (!j->pull_source)
			return -ENOMEM;
		return root_pool(j->d->db, j->project, obj, &j->pool_name, err);
	}
	if (alias && *alias) {
		json_auto_t *a = NULL;
		r = db_image_alias_get(j->d->db, images, alias, &a, err);
		if (r < 0)
			return r;
		r = db_image_resolve(j->d->db, images, berth_json_string(a, "target") ?: "",
				     &j->fingerprint, err);
	} else if (fp && *fp) {
		r = db_image_resolve(j->d->db, images, fp, &j->fingerprint, err);
	} else {
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image source needs an alias or a fingerprint");
	}
	if (r >= 0)
		r = apply_image(j, images, err);
	if (r < 0)
		return r;
	return root_pool(j->d->db, j->project, obj, &j->pool_name, err);
}

/* The pull of a creation from an image server, in the operation: the image is cached (an
 * entry of the cache, auto-updated as images.auto_update_cached says), then applied. */
static int pull_image(struct instance_job *j, struct operation *op, struct berth_error *err)
{
	_cleanup_free_ char *images = NULL;
	json_auto_t *config = NULL;
	const char *auto_cached;
	struct image_pull p = {
		.source = j->pull_source,
		.type = berth_json_string(j->object, "type"),
		.cached = true,
		.prefer_cached = true,
		.op = op,
	};
	int r = db_project_feature_project(j->d->db, j->project, "features.images", &images, err);

	if (r >= 0)
		r = db_server_config_get(j->d->db, &config, err);
	if (r < 0)
		return r;
	auto_cached = berth_json_string(config, "images.auto_update_cached");
	p.auto_update = !auto_cached || !*auto_cached || streq(auto_cached, "true") ||
			streq(auto_cached, "1");
	p.project = images;
	p.event_project = j->project;
	r = image_pull(j->d, &p, &j->fingerprint, err);
	if (r < 0)
		return r;
	return apply_image(j, images, err);
}

/* Source type "copy": "c1" or "c1/snap". The new instance starts from the source's
 * config and devices (the snapshot's for a snapshot), its profiles unless the request
 * names some; the request's config and devices override. Volatile keys are the source's
 * own and are not copied, volatile.base_image aside. */
int instance_prepare_copy(struct instance_job *j, const json_t *body, const json_t *source,
			  struct berth_error *err)
{
	const struct instance_driver *drv = NULL;
	json_t *obj = j->object;
	const char *from = berth_json_string(source, "source");
	json_auto_t *src = NULL;
	json_auto_t *snap = NULL;
	json_auto_t *config = NULL;
	json_auto_t *devices = NULL;
	const json_t *base;
	const char *slash, *key;
	json_t *v;
	void *tmp;
	int r;

	if (!from || !*from)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Copy source needs a \"source\" instance");
	if (berth_json_bool(source, "refresh", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Refreshing copies is not supported yet");
	slash = strchr(from, '/');
	j->src_name = slash ? strndup(from, (size_t)(slash - from)) : strdup(from);
	j->src_snap = slash ? strdup(slash + 1) : NULL;
	if (!j->src_name || (slash && !j->src_snap))
		return -ENOMEM;
	r = db_instance_get(j->d->db, j->project, j->src_name, &src, err);
	if (r >= 0) /* the source's type must have a driver too */
		r = instance_driver_get(berth_json_string(src, "type"), j->name, &drv, err);
	if (r >= 0 && j->src_snap)
		r = db_snapshot_get(j->d->db, j->project, j->src_name, j->src_snap, &snap, err);
	if (r < 0)
		return r;
	base = snap ? snap : src;
	config = json_deep_copy(json_object_get(base, "config"));
	devices = json_deep_copy(json_object_get(base, "devices"));
	if (!config || !devices)
		return -ENOMEM;
	json_object_foreach_safe(config, tmp, key, v)
		if (berth_startswith(key, "volatile.") && !streq(key, "volatile.base_image"))
			json_object_del(config, key);
	json_object_update(config, json_object_get(obj, "config"));
	json_object_update(devices, json_object_get(obj, "devices"));
	json_object_set(obj, "config", config);
	json_object_set(obj, "devices", devices);
	if (!json_is_array(json_object_get(body, "profiles")))
		json_object_set(obj, "profiles", json_object_get(src, "profiles"));
	{
		/* The copy lives on the source's pool: moving volumes between pools is not
		 * there yet, so a root device naming another pool is refused. */
		_cleanup_free_ char *src_pool = NULL;
		_cleanup_free_ char *want = NULL;

		r = db_instance_pool(j->d->db, j->project, j->src_name, &src_pool, err);
		if (r == -ENOENT)
			berth_error_release(err);
		else if (r < 0)
			return r;
		if (src_pool && root_pool(j->d->db, j->project, obj, &want, err) >= 0 &&
		    !streq(want, src_pool))
			return berth_error_set(
				err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				"Copying to another storage pool (\"%s\" from \"%s\") "
				"is not supported yet",
				want, src_pool);
		berth_error_release(err);
	}
	if (!*(berth_json_string(body, "architecture") ?: ""))
		json_object_set(obj, "architecture", json_object_get(src, "architecture"));
	if (snap || berth_json_bool(source, "instance_only", false))
		return 0;
	/* Snapshot rows keep their names and creation dates in the copy. */
	return db_snapshot_list(j->d->db, j->project, j->src_name, &j->snapshots, err);
}

int instance_job_root_pool(struct instance_job *j, struct berth_error *err)
{
	return root_pool(j->d->db, j->project, j->object, &j->pool_name, err);
}

/* ---- state changes ---- */

int instance_state_run(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	json_auto_t *inst = NULL;
	int r;

	if (streq(j->action, "start")) {
		r = instance_expand_load(j->d->db, j->project, j->name, &inst, err);
		if (r >= 0)
			r = j->drv->start(j->d, j->project, inst, err);
		return r;
	}
	if (streq(j->action, "stop"))
		return j->drv->stop(j->d, j->project, j->name, j->timeout, j->force, err);
	if (streq(j->action, "restart"))
		return j->drv->restart(j->d, j->project, j->name, j->timeout, j->force, err);
	return j->drv->freeze(j->d, j->project, j->name, streq(j->action, "freeze"), err);
}

int instance_state_check(const struct instance_job *j, const char *action, struct berth_error *err)
{
	enum instance_power p = j->drv->power(j->d, j->project, j->name, NULL);

	if (p == INSTANCE_UNRESPONSIVE)
		return j->drv->unresponsive_error(j->name, err);
	if (streq(action, "start") && p != INSTANCE_STOPPED)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is already running");
	if ((streq(action, "stop") || streq(action, "restart")) && p == INSTANCE_STOPPED)
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "The instance is already stopped");
	if (streq(action, "freeze") && p == INSTANCE_FROZEN)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is already frozen");
	if ((streq(action, "freeze") || streq(action, "unfreeze")) && p == INSTANCE_STOPPED)
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "The instance isn't running");
	if (streq(action, "unfreeze") && p != INSTANCE_FROZEN)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is not frozen");
	return 0;
}

void instance_status_refresh(struct berth_daemon *d, const char *project, json_t *inst)
{
	const struct instance_driver *drv = NULL;
	const char *name = berth_json_string(inst, "name");
	const char *status = berth_json_string(inst, "status");

	if (!name || !status || streq(status, "Stopped") ||
	    instance_driver_of(inst, &drv, NULL) < 0 || drv != &vm_driver ||
	    drv->power_quick(d, project, name) != INSTANCE_STOPPED)
		return;
	if (db_instance_set_status(d->db, project, name, "Stopped", 102, NULL) >= 0)
		log_info("Virtual machine \"%s\" of project \"%s\" stopped by itself", name,
			 project);
	json_object_set_new(inst, "status", json_string("Stopped"));
	json_object_set_new(inst, "status_code", json_integer(102));
}

bool instance_running(struct berth_daemon *d, const char *project, const json_t *inst)
{
	const struct instance_driver *drv = NULL;

	if (instance_driver_of(inst, &drv, NULL) < 0)
		return false;
	return drv->power(d, project, berth_json_string(inst, "name"), NULL) != INSTANCE_STOPPED;
}

/* ---- live changes from outside (profiles) ---- */

int instance_update_limits(struct berth_daemon *d, const char *project, const json_t *before,
			   const json_t *after, struct berth_error *err)
{
	const struct instance_driver *drv = NULL;
	int r = instance_driver_of(before, &drv, err);

	return r < 0 ? r : drv->update_limits(d, project, before, after, err);
}

char *instance_next_start_notice(struct berth_daemon *d, const char *project, const json_t *before,
				 const json_t *after)
{
	const struct instance_driver *drv = NULL;

	if (instance_driver_of(before, &drv, NULL) < 0)
		return NULL;
	return drv->next_start_notice(d, project, before, after);
}

void instance_profile_updated(struct berth_daemon *d, const char *profile)
{
	json_auto_t *all = NULL;
	json_t *inst;
	size_t i;

	if (db_instance_list(d->db, NULL, &all, NULL) < 0)
		return;
	json_array_foreach(all, i, inst) {
		const char *project = berth_json_string(inst, "project");
		const char *name = berth_json_string(inst, "name");
		struct berth_error err = {0};
		const struct instance_driver *drv = NULL;
		json_t *p;
		size_t k;
		bool uses = false;

		json_array_foreach(json_object_get(inst, "profiles"), k, p)
			uses |= json_is_string(p) && streq(json_string_value(p), profile);
		if (uses && project && name && instance_driver_of(inst, &drv, NULL) >= 0 &&
		    drv->update_outside(d, project, name, &err) < 0)
			log_warn("Instance \"%s\" after profile \"%s\" changed: %s, ignoring", name,
				 profile, berth_error_msg(&err, -EIO));
		berth_error_release(&err);
	}
}
