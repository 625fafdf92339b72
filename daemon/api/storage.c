/* daemon/api/storage.c: /1.0/storage-pools and /1.0/storage-pools/{name}[/resources].
 *
 * A pool's row and its on-disk existence change together: the driver's work runs as
 * the database transaction's hook, so a failing driver leaves no row and a failing
 * commit makes us undo the driver's work. What a killed berthd left on disk without a
 * row is cleaned up at start (daemon/storage/pools.c). */
#define LOG_CATEGORY "storage"
#include <string.h>
#include <sys/statvfs.h>

#include "daemon/api/api.h"
#include "daemon/api/storage.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

static const struct berth_json_field pool_fields[] = {
	{"name", BERTH_JSON_STRING, false, false},
	{"driver", BERTH_JSON_STRING, false, true},
	{"description", BERTH_JSON_STRING, false, true},
	{"config", BERTH_JSON_STRING_MAP, false, true},
};

/* Config keys that describe the backing store: fixed once the pool exists. */
static const char *const fixed_keys[] = {"source", "size"};

static char *pool_etag(const json_t *p)
{
	json_auto_t *e = json_pack("{s:O?, s:O?, s:O?, s:O?}", "name", json_object_get(p, "name"),
				   "driver", json_object_get(p, "driver"), "description",
				   json_object_get(p, "description"), "config",
				   json_object_get(p, "config"));
	return e ? api_etag(e) : NULL;
}

static int pool_decorate(struct db *db, json_t *pool, struct berth_error *err)
{
	json_t *used_by = NULL;
	int r = db_pool_used_by(db, berth_json_string(pool, "name"), &used_by, err);

	if (r < 0)
		return r;
	json_object_set_new(pool, "used_by", used_by);
	json_object_set_new(pool, "locations", json_pack("[s]", "none"));
	if (!json_object_get(pool, "status"))
		json_object_set_new(pool, "status", json_string("Created"));
	return 0;
}

int api_storage_pool_open(struct api_request *req, const char *name, struct storage_pool **ret,
			  struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(req->d->db, name, &p, err);

	if (r < 0)
		return r;
	return storage_pool_new(req->d->dir, p, ret, err);
}

static int list_pools(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_auto_t *out = json_array();
	json_t *p;
	size_t i;
	int r = db_pool_list(req->d->db, &list, err);

	if (r < 0)
		return r;
	json_array_foreach(list, i, p) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u = api_url("storage-pools",
							 berth_json_string(p, "name"), NULL);
			json_array_append_new(out, json_string(u));
			continue;
		}
		r = pool_decorate(req->d->db, p, err);
		if (r < 0)
			return r;
		json_array_append(out, p);
	}
	return api_sync(resp, TAKE_PTR(out));
}

struct create_ctx {
	struct storage_pool *pool; /* borrowed */
	json_t *obj;		   /* borrowed: the row being written */
	bool created;		   /* the driver's pool_create succeeded */
};

static int create_hook(void *data, struct berth_error *err)
{
	struct create_ctx *c = data;
	int r = c->pool->driver->pool_create(c->pool, err);

	if (r < 0)
		return r;
	c->created = true;
	json_object_set(c->obj, "config", c->pool->config);
	return 0;
}

static int create_pool(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *obj = NULL;
	struct create_ctx c = {0};
	const char *name, *driver;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, pool_fields, ARRAY_SIZE(pool_fields),
				     "storage pool", err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	driver = berth_json_string(req->body, "driver");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("storage pool name", name, err);
	if (r < 0)
		return r;
	if (!driver || !*driver)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No driver provided");
	if (!storage_driver_find(driver))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Storage driver \"%s\" isn't supported (dir, btrfs)",
				       driver);
	obj = json_pack("{s:s, s:s, s:s, s:o}", "name", name, "driver", driver, "description",
			berth_json_string(req->body, "description") ?: "", "config",
			berth_json_object_or_empty(req->body, "config"));
	if (!obj)
		return -ENOMEM;
	api_config_drop_empty(json_object_get(obj, "config"));
	r = storage_pool_new(req->d->dir, obj, &pool, err);
	if (r < 0)
		return r;
	r = storage_config_check(pool->config, pool->driver->pool_keys, err);
	if (r < 0)
		return r;
	c.pool = pool;
	c.obj = obj;
	r = db_pool_create(req->d->db, obj, create_hook, &c, err);
	if (r < 0) {
		if (c.created && pool->driver->pool_delete(pool, NULL) < 0)
			log_error("Pool \"%s\" left on disk after a failed commit", name);
		return r;
	}
	log_info("Created storage pool \"%s\" (%s) at \"%s\"", name, driver, pool->path);
	url = api_url("storage-pools", name, NULL);
	events_lifecycle(req->d->events, NULL, "storage-pool-created", url, NULL);
	return api_created(resp, url);
}

static int get_pool(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *p = NULL;
	int r = db_pool_get(req->d->db, req->params[0], &p, err);

	if (r < 0)
		return r;
	resp->etag = pool_etag(p);
	r = pool_decorate(req->d->db, p, err);
	if (r < 0)
		return r;
	return api_sync(resp, TAKE_PTR(p));
}

/* The new config must keep the backing-store keys as they are. */
static int check_fixed_keys(const json_t *cur, const json_t *next, struct berth_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(fixed_keys); i++) {
		const char *a = berth_json_string(cur, fixed_keys[i]);
		const char *b = berth_json_string(next, fixed_keys[i]);

		if (b && (!a || !streq(a, b)))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Changing \"%s\" of an existing pool isn't"
					       " supported",
					       fixed_keys[i]);
	}
	return 0;
}

static int update_pool(struct api_request *req, struct api_response *resp, struct berth_error *err,
		       bool patch)
{
	static const char *const fields[] = {"description"};
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *etag = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *cur = NULL;
	json_auto_t *next = NULL;
	json_t *config;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, pool_fields, ARRAY_SIZE(pool_fields),
				     "storage pool", err);
	if (r >= 0)
		r = db_pool_get(req->d->db, req->params[0], &cur, err);
	if (r < 0)
		return r;
	etag = pool_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0)
		return r;
	next = json_deep_copy(cur);
	if (!next)
		return -ENOMEM;
	if (patch) {
		api_patch_merge(next, req->body, fields, ARRAY_SIZE(fields));
	} else {
		json_object_set_new(next, "description",
				    json_string(berth_json_string(req->body, "description") ?: ""));
		config = berth_json_object_or_empty(req->body, "config");
		api_config_drop_empty(config);
		/* PUT without the backing-store keys keeps them (lxc edit shows them). */
		for (size_t i = 0; i < ARRAY_SIZE(fixed_keys); i++) {
			json_t *v = json_object_get(json_object_get(cur, "config"), fixed_keys[i]);
			if (v && !json_object_get(config, fixed_keys[i]))
				json_object_set(config, fixed_keys[i], v);
		}
		json_object_set_new(next, "config", config);
	}
	r = check_fixed_keys(json_object_get(cur, "config"), json_object_get(next, "config"), err);
	if (r >= 0)
		r = storage_pool_new(req->d->dir, next, &pool, err);
	if (r >= 0)
		r = storage_config_check(json_object_get(next, "config"), pool->driver->pool_keys,
					 err);
	if (r >= 0)
		r = db_pool_update(req->d->db, req->params[0], next, err);
	if (r < 0)
		return r;
	url = api_url("storage-pools", req->params[0], NULL);
	events_lifecycle(req->d->events, NULL, "storage-pool-updated", url, NULL);
	return api_sync(resp, NULL);
}

static int put_pool(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_pool(req, resp, err, false);
}

static int patch_pool(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_pool(req, resp, err, true);
}

static int delete_hook(void *data, struct berth_error *err)
{
	struct storage_pool *pool = data;

	return pool->driver->pool_delete(pool, err);
}

static int delete_pool(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *url = NULL;
	int r = api_storage_pool_open(req, req->params[0], &pool, err);

	if (r >= 0)
		r = db_pool_delete(req->d->db, req->params[0], delete_hook, pool, err);
	if (r < 0)
		return r;
	log_info("Deleted storage pool \"%s\"", req->params[0]);
	url = api_url("storage-pools", req->params[0], NULL);
	events_lifecycle(req->d->events, NULL, "storage-pool-deleted", url, NULL);
	return api_sync(resp, NULL);
}

static int get_resources(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	uint64_t used = 0, total = 0, iused = 0, itotal = 0;
	struct statvfs st;
	int r = api_storage_pool_open(req, req->params[0], &pool, err);

	if (r >= 0)
		r = pool->driver->pool_usage(pool, &used, &total, err);
	if (r < 0)
		return r;
	if (statvfs(pool->path, &st) == 0) {
		itotal = st.f_files;
		iused = st.f_files - st.f_ffree;
	}
	return api_sync(resp, json_pack("{s:{s:I, s:I}, s:{s:I, s:I}}", "space", "used",
					(json_int_t)used, "total", (json_int_t)total, "inodes",
					"used", (json_int_t)iused, "total", (json_int_t)itotal));
}

const struct api_route api_storage_routes[] = {
	{"GET", "/1.0/storage-pools", list_pools, NULL},
	{"POST", "/1.0/storage-pools", create_pool, NULL},
	{"GET", "/1.0/storage-pools/{}", get_pool, NULL},
	{"PUT", "/1.0/storage-pools/{}", put_pool, NULL},
	{"PATCH", "/1.0/storage-pools/{}", patch_pool, NULL},
	{"DELETE", "/1.0/storage-pools/{}", delete_pool, NULL},
	{"GET", "/1.0/storage-pools/{}/resources", get_resources, NULL},
	{0},
};
