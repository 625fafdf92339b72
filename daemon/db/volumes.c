/* daemon/db/volumes.c: storage volume records (`storage_volumes` and its config).
 *
 * The type column holds LXD's API names ("custom", "container", "image",
 * "virtual-machine"), not LXD's integer codes: the column is TEXT and the names read
 * better in SQL. A snapshot is a row of the same pool, project and type named
 * "<volume>/<snapshot>" (volume names never hold '/'), as LXD stored them before it grew
 * a snapshots table; renaming or deleting a volume carries its snapshot rows along. */
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

static const char sql_config_load[] =
	"SELECT key, value FROM storage_volumes_config WHERE volume_id = ?1 ORDER BY key";
static const char sql_config_insert[] =
	"INSERT INTO storage_volumes_config (volume_id, key, value) VALUES (?1, ?2, ?3)";

/* Columns every query selects, in this order. */
#define VOLUME_COLUMNS "v.id, v.name, v.type, v.description, v.content_type, v.created_at, pr.name"
#define VOLUME_FROM                                                                                \
	" FROM storage_volumes v JOIN projects pr ON pr.id = v.project_id"                         \
	" JOIN storage_pools sp ON sp.id = v.pool_id"

/* Build the object from a row; `strip` drops that many leading characters of the name
 * (the "<volume>/" of a snapshot). */
static int volume_from_row(struct db_conn *conn, struct db_stmt *stmt, size_t strip, json_t **ret,
			   struct berth_error *err)
{
	json_auto_t *v = json_object();
	json_t *config = NULL;
	const char *name = db_column_text(stmt, 1);
	int r;

	if (!v)
		return db_oom(err);
	r = db_json_set_str(v, "name", strlen(name) > strip ? name + strip : name, err);
	if (r >= 0)
		r = db_json_set_str(v, "type", db_column_text(stmt, 2), err);
	if (r >= 0)
		r = db_json_set_str(v, "description", db_column_text(stmt, 3), err);
	if (r >= 0)
		r = db_json_set_str(v, "content_type", db_column_text(stmt, 4), err);
	if (r >= 0)
		r = db_json_set_str(v, "created_at", db_column_text(stmt, 5), err);
	if (r >= 0)
		r = db_json_set_str(v, "project", db_column_text(stmt, 6), err);
	if (r >= 0)
		r = db_kv_load(conn, sql_config_load, db_column_int64(stmt, 0), &config, err);
	if (r >= 0)
		r = db_json_set_new(v, "config", config, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

static int collect(struct db_conn *conn, struct db_stmt *stmt, size_t strip, json_t **ret,
		   struct berth_error *err)
{
	json_auto_t *list = json_array();
	int r;

	if (!list)
		return db_oom(err);
	while ((r = db_step(stmt, err)) > 0) {
		json_t *v = NULL;

		r = volume_from_row(conn, stmt, strip, &v, err);
		if (r < 0)
			return r;
		if (json_array_append_new(list, v) < 0)
			return db_oom(err);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

int db_volume_list(struct db *db, const char *pool, const char *project, const char *type,
		   json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	struct db_conn *conn = NULL;
	int64_t id;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_pool_id(conn, pool, &id, err);
	if (r >= 0)
		r = db_prepare(conn, &stmt, err,
			       "SELECT " VOLUME_COLUMNS VOLUME_FROM
			       " WHERE sp.name = ?1 AND (?2 IS NULL OR pr.name = ?2)"
			       " AND (?3 IS NULL OR v.type = ?3)"
			       " ORDER BY pr.name, v.type, v.name",
			       "ttt", pool, project, type);
	if (r >= 0)
		r = collect(conn, stmt, 0, ret, err);
	/* Before the connection goes back to the pool. */
	db_finalize(TAKE_PTR(stmt));
	return db_tx_end(db, conn, r, err);
}

int db_volume_snapshot_list(struct db *db, const char *pool, const char *project, const char *type,
			    const char *volume, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT " VOLUME_COLUMNS VOLUME_FROM
		       " WHERE sp.name = ?1 AND pr.name = ?2 AND v.type = ?3"
		       " AND substr(v.name, 1, length(?4) + 1) = ?4 || '/'"
		       " ORDER BY v.created_at, v.name",
		       "tttt", pool, project, type, volume);
	if (r >= 0)
		r = collect(conn, stmt, strlen(volume) + 1, ret, err);
	/* Before the connection goes back to the pool. */
	db_finalize(TAKE_PTR(stmt));
	return db_tx_end(db, conn, r, err);
}

static int volume_get(struct db_conn *conn, const char *pool, const char *project, const char *type,
		      const char *name, int64_t *ret_id, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	const char *slash = strchr(name, '/');
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT " VOLUME_COLUMNS VOLUME_FROM
		       " WHERE sp.name = ?1 AND pr.name = ?2 AND v.type = ?3 AND v.name = ?4",
		       "tttt", pool, project, type, name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       slash ? "Storage volume snapshot \"%s\" not found"
					     : "Storage volume \"%s\" not found",
				       name);
	if (ret_id)
		*ret_id = db_column_int64(stmt, 0);
	if (!ret)
		return 0;
	return volume_from_row(conn, stmt, slash ? (size_t)(slash - name) + 1 : 0, ret, err);
}

int db_volume_get(struct db *db, const char *pool, const char *project, const char *type,
		  const char *name, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_get(conn, pool, project, type, name, NULL, ret, err);
	return db_tx_end(db, conn, r, err);
}

/* URLs of the instances and profiles (of `project`) with a disk device naming custom
 * volume `name` of `pool` as its source. */
static int volume_used_by(struct db_conn *conn, const char *pool, const char *project,
			  const char *name, json_t **ret, struct berth_error *err)
{
#define USED_BY_PART(kind, table, owner)                                                           \
	"SELECT '" kind "', o.name FROM " table " o JOIN projects pr ON pr.id = o.project_id"      \
	" JOIN " table "_devices d ON d." owner "_id = o.id"                                       \
	" WHERE pr.name = ?2 AND d.type = 'disk'"                                                  \
	" AND EXISTS (SELECT 1 FROM " table "_devices_config c WHERE c.device_id = d.id"           \
	"  AND c.key = 'pool' AND c.value = ?1)"                                                   \
	" AND EXISTS (SELECT 1 FROM " table "_devices_config c WHERE c.device_id = d.id"           \
	"  AND c.key = 'source' AND c.value = ?3)"
	static const char sql[] =
		USED_BY_PART("instances", "instances",
			     "instance") " UNION " USED_BY_PART("profiles", "profiles",
								"profile") " ORDER BY 1, 2";
#undef USED_BY_PART
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r = db_prepare(conn, &stmt, err, sql, "ttt", pool, project, name);

	if (r < 0)
		return r;
	return db_used_by_urls(stmt, project, ret, err);
}

int db_volume_used_by(struct db *db, const char *pool, const char *project, const char *name,
		      json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_used_by(conn, pool, project, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int volume_create(struct db_conn *conn, const char *pool, const char *project,
			 const json_t *vol, db_hook_fn hook, void *data, struct berth_error *err)
{
	const char *name = berth_json_string(vol, "name");
	const char *type = berth_json_string(vol, "type");
	const char *slash = name ? strchr(name, '/') : NULL;
	char now[64];
	int64_t pool_id, project_id;
	int r;

	if (!name || !type)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Storage volume name or type is missing");
	r = db_pool_id(conn, pool, &pool_id, err);
	if (r >= 0)
		r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	if (slash) {
		_cleanup_free_ char *parent = strndup(name, (size_t)(slash - name));
		if (!parent)
			return db_oom(err);
		r = volume_get(conn, pool, project, type, parent, NULL, NULL, err);
		if (r < 0)
			return r;
	}
	berth_now_rfc3339(now);
	r = db_exec(conn, err,
		    "INSERT INTO storage_volumes (pool_id, project_id, name, type, description,"
		    " content_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
		    "iittttt", pool_id, project_id, name, type,
		    berth_json_string(vol, "description") ?: "",
		    berth_json_string(vol, "content_type") ?: "filesystem", now);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT,
				       slash ? "Storage volume snapshot \"%s\" already exists"
					     : "Storage volume \"%s\" already exists",
				       name);
	if (r < 0)
		return r;
	r = db_kv_store(conn, sql_config_insert, db_last_insert_id(conn),
			json_object_get(vol, "config"), "Config", err);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_volume_create(struct db *db, const char *pool, const char *project, const json_t *vol,
		     db_hook_fn hook, void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_create(conn, pool, project, vol, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

int db_volume_create_with_snapshots(struct db *db, const char *pool, const char *project,
				    const json_t *vol, const json_t *snapshots,
				    struct berth_error *err)
{
	struct db_conn *conn = NULL;
	json_t *s;
	size_t i;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_create(conn, pool, project, vol, NULL, NULL, err);
	json_array_foreach(snapshots, i, s) {
		if (r < 0)
			break;
		r = volume_create(conn, pool, project, s, NULL, NULL, err);
	}
	return db_tx_end(db, conn, r, err);
}

static int volume_update(struct db_conn *conn, const char *pool, const char *project,
			 const char *type, const char *name, const json_t *vol, db_hook_fn hook,
			 void *data, struct berth_error *err)
{
	int64_t id;
	int r = volume_get(conn, pool, project, type, name, &id, NULL, err);

	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE storage_volumes SET description = ?2 WHERE id = ?1", "it",
		    id, berth_json_string(vol, "description") ?: "");
	if (r >= 0)
		r = db_exec(conn, err, "DELETE FROM storage_volumes_config WHERE volume_id = ?1",
			    "i", id);
	if (r >= 0)
		r = db_kv_store(conn, sql_config_insert, id, json_object_get(vol, "config"),
				"Config", err);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_volume_update(struct db *db, const char *pool, const char *project, const char *type,
		     const char *name, const json_t *vol, db_hook_fn hook, void *data,
		     struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_update(conn, pool, project, type, name, vol, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int volume_rename(struct db_conn *conn, const char *pool, const char *project,
			 const char *type, const char *name, const char *new_name, db_hook_fn hook,
			 void *data, struct berth_error *err)
{
	int64_t id;
	int r = volume_get(conn, pool, project, type, name, &id, NULL, err);

	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE storage_volumes SET name = ?2 WHERE id = ?1", "it", id,
		    new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT,
				       "Storage volume \"%s\" already exists", new_name);
	if (r < 0)
		return r;
	/* A volume's snapshots follow it: "<old>/s" becomes "<new>/s". */
	if (!strchr(name, '/'))
		r = db_exec(conn, err,
			    "UPDATE storage_volumes SET name = ?3 || substr(name, length(?2) + 1)"
			    " WHERE pool_id = (SELECT pool_id FROM storage_volumes WHERE id = ?1)"
			    " AND project_id ="
			    "  (SELECT project_id FROM storage_volumes WHERE id = ?1)"
			    " AND type = ?4 AND substr(name, 1, length(?2) + 1) = ?2 || '/'",
			    "itt"
			    "t",
			    id, name, new_name, type);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_volume_rename(struct db *db, const char *pool, const char *project, const char *type,
		     const char *name, const char *new_name, db_hook_fn hook, void *data,
		     struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_rename(conn, pool, project, type, name, new_name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int volume_delete(struct db_conn *conn, const char *pool, const char *project,
			 const char *type, const char *name, db_hook_fn hook, void *data,
			 struct berth_error *err)
{
	int64_t id;
	int r = volume_get(conn, pool, project, type, name, &id, NULL, err);

	if (r < 0)
		return r;
	if (!strchr(name, '/')) {
		json_auto_t *used = NULL;

		r = volume_used_by(conn, pool, project, name, &used, err);
		if (r < 0)
			return r;
		if (json_array_size(used) > 0)
			return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
					       "The storage volume is still in use");
		r = db_exec(conn, err,
			    "DELETE FROM storage_volumes"
			    " WHERE pool_id = (SELECT pool_id FROM storage_volumes WHERE id = ?1)"
			    " AND project_id ="
			    "  (SELECT project_id FROM storage_volumes WHERE id = ?1)"
			    " AND type = ?3 AND substr(name, 1, length(?2) + 1) = ?2 || '/'",
			    "itt", id, name, type);
	}
	if (r >= 0)
		r = db_exec(conn, err, "DELETE FROM storage_volumes WHERE id = ?1", "i", id);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_volume_delete(struct db *db, const char *pool, const char *project, const char *type,
		     const char *name, db_hook_fn hook, void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_delete(conn, pool, project, type, name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

int db_volume_insert(struct db_conn *conn, int64_t pool_id, int64_t project_id, const char *name,
		     const char *type, struct berth_error *err)
{
	char now[64];
	int r;

	berth_now_rfc3339(now);
	r = db_exec(conn, err,
		    "INSERT INTO storage_volumes (pool_id, project_id, name, type, created_at)"
		    " VALUES (?1, ?2, ?3, ?4, ?5)",
		    "iittt", pool_id, project_id, name, type, now);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT,
				       "Storage volume \"%s\" already exists", name);
	return r < 0 ? r : 0;
}

int db_volume_move(struct db *db, const char *src_pool, const char *project, const char *name,
		   const char *dst_pool, const json_t *vol, const json_t *snapshots,
		   db_hook_fn hook, void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	json_t *s;
	size_t i;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = volume_delete(conn, src_pool, project, "custom", name, NULL, NULL, err);
	if (r >= 0)
		r = volume_create(conn, dst_pool, project, vol, NULL, NULL, err);
	json_array_foreach(snapshots, i, s) {
		if (r < 0)
			break;
		r = volume_create(conn, dst_pool, project, s, NULL, NULL, err);
	}
	if (r >= 0 && hook)
		r = hook(data, err);
	return db_tx_end(db, conn, r, err);
}
