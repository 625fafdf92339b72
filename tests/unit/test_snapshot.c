/* tests/unit/test_snapshot.c: daemon/instance/snapshot.c's create and rename on a dir
 * pool in a temp directory, with injected failures, each of which must leave the disk
 * and the rows as they were:
 * - allocation: this binary is linked with -Wl,--wrap=malloc,calloc,strdup (and jansson
 *   is pointed at the same allocator), so that the N-th allocation of the code under
 *   test fails, for N = 0, 1, 2... until a run sees no failure at all. A run that
 *   succeeds in spite of its failure must leave the state of a success;
 * - storage: the snapshot directory is a file (create), the new name is taken on disk by
 *   a non-empty directory (rename);
 * - database: a trigger that RAISE(ABORT)s on the snapshot's row, and (rename) a
 *   deferred foreign key that fails the COMMIT after the disk was renamed.
 * And the schedule and pruning: expired snapshots go (disk and rows), a schedule that
 * fires takes a snapshot named by snapshots.pattern with snapshots.expiry's expiry. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "daemon/db/db.h"
#include "daemon/instance/snapshot.h"
#include "lib/json.h"
#include "lib/util.h"
#include "storage/driver.h"

/* ---- the failing allocator ---- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
char *__wrap_strdup(const char *s);

static long fail_at = -1; /* the allocation (0-based, since armed) that fails; -1: none */
static long alloc_calls;
static bool alloc_failed;

static bool alloc_fails(void)
{
	if (fail_at < 0 || alloc_calls++ != fail_at)
		return false;
	alloc_failed = true;
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t size)
{
	return alloc_fails() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __real_calloc(n, size);
}

char *__wrap_strdup(const char *s)
{
	return alloc_fails() ? NULL : __real_strdup(s);
}

static void *json_malloc(size_t size)
{
	return __wrap_malloc(size);
}

static void arm(long n)
{
	fail_at = n;
	alloc_calls = 0;
	alloc_failed = false;
}

static void disarm(void)
{
	fail_at = -1;
}

/* ---- fixture: a database, a dir pool, instance c1 with its root volume ---- */

struct fixture {
	char dir[64];
	char pool_dir[96];
	char db_path[128];
	struct berth_daemon d;
	struct storage_pool *pool;
	struct storage_vol vol;
};

static int write_file(const char *dir, const char *name, const char *content)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	if (!fp)
		return -errno;
	fputs(content, fp);
	return fclose(fp) == 0 ? 0 : -errno;
}

static int setup(void **state)
{
	struct berth_error err = {0};
	struct fixture *f = calloc(1, sizeof(*f));
	json_auto_t *pool = NULL;
	json_auto_t *inst = NULL;
	_cleanup_free_ char *path = NULL;
	int r;

	if (!f)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-snapshot-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->pool_dir, sizeof(f->pool_dir), "%s/pool", f->dir);
	snprintf(f->db_path, sizeof(f->db_path), "%s/berth.db", f->dir);
	f->d.dir = f->dir;
	f->vol = (struct storage_vol){STORAGE_VOL_CONTAINER, "default_c1"};
	inst = json_pack("{s:s, s:s, s:s, s:{}, s:{}, s:[]}", "name", "c1", "type", "container",
			 "architecture", "x86_64", "config", "devices", "profiles");
	r = db_open(f->db_path, f->pool_dir, &f->d.db, &err);
	if (r >= 0)
		r = db_pool_get(f->d.db, "default", &pool, &err);
	if (r >= 0)
		r = storage_pool_new(f->dir, pool, &f->pool, &err);
	if (r >= 0)
		r = f->pool->driver->pool_create(f->pool, &err);
	if (r >= 0)
		r = db_instance_create_with_volume(f->d.db, "default", inst, "default", NULL, &err);
	if (r >= 0)
		r = f->pool->driver->volume_create(f->pool, &f->vol, 0, &err);
	if (r >= 0)
		r = storage_volume_path(f->pool, &f->vol, NULL, &path);
	if (r >= 0)
		r = write_file(path, "hello", "c1's root\n");
	if (r < 0) {
		fprintf(stderr, "# setup: %s\n", berth_error_msg(&err, r));
		berth_error_release(&err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"rm", "-rf", "--one-file-system", f->dir, NULL};

	disarm();
	db_close(f->d.db);
	storage_pool_free(f->pool);
	storage_run(argv, NULL);
	free(f);
	return 0;
}

/* ---- what must not change: the pool's tree, the snapshot and volume rows ---- */

static FILE *dump_fp;
static size_t dump_skip;

static int dump_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	fprintf(dump_fp, "%s %c\n", path + dump_skip, S_ISDIR(st->st_mode) ? 'd' : 'f');
	return 0;
}

/* Every path under the pool (with its type), then the instance's snapshot rows and the
 * pool's container volume rows. New string. */
static char *state_dump(const struct fixture *f)
{
	struct berth_error err = {0};
	json_auto_t *snaps = NULL;
	json_auto_t *vols = NULL;
	char *buf = NULL;
	size_t len = 0;
	json_t *v;
	size_t i;

	dump_fp = open_memstream(&buf, &len);
	assert_non_null(dump_fp);
	dump_skip = strlen(f->pool_dir);
	assert_int_equal(nftw(f->pool_dir, dump_entry, 16, FTW_PHYS), 0);
	assert_int_equal(db_snapshot_list(f->d.db, "default", "c1", &snaps, &err), 0);
	json_array_foreach(snaps, i, v)
		fprintf(dump_fp, "snapshot row %s\n", berth_json_string(v, "name"));
	assert_int_equal(db_volume_list(f->d.db, "default", "default", "container", &vols, &err),
			 0);
	json_array_foreach(vols, i, v)
		fprintf(dump_fp, "volume row %s\n", berth_json_string(v, "name"));
	fclose(dump_fp);
	return buf;
}

static void assert_state(const struct fixture *f, const char *want, const char *what, long n)
{
	_cleanup_free_ char *now = state_dump(f);

	if (!streq(now, want))
		fail_msg("%s (failure %ld) changed the state:\n--- before\n%s--- after\n%s", what,
			 n, want, now);
}

static void assert_has(const char *dump, const char *line)
{
	if (!strstr(dump, line))
		fail_msg("\"%s\" missing from:\n%s", line, dump);
}

static int do_create(struct fixture *f, const char *name, struct berth_error *err)
{
	_cleanup_(snapshot_freep) struct snapshot *s = NULL;
	int r = snapshot_open(&f->d, "default", "c1", name, &s, err);

	return r < 0 ? r : snapshot_create(s, NULL, err);
}

static int do_rename(struct fixture *f, const char *name, const char *new_name,
		     struct berth_error *err)
{
	_cleanup_(snapshot_freep) struct snapshot *s = NULL;
	int r = snapshot_open(&f->d, "default", "c1", name, &s, err);

	if (r >= 0)
		r = snapshot_rename(s, new_name, err);
	if (r >= 0 && !streq(s->name, new_name))
		fail_msg("renamed snapshot still called \"%s\"", s->name);
	return r;
}

static int do_delete(struct fixture *f, const char *name, struct berth_error *err)
{
	_cleanup_(snapshot_freep) struct snapshot *s = NULL;
	int r = snapshot_open(&f->d, "default", "c1", name, &s, err);

	return r < 0 ? r : snapshot_delete(s, err);
}

static void must(int r, struct berth_error *err, const char *what)
{
	if (r < 0)
		fail_msg("%s: %s", what, berth_error_msg(err, r));
	berth_error_release(err);
}

/* ---- tests ---- */

static void test_create(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *before = state_dump(f);
	_cleanup_free_ char *after = NULL;

	must(do_create(f, "snap0", &err), &err, "create");
	after = state_dump(f);
	assert_has(after, "/containers-snapshots/default_c1/snap0/hello f\n");
	assert_has(after, "snapshot row snap0\n");
	assert_has(after, "volume row c1/snap0\n");
	must(do_delete(f, "snap0", &err), &err, "delete");
	assert_state(f, before, "create then delete", -1);
}

static void test_create_alloc_failures(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *before = state_dump(f);
	struct berth_error err = {0};
	long n, failed = 0;

	for (n = 0;; n++) {
		int r;

		arm(n);
		r = do_create(f, "snap0", &err);
		disarm();
		berth_error_release(&err);
		if (r < 0) {
			assert_true(alloc_failed);
			assert_state(f, before, "create", n);
			failed++;
			continue;
		}
		if (!alloc_failed)
			break;
		/* It coped with that failure: it must have done all of its work. */
		{
			_cleanup_free_ char *after = state_dump(f);

			assert_has(after, "/containers-snapshots/default_c1/snap0/hello f\n");
			assert_has(after, "snapshot row snap0\n");
		}
		must(do_delete(f, "snap0", &err), &err, "delete");
		assert_state(f, before, "create, then delete", n);
	}
	print_message("# create: %ld allocations, %ld of whose failures failed it\n", n, failed);
	assert_true(failed >= 10);
	must(do_delete(f, "snap0", &err), &err, "delete");
	assert_state(f, before, "create, then delete", n);
}

static void test_rename_alloc_failures(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *before = NULL;
	long n, failed = 0;

	must(do_create(f, "snap0", &err), &err, "create");
	before = state_dump(f);
	for (n = 0;; n++) {
		int r;

		arm(n);
		r = do_rename(f, "snap0", "daily", &err);
		disarm();
		berth_error_release(&err);
		if (r < 0) {
			assert_true(alloc_failed);
			assert_state(f, before, "rename", n);
			failed++;
			continue;
		}
		{
			_cleanup_free_ char *after = state_dump(f);

			assert_has(after, "/containers-snapshots/default_c1/daily/hello f\n");
			assert_has(after, "snapshot row daily\n");
			assert_has(after, "volume row c1/daily\n");
		}
		must(do_rename(f, "daily", "snap0", &err), &err, "rename back");
		assert_state(f, before, "rename there and back", n);
		if (!alloc_failed)
			break;
	}
	print_message("# rename: %ld allocations, %ld of whose failures failed it\n", n, failed);
	assert_true(failed >= 10);
}

static void test_create_storage_failure(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *snaps = NULL;
	_cleanup_free_ char *before = NULL;
	int r;

	/* The volume's snapshot directory is a file: the snapshot cannot be made. */
	assert_int_equal(storage_snapshots_dir(f->pool, &f->vol, &snaps), 0);
	*strrchr(snaps, '/') = '\0';
	assert_true(mkdir(snaps, 0700) == 0 || errno == EEXIST);
	assert_int_equal(write_file(snaps, "default_c1", "not a directory\n"), 0);
	before = state_dump(f);
	r = do_create(f, "snap0", &err);
	assert_true(r < 0);
	berth_error_release(&err);
	assert_state(f, before, "create on a failing pool", 0);
}

static void test_rename_storage_failure(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *daily = NULL;
	_cleanup_free_ char *before = NULL;
	int r;

	must(do_create(f, "snap0", &err), &err, "create");
	/* "daily" is taken on disk (not in the rows) by a non-empty directory. */
	assert_int_equal(storage_volume_path(f->pool, &f->vol, "daily", &daily), 0);
	assert_int_equal(mkdir(daily, 0700), 0);
	assert_int_equal(write_file(daily, "other", "not a snapshot\n"), 0);
	before = state_dump(f);
	r = do_rename(f, "snap0", "daily", &err);
	assert_true(r < 0);
	berth_error_release(&err);
	assert_state(f, before, "rename on a failing pool", 0);
}

/* Run `sql` on a connection of our own to the test's database file (the handle's
 * connections are its own business): triggers and tables that make berthd's next
 * statement or commit fail. */
static void exec_sql(const struct fixture *f, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	if (sqlite3_open_v2(f->db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		fail_msg("%s: %s", f->db_path, db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static void test_create_db_failure(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *before = state_dump(f);
	int r;

	exec_sql(f, "CREATE TRIGGER fail_insert BEFORE INSERT ON instances_snapshots"
		    " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	r = do_create(f, "snap0", &err);
	assert_true(r < 0);
	if (!strstr(berth_error_msg(&err, r), "injected failure"))
		fail_msg("not the injected failure: %s", berth_error_msg(&err, r));
	berth_error_release(&err);
	/* The snapshot was made on disk before the insert failed: it must be gone. */
	assert_state(f, before, "create with a failing insert", 0);
	exec_sql(f, "DROP TRIGGER fail_insert");
	must(do_create(f, "snap0", &err), &err, "create");
}

static void test_rename_db_failure(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *before = NULL;
	int r;

	must(do_create(f, "snap0", &err), &err, "create");
	before = state_dump(f);
	exec_sql(f, "CREATE TRIGGER fail_update BEFORE UPDATE ON instances_snapshots"
		    " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	r = do_rename(f, "snap0", "daily", &err);
	assert_true(r < 0);
	if (!strstr(berth_error_msg(&err, r), "injected failure"))
		fail_msg("not the injected failure: %s", berth_error_msg(&err, r));
	berth_error_release(&err);
	assert_state(f, before, "rename with a failing update", 0);
	exec_sql(f, "DROP TRIGGER fail_update");
	must(do_rename(f, "snap0", "daily", &err), &err, "rename");
}

/* The COMMIT fails after the disk was renamed (a deferred foreign key that the update
 * breaks): the disk must be renamed back. */
static void test_rename_commit_failure(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *before = NULL;
	int r;

	must(do_create(f, "snap0", &err), &err, "create");
	before = state_dump(f);
	exec_sql(f, "CREATE TABLE injected_parent (id INTEGER PRIMARY KEY);"
		    "CREATE TABLE injected_child (parent INTEGER REFERENCES injected_parent (id)"
		    "  DEFERRABLE INITIALLY DEFERRED);"
		    "CREATE TRIGGER fail_commit AFTER UPDATE ON instances_snapshots"
		    " BEGIN INSERT INTO injected_child VALUES (42); END");
	r = do_rename(f, "snap0", "daily", &err);
	assert_true(r < 0);
	berth_error_release(&err);
	assert_state(f, before, "rename with a failing commit", 0);
	exec_sql(f, "DROP TRIGGER fail_commit");
	must(do_rename(f, "snap0", "daily", &err), &err, "rename");
}

static int create_expiring(struct fixture *f, const char *name, const char *expires_at)
{
	struct berth_error err = {0};
	_cleanup_(snapshot_freep) struct snapshot *s = NULL;
	int r = snapshot_open(&f->d, "default", "c1", name, &s, &err);

	if (r >= 0)
		r = snapshot_create(s, expires_at, &err);
	must(r, &err, "create");
	return r;
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *after = NULL;

	create_expiring(f, "old", "2001-01-01T00:00:00Z");
	create_expiring(f, "later", "2999-01-01T00:00:00Z");
	create_expiring(f, "kept", NULL);
	assert_int_equal(snapshots_prune(&f->d), 1);
	after = state_dump(f);
	assert_null(strstr(after, "old"));
	assert_has(after, "/containers-snapshots/default_c1/later/hello f\n");
	assert_has(after, "/containers-snapshots/default_c1/kept/hello f\n");
	assert_has(after, "snapshot row later\n");
	assert_has(after, "snapshot row kept\n");
	assert_int_equal(snapshots_prune(&f->d), 0);
}

static void set_config(const struct fixture *f, const char *key, const char *value)
{
	struct berth_error err = {0};
	json_auto_t *inst = NULL;

	must(db_instance_get(f->d.db, "default", "c1", &inst, &err), &err, "get");
	json_object_set_new(json_object_get(inst, "config"), key, json_string(value));
	must(db_instance_update(f->d.db, "default", "c1", inst, &err), &err, "update");
}

static void test_schedule(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *snaps = NULL;
	struct tm tm = {.tm_year = 126,
			.tm_mon = 0,
			.tm_mday = 1,
			.tm_hour = 3,
			.tm_min = 15,
			.tm_isdst = -1};
	time_t at = mktime(&tm);
	_cleanup_free_ char *after = NULL;

	set_config(f, "snapshots.schedule", "15 3 * * *");
	set_config(f, "snapshots.pattern", "auto-%d");
	set_config(f, "snapshots.expiry", "1d");
	/* Stopped: only with snapshots.schedule.stopped=true. */
	assert_int_equal(snapshots_schedule(&f->d, at), 0);
	set_config(f, "snapshots.schedule.stopped", "true");
	assert_int_equal(snapshots_schedule(&f->d, at), 1);
	/* Another minute does not fire; the same one again takes the next name. */
	assert_int_equal(snapshots_schedule(&f->d, at + 60), 0);
	set_config(f, "snapshots.schedule.stopped", "false");
	must(db_instance_set_status(f->d.db, "default", "c1", "Running", 103, &err), &err,
	     "status");
	assert_int_equal(snapshots_schedule(&f->d, at), 1);
	after = state_dump(f);
	assert_has(after, "/containers-snapshots/default_c1/auto-0/hello f\n");
	assert_has(after, "/containers-snapshots/default_c1/auto-1/hello f\n");
	assert_has(after, "snapshot row auto-0\nsnapshot row auto-1\n");
	must(db_snapshot_list(f->d.db, "default", "c1", &snaps, &err), &err, "list");
	/* snapshots.expiry gave them an expiry a day from now. */
	for (size_t i = 0; i < 2; i++) {
		const char *exp = berth_json_string(json_array_get(snaps, i), "expires_at");
		struct tm e = {0};

		assert_non_null(exp);
		assert_non_null(strptime(exp, "%Y-%m-%dT%H:%M:%SZ", &e));
		assert_true(labs((long)(timegm(&e) - (time(NULL) + 86400))) < 120);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_alloc_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_alloc_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_storage_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_storage_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_db_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_db_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule, setup, teardown),
	};

	json_set_alloc_funcs(json_malloc, free);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
