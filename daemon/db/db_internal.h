/* daemon/db/db_internal.h: what db.c gives the other daemon/db/ files and nobody else
 * sees: connections borrowed from the handle's pool, statement and transaction helpers
 * over the backend (backend.h), error reporting, the key/value and device table helpers.
 * What the table files give each other and init.c is in db_tables.h.
 *
 * Conventions: every helper returns >= 0 on success and -errno on failure with `err`
 * set (the backend's message for database failures). A statement lives in a
 * `_cleanup_stmt_` variable, so an early return finalizes it. Nothing here names SQLite:
 * the table files work on `struct db_conn` and `struct db_stmt` only. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/db/backend.h"
#include "daemon/db/db.h"
#include "lib/error.h"

/* ---- db.c: handles and connections ---- */

/* A new handle on `path` over `backend` (no connection opened yet; init.c's db_open()
 * then brings the schema up to date). */
int db_handle_new(const struct db_backend *backend, void *data, const char *path, struct db **ret,
		  struct berth_error *err);
/* db_open() over another backend (db_open uses db_backend_sqlite): `data` goes to the
 * backend's open. Tests use it to inject faults; a dqlite backend will come in here. */
int db_open_backend(const struct db_backend *backend, void *data, const char *path,
		    const char *default_pool_source, struct db **ret, struct berth_error *err);

/* Borrow a connection outside any transaction (a single statement needs no more): an
 * idle one of the pool, or a new one. Give it back with db_conn_put(). */
int db_conn_get(struct db *db, struct db_conn **ret, struct berth_error *err);
/* Give a borrowed connection back (NULL is fine): pooled while fewer than the idle cap
 * are, closed otherwise, and always closed if it still holds a transaction. */
void db_conn_put(struct db_conn *conn);
static inline void db_conn_putp(struct db_conn **conn)
{
	db_conn_put(*conn);
}
#define _cleanup_conn_ _cleanup_(db_conn_putp)

/* Test hooks: connections idle in the pool now; statements prepared on the handle since
 * it was opened (proves that listing does not issue one query per row). */
unsigned db_idle_connections(struct db *db);
uint64_t db_statements(struct db *db);

/* ---- db.c: errors ---- */

/* Set `err` from `r` (a backend's -errno) and the connection's message; returns r. */
int db_fail(struct db_conn *conn, int r, struct berth_error *err);
/* -ENOMEM with an INTERNAL error, for failed jansson/libc allocations. */
int db_oom(struct berth_error *err);

/* ---- db.c: statements ---- */

/* Free a statement (NULL is fine). */
void db_finalize(struct db_stmt *stmt);
static inline void db_finalizep(struct db_stmt **stmt)
{
	db_finalize(*stmt);
}
#define _cleanup_stmt_ _cleanup_(db_finalizep)

/* Prepare `sql` on `conn` and bind the variadic arguments described by `types`, one
 * character per parameter, numbered from 1:
 *   't' const char * (NULL binds SQL NULL), 'i' int64_t, 'b' bool (int promoted).
 * `err` comes before the variadic arguments, as it must for a printf-like function.
 * The statement goes to `*ret` (caller finalizes, usually via _cleanup_stmt_). */
int db_prepare(struct db_conn *conn, struct db_stmt **ret, struct berth_error *err, const char *sql,
	       const char *types, ...);
/* Reset `stmt` and bind new values from parameter 1, `types` as for db_prepare(). */
int db_rebind(struct db_stmt *stmt, struct berth_error *err, const char *types, ...);
/* Step once: 1 for a row, 0 when done, -errno on failure. */
int db_step(struct db_stmt *stmt, struct berth_error *err);
/* Prepare, bind and run a statement that returns no rows. Returns the number of rows it
 * changed (>= 0) or -errno. */
int db_exec(struct db_conn *conn, struct berth_error *err, const char *sql, const char *types, ...);
/* Run one or more statements without parameters (schema, pragmas). */
int db_exec_script(struct db_conn *conn, const char *sql, struct berth_error *err);
/* The id of the row the connection last inserted. */
int64_t db_last_insert_id(struct db_conn *conn);
/* Rows changed by the connection's last INSERT/UPDATE/DELETE. */
int64_t db_changes(struct db_conn *conn);

/* Column `col` of the current row as text, "" for NULL. Borrowed until the next step. */
const char *db_column_text(struct db_stmt *stmt, int col);
/* The same, but NULL for SQL NULL. */
const char *db_column_text_or_null(struct db_stmt *stmt, int col);
int64_t db_column_int64(struct db_stmt *stmt, int col);
int db_column_int(struct db_stmt *stmt, int col);
bool db_column_is_null(struct db_stmt *stmt, int col);

/* ---- db.c: transactions ----
 * Usage, the shape of every public function:
 *	struct db_conn *conn = NULL;
 *	r = db_tx_begin(db, &conn, err);
 *	if (r < 0)
 *		return r;
 *	r = work(conn, ..., err);
 *	return db_tx_end(db, conn, r, err);
 * The connection is the transaction's alone between the two calls: borrowed from the
 * pool by the begin, given back by the end. */

/* BEGIN IMMEDIATE: take the write lock now (waiting up to the backend's busy wait) so a
 * writer never fails half-way on a lock upgrade. */
int db_tx_begin(struct db *db, struct db_conn **ret, struct berth_error *err);
/* BEGIN (deferred): a consistent snapshot for reads spanning several queries. */
int db_read_begin(struct db *db, struct db_conn **ret, struct berth_error *err);
/* COMMIT when `r` >= 0, ROLLBACK otherwise, then give `conn` back to the pool. Returns `r`,
 * or the commit failure (after rolling back) so the caller never reports success for a
 * write that did not land. The generation moves after a write transaction ends. */
int db_tx_end(struct db *db, struct db_conn *conn, int r, struct berth_error *err);

/* ---- db.c: JSON helpers ---- */

/* obj[key] = new string `value`; -ENOMEM on failure. */
int db_json_set_str(json_t *obj, const char *key, const char *value, struct berth_error *err);
/* obj[key] = `value`, stealing the reference (also on failure). */
int db_json_set_new(json_t *obj, const char *key, json_t *value, struct berth_error *err);
/* Append a new string to `array`. */
int db_json_append_str(json_t *array, const char *value, struct berth_error *err);

/* ---- db.c: key/value children and devices ---- */

/* Rows of `sql` (parameter ?1 = `id`, columns key, value) as a new object. */
/* The used_by URLs of a prepared statement's rows: (kind, name) with every row in
 * `project`, or (kind, name, project) when `project` is NULL; "/1.0/KIND/NAME" with
 * "?project=P" outside the default project. */
int db_used_by_urls(struct db_stmt *stmt, const char *project, json_t **ret,
		    struct berth_error *err);
int db_kv_load(struct db_conn *conn, const char *sql, int64_t id, json_t **ret,
	       struct berth_error *err);
/* Insert every pair of `obj` (NULL or non-object: nothing) with `sql` taking
 * (?1 id, ?2 key, ?3 value). Non-string values are -EINVAL naming `what` and the key. */
int db_kv_store(struct db_conn *conn, const char *sql, int64_t id, const json_t *obj,
		const char *what, struct berth_error *err);

/* The SQL a device table set needs. */
struct db_device_sql {
	const char *load;	   /* ?1 = parent id; columns name, type, key, value (key NULL for
			       a device without config), ordered by name */
	const char *insert;	   /* (?1 parent id, ?2 name, ?3 type) */
	const char *insert_config; /* (?1 device id, ?2 key, ?3 value) */
};

/* Devices of parent `id` as {name: {"type": t, key: value...}}. */
int db_devices_load(struct db_conn *conn, const struct db_device_sql *sql, int64_t id, json_t **ret,
		    struct berth_error *err);
/* Insert every device of `devices` (NULL or non-object: nothing) for parent `id`. */
int db_devices_store(struct db_conn *conn, const struct db_device_sql *sql, int64_t id,
		     const json_t *devices, struct berth_error *err);
/* Add one row (name, type, key-or-NULL, value) to a device map being built. */
int db_devices_add_row(json_t *devices, const char *name, const char *type, const char *key,
		       const char *value, struct berth_error *err);

/* ---- db.c: row collection ---- */

/* Turns the current row of `stmt` into a new object in *ret. */
typedef int (*db_row_fn)(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			 struct berth_error *err);
/* Step `stmt` to its end, making each row an object with `fn`; *ret is the array. */
int db_collect(struct db_conn *conn, struct db_stmt *stmt, db_row_fn fn, json_t **ret,
	       struct berth_error *err);
