/* daemon/instance/snapshot.c: an instance's snapshots (see the header): create, rename,
 * delete, names and expiry; the schedule tick and pruning.
 *
 * Expiry: a snapshot's expires_at comes from the request or, when absent, from the
 * instance's snapshots.expiry ("1d", "2w 3d", LXD's units M H d w m y); expired snapshots
 * are removed at start and then every minute (snapshots_prune).
 *
 * Scheduling: every minute, instances whose snapshots.schedule fires in that minute get a
 * snapshot named by snapshots.pattern; stopped instances (all of them until the runtime
 * exists) only with snapshots.schedule.stopped=true, as in LXD. */
#define LOG_CATEGORY "snapshots"
#include "daemon/instance/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/db/db.h"
#include "daemon/instance/schedule.h"
#include "daemon/warnings.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

char *snapshot_url(const char *inst, const char *snap, const char *project)
{
	_cleanup_free_ char *i = berth_url_encode(inst);
	_cleanup_free_ char *s = berth_url_encode(snap);
	bool def = streq(project, "default");

	if (!i || !s)
		return NULL;
	return berth_strdup_printf("/1.0/instances/%s/snapshots/%s%s%s", i, s,
				   def ? "" : "?project=", def ? "" : project);
}

char *snapshot_next_name(const char *pattern, const json_t *existing)
{
	if (!pattern || !*pattern)
		pattern = "snap%d";
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

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	free(s->project);
	free(s->instance);
	free(s->name);
	instance_volume_release(&s->v);
	free(s);
}

int snapshot_open(struct berth_daemon *d, const char *project, const char *instance,
		  const char *name, struct snapshot **ret, struct berth_error *err)
{
	_cleanup_(snapshot_freep) struct snapshot *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->d = d;
	s->project = strdup(project);
	s->instance = strdup(instance);
	s->name = strdup(name);
	if (!s->project || !s->instance || !s->name)
		return -ENOMEM;
	r = instance_volume_open(d, project, instance, &s->v, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

static void snapshot_event(const struct snapshot *s, const char *action)
{
	_cleanup_free_ char *url = snapshot_url(s->instance, s->name, s->project);

	events_lifecycle(s->d->events, s->project, action, url, NULL);
}

int snapshot_create(struct snapshot *s, const char *expires_at, struct berth_error *err)
{
	struct storage_pool *pool = s->v.pool;
	json_auto_t *row = json_pack("{s:s, s:s?}", "name", s->name, "expires_at", expires_at);
	int r = 0;

	if (!row)
		return -ENOMEM;
	if (pool)
		r = pool->driver->volume_snapshot(pool, &s->v.vol, s->name, err);
	if (r < 0)
		return r;
	berth_test_pause("instance-snapshot-after-disk");
	r = db_snapshot_create(s->d->db, s->project, s->instance, row, pool ? pool->name : NULL,
			       err);
	if (r < 0) {
		if (pool)
			pool->driver->volume_snapshot_delete(pool, &s->v.vol, s->name, NULL);
		return r;
	}
	snapshot_event(s, "instance-snapshot-created");
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
		case 'M':
			unit = 60;
			break;
		case 'H':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		case 'w':
			unit = 7 * 86400;
			break;
		case 'm':
			unit = 30 * 86400;
			break;
		case 'y':
			unit = 365 * 86400;
			break;
		default:
			return -EINVAL;
		}
		total += (int64_t)n * unit;
		s = end + 1;
	}
	*ret = total;
	return 0;
}

int snapshot_expiry_parse(const json_t *v, char **ret, struct berth_error *err)
{
	char buf[BERTH_RFC3339_MAX];

	*ret = NULL;
	if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)))
		return 0;
	if (!json_is_string(v))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Field \"expires_at\" must be a string");
	if (berth_time_normalize(json_string_value(v), buf) < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid expires_at \"%s\" (RFC 3339)",
				       json_string_value(v));
	if (streq(buf, BERTH_TIME_ZERO))
		return 0;
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

int snapshot_expiry(const json_t *body, const json_t *inst, char **ret, struct berth_error *err)
{
	json_t *given = json_object_get(body, "expires_at");
	const char *expiry = berth_json_string(json_object_get(inst, "config"), "snapshots.expiry");
	int64_t secs = 0;
	time_t t;
	struct tm tm;
	char buf[64];

	*ret = NULL;
	if (json_is_string(given))
		return snapshot_expiry_parse(given, ret, err);
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

struct rename_ctx {
	struct snapshot *s; /* borrowed */
	const char *new_name;
	bool done; /* renamed on disk */
};

static int rename_hook(void *data, struct berth_error *err)
{
	struct rename_ctx *c = data;
	struct snapshot *s = c->s;
	int r;

	if (!s->v.pool)
		return 0;
	r = s->v.pool->driver->volume_snapshot_rename(s->v.pool, &s->v.vol, s->name, c->new_name,
						      err);
	c->done = r >= 0;
	return r;
}

int snapshot_rename(struct snapshot *s, const char *new_name, struct berth_error *err)
{
	_cleanup_free_ char *name = strdup(new_name);
	struct rename_ctx c = {s, new_name, false};
	int r;

	if (!name)
		return -ENOMEM;
	r = db_snapshot_rename(s->d->db, s->project, s->instance, s->name, new_name, rename_hook,
			       &c, err);
	if (r < 0) {
		if (c.done)
			s->v.pool->driver->volume_snapshot_rename(s->v.pool, &s->v.vol, new_name,
								  s->name, NULL);
		return r;
	}
	free(s->name);
	s->name = TAKE_PTR(name);
	snapshot_event(s, "instance-snapshot-renamed");
	return 0;
}

int snapshot_set_expiry(struct snapshot *s, const char *expires_at, struct berth_error *err)
{
	int r = db_snapshot_set_expiry(s->d->db, s->project, s->instance, s->name, expires_at, err);

	if (r < 0)
		return r;
	snapshot_event(s, "instance-snapshot-updated");
	return 0;
}

int snapshot_delete(struct snapshot *s, struct berth_error *err)
{
	int r = db_snapshot_delete(s->d->db, s->project, s->instance, s->name, NULL, NULL, err);

	if (r < 0)
		return r;
	if (s->v.pool) {
		r = s->v.pool->driver->volume_snapshot_delete(s->v.pool, &s->v.vol, s->name, err);
		if (r < 0)
			log_warn(
				"Snapshot \"%s/%s\": %s; the start-up reconciliation will remove it",
				s->instance, s->name, berth_error_msg(err, r));
		berth_error_release(err);
	}
	snapshot_event(s, "instance-snapshot-deleted");
	return 0;
}

/* ---- schedule and expiry ---- */

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
	int r = db_snapshot_list(d->db, project, name, &snaps, &err), n = 0;

	json_array_foreach(snaps, i, s) {
		_cleanup_(snapshot_freep) struct snapshot *snap = NULL;
		const char *sname = berth_json_string(s, "name");

		if (!expired(berth_json_string(s, "expires_at"), now))
			continue;
		r = snapshot_open(d, project, name, sname, &snap, &err);
		if (r >= 0)
			r = snapshot_delete(snap, &err);
		if (r < 0)
			log_warn("Removing expired snapshot \"%s/%s\": %s, ignoring", name, sname,
				 berth_error_msg(&err, r));
		else
			n++;
		berth_error_release(&err);
	}
	berth_error_release(&err);
	return n;
}

int snapshots_prune(struct berth_daemon *d)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	char now[BERTH_RFC3339_MAX];
	json_t *inst;
	size_t i;
	int r = db_instance_list(d->db, NULL, &list, &err), n = 0;

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

static int take_scheduled(struct berth_daemon *d, const json_t *inst, struct berth_error *err)
{
	const char *project = berth_json_string(inst, "project") ?: "default";
	const char *pattern = berth_json_string(json_object_get(inst, "config"),
						"snapshots.pattern");
	const char *instance = berth_json_string(inst, "name");
	_cleanup_(snapshot_freep) struct snapshot *snap = NULL;
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *expires = NULL;
	json_auto_t *list = NULL;
	int r = db_snapshot_list(d->db, project, instance, &list, err);

	if (r < 0)
		return r;
	name = snapshot_next_name(pattern, list);
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "No free snapshot name for the pattern");
	r = snapshot_expiry(NULL, inst, &expires, err);
	if (r >= 0)
		r = snapshot_open(d, project, instance, name, &snap, err);
	if (r >= 0)
		r = snapshot_create(snap, expires, err);
	return r;
}

/* A scheduled snapshot that failed is a warning on its instance until one succeeds. */
static void schedule_warn(struct berth_daemon *d, const json_t *inst, int r,
			  const struct berth_error *err)
{
	const char *name = berth_json_string(inst, "name");
	const char *project = berth_json_string(inst, "project") ?: "default";
	_cleanup_free_ char *url = warnings_entity_url("instances", name, project);

	if (!url)
		return;
	if (r >= 0)
		warnings_resolve(d->db, WARNING_SNAPSHOT_FAILED, project, url);
	else
		warnings_raise(d->db, WARNING_SNAPSHOT_FAILED, project, url,
			       "Instance \"%s\": scheduled snapshot failed: %s", name,
			       berth_error_msg(err, r));
}

int snapshots_schedule(struct berth_daemon *d, time_t minute)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	json_t *inst;
	struct tm tm;
	size_t i;
	int r = db_instance_list(d->db, NULL, &list, &err), n = 0;

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
		schedule_warn(d, inst, r, &err);
		if (r >= 0)
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

	snapshots_schedule(t->d, t->minute);
	snapshots_prune(t->d);
}

static void tick_done(uv_work_t *w, int status)
{
	free(container_of(w, struct tick, work));
}

void snapshots_tick(struct berth_daemon *d, time_t minute)
{
	struct tick *t = calloc(1, sizeof(*t));

	if (!t)
		return;
	t->d = d;
	t->minute = minute;
	if (uv_queue_work(d->loop, &t->work, tick_work, tick_done) < 0)
		free(t);
}
