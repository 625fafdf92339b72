/* daemon/image_secret.c: the live image secrets, in one list under one lock (see
 * image_secret.h).
 *
 * Lock order: the registry's lock may be held when `lock` is taken (cancel, free_data),
 * never the other way round. An operation here is finished only by secrets_process() on
 * the loop thread, so one that it finds not yet finished is still listed by the registry
 * (which prunes finished operations only) and needs no reference of its own. */
#define LOG_CATEGORY "image-secret"
#include "daemon/image_secret.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/log.h"
#include "lib/macros.h"
#include "lib/util.h"

#define SECRET_BYTES 32
#define MAX_BATCH 64

struct image_secret {
	struct image_secret *prev, *next;
	char *project;	   /* owned */
	char *fingerprint; /* owned */
	char secret[SECRET_BYTES * 2 + 1];
	struct operation *op; /* borrowed (it owns us), set when it starts */
	time_t expires_at;    /* 0: never */
	bool used, cancelled;
	bool finished; /* its operation was (or is being) finished */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct image_secret *secrets;
static uv_async_t async;
static uv_timer_t timer;
static bool open_; /* async and timer usable; under lock */

static time_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static bool expired(const struct image_secret *s, time_t now)
{
	return s->expires_at && now >= s->expires_at;
}

/* Caller holds lock: wake the loop. */
static void wake_locked(void)
{
	if (open_)
		uv_async_send(&async);
}

static void on_timer(uv_timer_t *t);

/* Loop thread: finish the operations of used, cancelled and expired secrets, and arm the
 * timer for the nearest expiry. */
static void secrets_process(void)
{
	struct operation *done[MAX_BATCH];
	bool used[MAX_BATCH];
	time_t next = 0, now = now_s();
	size_t n = 0;
	bool more = false;

	pthread_mutex_lock(&lock);
	for (struct image_secret *s = secrets; s; s = s->next) {
		if (!s->op || s->finished)
			continue;
		if (!s->used && expired(s, now))
			s->cancelled = true;
		if (s->used || s->cancelled) {
			if (n == MAX_BATCH) {
				more = true;
				break;
			}
			s->finished = true;
			used[n] = s->used;
			done[n++] = s->op;
		} else if (s->expires_at && (!next || s->expires_at < next)) {
			next = s->expires_at;
		}
	}
	if (more)
		wake_locked(); /* the rest next time round */
	if (next && open_)
		uv_timer_start(&timer, on_timer, (uint64_t)(next - now) * 1000 + 100, 0);
	pthread_mutex_unlock(&lock);
	/* Not finished until now, so still listed: no reference needed (see above). */
	for (size_t i = 0; i < n; i++) {
		struct berth_error err = {0};

		if (used[i]) {
			operation_finish(done[i], 0, NULL);
			continue;
		}
		berth_error_set(&err, -ECANCELED, BERTH_ERR_BAD_REQUEST,
				"The image secret was withdrawn or expired");
		operation_finish(done[i], -ECANCELED, &err);
		berth_error_release(&err);
	}
}

static void on_async(uv_async_t *a)
{
	(void)a;
	secrets_process();
}

static void on_timer(uv_timer_t *t)
{
	(void)t;
	secrets_process();
}

int image_secret_init(uv_loop_t *loop)
{
	int r = uv_async_init(loop, &async, on_async);

	if (r < 0)
		return r;
	uv_timer_init(loop, &timer);
	pthread_mutex_lock(&lock);
	open_ = true;
	pthread_mutex_unlock(&lock);
	return 0;
}

void image_secret_shutdown(void)
{
	bool was_open;

	pthread_mutex_lock(&lock);
	for (struct image_secret *s = secrets; s; s = s->next)
		s->cancelled = true;
	was_open = open_;
	open_ = false;
	pthread_mutex_unlock(&lock);
	secrets_process();
	if (!was_open)
		return;
	uv_close((uv_handle_t *)&async, NULL);
	uv_close((uv_handle_t *)&timer, NULL);
}

/* Loop thread, from operation_start(). */
static int secret_start(struct operation *op, void *data)
{
	struct image_secret *s = data;

	pthread_mutex_lock(&lock);
	s->op = op;
	if (!open_)
		s->cancelled = true; /* shutting down */
	pthread_mutex_unlock(&lock);
	secrets_process();
	return 0;
}

/* Any thread, the registry locked (DELETE, shutdown): only mark it and wake the loop. */
static void secret_cancel(void *data)
{
	struct image_secret *s = data;

	pthread_mutex_lock(&lock);
	s->cancelled = true;
	wake_locked();
	pthread_mutex_unlock(&lock);
}

static void secret_free(void *p)
{
	struct image_secret *s = p;

	pthread_mutex_lock(&lock);
	if (s->prev)
		s->prev->next = s->next;
	else if (secrets == s)
		secrets = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&lock);
	free(s->project);
	free(s->fingerprint);
	free(s);
}

static bool live(const struct image_secret *s, time_t now)
{
	return !s->used && !s->cancelled && !s->finished && !expired(s, now);
}

int image_secret_new(const char *project, const char *fingerprint, uint64_t expiry_s,
		     struct operation_spec *spec)
{
	unsigned char raw[SECRET_BYTES];
	struct image_secret *s;
	time_t now = now_s();
	size_t n = 0;
	int r = 0;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->project = strdup(project);
	s->fingerprint = strdup(fingerprint);
	if (!s->project || !s->fingerprint) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(s->secret + 2 * i, 3, "%02x", raw[i]);
	if (expiry_s > 0)
		s->expires_at = now + (time_t)(expiry_s < INT32_MAX ? expiry_s : INT32_MAX);
	pthread_mutex_lock(&lock);
	for (struct image_secret *o = secrets; o; o = o->next)
		if (live(o, now) && streq(o->project, project))
			n++;
	if (!open_)
		r = -ESHUTDOWN;
	else if (n >= IMAGE_SECRET_MAX)
		r = -EAGAIN;
	if (r == 0) {
		s->next = secrets;
		if (secrets)
			secrets->prev = s;
		secrets = s;
	}
	pthread_mutex_unlock(&lock);
	if (r < 0)
		goto fail;
	spec->class = "token";
	spec->may_cancel = true;
	spec->start = secret_start;
	spec->cancel = secret_cancel;
	spec->data = s;
	spec->free_data = secret_free;
	return 0;
fail:
	free(s->project);
	free(s->fingerprint);
	free(s);
	return r;
}

const char *image_secret_value(const struct image_secret *s)
{
	return s->secret;
}

static bool same_secret(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	unsigned char diff = m != n;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i < m ? i : 0]);
	return diff == 0;
}

bool image_secret_check(const char *project, const char *fingerprint, const char *secret, bool use)
{
	time_t now = now_s();
	bool found = false;

	if (!secret || !*secret)
		return false;
	pthread_mutex_lock(&lock);
	for (struct image_secret *s = secrets; s && !found; s = s->next) {
		if (!live(s, now) || !streq(s->project, project) ||
		    !streq(s->fingerprint, fingerprint) || !same_secret(s->secret, secret))
			continue;
		found = true;
		if (use) {
			s->used = true;
			wake_locked();
		}
	}
	pthread_mutex_unlock(&lock);
	return found;
}
