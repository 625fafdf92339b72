/* tests/unit/test_btrfs_stream.c: `btrfs send` streams checked command by command
 * (daemon/instance/btrfs_stream.c): streams built here in memory, as btrfs send frames
 * them (version 1), taken whole and cut at every byte; what the check refuses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cmocka.h>

#include "daemon/instance/btrfs_stream.h"
#include "lib/json.h"

/* A stream being built. */
struct sbuf {
	uint8_t b[8192];
	size_t len;
	size_t cmd; /* where the command being built starts */
};

static void put(struct sbuf *s, const void *p, size_t n)
{
	assert_true(s->len + n <= sizeof(s->b));
	memcpy(s->b + s->len, p, n);
	s->len += n;
}

static void put_le(struct sbuf *s, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(v >> (8 * i));

		put(s, &c, 1);
	}
}

static void header(struct sbuf *s, uint32_t version)
{
	put(s, "btrfs-stream", 13);
	put_le(s, version, 4);
}

static void cmd_begin(struct sbuf *s, uint16_t cmd)
{
	s->cmd = s->len;
	put_le(s, 0, 4);
	put_le(s, cmd, 2);
	put_le(s, 0, 4); /* crc: the receive's to check */
}

static void cmd_end(struct sbuf *s)
{
	uint32_t len = (uint32_t)(s->len - s->cmd - 10);

	for (size_t i = 0; i < 4; i++)
		s->b[s->cmd + i] = (uint8_t)(len >> (8 * i));
}

static void attr(struct sbuf *s, uint16_t type, const void *v, size_t n)
{
	put_le(s, type, 2);
	put_le(s, n, 2);
	put(s, v, n);
}

static void attr_str(struct sbuf *s, uint16_t type, const char *v)
{
	attr(s, type, v, strlen(v));
}

static void attr_u64(struct sbuf *s, uint16_t type, uint64_t v)
{
	put_le(s, type, 2);
	put_le(s, 8, 2);
	put_le(s, v, 8);
}

static const uint8_t uuid_a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t uuid_b[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

static void subvol(struct sbuf *s, const char *name, const uint8_t *uuid)
{
	cmd_begin(s, 1);
	attr_str(s, 15, name);
	attr(s, 1, uuid, 16);
	attr_u64(s, 2, 7);
	cmd_end(s);
}

/* A command with one path (and, if not NULL, a second path attribute). */
static void path_cmd(struct sbuf *s, uint16_t cmd, const char *path, uint16_t type2,
		     const char *path2)
{
	cmd_begin(s, cmd);
	attr_str(s, 15, path);
	if (path2)
		attr_str(s, type2, path2);
	cmd_end(s);
}

static void end(struct sbuf *s)
{
	cmd_begin(s, 21);
	cmd_end(s);
}

/* A good stream: mkdir, mkfile, write, rename, link, symlink to outside (its target is
 * the container's business), chown of the root, /dev/null, a fifo. */
static void good(struct sbuf *s)
{
	memset(s, 0, sizeof(*s));
	header(s, 1);
	subvol(s, "snap0", uuid_a);
	path_cmd(s, 4, "o257-7-0", 0, NULL);
	path_cmd(s, 9, "o257-7-0", 16, "etc");
	path_cmd(s, 3, "etc/hosts", 0, NULL);
	cmd_begin(s, 15);
	attr_str(s, 15, "etc/hosts");
	attr_u64(s, 18, 0);
	attr(s, 19, "127.0.0.1 localhost\n", 20);
	cmd_end(s);
	path_cmd(s, 10, "etc/hosts2", 17, "etc/hosts");
	path_cmd(s, 8, "etc/link", 17, "/../../../etc/shadow");
	cmd_begin(s, 19);
	attr_str(s, 15, "");
	attr_u64(s, 6, 0);
	attr_u64(s, 7, 0);
	cmd_end(s);
	cmd_begin(s, 5);
	attr_str(s, 15, "null");
	attr_u64(s, 5, S_IFCHR | 0666);
	attr_u64(s, 8, makedev(1, 3));
	cmd_end(s);
	path_cmd(s, 6, "fifo", 0, NULL);
	end(s);
}

/* The whole of `s` through the check, in pieces of `step` bytes (0: at once). */
static int run(const struct sbuf *s, size_t step, struct btrfs_stream_check *c,
	       struct berth_error *err)
{
	size_t pos = 0, avail = 0;

	while (pos + avail < s->len || avail) {
		size_t more = step ? step : s->len;
		ssize_t k;

		if (pos + avail + more > s->len)
			more = s->len - pos - avail;
		avail += more;
		k = btrfs_stream_check(c, s->b + pos, avail, err);
		if (k < 0)
			return (int)k;
		pos += (size_t)k;
		avail -= (size_t)k;
		if (!more)
			break;
	}
	return btrfs_stream_check_end(c, avail, err);
}

static void test_good(void **state)
{
	struct sbuf s;

	(void)state;
	good(&s);
	for (size_t step = 0; step < 80; step++) {
		struct btrfs_stream_check c = {0};
		struct berth_error err = {0};

		assert_int_equal(run(&s, step, &c, &err), 0);
		assert_string_equal(c.name, "snap0");
		assert_memory_equal(c.uuid, uuid_a, 16);
		assert_true(c.ended);
		assert_int_equal(c.commands, 11);
	}
}

/* Refused, the message holding `want`. */
static void refused(const struct sbuf *s, struct btrfs_stream_check *c, const char *want)
{
	struct berth_error err = {0};

	assert_int_equal(run(s, 0, c, &err), -EINVAL);
	if (!strstr(err.msg, want))
		fail_msg("\"%s\" not in \"%s\"", want, err.msg);
	berth_error_release(&err);
}

/* A stream whose one command after the subvolume is `path_cmd(cmd, path, t2, p2)`. */
static void one(struct sbuf *s, uint16_t cmd, const char *path, uint16_t t2, const char *p2)
{
	memset(s, 0, sizeof(*s));
	header(s, 1);
	subvol(s, "sv", uuid_a);
	path_cmd(s, cmd, path, t2, p2);
	end(s);
}

static void test_paths(void **state)
{
	static const char *const bad[] = {"..", "../x", "a/../../x", "a/..", "/etc/passwd"};
	struct btrfs_stream_check c;
	struct sbuf s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = (struct btrfs_stream_check){0};
		one(&s, 3, bad[i], 0, NULL);
		refused(&s, &c, "reaches outside its subvolume");
		c = (struct btrfs_stream_check){0};
		one(&s, 9, "a", 16, bad[i]); /* rename's destination */
		refused(&s, &c, "reaches outside its subvolume: command rename");
		c = (struct btrfs_stream_check){0};
		one(&s, 10, "a", 17, bad[i]); /* a hard link's target */
		refused(&s, &c, "command link");
		c = (struct btrfs_stream_check){0};
		one(&s, 16, "a", 22, bad[i]); /* a clone's source */
		refused(&s, &c, "command clone");
	}
	/* names that only look like ".." */
	c = (struct btrfs_stream_check){0};
	one(&s, 3, "..a/b..c/.../.x..", 0, NULL);
	struct berth_error err = {0};
	assert_int_equal(run(&s, 0, &c, &err), 0);
	/* a NUL inside a path */
	c = (struct btrfs_stream_check){0};
	memset(&s, 0, sizeof(s));
	header(&s, 1);
	subvol(&s, "sv", uuid_a);
	cmd_begin(&s, 3);
	attr(&s, 15, "a\0/../../x", 10);
	cmd_end(&s);
	end(&s);
	refused(&s, &c, "reaches outside");
	/* a command without a path */
	c = (struct btrfs_stream_check){0};
	memset(&s, 0, sizeof(s));
	header(&s, 1);
	subvol(&s, "sv", uuid_a);
	cmd_begin(&s, 11);
	cmd_end(&s);
	end(&s);
	refused(&s, &c, "command unlink");
}

static void test_subvolumes(void **state)
{
	json_t *known = json_pack("{s:b}", "old", 1);
	struct btrfs_stream_check c;
	struct sbuf s;

	(void)state;
	static const char *const names[] = {"", ".", "..", "a/b", "old"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		c = (struct btrfs_stream_check){.known = known};
		memset(&s, 0, sizeof(s));
		header(&s, 1);
		subvol(&s, names[i], uuid_a);
		end(&s);
		refused(&s, &c, i == 4 ? "received before" : "one plain component");
	}
	/* two subvolumes in one stream */
	c = (struct btrfs_stream_check){0};
	memset(&s, 0, sizeof(s));
	header(&s, 1);
	subvol(&s, "a", uuid_a);
	subvol(&s, "b", uuid_b);
	end(&s);
	refused(&s, &c, "more than one subvolume");
	/* a command before the subvolume */
	c = (struct btrfs_stream_check){0};
	memset(&s, 0, sizeof(s));
	header(&s, 1);
	path_cmd(&s, 4, "d", 0, NULL);
	refused(&s, &c, "does not start with a subvolume");
	/* snapshots: of the stream received before only */
	for (int k = 0; k < 3; k++) {
		struct berth_error err = {0};

		c = (struct btrfs_stream_check){.has_prev = k > 0};
		memcpy(c.prev_uuid, k == 2 ? uuid_b : uuid_a, 16);
		memset(&s, 0, sizeof(s));
		header(&s, 1);
		cmd_begin(&s, 2);
		attr_str(&s, 15, "s1");
		attr(&s, 1, uuid_b, 16);
		attr_u64(&s, 2, 8);
		attr(&s, 20, uuid_a, 16);
		attr_u64(&s, 21, 7);
		cmd_end(&s);
		end(&s);
		if (k == 1) {
			assert_int_equal(run(&s, 0, &c, &err), 0);
			assert_memory_equal(c.uuid, uuid_b, 16);
		} else {
			refused(&s, &c, "snapshot of a subvolume other than the one received");
		}
	}
	json_decref(known);
}

static void test_framing(void **state)
{
	struct btrfs_stream_check c;
	struct berth_error err = {0};
	struct sbuf s, g;

	(void)state;
	good(&g);
	/* cut short at every byte: refused at the end, never taken whole */
	for (size_t n = 0; n < g.len; n++) {
		s = g;
		s.len = n;
		c = (struct btrfs_stream_check){0};
		assert_int_equal(run(&s, 0, &c, &err), -EINVAL);
		berth_error_release(&err);
	}
	/* something after the end command */
	s = g;
	put(&s, "x", 1);
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "goes on after its end command");
	s = g;
	end(&s);
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "goes on after its end command");
	/* not a stream, another version */
	s = g;
	s.b[0] = 'B';
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "header");
	s = g;
	s.b[13] = 2;
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "version 2");
	/* a command longer than version 1 allows */
	memset(&s, 0, sizeof(s));
	header(&s, 1);
	put_le(&s, 70000, 4);
	put_le(&s, 3, 2);
	put_le(&s, 0, 4);
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "too long");
	/* unknown command, unknown attribute, a repeated one, one past its command */
	one(&s, 23, "a", 0, NULL);
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "version 1 does not define");
	one(&s, 3, "a", 25, "b");
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "unknown attribute");
	one(&s, 3, "a", 15, "b");
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "repeats an attribute");
	one(&s, 3, "abc", 0, NULL);
	s.b[17 + s.b[17] + 10 + 10 + 2] = 200; /* the path's length, past the command */
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "longer than its command");
}

static void test_devices(void **state)
{
	static const struct {
		mode_t type;
		unsigned maj, min;
		const char *want; /* NULL: taken */
	} cases[] = {
		{S_IFBLK, 8, 0, "block device"}, {S_IFCHR, 1, 1, "character device"},
		{S_IFCHR, 10, 200, "character"}, {S_IFCHR, 1, 3, NULL},
		{S_IFCHR, 5, 2, NULL},		 {S_IFCHR, 0, 0, NULL},
		{S_IFIFO, 0, 0, NULL},		 {S_IFSOCK, 0, 0, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct btrfs_stream_check c = {0};
		struct berth_error err = {0};
		struct sbuf s;

		memset(&s, 0, sizeof(s));
		header(&s, 1);
		subvol(&s, "sv", uuid_a);
		cmd_begin(&s, 5);
		attr_str(&s, 15, "dev");
		attr_u64(&s, 5, cases[i].type | 0600);
		attr_u64(&s, 8, makedev(cases[i].maj, cases[i].min));
		cmd_end(&s);
		end(&s);
		if (cases[i].want)
			refused(&s, &c, cases[i].want);
		else
			assert_int_equal(run(&s, 0, &c, &err), 0);
	}
}

/* A stream whose one command after the subvolume sets the extended attribute `name`. */
static void xattr_stream(struct sbuf *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	header(s, 1);
	subvol(s, "sv", uuid_a);
	cmd_begin(s, 13);
	attr_str(s, 15, "f");
	attr_str(s, 13, name);
	attr(s, 14, "v", 1);
	cmd_end(s);
	end(s);
}

static void test_xattrs(void **state)
{
	static const char *const ok[] = {"user.rt", "security.capability",
					 "system.posix_acl_access", "system.posix_acl_default"};
	static const char *const bad[] = {"trusted.overlay.opaque", "security.selinux",
					  "security.ima", "system.nfs4_acl", "user."};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct btrfs_stream_check c = {0};
		struct berth_error err = {0};
		struct sbuf s;

		xattr_stream(&s, ok[i]);
		assert_int_equal(run(&s, 0, &c, &err), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct btrfs_stream_check c = {0};
		struct sbuf s;

		xattr_stream(&s, bad[i]);
		refused(&s, &c, "extended attribute");
	}
}

/* A stream cloning from the subvolume of uuid `from` (after a snapshot of uuid_b when
 * `parent`). */
static void clone_stream(struct sbuf *s, const uint8_t *from, bool parent)
{
	memset(s, 0, sizeof(*s));
	header(s, 1);
	if (parent) {
		cmd_begin(s, 2);
		attr_str(s, 15, "sv");
		attr(s, 1, uuid_a, 16);
		attr_u64(s, 2, 7);
		attr(s, 20, uuid_b, 16);
		attr_u64(s, 21, 5);
		cmd_end(s);
	} else {
		subvol(s, "sv", uuid_a);
	}
	cmd_begin(s, 16);
	attr_str(s, 15, "f");
	attr_u64(s, 18, 0);
	attr_u64(s, 23, 4096);
	attr(s, 20, from, 16);
	attr_u64(s, 21, 5);
	attr_str(s, 22, "etc/shadow");
	attr_u64(s, 24, 0);
	cmd_end(s);
	end(s);
}

static void test_clones(void **state)
{
	static const uint8_t other[16] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
	struct btrfs_stream_check c;
	struct berth_error err = {0};
	struct sbuf s;

	(void)state;
	/* from itself; from the parent the snapshot names */
	clone_stream(&s, uuid_a, false);
	c = (struct btrfs_stream_check){0};
	assert_int_equal(run(&s, 0, &c, &err), 0);
	clone_stream(&s, uuid_b, true);
	c = (struct btrfs_stream_check){.has_prev = true};
	memcpy(c.prev_uuid, uuid_b, 16);
	assert_int_equal(run(&s, 0, &c, &err), 0);
	/* from any other subvolume of the file system: refused */
	clone_stream(&s, other, false);
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "clones from a subvolume other than");
	clone_stream(&s, uuid_b, false);
	c = (struct btrfs_stream_check){0};
	refused(&s, &c, "clones from a subvolume other than");
	clone_stream(&s, other, true);
	c = (struct btrfs_stream_check){.has_prev = true};
	memcpy(c.prev_uuid, uuid_b, 16);
	refused(&s, &c, "clones from a subvolume other than");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),	   cmocka_unit_test(test_paths),
		cmocka_unit_test(test_subvolumes), cmocka_unit_test(test_framing),
		cmocka_unit_test(test_devices),	   cmocka_unit_test(test_xattrs),
		cmocka_unit_test(test_clones),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
