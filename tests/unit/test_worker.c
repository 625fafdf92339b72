/* tests/unit/test_worker.c: worker pools on a real loop: jobs run off the loop thread
 * and finish on it in order, a pool never runs more threads than its cap and queues the
 * rest, a busy pool does not hold back another one, an idle pool lets uv_run() return,
 * and idle threads exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "daemon/worker.h"
#include "lib/util.h"

struct fixture {
	uv_loop_t loop;
	pthread_t loop_thread;
};

struct job {
	struct worker_job job;
	struct fixture *f;
	atomic_bool *gate; /* the work blocks until it is true (NULL: no wait) */
	pthread_t ran_on;
	int *order; /* done appends `id` here */
	int *n_done;
	int id;
};

static atomic_int running, max_running;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(uv_loop_init(&f->loop), 0);
	f->loop_thread = pthread_self();
	atomic_store(&running, 0);
	atomic_store(&max_running, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static void work(struct worker_job *wj)
{
	struct job *j = container_of(wj, struct job, job);
	int now = atomic_fetch_add(&running, 1) + 1;
	int seen = atomic_load(&max_running);

	while (now > seen && !atomic_compare_exchange_weak(&max_running, &seen, now))
		;
	j->ran_on = pthread_self();
	while (j->gate && !atomic_load(j->gate))
		usleep(1000);
	atomic_fetch_sub(&running, 1);
}

static void done(struct worker_job *wj)
{
	struct job *j = container_of(wj, struct job, job);

	assert_true(pthread_equal(pthread_self(), j->f->loop_thread));
	assert_false(pthread_equal(j->ran_on, j->f->loop_thread));
	j->order[(*j->n_done)++] = j->id;
}

static void submit(struct fixture *f, struct worker_pool *pool, struct job *j, int id,
		   atomic_bool *gate, int *order, int *n_done)
{
	*j = (struct job){.job = {.work = work, .done = done},
			  .f = f,
			  .gate = gate,
			  .order = order,
			  .n_done = n_done,
			  .id = id};
	assert_int_equal(worker_submit(pool, &j->job), 0);
}

static void test_order_and_loop_thread(void **state)
{
	struct fixture *f = *state;
	struct worker_pool *pool = NULL;
	struct worker_stats st;
	struct job jobs[3];
	int order[3] = {0}, n = 0;

	assert_int_equal(worker_pool_new(&f->loop, "t-order", 1, &pool), 0);
	for (int i = 0; i < 3; i++)
		submit(f, pool, &jobs[i], i + 1, NULL, order, &n);
	uv_run(&f->loop, UV_RUN_DEFAULT); /* returns: nothing is left outstanding */
	assert_int_equal(n, 3);
	/* One thread: the jobs ran, and finished, in the order they came. */
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 3);
	worker_pool_stats(pool, &st);
	assert_int_equal(st.peak_threads, 1);
	worker_pool_free(pool);
}

static void test_cap_and_queue(void **state)
{
	struct fixture *f = *state;
	struct worker_pool *pool = NULL;
	struct worker_stats st;
	atomic_bool gate = false;
	struct job jobs[10];
	int order[10], n = 0;

	assert_int_equal(worker_pool_new(&f->loop, "t-cap", 4, &pool), 0);
	for (int i = 0; i < 10; i++)
		submit(f, pool, &jobs[i], i, &gate, order, &n);
	while (atomic_load(&running) < 4)
		usleep(1000);
	usleep(20000);
	worker_pool_stats(pool, &st);
	assert_int_equal(st.threads, 4);
	assert_int_equal(st.busy, 4);
	assert_int_equal(st.queued, 6);
	assert_int_equal(atomic_load(&running), 4);
	atomic_store(&gate, true);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(n, 10);
	assert_int_equal(atomic_load(&max_running), 4);
	worker_pool_stats(pool, &st);
	assert_int_equal(st.peak_threads, 4);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.busy, 0);
	worker_pool_free(pool);
}

/* The point of separate pools: a pool whose every thread is stuck does not delay a job
 * of another pool. */
static void test_pools_are_independent(void **state)
{
	struct fixture *f = *state;
	struct worker_pool *slow = NULL, *quick = NULL;
	atomic_bool gate = false;
	struct job stuck[2], fast;
	int order[3], n = 0;

	assert_int_equal(worker_pool_new(&f->loop, "t-slow", 2, &slow), 0);
	assert_int_equal(worker_pool_new(&f->loop, "t-quick", 1, &quick), 0);
	submit(f, slow, &stuck[0], 1, &gate, order, &n);
	submit(f, slow, &stuck[1], 2, &gate, order, &n);
	submit(f, quick, &fast, 3, NULL, order, &n);
	while (n == 0)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(n, 1);
	assert_int_equal(order[0], 3);
	atomic_store(&gate, true);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(n, 3);
	worker_pool_free(slow);
	worker_pool_free(quick);
}

/* A done callback may queue the next job (operations chain that way). */
static struct worker_pool *chain_pool;
static int chain_left;

static void chain_done(struct worker_job *wj)
{
	struct job *j = container_of(wj, struct job, job);

	done(wj);
	if (--chain_left > 0) {
		submit(j->f, chain_pool, j, j->id + 1, NULL, j->order, j->n_done);
		j->job.done = chain_done; /* read on this thread only, when it finishes */
	}
}

static void test_submit_from_done(void **state)
{
	struct fixture *f = *state;
	struct job j;
	int order[5], n = 0;

	assert_int_equal(worker_pool_new(&f->loop, "t-chain", 2, &chain_pool), 0);
	chain_left = 5;
	submit(f, chain_pool, &j, 1, NULL, order, &n);
	j.job.done = chain_done;
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(order[i], i + 1);
	worker_pool_free(chain_pool);
}

/* Idle threads go (an idle daemon holds none); a job after that gets a new one. */
static void test_idle_threads_exit(void **state)
{
	struct fixture *f = *state;
	struct worker_pool *pool = NULL;
	struct worker_stats st;
	struct job j;
	int order[2], n = 0;

	assert_int_equal(worker_pool_new(&f->loop, "t-idle", 1, &pool), 0);
	submit(f, pool, &j, 1, NULL, order, &n);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < WORKER_IDLE_MS / 10 + 200; i++) {
		worker_pool_stats(pool, &st);
		if (st.threads == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(st.threads, 0);
	/* A job after that gets a thread of its own. */
	submit(f, pool, &j, 2, NULL, order, &n);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(n, 2);
	assert_int_equal(order[1], 2);
	worker_pool_stats(pool, &st);
	assert_int_equal(st.threads, 1);
	worker_pool_free(pool);
}

static void test_bad_cap(void **state)
{
	struct fixture *f = *state;
	struct worker_pool *pool = NULL;

	assert_int_equal(worker_pool_new(&f->loop, "t-bad", 0, &pool), -EINVAL);
	assert_null(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_and_loop_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_and_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pools_are_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submit_from_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_threads_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_cap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
