/* daemon/api/warnings.c: /1.0/warnings and /1.0/warnings/{uuid} (the `warnings` API
 * extension). The records are daemon/db/warnings.c's, raised and resolved by
 * daemon/warnings.c; here an admin lists them, acknowledges or resets one (PUT/PATCH
 * {"status": "acknowledged"|"new"}) and deletes one, each change a lifecycle event
 * (warning-acknowledged, warning-reset, warning-deleted) in project "default", as LXD
 * sends them. Without ?project= the list holds every project's warnings, as in LXD. */
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/api/filter.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/util.h"

static int list_warnings(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(api_filter_freep) struct api_filter *filter = NULL;
	_cleanup_free_ char *filter_s = NULL;
	_cleanup_free_ char *project = NULL;
	json_auto_t *list = NULL;
	json_t *out, *w;
	size_t i;
	int r;

	if (berth_http_query_get(req->http->query, "filter", &filter_s) == 0) {
		r = api_filter_parse(filter_s, &filter, err);
		if (r < 0)
			return r;
	}
	if (berth_http_query_get(req->http->query, "project", &project) < 0 || !*project)
		free(TAKE_PTR(project));
	r = db_warning_list(req->d->db, project, &list, err);
	if (r < 0)
		return r;
	out = json_array();
	if (!out)
		return -ENOMEM;
	json_array_foreach(list, i, w) {
		if (!api_filter_match(filter, w))
			continue;
		if (req->recursion > 0)
			json_array_append(out, w);
		else
			json_array_append_new(out, json_sprintf("/1.0/warnings/%s",
								berth_json_string(w, "uuid")));
	}
	return api_sync(resp, out);
}

static int get_warning(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_t *w = NULL;
	int r = db_warning_get(req->d->db, req->params[0], &w, err);

	if (r < 0)
		return r;
	return api_sync(resp, w);
}

/* PUT and PATCH alike: the status is the only field an admin may set. */
static int put_warning(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *source = NULL;
	const char *status;
	bool ack;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	status = berth_json_string(req->body, "status");
	if (!status ||
	    !(streq(status, "new") || streq(status, "acknowledged") || streq(status, "resolved")))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid warning type \"%s\"", status ?: "");
	if (streq(status, "resolved"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "Status may only be set to \"acknowledge\" or \"new\"");
	ack = streq(status, "acknowledged");
	r = db_warning_set_status(req->d->db, req->params[0], status, err);
	if (r < 0)
		return r;
	source = berth_strdup_printf("/1.0/warnings/%s", req->params[0]);
	if (!source)
		return -ENOMEM;
	events_lifecycle(req->d->events, "default", ack ? "warning-acknowledged" : "warning-reset",
			 source, NULL);
	return api_sync(resp, NULL);
}

static int delete_warning(struct api_request *req, struct api_response *resp,
			  struct berth_error *err)
{
	_cleanup_free_ char *source = NULL;
	int r = db_warning_delete(req->d->db, req->params[0], err);

	if (r < 0)
		return r;
	source = berth_strdup_printf("/1.0/warnings/%s", req->params[0]);
	if (!source)
		return -ENOMEM;
	events_lifecycle(req->d->events, "default", "warning-deleted", source, NULL);
	return api_sync(resp, NULL);
}

const struct api_route api_warning_routes[] = {
	{"GET", "/1.0/warnings", list_warnings, NULL},
	{"GET", "/1.0/warnings/{}", get_warning, NULL},
	{"PUT", "/1.0/warnings/{}", put_warning, NULL},
	{"PATCH", "/1.0/warnings/{}", put_warning, NULL},
	{"DELETE", "/1.0/warnings/{}", delete_warning, NULL},
	{0},
};
