/* daemon/db/instances.c: instances (`instances` and its config, devices, device config
 * and ordered profile links).
 *
 * Loading is set-based so listing stays fast with thousands of instances: one query for
 * the instance rows, then one each for all their config, all their devices (with device
 * config) and all their profile links. The child rows are attached in memory by looking
 * the instance id up in an id-sorted index. Single gets use the same path with an id
 * filter, so there is one way to turn rows into an instance object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "daemon/db/db_tables.h"
#include "lib/json.h"
#include "lib/util.h"

#define INSTANCE_STATUS_RUNNING 103

static const char sql_config_insert[] =
	"INSERT INTO instances_config (instance_id, key, value) VALUES (?1, ?2, ?3)";

static const struct db_device_sql device_sql = {
	/* Loading goes through instances_load(); only the inserts are used here. */
	.load = NULL,
	.insert = "INSERT INTO instances_devices (instance_id, name, type) VALUES (?1, ?2, ?3)",
	.insert_config =
		"INSERT INTO instances_devices_config (device_id, key, value) VALUES (?1, ?2, ?3)",
};

/* Which instances a load covers: those of one project, one instance, or all. */
struct instance_filter {
	int64_t project_id;  /* > 0: only this project */
	int64_t instance_id; /* > 0: only this instance */
};

/* One loaded instance's child containers, borrowed from the instance object. */
struct instance_ref {
	int64_t id;
	json_t *config;
	json_t *devices;
	json_t *profiles;
};

/* What a load builds: the instances in list order plus an index sorted by id. */
struct instance_set {
	json_t *list;		   /* owned */
	struct instance_ref *refs; /* owned array of n entries, sorted by id */
	size_t n;
	size_t last; /* index of the last lookup hit: child rows come grouped by id */
};

static void instance_set_release(struct instance_set *set)
{
	json_decref(set->list);
	free(set->refs);
}

/* Prepare "<select> WHERE <filter condition> ORDER BY <order>" with the filter's value
 * bound to ?1. The condition is a constant of ours, never input. */
static int instance_prepare(struct db_conn *conn, const struct instance_filter *filter,
			    const char *select, const char *order, struct db_stmt **ret,
			    struct berth_error *err)
{
	_cleanup_free_ char *sql = NULL;
	const char *where = "1 = 1";

	if (filter->instance_id > 0)
		where = "i.id = ?1";
	else if (filter->project_id > 0)
		where = "i.project_id = ?1";
	sql = berth_strdup_printf("%s WHERE %s ORDER BY %s", select, where, order);
	if (!sql)
		return db_oom(err);
	if (filter->instance_id > 0)
		return db_prepare(conn, ret, err, sql, "i", filter->instance_id);
	if (filter->project_id > 0)
		return db_prepare(conn, ret, err, sql, "i", filter->project_id);
	return db_prepare(conn, ret, err, sql, NULL);
}

static int instance_ref_cmp(const void *a, const void *b)
{
	const struct instance_ref *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static struct instance_ref *instance_set_find(struct instance_set *set, int64_t id)
{
	struct instance_ref key = {.id = id};
	struct instance_ref *ref;

	if (set->last < set->n && set->refs[set->last].id == id)
		return &set->refs[set->last];
	ref = bsearch(&key, set->refs, set->n, sizeof(*set->refs), instance_ref_cmp);
	if (ref)
		set->last = (size_t)(ref - set->refs);
	return ref;
}

/* Build one instance object from a row of the first query; record its children. */
static int instance_from_row(struct db_stmt *stmt, struct instance_ref *ref, json_t **ret,
			     struct berth_error *err)
{
	json_auto_t *inst = NULL;

	ref->id = db_column_int64(stmt, 0);
	inst = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{}, s:{}, s:[], s:b, s:b, s:s, s:s, s:s, "
			 "s:I}",
			 "name", db_column_text(stmt, 2), "project", db_column_text(stmt, 1),
			 "type", db_column_text(stmt, 3), "architecture", db_column_text(stmt, 4),
			 "description", db_column_text(stmt, 5), "config", "devices", "profiles",
			 "ephemeral", db_column_int(stmt, 6), "stateful", db_column_int(stmt, 7),
			 "created_at", db_column_text(stmt, 8), "last_used_at",
			 db_column_text(stmt, 9), "status", db_column_text(stmt, 10), "status_code",
			 (json_int_t)db_column_int64(stmt, 11));
	if (!inst)
		return db_oom(err);
	ref->config = json_object_get(inst, "config");
	ref->devices = json_object_get(inst, "devices");
	ref->profiles = json_object_get(inst, "profiles");
	*ret = TAKE_PTR(inst);
	return 0;
}

static int instances_load_rows(struct db_conn *conn, const struct instance_filter *filter,
			       struct instance_set *set, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	size_t cap = 0;
	int r;

	set->list = json_array();
	if (!set->list)
		return db_oom(err);
	r = instance_prepare(conn, filter,
			     "SELECT i.id, p.name, i.name, i.type, i.architecture, i.description,"
			     " i.ephemeral, i.stateful, i.created_at, i.last_used_at, i.status,"
			     " i.status_code FROM instances i"
			     " JOIN projects p ON p.id = i.project_id",
			     "p.name, i.name", &stmt, err);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		json_t *inst = NULL;

		if (set->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct instance_ref *n = reallocarray(set->refs, ncap, sizeof(*n));

			if (!n)
				return db_oom(err);
			set->refs = n;
			cap = ncap;
		}
		r = instance_from_row(stmt, &set->refs[set->n], &inst, err);
		if (r < 0)
			return r;
		if (json_array_append_new(set->list, inst) < 0)
			return db_oom(err);
		set->n++;
	}
	if (r < 0)
		return r;
	if (set->n > 1)
		qsort(set->refs, set->n, sizeof(*set->refs), instance_ref_cmp);
	return 0;
}

static int instances_load_config(struct db_conn *conn, const struct instance_filter *filter,
				 struct instance_set *set, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = instance_prepare(conn, filter,
			     "SELECT c.instance_id, c.key, c.value FROM instances_config c"
			     " JOIN instances i ON i.id = c.instance_id",
			     "c.instance_id, c.key", &stmt, err);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		struct instance_ref *ref = instance_set_find(set, db_column_int64(stmt, 0));

		if (!ref)
			continue; /* cannot happen inside our read transaction */
		r = db_json_set_str(ref->config, db_column_text(stmt, 1), db_column_text(stmt, 2),
				    err);
		if (r < 0)
			return r;
	}
	return r;
}

static int instances_load_devices(struct db_conn *conn, const struct instance_filter *filter,
				  struct instance_set *set, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = instance_prepare(conn, filter,
			     "SELECT d.instance_id, d.name, d.type, c.key, c.value"
			     " FROM instances_devices d JOIN instances i ON i.id = d.instance_id"
			     " LEFT JOIN instances_devices_config c ON c.device_id = d.id",
			     "d.instance_id, d.name, c.key", &stmt, err);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		struct instance_ref *ref = instance_set_find(set, db_column_int64(stmt, 0));

		if (!ref)
			continue;
		r = db_devices_add_row(ref->devices, db_column_text(stmt, 1),
				       db_column_text(stmt, 2), db_column_text_or_null(stmt, 3),
				       db_column_text(stmt, 4), err);
		if (r < 0)
			return r;
	}
	return r;
}

static int instances_load_profiles(struct db_conn *conn, const struct instance_filter *filter,
				   struct instance_set *set, struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = instance_prepare(conn, filter,
			     "SELECT ip.instance_id, pr.name FROM instances_profiles ip"
			     " JOIN instances i ON i.id = ip.instance_id"
			     " JOIN profiles pr ON pr.id = ip.profile_id",
			     "ip.instance_id, ip.apply_order", &stmt, err);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		struct instance_ref *ref = instance_set_find(set, db_column_int64(stmt, 0));

		if (!ref)
			continue;
		r = db_json_append_str(ref->profiles, db_column_text(stmt, 1), err);
		if (r < 0)
			return r;
	}
	return r;
}

/* Load the instances `filter` selects into a new array, sorted by project then name.
 * Four queries whatever the number of instances. Caller holds a transaction. */
static int instances_load(struct db_conn *conn, const struct instance_filter *filter, json_t **ret,
			  struct berth_error *err)
{
	_cleanup_(instance_set_release) struct instance_set set = {0};
	int r;

	r = instances_load_rows(conn, filter, &set, err);
	if (r >= 0 && set.n > 0)
		r = instances_load_config(conn, filter, &set, err);
	if (r >= 0 && set.n > 0)
		r = instances_load_devices(conn, filter, &set, err);
	if (r >= 0 && set.n > 0)
		r = instances_load_profiles(conn, filter, &set, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(set.list);
	return 0;
}

/* Project id for a list: 0 (no filter) when `project` is NULL. */
static int instance_project_filter(struct db_conn *conn, const char *project, int64_t *ret,
				   struct berth_error *err)
{
	if (!project) {
		*ret = 0;
		return 0;
	}
	return db_project_id(conn, project, ret, err);
}

static int instance_id(struct db_conn *conn, int64_t project_id, const char *name, int64_t *ret,
		       struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	int r;

	r = db_prepare(conn, &stmt, err,
		       "SELECT id FROM instances WHERE project_id = ?1 AND name = ?2", "it",
		       project_id, name);
	if (r < 0)
		return r;
	r = db_step(stmt, err);
	if (r < 0)
		return r;
	if (r == 0)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Instance \"%s\" not found", name);
	*ret = db_column_int64(stmt, 0);
	return 0;
}

/* Project id and instance id of `project`/`name`, -ENOENT naming the missing one. */
static int instance_lookup(struct db_conn *conn, const char *project, const char *name,
			   int64_t *ret_project_id, int64_t *ret_id, struct berth_error *err)
{
	int64_t project_id = 0;
	int r;

	r = db_project_id(conn, project, &project_id, err);
	if (r < 0)
		return r;
	r = instance_id(conn, project_id, name, ret_id, err);
	if (r < 0)
		return r;
	if (ret_project_id)
		*ret_project_id = project_id;
	return 0;
}

static int instance_list(struct db_conn *conn, const char *project, json_t **ret,
			 struct berth_error *err)
{
	struct instance_filter filter = {0};
	int r;

	r = instance_project_filter(conn, project, &filter.project_id, err);
	if (r < 0)
		return r;
	return instances_load(conn, &filter, ret, err);
}

int db_instance_list(struct db *db, const char *project, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_list(conn, project, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int instance_names(struct db_conn *conn, const char *project, json_t **ret,
			  struct berth_error *err)
{
	_cleanup_stmt_ struct db_stmt *stmt = NULL;
	struct instance_filter filter = {0};
	json_auto_t *names = json_array();
	int r;

	if (!names)
		return db_oom(err);
	r = instance_project_filter(conn, project, &filter.project_id, err);
	if (r < 0)
		return r;
	r = instance_prepare(conn, &filter,
			     "SELECT i.name FROM instances i"
			     " JOIN projects p ON p.id = i.project_id",
			     "p.name, i.name", &stmt, err);
	if (r < 0)
		return r;
	while ((r = db_step(stmt, err)) > 0) {
		r = db_json_append_str(names, db_column_text(stmt, 0), err);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(names);
	return 0;
}

int db_instance_names(struct db *db, const char *project, json_t **ret, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_names(conn, project, ret, err);
	return db_tx_end(db, conn, r, err);
}

static int instance_get(struct db_conn *conn, const char *project, const char *name, json_t **ret,
			struct berth_error *err)
{
	struct instance_filter filter = {0};
	json_auto_t *list = NULL;
	int r;

	r = instance_lookup(conn, project, name, NULL, &filter.instance_id, err);
	if (r < 0)
		return r;
	r = instances_load(conn, &filter, &list, err);
	if (r < 0)
		return r;
	if (json_array_size(list) != 1)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND,
				       "Instance \"%s\" not found", name);
	*ret = json_incref(json_array_get(list, 0));
	return 0;
}

int db_instance_get(struct db *db, const char *project, const char *name, json_t **ret,
		    struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_read_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_get(conn, project, name, ret, err);
	return db_tx_end(db, conn, r, err);
}

/* Link the profiles named in `profiles` (an array; anything else: none), in order. */
static int instance_store_profiles(struct db_conn *conn, int64_t project_id, int64_t id,
				   const json_t *profiles, struct berth_error *err)
{
	int64_t profiles_project = 0;
	size_t i;
	json_t *v;
	int r;

	if (!json_is_array(profiles))
		return 0;
	/* A project without features.profiles uses the "default" project's profiles. */
	r = db_project_feature_id(conn, project_id, "features.profiles", &profiles_project, err);
	if (r < 0)
		return r;
	json_array_foreach(profiles, i, v) {
		const char *name = json_string_value(v);
		int64_t profile_id = 0;

		if (!name)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Profile names must be strings");
		r = db_profile_id(conn, profiles_project, name, &profile_id, err);
		if (r < 0)
			return r;
		r = db_exec(conn, err,
			    "INSERT INTO instances_profiles (instance_id, profile_id, apply_order)"
			    " VALUES (?1, ?2, ?3)",
			    "iii", id, profile_id, (int64_t)i);
		if (r == -EEXIST)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Duplicate profile \"%s\"", name);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Config, devices and profiles of instance `id` from `instance` (missing ones: none). */
static int instance_store_children(struct db_conn *conn, int64_t project_id, int64_t id,
				   const json_t *instance, struct berth_error *err)
{
	int r;

	r = db_kv_store(conn, sql_config_insert, id, json_object_get(instance, "config"), "Config",
			err);
	if (r < 0)
		return r;
	r = db_devices_store(conn, &device_sql, id, json_object_get(instance, "devices"), err);
	if (r < 0)
		return r;
	return instance_store_profiles(conn, project_id, id, json_object_get(instance, "profiles"),
				       err);
}

static int instance_create(struct db_conn *conn, const char *project, const json_t *instance,
			   struct berth_error *err)
{
	const char *name = berth_json_string(instance, "name");
	const char *type = berth_json_string(instance, "type");
	const char *architecture = berth_json_string(instance, "architecture");
	const char *description = berth_json_string(instance, "description");
	char now[BERTH_RFC3339_MAX];
	int64_t project_id = 0;
	int r;

	if (!name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Instance name is missing");
	r = db_project_id(conn, project, &project_id, err);
	if (r >= 0)
		r = db_project_instance_room(conn, project_id, project, type ? type : "container",
					     err);
	if (r < 0)
		return r;
	berth_now_rfc3339(now);
	r = db_exec(conn, err,
		    "INSERT INTO instances (project_id, name, type, architecture, description,"
		    " ephemeral, stateful, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
		    "ittttbbt", project_id, name, type ? type : "container",
		    architecture ? architecture : "", description ? description : "",
		    berth_json_bool(instance, "ephemeral", false),
		    berth_json_bool(instance, "stateful", false), now);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Instance \"%s\" already exists",
				       name);
	if (r < 0)
		return r;
	return instance_store_children(conn, project_id, db_last_insert_id(conn), instance, err);
}

int db_instance_lookup(struct db_conn *conn, const char *project, const char *name,
		       int64_t *ret_project_id, int64_t *ret_id, struct berth_error *err)
{
	return instance_lookup(conn, project, name, ret_project_id, ret_id, err);
}

int db_instance_load(struct db_conn *conn, const char *project, const char *name, json_t **ret,
		     struct berth_error *err)
{
	return instance_get(conn, project, name, ret, err);
}

int db_instance_insert(struct db_conn *conn, const char *project, const json_t *instance,
		       int64_t *ret_id, struct berth_error *err)
{
	int r = instance_create(conn, project, instance, err);

	if (r >= 0)
		r = instance_lookup(conn, project, berth_json_string(instance, "name"), NULL,
				    ret_id, err);
	return r;
}

int db_instance_create(struct db *db, const char *project, const json_t *instance,
		       struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_create(conn, project, instance, err);
	return db_tx_end(db, conn, r, err);
}

static int instance_update(struct db_conn *conn, const char *project, const char *name,
			   const json_t *instance, struct berth_error *err)
{
	const char *description = berth_json_string(instance, "description");
	int64_t project_id = 0, id = 0;
	int r;

	r = instance_lookup(conn, project, name, &project_id, &id, err);
	if (r < 0)
		return r;
	/* As LXD does, an absent architecture keeps the current one. */
	r = db_exec(conn, err,
		    "UPDATE instances SET architecture = COALESCE(?2, architecture),"
		    " description = ?3, ephemeral = ?4 WHERE id = ?1",
		    "ittb", id, berth_json_string(instance, "architecture"),
		    description ? description : "", berth_json_bool(instance, "ephemeral", false));
	if (r < 0)
		return r;
	r = db_exec(conn, err, "DELETE FROM instances_config WHERE instance_id = ?1", "i", id);
	if (r < 0)
		return r;
	/* Device config rows go with their devices (ON DELETE CASCADE). */
	r = db_exec(conn, err, "DELETE FROM instances_devices WHERE instance_id = ?1", "i", id);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "DELETE FROM instances_profiles WHERE instance_id = ?1", "i", id);
	if (r < 0)
		return r;
	return instance_store_children(conn, project_id, id, instance, err);
}

int db_instance_update(struct db *db, const char *project, const char *name, const json_t *instance,
		       struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_update(conn, project, name, instance, err);
	return db_tx_end(db, conn, r, err);
}

static int instance_rename(struct db_conn *conn, const char *project, const char *name,
			   const char *new_name, db_hook_fn hook, void *data,
			   struct berth_error *err)
{
	int64_t id = 0, project_id = 0;
	int r;

	r = instance_lookup(conn, project, name, &project_id, &id, err);
	if (r < 0)
		return r;
	r = db_exec(conn, err, "UPDATE instances SET name = ?2 WHERE id = ?1", "it", id, new_name);
	if (r == -EEXIST)
		return berth_error_set(err, r, BERTH_ERR_CONFLICT, "Instance \"%s\" already exists",
				       new_name);
	if (r < 0)
		return r;
	/* The root volume and its snapshots ("<name>/<snap>") follow the instance. */
	r = db_exec(conn, err,
		    "UPDATE storage_volumes SET name = ?3 || substr(name, length(?2) + 1)"
		    " WHERE project_id = ?1 AND type IN ('container', 'virtual-machine')"
		    " AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')",
		    "itt", project_id, name, new_name);
	if (r < 0)
		return r;
	return hook ? hook(data, err) : 0;
}

int db_instance_rename(struct db *db, const char *project, const char *name, const char *new_name,
		       db_hook_fn hook, void *data, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_rename(conn, project, name, new_name, hook, data, err);
	return db_tx_end(db, conn, r, err);
}

static int instance_delete(struct db_conn *conn, const char *project, const char *name,
			   struct berth_error *err)
{
	int64_t id = 0;
	int r;

	int64_t project_id = 0;

	r = instance_lookup(conn, project, name, &project_id, &id, err);
	if (r < 0)
		return r;
	/* Config, devices, profile links and snapshots follow (ON DELETE CASCADE). */
	r = db_exec(conn, err, "DELETE FROM instances WHERE id = ?1", "i", id);
	if (r < 0)
		return r;
	/* Its root volume and the volumes of its snapshots. */
	r = db_exec(conn, err,
		    "DELETE FROM storage_volumes WHERE project_id = ?1"
		    " AND type IN ('container', 'virtual-machine')"
		    " AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')",
		    "it", project_id, name);
	return r < 0 ? r : 0;
}

int db_instance_delete(struct db *db, const char *project, const char *name,
		       struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_delete(conn, project, name, err);
	return db_tx_end(db, conn, r, err);
}

static int instance_set_status(struct db_conn *conn, const char *project, const char *name,
			       const char *status, int status_code, struct berth_error *err)
{
	char now[BERTH_RFC3339_MAX];
	int64_t id = 0;
	int r;

	r = instance_lookup(conn, project, name, NULL, &id, err);
	if (r < 0)
		return r;
	berth_now_rfc3339(now);
	/* Entering Running is a use, as LXD's last_used_at counts starts. */
	r = db_exec(conn, err,
		    "UPDATE instances SET status = ?2, status_code = ?3,"
		    " last_used_at = CASE WHEN ?3 = ?4 AND status_code != ?4 THEN ?5"
		    " ELSE last_used_at END WHERE id = ?1",
		    "itiit", id, status, (int64_t)status_code, (int64_t)INSTANCE_STATUS_RUNNING,
		    now);
	return r < 0 ? r : 0;
}

int db_instance_set_status(struct db *db, const char *project, const char *name, const char *status,
			   int status_code, struct berth_error *err)
{
	struct db_conn *conn = NULL;
	int r;

	r = db_tx_begin(db, &conn, err);
	if (r < 0)
		return r;
	r = instance_set_status(conn, project, name, status, status_code, err);
	return db_tx_end(db, conn, r, err);
}
