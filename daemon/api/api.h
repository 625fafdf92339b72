/* daemon/api/api.h: the REST layer. Routes requests to per-resource handlers
 * (one file per resource) and renders LXD's envelopes.
 *
 * Most handlers are plain synchronous functions that run on the request workers
 * (daemon/worker.h; they query SQLite and build JSON, operations run elsewhere): they fill a struct api_response or return
 * -errno with `err` set, which becomes LXD's error JSON with the mapped status.
 * A handler may instead hand back an operation (async response, 202). A few
 * handlers must run on the loop thread because they keep the connection
 * (websocket upgrades, /wait): those are marked `on_loop` and answer it
 * themselves. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "lib/error.h"
#include "lib/http_server.h"

#define API_MAX_PARAMS 4
#define API_MAX_PARTS 8
#define API_MAX_HEADERS 8

struct trust_client;

struct api_request {
	struct berth_daemon *d;
	struct berth_http_request *http; /* borrowed */
	const char *method;
	const char *params[API_MAX_PARAMS]; /* path captures, in order; owned by `storage` */
	char *storage;			    /* owned: backing for params */
	char *project;			    /* owned: ?project=, "default" when absent */
	char *named_project;		    /* owned or NULL: see api_project_resolve() */
	int recursion;			    /* ?recursion= */
	json_t *body;			    /* owned: parsed JSON body, NULL when empty */
	const char *if_match;		    /* borrowed header or NULL */
	struct trust_client *client;	    /* owned: who asks (daemon/trust.h) */
};

enum api_response_type {
	API_SYNC,
	API_ASYNC,
	API_RAW,
};

struct api_response {
	enum api_response_type type;
	int status;	      /* HTTP status for API_SYNC (200 default; 201 with a location) */
	json_t *metadata;     /* owned */
	char *etag;	      /* owned or NULL */
	char *location;	      /* owned or NULL */
	struct operation *op; /* owned reference (API_ASYNC) */
	char *raw;	      /* owned: API_RAW body, or a rendered API_SYNC envelope */
	size_t raw_len;
	const char *content_type; /* API_RAW */
	char *content_type_buf;	  /* API_RAW: owned, used instead of content_type when set */
	char *disposition;	  /* API_RAW: owned Content-Disposition header, or NULL */
	/* API_RAW streamed from files: when n_parts > 0 the body is `parts` instead of
	 * `raw` (see berth_http_respond_parts). Data parts point into `part_bufs` (owned);
	 * fds are owned until the response is sent. Fill with api_add_part_*(). */
	struct berth_http_part parts[API_MAX_PARTS];
	char *part_bufs[API_MAX_PARTS];
	size_t n_parts;
	/* Extra response headers (API_SYNC and API_RAW), names and values owned. Fill
	 * with api_add_header(). */
	struct berth_http_header headers[API_MAX_HEADERS];
	size_t n_headers;
};

typedef int (*api_handler_fn)(struct api_request *req, struct api_response *resp,
			      struct berth_error *err);
typedef void (*api_loop_handler_fn)(struct api_request *req, struct berth_http_conn *conn);

struct api_route {
	const char *method;
	const char *pattern; /* "/1.0/profiles/{}" */
	api_handler_fn handler;
	api_loop_handler_fn loop_handler;
};

/* The http server's request callback; `data` is the struct berth_daemon. */
void api_handle(struct berth_http_conn *conn, struct berth_http_request *http, void *data);

/* The same for the core.metrics_address listener: GET /, /1.0 and /1.0/metrics only, the
 * rest 404. */
void api_handle_metrics(struct berth_http_conn *conn, struct berth_http_request *http, void *data);

/* Bodies that are raw bytes whatever their Content-Type (file pushes): spool them and
 * never parse them as JSON. For berth_http_limits.spool_url. */
bool api_spool_url(const char *method, const char *url);

/* Per-resource route tables, each terminated by a zeroed entry. */
extern const struct api_route api_server_routes[];
extern const struct api_route api_project_routes[];
extern const struct api_route api_profile_routes[];
extern const struct api_route api_instance_routes[];
extern const struct api_route api_instance_snapshot_routes[];
extern const struct api_route api_instance_backup_routes[];
extern const struct api_route api_instance_file_routes[];
extern const struct api_route api_instance_exec_routes[];
extern const struct api_route api_instance_log_routes[];
extern const struct api_route api_operation_routes[];
extern const struct api_route api_event_routes[];
extern const struct api_route api_storage_routes[];
extern const struct api_route api_storage_volume_routes[];
extern const struct api_route api_image_routes[];
extern const struct api_route api_resources_routes[];
extern const struct api_route api_network_routes[];
extern const struct api_route api_warning_routes[];
extern const struct api_route api_cluster_routes[];
extern const struct api_route api_internal_routes[];
extern const struct api_route api_certificate_routes[];
extern const struct api_route api_metrics_routes[];

/* ---- helpers for handlers ---- */

/* A sync response with `metadata` (stolen). */
int api_sync(struct api_response *resp, json_t *metadata);
/* 201 with Location (LXD's answer to creations and renames). */
int api_created(struct api_response *resp, const char *location);
/* ETag of an object's editable fields: hex SHA-256 of their compact JSON. */
char *api_etag(const json_t *value);
/* 412 when the request has an If-Match that differs from `etag`. */
int api_check_etag(const struct api_request *req, const char *etag, struct berth_error *err);
/* The body must be a JSON object: -EINVAL/400 otherwise. */
int api_require_body(const struct api_request *req, struct berth_error *err);
/* "/1.0/<kind>/<name>" plus "?project=<p>" when p is not "default". */
char *api_url(const char *kind, const char *name, const char *project);
/* Send an error response from the loop thread. */
void api_respond_error(struct berth_http_conn *conn, int status, const char *msg);
/* berthd's berth_http_error_hook_fn: logs each failed request once, at info level (error
 * level for 5xx), as "METHOD PATH: STATUS ERROR". The query string is never logged. */
void api_log_error_response(const char *method, const char *path, int status, const char *body,
			    size_t len, void *data);
/* Render the envelope of `resp` and send it. Consumes resp's contents. */
void api_respond(struct berth_http_conn *conn, struct api_response *resp);
void api_response_release(struct api_response *resp);
/* Append a part to a streamed API_RAW body: a string (taken over: freed with the
 * response), or `len` bytes of `fd` (taken over, also on failure). -E2BIG past
 * API_MAX_PARTS. */
int api_add_part_string(struct api_response *resp, char *s);
int api_add_part_fd(struct api_response *resp, int fd, uint64_t len);
/* Add a response header (both strings copied). -E2BIG past API_MAX_HEADERS. */
int api_add_header(struct api_response *resp, const char *name, const char *value);
/* Render the sync envelope around resp->metadata (consumed) into resp->raw. */
void api_render_sync(struct api_response *resp);
/* The source of a migration of instance req->params[0] (its snapshot `snap` when not
 * NULL) from req->body (daemon/api/instances.c, doc/migration.md). */
int api_instance_migrate(struct api_request *req, struct api_response *resp, const char *snap,
			 struct berth_error *err);
/* The operation of migration source `s` (taken, also on failure), with its secrets as
 * metadata: "websocket" class, or "task" when it pushes (daemon/api/instances.c). */
struct migrate_source;
int api_migrate_source_start(struct api_request *req, struct api_response *resp,
			     struct migrate_source *s, const char *description, json_t *resources,
			     struct berth_error *err);
/* A migration peer on a unix socket of this host ("unix://..." operation URL in `spec`)
 * only for callers of berthd's unix socket: 403 over HTTPS. */
int api_migrate_peer_check(const struct api_request *req, const json_t *spec,
			   struct berth_error *err);
/* Operation wrapper used by async handlers: creates and returns via resp. */
int api_async(struct api_request *req, struct api_response *resp, const char *description,
	      json_t *resources, operation_run_fn run, void *data, void (*free_data)(void *),
	      struct berth_error *err);
/* The same, for an operation that DELETE /1.0/operations/{id} may cancel (may_cancel):
 * `run` looks at operation_cancel_flag() and returns -ECANCELED, leaving nothing. */
int api_async_cancellable(struct api_request *req, struct api_response *resp,
			  const char *description, json_t *resources, operation_run_fn run,
			  void *data, void (*free_data)(void *), struct berth_error *err);
/* Effective project for profiles: the project itself when features.profiles is on
 * (always for "default"), else "default". -ENOENT when the project does not exist. */
int api_profile_project(struct db *db, const char *project, char **ret, struct berth_error *err);
/* Before a handler runs (projects.c): a request on an image or on a custom storage
 * volume in a project without features.images or features.storage.volumes acts on the
 * "default" project's, as in LXD: req->project is replaced by "default" and the project
 * asked for kept in req->named_project, where the request's operation is (a client waits
 * for it on /1.0/events?project= of the project it asked for). A project that does not
 * exist is 404. Other routes are left alone. */
int api_project_resolve(struct api_request *req, const char *pattern, struct berth_error *err);
/* The project a request's operation and lifecycle events belong to: the one it asked for
 * (req->named_project when api_project_resolve() replaced it), as LXD sends them. */
static inline const char *api_event_project(const struct api_request *req)
{
	return req->named_project ? req->named_project : req->project;
}

/* PATCH semantics shared by profiles, projects and instances: "config" keys are
 * merged (an empty value removes the key), "devices" are replaced by name,
 * other present fields of `patch` listed in `fields` replace the target's. */
int api_patch_merge(json_t *target, const json_t *patch, const char *const *fields,
		    size_t n_fields);
/* Drop empty config values in place (PUT with "" means unset). */
void api_config_drop_empty(json_t *config);
/* LXD's expiry durations (core.remote_token_expiry): "<n><unit>", units S, M, H, d, w,
 * m (30 days), y (365 days), into seconds. -EINVAL. */
int api_parse_expiry(const char *v, uint64_t *ret);
/* core.remote_token_expiry in seconds into *ret, `fallback` when it is unset (trust
 * tokens: 0, none; image secrets: their own default). */
int api_remote_token_expiry(struct api_request *req, uint64_t fallback, uint64_t *ret,
			    struct berth_error *err);
/* The caller is not trusted (an HTTPS client without a trusted certificate, or with a
 * metrics one): it sees public images only (images.c). */
bool api_untrusted(const struct api_request *req);
