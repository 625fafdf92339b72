/* daemon/api/storage.c: /1.0/storage-pools (read-only until storage drivers land). */
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/util.h"

static void pool_decorate(json_t *pool)
{
	json_object_set_new(pool, "used_by", json_array());
	json_object_set_new(pool, "locations", json_pack("[s]", "none"));
	if (!json_object_get(pool, "status"))
		json_object_set_new(pool, "status", json_string("Created"));
}

static int list_pools(struct api_request *req, struct api_response *resp,
		      struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *out, *p;
	size_t i;
	int r = db_pool_list(&list, err);

	if (r < 0)
		return r;
	out = json_array();
	json_array_foreach(list, i, p) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u =
				api_url("storage-pools", berth_json_string(p, "name"), NULL);
			json_array_append_new(out, json_string(u));
			continue;
		}
		pool_decorate(p);
		json_array_append(out, p);
	}
	return api_sync(resp, out);
}

static int get_pool(struct api_request *req, struct api_response *resp,
		    struct berth_error *err)
{
	json_t *p = NULL;
	int r = db_pool_get(req->params[0], &p, err);

	if (r < 0)
		return r;
	pool_decorate(p);
	return api_sync(resp, p);
}

const struct api_route api_storage_routes[] = {
	{"GET", "/1.0/storage-pools", list_pools, NULL},
	{"GET", "/1.0/storage-pools/{}", get_pool, NULL},
	{0},
};
