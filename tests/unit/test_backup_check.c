/* tests/unit/test_backup_check.c: a backup's index.yaml and the member checks
 * (daemon/instance/backup_check.c): what is taken, where it goes, what is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "daemon/instance/backup_check.h"
#include "lib/json.h"

static int parse(const char *yaml, struct backup_index **ret, struct berth_error *err)
{
	return backup_index_parse(yaml, strlen(yaml), ret, err);
}

static void test_index(void **state)
{
	const char *yaml = "name: c1\nbackend: btrfs\npool: p\nsnapshots:\n- s0\n- s1\n"
			   "optimized: true\noptimized_header: true\ntype: container\n"
			   "config:\n  container:\n    config: {user.a: \"1\"}\n"
			   "  snapshots:\n  - name: c1/s0\n    config: {user.a: \"0\"}\n";
	struct backup_index *ix = NULL;
	struct berth_error err = {0};
	const json_t *s0;

	assert_int_equal(parse(yaml, &ix, &err), 0);
	assert_string_equal(ix->name, "c1");
	assert_string_equal(ix->backend, "btrfs");
	assert_string_equal(ix->type, "container");
	assert_true(ix->optimized);
	assert_int_equal(json_array_size(ix->snapshots), 2);
	s0 = backup_config_snapshot(ix->config, "s0");
	assert_non_null(s0);
	assert_string_equal(berth_json_string(json_object_get(s0, "config"), "user.a"), "0");
	assert_null(backup_config_snapshot(ix->config, "s1"));
	backup_index_free(ix);

	/* old backups: no type (a container), no snapshots, no config */
	ix = NULL;
	assert_int_equal(parse("name: c2\nbackend: dir\n", &ix, &err), 0);
	assert_string_equal(ix->type, "container");
	assert_false(ix->optimized);
	backup_index_free(ix);

	/* a plain backup of a virtual machine */
	ix = NULL;
	assert_int_equal(parse("name: v1\nbackend: dir\ntype: virtual-machine\n", &ix, &err), 0);
	assert_string_equal(ix->type, "virtual-machine");
	assert_null(ix->config);
	backup_index_free(ix);
}

static void test_index_refused(void **state)
{
	static const struct {
		const char *yaml, *msg;
	} bad[] = {
		{"name: a/b\n", "Invalid backup index"},
		{"name: ..\n", "Invalid backup index"},
		{"backend: dir\n", "no instance name"},
		{"name: c\nbackend: btrfs\noptimized: true\ntype: virtual-machine\n",
		 "Optimized backups of virtual machines cannot be imported"},
		{"name: c\ntype: banana\n", "unknown instance type"},
		{"name: c\nsnapshots: [s0, s0]\n", "listed twice"},
		{"name: c\nsnapshots: [../x]\n", "snapshot name"},
		{"name: c\nsnapshots: s0\n", "not a list"},
		{"name: c\noptimized: yes-please\n", "not a boolean"},
		{"name: c\noptimized: true\n", "names no backend"},
		{"name: [c]\n", "not a string"},
		{"- a\n", "not a map"},
		{"name: c\nconfig:\n  container:\n    config: {a: [1]}\n", "map of strings"},
		{"name: c\nconfig:\n  container:\n    devices: {d: x}\n", "maps of strings"},
		{"name: c\nconfig:\n  container:\n    profiles: [\"a b\"]\n", "profile name"},
		{"name: c\nconfig:\n  container: {}\n  snapshots: [{config: {}}]\n", "has no name"},
		{"name: c\nconfig:\n  snapshots: []\n", "the instance is not a map"},
		{"name: &a c\nbackend: *a\n", "aliases"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct backup_index *ix = NULL;
		struct berth_error err = {0};

		assert_int_equal(parse(bad[i].yaml, &ix, &err), -EINVAL);
		assert_null(ix);
		if (!strstr(err.msg ?: "", bad[i].msg))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].yaml, err.msg ?: "", bad[i].msg);
		berth_error_release(&err);
	}
}

static int check(const char *path, mode_t type, const char *sym, const char *hard,
		 struct backup_member *m, struct berth_error *err)
{
	struct backup_entry e = {path, type, sym, hard, 1, 3};

	return backup_member_check(&e, m, err);
}

static void test_members(void **state)
{
	struct backup_member m;
	struct berth_error err = {0};

	assert_int_equal(check("./backup/index.yaml", S_IFREG, NULL, NULL, &m, &err), 0);
	assert_int_equal(m.kind, BACKUP_MEMBER_INDEX);
	backup_member_release(&m);
	assert_int_equal(check("backup/container/rootfs/etc/", S_IFDIR, NULL, NULL, &m, &err), 0);
	assert_int_equal(m.kind, BACKUP_MEMBER_TREE);
	assert_null(m.snap);
	assert_string_equal(m.rel, "rootfs/etc");
	backup_member_release(&m);
	assert_int_equal(check("backup/snapshots/s0/rootfs/bin/sh", S_IFLNK, "busybox", NULL, &m,
			       &err),
			 0);
	assert_string_equal(m.snap, "s0");
	assert_string_equal(m.rel, "rootfs/bin/sh");
	backup_member_release(&m);
	assert_int_equal(check("backup/snapshots/s0/rootfs/bin/x", S_IFREG, NULL,
			       "backup/snapshots/s0/rootfs/bin/sh", &m, &err),
			 0);
	assert_string_equal(m.link_rel, "rootfs/bin/sh");
	backup_member_release(&m);
	assert_int_equal(check("backup/snapshots/s1.bin", S_IFREG, NULL, NULL, &m, &err), 0);
	assert_int_equal(m.kind, BACKUP_MEMBER_BIN);
	assert_string_equal(m.snap, "s1");
	backup_member_release(&m);
	assert_int_equal(check("backup/container.bin", S_IFREG, NULL, NULL, &m, &err), 0);
	assert_int_equal(m.kind, BACKUP_MEMBER_BIN);
	assert_null(m.snap);
	backup_member_release(&m);
	assert_int_equal(check("backup/container/backup.yaml", S_IFREG, NULL, NULL, &m, &err), 0);
	assert_int_equal(m.kind, BACKUP_MEMBER_CONFIG);
	backup_member_release(&m);
	/* /dev/null in a rootfs, a FIFO, an absolute symlink: fine */
	assert_int_equal(check("backup/container/rootfs/dev/null", S_IFCHR, NULL, NULL, &m, &err),
			 0);
	backup_member_release(&m);
	assert_int_equal(check("backup/container/rootfs/run/p", S_IFIFO, NULL, NULL, &m, &err), 0);
	backup_member_release(&m);
	assert_int_equal(check("backup/container/rootfs/a/b", S_IFLNK, "/etc/shadow", NULL, &m,
			       &err),
			 0);
	backup_member_release(&m);
	assert_int_equal(check("backup/container/rootfs/a/b", S_IFLNK, "../etc", NULL, &m, &err),
			 0);
	backup_member_release(&m);
}

/* A virtual machine's layout: the config directory, the disks, LXD's files skipped. */
static void test_members_vm(void **state)
{
	static const struct {
		const char *path;
		mode_t type;
		enum backup_member_kind kind;
		const char *snap, *rel;
		bool disk;
	} ok[] = {
		{"backup/virtual-machine", S_IFDIR, BACKUP_MEMBER_TREE, NULL, "", false},
		{"backup/virtual-machine/backup.yaml", S_IFREG, BACKUP_MEMBER_CONFIG, NULL,
		 "backup.yaml", false},
		{"backup/virtual-machine/metadata.yaml", S_IFREG, BACKUP_MEMBER_TREE, NULL,
		 "metadata.yaml", false},
		{"backup/virtual-machine/templates/h.tpl", S_IFREG, BACKUP_MEMBER_TREE, NULL,
		 "templates/h.tpl", false},
		{"backup/virtual-machine/boot.kernel", S_IFREG, BACKUP_MEMBER_TREE, NULL,
		 "boot.kernel", false},
		{"backup/virtual-machine/qemu.nvram", S_IFREG, BACKUP_MEMBER_SKIP, NULL,
		 "qemu.nvram", false},
		{"backup/virtual-machine/config/lxd-agent", S_IFREG, BACKUP_MEMBER_SKIP, NULL,
		 "config/lxd-agent", false},
		{"backup/virtual-machine.img", S_IFREG, BACKUP_MEMBER_TREE, NULL, "root.img", true},
		{"backup/virtual-machine-snapshots/s0/backup.yaml", S_IFREG, BACKUP_MEMBER_TREE,
		 "s0", "backup.yaml", false},
		{"backup/virtual-machine-snapshots/s0.img", S_IFREG, BACKUP_MEMBER_TREE, "s0",
		 "root.img", true},
		{"backup/virtual-machine-snapshots", S_IFDIR, BACKUP_MEMBER_LAYOUT, NULL, NULL,
		 false},
	};
	static const struct {
		const char *path;
		mode_t type;
		const char *sym, *hard, *msg;
	} bad[] = {
		{"backup/virtual-machine.img", S_IFLNK, "/dev/sda", NULL,
		 "disk that is not a regular"},
		{"backup/virtual-machine.img", S_IFBLK, NULL, NULL, "disk that is not a regular"},
		{"backup/virtual-machine.img", S_IFREG, NULL, "backup/index.yaml",
		 "disk that is not a regular"},
		{"backup/virtual-machine-snapshots/..img", S_IFREG, NULL, NULL, "snapshot name"},
		{"backup/virtual-machine-snapshots/a b.img", S_IFREG, NULL, NULL, "snapshot name"},
		{"backup/virtual-machine-snapshots/../x.img", S_IFREG, NULL, NULL, "\"..\""},
		{"backup/virtual-machine/root.img", S_IFREG, NULL, NULL, "inside the config"},
		{"backup/virtual-machine/metadata.yaml", S_IFLNK, "/x", NULL, "not a regular file"},
		{"backup/virtual-machine/agent.crt", S_IFLNK, "/etc/shadow", NULL,
		 "not a regular file or directory"},
		{"backup/virtual-machine/null", S_IFCHR, NULL, NULL,
		 "not a regular file or directory"},
		{"backup/virtual-machine/x", S_IFREG, NULL, "backup/index.yaml",
		 "not a regular file or directory"},
		{"backup/virtual-machine", S_IFREG, NULL, NULL, "not a directory"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		struct backup_member m = {0};
		struct berth_error err = {0};

		if (check(ok[i].path, ok[i].type, NULL, NULL, &m, &err) < 0)
			fail_msg("%s: %s", ok[i].path, err.msg ?: "?");
		assert_int_equal(m.kind, ok[i].kind);
		assert_true(m.vm);
		assert_int_equal(m.is_disk, ok[i].disk);
		if (ok[i].snap)
			assert_string_equal(m.snap, ok[i].snap);
		else
			assert_null(m.snap);
		if (ok[i].rel)
			assert_string_equal(m.rel, ok[i].rel);
		backup_member_release(&m);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct backup_member m = {0};
		struct berth_error err = {0};

		assert_int_equal(check(bad[i].path, bad[i].type, bad[i].sym, bad[i].hard, &m, &err),
				 -EINVAL);
		if (!strstr(err.msg ?: "", bad[i].msg))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].path, err.msg ?: "", bad[i].msg);
		berth_error_release(&err);
	}
	/* a container's member is not of a VM's layout */
	{
		struct backup_member m = {0};
		struct berth_error err = {0};

		assert_int_equal(check("backup/container/metadata.yaml", S_IFREG, NULL, NULL, &m,
				       &err),
				 0);
		assert_false(m.vm);
		backup_member_release(&m);
	}
}

static void test_members_refused(void **state)
{
	static const struct {
		const char *path;
		mode_t type;
		const char *sym, *hard, *msg;
	} bad[] = {
		{"/backup/index.yaml", S_IFREG, NULL, NULL, "absolute"},
		{"backup/container/rootfs/../../x", S_IFREG, NULL, NULL, "\"..\""},
		{"backup//container", S_IFDIR, NULL, NULL, "empty components"},
		{"", S_IFREG, NULL, NULL, "absolute"},
		{"etc/passwd", S_IFREG, NULL, NULL, "layout"},
		{"backup/container/evil", S_IFREG, NULL, NULL, "layout"},
		{"backup/index.yaml", S_IFLNK, "/etc/shadow", NULL, "not a regular file"},
		{"backup/container/metadata.yaml", S_IFLNK, "/x", NULL, "not a regular file"},
		{"backup/container/templates/t", S_IFCHR, NULL, NULL, "not a regular file or dir"},
		{"backup/container/rootfs/dev/sda", S_IFBLK, NULL, NULL, "block device"},
		{"backup/container/rootfs/s", S_IFSOCK, NULL, NULL, "socket"},
		{"backup/container/rootfs/a", S_IFLNK, "../../x", NULL, "climbs out"},
		{"backup/container/rootfs/a", S_IFREG, NULL, "/etc/shadow", "absolute"},
		{"backup/container/rootfs/a", S_IFREG, NULL, "backup/snapshots/s/rootfs/a",
		 "outside its own rootfs"},
		{"backup/container/rootfs/a", S_IFREG, NULL, "backup/container/metadata.yaml",
		 "outside its own rootfs"},
		{"backup/snapshots/a b/rootfs", S_IFDIR, NULL, NULL, "snapshot name"},
		{"backup/snapshots/x.bin", S_IFDIR, NULL, NULL, "not a regular file"},
		{"backup/container.bin", S_IFREG, NULL, "backup/index.yaml", "not a regular file"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct backup_member m = {0};
		struct berth_error err = {0};

		assert_int_equal(check(bad[i].path, bad[i].type, bad[i].sym, bad[i].hard, &m, &err),
				 -EINVAL);
		if (!strstr(err.msg ?: "", bad[i].msg))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].path, err.msg ?: "", bad[i].msg);
		berth_error_release(&err);
	}
	/* character devices: only the harmless ones */
	{
		struct backup_entry e = {
			"backup/container/rootfs/dev/mem", S_IFCHR, NULL, NULL, 1, 1};
		struct backup_member m;
		struct berth_error err = {0};

		assert_int_equal(backup_member_check(&e, &m, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "character device"));
		berth_error_release(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index),		cmocka_unit_test(test_index_refused),
		cmocka_unit_test(test_members),		cmocka_unit_test(test_members_vm),
		cmocka_unit_test(test_members_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
