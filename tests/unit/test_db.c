/* tests/unit/test_db.c: daemon/db/ against a real SQLite file in a fresh temp dir per
 * test: defaults, migrations, the CRUD and delete rules of each object, transactions
 * leaving nothing behind, set-based listing, and the handle: concurrent transactions on
 * its pool, the idle cap, independent handles, and a fault-injecting backend under
 * mutations.
 *
 * Built twice: test_db over the SQLite backend, and test_db_dqlite (TEST_DB_DQLITE, where
 * configure finds libdqlite) over the dqlite backend against a real dqlite node started
 * in this process, a database of its own per test, so that both backends are held to the
 * same results. Only test_open_fails (a file path) is SQLite's alone; the dqlite build
 * has its own. */
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
#ifdef TEST_DB_DQLITE
#include <dqlite.h>
#include <ftw.h>
#include <time.h>
#endif

#include "daemon/db/db.h"
#include "daemon/db/backend.h"
#include "daemon/db/db_internal.h"
#include "lib/json.h"
#include "lib/util.h"

#define POOL_SOURCE "/var/lib/berth/storage-pools/default"

#ifdef TEST_DB_DQLITE
static struct {
	dqlite_node *node;
	char dir[64];
	char address[64];
	struct db_dqlite_config cfg;
	unsigned databases; /* made so far: each test gets a new name */
} node;
#define BACKEND (&db_backend_dqlite)
#define BACKEND_DATA (&node.cfg)
#else
#define BACKEND (&db_backend_sqlite)
#define BACKEND_DATA NULL
#endif

static int test_db_open(const char *path, const char *pool_source, struct db **ret,
			struct berth_error *err)
{
	return db_open_backend(BACKEND, BACKEND_DATA, path, pool_source, ret, err);
}

/* The path (SQLite) or name (dqlite) of a new database called `base`. */
static void database_name(const char *dir, const char *base, char *buf, size_t size)
{
#ifdef TEST_DB_DQLITE
	(void)dir;
	snprintf(buf, size, "%s-%u.db", base, ++node.databases);
#else
	snprintf(buf, size, "%s/%s.db", dir, base);
#endif
}

/* Remove an SQLite database's files (a dqlite database goes with the node). */
static void database_unlink(const char *path)
{
#ifndef TEST_DB_DQLITE
	char p[192];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
#else
	(void)path;
#endif
}

struct fixture {
	char dir[64];
	char path[128];
	struct db *db; /* open on `path` */
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
	database_name(f->dir, "berth", f->path, sizeof(f->path));
	if (test_db_open(f->path, POOL_SOURCE, &f->db, &err) < 0) {
		fprintf(stderr, "db_open: %s\n", err.msg);
		berth_error_release(&err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	db_close(f->db);
	database_unlink(f->path);
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

/* A connection of the test's own (not the module's) to the fixture's database. */
static void *raw_open(const struct fixture *f)
{
	struct berth_error err = {0};
	void *conn = NULL;

	if (BACKEND->open(BACKEND_DATA, f->path, &conn, &err) < 0)
		fail_msg("open: %s", err.msg);
	return conn;
}

/* One integer from `sql`, through a connection of the test's own. */
static int64_t query_int(const struct fixture *f, const char *sql)
{
	void *conn = raw_open(f), *stmt = NULL;
	int64_t v;

	assert_int_equal(BACKEND->prepare(conn, sql, &stmt), 0);
	assert_int_equal(BACKEND->step(stmt), 1);
	v = BACKEND->column_int64(stmt, 0);
	BACKEND->finalize(stmt);
	BACKEND->close(conn);
	return v;
}

/* Run `sql` through a connection of the test's own. */
static void raw_exec(const struct fixture *f, const char *sql)
{
	void *conn = raw_open(f);
	int r = BACKEND->exec_script(conn, sql);

	if (r < 0)
		fail_msg("exec \"%s\": %s", sql, BACKEND->errmsg(conn));
	BACKEND->close(conn);
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

static void create_instance(const struct fixture *f, const char *project, const char *body)
{
	struct berth_error err = {0};
	json_auto_t *inst = parse(body);
	int r = db_instance_create(f->db, project, inst, &err);

	if (r < 0)
		fail_msg("db_instance_create: %s", err.msg);
}

static void test_init_defaults(void **state)
{
	struct berth_error err = {0};
	json_auto_t *projects = NULL, *profile = NULL, *pools = NULL, *pool = NULL;
	const struct fixture *f = *state;

	assert_int_equal(db_project_list(f->db, &projects, &err), 0);
	assert_int_equal(json_array_size(projects), 1);
	assert_string_equal(berth_json_string(json_array_get(projects, 0), "name"), "default");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(projects, 0), "config"),
				    "features.profiles")),
			    "true");

	assert_int_equal(db_profile_get(f->db, "default", "default", &profile, &err), 0);
	assert_json_eq(profile, "{\"name\":\"default\",\"description\":\"Default LXD profile\","
				"\"config\":{},\"devices\":{\"root\":{\"type\":\"disk\","
				"\"path\":\"/\",\"pool\":\"default\"}}}");

	assert_int_equal(db_pool_list(f->db, &pools, &err), 0);
	assert_int_equal(json_array_size(pools), 1);
	assert_int_equal(db_pool_get(f->db, "default", &pool, &err), 0);
	assert_json_eq(pool, "{\"name\":\"default\",\"driver\":\"dir\",\"description\":\"\","
			     "\"config\":{\"source\":\"" POOL_SOURCE "\"},\"status\":\"Created\"}");
	assert_fails(db_pool_get(f->db, "nope", &pool, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
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
	struct fixture *f = *state;

	assert_int_equal(db_profile_create(f->db, "default", profile, &err), 0);
	db_close(TAKE_PTR(f->db));
	assert_int_equal(test_db_open(f->path, "/elsewhere", &f->db, &err), 0);

	/* Migrations and defaults were not applied a second time. */
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM projects"), 1);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM storage_pools"), 1);
	assert_int_equal(db_profile_list(f->db, "default", &profiles, &err), 0);
	assert_int_equal(json_array_size(profiles), 2);
	assert_int_equal(db_profile_get(f->db, "default", "kept", &got, &err), 0);
	assert_json_eq(json_object_get(got, "config"), "{\"limits.cpu\":\"2\"}");
}

static void test_newer_schema_refused(void **state)
{
	struct berth_error err = {0};
	struct fixture *f = *state;
	char sql[64], newer[16], ours[16];

	db_close(TAKE_PTR(f->db));
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", db_schema_version() + 7);
	raw_exec(f, sql);

	assert_int_equal(test_db_open(f->path, POOL_SOURCE, &f->db, &err), -EPROTO);
	assert_null(f->db);
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
	struct fixture *f = *state;
	int default_rows = query_int(f, DEFAULT_CONFIG_ROWS);

	db_close(TAKE_PTR(f->db));
	raw_exec(f, "INSERT INTO projects (name) VALUES ('old');"
		    "INSERT INTO projects_config (project_id, key, value) "
		    "  SELECT id, 'features.profiles', 'true' FROM projects "
		    "  WHERE name = 'old';"
		    "INSERT INTO projects_config (project_id, key, value) "
		    "  SELECT id, 'features.storage.volumes', 'false' FROM projects "
		    "  WHERE name = 'old';"
		    /* What later migrations made is not in a version 1 file. */
		    "DROP TABLE warnings;"
		    "DROP TABLE images_source;"
		    "PRAGMA user_version = 1;");
	assert_int_equal(test_db_open(f->path, POOL_SOURCE, &f->db, &err), 0);
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

	assert_int_equal(db_project_create(f->db, p, &err), 0);
	assert_int_equal(db_project_used_by(f->db, "pf", &used, &err), 0);
	assert_json_eq(used, "[]");
	assert_int_equal(db_project_feature_project(f->db, "pf", "features.images", &images, &err),
			 0);
	assert_string_equal(images, "pf");
	assert_int_equal(db_project_feature_project(f->db, "pf", "features.profiles", &profiles,
						    &err),
			 0);
	assert_string_equal(profiles, "default");
	assert_int_equal(db_project_feature_project(f->db, "pf", "features.storage.volumes",
						    &volumes, &err),
			 0);
	assert_string_equal(volumes, "default");
	assert_int_equal(db_project_feature_project(f->db, "default", "features.profiles", &def,
						    &err),
			 0);
	assert_string_equal(def, "default");
	assert_fails(db_project_feature_project(f->db, "nope", "features.images", &def, &err),
		     -ENOENT, BERTH_ERR_NOT_FOUND, &err, "Project \"nope\" not found");

	/* Its instance links the default project's "default" profile. */
	create_instance(f, "pf", "{\"name\":\"c1\",\"profiles\":[\"default\"]}");
	assert_int_equal(db_instance_get(f->db, "pf", "c1", &inst, &err), 0);
	assert_json_eq(json_object_get(inst, "profiles"), "[\"default\"]");
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 1);
	assert_int_equal(db_profile_used_by(f->db, "default", "default", &used2, &err), 0);
	assert_json_eq(used2, "[\"/1.0/instances/c1?project=pf\"]");
	assert_fails(db_project_update(f->db, "pf", on, &err), -EBUSY, BERTH_ERR_BAD_REQUEST, &err,
		     "Features can only be changed on empty projects");
	assert_int_equal(db_instance_delete(f->db, "pf", "c1", &err), 0);
	assert_int_equal(db_project_update(f->db, "pf", on, &err), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 2);
	assert_int_equal(db_project_update(f->db, "pf", p, &err), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 1);
	assert_int_equal(db_project_delete(f->db, "pf", &err), 0);
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

	assert_int_equal(db_project_create(f->db, p1, &err), 0);
	assert_fails(db_project_create(f->db, p1, &err), -EEXIST, BERTH_ERR_CONFLICT, &err,
		     "Project \"p1\" already exists");
	assert_int_equal(db_project_get(f->db, "p1", &got, &err), 0);
	assert_json_eq(got, "{\"name\":\"p1\",\"description\":\"one\","
			    "\"config\":{\"features.profiles\":\"true\"}}");
	assert_int_equal(db_project_list(f->db, &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(berth_json_string(json_array_get(list, 1), "name"), "p1");

	assert_int_equal(db_project_update(f->db, "p1", upd, &err), 0);
	json_decref(got);
	assert_int_equal(db_project_get(f->db, "p1", &got, &err), 0);
	assert_json_eq(got,
		       "{\"name\":\"p1\",\"description\":\"uno\","
		       "\"config\":{\"features.profiles\":\"true\",\"limits.instances\":\"3\"}}");

	assert_int_equal(db_project_rename(f->db, "p1", "p2", &err), 0);
	assert_fails(db_project_get(f->db, "p1", &got, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"p1\" not found");
	assert_fails(db_project_rename(f->db, "p2", "default", &err), -EEXIST, BERTH_ERR_CONFLICT,
		     &err, "already exists");
	assert_fails(db_project_rename(f->db, "default", "x", &err), -EPERM, BERTH_ERR_FORBIDDEN,
		     &err, "cannot be renamed");

	/* A new project has its own default profile and lists what it holds. */
	assert_int_equal(db_project_used_by(f->db, "p2", &used, &err), 0);
	assert_json_eq(used, "[\"/1.0/profiles/default?project=p2\"]");
	create_instance(f, "p2", "{\"name\":\"c1\",\"profiles\":[\"default\"]}");
	assert_int_equal(db_profile_create(f->db, "p2", extra, &err), 0);
	assert_int_equal(db_project_used_by(f->db, "p2", &used2, &err), 0);
	assert_json_eq(used2, "[\"/1.0/instances/c1?project=p2\","
			      "\"/1.0/profiles/default?project=p2\","
			      "\"/1.0/profiles/extra?project=p2\"]");
	assert_int_equal(db_project_used_by(f->db, "default", &used3, &err), 0);
	assert_json_eq(used3, "[\"/1.0/profiles/default\"]");

	assert_fails(db_project_delete(f->db, "p2", &err), -EBUSY, BERTH_ERR_BAD_REQUEST, &err,
		     "Only empty projects");
	/* Features change only on an empty project, never on "default". */
	assert_fails(db_project_update(f->db, "p2", nofeat, &err), -EBUSY, BERTH_ERR_BAD_REQUEST,
		     &err, "Features can only be changed on empty projects");
	assert_fails(db_project_update(f->db, "default", nofeat, &err), -EINVAL,
		     BERTH_ERR_BAD_REQUEST, &err,
		     "You can't change the features of the default project");
	assert_int_equal(db_instance_delete(f->db, "p2", "c1", &err), 0);
	assert_fails(db_project_delete(f->db, "p2", &err), -EBUSY, BERTH_ERR_BAD_REQUEST, &err,
		     "1 profiles");
	assert_int_equal(db_profile_delete(f->db, "p2", "extra", &err), 0);
	assert_int_equal(db_project_delete(f->db, "p2", &err), 0);
	assert_fails(db_project_get(f->db, "p2", &got, &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "not found");
	/* Its default profile and config went with it. */
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles"), 1);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM projects_config"), 6);

	assert_fails(db_project_delete(f->db, "default", &err), -EBUSY, BERTH_ERR_FORBIDDEN, &err,
		     "cannot be deleted");
	assert_fails(db_project_delete(f->db, "nope", &err), -ENOENT, BERTH_ERR_NOT_FOUND, &err,
		     "Project \"nope\" not found");
	assert_fails(db_project_used_by(f->db, "nope", &used, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Project \"nope\"");
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

	assert_int_equal(db_profile_create(f->db, "default", web, &err), 0);
	assert_fails(db_profile_create(f->db, "default", web, &err), -EEXIST, BERTH_ERR_CONFLICT,
		     &err, "Profile \"web\" already exists");
	assert_fails(db_profile_create(f->db, "nope", web, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Project \"nope\" not found");
	assert_int_equal(db_profile_get(f->db, "default", "web", &got, &err), 0);
	assert_json_eq(got, "{\"name\":\"web\",\"description\":\"Web\","
			    "\"config\":{\"limits.memory\":\"1GiB\",\"boot.autostart\":\"1\"},"
			    "\"devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"br0\","
			    "\"name\":\"eth0\"},\"tmp\":{\"type\":\"disk\"}}}");
	assert_int_equal(db_profile_list(f->db, "default", &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(berth_json_string(json_array_get(list, 1), "name"), "web");

	/* A bad device value fails the whole create: no profile row stays behind. */
	assert_fails(db_profile_create(f->db, "default", bad, &err), -EINVAL, BERTH_ERR_BAD_REQUEST,
		     &err, "\"size\"");
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles WHERE name = 'bad'"), 0);

	/* Update replaces everything; missing devices mean none. */
	assert_int_equal(db_profile_update(f->db, "default", "web", upd, &err), 0);
	assert_int_equal(db_profile_get(f->db, "default", "web", &got2, &err), 0);
	assert_json_eq(got2, "{\"name\":\"web\",\"description\":\"W\","
			     "\"config\":{\"limits.cpu\":\"1\"},\"devices\":{}}");
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles_devices_config"), 2);

	assert_int_equal(db_profile_rename(f->db, "default", "web", "www", &err), 0);
	assert_fails(db_profile_get(f->db, "default", "web", &got, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Profile \"web\" not found");
	assert_fails(db_profile_rename(f->db, "default", "www", "default", &err), -EEXIST,
		     BERTH_ERR_CONFLICT, &err, "Profile \"default\" already exists");
	assert_fails(db_profile_rename(f->db, "default", "default", "x", &err), -EPERM,
		     BERTH_ERR_FORBIDDEN, &err, "The \"default\" profile cannot be renamed");
	assert_fails(db_profile_delete(f->db, "default", "default", &err), -EPERM,
		     BERTH_ERR_FORBIDDEN, &err, "The \"default\" profile cannot be deleted");
	assert_fails(db_profile_delete(f->db, "default", "nope", &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Profile \"nope\" not found");

	create_instance(f, "default", "{\"name\":\"b\",\"profiles\":[\"default\",\"www\"]}");
	create_instance(f, "default", "{\"name\":\"a\",\"profiles\":[\"www\"]}");
	assert_int_equal(db_profile_used_by(f->db, "default", "www", &used, &err), 0);
	assert_json_eq(used, "[\"/1.0/instances/a\",\"/1.0/instances/b\"]");
	assert_fails(db_profile_delete(f->db, "default", "www", &err), -EBUSY, BERTH_ERR_CONFLICT,
		     &err, "Profile \"www\" is used by 2 instances");
	assert_int_equal(db_instance_delete(f->db, "default", "a", &err), 0);
	assert_fails(db_profile_delete(f->db, "default", "www", &err), -EBUSY, BERTH_ERR_CONFLICT,
		     &err, "is used by 1 instance");
	assert_int_equal(db_instance_delete(f->db, "default", "b", &err), 0);
	assert_int_equal(db_profile_delete(f->db, "default", "www", &err), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM profiles_config"), 0);
}

static void test_profile_restrict_backstop(void **state)
{
	const struct fixture *f = *state;
	const struct db_backend *b = BACKEND;
	struct berth_error err = {0};
	void *conn = NULL;

	/* Even bypassing the module, the schema refuses to drop a profile in use, and the
	 * backend reports each kind of constraint with the errno backend.h promises. */
	create_instance(f, "default", "{\"name\":\"c\",\"profiles\":[\"default\"]}");
	assert_int_equal(b->open(BACKEND_DATA, f->path, &conn, &err), 0);
	assert_int_equal(b->exec_script(conn, "DELETE FROM profiles"), -EBUSY);
	assert_non_null(strstr(b->errmsg(conn), "FOREIGN KEY"));
	assert_int_equal(b->exec_script(conn, "INSERT INTO projects (name) VALUES ('default')"),
			 -EEXIST);
	assert_int_equal(b->exec_script(conn, "INSERT INTO projects (name) VALUES (NULL)"),
			 -EINVAL);
	assert_int_equal(b->exec_script(conn, "SELECT * FROM no_such_table"), -EIO);
	assert_false(b->in_transaction(conn));
	b->close(conn);
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

	assert_int_equal(db_profile_create(f->db, "default", web, &err), 0);
	create_instance(f, "default",
			"{\"name\":\"c1\",\"type\":\"container\",\"architecture\":\"x86_64\","
			"\"description\":\"first\",\"config\":{\"image.os\":\"Debian\","
			"\"limits.cpu\":\"2\"},\"devices\":{\"eth0\":{\"type\":\"nic\","
			"\"network\":\"berthbr0\"},\"root\":{\"type\":\"disk\",\"path\":\"/\","
			"\"pool\":\"default\",\"size\":\"10GiB\"}},"
			"\"profiles\":[\"default\",\"web\"],\"ephemeral\":false,"
			"\"stateful\":true}");
	assert_int_equal(db_instance_get(f->db, "default", "c1", &got, &err), 0);
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
	assert_int_equal(db_instance_update(f->db, "default", "c1", upd, &err), 0);
	assert_int_equal(db_instance_get(f->db, "default", "c1", &got2, &err), 0);
	assert_string_equal(berth_json_string(got2, "architecture"), "x86_64");
	assert_string_equal(berth_json_string(got2, "description"), "changed");
	assert_json_eq(json_object_get(got2, "config"), "{\"x\":\"y\"}");
	assert_json_eq(json_object_get(got2, "devices"),
		       "{\"data\":{\"type\":\"disk\",\"path\":\"/srv\"}}");
	assert_json_eq(json_object_get(got2, "profiles"), "[\"web\",\"default\"]");
	assert_true(berth_json_bool(got2, "ephemeral", false));
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices_config"), 1);

	assert_int_equal(db_instance_set_status(f->db, "default", "c1", "Running", 103, &err), 0);
	assert_int_equal(db_instance_rename(f->db, "default", "c1", "c2", NULL, NULL, &err), 0);
	assert_fails(db_instance_get(f->db, "default", "c1", &got3, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Instance \"c1\" not found");
	assert_int_equal(db_instance_get(f->db, "default", "c2", &got3, &err), 0);
	assert_string_equal(berth_json_string(got3, "status"), "Running");
	assert_int_equal(json_integer_value(json_object_get(got3, "status_code")), 103);
	assert_string_not_equal(berth_json_string(got3, "last_used_at"), "1970-01-01T00:00:00Z");
	assert_json_eq(json_object_get(got3, "config"), "{\"x\":\"y\"}");
	assert_fails(db_instance_set_status(f->db, "default", "nope", "Running", 103, &err),
		     -ENOENT, BERTH_ERR_NOT_FOUND, &err, "Instance \"nope\" not found");

	/* Missing config, devices and profiles are empty, not a crash. */
	assert_int_equal(db_instance_create(f->db, "default", bare, &err), 0);
	assert_int_equal(db_instance_get(f->db, "default", "bare", &got4, &err), 0);
	assert_json_eq(json_object_get(got4, "config"), "{}");
	assert_json_eq(json_object_get(got4, "devices"), "{}");
	assert_json_eq(json_object_get(got4, "profiles"), "[]");
	assert_string_equal(berth_json_string(got4, "type"), "container");

	assert_int_equal(db_instance_delete(f->db, "default", "c2", &err), 0);
	assert_fails(db_instance_delete(f->db, "default", "c2", &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Instance \"c2\" not found");
	assert_fails(db_instance_get(f->db, "nope", "c2", &got3, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Project \"nope\" not found");
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

	assert_fails(db_instance_create(f->db, "default", inst, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Profile \"nope\" not found");
	assert_fails(db_instance_get(f->db, "default", "c1", &got, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Instance \"c1\" not found");
	assert_int_equal(db_instance_names(f->db, NULL, &names, &err), 0);
	assert_int_equal(json_array_size(names), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_config"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_devices_config"), 0);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances_profiles"), 0);
}

static void test_failed_update_keeps_old(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *upd = parse("{\"config\":{\"new\":\"1\"},\"profiles\":[\"nope\"]}");
	json_auto_t *got = NULL;

	create_instance(f, "default",
			"{\"name\":\"c1\",\"config\":{\"old\":\"1\"},"
			"\"profiles\":[\"default\"]}");
	assert_fails(db_instance_update(f->db, "default", "c1", upd, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Profile \"nope\" not found");
	assert_int_equal(db_instance_get(f->db, "default", "c1", &got, &err), 0);
	assert_json_eq(json_object_get(got, "config"), "{\"old\":\"1\"}");
	assert_json_eq(json_object_get(got, "profiles"), "[\"default\"]");

	/* The connection is usable after a rollback. */
	create_instance(f, "default", "{\"name\":\"c2\"}");
}

static void test_instance_conflicts(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *c1 = parse("{\"name\":\"c1\"}");
	json_auto_t *p1 = parse("{\"name\":\"p1\"}");
	json_auto_t *dup = parse("{\"name\":\"d\",\"profiles\":[\"default\",\"default\"]}");

	assert_int_equal(db_instance_create(f->db, "default", c1, &err), 0);
	assert_fails(db_instance_create(f->db, "default", c1, &err), -EEXIST, BERTH_ERR_CONFLICT,
		     &err, "Instance \"c1\" already exists");
	assert_fails(db_instance_create(f->db, "nope", c1, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Project \"nope\" not found");
	/* Names are unique per project only. */
	assert_int_equal(db_project_create(f->db, p1, &err), 0);
	assert_int_equal(db_instance_create(f->db, "p1", c1, &err), 0);
	create_instance(f, "default", "{\"name\":\"c2\"}");
	assert_fails(db_instance_rename(f->db, "default", "c2", "c1", NULL, NULL, &err), -EEXIST,
		     BERTH_ERR_CONFLICT, &err, "Instance \"c1\" already exists");
	assert_fails(db_instance_rename(f->db, "default", "zz", "c3", NULL, NULL, &err), -ENOENT,
		     BERTH_ERR_NOT_FOUND, &err, "Instance \"zz\" not found");
	assert_fails(db_instance_create(f->db, "default", dup, &err), -EINVAL,
		     BERTH_ERR_BAD_REQUEST, &err, "Duplicate profile");
}

static void test_instance_list_order(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *pb = parse("{\"name\":\"bbb\"}"), *pa = parse("{\"name\":\"aaa\"}");
	json_auto_t *all = NULL, *names = NULL, *only = NULL, *none = NULL;
	const char *expect[][2] = {{"aaa", "x"}, {"aaa", "y"},	   {"bbb", "a"},
				   {"bbb", "z"}, {"default", "m"}, {"default", "n"}};

	assert_int_equal(db_project_create(f->db, pb, &err), 0);
	assert_int_equal(db_project_create(f->db, pa, &err), 0);
	create_instance(f, "default", "{\"name\":\"n\"}");
	create_instance(f, "bbb", "{\"name\":\"z\",\"config\":{\"k\":\"z\"}}");
	create_instance(f, "aaa", "{\"name\":\"y\",\"config\":{\"k\":\"y\"}}");
	create_instance(f, "default", "{\"name\":\"m\"}");
	create_instance(f, "bbb", "{\"name\":\"a\",\"config\":{\"k\":\"a\"}}");
	create_instance(f, "aaa", "{\"name\":\"x\",\"config\":{\"k\":\"x\"}}");

	assert_int_equal(db_instance_list(f->db, NULL, &all, &err), 0);
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
	assert_int_equal(db_instance_names(f->db, NULL, &names, &err), 0);
	assert_json_eq(names, "[\"x\",\"y\",\"a\",\"z\",\"m\",\"n\"]");
	assert_int_equal(db_instance_list(f->db, "bbb", &only, &err), 0);
	assert_int_equal(json_array_size(only), 2);
	assert_string_equal(berth_json_string(json_array_get(only, 0), "name"), "a");
	assert_fails(db_instance_list(f->db, "nope", &none, &err), -ENOENT, BERTH_ERR_NOT_FOUND,
		     &err, "Project \"nope\" not found");
}

#define MANY 1000

static void test_instance_list_many(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *web = parse("{\"name\":\"web\"}");
	json_auto_t *small = NULL, *list = NULL;
	uint64_t t0, t1, before, small_queries, many_queries = 0, best = 0, first = 0;
	char body[512];

	assert_int_equal(db_profile_create(f->db, "default", web, &err), 0);
	create_instance(f, "default", "{\"name\":\"first\",\"profiles\":[\"default\"]}");
	before = db_statements(f->db);
	assert_int_equal(db_instance_list(f->db, NULL, &small, &err), 0);
	small_queries = db_statements(f->db) - before;

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
		create_instance(f, "default", body);
	}
	t1 = berth_monotonic_ns();
	printf("# db_instance_create x%d: %.1f ms\n", MANY - 1, (double)(t1 - t0) / 1e6);

	/* Best of a few runs: the first also pays for warming SQLite's page cache. */
	for (int run = 0; run < 5; run++) {
		json_decref(list);
		list = NULL;
		before = db_statements(f->db);
		t0 = berth_monotonic_ns();
		assert_int_equal(db_instance_list(f->db, NULL, &list, &err), 0);
		t1 = berth_monotonic_ns();
		many_queries = db_statements(f->db) - before;
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
	const struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *c1 = parse("{\"core.https_address\":\":8443\",\"images.auto_update\":\"6\"}");
	json_auto_t *c2 = parse("{\"core.trust_password\":\"x\"}");
	json_auto_t *bad = parse("{\"a\":\"1\",\"b\":2}");
	json_auto_t *got = NULL, *got2 = NULL, *got3 = NULL, *got4 = NULL;

	assert_int_equal(db_server_config_get(f->db, &got, &err), 0);
	assert_json_eq(got, "{}");
	assert_int_equal(db_server_config_replace(f->db, c1, &err), 0);
	assert_int_equal(db_server_config_get(f->db, &got2, &err), 0);
	assert_json_eq(got2, "{\"core.https_address\":\":8443\",\"images.auto_update\":\"6\"}");
	assert_int_equal(db_server_config_replace(f->db, c2, &err), 0);
	assert_int_equal(db_server_config_get(f->db, &got3, &err), 0);
	assert_json_eq(got3, "{\"core.trust_password\":\"x\"}");
	/* A failing replace keeps the old config whole. */
	assert_fails(db_server_config_replace(f->db, bad, &err), -EINVAL, BERTH_ERR_BAD_REQUEST,
		     &err, "\"b\"");
	assert_int_equal(db_server_config_get(f->db, &got4, &err), 0);
	assert_json_eq(got4, "{\"core.trust_password\":\"x\"}");
}

struct thread_arg {
	struct db *db;
	int id;
	int result;
	char msg[256];
};

#define PER_THREAD 50

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	struct berth_error err = {0};
	char body[128];

	for (int i = 0; a->result >= 0 && i < PER_THREAD; i++) {
		json_t *inst, *list = NULL;

		snprintf(body, sizeof(body),
			 "{\"name\":\"t%d-%d\",\"config\":{\"k\":\"%d\"},"
			 "\"profiles\":[\"default\"]}",
			 a->id, i, i);
		inst = json_loads(body, 0, NULL);
		a->result = db_instance_create(a->db, "default", inst, &err);
		json_decref(inst);
		if (a->result >= 0)
			a->result = db_instance_list(a->db, "default", &list, &err);
		json_decref(list);
	}
	if (a->result < 0)
		snprintf(a->msg, sizeof(a->msg), "%s", berth_error_msg(&err, a->result));
	berth_error_release(&err);
	return NULL;
}

/* Two threads writing and reading through one handle at once: neither fails. */
static void test_threads(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	struct thread_arg args[2] = {{.db = f->db, .id = 1}, {.db = f->db, .id = 2}};
	pthread_t threads[2];
	json_auto_t *names = NULL, *used = NULL;

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, thread_main, &args[i]), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		if (args[i].result < 0)
			fail_msg("thread %d: %s", args[i].id, args[i].msg);
	}
	assert_int_equal(db_instance_names(f->db, "default", &names, &err), 0);
	assert_int_equal(json_array_size(names), 2 * PER_THREAD);
	assert_int_equal(db_profile_used_by(f->db, "default", "default", &used, &err), 0);
	assert_int_equal(json_array_size(used), 2 * PER_THREAD);
}

/* Count the instances inside the transaction that holds `conn`. */
static int64_t tx_count_instances(struct db_conn *conn)
{
	struct berth_error err = {0};
	struct db_stmt *stmt = NULL;
	int64_t n;

	assert_int_equal(db_prepare(conn, &stmt, &err, "SELECT COUNT(*) FROM instances", NULL), 0);
	assert_int_equal(db_step(stmt, &err), 1);
	n = db_column_int64(stmt, 0);
	db_finalize(stmt);
	return n;
}

/* A one-shot event between two threads. */
struct event {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool set;
};

static void event_set(struct event *e)
{
	pthread_mutex_lock(&e->lock);
	e->set = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static void event_wait(struct event *e)
{
	pthread_mutex_lock(&e->lock);
	while (!e->set)
		pthread_cond_wait(&e->cond, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

struct reader {
	struct db *db;
	struct event began, written;
	int64_t before, during, after;
	int result;
};

static void *reader_main(void *p)
{
	struct reader *rd = p;
	struct berth_error err = {0};
	struct db_conn *conn = NULL;

	rd->result = db_read_begin(rd->db, &conn, &err);
	if (rd->result < 0) {
		event_set(&rd->began);
		return NULL;
	}
	rd->before = tx_count_instances(conn);
	event_set(&rd->began);
	event_wait(&rd->written);
	rd->during = tx_count_instances(conn);
	rd->result = db_tx_end(rd->db, conn, 0, &err);
	if (rd->result >= 0 && db_read_begin(rd->db, &conn, &err) >= 0) {
		rd->after = tx_count_instances(conn);
		rd->result = db_tx_end(rd->db, conn, 0, &err);
	}
	berth_error_release(&err);
	return NULL;
}

/* A read transaction keeps its snapshot while another thread commits a write through the
 * same handle; the next read transaction sees the write. */
static void test_read_snapshot(void **state)
{
	const struct fixture *f = *state;
	struct reader rd = {.db = f->db,
			    .began = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false},
			    .written = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
					false}};
	uint64_t gen = db_generation(f->db);
	pthread_t t;

	create_instance(f, "default", "{\"name\":\"c0\"}");
	assert_int_equal(db_generation(f->db), gen + 1);
	assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);
	event_wait(&rd.began);
	/* The reader's transaction is open: this write commits beside it. */
	create_instance(f, "default", "{\"name\":\"c1\"}");
	event_set(&rd.written);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(rd.result, 0);
	assert_int_equal(rd.before, 1);
	assert_int_equal(rd.during, 1);
	assert_int_equal(rd.after, 2);
	/* Reads do not move the generation; the two writes did. */
	assert_int_equal(db_generation(f->db), gen + 2);
}

struct writer {
	struct db *db;
	struct event began;
	uint64_t committed_ns;
	int result;
};

static void *writer_main(void *p)
{
	struct writer *w = p;
	struct berth_error err = {0};
	struct db_conn *conn = NULL;

	w->result = db_tx_begin(w->db, &conn, &err);
	event_set(&w->began);
	if (w->result < 0)
		return NULL;
	w->result = db_exec(conn, &err, "INSERT INTO config (key, value) VALUES ('w', '1')", NULL);
	/* Hold the write lock a while: the other writer must wait, not fail. */
	usleep(300 * 1000);
	w->committed_ns = berth_monotonic_ns();
	w->result = db_tx_end(w->db, conn, w->result, &err);
	berth_error_release(&err);
	return NULL;
}

/* Two writers through one handle serialize: the second waits for the first's COMMIT and
 * then succeeds. */
static void test_writers_serialize(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	struct writer w = {.db = f->db,
			   .began = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false}};
	json_auto_t *config = NULL, *second = parse("{\"name\":\"second\"}");
	uint64_t done_ns;
	pthread_t t;
	int r;

	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	event_wait(&w.began);
	r = db_instance_create(f->db, "default", second, &err);
	done_ns = berth_monotonic_ns();
	if (r < 0)
		fail_msg("second writer: %s", err.msg);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.result, 1); /* the row it inserted, committed */
	assert_true(done_ns > w.committed_ns);
	assert_int_equal(query_int(f, "SELECT COUNT(*) FROM instances WHERE name = 'second'"), 1);
	assert_int_equal(db_server_config_get(f->db, &config, &err), 0);
	assert_json_eq(config, "{\"w\":\"1\"}");
}

#define POOL_THREADS 8
#define POOL_ROUNDS 20

struct pool_arg {
	struct db *db;
	pthread_barrier_t *barrier;
	int result;
};

static void *pool_main(void *p)
{
	struct pool_arg *a = p;
	struct berth_error err = {0};
	struct db_conn *conn = NULL;

	/* All threads inside a transaction at once: the pool must open one connection
	 * each. */
	a->result = db_read_begin(a->db, &conn, &err);
	pthread_barrier_wait(a->barrier);
	if (a->result >= 0)
		a->result = db_tx_end(a->db, conn, 0, &err);
	pthread_barrier_wait(a->barrier);
	for (int i = 0; a->result >= 0 && i < POOL_ROUNDS; i++) {
		json_t *config = NULL;

		a->result = db_server_config_get(a->db, &config, &err);
		json_decref(config);
	}
	berth_error_release(&err);
	return NULL;
}

/* However many connections concurrent transactions needed, at most the idle cap (4) stay
 * open once they ended. */
static void test_pool_idle_cap(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	struct pool_arg args[POOL_THREADS];
	pthread_t threads[POOL_THREADS];
	pthread_barrier_t barrier;
	json_auto_t *config = NULL;

	assert_int_equal(db_idle_connections(f->db), 1); /* the one db_open used */
	assert_int_equal(pthread_barrier_init(&barrier, NULL, POOL_THREADS), 0);
	for (int i = 0; i < POOL_THREADS; i++) {
		args[i] = (struct pool_arg){.db = f->db, .barrier = &barrier};
		assert_int_equal(pthread_create(&threads[i], NULL, pool_main, &args[i]), 0);
	}
	for (int i = 0; i < POOL_THREADS; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(args[i].result, 0);
	}
	pthread_barrier_destroy(&barrier);
	assert_int_equal(db_idle_connections(f->db), 4);
	for (int i = 0; i < 100; i++) {
		json_decref(config);
		config = NULL;
		assert_int_equal(db_server_config_get(f->db, &config, &err), 0);
	}
	assert_int_equal(db_idle_connections(f->db), 4);
	/* A quiet daemon keeps one, and works on after the trim. */
	db_trim(f->db, 1);
	assert_int_equal(db_idle_connections(f->db), 1);
	json_decref(config);
	config = NULL;
	assert_int_equal(db_server_config_get(f->db, &config, &err), 0);
	db_trim(f->db, 0);
	assert_int_equal(db_idle_connections(f->db), 0);
	json_decref(config);
	config = NULL;
	assert_int_equal(db_server_config_get(f->db, &config, &err), 0);
	assert_int_equal(db_idle_connections(f->db), 1);
}

/* Two handles on two files in one process share nothing: rows, generation, pool. */
static void test_two_handles(void **state)
{
	const struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_db_ struct db *other = NULL;
	json_auto_t *names = NULL, *other_names = NULL, *pool = NULL;
	json_auto_t *theirs = parse("{\"name\":\"theirs\"}");
	char path[160];
	uint64_t gen = db_generation(f->db), other_gen;

	database_name(f->dir, "other", path, sizeof(path));
	assert_int_equal(test_db_open(path, "/other", &other, &err), 0);
	other_gen = db_generation(other);
	/* No handle shows a generation another one had. */
	assert_true(other_gen > gen + 1000000 || other_gen + 1000000 < gen);
	create_instance(f, "default", "{\"name\":\"mine\"}");
	assert_int_equal(db_instance_create(other, "default", theirs, &err), 0);
	assert_int_equal(db_instance_names(f->db, NULL, &names, &err), 0);
	assert_json_eq(names, "[\"mine\"]");
	assert_int_equal(db_instance_names(other, NULL, &other_names, &err), 0);
	assert_json_eq(other_names, "[\"theirs\"]");
	assert_int_equal(db_pool_get(other, "default", &pool, &err), 0);
	assert_string_equal(berth_json_string(json_object_get(pool, "config"), "source"), "/other");
	assert_int_equal(db_generation(f->db), gen + 1);
	assert_int_equal(db_generation(other), other_gen + 1);
	db_close(TAKE_PTR(other));
	/* Closing one leaves the other working. */
	create_instance(f, "default", "{\"name\":\"still\"}");
	database_unlink(path);
}

#ifndef TEST_DB_DQLITE
static void test_open_fails(void **state)
{
	struct berth_error err = {0};
	struct db *db = NULL;

	(void)state;
	assert_true(db_open("/nonexistent-dir/berth.db", POOL_SOURCE, &db, &err) < 0);
	assert_null(db);
	assert_non_null(err.msg);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/berth.db"));
	berth_error_release(&err);
}
#else
/* No node where the configuration says: opening fails, saying where it tried, at once. */
static void test_open_fails(void **state)
{
	struct db_dqlite_config cfg = {.address = "@berth-test-no-such-node", .timeout_ms = 1000};
	struct berth_error err = {0};
	struct db *db = NULL;

	(void)state;
	assert_int_equal(db_open_backend(&db_backend_dqlite, &cfg, "x.db", POOL_SOURCE, &db, &err),
			 -EAGAIN);
	assert_null(db);
	assert_non_null(strstr(err.msg, "@berth-test-no-such-node"));
	berth_error_release(&err);
}
#endif

/* ---- a backend that fails on demand: SQLite's ops, the Nth fallible call failing ---- */

#define FAULT_MAX_CONNS 32

static struct {
	bool armed;
	int fail_at;	    /* the call (from 1) that fails while armed */
	int calls;	    /* fallible calls made while armed */
	bool fail_rollback; /* ROLLBACK fails too (without running) */
	bool injected;	    /* the connection's last failure was ours */
	void *live[FAULT_MAX_CONNS];
	int n_live;
} fault;

static bool fault_hit(void)
{
	fault.injected = false;
	if (!fault.armed)
		return false;
	fault.injected = ++fault.calls == fault.fail_at;
	return fault.injected;
}

static int fault_open(void *data, const char *path, void **ret_conn, struct berth_error *err)
{
	int r;

	if (fault_hit())
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "injected fault");
	r = BACKEND->open(data, path, ret_conn, err);
	if (r >= 0) {
		assert_true(fault.n_live < FAULT_MAX_CONNS);
		fault.live[fault.n_live++] = *ret_conn;
	}
	return r;
}

static void fault_close(void *conn)
{
	for (int i = 0; i < fault.n_live; i++)
		if (fault.live[i] == conn)
			fault.live[i] = fault.live[--fault.n_live];
	BACKEND->close(conn);
}

static int fault_prepare(void *conn, const char *sql, void **ret_stmt)
{
	return fault_hit() ? -EIO : BACKEND->prepare(conn, sql, ret_stmt);
}

static int fault_step(void *stmt)
{
	return fault_hit() ? -EIO : BACKEND->step(stmt);
}

static int fault_exec_script(void *conn, const char *sql)
{
	if (streq(sql, "ROLLBACK")) {
		fault.injected = fault.armed && fault.fail_rollback;
		return fault.injected ? -EIO : BACKEND->exec_script(conn, sql);
	}
	return fault_hit() ? -EIO : BACKEND->exec_script(conn, sql);
}

static const char *fault_errmsg(void *conn)
{
	return fault.injected ? "injected fault" : BACKEND->errmsg(conn);
}

static struct db_backend fault_backend;

static struct db *fault_db_open(const struct fixture *f)
{
	struct berth_error err = {0};
	struct db *db = NULL;

	fault_backend = *BACKEND;
	fault_backend.name = "fault";
	fault_backend.open = fault_open;
	fault_backend.close = fault_close;
	fault_backend.prepare = fault_prepare;
	fault_backend.step = fault_step;
	fault_backend.exec_script = fault_exec_script;
	fault_backend.errmsg = fault_errmsg;
	memset(&fault, 0, sizeof(fault));
	if (db_open_backend(&fault_backend, BACKEND_DATA, f->path, POOL_SOURCE, &db, &err) < 0)
		fail_msg("db_open_backend: %s", err.msg);
	return db;
}

/* Every row of every table, through a connection of the test's own. */
static char *dump(const struct fixture *f)
{
	const struct db_backend *b = BACKEND;
	void *conn = raw_open(f), *tables = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *s = open_memstream(&out, &len);

	assert_non_null(s);
	/* Each row as one text: the backend interface has no column count. */
	assert_int_equal(
		b->prepare(conn,
			   "SELECT m.name, group_concat('quote(\"' || c.name || '\")', "
			   "  ' || ''|'' || ') FROM sqlite_master m, pragma_table_info(m.name) c "
			   "WHERE m.type = 'table' GROUP BY m.name ORDER BY m.name",
			   &tables),
		0);
	while (b->step(tables) == 1) {
		_cleanup_free_ char *sql = berth_strdup_printf("SELECT %s FROM \"%s\" ORDER BY 1",
							       b->column_text(tables, 1),
							       b->column_text(tables, 0));
		void *rows = NULL;

		assert_int_equal(b->prepare(conn, sql, &rows), 0);
		fprintf(s, "%s:\n", b->column_text(tables, 0));
		while (b->step(rows) == 1)
			fprintf(s, "%s\n", b->column_text(rows, 0) ?: "∅");
		b->finalize(rows);
	}
	b->finalize(tables);
	b->close(conn);
	fclose(s);
	return out;
}

typedef int (*mutation_fn)(struct db *db, struct berth_error *err);

/* Run `fn` with the 1st, 2nd, 3rd... fallible backend call failing until it succeeds.
 * Each failure returns -errno with the injected message, leaves every row as it was and
 * no connection inside a transaction. Returns how many runs failed. */
static int fail_each_call(const struct fixture *f, struct db *db, mutation_fn fn)
{
	_cleanup_free_ char *before = dump(f);
	int live = fault.n_live;

	for (int n = 1; n < 500; n++) {
		struct berth_error err = {0};
		_cleanup_free_ char *after = NULL;
		int r;

		fault.armed = true;
		fault.calls = 0;
		fault.fail_at = n;
		r = fn(db, &err);
		fault.armed = false;
		if (r >= 0) {
			/* It ran to the end without meeting the fault. */
			assert_true(fault.calls < n);
			return n - 1;
		}
		if (!err.msg || !strstr(err.msg, "injected fault"))
			fail_msg("call %d: r=%d, message \"%s\"", n, r, err.msg ?: "(none)");
		berth_error_release(&err);
		after = dump(f);
		if (!streq(before, after))
			fail_msg("call %d left rows behind:\n%s\nwas:\n%s", n, after, before);
		/* Every connection still open is idle in the pool, none in a transaction; the
		 * failed one was rolled back and pooled again, not dropped. */
		assert_int_equal((int)db_idle_connections(db), fault.n_live);
		assert_int_equal(fault.n_live, live);
		for (int i = 0; i < fault.n_live; i++)
			assert_false(BACKEND->in_transaction(fault.live[i]));
	}
	fail_msg("never succeeded");
	return -1;
}

static int create_full(struct db *db, struct berth_error *err)
{
	json_auto_t *inst = parse("{\"name\":\"c1\",\"config\":{\"a\":\"1\",\"b\":\"2\"},"
				  "\"devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"br0\"},"
				  "\"data\":{\"type\":\"disk\",\"path\":\"/d\",\"source\":\"/s\"}},"
				  "\"profiles\":[\"default\",\"web\"]}");

	return db_instance_create(db, "default", inst, err);
}

static int rename_with_volumes(struct db *db, struct berth_error *err)
{
	return db_instance_rename(db, "default", "v1", "v2", NULL, NULL, err);
}

/* A backend failing at any call of a mutation leaves the database as it was. */
static void test_fault_injection(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_db_ struct db *db = NULL;
	json_auto_t *web = parse("{\"name\":\"web\",\"config\":{\"x\":\"y\"}}");
	json_auto_t *v1 = parse("{\"name\":\"v1\",\"devices\":{\"root\":{\"type\":\"disk\","
				"\"path\":\"/\",\"pool\":\"default\"}}}");
	json_auto_t *snaps = parse("[{\"name\":\"s0\"},{\"name\":\"s1\"}]");
	json_auto_t *got = NULL, *vols = NULL;
	_cleanup_free_ char *pool = NULL;
	int failed;

	db_close(TAKE_PTR(f->db));
	db = fault_db_open(f);
	assert_int_equal(db_profile_create(db, "default", web, &err), 0);
	failed = fail_each_call(f, db, create_full);
	printf("# db_instance_create: %d injected failures, each rolled back\n", failed);
	assert_true(failed >= 10);
	assert_int_equal(db_instance_get(db, "default", "c1", &got, &err), 0);
	assert_json_eq(json_object_get(got, "profiles"), "[\"default\",\"web\"]");

	assert_int_equal(db_instance_create_with_volume(db, "default", v1, "default", snaps, &err),
			 0);
	failed = fail_each_call(f, db, rename_with_volumes);
	printf("# db_instance_rename: %d injected failures, each rolled back\n", failed);
	assert_true(failed >= 4);
	assert_int_equal(db_instance_pool(db, "default", "v2", &pool, &err), 0);
	assert_string_equal(pool, "default");
	assert_int_equal(db_volume_list(db, "default", "default", "container", &vols, &err), 0);
	assert_int_equal(json_array_size(vols), 3);
	assert_string_equal(berth_json_string(json_array_get(vols, 1), "name"), "v2/s0");
}

/* COMMIT and ROLLBACK both failing: the connection still holds its transaction, so it
 * is closed (which rolls back), never pooled. */
static void test_fault_rollback_fails(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_db_ struct db *db = NULL;
	_cleanup_free_ char *before = NULL, *after = NULL;
	json_auto_t *inst = parse("{\"name\":\"c1\",\"config\":{\"a\":\"1\"}}");
	json_auto_t *names = NULL;
	int calls;

	db_close(TAKE_PTR(f->db));
	db = fault_db_open(f);
	assert_int_equal(fault.n_live, 1);
	/* Count the fallible calls of a create that succeeds: the last is its COMMIT. */
	fault.armed = true;
	fault.fail_at = 1000;
	assert_int_equal(db_instance_create(db, "default", inst, &err), 0);
	fault.armed = false;
	calls = fault.calls;
	assert_int_equal(db_instance_delete(db, "default", "c1", &err), 0);
	before = dump(f);

	fault.armed = true;
	fault.calls = 0;
	fault.fail_at = calls;
	fault.fail_rollback = true;
	assert_int_equal(db_instance_create(db, "default", inst, &err), -EIO);
	fault.armed = false;
	assert_non_null(strstr(err.msg, "injected fault"));
	berth_error_release(&err);
	after = dump(f);
	assert_string_equal(before, after);
	assert_int_equal(fault.n_live, 0);
	assert_int_equal(db_idle_connections(db), 0);
	/* The handle opens a new connection and goes on. */
	assert_int_equal(db_instance_names(db, NULL, &names, &err), 0);
	assert_json_eq(names, "[]");
	assert_int_equal(fault.n_live, 1);
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

	assert_int_equal(db_pool_create(f->db, pool, fail_hook, &calls, &err), -EIO);
	berth_error_release(&err);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_pools WHERE name = 'p'"), 0);
	json_object_set_new(json_object_get(pool, "config"), "size", json_string("1GiB"));
	assert_int_equal(db_pool_create(f->db, pool, ok_hook, &calls, &err), 0);
	assert_int_equal(calls, 2);
	assert_int_equal(db_pool_create(f->db, pool, ok_hook, &calls, &err), -EEXIST);
	berth_error_release(&err);
	assert_int_equal(calls, 2); /* no disk work for a taken name */

	assert_int_equal(db_volume_create(f->db, "p", "default", vol, fail_hook, &calls, &err),
			 -EIO);
	berth_error_release(&err);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_volumes"), 0);
	assert_int_equal(db_volume_create(f->db, "p", "default", vol, NULL, NULL, &err), 0);
	assert_int_equal(db_volume_create(f->db, "p", "default", snap, NULL, NULL, &err), 0);
	assert_int_equal(db_volume_create(f->db, "p", "default", orphan, NULL, NULL, &err),
			 -ENOENT);
	berth_error_release(&err);
	assert_int_equal(db_volume_list(f->db, "p", "default", "custom", &list, &err), 0);
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	assert_int_equal(db_volume_snapshot_list(f->db, "p", "default", "custom", "v", &list, &err),
			 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
			    "s0");

	assert_int_equal(db_pool_used_by(f->db, "p", &used, &err), 0);
	assert_int_equal(json_array_size(used), 1);
	assert_string_equal(json_string_value(json_array_get(used, 0)),
			    "/1.0/storage-pools/p/volumes/custom/v");
	assert_int_equal(db_pool_delete(f->db, "p", ok_hook, &calls, &err), -EBUSY);
	assert_string_equal(err.msg, "The storage pool is currently in use");
	berth_error_release(&err);
	/* The default pool is used by the default profile's root disk. */
	assert_int_equal(db_pool_delete(f->db, "default", NULL, NULL, &err), -EBUSY);
	berth_error_release(&err);

	assert_int_equal(db_volume_rename(f->db, "p", "default", "custom", "v", "w", fail_hook,
					  &calls, &err),
			 -EIO);
	berth_error_release(&err);
	assert_int_equal(db_volume_get(f->db, "p", "default", "custom", "v/s0", &got, &err), 0);
	assert_int_equal(db_volume_rename(f->db, "p", "default", "custom", "v", "w", NULL, NULL,
					  &err),
			 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_volumes WHERE name = 'w/s0'"),
			 1);
	/* Attached through a profile's disk device: in use. */
	{
		json_auto_t *prof = parse(
			"{\"name\":\"att\",\"devices\":{\"data\":{\"type\":"
			"\"disk\",\"pool\":\"p\",\"source\":\"w\",\"path\":\"/d\"}}}");
		json_auto_t *vused = NULL;

		assert_int_equal(db_profile_create(f->db, "default", prof, &err), 0);
		assert_int_equal(db_volume_used_by(f->db, "p", "default", "w", &vused, &err), 0);
		assert_int_equal(json_array_size(vused), 1);
		assert_string_equal(json_string_value(json_array_get(vused, 0)),
				    "/1.0/profiles/att");
		assert_int_equal(db_volume_delete(f->db, "p", "default", "custom", "w", NULL, NULL,
						  &err),
				 -EBUSY);
		assert_string_equal(err.msg, "The storage volume is still in use");
		berth_error_release(&err);
		assert_int_equal(db_profile_delete(f->db, "default", "att", &err), 0);
	}
	assert_int_equal(db_volume_delete(f->db, "p", "default", "custom", "w", NULL, NULL, &err),
			 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_volumes"), 0);
	assert_int_equal(db_pool_delete(f->db, "p", fail_hook, &calls, &err), -EIO);
	berth_error_release(&err);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_pools WHERE name = 'p'"), 1);
	assert_int_equal(db_pool_delete(f->db, "p", ok_hook, &calls, &err), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM storage_pools_config"), 1);
}

/* Warnings: raised idempotently, resolved, back to new when raised again, an
 * acknowledgement kept, deleted. */
/* db_open_copy: every row of one database in a new one (here on the same backend: the
 * daemon copies SQLite into dqlite), nothing else; a database that is not empty refused
 * and left as it was. */
static void test_copy(void **state)
{
	struct fixture *f = *state;
	struct fixture copy = *f;
	struct berth_error err = {0};
	_cleanup_db_ struct db *db = NULL;
	_cleanup_free_ char *want = NULL, *got = NULL, *again = NULL;
	json_auto_t *profile = parse("{\"name\":\"p\",\"config\":{\"limits.cpu\":\"2\"},"
				     "\"devices\":{\"d\":{\"type\":\"disk\",\"path\":\"/x\","
				     "\"source\":\"/y\"}}}");
	json_auto_t *got_profile = NULL;
	uint64_t rows = 0;

	assert_int_equal(db_profile_create(f->db, "default", profile, &err), 0);
	create_instance(f, "default",
			"{\"name\":\"c\",\"profiles\":[\"default\",\"p\"],"
			"\"config\":{\"a\":\"1\"}}");
	database_name(f->dir, "copy", copy.path, sizeof(copy.path));
	assert_int_equal(db_open_copy(BACKEND, BACKEND_DATA, copy.path, f->db, &rows, &db, &err),
			 0);
	assert_true(rows > 5);
	want = dump(f);
	got = dump(&copy);
	assert_string_equal(got, want);
	/* The copy works as a database of its own: foreign keys and all. */
	assert_int_equal(db_profile_get(db, "default", "p", &got_profile, &err), 0);
	assert_string_equal(
		berth_json_string(json_object_get(json_object_get(got_profile, "devices"), "d"),
				  "source"),
		"/y");
	assert_fails(db_profile_delete(db, "default", "p", &err), -EBUSY, BERTH_ERR_CONFLICT, &err,
		     "is used by 1 instance");
	db_close(TAKE_PTR(db));

	assert_fails(db_open_copy(BACKEND, BACKEND_DATA, copy.path, f->db, NULL, &db, &err),
		     -EEXIST, BERTH_ERR_CONFLICT, &err, "is not empty");
	assert_null(db);
	again = dump(&copy);
	assert_string_equal(again, want);
	database_unlink(copy.path);
}

/* A freeze that cannot complete in time gives up and leaves the handle usable. */
static void test_freeze_timeout(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	struct db_conn *conn = NULL;
	json_auto_t *config = NULL;

	assert_int_equal(db_read_begin(f->db, &conn, &err), 0);
	assert_int_equal(db_freeze(f->db, 100), -ETIMEDOUT);
	/* Not frozen: another transaction still gets a connection. */
	assert_int_equal(db_server_config_get(f->db, &config, &err), 0);
	assert_int_equal(db_tx_end(f->db, conn, 0, &err), 0);
	assert_int_equal(db_freeze(f->db, 1000), 0);
	db_thaw(f->db, NULL);
	json_decref(TAKE_PTR(config));
	assert_int_equal(db_server_config_get(f->db, &config, &err), 0);
}

static void test_warnings(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	struct db_warning w = {.type = "Network unavailable",
			       .project = "default",
			       .entity_url = "/1.0/networks/n",
			       .severity = "high",
			       .message = "first"};
	json_auto_t *list = NULL;
	json_auto_t *one = NULL;
	char uuid[64];

	assert_int_equal(db_warning_raise(f->db, &w, &err), 1);
	w.message = "second";
	assert_int_equal(db_warning_raise(f->db, &w, &err), 0);
	assert_int_equal(db_warning_list(f->db, NULL, &list, &err), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "count")), 2);
	assert_string_equal(berth_json_string(json_array_get(list, 0), "last_message"), "second");
	snprintf(uuid, sizeof(uuid), "%s", berth_json_string(json_array_get(list, 0), "uuid"));
	json_decref(TAKE_PTR(list));
	assert_int_equal(db_warning_list(f->db, "other", &list, &err), 0);
	assert_int_equal(json_array_size(list), 0);

	assert_int_equal(db_warning_resolve(f->db, "default", w.type, w.entity_url, &err), 1);
	assert_int_equal(db_warning_resolve(f->db, "default", w.type, w.entity_url, &err), 0);
	assert_int_equal(db_warning_get(f->db, uuid, &one, &err), 0);
	assert_string_equal(berth_json_string(one, "status"), "resolved");
	json_decref(TAKE_PTR(one));
	assert_int_equal(db_warning_raise(f->db, &w, &err), 0);
	assert_int_equal(db_warning_get(f->db, uuid, &one, &err), 0);
	assert_string_equal(berth_json_string(one, "status"), "new");
	json_decref(TAKE_PTR(one));

	assert_int_equal(db_warning_set_status(f->db, uuid, "acknowledged", &err), 0);
	assert_int_equal(db_warning_raise(f->db, &w, &err), 0);
	assert_int_equal(db_warning_get(f->db, uuid, &one, &err), 0);
	assert_string_equal(berth_json_string(one, "status"), "acknowledged");
	assert_int_equal(json_integer_value(json_object_get(one, "count")), 4);

	assert_int_equal(db_warning_delete(f->db, uuid, &err), 0);
	assert_int_equal(db_warning_delete(f->db, uuid, &err), -ENOENT);
	assert_int_equal(err.code, BERTH_ERR_NOT_FOUND);
	berth_error_release(&err);
	assert_int_equal(db_warning_set_status(f->db, uuid, "new", &err), -ENOENT);
	berth_error_release(&err);

	/* Pruning takes only resolved warnings, resolved before the cut-off. */
	w.entity_url = "/1.0/networks/m";
	assert_int_equal(db_warning_raise(f->db, &w, &err), 1);
	w.entity_url = "/1.0/networks/o";
	assert_int_equal(db_warning_raise(f->db, &w, &err), 1);
	assert_int_equal(db_warning_resolve(f->db, "default", w.type, "/1.0/networks/m", &err), 1);
	assert_int_equal(db_warning_prune(f->db, "2000-01-01T00:00:00.000000000Z", &err), 0);
	assert_int_equal(db_warning_prune(f->db, "9999-01-01T00:00:00.000000000Z", &err), 1);
	json_decref(TAKE_PTR(list));
	assert_int_equal(db_warning_list(f->db, NULL, &list, &err), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(berth_json_string(json_array_get(list, 0), "entity_url"),
			    "/1.0/networks/o");
}

#ifdef TEST_DB_DQLITE
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* One dqlite node (id 1: a cluster of itself) for the whole run, on an abstract socket,
 * its Raft log in memory (/dev/shm: the log's fsyncs are not what is tested here). */
static int node_start(void **state)
{
	(void)state;
	snprintf(node.dir, sizeof(node.dir), "/dev/shm/berth-test-db-dqlite-XXXXXX");
	if (!mkdtemp(node.dir))
		return -1;
	snprintf(node.address, sizeof(node.address), "@berth-test-db-%d", (int)getpid());
	if (dqlite_node_create(1, node.address, node.dir, &node.node) != 0 ||
	    dqlite_node_set_bind_address(node.node, node.address) != 0 ||
	    dqlite_node_start(node.node) != 0) {
		fprintf(stderr, "# dqlite node: %s\n",
			node.node ? dqlite_node_errmsg(node.node) : "create failed");
		return -1;
	}
	node.cfg.address = node.address;
	node.cfg.timeout_ms = 5000;
	return 0;
}

static int node_stop(void **state)
{
	(void)state;
	if (node.node) {
		dqlite_node_stop(node.node);
		dqlite_node_destroy(node.node);
	}
	if (node.dir[0])
		nftw(node.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
#else
#define node_start NULL
#define node_stop NULL
#endif

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
		cmocka_unit_test_setup_teardown(test_read_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writers_serialize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_idle_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_fails, NULL, NULL),
		cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_rollback_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_volumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warnings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_freeze_timeout, setup, teardown),
	};

	return cmocka_run_group_tests(tests, node_start, node_stop);
}
