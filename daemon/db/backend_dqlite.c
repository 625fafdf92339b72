/* daemon/db/backend_dqlite.c: the dqlite backend of daemon/db/ (backend.h), over berth's
 * own wire-protocol client (dqlite_client.h). A connection is one dqlite_client connected
 * to the cluster's leader with one database open on it.
 *
 * Statements: dqlite's protocol runs a statement where the leader is; this backend sends
 * each run of a statement as one EXEC_SQL or QUERY_SQL request with its parameters, so
 * that a run is one round trip (PREPARE, EXEC and FINALIZE would be three, and a prepared
 * id would not survive following a new leader). The SQL is therefore first compiled by
 * the server at the statement's first step, not at prepare: a syntax error surfaces there.
 * Whether a statement returns rows is read from its first keyword (SELECT, WITH, VALUES,
 * EXPLAIN, a PRAGMA without "=") or a RETURNING clause. A query's whole result comes back
 * in the reply (all its pages), so rows are read ahead: statements nest freely.
 *
 * Transactions: the server does not report whether a connection is in a transaction, so
 * the backend tracks BEGIN, COMMIT/END and ROLLBACK, and after any failure inside a
 * transaction asks the server: a BEGIN that succeeds means the transaction was gone (it
 * is rolled back again at once), one refused "within a transaction" means it is open.
 *
 * Errors: a FAILURE reply carries an SQLite extended result code, mapped as SQLite's
 * backend maps them. A busy database (another connection holds the write lock) is
 * retried for up to DB_DQLITE_BUSY_MS, as SQLite's busy timeout does. "Not leader",
 * "leadership lost" and a dropped connection outside a transaction make the backend ask
 * the node for the leader, connect there and run the statement again (only statements
 * that cannot have taken effect: a not-leader refusal, or a query or BEGIN); inside a
 * transaction they end it (-EAGAIN: the caller's whole transaction may be retried).
 *
 * data_version: left NULL. dqlite 1.11 exposes Raft's applied index neither in its
 * wire protocol nor in its server API (dqlite.h), and until members join, berthd is
 * the database's only writer, as with SQLite. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "daemon/db/backend.h"
#include "daemon/db/dqlite_client.h"
#include "lib/util.h"

/* SQLite's result codes as dqlite's FAILURE replies carry them (sqlite3.h's values; this
 * file does not need SQLite itself). */
enum {
	DQ_SQLITE_ERROR = 1,
	DQ_SQLITE_BUSY = 5,
	DQ_SQLITE_LOCKED = 6,
	DQ_SQLITE_NOMEM = 7,
	DQ_SQLITE_CONSTRAINT = 19,
	DQ_SQLITE_CONSTRAINT_FOREIGNKEY = 19 | (3 << 8),
	DQ_SQLITE_CONSTRAINT_PRIMARYKEY = 19 | (6 << 8),
	DQ_SQLITE_CONSTRAINT_TRIGGER = 19 | (7 << 8),
	DQ_SQLITE_CONSTRAINT_UNIQUE = 19 | (8 << 8),
	/* dqlite's own, SQLITE_IOERR with extended codes 40 and 41 */
	DQ_NOT_LEADER = 10 | (40 << 8),
	DQ_LEADERSHIP_LOST = 10 | (41 << 8),
};

#define DB_DQLITE_BUSY_MS 5000
#define DB_DQLITE_COMMIT_MS 30000 /* a COMMIT's wait for its replication */
/* How long open waits for a node to know its leader (an election after start). */
#define DB_DQLITE_LEADER_WAIT_MS 10000

struct dq_conn {
	const struct db_dqlite_config *cfg; /* borrowed: the backend's data */
	char *name;			    /* owned: the database's name */
	struct dqlite_client *c;	    /* owned; NULL after the connection broke */
	bool in_tx;
	int64_t changes;
	int64_t last_id;
	struct berth_error err; /* of the last failed op */
};

struct dq_stmt {
	struct dq_conn *conn; /* borrowed */
	char *sql;	      /* owned */
	bool query;	      /* returns rows: QUERY_SQL rather than EXEC_SQL */
	size_t n_params;
	struct dqlite_client_value params[DQLITE_CLIENT_MAX_PARAMS];
	char *texts[DQLITE_CLIENT_MAX_PARAMS]; /* owned: the bound text values */
	bool ran;			       /* run since prepare or reset */
	size_t next;			       /* the row the next step returns */
	struct dqlite_client_rows rows;
	char **conv; /* owned: the current row's columns as text, where converted */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int dq_code_errno(uint64_t code)
{
	switch (code) {
	case DQ_SQLITE_CONSTRAINT_UNIQUE:
	case DQ_SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case DQ_SQLITE_CONSTRAINT_FOREIGNKEY:
	case DQ_SQLITE_CONSTRAINT_TRIGGER:
		return -EBUSY;
	case DQ_NOT_LEADER:
	case DQ_LEADERSHIP_LOST:
		return -EAGAIN;
	}
	switch (code & 0xff) {
	case DQ_SQLITE_CONSTRAINT:
		return -EINVAL;
	case DQ_SQLITE_BUSY:
	case DQ_SQLITE_LOCKED:
		return -EAGAIN;
	case DQ_SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static bool dq_is_busy(uint64_t code)
{
	return (code & 0xff) == DQ_SQLITE_BUSY || (code & 0xff) == DQ_SQLITE_LOCKED;
}

static bool dq_is_leader_gone(uint64_t code)
{
	return code == DQ_NOT_LEADER || code == DQ_LEADERSHIP_LOST;
}

/* The first keyword of `sql`, skipping blanks and comments, copied upper case. */
static void dq_first_word(const char *sql, char *word, size_t size)
{
	size_t n = 0;

	for (;;) {
		while (isspace((unsigned char)*sql))
			sql++;
		if (sql[0] == '-' && sql[1] == '-') {
			sql += strcspn(sql, "\n");
		} else if (sql[0] == '/' && sql[1] == '*') {
			const char *end = strstr(sql + 2, "*/");

			sql = end ? end + 2 : sql + strlen(sql);
		} else {
			break;
		}
	}
	while (n + 1 < size && isalpha((unsigned char)sql[n])) {
		word[n] = (char)toupper((unsigned char)sql[n]);
		n++;
	}
	word[n] = '\0';
}

static bool dq_returns_rows(const char *sql)
{
	char word[16];

	dq_first_word(sql, word, sizeof(word));
	if (streq(word, "SELECT") || streq(word, "WITH") || streq(word, "VALUES") ||
	    streq(word, "EXPLAIN"))
		return true;
	if (streq(word, "PRAGMA"))
		return !strchr(sql, '=');
	return strcasestr(sql, "RETURNING") != NULL;
}

/* How a statement that succeeded changes the transaction state: +1 opens one, -1 ends it,
 * 0 neither. ROLLBACK TO (a savepoint) ends nothing. */
static int dq_tx_effect(const char *sql)
{
	char word[16];

	dq_first_word(sql, word, sizeof(word));
	if (streq(word, "BEGIN"))
		return 1;
	if (streq(word, "COMMIT") || streq(word, "END"))
		return -1;
	if (streq(word, "ROLLBACK"))
		return strcasestr(sql, " TO ") ? 0 : -1;
	return 0;
}

static bool dq_is_rollback(const char *sql)
{
	char word[16];

	dq_first_word(sql, word, sizeof(word));
	return streq(word, "ROLLBACK");
}

/* The connection's error (what errmsg says), formatted; returns r. */
#define dq_set(conn, r, ...) berth_error_set(&(conn)->err, r, BERTH_ERR_INTERNAL, __VA_ARGS__)

static void dq_disconnect(struct dq_conn *conn)
{
	dqlite_client_free(conn->c);
	conn->c = NULL;
	conn->in_tx = false; /* the server rolls back a connection's transaction when it closes */
}

/* The address to dial for a leader that calls itself `address`. */
static const char *dq_dial_address(const struct db_dqlite_config *cfg, const char *address)
{
	if (cfg->node_address && streq(address, cfg->node_address))
		return cfg->address;
	return address;
}

/* Connect to the leader, as the node at cfg->address knows it, and open the database. */
static int dq_connect(struct dq_conn *conn)
{
	const struct db_dqlite_config *cfg = conn->cfg;
	_cleanup_(dqlite_client_freep) struct dqlite_client *c = NULL;
	int64_t deadline = now_ms() + DB_DQLITE_LEADER_WAIT_MS;
	_cleanup_free_ char *leader = NULL;
	uint64_t id = 0;
	int r;

	r = dqlite_client_connect(cfg->address, cfg->timeout_ms, &c, &conn->err);
	if (r < 0)
		return dq_set(conn, -EAGAIN, "Failed to connect to the database node %s: %s",
			      cfg->address, conn->err.msg);
	for (;;) {
		free(leader);
		leader = NULL;
		r = dqlite_client_leader(c, &id, &leader, &conn->err);
		if (r < 0)
			return dq_set(conn, -EAGAIN, "Failed to ask for the database leader: %s",
				      conn->err.msg);
		if (id != 0 && *leader)
			break;
		if (now_ms() >= deadline)
			return dq_set(conn, -EAGAIN, "The database has no leader");
		sleep_ms(20); /* an election is under way: nothing to wait on but time */
	}
	/* Another member's node is reached through the cluster's HTTPS endpoint, which
	 * authenticates it; berth has no such tunnel yet, and never dials one in clear. */
	if (!streq(dq_dial_address(cfg, leader), cfg->address))
		return dq_set(conn, -EAGAIN,
			      "The database leader is another member (%s), which this server "
			      "cannot reach yet",
			      leader);
	r = dqlite_client_open(c, conn->name, &conn->err);
	if (r < 0)
		return dq_set(conn, r == -EREMOTEIO ? -EIO : -EAGAIN,
			      "Failed to open database \"%s\": %s", conn->name, conn->err.msg);
	/* Per connection, like SQLite's: the table files rely on foreign keys. */
	r = dqlite_client_exec_sql(c, "PRAGMA foreign_keys = ON", NULL, 0, NULL, &conn->err);
	if (r < 0)
		return dq_set(conn, -EIO, "Failed to configure database \"%s\": %s", conn->name,
			      conn->err.msg);
	conn->c = TAKE_PTR(c);
	conn->in_tx = false;
	return 0;
}

/* After a failure inside a transaction: whether the server still has it open. */
static void dq_probe_tx(struct dq_conn *conn)
{
	struct berth_error probe = {0};
	int r;

	if (!conn->c) {
		conn->in_tx = false;
		return;
	}
	r = dqlite_client_exec_sql(conn->c, "BEGIN", NULL, 0, NULL, &probe);
	if (r == 0) {
		conn->in_tx = false;
		r = dqlite_client_exec_sql(conn->c, "ROLLBACK", NULL, 0, NULL, &probe);
		/* The probe's own transaction may still be open: closing ends it. */
		if (r < 0)
			dq_disconnect(conn);
	} else if (r < 0 && r != -EREMOTEIO)
		dq_disconnect(conn); /* the stream broke: so did the transaction */
	else if (r == -EREMOTEIO && dqlite_client_failure_code(conn->c) != DQ_SQLITE_ERROR)
		dq_disconnect(conn); /* neither answer: trust nothing of this connection */
	berth_error_release(&probe);
}

/* Run `sql` with `params` once the connection is up: as a query into `rows`, or not. */
static int dq_run(struct dq_conn *conn, const char *sql, const struct dqlite_client_value *params,
		  size_t n, bool query, struct dqlite_client_rows *rows)
{
	int64_t deadline = now_ms() + DB_DQLITE_BUSY_MS;
	bool may_retry_lost = query || dq_tx_effect(sql) > 0;
	/* A COMMIT that got no answer may have been applied: it is never retried, and it
	 * waits for the replication of the whole transaction, not one request's time. */
	bool ends_tx = !query && dq_tx_effect(sql) < 0 && conn->in_tx;
	bool commits = ends_tx && !dq_is_rollback(sql);
	long pause = 1;
	int r;

	for (;;) {
		struct dqlite_client_result res = {0};
		bool was_in_tx = conn->in_tx;
		uint64_t code = 0;

		if (!conn->c) {
			if (was_in_tx)
				return dq_set(conn, -EAGAIN, "The database connection was lost");
			r = dq_connect(conn);
			if (r < 0)
				return r;
		}
		if (query) {
			dqlite_client_rows_release(rows);
			r = dqlite_client_query_sql(conn->c, sql, params, n, rows, &conn->err);
		} else {
			if (commits)
				dqlite_client_set_timeout(conn->c, DB_DQLITE_COMMIT_MS);
			r = dqlite_client_exec_sql(conn->c, sql, params, n, &res, &conn->err);
			if (commits && conn->c)
				dqlite_client_set_timeout(conn->c, conn->cfg->timeout_ms);
		}
		if (r == 0) {
			if (!query) {
				conn->changes = (int64_t)res.rows_affected;
				conn->last_id = (int64_t)res.last_insert_id;
				int effect = dq_tx_effect(sql);

				if (effect)
					conn->in_tx = effect > 0;
			}
			return 0;
		}
		if (r == -EREMOTEIO) {
			code = dqlite_client_failure_code(conn->c);
			r = dq_code_errno(code);
		} else if (r != -ENOMEM && r != -E2BIG && r != -EINVAL) {
			/* The stream broke (reset, timeout, garbage): the server may be gone. */
			dq_disconnect(conn);
			if (commits)
				return dq_set(conn, -EIO,
					      "Lost the database connection during COMMIT: the "
					      "transaction's outcome is unknown: %s",
					      conn->err.msg ? conn->err.msg : "");
			if (!was_in_tx && may_retry_lost && now_ms() < deadline) {
				sleep_ms(pause);
				pause = pause < 64 ? pause * 2 : pause;
				continue;
			}
			return dq_set(conn, -EAGAIN, "Lost the database connection: %s",
				      conn->err.msg ? conn->err.msg : "");
		}
		if (dq_is_leader_gone(code)) {
			dq_disconnect(conn);
			if (commits && code == DQ_LEADERSHIP_LOST)
				return dq_set(conn, -EIO,
					      "The database leader changed during COMMIT: the "
					      "transaction's outcome is unknown");
			/* A statement refused by a follower never ran; one whose leader
			 * was lost may have: only a query or a BEGIN is run again. */
			if (!was_in_tx && (code == DQ_NOT_LEADER || may_retry_lost) &&
			    now_ms() < deadline) {
				sleep_ms(pause);
				pause = pause < 64 ? pause * 2 : pause;
				continue;
			}
			return r;
		}
		if (dq_is_busy(code) && !was_in_tx && now_ms() < deadline) {
			sleep_ms(pause);
			pause = pause < 16 ? pause * 2 : pause;
			continue;
		}
		if (was_in_tx)
			dq_probe_tx(conn);
		return r;
	}
}

static int db_dqlite_open(void *data, const char *path, void **ret_conn, struct berth_error *err)
{
	const struct db_dqlite_config *cfg = data;
	struct dq_conn *conn;
	int r;

	if (!cfg || !cfg->address)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "The dqlite backend needs a node address");
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	conn->cfg = cfg;
	conn->name = strdup(path);
	if (!conn->name) {
		free(conn);
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
	}
	r = dq_connect(conn);
	if (r < 0) {
		r = berth_error_set(err, r, BERTH_ERR_INTERNAL, "%s", conn->err.msg);
		berth_error_release(&conn->err);
		free(conn->name);
		free(conn);
		return r;
	}
	*ret_conn = conn;
	return 0;
}

static void db_dqlite_close(void *p)
{
	struct dq_conn *conn = p;

	if (!conn)
		return;
	dqlite_client_free(conn->c);
	berth_error_release(&conn->err);
	free(conn->name);
	free(conn);
}

static void dq_stmt_clear_row(struct dq_stmt *s)
{
	if (!s->conv)
		return;
	for (size_t i = 0; i < s->rows.n_columns; i++)
		free(s->conv[i]);
	free(s->conv);
	s->conv = NULL;
}

static int db_dqlite_prepare(void *p, const char *sql, void **ret_stmt)
{
	struct dq_conn *conn = p;
	struct dq_stmt *s;
	char word[2];

	dq_first_word(sql, word, sizeof(word));
	if (!*word) /* nothing to run, as SQLite's backend says */
		return dq_set(conn, -EINVAL, "No statement in \"%s\"", sql);
	s = calloc(1, sizeof(*s));
	if (!s)
		return dq_set(conn, -ENOMEM, "Out of memory");
	s->sql = strdup(sql);
	if (!s->sql) {
		free(s);
		return dq_set(conn, -ENOMEM, "Out of memory");
	}
	s->conn = conn;
	s->query = dq_returns_rows(sql);
	*ret_stmt = s;
	return 0;
}

static int dq_bind_slot(struct dq_stmt *s, int index)
{
	if (index < 1 || index > DQLITE_CLIENT_MAX_PARAMS)
		return dq_set(s->conn, -EINVAL, "Parameter index %d out of range", index);
	/* Unbound parameters before this one are NULL, as in SQLite. */
	for (size_t i = s->n_params; i < (size_t)index; i++)
		s->params[i].type = DQLITE_CLIENT_NULL;
	if ((size_t)index > s->n_params)
		s->n_params = (size_t)index;
	free(s->texts[index - 1]);
	s->texts[index - 1] = NULL;
	/* Never left pointing at the text just freed, should the next strdup() fail. */
	s->params[index - 1].type = DQLITE_CLIENT_NULL;
	return 0;
}

static int db_dqlite_bind_text(void *p, int index, const char *value)
{
	struct dq_stmt *s = p;
	int r = dq_bind_slot(s, index);

	if (r < 0)
		return r;
	if (!value) {
		s->params[index - 1].type = DQLITE_CLIENT_NULL;
		return 0;
	}
	s->texts[index - 1] = strdup(value);
	if (!s->texts[index - 1])
		return dq_set(s->conn, -ENOMEM, "Out of memory");
	s->params[index - 1].type = DQLITE_CLIENT_TEXT;
	s->params[index - 1].text = s->texts[index - 1];
	return 0;
}

static int db_dqlite_bind_int64(void *p, int index, int64_t value)
{
	struct dq_stmt *s = p;
	int r = dq_bind_slot(s, index);

	if (r < 0)
		return r;
	s->params[index - 1].type = DQLITE_CLIENT_INTEGER;
	s->params[index - 1].integer = value;
	return 0;
}

static int db_dqlite_step(void *p)
{
	struct dq_stmt *s = p;
	int r;

	dq_stmt_clear_row(s);
	if (!s->ran) {
		r = dq_run(s->conn, s->sql, s->params, s->n_params, s->query, &s->rows);
		if (r < 0)
			return r;
		s->ran = true;
		s->next = 0;
	}
	if (!s->query || s->next >= s->rows.n_rows)
		return 0;
	s->next++;
	return 1;
}

static const struct dqlite_client_value *dq_column(struct dq_stmt *s, int col)
{
	if (!s->ran || s->next == 0 || s->next > s->rows.n_rows || col < 0 ||
	    (size_t)col >= s->rows.n_columns)
		return NULL;
	return dqlite_client_rows_get(&s->rows, s->next - 1, (size_t)col);
}

static int64_t db_dqlite_column_int64(void *p, int col)
{
	const struct dqlite_client_value *v = dq_column(p, col);

	if (!v)
		return 0;
	switch (v->type) {
	case DQLITE_CLIENT_INTEGER:
	case DQLITE_CLIENT_UNIXTIME:
		return v->integer;
	case DQLITE_CLIENT_BOOLEAN:
		return (int64_t)v->boolean;
	case DQLITE_CLIENT_FLOAT:
		return (int64_t)v->real;
	case DQLITE_CLIENT_TEXT:
	case DQLITE_CLIENT_ISO8601:
		return strtoll(v->text, NULL, 10); /* SQLite reads a text's leading integer */
	default:
		return 0;
	}
}

static const char *db_dqlite_column_text(void *p, int col)
{
	struct dq_stmt *s = p;
	const struct dqlite_client_value *v = dq_column(s, col);
	char *t = NULL;

	if (!v || v->type == DQLITE_CLIENT_NULL)
		return NULL;
	if (v->type == DQLITE_CLIENT_TEXT || v->type == DQLITE_CLIENT_ISO8601)
		return v->text;
	/* Another type as text, as SQLite converts it: kept until the next step. */
	if (!s->conv) {
		s->conv = calloc(s->rows.n_columns, sizeof(*s->conv));
		if (!s->conv)
			return NULL;
	}
	if (s->conv[col])
		return s->conv[col];
	switch (v->type) {
	case DQLITE_CLIENT_INTEGER:
	case DQLITE_CLIENT_UNIXTIME:
		t = berth_strdup_printf("%" PRId64, v->integer);
		break;
	case DQLITE_CLIENT_BOOLEAN:
		t = berth_strdup_printf("%" PRIu64, v->boolean);
		break;
	case DQLITE_CLIENT_FLOAT:
		t = berth_strdup_printf("%.15g", v->real);
		break;
	case DQLITE_CLIENT_BLOB:
		t = strndup(v->blob.data ? v->blob.data : "", v->blob.len);
		break;
	default:
		break;
	}
	s->conv[col] = t;
	return t;
}

static bool db_dqlite_column_is_null(void *p, int col)
{
	const struct dqlite_client_value *v = dq_column(p, col);

	return !v || v->type == DQLITE_CLIENT_NULL;
}

static int db_dqlite_reset(void *p)
{
	struct dq_stmt *s = p;

	dq_stmt_clear_row(s);
	dqlite_client_rows_release(&s->rows);
	s->ran = false;
	s->next = 0;
	return 0;
}

static void db_dqlite_finalize(void *p)
{
	struct dq_stmt *s = p;

	if (!s)
		return;
	db_dqlite_reset(s);
	for (size_t i = 0; i < s->n_params; i++)
		free(s->texts[i]);
	free(s->sql);
	free(s);
}

static int64_t db_dqlite_changes(void *p)
{
	return ((struct dq_conn *)p)->changes;
}

static int64_t db_dqlite_last_insert_id(void *p)
{
	return ((struct dq_conn *)p)->last_id;
}

static bool db_dqlite_in_transaction(void *p)
{
	return ((struct dq_conn *)p)->in_tx;
}

static int db_dqlite_exec_script(void *p, const char *sql)
{
	return dq_run(p, sql, NULL, 0, false, NULL);
}

static const char *db_dqlite_errmsg(void *p)
{
	struct dq_conn *conn = p;

	return conn->err.msg ? conn->err.msg : "unknown dqlite error";
}

const struct db_backend db_backend_dqlite = {
	.name = "dqlite",
	.open = db_dqlite_open,
	.close = db_dqlite_close,
	.prepare = db_dqlite_prepare,
	.bind_text = db_dqlite_bind_text,
	.bind_int64 = db_dqlite_bind_int64,
	.step = db_dqlite_step,
	.column_int64 = db_dqlite_column_int64,
	.column_text = db_dqlite_column_text,
	.column_is_null = db_dqlite_column_is_null,
	.reset = db_dqlite_reset,
	.finalize = db_dqlite_finalize,
	.changes = db_dqlite_changes,
	.last_insert_id = db_dqlite_last_insert_id,
	.in_transaction = db_dqlite_in_transaction,
	.exec_script = db_dqlite_exec_script,
	.errmsg = db_dqlite_errmsg,
};
