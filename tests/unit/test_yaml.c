/* tests/unit/test_yaml.c: YAML rendering (quoting, layout) and parsing (types, errors
 * with positions), and that rendering then parsing gives the value back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/json.h"
#include "lib/yaml.h"

static char *render(const char *json_text)
{
	json_auto_t *v = json_loads(json_text, JSON_DECODE_ANY, NULL);
	char *out = NULL;

	assert_non_null(v);
	assert_int_equal(berth_yaml_render(v, &out, NULL), 0);
	return out;
}

static void assert_render(const char *json_text, const char *expected)
{
	_cleanup_free_ char *out = render(json_text);

	assert_string_equal(out, expected);
}

static void test_render_layout(void **state)
{
	assert_render("{\"config\":{},\"description\":\"Default LXD profile\",\"devices\":{\"root\":"
		      "{\"path\":\"/\",\"type\":\"disk\"}},\"name\":\"default\",\"used_by\":[]}",
		      "config: {}\ndescription: Default LXD profile\ndevices:\n  root:\n"
		      "    path: /\n    type: disk\nname: default\nused_by: []\n");
	assert_render("{\"profiles\":[\"default\",\"x\"],\"num\":3,\"b\":true,\"z\":null}",
		      "profiles:\n- default\n- x\nnum: 3\nb: true\nz: null\n");
	assert_render("[{\"a\":1},{\"b\":[]}]", "- a: 1\n- b: []\n");
}

static void test_render_quoting(void **state)
{
	assert_render("{\"a\":\"\"}", "a: \"\"\n");
	assert_render("{\"a\":\"true\"}", "a: \"true\"\n");
	assert_render("{\"a\":\"no\"}", "a: \"no\"\n");
	assert_render("{\"a\":\"123\"}", "a: \"123\"\n");
	assert_render("{\"a\":\"1.5\"}", "a: \"1.5\"\n");
	assert_render("{\"a\":\"null\"}", "a: \"null\"\n");
	assert_render("{\"a\":\" x\"}", "a: ' x'\n");
	assert_render("{\"a\":\"x: y\"}", "a: 'x: y'\n");
	assert_render("{\"a\":\"x #y\"}", "a: 'x #y'\n");
	assert_render("{\"a\":\"#x\"}", "a: '#x'\n");
	assert_render("{\"a\":\"[]\"}", "a: '[]'\n");
	assert_render("{\"a\":\"10GiB\"}", "a: 10GiB\n");
	assert_render("{\"a\":\"-x\"}", "a: -x\n");
	assert_render("{\"true\":\"x\"}", "\"true\": x\n");
	assert_render("{\"a\":\"l1\\nl2\\n\"}", "a: |\n  l1\n  l2\n");
}

static void test_render_flags(void **state)
{
	json_auto_t *v = json_loads("{\"type\":\"x\",\"timestamp\":\"2026-11-23T16:35:13.5Z\","
				    "\"metadata\":{\"z\":\"2026-1-2\",\"a\":\"2026-11\"}}",
				    0, NULL);
	_cleanup_free_ char *plain = NULL, *sorted = NULL;

	assert_int_equal(berth_yaml_render(v, &plain, NULL), 0);
	assert_string_equal(plain, "type: x\ntimestamp: 2026-11-23T16:35:13.5Z\nmetadata:\n"
				   "  z: 2026-1-2\n  a: 2026-11\n");
	assert_int_equal(berth_yaml_render_flags(v,
						 BERTH_YAML_SORT_KEYS | BERTH_YAML_QUOTE_TIMESTAMPS,
						 &sorted, NULL),
			 0);
	assert_string_equal(sorted, "metadata:\n  a: 2026-11\n  z: \"2026-1-2\"\n"
				    "timestamp: \"2026-11-23T16:35:13.5Z\"\ntype: x\n");
}

static json_t *parse_ok(const char *yaml)
{
	json_t *v = NULL;
	struct berth_error err = {0};

	assert_int_equal(berth_yaml_parse(yaml, strlen(yaml), &v, &err), 0);
	assert_null(err.msg);
	return v;
}

static void test_parse_types(void **state)
{
	json_auto_t *v = parse_ok("a: 1\nb: \"1\"\nc: true\nd: 'false'\ne: ~\nf: null\ng:\n"
				  "h: x y\ni: -5\nj: 1.5\nk: [1, two]\nl: {}\n10: ten\n");
	_cleanup_free_ char *s = berth_json_dumps(v);

	assert_string_equal(s, "{\"a\":1,\"b\":\"1\",\"c\":true,\"d\":\"false\",\"e\":null,"
			       "\"f\":null,\"g\":null,\"h\":\"x y\",\"i\":-5,\"j\":\"1.5\","
			       "\"k\":[1,\"two\"],\"l\":{},\"10\":\"ten\"}");
}

static void test_parse_empty(void **state)
{
	json_auto_t *v = parse_ok("");

	assert_true(json_is_null(v));
}

static void test_parse_errors(void **state)
{
	static const char *const bad[] = {"a: 1\nb: [1, 2\n", "a: 1\n  b: 2\n", "a: &x 1\nb: *x\n",
					  "? [1]\n: 2\n"};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct berth_error err = {0};
		json_t *v = NULL;

		assert_int_equal(berth_yaml_parse(bad[i], strlen(bad[i]), &v, &err), -EINVAL);
		assert_null(v);
		assert_non_null(err.msg);
		assert_non_null(strstr(err.msg, "line "));
		berth_error_release(&err);
	}
}

static void test_parse_error_line(void **state)
{
	const char *y = "config:\n  a: 1\n b: 2\n";
	struct berth_error err = {0};
	json_t *v = NULL;

	assert_int_equal(berth_yaml_parse(y, strlen(y), &v, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 3"));
	berth_error_release(&err);
}

static void test_round_trip(void **state)
{
	static const char *const docs[] = {
		"{\"config\":{\"limits.cpu\":\"2\",\"user.x\":\"true\",\"user.e\":\"\","
		"\"raw.lxc\":\"lxc.a = 1\\nlxc.b = 2\\n\",\"s\":\" pad \",\"q\":\"a'b\\\"c\"},"
		"\"devices\":{},\"profiles\":[\"default\"],\"ephemeral\":false,\"n\":-3}",
		"[\"yes\",\"~\",\"0x10\",\"@a\",\"a: b\",\"[x]\",\"é ü\",\"tab\\there\"]",
	};

	for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
		json_auto_t *in = json_loads(docs[i], JSON_DECODE_ANY, NULL);
		json_auto_t *out = NULL;
		_cleanup_free_ char *y = NULL;

		assert_non_null(in);
		assert_int_equal(berth_yaml_render(in, &y, NULL), 0);
		assert_int_equal(berth_yaml_parse(y, strlen(y), &out, NULL), 0);
		assert_true(json_equal(in, out));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_layout),	 cmocka_unit_test(test_render_quoting),
		cmocka_unit_test(test_render_flags),	 cmocka_unit_test(test_parse_types),
		cmocka_unit_test(test_parse_empty),	 cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_error_line), cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
