/* daemon/daemon.h: the state one berthd process holds, passed to the API layer. */
#pragma once

#include <jansson.h>
#include <uv.h>

#include "daemon/events.h"
#include "daemon/operation.h"
#include "lib/http_server.h"

/* Threads that run request handlers: quick work only (operations have their own). */
#define API_REQUEST_WORKERS 16

struct container_watcher;
struct https;
struct trust;
struct db;
struct stdio_socket;
struct worker_pool;

struct berth_daemon {
	uv_loop_t *loop;
	char *dir;	   /* owned: state directory */
	char *socket_path; /* owned */
	char *spool_dir;   /* owned: $BERTH_DIR/tmp, where uploads are received */
	struct db *db;	   /* owned: the database, closed after everything that uses it */
	struct berth_http_server *http;	      /* owned */
	char *stdio_path;		      /* owned: stdio.socket (doc/api.md) */
	struct stdio_socket *stdio;	      /* owned, closed at shutdown */
	struct events_hub *events;	      /* owned */
	struct operation_registry *ops;	      /* owned */
	struct worker_pool *requests;	      /* owned: runs the handlers (api.c) */
	struct container_watcher *containers; /* owned: wait connections to monitors */
	json_t *environment;		      /* owned: host facts for GET /1.0, read-only */
	struct https *https;		      /* owned: server certificate, HTTPS listener */
	struct https *metrics_https;	      /* owned: the core.metrics_address listener */
	struct trust *trust;		      /* owned: the cached trust store, tokens */
	struct cluster *cluster;	      /* owned: the dqlite node, NULL standalone */
	unsigned long requests_since_trim;    /* loop thread: see main.c's malloc trimming */
};
