/* daemon/db/projects.c: projects (`projects`, `projects_config`) and what refers to
 * them. As in LXD 5.0: a project with features.profiles has its own (empty) "default"
 * profile; without a feature (features.images, .profiles, .storage.volumes) the project
 * uses the "default" project's objects of that kind; features change only while the
 * project is empty, never on "default"; a project that still holds anything cannot be
 * deleted or renamed; used_by lists its contents as URLs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

static const char sql_config_load[] =
	"SELECT key, value FROM projects_config WHERE project_id = ?1 ORDER BY key";
static const char sql_config_insert[] =
	"INSERT INTO projects_config (project_id, key, value) VALUES (?1, ?2, ?3)";

int db_project_id(struct db_conn *conn, const char *name, int64_t *ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err, "SELECT id FROM projects WHERE name = ?1", "t", name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Project \"%s\" not found", name);
	*ret = db_column_int64(stmt, 0);
	return 0;
}

/* LXD's IsTrue: "true", "1", "yes", "on"; absent or anything else is off. */
static bool value_true(const char *v)
{
	return v && (streq(v, "true") || streq(v, "1") || streq(v, "yes") || streq(v, "on"));
}

static bool feature_on(const json_t *config, const char *feature)
{
	return value_true(berth_json_string(config, feature));
}

static int project_config_value(struct db_conn *conn, int64_t id, const char *key, char **ret,
				struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	*ret = NULL;
	r = db_prepare(conn, &stmt, err,
		       "SELECT value FROM projects_config WHERE project_id = ?1 AND key = ?2", "it",
		       id, key);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r <= 0)
		return r;
	*ret = strdup(db_column_text(stmt, 0));
	return *ret ? 0 : db_oom(err);
}

int db_project_feature_id(struct db_conn *conn, int64_t project_id, const char *feature,
			  int64_t *ret, struct berth_error *err)
{
	_cleanup_free_ char *value = NULL;
	int r;

	r = project_config_value(conn, project_id, feature, &value, err);
	if (r < 0)
		return r;
	if (value_true(value)) {
		*ret = project_id;
		return 0;
	}
	/* "default" itself has every feature: this finds its own id. */
	return db_project_id(conn, "default", ret, err);
}

static int project_feature_name(struct db_conn *conn, const char *project, const char *feature,
				char **ret, struct berth_error *err)
{
	_cleanup_free_ char *value = NULL;
	int64_t id = 0;
	int r;

	r = db_project_id(conn, project, &id, err);
	if (r < 0)
		return r;
	if (!streq(project, "default")) {
		r = project_config_value(conn, id, feature, &value, err);
		if (r < 0)
			return r;
	}
	*ret = strdup(streq(project, "default") || value_true(value) ? project : "default");
	return *ret ? 0 : db_oom(err);
}

int db_project_feature_project(struct db *db, const char *project, const char *feature, char **ret,
			       struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_feature_name(conn, project, feature, ret, err);
	return db_tx_end(db, conn, r, err);
}

/* Whether `limit_key` of project `id` leaves room for one more row counted by `sql`. */
static int project_room(struct db_conn *conn, int64_t id, const char *limit_key, const char *sql,
			const char *type, bool *ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	_cleanup_free_ char *value = NULL;
	char *end = NULL;
	long long limit;
	int r;

	*ret = true;
	r = project_config_value(conn, id, limit_key, &value, err);
	if (r < 0 || !value || !*value)
		return r;
	limit = strtoll(value, &end, 10);
	if (*end || limit < 0)
		return 0; /* config_check refuses such values: nothing to enforce */
	r = db_prepare(conn, &stmt, err, sql, type ? "it" : "i", id, type);
	if (r >= 0)
		r = db_step(stmt, err);
	if (r < 0)
		return r;
	*ret = (r > 0 ? db_column_int64(stmt, 0) : 0) < limit;
	return 0;
}

int db_project_instance_room(struct db_conn *conn, int64_t project_id, const char *project,
			     const char *type, struct berth_error *err)
{
	const char *key = streq(type, "virtual-machine") ? "limits.virtual-machines"
							 : "limits.containers";
	bool room = true;
	int r;

	r = project_room(conn, project_id, key,
			 "SELECT COUNT(*) FROM instances WHERE project_id = ?1 AND type = ?2", type,
			 &room, err);
	if (r < 0)
		return r;
	if (!room)
		return berth_error_set(err, -EDQUOT, BERTH_ERR_BAD_REQUEST,
				       "Reached maximum number of instances of type \"%s\" in "
				       "project \"%s\"",
				       type, project);
	r = project_room(conn, project_id, "limits.instances",
			 "SELECT COUNT(*) FROM instances WHERE project_id = ?1", NULL, &room, err);
	if (r < 0)
		return r;
	if (!room)
		return berth_error_set(err, -EDQUOT, BERTH_ERR_BAD_REQUEST,
				       "Reached maximum number of instances in project \"%s\"",
				       project);
	return 0;
}

int db_project_insert(struct db_conn *conn, const char *name, const char *description,
		      const json_t *config, int64_t *ret_id, struct berth_error *err)
{
	int64_t id;
	int r;

	r = db_exec(conn, err, "INSERT INTO projects (name, description) VALUES (?1, ?2)", "tt",
		    name, description ? description : "");
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Project \"%s\" already exists",
				       name);
	if (r < 0)
		return r;
	id = db_last_insert_id(conn);
	r = db_kv_store(conn, sql_config_insert, id, config, "Config", err);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = id;
	return 0;
}

/* Build {"name","description","config"} from a row (id, name, description). */
static int project_from_row(struct db_conn *conn, struct db_stmt *stmt, json_t **ret,
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
		r = db_kv_load(conn, sql_config_load, db_column_int64(stmt, 0), &config, err);
	if (r >= 0)
		r = db_json_set_new(project, "config", config, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(project);
	return 0;
}

static int project_list(struct db_conn *conn, json_t **ret, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err, "SELECT id, name, description FROM projects ORDER BY name",
		       NULL);
	if (r < 0)
		return r;
	return db_collect(conn, stmt, project_from_row, ret, err);
}

int db_project_list(struct db *db, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_list(conn, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int project_get(struct db_conn *conn, const char *name, json_t **ret,
		       struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT id, name, description FROM projects WHERE name = ?1", "t", name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Project \"%s\" not found", name);
	return project_from_row(conn, stmt, ret, err);
}

int db_project_get(struct db *db, const char *name, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_get(conn, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

/* The empty "default" profile LXD gives a project with features.profiles. */
static int project_default_profile(struct db_conn *conn, int64_t id, const char *name,
				   struct berth_error *err)
{
	_cleanup_free_ char *description = NULL;
	json_auto_t *profile = NULL;

	description = berth_strdup_printf("Default LXD profile for project %s", name);
	if (!description)
		return db_oom(err);
	profile = json_pack("{s:s, s:s}", "name", "default", "description", description);
	if (!profile)
		return db_oom(err);
	return db_profile_insert(conn, id, profile, err);
}

static int project_create(struct db_conn *conn, const json_t *project, struct berth_error *err)
{
	const char *name = berth_json_string(project, "name");
	int64_t id = 0;
	int r;

	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Project name is missing");
	r = db_project_insert(conn, name, berth_json_string(project, "description"),
			      json_object_get(project, "config"), &id, err);
	if (r < 0)
		return r;
	/* As LXD does, a project with its own profiles starts with an empty "default". */
	if (!feature_on(json_object_get(project, "config"), "features.profiles"))
		return 0;
	return project_default_profile(conn, id, name, err);
}

int db_project_create(struct db *db, const json_t *project, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_create(conn, project, err);
	return db_tx_end(db, conn, r, err);
}

/* Count rows of `sql` (?1 = project id, one COUNT(*) column). */
static int project_count(struct db_conn *conn, const char *sql, int64_t id, int64_t *ret,
			 struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err, sql, "i", id);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	*ret = r > 0 ? db_column_int64(stmt, 0) : 0;
	return 0;
}

/* What a project holds besides its "default" profile, as LXD counts for "empty". */
struct project_contents {
	int64_t instances, images, profiles, volumes;
};

static int project_contents(struct db_conn *conn, int64_t id, struct project_contents *ret,
			    struct berth_error *err)
{
	int r;

	r = project_count(conn, "SELECT COUNT(*) FROM instances WHERE project_id = ?1", id,
			  &ret->instances, err);
	if (r >= 0)
		r = project_count(conn, "SELECT COUNT(*) FROM images WHERE project_id = ?1", id,
				  &ret->images, err);
	if (r >= 0)
		r = project_count(conn,
				  "SELECT COUNT(*) FROM profiles"
				  " WHERE project_id = ?1 AND name != 'default'",
				  id, &ret->profiles, err);
	if (r >= 0)
		r = project_count(conn,
				  "SELECT COUNT(*) FROM storage_volumes"
				  " WHERE project_id = ?1 AND type = 'custom'",
				  id, &ret->volumes, err);
	return r;
}

static bool project_contents_empty(const struct project_contents *c)
{
	return c->instances == 0 && c->images == 0 && c->profiles == 0 && c->volumes == 0;
}

static const char *const project_features[] = {
	"features.images",
	"features.profiles",
	"features.storage.volumes",
	"features.networks",
};

/* LXD's rules for changing features: never on "default", only while the project is
 * empty; features.profiles brings the project's own empty "default" profile or removes
 * it. */
static int project_features_change(struct db_conn *conn, int64_t id, const char *name,
				   const json_t *old_config, const json_t *new_config,
				   struct berth_error *err)
{
	struct project_contents contents = {0};
	bool changed = false;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(project_features); i++)
		changed |= !streq(berth_json_string(old_config, project_features[i]) ?: "",
				  berth_json_string(new_config, project_features[i]) ?: "");
	if (!changed)
		return 0;
	if (streq(name, "default"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "You can't change the features of the default project");
	r = project_contents(conn, id, &contents, err);
	if (r < 0)
		return r;
	if (!project_contents_empty(&contents))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Features can only be changed on empty projects");
	if (feature_on(old_config, "features.profiles") ==
	    feature_on(new_config, "features.profiles"))
		return 0;
	if (!feature_on(new_config, "features.profiles")) {
		r = db_exec(conn, err, "DELETE FROM profiles WHERE project_id = ?1", "i", id);
		return r < 0 ? r : 0;
	}
	return project_default_profile(conn, id, name, err);
}

static int project_update(struct db_conn *conn, const char *name, const json_t *project,
			  struct berth_error *err)
{
	const char *description = berth_json_string(project, "description");
	json_auto_t *old_config = NULL;
	int64_t id = 0;
	int r;

	r = db_project_id(conn, name, &id, err);
	if (r >= 0)
		r = db_kv_load(conn, sql_config_load, id, &old_config, err);
	if (r >= 0)
		r = project_features_change(conn, id, name, old_config,
					    json_object_get(project, "config"), err);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE projects SET description = ?2 WHERE id = ?1", "it", id,
		    description ? description : "");
	if (r < 0)
		return r;
	r = db_exec(conn, err, "DELETE FROM projects_config WHERE project_id = ?1", "i", id);
	if (r < 0)
		return r;
	return db_kv_store(conn, sql_config_insert, id, json_object_get(project, "config"),
			   "Config", err);
}

int db_project_update(struct db *db, const char *name, const json_t *project,
		      struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_update(conn, name, project, err);
	return db_tx_end(db, conn, r, err);
}

static int project_rename(struct db_conn *conn, const char *name, const char *new_name,
			  struct berth_error *err)
{
	struct project_contents c = {0};
	int64_t id = 0;
	int r;

	if (streq(name, "default"))
		return berth_error_set(err, -EPERM, BERTH_ERR_FORBIDDEN,
				       "The \"default\" project cannot be renamed");
	r = db_project_id(conn, name, &id, err);
	if (r >= 0)
		r = project_contents(conn, id, &c, err);
	if (r < 0)
		return r;
	/* Run dirs, log dirs, cgroups and volumes carry <project>_<name>: a rename would
	 * leave them to a project that no longer exists. */
	if (!project_contents_empty(&c))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Only empty projects can be renamed");
	r = db_exec(conn, err, "UPDATE projects SET name = ?2 WHERE id = ?1", "it", id, new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Project \"%s\" already exists",
				       new_name);
	return r < 0 ? r : 0;
}

int db_project_rename(struct db *db, const char *name, const char *new_name,
		      struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_rename(conn, name, new_name, err);
	return db_tx_end(db, conn, r, err);
}

static int project_delete(struct db_conn *conn, const char *name, struct berth_error *err)
{
	struct project_contents c = {0};
	int64_t id = 0;
	int r;

	if (streq(name, "default"))
		return berth_error_set(err, -EBUSY, BERTH_ERR_FORBIDDEN,
				       "The \"default\" project cannot be deleted");
	r = db_project_id(conn, name, &id, err);
	if (r >= 0)
		r = project_contents(conn, id, &c, err);
	if (r < 0)
		return r;
	if (!project_contents_empty(&c))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Only empty projects can be removed: project \"%s\" has "
				       "%lld instances, %lld images, %lld custom volumes and "
				       "%lld profiles besides \"default\"",
				       name, (long long)c.instances, (long long)c.images,
				       (long long)c.volumes, (long long)c.profiles);
	r = db_exec(conn, err, "DELETE FROM projects WHERE id = ?1", "i", id);
	return r < 0 ? r : 0;
}

int db_project_delete(struct db *db, const char *name, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_delete(conn, name, err);
	return db_tx_end(db, conn, r, err);
}

/* Append "/1.0/<kind>/<name>[?project=p]" for every row of `sql` (?1 = project id). */
static int project_used_by_add(struct db_conn *conn, const char *sql, int64_t id, const char *kind,
			       const char *project, json_t *list, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
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
	r = db_prepare(conn, &stmt, err, sql, "i", id);
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

static int project_used_by(struct db_conn *conn, const char *name, json_t **ret,
			   struct berth_error *err)
{
	json_auto_t *list = json_array();
	int64_t id = 0;
	int r;

	if (!list)
		return db_oom(err);
	r = db_project_id(conn, name, &id, err);
	if (r < 0)
		return r;
	r = project_used_by_add(conn,
				"SELECT name FROM instances WHERE project_id = ?1 ORDER BY name",
				id, "instances", name, list, err);
	if (r < 0)
		return r;
	r = project_used_by_add(conn,
				"SELECT name FROM profiles WHERE project_id = ?1 ORDER BY name", id,
				"profiles", name, list, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

int db_project_used_by(struct db *db, const char *name, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = project_used_by(conn, name, ret, err);
	return db_tx_end(db, conn, r, err);
}
