/* tests/unit/test_dqlite_node.c: berth's dqlite client (daemon/db/dqlite_client.c) against
 * a real dqlite node, started in this process through libdqlite's server API (built only
 * where configure finds libdqlite: HAVE_DQLITE).
 *
 * One node, id 1 (which bootstraps a cluster of itself), on an abstract unix socket, its
 * Raft data in a temporary directory. Through the client: handshake, CLIENT, LEADER until
 * the node has elected itself, CLUSTER; OPEN a database, create tables with EXEC_SQL,
 * insert through a prepared statement with each parameter type bound, read the rows back
 * with QUERY, a result large enough for several ROWS pages with QUERY_SQL, the DATETIME
 * and BOOLEAN column types dqlite reports, FAILURE replies (the connection stays usable),
 * and membership changes: ADD a spare, ASSIGN it standby, REMOVE it. */
#include <dqlite.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/db/dqlite_client.h"

#define TIMEOUT_MS 5000

static struct {
	dqlite_node *node;
	char dir[64];
	char address[64];
	struct dqlite_client *c;
} t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int node_start(void **state)
{
	(void)state;
	snprintf(t.dir, sizeof(t.dir), "/tmp/berth-dqlite-XXXXXX");
	if (!mkdtemp(t.dir))
		return -1;
	snprintf(t.address, sizeof(t.address), "@berth-test-dqlite-node-%d", (int)getpid());
	if (dqlite_node_create(1, t.address, t.dir, &t.node) != 0)
		return -1;
	if (dqlite_node_set_bind_address(t.node, t.address) != 0)
		return -1;
	if (dqlite_node_start(t.node) != 0) {
		fprintf(stderr, "# dqlite_node_start: %s\n", dqlite_node_errmsg(t.node));
		return -1;
	}
	return 0;
}

static int node_stop(void **state)
{
	(void)state;
	dqlite_client_free(t.c);
	if (t.node) {
		dqlite_node_stop(t.node);
		dqlite_node_destroy(t.node);
	}
	if (t.dir[0])
		nftw(t.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* Connect, register, and wait (polling LEADER) until the node leads. */
static void test_connect_leader(void **state)
{
	struct berth_error err = {0};
	uint64_t heartbeat = 0, id = 0;
	char *address = NULL;

	(void)state;
	assert_int_equal(dqlite_client_connect(t.address, TIMEOUT_MS, &t.c, &err), 0);
	assert_int_equal(dqlite_client_register(t.c, 1000, &heartbeat, &err), 0);
	assert_true(heartbeat > 0);
	for (int i = 0; i < 200; i++) {
		free(address);
		address = NULL;
		assert_int_equal(dqlite_client_leader(t.c, &id, &address, &err), 0);
		if (id == 1)
			break;
		sleep_ms(50); /* the election is inside libdqlite: nothing to wait on but this */
	}
	assert_int_equal(id, 1);
	assert_string_equal(address, t.address);
	free(address);
}

static void test_cluster(void **state)
{
	struct dqlite_client_node *nodes = NULL;
	struct berth_error err = {0};
	size_t n = 0;

	(void)state;
	assert_int_equal(dqlite_client_cluster(t.c, &nodes, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(nodes[0].id, 1);
	assert_string_equal(nodes[0].address, t.address);
	assert_int_equal(nodes[0].role, DQLITE_CLIENT_VOTER);
	dqlite_client_nodes_free(nodes, n);
}

static const uint8_t blob[] = {0, 1, 2, 0, 0xfe, 0xff, 7, 8, 9};

/* OPEN, CREATE TABLE, and an INSERT of each parameter type through PREPARE and EXEC. */
static void test_insert(void **state)
{
	const struct dqlite_client_value row1[] = {
		{.type = DQLITE_CLIENT_INTEGER, .integer = INT64_MIN},
		{.type = DQLITE_CLIENT_TEXT, .text = "h\xc3\xa9llo, world"},
		{.type = DQLITE_CLIENT_NULL},
		{.type = DQLITE_CLIENT_FLOAT, .real = -0.125},
		{.type = DQLITE_CLIENT_BLOB, .blob = {blob, sizeof(blob)}},
	};
	const struct dqlite_client_value row2[] = {
		{.type = DQLITE_CLIENT_INTEGER, .integer = INT64_MAX},
		{.type = DQLITE_CLIENT_TEXT, .text = ""},
		{.type = DQLITE_CLIENT_INTEGER, .integer = 3},
		{.type = DQLITE_CLIENT_FLOAT, .real = 1e300},
		{.type = DQLITE_CLIENT_BLOB, .blob = {NULL, 0}},
	};
	struct dqlite_client_result res = {0};
	struct berth_error err = {0};
	uint64_t nparams = 0;
	uint32_t stmt = 0;

	(void)state;
	assert_int_equal(dqlite_client_open(t.c, "berth.db", &err), 0);
	assert_int_equal(dqlite_client_exec_sql(t.c,
						"CREATE TABLE v (i INTEGER, t TEXT, n INTEGER, "
						"f REAL, b BLOB);"
						"CREATE TABLE big (id INTEGER PRIMARY KEY, s TEXT)",
						NULL, 0, NULL, &err),
			 0);
	assert_int_equal(dqlite_client_prepare(t.c, "INSERT INTO v VALUES (?, ?, ?, ?, ?)", &stmt,
					       &nparams, &err),
			 0);
	assert_int_equal(nparams, 5);
	assert_int_equal(dqlite_client_exec(t.c, stmt, row1, 5, &res, &err), 0);
	assert_int_equal(res.rows_affected, 1);
	assert_int_equal(res.last_insert_id, 1);
	assert_int_equal(dqlite_client_exec(t.c, stmt, row2, 5, &res, &err), 0);
	assert_int_equal(res.last_insert_id, 2);
	assert_int_equal(dqlite_client_finalize(t.c, stmt, &err), 0);
	/* A finalized statement is gone: a FAILURE, and the connection carries on. */
	assert_int_equal(dqlite_client_exec(t.c, stmt, row1, 5, NULL, &err), -EREMOTEIO);
	assert_non_null(strstr(err.msg, "no statement"));
	berth_error_release(&err);
}

/* Read the rows back with a bound parameter through PREPARE and QUERY. */
static void test_select(void **state)
{
	const struct dqlite_client_value min = {.type = DQLITE_CLIENT_INTEGER,
						.integer = INT64_MIN};
	struct dqlite_client_rows rows = {0};
	struct berth_error err = {0};
	const struct dqlite_client_value *v;
	uint32_t stmt = 0;

	(void)state;
	assert_int_equal(dqlite_client_prepare(t.c,
					       "SELECT i, t, n, f, b FROM v WHERE i >= ? "
					       "ORDER BY i",
					       &stmt, NULL, &err),
			 0);
	assert_int_equal(dqlite_client_query(t.c, stmt, &min, 1, &rows, &err), 0);
	assert_int_equal(rows.n_columns, 5);
	assert_string_equal(rows.columns[4], "b");
	assert_int_equal(rows.n_rows, 2);
	v = dqlite_client_rows_get(&rows, 0, 0);
	assert_int_equal(v[0].type, DQLITE_CLIENT_INTEGER);
	assert_true(v[0].integer == INT64_MIN);
	assert_int_equal(v[1].type, DQLITE_CLIENT_TEXT);
	assert_string_equal(v[1].text, "h\xc3\xa9llo, world");
	assert_int_equal(v[2].type, DQLITE_CLIENT_NULL);
	assert_int_equal(v[3].type, DQLITE_CLIENT_FLOAT);
	assert_true(v[3].real == -0.125);
	assert_int_equal(v[4].type, DQLITE_CLIENT_BLOB);
	assert_int_equal(v[4].blob.len, sizeof(blob));
	assert_memory_equal(v[4].blob.data, blob, sizeof(blob));
	v = dqlite_client_rows_get(&rows, 1, 0);
	assert_true(v[0].integer == INT64_MAX);
	assert_string_equal(v[1].text, "");
	assert_int_equal(v[2].integer, 3);
	assert_true(v[3].real == 1e300);
	/* SQLite returns a zero-length blob as NULL */
	assert_true(v[4].type == DQLITE_CLIENT_NULL ||
		    (v[4].type == DQLITE_CLIENT_BLOB && v[4].blob.len == 0));
	dqlite_client_rows_release(&rows);
	assert_int_equal(dqlite_client_finalize(t.c, stmt, &err), 0);
}

/* 2000 rows of ~60 bytes: well past dqlite's 4 KiB page, so many ROWS pages. */
static void test_many_pages(void **state)
{
	const struct dqlite_client_value count = {.type = DQLITE_CLIENT_INTEGER, .integer = 2000};
	struct dqlite_client_rows rows = {0};
	struct dqlite_client_result res = {0};
	struct berth_error err = {0};
	char want[80];

	(void)state;
	assert_int_equal(dqlite_client_exec_sql(t.c,
						"WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL "
						"SELECT x + 1 FROM seq WHERE x < ?) "
						"INSERT INTO big SELECT x, printf('row %05d of a "
						"result that takes many pages', x) FROM seq",
						&count, 1, &res, &err),
			 0);
	assert_int_equal(res.rows_affected, 2000);
	assert_int_equal(dqlite_client_query_sql(t.c, "SELECT id, s FROM big ORDER BY id", NULL, 0,
						 &rows, &err),
			 0);
	assert_int_equal(rows.n_rows, 2000);
	assert_true(rows.pages > 10);
	for (size_t i = 0; i < rows.n_rows; i++) {
		snprintf(want, sizeof(want), "row %05zu of a result that takes many pages", i + 1);
		assert_int_equal(dqlite_client_rows_get(&rows, i, 0)->integer, (int64_t)i + 1);
		assert_string_equal(dqlite_client_rows_get(&rows, i, 1)->text, want);
	}
	print_message("# 2000 rows in %zu ROWS pages\n", rows.pages);
	dqlite_client_rows_release(&rows);
}

/* dqlite's own types: DATETIME columns as UNIXTIME or ISO8601, BOOLEAN as BOOLEAN. */
static void test_dqlite_types(void **state)
{
	const struct dqlite_client_value params[] = {
		{.type = DQLITE_CLIENT_INTEGER, .integer = 1700000000},
		{.type = DQLITE_CLIENT_ISO8601, .text = "2024-02-29 12:00:00"},
		{.type = DQLITE_CLIENT_BOOLEAN, .boolean = 1},
	};
	struct dqlite_client_rows rows = {0};
	struct berth_error err = {0};
	const struct dqlite_client_value *v;

	(void)state;
	assert_int_equal(
		dqlite_client_exec_sql(t.c, "CREATE TABLE d (u DATETIME, s DATETIME, ok BOOLEAN)",
				       NULL, 0, NULL, &err),
		0);
	/* dqlite binds the parameters to each statement of EXEC_SQL: a statement that
	 * has fewer is refused (SQLITE_RANGE). */
	assert_int_equal(dqlite_client_exec_sql(t.c, "SELECT 1; INSERT INTO d VALUES (?, ?, ?)",
						params, 3, NULL, &err),
			 -EREMOTEIO);
	assert_int_equal(dqlite_client_failure_code(t.c), 25);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_exec_sql(t.c, "INSERT INTO d VALUES (?, ?, ?)", params, 3,
						NULL, &err),
			 0);
	assert_int_equal(dqlite_client_query_sql(t.c, "SELECT u, s, ok FROM d", NULL, 0, &rows,
						 &err),
			 0);
	assert_int_equal(rows.n_rows, 1);
	v = dqlite_client_rows_get(&rows, 0, 0);
	assert_int_equal(v[0].type, DQLITE_CLIENT_UNIXTIME);
	assert_int_equal(v[0].integer, 1700000000);
	assert_int_equal(v[1].type, DQLITE_CLIENT_ISO8601);
	assert_string_equal(v[1].text, "2024-02-29 12:00:00");
	assert_int_equal(v[2].type, DQLITE_CLIENT_BOOLEAN);
	assert_int_equal(v[2].boolean, 1);
	dqlite_client_rows_release(&rows);
}

/* SQL errors come back as FAILURE with SQLite's message; the connection carries on. */
static void test_sql_errors(void **state)
{
	struct dqlite_client_rows rows = {0};
	struct berth_error err = {0};
	uint32_t stmt = 0;

	(void)state;
	assert_int_equal(dqlite_client_query_sql(t.c, "SELECT * FROM nosuchtable", NULL, 0, &rows,
						 &err),
			 -EREMOTEIO);
	assert_non_null(strstr(err.msg, "no such table"));
	assert_int_equal(dqlite_client_failure_code(t.c), 1); /* SQLITE_ERROR */
	berth_error_release(&err);
	assert_int_equal(dqlite_client_prepare(t.c, "SELEKT 1", &stmt, NULL, &err), -EREMOTEIO);
	assert_non_null(strstr(err.msg, "syntax error"));
	berth_error_release(&err);
	assert_int_equal(dqlite_client_exec_sql(t.c, "INSERT INTO big VALUES (1, 'dup')", NULL, 0,
						NULL, &err),
			 -EREMOTEIO);
	assert_non_null(strstr(err.msg, "UNIQUE"));
	berth_error_release(&err);
	dqlite_client_rows_release(&rows);
	assert_int_equal(dqlite_client_query_sql(t.c, "SELECT count(*) FROM big", NULL, 0, &rows,
						 &err),
			 0);
	assert_int_equal(dqlite_client_rows_get(&rows, 0, 0)->integer, 2000);
	dqlite_client_rows_release(&rows);
}

/* ADD a second member (a spare, never started: a spare takes no part in the quorum),
 * ASSIGN it standby, REMOVE it; CLUSTER shows each step. */
static void test_membership(void **state)
{
	struct dqlite_client_node *nodes = NULL;
	struct berth_error err = {0};
	size_t n = 0;

	(void)state;
	assert_int_equal(dqlite_client_add(t.c, 2, "@berth-test-dqlite-absent", &err), 0);
	assert_int_equal(dqlite_client_cluster(t.c, &nodes, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(nodes[1].id, 2);
	assert_string_equal(nodes[1].address, "@berth-test-dqlite-absent");
	assert_int_equal(nodes[1].role, DQLITE_CLIENT_SPARE);
	dqlite_client_nodes_free(nodes, n);
	assert_int_equal(dqlite_client_assign(t.c, 2, DQLITE_CLIENT_STANDBY, &err), 0);
	assert_int_equal(dqlite_client_cluster(t.c, &nodes, &n, &err), 0);
	assert_int_equal(nodes[1].role, DQLITE_CLIENT_STANDBY);
	dqlite_client_nodes_free(nodes, n);
	/* Adding it twice is refused by Raft. */
	assert_int_equal(dqlite_client_add(t.c, 2, "@berth-test-dqlite-absent", &err), -EREMOTEIO);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_remove(t.c, 2, &err), 0);
	assert_int_equal(dqlite_client_cluster(t.c, &nodes, &n, &err), 0);
	assert_int_equal(n, 1);
	dqlite_client_nodes_free(nodes, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_leader), cmocka_unit_test(test_cluster),
		cmocka_unit_test(test_insert),	       cmocka_unit_test(test_select),
		cmocka_unit_test(test_many_pages),     cmocka_unit_test(test_dqlite_types),
		cmocka_unit_test(test_sql_errors),     cmocka_unit_test(test_membership),
	};
	return cmocka_run_group_tests(tests, node_start, node_stop);
}
