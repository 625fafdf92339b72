/* tests/unit/test_json.c: JSON parsing and table-driven checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "lib/json.h"

static const struct berth_json_field fields[] = {
	{"name", BERTH_JSON_STRING, true, false},
	{"config", BERTH_JSON_STRING_MAP, false, true},
	{"devices", BERTH_JSON_DEVICE_MAP, false, true},
	{"profiles", BERTH_JSON_STRING_ARRAY, false, true},
	{"ephemeral", BERTH_JSON_BOOL, false, false},
};

static int check(const char *s, char **msg)
{
	json_auto_t *v = NULL;
	struct berth_error err = {0};
	int r = berth_json_parse(s, strlen(s), &v, &err);

	if (r == 0)
		r = berth_json_check(v, fields, sizeof(fields) / sizeof(fields[0]), "thing", &err);
	*msg = err.msg ? strdup(err.msg) : NULL;
	berth_error_release(&err);
	return r;
}

static void expect_error(const char *s, const char *needle)
{
	char *msg = NULL;

	assert_int_equal(check(s, &msg), -EINVAL);
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("\"%s\" does not contain \"%s\"", msg, needle);
	free(msg);
}

static void test_valid(void **state)
{
	char *msg = NULL;

	assert_int_equal(check("{\"name\":\"a\",\"config\":{\"k\":\"v\"},\"devices\":{\"r\":"
			       "{\"type\":\"disk\"}},\"profiles\":[\"x\"],\"ephemeral\":true,"
			       "\"unknown\":1}",
			       &msg),
			 0);
	assert_int_equal(check("{\"name\":\"a\",\"config\":null}", &msg), 0);
}

static void test_invalid(void **state)
{
	expect_error("{\"name\":", "Invalid JSON at line 1");
	expect_error("[1]", "must be a JSON object");
	expect_error("{}", "missing \"name\"");
	expect_error("{\"name\":1}", "\"name\": must be a string");
	expect_error("{\"name\":\"a\",\"config\":{\"k\":1}}", "\"k\" in \"config\"");
	expect_error("{\"name\":\"a\",\"config\":[]}", "\"config\": must be an object of strings");
	expect_error("{\"name\":\"a\",\"profiles\":[\"a\",2]}", "element 1");
	expect_error("{\"name\":\"a\",\"devices\":{\"d\":{\"path\":\"/\"}}}",
		     "missing device type");
	expect_error("{\"name\":\"a\",\"devices\":{\"d\":\"x\"}}", "must be an object");
	expect_error("{\"name\":\"a\",\"ephemeral\":null}", "must be a boolean");
	expect_error("{\"name\":\"a\",\"name\":\"b\"}", "Invalid JSON");
}

static void test_helpers(void **state)
{
	json_auto_t *o = json_pack("{s:s, s:b, s:n}", "s", "v", "b", 1, "n");
	json_auto_t *e = berth_json_object_or_empty(o, "n");
	char *s = berth_json_dumps(o);

	assert_string_equal(berth_json_string(o, "s"), "v");
	assert_null(berth_json_string(o, "b"));
	assert_true(berth_json_bool(o, "b", false));
	assert_true(berth_json_bool(o, "missing", true));
	assert_true(json_is_object(e) && json_object_size(e) == 0);
	assert_string_equal(s, "{\"s\":\"v\",\"b\":true,\"n\":null}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
