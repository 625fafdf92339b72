/* daemon/api/storage_volumes.c: /1.0/storage-pools/{pool}/volumes[/{type}[/{name}]] and
 * .../{name}/snapshots[/{snap}]: custom volumes and their snapshots.
 *
 * Rows and disk change together, without holding the database's write lock during
 * slow disk work (a dir snapshot or restore copies a whole tree):
 *   - fast work (create, rename, quota) runs inside the row's transaction as its hook
 *     (db.h's db_hook_fn): a driver failure leaves no row, a failed commit is undone;
 *   - snapshots are made first, then recorded; a failed insert removes the copy;
 *   - deletions move the volume or snapshot aside inside the transaction (a rename)
 *     and remove it after the commit;
 *   - a restore changes no row and takes no transaction.
 * What a killed berthd leaves between two steps has no row and is removed at the next
 * start (storage.c's reconciliation).
 * Snapshot creation, deletion and rename are operations, as the lxc client expects. */
#define LOG_CATEGORY "volumes"
#include <stdio.h>
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/api/project_limits.h"
#include "daemon/api/storage.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/log.h"
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
static int volume_decorate(const char *pool, json_t *v, struct berth_error *err)
{
	const char *name = berth_json_string(v, "name") ?: "";
	const char *type = berth_json_string(v, "type") ?: "";
	json_t *used_by = NULL;
	int r;

	if (streq(type, "custom") && !strchr(name, '/')) {
		r = db_volume_used_by(pool, berth_json_string(v, "project") ?: "default", name,
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

/* A volume being worked on: the pool, the volume's on-disk identity and names. */
struct vol_ctx {
	struct storage_pool *pool; /* owned */
	char *project;		   /* owned */
	char *name;		   /* owned: API name */
	char *disk_name;	   /* owned: <project>_<name> */
	char *snap;		   /* owned or NULL */
	char *new_name;		   /* owned or NULL: rename target */
	struct storage_vol vol;	   /* borrows disk_name */
	uint64_t size;
	bool done; /* the hook's disk work happened */
};

static void vol_ctx_free(void *data)
{
	struct vol_ctx *c = data;

	if (!c)
		return;
	storage_pool_free(c->pool);
	free(c->project);
	free(c->name);
	free(c->disk_name);
	free(c->snap);
	free(c->new_name);
	free(c);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vol_ctx *, vol_ctx_free)

static int vol_ctx_new_on(struct api_request *req, const char *pool, const char *name,
			  const char *snap, struct vol_ctx **ret, struct berth_error *err)
{
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	r = api_storage_pool_open(req, pool, &c->pool, err);
	if (r < 0)
		return r;
	c->project = strdup(req->project);
	c->name = strdup(name);
	c->disk_name = storage_vol_disk_name(req->project, name);
	c->snap = snap ? strdup(snap) : NULL;
	if (!c->project || !c->name || !c->disk_name || (snap && !c->snap))
		return -ENOMEM;
	c->vol = (struct storage_vol){.type = STORAGE_VOL_CUSTOM, .name = c->disk_name};
	*ret = TAKE_PTR(c);
	return 0;
}

/* A volume of the request's pool (params[0]). */
static int vol_ctx_new(struct api_request *req, const char *name, const char *snap,
		       struct vol_ctx **ret, struct berth_error *err)
{
	return vol_ctx_new_on(req, req->params[0], name, snap, ret, err);
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
		return db_volume_list(req->params[0], req->project, type, ret, err);
	r = db_project_feature_project(req->project, "features.storage.volumes",
				       &custom_project, err);
	if (r >= 0)
		r = db_volume_list(req->params[0], req->project, NULL, &all, err);
	if (r < 0 || streq(custom_project, req->project)) {
		if (r >= 0)
			*ret = TAKE_PTR(all);
		return r;
	}
	r = db_volume_list(req->params[0], custom_project, "custom", &custom, err);
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
					      slash, req->project) : NULL;
			json_array_append_new(out, json_string(u));
			continue;
		}
		r = volume_decorate(req->params[0], v, err);
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
struct copy_job {
	struct berth_daemon *d;	       /* borrowed */
	struct vol_ctx *dst;	       /* owned: the new volume */
	struct storage_pool *src_pool; /* owned */
	char *src_disk;		       /* owned: <project>_<volume> of the source */
	char *src_snap;		       /* owned or NULL: copy that snapshot only */
	json_t *obj;		       /* owned: the new volume's row */
	json_t *snaps;		       /* owned: snapshot rows for the copy, oldest first */
	char *url;		       /* owned: the new volume's URL */
	char *src_name;		       /* owned: API name of the source (a move deletes it) */
	char *trash;		       /* owned: a move's source, set aside before removal */
	bool move;
	bool trashed;		       /* the move's hook set the source aside */
};

static void copy_job_free(void *data)
{
	struct copy_job *j = data;

	if (!j)
		return;
	vol_ctx_free(j->dst);
	storage_pool_free(j->src_pool);
	free(j->src_disk);
	free(j->src_snap);
	json_decref(j->obj);
	json_decref(j->snaps);
	free(j->url);
	free(j->src_name);
	free(j->trash);
	free(j);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct copy_job *, copy_job_free)

static int copy_disk(struct copy_job *j, struct berth_error *err)
{
	struct storage_pool *dp = j->dst->pool;
	struct storage_vol src = {STORAGE_VOL_CUSTOM, j->src_disk};
	size_t n = json_array_size(j->snaps);
	_cleanup_free_ const char **names = calloc(n + 1, sizeof(*names));
	json_t *s;
	size_t i;
	int r;

	if (!names)
		return -ENOMEM;
	if (!streq(j->src_pool->name, dp->name)) {
		json_array_foreach(j->snaps, i, s)
			names[i] = strchr(berth_json_string(s, "name"), '/') + 1;
		return storage_volume_transfer(j->src_pool, &src, j->src_snap, dp, &j->dst->vol,
					       names, j->dst->size, err);
	}
	if (!j->src_snap)
		return dp->driver->volume_copy(dp, &src, &j->dst->vol, n > 0, j->dst->size, err);
	r = dp->driver->volume_copy_snapshot(dp, &src, j->src_snap, &j->dst->vol, err);
	if (r >= 0 && j->dst->size > 0) {
		r = dp->driver->volume_set_quota(dp, &j->dst->vol, j->dst->size, err);
		if (r < 0)
			dp->driver->volume_delete(dp, &j->dst->vol, NULL);
	}
	return r;
}

/* Inside a move's transaction: the source is set aside ("<disk>.deleting", a rename) and
 * removed after the commit, as delete_volume does. */
static int move_hook(void *data, struct berth_error *err)
{
	struct copy_job *j = data;
	struct storage_vol src = {STORAGE_VOL_CUSTOM, j->src_disk};
	int r = j->src_pool->driver->volume_rename(j->src_pool, &src, j->trash, err);

	j->trashed = r >= 0;
	return r;
}

static int run_volume_copy(struct operation *op, void *data, struct berth_error *err)
{
	struct copy_job *j = data;
	struct vol_ctx *c = j->dst;
	_cleanup_close_ int wb = -EBADF;
	int r;

	if (db_volume_get(c->pool->name, c->project, "custom", c->name, NULL, NULL) >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Storage volume \"%s\" already exists", c->name);
	r = storage_writeback_watch(c->pool->path, &wb, err);
	if (r >= 0)
		r = copy_disk(j, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Copying the volume");
	r = storage_writeback_check(wb, "the copied volume", err);
	berth_test_pause(j->move ? "volume-move-after-disk" : "volume-copy-after-disk");
	if (r >= 0 && j->move)
		r = db_volume_move(j->src_pool->name, c->project, j->src_name, c->pool->name,
				   j->obj, j->snaps, move_hook, j, err);
	else if (r >= 0)
		r = db_volume_create_with_snapshots(c->pool->name, c->project, j->obj, j->snaps,
						    err);
	if (r < 0) {
		struct storage_vol trash = {STORAGE_VOL_CUSTOM, j->trash};

		if (j->trashed)
			j->src_pool->driver->volume_rename(j->src_pool, &trash, j->src_disk, NULL);
		c->pool->driver->volume_delete(c->pool, &c->vol, NULL);
		return r;
	}
	if (j->move) {
		struct storage_vol trash = {STORAGE_VOL_CUSTOM, j->trash};
		struct berth_error derr = {0};

		r = j->src_pool->driver->volume_delete(j->src_pool, &trash, &derr);
		if (r < 0) /* the row is gone: the next start removes what is left */
			log_warn("Cannot remove moved volume \"%s\": %s", j->trash,
				 berth_error_msg(&derr, r));
		berth_error_release(&derr);
	}
	events_lifecycle(j->d->events, c->project, "storage-volume-created", j->url, NULL);
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
	int r = db_volume_snapshot_list(src_pool, req->project, "custom", src, &list, err);

	if (r < 0)
		return r;
	json_array_foreach(list, i, s) {
		_cleanup_free_ char *name =
			berth_strdup_printf("%s/%s", dst, berth_json_string(s, "name") ?: "");
		json_t *row = name ? json_pack("{s:s, s:s, s:s, s:{}, s:s}", "name", name, "type",
					       "custom", "description",
					       berth_json_string(s, "description") ?: "",
					       "config", "content_type", "filesystem") : NULL;
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
	json_auto_t *src = NULL;
	const json_t *config = json_object_get(req->body, "config");
	const char *desc = berth_json_string(req->body, "description");
	char *slash;
	int r;

	if (!j || !src_vol)
		return -ENOMEM;
	slash = strchr(src_vol, '/');
	if (slash)
		*slash++ = '\0';
	r = vol_ctx_new_on(req, dst_pool, name, NULL, &j->dst, err);
	if (r >= 0)
		r = api_storage_pool_open(req, src_pool, &j->src_pool, err);
	if (r >= 0)
		r = db_volume_get(src_pool, req->project, "custom", src_vol, &src, err);
	if (r >= 0 && slash)
		r = db_volume_get(src_pool, req->project, "custom", src_name, NULL, err);
	if (r < 0)
		return r;
	if (db_volume_get(dst_pool, req->project, "custom", name, NULL, NULL) >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Storage volume \"%s\" already exists", name);
	j->d = req->d;
	j->src_name = strdup(src_vol);
	j->src_disk = storage_vol_disk_name(req->project, src_vol);
	j->src_snap = slash ? strdup(slash) : NULL;
	j->url = volume_url(dst_pool, "custom", name, NULL, req->project);
	/* Without a config of its own, the copy takes the source's (LXD does the same),
	 * less a size the destination's driver cannot enforce. */
	config = json_object_size(config) ? config : json_object_get(src, "config");
	j->obj = json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", name, "type", "custom",
			   "description", desc && *desc ? desc :
			   berth_json_string(src, "description") ?: "", "config",
			   config ? json_deep_copy(config) : json_object(), "content_type",
			   "filesystem");
	if (!j->src_name || !j->src_disk || (slash && !j->src_snap) || !j->url || !j->obj)
		return -ENOMEM;
	if (!json_object_size(json_object_get(req->body, "config")) &&
	    streq(j->dst->pool->driver->name, "dir"))
		json_object_del(json_object_get(j->obj, "config"), "size");
	api_config_drop_empty(json_object_get(j->obj, "config"));
	r = storage_config_check(json_object_get(j->obj, "config"),
				 j->dst->pool->driver->volume_keys, err);
	if (r >= 0)
		r = config_size(json_object_get(j->obj, "config"), &j->dst->size, err);
	if (r >= 0 && !volume_only && !slash)
		r = copy_snapshot_rows(req, src_pool, src_vol, name, &j->snaps, err);
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
	int r = db_volume_used_by(req->params[0], req->project, req->params[2], &used, err);

	if (r < 0)
		return r;
	if (json_array_size(used) > 0)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "The storage volume is still in use");
	r = copy_job_new(req, req->params[0], req->params[2], pool, name, false, &j, err);
	if (r < 0)
		return r;
	j->move = true;
	j->trash = berth_strdup_printf("%s.deleting", j->src_disk);
	resources = json_pack("{s:[s]}", "storage_volumes", j->url);
	if (!j->trash) {
		copy_job_free(j);
		json_decref(resources);
		return -ENOMEM;
	}
	return api_async(req, resp, "Moving storage volume", resources, run_volume_copy, j,
			 copy_job_free, err);
}

static int create_hook(void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	int r = c->pool->driver->volume_create(c->pool, &c->vol, c->size, err);

	c->done = r >= 0;
	return r;
}

static int create_volume(struct api_request *req, struct api_response *resp,
			 const char *url_type, struct berth_error *err)
{
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *obj = NULL;
	const char *name, *type, *source_type;
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
	if (source_type && *source_type)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Creating a volume from a \"%s\" source isn't supported yet",
				       source_type);
	obj = json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", name, "type", "custom",
			"description", berth_json_string(req->body, "description") ?: "",
			"config", berth_json_object_or_empty(req->body, "config"), "content_type",
			"filesystem");
	if (!obj)
		return -ENOMEM;
	api_config_drop_empty(json_object_get(obj, "config"));
	r = vol_ctx_new(req, name, NULL, &c, err);
	if (r >= 0)
		r = storage_config_check(json_object_get(obj, "config"),
					 c->pool->driver->volume_keys, err);
	if (r >= 0)
		r = config_size(json_object_get(obj, "config"), &c->size, err);
	if (r >= 0)
		r = project_limits_check_volume(req->project, obj, err);
	if (r >= 0)
		r = db_volume_create(req->params[0], req->project, obj, create_hook, c, err);
	if (r < 0) {
		if (c && c->done)
			c->pool->driver->volume_delete(c->pool, &c->vol, NULL);
		return r;
	}
	url = volume_url(req->params[0], "custom", name, NULL, req->project);
	events_lifecycle(req->d->events, req->project, "storage-volume-created", url, NULL);
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

static int get_volume(struct api_request *req, struct api_response *resp,
		      struct berth_error *err)
{
	json_auto_t *v = NULL;
	enum storage_volume_type t;
	int r;

	if (storage_volume_type_from_name(req->params[1], &t) < 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Invalid storage volume type \"%s\"", req->params[1]);
	r = db_volume_get(req->params[0], req->project, req->params[1], req->params[2], &v, err);
	if (r < 0)
		return r;
	resp->etag = volume_etag(v);
	r = volume_decorate(req->params[0], v, err);
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
	r = db_volume_get(req->params[0], req->project, req->params[1], req->params[2], NULL,
			  err);
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

static int quota_hook(void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	int r = c->pool->driver->volume_set_quota(c->pool, &c->vol, c->size, err);

	c->done = r >= 0;
	return r;
}

static int restore_volume(struct api_request *req, struct api_response *resp,
			  const json_t *cur, const char *snap, struct berth_error *err)
{
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = NULL;
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", req->params[2], snap);
	int r;

	if (!full)
		return -ENOMEM;
	r = vol_ctx_new(req, req->params[2], snap, &c, err);
	if (r >= 0)
		r = config_size(json_object_get(cur, "config"), &c->size, err);
	if (r >= 0)
		r = db_volume_get(req->params[0], req->project, "custom", full, NULL, err);
	/* No row changes, so no transaction: a dir restore copies the whole tree and must
	 * not hold the database's write lock meanwhile. */
	if (r >= 0)
		r = c->pool->driver->volume_restore(c->pool, &c->vol, c->snap, c->size, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

static int update_volume(struct api_request *req, struct api_response *resp,
			 struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description"};
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = NULL;
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
		r = db_volume_get(req->params[0], req->project, "custom", req->params[2], &cur,
				  err);
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
		r = project_limits_check_volume(req->project, next, err);
	if (r < 0)
		return r;
	r = db_volume_update(req->params[0], req->project, "custom", req->params[2], next,
			     c->size != old_size ? quota_hook : NULL, c, err);
	if (r < 0) {
		if (c->done)
			c->pool->driver->volume_set_quota(c->pool, &c->vol, old_size, NULL);
		return r;
	}
	return api_sync(resp, NULL);
}

static int put_volume(struct api_request *req, struct api_response *resp,
		      struct berth_error *err)
{
	return update_volume(req, resp, err, false);
}

static int patch_volume(struct api_request *req, struct api_response *resp,
			struct berth_error *err)
{
	return update_volume(req, resp, err, true);
}

static int rename_hook(void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	int r = c->pool->driver->volume_rename(c->pool, &c->vol, c->new_name, err);

	c->done = r >= 0;
	return r;
}

static int rename_volume(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = NULL;
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
	c->new_name = storage_vol_disk_name(req->project, name);
	if (!c->new_name)
		return -ENOMEM;
	r = db_volume_rename(req->params[0], req->project, "custom", req->params[2], name,
			     rename_hook, c, err);
	if (r < 0) {
		if (c->done) {
			struct storage_vol nv = {STORAGE_VOL_CUSTOM, c->new_name};
			c->pool->driver->volume_rename(c->pool, &nv, c->disk_name, NULL);
		}
		return r;
	}
	url = volume_url(req->params[0], "custom", name, NULL, req->project);
	events_lifecycle(req->d->events, req->project, "storage-volume-renamed", url,
			 json_pack("{s:s}", "old_name", req->params[2]));
	return api_created(resp, url);
}

/* Deleting moves the volume aside ("<disk>.deleting", a rename: instant on both drivers)
 * inside the row's transaction, and removes it after the commit, so a long removal (a
 * big dir volume) never holds the database's write lock. A berthd killed in between
 * leaves "<disk>.deleting" without a row: the reconciliation at start removes it. */
static int delete_hook(void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	int r = c->pool->driver->volume_rename(c->pool, &c->vol, c->new_name, err);

	c->done = r >= 0;
	return r;
}

static int delete_volume(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = NULL;
	_cleanup_free_ char *url = NULL;
	struct berth_error derr = {0};
	struct storage_vol trash;
	int r = require_custom(req->params[1], err);

	if (r >= 0)
		r = vol_ctx_new(req, req->params[2], NULL, &c, err);
	if (r < 0)
		return r;
	c->new_name = berth_strdup_printf("%s.deleting", c->disk_name);
	if (!c->new_name)
		return -ENOMEM;
	trash = (struct storage_vol){STORAGE_VOL_CUSTOM, c->new_name};
	c->pool->driver->volume_delete(c->pool, &trash, NULL); /* an older leftover */
	r = db_volume_delete(req->params[0], req->project, "custom", req->params[2], delete_hook,
			     c, err);
	if (r < 0) {
		if (c->done)
			c->pool->driver->volume_rename(c->pool, &trash, c->disk_name, NULL);
		return r;
	}
	r = c->pool->driver->volume_delete(c->pool, &trash, &derr);
	if (r < 0) /* the row is gone: the next start removes what is left */
		log_warn("Cannot remove deleted volume \"%s\": %s", c->new_name,
			 berth_error_msg(&derr, r));
	berth_error_release(&derr);
	url = volume_url(req->params[0], "custom", req->params[2], NULL, req->project);
	events_lifecycle(req->d->events, req->project, "storage-volume-deleted", url, NULL);
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
		r = db_volume_get(req->params[0], req->project, "custom", req->params[2], NULL,
				  err);
	if (r >= 0)
		r = db_volume_snapshot_list(req->params[0], req->project, "custom",
					    req->params[2], &list, err);
	if (r < 0)
		return r;
	json_array_foreach(list, i, s) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u =
				volume_url(req->params[0], "custom", req->params[2],
					   berth_json_string(s, "name"), req->project);
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
	int r = db_volume_snapshot_list(req->params[0], req->project, "custom", req->params[2],
					&list, err);

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

/* The copy first (a dir snapshot copies the whole tree: no database lock held
 * meanwhile), then the row; no row, no snapshot: it is removed again. A berthd killed in
 * between leaves a snapshot without a row, which the reconciliation at start removes. */
static int run_snapshot_create(struct operation *op, void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", c->name, c->snap);
	json_auto_t *obj = NULL;
	int r;

	if (!full)
		return -ENOMEM;
	obj = json_pack("{s:s, s:s, s:s, s:{}, s:s}", "name", full, "type", "custom",
			"description", "", "config", "content_type", "filesystem");
	if (!obj)
		return -ENOMEM;
	r = db_volume_get(c->pool->name, c->project, "custom", full, NULL, NULL);
	if (r >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Storage volume snapshot \"%s\" already exists", full);
	r = c->pool->driver->volume_snapshot(c->pool, &c->vol, c->snap, err);
	if (r < 0)
		return r;
	berth_test_pause("volume-snapshot-after-disk");
	r = db_volume_create(c->pool->name, c->project, obj, NULL, NULL, err);
	if (r < 0)
		c->pool->driver->volume_snapshot_delete(c->pool, &c->vol, c->snap, NULL);
	return r;
}

static json_t *snapshot_resources(struct api_request *req, const char *snap)
{
	_cleanup_free_ char *vol = volume_url(req->params[0], "custom", req->params[2], NULL,
					      req->project);
	_cleanup_free_ char *s = volume_url(req->params[0], "custom", req->params[2], snap,
					    req->project);

	return json_pack("{s:[s?], s:[s?]}", "storage_volumes", vol, "storage_volume_snapshots",
			 s);
}

static int create_snapshot(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = NULL;
	_cleanup_free_ char *snap = NULL;
	const char *name;
	int r = require_custom(req->params[1], err);

	if (r >= 0 && req->body)
		r = api_require_body(req, err);
	if (r >= 0)
		r = db_volume_get(req->params[0], req->project, "custom", req->params[2], NULL,
				  err);
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
			 vol_ctx_free, err);
}

static int get_snapshot(struct api_request *req, struct api_response *resp,
			struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", req->params[2], req->params[3]);
	json_auto_t *s = NULL;
	int r = require_custom(req->params[1], err);

	if (!full)
		return -ENOMEM;
	if (r >= 0)
		r = db_volume_get(req->params[0], req->project, "custom", full, &s, err);
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
		r = db_volume_get(req->params[0], req->project, "custom", full, &cur, err);
	if (r < 0)
		return r;
	desc = berth_json_string(req->body, "description");
	if (desc || streq(req->method, "PUT"))
		json_object_set_new(cur, "description", json_string(desc ?: ""));
	r = db_volume_update(req->params[0], req->project, "custom", full, cur, NULL, NULL, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

/* As for volumes: moved aside ("<snap>.deleting") inside the transaction, removed after. */
static int snapshot_delete_hook(void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	int r = c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->snap, c->new_name,
						       err);

	c->done = r >= 0;
	return r;
}

static int run_snapshot_delete(struct operation *op, void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", c->name, c->snap);
	struct berth_error derr = {0};
	int r;

	free(c->new_name);
	c->new_name = berth_strdup_printf("%s.deleting", c->snap);
	if (!full || !c->new_name)
		return -ENOMEM;
	c->pool->driver->volume_snapshot_delete(c->pool, &c->vol, c->new_name, NULL);
	r = db_volume_delete(c->pool->name, c->project, "custom", full, snapshot_delete_hook, c,
			     err);
	if (r < 0) {
		if (c->done)
			c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->new_name,
								c->snap, NULL);
		return r;
	}
	r = c->pool->driver->volume_snapshot_delete(c->pool, &c->vol, c->new_name, &derr);
	if (r < 0) /* the row is gone: the next start removes what is left */
		log_warn("Cannot remove deleted snapshot \"%s\": %s", full,
			 berth_error_msg(&derr, r));
	berth_error_release(&derr);
	return 0;
}

static int snapshot_rename_hook(void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	int r = c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->snap, c->new_name,
						       err);

	c->done = r >= 0;
	return r;
}

static int run_snapshot_rename(struct operation *op, void *data, struct berth_error *err)
{
	struct vol_ctx *c = data;
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", c->name, c->snap);
	_cleanup_free_ char *new_full = berth_strdup_printf("%s/%s", c->name, c->new_name);
	int r;

	if (!full || !new_full)
		return -ENOMEM;
	r = db_volume_rename(c->pool->name, c->project, "custom", full, new_full,
			     snapshot_rename_hook, c, err);
	if (r < 0 && c->done)
		c->pool->driver->volume_snapshot_rename(c->pool, &c->vol, c->new_name, c->snap,
							NULL);
	return r;
}

/* DELETE and POST (rename) on a snapshot: checked here, done by an operation. */
static int snapshot_op(struct api_request *req, struct api_response *resp, bool rename,
		       struct berth_error *err)
{
	_cleanup_free_ char *full = berth_strdup_printf("%s/%s", req->params[2], req->params[3]);
	_cleanup_(vol_ctx_freep) struct vol_ctx *c = NULL;
	const char *name = NULL;
	int r = require_custom(req->params[1], err);

	if (!full)
		return -ENOMEM;
	if (r >= 0)
		r = db_volume_get(req->params[0], req->project, "custom", full, NULL, err);
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
				 TAKE_PTR(c), vol_ctx_free, err);
	}
	return api_async(req, resp, "Deleting storage volume snapshot",
			 snapshot_resources(req, req->params[3]), run_snapshot_delete, TAKE_PTR(c),
			 vol_ctx_free, err);
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

static int disk_device_check(const char *project, const char *name, const json_t *dev,
			     struct berth_error *err)
{
	const char *path = berth_json_string(dev, "path");
	const char *pool = berth_json_string(dev, "pool");
	const char *source = berth_json_string(dev, "source");
	json_auto_t *p = NULL;
	int r;

	if (path && *path && *path != '/')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": the path \"%s\" isn't absolute",
				       name, path);
	if (!pool || !*pool)
		return 0;
	r = db_pool_get(pool, &p, err);
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
				       " (only custom volumes can be attached)", name, source);
	r = db_volume_get(pool, project, "custom", source, NULL, err);
	if (r != -ENOENT)
		return r;
	berth_error_release(err);
	if (db_volume_get(pool, project, "container", source, NULL, NULL) >= 0 ||
	    db_volume_get(pool, project, "image", source, NULL, NULL) >= 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid device \"%s\": only custom volumes can be attached,"
				       " \"%s\" isn't one", name, source);
	return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
			       "Invalid device \"%s\": storage volume \"%s\" doesn't exist on pool"
			       " \"%s\"", name, source, pool);
}

int api_disk_devices_check(const char *project, const json_t *devices, struct berth_error *err)
{
	_cleanup_free_ char *custom = NULL; /* whose custom volumes `project` uses */
	const char *name;
	json_t *dev;
	int r;

	r = db_project_feature_project(project, "features.storage.volumes", &custom, err);
	if (r < 0)
		return r;
	json_object_foreach((json_t *)devices, name, dev) {
		if (!streq(berth_json_string(dev, "type") ?: "", "disk"))
			continue;
		r = disk_device_check(custom, name, dev, err);
		if (r < 0)
			return r;
	}
	return 0;
}
