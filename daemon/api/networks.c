/* daemon/api/networks.c: /1.0/networks, /1.0/networks/{name}[/leases|/state].
 *
 * A managed network's row and its presence on the host change together: the change
 * (daemon/network/managed.h) runs as the database transaction's hook, so a failing
 * bridge, nft or dnsmasq leaves no row; a failing commit is undone by hand. Links of
 * berthd's network namespace that are not managed networks are listed too, as LXD
 * lists the host's interfaces (managed: false), and can only be looked at. */
#define LOG_CATEGORY "networks"
#include <pthread.h>
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/db/db.h"
#include "daemon/network/managed.h"
#include "daemon/warnings.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

static const struct berth_json_field network_fields[] = {
	{"name", BERTH_JSON_STRING, false, false},
	{"type", BERTH_JSON_STRING, false, true},
	{"description", BERTH_JSON_STRING, false, true},
	{"config", BERTH_JSON_STRING_MAP, false, true},
};

/* Checks (subnet overlaps, names) and the row change they guard happen under this lock,
 * so two requests cannot both take the same free subnet. */
static pthread_mutex_t change_lock = PTHREAD_MUTEX_INITIALIZER;

static char *network_etag(const json_t *n)
{
	json_auto_t *e = json_pack("{s:O?, s:O?, s:O?, s:O?}", "name", json_object_get(n, "name"),
				   "type", json_object_get(n, "type"), "description",
				   json_object_get(n, "description"), "config",
				   json_object_get(n, "config"));
	return e ? api_etag(e) : NULL;
}

static int network_decorate(struct db *db, json_t *net, struct berth_error *err)
{
	json_t *used_by = NULL;
	int r = db_network_used_by(db, berth_json_string(net, "name"), &used_by, err);

	if (r < 0)
		return r;
	json_object_set_new(net, "used_by", used_by);
	json_object_set_new(net, "managed", json_true());
	json_object_set_new(net, "locations", json_pack("[s]", "none"));
	return 0;
}

/* The unmanaged link `name` as a network object: -ENOENT (404) when there is none. */
static int unmanaged_get(const char *name, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *n;
	size_t i;
	int r = network_unmanaged_list(NULL, &list, err);

	if (r < 0)
		return r;
	json_array_foreach(list, i, n)
		if (streq(berth_json_string(n, "name") ?: "", name)) {
			*ret = json_incref(n);
			return 0;
		}
	return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Network \"%s\" not found", name);
}

/* The managed network `name`; for a link that is not one, 400 "not managed". */
static int managed_get(struct db *db, const char *name, json_t **ret, struct berth_error *err)
{
	json_auto_t *link = NULL;
	int r = db_network_get(db, name, ret, err);

	if (r != -ENOENT || unmanaged_get(name, &link, NULL) < 0)
		return r;
	berth_error_release(err);
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Network \"%s\" is not a managed network", name);
}

static int list_networks(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	json_auto_t *list = NULL, *links = NULL;
	json_auto_t *names = json_object();
	json_auto_t *out = json_array();
	json_t *n;
	size_t i;
	int r = db_network_list(req->d->db, &list, err);

	if (r < 0)
		return r;
	json_array_foreach(list, i, n)
		json_object_set_new(names, berth_json_string(n, "name"), json_true());
	r = network_unmanaged_list(names, &links, err);
	if (r < 0)
		return r;
	json_array_extend(list, links);
	json_array_foreach(list, i, n) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u = api_url("networks", berth_json_string(n, "name"),
							 NULL);
			json_array_append_new(out, json_string(u));
			continue;
		}
		if (!json_object_get(n, "managed")) {
			r = network_decorate(req->d->db, n, err);
			if (r < 0)
				return r;
		}
		json_array_append(out, n);
	}
	return api_sync(resp, TAKE_PTR(out));
}

struct apply_ctx {
	struct berth_daemon *d;
	const char *name;     /* borrowed */
	const json_t *config; /* borrowed */
	bool ran;	      /* the hook was called */
};

static int apply_hook(void *data, struct berth_error *err)
{
	struct apply_ctx *c = data;

	c->ran = true;
	return network_apply(c->d, c->name, c->config, err);
}

static int create_network_locked(struct api_request *req, struct api_response *resp,
				 struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	json_auto_t *obj = NULL, *link = NULL;
	struct apply_ctx c = {.d = req->d};
	const char *name, *type;
	json_t *config;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, network_fields, ARRAY_SIZE(network_fields),
				     "network", err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	type = berth_json_string(req->body, "type");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = network_name_check(name, err);
	if (r < 0)
		return r;
	if (type && *type && !streq(type, "bridge"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Network type \"%s\" isn't supported (bridge)", type);
	if (unmanaged_get(name, &link, NULL) >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Network \"%s\" already exists", name);
	obj = json_pack("{s:s, s:s, s:s, s:o}", "name", name, "type", "bridge", "description",
			berth_json_string(req->body, "description") ?: "", "config",
			berth_json_object_or_empty(req->body, "config"));
	if (!obj)
		return -ENOMEM;
	config = json_object_get(obj, "config");
	api_config_drop_empty(config);
	r = network_config_check(req->d->db, name, config, true, err);
	if (r < 0)
		return r;
	c.name = name;
	c.config = config;
	r = db_network_create(req->d->db, obj, apply_hook, &c, err);
	if (r < 0) {
		if (c.ran && network_remove(req->d, name, NULL) < 0)
			log_error("Network \"%s\" left behind after a failed creation", name);
		return r;
	}
	log_info("Created network \"%s\" (%s, %s)", name,
		 berth_json_string(config, "ipv4.address") ?: "none",
		 berth_json_string(config, "ipv6.address") ?: "none");
	url = api_url("networks", name, NULL);
	events_lifecycle(req->d->events, NULL, "network-created", url, NULL);
	return api_created(resp, url);
}

static int get_network(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *n = NULL;
	int r = db_network_get(req->d->db, req->params[0], &n, err);

	if (r == -ENOENT) {
		berth_error_release(err);
		r = unmanaged_get(req->params[0], &n, err);
		if (r < 0)
			return r;
		resp->etag = network_etag(n);
		return api_sync(resp, TAKE_PTR(n));
	}
	if (r < 0)
		return r;
	resp->etag = network_etag(n);
	r = network_decorate(req->d->db, n, err);
	if (r < 0)
		return r;
	return api_sync(resp, TAKE_PTR(n));
}

static int update_network_locked(struct api_request *req, struct api_response *resp,
				 struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description"};
	_cleanup_free_ char *etag = NULL, *url = NULL;
	json_auto_t *cur = NULL, *next = NULL;
	const char *name = req->params[0];
	struct apply_ctx c = {.d = req->d, .name = name};
	json_t *config;
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, network_fields, ARRAY_SIZE(network_fields),
				     "network", err);
	if (r >= 0)
		r = managed_get(req->d->db, name, &cur, err);
	if (r < 0)
		return r;
	etag = network_etag(cur);
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
		json_object_set_new(next, "config",
				    berth_json_object_or_empty(req->body, "config"));
	}
	config = json_object_get(next, "config");
	api_config_drop_empty(config);
	r = network_config_check(req->d->db, name, config, false, err);
	if (r < 0)
		return r;
	c.config = config;
	r = db_network_update(req->d->db, name, next, apply_hook, &c, err);
	if (r < 0) {
		struct berth_error ignored = {0};

		/* Put the host back the way the old config wants it. */
		if (c.ran &&
		    network_apply(req->d, name, json_object_get(cur, "config"), &ignored) < 0)
			log_error("Network \"%s\": cannot restore the old config: %s", name,
				  berth_error_msg(&ignored, -EIO));
		berth_error_release(&ignored);
		return r;
	}
	log_info("Updated network \"%s\"", name);
	url = api_url("networks", name, NULL);
	/* It is up now, whatever kept it down at start. */
	if (url)
		warnings_resolve(req->d->db, WARNING_NETWORK_UNAVAILABLE, "default", url);
	events_lifecycle(req->d->events, NULL, "network-updated", url, NULL);
	return api_sync(resp, NULL);
}

/* The changing handlers, one at a time (see change_lock). */
static int create_network(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	int r;

	pthread_mutex_lock(&change_lock);
	r = create_network_locked(req, resp, err);
	pthread_mutex_unlock(&change_lock);
	return r;
}

static int update_network(struct api_request *req, struct api_response *resp,
			  struct berth_error *err, bool patch)
{
	int r;

	pthread_mutex_lock(&change_lock);
	r = update_network_locked(req, resp, err, patch);
	pthread_mutex_unlock(&change_lock);
	return r;
}

static int put_network(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_network(req, resp, err, false);
}

static int patch_network(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	return update_network(req, resp, err, true);
}

struct rename_ctx {
	struct berth_daemon *d;
	const char *from, *to;
	const json_t *config;
};

static int rename_hook(void *data, struct berth_error *err)
{
	struct rename_ctx *c = data;
	int r = network_remove(c->d, c->from, err);

	return r < 0 ? r : network_apply(c->d, c->to, c->config, err);
}

static int rename_network_locked(struct api_request *req, struct api_response *resp,
				 struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	json_auto_t *cur = NULL, *link = NULL;
	struct rename_ctx c = {.d = req->d, .from = req->params[0]};
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = managed_get(req->d->db, req->params[0], &cur, err);
	if (r < 0)
		return r;
	c.to = berth_json_string(req->body, "name");
	if (!c.to)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = network_name_check(c.to, err);
	if (r < 0)
		return r;
	if (unmanaged_get(c.to, &link, NULL) >= 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Network \"%s\" already exists", c.to);
	c.config = json_object_get(cur, "config");
	r = db_network_rename(req->d->db, c.from, c.to, rename_hook, &c, err);
	if (r < 0)
		return r;
	url = api_url("networks", c.to, NULL);
	events_lifecycle(req->d->events, NULL, "network-renamed", url,
			 json_pack("{s:s}", "old_name", c.from));
	return api_created(resp, url);
}

struct delete_ctx {
	struct berth_daemon *d;
	const char *name;
};

static int delete_hook(void *data, struct berth_error *err)
{
	struct delete_ctx *c = data;

	return network_remove(c->d, c->name, err);
}

static int delete_network_locked(struct api_request *req, struct api_response *resp,
				 struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	json_auto_t *cur = NULL;
	struct delete_ctx c = {req->d, req->params[0]};
	int r = managed_get(req->d->db, req->params[0], &cur, err);

	if (r >= 0)
		r = db_network_delete(req->d->db, req->params[0], delete_hook, &c, err);
	if (r < 0)
		return r;
	log_info("Deleted network \"%s\"", req->params[0]);
	url = api_url("networks", req->params[0], NULL);
	if (url)
		warnings_resolve(req->d->db, WARNING_NETWORK_UNAVAILABLE, "default", url);
	events_lifecycle(req->d->events, NULL, "network-deleted", url, NULL);
	return api_sync(resp, NULL);
}

static int rename_network(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	int r;

	pthread_mutex_lock(&change_lock);
	r = rename_network_locked(req, resp, err);
	pthread_mutex_unlock(&change_lock);
	return r;
}

static int delete_network(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	int r;

	pthread_mutex_lock(&change_lock);
	r = delete_network_locked(req, resp, err);
	pthread_mutex_unlock(&change_lock);
	return r;
}

static int get_leases(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *cur = NULL;
	json_t *leases = NULL;
	int r = managed_get(req->d->db, req->params[0], &cur, err);

	if (r >= 0)
		r = network_leases(req->d, req->params[0], &leases, err);
	if (r < 0)
		return r;
	return api_sync(resp, leases);
}

static int get_state(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_t *state = NULL;
	int r = network_link_state(req->params[0], &state, err);

	if (r < 0)
		return r;
	return api_sync(resp, state);
}

const struct api_route api_network_routes[] = {
	{"GET", "/1.0/networks", list_networks, NULL},
	{"POST", "/1.0/networks", create_network, NULL},
	{"GET", "/1.0/networks/{}", get_network, NULL},
	{"PUT", "/1.0/networks/{}", put_network, NULL},
	{"PATCH", "/1.0/networks/{}", patch_network, NULL},
	{"POST", "/1.0/networks/{}", rename_network, NULL},
	{"DELETE", "/1.0/networks/{}", delete_network, NULL},
	{"GET", "/1.0/networks/{}/leases", get_leases, NULL},
	{"GET", "/1.0/networks/{}/state", get_state, NULL},
	{0},
};
