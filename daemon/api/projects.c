/* daemon/api/projects.c: /1.0/projects and /1.0/projects/{name}. */
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/trust.h"
#include "daemon/project/limits.h"
#include "daemon/config_keys.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct berth_json_field project_fields[] = {
	{"name", BERTH_JSON_STRING, false, false},
	{"description", BERTH_JSON_STRING, false, true},
	{"config", BERTH_JSON_STRING_MAP, false, true},
};

static int project_check(const json_t *body, struct berth_error *err)
{
	const char *networks;
	int r = berth_json_check(body, project_fields, ARRAY_SIZE(project_fields), "project", err);

	if (r >= 0)
		r = config_check_all(CONFIG_PROJECT, json_object_get(body, "config"), err);
	if (r < 0)
		return r;
	/* Networks are not per project here: a project can't claim its own. */
	networks = berth_json_string(json_object_get(body, "config"), "features.networks");
	if (networks && (streq(networks, "true") || streq(networks, "1") ||
			 streq(networks, "yes") || streq(networks, "on")))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Project feature \"features.networks\" isn't supported: "
				       "berth keeps every network in the \"default\" project");
	return 0;
}

/* LXD 5.0's defaults for a new project: its own images, profiles and custom volumes
 * (features.networks stays off), unless the request says otherwise. */
static void project_default_features(json_t *config)
{
	static const char *const features[] = {"features.images", "features.profiles",
					       "features.storage.volumes"};

	for (size_t i = 0; i < ARRAY_SIZE(features); i++)
		if (!json_object_get(config, features[i]))
			json_object_set_new(config, features[i], json_string("true"));
}

static char *project_etag(const json_t *p)
{
	json_auto_t *e = json_pack("{s:O?, s:O?}", "description", json_object_get(p, "description"),
				   "config", json_object_get(p, "config"));
	return e ? api_etag(e) : NULL;
}

static int project_add_used_by(struct db *db, json_t *p, struct berth_error *err)
{
	json_t *used = NULL;
	int r = db_project_used_by(db, berth_json_string(p, "name"), &used, err);

	if (r < 0)
		return r;
	json_object_set_new(p, "used_by", used);
	return 0;
}

static int list_projects(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	json_auto_t *list = NULL;
	json_t *out, *p;
	size_t i;
	int r = db_project_list(req->d->db, &list, err);

	if (r < 0)
		return r;
	out = json_array();
	json_array_foreach(list, i, p) {
		/* A restricted certificate sees its own projects only. */
		if (req->client &&
		    !trust_client_allows_project(req->client, berth_json_string(p, "name") ?: ""))
			continue;
		if (req->recursion == 0) {
			_cleanup_free_ char *u = api_url("projects", berth_json_string(p, "name"),
							 NULL);
			json_array_append_new(out, json_string(u));
			continue;
		}
		r = project_add_used_by(req->d->db, p, err);
		if (r < 0) {
			json_decref(out);
			return r;
		}
		json_array_append(out, p);
	}
	return api_sync(resp, out);
}

static int create_project(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	json_auto_t *p = NULL;
	json_t *config;
	const char *name;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	r = project_check(req->body, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("project name", name, err);
	if (r < 0)
		return r;
	config = berth_json_object_or_empty(req->body, "config");
	api_config_drop_empty(config);
	project_default_features(config);
	p = json_pack("{s:s, s:s, s:o}", "name", name, "description",
		      berth_json_string(req->body, "description") ?: "", "config", config);
	r = db_project_create(req->d->db, p, err);
	if (r < 0)
		return r;
	url = api_url("projects", name, NULL);
	events_lifecycle(req->d->events, NULL, "project-created", url, NULL);
	return api_created(resp, url);
}

static int get_project(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_t *p = NULL;
	int r = db_project_get(req->d->db, req->params[0], &p, err);

	if (r < 0)
		return r;
	resp->etag = project_etag(p);
	r = project_add_used_by(req->d->db, p, err);
	if (r < 0) {
		json_decref(p);
		return r;
	}
	return api_sync(resp, p);
}

static int update_project(struct api_request *req, struct api_response *resp,
			  struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description"};
	_cleanup_free_ char *etag = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *cur = NULL;
	json_auto_t *next = NULL;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	r = project_check(req->body, err);
	if (r < 0)
		return r;
	r = db_project_get(req->d->db, req->params[0], &cur, err);
	if (r < 0)
		return r;
	etag = project_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0)
		return r;
	if (patch) {
		next = json_deep_copy(cur);
		api_patch_merge(next, req->body, fields, ARRAY_SIZE(fields));
	} else {
		next = json_pack("{s:s, s:s, s:o}", "name", req->params[0], "description",
				 berth_json_string(req->body, "description") ?: "", "config",
				 berth_json_object_or_empty(req->body, "config"));
		api_config_drop_empty(json_object_get(next, "config"));
	}
	r = project_limits_check_config(req->d->db, req->params[0], json_object_get(cur, "config"),
					json_object_get(next, "config"), err);
	if (r < 0)
		return r;
	r = db_project_update(req->d->db, req->params[0], next, err);
	if (r < 0)
		return r;
	url = api_url("projects", req->params[0], NULL);
	events_lifecycle(req->d->events, NULL, "project-updated", url, NULL);
	return api_sync(resp, NULL);
}

static int put_project(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_project(req, resp, err, false);
}

static int patch_project(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	return update_project(req, resp, err, true);
}

/* The rename is done before the answer: the operation only tells the client so. */
static int run_project_renamed(struct operation *op, void *data, struct berth_error *err)
{
	(void)op;
	(void)data;
	(void)err;
	return 0;
}

/* As LXD 5.0 (and what the lxc client waits for), a rename answers with an operation. */
static int rename_project(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	const char *name;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("project name", name, err);
	if (r < 0)
		return r;
	if (streq(req->params[0], "default"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "The \"default\" project cannot be renamed");
	r = db_project_rename(req->d->db, req->params[0], name, err);
	if (r < 0)
		return r;
	url = api_url("projects", name, NULL);
	events_lifecycle(req->d->events, NULL, "project-renamed", url,
			 json_pack("{s:s}", "old_name", req->params[0]));
	return api_async(req, resp, "Renaming project", json_pack("{s:[s]}", "projects", url),
			 run_project_renamed, NULL, NULL, err);
}

static int delete_project(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	int r;

	if (streq(req->params[0], "default"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "The \"default\" project cannot be deleted");
	r = db_project_delete(req->d->db, req->params[0], err);
	if (r < 0)
		return r;
	url = api_url("projects", req->params[0], NULL);
	events_lifecycle(req->d->events, NULL, "project-deleted", url, NULL);
	return api_sync(resp, NULL);
}

/* Which feature decides the project of a route's objects (NULL: the request's own). */
static const char *route_feature(const struct api_request *req, const char *pattern)
{
	static const char vol[] = "/1.0/storage-pools/{}/volumes";

	if (berth_startswith(pattern, "/1.0/images"))
		return "features.images";
	if (!berth_startswith(pattern, vol))
		return NULL;
	/* POST .../volumes creates custom volumes only; GET .../volumes lists the
	 * instances' volumes of the project too (storage_volumes.c mixes both). */
	if (streq(pattern, vol))
		return streq(req->method, "POST") ? "features.storage.volumes" : NULL;
	return req->params[1] && streq(req->params[1], "custom") ? "features.storage.volumes"
								 : NULL;
}

int api_project_resolve(struct api_request *req, const char *pattern, struct berth_error *err)
{
	const char *feature = route_feature(req, pattern);
	char *effective = NULL;
	int r;

	if (!feature || streq(req->project, "default"))
		return 0;
	r = db_project_feature_project(req->d->db, req->project, feature, &effective, err);
	if (r < 0)
		return r;
	if (streq(effective, req->project)) {
		free(effective);
		return 0;
	}
	req->named_project = req->project;
	req->project = effective;
	return 0;
}

static int get_project_state(struct api_request *req, struct api_response *resp,
			     struct berth_error *err)
{
	json_t *state = NULL;
	int r = project_limits_state(req->d->db, req->params[0], &state, err);

	return r < 0 ? r : api_sync(resp, state);
}

const struct api_route api_project_routes[] = {
	{"GET", "/1.0/projects", list_projects, NULL},
	{"POST", "/1.0/projects", create_project, NULL},
	{"GET", "/1.0/projects/{}", get_project, NULL},
	{"GET", "/1.0/projects/{}/state", get_project_state, NULL},
	{"PUT", "/1.0/projects/{}", put_project, NULL},
	{"PATCH", "/1.0/projects/{}", patch_project, NULL},
	{"POST", "/1.0/projects/{}", rename_project, NULL},
	{"DELETE", "/1.0/projects/{}", delete_project, NULL},
	{0},
};
