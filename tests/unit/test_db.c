/* tests/unit/test_db.c: daemon/db/ against a real SQLite file in a fresh temp dir per
 * test: defaults, migrations, the CRUD and delete rules of each object, transactions
 * leaving nothing behind, set-based listing, and per-thread connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "lib/json.h"
#include "lib/util.h"

#define POOL_SOURCE "/var/lib/berth/storage-pools/default"

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct berth_error err = {0};
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-db-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/berth.db", f->dir);
	if (db_init(f->path, POOL_SOURCE, &err) < 0) {
		fprintf(stderr, "db_init: %s\n", err.msg);
		berth_error_release(&err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	db_shutdown();
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static json_t *parse(const char *s)
{
	json_t *v = json_loads(s, 0, NULL);

	assert_non_null(v);
	return v;
}

/* One integer from `sql`, through a connection of the test's own (not the module's). */
static int64_t query_int(const struct fixture *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

static void assert_json_eq(const json_t *a, const char *expected)
{
	json_auto_t *e = parse(expected);

	if (!json_equal((json_t *)a, e)) {
		_cleanup_free_ char *got = json_dumps(a, JSON_SORT_KEYS);

		fail_msg("JSON differs: got %s, expected %s", got, expected);
	}
}

/* Assert that `r` is `expected` and that the message contains `msg`; clear `err`. */
static void assert_fails(int r, int expected, int code, struct berth_error *err, const char *msg)
{
	assert_int_equal(r, expected);
	assert_int_equal(err->code, code);
	assert_non_null(err->msg);
	if (!strstr(err->msg, msg))
		fail_msg("message \"%s\" lacks \"%s\"", err->msg, msg);
	berth_error_release(err);
}

static void create_instance(const char *project, const char *body)
{
	struct berth_error err = {0};
	json_auto_t *inst = parse(body);
	int r = db_instance_create(project, inst, &err);

	if (r < 0)
		fail_msg("db_instance_create: %s", err.msg);
}

static void test_init_defaults(void **state)
{
	struct berth_error err = {0};
	json_auto_t *projects = NULL, *profile = NULL, *pools = NULL, *pool = NULL;
	const struct fixture *f = *state;

	assert_int_equal(db_project_list(&projects, &err), 0);
	assert_int_equal(json_array_size(projects), 1);
	assert_string_equal(berth_json_string(json_array_get(projects, 0), "name"), "default");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(projects, 0), "config"),
				    "features.profiles")),
			    "true");

	assert_int_equal(db_profile_get("default", "default", &profile, &err), 0);
	assert_json_eq(profile, "{\"name\":\"default\",\"description\":\"Default LXD profile\","
				"\"config\":{},\"devices\":{\"root\":{\"type\":\"disk\","
				"\"path\":\"/\",\"pool\":\"default\"}}}");

	assert_int_equal(db_pool_list(&pools, &err), 0);
	assert_int_equal(json_array_size(pools), 1);
	assert_int_equal(db_pool_get("default", &pool, &err), 0);
	assert_json_eq(pool, "{\"name\":\"default\",\"driver\":\"dir\",\"description\":\"\","
			     "\"config\":{\"source\":\"" POOL_SOURCE "\"},\"status\":\"Created\"}");
	assert_fails(db_pool_get("nope", &pool, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Storage pool \"nope\" not found");

	assert_int_equal(query_int(f, "PRAGMA user_version"), db_schema_version());
	assert_true(db_schema_version() >= 1);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM pragma_journal_mode()"), 1);
}

static void test_reopen_keeps_data(void **state)
{
	struct berth_error err = {0};
	json_auto_t *profile = parse("{\"name\":\"kept\",\"config\":{\"limits.cpu\":\"2\"}}");
	json_auto_t *profiles = NULL, *got = NULL;
	const struct fixture *f = *state;

	assert_int_equal(db_profile_create("default", profile, &err), 0);
	db_shutdown();
	assert_int_equal(db_init(f->path, "/elsewhere", &err), 0);

	/* Migrations and defaults were not applied a second time. */
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM projects"), 1);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM storage_pools"), 1);
	assert_int_equal(db_profile_list("default", &profiles, &err), 0);
	assert_int_equal(json_array_size(profiles), 2);
	assert_int_equal(db_profile_get("default", "kept", &got, &err), 0);
	assert_json_eq(json_object_get(got, "config"), "{\"limits.cpu\":\"2\"}");
}

static void test_newer_schema_refused(void **state)
{
	struct berth_error err = {0};
	const struct fixture *f = *state;
	char sql[64], newer[16], ours[16];
	sqlite3 *db = NULL;

	db_shutdown();
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", db_schema_version() + 7);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(db_init(f->path, POOL_SOURCE, &err), -EPROTO);
	snprintf(newer, sizeof(newer), "%d", db_schema_version() + 7);
	snprintf(ours, sizeof(ours), "version %d", db_schema_version());
	assert_non_null(strstr(err.msg, newer));
	assert_non_null(strstr(err.msg, ours));
	berth_error_release(&err);
	/* Refused means untouched. */
	assert_int_equal(query_int(f, "PRAGMA user_version"), db_schema_version() + 7);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM projects"), 1);
}

/* A project made before schema 2 (only features.profiles stored) keeps its own images and
 * custom volumes: the migration writes the two features; one already stored stays. */
#define DEFAULT_CONFIG_ROWS                                                                        \
	"SELECT COUNT(*) FROM projects_config c JOIN projects p ON p.id = c.project_id "           \
	"WHERE p.name = 'default'"

static void test_migration_project_features(void **state)
{
	struct berth_error err = {0};
	const struct fixture *f = *state;
	int default_rows = query_int(f, DEFAULT_CONFIG_ROWS);
	sqlite3 *db = NULL;

	db_shutdown();
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db,
			     "INSERT INTO projects (name) VALUES ('old');"
			     "INSERT INTO projects_config (project_id, key, value) "
			     "  SELECT id, 'features.profiles', 'true' FROM projects "
			     "  WHERE name = 'old';"
			     "INSERT INTO projects_config (project_id, key, value) "
			     "  SELECT id, 'features.storage.volumes', 'false' FROM projects "
			     "  WHERE name = 'old';"
			     "PRAGMA user_version = 1;",
			     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(db_init(f->path, POOL_SOURCE, &err), 0);
	assert_int_equal(query_int(f, "PRAGMA user_version"), db_schema_version());
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM projects_config c JOIN projects p "
				      "ON p.id = c.project_id WHERE p.name = 'old' AND "
				      "c.key = 'features.images' AND c.value = 'true'"),
			 1);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM projects_config c JOIN projects p "
				      "ON p.id = c.project_id WHERE p.name = 'old' AND "
				      "c.key = 'features.storage.volumes' AND c.value = 'false'"),
			 1);
	/* The default project is left as it was. */
	assert_int_equal(query_int(f, DEFAULT_CONFIG_ROWS), default_rows);
}

/* A project without features.profiles has no profile of its own: its instances link
 * the "default" project's; turning the feature on gives it an empty "default". */
static void test_project_features(void **state)
{
	struct berth_error err = {0};
	json_auto_t *p = parse("{\"name\":\"pf\",\"config\":{\"features.images\":\"true\"}}");
	json_auto_t *on = parse("{\"config\":{\"features.images\":\"true\","
				"\"features.profiles\":\"true\"}}");
	json_auto_t *used = NULL, *used2 = NULL, *inst = NULL;
	_cleanup_free_ char *images = NULL, *profiles = NULL, *volumes = NULL, *def = NULL;
	const struct fixture *f = *state;

	assert_int_equal(db_project_create(p, &err), 0);
	assert_int_equal(db_project_used_by("pf", &used, &err), 0);
	assert_json_eq(used, "[]");
	assert_int_equal(db_project_feature_project("pf", "features.images", &images, &err), 0);
	assert_string_equal(images, "pf");
	assert_int_equal(db_project_feature_project("pf", "features.profiles", &profiles, &err), 0);
	assert_string_equal(profiles, "default");
	assert_int_equal(db_project_feature_project("pf", "features.storage.volumes", &volumes,
						    &err),
			 0);
	assert_string_equal(volumes, "default");
	assert_int_equal(db_project_feature_project("default", "features.profiles", &def, &err), 0);
	assert_string_equal(def, "default");
	assert_fails(db_project_feature_project("nope", "features.images", &def, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Project \"nope\" not found");

	/* Its instance links the default project's "default" profile. */
	create_instance("pf", "{\"name\":\"c1\",\"profiles\":[\"default\"]}");
	assert_int_equal(db_instance_get("pf", "c1", &inst, &err), 0);
	assert_json_eq(json_object_get(inst, "profiles"), "[\"default\"]");
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 1);
	assert_int_equal(db_profile_used_by("default", "default", &used2, &err), 0);
	assert_json_eq(used2, "[\"/1.0/instances/c1?project=pf\"]");
	assert_fails(db_project_update("pf", on, &err), -EBUSY, BERTH_ERR_BAD_REQUEST, &err,
		     "Features can only be changed on empty projects");
	assert_int_equal(db_instance_delete("pf", "c1", &err), 0);
	assert_int_equal(db_project_update("pf", on, &err), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 2);
	assert_int_equal(db_project_update("pf", p, &err), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 1);
	assert_int_equal(db_project_delete("pf", &err), 0);
}

static void test_projects(void **state)
{
	struct berth_error err = {0};
	json_auto_t *p1 = parse("{\"name\":\"p1\",\"description\":\"one\","
				"\"config\":{\"features.profiles\":\"true\"}}");
	json_auto_t *upd = parse("{\"description\":\"uno\",\"config\":{"
				 "\"features.profiles\":\"true\",\"limits.instances\":\"3\"}}");
	json_auto_t *nofeat = parse("{\"description\":\"uno\",\"config\":{}}");
	json_auto_t *extra = parse("{\"name\":\"extra\"}");
	json_auto_t *list = NULL, *got = NULL, *used = NULL, *used2 = NULL, *used3 = NULL;
	const struct fixture *f = *state;

	assert_int_equal(db_project_create(p1, &err), 0);
	assert_fails(db_project_create(p1, &err), -EEXIST, BERTH_ERR_CONFLICT, &err,
		     "Project \"p1\" already exists");
	assert_int_equal(db_project_get("p1", &got, &err), 0);
	assert_json_eq(got, "{\"name\":\"p1\",\"description\":\"one\","
			    "\"config\":{\"features.profiles\":\"true\"}}");
	assert_int_equal(db_project_list(&list, &err), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(berth_json_string(json_array_get(list, 1), "name"), "p1");

	assert_int_equal(db_project_update("p1", upd, &err), 0);
	json_decref(got);
	assert_int_equal(db_project_get("p1", &got, &err), 0);
	assert_json_eq(got,
		       "{\"name\":\"p1\",\"description\":\"uno\","
		       "\"config\":{\"features.profiles\":\"true\",\"limits.instances\":\"3\"}}");

	assert_int_equal(db_project_rename("p1", "p2", &err), 0);
	assert_fails(db_project_get("p1", &got, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"p1\" not found");
	assert_fails(db_project_rename("p2", "default", &err), -EEXIST, BERTH_ERR_CONFLICT, &err,
		     "already exists");
	assert_fails(db_project_rename("default", "x", &err), -EPERM, BERTH_ERR_FORBIDDEN, &err,
		     "cannot be renamed");

	/* A new project has its own default profile and lists what it holds. */
	assert_int_equal(db_project_used_by("p2", &used, &err), 0);
	assert_json_eq(used, "[\"/1.0/profiles/default?project=p2\"]");
	create_instance("p2", "{\"name\":\"c1\",\"profiles\":[\"default\"]}");
	assert_int_equal(db_profile_create("p2", extra, &err), 0);
	assert_int_equal(db_project_used_by("p2", &used2, &err), 0);
	assert_json_eq(used2, "[\"/1.0/instances/c1?project=p2\","
			      "\"/1.0/profiles/default?project=p2\","
			      "\"/1.0/profiles/extra?project=p2\"]");
	assert_int_equal(db_project_used_by("default", &used3, &err), 0);
	assert_json_eq(used3, "[\"/1.0/profiles/default\"]");

	assert_fails(db_project_delete("p2", &err), -EBUSY, BERTH_ERR_BAD_REQUEST, &err,
		     "Only empty projects");
	/* Features change only on an empty project, never on "default". */
	assert_fails(db_project_update("p2", nofeat, &err), -EBUSY, BERTH_ERR_BAD_REQUEST, &err,
		     "Features can only be changed on empty projects");
	assert_fails(db_project_update("default", nofeat, &err), -EINVAL, BERTH_ERR_BAD_REQUEST,
		     &err, "You can't change the features of the default project");
	assert_int_equal(db_instance_delete("p2", "c1", &err), 0);
	assert_fails(db_project_delete("p2", &err), -EBUSY, BERTH_ERR_BAD_REQUEST, &err,
		     "1 profiles");
	assert_int_equal(db_profile_delete("p2", "extra", &err), 0);
	assert_int_equal(db_project_delete("p2", &err), 0);
	assert_fails(db_project_get("p2", &got, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "not found");
	/* Its default profile and config went with it. */
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 1);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM projects_config"), 6);

	assert_fails(db_project_delete("default", &err), -EBUSY, BERTH_ERR_FORBIDDEN, &err,
		     "cannot be deleted");
	assert_fails(db_project_delete("nope", &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"nope\" not found");
	assert_fails(db_project_used_by("nope", &used, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"nope\"");
}

static void test_profiles(void **state)
{
	struct berth_error err = {0};
	json_auto_t *web = parse("{\"name\":\"web\",\"description\":\"Web\","
				 "\"config\":{\"limits.memory\":\"1GiB\",\"boot.autostart\":\"1\"},"
				 "\"devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"br0\","
				 "\"name\":\"eth0\"},\"tmp\":{\"type\":\"disk\"}}}");
	json_auto_t *upd = parse("{\"description\":\"W\",\"config\":{\"limits.cpu\":\"1\"}}");
	json_auto_t *bad = parse("{\"name\":\"bad\",\"devices\":{\"d\":{\"type\":\"disk\","
				 "\"size\":5}}}");
	json_auto_t *got = NULL, *got2 = NULL, *list = NULL, *used = NULL;
	const struct fixture *f = *state;

	assert_int_equal(db_profile_create("default", web, &err), 0);
	assert_fails(db_profile_create("default", web, &err), -EEXIST, BERTH_ERR_CONFLICT, &err,
		     "Profile \"web\" already exists");
	assert_fails(db_profile_create("nope", web, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"nope\" not found");
	assert_int_equal(db_profile_get("default", "web", &got, &err), 0);
	assert_json_eq(got, "{\"name\":\"web\",\"description\":\"Web\","
			    "\"config\":{\"limits.memory\":\"1GiB\",\"boot.autostart\":\"1\"},"
			    "\"devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"br0\","
			    "\"name\":\"eth0\"},\"tmp\":{\"type\":\"disk\"}}}");
	assert_int_equal(db_profile_list("default", &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(berth_json_string(json_array_get(list, 1), "name"), "web");

	/* A bad device value fails the whole create: no profile row stays behind. */
	assert_fails(db_profile_create("default", bad, &err), -EINVAL, BERTH_ERR_BAD_REQUEST, &err,
		     "\"size\"");
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles WHERE name = 'bad'"), 0);

	/* Update replaces everything; missing devices mean none. */
	assert_int_equal(db_profile_update("default", "web", upd, &err), 0);
	assert_int_equal(db_profile_get("default", "web", &got2, &err), 0);
	assert_json_eq(got2, "{\"name\":\"web\",\"description\":\"W\","
			     "\"config\":{\"limits.cpu\":\"1\"},\"devices\":{}}");
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles_devices_config"), 2);

	assert_int_equal(db_profile_rename("default", "web", "www", &err), 0);
	assert_fails(db_profile_get("default", "web", &got, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Profile \"web\" not found");
	assert_fails(db_profile_rename("default", "www", "default", &err), -EEXIST,
		     BERTH_ERR_CONFLICT, &err, "Profile \"default\" already exists");
	assert_fails(db_profile_rename("default", "default", "x", &err), -EPERM,
		     BERTH_ERR_FORBIDDEN, &err, "The \"default\" profile cannot be renamed");
	assert_fails(db_profile_delete("default", "default", &err), -EPERM, BERTH_ERR_FORBIDDEN,
		     &err, "The \"default\" profile cannot be deleted");
	assert_fails(db_profile_delete("default", "nope", &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Profile \"nope\" not found");

	create_instance("default", "{\"name\":\"b\",\"profiles\":[\"default\",\"www\"]}");
	create_instance("default", "{\"name\":\"a\",\"profiles\":[\"www\"]}");
	assert_int_equal(db_profile_used_by("default", "www", &used, &err), 0);
	assert_json_eq(used, "[\"/1.0/instances/a\",\"/1.0/instances/b\"]");
	assert_fails(db_profile_delete("default", "www", &err), -EBUSY, BERTH_ERR_CONFLICT, &err,
		     "Profile \"www\" is used by 2 instances");
	assert_int_equal(db_instance_delete("default", "a", &err), 0);
	assert_fails(db_profile_delete("default", "www", &err), -EBUSY, BERTH_ERR_CONFLICT, &err,
		     "is used by 1 instance");
	assert_int_equal(db_instance_delete("default", "b", &err), 0);
	assert_int_equal(db_profile_delete("default", "www", &err), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles_config"), 0);
}

static void test_profile_restrict_backstop(void **state)
{
	const struct fixture *f = *state;
	sqlite3 *db = NULL;

	/* Even bypassing the module, the schema refuses to drop a profile in use. */
	create_instance("default", "{\"name\":\"c\",\"profiles\":[\"default\"]}");
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_extended_result_codes(db, 1);
	assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM profiles", NULL, NULL, NULL),
			 SQLITE_CONSTRAINT_TRIGGER);
	assert_int_equal(db_errno(SQLITE_CONSTRAINT_TRIGGER), -EBUSY);
	assert_int_equal(db_errno(SQLITE_CONSTRAINT_FOREIGNKEY), -EBUSY);
	assert_int_equal(db_errno(SQLITE_CONSTRAINT_UNIQUE), -EEXIST);
	sqlite3_close(db);
}

static void test_instances_crud(void **state)
{
	struct berth_error err = {0};
	json_auto_t *web = parse("{\"name\":\"web\"}");
	json_auto_t *upd = parse("{\"description\":\"changed\",\"config\":{\"x\":\"y\"},"
				 "\"devices\":{\"data\":{\"type\":\"disk\",\"path\":\"/srv\"}},"
				 "\"profiles\":[\"web\",\"default\"],\"ephemeral\":true}");
	json_auto_t *bare = parse("{\"name\":\"bare\"}");
	json_auto_t *got = NULL, *got2 = NULL, *got3 = NULL, *got4 = NULL;
	const struct fixture *f = *state;
	const char *created;

	assert_int_equal(db_profile_create("default", web, &err), 0);
	create_instance("default",
			"{\"name\":\"c1\",\"type\":\"container\",\"architecture\":\"x86_64\","
			"\"description\":\"first\",\"config\":{\"image.os\":\"Debian\","
			"\"limits.cpu\":\"2\"},\"devices\":{\"eth0\":{\"type\":\"nic\","
			"\"network\":\"berthbr0\"},\"root\":{\"type\":\"disk\",\"path\":\"/\","
			"\"pool\":\"default\",\"size\":\"10GiB\"}},"
			"\"profiles\":[\"default\",\"web\"],\"ephemeral\":false,"
			"\"stateful\":true}");
	assert_int_equal(db_instance_get("default", "c1", &got, &err), 0);
	created = berth_json_string(got, "created_at");
	assert_non_null(created);
	assert_true(berth_endswith(created, "Z"));
	assert_int_equal(strlen(created), strlen("2026-11-23T16:11:33.123456789Z"));
	json_object_del(got, "created_at");
	assert_json_eq(got, "{\"name\":\"c1\",\"project\":\"default\",\"type\":\"container\","
			    "\"architecture\":\"x86_64\",\"description\":\"first\","
			    "\"config\":{\"image.os\":\"Debian\",\"limits.cpu\":\"2\"},"
			    "\"devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"berthbr0\"},"
			    "\"root\":{\"type\":\"disk\",\"path\":\"/\",\"pool\":\"default\","
			    "\"size\":\"10GiB\"}},\"profiles\":[\"default\",\"web\"],"
			    "\"ephemeral\":false,\"stateful\":true,"
			    "\"last_used_at\":\"1970-01-01T00:00:00Z\",\"status\":\"Stopped\","
			    "\"status_code\":102}");

	/* Update replaces config/devices/profiles (order kept); absent architecture stays. */
	assert_int_equal(db_instance_update("default", "c1", upd, &err), 0);
	assert_int_equal(db_instance_get("default", "c1", &got2, &err), 0);
	assert_string_equal(berth_json_string(got2, "architecture"), "x86_64");
	assert_string_equal(berth_json_string(got2, "description"), "changed");
	assert_json_eq(json_object_get(got2, "config"), "{\"x\":\"y\"}");
	assert_json_eq(json_object_get(got2, "devices"),
		       "{\"data\":{\"type\":\"disk\",\"path\":\"/srv\"}}");
	assert_json_eq(json_object_get(got2, "profiles"), "[\"web\",\"default\"]");
	assert_true(berth_json_bool(got2, "ephemeral", false));
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices_config"), 1);

	assert_int_equal(db_instance_set_status("default", "c1", "Running", 103, &err), 0);
	assert_int_equal(db_instance_rename("default", "c1", "c2", NULL, NULL, &err), 0);
	assert_fails(db_instance_get("default", "c1", &got3, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Instance \"c1\" not found");
	assert_int_equal(db_instance_get("default", "c2", &got3, &err), 0);
	assert_string_equal(berth_json_string(got3, "status"), "Running");
	assert_int_equal(json_integer_value(json_object_get(got3, "status_code")), 103);
	assert_string_not_equal(berth_json_string(got3, "last_used_at"), "1970-01-01T00:00:00Z");
	assert_json_eq(json_object_get(got3, "config"), "{\"x\":\"y\"}");
	assert_fails(db_instance_set_status("default", "nope", "Running", 103, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Instance \"nope\" not found");

	/* Missing config, devices and profiles are empty, not a crash. */
	assert_int_equal(db_instance_create("default", bare, &err), 0);
	assert_int_equal(db_instance_get("default", "bare", &got4, &err), 0);
	assert_json_eq(json_object_get(got4, "config"), "{}");
	assert_json_eq(json_object_get(got4, "devices"), "{}");
	assert_json_eq(json_object_get(got4, "profiles"), "[]");
	assert_string_equal(berth_json_string(got4, "type"), "container");

	assert_int_equal(db_instance_delete("default", "c2", &err), 0);
	assert_fails(db_instance_delete("default", "c2", &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Instance \"c2\" not found");
	assert_fails(db_instance_get("nope", "c2", &got3, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"nope\" not found");
	/* Children went with it. */
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_config"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices_config"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_profiles"), 0);
}

static void test_failed_create_leaves_nothing(void **state)
{
	struct berth_error err = {0};
	/* The config, devices and the "default" link are written before "nope" fails. */
	json_auto_t *inst = parse("{\"name\":\"c1\",\"config\":{\"a\":\"b\"},"
				  "\"devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"x\"}},"
				  "\"profiles\":[\"default\",\"nope\"]}");
	json_auto_t *got = NULL, *names = NULL;
	const struct fixture *f = *state;

	assert_fails(db_instance_create("default", inst, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Profile \"nope\" not found");
	assert_fails(db_instance_get("default", "c1", &got, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Instance \"c1\" not found");
	assert_int_equal(db_instance_names(NULL, &names, &err), 0);
	assert_int_equal(json_array_size(names), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_config"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices_config"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_profiles"), 0);
}

static void test_failed_update_keeps_old(void **state)
{
	struct berth_error err = {0};
	json_auto_t *upd = parse("{\"config\":{\"new\":\"1\"},\"profiles\":[\"nope\"]}");
	json_auto_t *got = NULL;

	create_instance("default", "{\"name\":\"c1\",\"config\":{\"old\":\"1\"},"
				   "\"profiles\":[\"default\"]}");
	assert_fails(db_instance_update("default", "c1", upd, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Profile \"nope\" not found");
	assert_int_equal(db_instance_get("default", "c1", &got, &err), 0);
	assert_json_eq(json_object_get(got, "config"), "{\"old\":\"1\"}");
	assert_json_eq(json_object_get(got, "profiles"), "[\"default\"]");

	/* The connection is usable after a rollback. */
	create_instance("default", "{\"name\":\"c2\"}");
}

static void test_instance_conflicts(void **state)
{
	struct berth_error err = {0};
	json_auto_t *c1 = parse("{\"name\":\"c1\"}");
	json_auto_t *p1 = parse("{\"name\":\"p1\"}");
	json_auto_t *dup = parse("{\"name\":\"d\",\"profiles\":[\"default\",\"default\"]}");

	assert_int_equal(db_instance_create("default", c1, &err), 0);
	assert_fails(db_instance_create("default", c1, &err), -EEXIST, BERTH_ERR_CONFLICT, &err,
		     "Instance \"c1\" already exists");
	assert_fails(db_instance_create("nope", c1, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"nope\" not found");
	/* Names are unique per project only. */
	assert_int_equal(db_project_create(p1, &err), 0);
	assert_int_equal(db_instance_create("p1", c1, &err), 0);
	create_instance("default", "{\"name\":\"c2\"}");
	assert_fails(db_instance_rename("default", "c2", "c1", NULL, NULL, &err), -EEXIST,
		     BERTH_ERR_CONFLICT, &err, "Instance \"c1\" already exists");
	assert_fails(db_instance_rename("default", "zz", "c3", NULL, NULL, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Instance \"zz\" not found");
	assert_fails(db_instance_create("default", dup, &err), -EINVAL, BERTH_ERR_BAD_REQUEST, &err,
		     "Duplicate profile");
}

static void test_instance_list_order(void **state)
{
	struct berth_error err = {0};
	json_auto_t *pb = parse("{\"name\":\"bbb\"}"), *pa = parse("{\"name\":\"aaa\"}");
	json_auto_t *all = NULL, *names = NULL, *only = NULL, *none = NULL;
	const char *expect[][2] = {{"aaa", "x"}, {"aaa", "y"},	   {"bbb", "a"},
				   {"bbb", "z"}, {"default", "m"}, {"default", "n"}};

	assert_int_equal(db_project_create(pb, &err), 0);
	assert_int_equal(db_project_create(pa, &err), 0);
	create_instance("default", "{\"name\":\"n\"}");
	create_instance("bbb", "{\"name\":\"z\",\"config\":{\"k\":\"z\"}}");
	create_instance("aaa", "{\"name\":\"y\",\"config\":{\"k\":\"y\"}}");
	create_instance("default", "{\"name\":\"m\"}");
	create_instance("bbb", "{\"name\":\"a\",\"config\":{\"k\":\"a\"}}");
	create_instance("aaa", "{\"name\":\"x\",\"config\":{\"k\":\"x\"}}");

	assert_int_equal(db_instance_list(NULL, &all, &err), 0);
	assert_int_equal(json_array_size(all), ARRAY_SIZE(expect));
	for (size_t i = 0; i < ARRAY_SIZE(expect); i++) {
		json_t *inst = json_array_get(all, i);
		const char *k = json_string_value(
			json_object_get(json_object_get(inst, "config"), "k"));

		assert_string_equal(berth_json_string(inst, "project"), expect[i][0]);
		assert_string_equal(berth_json_string(inst, "name"), expect[i][1]);
		/* Children were attached to the right instance. */
		if (k)
			assert_string_equal(k, expect[i][1]);
	}
	assert_int_equal(db_instance_names(NULL, &names, &err), 0);
	assert_json_eq(names, "[\"x\",\"y\",\"a\",\"z\",\"m\",\"n\"]");
	assert_int_equal(db_instance_list("bbb", &only, &err), 0);
	assert_int_equal(json_array_size(only), 2);
	assert_string_equal(berth_json_string(json_array_get(only, 0), "name"), "a");
	assert_fails(db_instance_list("nope", &none, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"nope\" not found");
}

#define MANY 1000

static void test_instance_list_many(void **state)
{
	struct berth_error err = {0};
	json_auto_t *web = parse("{\"name\":\"web\"}");
	json_auto_t *small = NULL, *list = NULL;
	uint64_t t0, t1, before, small_queries, many_queries = 0, best = 0, first = 0;
	char body[512];

	assert_int_equal(db_profile_create("default", web, &err), 0);
	create_instance("default", "{\"name\":\"first\",\"profiles\":[\"default\"]}");
	before = db_thread_statements();
	assert_int_equal(db_instance_list(NULL, &small, &err), 0);
	small_queries = db_thread_statements() - before;

	t0 = berth_monotonic_ns();
	for (int i = 0; i < MANY - 1; i++) {
		snprintf(body, sizeof(body),
			 "{\"name\":\"c%04d\",\"architecture\":\"x86_64\",\"config\":{"
			 "\"image.os\":\"Debian\",\"image.release\":\"12\",\"limits.cpu\":\"%d\","
			 "\"limits.memory\":\"1GiB\",\"volatile.uuid\":\"u-%d\"},\"devices\":{"
			 "\"eth0\":{\"type\":\"nic\",\"network\":\"berthbr0\","
			 "\"name\":\"eth0\"}%s},"
			 "\"profiles\":[\"%s\"]}",
			 i, i % 8, i, i % 2 ? ",\"data\":{\"type\":\"disk\",\"path\":\"/d\"}" : "",
			 i % 3 ? "default" : "web");
		create_instance("default", body);
	}
	t1 = berth_monotonic_ns();
	printf("# db_instance_create x%d: %.1f ms\n", MANY - 1, (double)(t1 - t0) / 1e6);

	/* Best of a few runs: the first also pays for warming SQLite's page cache. */
	for (int run = 0; run < 5; run++) {
		json_decref(list);
		list = NULL;
		before = db_thread_statements();
		t0 = berth_monotonic_ns();
		assert_int_equal(db_instance_list(NULL, &list, &err), 0);
		t1 = berth_monotonic_ns();
		many_queries = db_thread_statements() - before;
		best = run == 0 || t1 - t0 < best ? t1 - t0 : best;
		if (run == 0)
			first = t1 - t0;
	}
	printf("# db_instance_list of %d instances: %.2f ms (first run %.2f ms), %llu queries\n",
	       MANY, (double)best / 1e6, (double)first / 1e6, (unsigned long long)many_queries);

	/* A fixed number of queries, whatever the number of instances. */
	assert_int_equal(many_queries, small_queries);
	assert_true(many_queries <= 5);
	assert_int_equal(json_array_size(list), MANY);
	/* Spot-check one instance's children (sorted by name: "c0501" is at 501). */
	{
		json_t *inst = json_array_get(list, 501);

		assert_string_equal(berth_json_string(inst, "name"), "c0501");
		assert_string_equal(json_string_value(
					    json_object_get(json_object_get(inst, "config"),
							    "volatile.uuid")),
				    "u-501");
		assert_int_equal(json_object_size(json_object_get(inst, "devices")), 2);
		assert_json_eq(json_object_get(inst, "profiles"), "[\"web\"]");
		assert_json_eq(json_object_get(json_array_get(list, 1), "profiles"),
			       "[\"default\"]");
		assert_string_equal(berth_json_string(json_array_get(list, MANY - 1), "name"),
				    "first");
	}
}

static void test_server_config(void **state)
{
	struct berth_error err = {0};
	json_auto_t *c1 = parse("{\"core.https_address\":\":8443\",\"images.auto_update\":\"6\"}");
	json_auto_t *c2 = parse("{\"core.trust_password\":\"x\"}");
	json_auto_t *bad = parse("{\"a\":\"1\",\"b\":2}");
	json_auto_t *got = NULL, *got2 = NULL, *got3 = NULL, *got4 = NULL;

	assert_int_equal(db_server_config_get(&got, &err), 0);
	assert_json_eq(got, "{}");
	assert_int_equal(db_server_config_replace(c1, &err), 0);
	assert_int_equal(db_server_config_get(&got2, &err), 0);
	assert_json_eq(got2, "{\"core.https_address\":\":8443\",\"images.auto_update\":\"6\"}");
	assert_int_equal(db_server_config_replace(c2, &err), 0);
	assert_int_equal(db_server_config_get(&got3, &err), 0);
	assert_json_eq(got3, "{\"core.trust_password\":\"x\"}");
	/* A failing replace keeps the old config whole. */
	assert_fails(db_server_config_replace(bad, &err), -EINVAL, BERTH_ERR_BAD_REQUEST, &err,
		     "\"b\"");
	assert_int_equal(db_server_config_get(&got4, &err), 0);
	assert_json_eq(got4, "{\"core.trust_password\":\"x\"}");
}

struct thread_arg {
	int id;
	int result;
	sqlite3 *conn;
	char msg[256];
};

#define PER_THREAD 50

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	struct berth_error err = {0};
	char body[128];

	a->result = db_conn(&a->conn, &err);
	for (int i = 0; a->result >= 0 && i < PER_THREAD; i++) {
		json_t *inst, *list = NULL;

		snprintf(body, sizeof(body),
			 "{\"name\":\"t%d-%d\",\"config\":{\"k\":\"%d\"},"
			 "\"profiles\":[\"default\"]}",
			 a->id, i, i);
		inst = json_loads(body, 0, NULL);
		a->result = db_instance_create("default", inst, &err);
		json_decref(inst);
		if (a->result >= 0)
			a->result = db_instance_list("default", &list, &err);
		json_decref(list);
	}
	if (a->result < 0)
		snprintf(a->msg, sizeof(a->msg), "%s", berth_error_msg(&err, a->result));
	berth_error_release(&err);
	db_thread_release();
	return NULL;
}

static void test_threads(void **state)
{
	struct berth_error err = {0};
	struct thread_arg args[2] = {{.id = 1}, {.id = 2}};
	pthread_t threads[2];
	json_auto_t *names = NULL, *used = NULL;
	sqlite3 *main_conn = NULL;

	assert_int_equal(db_conn(&main_conn, &err), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, thread_main, &args[i]), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		if (args[i].result < 0)
			fail_msg("thread %d: %s", args[i].id, args[i].msg);
	}
	assert_ptr_not_equal(args[0].conn, main_conn);
	assert_ptr_not_equal(args[1].conn, main_conn);
	assert_ptr_not_equal(args[0].conn, args[1].conn);
	assert_int_equal(db_instance_names("default", &names, &err), 0);
	assert_int_equal(json_array_size(names), 2 * PER_THREAD);
	assert_int_equal(db_profile_used_by("default", "default", &used, &err), 0);
	assert_int_equal(json_array_size(used), 2 * PER_THREAD);
}

static void test_use_before_init(void **state)
{
	struct berth_error err = {0};
	json_auto_t *got = NULL;

	db_shutdown();
	assert_int_equal(db_server_config_get(&got, &err), -EINVAL);
	assert_null(got);
	berth_error_release(&err);
}

static int fail_hook(void *data, struct berth_error *err)
{
	int *calls = data;

	(*calls)++;
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "disk says no");
}

static int ok_hook(void *data, struct berth_error *err)
{
	int *calls = data;

	(*calls)++;
	return 0;
}

/* Pools and volumes: hooks run inside the transaction (a failing hook leaves no row),
 * snapshots follow their volume on rename and delete, a used pool stays. */
static void test_pool_volumes(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *pool = parse("{\"name\":\"p\",\"driver\":\"btrfs\",\"config\":{}}");
	json_auto_t *vol = parse(
		"{\"name\":\"v\",\"type\":\"custom\",\"config\":{\"size\":\"1GiB\"}}");
	json_auto_t *snap = parse("{\"name\":\"v/s0\",\"type\":\"custom\"}");
	json_auto_t *orphan = parse("{\"name\":\"nope/s0\",\"type\":\"custom\"}");
	json_auto_t *list = NULL;
	json_auto_t *used = NULL;
	json_auto_t *got = NULL;
	int calls = 0;

	assert_int_equal(db_pool_create(pool, fail_hook, &calls, &err), -EIO);
	berth_error_release(&err);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_pools WHERE name = 'p'"), 0);
	json_object_set_new(json_object_get(pool, "config"), "size", json_string("1GiB"));
	assert_int_equal(db_pool_create(pool, ok_hook, &calls, &err), 0);
	assert_int_equal(calls, 2);
	assert_int_equal(db_pool_create(pool, ok_hook, &calls, &err), -EEXIST);
	berth_error_release(&err);
	assert_int_equal(calls, 2); /* no disk work for a taken name */

	assert_int_equal(db_volume_create("p", "default", vol, fail_hook, &calls, &err), -EIO);
	berth_error_release(&err);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_volumes"), 0);
	assert_int_equal(db_volume_create("p", "default", vol, NULL, NULL, &err), 0);
	assert_int_equal(db_volume_create("p", "default", snap, NULL, NULL, &err), 0);
	assert_int_equal(db_volume_create("p", "default", orphan, NULL, NULL, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(db_volume_list("p", "default", "custom", &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	assert_int_equal(db_volume_snapshot_list("p", "default", "custom", "v", &list, &err), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
			    "s0");

	assert_int_equal(db_pool_used_by("p", &used, &err), 0);
	assert_int_equal(json_array_size(used), 1);
	assert_string_equal(json_string_value(json_array_get(used, 0)),
			    "/1.0/storage-pools/p/volumes/custom/v");
	assert_int_equal(db_pool_delete("p", ok_hook, &calls, &err), -EBUSY);
	assert_string_equal(err.msg, "The storage pool is currently in use");
	berth_error_release(&err);
	/* The default pool is used by the default profile's root disk. */
	assert_int_equal(db_pool_delete("default", NULL, NULL, &err), -EBUSY);
	berth_error_release(&err);

	assert_int_equal(db_volume_rename("p", "default", "custom", "v", "w", fail_hook, &calls,
					  &err),
			 -EIO);
	berth_error_release(&err);
	assert_int_equal(db_volume_get("p", "default", "custom", "v/s0", &got, &err), 0);
	assert_int_equal(db_volume_rename("p", "default", "custom", "v", "w", NULL, NULL, &err), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_volumes WHERE name = 'w/s0'"),
			 1);
	/* Attached through a profile's disk device: in use. */
	{
		json_auto_t *prof = parse(
			"{\"name\":\"att\",\"devices\":{\"data\":{\"type\":"
			"\"disk\",\"pool\":\"p\",\"source\":\"w\",\"path\":\"/d\"}}}");
		json_auto_t *vused = NULL;

		assert_int_equal(db_profile_create("default", prof, &err), 0);
		assert_int_equal(db_volume_used_by("p", "default", "w", &vused, &err), 0);
		assert_int_equal(json_array_size(vused), 1);
		assert_string_equal(json_string_value(json_array_get(vused, 0)),
				    "/1.0/profiles/att");
		assert_int_equal(db_volume_delete("p", "default", "custom", "w", NULL, NULL, &err),
				 -EBUSY);
		assert_string_equal(err.msg, "The storage volume is still in use");
		berth_error_release(&err);
		assert_int_equal(db_profile_delete("default", "att", &err), 0);
	}
	assert_int_equal(db_volume_delete("p", "default", "custom", "w", NULL, NULL, &err), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_volumes"), 0);
	assert_int_equal(db_pool_delete("p", fail_hook, &calls, &err), -EIO);
	berth_error_release(&err);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_pools WHERE name = 'p'"), 1);
	assert_int_equal(db_pool_delete("p", ok_hook, &calls, &err), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_pools_config"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_project_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_projects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_project_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profiles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_restrict_backstop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instances_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_create_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_update_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_list_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_list_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_use_before_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_volumes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
