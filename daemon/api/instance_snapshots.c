/* daemon/api/instance_snapshots.c: /1.0/instances/{name}/snapshots[/{snap}]: create
 * (snap0, snap1, ... or snapshots.pattern), list, get, rename, delete. Restores are a PUT
 * on the instance (instances.c).
 *
 * Disk and rows, as for custom volumes: a snapshot is taken, then recorded (a failed
 * insert removes it); a deletion removes the rows, then the snapshot; a rename renames on
 * disk inside the row's transaction. A berthd killed between the steps leaves a snapshot
 * without a row, which the start-up reconciliation (storage.c) removes. */
#define LOG_CATEGORY "instances"
#include <stdio.h>
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/api/instance_volume.h"
#include "daemon/api/storage.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

static const struct berth_json_field snapshot_fields[] = {
	{"name", BERTH_JSON_STRING, false, true},
	{"stateful", BERTH_JSON_BOOL, false, true},
	{"expires_at", BERTH_JSON_ANY, false, true},
	{"migration", BERTH_JSON_BOOL, false, true},
	{"live", BERTH_JSON_BOOL, false, true},
	{"target", BERTH_JSON_ANY, false, true},
};

void instance_volume_release(struct instance_volume *v)
{
	storage_pool_free(v->pool);
	free(v->disk_name);
	*v = (struct instance_volume){0};
}

int instance_volume_open(struct berth_daemon *d, const char *project, const char *name,
			 struct instance_volume *ret, struct berth_error *err)
{
	_cleanup_free_ char *pool_name = NULL;
	json_auto_t *pool = NULL;
	int r = db_instance_pool(project, name, &pool_name, err);

	*ret = (struct instance_volume){0};
	if (r == -ENOENT) {
		berth_error_release(err);
		return 0;
	}
	if (r >= 0)
		r = db_pool_get(pool_name, &pool, err);
	if (r >= 0)
		r = storage_pool_new(d->dir, pool, &ret->pool, err);
	if (r < 0)
		return r;
	ret->disk_name = storage_vol_disk_name(project, name);
	if (!ret->disk_name) {
		instance_volume_release(ret);
		return -ENOMEM;
	}
	ret->vol = (struct storage_vol){STORAGE_VOL_CONTAINER, ret->disk_name};
	return 0;
}

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

static char *snapshot_url(const char *inst, const char *snap, const char *project)
{
	_cleanup_free_ char *i = berth_url_encode(inst);
	_cleanup_free_ char *s = berth_url_encode(snap);
	bool def = streq(project, "default");

	if (!i || !s)
		return NULL;
	return berth_strdup_printf("/1.0/instances/%s/snapshots/%s%s%s", i, s,
				   def ? "" : "?project=", def ? "" : project);
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
	int r = db_instance_get(req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = db_snapshot_list(req->project, req->params[0], &list, err);
	if (r < 0)
		return r;
	json_array_foreach(list, i, s) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u = snapshot_url(
				req->params[0], berth_json_string(s, "name"), req->project);
			json_array_append_new(out, json_string(u));
		} else
			json_array_append_new(out, instance_snapshot_render(s, inst));
	}
	return api_sync(resp, TAKE_PTR(out));
}

static int get_snapshot(struct api_request *req, struct api_response *resp,
			struct berth_error *err)
{
	json_auto_t *inst = NULL;
	json_auto_t *snap = NULL;
	int r = db_instance_get(req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = db_snapshot_get(req->project, req->params[0], req->params[1], &snap, err);
	if (r < 0)
		return r;
	return api_sync(resp, instance_snapshot_render(snap, inst));
}

/* The first name of the pattern ("snap%d" by default) that no snapshot has. */
static char *next_name(const char *pattern, const json_t *existing)
{
	for (int n = 0; n < 100000; n++) {
		_cleanup_free_ char *name = NULL;
		const char *pct = strstr(pattern, "%d");
		bool taken = false;
		json_t *s;
		size_t i;

		if (!pct)
			return n == 0 ? strdup(pattern) : NULL;
		name = berth_strdup_printf("%.*s%d%s", (int)(pct - pattern), pattern, n, pct + 2);
		if (!name)
			return NULL;
		json_array_foreach(existing, i, s)
			taken = taken || streq(berth_json_string(s, "name") ?: "", name);
		if (!taken)
			return TAKE_PTR(name);
	}
	return NULL;
}

struct snap_job {
	struct berth_daemon *d;
	char *project;
	char *instance;
	char *name;
	char *new_name;
	json_t *snap; /* owned: the row to record */
	struct instance_volume v;
	bool done;
};

static void snap_job_free(void *p)
{
	struct snap_job *j = p;

	if (!j)
		return;
	free(j->project);
	free(j->instance);
	free(j->name);
	free(j->new_name);
	json_decref(j->snap);
	instance_volume_release(&j->v);
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
	j->d = req->d;
	j->project = strdup(req->project);
	j->instance = strdup(req->params[0]);
	j->name = strdup(name);
	if (!j->project || !j->instance || !j->name)
		return -ENOMEM;
	r = instance_volume_open(req->d, req->project, req->params[0], &j->v, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(j);
	return 0;
}

static void snap_event(struct snap_job *j, const char *action, const char *name)
{
	_cleanup_free_ char *url = snapshot_url(j->instance, name, j->project);

	events_lifecycle(j->d->events, j->project, action, url, NULL);
}

static int run_snapshot(struct operation *op, void *data, struct berth_error *err)
{
	struct snap_job *j = data;
	struct storage_pool *pool = j->v.pool;
	int r = 0;

	if (pool)
		r = pool->driver->volume_snapshot(pool, &j->v.vol, j->name, err);
	if (r < 0)
		return r;
	r = db_snapshot_create(j->project, j->instance, j->snap, pool ? pool->name : NULL, err);
	if (r < 0) {
		if (pool)
			pool->driver->volume_snapshot_delete(pool, &j->v.vol, j->name, NULL);
		return r;
	}
	snap_event(j, "instance-snapshot-created", j->name);
	return 0;
}

static int create_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	_cleanup_free_ char *gen = NULL;
	json_auto_t *inst = NULL;
	json_auto_t *list = NULL;
	const char *name, *pattern;
	json_t *expires;
	int r = api_require_body(req, err);

	if (r >= 0)
		r = berth_json_check(req->body, snapshot_fields, ARRAY_SIZE(snapshot_fields),
				     "snapshot", err);
	if (r >= 0)
		r = db_instance_get(req->project, req->params[0], &inst, err);
	if (r >= 0)
		r = db_snapshot_list(req->project, req->params[0], &list, err);
	if (r < 0)
		return r;
	if (berth_json_bool(req->body, "stateful", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Stateful snapshots are not supported");
	name = berth_json_string(req->body, "name");
	if (!name || !*name) {
		pattern = berth_json_string(json_object_get(inst, "config"), "snapshots.pattern");
		name = gen = next_name(pattern && *pattern ? pattern : "snap%d", list);
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
	expires = json_object_get(req->body, "expires_at");
	j->snap = json_pack("{s:s, s:s?}", "name", name, "expires_at",
			    json_is_string(expires) ? json_string_value(expires) : NULL);
	if (!j->snap)
		return -ENOMEM;
	return api_async(req, resp, "Snapshotting instance", resources(req), run_snapshot,
			 TAKE_PTR(j), snap_job_free, err);
}

static int rename_hook(void *data, struct berth_error *err)
{
	struct snap_job *j = data;
	int r;

	if (!j->v.pool)
		return 0;
	r = j->v.pool->driver->volume_snapshot_rename(j->v.pool, &j->v.vol, j->name,
						      j->new_name, err);
	j->done = r >= 0;
	return r;
}

static int run_snapshot_rename(struct operation *op, void *data, struct berth_error *err)
{
	struct snap_job *j = data;
	int r = db_snapshot_rename(j->project, j->instance, j->name, j->new_name, rename_hook, j,
				   err);

	if (r < 0) {
		if (j->done)
			j->v.pool->driver->volume_snapshot_rename(j->v.pool, &j->v.vol,
								  j->new_name, j->name, NULL);
		return r;
	}
	snap_event(j, "instance-snapshot-renamed", j->new_name);
	return 0;
}

static int run_snapshot_delete(struct operation *op, void *data, struct berth_error *err)
{
	struct snap_job *j = data;
	int r = db_snapshot_delete(j->project, j->instance, j->name, NULL, NULL, err);

	if (r < 0)
		return r;
	if (j->v.pool) {
		r = j->v.pool->driver->volume_snapshot_delete(j->v.pool, &j->v.vol, j->name, err);
		if (r < 0)
			log_warn("Snapshot \"%s/%s\": %s; the start-up reconciliation will remove it",
				 j->instance, j->name, berth_error_msg(err, r));
		berth_error_release(err);
	}
	snap_event(j, "instance-snapshot-deleted", j->name);
	return 0;
}

static int post_snapshot(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	json_auto_t *snap = NULL;
	const char *name;
	int r = api_require_body(req, err);

	if (r >= 0 && berth_json_bool(req->body, "migration", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Migration is not supported by this berthd yet");
	if (r >= 0)
		r = db_snapshot_get(req->project, req->params[0], req->params[1], &snap, err);
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
	return api_async(req, resp, "Renaming snapshot",
			 resources(req),
			 run_snapshot_rename, TAKE_PTR(j), snap_job_free, err);
}

static int delete_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	json_auto_t *snap = NULL;
	int r = db_snapshot_get(req->project, req->params[0], req->params[1], &snap, err);

	if (r >= 0)
		r = snap_job_new(req, req->params[1], &j, err);
	if (r < 0)
		return r;
	return api_async(req, resp, "Deleting snapshot",
			 resources(req),
			 run_snapshot_delete, TAKE_PTR(j), snap_job_free, err);
}

const struct api_route api_instance_snapshot_routes[] = {
	{"GET", "/1.0/instances/{}/snapshots", list_snapshots, NULL},
	{"POST", "/1.0/instances/{}/snapshots", create_snapshot, NULL},
	{"GET", "/1.0/instances/{}/snapshots/{}", get_snapshot, NULL},
	{"POST", "/1.0/instances/{}/snapshots/{}", post_snapshot, NULL},
	{"DELETE", "/1.0/instances/{}/snapshots/{}", delete_snapshot, NULL},
	{0},
};
