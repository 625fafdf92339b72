/* tests/unit/test_dqlite_client.c: berth's dqlite client (daemon/db/dqlite_client.c)
 * against canned server bytes, no server needed.
 *
 * The client talks over one end of a socketpair; the test writes the replies a dqlite
 * 1.11 server would send to the other end beforehand, and afterwards reads back what
 * the client sent, byte for byte. The expected bytes are built here by a writer of the
 * test's own, field by field from the wire protocol's reference. Malformed replies
 * (wrong types, truncations at every length, counts past the end, unknown type codes,
 * trailing bytes, a silent or vanished server) must each give an error, never a crash or
 * a read past the end (the asan build checks that), and leave the connection refused. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/db/dqlite_client.h"

/* ---- a writer of messages, the test's own ---- */

struct msg {
	uint8_t b[8192];
	size_t len;
};

static void m_u8(struct msg *m, uint8_t v)
{
	assert_true(m->len < sizeof(m->b));
	m->b[m->len++] = v;
}

static void m_u32(struct msg *m, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		m_u8(m, (uint8_t)(v >> (8 * i)));
}

static void m_u64(struct msg *m, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		m_u8(m, (uint8_t)(v >> (8 * i)));
}

static void m_pad(struct msg *m)
{
	while (m->len % 8)
		m_u8(m, 0);
}

static void m_text(struct msg *m, const char *s)
{
	for (size_t i = 0; i <= strlen(s); i++)
		m_u8(m, (uint8_t)s[i]);
	m_pad(m);
}

static void m_blob(struct msg *m, const void *data, size_t n)
{
	m_u64(m, n);
	for (size_t i = 0; i < n; i++)
		m_u8(m, ((const uint8_t *)data)[i]);
	m_pad(m);
}

/* Start a message of `type`: its header's length is filled by m_end(). */
static void m_begin(struct msg *m, uint8_t type)
{
	m->len = 0;
	m_u32(m, 0);
	m_u8(m, type);
	m_u8(m, 0);
	m_u8(m, 0);
	m_u8(m, 0);
}

static void m_end(struct msg *m)
{
	uint32_t words = (uint32_t)((m->len - 8) / 8);

	assert_int_equal(m->len % 8, 0);
	memcpy(m->b, &words, 4); /* little endian: the test runs on x86-64 */
}

/* ---- the pair of sockets ---- */

struct pair {
	struct dqlite_client *c;
	int peer; /* the "server" end */
};

static void pair_open(struct pair *p, int timeout_ms)
{
	struct berth_error err = {0};
	uint8_t version[8];
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->peer = sv[1];
	assert_int_equal(dqlite_client_from_fd(sv[0], timeout_ms, &p->c, &err), 0);
	/* The handshake: protocol version 1 in one little-endian word. */
	assert_int_equal(read(p->peer, version, 8), 8);
	assert_memory_equal(version, "\1\0\0\0\0\0\0\0", 8);
}

static void pair_close(struct pair *p)
{
	dqlite_client_free(p->c);
	close(p->peer);
}

static void serve(struct pair *p, const struct msg *m)
{
	assert_int_equal(write(p->peer, m->b, m->len), (ssize_t)m->len);
}

/* What the client sent must be exactly `want`. */
static void expect_sent(struct pair *p, const struct msg *want)
{
	uint8_t got[8192];
	ssize_t n = recv(p->peer, got, sizeof(got), MSG_DONTWAIT);

	assert_int_equal(n, (ssize_t)want->len);
	assert_memory_equal(got, want->b, want->len);
}

static void expect_nothing_sent(struct pair *p)
{
	uint8_t got[8];

	assert_int_equal(recv(p->peer, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

/* ---- well-formed exchanges ---- */

static void test_register_leader(void **state)
{
	struct berth_error err = {0};
	struct pair p;
	struct msg m;
	uint64_t hb = 0, id = 0;
	char *address = NULL;

	(void)state;
	pair_open(&p, 2000);
	m_begin(&m, 2); /* WELCOME */
	m_u64(&m, 15000);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_register(p.c, 42, &hb, &err), 0);
	assert_int_equal(hb, 15000);
	m_begin(&m, 1); /* CLIENT */
	m_u64(&m, 42);
	m_end(&m);
	expect_sent(&p, &m);

	m_begin(&m, 1); /* SERVER */
	m_u64(&m, 7);
	m_text(&m, "@berth-node-7");
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_leader(p.c, &id, &address, &err), 0);
	assert_int_equal(id, 7);
	assert_string_equal(address, "@berth-node-7");
	free(address);
	m_begin(&m, 0); /* LEADER */
	m_u64(&m, 0);
	m_end(&m);
	expect_sent(&p, &m);
	pair_close(&p);
}

static const uint8_t exec_blob[3] = {1, 2, 0xff};

/* The EXEC that test_open_prepare_exec sends: statement 9 of database 3 with its five
 * parameters, one of each type. */
static void exec_request(struct msg *m)
{
	m_begin(m, 5); /* EXEC: db and statement ids in a word, then the tuple */
	m_u32(m, 3);
	m_u32(m, 9);
	m_u8(m, 5); /* count, then a type byte each, padded to the word */
	m_u8(m, 1);
	m_u8(m, 3);
	m_u8(m, 5);
	m_u8(m, 2);
	m_u8(m, 4);
	m_pad(m);
	m_u64(m, (uint64_t)-5);
	m_text(m, "hi");
	m_u64(m, 0);
	m_u64(m, 0x3ff8000000000000); /* 1.5 */
	m_blob(m, exec_blob, sizeof(exec_blob));
	m_end(m);
}

/* OPEN, PREPARE, then EXEC with one parameter of each type. */
static void test_open_prepare_exec(void **state)
{
	const struct dqlite_client_value params[] = {
		{.type = DQLITE_CLIENT_INTEGER, .integer = -5},
		{.type = DQLITE_CLIENT_TEXT, .text = "hi"},
		{.type = DQLITE_CLIENT_NULL},
		{.type = DQLITE_CLIENT_FLOAT, .real = 1.5},
		{.type = DQLITE_CLIENT_BLOB, .blob = {exec_blob, sizeof(exec_blob)}},
	};
	struct dqlite_client_result res = {0};
	struct berth_error err = {0};
	uint32_t stmt = 0;
	uint64_t nparams = 0;
	struct pair p;
	struct msg m;

	(void)state;
	pair_open(&p, 2000);
	m_begin(&m, 4); /* DB */
	m_u32(&m, 3);
	m_u32(&m, 0);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_open(p.c, "berth", &err), 0);
	m_begin(&m, 3); /* OPEN: name, flags, vfs */
	m_text(&m, "berth");
	m_u64(&m, 0);
	m_text(&m, "");
	m_end(&m);
	expect_sent(&p, &m);

	m_begin(&m, 5); /* STMT: db, id, parameters */
	m_u32(&m, 3);
	m_u32(&m, 9);
	m_u64(&m, 5);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_prepare(p.c, "INSERT INTO t VALUES(?,?,?,?,?)", &stmt,
					       &nparams, &err),
			 0);
	assert_int_equal(stmt, 9);
	assert_int_equal(nparams, 5);
	m_begin(&m, 4); /* PREPARE: the database OPEN gave */
	m_u64(&m, 3);
	m_text(&m, "INSERT INTO t VALUES(?,?,?,?,?)");
	m_end(&m);
	expect_sent(&p, &m);

	m_begin(&m, 6); /* RESULT */
	m_u64(&m, 12);
	m_u64(&m, 1);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_exec(p.c, stmt, params, 5, &res, &err), 0);
	assert_int_equal(res.last_insert_id, 12);
	assert_int_equal(res.rows_affected, 1);
	exec_request(&m);
	expect_sent(&p, &m);

	m_begin(&m, 8); /* EMPTY */
	m_u64(&m, 0);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_finalize(p.c, stmt, &err), 0);
	m_begin(&m, 7); /* FINALIZE */
	m_u32(&m, 3);
	m_u32(&m, 9);
	m_end(&m);
	expect_sent(&p, &m);
	pair_close(&p);
}

/* One ROWS page of columns (id INTEGER, name TEXT): `n` rows from `first`, then `marker`. */
static void rows_page(struct msg *m, int first, int n, uint64_t marker)
{
	char name[32];

	m_begin(m, 7);
	m_u64(m, 2);
	m_text(m, "id");
	m_text(m, "name");
	for (int i = first; i < first + n; i++) {
		m_u8(m, 1 | 3 << 4); /* column 0 INTEGER in the low nibble, 1 TEXT in the high */
		m_pad(m);
		m_u64(m, (uint64_t)i);
		snprintf(name, sizeof(name), "row-%d", i);
		m_text(m, name);
	}
	m_u64(m, marker);
	m_end(m);
}

/* QUERY_SQL with a text parameter; a result in two pages, PART then DONE. */
static void test_query_pages(void **state)
{
	const struct dqlite_client_value param = {.type = DQLITE_CLIENT_TEXT, .text = "row-%"};
	struct dqlite_client_rows rows = {0};
	struct berth_error err = {0};
	struct pair p;
	struct msg m;

	(void)state;
	pair_open(&p, 2000);
	rows_page(&m, 0, 3, 0xeeeeeeeeeeeeeeee);
	serve(&p, &m);
	rows_page(&m, 3, 2, 0xffffffffffffffff);
	serve(&p, &m);
	assert_int_equal(dqlite_client_query_sql(p.c, "SELECT id, name FROM t WHERE name LIKE ?",
						 &param, 1, &rows, &err),
			 0);
	assert_int_equal(rows.pages, 2);
	assert_int_equal(rows.n_columns, 2);
	assert_string_equal(rows.columns[0], "id");
	assert_string_equal(rows.columns[1], "name");
	assert_int_equal(rows.n_rows, 5);
	for (size_t i = 0; i < 5; i++) {
		char name[32];

		snprintf(name, sizeof(name), "row-%zu", i);
		assert_int_equal(dqlite_client_rows_get(&rows, i, 0)->type, DQLITE_CLIENT_INTEGER);
		assert_int_equal(dqlite_client_rows_get(&rows, i, 0)->integer, (int64_t)i);
		assert_int_equal(dqlite_client_rows_get(&rows, i, 1)->type, DQLITE_CLIENT_TEXT);
		assert_string_equal(dqlite_client_rows_get(&rows, i, 1)->text, name);
	}
	dqlite_client_rows_release(&rows);
	m_begin(&m, 9); /* QUERY_SQL: db, sql, tuple */
	m_u64(&m, 0);
	m_text(&m, "SELECT id, name FROM t WHERE name LIKE ?");
	m_u8(&m, 1);
	m_u8(&m, 3);
	m_pad(&m);
	m_text(&m, "row-%");
	m_end(&m);
	expect_sent(&p, &m);
	pair_close(&p);
}

/* Every other value type in a row: float, blob, null, and dqlite's own three. */
static void test_row_types(void **state)
{
	struct dqlite_client_rows rows = {0};
	struct berth_error err = {0};
	bool more = true;
	struct msg m;

	(void)state;
	m_begin(&m, 7);
	m_u64(&m, 6);
	for (int i = 0; i < 6; i++)
		m_text(&m, (const char *[]){"f", "b", "n", "u", "iso", "ok"}[i]);
	m_u8(&m, 2 | 4 << 4);
	m_u8(&m, 5 | 9 << 4);
	m_u8(&m, 10 | 11 << 4);
	m_pad(&m);
	m_u64(&m, 0xc004000000000000); /* -2.5 */
	m_blob(&m, "\0\1\2\3\4\5\6\7\10", 9);
	m_u64(&m, 0);
	m_u64(&m, 1700000000);
	m_text(&m, "2023-11-14 22:13:20");
	m_u64(&m, 1);
	m_u64(&m, 0xffffffffffffffff);
	m_end(&m);
	assert_int_equal(dqlite_client_decode_rows(m.b + 8, m.len - 8, &rows, &more, &err), 0);
	assert_false(more);
	assert_int_equal(rows.n_rows, 1);
	assert_true(dqlite_client_rows_get(&rows, 0, 0)->real == -2.5);
	assert_int_equal(dqlite_client_rows_get(&rows, 0, 1)->blob.len, 9);
	assert_memory_equal(dqlite_client_rows_get(&rows, 0, 1)->blob.data, "\0\1\2\3\4\5\6\7\10",
			    9);
	assert_int_equal(dqlite_client_rows_get(&rows, 0, 2)->type, DQLITE_CLIENT_NULL);
	assert_int_equal(dqlite_client_rows_get(&rows, 0, 3)->type, DQLITE_CLIENT_UNIXTIME);
	assert_int_equal(dqlite_client_rows_get(&rows, 0, 3)->integer, 1700000000);
	assert_string_equal(dqlite_client_rows_get(&rows, 0, 4)->text, "2023-11-14 22:13:20");
	assert_int_equal(dqlite_client_rows_get(&rows, 0, 5)->boolean, 1);
	dqlite_client_rows_release(&rows);
}

static void test_cluster(void **state)
{
	struct dqlite_client_node *nodes = NULL;
	struct berth_error err = {0};
	size_t n = 0;
	struct pair p;
	struct msg m;

	(void)state;
	pair_open(&p, 2000);
	m_begin(&m, 3); /* SERVERS */
	m_u64(&m, 2);
	m_u64(&m, 1);
	m_text(&m, "10.0.0.1:8001");
	m_u64(&m, 0);
	m_u64(&m, 2);
	m_text(&m, "@two");
	m_u64(&m, 1);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_cluster(p.c, &nodes, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(nodes[0].id, 1);
	assert_string_equal(nodes[0].address, "10.0.0.1:8001");
	assert_int_equal(nodes[0].role, DQLITE_CLIENT_VOTER);
	assert_int_equal(nodes[1].id, 2);
	assert_string_equal(nodes[1].address, "@two");
	assert_int_equal(nodes[1].role, DQLITE_CLIENT_STANDBY);
	dqlite_client_nodes_free(nodes, n);
	m_begin(&m, 16); /* CLUSTER, format 1 */
	m_u64(&m, 1);
	m_end(&m);
	expect_sent(&p, &m);

	m_begin(&m, 8);
	m_u64(&m, 0);
	m_end(&m);
	for (int i = 0; i < 3; i++)
		serve(&p, &m);
	assert_int_equal(dqlite_client_add(p.c, 3, "@three", &err), 0);
	assert_int_equal(dqlite_client_assign(p.c, 3, DQLITE_CLIENT_VOTER, &err), 0);
	assert_int_equal(dqlite_client_remove(p.c, 3, &err), 0);
	m_begin(&m, 12); /* ADD, ASSIGN, REMOVE back to back */
	m_u64(&m, 3);
	m_text(&m, "@three");
	m_end(&m);
	{
		struct msg all = m;

		m_begin(&m, 13);
		m_u64(&m, 3);
		m_u64(&m, 0);
		m_end(&m);
		memcpy(all.b + all.len, m.b, m.len);
		all.len += m.len;
		m_begin(&m, 14);
		m_u64(&m, 3);
		m_end(&m);
		memcpy(all.b + all.len, m.b, m.len);
		all.len += m.len;
		expect_sent(&p, &all);
	}
	pair_close(&p);
}

/* A FAILURE reply is an error with the server's code and message; the connection stays
 * in step and usable. */
static void test_failure_reply(void **state)
{
	struct berth_error err = {0};
	struct pair p;
	struct msg m;

	(void)state;
	pair_open(&p, 2000);
	m_begin(&m, 0);
	m_u64(&m, 10250); /* SQLITE_IOERR_NOT_LEADER */
	m_text(&m, "not leader");
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_exec_sql(p.c, "CREATE TABLE t (x)", NULL, 0, NULL, &err),
			 -EREMOTEIO);
	assert_int_equal(dqlite_client_failure_code(p.c), 10250);
	assert_non_null(strstr(err.msg, "not leader"));
	berth_error_release(&err);
	m_begin(&m, 6);
	m_u64(&m, 0);
	m_u64(&m, 0);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_exec_sql(p.c, "CREATE TABLE t (x)", NULL, 0, NULL, &err), 0);
	pair_close(&p);
}

/* Parameters the client refuses before sending anything. */
static void test_bad_params(void **state)
{
	struct dqlite_client_value many[256];
	const struct dqlite_client_value unixtime = {.type = DQLITE_CLIENT_UNIXTIME};
	const struct dqlite_client_value notext = {.type = DQLITE_CLIENT_TEXT, .text = NULL};
	struct berth_error err = {0};
	struct pair p;

	(void)state;
	for (size_t i = 0; i < 256; i++)
		many[i] = (struct dqlite_client_value){.type = DQLITE_CLIENT_NULL};
	pair_open(&p, 200);
	assert_int_equal(dqlite_client_exec(p.c, 1, many, 256, NULL, &err), -E2BIG);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_exec(p.c, 1, &unixtime, 1, NULL, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_exec_sql(p.c, "x", &notext, 1, NULL, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_query_sql(p.c, "x", NULL, 2, NULL, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_assign(p.c, 1, DQLITE_CLIENT_ROLE_MAX, &err), -EINVAL);
	berth_error_release(&err);
	expect_nothing_sent(&p);
	pair_close(&p);
}

/* ---- malformed replies through the socket ---- */

/* Serve `m` (if any; then close the peer's sending side if `hangup`), run a LEADER request
 * and expect `want`; a broken connection then refuses the next request. */
static void leader_gets(const struct msg *m, bool hangup, int want, const char *msg_part)
{
	struct berth_error err = {0};
	char *address = NULL;
	uint64_t id = 0;
	struct pair p;

	pair_open(&p, 100);
	if (m)
		serve(&p, m);
	if (hangup)
		shutdown(p.peer, SHUT_WR);
	assert_int_equal(dqlite_client_leader(p.c, &id, &address, &err), want);
	assert_null(address);
	assert_non_null(err.msg);
	if (msg_part && !strstr(err.msg, msg_part))
		fail_msg("\"%s\" does not say \"%s\"", err.msg, msg_part);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_leader(p.c, &id, &address, &err), -ENOTCONN);
	berth_error_release(&err);
	pair_close(&p);
}

static void test_malformed_stream(void **state)
{
	struct msg m;

	(void)state;
	leader_gets(NULL, false, -ETIMEDOUT, NULL);	/* a silent server */
	leader_gets(NULL, true, -ECONNRESET, "closed"); /* a vanished one */
	m_begin(&m, 4);					/* DB where SERVER was asked for */
	m_u64(&m, 0);
	m_end(&m);
	leader_gets(&m, false, -EPROTO, "type 4");
	m_begin(&m, 1); /* a header announcing two words, one sent, then EOF */
	m_u64(&m, 1);
	m_end(&m);
	m.b[0] = 2;
	leader_gets(&m, true, -ECONNRESET, NULL);
	m_begin(&m, 1); /* a body length of 32 GiB */
	m_end(&m);
	memset(m.b, 0xff, 4);
	leader_gets(&m, false, -EPROTO, "64 MiB");
	m_begin(&m, 1); /* SERVER whose address has no NUL */
	m_u64(&m, 1);
	memcpy(m.b + m.len, "abcdefgh", 8);
	m.len += 8;
	m_end(&m);
	leader_gets(&m, false, -EPROTO, "SERVER");
	m_begin(&m, 1); /* SERVER with a word too many */
	m_u64(&m, 1);
	m_text(&m, "x");
	m_u64(&m, 0);
	m_end(&m);
	leader_gets(&m, false, -EPROTO, "SERVER");
	m_begin(&m, 0); /* FAILURE whose message has no NUL */
	m_u64(&m, 1);
	memcpy(m.b + m.len, "abcdefgh", 8);
	m.len += 8;
	m_end(&m);
	leader_gets(&m, false, -EPROTO, "FAILURE");
}

/* A RESULT of the wrong size, and a bad second page of a query: both leave the client
 * broken. */
static void test_malformed_sizes(void **state)
{
	struct dqlite_client_rows rows = {0};
	struct berth_error err = {0};
	struct pair p;
	struct msg m;

	(void)state;
	pair_open(&p, 100);
	m_begin(&m, 6);
	m_u64(&m, 1);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_exec_sql(p.c, "x", NULL, 0, NULL, &err), -EPROTO);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_exec_sql(p.c, "x", NULL, 0, NULL, &err), -ENOTCONN);
	berth_error_release(&err);
	pair_close(&p);

	pair_open(&p, 100);
	rows_page(&m, 0, 2, 0xeeeeeeeeeeeeeeee);
	serve(&p, &m);
	m_begin(&m, 7); /* page 2 with other columns */
	m_u64(&m, 1);
	m_text(&m, "other");
	m_u64(&m, 0xffffffffffffffff);
	m_end(&m);
	serve(&p, &m);
	assert_int_equal(dqlite_client_query_sql(p.c, "x", NULL, 0, &rows, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "column"));
	berth_error_release(&err);
	dqlite_client_rows_release(&rows);
	pair_close(&p);
}

/* ---- the decoders on their own ---- */

/* Decode `len` bytes from an allocation of exactly that size (so that asan sees any read
 * past the end). */
static int decode_rows_exact(const uint8_t *body, size_t len, struct dqlite_client_rows *rows)
{
	struct berth_error err = {0};
	uint8_t *copy = malloc(len ? len : 1);
	bool more = false;
	int r;

	assert_non_null(copy);
	memcpy(copy, body, len);
	r = dqlite_client_decode_rows(copy, len, rows, &more, &err);
	if (r < 0)
		assert_non_null(err.msg);
	berth_error_release(&err);
	free(copy);
	return r;
}

static void test_rows_truncated(void **state)
{
	struct dqlite_client_rows rows = {0};
	struct msg m;

	(void)state;
	rows_page(&m, 0, 3, 0xffffffffffffffff);
	for (size_t len = 0; len < m.len - 8; len++) {
		assert_int_equal(decode_rows_exact(m.b + 8, len, &rows), -EPROTO);
		dqlite_client_rows_release(&rows);
	}
	assert_int_equal(decode_rows_exact(m.b + 8, m.len - 8, &rows), 0);
	assert_int_equal(rows.n_rows, 3);
	dqlite_client_rows_release(&rows);
}

static void test_rows_malformed(void **state)
{
	struct dqlite_client_rows rows = {0};
	struct msg m;

	(void)state;
	m_begin(&m, 7); /* no columns */
	m_u64(&m, 0);
	m_u64(&m, 0xffffffffffffffff);
	assert_int_equal(decode_rows_exact(m.b + 8, m.len - 8, &rows), -EPROTO);
	dqlite_client_rows_release(&rows);
	m_begin(&m, 7); /* more columns than bytes */
	m_u64(&m, UINT64_C(1) << 60);
	m_text(&m, "a");
	m_u64(&m, 0xffffffffffffffff);
	assert_int_equal(decode_rows_exact(m.b + 8, m.len - 8, &rows), -EPROTO);
	dqlite_client_rows_release(&rows);
	for (unsigned type = 0; type < 16; type++) {
		bool known = (type >= 1 && type <= 5) || (type >= 9 && type <= 11);

		m_begin(&m, 7); /* every type code in one column: the unknown ones refused */
		m_u64(&m, 1);
		m_text(&m, "a");
		m_u8(&m, (uint8_t)type);
		m_pad(&m);
		m_u64(&m, 0); /* 8 bytes: a number, an empty text, an empty blob */
		m_u64(&m, 0xffffffffffffffff);
		assert_int_equal(decode_rows_exact(m.b + 8, m.len - 8, &rows), known ? 0 : -EPROTO);
		assert_int_equal(rows.n_rows, known ? 1 : 0);
		dqlite_client_rows_release(&rows);
	}
	m_begin(&m, 7); /* a blob longer than the reply */
	m_u64(&m, 1);
	m_text(&m, "a");
	m_u8(&m, 4);
	m_pad(&m);
	m_u64(&m, 1000);
	m_u64(&m, 0xffffffffffffffff);
	assert_int_equal(decode_rows_exact(m.b + 8, m.len - 8, &rows), -EPROTO);
	dqlite_client_rows_release(&rows);
	m_begin(&m, 7); /* a blob length near 2^64 (no wrap-around) */
	m_u64(&m, 1);
	m_text(&m, "a");
	m_u8(&m, 4);
	m_pad(&m);
	m_u64(&m, UINT64_MAX - 3);
	m_u64(&m, 0xffffffffffffffff);
	assert_int_equal(decode_rows_exact(m.b + 8, m.len - 8, &rows), -EPROTO);
	dqlite_client_rows_release(&rows);
	rows_page(&m, 0, 1, 0xffffffffffffffff); /* a word after DONE */
	m_u64(&m, 0);
	assert_int_equal(decode_rows_exact(m.b + 8, m.len - 8, &rows), -EPROTO);
	dqlite_client_rows_release(&rows);
}

static void test_servers_malformed(void **state)
{
	struct dqlite_client_node *nodes = NULL;
	struct berth_error err = {0};
	size_t n = 0;
	struct msg m;

	(void)state;
	m_begin(&m, 3); /* a count past the end */
	m_u64(&m, 1000);
	m_u64(&m, 1);
	m_text(&m, "@a");
	m_u64(&m, 0);
	assert_int_equal(dqlite_client_decode_servers(m.b + 8, m.len - 8, &nodes, &n, &err),
			 -EPROTO);
	berth_error_release(&err);
	m_begin(&m, 3); /* an unknown role */
	m_u64(&m, 1);
	m_u64(&m, 1);
	m_text(&m, "@a");
	m_u64(&m, 7);
	assert_int_equal(dqlite_client_decode_servers(m.b + 8, m.len - 8, &nodes, &n, &err),
			 -EPROTO);
	berth_error_release(&err);
	m_begin(&m, 3); /* the second of two cut short */
	m_u64(&m, 2);
	m_u64(&m, 1);
	m_text(&m, "@a");
	m_u64(&m, 0);
	m_u64(&m, 2);
	m_text(&m, "@bbbbbb");
	assert_int_equal(dqlite_client_decode_servers(m.b + 8, m.len - 8, &nodes, &n, &err),
			 -EPROTO);
	berth_error_release(&err);
	assert_null(nodes);
}

/* ---- connecting ---- */

static void test_connect(void **state)
{
	struct berth_error err = {0};
	struct dqlite_client *c = NULL;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sin_len = sizeof(sin);
	char name[64], address[64];
	uint8_t version[8];
	int l, a;

	(void)state;
	/* An abstract unix socket: "@name". */
	snprintf(name, sizeof(name), "@berth-test-dqlite-%d", (int)getpid());
	memcpy(sun.sun_path + 1, name + 1, strlen(name) - 1);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
			 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(dqlite_client_connect(name, 1000, &c, &err), 0);
	a = accept(l, NULL, NULL);
	assert_int_equal(read(a, version, 8), 8);
	assert_int_equal(version[0], 1);
	dqlite_client_free(c);
	close(a);
	close(l);
	/* Nobody listens there any more. */
	assert_int_equal(dqlite_client_connect(name, 1000, &c, &err), -ECONNREFUSED);
	berth_error_release(&err);

	/* TCP on the loopback. */
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &sin_len), 0);
	snprintf(address, sizeof(address), "127.0.0.1:%d", ntohs(sin.sin_port));
	assert_int_equal(dqlite_client_connect(address, 1000, &c, &err), 0);
	a = accept(l, NULL, NULL);
	assert_int_equal(read(a, version, 8), 8);
	assert_int_equal(version[0], 1);
	dqlite_client_free(c);
	close(a);
	close(l);

	assert_int_equal(dqlite_client_connect("localhost", 1000, &c, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(dqlite_client_connect("@", 1000, &c, &err), -EINVAL);
	berth_error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_leader), cmocka_unit_test(test_open_prepare_exec),
		cmocka_unit_test(test_query_pages),	cmocka_unit_test(test_row_types),
		cmocka_unit_test(test_cluster),		cmocka_unit_test(test_failure_reply),
		cmocka_unit_test(test_bad_params),	cmocka_unit_test(test_malformed_stream),
		cmocka_unit_test(test_malformed_sizes), cmocka_unit_test(test_rows_truncated),
		cmocka_unit_test(test_rows_malformed),	cmocka_unit_test(test_servers_malformed),
		cmocka_unit_test(test_connect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
