/* tests/unit/test_storage.c: the storage drivers on real filesystems: dir in a temp
 * directory, btrfs on a loop file the test makes (skipped without root or btrfs).
 * The same scenario runs on both: create, fill with owners/modes/symlinks/hardlinks/
 * fifos/xattrs, snapshot, change, restore, copy with snapshots, rename, delete. */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/json.h"
#include "lib/util.h"
#include "storage/driver.h"

struct fixture {
	char dir[64];
	struct storage_pool *pool;
};

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"rm", "-rf", "--one-file-system", f->dir, NULL};

	if (f->pool) {
		f->pool->driver->pool_unmount(f->pool, NULL);
		storage_pool_free(f->pool);
	}
	storage_run(argv, NULL);
	free(f);
	return 0;
}

static int make_pool(void **state, const char *driver, const char *size)
{
	struct berth_error err = {0};
	struct fixture *f = calloc(1, sizeof(*f));
	json_auto_t *obj = NULL;
	int r;

	if (!f)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-storage-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	obj = json_pack("{s:s, s:s, s:{}}", "name", "p1", "driver", driver, "config");
	if (size)
		json_object_set_new(json_object_get(obj, "config"), "size", json_string(size));
	r = storage_pool_new(f->dir, obj, &f->pool, &err);
	if (r >= 0)
		r = f->pool->driver->pool_create(f->pool, &err);
	if (r < 0) {
		fprintf(stderr, "# pool_create(%s): %s\n", driver, berth_error_msg(&err, r));
		storage_pool_free(f->pool);
		f->pool = NULL;
	}
	berth_error_release(&err);
	return r;
}

static int setup_dir(void **state)
{
	return make_pool(state, "dir", NULL) < 0 ? -1 : 0;
}

static char btrfs_skip_reason[128];

static int setup_btrfs(void **state)
{
	int r;

	if (geteuid() != 0) {
		snprintf(btrfs_skip_reason, sizeof(btrfs_skip_reason), "not root");
	} else if (access("/usr/bin/mkfs.btrfs", X_OK) < 0 &&
		   access("/usr/sbin/mkfs.btrfs", X_OK) < 0 &&
		   access("/sbin/mkfs.btrfs", X_OK) < 0) {
		snprintf(btrfs_skip_reason, sizeof(btrfs_skip_reason),
			 "mkfs.btrfs not installed (apt-get install btrfs-progs)");
	} else {
		r = make_pool(state, "btrfs", "200MiB");
		if (r < 0)
			return -1;
		return 0;
	}
	*state = calloc(1, sizeof(struct fixture)); /* teardown wants one */
	snprintf(((struct fixture *)*state)->dir, sizeof(((struct fixture *)*state)->dir),
		 "/nonexistent-berth");
	return 0;
}

#define ok(expr)                                                                                   \
	do {                                                                                       \
		struct berth_error _e = {0};                                                       \
		int _r = (expr);                                                                   \
		if (_r < 0)                                                                        \
			fail_msg("%s: %s", #expr, berth_error_msg(&_e, _r));                       \
		berth_error_release(&_e);                                                          \
	} while (0)
#define E (&_e)

static char *vpath(struct storage_pool *p, const char *name, const char *snap, const char *rel)
{
	struct storage_vol v = {STORAGE_VOL_CUSTOM, name};
	_cleanup_free_ char *base = NULL;

	assert_int_equal(storage_volume_path(p, &v, snap, &base), 0);
	return berth_strdup_printf("%s%s%s", base, rel ? "/" : "", rel ? rel : "");
}

static void write_str(const char *path, const char *s)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(s, fp);
	fclose(fp);
}

static void expect_content(const char *path, const char *s)
{
	_cleanup_free_ char *buf = NULL;

	assert_int_equal(berth_read_file(path, 4096, &buf, NULL), 0);
	assert_string_equal(buf, s);
}

/* Fill a volume with what a root filesystem holds. */
static void fill(struct storage_pool *p, const char *name)
{
	_cleanup_free_ char *file = vpath(p, name, NULL, "file");
	_cleanup_free_ char *hard = vpath(p, name, NULL, "hard");
	_cleanup_free_ char *sym = vpath(p, name, NULL, "sym");
	_cleanup_free_ char *fifo = vpath(p, name, NULL, "fifo");
	_cleanup_free_ char *sub = vpath(p, name, NULL, "sub");

	write_str(file, "one");
	assert_int_equal(chown(file, 1000, 2000), 0);
	assert_int_equal(chmod(file, 04750), 0);
	assert_int_equal(link(file, hard), 0);
	assert_int_equal(symlink("file", sym), 0);
	assert_int_equal(lchown(sym, 3000, 3000), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(mkdir(sub, 01777), 0);
	assert_int_equal(chmod(sub, 01777), 0);
	/* user.* xattrs: where the filesystem refuses them (tmpfs without user_xattr)
	 * the check below is skipped. */
	setxattr(file, "user.berth", "x", 1, 0);
}

/* The tree at `base` (a volume or snapshot path) holds what fill() made, with content
 * `content`. */
static void check_tree(const char *base, const char *content)
{
	_cleanup_free_ char *file = berth_strdup_printf("%s/file", base);
	_cleanup_free_ char *hard = berth_strdup_printf("%s/hard", base);
	_cleanup_free_ char *sym = berth_strdup_printf("%s/sym", base);
	_cleanup_free_ char *fifo = berth_strdup_printf("%s/fifo", base);
	_cleanup_free_ char *sub = berth_strdup_printf("%s/sub", base);
	struct stat st, st2;
	char buf[16] = "";

	expect_content(file, content);
	assert_int_equal(lstat(file, &st), 0);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 2000);
	assert_int_equal(st.st_mode & 07777, 04750);
	assert_int_equal(lstat(hard, &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino); /* still one inode */
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(lstat(sym, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_uid, 3000);
	assert_int_equal(readlink(sym, buf, sizeof(buf) - 1), 4);
	assert_string_equal(buf, "file");
	assert_int_equal(lstat(fifo, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(lstat(sub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 01777);
	if (getxattr(file, "user.berth", buf, sizeof(buf)) >= 0)
		assert_memory_equal(buf, "x", 1);
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void scenario(struct storage_pool *p)
{
	const struct storage_driver *d = p->driver;
	struct storage_vol v = {STORAGE_VOL_CUSTOM, "default_v1"};
	struct storage_vol c = {STORAGE_VOL_CUSTOM, "default_c1"};
	_cleanup_free_ char *vol = vpath(p, "default_v1", NULL, NULL);
	_cleanup_free_ char *file = vpath(p, "default_v1", NULL, "file");
	_cleanup_free_ char *snap0 = vpath(p, "default_v1", "snap0", NULL);
	_cleanup_free_ char *copy = vpath(p, "default_c1", NULL, NULL);
	_cleanup_free_ char *copy_snap = vpath(p, "default_c1", "snap0", NULL);
	_cleanup_free_ char *renamed = vpath(p, "default_r1", NULL, NULL);
	_cleanup_free_ char *renamed_snap = vpath(p, "default_r1", "snap0", NULL);
	struct berth_error err = {0};
	uint64_t used = 0, total = 0;

	ok(d->volume_create(p, &v, 0, E));
	assert_true(exists(vol));
	assert_int_equal(d->volume_create(p, &v, 0, &err), -EEXIST);
	berth_error_release(&err);
	fill(p, "default_v1");
	check_tree(vol, "one");

	ok(d->volume_snapshot(p, &v, "snap0", E));
	check_tree(snap0, "one");
	write_str(file, "two");
	check_tree(vol, "two");
	check_tree(snap0, "one");

	ok(d->volume_restore(p, &v, "snap0", 0, E));
	check_tree(vol, "one");
	write_str(file, "three");

	ok(d->volume_copy(p, &v, &c, true, 0, E));
	check_tree(copy, "three");
	check_tree(copy_snap, "one");
	assert_int_equal(d->volume_copy(p, &v, &c, false, 0, &err), -EEXIST);
	berth_error_release(&err);

	ok(d->volume_rename(p, &c, "default_r1", E));
	assert_false(exists(copy));
	check_tree(renamed, "three");
	check_tree(renamed_snap, "one");

	ok(d->pool_usage(p, &used, &total, E));
	assert_true(total > 0 && used <= total);

	ok(d->volume_snapshot_delete(p, &v, "snap0", E));
	assert_false(exists(snap0));
	struct storage_vol r = {STORAGE_VOL_CUSTOM, "default_r1"};
	ok(d->volume_delete(p, &r, E));
	assert_false(exists(renamed));
	assert_false(exists(renamed_snap));
	ok(d->volume_delete(p, &v, E));
	assert_false(exists(vol));

	/* Empty again: the pool goes. */
	ok(d->pool_delete(p, E));
	assert_false(exists(p->path));
}

static void test_dir(void **state)
{
	struct fixture *f = *state;
	struct storage_vol v = {STORAGE_VOL_CUSTOM, "default_q"};
	struct berth_error err = {0};

	assert_string_equal(berth_json_string(f->pool->config, "source"), f->pool->path);
	/* No quotas on dir, said clearly. */
	assert_int_equal(f->pool->driver->volume_create(f->pool, &v, 1 << 20, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "size"));
	berth_error_release(&err);
	scenario(f->pool);
}

static void test_dir_config(void **state)
{
	struct berth_error err = {0};
	json_auto_t *obj = json_pack("{s:s, s:s, s:{s:s}}", "name", "x", "driver", "dir", "config",
				     "size", "1GiB");
	_cleanup_(storage_pool_freep) struct storage_pool *p = NULL;
	uint64_t v = 0;

	assert_int_equal(storage_pool_new("/tmp/nonexistent-berth", obj, &p, &err), 0);
	assert_int_equal(p->driver->pool_create(p, &err), -EINVAL);
	assert_string_equal(err.msg, "Invalid key \"size\"");
	berth_error_release(&err);

	assert_int_equal(storage_parse_size("110MiB", "size", &v, NULL), 0);
	assert_int_equal(v, 110ULL << 20);
	assert_int_equal(storage_parse_size("1GB", "size", &v, NULL), 0);
	assert_int_equal(v, 1000000000ULL);
	assert_int_equal(storage_parse_size("42", "size", &v, NULL), 0);
	assert_int_equal(v, 42);
	assert_int_equal(storage_parse_size("1XB", "size", &v, &err), -EINVAL);
	berth_error_release(&err);
	assert_int_equal(storage_parse_size("0", "size", &v, NULL), -EINVAL);
	assert_int_equal(storage_parse_size("-1GiB", "size", &v, NULL), -EINVAL);
}

#define SKIP_UNLESS_BTRFS(f)                                                                       \
	do {                                                                                       \
		if (!(f)->pool) {                                                                  \
			fprintf(stderr, "# SKIP btrfs: %s\n", btrfs_skip_reason);                  \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

/* Loop devices backed by a file under `dir` (other tests may attach their own meanwhile). */
static int count_loops(const char *dir)
{
	int n = 0;

	/* /sys/block/loopN/loop/backing_file exists only for attached devices. */
	for (int i = 0; i < 256; i++) {
		_cleanup_free_ char *backing = NULL;
		char p[64];

		snprintf(p, sizeof(p), "/sys/block/loop%d/loop/backing_file", i);
		if (berth_read_file(p, 4096, &backing, NULL) == 0 && berth_startswith(backing, dir))
			n++;
	}
	return n;
}

static void test_btrfs(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	int loops;

	SKIP_UNLESS_BTRFS(f);
	assert_non_null(strstr(berth_json_string(f->pool->config, "source"), "/disks/p1.img"));
	assert_int_equal(stat(f->pool->path, &st), 0);
	loops = count_loops(f->dir);
	assert_int_equal(loops, 1);
	scenario(f->pool);
	/* pool_delete unmounted: the autoclear loop device went with the mount. */
	assert_int_equal(count_loops(f->dir), 0);
	assert_int_not_equal(access(berth_json_string(f->pool->config, "source"), F_OK), 0);
}

/* Fill `path` with up to `mib` MiB; returns the first write error (-errno) or 0. */
static int fill_file(const char *path, int mib)
{
	static char buf[1 << 20];
	FILE *fp = fopen(path, "w");
	int r = 0;

	assert_non_null(fp);
	memset(buf, 0x5a, sizeof(buf));
	for (int i = 0; i < mib && r == 0; i++)
		if (fwrite(buf, 1, sizeof(buf), fp) != sizeof(buf) || fflush(fp) != 0)
			r = -errno;
	if (fclose(fp) != 0 && r == 0)
		r = -errno;
	if (r == 0) {
		int fd = open(path, O_RDONLY);
		if (fd >= 0) {
			if (fsync(fd) < 0)
				r = -errno;
			close(fd);
		}
	}
	return r;
}

static void test_btrfs_quota(void **state)
{
	struct fixture *f = *state;
	struct storage_vol v = {STORAGE_VOL_CUSTOM, "default_q"};
	_cleanup_free_ char *file = NULL;
	int r;

	SKIP_UNLESS_BTRFS(f);
	ok(f->pool->driver->volume_create(f->pool, &v, 20 << 20, E));
	file = vpath(f->pool, "default_q", NULL, "big");
	r = fill_file(file, 40);
	assert_int_equal(r, -EDQUOT);
	unlink(file);
	sync();
	/* Lifted: the same write fits in the pool. */
	ok(f->pool->driver->volume_set_quota(f->pool, &v, 0, E));
	assert_int_equal(fill_file(file, 40), 0);
	/* The pool is 200MiB: filling it fails cleanly with ENOSPC. */
	unlink(file);
	r = fill_file(file, 400);
	assert_true(r == -ENOSPC || r == -EDQUOT);
	unlink(file);
	ok(f->pool->driver->volume_delete(f->pool, &v, E));
	ok(f->pool->driver->pool_delete(f->pool, E));
}

/* A pool whose source is a directory on btrfs: made a subvolume, bind-mounted; deleting
 * the pool unmounts it and leaves the subvolume (the admin's) in place. */
static void test_btrfs_dir_source(void **state)
{
	struct fixture *f = *state;
	struct berth_error err = {0};
	_cleanup_(storage_pool_freep) struct storage_pool *p = NULL;
	_cleanup_free_ char *src = NULL;
	_cleanup_free_ char *vol = NULL;
	json_auto_t *obj = NULL;
	struct storage_vol v = {STORAGE_VOL_CUSTOM, "default_v"};
	struct stat st;

	SKIP_UNLESS_BTRFS(f);
	src = berth_strdup_printf("%s/images/nested", f->pool->path);
	obj = json_pack("{s:s, s:s, s:{s:s}}", "name", "p2", "driver", "btrfs", "config", "source",
			src);
	assert_int_equal(storage_pool_new(f->dir, obj, &p, &err), 0);
	ok(p->driver->pool_create(p, E));
	assert_int_equal(stat(src, &st), 0);
	assert_int_equal(st.st_ino, 256); /* a subvolume's root */
	ok(p->driver->volume_create(p, &v, 0, E));
	ok(p->driver->volume_snapshot(p, &v, "s", E));
	assert_int_equal(storage_volume_path(p, &v, NULL, &vol), 0);
	assert_true(berth_startswith(vol, p->path));
	ok(p->driver->volume_delete(p, &v, E));
	ok(p->driver->pool_delete(p, E));
	assert_int_not_equal(access(p->path, F_OK), 0);
	assert_int_equal(access(src, F_OK), 0);
	/* The loop-file pool goes whole, the nested subvolume with it. */
	ok(f->pool->driver->pool_delete(f->pool, E));
	assert_int_not_equal(access(f->pool->path, F_OK), 0);
}

static void test_btrfs_bad_config(void **state)
{
	struct berth_error err = {0};
	json_auto_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s}}", "name", "x", "driver", "btrfs",
				     "config", "source", "/tmp", "size", "1GiB");
	_cleanup_(storage_pool_freep) struct storage_pool *p = NULL;

	assert_int_equal(storage_pool_new("/tmp/nonexistent-berth", obj, &p, &err), 0);
	assert_int_equal(p->driver->pool_create(p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "size"));
	berth_error_release(&err);
}

static void test_run(void **state)
{
	struct berth_error err = {0};
	const char *t[] = {"true", NULL};
	const char *f[] = {"ls", "/nonexistent-berth-path", NULL};
	const char *n[] = {"no-such-program-berth", NULL};

	assert_int_equal(storage_run(t, &err), 0);
	assert_int_equal(storage_run(f, &err), -EIO);
	assert_non_null(strstr(err.msg, "nonexistent-berth-path"));
	berth_error_release(&err);
	assert_int_equal(storage_run(n, &err), -ENOENT);
	berth_error_release(&err);
}

int main(void)
{
	/* As root, run in a mount namespace of our own: whatever a failing or crashing test
	 * leaves mounted goes away with the process, and with the mounts the autoclear loop
	 * devices behind them. */
	if (geteuid() == 0 &&
	    (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)) {
		perror("unshare/mount");
		return 1;
	}

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_dir_config),
		cmocka_unit_test_setup_teardown(test_dir, setup_dir, teardown),
		cmocka_unit_test(test_btrfs_bad_config),
		cmocka_unit_test_setup_teardown(test_btrfs, setup_btrfs, teardown),
		cmocka_unit_test_setup_teardown(test_btrfs_quota, setup_btrfs, teardown),
		cmocka_unit_test_setup_teardown(test_btrfs_dir_source, setup_btrfs, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
