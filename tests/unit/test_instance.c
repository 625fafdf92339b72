/* tests/unit/test_instance.c: the instance domain layer (daemon/instance/instance.c and
 * expand.c) against a real SQLite file and a dir pool in a fresh temp dir per test:
 * profile expansion and its cache, creation of an empty instance and of one from an
 * image, each with injected failures; the driver lookup (virtual-machine refused on a
 * host without QEMU, naming it).
 *
 * Failures are injected three ways:
 * - allocation: this binary is linked with -Wl,--wrap for malloc, calloc, realloc,
 *   strdup, strndup and free (jansson is pointed at the same functions), so that
 *   allocation number N of a call fails; N goes 0, 1, 2... until a run sees no failure.
 *   The wrappers also track what they handed out: a call must give all of it back.
 * - storage: storage_copy_tree (the dir driver's copy of the image volume into the root
 *   volume) is wrapped to fail on demand.
 * - db write: an SQLite trigger that RAISE(ABORT)s on insert into a table.
 * Each failure must return an error and leave nothing behind: no instance row, no
 * volume row, no root volume, no memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "daemon/db/db.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/instance.h"
#include "daemon/vm/host.h"
#include "lib/json.h"
#include "lib/macros.h"
#include "lib/util.h"
#include "storage/driver.h"

/* ---- the allocator: allocation number `alloc_fail_at` fails ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void __wrap_free(void *p);

#define LIVE_SLOTS (1u << 18)
#define TOMBSTONE ((void *)1)

static void *live[LIVE_SLOTS]; /* open addressing: what the wrappers handed out */
static size_t live_count;
static long alloc_fail_at = -1; /* < 0: never */
static long alloc_seen;
static bool alloc_fired;

static size_t slot_of(const void *p)
{
	return (size_t)(((uintptr_t)p >> 4) * 2654435761u) & (LIVE_SLOTS - 1);
}

static void live_add(void *p)
{
	size_t i = slot_of(p);

	while (live[i] && live[i] != TOMBSTONE)
		i = (i + 1) & (LIVE_SLOTS - 1);
	live[i] = p;
	live_count++;
}

/* Forget `p` when the wrappers handed it out (libraries' own allocations are not). */
static void live_del(void *p)
{
	for (size_t i = slot_of(p); live[i]; i = (i + 1) & (LIVE_SLOTS - 1))
		if (live[i] == p) {
			live[i] = TOMBSTONE;
			live_count--;
			return;
		}
}

static bool alloc_fails(void)
{
	if (alloc_fail_at >= 0 && alloc_seen++ == alloc_fail_at) {
		alloc_fired = true;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n)
{
	void *p = alloc_fails() ? NULL : __real_malloc(n);

	if (p)
		live_add(p);
	return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
	void *p = alloc_fails() ? NULL : __real_calloc(n, size);

	if (p)
		live_add(p);
	return p;
}

void *__wrap_realloc(void *old, size_t n)
{
	void *p;

	if (alloc_fails())
		return NULL;
	p = __real_realloc(old, n);
	if (p) {
		if (old)
			live_del(old);
		live_add(p);
	}
	return p;
}

char *__wrap_strdup(const char *s)
{
	char *p = alloc_fails() ? NULL : __real_strdup(s);

	if (p)
		live_add(p);
	return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
	char *p = alloc_fails() ? NULL : __real_strndup(s, n);

	if (p)
		live_add(p);
	return p;
}

void __wrap_free(void *p)
{
	if (p)
		live_del(p);
	__real_free(p);
}

/* Make allocation `n` fail (counting from 0); alloc_fired says whether one did. */
static void alloc_arm(long n)
{
	alloc_fail_at = n;
	alloc_seen = 0;
	alloc_fired = false;
}

static void alloc_disarm(void)
{
	alloc_fail_at = -1;
}

/* ---- storage: the dir driver's tree copy, failing on demand ---- */

int __real_storage_copy_tree(const char *src, const char *dst, const atomic_bool *cancel,
			     struct berth_error *err);
int __wrap_storage_copy_tree(const char *src, const char *dst, const atomic_bool *cancel,
			     struct berth_error *err);
static bool copy_fails;

int __wrap_storage_copy_tree(const char *src, const char *dst, const atomic_bool *cancel,
			     struct berth_error *err)
{
	if (copy_fails)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "injected copy failure");
	return __real_storage_copy_tree(src, dst, cancel, err);
}

/* ---- fixture ---- */

#define FP "d00dfeed00000000000000000000000000000000000000000000000000000001"

struct fixture {
	char dir[64];
	char db[96];
	char pool[96];
	struct berth_daemon d;
};

static int setup(void **state)
{
	struct berth_error err = {0};
	struct fixture *f = calloc(1, sizeof(*f));
	json_auto_t *p = NULL;
	struct storage_pool *pool = NULL;
	int r;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-instance-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/berth.db", f->dir);
	snprintf(f->pool, sizeof(f->pool), "%s/pool", f->dir);
	f->d.dir = f->dir;
	r = db_open(f->db, f->pool, &f->d.db, &err);
	if (r >= 0)
		r = db_pool_get(f->d.db, "default", &p, &err);
	if (r >= 0)
		r = storage_pool_new(f->dir, p, &pool, &err);
	if (r >= 0)
		r = pool->driver->pool_create(pool, &err);
	storage_pool_free(pool);
	if (r < 0) {
		fprintf(stderr, "# setup: %s\n", berth_error_msg(&err, r));
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	instance_expand_cache_release();
	db_close(f->d.db);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void sql(const struct fixture *f, const char *stmt)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	if (sqlite3_exec(db, stmt, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", stmt, msg);
	sqlite3_close(db);
}

static int64_t count_rows(const struct fixture *f, const char *table)
{
	_cleanup_free_ char *q = berth_strdup_printf("SELECT count(*) FROM %s", table);
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

/* Entries of `dir` that are not `except` (NULL: none). */
static int count_entries(const char *dir, const char *except)
{
	_cleanup_free_ char *cmd = berth_strdup_printf("ls -A %s | grep -vx '%s' | wc -l", dir,
						       except ? except : "");
	FILE *p = popen(cmd, "r");
	int n = -1;

	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static json_t *parse(const char *s)
{
	json_t *v = json_loads(s, 0, NULL);

	assert_non_null(v);
	return v;
}

/* The row api/instances.c would build for `name`. */
static json_t *new_row(const char *name)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{}, s:[s], s:b, s:b}", "name", name,
			      "type", "container", "architecture", "x86_64", "description", "",
			      "config", "user.k", "v", "devices", "profiles", "default",
			      "ephemeral", 0, "stateful", 0);

	assert_non_null(o);
	return o;
}

/* A job creating `name` from the test image on the default pool, or empty. */
static struct instance_job *create_job(struct fixture *f, const char *name, bool image)
{
	struct instance_job *j = instance_job_new(&f->d, "default", name, &container_driver);

	if (!j)
		return NULL;
	j->object = new_row(name);
	if (image) {
		j->fingerprint = strdup(FP);
		j->pool_name = strdup("default");
		if (!j->fingerprint || !j->pool_name) {
			instance_job_free(j);
			return NULL;
		}
	}
	return j;
}

/* The image file images/<FP>: a unified tarball with a template. */
static void make_image(const struct fixture *f)
{
	_cleanup_free_ char *cmd = berth_strdup_printf(
		"set -e; cd %s; mkdir -p src/rootfs/etc src/templates images;"
		" printf 'architecture: x86_64\\ncreation_date: 1700000000\\n"
		"templates:\\n  /etc/hostname:\\n    when: [create]\\n"
		"    template: hostname.tpl\\n' > src/metadata.yaml;"
		" printf '{{ container.name }}\\n' > src/templates/hostname.tpl;"
		" echo busybox > src/rootfs/etc/os;"
		" tar -C src -czf images/" FP " metadata.yaml templates rootfs; rm -rf src",
		f->dir);

	assert_int_equal(system(cmd), 0);
}

/* Nothing of instance `name` exists: no rows, no root volume. */
static void assert_nothing(const struct fixture *f, const char *name)
{
	struct berth_error err = {0};
	json_auto_t *inst = NULL;
	_cleanup_free_ char *containers = berth_strdup_printf("%s/containers", f->pool);

	assert_int_equal(db_instance_get(f->d.db, "default", name, &inst, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(count_rows(f, "instances"), 0);
	assert_int_equal(count_rows(f, "instances_config"), 0);
	assert_int_equal(count_rows(f, "instances_profiles"), 0);
	assert_int_equal(count_rows(f, "storage_volumes"), 0);
	assert_int_equal(count_entries(containers, NULL), 0);
}

/* ---- profile expansion ---- */

static void test_expand(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *row = new_row("c1");
	json_auto_t *prof = parse("{\"name\": \"extra\", \"description\": \"\", "
				  "\"config\": {\"limits.cpu\": \"1\", \"user.k\": \"profile\"},"
				  " \"devices\": {\"eth0\": {\"type\": \"nic\", \"nictype\": "
				  "\"p2p\"}}}");
	json_auto_t *a = NULL;
	json_auto_t *b = NULL;
	json_t *cfg, *devs;

	assert_int_equal(db_profile_create(f->d.db, "default", prof, &err), 0);
	json_array_append_new(json_object_get(row, "profiles"), json_string("extra"));
	assert_int_equal(db_instance_create(f->d.db, "default", row, &err), 0);

	assert_int_equal(instance_expand_load(f->d.db, "default", "c1", &a, &err), 0);
	cfg = json_object_get(a, "expanded_config");
	devs = json_object_get(a, "expanded_devices");
	/* Profiles in order, the instance's own keys last. */
	assert_string_equal(berth_json_string(cfg, "limits.cpu"), "1");
	assert_string_equal(berth_json_string(cfg, "user.k"), "v");
	assert_non_null(json_object_get(devs, "root"));
	assert_non_null(json_object_get(devs, "eth0"));
	assert_string_equal(berth_json_string(a, "location"), "none");

	/* The caller's copy: changing it leaves the cache alone. */
	json_object_set_new(cfg, "limits.cpu", json_string("7"));
	assert_int_equal(instance_expand_load(f->d.db, "default", "c1", &b, &err), 0);
	assert_string_equal(berth_json_string(json_object_get(b, "expanded_config"), "limits.cpu"),
			    "1");
	json_decref(b);
	b = NULL;

	/* A profile change shows at the next load: the write moved the generation on. */
	json_object_set_new(json_object_get(prof, "config"), "limits.cpu", json_string("2"));
	assert_int_equal(db_profile_update(f->d.db, "default", "extra", prof, &err), 0);
	assert_int_equal(instance_expand_load(f->d.db, "default", "c1", &b, &err), 0);
	assert_string_equal(berth_json_string(json_object_get(b, "expanded_config"), "limits.cpu"),
			    "2");

	/* Unknown instance: -ENOENT with its message. */
	json_decref(b);
	b = NULL;
	assert_int_equal(instance_expand_load(f->d.db, "default", "nope", &b, &err), -ENOENT);
	assert_null(b);
	berth_error_release(&err);
}

/* limits.cpu of `project`/`name`'s expansion through the cache (NULL when unset). */
static char *expanded_cpu(struct db *db, const char *project, const char *name)
{
	struct berth_error err = {0};
	json_auto_t *inst = NULL;
	const char *v;

	if (instance_expand_load(db, project, name, &inst, &err) < 0)
		fail_msg("expanding %s/%s: %s", project, name, err.msg);
	v = berth_json_string(json_object_get(inst, "expanded_config"), "limits.cpu");
	return v ? strdup(v) : NULL;
}

/* A project's features.profiles decides whose profiles an expansion reads: after it
 * changes, an instance of the same name expands from the project's own profiles, not
 * from what the cache kept for the old one. */
static void test_expand_project_features(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *proj = parse("{\"name\": \"p\", \"description\": \"\", \"config\": "
				  "{\"features.profiles\": \"false\"}}");
	json_auto_t *dprof = parse("{\"name\": \"extra\", \"description\": \"\", "
				   "\"config\": {\"limits.cpu\": \"1\"}, \"devices\": {}}");
	json_auto_t *pprof = parse("{\"name\": \"extra\", \"description\": \"\", "
				   "\"config\": {\"limits.cpu\": \"4\"}, \"devices\": {}}");
	json_auto_t *row = new_row("c2");
	char *v;

	json_array_append_new(json_object_get(row, "profiles"), json_string("extra"));
	assert_int_equal(db_profile_create(f->d.db, "default", dprof, &err), 0);
	assert_int_equal(db_project_create(f->d.db, proj, &err), 0);
	assert_int_equal(db_instance_create(f->d.db, "p", row, &err), 0);
	v = expanded_cpu(f->d.db, "p", "c2"); /* from the "default" project's profile */
	assert_string_equal(v, "1");
	free(v);
	v = expanded_cpu(f->d.db, "p", "c2"); /* the cached copy */
	assert_string_equal(v, "1");
	free(v);

	/* LXD changes features only on an empty project. */
	assert_int_equal(db_instance_delete(f->d.db, "p", "c2", &err), 0);
	json_object_set_new(json_object_get(proj, "config"), "features.profiles",
			    json_string("true"));
	assert_int_equal(db_project_update(f->d.db, "p", proj, &err), 0);
	assert_int_equal(db_profile_create(f->d.db, "p", pprof, &err), 0);
	assert_int_equal(db_instance_create(f->d.db, "p", row, &err), 0);
	v = expanded_cpu(f->d.db, "p", "c2");
	assert_string_equal(v, "4");
	free(v);
}

/* Two handles (two databases) never share cached expansions: same project, same name,
 * and their generations never meet. */
static void test_expand_two_handles(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *path = berth_strdup_printf("%s/other.db", f->dir);
	struct db *other = NULL;
	json_auto_t *mine = new_row("c1");
	json_auto_t *theirs = new_row("c1");
	char *v;

	assert_non_null(path);
	assert_int_equal(db_open(path, f->pool, &other, &err), 0);
	json_object_set_new(json_object_get(mine, "config"), "limits.cpu", json_string("1"));
	json_object_set_new(json_object_get(theirs, "config"), "limits.cpu", json_string("2"));
	assert_int_equal(db_instance_create(f->d.db, "default", mine, &err), 0);
	assert_int_equal(db_instance_create(other, "default", theirs, &err), 0);
	assert_true(db_generation(f->d.db) != db_generation(other));

	v = expanded_cpu(f->d.db, "default", "c1");
	assert_string_equal(v, "1");
	free(v);
	v = expanded_cpu(other, "default", "c1");
	assert_string_equal(v, "2");
	free(v);
	/* Both now cached, under the same project and name. */
	v = expanded_cpu(f->d.db, "default", "c1");
	assert_string_equal(v, "1");
	free(v);
	v = expanded_cpu(other, "default", "c1");
	assert_string_equal(v, "2");
	free(v);
	db_close(other);
}

/* A handle closed with its expansions still cached, and a new one (most likely at the
 * same address) on another file with the same rows but another value: the new handle
 * sees its own. */
static void test_expand_reopened_handle(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_free_ char *a = berth_strdup_printf("%s/a.db", f->dir);
	_cleanup_free_ char *b = berth_strdup_printf("%s/b.db", f->dir);
	struct db *first = NULL, *second = NULL;
	json_auto_t *one = new_row("c1");
	json_auto_t *two = new_row("c1");
	uint64_t gen;
	char *v;

	assert_non_null(a);
	assert_non_null(b);
	json_object_set_new(json_object_get(one, "config"), "limits.cpu", json_string("1"));
	json_object_set_new(json_object_get(two, "config"), "limits.cpu", json_string("2"));
	assert_int_equal(db_open(a, f->pool, &first, &err), 0);
	assert_int_equal(db_instance_create(first, "default", one, &err), 0);
	v = expanded_cpu(first, "default", "c1");
	assert_string_equal(v, "1");
	free(v);
	gen = db_generation(first);
	db_close(first);

	assert_int_equal(db_open(b, f->pool, &second, &err), 0);
	assert_int_equal(db_instance_create(second, "default", two, &err), 0);
	assert_true(db_generation(second) != gen);
	v = expanded_cpu(second, "default", "c1");
	assert_string_equal(v, "2");
	free(v);
	db_close(second);
}

/* Allocation N of an expansion fails: an error and no memory kept; at the end, the same
 * result as without failures. */
static void test_expand_alloc(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	json_auto_t *row = new_row("c1");
	json_auto_t *want = NULL;
	long n;

	(void)f;
	assert_int_equal(db_instance_create(f->d.db, "default", row, &err), 0);
	assert_int_equal(instance_expand_load(f->d.db, "default", "c1", &want, &err), 0);
	for (n = 0;; n++) {
		json_t *got = NULL;
		size_t before;
		int r;

		instance_expand_cache_release(); /* the load must read and expand again */
		before = live_count;
		alloc_arm(n);
		r = instance_expand_load(f->d.db, "default", "c1", &got, &err);
		alloc_disarm();
		if (r >= 0) {
			/* A failure the cache absorbs (not kept) is fine: the result is whole. */
			assert_true(json_equal(got, want));
			json_decref(got);
		} else {
			assert_null(got);
			assert_int_equal(r, -ENOMEM);
		}
		berth_error_release(&err);
		instance_expand_cache_release();
		if (live_count != before)
			fail_msg("allocation %ld failed: %zu blocks kept", n, live_count - before);
		if (!alloc_fired)
			break;
	}
	print_message("# expansion: %ld allocations, each failed once\n", n);
	assert_true(n > 10);
}

/* ---- creation ---- */

static void test_create_empty(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	struct instance_job *j = create_job(f, "c1", false);
	json_auto_t *inst = NULL;

	assert_non_null(j);
	assert_int_equal(instance_create_run(NULL, j, &err), 0);
	instance_job_free(j);
	assert_int_equal(db_instance_get(f->d.db, "default", "c1", &inst, &err), 0);
	assert_string_equal(berth_json_string(json_object_get(inst, "config"), "user.k"), "v");
	assert_int_equal(count_rows(f, "storage_volumes"), 0);

	/* The same name again: refused by the check (409), and by the db had it raced. */
	j = create_job(f, "c1", false);
	assert_int_equal(instance_create_check(j, &err), -EEXIST);
	assert_int_equal(err.code, BERTH_ERR_CONFLICT);
	assert_string_equal(err.msg, "Instance \"c1\" already exists");
	berth_error_release(&err);
	assert_true(instance_create_run(NULL, j, &err) < 0);
	berth_error_release(&err);
	instance_job_free(j);
	assert_int_equal(count_rows(f, "instances"), 1);
}

/* Runs a creation with allocation N failing, for N = 0, 1, ... until one sees no
 * failure; after each failure nothing is left (rows, volume, memory). */
static long create_alloc_loop(struct fixture *f, bool image)
{
	struct berth_error err = {0};
	long n;

	for (n = 0;; n++) {
		struct instance_job *j = create_job(f, "c1", image);
		size_t before;
		int r;

		assert_non_null(j);
		before = live_count;
		alloc_arm(n);
		r = (image ? instance_create_image_run : instance_create_run)(NULL, j, &err);
		alloc_disarm();
		berth_error_release(&err);
		if (!alloc_fired) {
			assert_int_equal(r, 0);
			instance_job_free(j);
			break;
		}
		if (r >= 0) {
			/* What failed was not needed (the lifecycle event): the instance is
			 * whole. Remove it for the next round. */
			json_auto_t *inst = NULL;

			assert_int_equal(db_instance_get(f->d.db, "default", "c1", &inst, &err), 0);
			assert_int_equal(instance_volume_open(&f->d, "default", "c1", &j->v, &err),
					 0);
			assert_int_equal(instance_delete_run(NULL, j, &err), 0);
			instance_volume_release(&j->v);
		}
		instance_expand_cache_release();
		if (live_count != before)
			fail_msg("allocation %ld failed (r=%d): %zu blocks kept", n, r,
				 live_count - before);
		instance_job_free(j);
		if (r < 0)
			assert_nothing(f, "c1");
	}
	return n;
}

static void test_create_empty_alloc(void **state)
{
	long n = create_alloc_loop(*state, false);

	print_message("# empty creation: %ld allocations, each failed once\n", n);
	assert_true(n > 10);
}

static void test_create_empty_db(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	static const char *const tables[] = {"instances", "instances_config", "instances_profiles"};

	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		_cleanup_free_ char *trig =
			berth_strdup_printf("CREATE TRIGGER fail BEFORE INSERT ON %s BEGIN "
					    "SELECT RAISE(ABORT, 'injected'); END",
					    tables[i]);
		struct instance_job *j = create_job(f, "c1", false);

		sql(f, trig);
		assert_true(instance_create_run(NULL, j, &err) < 0);
		assert_non_null(err.msg);
		berth_error_release(&err);
		instance_job_free(j);
		sql(f, "DROP TRIGGER fail");
		assert_nothing(f, "c1");
	}
}

static void test_create_image(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	struct instance_job *j;
	json_auto_t *inst = NULL;
	_cleanup_free_ char *hostname = NULL;
	_cleanup_free_ char *os = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	make_image(f);
	j = create_job(f, "c1", true);
	assert_int_equal(instance_create_image_run(NULL, j, &err), 0);
	instance_job_free(j);
	assert_int_equal(db_instance_get(f->d.db, "default", "c1", &inst, &err), 0);
	assert_int_equal(count_rows(f, "storage_volumes"), 1);
	hostname = berth_strdup_printf("%s/containers/default_c1/rootfs/etc/hostname", f->pool);
	os = berth_strdup_printf("%s/containers/default_c1/rootfs/etc/os", f->pool);
	assert_int_equal(berth_read_file(os, 4096, &buf, &len), 0);
	assert_string_equal(buf, "busybox\n");
	free(buf);
	buf = NULL;
	assert_int_equal(berth_read_file(hostname, 4096, &buf, &len), 0);
	assert_string_equal(buf, "c1\n");
}

static void test_create_image_alloc(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *images = berth_strdup_printf("%s/images", f->pool);
	long n;

	make_image(f);
	n = create_alloc_loop(f, true);
	print_message("# creation from an image: %ld allocations, each failed once\n", n);
	assert_true(n > 10);
	/* The image volume is shared and stays; no temporary unpack is left. */
	assert_int_equal(count_entries(images, FP), 0);
}

static void test_create_image_storage(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	struct instance_job *j;
	size_t before;

	make_image(f);
	before = live_count;
	j = create_job(f, "c1", true);
	copy_fails = true;
	assert_true(instance_create_image_run(NULL, j, &err) < 0);
	copy_fails = false;
	assert_non_null(strstr(berth_error_msg(&err, -EIO), "injected copy failure"));
	berth_error_release(&err);
	instance_job_free(j);
	assert_int_equal(live_count, before);
	assert_nothing(f, "c1");

	/* The next try works. */
	j = create_job(f, "c1", true);
	assert_int_equal(instance_create_image_run(NULL, j, &err), 0);
	instance_job_free(j);
	assert_int_equal(count_rows(f, "storage_volumes"), 1);
}

/* The volume row or the instance row refused: the root volume made before goes too. */
static void test_create_image_db(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	static const char *const tables[] = {"instances", "storage_volumes", "instances_config"};

	make_image(f);
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		_cleanup_free_ char *trig =
			berth_strdup_printf("CREATE TRIGGER fail BEFORE INSERT ON %s BEGIN "
					    "SELECT RAISE(ABORT, 'injected'); END",
					    tables[i]);
		struct instance_job *j = create_job(f, "c1", true);

		sql(f, trig);
		assert_true(instance_create_image_run(NULL, j, &err) < 0);
		berth_error_release(&err);
		instance_job_free(j);
		sql(f, "DROP TRIGGER fail");
		assert_nothing(f, "c1");
	}
}

/* ---- the driver lookup ---- */

static void test_driver_lookup(void **state)
{
	struct berth_error err = {0};
	const struct instance_driver *drv = NULL;

	(void)state;
	assert_int_equal(instance_driver_get(NULL, "c1", &drv, &err), 0);
	assert_ptr_equal(drv, &container_driver);
	assert_int_equal(instance_driver_get("container", "c1", &drv, &err), 0);
	assert_ptr_equal(drv, &container_driver);
	drv = NULL;
	assert_int_equal(instance_driver_get("vm", "v1", &drv, &err), -EOPNOTSUPP);
	assert_null(drv);
	assert_int_equal(err.code, BERTH_ERR_BAD_REQUEST);
	berth_error_release(&err);
	/* A host without QEMU (the probe is made once per process: in a child, first). */
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("BERTH_QEMU", "/nonexistent/qemu-system-x86_64", 1);
		_exit(instance_driver_get("virtual-machine", "v1", &drv, &err) == -EOPNOTSUPP &&
				      !drv && err.code == BERTH_ERR_BAD_REQUEST &&
				      berth_startswith(err.msg, "Cannot create instance \"v1\": "
								"This host cannot run virtual "
								"machines: ") &&
				      strstr(err.msg, "qemu-system-x86_64")
			      ? 0
			      : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* This host: the VM driver when QEMU, qemu-img and OVMF are there. */
	if (vm_host_usable(vm_host_get())) {
		assert_int_equal(instance_driver_get("virtual-machine", "v1", &drv, &err), 0);
		assert_ptr_equal(drv, &vm_driver);
	}
	/* A stored VM record has its driver whatever the host. */
	json_auto_t *rec = json_pack("{s:s, s:s}", "name", "v1", "type", "virtual-machine");
	assert_int_equal(instance_driver_of(rec, &drv, &err), 0);
	assert_ptr_equal(drv, &vm_driver);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand_project_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand_two_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand_reopened_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expand_alloc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_empty_alloc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_empty_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_image_alloc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_image_storage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_image_db, setup, teardown),
		cmocka_unit_test(test_driver_lookup),
	};

	json_set_alloc_funcs(__wrap_malloc, __wrap_free);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
