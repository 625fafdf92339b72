/* daemon/api/instances.c: /1.0/instances: create (empty, from an image, as a copy), list
 * (recursion 0/1/2), get, update (PUT/PATCH with ETags, restore), rename, delete, and
 * their state.
 *
 * An instance made from an image or a copy has a root volume (containers/<project>_<name>
 * on the pool its root disk device names) and a volume row recorded with the instance row
 * in one transaction. Disk work comes first on the way in (clone, templates, then rows) and
 * last on the way out (rows, then disk): a berthd killed in between leaves a volume
 * without a row, which storage.c's start-up reconciliation removes, never a row without
 * its volume. Creation, PUT, rename and delete are operations, as in LXD; their checks run
 * before the operation is created so bad input fails at once with the right status. */
#define LOG_CATEGORY "instances"
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "daemon/api/filter.h"
#include "daemon/api/instance_logs.h"
#include "daemon/api/instance_snapshots.h"
#include "daemon/instance/volume.h"
#include "daemon/project/limits.h"
#include "daemon/api/storage.h"
#include "daemon/config_keys.h"
#include "daemon/db/db.h"
#include "daemon/instance/cleanup.h"
#include "daemon/instance/container.h"
#include "daemon/instance/disk.h"
#include "daemon/instance/nic.h"
#include "daemon/instance/proxy.h"
#include "daemon/instance/rootfs.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

static const struct berth_json_field instance_fields[] = {
	{"name", BERTH_JSON_STRING, false, false},
	{"type", BERTH_JSON_STRING, false, true},
	{"architecture", BERTH_JSON_STRING, false, true},
	{"description", BERTH_JSON_STRING, false, true},
	{"config", BERTH_JSON_STRING_MAP, false, true},
	{"devices", BERTH_JSON_DEVICE_MAP, false, true},
	{"profiles", BERTH_JSON_STRING_ARRAY, false, true},
	{"ephemeral", BERTH_JSON_BOOL, false, true},
	{"stateful", BERTH_JSON_BOOL, false, true},
	{"source", BERTH_JSON_OBJECT, false, true},
	{"instance_type", BERTH_JSON_STRING, false, true},
	{"restore", BERTH_JSON_STRING, false, true},
};

/* ---- rendering ---- */

/* name -> profile object, for expanding instances of one project. */
static int load_profiles(const char *project, json_t **ret, struct berth_error *err)
{
	_cleanup_free_ char *pp = NULL;
	json_auto_t *list = NULL;
	json_t *map, *p;
	size_t i;
	int r = api_profile_project(project, &pp, err);

	if (r < 0)
		return r;
	r = db_profile_list(pp, &list, err);
	if (r < 0)
		return r;
	map = json_object();
	json_array_foreach(list, i, p)
		json_object_set(map, berth_json_string(p, "name"), p);
	*ret = map;
	return 0;
}

static void expand(json_t *inst, const json_t *profiles)
{
	json_t *config = json_object(), *devices = json_object(), *name;
	size_t i;

	json_array_foreach(json_object_get(inst, "profiles"), i, name) {
		json_t *p = json_object_get(profiles, json_string_value(name));
		if (!p)
			continue;
		json_object_update(config, json_object_get(p, "config"));
		json_object_update(devices, json_object_get(p, "devices"));
	}
	json_object_update(config, json_object_get(inst, "config"));
	json_object_update(devices, json_object_get(inst, "devices"));
	json_object_set_new(inst, "expanded_config", config);
	json_object_set_new(inst, "expanded_devices", devices);
	json_object_set_new(inst, "location", json_string("none"));
}

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
static json_t *instance_state(struct berth_daemon *d, const char *project, const json_t *inst)
{
	const char *status = berth_json_string(inst, "status");

	if (status && streq(status, "Stopped"))
		return stopped_state(inst);
	return container_state(d, project, berth_json_string(inst, "name"));
}

static void make_full(struct berth_daemon *d, const char *project, json_t *inst)
{
	json_t *state = instance_state(d, project, inst);

	/* The record may lag behind the monitor by a moment: show what runs. */
	json_object_set(inst, "status", json_object_get(state, "status"));
	json_object_set(inst, "status_code", json_object_get(state, "status_code"));
	json_object_set_new(inst, "state", state);
	json_object_set_new(inst, "snapshots", json_array());
	json_object_set_new(inst, "backups", json_array());
}

/* Replace the "snapshots" of a full `inst` (expanded, of `project`) with its snapshots
 * rendered as GET .../snapshots/NAME renders them: the same shape for the single GET
 * (recursion=1) and the list (recursion=2). */
static int add_snapshots(const char *project, json_t *inst, struct berth_error *err)
{
	json_auto_t *snaps = NULL;
	json_t *out, *sn;
	size_t i;
	int r = db_snapshot_list(project, berth_json_string(inst, "name"), &snaps, err);

	if (r < 0)
		return r;
	out = json_array();
	if (!out)
		return -ENOMEM;
	json_array_foreach(snaps, i, sn)
		json_array_append_new(out, instance_snapshot_render(sn, inst));
	json_object_set_new(inst, "snapshots", out);
	return 0;
}

static char *instance_etag(const json_t *inst)
{
	json_auto_t *e = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "architecture",
				   json_object_get(inst, "architecture"), "config",
				   json_object_get(inst, "config"), "devices",
				   json_object_get(inst, "devices"), "ephemeral",
				   json_object_get(inst, "ephemeral"), "profiles",
				   json_object_get(inst, "profiles"), "description",
				   json_object_get(inst, "description"));
	return e ? api_etag(e) : NULL;
}

static bool query_flag(const struct api_request *req, const char *key)
{
	_cleanup_free_ char *v = NULL;

	return berth_http_query_get(req->http->query, key, &v) == 0 &&
	       (streq(v, "true") || streq(v, "1") || streq(v, ""));
}

static int list_instances(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	bool all = query_flag(req, "all-projects");
	const char *project = all ? NULL : req->project;
	_cleanup_(api_filter_freep) struct api_filter *filter = NULL;
	_cleanup_free_ char *filter_s = NULL;
	json_auto_t *list = NULL;
	json_auto_t *profiles_by_project = json_object();
	json_t *out, *inst;
	size_t i;
	int r;

	if (berth_http_query_get(req->http->query, "filter", &filter_s) == 0) {
		r = api_filter_parse(filter_s, &filter, err);
		if (r < 0)
			return r;
	}
	if (!all) {
		json_auto_t *p = NULL;
		r = db_project_get(req->project, &p, err);
		if (r < 0)
			return r;
	}
	r = db_instance_list(project, &list, err);
	if (r < 0)
		return r;
	out = json_array();
	json_array_foreach(list, i, inst) {
		const char *iproj = berth_json_string(inst, "project") ?: req->project;
		json_t *profiles;

		if (req->recursion == 0 && !filter) {
			_cleanup_free_ char *u =
				api_url("instances", berth_json_string(inst, "name"), iproj);
			json_array_append_new(out, json_string(u));
			continue;
		}
		profiles = json_object_get(profiles_by_project, iproj);
		if (!profiles) {
			r = load_profiles(iproj, &profiles, err);
			if (r < 0) {
				json_decref(out);
				return r;
			}
			json_object_set_new(profiles_by_project, iproj, profiles);
		}
		expand(inst, profiles);
		if (req->recursion >= 2 || filter)
			make_full(req->d, iproj, inst);
		if (!api_filter_match(filter, inst))
			continue;
		if (req->recursion == 0) {
			_cleanup_free_ char *u =
				api_url("instances", berth_json_string(inst, "name"), iproj);
			json_array_append_new(out, json_string(u));
			continue;
		}
		if (req->recursion >= 2) {
			r = add_snapshots(iproj, inst, err);
			if (r < 0) {
				json_decref(out);
				return r;
			}
		}
		if (req->recursion == 1) {
			json_object_del(inst, "state");
			json_object_del(inst, "snapshots");
			json_object_del(inst, "backups");
		}
		json_array_append(out, inst);
	}
	return api_sync(resp, out);
}

/* ---- checks shared by create and update ---- */

static int check_instance_body(const json_t *body, struct berth_daemon *d,
			       const char *project, struct berth_error *err)
{
	const char *type, *arch;
	json_t *archs;
	bool ok = false;
	size_t i;
	json_t *a;
	int r = berth_json_check(body, instance_fields, ARRAY_SIZE(instance_fields), "instance",
				 err);

	if (r < 0)
		return r;
	r = config_check_all(CONFIG_INSTANCE, json_object_get(body, "config"), err);
	if (r < 0)
		return r;
	r = config_check_devices(json_object_get(body, "devices"), err);
	if (r >= 0)
		r = api_disk_devices_check(project, json_object_get(body, "devices"), err);
	if (r < 0)
		return r;
	type = berth_json_string(body, "type");
	if (type && *type && !streq(type, "container") && !streq(type, "virtual-machine"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid instance type \"%s\" (container or "
				       "virtual-machine)", type);
	arch = berth_json_string(body, "architecture");
	if (!arch || !*arch)
		return 0;
	archs = json_object_get(d->environment, "architectures");
	json_array_foreach(archs, i, a)
		ok |= streq(json_string_value(a), arch);
	if (!ok)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Architecture \"%s\" is not supported by this host", arch);
	return 0;
}

static int check_profiles_exist(const char *project, const json_t *profiles,
				struct berth_error *err)
{
	json_auto_t *map = NULL;
	json_t *n;
	size_t i;
	int r = load_profiles(project, &map, err);

	if (r < 0)
		return r;
	json_array_foreach(profiles, i, n)
		if (!json_object_get(map, json_string_value(n)))
			return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
					       "Profile \"%s\" doesn't exist",
					       json_string_value(n));
	return 0;
}

/* ---- operations ---- */

struct instance_job {
	struct berth_daemon *d;
	char *project;
	char *name;
	char *new_name;
	json_t *object; /* owned: what to create or store */
	struct operation *op; /* borrowed while running: for progress */
	char *notice;	      /* owned: what an update of a running instance applies later */
	char *fingerprint;    /* owned: source image (create from an image) */
	char *pool_name;      /* owned: pool of the new root volume */
	char *src_name;	      /* owned: copy source instance */
	char *src_snap;	      /* owned: copy source snapshot, or NULL */
	char *restore;	      /* owned: snapshot to restore */
	json_t *snapshots;    /* owned: snapshot rows a copy records */
	struct instance_volume v; /* the instance's own root volume (rename, delete, restore) */
	int last_pct;
	bool done;
};

static void instance_job_free(void *p)
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
	json_decref(j->snapshots);
	instance_volume_release(&j->v);
	free(j);
}

static struct instance_job *instance_job_new(struct api_request *req, const char *name)
{
	struct instance_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->d = req->d;
	j->project = strdup(req->project);
	j->name = strdup(name);
	j->last_pct = -1;
	if (!j->project || !j->name) {
		instance_job_free(j);
		return NULL;
	}
	return j;
}

static void lifecycle(struct instance_job *j, const char *action, const char *name,
		      json_t *context)
{
	_cleanup_free_ char *url = api_url("instances", name, j->project);

	events_lifecycle(j->d->events, j->project, action, url, context);
}

static int run_create(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	int r = db_instance_create(j->project, j->object, err);

	if (r < 0)
		return r;
	lifecycle(j, "instance-created", j->name, NULL);
	return 0;
}

/* Store the update; on a running container, apply the limits that changed, plug and
 * unplug the NICs and disks that changed, then the proxy devices (and put the old
 * record, limits, NICs and disks back when one fails); drop the leases of NICs that
 * went. */
static int run_update(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	json_auto_t *stored = NULL, *before = NULL, *after = NULL;
	bool running = container_power(j->d, j->project, j->name, NULL) != CONTAINER_STOPPED;
	int r = db_instance_get(j->project, j->name, &stored, err);

	if (r >= 0)
		r = api_instance_load_expanded(j->project, j->name, &before, err);
	if (r >= 0)
		r = db_instance_update(j->project, j->name, j->object, err);
	if (r >= 0)
		r = api_instance_load_expanded(j->project, j->name, &after, err);
	if (r < 0)
		return r;
	if (running) {
		r = container_update_limits(j->d, j->project, before, after, err);
		if (r < 0) {
			db_instance_update(j->project, j->name, stored, NULL);
			return r;
		}
		r = nic_hotplug(j->d, j->project, before, after, err);
		if (r >= 0) {
			r = disk_hotplug(j->d, j->project, before, after, err);
			if (r < 0) {
				disk_hotplug(j->d, j->project, after, before, NULL);
				nic_hotplug(j->d, j->project, after, before, NULL);
			}
		}
		if (r < 0) {
			container_update_limits(j->d, j->project, after, before, NULL);
			db_instance_update(j->project, j->name, stored, NULL);
			return r;
		}
	}
	r = proxy_instance_updated(j->d, j->project, j->name, err);
	if (r < 0) {
		if (running) {
			disk_hotplug(j->d, j->project, after, before, NULL);
			nic_hotplug(j->d, j->project, after, before, NULL);
			container_update_limits(j->d, j->project, after, before, NULL);
		}
		if (db_instance_update(j->project, j->name, stored, NULL) >= 0)
			proxy_instance_updated(j->d, j->project, j->name, NULL);
		return r;
	}
	if (!running)
		nic_release_leases(j->d, j->project, before, after);
	r = nic_forget_volatile(j->project, before, after, err);
	if (r < 0)
		return r;
	if (running)
		j->notice = container_next_start_notice(j->d, j->project, before, after);
	if (j->notice && op)
		operation_set_metadata(op, json_pack("{s:s}", "warning", j->notice));
	lifecycle(j, "instance-updated", j->name, NULL);
	return 0;
}

/* volatile.* keys are the server's: an update that does not mention one keeps it. */
static void keep_volatile(const json_t *cur, json_t *next)
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

static int run_rename(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	int r = db_instance_rename(j->project, j->name, j->new_name, rename_hook, j, err);

	if (r < 0 && j->done) { /* the commit failed after the volume moved: move it back */
		_cleanup_free_ char *to = storage_vol_disk_name(j->project, j->new_name);
		struct storage_vol nv = {STORAGE_VOL_CONTAINER, to};

		if (to)
			j->v.pool->driver->volume_rename(j->v.pool, &nv, j->v.disk_name, NULL);
	}
	if (r < 0)
		return r;
	instance_logs_rename(j->d, j->project, j->name, j->new_name);
	lifecycle(j, "instance-renamed", j->new_name, json_pack("{s:s}", "old_name", j->name));
	return 0;
}

static int run_delete(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	json_auto_t *before = NULL;
	int r;

	if (api_instance_load_expanded(j->project, j->name, &before, NULL) < 0)
		before = NULL;
	r = db_instance_delete(j->project, j->name, err);
	if (r < 0)
		return r;
	if (before)
		nic_release_leases(j->d, j->project, before, NULL);
	if (j->v.pool) {
		/* The volume and its snapshots; what fails here has no row any more and goes at
		 * the next start. */
		r = j->v.pool->driver->volume_delete(j->v.pool, &j->v.vol, err);
		if (r < 0)
			log_warn("Instance \"%s\": removing its volume: %s, ignoring", j->name,
				 berth_error_msg(err, r));
		berth_error_release(err);
	}
	cleanup_instance(j->d, j->project, j->name);
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
		operation_set_metadata(j->op, json_pack("{s:s}",
			"create_instance_from_image_unpack_progress", text));
}

static int open_pool(struct berth_daemon *d, const char *name, struct storage_pool **ret,
		     struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(name, &p, err);

	return r < 0 ? r : storage_pool_new(d->dir, p, ret, err);
}

static int run_create_image(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *images = berth_strdup_printf("%s/images", j->d->dir);
	_cleanup_free_ char *disk = storage_vol_disk_name(j->project, j->name);
	struct storage_vol vol = {STORAGE_VOL_CONTAINER, disk};
	int r;

	if (!images || !disk)
		return -ENOMEM;
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
	r = rootfs_from_image(pool, j->fingerprint, disk, j->name, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Creating the root volume");
	berth_test_pause("instance-create-after-disk");
	r = db_instance_create_with_volume(j->project, j->object, pool->name, NULL, err);
	if (r < 0) {
		pool->driver->volume_delete(pool, &vol, NULL);
		return r;
	}
	lifecycle(j, "instance-created", j->name, NULL);
	return 0;
}

static int run_copy(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	_cleanup_(instance_volume_release) struct instance_volume src = {0};
	_cleanup_free_ char *disk = storage_vol_disk_name(j->project, j->name);
	struct storage_vol vol = {STORAGE_VOL_CONTAINER, disk};
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
	if (r >= 0 && pool)
		r = rootfs_apply_templates(pool, disk, j->name, "copy", err);
	if (r >= 0 && pool && storage_cancelled(pool))
		r = -ECANCELED;
	if (r >= 0)
		berth_test_pause("instance-copy-after-disk");
	if (r >= 0)
		r = db_instance_create_with_volume(j->project, j->object,
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
static int run_restore(struct operation *op, void *data, struct berth_error *err)
{
	struct instance_job *j = data;
	json_auto_t *snap = NULL;
	json_auto_t *inst = NULL;
	int r = db_snapshot_get(j->project, j->name, j->restore, &snap, err);

	if (r >= 0)
		r = db_instance_get(j->project, j->name, &inst, err);
	if (r >= 0 && j->v.pool)
		r = j->v.pool->driver->volume_restore(j->v.pool, &j->v.vol, j->restore, 0, err);
	if (r < 0)
		return r;
	json_object_set(inst, "config", json_object_get(snap, "config"));
	json_object_set(inst, "devices", json_object_get(snap, "devices"));
	r = db_instance_update(j->project, j->name, inst, err);
	if (r < 0)
		return r;
	lifecycle(j, "instance-restored", j->name, json_pack("{s:s}", "snapshot", j->restore));
	return 0;
}

static json_t *resources_for(const char *project, const char *name)
{
	_cleanup_free_ char *u = api_url("instances", name, project);

	return u ? json_pack("{s:[s]}", "instances", u) : NULL;
}

/* "adjective-animal", LXD style, for creations without a name. */
static char *random_name(void)
{
	static const char *const adj[] = {"brave", "calm",  "eager", "fancy", "gentle",
					  "happy", "jolly", "keen",  "lucky", "noble",
					  "proud", "quick", "sunny", "tidy",  "witty"};
	static const char *const noun[] = {"otter", "heron", "lynx", "panda", "raven",
					   "seal",  "tapir", "wren", "yak",   "zebra",
					   "koala", "moose", "newt", "okapi", "puffin"};
	unsigned char b[2] = {0, 0};

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		b[0] = b[1] = 0;
	return berth_strdup_printf("%s-%s", adj[b[0] % ARRAY_SIZE(adj)],
				   noun[b[1] % ARRAY_SIZE(noun)]);
}

/* The pool of the root disk device ("path": "/") of `obj` expanded with its profiles. */
static int root_pool(const char *project, const json_t *obj, char **ret,
		     struct berth_error *err)
{
	json_auto_t *profiles = NULL;
	json_auto_t *inst = json_deep_copy(obj);
	json_auto_t *pool_obj = NULL;
	const char *pool = NULL, *dname;
	json_t *dev;
	int r = load_profiles(project, &profiles, err);

	if (r < 0)
		return r;
	if (!inst)
		return -ENOMEM;
	expand(inst, profiles);
	json_object_foreach(json_object_get(inst, "expanded_devices"), dname, dev)
		if (streq(berth_json_string(dev, "type") ?: "", "disk") &&
		    streq(berth_json_string(dev, "path") ?: "", "/"))
			pool = berth_json_string(dev, "pool");
	if (!pool || !*pool)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Failed to find root disk device with a pool (a disk "
				       "device with path \"/\" in the profiles or devices)");
	r = db_pool_get(pool, &pool_obj, err);
	if (r < 0)
		return r == -ENOENT ? berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
						      "Storage pool \"%s\" not found", pool)
				    : r;
	*ret = strdup(pool);
	return *ret ? 0 : -ENOMEM;
}

/* Virtual machines need a driver berthd does not have yet: a record made for one could
 * never start, so creation is refused up front. */
static int refuse_vm(const char *name, struct berth_error *err)
{
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "Cannot create instance \"%s\": virtual machines (type "
			       "\"virtual-machine\") are not supported by this server yet, only "
			       "containers", name);
}

/* Source type "image": find the image in the local store, copy its properties into the
 * config (image.*) and record volatile.base_image, as LXD does. */
static int prepare_image(struct api_request *req, const json_t *source, json_t *obj,
			 struct instance_job *j, struct berth_error *err)
{
	const char *alias = berth_json_string(source, "alias");
	const char *fp = berth_json_string(source, "fingerprint");
	const char *server = berth_json_string(source, "server");
	json_t *config = json_object_get(obj, "config");
	_cleanup_free_ char *images = NULL; /* the project whose images it uses */
	json_auto_t *img = NULL;
	const char *key;
	json_t *v;
	int r;

	r = db_project_feature_project(req->project, "features.images", &images, err);
	if (r < 0)
		return r;
	if (server && *server)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Images from a remote server are not supported yet: "
				       "import the image first (berth image import)");
	if (alias && *alias) {
		json_auto_t *a = NULL;
		r = db_image_alias_get(images, alias, &a, err);
		if (r < 0)
			return r;
		r = db_image_resolve(images, berth_json_string(a, "target") ?: "",
				     &j->fingerprint, err);
	} else if (fp && *fp) {
		r = db_image_resolve(images, fp, &j->fingerprint, err);
	} else {
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Image source needs an alias or a fingerprint");
	}
	if (r >= 0)
		r = db_image_get(images, j->fingerprint, &img, err);
	if (r < 0)
		return r;
	if (!*(berth_json_string(req->body, "architecture") ?: ""))
		json_object_set(obj, "architecture", json_object_get(img, "architecture"));
	json_object_foreach(json_object_get(img, "properties"), key, v) {
		_cleanup_free_ char *k = berth_strdup_printf("image.%s", key);
		if (k && !json_object_get(config, k))
			json_object_set(config, k, v);
	}
	json_object_set_new(config, "volatile.base_image", json_string(j->fingerprint));
	return root_pool(req->project, obj, &j->pool_name, err);
}

/* Source type "copy": "c1" or "c1/snap". The new instance starts from the source's
 * config and devices (the snapshot's for a snapshot), its profiles unless the request
 * names some; the request's config and devices override. Volatile keys are the source's
 * own and are not copied, volatile.base_image aside. */
static int prepare_copy(struct api_request *req, const json_t *source, json_t *obj,
			struct instance_job *j, struct berth_error *err)
{
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
	r = db_instance_get(req->project, j->src_name, &src, err);
	if (r >= 0 && streq(berth_json_string(src, "type") ?: "", "virtual-machine"))
		return refuse_vm(j->name, err);
	if (r >= 0 && j->src_snap)
		r = db_snapshot_get(req->project, j->src_name, j->src_snap, &snap, err);
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
	if (!json_is_array(json_object_get(req->body, "profiles")))
		json_object_set(obj, "profiles", json_object_get(src, "profiles"));
	{
		/* The copy lives on the source's pool: moving volumes between pools is not
		 * there yet, so a root device naming another pool is refused. */
		_cleanup_free_ char *src_pool = NULL;
		_cleanup_free_ char *want = NULL;

		r = db_instance_pool(req->project, j->src_name, &src_pool, err);
		if (r == -ENOENT)
			berth_error_release(err);
		else if (r < 0)
			return r;
		if (src_pool && root_pool(req->project, obj, &want, err) >= 0 &&
		    !streq(want, src_pool))
			return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
					       "Copying to another storage pool (\"%s\" from \"%s\") "
					       "is not supported yet", want, src_pool);
		berth_error_release(err);
	}
	if (!*(berth_json_string(req->body, "architecture") ?: ""))
		json_object_set(obj, "architecture", json_object_get(src, "architecture"));
	if (snap || berth_json_bool(source, "instance_only", false))
		return 0;
	/* Snapshot rows keep their names and creation dates in the copy. */
	return db_snapshot_list(req->project, j->src_name, &j->snapshots, err);
}

static int create_instance(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_free_ char *gen = NULL;
	json_auto_t *existing = NULL;
	json_t *profiles, *source, *obj;
	const char *name, *stype, *type, *arch;
	struct instance_job *j;
	operation_run_fn run = run_create;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	r = check_instance_body(req->body, req->d, req->project, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (!name || !*name)
		name = gen = random_name();
	if (!name)
		return -ENOMEM;
	r = berth_name_check_instance(name, err);
	if (r < 0)
		return r;
	type = berth_json_string(req->body, "type");
	/* No VM driver yet: refuse before anything is written, whatever the source. */
	if (type && streq(type, "virtual-machine"))
		return refuse_vm(name, err);
	source = json_object_get(req->body, "source");
	stype = berth_json_string(source, "type");
	if (!stype || !*stype)
		stype = "none";
	if (!streq(stype, "none") && !streq(stype, "image") && !streq(stype, "copy"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Instance source \"%s\" is not supported by this berthd yet "
				       "(none, image and copy are)", stype);
	profiles = json_object_get(req->body, "profiles");
	profiles = profiles && !json_is_null(profiles) ? json_incref(profiles)
						       : json_pack("[s]", "default");
	r = check_profiles_exist(req->project, profiles, err);
	if (r < 0) {
		json_decref(profiles);
		return r;
	}
	r = db_instance_get(req->project, name, &existing, err);
	if (r == 0) {
		json_decref(profiles);
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Instance \"%s\" already exists", name);
	}
	if (r != -ENOENT) {
		json_decref(profiles);
		return r;
	}
	berth_error_release(err);
	arch = berth_json_string(req->body, "architecture");
	if (!arch || !*arch)
		arch = json_string_value(
			json_array_get(json_object_get(req->d->environment, "architectures"), 0));
	obj = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:b}", "name", name, "type",
			type && *type ? type : "container", "architecture", arch,
			"description", berth_json_string(req->body, "description") ?: "",
			"config", berth_json_object_or_empty(req->body, "config"), "devices",
			berth_json_object_or_empty(req->body, "devices"), "profiles", profiles,
			"ephemeral", berth_json_bool(req->body, "ephemeral", false), "stateful", 0);
	if (!obj)
		return -ENOMEM;
	api_config_drop_empty(json_object_get(obj, "config"));
	j = instance_job_new(req, name);
	if (!j) {
		json_decref(obj);
		return -ENOMEM;
	}
	j->object = obj;
	r = 0;
	if (streq(stype, "image")) {
		r = prepare_image(req, source, obj, j, err);
		run = run_create_image;
	} else if (streq(stype, "copy")) {
		r = prepare_copy(req, source, obj, j, err);
		run = run_copy;
	}
	if (r >= 0)
		r = project_limits_check_instance(req->project, obj, true, err);
	if (r < 0) {
		instance_job_free(j);
		return r;
	}
	/* From an image or as a copy: long, so cancellable (storage sees the flag). */
	return (run == run_create ? api_async : api_async_cancellable)(
		req, resp, "Creating instance", resources_for(req->project, name), run, j,
		instance_job_free, err);
}

static int get_instance(struct api_request *req, struct api_response *resp,
			struct berth_error *err)
{
	json_auto_t *profiles = NULL;
	json_t *inst = NULL;
	int r = db_instance_get(req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	resp->etag = instance_etag(inst);
	r = load_profiles(req->project, &profiles, err);
	if (r < 0) {
		json_decref(inst);
		return r;
	}
	expand(inst, profiles);
	if (req->recursion >= 1) {
		make_full(req->d, req->project, inst);
		r = add_snapshots(req->project, inst, err);
		if (r < 0) {
			json_decref(inst);
			return r;
		}
	}
	return api_sync(resp, inst);
}

/* Load the instance and check If-Match; *ret is the stored object. */
static int load_for_update(struct api_request *req, json_t **ret, struct berth_error *err)
{
	_cleanup_free_ char *etag = NULL;
	json_t *cur = NULL;
	int r = db_instance_get(req->project, req->params[0], &cur, err);

	if (r < 0)
		return r;
	etag = instance_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0) {
		json_decref(cur);
		return r;
	}
	*ret = cur;
	return 0;
}

/* {"restore": "snap"} or, as the lxc client sends it, "name/snap". */
/* Open the instance's root volume into `j` and run `run` on it as an async operation.
 * Takes `j` (freed here on failure). */
static int start_volume_job(struct api_request *req, struct api_response *resp,
			    struct instance_job *j, const char *description, operation_run_fn run,
			    struct berth_error *err)
{
	int r = instance_volume_open(req->d, req->project, req->params[0], &j->v, err);

	if (r < 0) {
		instance_job_free(j);
		return r;
	}
	return api_async(req, resp, description, resources_for(req->project, req->params[0]),
			 run, j, instance_job_free, err);
}

static int restore_instance(struct api_request *req, struct api_response *resp,
			    struct berth_error *err)
{
	const char *snap_name = berth_json_string(req->body, "restore");
	size_t n = strlen(req->params[0]);
	json_auto_t *snap = NULL;
	struct instance_job *j;
	int r;

	if (strncmp(snap_name, req->params[0], n) == 0 && snap_name[n] == '/')
		snap_name += n + 1;
	r = db_snapshot_get(req->project, req->params[0], snap_name, &snap, err);
	if (r < 0)
		return r;
	j = instance_job_new(req, req->params[0]);
	if (!j || !(j->restore = strdup(snap_name))) {
		instance_job_free(j);
		return -ENOMEM;
	}
	return start_volume_job(req, resp, j, "Restoring snapshot", run_restore, err);
}

static int update_instance(struct api_request *req, struct api_response *resp,
			   struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description", "architecture", "ephemeral",
					     "profiles"};
	json_auto_t *cur = NULL;
	json_t *next;
	struct instance_job *j;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	if (!patch && *(berth_json_string(req->body, "restore") ?: ""))
		return restore_instance(req, resp, err);
	r = check_instance_body(req->body, req->d, req->project, err);
	if (r < 0)
		return r;
	r = load_for_update(req, &cur, err);
	if (r < 0)
		return r;
	next = json_deep_copy(cur);
	if (patch) {
		api_patch_merge(next, req->body, fields, ARRAY_SIZE(fields));
	} else {
		json_t *profiles = json_object_get(req->body, "profiles");
		json_object_set_new(next, "config", berth_json_object_or_empty(req->body, "config"));
		json_object_set_new(next, "devices",
				    berth_json_object_or_empty(req->body, "devices"));
		json_object_set_new(next, "description",
				    json_string(berth_json_string(req->body, "description") ?: ""));
		json_object_set_new(next, "ephemeral",
				    json_boolean(berth_json_bool(req->body, "ephemeral", false)));
		json_object_set_new(next, "profiles",
				    profiles && !json_is_null(profiles) ? json_incref(profiles)
									: json_array());
		if (berth_json_string(req->body, "architecture"))
			json_object_set(next, "architecture",
					json_object_get(req->body, "architecture"));
		api_config_drop_empty(json_object_get(next, "config"));
	}
	/* Clients send "" for "unchanged" (Go's zero value): keep the stored one. */
	if (!*(berth_json_string(next, "architecture") ?: ""))
		json_object_set(next, "architecture", json_object_get(cur, "architecture"));
	r = check_profiles_exist(req->project, json_object_get(next, "profiles"), err);
	if (r >= 0)
		r = project_limits_check_instance(req->project, next, false, err);
	if (r < 0) {
		json_decref(next);
		return r;
	}
	keep_volatile(cur, next);
	j = instance_job_new(req, req->params[0]);
	if (!j) {
		json_decref(next);
		return -ENOMEM;
	}
	j->object = next;
	if (patch) {
		/* LXD answers PATCH synchronously; this handler already runs on a worker, so
		 * the hot-plug of NICs and proxy devices can happen right here. */
		json_t *md = NULL;

		r = run_update(NULL, j, err);
		if (r >= 0 && j->notice)
			md = json_pack("{s:s}", "warning", j->notice);
		instance_job_free(j);
		return r < 0 ? r : api_sync(resp, md);
	}
	return api_async(req, resp, "Updating instance",
			 resources_for(req->project, req->params[0]), run_update, j,
			 instance_job_free, err);
}

static int put_instance(struct api_request *req, struct api_response *resp,
			struct berth_error *err)
{
	return update_instance(req, resp, err, false);
}

static int patch_instance(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	return update_instance(req, resp, err, true);
}

static int post_instance(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	json_auto_t *cur = NULL;
	json_auto_t *other = NULL;
	const char *name;
	struct instance_job *j;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	if (berth_json_bool(req->body, "migration", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Migration is not supported by this berthd yet");
	name = berth_json_string(req->body, "name");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_instance(name, err);
	if (r < 0)
		return r;
	r = db_instance_get(req->project, req->params[0], &cur, err);
	if (r < 0)
		return r;
	if (container_power(req->d, req->project, req->params[0], NULL) != CONTAINER_STOPPED)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Renaming of running instance not allowed");
	r = db_instance_get(req->project, name, &other, err);
	if (r == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Name \"%s\" already in use", name);
	berth_error_release(err);
	j = instance_job_new(req, req->params[0]);
	if (!j || !(j->new_name = strdup(name))) {
		instance_job_free(j);
		return -ENOMEM;
	}
	return start_volume_job(req, resp, j, "Renaming instance", run_rename, err);
}

static int delete_instance(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	json_auto_t *cur = NULL;
	const char *prot;
	struct instance_job *j;
	int r = db_instance_get(req->project, req->params[0], &cur, err);

	if (r < 0)
		return r;
	if (container_power(req->d, req->project, req->params[0], NULL) != CONTAINER_STOPPED)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "The instance \"%s\" is currently running, stop it first "
				       "or use --force", req->params[0]);
	prot = berth_json_string(json_object_get(cur, "config"), "security.protection.delete");
	if (prot && (streq(prot, "true") || streq(prot, "1")))
		return berth_error_set(err, -EPERM, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" is protected "
				       "(security.protection.delete)", req->params[0]);
	j = instance_job_new(req, req->params[0]);
	if (!j)
		return -ENOMEM;
	return start_volume_job(req, resp, j, "Deleting instance", run_delete, err);
}

static int get_state(struct api_request *req, struct api_response *resp,
		     struct berth_error *err)
{
	json_auto_t *inst = NULL;
	int r = db_instance_get(req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	return api_sync(resp, container_state(req->d, req->project, req->params[0]));
}

struct state_job {
	struct berth_daemon *d;
	char *project;
	char *name;
	char *action;
	int timeout;
	bool force;
};

static void state_job_free(void *p)
{
	struct state_job *j = p;

	if (!j)
		return;
	free(j->project);
	free(j->name);
	free(j->action);
	free(j);
}

/* The instance with its expanded config and devices. */
/* The instances expanded last, kept while the database's generation stays the same: an
 * exec or a start then reads no row (three read transactions, about half a millisecond
 * here). Callers get a deep copy to change as they like. */
#define EXPANDED_CACHE_SIZE 32

struct expanded_entry {
	char *project, *name; /* owned; NULL: empty slot */
	uint64_t generation;
	json_t *inst; /* owned */
};

static struct {
	pthread_mutex_t lock;
	struct expanded_entry e[EXPANDED_CACHE_SIZE];
	unsigned next; /* the slot to take when none is empty or stale */
} expanded_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void expanded_entry_clear(struct expanded_entry *e)
{
	free(e->project);
	free(e->name);
	json_decref(e->inst);
	*e = (struct expanded_entry){0};
}

static json_t *expanded_cache_get(const char *project, const char *name, uint64_t gen)
{
	json_t *copy = NULL;

	pthread_mutex_lock(&expanded_cache.lock);
	for (size_t i = 0; i < EXPANDED_CACHE_SIZE; i++) {
		struct expanded_entry *e = &expanded_cache.e[i];
		if (e->name && e->generation == gen && streq(e->name, name) &&
		    streq(e->project, project)) {
			copy = json_deep_copy(e->inst);
			break;
		}
	}
	pthread_mutex_unlock(&expanded_cache.lock);
	return copy;
}

static void expanded_cache_put(const char *project, const char *name, uint64_t gen,
			       const json_t *inst)
{
	struct expanded_entry fresh = {
		.project = strdup(project),
		.name = strdup(name),
		.generation = gen,
		.inst = json_deep_copy(inst),
	};
	struct expanded_entry *slot = NULL;

	if (!fresh.project || !fresh.name || !fresh.inst) {
		expanded_entry_clear(&fresh);
		return;
	}
	pthread_mutex_lock(&expanded_cache.lock);
	for (size_t i = 0; i < EXPANDED_CACHE_SIZE && !slot; i++) {
		struct expanded_entry *e = &expanded_cache.e[i];
		if (!e->name || e->generation != gen ||
		    (streq(e->name, name) && streq(e->project, project)))
			slot = e;
	}
	if (!slot)
		slot = &expanded_cache.e[expanded_cache.next++ % EXPANDED_CACHE_SIZE];
	expanded_entry_clear(slot);
	*slot = fresh;
	pthread_mutex_unlock(&expanded_cache.lock);
}

void api_instance_cache_release(void)
{
	pthread_mutex_lock(&expanded_cache.lock);
	for (size_t i = 0; i < EXPANDED_CACHE_SIZE; i++)
		expanded_entry_clear(&expanded_cache.e[i]);
	pthread_mutex_unlock(&expanded_cache.lock);
}

int api_instance_load_expanded(const char *project, const char *name, json_t **ret,
			       struct berth_error *err)
{
	json_auto_t *profiles = NULL;
	uint64_t gen = db_generation(); /* before the rows: see db_generation() */
	json_t *inst = expanded_cache_get(project, name, gen);
	int r;

	if (inst) {
		*ret = inst;
		return 0;
	}
	r = db_instance_get(project, name, &inst, err);
	if (r >= 0)
		r = load_profiles(project, &profiles, err);
	if (r < 0) {
		json_decref(inst);
		return r;
	}
	expand(inst, profiles);
	expanded_cache_put(project, name, gen, inst);
	*ret = inst;
	return 0;
}

static int run_state(struct operation *op, void *data, struct berth_error *err)
{
	struct state_job *j = data;
	json_auto_t *inst = NULL;
	int r;

	if (streq(j->action, "start")) {
		r = api_instance_load_expanded(j->project, j->name, &inst, err);
		if (r >= 0)
			r = container_start(j->d, j->project, inst, err);
		return r;
	}
	if (streq(j->action, "stop"))
		return container_stop(j->d, j->project, j->name, j->timeout, j->force, err);
	if (streq(j->action, "restart"))
		return container_restart(j->d, j->project, j->name, j->timeout, j->force, err);
	return container_freeze(j->d, j->project, j->name, streq(j->action, "freeze"), err);
}

static int state_precheck(struct berth_daemon *d, const char *project, const char *name,
			  const char *action, struct berth_error *err)
{
	enum container_power p = container_power(d, project, name, NULL);

	if (p == CONTAINER_UNRESPONSIVE)
		return container_timeout_error(name, CONTAINER_STATUS_TIMEOUT_S, err);
	if (streq(action, "start") && p != CONTAINER_STOPPED)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is already running");
	if ((streq(action, "stop") || streq(action, "restart")) && p == CONTAINER_STOPPED)
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "The instance is already stopped");
	if (streq(action, "freeze") && p == CONTAINER_FROZEN)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is already frozen");
	if ((streq(action, "freeze") || streq(action, "unfreeze")) && p == CONTAINER_STOPPED)
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "The instance isn't running");
	if (streq(action, "unfreeze") && p != CONTAINER_FROZEN)
		return berth_error_set(err, -EALREADY, BERTH_ERR_BAD_REQUEST,
				       "The instance is not frozen");
	return 0;
}

static int queue_state(struct api_request *req, struct api_response *resp, const char *name,
		       const json_t *body, struct berth_error *err)
{
	static const char *const actions[] = {"start", "stop", "restart", "freeze", "unfreeze"};
	static const char *const descs[] = {"Starting instance", "Stopping instance",
					    "Restarting instance", "Freezing instance",
					    "Unfreezing instance"};
	const char *action = berth_json_string(body, "action");
	json_t *timeout = json_object_get(body, "timeout");
	struct state_job *j;
	size_t a;
	int r;

	for (a = 0; action && a < ARRAY_SIZE(actions); a++)
		if (streq(action, actions[a]))
			break;
	if (!action || a == ARRAY_SIZE(actions))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Unknown action \"%s\"", action ? action : "");
	if (berth_json_bool(body, "stateful", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Stateful stop and start are not supported");
	r = state_precheck(req->d, req->project, name, action, err);
	if (r < 0)
		return r;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->d = req->d;
	j->project = strdup(req->project);
	j->name = strdup(name);
	j->action = strdup(action);
	j->timeout = json_is_integer(timeout) ? (int)json_integer_value(timeout) : -1;
	j->force = berth_json_bool(body, "force", false);
	if (!j->project || !j->name || !j->action) {
		state_job_free(j);
		return -ENOMEM;
	}
	return api_async(req, resp, descs[a], resources_for(req->project, name), run_state, j,
			 state_job_free, err);
}

static int put_state(struct api_request *req, struct api_response *resp,
		     struct berth_error *err)
{
	json_auto_t *inst = NULL;
	int r = db_instance_get(req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	r = api_require_body(req, err);
	if (r < 0)
		return r;
	return queue_state(req, resp, req->params[0], req->body, err);
}

/* The console log the monitor keeps in the run directory (text/plain, empty when the
 * container never ran). */
static int get_console_log(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	json_auto_t *inst = NULL;
	_cleanup_free_ char *rundir = NULL, *path = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r = db_instance_get(req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	rundir = container_rundir(req->d, req->project, req->params[0]);
	path = rundir ? berth_strdup_printf("%s/console.log", rundir) : NULL;
	if (!path)
		return -ENOMEM;
	r = berth_read_file(path, 16 << 20, &buf, &len);
	if (r == -ENOENT) {
		buf = strdup("");
		r = buf ? 0 : -ENOMEM;
	}
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot read the console log");
	resp->type = API_RAW;
	resp->content_type = "text/plain";
	resp->raw = buf;
	resp->raw_len = len;
	return 0;
}

static int delete_console_log(struct api_request *req, struct api_response *resp,
			      struct berth_error *err)
{
	json_auto_t *inst = NULL;
	_cleanup_free_ char *rundir = NULL, *path = NULL;
	int r = db_instance_get(req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	rundir = container_rundir(req->d, req->project, req->params[0]);
	path = rundir ? berth_strdup_printf("%s/console.log", rundir) : NULL;
	if (!path)
		return -ENOMEM;
	if (truncate(path, 0) < 0 && errno != ENOENT)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Cannot clear the console log: %m");
	return api_sync(resp, NULL);
}

const struct api_route api_instance_routes[] = {
	{"GET", "/1.0/instances/{}/console", get_console_log, NULL},
	{"DELETE", "/1.0/instances/{}/console", delete_console_log, NULL},
	{"GET", "/1.0/instances", list_instances, NULL},
	{"POST", "/1.0/instances", create_instance, NULL},
	{"GET", "/1.0/instances/{}", get_instance, NULL},
	{"PUT", "/1.0/instances/{}", put_instance, NULL},
	{"PATCH", "/1.0/instances/{}", patch_instance, NULL},
	{"POST", "/1.0/instances/{}", post_instance, NULL},
	{"DELETE", "/1.0/instances/{}", delete_instance, NULL},
	{"GET", "/1.0/instances/{}/state", get_state, NULL},
	{"PUT", "/1.0/instances/{}/state", put_state, NULL},
	{0},
};
