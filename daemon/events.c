/* daemon/events.c: the event hub (see events.h). */
#include "daemon/events.h"

#include <pthread.h>
#include <string.h>

#include "lib/json.h"
#include "lib/util.h"

struct listener {
	struct listener *prev, *next;
	struct events_hub *hub;
	struct berth_ws_conn *ws; /* borrowed: valid until on_close */
	unsigned types;
	char *project; /* owned; NULL: all projects */
};

struct queued_event {
	struct queued_event *next;
	enum event_type type;
	char *project; /* owned */
	char *json;    /* owned: rendered event */
};

struct events_hub {
	uv_async_t async;
	pthread_mutex_t lock;
	struct queued_event *head, *tail; /* under lock */
	struct listener *listeners;	  /* loop thread only */
	size_t n_listeners;
	bool closing; /* no more events are queued */
	bool closed;  /* the async handle's close callback ran */
};

static const struct {
	const char *name;
	enum event_type type;
} type_names[] = {
	{"operation", EVENT_OPERATION},
	{"lifecycle", EVENT_LIFECYCLE},
	{"logging", EVENT_LOGGING},
};

int events_parse_types(const char *s, unsigned *ret, struct berth_error *err)
{
	unsigned types = 0;

	if (!s || !*s) {
		*ret = EVENT_ALL;
		return 0;
	}
	for (const char *p = s; *p;) {
		const char *end = strchrnul(p, ',');
		size_t len = (size_t)(end - p);
		bool found = false;

		for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
			if (strlen(type_names[i].name) == len &&
			    strncmp(type_names[i].name, p, len) == 0) {
				types |= type_names[i].type;
				found = true;
			}
		if (!found)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Unknown event type \"%.*s\" (known: operation, "
					       "lifecycle, logging)",
					       (int)len, p);
		p = *end ? end + 1 : end;
	}
	*ret = types;
	return 0;
}

static void queued_free(struct queued_event *q)
{
	free(q->project);
	free(q->json);
	free(q);
}

static void deliver(struct events_hub *hub, const struct queued_event *q)
{
	for (struct listener *l = hub->listeners, *next; l; l = next) {
		next = l->next; /* a failed send closes and unlinks l */
		if (!(l->types & q->type))
			continue;
		if (l->project && !streq(l->project, q->project))
			continue;
		berth_ws_conn_send(l->ws, true, q->json, strlen(q->json));
	}
}

static void on_async(uv_async_t *a)
{
	struct events_hub *hub = a->data;
	struct queued_event *q;

	pthread_mutex_lock(&hub->lock);
	q = hub->head;
	hub->head = hub->tail = NULL;
	pthread_mutex_unlock(&hub->lock);
	while (q) {
		struct queued_event *next = q->next;
		deliver(hub, q);
		queued_free(q);
		q = next;
	}
}

int events_hub_new(uv_loop_t *loop, struct events_hub **ret)
{
	struct events_hub *hub = calloc(1, sizeof(*hub));
	int r;

	if (!hub)
		return -ENOMEM;
	pthread_mutex_init(&hub->lock, NULL);
	r = uv_async_init(loop, &hub->async, on_async);
	if (r < 0) {
		free(hub);
		return r;
	}
	hub->async.data = hub;
	*ret = hub;
	return 0;
}

/* The hub outlives its async handle: worker threads may still emit (and find it closing)
 * until the loop has run its last work request; events_hub_free() comes after that. */
static void on_hub_closed(uv_handle_t *h)
{
	struct events_hub *hub = h->data;

	pthread_mutex_lock(&hub->lock);
	hub->closed = true;
	pthread_mutex_unlock(&hub->lock);
}

void events_hub_free(struct events_hub *hub)
{
	struct queued_event *q;

	if (!hub || !hub->closed)
		return; /* its async handle still belongs to the loop */
	q = hub->head;
	while (q) {
		struct queued_event *next = q->next;
		queued_free(q);
		q = next;
	}
	pthread_mutex_destroy(&hub->lock);
	free(hub);
}

void events_hub_close(struct events_hub *hub)
{
	if (!hub || hub->closing)
		return;
	pthread_mutex_lock(&hub->lock);
	hub->closing = true;
	pthread_mutex_unlock(&hub->lock);
	for (struct listener *l = hub->listeners; l; l = l->next)
		l->hub = NULL; /* the http server closes the sockets themselves */
	hub->listeners = NULL;
	uv_close((uv_handle_t *)&hub->async, on_hub_closed);
}

void events_emit(struct events_hub *hub, enum event_type type, const char *project,
		 json_t *metadata)
{
	char stamp[BERTH_RFC3339_MAX];
	json_t *ev;
	struct queued_event *q;
	const char *tname = type == EVENT_OPERATION   ? "operation"
			    : type == EVENT_LIFECYCLE ? "lifecycle"
						      : "logging";

	if (!hub) {
		json_decref(metadata);
		return;
	}
	berth_now_rfc3339(stamp);
	project = project ? project : "default";
	ev = json_pack("{s:s, s:s, s:o, s:s, s:s}", "type", tname, "timestamp", stamp, "metadata",
		       metadata ? metadata : json_object(), "location", "none", "project", project);
	q = calloc(1, sizeof(*q));
	if (!ev || !q) {
		json_decref(ev);
		free(q);
		return;
	}
	q->type = type;
	q->project = strdup(project);
	q->json = berth_json_dumps(ev);
	json_decref(ev);
	if (!q->project || !q->json) {
		queued_free(q);
		return;
	}
	pthread_mutex_lock(&hub->lock);
	if (hub->closing) {
		pthread_mutex_unlock(&hub->lock);
		queued_free(q);
		return;
	}
	if (hub->tail)
		hub->tail->next = q;
	else
		hub->head = q;
	hub->tail = q;
	pthread_mutex_unlock(&hub->lock);
	uv_async_send(&hub->async);
}

void events_lifecycle(struct events_hub *hub, const char *project, const char *action,
		      const char *source, json_t *context)
{
	json_t *md = json_pack("{s:s, s:s, s:o, s:{s:s, s:s}}", "action", action, "source", source,
			       "context", context ? context : json_object(), "requestor",
			       "username", "root", "protocol", "unix");

	events_emit(hub, EVENT_LIFECYCLE, project, md);
}

static void on_listener_close(struct berth_ws_conn *ws, void *data)
{
	struct listener *l = data;
	struct events_hub *hub = l->hub;

	if (hub) {
		if (l->prev)
			l->prev->next = l->next;
		else
			hub->listeners = l->next;
		if (l->next)
			l->next->prev = l->prev;
		hub->n_listeners--;
	}
	free(l->project);
	free(l);
}

static const struct berth_ws_callbacks listener_callbacks = {
	.on_close = on_listener_close,
};

int events_subscribe(struct events_hub *hub, struct berth_http_conn *conn, unsigned types,
		     const char *project)
{
	struct listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l || (project && !(l->project = strdup(project)))) {
		free(l);
		berth_http_respond(conn, 500, NULL, NULL, 0, NULL, 0);
		return -ENOMEM;
	}
	l->hub = hub;
	l->types = types;
	/* Link first: the upgrade may feed early bytes and close, calling on_close. */
	l->next = hub->listeners;
	if (hub->listeners)
		hub->listeners->prev = l;
	hub->listeners = l;
	hub->n_listeners++;
	r = berth_http_upgrade_ws(conn, &listener_callbacks, l, &l->ws);
	if (r < 0 && r != -EPIPE) {
		/* No websocket was created, so on_close will not run: unlink by hand. */
		on_listener_close(NULL, l);
	}
	return r;
}

size_t events_n_listeners(const struct events_hub *hub)
{
	return hub->n_listeners;
}
