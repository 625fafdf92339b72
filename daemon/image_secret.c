/* daemon/image_secret.c: the live image secrets, in one list under one lock; each one's
 * operation polls for its use or its cancellation (image_secret.h). */
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
/* How often a waiting secret looks at its operation's cancel flag. */
#define POLL_MS 200

struct image_secret {
	struct image_secret *prev, *next;
	char *project;	   /* owned */
	char *fingerprint; /* owned */
	char secret[SECRET_BYTES * 2 + 1];
	bool live; /* its operation runs and it was not used */
	bool used;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static struct image_secret *secrets;

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

static int secret_run(struct operation *op, void *data, struct berth_error *err)
{
	struct image_secret *s = data;
	bool used;

	pthread_mutex_lock(&lock);
	while (!s->used && !operation_cancelled(op)) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += POLL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&changed, &lock, &until);
	}
	s->live = false;
	used = s->used;
	pthread_mutex_unlock(&lock);
	if (!used)
		return berth_error_set(err, -ECANCELED, BERTH_ERR_BAD_REQUEST,
				       "The image secret was withdrawn");
	return 0;
}

int image_secret_new(const char *project, const char *fingerprint, struct operation_spec *spec)
{
	unsigned char raw[SECRET_BYTES];
	struct image_secret *s;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->project = strdup(project);
	s->fingerprint = strdup(fingerprint);
	if (!s->project || !s->fingerprint) {
		free(s->project);
		free(s->fingerprint);
		free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(s->secret + 2 * i, 3, "%02x", raw[i]);
	s->live = true; /* from the answer on, not from when a worker takes the operation */
	pthread_mutex_lock(&lock);
	s->next = secrets;
	if (secrets)
		secrets->prev = s;
	secrets = s;
	pthread_mutex_unlock(&lock);
	spec->class = "token";
	spec->may_cancel = true;
	spec->run = secret_run;
	spec->data = s;
	spec->free_data = secret_free;
	return 0;
}

const char *image_secret_value(const struct image_secret *s)
{
	return s->secret;
}

static bool same_secret(const char *a, const char *b)
{
	size_t n = strlen(a);
	unsigned char diff = strlen(b) != n;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i < strlen(b) ? i : 0]);
	return diff == 0;
}

bool image_secret_check(const char *project, const char *fingerprint, const char *secret, bool use)
{
	bool found = false;

	if (!secret || !*secret)
		return false;
	pthread_mutex_lock(&lock);
	for (struct image_secret *s = secrets; s && !found; s = s->next) {
		if (!s->live || s->used || !streq(s->project, project) ||
		    !streq(s->fingerprint, fingerprint) || !same_secret(s->secret, secret))
			continue;
		found = true;
		if (use) {
			s->used = true;
			pthread_cond_broadcast(&changed);
		}
	}
	pthread_mutex_unlock(&lock);
	return found;
}
