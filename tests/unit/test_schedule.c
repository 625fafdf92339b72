/* tests/unit/test_schedule.c: snapshots.schedule cron matching. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/instance/schedule.h"

/* 2026-11-23 (a Monday) at hh:mm. */
static struct tm at(int hh, int mm, int mday, int wday)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 126;
	tm.tm_mon = 10;
	tm.tm_mday = mday;
	tm.tm_wday = wday;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	return tm;
}

static bool fires(const char *spec, struct tm tm)
{
	bool m = false;

	assert_int_equal(schedule_matches(spec, &tm, &m), 0);
	return m;
}

static void test_cron(void **state)
{
	assert_true(fires("* * * * *", at(3, 7, 23, 1)));
	assert_true(fires("7 3 * * *", at(3, 7, 23, 1)));
	assert_false(fires("8 3 * * *", at(3, 7, 23, 1)));
	assert_true(fires("*/15 * * * *", at(3, 45, 23, 1)));
	assert_false(fires("*/15 * * * *", at(3, 46, 23, 1)));
	assert_true(fires("0,30 1-4 * * *", at(3, 30, 23, 1)));
	assert_false(fires("0,30 1-4 * * *", at(5, 30, 23, 1)));
	assert_true(fires("0 0 * * 0", at(0, 0, 22, 0)));
	assert_true(fires("0 0 * * 7", at(0, 0, 22, 0))); /* Sunday as 7 */
	assert_true(fires("0 0 1 * 1", at(0, 0, 23, 1))); /* DoM or DoW when both set */
	assert_false(fires("0 0 1 11 *", at(0, 0, 23, 1)));
	assert_true(fires("0 0 23 11 *", at(0, 0, 23, 1)));
}

static void test_shorthands(void **state)
{
	assert_true(fires("@hourly", at(5, 0, 23, 1)));
	assert_false(fires("@hourly", at(5, 1, 23, 1)));
	assert_true(fires("@daily", at(0, 0, 23, 1)));
	assert_true(fires("@weekly", at(0, 0, 22, 0)));
	assert_false(fires("@weekly", at(0, 0, 23, 1)));
	assert_true(fires("@monthly", at(0, 0, 1, 0)));
	assert_true(fires("5 * * * *, @daily", at(0, 0, 23, 1)));
	assert_true(fires("5 * * * *, @daily", at(7, 5, 23, 1)));
}

static void test_bad(void **state)
{
	const char *bad[] = {
		"",	     "* * * *",	    "* * * * * *", "60 * * * *",  "*/0 * * * *",
		"a * * * *", "5-1 * * * *", "@sometimes",  "1,,2 * * * *"};
	struct tm tm = at(0, 0, 23, 1);
	bool m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(schedule_matches(bad[i], &tm, &m), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cron),
		cmocka_unit_test(test_shorthands),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
