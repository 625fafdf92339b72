/* daemon/api/instance_snapshots.c: /1.0/instances/{name}/snapshots[/{snap}]: create
 * (snap0, snap1, ... or snapshots.pattern), list, get, rename, expiry update (PUT,
 * PATCH), delete. Restores are a PUT
 * on the instance (instances.c).
 *
 * The handlers parse, call daemon/instance/snapshot.c (disk and rows, expiry, names; the
 * schedule and pruning live there too) and render. */
#include "daemon/api/instance_snapshots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/api/api.h"
#include "daemon/db/db.h"
#include "daemon/instance/snapshot.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct berth_json_field snapshot_fields[] = {
	{"name", BERTH_JSON_STRING, false, true},    {"stateful", BERTH_JSON_BOOL, false, true},
	{"expires_at", BERTH_JSON_ANY, false, true}, {"migration", BERTH_JSON_BOOL, false, true},
	{"live", BERTH_JSON_BOOL, false, true},	     {"target", BERTH_JSON_ANY, false, true},
};

json_t *instance_snapshot_render(const json_t *snap, const json_t *inst)
{
	json_t *s = json_deep_copy(snap);

	if (!s)
		return NULL;
	json_object_set(s, "architecture", json_object_get(inst, "architecture"));
	json_object_set(s, "profiles", json_object_get(inst, "profiles"));
	json_object_set(s, "ephemeral", json_object_get(inst, "ephemeral"));
	json_object_set(s, "expanded_config", json_object_get(s, "config"));
	json_object_set(s, "expanded_devices", json_object_get(s, "devices"));
	json_object_set_new(s, "last_used_at", json_string("1970-01-01T00:00:00Z"));
	json_object_set_new(s, "size", json_integer(-1));
	return s;
}

static json_t *resources(const struct api_request *req)
{
	_cleanup_free_ char *u = api_url("instances", req->params[0], req->project);

	return u ? json_pack("{s:[s]}", "instances", u) : NULL;
}

static int list_snapshots(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	json_auto_t *inst = NULL;
	json_auto_t *list = NULL;
	json_auto_t *out = json_array();
	json_t *s;
	size_t i;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = db_snapshot_list(req->d->db, req->project, req->params[0], &list, err);
	if (r < 0)
		return r;
	json_array_foreach(list, i, s) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u = snapshot_url(req->params[0],
							      berth_json_string(s, "name"),
							      req->project);
			json_array_append_new(out, json_string(u));
		} else
			json_array_append_new(out, instance_snapshot_render(s, inst));
	}
	return api_sync(resp, TAKE_PTR(out));
}

static int get_snapshot(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	json_auto_t *snap = NULL;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = db_snapshot_get(req->d->db, req->project, req->params[0], req->params[1], &snap,
				    err);
	if (r < 0)
		return r;
	return api_sync(resp, instance_snapshot_render(snap, inst));
}

/* An operation's data: the snapshot, and what its step needs. */
struct snap_job {
	struct snapshot *s; /* owned */
	char *new_name;	    /* owned: rename only */
	char *expires_at;   /* owned: create and update; NULL: never */
};

static void snap_job_free(void *p)
{
	struct snap_job *j = p;

	if (!j)
		return;
	snapshot_free(j->s);
	free(j->new_name);
	free(j->expires_at);
	free(j);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct snap_job *, snap_job_free)

static int snap_job_new(struct api_request *req, const char *name, struct snap_job **ret,
			struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	r = snapshot_open(req->d, req->project, req->params[0], name, &j->s, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(j);
	return 0;
}

static int run_snapshot(struct operation *op, void *data, struct berth_error *err)
{
	struct snap_job *j = data;

	return snapshot_create(j->s, j->expires_at, err);
}

static int create_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	_cleanup_free_ char *gen = NULL;
	json_auto_t *inst = NULL;
	json_auto_t *list = NULL;
	const char *name;
	int r = api_require_body(req, err);

	if (r >= 0)
		r = berth_json_check(req->body, snapshot_fields, ARRAY_SIZE(snapshot_fields),
				     "snapshot", err);
	if (r >= 0)
		r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);
	if (r >= 0)
		r = db_snapshot_list(req->d->db, req->project, req->params[0], &list, err);
	if (r < 0)
		return r;
	if (berth_json_bool(req->body, "stateful", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Stateful snapshots are not supported");
	name = berth_json_string(req->body, "name");
	if (!name || !*name) {
		name = gen = snapshot_next_name(berth_json_string(json_object_get(inst, "config"),
								  "snapshots.pattern"),
						list);
		if (!name)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "No free snapshot name for the pattern");
	}
	r = berth_name_check_entity("snapshot name", name, err);
	if (r < 0)
		return r;
	if (strchr(name, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Snapshot names may not contain slashes");
	r = snap_job_new(req, name, &j, err);
	if (r < 0)
		return r;
	r = snapshot_expiry(req->body, inst, &j->expires_at, err);
	if (r < 0)
		return r;
	return api_async(req, resp, "Snapshotting instance", resources(req), run_snapshot,
			 TAKE_PTR(j), snap_job_free, err);
}

static int run_snapshot_rename(struct operation *op, void *data, struct berth_error *err)
{
	struct snap_job *j = data;

	return snapshot_rename(j->s, j->new_name, err);
}

static int run_snapshot_delete(struct operation *op, void *data, struct berth_error *err)
{
	struct snap_job *j = data;

	return snapshot_delete(j->s, err);
}

static int post_snapshot(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	json_auto_t *snap = NULL;
	const char *name;
	int r = api_require_body(req, err);

	if (r >= 0 && berth_json_bool(req->body, "migration", false))
		return api_instance_migrate(req, resp, req->params[1], err);
	if (r >= 0)
		r = db_snapshot_get(req->d->db, req->project, req->params[0], req->params[1], &snap,
				    err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (!name || !*name || strchr(name, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "A new snapshot name without slashes is required");
	r = berth_name_check_entity("snapshot name", name, err);
	if (r >= 0)
		r = snap_job_new(req, req->params[1], &j, err);
	if (r < 0)
		return r;
	j->new_name = strdup(name);
	if (!j->new_name)
		return -ENOMEM;
	return api_async(req, resp, "Renaming snapshot", resources(req), run_snapshot_rename,
			 TAKE_PTR(j), snap_job_free, err);
}

static int run_snapshot_update(struct operation *op, void *data, struct berth_error *err)
{
	struct snap_job *j = data;

	return snapshot_set_expiry(j->s, j->expires_at, err);
}

/* PUT and PATCH: of InstanceSnapshotPut only expires_at can change, as in LXD 5.0 (the
 * rest is the instance's and ignored; `lxc config edit INST/SNAP` sends it all). PUT
 * without expires_at means never; PATCH without it keeps the current one. */
static int update_snapshot(struct api_request *req, struct api_response *resp, bool patch,
			   struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	json_auto_t *snap = NULL;
	json_t *given;
	int r = api_require_body(req, err);

	if (r >= 0)
		r = db_snapshot_get(req->d->db, req->project, req->params[0], req->params[1], &snap,
				    err);
	if (r >= 0)
		r = snap_job_new(req, req->params[1], &j, err);
	if (r < 0)
		return r;
	given = json_object_get(req->body, "expires_at");
	if (patch && !given)
		given = json_object_get(snap, "expires_at");
	r = snapshot_expiry_parse(given, &j->expires_at, err);
	if (r < 0)
		return r;
	return api_async(req, resp, "Updating snapshot", resources(req), run_snapshot_update,
			 TAKE_PTR(j), snap_job_free, err);
}

static int put_snapshot(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_snapshot(req, resp, false, err);
}

static int patch_snapshot(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	return update_snapshot(req, resp, true, err);
}

static int delete_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	json_auto_t *snap = NULL;
	int r = db_snapshot_get(req->d->db, req->project, req->params[0], req->params[1], &snap,
				err);

	if (r >= 0)
		r = snap_job_new(req, req->params[1], &j, err);
	if (r < 0)
		return r;
	return api_async(req, resp, "Deleting snapshot", resources(req), run_snapshot_delete,
			 TAKE_PTR(j), snap_job_free, err);
}

const struct api_route api_instance_snapshot_routes[] = {
	{"GET", "/1.0/instances/{}/snapshots", list_snapshots, NULL},
	{"POST", "/1.0/instances/{}/snapshots", create_snapshot, NULL},
	{"GET", "/1.0/instances/{}/snapshots/{}", get_snapshot, NULL},
	{"POST", "/1.0/instances/{}/snapshots/{}", post_snapshot, NULL},
	{"PUT", "/1.0/instances/{}/snapshots/{}", put_snapshot, NULL},
	{"PATCH", "/1.0/instances/{}/snapshots/{}", patch_snapshot, NULL},
	{"DELETE", "/1.0/instances/{}/snapshots/{}", delete_snapshot, NULL},
	{0},
};
