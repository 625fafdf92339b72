/* daemon/instance/migrate_target.c: the target of a migration, pull or push mode (see
 * migrate_target.h). The order keeps a failure cheap to undo: the root volume first
 * (snapshots taken on it as each lands), the database rows last, in one transaction; any
 * failure before the rows deletes the volume with its snapshots. */
#define LOG_CATEGORY "migrate-target"
#include "daemon/instance/migrate_target.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/db/db.h"
#include "daemon/events.h"
#include "daemon/instance/common.h"
#include "daemon/instance/migrate_btrfs.h"
#include "daemon/instance/migrate_io.h"
#include "daemon/instance/migrate_proto.h"
#include "daemon/instance/migrate_source.h"
#include "daemon/instance/snapshot.h"
#include "daemon/instance/volume.h"
#include "lib/client.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

#define MIGRATE_OFFER_MS (60 * 1000)
#define GO_ZERO_TIME (-62135596800LL)

static int refuse(struct berth_error *err, const char *what)
{
	return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST, "%s", what);
}

/* volatile.* keys belong to the instance they were made for: the copy makes its own
 * (MAC addresses, idmap, uuid) on its first start. volatile.base_image stays. */
static void drop_volatile(json_t *config)
{
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(config, tmp, key, v)
		if (berth_startswith(key, "volatile.") && !streq(key, "volatile.base_image"))
			json_object_del(config, key);
}

/* A refresh of an instance that exists (the caller let its name through): it must be
 * stopped, and it keeps its pool. 1 when refreshing, 0 for a plain creation. */
static int prepare_refresh(struct instance_job *j, const json_t *source, json_t *m,
			   struct berth_error *err)
{
	json_auto_t *cur = NULL;
	int r;

	if (!berth_json_bool(source, "refresh", false))
		return 0;
	r = db_instance_get(j->d->db, j->project, j->name, &cur, err);
	if (r == -ENOENT) {
		berth_error_release(err);
		return 0;
	}
	if (r < 0)
		return r;
	if (instance_running(j->d, j->project, cur))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Cannot refresh a running instance: stop \"%s\" first",
				       j->name);
	r = db_instance_pool(j->d->db, j->project, j->name, &j->pool_name, err);
	if (r < 0)
		return r;
	return json_object_set_new(m, "refresh", json_true()) < 0 ? -ENOMEM : 1;
}

int migrate_target_prepare(struct instance_job *j, const json_t *source, struct berth_error *err)
{
	const json_t *secrets = json_object_get(source, "secrets");
	const char *mode = berth_json_string(source, "mode");
	json_auto_t *m = json_object();
	int r;

	if (!m)
		return -ENOMEM;
	if (streq(berth_json_string(j->object, "type") ?: "", "virtual-machine"))
		return refuse(err, "Migrating virtual machines is not supported yet");
	if (mode && *mode && !streq(mode, "pull") && !streq(mode, "push"))
		return refuse(err, "Unknown migration mode: pull and push are supported");
	if (berth_json_bool(source, "live", false) || json_object_get(secrets, "criu"))
		return refuse(err, "Live migration is not supported: CRIU isn't used by berth");
	if (mode && streq(mode, "push")) {
		/* the source connects to us: secrets and websockets of our own */
		if (json_object_set_new(m, "push", json_true()) < 0)
			return -ENOMEM;
	} else if (!berth_json_string(secrets, "control") || !berth_json_string(secrets, "fs")) {
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Migration source needs the \"control\" and \"fs\" secrets");
	} else {
		r = migrate_parse_operation_url(berth_json_string(source, "operation"),
						berth_json_string(source, "certificate"), j->d->dir,
						m, err);
		if (r < 0)
			return r;
		if (json_object_set(m, "secrets", (json_t *)secrets) < 0)
			return -ENOMEM;
	}
	if (json_object_set_new(m, "instance_only",
				json_boolean(berth_json_bool(source, "instance_only", false))) < 0)
		return -ENOMEM;
	drop_volatile(json_object_get(j->object, "config"));
	r = prepare_refresh(j, source, m, err);
	if (r == 0)
		r = instance_job_root_pool(j, err);
	if (r < 0)
		return r;
	j->migration = TAKE_PTR(m);
	return 0;
}

/* ---- the transfer ---- */

struct target {
	struct instance_job *j;		  /* borrowed */
	struct storage_pool *pool;	  /* owned */
	char *disk;			  /* owned: <project>_<name> */
	struct storage_vol vol;		  /* borrows disk */
	bool created;			  /* the volume exists: delete it on failure */
	json_t *rows;			  /* owned: snapshot rows to record */
	struct migrate_chan ctl, fs;	  /* their ws are borrowed from below */
	struct migrate_progress progress; /* fs's, in the operation's metadata */
	struct berth_ws *ws_ctl, *ws_fs;  /* owned */
	struct berth_client *client;	  /* owned */
	struct migrate_rsync_opts opts;
	bool refresh; /* into the existing instance: its volume and rows stay on failure */
	bool btrfs;   /* the BTRFS type was taken: btrfs streams, not rsync */
};

static int connect_source(struct target *t, struct berth_error *err)
{
	int r = migrate_connect(t->j->migration, json_object_get(t->j->migration, "secrets"),
				&t->client, &t->ws_ctl, &t->ws_fs, err);

	if (r < 0)
		return berth_error_wrap(err, r, "Connecting to the migration source");
	t->ctl.ws = t->ws_ctl;
	t->fs.ws = t->ws_fs;
	return 0;
}

/* Our answer: rsync, with the features of the offer that we use too (no compression:
 * CPU costs more than bytes on the links migrations take), the same snapshots. */
json_t *migrate_target_answer(const json_t *offer, bool final_sync)
{
	const json_t *f = json_object_get(offer, "rsyncFeatures");
	json_t *a = json_pack("{s:i, s:O, s:O, s:b, s:b, s:{s:b, s:b, s:b, s:b}}", "fs",
			      MIGRATE_FS_RSYNC, "snapshotNames",
			      json_object_get(offer, "snapshotNames") ?: json_null(), "snapshots",
			      json_object_get(offer, "snapshots") ?: json_null(), "refresh", 0,
			      "predump", 0, "rsyncFeatures", "xattrs",
			      berth_json_bool(f, "xattrs", false), "delete",
			      berth_json_bool(f, "delete", false), "compress", 0, "bidirectional",
			      1);

	if (a && final_sync)
		json_object_set_new(a, "criu", json_integer(MIGRATE_CRIU_NONE));
	return a;
}

static json_int_t unix_of(const char *rfc)
{
	struct tm tm = {0};

	if (!rfc || !strptime(rfc, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (json_int_t)timegm(&tm);
}

static const json_t *find_named(const json_t *arr, const char *name)
{
	size_t i;
	json_t *x;

	json_array_foreach(arr, i, x)
		if (streq(berth_json_string(x, "name") ?: "", name))
			return x;
	return NULL;
}

/* A refresh, as LXD's: our snapshots that the source lacks, or has with another creation
 * date, go; the offer's snapshots that we lack (or just deleted) are the ones to receive:
 * `offer` keeps only those. */
static int refresh_plan(struct target *t, json_t *offer, struct berth_error *err)
{
	json_auto_t *local = NULL;
	json_auto_t *sync = json_array();
	json_auto_t *names = json_array();
	size_t i;
	json_t *x;
	int r = db_snapshot_list(t->j->d->db, t->j->project, t->j->name, &local, err);

	if (r < 0 || !sync || !names)
		return r < 0 ? r : -ENOMEM;
	json_array_foreach(local, i, x) {
		const char *name = berth_json_string(x, "name");
		const json_t *o = find_named(json_object_get(offer, "snapshots"), name);
		_cleanup_(snapshot_freep) struct snapshot *snap = NULL;

		if (o && json_integer_value(json_object_get(o, "creation_date")) ==
				 unix_of(berth_json_string(x, "created_at")))
			continue;
		r = snapshot_open(t->j->d, t->j->project, t->j->name, name, &snap, err);
		if (r >= 0)
			r = snapshot_delete(snap, err);
		if (r < 0)
			return r;
	}
	/* again, after the deletions: the first list is let go */
	json_decref(local);
	local = NULL;
	r = db_snapshot_list(t->j->d->db, t->j->project, t->j->name, &local, err);
	json_array_foreach(json_object_get(offer, "snapshots"), i, x) {
		if (r < 0)
			return r;
		if (find_named(local, berth_json_string(x, "name")))
			continue;
		if (json_array_append(sync, x) < 0 ||
		    json_array_append(names, json_object_get(x, "name")) < 0)
			return -ENOMEM;
	}
	if (json_object_set(offer, "snapshots", sync) < 0 ||
	    json_object_set(offer, "snapshotNames", names) < 0)
		return -ENOMEM;
	return r;
}

/* Whole seconds, as LXD's messages carry them: "2030-01-01T00:00:00Z". */
static char *rfc3339_of(json_int_t secs)
{
	time_t t = (time_t)secs;
	char buf[64];
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return strdup("");
	return strdup(buf);
}

/* The snapshot row of LXD's Snapshot message `s`. */
static json_t *snapshot_row(const json_t *s)
{
	json_int_t created = json_integer_value(json_object_get(s, "creation_date"));
	json_int_t expiry = json_integer_value(json_object_get(s, "expiry_date"));
	_cleanup_free_ char *c = created > 0 ? rfc3339_of(created) : strdup("");
	_cleanup_free_ char *e = expiry > 0 ? rfc3339_of(expiry) : strdup("");
	json_t *config = json_object_get(s, "localConfig");
	json_t *devices = json_object_get(s, "localDevices");

	if (!c || !e)
		return NULL;
	return json_pack("{s:s, s:s, s:b, s:s, s:s, s:o, s:o}", "name",
			 berth_json_string(s, "name"), "description", "", "stateful",
			 berth_json_bool(s, "stateful", false), "created_at", c, "expires_at", e,
			 "config", config ? json_incref(config) : json_object(), "devices",
			 devices ? json_incref(devices) : json_object());
}

static int receive_into_volume(struct target *t, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	int r = storage_volume_path(t->pool, &t->vol, NULL, &path);

	return r < 0 ? r : migrate_rsync_recv(&t->fs, path, &t->opts, err);
}

/* Each snapshot of the offer lands in the volume and is snapshotted there (instance_only:
 * the next transfer replaces it), then the instance itself, twice after a running
 * source's final sync. */
static int receive_volumes(struct target *t, const json_t *offer, bool final_sync,
			   struct berth_error *err)
{
	bool only = berth_json_bool(t->j->migration, "instance_only", false);
	const json_t *snaps = json_object_get(offer, "snapshots");
	size_t i;
	json_t *s;
	int r = t->refresh ? 0 : t->pool->driver->volume_create(t->pool, &t->vol, 0, err);

	if (r < 0)
		return r;
	t->created = !t->refresh;
	json_array_foreach(snaps, i, s) {
		const char *name = berth_json_string(s, "name");

		migrate_progress_begin(&t->progress, name);
		r = receive_into_volume(t, err);
		if (r >= 0 && !only)
			r = t->pool->driver->volume_snapshot(t->pool, &t->vol, name, err);
		if (r >= 0 && !only && json_array_append_new(t->rows, snapshot_row(s)) < 0)
			r = -ENOMEM;
		if (r >= 0 && !only && t->refresh) /* rows of an existing instance: now */
			r = db_snapshot_create(t->j->d->db, t->j->project, t->j->name,
					       json_array_get(t->rows,
							      json_array_size(t->rows) - 1),
					       t->pool->name, err);
		if (r < 0)
			return berth_error_wrap(err, r, "Receiving snapshot \"%s\"", name);
	}
	for (int pass = 0; r >= 0 && pass < (final_sync ? 2 : 1); pass++) {
		migrate_progress_begin(&t->progress, NULL);
		r = receive_into_volume(t, err);
	}
	return r;
}

/* The BTRFS type: every stream received, then placed (migrate_btrfs.h); the rows of the
 * snapshots kept. */
static int receive_volumes_btrfs(struct target *t, const json_t *offer, const json_t *answer,
				 struct berth_error *err)
{
	bool only = berth_json_bool(t->j->migration, "instance_only", false);
	json_auto_t *names = json_array();
	size_t i;
	json_t *s;
	int r;

	/* the names of the rows to be, whatever snapshotNames says */
	json_array_foreach(json_object_get(offer, "snapshots"), i, s)
		if (!names || json_array_append_new(names, json_string(berth_json_string(s, "name")
									       ?: "")) < 0)
			return -ENOMEM;
	r = migrate_btrfs_recv(&t->fs, t->pool, &t->vol, names, !only, answer, t->j->d->spool_dir,
			       err);
	if (r < 0)
		return r;
	t->created = true;
	json_array_foreach(only ? NULL : json_object_get(offer, "snapshots"), i, s)
		if (json_array_append_new(t->rows, snapshot_row(s)) < 0)
			return -ENOMEM;
	return 0;
}

static int exchange(struct target *t, struct berth_error *err)
{
	json_auto_t *offer = NULL;
	json_auto_t *answer = NULL;
	json_t *criu;
	bool final_sync;
	int r = migrate_recv_header(&t->ctl, MIGRATE_OFFER_MS, &offer, err);

	if (r < 0)
		return r;
	criu = json_object_get(offer, "criu");
	if (criu && json_integer_value(criu) != MIGRATE_CRIU_NONE)
		return refuse(err, "Live migration is not supported: CRIU isn't used by berth");
	final_sync = criu != NULL;
	if (json_array_size(json_object_get(offer, "snapshots")) !=
	    json_array_size(json_object_get(offer, "snapshotNames")))
		return berth_error_set(err, -EPROTO, BERTH_ERR_BAD_REQUEST,
				       "The migration source sent snapshot names without their "
				       "details (a pre-3.0 LXD)");
	if (t->refresh) {
		r = refresh_plan(t, offer, err);
		if (r < 0)
			return r;
	}
	answer = migrate_target_answer(offer, final_sync);
	if (!answer || json_object_set_new(answer, "refresh", json_boolean(t->refresh)) < 0)
		return -ENOMEM;
	t->opts.xattrs = berth_json_bool(json_object_get(answer, "rsyncFeatures"), "xattrs", 0);
	t->opts.delete = berth_json_bool(json_object_get(answer, "rsyncFeatures"), "delete", 0);
	t->btrfs = migrate_btrfs_answer(offer, t->pool, t->refresh, answer);
	log_info("Migration of \"%s\": %s", t->j->name, t->btrfs ? "btrfs send/receive" : "rsync");
	r = migrate_send_header(&t->ctl, answer, err);
	log_debug("Migration phase of \"%s\": header exchanged", t->j->name);
	if (r >= 0 && t->btrfs)
		r = receive_volumes_btrfs(t, offer, answer, err);
	else if (r >= 0)
		r = receive_volumes(t, offer, final_sync, err);
	log_debug("Migration phase of \"%s\": volumes received", t->j->name);
	if (r >= 0 && !t->refresh)
		r = db_instance_create_with_volume(t->j->d->db, t->j->project, t->j->object,
						   t->pool->name, t->rows, err);
	return r;
}

static void target_release(struct target *t)
{
	if (t->created)
		t->pool->driver->volume_delete(t->pool, &t->vol, NULL);
	migrate_chan_release(&t->ctl);
	migrate_chan_release(&t->fs);
	berth_ws_close(t->ws_ctl);
	berth_ws_close(t->ws_fs);
	berth_client_free(t->client);
	storage_pool_free(t->pool);
	free(t->disk);
	json_decref(t->rows);
}

static int open_target(struct target *t, struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(t->j->d->db, t->j->pool_name, &p, err);

	if (r >= 0)
		r = storage_pool_new(t->j->d->dir, p, &t->pool, err);
	if (r < 0)
		return r;
	t->disk = storage_vol_disk_name(t->j->project, t->j->name);
	t->rows = json_array();
	if (!t->disk || !t->rows)
		return -ENOMEM;
	t->vol = (struct storage_vol){instance_volume_type(t->j->object), t->disk};
	return 0;
}

/* Pull mode: connect to the source's operation; push mode: wait for the source on our
 * listener's websockets. Then the same exchange. */
static int target_run(struct operation *op, struct instance_job *j, struct migrate_source *l,
		      struct berth_error *err)
{
	struct target t = {.j = j, .ctl.fd = -EBADF, .fs.fd = -EBADF};
	_cleanup_free_ char *url = NULL;
	bool connected = false;
	int r;

	t.opts.cancel = operation_cancel_flag(op);
	t.progress.op = op;
	t.progress.volume = j->name;
	t.fs.progress = &t.progress;
	t.refresh = berth_json_bool(j->migration, "refresh", false);
	r = open_target(&t, err);
	if (r >= 0 && l)
		r = migrate_listener_wait(l, t.opts.cancel, &t.ctl.fd, &t.fs.fd, err);
	else if (r >= 0)
		r = connect_source(&t, err);
	if (r >= 0) {
		log_debug("Migration phase of \"%s\": websockets connected", j->name);
		connected = true;
		t.pool->cancel = t.opts.cancel;
		r = exchange(&t, err);
		if (r >= 0)
			t.created = false; /* the rows own it now */
		if (r != -EPIPE)
			migrate_send_control(&t.ctl, r, err);
	}
	target_release(&t);
	if (l && connected)
		migrate_listener_close(l);
	if (r < 0)
		return berth_error_wrap(err, r, "Migration of instance \"%s\"", j->name);
	url = instance_url(j->project, j->name);
	events_lifecycle(j->d->events, j->project, "instance-created", url, NULL);
	log_info("Instance \"%s\" received by migration", j->name);
	return 0;
}

int migrate_target_run(struct operation *op, void *data, struct berth_error *err)
{
	return target_run(op, data, NULL, err);
}

/* ---- push mode: the operation holds the websockets the source connects to ---- */

struct push_target {
	struct instance_job *j;	  /* owned */
	struct migrate_source *l; /* owned */
};

static void push_target_free(void *data)
{
	struct push_target *p = data;

	if (!p)
		return;
	instance_job_free(p->j);
	migrate_source_free(p->l);
	free(p);
}

static int push_target_run(struct operation *op, void *data, struct berth_error *err)
{
	struct push_target *p = data;

	return target_run(op, p->j, p->l, err);
}

static void push_target_connect(struct operation *op, void *data, const char *secret,
				struct berth_http_conn *conn)
{
	struct push_target *p = data;

	migrate_source_connect(op, p->l, secret, conn);
}

static void push_target_cancel(void *data)
{
	struct push_target *p = data;

	migrate_source_cancel(p->l);
}

bool migrate_target_pushed(const struct instance_job *j)
{
	return j->migration && berth_json_bool(j->migration, "push", false);
}

int migrate_target_push_spec(struct instance_job *j, struct operation_spec *os,
			     json_t **ret_metadata)
{
	struct push_target *p = calloc(1, sizeof(*p));
	json_t *md;
	int r;

	if (!p)
		return -ENOMEM;
	r = migrate_listener_new(j->d, j->project, j->name, &p->l);
	md = r >= 0 ? migrate_source_metadata(p->l) : NULL;
	if (!md) {
		migrate_source_free(p->l);
		free(p);
		return r < 0 ? r : -ENOMEM;
	}
	p->j = j;
	os->class = "websocket";
	os->may_cancel = true;
	os->run = push_target_run;
	os->data = p;
	os->free_data = push_target_free;
	os->connect = push_target_connect;
	os->cancel = push_target_cancel;
	*ret_metadata = md;
	return 0;
}
