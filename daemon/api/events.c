/* daemon/api/events.c: GET /1.0/events (websocket). */
#include <string.h>

#include "daemon/api/api.h"
#include "lib/util.h"

static void get_events(struct api_request *req, struct berth_http_conn *conn)
{
	_cleanup_free_ char *types_s = NULL;
	_cleanup_free_ char *all = NULL;
	struct berth_error err = {0};
	unsigned types;
	bool every = berth_http_query_get(req->http->query, "all-projects", &all) == 0;
	int r;

	berth_http_query_get(req->http->query, "type", &types_s);
	r = events_parse_types(types_s, &types, &err);
	if (r < 0) {
		api_respond_error(conn, 400, berth_error_msg(&err, r));
		berth_error_release(&err);
		return;
	}
	events_subscribe(req->d->events, conn, types, every ? NULL : req->project);
}

const struct api_route api_event_routes[] = {
	{"GET", "/1.0/events", NULL, get_events},
	{0},
};
