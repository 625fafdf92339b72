/* daemon/db/pools.c: storage pool records (`storage_pools`, `storage_pools_config`).
 * Only what berthd needs so far: the default pool created by db_init(), and reads. */
#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"

static const char sql_config_load[] =
	"SELECT key, value FROM storage_pools_config WHERE pool_id = ?1 ORDER BY key";

int db_pool_insert(sqlite3 *db, const char *name, const char *driver, const char *description,
		   const json_t *config, struct berth_error *err)
{
	int r;

	r = db_exec(db, err,
		    "INSERT INTO storage_pools (name, driver, description) VALUES (?1, ?2, ?3)",
		    "ttt", name, driver, description ? description : "");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT,
				       "Storage pool \"%s\" already exists", name);
	if (r < 0)
		return r;
	return db_kv_store(db,
			   "INSERT INTO storage_pools_config (pool_id, key, value)"
			   " VALUES (?1, ?2, ?3)",
			   sqlite3_last_insert_rowid(db), config, "Config", err);
}

/* Build {"name","driver","description","config","status"} from a row
 * (id, name, driver, description, status). */
static int pool_from_row(sqlite3 *db, sqlite3_stmt *stmt, json_t **ret, struct berth_error *err)
{
	json_auto_t *pool = json_object();
	json_t *config = NULL;
	int r;

	if (!pool)
		return db_oom(err);
	r = db_json_set_str(pool, "name", db_column_text(stmt, 1), err);
	if (r >= 0)
		r = db_json_set_str(pool, "driver", db_column_text(stmt, 2), err);
	if (r >= 0)
		r = db_json_set_str(pool, "description", db_column_text(stmt, 3), err);
	if (r >= 0)
		r = db_kv_load(db, sql_config_load, sqlite3_column_int64(stmt, 0), &config, err);
	if (r >= 0)
		r = db_json_set_new(pool, "config", config, err);
	if (r >= 0)
		r = db_json_set_str(pool, "status", db_column_text(stmt, 4), err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(pool);
	return 0;
}

static int pool_list(sqlite3 *db, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	json_auto_t *list = json_array();
	int r;

	if (!list)
		return db_oom(err);
	r = db_prepare(db, &stmt, err,
		       "SELECT id, name, driver, description, status FROM storage_pools"
		       " ORDER BY name",
		       NULL);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		json_t *pool = NULL;

		r = pool_from_row(db, stmt, &pool, err);
		if (r < 0)
			return r;
		if (json_array_append_new(list, pool) < 0)
			return db_oom(err);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

int db_pool_list(json_t **ret, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_read_begin(&db, err);
	if (r < 0)
		return r;
	r = pool_list(db, ret, err);
	return db_tx_end(db, r, err);
}

static int pool_get(sqlite3 *db, const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	int r;

	r = db_prepare(db, &stmt, err,
		       "SELECT id, name, driver, description, status FROM storage_pools"
		       " WHERE name = ?1",
		       "t", name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Storage pool \"%s\" not found", name);
	return pool_from_row(db, stmt, ret, err);
}

int db_pool_get(const char *name, json_t **ret, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_read_begin(&db, err);
	if (r < 0)
		return r;
	r = pool_get(db, name, ret, err);
	return db_tx_end(db, r, err);
}
