/* daemon/instance/btrfs_stream.c: `btrfs send` streams checked command by command (see
 * btrfs_stream.h). */
#include "daemon/instance/btrfs_stream.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "daemon/instance/backup_check.h"
#include "lib/macros.h"

/* The commands and attributes of version 1 (the kernel's fs/btrfs/send.h numbers). */
enum {
	CMD_SUBVOL = 1,
	CMD_SNAPSHOT = 2,
	CMD_MKNOD = 5,
	CMD_RENAME = 9,
	CMD_LINK = 10,
	CMD_SET_XATTR = 13,
	CMD_CLONE = 16,
	CMD_END = 21,
	CMD_MAX_V1 = 22, /* update_extent */
};
enum {
	ATTR_UUID = 1,
	ATTR_CTRANSID = 2,
	ATTR_MODE = 5,
	ATTR_RDEV = 8,
	ATTR_XATTR_NAME = 13,
	ATTR_PATH = 15,
	ATTR_PATH_TO = 16,
	ATTR_PATH_LINK = 17,
	ATTR_CLONE_UUID = 20,
	ATTR_CLONE_PATH = 22,
	ATTR_MAX_V1 = 24, /* clone_len */
};

static const char *const cmd_names[CMD_MAX_V1 + 1] = {
	"unspec", "subvol",    "snapshot",     "mkfile", "mkdir",	  "mknod",
	"mkfifo", "mksock",    "symlink",      "rename", "link",	  "unlink",
	"rmdir",  "set_xattr", "remove_xattr", "write",	 "clone",	  "truncate",
	"chmod",  "chown",     "utimes",       "end",	 "update_extent",
};

/* One command's attributes: where each value is in the command (NULL: absent). */
struct attrs {
	const uint8_t *val[ATTR_MAX_V1 + 1];
	uint16_t len[ATTR_MAX_V1 + 1];
};

static int refuse(const char *what, unsigned cmd, struct berth_error *err)
{
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "The btrfs stream %s%s%s", what,
			       cmd ? ": command " : "", cmd ? cmd_names[cmd] : "");
}

static int attrs_parse(const uint8_t *p, size_t len, unsigned cmd, struct attrs *a,
		       struct berth_error *err)
{
	memset(a, 0, sizeof(*a));
	while (len > 0) {
		uint16_t type, alen;

		if (len < 4)
			return refuse("has an attribute cut short", cmd, err);
		memcpy(&type, p, 2);
		memcpy(&alen, p + 2, 2);
		type = le16toh(type);
		alen = le16toh(alen);
		if (type == 0 || type > ATTR_MAX_V1)
			return refuse("has an unknown attribute", cmd, err);
		if (a->val[type])
			return refuse("repeats an attribute", cmd, err);
		if ((size_t)alen > len - 4)
			return refuse("has an attribute longer than its command", cmd, err);
		a->val[type] = p + 4;
		a->len[type] = alen;
		p += 4 + alen;
		len -= 4 + (size_t)alen;
	}
	return 0;
}

/* A path of the subvolume: relative, no NUL, no ".." component ("" is its root). */
static bool path_ok(const uint8_t *v, size_t len)
{
	if (len >= 4096 || memchr(v, '\0', len) || (len && v[0] == '/'))
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if ((i == 0 || v[i - 1] == '/') && v[i] == '.' && v[i + 1] == '.' &&
		    (i + 2 == len || v[i + 2] == '/'))
			return false;
	return true;
}

/* The first command: one new subvolume, a snapshot only of the one received before. */
static int check_subvol(struct btrfs_stream_check *c, unsigned cmd, const struct attrs *a,
			struct berth_error *err)
{
	const uint8_t *name = a->val[ATTR_PATH];
	size_t nl = a->len[ATTR_PATH];

	if (c->commands != 1)
		return refuse("makes more than one subvolume", cmd, err);
	if (!name || nl == 0 || nl >= sizeof(c->name) || memchr(name, '/', nl) ||
	    memchr(name, '\0', nl) || (nl == 1 && name[0] == '.') ||
	    (nl == 2 && name[0] == '.' && name[1] == '.'))
		return refuse("names its subvolume other than by one plain component", cmd, err);
	memcpy(c->name, name, nl);
	c->name[nl] = '\0';
	if (c->known && json_object_get(c->known, c->name))
		return refuse("makes a subvolume received before", cmd, err);
	if (!a->val[ATTR_UUID] || a->len[ATTR_UUID] != BTRFS_STREAM_UUID_SIZE)
		return refuse("has no uuid", cmd, err);
	memcpy(c->uuid, a->val[ATTR_UUID], BTRFS_STREAM_UUID_SIZE);
	c->snapshot = cmd == CMD_SNAPSHOT;
	if (cmd == CMD_SNAPSHOT &&
	    (!c->has_prev || !a->val[ATTR_CLONE_UUID] ||
	     a->len[ATTR_CLONE_UUID] != BTRFS_STREAM_UUID_SIZE ||
	     memcmp(a->val[ATTR_CLONE_UUID], c->prev_uuid, BTRFS_STREAM_UUID_SIZE) != 0))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream is a snapshot of a subvolume other than the"
				       " one received before it");
	return 0;
}

/* mknod: no block device, only the harmless character devices. */
static int check_mknod(const struct attrs *a, struct berth_error *err)
{
	uint64_t mode = 0, rdev = 0;

	if (!a->val[ATTR_MODE] || a->len[ATTR_MODE] != 8 || !a->val[ATTR_RDEV] ||
	    a->len[ATTR_RDEV] != 8)
		return refuse("has a device node without a mode or a number", CMD_MKNOD, err);
	memcpy(&mode, a->val[ATTR_MODE], 8);
	memcpy(&rdev, a->val[ATTR_RDEV], 8);
	mode = le64toh(mode);
	rdev = le64toh(rdev);
	if (S_ISBLK(mode))
		return refuse("makes a block device", CMD_MKNOD, err);
	if (S_ISCHR(mode) && !backup_chardev_harmless(major(rdev), minor(rdev)))
		return refuse("makes a character device other than null, zero, full, random, "
			      "urandom, tty, console or ptmx",
			      CMD_MKNOD, err);
	return 0;
}

/* clone: only from the subvolume being received or the one received before it (the
 * receive looks a clone's source up by uuid anywhere on the file system). */
static int check_clone(const struct btrfs_stream_check *c, const struct attrs *a,
		       struct berth_error *err)
{
	const uint8_t *u = a->val[ATTR_CLONE_UUID];

	if (!u || a->len[ATTR_CLONE_UUID] != BTRFS_STREAM_UUID_SIZE)
		return refuse("clones from no named subvolume", CMD_CLONE, err);
	if (memcmp(u, c->uuid, BTRFS_STREAM_UUID_SIZE) != 0 &&
	    (!c->has_prev || memcmp(u, c->prev_uuid, BTRFS_STREAM_UUID_SIZE) != 0))
		return refuse("clones from a subvolume other than its own or its parent", CMD_CLONE,
			      err);
	return 0;
}

/* set_xattr: the names a backup tarball's members keep (user.*, file capabilities, ACLs);
 * trusted.* and the other security.* ones are the host's, not a container's. */
static int check_xattr(const struct attrs *a, struct berth_error *err)
{
	static const char *const exact[] = {"security.capability", "system.posix_acl_access",
					    "system.posix_acl_default"};
	const char *n = (const char *)a->val[ATTR_XATTR_NAME];
	size_t len = a->len[ATTR_XATTR_NAME];

	if (!n || len == 0 || memchr(n, '\0', len))
		return refuse("sets an extended attribute without a name", CMD_SET_XATTR, err);
	if (len > 5 && memcmp(n, "user.", 5) == 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
		if (len == strlen(exact[i]) && memcmp(n, exact[i], len) == 0)
			return 0;
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "The btrfs stream sets the extended attribute \"%.*s\" (only "
			       "user.*, security.capability and ACLs are received)",
			       (int)(len > 64 ? 64 : len), n);
}

static int check_command(struct btrfs_stream_check *c, unsigned cmd, const uint8_t *body,
			 size_t len, struct berth_error *err)
{
	struct attrs a;
	int r;

	if (cmd == 0 || cmd > CMD_MAX_V1)
		return refuse("has a command version 1 does not define", 0, err);
	r = attrs_parse(body, len, cmd, &a, err);
	if (r < 0)
		return r;
	c->commands++;
	if (cmd == CMD_SUBVOL || cmd == CMD_SNAPSHOT)
		return check_subvol(c, cmd, &a, err);
	if (!*c->name)
		return refuse("does not start with a subvolume", cmd, err);
	if (cmd == CMD_END) {
		c->ended = true;
		return 0;
	}
	if (!a.val[ATTR_PATH] || !path_ok(a.val[ATTR_PATH], a.len[ATTR_PATH]) ||
	    (a.val[ATTR_PATH_TO] && !path_ok(a.val[ATTR_PATH_TO], a.len[ATTR_PATH_TO])) ||
	    (cmd == CMD_LINK && a.val[ATTR_PATH_LINK] &&
	     !path_ok(a.val[ATTR_PATH_LINK], a.len[ATTR_PATH_LINK])) ||
	    (a.val[ATTR_CLONE_PATH] && !path_ok(a.val[ATTR_CLONE_PATH], a.len[ATTR_CLONE_PATH])))
		return refuse("reaches outside its subvolume", cmd, err);
	if (cmd == CMD_CLONE)
		return check_clone(c, &a, err);
	if (cmd == CMD_SET_XATTR)
		return check_xattr(&a, err);
	return cmd == CMD_MKNOD ? check_mknod(&a, err) : 0;
}

static int check_header(struct btrfs_stream_check *c, const uint8_t *buf, struct berth_error *err)
{
	static const char magic[] = "btrfs-stream";
	uint32_t version;

	if (memcmp(buf, magic, sizeof(magic)) != 0)
		return refuse("does not start with btrfs send's header", 0, err);
	memcpy(&version, buf + sizeof(magic), 4);
	if (le32toh(version) != 1)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream is of version %u (only 1 is read)",
				       le32toh(version));
	c->header = true;
	return 0;
}

ssize_t btrfs_stream_check(struct btrfs_stream_check *c, const uint8_t *buf, size_t len,
			   struct berth_error *err)
{
	size_t off = 0;
	int r;

	if (!c->header) {
		if (len < BTRFS_STREAM_HEADER_SIZE)
			return 0;
		r = check_header(c, buf, err);
		if (r < 0)
			return r;
		off = BTRFS_STREAM_HEADER_SIZE;
	}
	while (len - off >= BTRFS_STREAM_CMD_HEADER_SIZE) {
		uint32_t clen;
		uint16_t cmd;

		if (c->ended)
			return refuse("goes on after its end command", 0, err);
		memcpy(&clen, buf + off, 4);
		memcpy(&cmd, buf + off + 4, 2);
		clen = le32toh(clen);
		if ((uint64_t)clen + BTRFS_STREAM_CMD_HEADER_SIZE >= BTRFS_STREAM_CMD_MAX)
			return refuse("has a command too long for version 1", 0, err);
		if (len - off < BTRFS_STREAM_CMD_HEADER_SIZE + clen)
			break;
		r = check_command(c, le16toh(cmd), buf + off + BTRFS_STREAM_CMD_HEADER_SIZE, clen,
				  err);
		if (r < 0)
			return r;
		off += BTRFS_STREAM_CMD_HEADER_SIZE + clen;
	}
	if (c->ended && off < len)
		return refuse("goes on after its end command", 0, err);
	return (ssize_t)off;
}

int btrfs_stream_check_end(const struct btrfs_stream_check *c, size_t left, struct berth_error *err)
{
	if (!c->header || !*c->name)
		return refuse("made no subvolume", 0, err);
	if (!c->ended || left)
		return refuse("is cut short (no end command)", 0, err);
	return 0;
}
