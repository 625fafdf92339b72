/* daemon/instance/schedule.c: matching cron expressions against a minute (schedule.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/instance/schedule.h"
#include "lib/util.h"

/* Whether `value` is in the field `f` (`len` bytes) whose range is [lo, hi]. */
static int field_matches(const char *f, size_t len, int lo, int hi, int value, bool *ret)
{
	const char *end = f + len;

	*ret = false;
	while (f < end) {
		const char *comma = memchr(f, ',', (size_t)(end - f));
		const char *item_end = comma ? comma : end;
		long a = lo, b = hi, step = 1;
		char *p;

		if (*f == '*') {
			p = (char *)f + 1;
		} else {
			a = strtol(f, &p, 10);
			if (p == f)
				return -EINVAL;
			b = a;
			if (p < item_end && *p == '-') {
				const char *q = p + 1;
				b = strtol(q, &p, 10);
				if (p == q)
					return -EINVAL;
			}
		}
		if (p < item_end && *p == '/') {
			const char *q = p + 1;
			step = strtol(q, &p, 10);
			if (p == q || step <= 0)
				return -EINVAL;
		}
		if (p != item_end || a < lo || b > hi || a > b)
			return -EINVAL;
		if (value >= a && value <= b && (value - a) % step == 0)
			*ret = true;
		f = comma ? comma + 1 : end;
	}
	return 0;
}

static int cron_matches(const char *spec, const struct tm *tm, bool *ret)
{
	static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
	int values[5] = {tm->tm_min, tm->tm_hour, tm->tm_mday, tm->tm_mon + 1, tm->tm_wday};
	bool m[5], star[5];
	const char *s = spec;
	int r;

	for (int i = 0; i < 5; i++) {
		size_t len;

		while (*s == ' ')
			s++;
		len = strcspn(s, " ");
		if (len == 0)
			return -EINVAL;
		star[i] = len == 1 && *s == '*';
		r = field_matches(s, len, lo[i], hi[i], values[i], &m[i]);
		/* Sunday is 0 or 7. */
		if (r >= 0 && i == 4 && !m[i] && values[i] == 0)
			r = field_matches(s, len, lo[i], hi[i], 7, &m[i]);
		if (r < 0)
			return r;
		s += len;
	}
	while (*s == ' ')
		s++;
	if (*s)
		return -EINVAL;
	/* Day of month and day of week: either matches when both are restricted (cron). */
	*ret = m[0] && m[1] && m[3] && (star[2] || star[4] ? m[2] && m[4] : m[2] || m[4]);
	return 0;
}

static const struct {
	const char *name;
	const char *cron;
} shorthands[] = {
	{"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
	{"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
};

int schedule_matches(const char *spec, const struct tm *tm, bool *ret)
{
	_cleanup_free_ char *copy = strdup(spec);
	bool any = false, seen = false;
	char *one = copy;

	if (!copy)
		return -ENOMEM;
	/* Schedules are separated by ", "; a comma without a space is a list in a field
	 * ("0,30 * * * *"). */
	while (one) {
		char *next = strstr(one, ", ");
		const char *cron = one;
		bool m = false;
		int r;

		if (next) {
			*next = '\0';
			next += 2;
		}
		while (*cron == ' ')
			cron++;
		for (size_t i = 0; i < ARRAY_SIZE(shorthands); i++)
			if (streq(cron, shorthands[i].name))
				cron = shorthands[i].cron;
		if (*cron) {
			r = cron_matches(cron, tm, &m);
			if (r < 0)
				return r;
			any = any || m;
			seen = true;
		}
		one = next;
	}
	if (!seen)
		return -EINVAL;
	*ret = any;
	return 0;
}
