/* tests/unit/test_filter.c: ?filter= parsing and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/api/filter.h"
#include "lib/json.h"

static json_t *inst(void)
{
	return json_pack("{s:s, s:s, s:b, s:{s:s, s:s}, s:i}", "name", "web1", "status", "Running",
			 "ephemeral", 0, "config", "image.os", "debian", "user.role", "db",
			 "status_code", 103);
}

static bool match(const char *expr)
{
	struct api_filter *f = NULL;
	struct berth_error err = {0};
	json_auto_t *o = inst();
	bool m;

	assert_int_equal(api_filter_parse(expr, &f, &err), 0);
	m = api_filter_match(f, o);
	api_filter_free(f);
	return m;
}

static void test_simple(void **state)
{
	assert_true(match("name eq web1"));
	assert_false(match("name eq web2"));
	assert_true(match("name ne web2"));
	assert_true(match("status eq running")); /* status ignores case */
	assert_true(match("ephemeral eq false"));
	assert_true(match("status_code eq 103"));
	assert_true(match(""));
	assert_true(match("   "));
}

static void test_dotted_keys(void **state)
{
	assert_true(match("config.image.os eq debian"));
	assert_true(match("config.user.role eq \"db\""));
	assert_false(match("config.image.os eq ubuntu"));
	assert_false(match("config.missing eq x"));
}

static void test_boolean_logic(void **state)
{
	assert_true(match("name eq web1 and status eq Running"));
	assert_false(match("name eq web1 and status eq Stopped"));
	assert_true(match("name eq nope or status eq Running"));
	assert_true(match("not name eq web2"));
	/* and binds tighter: (false and true) or true */
	assert_true(match("name eq x and status eq Running or config.image.os eq debian"));
	assert_false(match("name eq x and status eq Running or config.image.os eq arch"));
}

static void test_regex(void **state)
{
	assert_true(match("name eq web.*"));
	assert_false(match("name eq eb1")); /* regex must cover the whole value */
}

static void test_hostile_regex(void **state)
{
	char expr[256] = "name eq c1";

	/* Patterns that make backtracking engines exponential are linear here. */
	memset(expr + strlen(expr), '+', 100);
	assert_false(match(expr));
	assert_false(match("name eq \")++++++@\""));
	assert_false(match("name eq a*a*a*a*a*a*a*a*a*a*a*a*b"));
}

static void test_patterns(void **state)
{
	assert_true(match("name eq web1|db[0-9]"));
	assert_true(match("name eq db|web[0-9]"));
	assert_true(match("name eq ^web[0-9]+$"));
	assert_true(match("name eq w.b1"));
	assert_true(match("name eq we?b1"));
	assert_true(match("name eq [^x]eb1"));
	assert_true(match("name eq web1x*"));
	assert_false(match("name eq web1x+"));
	assert_false(match("name eq web"));
	assert_false(match("name eq [a-c]eb1"));
	assert_false(match("name eq (web1)")); /* groups are not supported: literal */
	assert_true(match("status eq RUN.*")); /* status ignores case */
	assert_true(match("config.image.os eq deb.an"));
}

static void test_errors(void **state)
{
	const char *bad[] = {"name",
			     "name eq",
			     "name gt 3",
			     "name eq x xor y eq z",
			     "name eq \"unterminated",
			     "not",
			     "not \"unterminated",
			     "not 'x"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct api_filter *f = NULL;
		struct berth_error err = {0};
		int r = api_filter_parse(bad[i], &f, &err);

		assert_int_equal(r, -EINVAL);
		assert_null(f);
		assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
		assert_non_null(strstr(err.msg, "Invalid filter"));
		berth_error_release(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),	      cmocka_unit_test(test_dotted_keys),
		cmocka_unit_test(test_boolean_logic), cmocka_unit_test(test_regex),
		cmocka_unit_test(test_hostile_regex), cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
