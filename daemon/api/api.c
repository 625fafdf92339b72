/* daemon/api/api.c: routing, dispatch to the request workers, and LXD's envelopes. */
#define LOG_CATEGORY "api"
#include "daemon/api/api.h"

#include <stdio.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/trust.h"
#include "daemon/worker.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/sha256.h"
#include "lib/util.h"

static const struct api_route *const route_tables[] = {
	api_server_routes,	  api_project_routes,		api_profile_routes,
	api_instance_routes,	  api_instance_snapshot_routes, api_instance_file_routes,
	api_instance_exec_routes, api_instance_log_routes,	api_operation_routes,
	api_event_routes,	  api_storage_routes,		api_storage_volume_routes,
	api_image_routes,	  api_resources_routes,		api_network_routes,
	api_warning_routes,	  api_internal_routes,		api_instance_backup_routes,
	api_certificate_routes,	  api_metrics_routes,		api_cluster_routes,
};

struct api_work {
	struct worker_job job;
	struct berth_http_conn *conn;
	const struct api_route *route;
	struct api_request req;
	struct api_response resp;
	struct berth_error err;
	int ret;
};

/* ---- envelopes ---- */

static void respond_json(struct berth_http_conn *conn, int status, json_t *body,
			 const struct berth_http_header *extra, size_t n_extra)
{
	_cleanup_free_ char *s = berth_json_dumps(body);

	if (!s) {
		berth_http_respond(conn, 500, NULL, NULL, 0, NULL, 0);
		return;
	}
	berth_http_respond(conn, status, "application/json", extra, n_extra, s, strlen(s));
}

void api_respond_error(struct berth_http_conn *conn, int status, const char *msg)
{
	json_auto_t *body = json_pack("{s:s, s:s, s:i, s:n}", "type", "error", "error", msg,
				      "error_code", status, "metadata");

	respond_json(conn, status, body, NULL, 0);
}

void api_response_release(struct api_response *resp)
{
	json_decref(resp->metadata);
	free(resp->etag);
	free(resp->location);
	free(resp->raw);
	free(resp->content_type_buf);
	free(resp->disposition);
	for (size_t i = 0; i < resp->n_parts; i++) {
		free(resp->part_bufs[i]);
		if (resp->parts[i].fd >= 0)
			close(resp->parts[i].fd);
	}
	for (size_t i = 0; i < resp->n_headers; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	operation_unref(resp->op);
	*resp = (struct api_response){0};
}

int api_add_part_string(struct api_response *resp, char *s)
{
	size_t i = resp->n_parts;

	if (i >= API_MAX_PARTS) {
		free(s);
		return -E2BIG;
	}
	resp->part_bufs[i] = s;
	resp->parts[i] = (struct berth_http_part){.data = s, .fd = -EBADF, .len = strlen(s)};
	resp->n_parts++;
	return 0;
}

int api_add_part_fd(struct api_response *resp, int fd, uint64_t len)
{
	size_t i = resp->n_parts;

	if (i >= API_MAX_PARTS) {
		close(fd);
		return -E2BIG;
	}
	resp->part_bufs[i] = NULL;
	resp->parts[i] = (struct berth_http_part){.fd = fd, .len = len};
	resp->n_parts++;
	return 0;
}

int api_add_header(struct api_response *resp, const char *name, const char *value)
{
	size_t i = resp->n_headers;

	if (i >= API_MAX_HEADERS)
		return -E2BIG;
	resp->headers[i].name = strdup(name);
	resp->headers[i].value = strdup(value);
	if (!resp->headers[i].name || !resp->headers[i].value) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
		return -ENOMEM;
	}
	resp->n_headers++;
	return 0;
}

void api_respond(struct berth_http_conn *conn, struct api_response *resp)
{
	struct berth_http_header h[2 + API_MAX_HEADERS];
	size_t n = 0;
	json_auto_t *body = NULL;

	for (size_t i = 0; i < resp->n_headers; i++)
		h[n++] = resp->headers[i];

	if (resp->type == API_RAW) {
		if (resp->disposition)
			h[n++] = (struct berth_http_header){.name = "Content-Disposition",
							    .value = resp->disposition};
		const char *ct = resp->content_type_buf ? resp->content_type_buf
							: resp->content_type;

		if (resp->n_parts > 0) {
			berth_http_respond_parts(conn, resp->status ? resp->status : 200, ct, h, n,
						 resp->parts, resp->n_parts);
			for (size_t i = 0; i < resp->n_parts; i++)
				resp->parts[i].fd = -EBADF; /* the server owns them now */
		} else {
			berth_http_respond(conn, resp->status ? resp->status : 200, ct, h, n,
					   resp->raw, resp->raw_len);
		}
		api_response_release(resp);
		return;
	}
	if (resp->type == API_ASYNC) {
		_cleanup_free_ char *url = berth_strdup_printf("/1.0/operations/%s",
							       operation_id(resp->op));
		int r = operation_start(resp->op);

		if (!url || r < 0) {
			api_respond_error(conn, 500, "Failed to start the operation");
			api_response_release(resp);
			return;
		}
		body = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:o}", "type", "async", "status",
				 "Operation created", "status_code", 100, "operation", url,
				 "error_code", 0, "error", "", "metadata",
				 operation_render(resp->op));
		h[n++] = (struct berth_http_header){.name = "Location", .value = url};
		respond_json(conn, 202, body, h, n);
		api_response_release(resp);
		return;
	}
	if (resp->etag)
		h[n++] = (struct berth_http_header){.name = "ETag", .value = resp->etag};
	if (resp->location)
		h[n++] = (struct berth_http_header){.name = "Location", .value = resp->location};
	if (!resp->raw)
		api_render_sync(resp);
	if (resp->raw)
		berth_http_respond(conn, resp->status ? resp->status : 200, "application/json", h,
				   n, resp->raw, resp->raw_len);
	else
		berth_http_respond(conn, 500, NULL, NULL, 0, NULL, 0);
	api_response_release(resp);
}

void api_render_sync(struct api_response *resp)
{
	json_auto_t *body = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:o}", "type", "sync",
				      "status", "Success", "status_code", 200, "operation", "",
				      "error_code", 0, "error", "", "metadata",
				      resp->metadata ? TAKE_PTR(resp->metadata) : json_null());

	free(resp->raw);
	resp->raw = body ? berth_json_dumps(body) : NULL;
	resp->raw_len = resp->raw ? strlen(resp->raw) : 0;
}

/* ---- helpers ---- */

int api_sync(struct api_response *resp, json_t *metadata)
{
	resp->type = API_SYNC;
	resp->metadata = metadata ? metadata : json_object();
	return 0;
}

int api_created(struct api_response *resp, const char *location)
{
	resp->type = API_SYNC;
	resp->status = 201;
	resp->location = strdup(location);
	return resp->location ? 0 : -ENOMEM;
}

char *api_etag(const json_t *value)
{
	_cleanup_free_ char *s = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	unsigned char d[BERTH_SHA256_LEN];
	char *hex;

	if (!s)
		return NULL;
	berth_sha256(s, strlen(s), d);
	hex = malloc(2 * sizeof(d) + 1);
	if (!hex)
		return NULL;
	for (size_t i = 0; i < sizeof(d); i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
	return hex;
}

int api_check_etag(const struct api_request *req, const char *etag, struct berth_error *err)
{
	const char *m = req->if_match;
	size_t len;

	if (!m || !*m)
		return 0;
	/* Accept the tag with or without quotes. */
	len = strlen(m);
	if (len >= 2 && m[0] == '"' && m[len - 1] == '"') {
		if (len - 2 == strlen(etag) && strncmp(m + 1, etag, len - 2) == 0)
			return 0;
	} else if (streq(m, etag)) {
		return 0;
	}
	return berth_error_set(err, -ESTALE, BERTH_ERR_PRECONDITION, "ETag doesn't match");
}

int api_require_body(const struct api_request *req, struct berth_error *err)
{
	if (!json_is_object(req->body))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Request body must be a JSON object");
	return 0;
}

char *api_url(const char *kind, const char *name, const char *project)
{
	_cleanup_free_ char *enc = berth_url_encode(name);

	if (!enc)
		return NULL;
	if (project && !streq(project, "default"))
		return berth_strdup_printf("/1.0/%s/%s?project=%s", kind, enc, project);
	return berth_strdup_printf("/1.0/%s/%s", kind, enc);
}

static int async_spec(struct api_request *req, struct api_response *resp, const char *description,
		      json_t *resources, operation_run_fn run, void *data,
		      void (*free_data)(void *), bool may_cancel, struct berth_error *err)
{
	struct operation_spec spec = {
		.may_cancel = may_cancel,
		.description = description,
		.project = api_event_project(req),
		.resources = resources,
		.run = run,
		.data = data,
		.free_data = free_data,
	};
	int r = operation_create(req->d->ops, &spec, &resp->op);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create operation");
	resp->type = API_ASYNC;
	return 0;
}

int api_async(struct api_request *req, struct api_response *resp, const char *description,
	      json_t *resources, operation_run_fn run, void *data, void (*free_data)(void *),
	      struct berth_error *err)
{
	return async_spec(req, resp, description, resources, run, data, free_data, false, err);
}

int api_async_cancellable(struct api_request *req, struct api_response *resp,
			  const char *description, json_t *resources, operation_run_fn run,
			  void *data, void (*free_data)(void *), struct berth_error *err)
{
	return async_spec(req, resp, description, resources, run, data, free_data, true, err);
}

int api_profile_project(struct db *db, const char *project, char **ret, struct berth_error *err)
{
	return db_project_feature_project(db, project, "features.profiles", ret, err);
}

/* ---- routing ---- */

/* Match `path` against `pattern` segment by segment, capturing "{}" segments into
 * `params` (pointers into `storage`, a copy of `path` cut at the slashes). */
static bool route_match(const char *pattern, const char *path, char *storage, const char **params)
{
	const char *p = pattern;
	char *s = storage;
	int n = 0;

	strcpy(storage, path);
	if (*p != '/' || *s != '/')
		return false;
	p++;
	s++;
	for (;;) {
		const char *pend = strchrnul(p, '/');
		char *send = strchrnul(s, '/');
		size_t plen = (size_t)(pend - p), slen = (size_t)(send - s);
		bool p_more = *pend == '/', s_more = *send == '/';

		if (plen == 2 && p[0] == '{' && p[1] == '}') {
			if (slen == 0 || n >= API_MAX_PARAMS)
				return false;
			params[n++] = s;
		} else if (plen != slen || strncmp(p, s, plen) != 0) {
			return false;
		}
		if (p_more != s_more)
			return false;
		*send = '\0';
		if (!p_more)
			return true;
		p = pend + 1;
		s = send + 1;
	}
}

static const struct api_route *route_find(const char *method, const char *path, char *storage,
					  const char **params, bool *path_known)
{
	*path_known = false;
	for (size_t t = 0; t < ARRAY_SIZE(route_tables); t++)
		for (const struct api_route *r = route_tables[t]; r->pattern; r++) {
			if (!route_match(r->pattern, path, storage, params))
				continue;
			*path_known = true;
			if (streq(r->method, method) ||
			    (streq(method, "HEAD") && streq(r->method, "GET")))
				return r;
		}
	return NULL;
}

static void request_release(struct api_request *req)
{
	if (req->client) {
		trust_client_release(req->client);
		free(req->client);
	}
	free(req->storage);
	free(req->project);
	free(req->named_project);
	json_decref(req->body);
}

/* Fill `req` from the HTTP request: captures, ?project=, ?recursion=, JSON body. */
static int request_prepare(struct api_request *req, const struct berth_http_request *http,
			   const char *method, struct berth_error *err)
{
	_cleanup_free_ char *recursion = NULL;
	int r;

	req->method = method;
	r = berth_http_query_get(http->query, "project", &req->project);
	if (r == -ENOENT) {
		req->project = strdup("default");
		if (!req->project)
			return -ENOMEM;
	} else if (r < 0) {
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Invalid query string");
	} else {
		r = berth_name_check_entity("project name", req->project, err);
		if (r < 0)
			return r;
	}
	r = berth_http_query_get(http->query, "recursion", &recursion);
	if (r == 0) {
		char *end;
		long v = strtol(recursion, &end, 10);
		if (*end || end == recursion || v < 0 || v > 2)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid recursion level \"%s\"", recursion);
		req->recursion = (int)v;
	} else if (r != -ENOENT) {
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "Invalid query string");
	}
	req->if_match = berth_http_header_get(http->headers, http->n_headers, "If-Match");
	if (http->body_len > 0) {
		const char *ct = berth_http_header_get(http->headers, http->n_headers,
						       "Content-Type");
		/* Like LXD, any body is JSON except raw uploads (files, images). */
		bool json = !(ct && (berth_startswith(ct, "application/octet-stream") ||
				     berth_startswith(ct, "multipart/"))) &&
			    !api_spool_url(method, http->url);
		if (json) {
			r = berth_json_parse(http->body, http->body_len, &req->body, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

bool api_spool_url(const char *method, const char *url)
{
	size_t n = strcspn(url, "?");

	/* POST /1.0/instances/{name}/files (or its /1.0/containers alias) */
	return streq(method, "POST") &&
	       (berth_startswith(url, "/1.0/instances/") ||
		berth_startswith(url, "/1.0/containers/")) &&
	       n >= 6 && strneq(url + n - 6, "/files", 6);
}

static void work_cb(struct worker_job *job)
{
	struct api_work *aw = container_of(job, struct api_work, job);

	aw->ret = api_project_resolve(&aw->req, aw->route->pattern, &aw->err);
	if (aw->ret >= 0)
		aw->ret = aw->route->handler(&aw->req, &aw->resp, &aw->err);
	/* Serialize here, off the loop thread: large listings take milliseconds. */
	if (aw->ret >= 0 && aw->resp.type == API_SYNC)
		api_render_sync(&aw->resp);
}

static void after_work_cb(struct worker_job *job)
{
	struct api_work *aw = container_of(job, struct api_work, job);
	int r = aw->ret;

	if (r < 0) {
		int code = berth_error_code_for(&aw->err, r);
		const char *msg = berth_error_msg(&aw->err, r);

		/* Logged by api_log_error_response() as it goes out. */
		api_response_release(&aw->resp);
		api_respond_error(aw->conn, code, msg);
	} else {
		api_respond(aw->conn, &aw->resp);
	}
	request_release(&aw->req);
	berth_error_release(&aw->err);
	free(aw);
}

/* The request line at debug level, with the value of any "secret" in the query string
 * (exec and console websockets) left out. */
static void log_request(const char *method, const struct berth_http_request *http)
{
	_cleanup_free_ char *q = strdup(http->query ? http->query : "");
	char *p = q;

	while (p && *p) {
		size_t n = strcspn(p, "&");

		if (berth_startswith(p, "secret=")) {
			memmove(p + 7, p + n, strlen(p + n) + 1);
			n = 7;
		}
		p += n;
		if (*p == '&')
			p++;
	}
	log_debug("%s %s%s%s", method, http->path, q && *q ? "?" : "", q ? q : "");
}

/* ---- authorization (LXD's trust model; see daemon/trust.h) ---- */

/* What an untrusted client may reach: the server's public face, adding itself, and an
 * operation's websocket, which its secret guards. */
static bool untrusted_allowed(const char *method, const char *pattern)
{
	static const char *const allowed[][2] = {
		{"GET", "/"},
		{"GET", "/1.0"},
		{"POST", "/1.0/certificates"},
		{"GET", "/1.0/operations/{}/websocket"},
		/* public images only (images.c) */
		{"GET", "/1.0/images"},
		{"GET", "/1.0/images/{}"},
		{"GET", "/1.0/images/{}/export"},
		{"GET", "/1.0/images/aliases"},
		{"GET", "/1.0/images/aliases/{}"},
		{"GET", "/1.0/images/aliases/{}/{}"},
		{"GET", "/1.0/images/aliases/{}/{}/{}"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
		if (streq(method, allowed[i][0]) && streq(pattern, allowed[i][1]))
			return true;
	return false;
}

/* Routes whose objects live in a project (?project=). */
static bool project_scoped(const char *pattern)
{
	static const char *const prefixes[] = {
		"/1.0/instances",  "/1.0/images", "/1.0/profiles",
		"/1.0/operations", "/1.0/events", "/1.0/warnings",
	};

	if (berth_startswith(pattern, "/1.0/storage-pools/{}/volumes"))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		size_t n = strlen(prefixes[i]);

		if (strneq(pattern, prefixes[i], n) && (pattern[n] == '\0' || pattern[n] == '/'))
			return true;
	}
	return false;
}

/* A restricted certificate reaches its projects only, and changes nothing server-wide. */
static int authorize_restricted(const struct trust_client *c, const struct api_route *route,
				const struct api_request *req,
				const struct berth_http_request *http)
{
	_cleanup_free_ char *all = NULL;

	if (berth_startswith(route->pattern, "/1.0/operations/{}"))
		return 0; /* by its id, which only who started it knows */
	if (project_scoped(route->pattern)) {
		/* operations.c and events.c take any all-projects= as every project */
		if (berth_http_query_get(http->query, "all-projects", &all) == 0)
			return -EACCES;
		return trust_client_allows_project(c, req->project) ? 0 : -EACCES;
	}
	if (streq(route->pattern, "/1.0/projects/{}"))
		return streq(req->method, "GET") && trust_client_allows_project(c, req->params[0])
			       ? 0
			       : -EACCES;
	return streq(req->method, "GET") ? 0 : -EACCES;
}

bool api_untrusted(const struct api_request *req)
{
	return req->client && (!req->client->trusted || req->client->metrics);
}

static int authorize(const struct trust_client *c, const struct api_route *route,
		     const struct api_request *req, const struct berth_http_request *http)
{
	if (!c->remote)
		return 0;
	/* berthd's own internal calls (admin shutdown) stay on the unix socket. */
	if (berth_startswith(route->pattern, "/internal"))
		return -EACCES;
	/* A metrics certificate reads /1.0/metrics, and is untrusted anywhere else. */
	if (c->trusted && c->metrics && streq(route->pattern, "/1.0/metrics"))
		return trust_client_allows_project(c, req->project) ? 0 : -EACCES;
	if (!c->trusted || c->metrics)
		return untrusted_allowed(req->method, route->pattern) ? 0 : -EACCES;
	if (c->restricted)
		return authorize_restricted(c, route, req, http);
	return 0;
}

void api_handle(struct berth_http_conn *conn, struct berth_http_request *http, void *data)
{
	struct berth_daemon *d = data;
	_cleanup_free_ struct api_work *aw = calloc(1, sizeof(*aw));
	const char *method = http->method;
	bool path_known;
	int r;

	if (!aw) {
		api_respond_error(conn, 500, "Out of memory");
		return;
	}
	if (berth_log_get_level() >= BERTH_LOG_DEBUG)
		log_request(method, http);
	d->requests_since_trim++;
	aw->conn = conn;
	aw->req.d = d;
	aw->req.http = http;
	/* LXD keeps /1.0/containers as an alias of /1.0/instances (pylxd 2.2 uses it) */
	if (berth_startswith(http->path, "/1.0/containers") &&
	    (http->path[15] == '\0' || http->path[15] == '/')) {
		memcpy(http->path + 5, "instances", 9);
		memmove(http->path + 14, http->path + 15, strlen(http->path + 15) + 1);
	}
	aw->req.storage = malloc(strlen(http->path) + 1);
	if (!aw->req.storage) {
		api_respond_error(conn, 500, "Out of memory");
		return;
	}
	aw->req.client = calloc(1, sizeof(*aw->req.client));
	if (!aw->req.client || trust_identify(d->trust, conn, aw->req.client) < 0) {
		request_release(&aw->req);
		api_respond_error(conn, 500, "Cannot identify the client");
		return;
	}
	aw->route = route_find(method, http->path, aw->req.storage, aw->req.params, &path_known);
	if (!aw->route) {
		request_release(&aw->req);
		if (path_known)
			api_respond_error(conn, 405, "method not allowed");
		else
			api_respond_error(conn, 404, "not found");
		return;
	}
	r = request_prepare(&aw->req, http, method, &aw->err);
	if (r < 0) {
		api_respond_error(conn, berth_error_code_for(&aw->err, r),
				  berth_error_msg(&aw->err, r));
		request_release(&aw->req);
		berth_error_release(&aw->err);
		return;
	}
	r = authorize(aw->req.client, aw->route, &aw->req, http);
	if (r < 0) {
		api_respond_error(conn, 403, "not authorized");
		request_release(&aw->req);
		return;
	}
	if (aw->route->loop_handler) {
		aw->route->loop_handler(&aw->req, conn);
		request_release(&aw->req);
		return;
	}
	/* The request workers: operations run on workers of their own (operation.c), so
	 * no stop or unpack can hold a request back. */
	aw->job.work = work_cb;
	aw->job.done = after_work_cb;
	r = worker_submit(d->requests, &aw->job);
	if (r < 0) {
		api_respond_error(conn, 500, "Failed to queue the request");
		request_release(&aw->req);
		return;
	}
	TAKE_PTR(aw);
}

void api_handle_metrics(struct berth_http_conn *conn, struct berth_http_request *http, void *data)
{
	/* LXD's metrics listener serves these and nothing else. */
	if (!streq(http->path, "/") && !streq(http->path, "/1.0") &&
	    !streq(http->path, "/1.0/metrics")) {
		api_respond_error(conn, 404, "not found");
		return;
	}
	api_handle(conn, http, data);
}

void api_log_error_response(const char *method, const char *path, int status, const char *body,
			    size_t len, void *data)
{
	json_auto_t *j = NULL;
	const char *msg = NULL;

	(void)data;
	/* The query string stays out: exec and console secrets travel in it. */
	if (body && len > 0 && berth_json_parse(body, len, &j, NULL) < 0)
		j = NULL;
	msg = berth_json_string(j, "error");
	if (!msg || !*msg)
		msg = berth_http_reason(status);
	/* The server's own refusals may come before the request line was parsed. */
	if (!path)
		berth_log(status >= 500 ? BERTH_LOG_ERROR : BERTH_LOG_INFO, LOG_CATEGORY, 0,
			  "Unparsed request: %d %s", status, msg);
	else
		berth_log(status >= 500 ? BERTH_LOG_ERROR : BERTH_LOG_INFO, LOG_CATEGORY, 0,
			  "%s %s: %d %s", method ?: "-", path, status, msg);
}

void api_config_drop_empty(json_t *config)
{
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(config, tmp, key, v)
		if (json_is_string(v) && json_string_value(v)[0] == '\0')
			json_object_del(config, key);
}

int api_patch_merge(json_t *target, const json_t *patch, const char *const *fields, size_t n_fields)
{
	json_t *config = json_object_get(patch, "config");
	json_t *devices = json_object_get(patch, "devices");
	const char *key;
	json_t *v;

	if (json_is_object(config)) {
		json_t *tc = json_object_get(target, "config");
		if (!tc) {
			tc = json_object();
			json_object_set_new(target, "config", tc);
		}
		json_object_foreach(config, key, v) {
			if (json_string_value(v)[0] == '\0')
				json_object_del(tc, key);
			else
				json_object_set(tc, key, v);
		}
	}
	if (json_is_object(devices)) {
		json_t *td = json_object_get(target, "devices");
		if (!td) {
			td = json_object();
			json_object_set_new(target, "devices", td);
		}
		json_object_foreach(devices, key, v)
			json_object_set(td, key, v);
	}
	for (size_t i = 0; i < n_fields; i++) {
		json_t *f = json_object_get(patch, fields[i]);
		if (f && !json_is_null(f))
			json_object_set(target, fields[i], f);
	}
	return 0;
}
