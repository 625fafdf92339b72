/* daemon/db/backend_sqlite.c: the SQLite backend of daemon/db/ (backend.h), the only file
 * of berth that calls SQLite. A connection is a `sqlite3 *` opened in WAL mode (readers
 * never wait for the writer), with foreign keys on, synchronous NORMAL (durable at each
 * checkpoint, consistent always), a busy timeout (a writer waits for the lock instead of
 * failing at once) and extended result codes, which db_sqlite_errno() maps to -errno. */
#include <errno.h>
#include <sqlite3.h>

#include "daemon/db/backend.h"

#define DB_SQLITE_BUSY_TIMEOUT_MS 5000

/* -errno for an extended result code, as backend.h requires. */
static int db_sqlite_errno(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
	case SQLITE_CONSTRAINT_TRIGGER: /* how SQLite reports ON DELETE RESTRICT; the
					   schema has no triggers of its own */
		return -EBUSY;
	}
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return -EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EAGAIN;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static int db_sqlite_rc(int rc)
{
	return rc == SQLITE_OK ? 0 : db_sqlite_errno(rc);
}

static int db_sqlite_open(void *data, const char *path, void **ret_conn, struct berth_error *err)
{
	static const char pragmas[] = "PRAGMA journal_mode = WAL;"
				      "PRAGMA foreign_keys = ON;"
				      "PRAGMA synchronous = NORMAL;";
	sqlite3 *db = NULL;
	int rc, r;

	(void)data;
	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		r = berth_error_set(err, db_sqlite_errno(rc), BERTH_ERR_INTERNAL,
				    "Failed to open database \"%s\": %s", path,
				    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		return r;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, DB_SQLITE_BUSY_TIMEOUT_MS);
	rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = berth_error_set(err, db_sqlite_errno(rc), BERTH_ERR_INTERNAL,
				    "Failed to configure database \"%s\": %s", path,
				    sqlite3_errmsg(db));
		sqlite3_close_v2(db);
		return r;
	}
	*ret_conn = db;
	return 0;
}

static void db_sqlite_close(void *conn)
{
	sqlite3_close_v2(conn);
}

static int db_sqlite_prepare(void *conn, const char *sql, void **ret_stmt)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(conn, sql, -1, &stmt, NULL);

	if (rc != SQLITE_OK)
		return db_sqlite_errno(rc);
	if (!stmt) /* SQL of only whitespace or comments: nothing to run */
		return -EINVAL;
	*ret_stmt = stmt;
	return 0;
}

static int db_sqlite_bind_text(void *stmt, int index, const char *value)
{
	return db_sqlite_rc(sqlite3_bind_text(stmt, index, value, -1, SQLITE_TRANSIENT));
}

static int db_sqlite_bind_int64(void *stmt, int index, int64_t value)
{
	return db_sqlite_rc(sqlite3_bind_int64(stmt, index, value));
}

static int db_sqlite_step(void *stmt)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_sqlite_errno(rc);
}

static int64_t db_sqlite_column_int64(void *stmt, int col)
{
	return sqlite3_column_int64(stmt, col);
}

static const char *db_sqlite_column_text(void *stmt, int col)
{
	return (const char *)sqlite3_column_text(stmt, col);
}

static bool db_sqlite_column_is_null(void *stmt, int col)
{
	return sqlite3_column_type(stmt, col) == SQLITE_NULL;
}

static int db_sqlite_reset(void *stmt)
{
	/* sqlite3_reset repeats the last step's error; the step already reported it. */
	sqlite3_reset(stmt);
	return 0;
}

static void db_sqlite_finalize(void *stmt)
{
	sqlite3_finalize(stmt);
}

static int64_t db_sqlite_changes(void *conn)
{
	return sqlite3_changes(conn);
}

static int64_t db_sqlite_last_insert_id(void *conn)
{
	return sqlite3_last_insert_rowid(conn);
}

static bool db_sqlite_in_transaction(void *conn)
{
	return !sqlite3_get_autocommit(conn);
}

static int db_sqlite_exec_script(void *conn, const char *sql)
{
	return db_sqlite_rc(sqlite3_exec(conn, sql, NULL, NULL, NULL));
}

static const char *db_sqlite_errmsg(void *conn)
{
	return sqlite3_errmsg(conn);
}

const struct db_backend db_backend_sqlite = {
	.name = "sqlite",
	.open = db_sqlite_open,
	.close = db_sqlite_close,
	.prepare = db_sqlite_prepare,
	.bind_text = db_sqlite_bind_text,
	.bind_int64 = db_sqlite_bind_int64,
	.step = db_sqlite_step,
	.column_int64 = db_sqlite_column_int64,
	.column_text = db_sqlite_column_text,
	.column_is_null = db_sqlite_column_is_null,
	.reset = db_sqlite_reset,
	.finalize = db_sqlite_finalize,
	.changes = db_sqlite_changes,
	.last_insert_id = db_sqlite_last_insert_id,
	.in_transaction = db_sqlite_in_transaction,
	.exec_script = db_sqlite_exec_script,
	.errmsg = db_sqlite_errmsg,
};
