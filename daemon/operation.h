/* daemon/operation.h: background operations (LXD's /1.0/operations).
 *
 * An operation is created (any thread), started on the loop thread, and runs its
 * `run` function on a worker of the registry's own pool (daemon/worker.h): a thread per
 * running operation up to OPERATION_WORKERS_MAX, queued beyond, never shared with
 * requests. Its lifecycle, with LXD's status codes:
 *
 *   Running(103) --run returns 0--> Success(200)
 *        |       --run fails------> Failure(400), "err" = the error message
 *        +--cancel (may_cancel)--> Cancelling(104) --run returns--> Cancelled(401)
 *
 * Every change is emitted as an "operation" event. Finished operations stay
 * listed for a while (OPERATION_KEEP_S) so that a late /wait still finds them.
 * Thread-safety: everything is safe from any thread except operation_start()
 * and operation_wait(), which belong to the loop thread. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "daemon/events.h"
#include "lib/error.h"
#include "lib/http_server.h"

#define OPERATION_KEEP_S 60
#define OPERATION_WORKERS_MAX 64

enum operation_status {
	OPERATION_RUNNING = 103,
	OPERATION_CANCELLING = 104,
	OPERATION_PENDING = 105,
	OPERATION_SUCCESS = 200,
	OPERATION_FAILURE = 400,
	OPERATION_CANCELLED = 401,
};

struct operation;
struct operation_registry;

/* Runs on a worker thread. Returns 0 or -errno with `err` set. Long work polls
 * operation_cancelled() and returns -ECANCELED when it is true. */
typedef int (*operation_run_fn)(struct operation *op, void *data, struct berth_error *err);

struct operation_spec {
	const char *class;	 /* "task" (default), "websocket", "token" */
	const char *description; /* "Creating instance" */
	const char *project;	 /* NULL: "default" */
	json_t *resources;	 /* stolen; {"instances":["/1.0/instances/c1"]} */
	bool may_cancel;
	operation_run_fn run;
	void *data;		   /* owned by the operation once created */
	void (*free_data)(void *); /* may be NULL */
	/* Loop-driven operations (websocket class) leave `run` NULL and set `start`: it
	 * runs on the loop thread from operation_start() and the owner ends the operation
	 * with operation_finish(). `connect` (loop thread) serves
	 * /1.0/operations/{id}/websocket while the operation runs: it answers `conn` itself
	 * (upgrade or error). `cancel` runs on any thread with the registry locked, while
	 * the operation runs, on DELETE and at shutdown: it may only signal (uv_async_send). */
	int (*start)(struct operation *op, void *data);
	void (*connect)(struct operation *op, void *data, const char *secret,
			struct berth_http_conn *conn);
	/* Loop thread, berth's own stdio.socket: `fds` given to the operation by the holder
	 * of `secret` (whatever it takes is set to -1, the caller closes the rest). 0, or
	 * -errno with `why` set. */
	int (*attach_fds)(struct operation *op, void *data, const char *secret, int fds[3],
			  const char **why);
	void (*cancel)(void *data);
};

int operation_registry_new(uv_loop_t *loop, struct events_hub *events,
			   struct operation_registry **ret);
/* Loop thread, at shutdown: wakes every waiter. Running work finishes on its own;
 * free the registry after the loop has drained. */
void operation_registry_shutdown(struct operation_registry *reg);
void operation_registry_free(struct operation_registry *reg);

/* Register a new operation (status Running). Returns a reference in *ret. On
 * failure spec->data is freed with spec->free_data and spec->resources released. */
int operation_create(struct operation_registry *reg, const struct operation_spec *spec,
		     struct operation **ret);
/* Loop thread: queue the run function. */
int operation_start(struct operation *op);
struct operation *operation_ref(struct operation *op);
void operation_unref(struct operation *op);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct operation *, operation_unref)

const char *operation_id(const struct operation *op);
/* The Operation object (new reference). */
json_t *operation_render(struct operation *op);
bool operation_done(struct operation *op);
bool operation_cancelled(struct operation *op);
/* The same as a flag that long work below the daemon (storage, images) can look at
 * without knowing operations: true once a cancel was accepted. Lives as long as `op`;
 * NULL (never cancelled) without an operation. */
const atomic_bool *operation_cancel_flag(struct operation *op);
/* Loop thread: end a loop-driven operation: Success when r is 0, else Failure with
 * err's message. Idempotent. */
void operation_finish(struct operation *op, int r, struct berth_error *err);
/* Loop thread: hand a websocket request to a running loop-driven operation, which
 * answers `conn`. -ENOTSUP (no websockets) or -ESRCH (finished): nothing was answered. */
int operation_connect(struct operation *op, const char *secret, struct berth_http_conn *conn);
/* Loop thread: the spec's attach_fds, -ENOTSUP or -ESRCH (finished) with `why` set. */
int operation_attach_fds(struct operation *op, const char *secret, int fds[3], const char **why);

/* Replace the metadata (stolen) and emit an update event. */
void operation_set_metadata(struct operation *op, json_t *metadata);
/* Set one key of the metadata (`value` stolen), keeping the others (a migration's
 * secrets stay beside its progress), and emit an update event. */
void operation_set_metadata_key(struct operation *op, const char *key, json_t *value);

/* -ENOENT when unknown. Returns a reference. `project` NULL: any project. */
int operation_find(struct operation_registry *reg, const char *id, struct operation **ret);
/* Ask a running operation to stop. -EPERM ("This operation can't be cancelled")
 * when it may not be; 0 when it already finished or is already cancelling. */
int operation_cancel(struct operation *op, struct berth_error *err);
/* {"running":[...],"success":[...],...}: URLs (recursion 0) or objects. `project`
 * NULL: all projects. */
json_t *operation_registry_list(struct operation_registry *reg, const char *project, bool objects);

/* Loop thread: call `cb` once, when `op` finishes or after `timeout_ms` (<0: no
 * limit), whichever comes first, or at shutdown. */
typedef void (*operation_wait_fn)(struct operation *op, void *data);
int operation_wait(struct operation *op, int64_t timeout_ms, operation_wait_fn cb, void *data);
