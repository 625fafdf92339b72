/* daemon/api/instances.c: /1.0/instances: create (empty, from an image, as a copy), list
 * (recursion 0/1/2), get, update (PUT/PATCH with ETags, restore), rename, delete, and
 * their state.
 *
 * Parsing, checks of the request and rendering only: what instances do is
 * daemon/instance/instance.c's (and their type's driver's, daemon/instance/driver.h).
 * Creation, PUT, rename and delete are operations, as in LXD; their checks run before the
 * operation is created so bad input fails at once with the right status. */
#define LOG_CATEGORY "instances"
#include <fcntl.h>
#include <limits.h>
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
#include "daemon/instance/backup.h"
#include "daemon/instance/backup_import.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/instance.h"
#include "daemon/instance/migrate_source.h"
#include "daemon/instance/migrate_target.h"
#include "daemon/instance/vm_driver.h"
#include "daemon/trust.h"
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

/* The instance's backups as GET .../backups?recursion=1 lists them (none when the store
 * cannot be read: the instance itself is what was asked for). */
static void add_backups(struct berth_daemon *d, const char *project, json_t *inst)
{
	json_t *list = NULL;

	if (backup_list(d, project, berth_json_string(inst, "name") ?: "", &list, NULL) >= 0)
		json_object_set_new(inst, "backups", list);
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
	add_backups(d, project, inst);
}

/* Replace the "snapshots" of a full `inst` (expanded, of `project`) with its snapshots
 * rendered as GET .../snapshots/NAME renders them: the same shape for the single GET
 * (recursion=1) and the list (recursion=2). */
static int add_snapshots(struct db *db, const char *project, json_t *inst, struct berth_error *err)
{
	json_auto_t *snaps = NULL;
	json_t *out, *sn;
	size_t i;
	int r = db_snapshot_list(db, project, berth_json_string(inst, "name"), &snaps, err);

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
		r = db_project_get(req->d->db, req->project, &p, err);
		if (r < 0)
			return r;
	}
	r = db_instance_list(req->d->db, project, &list, err);
	if (r < 0)
		return r;
	out = json_array();
	json_array_foreach(list, i, inst) {
		const char *iproj = berth_json_string(inst, "project") ?: req->project;
		json_t *profiles;

		if (req->recursion == 0 && !filter) {
			_cleanup_free_ char *u = api_url("instances",
							 berth_json_string(inst, "name"), iproj);
			json_array_append_new(out, json_string(u));
			continue;
		}
		profiles = json_object_get(profiles_by_project, iproj);
		if (!profiles) {
			r = instance_expand_profiles(req->d->db, iproj, &profiles, err);
			if (r < 0) {
				json_decref(out);
				return r;
			}
			json_object_set_new(profiles_by_project, iproj, profiles);
		}
		r = instance_expand(inst, profiles);
		if (r < 0) {
			json_decref(out);
			return r;
		}
		instance_status_refresh(req->d, iproj, inst);
		if (req->recursion >= 2 || filter)
			make_full(req->d, iproj, inst);
		if (!api_filter_match(filter, inst))
			continue;
		if (req->recursion == 0) {
			_cleanup_free_ char *u = api_url("instances",
							 berth_json_string(inst, "name"), iproj);
			json_array_append_new(out, json_string(u));
			continue;
		}
		if (req->recursion >= 2) {
			r = add_snapshots(req->d->db, iproj, inst, err);
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

static int check_instance_body(const json_t *body, struct berth_daemon *d, const char *project,
			       struct berth_error *err)
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
		r = api_disk_devices_check(d->db, project, json_object_get(body, "devices"), err);
	if (r < 0)
		return r;
	type = berth_json_string(body, "type");
	if (type && *type && !streq(type, "container") && !streq(type, "virtual-machine"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid instance type \"%s\" (container or "
				       "virtual-machine)",
				       type);
	if (type && streq(type, "virtual-machine")) {
		r = vm_devices_check(json_object_get(body, "devices"), err);
		if (r < 0)
			return r;
	}
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

/* ---- operations ---- */

/* The driver of stored instance `inst` into *ret, or NULL (and false) for a record of a
 * type without one (a VM an older berthd made): such a record never ran, and can still
 * be read, updated, renamed and deleted. */
static bool record_driver(const json_t *inst, const struct instance_driver **ret)
{
	*ret = NULL;
	return instance_driver_of(inst, ret, NULL) >= 0;
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

/* A backup tarball (Content-Type application/octet-stream, spooled to an unlinked file):
 * restored as LXD does, under X-LXD-name on X-LXD-pool when given. */
static int import_backup(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	const struct berth_http_request *http = req->http;
	const char *pool = berth_http_header_get(http->headers, http->n_headers, "X-LXD-pool");
	const char *name = berth_http_header_get(http->headers, http->n_headers, "X-LXD-name");
	struct backup_import *imp = NULL;
	int fd = fcntl(http->body_fd, F_DUPFD_CLOEXEC, 3);
	int r;

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "dup: %m");
	r = backup_import_prepare(req->d, req->project, fd, pool, name, &imp, err);
	if (r < 0)
		return r;
	return api_async_cancellable(req, resp, "Restoring backup",
				     resources_for(req->project, backup_import_name(imp)),
				     backup_import_run, imp, backup_import_free, err);
}

/* A migration peer reached through a unix socket on this host (unix://SOCKET/...) is only
 * for callers on berthd's own unix socket: over HTTPS it would let a remote client make
 * berthd connect to any local socket. */
int api_migrate_peer_check(const struct api_request *req, const json_t *spec,
			   struct berth_error *err)
{
	const char *url = berth_json_string(spec, "operation");

	if (req->client && req->client->remote && url && berth_startswith(url, "unix:"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "A migration peer on a local unix socket (\"%s\") is only "
				       "allowed to clients of berthd's unix socket",
				       url);
	return 0;
}

/* A migration target in push mode: a websocket operation whose metadata holds the
 * secrets the pushing source (or a relaying client) connects with. Takes `j`. */
static int push_target(struct api_request *req, struct api_response *resp, struct instance_job *j,
		       const char *name, struct berth_error *err)
{
	struct operation_spec os = {
		.description = "Creating instance",
		.project = api_event_project(req),
	};
	json_t *md = NULL;
	int r = migrate_target_push_spec(j, &os, &md);

	if (r < 0) {
		instance_job_free(j);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create operation");
	}
	os.resources = resources_for(req->project, name);
	r = operation_create(req->d->ops, &os, &resp->op);
	if (r < 0) {
		json_decref(md);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create operation");
	}
	operation_set_metadata(resp->op, md);
	resp->type = API_ASYNC;
	return 0;
}

static int create_instance(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_free_ char *gen = NULL;
	json_t *profiles, *source, *obj;
	const char *name, *stype, *type, *arch;
	const struct instance_driver *drv = NULL;
	struct instance_job *j;
	operation_run_fn run = instance_create_run;
	int r;

	if (req->http->body_fd >= 0)
		return import_backup(req, resp, err);
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
	/* A type without a driver (virtual machines, for now) is refused before anything is
	 * written, whatever the source. */
	r = instance_driver_get(type, name, &drv, err);
	if (r < 0)
		return r;
	source = json_object_get(req->body, "source");
	stype = berth_json_string(source, "type");
	if (!stype || !*stype)
		stype = "none";
	if (!streq(stype, "none") && !streq(stype, "image") && !streq(stype, "copy") &&
	    !streq(stype, "migration"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Instance source \"%s\" is not supported by this berthd yet "
				       "(none, image, copy and migration are)",
				       stype);
	profiles = json_object_get(req->body, "profiles");
	profiles = profiles && !json_is_null(profiles) ? json_incref(profiles)
						       : json_pack("[s]", "default");
	arch = berth_json_string(req->body, "architecture");
	if (!arch || !*arch)
		arch = json_string_value(
			json_array_get(json_object_get(req->d->environment, "architectures"), 0));
	obj = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:b}", "name", name, "type",
			type && *type ? type : "container", "architecture", arch, "description",
			berth_json_string(req->body, "description") ?: "", "config",
			berth_json_object_or_empty(req->body, "config"), "devices",
			berth_json_object_or_empty(req->body, "devices"), "profiles", profiles,
			"ephemeral", berth_json_bool(req->body, "ephemeral", false), "stateful", 0);
	if (!obj)
		return -ENOMEM;
	api_config_drop_empty(json_object_get(obj, "config"));
	j = instance_job_new(req->d, req->project, name, drv);
	if (!j) {
		json_decref(obj);
		return -ENOMEM;
	}
	j->object = obj;
	r = instance_create_check(j, err);
	if (r == -EEXIST && streq(stype, "migration") &&
	    berth_json_bool(source, "refresh", false)) {
		berth_error_release(err); /* a refresh of what exists: migrate_target_prepare */
		r = 0;
	}
	if (r >= 0 && streq(stype, "image")) {
		r = instance_prepare_image(j, req->body, source, err);
		run = instance_create_image_run;
	} else if (r >= 0 && streq(stype, "copy")) {
		r = instance_prepare_copy(j, req->body, source, err);
		run = instance_copy_run;
	} else if (r >= 0 && streq(stype, "migration")) {
		r = api_migrate_peer_check(req, source, err);
		if (r >= 0)
			r = migrate_target_prepare(j, source, err);
		run = migrate_target_run;
	}
	if (r >= 0)
		r = project_limits_check_instance(req->d->db, req->project, obj, true, err);
	if (r < 0) {
		instance_job_free(j);
		return r;
	}
	if (run == migrate_target_run && migrate_target_pushed(j))
		return push_target(req, resp, j, name, err);
	/* From an image or as a copy: long, so cancellable (storage sees the flag). */
	return (run == instance_create_run
			? api_async
			: api_async_cancellable)(req, resp, "Creating instance",
						 resources_for(req->project, name), run, j,
						 instance_job_free, err);
}

static int get_instance(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *profiles = NULL;
	json_t *inst = NULL;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	resp->etag = instance_etag(inst);
	r = instance_expand_profiles(req->d->db, req->project, &profiles, err);
	if (r >= 0)
		r = instance_expand(inst, profiles);
	if (r < 0) {
		json_decref(inst);
		return r;
	}
	instance_status_refresh(req->d, req->project, inst);
	if (req->recursion >= 1) {
		make_full(req->d, req->project, inst);
		r = add_snapshots(req->d->db, req->project, inst, err);
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
	int r = db_instance_get(req->d->db, req->project, req->params[0], &cur, err);

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
	return api_async(req, resp, description, resources_for(req->project, req->params[0]), run,
			 j, instance_job_free, err);
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
	r = db_snapshot_get(req->d->db, req->project, req->params[0], snap_name, &snap, err);
	if (r < 0)
		return r;
	j = instance_job_new(req->d, req->project, req->params[0], NULL);
	if (!j || !(j->restore = strdup(snap_name))) {
		instance_job_free(j);
		return -ENOMEM;
	}
	return start_volume_job(req, resp, j, "Restoring snapshot", instance_restore_run, err);
}

static int update_instance(struct api_request *req, struct api_response *resp,
			   struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description", "architecture", "ephemeral",
					     "profiles"};
	json_auto_t *cur = NULL;
	const struct instance_driver *drv = NULL;
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
		json_object_set_new(next, "config",
				    berth_json_object_or_empty(req->body, "config"));
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
	r = instance_check_profiles(req->d->db, req->project, json_object_get(next, "profiles"),
				    err);
	if (r >= 0)
		r = project_limits_check_instance(req->d->db, req->project, next, false, err);
	if (r < 0) {
		json_decref(next);
		return r;
	}
	instance_keep_volatile(cur, next);
	record_driver(cur, &drv);
	j = instance_job_new(req->d, req->project, req->params[0], drv);
	if (!j) {
		json_decref(next);
		return -ENOMEM;
	}
	j->object = next;
	if (patch) {
		/* LXD answers PATCH synchronously; this handler already runs on a worker, so
		 * the hot-plug of NICs and proxy devices can happen right here. */
		json_t *md = NULL;

		r = instance_update_run(NULL, j, err);
		if (r >= 0 && j->notice)
			md = json_pack("{s:s}", "warning", j->notice);
		instance_job_free(j);
		return r < 0 ? r : api_sync(resp, md);
	}
	return api_async(req, resp, "Updating instance",
			 resources_for(req->project, req->params[0]), instance_update_run, j,
			 instance_job_free, err);
}

static int put_instance(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_instance(req, resp, err, false);
}

static int patch_instance(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	return update_instance(req, resp, err, true);
}

/* POST {"migration": true, "live", "instance_only", "target"}: the source of a migration, a
 * websocket operation whose metadata holds the secrets (daemon/instance/migrate_source.h);
 * of snapshot `snap` (not NULL) of the instance: POST on the snapshot. */
int api_instance_migrate(struct api_request *req, struct api_response *resp, const char *snap,
			 struct berth_error *err)
{
	struct migrate_source *s = NULL;
	int r = api_migrate_peer_check(req, json_object_get(req->body, "target"), err);

	if (r < 0)
		return r;
	r = migrate_source_new(req->d, req->project, req->params[0],
			       berth_json_bool(req->body, "live", false),
			       berth_json_bool(req->body, "instance_only", false),
			       json_object_get(req->body, "target"), &s, err);

	if (r >= 0 && snap)
		r = migrate_source_set_snapshot(s, snap, err);
	if (r < 0) {
		migrate_source_free(s);
		return r;
	}
	return api_migrate_source_start(req, resp, s, "Migrating instance",
					resources_for(req->project, req->params[0]), err);
}

int api_migrate_source_start(struct api_request *req, struct api_response *resp,
			     struct migrate_source *s, const char *description, json_t *resources,
			     struct berth_error *err)
{
	struct operation_spec os = {
		.class = "websocket",
		.description = description,
		.project = api_event_project(req),
		.resources = resources,
		.may_cancel = true,
		.run = migrate_source_run,
		.data = s,
		.free_data = migrate_source_free,
		.connect = migrate_source_connect,
		.cancel = migrate_source_cancel,
	};
	int r;

	if (migrate_source_pushes(s)) {
		os.class = "task";
		os.connect = NULL;
	}
	r = operation_create(req->d->ops, &os, &resp->op);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create operation");
	operation_set_metadata(resp->op, migrate_source_metadata(s));
	resp->type = API_ASYNC;
	return 0;
}

static int post_instance(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	json_auto_t *cur = NULL;
	const struct instance_driver *drv = NULL;
	const char *name;
	struct instance_job *j;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	if (berth_json_bool(req->body, "migration", false))
		return api_instance_migrate(req, resp, NULL, err);
	name = berth_json_string(req->body, "name");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_instance(name, err);
	if (r < 0)
		return r;
	r = db_instance_get(req->d->db, req->project, req->params[0], &cur, err);
	if (r < 0)
		return r;
	record_driver(cur, &drv);
	j = instance_job_new(req->d, req->project, req->params[0], drv);
	if (!j || !(j->new_name = strdup(name))) {
		instance_job_free(j);
		return -ENOMEM;
	}
	r = instance_rename_check(j, err);
	if (r < 0) {
		instance_job_free(j);
		return r;
	}
	return start_volume_job(req, resp, j, "Renaming instance", instance_rename_run, err);
}

static int delete_instance(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	json_auto_t *cur = NULL;
	const struct instance_driver *drv = NULL;
	struct instance_job *j;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &cur, err);

	if (r < 0)
		return r;
	record_driver(cur, &drv);
	j = instance_job_new(req->d, req->project, req->params[0], drv);
	if (!j)
		return -ENOMEM;
	r = instance_delete_check(j, cur, err);
	if (r < 0) {
		instance_job_free(j);
		return r;
	}
	return start_volume_job(req, resp, j, "Deleting instance", instance_delete_run, err);
}

static int get_state(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	const struct instance_driver *drv = NULL;
	json_auto_t *inst = NULL;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	if (!record_driver(inst, &drv))
		return api_sync(resp, instance_state(req->d, req->project, inst));
	return api_sync(resp, drv->state(req->d, req->project, req->params[0]));
}

/* A stop's "timeout" in seconds: any negative means the default (as -1 does), and what
 * does not fit an int waits as long as one can. */
static int state_timeout(json_int_t t)
{
	if (t < 0)
		return -1;
	return t > INT_MAX ? INT_MAX : (int)t;
}

static int queue_state(struct api_request *req, struct api_response *resp, const json_t *inst,
		       const json_t *body, struct berth_error *err)
{
	static const char *const actions[] = {"start", "stop", "restart", "freeze", "unfreeze"};
	static const char *const descs[] = {"Starting instance", "Stopping instance",
					    "Restarting instance", "Freezing instance",
					    "Unfreezing instance"};
	const char *action = berth_json_string(body, "action");
	json_t *timeout = json_object_get(body, "timeout");
	const char *name = req->params[0];
	const struct instance_driver *drv = NULL;
	struct instance_job *j;
	size_t a;
	int r;

	for (a = 0; action && a < ARRAY_SIZE(actions); a++)
		if (streq(action, actions[a]))
			break;
	if (!action || a == ARRAY_SIZE(actions))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Unknown action \"%s\"",
				       action ? action : "");
	if (berth_json_bool(body, "stateful", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Stateful stop and start are not supported");
	r = instance_driver_of(inst, &drv, err);
	if (r < 0)
		return r;
	j = instance_job_new(req->d, req->project, name, drv);
	if (!j || !(j->action = strdup(action))) {
		instance_job_free(j);
		return -ENOMEM;
	}
	j->timeout = json_is_integer(timeout) ? state_timeout(json_integer_value(timeout)) : -1;
	j->force = berth_json_bool(body, "force", false);
	r = instance_state_check(j, action, err);
	if (r < 0) {
		instance_job_free(j);
		return r;
	}
	return api_async(req, resp, descs[a], resources_for(req->project, name), instance_state_run,
			 j, instance_job_free, err);
}

static int put_state(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	r = api_require_body(req, err);
	if (r < 0)
		return r;
	return queue_state(req, resp, inst, req->body, err);
}

/* The console log the monitor keeps in the run directory (text/plain, empty when the
 * container never ran). */
static int get_console_log(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL, *path = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r = api_instance_run_dir(req, &rundir, err);

	if (r < 0)
		return r;
	path = berth_strdup_printf("%s/console.log", rundir);
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
	_cleanup_free_ char *rundir = NULL, *path = NULL;
	int r = api_instance_run_dir(req, &rundir, err);

	if (r < 0)
		return r;
	path = berth_strdup_printf("%s/console.log", rundir);
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
