/* daemon/events.h: the event hub behind GET /1.0/events.
 *
 * Any thread may emit an event; it is queued under a lock and delivered on the
 * loop thread (uv_async) to every websocket listener whose type and project
 * filters match. A listener that reads too slowly is dropped by the websocket
 * layer. Event JSON: {"type","timestamp","metadata","location":"none","project"}. */
#pragma once

#include <jansson.h>
#include <uv.h>

#include "lib/http_server.h"

enum event_type {
	EVENT_OPERATION = 1 << 0,
	EVENT_LIFECYCLE = 1 << 1,
	EVENT_LOGGING = 1 << 2,
	EVENT_ALL = EVENT_OPERATION | EVENT_LIFECYCLE | EVENT_LOGGING,
};

struct events_hub;

int events_hub_new(uv_loop_t *loop, struct events_hub **ret);
/* Drop every listener and close the async handle; events emitted from then on are
 * dropped. */
void events_hub_close(struct events_hub *hub);
/* Free a closed hub once the loop has run its last callback and work request (after
 * uv_run returned): worker threads may emit until then. A hub not closed is left. */
void events_hub_free(struct events_hub *hub);

/* Parse "operation,lifecycle" (empty: all). -EINVAL naming the unknown type. */
int events_parse_types(const char *s, unsigned *ret, struct berth_error *err);

/* Thread-safe. Steals `metadata`. `project` may be NULL ("default"). */
void events_emit(struct events_hub *hub, enum event_type type, const char *project,
		 json_t *metadata);
/* Lifecycle event: action ("profile-created"), source URL, `context` stolen (may be NULL). */
void events_lifecycle(struct events_hub *hub, const char *project, const char *action,
		      const char *source, json_t *context);

/* Loop thread: upgrade `conn` to a websocket that receives events of `types` in
 * `project` (NULL: every project). Answers the request either way. */
int events_subscribe(struct events_hub *hub, struct berth_http_conn *conn, unsigned types,
		     const char *project);
size_t events_n_listeners(const struct events_hub *hub);
