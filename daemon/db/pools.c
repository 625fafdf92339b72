/* daemon/db/pools.c: storage pool records (`storage_pools`, `storage_pools_config`).
 * The default pool is created by db_open(); the API creates, updates and deletes pools
 * with the on-disk work done by a hook inside the same transaction. */
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

static const char sql_config_load[] =
	"SELECT key, value FROM storage_pools_config WHERE pool_id = ?1 ORDER BY key";

int db_pool_insert(struct db_conn *conn, const char *name, const char *driver,
		   const char *description, const json_t *config, struct berth_error *err)
{
	int r;

	r = db_exec(conn, err,
		    "INSERT INTO storage_pools (name, driver, description) VALUES (?1, ?2, ?3)",
		    "ttt", name, driver, description ? description : "");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT,
				       "Storage pool \"%s\" already exists", name);
	if (r < 0)
		return r;
	return db_kv_store(conn,
			   "INSERT INTO storage_pools_config (pool_id, key, value)"
			   " VALUES (?1, ?2, ?3)",
			   db_last_insert_id(conn), config, "Config", err);
}

/* Build {"name","driver","description","config","status"} from a row
 * (id, name, driver, description, status). */
static int pool_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			 struct berth_error *err)
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
		r = db_kv_load(conn, sql_config_load, db_column_int64(stmt, 0), &config, err);
	if (r >= 0)
		r = db_json_set_new(pool, "config", config, err);
	if (r >= 0)
		r = db_json_set_str(pool, "status", db_column_text(stmt, 4), err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(pool);
	return 0;
}

static int pool_list(struct db_conn *conn, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT id, name, driver, description, status FROM storage_pools"
		       " ORDER BY name",
		       NULL);
	if (r < 0)
		return r;
	return db_collect(conn, stmt, pool_from_row, ret, err);
}

int db_pool_list(struct db *db, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = pool_list(conn, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int pool_get(struct db_conn *conn, const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err,
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
	return pool_from_row(conn, stmt, ret, err);
}

int db_pool_get(struct db *db, const char *name, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = pool_get(conn, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

/* ---- mutations ---- */

static int pool_id(struct db_conn *conn, const char *name, int64_t *ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err, "SELECT id FROM storage_pools WHERE name = ?1", "t", name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Storage pool \"%s\" not found", name);
	*ret = db_column_int64(stmt, 0);
	return 0;
}

int db_pool_id(struct db_conn *conn, const char *name, int64_t *ret, struct berth_error *err)
{
	return pool_id(conn, name, ret, err);
}

static int pool_store_config(struct db_conn *conn, int64_t id, const json_t *config,
			     struct berth_error *err)
{
	int r = db_exec(conn, err, "DELETE FROM storage_pools_config WHERE pool_id = ?1", "i", id);

	if (r < 0)
		return r;
	return db_kv_store(conn,
			   "INSERT INTO storage_pools_config (pool_id, key, value)"
			   " VALUES (?1, ?2, ?3)",
			   id, config, "Config", err);
}

static int pool_create(struct db_conn *conn, json_t *pool, db_hook_fn hook, void *data,
		       struct berth_error *err)
{
	const char *name = berth_json_string(pool, "name");
	int64_t id;
	int r;

	r = db_pool_insert(conn, name, berth_json_string(pool, "driver"),
			   berth_json_string(pool, "description"), NULL, err);
	if (r < 0)
		return r;
	id = db_last_insert_id(conn);
	if (hook) {
		r = hook(data, err);
		if (r < 0)
			return r;
	}
	return pool_store_config(conn, id, json_object_get(pool, "config"), err);
}

int db_pool_create(struct db *db, json_t *pool, db_hook_fn hook, void *data,
		   struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	if (!berth_json_string(pool, "name") || !berth_json_string(pool, "driver"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Storage pool name or driver is missing");
	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = pool_create(conn, pool, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int pool_update(struct db_conn *conn, const char *name, const json_t *pool,
		       struct berth_error *err)
{
	int64_t id;
	int r = pool_id(conn, name, &id, err);

	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE storage_pools SET description = ?2 WHERE id = ?1", "it", id,
		    berth_json_string(pool, "description") ?: "");
	if (r < 0)
		return r;
	return pool_store_config(conn, id, json_object_get(pool, "config"), err);
}

int db_pool_update(struct db *db, const char *name, const json_t *pool, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = pool_update(conn, name, pool, err);
	return db_tx_end(db, conn, r, err);
}

/* URLs of what uses pool `name`: profiles and instances whose disk devices name it,
 * then its volumes (snapshots excluded), each with ?project= outside "default". */
static int pool_used_by(struct db_conn *conn, const char *name, json_t **ret,
			struct berth_error *err)
{
	static const char sql[] =
		"SELECT 'profiles', p.name, pr.name FROM profiles p"
		" JOIN projects pr ON pr.id = p.project_id"
		" JOIN profiles_devices d ON d.profile_id = p.id"
		" JOIN profiles_devices_config c ON c.device_id = d.id"
		" WHERE d.type = 'disk' AND c.key = 'pool' AND c.value = ?1"
		" UNION SELECT 'instances', i.name, pr.name FROM instances i"
		" JOIN projects pr ON pr.id = i.project_id"
		" JOIN instances_devices d ON d.instance_id = i.id"
		" JOIN instances_devices_config c ON c.device_id = d.id"
		" WHERE d.type = 'disk' AND c.key = 'pool' AND c.value = ?1"
		" UNION SELECT 'storage-pools/' || ?1 || '/volumes/' || v.type, v.name, pr.name"
		" FROM storage_volumes v JOIN storage_pools sp ON sp.id = v.pool_id"
		" JOIN projects pr ON pr.id = v.project_id"
		" WHERE sp.name = ?1 AND instr(v.name, '/') = 0"
		" ORDER BY 1, 3, 2";
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r = db_prepare(conn, &stmt, err, sql, "t", name);

	if (r < 0)
		return r;
	return db_used_by_urls(stmt, NULL, ret, err);
}

int db_pool_used_by(struct db *db, const char *name, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int64_t id;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = pool_id(conn, name, &id, err);
	if (r >= 0)
		r = pool_used_by(conn, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int pool_delete(struct db_conn *conn, const char *name, db_hook_fn hook, void *data,
		       struct berth_error *err)
{
	json_auto_t *used = NULL;
	int64_t id;
	int r = pool_id(conn, name, &id, err);

	if (r < 0)
		return r;
	r = pool_used_by(conn, name, &used, err);
	if (r < 0)
		return r;
	if (json_array_size(used) > 0)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "The storage pool is currently in use");
	/* Snapshot rows alone (their volume gone) would be a bug; they go with the pool. */
	r = db_exec(conn, err, "DELETE FROM storage_pools WHERE id = ?1", "i", id);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_pool_delete(struct db *db, const char *name, db_hook_fn hook, void *data,
		   struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = pool_delete(conn, name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}
