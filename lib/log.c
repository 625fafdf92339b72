/* lib/log.c: leveled logging (see log.h). */
#include "lib/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum berth_log_level log_level = BERTH_LOG_INFO;
static berth_log_hook_fn log_hook;
static void *log_hook_data;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[BERTH_LOG_MAX] = {
	[BERTH_LOG_ERROR] = "error",
	[BERTH_LOG_WARN] = "warn",
	[BERTH_LOG_INFO] = "info",
	[BERTH_LOG_DEBUG] = "debug",
};

void berth_log_set_level(enum berth_log_level level)
{
	log_level = level;
}

enum berth_log_level berth_log_get_level(void)
{
	return log_level;
}

void berth_log_set_hook(berth_log_hook_fn hook, void *data)
{
	pthread_mutex_lock(&log_lock);
	log_hook = hook;
	log_hook_data = data;
	pthread_mutex_unlock(&log_lock);
}

int berth_log_level_parse(const char *s, enum berth_log_level *ret)
{
	for (int i = 0; i < BERTH_LOG_MAX; i++)
		if (streq(s, level_names[i])) {
			*ret = i;
			return 0;
		}
	return -EINVAL;
}

const char *berth_log_level_name(enum berth_log_level level)
{
	return level < BERTH_LOG_MAX ? level_names[level] : "unknown";
}

int berth_log(enum berth_log_level level, const char *category, int ret, const char *fmt, ...)
{
	char msg[2048];
	berth_log_hook_fn hook;
	void *hook_data;
	va_list ap;
	int saved = errno;
	int n;

	if (level > log_level && !log_hook)
		return ret;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && ret < 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(-ret));

	if (level <= log_level) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", stamp, ts.tv_nsec / 1000000,
			level_names[level], category, msg);
	}

	pthread_mutex_lock(&log_lock);
	hook = log_hook;
	hook_data = log_hook_data;
	pthread_mutex_unlock(&log_lock);
	if (hook && level <= BERTH_LOG_INFO)
		hook(level, category, msg, hook_data);
	errno = saved;
	return ret;
}
