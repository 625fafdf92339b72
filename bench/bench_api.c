/* bench/bench_api.c: an in-process API client for the benchmarks.
 *
 * Measures request latency over one keep-alive connection (lib/client.h), the
 * way a program linking a client library would see it, without a CLI's start-up
 * cost. Works against berthd and LXD alike: both speak the 1.0 API on a unix
 * socket.
 *
 *   bench_api latency [-n REQUESTS] [-w WARMUP] SOCKET PATH
 *	GET PATH REQUESTS times after WARMUP unmeasured ones; prints
 *	"n=N p50=X p90=X p99=X max=X" in milliseconds. Any status but 200 fails.
 *   bench_api create [-t THREADS] [-p PREFIX] SOCKET COUNT
 *	creates COUNT empty instances PREFIX0000.. (source type "none"), each
 *	waited for, THREADS connections in parallel; prints "created=N seconds=S".
 *   bench_api op [-n REQUESTS] [-w WARMUP] SOCKET METHOD PATH [JSON]
 *	sends METHOD PATH with the JSON body and, when the answer is an operation, waits
 *	for it; times each round trip like `latency`. "{i}" in PATH and JSON becomes the
 *	run's number (0, 1, ...; warm-up runs first), for names that must be new each
 *	time. A failed request or operation fails the command. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/client.h"
#include "lib/util.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted `v` (n > 0), in milliseconds. */
static double percentile_ms(const uint64_t *v, size_t n, double pct)
{
	size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e6;
}

static int get_once(struct berth_client *c, const char *path, uint64_t *ret_ns)
{
	struct berth_error err = {0};
	struct berth_response resp = {0};
	uint64_t start = berth_monotonic_ns();
	int r;

	r = berth_client_request(c, "GET", path, NULL, NULL, &resp, &err);
	if (r < 0) {
		fprintf(stderr, "bench_api: GET %s: %s\n", path, berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	if (ret_ns)
		*ret_ns = berth_monotonic_ns() - start;
	if (resp.status != 200) {
		fprintf(stderr, "bench_api: GET %s: HTTP %d: %s\n", path, resp.status,
			resp.body ? resp.body : "");
		berth_response_release(&resp);
		return -EPROTO;
	}
	berth_response_release(&resp);
	return 0;
}

static int cmd_latency(int argc, char **argv)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	_cleanup_free_ uint64_t *samples = NULL;
	struct berth_error err = {0};
	long n = 1000, warmup = 50;
	int opt, r;

	while ((opt = getopt(argc, argv, "n:w:")) != -1) {
		switch (opt) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 'w':
			warmup = strtol(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2 || n < 1 || warmup < 0) {
		fprintf(stderr, "usage: bench_api latency [-n REQUESTS] [-w WARMUP] SOCKET PATH\n");
		return 2;
	}
	const char *sock = argv[optind], *path = argv[optind + 1];

	r = berth_client_new(sock, &c, &err);
	if (r < 0) {
		fprintf(stderr, "bench_api: %s\n", berth_error_msg(&err, r));
		berth_error_release(&err);
		return 1;
	}
	samples = calloc((size_t)n, sizeof(*samples));
	if (!samples)
		return 1;
	for (long i = 0; i < warmup; i++)
		if (get_once(c, path, NULL) < 0)
			return 1;
	for (long i = 0; i < n; i++)
		if (get_once(c, path, &samples[i]) < 0)
			return 1;
	qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
	printf("n=%ld p50=%.3f p90=%.3f p99=%.3f max=%.3f\n", n,
	       percentile_ms(samples, (size_t)n, 50), percentile_ms(samples, (size_t)n, 90),
	       percentile_ms(samples, (size_t)n, 99), (double)samples[n - 1] / 1e6);
	return 0;
}

struct create_job {
	const char *sock;
	const char *prefix;
	long count;
	atomic_long next;   /* next index to create */
	atomic_long failed; /* how many creations failed */
};

static int create_one(struct berth_client *c, const char *prefix, long i)
{
	_cleanup_free_ char *name = berth_strdup_printf("%s%04ld", prefix, i);
	json_auto_t *body = NULL;
	json_auto_t *op = NULL;
	struct berth_error err = {0};
	int r;

	if (!name)
		return -ENOMEM;
	body = json_pack("{s:s, s:s, s:{s:s}}", "name", name, "type", "container", "source", "type",
			 "none");
	if (!body)
		return -ENOMEM;
	r = berth_client_query(c, "POST", "/1.0/instances", body, &op, NULL, &err);
	if (r < 0) {
		fprintf(stderr, "bench_api: creating %s: %s\n", name, berth_error_msg(&err, r));
		berth_error_release(&err);
	}
	return r;
}

static void *create_thread(void *arg)
{
	struct create_job *job = arg;
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	struct berth_error err = {0};
	long i;
	int r;

	r = berth_client_new(job->sock, &c, &err);
	if (r < 0) {
		fprintf(stderr, "bench_api: %s\n", berth_error_msg(&err, r));
		berth_error_release(&err);
		atomic_fetch_add(&job->failed, 1);
		return NULL;
	}
	while ((i = atomic_fetch_add(&job->next, 1)) < job->count)
		if (create_one(c, job->prefix, i) < 0)
			atomic_fetch_add(&job->failed, 1);
	return NULL;
}

static int cmd_create(int argc, char **argv)
{
	struct create_job job = {.prefix = "b"};
	pthread_t threads[64];
	long n_threads = 4;
	int opt;

	while ((opt = getopt(argc, argv, "t:p:")) != -1) {
		switch (opt) {
		case 't':
			n_threads = strtol(optarg, NULL, 10);
			break;
		case 'p':
			job.prefix = optarg;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2 || n_threads < 1 || n_threads > (long)ARRAY_SIZE(threads)) {
		fprintf(stderr,
			"usage: bench_api create [-t THREADS(1-64)] [-p PREFIX] SOCKET COUNT\n");
		return 2;
	}
	job.sock = argv[optind];
	job.count = strtol(argv[optind + 1], NULL, 10);
	atomic_init(&job.next, 0);
	atomic_init(&job.failed, 0);

	uint64_t start = berth_monotonic_ns();
	long started = 0;
	for (; started < n_threads; started++)
		if (pthread_create(&threads[started], NULL, create_thread, &job) != 0)
			break;
	for (long i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (started == 0)
		return 1;
	printf("created=%ld seconds=%.2f\n", job.count - atomic_load(&job.failed),
	       (double)(berth_monotonic_ns() - start) / 1e9);
	return atomic_load(&job.failed) ? 1 : 0;
}

/* `tmpl` with every "{i}" replaced by `i`, in a new string (NULL: out of memory). */
static char *expand_index(const char *tmpl, long i)
{
	char num[24];
	size_t nlen = (size_t)snprintf(num, sizeof(num), "%ld", i), len = 0;
	char *out = malloc(strlen(tmpl) * (nlen > 3 ? nlen : 3) / 3 + 1);

	if (!out)
		return NULL;
	for (const char *p = tmpl; *p;) {
		if (berth_startswith(p, "{i}")) {
			memcpy(out + len, num, nlen);
			len += nlen;
			p += 3;
		} else {
			out[len++] = *p++;
		}
	}
	out[len] = '\0';
	return out;
}

/* One request (and its operation, if any), run number `i`; its duration in *ret_ns. */
static int op_once(struct berth_client *c, const char *method, const char *path_tmpl,
		   const char *body_tmpl, long i, uint64_t *ret_ns)
{
	_cleanup_free_ char *path = expand_index(path_tmpl, i);
	_cleanup_free_ char *body_s = body_tmpl ? expand_index(body_tmpl, i) : NULL;
	json_auto_t *body = NULL;
	json_auto_t *meta = NULL;
	struct berth_error err = {0};
	uint64_t start;
	int r;

	if (!path || (body_tmpl && !body_s))
		return -ENOMEM;
	if (body_s) {
		json_error_t jerr;

		body = json_loads(body_s, 0, &jerr);
		if (!body) {
			fprintf(stderr, "bench_api: bad JSON body: %s\n", jerr.text);
			return -EINVAL;
		}
	}
	start = berth_monotonic_ns();
	r = berth_client_query(c, method, path, body, &meta, NULL, &err);
	if (r < 0) {
		fprintf(stderr, "bench_api: %s %s: %s\n", method, path, berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	if (ret_ns)
		*ret_ns = berth_monotonic_ns() - start;
	return 0;
}

static int cmd_op(int argc, char **argv)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	_cleanup_free_ uint64_t *samples = NULL;
	struct berth_error err = {0};
	long n = 20, warmup = 2, i = 0;
	int opt, r;

	while ((opt = getopt(argc, argv, "n:w:")) != -1) {
		switch (opt) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 'w':
			warmup = strtol(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind < 3 || argc - optind > 4 || n < 1 || warmup < 0) {
		fprintf(stderr,
			"usage: bench_api op [-n REQUESTS] [-w WARMUP] SOCKET METHOD PATH [JSON]\n");
		return 2;
	}
	const char *sock = argv[optind], *method = argv[optind + 1], *path = argv[optind + 2];
	const char *body = argc - optind == 4 ? argv[optind + 3] : NULL;

	r = berth_client_new(sock, &c, &err);
	if (r < 0) {
		fprintf(stderr, "bench_api: %s\n", berth_error_msg(&err, r));
		berth_error_release(&err);
		return 1;
	}
	samples = calloc((size_t)n, sizeof(*samples));
	if (!samples)
		return 1;
	for (; i < warmup; i++)
		if (op_once(c, method, path, body, i, NULL) < 0)
			return 1;
	for (long k = 0; k < n; k++, i++)
		if (op_once(c, method, path, body, i, &samples[k]) < 0)
			return 1;
	qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
	printf("n=%ld p50=%.3f p90=%.3f p99=%.3f max=%.3f\n", n,
	       percentile_ms(samples, (size_t)n, 50), percentile_ms(samples, (size_t)n, 90),
	       percentile_ms(samples, (size_t)n, 99), (double)samples[n - 1] / 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && streq(argv[1], "latency"))
		return cmd_latency(argc - 1, argv + 1);
	if (argc >= 2 && streq(argv[1], "create"))
		return cmd_create(argc - 1, argv + 1);
	if (argc >= 2 && streq(argv[1], "op"))
		return cmd_op(argc - 1, argv + 1);
	fprintf(stderr,
		"usage: bench_api latency [-n REQUESTS] [-w WARMUP] SOCKET PATH\n"
		"       bench_api create [-t THREADS] [-p PREFIX] SOCKET COUNT\n"
		"       bench_api op [-n REQUESTS] [-w WARMUP] SOCKET METHOD PATH [JSON]\n");
	return 2;
}
