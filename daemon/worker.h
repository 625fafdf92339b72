/* daemon/worker.h: bounded pools of worker threads, each with its own queue.
 *
 * berthd runs blocking work off the loop thread on pools of its own instead of libuv's
 * single shared pool, so that one kind of work cannot hold back another: quick requests
 * have a small pool, operations (stops that wait for a container to shut down, unpacks,
 * copies) a larger one. A pool starts a thread for each queued job up to `max_threads`;
 * beyond that, jobs wait in submission order. A thread with nothing to do for
 * WORKER_IDLE_MS exits, so an idle daemon holds no workers.
 *
 * A job's `work` runs on a worker thread; its `done` then runs on the loop thread (through
 * a uv_async_t), where it may free the job. Submission belongs to the loop thread. While
 * jobs are outstanding the pool keeps the loop alive; when none are, it does not, so
 * uv_run() returns at shutdown once the last job is done. */
#pragma once

#include <stdbool.h>
#include <uv.h>

#define WORKER_IDLE_MS 5000

struct worker_job {
	void (*work)(struct worker_job *job); /* worker thread */
	void (*done)(struct worker_job *job); /* loop thread, after work */
	struct worker_job *next;	      /* the pool's */
};

struct worker_pool;

struct worker_stats {
	unsigned threads; /* alive */
	unsigned busy;	  /* running a job */
	unsigned queued;  /* waiting for a thread */
	unsigned peak_threads;
};

/* `name` is for logs and thread names (up to 15 characters show). Workers hold no
 * per-thread state: whatever a job needs (the database handle) comes with the job. */
int worker_pool_new(uv_loop_t *loop, const char *name, unsigned max_threads,
		    struct worker_pool **ret);
/* Loop thread: queue `job` (its work and done set). -ESHUTDOWN once the pool is being
 * freed; a failure to start a thread is not one while another thread of the pool lives. */
int worker_submit(struct worker_pool *pool, struct worker_job *job);
void worker_pool_stats(struct worker_pool *pool, struct worker_stats *ret);
/* After uv_run() returned (nothing outstanding): close the pool's handle, wait for its
 * threads to exit and free it. */
void worker_pool_free(struct worker_pool *pool);
