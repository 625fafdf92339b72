/* daemon/db/backend.h: what a database backend implements, so that db.c's handle, pool
 * and transactions and every table file run unchanged over plain SQLite today
 * (backend_sqlite.c) and over dqlite, Raft-replicated SQLite, later.
 *
 * The interface is at the statement level, the level dqlite's wire protocol works at:
 * open a connection to a database, prepare SQL into a statement, bind its parameters,
 * step it (rows, or done with rows affected and the last insert id), finalize it.
 * Transactions are the statements BEGIN / BEGIN IMMEDIATE / COMMIT / ROLLBACK, which db.c
 * runs with `exec_script` on one connection; a backend needs no transaction op of its own.
 *
 * The backend's connections and statements are its own, behind `void *`: db.c wraps them
 * in `struct db_conn` and `struct db_stmt`, the opaque types the table files see.
 *
 * What a backend must guarantee, because the table files' error handling relies on it:
 *  - Every op that can fail returns 0 (step: 1 for a row, 0 when done) or -errno, and
 *    after a failure `errmsg` on that connection says why, until its next op.
 *  - The errno of a failure:
 *      -EEXIST  a UNIQUE or PRIMARY KEY constraint was violated (a taken name: 409)
 *      -EBUSY   a FOREIGN KEY reference blocks the change (ON DELETE RESTRICT: in use)
 *      -EINVAL  any other constraint (NOT NULL, CHECK)
 *      -EAGAIN  the database is locked or busy beyond the backend's own wait (for dqlite:
 *               no leader, or the leader changed: try again)
 *      -ENOMEM  out of memory
 *      -EIO     anything else (I/O, corruption, a broken connection)
 *  - A connection is used by one thread at a time (db.c lends it to one transaction);
 *    different connections may be used concurrently. It holds several statements at once,
 *    and one may run while another is part-way through its rows (the table files nest
 *    queries): a backend whose protocol streams rows must read them ahead.
 *  - Foreign keys are enforced and ON DELETE CASCADE / RESTRICT behave as in SQLite.
 *  - A deferred BEGIN gives a consistent snapshot of the database for reads; BEGIN
 *    IMMEDIATE takes the write lock at once (waiting for it a bounded time, then -EAGAIN),
 *    so that a writer never fails half-way on a lock upgrade.
 *  - `in_transaction` tells the truth after a failed COMMIT or an error that made the
 *    database roll back by itself, so db.c issues ROLLBACK only when one is still open
 *    and never pools a connection with a transaction open.
 *  - Text columns come back as UTF-8, NUL-terminated; integers as int64. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

/* A connection borrowed from a handle's pool for one transaction (db.c). */
struct db_conn;
/* A prepared statement on one db_conn (db.c). */
struct db_stmt;

struct db_backend {
	const char *name; /* "sqlite" or "dqlite", for messages */

	/* Open a connection to the database at `path` (creating it if the backend does),
	 * configured as the guarantees above need. `data` is what db_open_backend() was
	 * given (the SQLite backend takes none). Sets `err` on failure. */
	int (*open)(void *data, const char *path, void **ret_conn, struct berth_error *err);
	/* Close a connection with no statement left (NULL is fine). */
	void (*close)(void *conn);
	/* Compile one statement of `sql`. */
	int (*prepare)(void *conn, const char *sql, void **ret_stmt);
	/* Bind parameter `index` (from 1). The value is copied. NULL binds SQL NULL. */
	int (*bind_text)(void *stmt, int index, const char *value);
	int (*bind_int64)(void *stmt, int index, int64_t value);
	/* Run the statement to its next row: 1 row, 0 done, -errno. */
	int (*step)(void *stmt);
	/* Columns of the current row, from 0. Text is borrowed until the next step, reset or
	 * finalize; NULL for SQL NULL. An int64 of NULL is 0. */
	int64_t (*column_int64)(void *stmt, int col);
	const char *(*column_text)(void *stmt, int col);
	bool (*column_is_null)(void *stmt, int col);
	/* Make the statement ready to step again from the start; bindings are kept. */
	int (*reset)(void *stmt);
	/* Free a statement (NULL is fine). */
	void (*finalize)(void *stmt);
	/* Rows changed by the last INSERT/UPDATE/DELETE, and the id of the last row
	 * inserted, on this connection. */
	int64_t (*changes)(void *conn);
	int64_t (*last_insert_id)(void *conn);
	/* Whether a transaction is open on the connection. */
	bool (*in_transaction)(void *conn);
	/* Run one or more statements that take no parameters and return no rows needed. */
	int (*exec_script)(void *conn, const char *sql);
	/* Why the connection's last op failed. Borrowed until its next op. */
	const char *(*errmsg)(void *conn);
	/* Optional (NULL: none). A count that grows whenever a writer other than this process
	 * commits to the database (another cluster member, for dqlite: its applied log
	 * index), so that db_generation() moves for their writes too and caches keyed on it
	 * drop what they changed. The SQLite backend has none: berthd is its file's only
	 * writer. */
	uint64_t (*data_version)(void *data);
};

/* What the dqlite backend is given as `data` (db_open_backend); the `path` it is given
 * is the database's name on the cluster (LXD's is "db.bin"). */
struct db_dqlite_config {
	/* Where to reach the local dqlite node: "@abstract", "/unix/path" or "host:port". */
	const char *address;
	/* The local node's address in the Raft configuration (what LEADER reports when it
	 * leads), dialled as `address`; NULL when they are the same. */
	const char *node_address;
	int timeout_ms; /* per request */
};

/* backend_sqlite.c: SQLite in WAL mode, foreign keys on, synchronous NORMAL, a busy
 * timeout, extended result codes mapped to -errno as above. */
extern const struct db_backend db_backend_sqlite;
/* backend_dqlite.c: dqlite through berth's own wire-protocol client (dqlite_client.h),
 * following the leader; `data` is a struct db_dqlite_config. */
extern const struct db_backend db_backend_dqlite;
