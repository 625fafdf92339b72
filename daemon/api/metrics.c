/* daemon/api/metrics.c: GET /1.0/metrics, LXD 5.0's instance metrics in Prometheus text
 * (daemon/instance/metrics.h). Who may read it is decided in api.c: trusted clients
 * (a restricted one sees its projects only, checked here) and `metrics` certificates. */
#define LOG_CATEGORY "metrics"
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/db/db.h"
#include "daemon/instance/metrics.h"
#include "daemon/trust.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

static int get_metrics(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *only = NULL, *text = NULL;
	json_auto_t *list = NULL;
	struct metrics_set m = {0};
	json_t *inst;
	size_t i;
	int r;

	/* Every project unless ?project= names one, as LXD. */
	r = berth_http_query_get(req->http->query, "project", &only);
	if (r < 0 && r != -ENOENT)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Invalid query string");
	if (only && req->client && !trust_client_allows_project(req->client, only))
		return berth_error_set(err, -EACCES, BERTH_ERR_FORBIDDEN, "not authorized");
	r = db_instance_list(req->d->db, only, &list, err);
	if (r < 0)
		return r;
	json_array_foreach(list, i, inst) {
		const char *project = berth_json_string(inst, "project") ?: "default";

		if (req->client && !trust_client_allows_project(req->client, project))
			continue;
		r = metrics_instance_collect(req->d, project, inst, &m);
		if (r == -ENOMEM) {
			metrics_set_release(&m);
			return r;
		}
		if (r < 0)
			log_warn("Cannot read the metrics of instance \"%s\" of project \"%s\": %s, "
				 "ignoring",
				 berth_json_string(inst, "name"), project, strerror(-r));
	}
	r = metrics_set_render(&m, &text);
	if (r < 0)
		return r;
	resp->type = API_RAW;
	resp->content_type = "text/plain";
	resp->raw_len = strlen(text);
	resp->raw = TAKE_PTR(text);
	return 0;
}

const struct api_route api_metrics_routes[] = {
	{"GET", "/1.0/metrics", get_metrics, NULL},
	{0},
};
