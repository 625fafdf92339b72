/* daemon/db/db.c: the database's connections (the path db_init() sets, per-thread
 * connections, shutdown) and the helpers every other daemon/db/ file builds on
 * (db_internal.h): statement preparation and binding, transactions, SQLite error mapping,
 * and the key/value and device child tables that projects, profiles and instances all
 * use. It uses no other daemon/db/ file: init.c creates the schema and the defaults.
 *
 * Each thread owns one connection in a __thread variable, opened lazily against the
 * path db_init() recorded. SQLite connections must not be shared between threads
 * without its mutexes; one per thread lets WAL readers run beside the single writer. */
#include "daemon/db/db.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/db/db_internal.h"
#include "lib/json.h"
#include "lib/util.h"

#define DB_BUSY_TIMEOUT_MS 5000

/* Owned; set by db_init() on the main thread before any other thread uses the database,
 * read-only afterwards, freed by db_shutdown(). */
static char *db_path;

static __thread sqlite3 *thread_db;	    /* owned by the thread */
static __thread uint64_t thread_statements; /* see db_thread_statements() */
static __thread bool thread_writing;	    /* in a db_tx_begin() transaction */
/* Bumped once a write transaction has ended: see db_generation(). */
static _Atomic uint64_t generation;

int db_errno(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
	case SQLITE_CONSTRAINT_TRIGGER: /* how SQLite reports ON DELETE RESTRICT; the
					   schema has no triggers of its own */
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
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

static int db_errno_code(int r)
{
	switch (r) {
	case -EEXIST:
	case -EBUSY:
		return BERTH_ERR_CONFLICT;
	case -EINVAL:
		return BERTH_ERR_BAD_REQUEST;
	case -EAGAIN:
		return BERTH_ERR_UNAVAILABLE;
	default:
		return BERTH_ERR_INTERNAL;
	}
}

int db_fail(sqlite3 *db, int rc, struct berth_error *err)
{
	int r = db_errno(rc);

	return berth_error_set(err, r, db_errno_code(r), "Database error: %s",
			       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

int db_oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

static int db_open(const char *path, sqlite3 **ret, struct berth_error *err)
{
	static const char pragmas[] = "PRAGMA journal_mode = WAL;"
				      "PRAGMA foreign_keys = ON;"
				      "PRAGMA synchronous = NORMAL;";
	sqlite3 *db = NULL;
	int rc, r;

	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		r = berth_error_set(err, db_errno(rc), BERTH_ERR_INTERNAL,
				    "Failed to open database \"%s\": %s", path,
				    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		return r;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, DB_BUSY_TIMEOUT_MS);
	r = db_exec_script(db, pragmas, err);
	if (r < 0) {
		sqlite3_close_v2(db);
		return berth_error_wrap(err, r, "Failed to configure database \"%s\"", path);
	}
	*ret = db;
	return 0;
}

int db_conn(sqlite3 **ret, struct berth_error *err)
{
	int r;

	if (!thread_db) {
		if (!db_path)
			return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
					       "Database used before db_init()");
		r = db_open(db_path, &thread_db, err);
		if (r < 0)
			return r;
	}
	*ret = thread_db;
	return 0;
}

uint64_t db_thread_statements(void)
{
	return thread_statements;
}

void db_thread_release(void)
{
	sqlite3_close_v2(thread_db);
	thread_db = NULL;
}

void db_shutdown(void)
{
	db_thread_release();
	free(db_path);
	db_path = NULL;
}

static int db_bind_va(sqlite3_stmt *stmt, const char *types, va_list ap)
{
	int rc = SQLITE_OK;

	for (int i = 0; types[i] && rc == SQLITE_OK; i++) {
		switch (types[i]) {
		case 't':
			rc = sqlite3_bind_text(stmt, i + 1, va_arg(ap, const char *), -1,
					       SQLITE_TRANSIENT);
			break;
		case 'i':
			rc = sqlite3_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
			break;
		case 'b':
			rc = sqlite3_bind_int(stmt, i + 1, va_arg(ap, int) ? 1 : 0);
			break;
		default:
			rc = SQLITE_MISUSE;
		}
	}
	return rc;
}

static int db_prepare_va(sqlite3 *db, sqlite3_stmt **ret, struct berth_error *err, const char *sql,
			 const char *types, va_list ap)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err);
	thread_statements++;
	rc = db_bind_va(stmt, types ? types : "", ap);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err);
	*ret = TAKE_PTR(stmt);
	return 0;
}

int db_prepare(sqlite3 *db, sqlite3_stmt **ret, struct berth_error *err, const char *sql,
	       const char *types, ...)
{
	va_list ap;
	int r;

	va_start(ap, types);
	r = db_prepare_va(db, ret, err, sql, types, ap);
	va_end(ap);
	return r;
}

int db_step(sqlite3_stmt *stmt, struct berth_error *err)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(sqlite3_db_handle(stmt), rc, err);
}

int db_exec(sqlite3 *db, struct berth_error *err, const char *sql, const char *types, ...)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	va_list ap;
	int r;

	va_start(ap, types);
	r = db_prepare_va(db, &stmt, err, sql, types, ap);
	va_end(ap);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	return sqlite3_changes(db);
}

int db_exec_script(sqlite3 *db, const char *sql, struct berth_error *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_fail(db, rc, err);
	return 0;
}

const char *db_column_text(sqlite3_stmt *stmt, int col)
{
	const char *s = (const char *)sqlite3_column_text(stmt, col);

	return s ? s : "";
}

static int db_begin(const char *sql, sqlite3 **ret, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_conn(&db, err);
	if (r < 0)
		return r;
	/* A transaction left open would make every later call on this thread fail. */
	assert(sqlite3_get_autocommit(db));
	r = db_exec_script(db, sql, err);
	if (r < 0)
		return r;
	*ret = db;
	return 0;
}

int db_tx_begin(sqlite3 **ret, struct berth_error *err)
{
	int r = db_begin("BEGIN IMMEDIATE", ret, err);

	if (r >= 0)
		thread_writing = true;
	return r;
}

int db_read_begin(sqlite3 **ret, struct berth_error *err)
{
	return db_begin("BEGIN", ret, err);
}

/* After the COMMIT (or ROLLBACK), never before: a reader that saw the old generation
 * may have read the old rows, and what it keeps must not outlive them. */
static void tx_ended(void)
{
	if (thread_writing) {
		thread_writing = false;
		atomic_fetch_add(&generation, 1);
	}
}

int db_tx_end(sqlite3 *db, int r, struct berth_error *err)
{
	int k;

	if (r >= 0) {
		k = db_exec_script(db, "COMMIT", err);
		if (k >= 0) {
			tx_ended();
			return r;
		}
		r = k;
	}
	/* SQLite may already have rolled back (e.g. after SQLITE_FULL); then there is no
	 * transaction left and ROLLBACK would fail, so only issue it when one is open. */
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	tx_ended();
	return r;
}

uint64_t db_generation(void)
{
	return atomic_load(&generation);
}

int db_json_set_new(json_t *obj, const char *key, json_t *value, struct berth_error *err)
{
	if (!value || json_object_set_new(obj, key, value) < 0)
		return db_oom(err);
	return 0;
}

int db_json_set_str(json_t *obj, const char *key, const char *value, struct berth_error *err)
{
	return db_json_set_new(obj, key, json_string(value), err);
}

int db_json_append_str(json_t *array, const char *value, struct berth_error *err)
{
	json_t *s = json_string(value);

	if (!s || json_array_append_new(array, s) < 0)
		return db_oom(err);
	return 0;
}

int db_used_by_urls(sqlite3_stmt *stmt, const char *project, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = json_array();
	int r;

	if (!list)
		return db_oom(err);
	while ((r = db_step(stmt, err)) > 0) {
		const char *p = project ?: db_column_text(stmt, 2);
		bool def = streq(p, "default");
		_cleanup_free_ char *enc = berth_url_encode(db_column_text(stmt, 1));
		_cleanup_free_ char *url = NULL;

		if (!enc)
			return db_oom(err);
		url = berth_strdup_printf("/1.0/%s/%s%s%s", db_column_text(stmt, 0), enc,
					  def ? "" : "?project=", def ? "" : p);
		if (!url)
			return db_oom(err);
		r = db_json_append_str(list, url, err);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

int db_kv_load(sqlite3 *db, const char *sql, int64_t id, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	json_auto_t *obj = json_object();
	int r;

	if (!obj)
		return db_oom(err);
	r = db_prepare(db, &stmt, err, sql, "i", id);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		r = db_json_set_str(obj, db_column_text(stmt, 0), db_column_text(stmt, 1), err);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(obj);
	return 0;
}

int db_kv_store(sqlite3 *db, const char *sql, int64_t id, const json_t *obj, const char *what,
		struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	const char *key;
	json_t *value;
	int r;

	if (!json_is_object(obj) || json_object_size(obj) == 0)
		return 0;
	r = db_prepare(db, &stmt, err, sql, NULL);
	if (r < 0)
		return r;
	json_object_foreach((json_t *)obj, key, value) {
		if (!json_is_string(value))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "%s key \"%s\" must be a string", what, key);
		sqlite3_reset(stmt);
		if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
		    sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(stmt, 3, json_string_value(value), -1, SQLITE_STATIC) !=
			    SQLITE_OK)
			return db_fail(db, sqlite3_errcode(db), err);
		r = db_step(stmt, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int db_devices_add_row(json_t *devices, const char *name, const char *type, const char *key,
		       const char *value, struct berth_error *err)
{
	json_t *dev = json_object_get(devices, name);
	int r;

	if (!dev) {
		dev = json_object();
		r = db_json_set_new(devices, name, dev, err);
		if (r < 0)
			return r;
		if (*type) {
			r = db_json_set_str(dev, "type", type, err);
			if (r < 0)
				return r;
		}
	}
	if (!key)
		return 0;
	return db_json_set_str(dev, key, value, err);
}

int db_devices_load(sqlite3 *db, const struct db_device_sql *sql, int64_t id, json_t **ret,
		    struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	json_auto_t *devices = json_object();
	int r;

	if (!devices)
		return db_oom(err);
	r = db_prepare(db, &stmt, err, sql->load, "i", id);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		const char *key = (const char *)sqlite3_column_text(stmt, 2);

		r = db_devices_add_row(devices, db_column_text(stmt, 0), db_column_text(stmt, 1),
				       key, db_column_text(stmt, 3), err);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(devices);
	return 0;
}

static int db_device_store(sqlite3 *db, const struct db_device_sql *sql, int64_t parent_id,
			   const char *name, const json_t *device, struct berth_error *err)
{
	json_auto_t *config = NULL;
	const char *type = berth_json_string(device, "type");
	int r;

	if (!json_is_object(device))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\" must be an object", name);
	r = db_exec(db, err, sql->insert, "itt", parent_id, name, type ? type : "");
	if (r < 0)
		return r;
	config = json_deep_copy(device);
	if (!config)
		return db_oom(err);
	json_object_del(config, "type");
	return db_kv_store(db, sql->insert_config, sqlite3_last_insert_rowid(db), config, "Device",
			   err);
}

int db_devices_store(sqlite3 *db, const struct db_device_sql *sql, int64_t id,
		     const json_t *devices, struct berth_error *err)
{
	const char *name;
	json_t *dev;
	int r;

	if (!json_is_object(devices))
		return 0;
	json_object_foreach((json_t *)devices, name, dev) {
		r = db_device_store(db, sql, id, name, dev, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int db_path_set(const char *path, struct berth_error *err)
{
	assert(path);
	db_shutdown();
	db_path = strdup(path);
	return db_path ? 0 : db_oom(err);
}

int db_collect(sqlite3 *db, sqlite3_stmt *stmt, db_row_fn fn, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = json_array();
	int r;

	if (!list)
		return db_oom(err);
	while ((r = db_step(stmt, err)) > 0) {
		json_t *obj = NULL;

		r = fn(db, stmt, &obj, err);
		if (r < 0)
			return r;
		if (json_array_append_new(list, obj) < 0)
			return db_oom(err);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}
