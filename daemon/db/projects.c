/* daemon/db/projects.c: projects (`projects`, `projects_config`) and what refers to
 * them: a new project gets its own "default" profile; a project that still holds
 * instances or other profiles cannot be deleted; used_by lists its contents as URLs. */
#include <stdio.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "lib/json.h"
#include "lib/util.h"

static const char sql_config_load[] =
	"SELECT key, value FROM projects_config WHERE project_id = ?1 ORDER BY key";
static const char sql_config_insert[] =
	"INSERT INTO projects_config (project_id, key, value) VALUES (?1, ?2, ?3)";

int db_project_id(sqlite3 *db, const char *name, int64_t *ret, struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	int r;

	r = db_prepare(db, &stmt, err, "SELECT id FROM projects WHERE name = ?1", "t", name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Project \"%s\" not found", name);
	*ret = sqlite3_column_int64(stmt, 0);
	return 0;
}

int db_project_insert(sqlite3 *db, const char *name, const char *description,
		      const json_t *config, int64_t *ret_id, struct berth_error *err)
{
	int64_t id;
	int r;

	r = db_exec(db, err, "INSERT INTO projects (name, description) VALUES (?1, ?2)", "tt",
		    name, description ? description : "");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Project \"%s\" already exists",
				       name);
	if (r < 0)
		return r;
	id = sqlite3_last_insert_rowid(db);
	r = db_kv_store(db, sql_config_insert, id, config, "Config", err);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = id;
	return 0;
}

/* Build {"name","description","config"} from a row (id, name, description). */
static int project_from_row(sqlite3 *db, sqlite3_stmt *stmt, json_t **ret,
			    struct berth_error *err)
{
	json_auto_t *project = json_object();
	json_t *config = NULL;
	int r;

	if (!project)
		return db_oom(err);
	r = db_json_set_str(project, "name", db_column_text(stmt, 1), err);
	if (r >= 0)
		r = db_json_set_str(project, "description", db_column_text(stmt, 2), err);
	if (r >= 0)
		r = db_kv_load(db, sql_config_load, sqlite3_column_int64(stmt, 0), &config, err);
	if (r >= 0)
		r = db_json_set_new(project, "config", config, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(project);
	return 0;
}

static int project_list(sqlite3 *db, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	int r;

	r = db_prepare(db, &stmt, err, "SELECT id, name, description FROM projects ORDER BY name",
		       NULL);
	if (r < 0)
		return r;
	return db_collect(db, stmt, project_from_row, ret, err);
}

int db_project_list(json_t **ret, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_read_begin(&db, err);
	if (r < 0)
		return r;
	r = project_list(db, ret, err);
	return db_tx_end(db, r, err);
}

static int project_get(sqlite3 *db, const char *name, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	int r;

	r = db_prepare(db, &stmt, err, "SELECT id, name, description FROM projects WHERE name = ?1",
		       "t", name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Project \"%s\" not found", name);
	return project_from_row(db, stmt, ret, err);
}

int db_project_get(const char *name, json_t **ret, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_read_begin(&db, err);
	if (r < 0)
		return r;
	r = project_get(db, name, ret, err);
	return db_tx_end(db, r, err);
}

static int project_create(sqlite3 *db, const json_t *project, struct berth_error *err)
{
	_cleanup_free_ char *description = NULL;
	json_auto_t *profile = NULL;
	const char *name = berth_json_string(project, "name");
	int64_t id = 0;
	int r;

	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Project name is missing");
	r = db_project_insert(db, name, berth_json_string(project, "description"),
			      json_object_get(project, "config"), &id, err);
	if (r < 0)
		return r;
	/* As LXD does, every new project starts with an empty "default" profile. */
	description = berth_strdup_printf("Default LXD profile for project %s", name);
	if (!description)
		return db_oom(err);
	profile = json_pack("{s:s, s:s}", "name", "default", "description", description);
	if (!profile)
		return db_oom(err);
	return db_profile_insert(db, id, profile, err);
}

int db_project_create(const json_t *project, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_tx_begin(&db, err);
	if (r < 0)
		return r;
	r = project_create(db, project, err);
	return db_tx_end(db, r, err);
}

static int project_update(sqlite3 *db, const char *name, const json_t *project,
			  struct berth_error *err)
{
	const char *description = berth_json_string(project, "description");
	int64_t id = 0;
	int r;

	r = db_project_id(db, name, &id, err);
	if (r < 0)
		return r;
	r = db_exec(db, err, "UPDATE projects SET description = ?2 WHERE id = ?1", "it", id,
		    description ? description : "");
	if (r < 0)
		return r;
	r = db_exec(db, err, "DELETE FROM projects_config WHERE project_id = ?1", "i", id);
	if (r < 0)
		return r;
	return db_kv_store(db, sql_config_insert, id, json_object_get(project, "config"),
			   "Config", err);
}

int db_project_update(const char *name, const json_t *project, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_tx_begin(&db, err);
	if (r < 0)
		return r;
	r = project_update(db, name, project, err);
	return db_tx_end(db, r, err);
}

static int project_rename(sqlite3 *db, const char *name, const char *new_name,
			  struct berth_error *err)
{
	int64_t id = 0;
	int r;

	if (streq(name, "default"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "The \"default\" project cannot be renamed");
	r = db_project_id(db, name, &id, err);
	if (r < 0)
		return r;
	r = db_exec(db, err, "UPDATE projects SET name = ?2 WHERE id = ?1", "it", id, new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Project \"%s\" already exists",
				       new_name);
	return r < 0 ? r : 0;
}

int db_project_rename(const char *name, const char *new_name, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_tx_begin(&db, err);
	if (r < 0)
		return r;
	r = project_rename(db, name, new_name, err);
	return db_tx_end(db, r, err);
}

/* Count rows of `sql` (?1 = project id, one COUNT(*) column). */
static int project_count(sqlite3 *db, const char *sql, int64_t id, int64_t *ret,
			 struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	int r;

	r = db_prepare(db, &stmt, err, sql, "i", id);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	*ret = r > 0 ? sqlite3_column_int64(stmt, 0) : 0;
	return 0;
}

static int project_delete(sqlite3 *db, const char *name, struct berth_error *err)
{
	int64_t id = 0, instances = 0, profiles = 0;
	int r;

	if (streq(name, "default"))
		return berth_error_set(err, -EBUSY, BERTH_ERR_FORBIDDEN,
				       "The \"default\" project cannot be deleted");
	r = db_project_id(db, name, &id, err);
	if (r < 0)
		return r;
	r = project_count(db, "SELECT COUNT(*) FROM instances WHERE project_id = ?1", id,
			  &instances, err);
	if (r < 0)
		return r;
	r = project_count(db,
			  "SELECT COUNT(*) FROM profiles"
			  " WHERE project_id = ?1 AND name != 'default'",
			  id, &profiles, err);
	if (r < 0)
		return r;
	if (instances > 0 || profiles > 0)
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Only empty projects can be removed: project \"%s\" has "
				       "%lld instances and %lld profiles besides \"default\"",
				       name, (long long)instances, (long long)profiles);
	r = db_exec(db, err, "DELETE FROM projects WHERE id = ?1", "i", id);
	return r < 0 ? r : 0;
}

int db_project_delete(const char *name, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_tx_begin(&db, err);
	if (r < 0)
		return r;
	r = project_delete(db, name, err);
	return db_tx_end(db, r, err);
}

/* Append "/1.0/<kind>/<name>[?project=p]" for every row of `sql` (?1 = project id). */
static int project_used_by_add(sqlite3 *db, const char *sql, int64_t id, const char *kind,
			       const char *project, json_t *list, struct berth_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *stmt = NULL;
	_cleanup_free_ char *suffix = NULL;
	int r;

	if (!streq(project, "default")) {
		_cleanup_free_ char *encoded = berth_url_encode(project);

		suffix = encoded ? berth_strdup_printf("?project=%s", encoded) : NULL;
	} else {
		suffix = strdup("");
	}
	if (!suffix)
		return db_oom(err);
	r = db_prepare(db, &stmt, err, sql, "i", id);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		_cleanup_free_ char *encoded = berth_url_encode(db_column_text(stmt, 0));
		_cleanup_free_ char *url = NULL;

		if (encoded)
			url = berth_strdup_printf("/1.0/%s/%s%s", kind, encoded, suffix);
		if (!url)
			return db_oom(err);
		r = db_json_append_str(list, url, err);
		if (r < 0)
			return r;
	}
	return r;
}

static int project_used_by(sqlite3 *db, const char *name, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = json_array();
	int64_t id = 0;
	int r;

	if (!list)
		return db_oom(err);
	r = db_project_id(db, name, &id, err);
	if (r < 0)
		return r;
	r = project_used_by_add(db,
				"SELECT name FROM instances WHERE project_id = ?1 ORDER BY name",
				id, "instances", name, list, err);
	if (r < 0)
		return r;
	r = project_used_by_add(db, "SELECT name FROM profiles WHERE project_id = ?1 ORDER BY name",
				id, "profiles", name, list, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

int db_project_used_by(const char *name, json_t **ret, struct berth_error *err)
{
	sqlite3 *db = NULL;
	int r;

	r = db_read_begin(&db, err);
	if (r < 0)
		return r;
	r = project_used_by(db, name, ret, err);
	return db_tx_end(db, r, err);
}
