/* daemon/db/copy.c: db_open_copy(), a new database (on any backend) holding every row
 * of another, written in one transaction: what `cluster enable` uses to move a
 * standalone server's SQLite database into dqlite.
 *
 * The schema comes from the migrations (schema.c), as for any new database, so both
 * sides have the same tables and columns; the rows are copied table by table from one
 * read transaction of the source (a consistent snapshot). Each row travels as an INSERT
 * statement that SQLite itself writes with quote(), which keeps every value's type
 * (integer, text, NULL) exactly, so ids and the references between tables stay as they
 * were; foreign keys are checked at COMMIT (defer_foreign_keys), since tables are copied
 * in name order, not in the order of their references. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/util.h"

/* Statements sent to the destination at once (one request for dqlite). */
#define DB_COPY_BATCH (256 * 1024)

/* Every table but SQLite's own. */
#define DB_COPY_TABLES                                                                             \
	"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "      \
	"ESCAPE '\\' ORDER BY name"

struct db_copy_batch {
	char *buf;
	size_t len;
	size_t cap;
	uint64_t rows;
};

static int db_copy_flush(struct db_conn *dst, struct db_copy_batch *b, struct berth_error *err)
{
	int r;

	if (b->len == 0)
		return 0;
	r = db_exec_script(dst, b->buf, err);
	b->len = 0;
	return r;
}

static int db_copy_append(struct db_conn *dst, struct db_copy_batch *b, const char *stmt,
			  struct berth_error *err)
{
	size_t n = strlen(stmt);

	if (b->len + n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap : DB_COPY_BATCH;
		char *p;

		while (cap < b->len + n + 2)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p)
			return db_oom(err);
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, stmt, n);
	b->len += n;
	b->buf[b->len++] = ';';
	b->buf[b->len] = '\0';
	b->rows++;
	return b->len >= DB_COPY_BATCH ? db_copy_flush(dst, b, err) : 0;
}

/* Append `open` column `close` to *list, after `sep` unless *list is empty. */
static int db_copy_list_add(char **list, const char *sep, const char *open, const char *column,
			    const char *close)
{
	char *next;

	next = berth_strdup_printf("%s%s%s%s%s", *list ? *list : "", *list ? sep : "", open, column,
				   close);
	if (!next)
		return -ENOMEM;
	free(*list);
	*list = next;
	return 0;
}

static int db_copy_table(struct db_conn *src, struct db_conn *dst, const char *table,
			 struct db_copy_batch *b, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *rows = NULL, *cols = NULL;
	_cleanup_free_ char *sql = NULL, *names = NULL, *values = NULL;
	int r;

	/* The column list and the expression that renders a row as the VALUES of an
	 * INSERT, built from one walk of the columns so that they are in the same order. */
	r = db_prepare(src, &cols, err, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", "t",
		       table);
	while (r >= 0 && (r = db_step(cols, err)) > 0) {
		const char *column = db_column_text(cols, 0);

		if (db_copy_list_add(&names, ", ", "\"", column, "\"") < 0 ||
		    db_copy_list_add(&values, " || ', ' || ", "quote(\"", column, "\")") < 0)
			return db_oom(err);
	}
	if (r < 0)
		return r;
	if (!names)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Table \"%s\" has no columns", table);
	sql = berth_strdup_printf("SELECT 'INSERT INTO \"%s\" (%s) VALUES (' || %s || ')' "
				  "FROM \"%s\"",
				  table, names, values, table);
	if (!sql)
		return db_oom(err);
	r = db_prepare(src, &rows, err, sql, NULL);
	if (r < 0)
		return r;
	while ((r = db_step(rows, err)) > 0) {
		r = db_copy_append(dst, b, db_column_text(rows, 0), err);
		if (r < 0)
			return r;
	}
	return r;
}

static int db_copy_rows(struct db_conn *src, struct db_conn *dst, uint64_t *ret_rows,
			struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *tables = NULL;
	struct db_copy_batch b = {0};
	int r;

	r = db_exec_script(dst, "PRAGMA defer_foreign_keys = ON", err);
	if (r >= 0)
		r = db_prepare(src, &tables, err, DB_COPY_TABLES, NULL);
	while (r >= 0 && (r = db_step(tables, err)) > 0)
		r = db_copy_table(src, dst, db_column_text(tables, 0), &b, err);
	if (r >= 0)
		r = db_copy_flush(dst, &b, err);
	free(b.buf);
	if (r >= 0 && ret_rows)
		*ret_rows = b.rows;
	return r;
}

int db_open_copy(const struct db_backend *backend, void *data, const char *path, struct db *from,
		 uint64_t *ret_rows, struct db **ret, struct berth_error *err)
{
	_cleanup_db_ struct db *db = NULL;
	struct db_conn *src = NULL, *dst = NULL;
	int old_version = 0;
	int r;

	r = db_handle_new(backend, data, path, &db, err);
	if (r < 0)
		return r;
	r = db_read_begin(from, &src, err);
	if (r < 0)
		return r;
	r = db_tx_begin(db, &dst, err);
	if (r < 0) {
		db_tx_end(from, src, r, err);
		return r;
	}
	r = db_schema_update(dst, &old_version, err);
	if (r >= 0 && old_version != 0)
		r = berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				    "Database \"%s\" is not empty", path);
	if (r >= 0)
		r = db_copy_rows(src, dst, ret_rows, err);
	r = db_tx_end(db, dst, r, err);
	/* The source was only read: ending its transaction cannot lose anything. */
	db_tx_end(from, src, 0, NULL);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(db);
	return 0;
}
