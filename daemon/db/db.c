/* daemon/db/db.c: the database handle (struct db): its backend (backend.h), its pool of
 * connections, its write generation, and the helpers every other daemon/db/ file builds
 * on (db_internal.h): statement preparation and binding, transactions, error reporting,
 * and the key/value and device child tables that projects, profiles and instances all
 * use. It uses no other daemon/db/ file: init.c creates the schema and the defaults.
 *
 * Connections: a transaction borrows one from the handle's pool for its duration (an
 * idle one, or a new one when all are in use) and gives it back at its end, so any
 * number of threads can work at once, WAL readers beside the single writer. At most
 * DB_IDLE_MAX stay open while idle; the rest are closed when given back, because each
 * costs memory (SQLite's page cache, up to about 2 MiB) that an idle berthd should not
 * hold, and db_trim() closes all but one once the daemon is quiet again.
 *
 * Generations: each handle's count starts at a base no other handle of the process had
 * (handles_made below), so a (handle, generation) pair never comes back, even when a new
 * handle is allocated where a closed one was. */
#include "daemon/db/db.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/db/db_internal.h"
#include "lib/json.h"
#include "lib/util.h"

#define DB_IDLE_MAX 4
/* Room between two handles' generations: 2^40 write transactions. */
#define DB_GENERATION_SPAN (UINT64_C(1) << 40)

/* Handles this process has opened: the only process-wide state here, an identity. */
static _Atomic uint64_t handles_made;

struct db_conn {
	struct db *db; /* borrowed: the handle it belongs to */
	/* The backend that opened impl: db_thaw() may switch the handle's while this
	 * connection is being closed outside the lock. */
	const struct db_backend *backend;
	void *impl;	      /* owned: the backend's connection */
	bool writing;	      /* in a db_tx_begin() transaction */
	unsigned n_stmts;     /* statements not yet finalized */
	struct db_conn *next; /* next idle connection, while in the pool */
};

struct db_stmt {
	struct db_conn *conn; /* borrowed */
	void *impl;	      /* owned: the backend's statement */
};

struct db {
	const struct db_backend *backend; /* borrowed, static */
	void *backend_data;		  /* borrowed, given to backend->open */
	char *path;			  /* owned */
	pthread_mutex_t lock;		  /* guards the fields below it */
	struct db_conn *idle;		  /* owned: idle connections, a stack */
	unsigned n_idle;
	unsigned n_borrowed;	/* lent out by db_conn_get(), not yet given back */
	bool frozen;		/* db_freeze(): db_conn_get() waits */
	pthread_cond_t changed; /* frozen cleared, or n_borrowed dropped, while frozen */
	/* Bumped once a write transaction has ended: see db_generation(). */
	_Atomic uint64_t generation;
	_Atomic uint64_t statements; /* see db_statements() */
};

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

int db_fail(struct db_conn *conn, int r, struct berth_error *err)
{
	const char *msg = conn ? conn->backend->errmsg(conn->impl) : NULL;

	assert(r < 0);
	return berth_error_set(err, r, db_errno_code(r), "Database error: %s",
			       msg ? msg : strerror(-r));
}

int db_oom(struct berth_error *err)
{
	return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "Out of memory");
}

int db_handle_new(const struct db_backend *backend, void *data, const char *path, struct db **ret,
		  struct berth_error *err)
{
	struct db *db = NULL;

	assert(backend && path);
	db = calloc(1, sizeof(*db));
	if (!db)
		return db_oom(err);
	db->path = strdup(path);
	if (!db->path) {
		free(db);
		return db_oom(err);
	}
	db->backend = backend;
	db->backend_data = data;
	pthread_mutex_init(&db->lock, NULL);
	pthread_cond_init(&db->changed, NULL);
	atomic_init(&db->generation, (atomic_fetch_add(&handles_made, 1) + 1) * DB_GENERATION_SPAN);
	*ret = db;
	return 0;
}

static void db_conn_free(struct db_conn *conn)
{
	if (!conn)
		return;
	conn->backend->close(conn->impl);
	free(conn);
}

void db_close(struct db *db)
{
	struct db_conn *conn;

	if (!db)
		return;
	/* Every transaction must have ended: its connection would outlive the handle. */
	assert(db->n_borrowed == 0);
	while ((conn = db->idle)) {
		db->idle = conn->next;
		db_conn_free(conn);
	}
	pthread_mutex_destroy(&db->lock);
	pthread_cond_destroy(&db->changed);
	free(db->path);
	free(db);
}

static int db_conn_new(struct db *db, struct db_conn **ret, struct berth_error *err)
{
	struct db_conn *conn = calloc(1, sizeof(*conn));
	int r;

	if (!conn)
		return db_oom(err);
	conn->db = db;
	conn->backend = db->backend;
	r = db->backend->open(db->backend_data, db->path, &conn->impl, err);
	if (r < 0) {
		free(conn);
		return r;
	}
	*ret = conn;
	return 0;
}

int db_conn_get(struct db *db, struct db_conn **ret, struct berth_error *err)
{
	struct db_conn *conn;
	int r = 0;

	pthread_mutex_lock(&db->lock);
	while (db->frozen)
		pthread_cond_wait(&db->changed, &db->lock);
	conn = db->idle;
	if (conn) {
		db->idle = conn->next;
		db->n_idle--;
	}
	db->n_borrowed++;
	pthread_mutex_unlock(&db->lock);
	/* Opening takes a while (file, WAL index): not under the lock. */
	if (!conn)
		r = db_conn_new(db, &conn, err);
	if (r < 0) {
		pthread_mutex_lock(&db->lock);
		db->n_borrowed--;
		pthread_mutex_unlock(&db->lock);
		return r;
	}
	conn->next = NULL;
	*ret = conn;
	return 0;
}

void db_conn_put(struct db_conn *conn)
{
	struct db *db;
	bool keep;

	if (!conn)
		return;
	db = conn->db;
	/* A statement must not outlive its borrowing: declare the connection's cleanup
	 * variable before the statements'. */
	assert(conn->n_stmts == 0);
	/* A transaction left open would make the next borrower's BEGIN fail; closing the
	 * connection rolls it back. */
	keep = !conn->backend->in_transaction(conn->impl);
	conn->writing = false;
	pthread_mutex_lock(&db->lock);
	db->n_borrowed--;
	if (db->frozen && db->n_borrowed == 0)
		pthread_cond_broadcast(&db->changed);
	keep = keep && db->n_idle < DB_IDLE_MAX;
	if (keep) {
		conn->next = db->idle;
		db->idle = conn;
		db->n_idle++;
	}
	pthread_mutex_unlock(&db->lock);
	if (!keep)
		db_conn_free(conn);
}

int db_freeze(struct db *db, int timeout_ms)
{
	struct timespec deadline;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &deadline); /* the condition's clock */
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&db->lock);
	/* One freezer at a time: a second waits for the first to thaw. */
	while (db->frozen && r == 0)
		r = pthread_cond_timedwait(&db->changed, &db->lock, &deadline);
	if (r == 0) {
		db->frozen = true;
		while (db->n_borrowed > 0 && r == 0)
			r = pthread_cond_timedwait(&db->changed, &db->lock, &deadline);
		if (r != 0) {
			/* Give way again: whoever waited for the freeze goes on. */
			db->frozen = false;
			pthread_cond_broadcast(&db->changed);
		}
	}
	pthread_mutex_unlock(&db->lock);
	return r == 0 ? 0 : -r;
}

void db_thaw(struct db *db, struct db *next)
{
	struct db_conn *old = NULL, *conn;

	pthread_mutex_lock(&db->lock);
	assert(db->frozen && db->n_borrowed == 0);
	if (next) {
		assert(next->n_borrowed == 0);
		old = db->idle;
		db->backend = next->backend;
		db->backend_data = next->backend_data;
		free(db->path);
		db->path = TAKE_PTR(next->path);
		db->idle = TAKE_PTR(next->idle);
		db->n_idle = next->n_idle;
		next->n_idle = 0;
		for (conn = db->idle; conn; conn = conn->next)
			conn->db = db;
		/* What was read from the old database says nothing of the new one. */
		atomic_fetch_add(&db->generation, 1);
	}
	db->frozen = false;
	pthread_cond_broadcast(&db->changed);
	pthread_mutex_unlock(&db->lock);
	/* The old connections were the old backend's: closed by it, outside the lock. */
	while ((conn = old)) {
		old = conn->next;
		conn->backend->close(conn->impl);
		free(conn);
	}
	db_close(next);
}

unsigned db_idle_connections(struct db *db)
{
	unsigned n;

	pthread_mutex_lock(&db->lock);
	n = db->n_idle;
	pthread_mutex_unlock(&db->lock);
	return n;
}

uint64_t db_statements(struct db *db)
{
	return atomic_load(&db->statements);
}

static int db_bind_va(struct db_stmt *stmt, const char *types, va_list ap)
{
	const struct db_backend *b = stmt->conn->backend;
	int r = 0;

	for (int i = 0; types[i] && r >= 0; i++) {
		switch (types[i]) {
		case 't':
			r = b->bind_text(stmt->impl, i + 1, va_arg(ap, const char *));
			break;
		case 'i':
			r = b->bind_int64(stmt->impl, i + 1, va_arg(ap, int64_t));
			break;
		case 'b':
			r = b->bind_int64(stmt->impl, i + 1, va_arg(ap, int) ? 1 : 0);
			break;
		default:
			assert(!"unknown bind type");
			r = -EINVAL;
		}
	}
	return r;
}

void db_finalize(struct db_stmt *stmt)
{
	if (!stmt)
		return;
	stmt->conn->backend->finalize(stmt->impl);
	stmt->conn->n_stmts--;
	free(stmt);
}

static int db_prepare_va(struct db_conn *conn, struct db_stmt **ret, struct berth_error *err,
			 const char *sql, const char *types, va_list ap)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	stmt = calloc(1, sizeof(*stmt));
	if (!stmt)
		return db_oom(err);
	stmt->conn = conn;
	conn->n_stmts++;
	r = conn->backend->prepare(conn->impl, sql, &stmt->impl);
	if (r < 0)
		return db_fail(conn, r, err);
	atomic_fetch_add(&conn->db->statements, 1);
	r = db_bind_va(stmt, types ? types : "", ap);
	if (r < 0)
		return db_fail(conn, r, err);
	*ret = TAKE_PTR(stmt);
	return 0;
}

int db_prepare(struct db_conn *conn, struct db_stmt **ret, struct berth_error *err, const char *sql,
	       const char *types, ...)
{
	va_list ap;
	int r;

	va_start(ap, types);
	r = db_prepare_va(conn, ret, err, sql, types, ap);
	va_end(ap);
	return r;
}

int db_rebind(struct db_stmt *stmt, struct berth_error *err, const char *types, ...)
{
	va_list ap;
	int r;

	r = stmt->conn->backend->reset(stmt->impl);
	if (r < 0)
		return db_fail(stmt->conn, r, err);
	va_start(ap, types);
	r = db_bind_va(stmt, types, ap);
	va_end(ap);
	return r < 0 ? db_fail(stmt->conn, r, err) : 0;
}

int db_step(struct db_stmt *stmt, struct berth_error *err)
{
	int r = stmt->conn->backend->step(stmt->impl);

	return r < 0 ? db_fail(stmt->conn, r, err) : r;
}

int db_exec(struct db_conn *conn, struct berth_error *err, const char *sql, const char *types, ...)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	va_list ap;
	int r;

	va_start(ap, types);
	r = db_prepare_va(conn, &stmt, err, sql, types, ap);
	va_end(ap);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	return (int)db_changes(conn);
}

int db_exec_script(struct db_conn *conn, const char *sql, struct berth_error *err)
{
	int r = conn->backend->exec_script(conn->impl, sql);

	return r < 0 ? db_fail(conn, r, err) : 0;
}

int64_t db_last_insert_id(struct db_conn *conn)
{
	return conn->backend->last_insert_id(conn->impl);
}

int64_t db_changes(struct db_conn *conn)
{
	return conn->backend->changes(conn->impl);
}

const char *db_column_text_or_null(struct db_stmt *stmt, int col)
{
	return stmt->conn->backend->column_text(stmt->impl, col);
}

const char *db_column_text(struct db_stmt *stmt, int col)
{
	const char *s = db_column_text_or_null(stmt, col);

	return s ? s : "";
}

int64_t db_column_int64(struct db_stmt *stmt, int col)
{
	return stmt->conn->backend->column_int64(stmt->impl, col);
}

int db_column_int(struct db_stmt *stmt, int col)
{
	return (int)db_column_int64(stmt, col);
}

bool db_column_is_null(struct db_stmt *stmt, int col)
{
	return stmt->conn->backend->column_is_null(stmt->impl, col);
}

static int db_begin(struct db *db, const char *sql, bool writing, struct db_conn **ret,
		    struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	int r;

	r = db_conn_get(db, &conn, err);
	if (r < 0)
		return r;
	/* The pool holds no connection with a transaction open (db_conn_put). */
	assert(!conn->backend->in_transaction(conn->impl));
	r = db_exec_script(conn, sql, err);
	if (r < 0)
		return r;
	conn->writing = writing;
	*ret = TAKE_PTR(conn);
	return 0;
}

int db_tx_begin(struct db *db, struct db_conn **ret, struct berth_error *err)
{
	return db_begin(db, "BEGIN IMMEDIATE", true, ret, err);
}

int db_read_begin(struct db *db, struct db_conn **ret, struct berth_error *err)
{
	return db_begin(db, "BEGIN", false, ret, err);
}

int db_tx_end(struct db *db, struct db_conn *conn, int r, struct berth_error *err)
{
	const struct db_backend *b;
	int k;

	assert(conn && conn->db == db);
	b = conn->backend;
	if (r >= 0) {
		k = db_exec_script(conn, "COMMIT", err);
		if (k < 0)
			r = k;
	}
	/* The database may already have rolled back (SQLite does after SQLITE_FULL); then
	 * there is no transaction left and ROLLBACK would fail, so only issue it when one is
	 * open. Should it fail, db_conn_put() closes the connection, which rolls back. */
	if (r < 0 && b->in_transaction(conn->impl))
		b->exec_script(conn->impl, "ROLLBACK");
	/* After the COMMIT (or ROLLBACK), never before: a reader that saw the old generation
	 * may have read the old rows, and what it keeps must not outlive them. */
	if (conn->writing)
		atomic_fetch_add(&db->generation, 1);
	db_conn_put(conn);
	return r;
}

uint64_t db_generation(struct db *db)
{
	uint64_t g = atomic_load(&db->generation);

	/* Writes of other writers, for a backend that has them (see backend.h). */
	if (db->backend->data_version)
		g += db->backend->data_version(db->backend_data);
	return g;
}

void db_trim(struct db *db, unsigned keep)
{
	struct db_conn *closing = NULL, *conn;

	pthread_mutex_lock(&db->lock);
	while (db->n_idle > keep) {
		conn = db->idle;
		db->idle = conn->next;
		db->n_idle--;
		conn->next = closing;
		closing = conn;
	}
	pthread_mutex_unlock(&db->lock);
	while ((conn = closing)) {
		closing = conn->next;
		db_conn_free(conn);
	}
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

int db_used_by_urls(struct db_stmt *stmt, const char *project, json_t **ret,
		    struct berth_error *err)
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

int db_kv_load(struct db_conn *conn, const char *sql, int64_t id, json_t **ret,
	       struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_auto_t *obj = json_object();
	int r;

	if (!obj)
		return db_oom(err);
	r = db_prepare(conn, &stmt, err, sql, "i", id);
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

int db_kv_store(struct db_conn *conn, const char *sql, int64_t id, const json_t *obj,
		const char *what, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	const char *key;
	json_t *value;
	int r;

	if (!json_is_object(obj) || json_object_size(obj) == 0)
		return 0;
	r = db_prepare(conn, &stmt, err, sql, NULL);
	if (r < 0)
		return r;
	json_object_foreach((json_t *)obj, key, value) {
		if (!json_is_string(value))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "%s key \"%s\" must be a string", what, key);
		r = db_rebind(stmt, err, "itt", id, key, json_string_value(value));
		if (r < 0)
			return r;
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

int db_devices_load(struct db_conn *conn, const struct db_device_sql *sql, int64_t id, json_t **ret,
		    struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_auto_t *devices = json_object();
	int r;

	if (!devices)
		return db_oom(err);
	r = db_prepare(conn, &stmt, err, sql->load, "i", id);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		const char *key = db_column_text_or_null(stmt, 2);

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

static int db_device_store(struct db_conn *conn, const struct db_device_sql *sql, int64_t parent_id,
			   const char *name, const json_t *device, struct berth_error *err)
{
	json_auto_t *config = NULL;
	const char *type = berth_json_string(device, "type");
	int r;

	if (!json_is_object(device))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\" must be an object", name);
	r = db_exec(conn, err, sql->insert, "itt", parent_id, name, type ? type : "");
	if (r < 0)
		return r;
	config = json_deep_copy(device);
	if (!config)
		return db_oom(err);
	json_object_del(config, "type");
	return db_kv_store(conn, sql->insert_config, db_last_insert_id(conn), config, "Device",
			   err);
}

int db_devices_store(struct db_conn *conn, const struct db_device_sql *sql, int64_t id,
		     const json_t *devices, struct berth_error *err)
{
	const char *name;
	json_t *dev;
	int r;

	if (!json_is_object(devices))
		return 0;
	json_object_foreach((json_t *)devices, name, dev) {
		r = db_device_store(conn, sql, id, name, dev, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int db_collect(struct db_conn *conn, struct db_stmt *stmt, db_row_fn fn, json_t **ret,
	       struct berth_error *err)
{
	json_auto_t *list = json_array();
	int r;

	if (!list)
		return db_oom(err);
	while ((r = db_step(stmt, err)) > 0) {
		json_t *obj = NULL;

		r = fn(conn, stmt, &obj, err);
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
