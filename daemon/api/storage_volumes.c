/* daemon/api/storage_volumes.c: /1.0/storage-pools/{pool}/volumes[/{type}[/{name}]] and
 * .../{name}/snapshots[/{snap}]: custom volumes and their snapshots.
 *
 * The handlers parse, call daemon/storage/custom_volume.c (rows and disk together) and
 * render. Snapshot creation, deletion and rename are operations, as the lxc client
 * expects. */
#include <stdio.h>
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/project/limits.h"
#include "daemon/api/storage.h"
#include "daemon/db/db.h"
#include "daemon/instance/migrate_source.h"
#include "daemon/instance/migrate_volume.h"
#include "daemon/storage/custom_volume.h"
#include "daemon/vm/params.h"
#include "lib/json.h"
#include "lib/util.h"
#include "storage/driver.h"

static const struct berth_json_field volume_fields[] = {
	{"name", BERTH_JSON_STRING, false, false},
	{"type", BERTH_JSON_STRING, false, true},
	{"description", BERTH_JSON_STRING, false, true},
	{"config", BERTH_JSON_STRING_MAP, false, true},
	{"content_type", BERTH_JSON_STRING, false, true},
	{"restore", BERTH_JSON_STRING, false, true},
	{"pool", BERTH_JSON_STRING, false, true},
	{"source", BERTH_JSON_OBJECT, false, true},
	{"migration", BERTH_JSON_BOOL, false, true},
	{"volume_only", BERTH_JSON_BOOL, false, true},
	{"target", BERTH_JSON_OBJECT, false, true},
};

static const char never[] = "0001-01-01T00:00:00Z";

/* "/1.0/storage-pools/P/volumes/T/V[/snapshots/S]" plus "?project=" outside default. */
static char *volume_url(const char *pool, const char *type, const char *name, const char *snap,
			const char *project)
{
	_cleanup_free_ char *p = berth_url_encode(pool);
	_cleanup_free_ char *n = berth_url_encode(name);
	_cleanup_free_ char *s = snap ? berth_url_encode(snap) : NULL;
	bool def = !project || streq(project, "default");

	if (!p || !n || (snap && !s))
		return NULL;
	return berth_strdup_printf("/1.0/storage-pools/%s/volumes/%s/%s%s%s%s%s", p, type, n,
				   snap ? "/snapshots/" : "", snap ? s : "",
				   def ? "" : "?project=", def ? "" : project);
}

static int require_custom(const char *type, struct berth_error *err)
{
	enum storage_volume_type t;

	if (storage_volume_type_from_name(type, &t) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Invalid storage volume type \"%s\"", type);
	if (t != STORAGE_VOL_CUSTOM)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Only custom volumes can be managed here, not \"%s\"", type);
	return 0;
}

/* The API shape of a volume row: used_by (custom volumes only) and location. */
static int volume_decorate(struct db *db, const char *pool, json_t *v, struct berth_error *err)
{
	const char *name = berth_json_string(v, "name") ?: "";
	const char *type = berth_json_string(v, "type") ?: "";
	json_t *used_by = NULL;
	int r;

	if (streq(type, "custom") && !strchr(name, '/')) {
		r = db_volume_used_by(db, pool, berth_json_string(v, "project") ?: "default", name,
				      &used_by, err);
		if (r < 0)
			return r;
	}
	json_object_set_new(v, "used_by", used_by ? used_by : json_array());
	json_object_set_new(v, "location", json_string("none"));
	return 0;
}

static char *volume_etag(const json_t *v)
{
	json_auto_t *e = json_pack("{s:O?, s:O?, s:O?}", "name", json_object_get(v, "name"),
				   "description", json_object_get(v, "description"), "config",
				   json_object_get(v, "config"));
	return e ? api_etag(e) : NULL;
}

/* Size from a volume config: 0 when absent. */
static int config_size(const json_t *config, uint64_t *ret, struct berth_error *err)
{
	const char *s = berth_json_string(config, "size");

	*ret = 0;
	if (!s || !*s)
		return 0;
	return storage_parse_size(s, "size", ret, err);
}

/* A volume of the request's pool (params[0]). */
static int vol_ctx_new(struct api_request *req, const char *name, const char *snap,
		       struct custom_volume **ret, struct berth_error *err)
{
	return custom_volume_open(req->d->db, req->d->dir, req->params[0], req->project, name, snap,
				  ret, err);
}

/* ---- volumes ---- */

/* Rows of the listing: a project without features.storage.volumes shows the "default"
 * project's custom volumes beside its own instances' volumes, as LXD does. (A route on
 * custom volumes only already got the effective project: api_project_resolve.) */
static int list_volume_rows(struct api_request *req, const char *type, json_t **ret,
			    struct berth_error *err)
{
	_cleanup_free_ char *custom_project = NULL;
	json_auto_t *custom = NULL;
	json_auto_t *all = NULL;
	json_t *v;
	size_t i;
	int r;

	if (type)
		return db_volume_list(req->d->db, req->params[0], req->project, type, ret, err);
	r = db_project_feature_project(req->d->db, req->project, "features.storage.volumes",
				       &custom_project, err);
	if (r >= 0)
		r = db_volume_list(req->d->db, req->params[0], req->project, NULL, &all, err);
	if (r < 0 || streq(custom_project, req->project)) {
		if (r >= 0)
			*ret = TAKE_PTR(all);
		return r;
	}
	r = db_volume_list(req->d->db, req->params[0], custom_project, "custom", &custom, err);
	if (r < 0)
		return r;
	json_array_foreach(all, i, v)
		if (!streq(berth_json_string(v, "type") ?: "", "custom"))
			json_array_append(custom, v);
	*ret = TAKE_PTR(custom);
	return 0;
}

static int list_volumes(struct api_request *req, struct api_response *resp, const char *type,
			struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_auto_t *out = json_array();
	enum storage_volume_type t;
	json_t *v;
	size_t i;
	int r;

	if (type && storage_volume_type_from_name(type, &t) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Invalid storage volume type \"%s\"", type);
	r = list_volume_rows(req, type, &list, err);
	if (r < 0)
		return r;
	json_array_foreach(list, i, v) {
		if (req->recursion == 0) {
			_cleanup_free_ char *name = strdup(berth_json_string(v, "name") ?: "");
			char *slash = name ? strchr(name, '/') : NULL;
			_cleanup_free_ char *u = NULL;

			if (slash)
				*slash++ = '\0';
			u = name ? volume_url(req->params[0], berth_json_string(v, "type"), name,
					      slash, req->project)
				 : NULL;
			json_array_append_new(out, json_string(u));
			continue;
		}
		r = volume_decorate(req->d->db, req->params[0], v, err);
		if (r < 0)
			return r;
		json_array_append(out, v);
	}
	return api_sync(resp, TAKE_PTR(out));
}

static int list_all_volumes(struct api_request *req, struct api_response *resp,
			    struct berth_error *err)
{
	return list_volumes(req, resp, NULL, err);
}

static int list_typed_volumes(struct api_request *req, struct api_response *resp,
			      struct berth_error *err)
{
	return list_volumes(req, resp, req->params[1], err);
}

/* ---- copies ---- */

/* POST .../volumes/custom with source {type: "copy", pool, name, volume_only}: a new
 * custom volume with the content of another (or of one of its snapshots), on the same
 * pool (the driver's copy: a btrfs snapshot, a dir copy) or another (any drivers: the
 * files copied over, each snapshot recreated on the destination). Disk first, then the
 * rows in one transaction; a berthd killed in between leaves a volume without a row,
 * which the reconciliation at start removes. */
/* A copy or a move, and what its lifecycle event needs. */
struct copy_job {
	struct berth_daemon *d;		 /* borrowed */
	struct custom_volume_copy *copy; /* owned */
	char *url;			 /* owned: the new volume's URL */
	char *event_project;		 /* owned: api_event_project() */
};

static void copy_job_free(void *data)
{
	struct copy_job *j = data;

	if (!j)
		return;
	custom_volume_copy_free(j->copy);
	free(j->url);
	free(j->event_project);
	free(j);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct copy_job *, copy_job_free)

static int run_volume_copy(struct operation *op, void *data, struct berth_error *err)
{
	struct copy_job *j = data;
	int r = custom_volume_copy_run(j->copy, err);

	if (r < 0)
		return r;
	events_lifecycle(j->d->events, j->event_project, "storage-volume-created", j->url, NULL);
	return 0;
}

/* The new volume's snapshot rows: those of the source volume, oldest first. */
static int copy_snapshot_rows(struct api_request *req, const char *src_pool, const char *src,
			      const char *dst, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_auto_t *rows = json_array();
	json_t *s;
	size_t i;
	int r = db_volume_snapshot_list(req->d->db, src_pool, req->project, "custom", src, &list,
					err);

	if (r < 0)
		return r;
	json_array_foreach(list, i, s) {
		_cleanup_free_ char *name = berth_strdup_printf("%s/%s", dst,
								berth_json_string(s, "name") ?: "");
		json_t *row = name ? json_pack("{s:s, s:s, s:s, s:{}, s:s}", "name", name, "type",
					       "custom", "description",
					       berth_json_string(s, "description") ?: "", "config",
					       "content_type", "filesystem")
				   : NULL;
		if (!row || json_array_append_new(rows, row) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(rows);
	return 0;
}

/* Check a copy of `src_name` ("<volume>[/<snapshot>]") of pool `src_pool` to the new
 * volume `name` of `dst_pool`, and prepare its job. */
static int copy_job_new(struct api_request *req, const char *src_pool, const char *src_name,
			const char *dst_pool, const char *name, bool volume_only,
			struct copy_job **ret, struct berth_error *err)
{
	_cleanup_(copy_job_freep) struct copy_job *j = calloc(1, sizeof(*j));
	_cleanup_free_ char *src_vol = strdup(src_name);
	struct custom_volume_copy *c = j ? (j->copy = calloc(1, sizeof(*c))) : NULL;
	json_auto_t *src = NULL;
	const json_t *config = json_object_get(req->body, "config");
	const char *desc = berth_json_string(req->body, "description");
	char *slash;
	int r;

	if (!j || !c || !src_vol)
		return -ENOMEM;
	slash = strchr(src_vol, '/');
	if (slash)
		*slash++ = '\0';
	r = custom_volume_open(req->d->db, req->d->dir, dst_pool, req->project, name, NULL, &c->dst,
			       err);
	if (r >= 0)
		r = api_storage_pool_open(req, src_pool, &c->src_pool, err);
	if (r >= 0)
		r = db_volume_get(req->d->db, src_pool, req->project, "custom", src_vol, &src, err);
	if (r >= 0 && slash)
		r = db_volume_get(req->d->db, src_pool, req->project, "custom", src_name, NULL,
				  err);
	if (r < 0)
		return r;
	/* a copy would be made a filesystem volume, its snapshots too: refused until the
	 * content type is carried */
	if (streq(berth_json_string(src, "content_type") ?: "", "block"))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Copying or moving custom block volume \"%s\" is not "
				       "supported yet",
				       src_vol);
	if (db_volume_get(req->d->db, dst_pool, req->project, "custom", name, NULL, NULL) >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Storage volume \"%s\" already exists", name);
	j->d = req->d;
	c->src_name = strdup(src_vol);
	c->src_disk = storage_vol_disk_name(req->project, src_vol);
	c->src_snap = slash ? strdup(slash) : NULL;
	j->url = volume_url(dst_pool, "custom", name, NULL, api_event_project(req));
	j->event_project = strdup(api_event_project(req));
	/* Without a config of its own, the copy takes the source's (LXD does the same),
	 * less a size the destination's driver cannot enforce. */
	config = json_object_size(config) ? config : json_object_get(src, "config");
	c->obj = json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", name, "type", "custom",
			   "description", desc && *desc ? desc :
			   berth_json_string(src, "description") ?: "", "config",
			   config ? json_deep_copy(config) : json_object(), "content_type",
			   "filesystem");
	if (!c->src_name || !c->src_disk || (slash && !c->src_snap) || !j->url ||
	    !j->event_project || !c->obj)
		return -ENOMEM;
	if (!json_object_size(json_object_get(req->body, "config")) &&
	    streq(c->dst->pool->driver->name, "dir"))
		json_object_del(json_object_get(c->obj, "config"), "size");
	api_config_drop_empty(json_object_get(c->obj, "config"));
	r = storage_config_check(json_object_get(c->obj, "config"),
				 c->dst->pool->driver->volume_keys, err);
	if (r >= 0)
		r = config_size(json_object_get(c->obj, "config"), &c->dst->size, err);
	if (r >= 0 && !volume_only && !slash)
		r = copy_snapshot_rows(req, src_pool, src_vol, name, &c->snaps, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(j);
	return 0;
}

static int copy_volume(struct api_request *req, struct api_response *resp, const char *name,
		       struct berth_error *err)
{
	const json_t *source = json_object_get(req->body, "source");
	const char *src_name = berth_json_string(source, "name");
	const char *src_pool = berth_json_string(source, "pool");
	const char *src_project = berth_json_string(source, "project");
	struct copy_job *j = NULL;
	json_t *resources;
	int r;

	if (!src_name || !*src_name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "No source volume name provided");
	if (src_project && *src_project && !streq(src_project, req->project))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Copying volumes between projects isn't supported yet");
	if (berth_json_bool(source, "refresh", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Refreshing a volume copy isn't supported yet");
	r = copy_job_new(req, src_pool && *src_pool ? src_pool : req->params[0], src_name,
			 req->params[0], name, berth_json_bool(source, "volume_only", false), &j,
			 err);
	if (r < 0)
		return r;
	resources = json_pack("{s:[s]}", "storage_volumes", j->url);
	return api_async(req, resp, "Copying storage volume", resources, run_volume_copy, j,
			 copy_job_free, err);
}

/* POST .../volumes/custom/V with {name, pool: other}: a copy with its snapshots to the
 * other pool, the source's rows replaced by the copy's in one transaction, then the
 * source removed. */
static int move_volume(struct api_request *req, struct api_response *resp, const char *pool,
		       const char *name, struct berth_error *err)
{
	struct copy_job *j = NULL;
	json_auto_t *used = NULL;
	json_t *resources;
	int r = db_volume_used_by(req->d->db, req->params[0], req->project, req->params[2], &used,
				  err);

	if (r < 0)
		return r;
	if (json_array_size(used) > 0)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "The storage volume is still in use");
	r = copy_job_new(req, req->params[0], req->params[2], pool, name, false, &j, err);
	if (r < 0)
		return r;
	j->copy->move = true;
	j->copy->trash = berth_strdup_printf("%s.deleting", j->copy->src_disk);
	resources = json_pack("{s:[s]}", "storage_volumes", j->url);
	if (!j->copy->trash) {
		copy_job_free(j);
		json_decref(resources);
		return -ENOMEM;
	}
	return api_async(req, resp, "Moving storage volume", resources, run_volume_copy, j,
			 copy_job_free, err);
}

/* ---- between hosts (daemon/instance/migrate_volume.h) ---- */

/* POST .../volumes/custom/V {"migration": true, "volume_only", "target"}: the source, a
 * websocket operation whose metadata holds the secrets (push mode with "target"). */
static int migrate_volume_source(struct api_request *req, struct api_response *resp,
				 struct berth_error *err)
{
	const json_t *target = json_object_get(req->body, "target");
	_cleanup_free_ char *url = volume_url(req->params[0], "custom", req->params[2], NULL,
					      api_event_project(req));
	struct migrate_source *s = NULL;
	int r = require_custom(req->params[1], err);

	if (r >= 0)
		r = api_migrate_peer_check(req, target, err);
	if (r >= 0)
		r = migrate_source_new_volume(req->d, req->project, req->params[0], req->params[2],
					      berth_json_bool(req->body, "volume_only", false),
					      target, &s, err);
	if (r < 0)
		return r;
	return api_migrate_source_start(req, resp, s, "Migrating storage volume",
					json_pack("{s:[s?]}", "storage_volumes", url), err);
}

/* POST .../volumes/custom {"name", "source": {"type": "migration", ...}}: the target. */
static int migrate_volume_target(struct api_request *req, struct api_response *resp,
				 const char *name, struct berth_error *err)
{
	const json_t *source = json_object_get(req->body, "source");
	_cleanup_free_ char *url = volume_url(req->params[0], "custom", name, NULL,
					      api_event_project(req));
	struct migrate_volume_job *j = NULL;
	json_auto_t *obj = json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", name, "type", "custom",
				     "description",
				     berth_json_string(req->body, "description") ?: "", "config",
				     berth_json_object_or_empty(req->body, "config"),
				     "content_type",
				     berth_json_string(req->body, "content_type") ?: "filesystem");
	int r;

	if (!obj || !url)
		return -ENOMEM;
	api_config_drop_empty(json_object_get(obj, "config"));
	r = api_migrate_peer_check(req, source, err);
	if (r >= 0)
		r = migrate_volume_prepare(req->d, req->project, req->params[0], obj, source, url,
					   api_event_project(req), &j, err);
	if (r >= 0)
		r = project_limits_check_volume(req->d->db, req->project, obj, err);
	if (r < 0) {
		migrate_volume_job_free(j);
		return r;
	}
	return api_async_cancellable(req, resp, "Copying storage volume",
				     json_pack("{s:[s]}", "storage_volumes", url),
				     migrate_volume_run, j, migrate_volume_job_free, err);
}

static int create_volume(struct api_request *req, struct api_response *resp, const char *url_type,
			 struct berth_error *err)
{
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *obj = NULL;
	const char *name, *type, *source_type, *content;
	bool block;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, volume_fields, ARRAY_SIZE(volume_fields),
				     "storage volume", err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	type = url_type ?: berth_json_string(req->body, "type") ?: "custom";
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("storage volume name", name, err);
	if (r >= 0)
		r = require_custom(type, err);
	if (r < 0)
		return r;
	source_type = berth_json_string(json_object_get(req->body, "source"), "type");
	if (source_type && streq(source_type, "copy"))
		return copy_volume(req, resp, name, err);
	if (source_type && streq(source_type, "migration"))
		return migrate_volume_target(req, resp, name, err);
	if (source_type && *source_type)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Creating a volume from a \"%s\" source isn't supported yet",
				       source_type);
	content = berth_json_string(req->body, "content_type");
	if (content && *content && !streq(content, "filesystem") && !streq(content, "block"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid content type \"%s\" (filesystem or block)",
				       content);
	block = content && streq(content, "block");
	obj = json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", name, "type", "custom", "description",
			berth_json_string(req->body, "description") ?: "", "config",
			berth_json_object_or_empty(req->body, "config"), "content_type",
			block ? "block" : "filesystem");
	if (!obj)
		return -ENOMEM;
	api_config_drop_empty(json_object_get(obj, "config"));
	r = vol_ctx_new(req, name, NULL, &c, err);
	if (r >= 0)
		r = storage_config_check(json_object_get(obj, "config"),
					 c->pool->driver->volume_keys, err);
	if (r >= 0)
		r = config_size(json_object_get(obj, "config"), &c->size, err);
	/* A block volume's size is its disk file's (LXD's default: 10GiB), not a quota. */
	if (r >= 0 && block) {
		c->block_size = c->size ?: VM_DEFAULT_ROOT_SIZE;
		c->size = 0;
	}
	if (r >= 0)
		r = project_limits_check_volume(req->d->db, req->project, obj, err);
	if (r >= 0)
		r = custom_volume_create(c, obj, err);
	if (r < 0)
		return r;
	url = volume_url(req->params[0], "custom", name, NULL, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "storage-volume-created", url,
			 NULL);
	return api_created(resp, url);
}

static int create_any_volume(struct api_request *req, struct api_response *resp,
			     struct berth_error *err)
{
	return create_volume(req, resp, NULL, err);
}

static int create_typed_volume(struct api_request *req, struct api_response *resp,
			       struct berth_error *err)
{
	return create_volume(req, resp, req->params[1], err);
}

static int get_volume(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *v = NULL;
	enum storage_volume_type t;
	int r;

	if (storage_volume_type_from_name(req->params[1], &t) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Invalid storage volume type \"%s\"", req->params[1]);
	r = db_volume_get(req->d->db, req->params[0], req->project, req->params[1], req->params[2],
			  &v, err);
	if (r < 0)
		return r;
	resp->etag = volume_etag(v);
	r = volume_decorate(req->d->db, req->params[0], v, err);
	if (r < 0)
		return r;
	return api_sync(resp, TAKE_PTR(v));
}

/* GET .../volumes/{type}/{name}/state: {"usage": {"used": bytes}} (storage_volume_state). */
static int get_volume_state(struct api_request *req, struct api_response *resp,
			    struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *disk = storage_vol_disk_name(req->project, req->params[2]);
	enum storage_volume_type t;
	uint64_t used = 0;
	int r;

	if (!disk)
		return -ENOMEM;
	if (storage_volume_type_from_name(req->params[1], &t) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Invalid storage volume type \"%s\"", req->params[1]);
	r = db_volume_get(req->d->db, req->params[0], req->project, req->params[1], req->params[2],
			  NULL, err);
	if (r >= 0)
		r = api_storage_pool_open(req, req->params[0], &pool, err);
	if (r >= 0) {
		struct storage_vol vol = {t, t == STORAGE_VOL_IMAGE ? req->params[2] : disk};
		r = storage_volume_usage(pool, &vol, &used, err);
	}
	if (r < 0)
		return r;
	return api_sync(resp, json_pack("{s:{s:I}}", "usage", "used", (json_int_t)used));
}

static int restore_volume(struct api_request *req, struct api_response *resp, const json_t *cur,
			  const char *snap, struct berth_error *err)
{
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", req->params[2], snap);
	int r;

	if (!full)
		return -ENOMEM;
	r = vol_ctx_new(req, req->params[2], snap, &c, err);
	if (r >= 0)
		r = config_size(json_object_get(cur, "config"), &c->size, err);
	if (r >= 0)
		r = db_volume_get(req->d->db, req->params[0], req->project, "custom", full, NULL,
				  err);
	if (r >= 0)
		r = custom_volume_restore(c, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

static int update_volume(struct api_request *req, struct api_response *resp,
			 struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description"};
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	_cleanup_free_ char *etag = NULL;
	json_auto_t *cur = NULL;
	json_auto_t *next = NULL;
	uint64_t old_size = 0;
	const char *restore;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, volume_fields, ARRAY_SIZE(volume_fields),
				     "storage volume", err);
	if (r >= 0)
		r = require_custom(req->params[1], err);
	if (r >= 0)
		r = db_volume_get(req->d->db, req->params[0], req->project, "custom",
				  req->params[2], &cur, err);
	if (r < 0)
		return r;
	etag = volume_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0)
		return r;
	restore = berth_json_string(req->body, "restore");
	if (restore && *restore)
		return restore_volume(req, resp, cur, restore, err);
	next = json_deep_copy(cur);
	if (!next)
		return -ENOMEM;
	if (patch) {
		api_patch_merge(next, req->body, fields, ARRAY_SIZE(fields));
	} else {
		json_object_set_new(next, "description",
				    json_string(berth_json_string(req->body, "description") ?: ""));
		json_object_set_new(next, "config",
				    berth_json_object_or_empty(req->body, "config"));
		api_config_drop_empty(json_object_get(next, "config"));
	}
	r = vol_ctx_new(req, req->params[2], NULL, &c, err);
	if (r >= 0)
		r = storage_config_check(json_object_get(next, "config"),
					 c->pool->driver->volume_keys, err);
	if (r >= 0)
		r = config_size(json_object_get(cur, "config"), &old_size, err);
	if (r >= 0)
		r = config_size(json_object_get(next, "config"), &c->size, err);
	if (r >= 0)
		r = project_limits_check_volume(req->d->db, req->project, next, err);
	if (r < 0)
		return r;
	/* a block volume's size is its root.img's, not a quota: not resized yet */
	if (streq(berth_json_string(cur, "content_type") ?: "", "block") && c->size != old_size)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Changing the size of custom block volume \"%s\" is not "
				       "supported yet",
				       req->params[2]);
	r = custom_volume_update(c, next, old_size, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

static int put_volume(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_volume(req, resp, err, false);
}

static int patch_volume(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_volume(req, resp, err, true);
}

static int rename_volume(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	_cleanup_free_ char *url = NULL;
	const char *name, *pool;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, volume_fields, ARRAY_SIZE(volume_fields),
				     "storage volume", err);
	if (r >= 0)
		r = require_custom(req->params[1], err);
	if (r < 0)
		return r;
	if (berth_json_bool(req->body, "migration", false))
		return migrate_volume_source(req, resp, err);
	name = berth_json_string(req->body, "name");
	pool = berth_json_string(req->body, "pool");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("storage volume name", name, err);
	if (r >= 0 && pool && *pool && !streq(pool, req->params[0]))
		return move_volume(req, resp, pool, name, err);
	if (r >= 0)
		r = vol_ctx_new(req, req->params[2], NULL, &c, err);
	if (r < 0)
		return r;
	r = custom_volume_rename(c, name, err);
	if (r < 0)
		return r;
	url = volume_url(req->params[0], "custom", name, NULL, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "storage-volume-renamed", url,
			 json_pack("{s:s}", "old_name", req->params[2]));
	return api_created(resp, url);
}

static int delete_volume(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	_cleanup_free_ char *url = NULL;
	int r = require_custom(req->params[1], err);

	if (r >= 0)
		r = vol_ctx_new(req, req->params[2], NULL, &c, err);
	if (r >= 0)
		r = custom_volume_delete(c, err);
	if (r < 0)
		return r;
	url = volume_url(req->params[0], "custom", req->params[2], NULL, api_event_project(req));
	events_lifecycle(req->d->events, api_event_project(req), "storage-volume-deleted", url,
			 NULL);
	return api_sync(resp, NULL);
}

/* ---- snapshots ---- */

static void snapshot_decorate(json_t *s)
{
	json_object_del(s, "type");
	json_object_del(s, "project");
	json_object_set_new(s, "expires_at", json_string(never));
}

static int list_snapshots(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_auto_t *out = json_array();
	json_t *s;
	size_t i;
	int r = require_custom(req->params[1], err);

	if (r >= 0)
		r = db_volume_get(req->d->db, req->params[0], req->project, "custom",
				  req->params[2], NULL, err);
	if (r >= 0)
		r = db_volume_snapshot_list(req->d->db, req->params[0], req->project, "custom",
					    req->params[2], &list, err);
	if (r < 0)
		return r;
	json_array_foreach(list, i, s) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u = volume_url(req->params[0], "custom",
							    req->params[2],
							    berth_json_string(s, "name"),
							    req->project);
			json_array_append_new(out, json_string(u));
			continue;
		}
		snapshot_decorate(s);
		json_array_append(out, s);
	}
	return api_sync(resp, TAKE_PTR(out));
}

/* "snap0", "snap1", ...: the first free one. */
static int next_snapshot_name(struct api_request *req, char **ret, struct berth_error *err)
{
	json_auto_t *list = NULL;
	int r = db_volume_snapshot_list(req->d->db, req->params[0], req->project, "custom",
					req->params[2], &list, err);

	if (r < 0)
		return r;
	for (int n = 0;; n++) {
		char name[32];
		json_t *s;
		size_t i;
		bool taken = false;

		snprintf(name, sizeof(name), "snap%d", n);
		json_array_foreach(list, i, s)
			taken = taken || streq(berth_json_string(s, "name") ?: "", name);
		if (!taken) {
			*ret = strdup(name);
			return *ret ? 0 : -ENOMEM;
		}
	}
}

static int run_snapshot_create(struct operation *op, void *data, struct berth_error *err)
{
	return custom_volume_snapshot_create(data, err);
}

static json_t *snapshot_resources(struct api_request *req, const char *snap)
{
	_cleanup_free_ char *vol = volume_url(req->params[0], "custom", req->params[2], NULL,
					      req->project);
	_cleanup_free_ char *s = volume_url(req->params[0], "custom", req->params[2], snap,
					    req->project);

	return json_pack("{s:[s?], s:[s?]}", "storage_volumes", vol, "storage_volume_snapshots", s);
}

static int create_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	_cleanup_free_ char *snap = NULL;
	const char *name;
	int r = require_custom(req->params[1], err);

	if (r >= 0 && req->body)
		r = api_require_body(req, err);
	if (r >= 0)
		r = db_volume_get(req->d->db, req->params[0], req->project, "custom",
				  req->params[2], NULL, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (name && *name) {
		r = berth_name_check_entity("snapshot name", name, err);
		snap = strdup(name);
		if (r >= 0 && !snap)
			r = -ENOMEM;
	} else {
		r = next_snapshot_name(req, &snap, err);
	}
	if (r >= 0)
		r = vol_ctx_new(req, req->params[2], snap, &c, err);
	if (r < 0)
		return r;
	return api_async(req, resp, "Creating storage volume snapshot",
			 snapshot_resources(req, snap), run_snapshot_create, TAKE_PTR(c),
			 custom_volume_free, err);
}

static int get_snapshot(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", req->params[2], req->params[3]);
	json_auto_t *s = NULL;
	int r = require_custom(req->params[1], err);

	if (!full)
		return -ENOMEM;
	if (r >= 0)
		r = db_volume_get(req->d->db, req->params[0], req->project, "custom", full, &s,
				  err);
	if (r < 0)
		return r;
	resp->etag = volume_etag(s);
	snapshot_decorate(s);
	return api_sync(resp, TAKE_PTR(s));
}

static int update_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", req->params[2], req->params[3]);
	json_auto_t *cur = NULL;
	const char *desc;
	int r = require_custom(req->params[1], err);

	if (!full)
		return -ENOMEM;
	if (r >= 0)
		r = api_require_body(req, err);
	if (r >= 0)
		r = db_volume_get(req->d->db, req->params[0], req->project, "custom", full, &cur,
				  err);
	if (r < 0)
		return r;
	desc = berth_json_string(req->body, "description");
	if (desc || streq(req->method, "PUT"))
		json_object_set_new(cur, "description", json_string(desc ?: ""));
	r = db_volume_update(req->d->db, req->params[0], req->project, "custom", full, cur, NULL,
			     NULL, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

static int run_snapshot_delete(struct operation *op, void *data, struct berth_error *err)
{
	return custom_volume_snapshot_delete(data, err);
}

static int run_snapshot_rename(struct operation *op, void *data, struct berth_error *err)
{
	return custom_volume_snapshot_rename(data, err);
}

/* DELETE and POST (rename) on a snapshot: checked here, done by an operation. */
static int snapshot_op(struct api_request *req, struct api_response *resp, bool rename,
		       struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", req->params[2], req->params[3]);
	_cleanup_(custom_volume_freep) struct custom_volume *c = NULL;
	const char *name = NULL;
	int r = require_custom(req->params[1], err);

	if (!full)
		return -ENOMEM;
	if (r >= 0)
		r = db_volume_get(req->d->db, req->params[0], req->project, "custom", full, NULL,
				  err);
	if (r >= 0 && rename) {
		r = api_require_body(req, err);
		name = r >= 0 ? berth_json_string(req->body, "name") : NULL;
		if (r >= 0 && !name)
			r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					    "No name provided");
		if (r >= 0)
			r = berth_name_check_entity("snapshot name", name, err);
	}
	if (r >= 0)
		r = vol_ctx_new(req, req->params[2], req->params[3], &c, err);
	if (r < 0)
		return r;
	if (rename) {
		c->new_name = strdup(name);
		if (!c->new_name)
			return -ENOMEM;
		return api_async(req, resp, "Renaming storage volume snapshot",
				 snapshot_resources(req, req->params[3]), run_snapshot_rename,
				 TAKE_PTR(c), custom_volume_free, err);
	}
	return api_async(req, resp, "Deleting storage volume snapshot",
			 snapshot_resources(req, req->params[3]), run_snapshot_delete, TAKE_PTR(c),
			 custom_volume_free, err);
}

static int delete_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	return snapshot_op(req, resp, false, err);
}

static int rename_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	return snapshot_op(req, resp, true, err);
}

#define VOL "/1.0/storage-pools/{}/volumes"
const struct api_route api_storage_volume_routes[] = {
	{"GET", VOL, list_all_volumes, NULL},
	{"POST", VOL, create_any_volume, NULL},
	{"GET", VOL "/{}", list_typed_volumes, NULL},
	{"POST", VOL "/{}", create_typed_volume, NULL},
	{"GET", VOL "/{}/{}", get_volume, NULL},
	{"PUT", VOL "/{}/{}", put_volume, NULL},
	{"PATCH", VOL "/{}/{}", patch_volume, NULL},
	{"POST", VOL "/{}/{}", rename_volume, NULL},
	{"DELETE", VOL "/{}/{}", delete_volume, NULL},
	{"GET", VOL "/{}/{}/state", get_volume_state, NULL},
	{"GET", VOL "/{}/{}/snapshots", list_snapshots, NULL},
	{"POST", VOL "/{}/{}/snapshots", create_snapshot, NULL},
	{"GET", VOL "/{}/{}/snapshots/{}", get_snapshot, NULL},
	{"PUT", VOL "/{}/{}/snapshots/{}", update_snapshot, NULL},
	{"PATCH", VOL "/{}/{}/snapshots/{}", update_snapshot, NULL},
	{"POST", VOL "/{}/{}/snapshots/{}", rename_snapshot, NULL},
	{"DELETE", VOL "/{}/{}/snapshots/{}", delete_snapshot, NULL},
	{0},
};

/* ---- disk devices naming volumes ---- */

static int disk_device_check(struct db *db, const char *project, const char *name,
			     const json_t *dev, struct berth_error *err)
{
	const char *path = berth_json_string(dev, "path");
	const char *pool = berth_json_string(dev, "pool");
	const char *source = berth_json_string(dev, "source");
	json_auto_t *p = NULL, *vol = NULL;
	int r;

	if (path && *path && *path != '/')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": the path \"%s\" isn't absolute",
				       name, path);
	if (!pool || !*pool)
		return 0;
	r = db_pool_get(db, pool, &p, err);
	if (r == -ENOENT) {
		berth_error_release(err);
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": storage pool \"%s\" doesn't exist",
				       name, pool);
	}
	if (r < 0 || (path && streq(path, "/")) || !source || !*source)
		return r;
	if (strchr(source, '/'))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": \"%s\" isn't a custom volume name"
				       " (only custom volumes can be attached)",
				       name, source);
	r = db_volume_get(db, pool, project, "custom", source, &vol, err);
	if (r >= 0) {
		bool block = streq(berth_json_string(vol, "content_type") ?: "", "block");

		if (block && path && *path)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": Custom block volumes cannot "
					       "have a path defined",
					       name);
		if (!block && (!path || !*path))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid device \"%s\": Custom filesystem volumes "
					       "require a path to be defined",
					       name);
		return 0;
	}
	if (r != -ENOENT)
		return r;
	berth_error_release(err);
	if (db_volume_get(db, pool, project, "container", source, NULL, NULL) >= 0 ||
	    db_volume_get(db, pool, project, "image", source, NULL, NULL) >= 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": only custom volumes can be attached,"
				       " \"%s\" isn't one",
				       name, source);
	return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
			       "Invalid device \"%s\": storage volume \"%s\" doesn't exist on pool"
			       " \"%s\"",
			       name, source, pool);
}

int api_disk_devices_check(struct db *db, const char *project, const json_t *devices,
			   struct berth_error *err)
{
	_cleanup_free_ char *custom = NULL; /* whose custom volumes `project` uses */
	const char *name;
	json_t *dev;
	int r;

	r = db_project_feature_project(db, project, "features.storage.volumes", &custom, err);
	if (r < 0)
		return r;
	json_object_foreach((json_t *)devices, name, dev) {
		if (!streq(berth_json_string(dev, "type") ?: "", "disk"))
			continue;
		r = disk_device_check(db, custom, name, dev, err);
		if (r < 0)
			return r;
	}
	return 0;
}
