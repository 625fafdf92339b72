/* daemon/instance/migrate_volume.c: custom storage volumes over LXD's migration protocol
 * (see migrate_volume.h). The wire is migrate_io.c's; the source's exchange is
 * migrate_source.c's; here: what a volume offers, and the target. */
#define LOG_CATEGORY "migrate-volume"
#include "daemon/instance/migrate_volume.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/events.h"
#include "daemon/instance/migrate_io.h"
#include "daemon/instance/migrate_proto.h"
#include "daemon/instance/migrate_target.h"
#include "daemon/storage/custom_volume.h"
#include "lib/client.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

#define MIGRATE_VOLUME_OFFER_MS (60 * 1000)

static int refuse_block(struct berth_error *err)
{
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
			       "Migrating block storage volumes is not supported: berth's custom "
			       "volumes hold filesystems only");
}

int migrate_volume_source_check(struct berth_daemon *d, const char *project, const char *pool,
				const char *name, struct berth_error *err)
{
	json_auto_t *v = NULL;
	const char *ct;
	int r = db_volume_get(d->db, pool, project, "custom", name, &v, err);

	if (r < 0)
		return r;
	ct = berth_json_string(v, "content_type");
	return ct && *ct && !streq(ct, "filesystem") ? refuse_block(err) : 0;
}

int migrate_volume_snapshots(struct berth_daemon *d, const char *project, const char *pool,
			     const char *name, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_auto_t *out = json_array();
	json_t *s;
	size_t i;
	int r = db_volume_snapshot_list(d->db, pool, project, "custom", name, &list, err);

	if (r < 0 || !out)
		return r < 0 ? r : -ENOMEM;
	json_array_foreach(list, i, s) {
		const json_t *config = json_object_get(s, "config");
		json_t *m = json_pack("{s:s, s:O, s:[], s:b, s:{}, s:i, s:b, s:I, s:I, s:I}",
				      "name", berth_json_string(s, "name") ?: "", "localConfig",
				      config ? config : json_object(), "profiles", "ephemeral", 0,
				      "localDevices", "architecture", 0, "stateful", 0,
				      "creation_date", (json_int_t)0, "last_used_date",
				      (json_int_t)0, "expiry_date", (json_int_t)0);

		if (!m || json_array_append_new(out, m) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(out);
	return 0;
}

/* ---- the target ---- */

struct migrate_volume_job {
	struct berth_daemon *d;	   /* borrowed */
	struct custom_volume *dst; /* owned: the new volume */
	json_t *obj;		   /* owned: its row */
	json_t *peer;		   /* owned: the source's operation, parsed, and "secrets" */
	bool volume_only;
	bool refresh;		   /* into the existing volume: it stays on failure */
	char *url, *event_project; /* owned */
};

void migrate_volume_job_free(void *data)
{
	struct migrate_volume_job *j = data;

	if (!j)
		return;
	custom_volume_free(j->dst);
	json_decref(j->obj);
	json_decref(j->peer);
	free(j->url);
	free(j->event_project);
	free(j);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct migrate_volume_job *, migrate_volume_job_free)

/* What berth's volume target refuses, as LXD words it where LXD refuses it too. */
static int check_source(const json_t *obj, const json_t *source, struct berth_error *err)
{
	const json_t *secrets = json_object_get(source, "secrets");
	const char *mode = berth_json_string(source, "mode");
	const char *ct = berth_json_string(obj, "content_type");

	if (mode && *mode && !streq(mode, "pull"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Only the pull mode of volume migration is supported by "
				       "this berthd (not \"%s\")",
				       mode);
	if (ct && *ct && !streq(ct, "filesystem"))
		return refuse_block(err);
	if (!berth_json_string(secrets, "control") || !berth_json_string(secrets, "fs"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Migration source needs the \"control\" and \"fs\" secrets");
	return 0;
}

/* The row of the new volume: the request's, its config checked against the pool's
 * driver (a size the dir driver cannot enforce is dropped, as a local copy does). */
static int target_row(struct migrate_volume_job *j, const json_t *obj, struct berth_error *err)
{
	struct storage_pool *pool = j->dst->pool;
	const json_t *config = json_object_get(obj, "config");
	const char *size;

	j->obj = json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", j->dst->name, "type", "custom",
			   "description", berth_json_string(obj, "description") ?: "", "config",
			   config ? json_deep_copy(config) : json_object(), "content_type",
			   "filesystem");
	if (!j->obj)
		return -ENOMEM;
	config = json_object_get(j->obj, "config");
	if (streq(pool->driver->name, "dir"))
		json_object_del((json_t *)config, "size");
	size = berth_json_string(config, "size");
	if (size && *size) {
		int r = storage_parse_size(size, "size", &j->dst->size, err);

		if (r < 0)
			return r;
	}
	return storage_config_check(config, pool->driver->volume_keys, err);
}

int migrate_volume_prepare(struct berth_daemon *d, const char *project, const char *pool,
			   const json_t *obj, const json_t *source, const char *url,
			   const char *event_project, struct migrate_volume_job **ret,
			   struct berth_error *err)
{
	_cleanup_(migrate_volume_job_freep) struct migrate_volume_job *j = calloc(1, sizeof(*j));
	const char *name = berth_json_string(obj, "name");
	int r;

	if (!j)
		return -ENOMEM;
	j->d = d;
	j->volume_only = berth_json_bool(source, "volume_only", false);
	j->peer = json_object();
	j->url = strdup(url);
	j->event_project = strdup(event_project);
	if (!j->peer || !j->url || !j->event_project || !name)
		return -ENOMEM;
	r = check_source(obj, source, err);
	if (r >= 0)
		r = migrate_parse_operation_url(berth_json_string(source, "operation"),
						berth_json_string(source, "certificate"), d->dir,
						j->peer, err);
	if (r >= 0 && json_object_set(j->peer, "secrets", json_object_get(source, "secrets")) < 0)
		r = -ENOMEM;
	if (r >= 0)
		r = custom_volume_open(d->db, d->dir, pool, project, name, NULL, &j->dst, err);
	/* a refresh updates the volume when it exists, else it is a plain copy */
	if (r >= 0 && db_volume_get(d->db, pool, project, "custom", name, NULL, NULL) >= 0) {
		j->refresh = berth_json_bool(source, "refresh", false);
		if (!j->refresh)
			r = berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
					    "Storage volume \"%s\" already exists", name);
	}
	if (r >= 0)
		r = target_row(j, obj, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(j);
	return 0;
}

/* A transfer under way: the websockets and what was made so far. */
struct vol_target {
	struct migrate_volume_job *j; /* borrowed */
	struct migrate_chan ctl, fs;  /* their ws are borrowed from below */
	struct berth_ws *ws_ctl, *ws_fs;
	struct berth_client *client;
	struct migrate_rsync_opts opts;
	struct migrate_progress progress; /* fs's, in the operation's metadata */
	json_t *rows;			  /* owned: the snapshots' rows, oldest first */
	bool created;			  /* the volume exists on disk: deleted on failure */
};

static void vol_target_release(struct vol_target *t)
{
	struct custom_volume *c = t->j->dst;

	if (t->created)
		c->pool->driver->volume_delete(c->pool, &c->vol, NULL);
	migrate_chan_release(&t->ctl);
	migrate_chan_release(&t->fs);
	berth_ws_close(t->ws_ctl);
	berth_ws_close(t->ws_fs);
	berth_client_free(t->client);
	json_decref(t->rows);
}

/* Snapshot `name` of the offer: its row (config of its message, less a size the pool's
 * driver cannot take). A name that could leave the volume's directory is refused. */
static int snapshot_row(struct vol_target *t, const json_t *msg, struct berth_error *err)
{
	struct custom_volume *c = t->j->dst;
	const char *name = berth_json_string(msg, "name") ?: "";
	const json_t *config = json_object_get(msg, "localConfig");
	_cleanup_free_ char *full = NULL;
	json_auto_t *cfg = config ? json_deep_copy(config) : json_object();
	int r = berth_name_check_entity("snapshot name", name, err);

	if (r < 0)
		return r;
	full = berth_strdup_printf("%s/%s", c->name, name);
	if (!full || !cfg)
		return -ENOMEM;
	if (streq(c->pool->driver->name, "dir"))
		json_object_del(cfg, "size");
	if (json_array_append_new(t->rows, json_pack("{s:s, s:s, s:s, s:O, s:s}", "name", full,
						     "type", "custom", "description", "", "config",
						     cfg, "content_type", "filesystem")) < 0)
		return -ENOMEM;
	return 0;
}

/* Each snapshot of the offer is received into the new volume and snapshotted there
 * (volume_only: kept as no snapshot), then the volume itself. */
static int receive_all(struct vol_target *t, const json_t *offer, struct berth_error *err)
{
	struct custom_volume *c = t->j->dst;
	_cleanup_free_ char *path = NULL;
	size_t i;
	json_t *msg;
	int r = storage_volume_path(c->pool, &c->vol, NULL, &path);

	if (r >= 0 && !t->j->refresh)
		r = c->pool->driver->volume_create(c->pool, &c->vol, c->size, err);
	if (r < 0)
		return r;
	t->created = !t->j->refresh;
	json_array_foreach(json_object_get(offer, "snapshots"), i, msg) {
		const char *name = berth_json_string(msg, "name") ?: "";

		r = t->j->volume_only ? 0 : snapshot_row(t, msg, err);
		migrate_progress_begin(&t->progress, name);
		if (r >= 0)
			r = migrate_rsync_recv(&t->fs, path, &t->opts, err);
		if (r >= 0 && !t->j->volume_only)
			r = c->pool->driver->volume_snapshot(c->pool, &c->vol, name, err);
		if (r >= 0 && !t->j->volume_only && t->j->refresh) /* rows of a volume: now */
			r = db_volume_create(t->j->d->db, c->pool->name, c->project,
					     json_array_get(t->rows, json_array_size(t->rows) - 1),
					     NULL, NULL, err);
		if (r < 0)
			return berth_error_wrap(err, r, "Receiving snapshot \"%s\"", name);
	}
	migrate_progress_begin(&t->progress, NULL);
	return migrate_rsync_recv(&t->fs, path, &t->opts, err);
}

/* Whether `arr` holds `name`: as a string, or as an object's "name". */
static bool named_in(const json_t *arr, const char *name)
{
	size_t i;
	json_t *x;

	json_array_foreach(arr, i, x)
		if (streq(json_is_string(x) ? json_string_value(x)
					    : berth_json_string(x, "name") ?: "",
			  name))
			return true;
	return false;
}

/* A refresh: our snapshots that the source lacks go; the offer keeps only the snapshots
 * we lack, the ones to receive. (A volume's Snapshot messages carry no dates: names
 * decide.) */
static int refresh_plan(struct vol_target *t, json_t *offer, struct berth_error *err)
{
	struct custom_volume *c = t->j->dst;
	json_auto_t *local = NULL;
	json_auto_t *keep = json_array();
	json_auto_t *names = json_array();
	size_t i;
	json_t *x;
	int r = db_volume_snapshot_list(t->j->d->db, c->pool->name, c->project, "custom", c->name,
					&local, err);

	if (r < 0 || !keep || !names)
		return r < 0 ? r : -ENOMEM;
	json_array_foreach(local, i, x) {
		const char *name = berth_json_string(x, "name") ?: "";
		_cleanup_(custom_volume_freep) struct custom_volume *snap = NULL;

		if (named_in(json_object_get(offer, "snapshotNames"), name))
			continue;
		r = custom_volume_open(t->j->d->db, t->j->d->dir, c->pool->name, c->project,
				       c->name, name, &snap, err);
		if (r >= 0)
			r = custom_volume_snapshot_delete(snap, err);
		if (r < 0)
			return r;
	}
	json_array_foreach(json_object_get(offer, "snapshots"), i, x) {
		const char *name = berth_json_string(x, "name") ?: "";

		if (!named_in(local, name) && (json_array_append(keep, x) < 0 ||
					       json_array_append_new(names, json_string(name)) < 0))
			return -ENOMEM;
	}
	if (json_object_set(offer, "snapshots", keep) < 0 ||
	    json_object_set(offer, "snapshotNames", names) < 0)
		return -ENOMEM;
	return 0;
}

static int vol_exchange(struct vol_target *t, struct berth_error *err)
{
	json_auto_t *offer = NULL;
	json_auto_t *answer = NULL;
	const json_t *f;
	int r = migrate_recv_header(&t->ctl, MIGRATE_VOLUME_OFFER_MS, &offer, err);

	if (r < 0)
		return r;
	if (json_array_size(json_object_get(offer, "snapshots")) !=
	    json_array_size(json_object_get(offer, "snapshotNames")))
		return berth_error_set(err, -EPROTO, BERTH_ERR_BAD_REQUEST,
				       "The migration source sent snapshot names without their "
				       "details");
	if (t->j->refresh) {
		r = refresh_plan(t, offer, err);
		if (r < 0)
			return r;
	}
	answer = migrate_target_answer(offer, false);
	if (!answer || json_object_set_new(answer, "refresh", json_boolean(t->j->refresh)) < 0)
		return -ENOMEM;
	f = json_object_get(answer, "rsyncFeatures");
	t->opts.xattrs = berth_json_bool(f, "xattrs", false);
	t->opts.delete = berth_json_bool(f, "delete", false);
	r = migrate_send_header(&t->ctl, answer, err);
	if (r >= 0)
		r = receive_all(t, offer, err);
	if (r >= 0 && !t->j->refresh)
		r = db_volume_create_with_snapshots(t->j->d->db, t->j->dst->pool->name,
						    t->j->dst->project, t->j->obj, t->rows, err);
	return r;
}

int migrate_volume_run(struct operation *op, void *data, struct berth_error *err)
{
	struct migrate_volume_job *j = data;
	struct vol_target t = {.j = j, .ctl.fd = -EBADF, .fs.fd = -EBADF, .rows = json_array()};
	int r = t.rows ? 0 : -ENOMEM;

	t.opts.cancel = operation_cancel_flag(op);
	t.progress.op = op;
	t.progress.volume = j->dst->name;
	t.fs.progress = &t.progress;
	j->dst->pool->cancel = t.opts.cancel;
	if (r >= 0)
		r = migrate_connect(j->peer, json_object_get(j->peer, "secrets"), &t.client,
				    &t.ws_ctl, &t.ws_fs, err);
	if (r < 0) {
		vol_target_release(&t);
		return berth_error_wrap(err, r, "Connecting to the migration source");
	}
	t.ctl.ws = t.ws_ctl;
	t.fs.ws = t.ws_fs;
	r = vol_exchange(&t, err);
	if (r >= 0)
		t.created = false; /* the rows own it now */
	if (r != -EPIPE)
		migrate_send_control(&t.ctl, r, err);
	vol_target_release(&t);
	if (r < 0)
		return berth_error_wrap(err, r, "Migration of storage volume \"%s\"", j->dst->name);
	events_lifecycle(j->d->events, j->event_project, "storage-volume-created", j->url, NULL);
	log_info("Storage volume \"%s\" received by migration", j->dst->name);
	return 0;
}
