/* daemon/api/profiles.c: /1.0/profiles and /1.0/profiles/{name}. */
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/instance/volume.h"
#include "daemon/project/limits.h"
#include "daemon/api/storage.h"
#include "daemon/config_keys.h"
#include "daemon/db/db.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/instance.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct berth_json_field profile_fields[] = {
	{"name", BERTH_JSON_STRING, false, false},
	{"description", BERTH_JSON_STRING, false, true},
	{"config", BERTH_JSON_STRING_MAP, false, true},
	{"devices", BERTH_JSON_DEVICE_MAP, false, true},
};

static int profile_check(struct db *db, const json_t *body, const char *project,
			 struct berth_error *err)
{
	int r = berth_json_check(body, profile_fields, ARRAY_SIZE(profile_fields), "profile", err);

	if (r < 0)
		return r;
	r = config_check_all(CONFIG_PROFILE, json_object_get(body, "config"), err);
	if (r < 0)
		return r;
	r = config_check_devices(json_object_get(body, "devices"), err);
	if (r < 0)
		return r;
	return api_disk_devices_check(db, project, json_object_get(body, "devices"), err);
}

/* The profile's editable fields, in LXD's ETag order. */
static char *profile_etag(const json_t *p)
{
	json_auto_t *e = json_pack("{s:O?, s:O?, s:O?, s:O?}", "name", json_object_get(p, "name"),
				   "description", json_object_get(p, "description"), "config",
				   json_object_get(p, "config"), "devices",
				   json_object_get(p, "devices"));
	return e ? api_etag(e) : NULL;
}

/* Add "used_by" (instance URLs, of every project that uses the profile) to a profile. */
static int profile_add_used_by(struct db *db, const char *project, json_t *profile,
			       struct berth_error *err)
{
	json_t *urls = NULL;
	int r = db_profile_used_by(db, project, berth_json_string(profile, "name"), &urls, err);

	if (r < 0)
		return r;
	json_object_set_new(profile, "used_by", urls);
	return 0;
}

static int list_profiles(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_free_ char *project = NULL;
	json_auto_t *list = NULL;
	json_t *out, *p;
	size_t i;
	int r = api_profile_project(req->d->db, req->project, &project, err);

	if (r < 0)
		return r;
	r = db_profile_list(req->d->db, project, &list, err);
	if (r < 0)
		return r;
	out = json_array();
	json_array_foreach(list, i, p) {
		if (req->recursion == 0) {
			_cleanup_free_ char *u = api_url("profiles", berth_json_string(p, "name"),
							 req->project);
			json_array_append_new(out, json_string(u));
			continue;
		}
		r = profile_add_used_by(req->d->db, project, p, err);
		if (r < 0) {
			json_decref(out);
			return r;
		}
		json_array_append(out, p);
	}
	return api_sync(resp, out);
}

static int create_profile(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	_cleanup_free_ char *project = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *p = NULL;
	const char *name;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	r = profile_check(req->d->db, req->body, req->project, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("profile name", name, err);
	if (r < 0)
		return r;
	r = api_profile_project(req->d->db, req->project, &project, err);
	if (r < 0)
		return r;
	p = json_pack("{s:s, s:s, s:o, s:o}", "name", name, "description",
		      berth_json_string(req->body, "description") ?: "", "config",
		      berth_json_object_or_empty(req->body, "config"), "devices",
		      berth_json_object_or_empty(req->body, "devices"));
	api_config_drop_empty(json_object_get(p, "config"));
	r = db_profile_create(req->d->db, project, p, err);
	if (r < 0)
		return r;
	url = api_url("profiles", name, req->project);
	events_lifecycle(req->d->events, req->project, "profile-created", url, NULL);
	return api_created(resp, url);
}

static int get_profile(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *project = NULL;
	json_t *p = NULL;
	int r = api_profile_project(req->d->db, req->project, &project, err);

	if (r < 0)
		return r;
	r = db_profile_get(req->d->db, project, req->params[0], &p, err);
	if (r < 0)
		return r;
	resp->etag = profile_etag(p);
	r = profile_add_used_by(req->d->db, project, p, err);
	if (r < 0) {
		json_decref(p);
		return r;
	}
	return api_sync(resp, p);
}

/* The expanded objects of the running instances that use profile `name` (of the
 * profile project `project`), before the profile changes. */
static int running_users(struct berth_daemon *d, const char *project, const char *name,
			 json_t **ret, struct berth_error *err)
{
	json_auto_t *all = NULL;
	json_auto_t *out = json_array();
	json_t *inst, *p;
	size_t i, k;
	int r = db_instance_list(d->db, NULL, &all, err);

	if (r < 0 || !out)
		return r < 0 ? r : -ENOMEM;
	json_array_foreach(all, i, inst) {
		const char *ip = berth_json_string(inst, "project") ?: "default";
		const char *iname = berth_json_string(inst, "name");
		_cleanup_free_ char *pp = NULL;
		json_t *e = NULL;
		bool uses = false;

		json_array_foreach(json_object_get(inst, "profiles"), k, p)
			uses |= json_is_string(p) && streq(json_string_value(p), name);
		if (!uses || !iname || api_profile_project(d->db, ip, &pp, NULL) < 0 ||
		    !streq(pp, project) || !instance_running(d, ip, inst))
			continue;
		r = instance_expand_load(d->db, ip, iname, &e, err);
		if (r < 0)
			return r;
		json_array_append_new(out, json_pack("{s:s, s:o}", "project", ip, "inst", e));
	}
	*ret = TAKE_PTR(out);
	return 0;
}

/* Append `more` (taken) to *notice, "; " between. */
static void notice_add(char **notice, char *more)
{
	_cleanup_free_ char *m = more;
	char *joined;

	if (!m)
		return;
	if (!*notice) {
		*notice = TAKE_PTR(m);
		return;
	}
	joined = berth_strdup_printf("%s; %s", *notice, m);
	if (joined) {
		free(*notice);
		*notice = joined;
	}
}

/* The profile changed: the limits of each running user follow. When one fails, those
 * already changed go back to their `users` expansion and err names the instance. On
 * success *ret_notice (new string or left NULL) tells of keys that wait for a start. */
static int users_apply(struct berth_daemon *d, const json_t *users, char **ret_notice,
		       struct berth_error *err)
{
	json_auto_t *done = json_array();
	json_t *u;
	size_t i;
	int r = 0;

	if (!done)
		return -ENOMEM;
	json_array_foreach(users, i, u) {
		const char *ip = berth_json_string(u, "project");
		const json_t *before = json_object_get(u, "inst");
		const char *iname = berth_json_string(before, "name");
		json_t *after = NULL;

		r = instance_expand_load(d->db, ip, iname, &after, err);
		if (r >= 0)
			r = instance_update_limits(d, ip, before, after, err);
		if (r < 0) {
			json_decref(after);
			berth_error_wrap(err, r, "Failed to update instance \"%s\"", iname);
			break;
		}
		json_array_append_new(done, after);
		notice_add(ret_notice, instance_next_start_notice(d, ip, before, after));
	}
	if (r < 0)
		json_array_foreach(done, i, u)
			instance_update_limits(
				d, berth_json_string(json_array_get(users, i), "project"), u,
				json_object_get(json_array_get(users, i), "inst"), NULL);
	return r < 0 ? r : 0;
}

static int update_profile(struct api_request *req, struct api_response *resp,
			  struct berth_error *err, bool patch)
{
	static const char *const fields[] = {"description"};
	_cleanup_free_ char *project = NULL;
	_cleanup_free_ char *etag = NULL;
	_cleanup_free_ char *url = NULL;
	json_auto_t *cur = NULL;
	json_auto_t *next = NULL;
	json_auto_t *users = NULL;
	_cleanup_free_ char *notice = NULL;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	r = profile_check(req->d->db, req->body, req->project, err);
	if (r < 0)
		return r;
	r = api_profile_project(req->d->db, req->project, &project, err);
	if (r < 0)
		return r;
	r = db_profile_get(req->d->db, project, req->params[0], &cur, err);
	if (r < 0)
		return r;
	etag = profile_etag(cur);
	r = api_check_etag(req, etag ?: "", err);
	if (r < 0)
		return r;
	if (patch) {
		next = json_deep_copy(cur);
		api_patch_merge(next, req->body, fields, ARRAY_SIZE(fields));
	} else {
		next = json_pack("{s:s, s:s, s:o, s:o}", "name", req->params[0], "description",
				 berth_json_string(req->body, "description") ?: "", "config",
				 berth_json_object_or_empty(req->body, "config"), "devices",
				 berth_json_object_or_empty(req->body, "devices"));
		api_config_drop_empty(json_object_get(next, "config"));
	}
	r = running_users(req->d, project, req->params[0], &users, err);
	if (r >= 0)
		r = project_limits_check_profile(req->d->db, req->project, next, err);
	if (r >= 0)
		r = db_profile_update(req->d->db, project, req->params[0], next, err);
	if (r < 0)
		return r;
	r = users_apply(req->d, users, &notice, err);
	if (r < 0) {
		db_profile_update(req->d->db, project, req->params[0], cur, NULL);
		return r;
	}
	instance_profile_updated(req->d, req->params[0]); /* running instances' proxy devices */
	url = api_url("profiles", req->params[0], req->project);
	events_lifecycle(req->d->events, req->project, "profile-updated", url, NULL);
	return api_sync(resp, notice ? json_pack("{s:s}", "warning", notice) : NULL);
}

static int put_profile(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_profile(req, resp, err, false);
}

static int patch_profile(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	return update_profile(req, resp, err, true);
}

static int rename_profile(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	_cleanup_free_ char *project = NULL;
	_cleanup_free_ char *url = NULL;
	const char *name;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "No name provided");
	r = berth_name_check_entity("profile name", name, err);
	if (r < 0)
		return r;
	r = api_profile_project(req->d->db, req->project, &project, err);
	if (r < 0)
		return r;
	r = db_profile_rename(req->d->db, project, req->params[0], name, err);
	if (r < 0)
		return r;
	url = api_url("profiles", name, req->project);
	events_lifecycle(req->d->events, req->project, "profile-renamed", url,
			 json_pack("{s:s}", "old_name", req->params[0]));
	return api_created(resp, url);
}

static int delete_profile(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	_cleanup_free_ char *project = NULL;
	_cleanup_free_ char *url = NULL;
	int r = api_profile_project(req->d->db, req->project, &project, err);

	if (r < 0)
		return r;
	r = db_profile_delete(req->d->db, project, req->params[0], err);
	if (r < 0)
		return r;
	url = api_url("profiles", req->params[0], req->project);
	events_lifecycle(req->d->events, req->project, "profile-deleted", url, NULL);
	return api_sync(resp, NULL);
}

const struct api_route api_profile_routes[] = {
	{"GET", "/1.0/profiles", list_profiles, NULL},
	{"POST", "/1.0/profiles", create_profile, NULL},
	{"GET", "/1.0/profiles/{}", get_profile, NULL},
	{"PUT", "/1.0/profiles/{}", put_profile, NULL},
	{"PATCH", "/1.0/profiles/{}", patch_profile, NULL},
	{"POST", "/1.0/profiles/{}", rename_profile, NULL},
	{"DELETE", "/1.0/profiles/{}", delete_profile, NULL},
	{0},
};
