/* daemon/db/db_internal.h: what db.c gives the other daemon/db/ files and nobody else
 * sees: the per-thread connection, statement and transaction helpers, SQLite error
 * mapping, the key/value and device table helpers. What the table files give each other
 * and init.c is in db_tables.h.
 *
 * Conventions: every helper returns >= 0 on success and -errno on failure with `err`
 * set (the sqlite3_errmsg text for SQLite failures). A statement lives in a
 * `_cleanup_stmt_` variable, so an early return finalizes it. */
#pragma once

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

/* ---- db.c: connections ---- */

/* The calling thread's connection, opened (and configured) on first use. Borrowed:
 * it stays owned by the thread until db_thread_release(). -EINVAL before db_init(). */
int db_conn(sqlite3 **ret, struct berth_error *err);

/* Record the database's path (db_init()); closes the calling thread's connection. */
int db_path_set(const char *path, struct berth_error *err);

/* Statements prepared by the calling thread since it started (a test hook: proves that
 * listing does not issue one query per row). */
uint64_t db_thread_statements(void);

/* ---- db.c: errors ---- */

/* -errno for an SQLite (extended) result code: UNIQUE/PRIMARYKEY -> -EEXIST,
 * FOREIGNKEY and TRIGGER -> -EBUSY (a RESTRICT reference still in use), other
 * constraints -> -EINVAL, BUSY/LOCKED -> -EAGAIN, NOMEM -> -ENOMEM, anything else -> -EIO. */
int db_errno(int rc);
/* Set `err` from `rc` and the connection's message; returns db_errno(rc). */
int db_fail(sqlite3 *db, int rc, struct berth_error *err);
/* -ENOMEM with an INTERNAL error, for failed jansson/libc allocations. */
int db_oom(struct berth_error *err);

/* ---- db.c: statements ---- */

static inline void db_finalizep(sqlite3_stmt **stmt)
{
	if (*stmt)
		sqlite3_finalize(*stmt);
}
#define _cleanup_stmt_ _cleanup_(db_finalizep)

/* Prepare `sql` on `db` and bind the variadic arguments described by `types`, one
 * character per parameter, numbered from 1:
 *   't' const char * (NULL binds SQL NULL), 'i' int64_t, 'b' bool (int promoted).
 * `err` comes before the variadic arguments, as it must for a printf-like function.
 * The statement goes to `*ret` (caller finalizes, usually via _cleanup_stmt_). */
int db_prepare(sqlite3 *db, sqlite3_stmt **ret, struct berth_error *err, const char *sql,
	       const char *types, ...);
/* Step once: 1 for a row, 0 when done, -errno on failure. */
int db_step(sqlite3_stmt *stmt, struct berth_error *err);
/* Prepare, bind and run a statement that returns no rows. Returns the number of rows it
 * changed (>= 0) or -errno. */
int db_exec(sqlite3 *db, struct berth_error *err, const char *sql, const char *types, ...);
/* Run one or more statements without parameters (schema, pragmas). */
int db_exec_script(sqlite3 *db, const char *sql, struct berth_error *err);

/* Column `col` as text, "" for NULL (SQLite returns NULL for an empty blob). Borrowed
 * until the next step. */
const char *db_column_text(sqlite3_stmt *stmt, int col);

/* ---- db.c: transactions ----
 * Usage, the shape of every public function:
 *	r = db_tx_begin(&db, err);
 *	if (r < 0)
 *		return r;
 *	r = work(db, ..., err);
 *	return db_tx_end(db, r, err);
 */

/* BEGIN IMMEDIATE on the thread's connection: take the write lock now (waiting up to the
 * busy timeout) so a writer never fails half-way on a lock upgrade. */
int db_tx_begin(sqlite3 **ret, struct berth_error *err);
/* BEGIN (deferred): a consistent snapshot for reads spanning several queries. */
int db_read_begin(sqlite3 **ret, struct berth_error *err);
/* COMMIT when `r` >= 0, ROLLBACK otherwise. Returns `r`, or the commit failure (after
 * rolling back) so the caller never reports success for a write that did not land. */
int db_tx_end(sqlite3 *db, int r, struct berth_error *err);

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
int db_used_by_urls(sqlite3_stmt *stmt, const char *project, json_t **ret, struct berth_error *err);
int db_kv_load(sqlite3 *db, const char *sql, int64_t id, json_t **ret, struct berth_error *err);
/* Insert every pair of `obj` (NULL or non-object: nothing) with `sql` taking
 * (?1 id, ?2 key, ?3 value). Non-string values are -EINVAL naming `what` and the key. */
int db_kv_store(sqlite3 *db, const char *sql, int64_t id, const json_t *obj, const char *what,
		struct berth_error *err);

/* The SQL a device table set needs. */
struct db_device_sql {
	const char *load;	   /* ?1 = parent id; columns name, type, key, value (key NULL for
			       a device without config), ordered by name */
	const char *insert;	   /* (?1 parent id, ?2 name, ?3 type) */
	const char *insert_config; /* (?1 device id, ?2 key, ?3 value) */
};

/* Devices of parent `id` as {name: {"type": t, key: value...}}. */
int db_devices_load(sqlite3 *db, const struct db_device_sql *sql, int64_t id, json_t **ret,
		    struct berth_error *err);
/* Insert every device of `devices` (NULL or non-object: nothing) for parent `id`. */
int db_devices_store(sqlite3 *db, const struct db_device_sql *sql, int64_t id,
		     const json_t *devices, struct berth_error *err);
/* Add one row (name, type, key-or-NULL, value) to a device map being built. */
int db_devices_add_row(json_t *devices, const char *name, const char *type, const char *key,
		       const char *value, struct berth_error *err);

/* ---- db.c: row collection ---- */

/* Turns the current row of `stmt` into a new object in *ret. */
typedef int (*db_row_fn)(sqlite3 *db, sqlite3_stmt *stmt, json_t **ret, struct berth_error *err);
/* Step `stmt` to its end, making each row an object with `fn`; *ret is the array. */
int db_collect(sqlite3 *db, sqlite3_stmt *stmt, db_row_fn fn, json_t **ret,
	       struct berth_error *err);
