/* daemon/worker.c: bounded worker pools (see worker.h). */
#define LOG_CATEGORY "worker"
#include "daemon/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"

struct worker_pool {
	uv_loop_t *loop;
	uv_async_t async; /* a job finished: run the done callbacks */
	char name[16];
	unsigned max_threads;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a job was queued, or the pool closes */
	pthread_cond_t gone; /* a thread exited */
	/* Under lock: */
	struct worker_job *queue, **queue_tail;
	struct worker_job *finished; /* newest first */
	unsigned threads, idle, busy, queued, peak;
	bool closing;
	/* Loop thread: submitted jobs whose done has not run yet. */
	unsigned outstanding;
};

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Caller holds the lock. The next job, or NULL once the thread has waited WORKER_IDLE_MS
 * for one in vain or the pool closes. */
static struct worker_job *next_job_locked(struct worker_pool *pool)
{
	struct worker_job *job;
	struct timespec deadline;

	deadline_in(&deadline, WORKER_IDLE_MS);
	while (!pool->queue && !pool->closing) {
		int r;

		pool->idle++;
		r = pthread_cond_timedwait(&pool->wake, &pool->lock, &deadline);
		pool->idle--;
		if (r == ETIMEDOUT && !pool->queue)
			return NULL;
	}
	job = pool->queue;
	if (!job)
		return NULL;
	pool->queue = job->next;
	if (!pool->queue)
		pool->queue_tail = &pool->queue;
	pool->queued--;
	return job;
}

static void *thread_main(void *data)
{
	struct worker_pool *pool = data;
	struct worker_job *job;

	pthread_setname_np(pthread_self(), pool->name);
	pthread_mutex_lock(&pool->lock);
	while ((job = next_job_locked(pool))) {
		pool->busy++;
		pthread_mutex_unlock(&pool->lock);
		job->work(job);
		pthread_mutex_lock(&pool->lock);
		pool->busy--;
		job->next = pool->finished;
		pool->finished = job;
		uv_async_send(&pool->async);
	}
	/* No longer counted as a thread that will take jobs, under the lock that saw the
	 * queue empty: a job submitted from now on gets a thread of its own. */
	pool->threads--;
	pthread_cond_broadcast(&pool->gone);
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Loop thread: run the done callbacks of finished jobs, oldest first. */
static void async_cb(uv_async_t *a)
{
	struct worker_pool *pool = a->data;
	struct worker_job *list, *ordered = NULL;

	pthread_mutex_lock(&pool->lock);
	list = pool->finished;
	pool->finished = NULL;
	pthread_mutex_unlock(&pool->lock);
	while (list) {
		struct worker_job *next = list->next;

		list->next = ordered;
		ordered = list;
		list = next;
	}
	while (ordered) {
		struct worker_job *job = ordered;

		ordered = job->next;
		pool->outstanding--;
		job->done(job); /* may free the job, or submit more */
	}
	if (pool->outstanding == 0)
		uv_unref((uv_handle_t *)&pool->async);
}

int worker_pool_new(uv_loop_t *loop, const char *name, unsigned max_threads,
		    struct worker_pool **ret)
{
	struct worker_pool *pool;
	pthread_condattr_t attr;
	int r;

	if (max_threads == 0)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->loop = loop;
	snprintf(pool->name, sizeof(pool->name), "%s", name);
	pool->max_threads = max_threads;
	pool->queue_tail = &pool->queue;
	r = uv_async_init(loop, &pool->async, async_cb);
	if (r < 0) {
		free(pool);
		return r;
	}
	pool->async.data = pool;
	uv_unref((uv_handle_t *)&pool->async);
	pthread_mutex_init(&pool->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pool->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&pool->gone, NULL);
	*ret = pool;
	return 0;
}

/* Caller holds the lock: one more thread when the queued jobs outnumber the idle threads
 * and the cap allows. */
static int grow_locked(struct worker_pool *pool)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (pool->queued <= pool->idle || pool->threads >= pool->max_threads)
		return 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, thread_main, pool);
	pthread_attr_destroy(&attr);
	if (r != 0)
		return -r;
	pool->threads++;
	if (pool->threads > pool->peak)
		pool->peak = pool->threads;
	return 0;
}

int worker_submit(struct worker_pool *pool, struct worker_job *job)
{
	int r;

	pthread_mutex_lock(&pool->lock);
	if (pool->closing) {
		pthread_mutex_unlock(&pool->lock);
		return -ESHUTDOWN;
	}
	job->next = NULL;
	*pool->queue_tail = job;
	pool->queue_tail = &job->next;
	pool->queued++;
	r = grow_locked(pool);
	if (r < 0 && pool->threads == 0) {
		/* Nobody would ever run it: take it back. */
		pool->queue = NULL;
		pool->queue_tail = &pool->queue;
		pool->queued = 0;
		pthread_mutex_unlock(&pool->lock);
		log_warn("Pool %s cannot start a thread: %s", pool->name, strerror(-r));
		return r;
	}
	if (r < 0)
		log_warn("Pool %s cannot start another thread (%u run): %s", pool->name,
			 pool->threads, strerror(-r));
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	if (pool->outstanding++ == 0)
		uv_ref((uv_handle_t *)&pool->async);
	return 0;
}

void worker_pool_stats(struct worker_pool *pool, struct worker_stats *ret)
{
	pthread_mutex_lock(&pool->lock);
	ret->threads = pool->threads;
	ret->busy = pool->busy;
	ret->queued = pool->queued;
	ret->peak_threads = pool->peak;
	pthread_mutex_unlock(&pool->lock);
}

static void pool_closed(uv_handle_t *h)
{
	struct worker_pool *pool = h->data;

	pthread_cond_destroy(&pool->wake);
	pthread_cond_destroy(&pool->gone);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

void worker_pool_free(struct worker_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->closing = true;
	pthread_cond_broadcast(&pool->wake);
	while (pool->threads > 0)
		pthread_cond_wait(&pool->gone, &pool->lock);
	pthread_mutex_unlock(&pool->lock);
	uv_close((uv_handle_t *)&pool->async, pool_closed);
	uv_run(pool->loop, UV_RUN_NOWAIT);
}
