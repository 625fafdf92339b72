/* tests/unit/test_output.c: cli/output: lxc's table layout (borders, centred headers,
 * multi-line cells, UTF-8 widths), compact and CSV variants, natural sorting, formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli/output.h"

static const char *headers[] = {"NAME", "STATE", "TYPE"};

static void fill(struct cli_table *t, const char *rows[][3], size_t n)
{
	cli_table_init(t, 3, headers);
	for (size_t i = 0; i < n; i++) {
		char *cells[3] = {strdup(rows[i][0]), strdup(rows[i][1]), strdup(rows[i][2])};

		assert_int_equal(cli_table_add_row(t, cells), 0);
	}
}

static char *render(struct cli_table *t, enum cli_format fmt)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	assert_int_equal(cli_table_print(t, fmt, f), 0);
	fclose(f);
	return out;
}

static void test_table(void **state)
{
	const char *rows[][3] = {{"web10", "STOPPED", "CONTAINER"},
				 {"c1", "RUNNING", "VIRTUAL-MACHINE"},
				 {"web2", "STOPPED", "CONTAINER"}};
	struct cli_table t;
	_cleanup_free_ char *out = NULL;

	fill(&t, rows, 3);
	cli_table_sort(&t);
	out = render(&t, CLI_FORMAT_TABLE);
	assert_string_equal(out, "+-------+---------+-----------------+\n"
				 "| NAME  |  STATE  |      TYPE       |\n"
				 "+-------+---------+-----------------+\n"
				 "| c1    | RUNNING | VIRTUAL-MACHINE |\n"
				 "+-------+---------+-----------------+\n"
				 "| web2  | STOPPED | CONTAINER       |\n"
				 "+-------+---------+-----------------+\n"
				 "| web10 | STOPPED | CONTAINER       |\n"
				 "+-------+---------+-----------------+\n");
	cli_table_release(&t);
}

static void test_multiline_and_utf8(void **state)
{
	const char *rows[][3] = {{"c1", "10.0.0.2 (eth0)\n10.0.0.3 (eth1)", "é"}};
	struct cli_table t;
	_cleanup_free_ char *out = NULL;

	fill(&t, rows, 1);
	out = render(&t, CLI_FORMAT_TABLE);
	assert_string_equal(out, "+------+-----------------+------+\n"
				 "| NAME |      STATE      | TYPE |\n"
				 "+------+-----------------+------+\n"
				 "| c1   | 10.0.0.2 (eth0) | é    |\n"
				 "|      | 10.0.0.3 (eth1) |      |\n"
				 "+------+-----------------+------+\n");
	cli_table_release(&t);
}

static void test_compact(void **state)
{
	const char *rows[][3] = {{"web10", "STOPPED", "CONTAINER"}};
	struct cli_table t;
	_cleanup_free_ char *out = NULL;

	fill(&t, rows, 1);
	out = render(&t, CLI_FORMAT_COMPACT);
	assert_string_equal(out, "  NAME    STATE     TYPE     \n"
				 "  web10  STOPPED  CONTAINER  \n");
	cli_table_release(&t);
}

static void test_csv(void **state)
{
	const char *rows[][3] = {{"a", "x,y", "say \"hi\""},
				 {"b", "", " lead"},
				 {"c", "l1\nl2", "plain"}};
	struct cli_table t;
	_cleanup_free_ char *out = NULL;

	fill(&t, rows, 3);
	out = render(&t, CLI_FORMAT_CSV);
	assert_string_equal(out,
			    "a,\"x,y\",\"say \"\"hi\"\"\"\nb,,\" lead\"\nc,\"l1\nl2\",plain\n");
	cli_table_release(&t);
}

static void test_formats(void **state)
{
	enum cli_format f = CLI_FORMAT_MAX;
	struct berth_error err = {0};

	assert_int_equal(cli_format_parse(NULL, &f, NULL), 0);
	assert_int_equal(f, CLI_FORMAT_TABLE);
	assert_int_equal(cli_format_parse("yaml", &f, NULL), 0);
	assert_int_equal(f, CLI_FORMAT_YAML);
	assert_int_equal(cli_format_parse("xml", &f, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"xml\""));
	berth_error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),	cmocka_unit_test(test_multiline_and_utf8),
		cmocka_unit_test(test_compact), cmocka_unit_test(test_csv),
		cmocka_unit_test(test_formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
