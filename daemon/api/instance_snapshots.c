/* daemon/api/instance_snapshots.c: /1.0/instances/{name}/snapshots[/{snap}]: create
 * (snap0, snap1, ... or snapshots.pattern), list, get, rename, delete. Restores are a PUT
 * on the instance (instances.c).
 *
 * Disk and rows, as for custom volumes: a snapshot is taken, then recorded (a failed
 * insert removes it); a deletion removes the rows, then the snapshot; a rename renames on
 * disk inside the row's transaction. A berthd killed between the steps leaves a snapshot
 * without a row, which the start-up reconciliation (storage.c) removes.
 *
 * Expiry: a snapshot's expires_at comes from the request or, when absent, from the
 * instance's snapshots.expiry ("1d", "2w 3d", LXD's units M H d w m y); expired snapshots
 * are removed at start and then every minute (api_snapshots_prune).
 *
 * Scheduling: every minute, instances whose snapshots.schedule fires in that minute get a
 * snapshot named by snapshots.pattern; stopped instances (all of them until the runtime
 * exists) only with snapshots.schedule.stopped=true, as in LXD. */
#define LOG_CATEGORY "snapshots"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/api/api.h"
#include "daemon/api/instance_volume.h"
#include "daemon/api/storage.h"
#include "daemon/db/db.h"
#include "daemon/instance/schedule.h"
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
	berth_test_pause("instance-snapshot-after-disk");
	r = db_snapshot_create(j->project, j->instance, j->snap, pool ? pool->name : NULL, err);
	if (r < 0) {
		if (pool)
			pool->driver->volume_snapshot_delete(pool, &j->v.vol, j->name, NULL);
		return r;
	}
	snap_event(j, "instance-snapshot-created", j->name);
	return 0;
}

/* snapshots.expiry ("1M 2H 3d 4w 5m 6y", each part optional) -> seconds. -EINVAL. */
static int parse_expiry(const char *s, int64_t *ret)
{
	int64_t total = 0;

	while (*s) {
		char *end;
		long long n;
		int64_t unit;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		n = strtoll(s, &end, 10);
		if (end == s || n < 0)
			return -EINVAL;
		switch (*end) {
		case 'M': unit = 60; break;
		case 'H': unit = 3600; break;
		case 'd': unit = 86400; break;
		case 'w': unit = 7 * 86400; break;
		case 'm': unit = 30 * 86400; break;
		case 'y': unit = 365 * 86400; break;
		default: return -EINVAL;
		}
		total += (int64_t)n * unit;
		s = end + 1;
	}
	*ret = total;
	return 0;
}

/* expires_at for a new snapshot: the request's, else now + snapshots.expiry, else NULL
 * (never). */
static int snapshot_expiry(const json_t *body, const json_t *inst, char **ret,
			   struct berth_error *err)
{
	json_t *given = json_object_get(body, "expires_at");
	const char *expiry = berth_json_string(json_object_get(inst, "config"),
					       "snapshots.expiry");
	int64_t secs = 0;
	time_t t;
	struct tm tm;
	char buf[64];

	*ret = NULL;
	if (json_is_string(given)) {
		*ret = strdup(json_string_value(given));
		return *ret ? 0 : -ENOMEM;
	}
	if (!expiry || !*expiry)
		return 0;
	if (parse_expiry(expiry, &secs) < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid snapshots.expiry \"%s\"", expiry);
	if (secs == 0)
		return 0;
	t = time(NULL) + (time_t)secs;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

static int create_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_(snap_job_freep) struct snap_job *j = NULL;
	_cleanup_free_ char *gen = NULL;
	json_auto_t *inst = NULL;
	json_auto_t *list = NULL;
	_cleanup_free_ char *expires = NULL;
	const char *name, *pattern;
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
	r = snapshot_expiry(req->body, inst, &expires, err);
	if (r < 0)
		return r;
	j->snap = json_pack("{s:s, s:s?}", "name", name, "expires_at", expires);
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

/* Whether RFC 3339 `ts` (UTC, "Z") is set and before `now` (same format). The zero time
 * "0001-01-01T00:00:00Z" means never. Same-format UTC strings compare as text. */
static bool expired(const char *ts, const char *now)
{
	return ts && *ts && !berth_startswith(ts, "0001-") && strcmp(ts, now) < 0;
}

static int prune_instance(struct berth_daemon *d, const char *project, const char *name,
			  const char *now)
{
	struct berth_error err = {0};
	json_auto_t *snaps = NULL;
	json_t *s;
	size_t i;
	int r = db_snapshot_list(project, name, &snaps, &err), n = 0;

	json_array_foreach(snaps, i, s) {
		struct snap_job j = {.d = d, .project = (char *)project, .instance = (char *)name,
				     .name = (char *)berth_json_string(s, "name")};

		if (!expired(berth_json_string(s, "expires_at"), now))
			continue;
		r = instance_volume_open(d, project, name, &j.v, &err);
		if (r >= 0)
			r = run_snapshot_delete(NULL, &j, &err);
		instance_volume_release(&j.v);
		if (r < 0)
			log_warn("Removing expired snapshot \"%s/%s\": %s, ignoring", name, j.name,
				 berth_error_msg(&err, r));
		else
			n++;
		berth_error_release(&err);
	}
	berth_error_release(&err);
	return n;
}

int api_snapshots_prune(struct berth_daemon *d)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	char now[BERTH_RFC3339_MAX];
	json_t *inst;
	size_t i;
	int r = db_instance_list(NULL, &list, &err), n = 0;

	if (r < 0) {
		log_warn("Cannot list instances to prune snapshots: %s, ignoring",
			 berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	berth_now_rfc3339(now);
	json_array_foreach(list, i, inst)
		n += prune_instance(d, berth_json_string(inst, "project") ?: "default",
				    berth_json_string(inst, "name") ?: "", now);
	if (n > 0)
		log_info("Removed %d expired snapshot%s", n, n == 1 ? "" : "s");
	return n;
}

static int take_scheduled(struct berth_daemon *d, const json_t *inst,
			  struct berth_error *err)
{
	const char *project = berth_json_string(inst, "project") ?: "default";
	const char *pattern = berth_json_string(json_object_get(inst, "config"),
						"snapshots.pattern");
	struct snap_job j = {.d = d, .project = (char *)project,
			     .instance = (char *)berth_json_string(inst, "name")};
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *expires = NULL;
	json_auto_t *list = NULL;
	int r = db_snapshot_list(project, j.instance, &list, err);

	if (r < 0)
		return r;
	name = next_name(pattern && *pattern ? pattern : "snap%d", list);
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "No free snapshot name for the pattern");
	r = snapshot_expiry(NULL, inst, &expires, err);
	if (r < 0)
		return r;
	j.name = name;
	j.snap = json_pack("{s:s, s:s?}", "name", name, "expires_at", expires);
	if (!j.snap)
		return -ENOMEM;
	r = instance_volume_open(d, project, j.instance, &j.v, err);
	if (r >= 0)
		r = run_snapshot(NULL, &j, err);
	instance_volume_release(&j.v);
	json_decref(j.snap);
	return r;
}

int api_snapshots_schedule(struct berth_daemon *d, time_t minute)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	json_t *inst;
	struct tm tm;
	size_t i;
	int r = db_instance_list(NULL, &list, &err), n = 0;

	if (r < 0) {
		log_warn("Cannot list instances to take scheduled snapshots: %s, ignoring",
			 berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	localtime_r(&minute, &tm);
	json_array_foreach(list, i, inst) {
		const json_t *config = json_object_get(inst, "config");
		const char *spec = berth_json_string(config, "snapshots.schedule");
		const char *stopped = berth_json_string(config, "snapshots.schedule.stopped");
		bool running = streq(berth_json_string(inst, "status") ?: "", "Running");
		bool fires = false;

		if (!spec || !*spec || (!running && !(stopped && streq(stopped, "true"))))
			continue;
		if (schedule_matches(spec, &tm, &fires) < 0) {
			log_warn("Instance \"%s\": invalid snapshots.schedule \"%s\", ignoring",
				 berth_json_string(inst, "name"), spec);
			continue;
		}
		if (!fires)
			continue;
		r = take_scheduled(d, inst, &err);
		if (r < 0)
			log_warn("Instance \"%s\": scheduled snapshot: %s, ignoring",
				 berth_json_string(inst, "name"), berth_error_msg(&err, r));
		else
			n++;
		berth_error_release(&err);
	}
	return n;
}

/* One tick's work on the thread pool (not an operation: nothing a client waits for). */
struct tick {
	uv_work_t work;
	struct berth_daemon *d;
	time_t minute;
};

static void tick_work(uv_work_t *w)
{
	struct tick *t = container_of(w, struct tick, work);

	api_snapshots_schedule(t->d, t->minute);
	api_snapshots_prune(t->d);
}

static void tick_done(uv_work_t *w, int status)
{
	free(container_of(w, struct tick, work));
}

void api_snapshots_tick(struct berth_daemon *d, time_t minute)
{
	struct tick *t = calloc(1, sizeof(*t));

	if (!t)
		return;
	t->d = d;
	t->minute = minute;
	if (uv_queue_work(d->loop, &t->work, tick_work, tick_done) < 0)
		free(t);
}

const struct api_route api_instance_snapshot_routes[] = {
	{"GET", "/1.0/instances/{}/snapshots", list_snapshots, NULL},
	{"POST", "/1.0/instances/{}/snapshots", create_snapshot, NULL},
	{"GET", "/1.0/instances/{}/snapshots/{}", get_snapshot, NULL},
	{"POST", "/1.0/instances/{}/snapshots/{}", post_snapshot, NULL},
	{"DELETE", "/1.0/instances/{}/snapshots/{}", delete_snapshot, NULL},
	{0},
};
