/* daemon/api/operations.c: /1.0/operations, /1.0/operations/{id}[/wait]. */
#include <stdlib.h>
#include <string.h>

#include "daemon/api/api.h"
#include "lib/json.h"
#include "lib/util.h"

static int list_operations(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_free_ char *all = NULL;
	bool every = berth_http_query_get(req->http->query, "all-projects", &all) == 0;
	json_t *l = operation_registry_list(req->d->ops, every ? NULL : req->project,
					    req->recursion > 0);

	if (!l)
		return -ENOMEM;
	return api_sync(resp, l);
}

/* Loop thread: the 404 of an unknown operation, naming it. */
static void respond_not_found(struct berth_http_conn *conn, const char *id)
{
	_cleanup_free_ char *msg = berth_strdup_printf("Operation \"%s\" not found", id);

	api_respond_error(conn, 404, msg ? msg : "Operation not found");
}

static int find(struct api_request *req, struct operation **ret, struct berth_error *err)
{
	int r = operation_find(req->d->ops, req->params[0], ret);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_NOT_FOUND, "Operation \"%s\" not found",
				       req->params[0]);
	return 0;
}

static int get_operation(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(operation_unrefp) struct operation *op = NULL;
	int r = find(req, &op, err);

	if (r < 0)
		return r;
	return api_sync(resp, operation_render(op));
}

static int delete_operation(struct api_request *req, struct api_response *resp,
			    struct berth_error *err)
{
	_cleanup_(operation_unrefp) struct operation *op = NULL;
	int r = find(req, &op, err);

	if (r < 0)
		return r;
	r = operation_cancel(op, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

struct wait_ctx {
	struct berth_http_conn *conn;
};

static void wait_done(struct operation *op, void *data)
{
	struct berth_http_conn *conn = data;
	struct api_response resp = {0};

	api_sync(&resp, operation_render(op));
	api_respond(conn, &resp);
}

/* Loop thread: answer when the operation ends or the timeout (seconds) passes. */
static void wait_operation(struct api_request *req, struct berth_http_conn *conn)
{
	_cleanup_(operation_unrefp) struct operation *op = NULL;
	_cleanup_free_ char *t = NULL;
	int64_t timeout_ms = -1;

	if (operation_find(req->d->ops, req->params[0], &op) < 0) {
		respond_not_found(conn, req->params[0]);
		return;
	}
	if (berth_http_query_get(req->http->query, "timeout", &t) == 0) {
		char *end;
		long v = strtol(t, &end, 10);
		if (*end || end == t) {
			api_respond_error(conn, 400, "Invalid timeout");
			return;
		}
		timeout_ms = v < 0 ? -1 : (int64_t)v * 1000;
	}
	if (operation_wait(op, timeout_ms, wait_done, conn) < 0)
		api_respond_error(conn, 500, "Failed to wait for the operation");
}

/* Loop thread: connect one websocket of a websocket-class operation. The operation
 * checks the secret (403 when it matches none of its sockets). */
static void websocket_operation(struct api_request *req, struct berth_http_conn *conn)
{
	_cleanup_(operation_unrefp) struct operation *op = NULL;
	_cleanup_free_ char *secret = NULL;
	int r;

	if (operation_find(req->d->ops, req->params[0], &op) < 0) {
		respond_not_found(conn, req->params[0]);
		return;
	}
	if (berth_http_query_get(req->http->query, "secret", &secret) < 0) {
		api_respond_error(conn, 400, "Missing websocket secret");
		return;
	}
	r = operation_connect(op, secret, conn);
	if (r == -ENOTSUP)
		api_respond_error(conn, 400, "Only websocket operations can be connected");
	else if (r < 0)
		api_respond_error(conn, 400, "The operation has already finished");
}

const struct api_route api_operation_routes[] = {
	{"GET", "/1.0/operations", list_operations, NULL},
	{"GET", "/1.0/operations/{}", get_operation, NULL},
	{"DELETE", "/1.0/operations/{}", delete_operation, NULL},
	{"GET", "/1.0/operations/{}/wait", NULL, wait_operation},
	{"GET", "/1.0/operations/{}/websocket", NULL, websocket_operation},
	{0},
};
