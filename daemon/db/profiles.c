/* daemon/db/profiles.c: profiles of a project (`profiles` and its config, devices and
 * device config) and the rules around them: "default" is neither deleted nor renamed,
 * and a profile that instances use cannot be deleted (the RESTRICT key in
 * instances_profiles backs the explicit check). */
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

static const char sql_config_load[] =
	"SELECT key, value FROM profiles_config WHERE profile_id = ?1 ORDER BY key";
static const char sql_config_insert[] =
	"INSERT INTO profiles_config (profile_id, key, value) VALUES (?1, ?2, ?3)";

static const struct db_device_sql device_sql = {
	.load = "SELECT d.name, d.type, c.key, c.value FROM profiles_devices d"
		" LEFT JOIN profiles_devices_config c ON c.device_id = d.id"
		" WHERE d.profile_id = ?1 ORDER BY d.name, c.key",
	.insert = "INSERT INTO profiles_devices (profile_id, name, type) VALUES (?1, ?2, ?3)",
	.insert_config =
		"INSERT INTO profiles_devices_config (device_id, key, value) VALUES (?1, ?2, ?3)",
};

int db_profile_id(struct db_conn *conn, int64_t project_id, const char *name, int64_t *ret,
		  struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT id FROM profiles WHERE project_id = ?1 AND name = ?2", "it",
		       project_id, name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Profile \"%s\" not found", name);
	*ret = db_column_int64(stmt, 0);
	return 0;
}

/* Config and devices of profile `id` from `profile` (missing ones: none). */
static int profile_store_children(struct db_conn *conn, int64_t id, const json_t *profile,
				  struct berth_error *err)
{
	int r;

	r = db_kv_store(conn, sql_config_insert, id, json_object_get(profile, "config"), "Config",
			err);
	if (r < 0)
		return r;
	return db_devices_store(conn, &device_sql, id, json_object_get(profile, "devices"), err);
}

int db_profile_insert(struct db_conn *conn, int64_t project_id, const json_t *profile,
		      struct berth_error *err)
{
	const char *name = berth_json_string(profile, "name");
	const char *description = berth_json_string(profile, "description");
	int r;

	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Profile name is missing");
	r = db_exec(conn, err,
		    "INSERT INTO profiles (project_id, name, description) VALUES (?1, ?2, ?3)",
		    "itt", project_id, name, description ? description : "");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Profile \"%s\" already exists",
				       name);
	if (r < 0)
		return r;
	return profile_store_children(conn, db_last_insert_id(conn), profile, err);
}

/* Build {"name","description","config","devices"} from a row (id, name, description). */
static int profile_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
			    struct berth_error *err)
{
	json_auto_t *profile = json_object();
	int64_t id = db_column_int64(stmt, 0);
	json_t *config = NULL, *devices = NULL;
	int r;

	if (!profile)
		return db_oom(err);
	r = db_json_set_str(profile, "name", db_column_text(stmt, 1), err);
	if (r >= 0)
		r = db_json_set_str(profile, "description", db_column_text(stmt, 2), err);
	if (r >= 0)
		r = db_kv_load(conn, sql_config_load, id, &config, err);
	if (r >= 0)
		r = db_json_set_new(profile, "config", config, err);
	if (r >= 0)
		r = db_devices_load(conn, &device_sql, id, &devices, err);
	if (r >= 0)
		r = db_json_set_new(profile, "devices", devices, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(profile);
	return 0;
}

static int profile_list(struct db_conn *conn, const char *project, json_t **ret,
			struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT id, name, description FROM profiles WHERE project_id = ?1"
		       " ORDER BY name",
		       "i", project_id);
	if (r < 0)
		return r;
	return db_collect(conn, stmt, profile_from_row, ret, err);
}

int db_profile_list(struct db *db, const char *project, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = profile_list(conn, project, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int profile_get(struct db_conn *conn, const char *project, const char *name, json_t **ret,
		       struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT id, name, description FROM profiles"
		       " WHERE project_id = ?1 AND name = ?2",
		       "it", project_id, name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Profile \"%s\" not found", name);
	return profile_from_row(conn, stmt, ret, err);
}

int db_profile_get(struct db *db, const char *project, const char *name, json_t **ret,
		   struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = profile_get(conn, project, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int profile_create(struct db_conn *conn, const char *project, const json_t *profile,
			  struct berth_error *err)
{
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	return db_profile_insert(conn, project_id, profile, err);
}

int db_profile_create(struct db *db, const char *project, const json_t *profile,
		      struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = profile_create(conn, project, profile, err);
	return db_tx_end(db, conn, r, err);
}

static int profile_update(struct db_conn *conn, const char *project, const char *name,
			  const json_t *profile, struct berth_error *err)
{
	const char *description = berth_json_string(profile, "description");
	int64_t project_id = 0, id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_profile_id(conn, project_id, name, &id, err);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE profiles SET description = ?2 WHERE id = ?1", "it", id,
		    description ? description : "");
	if (r < 0)
		return r;
	r = db_exec(conn, err, "DELETE FROM profiles_config WHERE profile_id = ?1", "i", id);
	if (r < 0)
		return r;
	/* Device config rows go with their devices (ON DELETE CASCADE). */
	r = db_exec(conn, err, "DELETE FROM profiles_devices WHERE profile_id = ?1", "i", id);
	if (r < 0)
		return r;
	return profile_store_children(conn, id, profile, err);
}

int db_profile_update(struct db *db, const char *project, const char *name, const json_t *profile,
		      struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = profile_update(conn, project, name, profile, err);
	return db_tx_end(db, conn, r, err);
}

static int profile_rename(struct db_conn *conn, const char *project, const char *name,
			  const char *new_name, struct berth_error *err)
{
	int64_t project_id = 0, id = 0;
	int r;

	if (streq(name, "default"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "The \"default\" profile cannot be renamed");
	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_profile_id(conn, project_id, name, &id, err);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE profiles SET name = ?2 WHERE id = ?1", "it", id, new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Profile \"%s\" already exists",
				       new_name);
	return r < 0 ? r : 0;
}

int db_profile_rename(struct db *db, const char *project, const char *name, const char *new_name,
		      struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = profile_rename(conn, project, name, new_name, err);
	return db_tx_end(db, conn, r, err);
}

static int profile_delete(struct db_conn *conn, const char *project, const char *name,
			  struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int64_t project_id = 0, id = 0, users;
	int r;

	if (streq(name, "default"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "The \"default\" profile cannot be deleted");
	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_profile_id(conn, project_id, name, &id, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT COUNT(*) FROM instances_profiles WHERE profile_id = ?1", "i", id);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	users = r > 0 ? db_column_int64(stmt, 0) : 0;
	if (users > 0)
		return berth_error_set(err, -EBUSY, BERTH_ERR_CONFLICT,
				       "Profile \"%s\" is used by %lld instance%s", name,
				       (long long)users, users == 1 ? "" : "s");
	r = db_exec(conn, err, "DELETE FROM profiles WHERE id = ?1", "i", id);
	if (r == -EBUSY)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Profile \"%s\" is in use",
				       name);
	return r < 0 ? r : 0;
}

int db_profile_delete(struct db *db, const char *project, const char *name, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = profile_delete(conn, project, name, err);
	return db_tx_end(db, conn, r, err);
}

static int profile_used_by(struct db_conn *conn, const char *project, const char *name,
			   json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	json_auto_t *list = json_array();
	int64_t project_id = 0, id = 0;
	int r;

	if (!list)
		return db_oom(err);
	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = db_profile_id(conn, project_id, name, &id, err);
	if (r < 0)
		return r;
	r = db_prepare(conn, &stmt, err,
		       "SELECT i.name, p.name FROM instances_profiles ip"
		       " JOIN instances i ON i.id = ip.instance_id"
		       " JOIN projects p ON p.id = i.project_id"
		       " WHERE ip.profile_id = ?1 ORDER BY p.name, i.name",
		       "i", id);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		_cleanup_free_ char *inst = berth_url_encode(db_column_text(stmt, 0));
		_cleanup_free_ char *proj = berth_url_encode(db_column_text(stmt, 1));
		_cleanup_free_ char *url = NULL;

		if (inst && proj)
			url = streq(proj, "default")
				      ? berth_strdup_printf("/1.0/instances/%s", inst)
				      : berth_strdup_printf("/1.0/instances/%s?project=%s", inst,
							    proj);
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

int db_profile_used_by(struct db *db, const char *project, const char *name, json_t **ret,
		       struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = profile_used_by(conn, project, name, ret, err);
	return db_tx_end(db, conn, r, err);
}
