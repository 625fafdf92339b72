/* daemon/db/snapshots.c: instance snapshots (instances_snapshots and its config and
 * devices) and the volume rows of instance root volumes and their snapshots. */
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

static const char never[] = "0001-01-01T00:00:00Z";

static const struct db_device_sql snap_device_sql = {
	.load = "SELECT d.name, d.type, c.key, c.value FROM instances_snapshots_devices d"
		" LEFT JOIN instances_snapshots_devices_config c ON c.device_id = d.id"
		" WHERE d.snapshot_id = ?1 ORDER BY d.name",
	.insert = "INSERT INTO instances_snapshots_devices (snapshot_id, name, type)"
		  " VALUES (?1, ?2, ?3)",
	.insert_config = "INSERT INTO instances_snapshots_devices_config (device_id, key, value)"
			 " VALUES (?1, ?2, ?3)",
};
static const char sql_snap_config_insert[] =
	"INSERT INTO instances_snapshots_config (snapshot_id, key, value) VALUES (?1, ?2, ?3)";
static const char sql_snap_config_load[] =
	"SELECT key, value FROM instances_snapshots_config WHERE snapshot_id = ?1";

/* The root volume (or a snapshot's) of an instance of `type` ("virtual-machine" or the
 * default, "container"): LXD's volume type is the instance's. */
static int volume_row(struct db_conn *conn, const char *pool, int64_t project_id, const char *name,
		      const char *type, struct berth_error *err)
{
	int64_t pool_id = 0;
	int r = db_pool_id(conn, pool, &pool_id, err);

	if (!type || !streq(type, "virtual-machine"))
		type = "container";
	return r < 0 ? r : db_volume_insert(conn, pool_id, project_id, name, type, err);
}

/* Insert snapshot `snap` of instance `id` with `config` and `devices`. */
static int snapshot_insert(struct db_conn *conn, int64_t id, const json_t *snap,
			   const json_t *config, const json_t *devices, struct berth_error *err)
{
	const char *name = berth_json_string(snap, "name");
	const char *created = berth_json_string(snap, "created_at");
	const char *expires = berth_json_string(snap, "expires_at");
	char now[BERTH_RFC3339_MAX];
	int64_t sid;
	int r;

	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Snapshot name is missing");
	berth_now_rfc3339(now);
	r = db_exec(conn, err,
		    "INSERT INTO instances_snapshots (instance_id, name, description, stateful,"
		    " created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		    "ittbtt", id, name, berth_json_string(snap, "description") ?: "",
		    berth_json_bool(snap, "stateful", false), created && *created ? created : now,
		    expires && *expires ? expires : never);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Snapshot \"%s\" already exists",
				       name);
	if (r < 0)
		return r;
	sid = db_last_insert_id(conn);
	r = db_kv_store(conn, sql_snap_config_insert, sid, config, "Config", err);
	if (r < 0)
		return r;
	return db_devices_store(conn, &snap_device_sql, sid, devices, err);
}

static int create_with_volume(struct db_conn *conn, const char *project, const json_t *instance,
			      const char *pool, const json_t *snapshots, struct berth_error *err)
{
	const char *name = berth_json_string(instance, "name");
	const char *type = berth_json_string(instance, "type");
	int64_t project_id = 0, id = 0;
	json_t *s;
	size_t i;
	int r = db_instance_insert(conn, project, instance, &id, err);

	if (r >= 0)
		r = db_project_id(conn, project, &project_id, err);
	if (r >= 0 && pool)
		r = volume_row(conn, pool, project_id, name, type, err);
	json_array_foreach(snapshots, i, s) {
		_cleanup_free_ char *vname = NULL;

		if (r < 0)
			break;
		r = snapshot_insert(conn, id, s, json_object_get(s, "config"),
				    json_object_get(s, "devices"), err);
		if (r < 0 || !pool)
			continue;
		vname = berth_strdup_printf("%s/%s", name, berth_json_string(s, "name"));
		r = vname ? volume_row(conn, pool, project_id, vname, type, err) : db_oom(err);
	}
	return r;
}

int db_instance_create_with_volume(struct db *db, const char *project, const json_t *instance,
				   const char *pool, const json_t *snapshots,
				   struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r = db_tx_begin(db, &conn, err);

	if (r < 0)
		return r;
	r = create_with_volume(conn, project, instance, pool, snapshots, err);
	return db_tx_end(db, conn, r, err);
}

int db_instance_pool(struct db *db, const char *project, const char *name, char **ret,
		     struct berth_error *err)
{
	_cleanup_conn_ struct db_conn *conn = NULL;
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	char *s;
	int r = db_conn_get(db, &conn, err);

	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT p.name FROM storage_volumes v"
		       " JOIN storage_pools p ON p.id = v.pool_id"
		       " JOIN projects j ON j.id = v.project_id"
		       " WHERE j.name = ?1 AND v.name = ?2"
		       " AND v.type IN ('container', 'virtual-machine')",
		       "tt", project, name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Instance \"%s\" has no root volume", name);
	s = strdup(db_column_text(stmt, 0));
	if (!s)
		return db_oom(err);
	*ret = s;
	return 0;
}

static int snapshot_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			     struct berth_error *err)
{
	int64_t sid = db_column_int64(stmt, 0);
	json_t *config = NULL, *devices = NULL;
	json_t *s;
	int r = db_kv_load(conn, sql_snap_config_load, sid, &config, err);

	if (r < 0)
		return r;
	r = db_devices_load(conn, &snap_device_sql, sid, &devices, err);
	if (r < 0) {
		json_decref(config);
		return r;
	}
	s = json_pack("{s:s, s:s, s:b, s:s, s:s, s:o, s:o}", "name", db_column_text(stmt, 1),
		      "description", db_column_text(stmt, 2), "stateful", db_column_int(stmt, 3),
		      "created_at", db_column_text(stmt, 4), "expires_at", db_column_text(stmt, 5),
		      "config", config, "devices", devices);
	if (!s)
		return db_oom(err);
	*ret = s;
	return 0;
}

static int snapshot_query(struct db_conn *conn, const char *project, const char *instance,
			  const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_auto_t *list = json_array();
	int64_t id = 0;
	int r = db_instance_lookup(conn, project, instance, NULL, &id, err);

	if (r < 0)
		return r;
	if (!list)
		return db_oom(err);
	r = db_prepare(conn, &stmt, err,
		       "SELECT id, name, description, stateful, created_at, expires_at"
		       " FROM instances_snapshots WHERE instance_id = ?1"
		       " AND (?2 IS NULL OR name = ?2) ORDER BY created_at, id",
		       "it", id, name);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		json_t *s = NULL;

		r = snapshot_from_row(conn, stmt, &s, err);
		if (r < 0)
			return r;
		json_array_append_new(list, s);
	}
	if (r < 0)
		return r;
	if (name && json_array_size(list) == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Snapshot \"%s\" not found", name);
	*ret = name ? json_incref(json_array_get(list, 0)) : json_incref(list);
	return 0;
}

int db_snapshot_list(struct db *db, const char *project, const char *instance, json_t **ret,
		     struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r = db_read_begin(db, &conn, err);

	if (r < 0)
		return r;
	r = snapshot_query(conn, project, instance, NULL, ret, err);
	return db_tx_end(db, conn, r, err);
}

int db_snapshot_get(struct db *db, const char *project, const char *instance, const char *name,
		    json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r = db_read_begin(db, &conn, err);

	if (r < 0)
		return r;
	r = snapshot_query(conn, project, instance, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int snapshot_create(struct db_conn *conn, const char *project, const char *instance,
			   const json_t *snap, const char *pool, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	_cleanup_free_ char *vname = NULL;
	int64_t project_id = 0, id = 0;
	int r = db_instance_lookup(conn, project, instance, &project_id, &id, err);

	if (r < 0)
		return r;
	r = db_instance_load(conn, project, instance, &inst, err);
	if (r < 0)
		return r;
	r = snapshot_insert(conn, id, snap, json_object_get(inst, "config"),
			    json_object_get(inst, "devices"), err);
	if (r < 0 || !pool)
		return r;
	vname = berth_strdup_printf("%s/%s", instance, berth_json_string(snap, "name"));
	return vname ? volume_row(conn, pool, project_id, vname, berth_json_string(inst, "type"),
				  err)
		     : db_oom(err);
}

int db_snapshot_create(struct db *db, const char *project, const char *instance, const json_t *snap,
		       const char *pool, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r = db_tx_begin(db, &conn, err);

	if (r < 0)
		return r;
	r = snapshot_create(conn, project, instance, snap, pool, err);
	return db_tx_end(db, conn, r, err);
}

static int snapshot_id(struct db_conn *conn, const char *project, const char *instance,
		       const char *name, int64_t *ret_project_id, int64_t *ret,
		       struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t id = 0;
	int r = db_instance_lookup(conn, project, instance, ret_project_id, &id, err);

	if (r >= 0)
		r = db_prepare(conn, &stmt, err,
			       "SELECT id FROM instances_snapshots WHERE instance_id = ?1"
			       " AND name = ?2",
			       "it", id, name);
	if (r >= 0)
		r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Snapshot \"%s\" not found", name);
	*ret = db_column_int64(stmt, 0);
	return 0;
}

static int snapshot_rename(struct db_conn *conn, const char *project, const char *instance,
			   const char *name, const char *new_name, db_hook_fn hook, void *data,
			   struct berth_error *err)
{
	_cleanup_free_ char *from = berth_strdup_printf("%s/%s", instance, name);
	_cleanup_free_ char *to = berth_strdup_printf("%s/%s", instance, new_name);
	int64_t project_id = 0, sid = 0;
	int r = snapshot_id(conn, project, instance, name, &project_id, &sid, err);

	if (r < 0)
		return r;
	if (!from || !to)
		return db_oom(err);
	r = db_exec(conn, err, "UPDATE instances_snapshots SET name = ?2 WHERE id = ?1", "it", sid,
		    new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Snapshot \"%s\" already exists",
				       new_name);
	if (r >= 0)
		r = db_exec(conn, err,
			    "UPDATE storage_volumes SET name = ?3 WHERE project_id = ?1"
			    " AND type IN ('container', 'virtual-machine') AND name = ?2",
			    "itt", project_id, from, to);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_snapshot_rename(struct db *db, const char *project, const char *instance, const char *name,
		       const char *new_name, db_hook_fn hook, void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r = db_tx_begin(db, &conn, err);

	if (r < 0)
		return r;
	r = snapshot_rename(conn, project, instance, name, new_name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int snapshot_delete(struct db_conn *conn, const char *project, const char *instance,
			   const char *name, db_hook_fn hook, void *data, struct berth_error *err)
{
	_cleanup_free_ char *vname = berth_strdup_printf("%s/%s", instance, name);
	int64_t project_id = 0, sid = 0;
	int r = snapshot_id(conn, project, instance, name, &project_id, &sid, err);

	if (r < 0)
		return r;
	if (!vname)
		return db_oom(err);
	r = db_exec(conn, err, "DELETE FROM instances_snapshots WHERE id = ?1", "i", sid);
	if (r >= 0)
		r = db_exec(conn, err,
			    "DELETE FROM storage_volumes WHERE project_id = ?1"
			    " AND type IN ('container', 'virtual-machine') AND name = ?2",
			    "it", project_id, vname);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_snapshot_delete(struct db *db, const char *project, const char *instance, const char *name,
		       db_hook_fn hook, void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r = db_tx_begin(db, &conn, err);

	if (r < 0)
		return r;
	r = snapshot_delete(conn, project, instance, name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int snapshot_set_expiry(struct db_conn *conn, const char *project, const char *instance,
			       const char *name, const char *expires_at, struct berth_error *err)
{
	int64_t project_id = 0, sid = 0;
	int r = snapshot_id(conn, project, instance, name, &project_id, &sid, err);

	if (r < 0)
		return r;
	return db_exec(conn, err, "UPDATE instances_snapshots SET expires_at = ?2 WHERE id = ?1",
		       "it", sid, expires_at && *expires_at ? expires_at : never);
}

int db_snapshot_set_expiry(struct db *db, const char *project, const char *instance,
			   const char *name, const char *expires_at, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r = db_tx_begin(db, &conn, err);

	if (r < 0)
		return r;
	r = snapshot_set_expiry(conn, project, instance, name, expires_at, err);
	return db_tx_end(db, conn, r, err);
}
