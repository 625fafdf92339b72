/* daemon/operation.c: the operation engine (see operation.h). */
#define LOG_CATEGORY "operation"
#include "daemon/operation.h"

#include <pthread.h>
#include <string.h>

#include "daemon/worker.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "lib/util.h"

struct waiter {
	uv_timer_t timer;
	struct waiter *next;
	struct operation *op; /* reference */
	operation_wait_fn cb;
	void *data;
};

struct operation {
	struct operation *prev, *next; /* registry list, under reg->lock */
	struct operation_registry *reg;
	int refs; /* under reg->lock */
	char id[BERTH_UUID_STR_LEN];
	char *class, *description, *project;
	char created_at[BERTH_RFC3339_MAX];
	char updated_at[BERTH_RFC3339_MAX];
	uint64_t done_ns; /* monotonic time it finished, 0 while running */
	enum operation_status status;
	bool may_cancel;
	bool cancel_requested;
	atomic_bool cancel_flag; /* cancel_requested, for operation_cancel_flag() */
	json_t *resources, *metadata;
	char *err;
	operation_run_fn run;
	int (*start)(struct operation *op, void *data);
	void (*connect)(struct operation *op, void *data, const char *secret,
			struct berth_http_conn *conn);
	int (*attach_fds)(struct operation *op, void *data, const char *secret, int fds[3],
			  const char **why);
	void (*cancel)(void *data);
	void *data;
	void (*free_data)(void *);
	struct worker_job job;
	int run_ret;
	struct berth_error run_err;
	struct waiter *waiters; /* loop thread only */
};

struct operation_registry {
	uv_loop_t *loop;
	struct events_hub *events;
	struct worker_pool *workers; /* where `run` functions run */
	pthread_mutex_t lock;
	struct operation *ops;
};

static const char *status_name(enum operation_status s)
{
	switch (s) {
	case OPERATION_RUNNING:
		return "Running";
	case OPERATION_CANCELLING:
		return "Cancelling";
	case OPERATION_PENDING:
		return "Pending";
	case OPERATION_SUCCESS:
		return "Success";
	case OPERATION_FAILURE:
		return "Failure";
	case OPERATION_CANCELLED:
		return "Cancelled";
	}
	return "Unknown";
}

int operation_registry_new(uv_loop_t *loop, struct events_hub *events,
			   struct operation_registry **ret)
{
	struct operation_registry *reg = calloc(1, sizeof(*reg));
	int r;

	if (!reg)
		return -ENOMEM;
	r = worker_pool_new(loop, "berth-op", OPERATION_WORKERS_MAX, &reg->workers);
	if (r < 0) {
		free(reg);
		return r;
	}
	reg->loop = loop;
	reg->events = events;
	pthread_mutex_init(&reg->lock, NULL);
	*ret = reg;
	return 0;
}

static void operation_free(struct operation *op)
{
	if (op->free_data)
		op->free_data(op->data);
	free(op->class);
	free(op->description);
	free(op->project);
	json_decref(op->resources);
	json_decref(op->metadata);
	free(op->err);
	berth_error_release(&op->run_err);
	free(op);
}

/* Caller holds reg->lock. */
static void unlink_locked(struct operation *op)
{
	struct operation_registry *reg = op->reg;

	if (op->prev)
		op->prev->next = op->next;
	else if (reg->ops == op)
		reg->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

void operation_registry_free(struct operation_registry *reg)
{
	if (!reg)
		return;
	pthread_mutex_lock(&reg->lock);
	while (reg->ops) {
		struct operation *op = reg->ops;
		unlink_locked(op);
		op->reg = NULL;
		if (--op->refs == 0)
			operation_free(op);
	}
	pthread_mutex_unlock(&reg->lock);
	pthread_mutex_destroy(&reg->lock);
	worker_pool_free(reg->workers);
	free(reg);
}

struct operation *operation_ref(struct operation *op)
{
	pthread_mutex_lock(&op->reg->lock);
	op->refs++;
	pthread_mutex_unlock(&op->reg->lock);
	return op;
}

void operation_unref(struct operation *op)
{
	struct operation_registry *reg;
	bool last;

	if (!op)
		return;
	reg = op->reg;
	if (!reg) {
		if (--op->refs == 0)
			operation_free(op);
		return;
	}
	pthread_mutex_lock(&reg->lock);
	last = --op->refs == 0;
	pthread_mutex_unlock(&reg->lock);
	if (last)
		operation_free(op);
}

/* Caller holds the lock. */
static json_t *render_locked(const struct operation *op)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O, s:O, s:b, s:s, s:s}", "id",
			 op->id, "class", op->class, "description", op->description, "created_at",
			 op->created_at, "updated_at", op->updated_at, "status",
			 status_name(op->status), "status_code", (int)op->status, "resources",
			 op->resources, "metadata", op->metadata, "may_cancel", op->may_cancel,
			 "err", op->err ? op->err : "", "location", "none");
}

json_t *operation_render(struct operation *op)
{
	json_t *j;

	pthread_mutex_lock(&op->reg->lock);
	j = render_locked(op);
	pthread_mutex_unlock(&op->reg->lock);
	return j;
}

/* Emit the current state; caller does not hold the lock. */
static void emit(struct operation *op)
{
	json_t *j = operation_render(op);

	if (j)
		events_emit(op->reg->events, EVENT_OPERATION, op->project, j);
}

/* Drop finished operations older than OPERATION_KEEP_S. Caller holds the lock. */
static void prune_locked(struct operation_registry *reg)
{
	uint64_t now = berth_monotonic_ns();

	for (struct operation *op = reg->ops, *next; op; op = next) {
		next = op->next;
		if (!op->done_ns || now - op->done_ns < OPERATION_KEEP_S * 1000000000ull)
			continue;
		unlink_locked(op);
		if (--op->refs == 0)
			operation_free(op);
	}
}

int operation_create(struct operation_registry *reg, const struct operation_spec *spec,
		     struct operation **ret)
{
	struct operation *op = calloc(1, sizeof(*op));
	int r = -ENOMEM;

	if (!op)
		goto fail;
	r = berth_uuid_new(op->id);
	if (r < 0)
		goto fail;
	op->class = strdup(spec->class ? spec->class : "task");
	op->description = strdup(spec->description ? spec->description : "");
	op->project = strdup(spec->project ? spec->project : "default");
	op->metadata = json_object();
	if (!op->class || !op->description || !op->project || !op->metadata) {
		r = -ENOMEM;
		goto fail;
	}
	op->resources = spec->resources ? spec->resources : json_object();
	op->may_cancel = spec->may_cancel;
	op->run = spec->run;
	op->start = spec->start;
	op->connect = spec->connect;
	op->attach_fds = spec->attach_fds;
	op->cancel = spec->cancel;
	op->data = spec->data;
	op->free_data = spec->free_data;
	op->status = OPERATION_RUNNING;
	op->reg = reg;
	op->refs = 2; /* the registry's and the caller's */
	berth_now_rfc3339(op->created_at);
	memcpy(op->updated_at, op->created_at, sizeof(op->created_at));

	pthread_mutex_lock(&reg->lock);
	prune_locked(reg);
	op->next = reg->ops;
	if (reg->ops)
		reg->ops->prev = op;
	reg->ops = op;
	pthread_mutex_unlock(&reg->lock);
	emit(op);
	*ret = op;
	return 0;
fail:
	if (op) {
		op->resources = NULL;
		op->free_data = NULL;
		operation_free(op);
	}
	if (spec->free_data)
		spec->free_data(spec->data);
	json_decref(spec->resources);
	return r;
}

static void waiter_closed(uv_handle_t *h)
{
	struct waiter *w = h->data;

	operation_unref(w->op);
	free(w);
}

static void wake_waiters(struct operation *op)
{
	struct waiter *w = op->waiters;

	op->waiters = NULL;
	while (w) {
		struct waiter *next = w->next;
		operation_wait_fn cb = w->cb;

		w->cb = NULL;
		uv_timer_stop(&w->timer);
		if (cb)
			cb(op, w->data);
		uv_close((uv_handle_t *)&w->timer, waiter_closed);
		w = next;
	}
}

static void work_cb(struct worker_job *job)
{
	struct operation *op = container_of(job, struct operation, job);

	op->run_ret = op->run ? op->run(op, op->data, &op->run_err) : 0;
}

/* The log line of a failed operation: what it was doing, to what, and why. Runs once per
 * operation (finish() returns early for a finished one). */
static void log_failure(const struct operation *op)
{
	const char *kind, *what = NULL;
	json_t *urls;

	json_object_foreach(op->resources, kind, urls) {
		what = json_string_value(json_array_get(urls, 0));
		if (what)
			break;
	}
	log_info("Operation %s (%s%s%s) failed: %s", op->id, op->description ?: "", what ? " " : "",
		 what ?: "", op->err ?: "unknown error");
}

/* Record the final state of `op` (r: 0 or -errno with err) and tell everyone. */
static void finish(struct operation *op, int r, struct berth_error *err)
{
	struct operation_registry *reg = op->reg;
	bool failed;

	pthread_mutex_lock(&reg->lock);
	if (op->done_ns) {
		pthread_mutex_unlock(&reg->lock);
		return;
	}
	if (r == 0)
		op->status = OPERATION_SUCCESS;
	else if (r == -ECANCELED || op->cancel_requested)
		op->status = OPERATION_CANCELLED;
	else
		op->status = OPERATION_FAILURE;
	/* A message may carry a file name that is not UTF-8: JSON cannot, and an operation
	 * that does not render sends no event to the client waiting for it. */
	if (r < 0)
		op->err = berth_utf8_lossy(r == -ECANCELED ? "Operation cancelled"
							   : berth_error_msg(err, r));
	berth_now_rfc3339(op->updated_at);
	op->done_ns = berth_monotonic_ns();
	failed = op->status == OPERATION_FAILURE;
	pthread_mutex_unlock(&reg->lock);
	/* Done: nothing writes these fields any more. */
	if (failed)
		log_failure(op);
	emit(op);
	wake_waiters(op);
}

static void after_work_cb(struct worker_job *job)
{
	struct operation *op = container_of(job, struct operation, job);

	finish(op, op->run_ret, &op->run_err);
	operation_unref(op); /* the reference held by the running work */
}

void operation_finish(struct operation *op, int r, struct berth_error *err)
{
	finish(op, r, err);
}

int operation_connect(struct operation *op, const char *secret, struct berth_http_conn *conn)
{
	if (!op->connect)
		return -ENOTSUP;
	if (operation_done(op))
		return -ESRCH;
	op->connect(op, op->data, secret, conn);
	return 0;
}

int operation_attach_fds(struct operation *op, const char *secret, int fds[3], const char **why)
{
	if (!op->attach_fds) {
		*why = "This operation takes no file descriptors";
		return -ENOTSUP;
	}
	if (operation_done(op)) {
		*why = "The operation has already finished";
		return -ESRCH;
	}
	return op->attach_fds(op, op->data, secret, fds, why);
}

int operation_start(struct operation *op)
{
	int r;

	if (op->start) {
		r = op->start(op, op->data);
		if (r < 0) {
			struct berth_error err = {0};

			berth_error_set(&err, r, BERTH_ERR_INTERNAL, "Cannot start: %s",
					strerror(-r));
			finish(op, r, &err);
			berth_error_release(&err);
		}
		return 0;
	}
	operation_ref(op);
	op->job.work = work_cb;
	op->job.done = after_work_cb;
	r = worker_submit(op->reg->workers, &op->job);
	if (r < 0)
		operation_unref(op);
	return r;
}

const char *operation_id(const struct operation *op)
{
	return op->id;
}

bool operation_done(struct operation *op)
{
	bool done;

	pthread_mutex_lock(&op->reg->lock);
	done = op->done_ns != 0;
	pthread_mutex_unlock(&op->reg->lock);
	return done;
}

bool operation_cancelled(struct operation *op)
{
	bool c;

	pthread_mutex_lock(&op->reg->lock);
	c = op->cancel_requested;
	pthread_mutex_unlock(&op->reg->lock);
	return c;
}

const atomic_bool *operation_cancel_flag(struct operation *op)
{
	return op ? &op->cancel_flag : NULL;
}

void operation_set_metadata(struct operation *op, json_t *metadata)
{
	pthread_mutex_lock(&op->reg->lock);
	json_decref(op->metadata);
	op->metadata = metadata ? metadata : json_object();
	berth_now_rfc3339(op->updated_at);
	pthread_mutex_unlock(&op->reg->lock);
	emit(op);
}

void operation_set_metadata_key(struct operation *op, const char *key, json_t *value)
{
	json_t *m;

	pthread_mutex_lock(&op->reg->lock);
	/* A copy: rendered operations hold references to the old object. */
	m = json_copy(op->metadata);
	if (!m)
		json_decref(value);
	if (!m || json_object_set_new(m, key, value) < 0) { /* which frees value */
		pthread_mutex_unlock(&op->reg->lock);
		json_decref(m);
		return;
	}
	json_decref(op->metadata);
	op->metadata = m;
	berth_now_rfc3339(op->updated_at);
	pthread_mutex_unlock(&op->reg->lock);
	emit(op);
}

int operation_find(struct operation_registry *reg, const char *id, struct operation **ret)
{
	pthread_mutex_lock(&reg->lock);
	for (struct operation *op = reg->ops; op; op = op->next)
		if (streq(op->id, id)) {
			op->refs++;
			pthread_mutex_unlock(&reg->lock);
			*ret = op;
			return 0;
		}
	pthread_mutex_unlock(&reg->lock);
	return -ENOENT;
}

int operation_cancel(struct operation *op, struct berth_error *err)
{
	bool changed = false;

	pthread_mutex_lock(&op->reg->lock);
	if (!op->done_ns && !op->cancel_requested) {
		if (!op->may_cancel) {
			pthread_mutex_unlock(&op->reg->lock);
			return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
					       "This operation can't be cancelled");
		}
		op->cancel_requested = true;
		atomic_store(&op->cancel_flag, true);
		op->status = OPERATION_CANCELLING;
		if (op->cancel)
			op->cancel(op->data);
		berth_now_rfc3339(op->updated_at);
		changed = true;
	}
	pthread_mutex_unlock(&op->reg->lock);
	if (changed)
		emit(op);
	return 0;
}

json_t *operation_registry_list(struct operation_registry *reg, const char *project, bool objects)
{
	json_t *groups = json_object();

	if (!groups)
		return NULL;
	pthread_mutex_lock(&reg->lock);
	prune_locked(reg);
	for (struct operation *op = reg->ops; op; op = op->next) {
		char key[16];
		json_t *arr;

		if (project && !streq(project, op->project))
			continue;
		snprintf(key, sizeof(key), "%s", status_name(op->status));
		for (char *k = key; *k; k++)
			*k = (char)((*k >= 'A' && *k <= 'Z') ? *k + 32 : *k);
		arr = json_object_get(groups, key);
		if (!arr) {
			arr = json_array();
			json_object_set_new(groups, key, arr);
		}
		if (objects)
			json_array_append_new(arr, render_locked(op));
		else
			json_array_append_new(arr, json_sprintf("/1.0/operations/%s", op->id));
	}
	pthread_mutex_unlock(&reg->lock);
	return groups;
}

static void on_wait_timeout(uv_timer_t *t)
{
	struct waiter *w = t->data;
	struct operation *op = w->op;
	operation_wait_fn cb = w->cb;

	/* Unlink, then answer with the current state. */
	for (struct waiter **p = &op->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	w->cb = NULL;
	if (cb)
		cb(op, w->data);
	uv_close((uv_handle_t *)&w->timer, waiter_closed);
}

int operation_wait(struct operation *op, int64_t timeout_ms, operation_wait_fn cb, void *data)
{
	struct waiter *w;

	if (operation_done(op)) {
		cb(op, data);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	uv_timer_init(op->reg->loop, &w->timer);
	w->timer.data = w;
	w->op = operation_ref(op);
	w->cb = cb;
	w->data = data;
	w->next = op->waiters;
	op->waiters = w;
	if (timeout_ms >= 0)
		uv_timer_start(&w->timer, on_wait_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

void operation_registry_shutdown(struct operation_registry *reg)
{
	struct operation **list = NULL;
	size_t n = 0;

	pthread_mutex_lock(&reg->lock);
	for (struct operation *op = reg->ops; op; op = op->next)
		if (op->cancel && !op->done_ns)
			op->cancel(op->data);
	for (struct operation *op = reg->ops; op; op = op->next)
		if (op->waiters) {
			struct operation **nl = realloc(list, (n + 1) * sizeof(*nl));
			if (!nl)
				break;
			list = nl;
			list[n++] = op;
			op->refs++;
		}
	pthread_mutex_unlock(&reg->lock);
	for (size_t i = 0; i < n; i++) {
		wake_waiters(list[i]);
		operation_unref(list[i]);
	}
	free(list);
}
