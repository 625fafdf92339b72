/* daemon/instance/backup_check.c: checks of a backup tarball's index.yaml and members
 * (see backup_check.h). Nothing here touches the disk. */
#include "daemon/instance/backup_check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "images/unpack.h"
#include "lib/json.h"
#include "lib/utf8.h"
#include "lib/util.h"
#include "lib/yaml.h"

/* ---- index.yaml ---- */

void backup_index_free(struct backup_index *ix)
{
	if (!ix)
		return;
	free(ix->name);
	free(ix->backend);
	free(ix->pool);
	free(ix->type);
	json_decref(ix->snapshots);
	json_decref(ix->config);
	free(ix);
}

#define bad(err, ...) berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, __VA_ARGS__)

/* A string map: every value a string. */
static bool is_string_map(const json_t *v)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return false;
	json_object_foreach((json_t *)v, k, x)
		if (!json_is_string(x))
			return false;
	return true;
}

static bool is_device_map(const json_t *v)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return false;
	json_object_foreach((json_t *)v, k, x)
		if (!is_string_map(x))
			return false;
	return true;
}

/* config, devices, profiles of an instance or snapshot object: absent, null or the right
 * shape. */
static int check_object(const json_t *o, const char *what, struct berth_error *err)
{
	json_t *c = json_object_get(o, "config"), *d = json_object_get(o, "devices");
	json_t *p = json_object_get(o, "profiles"), *n;
	size_t i;

	if (!json_is_object(o))
		return bad(err, "Invalid backup config: %s is not a map", what);
	if (c && !json_is_null(c) && !is_string_map(c))
		return bad(err, "Invalid backup config: the config of %s is not a map of strings",
			   what);
	if (d && !json_is_null(d) && !is_device_map(d))
		return bad(err, "Invalid backup config: the devices of %s are not maps of strings",
			   what);
	if (p && !json_is_null(p) && !json_is_array(p))
		return bad(err, "Invalid backup config: the profiles of %s are not a list", what);
	json_array_foreach(p, i, n)
		if (!json_is_string(n) ||
		    berth_name_check_entity("profile name", json_string_value(n), NULL) < 0)
			return bad(err, "Invalid backup config: a profile name of %s is invalid",
				   what);
	return 0;
}

int backup_config_check(const json_t *config, struct berth_error *err)
{
	json_t *snaps = json_object_get(config, "snapshots"), *s;
	size_t i;
	int r;

	if (!json_is_object(config))
		return bad(err, "Invalid backup config: %s", "not a map");
	r = check_object(json_object_get(config, "container"), "the instance", err);
	if (r < 0)
		return r;
	if (snaps && !json_is_null(snaps) && !json_is_array(snaps))
		return bad(err, "Invalid backup config: %s", "snapshots is not a list");
	json_array_foreach(snaps, i, s) {
		r = check_object(s, "a snapshot", err);
		if (r < 0)
			return r;
		if (!json_is_string(json_object_get(s, "name")))
			return bad(err, "Invalid backup config: %s", "a snapshot has no name");
	}
	return 0;
}

const json_t *backup_config_snapshot(const json_t *config, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(config, "snapshots"), i, s) {
		const char *n = berth_json_string(s, "name");
		/* LXD's backup.yaml may name them "inst/snap" */
		const char *slash = n ? strrchr(n, '/') : NULL;

		if (n && streq(slash ? slash + 1 : n, name))
			return s;
	}
	return NULL;
}

/* A string field of the index: absent or null is `def`, anything but a string refused. */
static int index_string(const json_t *doc, const char *key, const char *def, char **ret,
			struct berth_error *err)
{
	json_t *v = json_object_get(doc, key);

	if (v && !json_is_null(v) && !json_is_string(v))
		return bad(err, "Invalid backup index: \"%s\" is not a string", key);
	*ret = strdup(json_is_string(v) ? json_string_value(v) : def);
	return *ret ? 0 : -ENOMEM;
}

static int index_snapshots(const json_t *doc, struct backup_index *ix, struct berth_error *err)
{
	json_t *v = json_object_get(doc, "snapshots"), *s;
	size_t i, k;
	int r;

	if (v && !json_is_null(v) && !json_is_array(v))
		return bad(err, "Invalid backup index: %s", "\"snapshots\" is not a list");
	ix->snapshots = json_array();
	if (!ix->snapshots)
		return -ENOMEM;
	json_array_foreach(v, i, s) {
		const char *n = json_string_value(s);

		if (!n)
			return bad(err, "Invalid backup index: %s",
				   "a snapshot name is not a string");
		r = berth_name_check_entity("snapshot name", n, err);
		if (r < 0)
			return berth_error_wrap(err, r, "Invalid backup index");
		for (k = 0; k < i; k++)
			if (streq(json_string_value(json_array_get(v, k)), n))
				return bad(err,
					   "Invalid backup index: snapshot \"%s\" listed twice", n);
		json_array_append(ix->snapshots, s);
	}
	return 0;
}

static int index_fill(const json_t *doc, struct backup_index *ix, struct berth_error *err)
{
	json_t *opt = json_object_get(doc, "optimized"), *cfg = json_object_get(doc, "config");
	int r = index_string(doc, "name", "", &ix->name, err);

	if (r >= 0)
		r = index_string(doc, "backend", "", &ix->backend, err);
	if (r >= 0)
		r = index_string(doc, "pool", "", &ix->pool, err);
	if (r >= 0)
		r = index_string(doc, "type", "container", &ix->type, err);
	if (r >= 0)
		r = index_snapshots(doc, ix, err);
	if (r < 0)
		return r;
	if (opt && !json_is_null(opt) && !json_is_boolean(opt))
		return bad(err, "Invalid backup index: %s", "\"optimized\" is not a boolean");
	ix->optimized = json_is_true(opt);
	if (cfg && !json_is_null(cfg)) {
		r = backup_config_check(cfg, err);
		if (r < 0)
			return r;
		ix->config = json_incref(cfg);
	}
	return 0;
}

static int index_check(const struct backup_index *ix, struct berth_error *err)
{
	int r;

	if (!*ix->name)
		return bad(err, "Invalid backup index: %s", "no instance name");
	r = berth_name_check_instance(ix->name, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Invalid backup index");
	if (streq(ix->type, "virtual-machine") && ix->optimized)
		return bad(err, "Optimized backups of virtual machines cannot be imported "
				"(plain ones can)");
	if (!streq(ix->type, "container") && !streq(ix->type, "virtual-machine"))
		return bad(err, "Invalid backup index: unknown instance type \"%s\"", ix->type);
	if (ix->optimized && !*ix->backend)
		return bad(err, "Invalid backup index: %s", "an optimized backup names no backend");
	return 0;
}

int backup_index_parse(const char *buf, size_t len, struct backup_index **ret,
		       struct berth_error *err)
{
	_cleanup_(backup_index_freep) struct backup_index *ix = calloc(1, sizeof(*ix));
	json_auto_t *doc = NULL;
	int r;

	if (!ix)
		return -ENOMEM;
	if (len > BACKUP_CONFIG_MAX)
		return bad(err, "Invalid backup index: %s", "larger than 1 MiB");
	if (memchr(buf, '\0', len))
		return bad(err, "Invalid backup index: %s", "NUL bytes");
	r = berth_yaml_parse(buf, len, &doc, err);
	if (r < 0)
		return berth_error_wrap(err, -EINVAL, "Invalid backup index");
	if (!json_is_object(doc))
		return bad(err, "Invalid backup index: %s", "not a map");
	r = index_fill(doc, ix, err);
	if (r >= 0)
		r = index_check(ix, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ix);
	return 0;
}

/* ---- members ---- */

void backup_member_release(struct backup_member *m)
{
	free(m->snap);
	free(m->rel);
	free(m->link_rel);
	*m = (struct backup_member){0};
}

/* A member's name without "./" in front or "/" behind, into a new string; NULL (with
 * *bad set) for one with an empty, "." or ".." component or an absolute one. */
static char *path_normalize(const char *p, bool *bad_name)
{
	size_t n;
	char *s;

	*bad_name = true;
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (p[0] == '/' || !*p)
		return NULL;
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	for (size_t i = 0; i < n;) {
		size_t e = i;

		while (e < n && p[e] != '/')
			e++;
		if (e == i || (e - i == 1 && p[i] == '.') ||
		    (e - i == 2 && p[i] == '.' && p[i + 1] == '.'))
			return NULL;
		i = e + 1;
	}
	*bad_name = false;
	s = strndup(p, n);
	return s;
}

static int member_refuse(const struct backup_entry *e, const char *why, struct berth_error *err)
{
	_cleanup_free_ char *q = berth_utf8_quote(e->path ? e->path : "");

	if (!q)
		return -ENOMEM;
	return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			       "Refusing backup tarball member \"%s\": %s", q, why);
}

/* The character devices a root file system legitimately holds in /dev (debootstrap makes
 * them; a container sees its own /dev tmpfs over them anyway), and overlayfs whiteouts. */
bool backup_chardev_harmless(unsigned maj, unsigned min)
{
	static const unsigned ok[][2] = {{0, 0}, {1, 3}, {1, 5}, {1, 7}, {1, 8},
					 {1, 9}, {5, 0}, {5, 1}, {5, 2}};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (ok[i][0] == maj && ok[i][1] == min)
			return true;
	return false;
}

/* The type of a member below rootfs/ (`rel` is below the tree, "rootfs/..."). */
static int rootfs_type_check(const struct backup_entry *e, const char *rel, struct berth_error *err)
{
	switch (e->type) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFIFO:
		return 0;
	case S_IFLNK:
		if (!e->symlink)
			return member_refuse(e, "a symlink without a target", err);
		if (image_symlink_escapes(rel + strlen("rootfs/"), e->symlink))
			return member_refuse(e, "a relative symlink that climbs out of rootfs/",
					     err);
		return 0;
	case S_IFCHR:
		if (backup_chardev_harmless(e->devmajor, e->devminor))
			return 0;
		return member_refuse(e,
				     "a character device other than null, zero, full, "
				     "random, urandom, tty, console or ptmx",
				     err);
	case S_IFBLK:
		return member_refuse(e, "a block device", err);
	default:
		return member_refuse(e, "a socket or a file of unknown type", err);
	}
}

/* A hard link of member `m` (in tree m->snap) to `target` (a member name): the same tree,
 * below rootfs/. */
static int hardlink_check(const struct backup_entry *e, const char *prefix, struct backup_member *m,
			  struct berth_error *err)
{
	bool badn;
	_cleanup_free_ char *t = path_normalize(e->hardlink, &badn);

	if (!t && badn)
		return member_refuse(e, "a hard link to an absolute path or through \"..\"", err);
	if (!t)
		return -ENOMEM;
	if (!berth_startswith(t, prefix) || !berth_startswith(t + strlen(prefix), "rootfs/"))
		return member_refuse(e, "a hard link outside its own rootfs/", err);
	m->link_rel = strdup(t + strlen(prefix));
	return m->link_rel ? 0 : -ENOMEM;
}

/* A member of the tree at `prefix` ("backup/container/" or "backup/snapshots/S/");
 * `rel` is its path below it. */
static int tree_member(const struct backup_entry *e, const char *prefix, const char *rel,
		       struct backup_member *m, struct berth_error *err)
{
	bool plain = e->type == S_IFREG && !e->hardlink;
	int r;

	m->kind = BACKUP_MEMBER_TREE;
	m->rel = strdup(rel);
	if (!m->rel)
		return -ENOMEM;
	if (!*rel || streq(rel, "rootfs") || streq(rel, "templates"))
		return e->type == S_IFDIR ? 0 : member_refuse(e, "not a directory", err);
	if (streq(rel, "backup.yaml") || streq(rel, "metadata.yaml")) {
		if (!plain)
			return member_refuse(e, "not a regular file", err);
		if (!m->snap && streq(rel, "backup.yaml"))
			m->kind = BACKUP_MEMBER_CONFIG;
		return 0;
	}
	if (berth_startswith(rel, "templates/"))
		return plain || e->type == S_IFDIR
			       ? 0
			       : member_refuse(e, "not a regular file or directory", err);
	if (!berth_startswith(rel, "rootfs/"))
		return member_refuse(e, "not part of an instance backup's layout", err);
	m->is_rootfs = true;
	if (e->hardlink)
		return hardlink_check(e, prefix, m, err);
	r = rootfs_type_check(e, rel, err);
	return r;
}

/* A file of a VM's config directory (`rel` below it): what berth keeps of it (backup.yaml,
 * metadata.yaml, templates/, the kernel and initrd of a direct boot), else LXD's own
 * (agent certificates, qemu.nvram, ...), skipped; only regular files and directories. */
static int vm_tree_member(const struct backup_entry *e, const char *rel, struct backup_member *m,
			  struct berth_error *err)
{
	static const char *const kept[] = {"backup.yaml", "metadata.yaml", "boot.kernel",
					   "boot.initrd"};
	bool plain = e->type == S_IFREG && !e->hardlink;

	m->vm = true;
	m->kind = BACKUP_MEMBER_TREE;
	m->rel = strdup(rel);
	if (!m->rel)
		return -ENOMEM;
	if (!*rel || streq(rel, "templates"))
		return e->type == S_IFDIR ? 0 : member_refuse(e, "not a directory", err);
	if (!plain && e->type != S_IFDIR)
		return member_refuse(e, "not a regular file or directory", err);
	if (streq(rel, "root.img"))
		return member_refuse(e, "a disk inside the config directory", err);
	if (berth_startswith(rel, "templates/"))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
		if (streq(rel, kept[i])) {
			if (!plain)
				return member_refuse(e, "not a regular file", err);
			if (!m->snap && streq(rel, "backup.yaml"))
				m->kind = BACKUP_MEMBER_CONFIG;
			return 0;
		}
	m->kind = BACKUP_MEMBER_SKIP;
	return 0;
}

/* A VM's raw disk, of snapshot `snap` (owned, NULL: the instance's). */
static int vm_disk_member(const struct backup_entry *e, char *snap, struct backup_member *m,
			  struct berth_error *err)
{
	m->vm = true;
	m->is_disk = true;
	m->kind = BACKUP_MEMBER_TREE;
	m->snap = snap;
	m->rel = strdup("root.img");
	if (!m->rel)
		return -ENOMEM;
	if (e->type != S_IFREG || e->hardlink)
		return member_refuse(e, "a disk that is not a regular file", err);
	if (snap && berth_name_check_entity("snapshot name", snap, NULL) < 0)
		return member_refuse(e, "not a valid snapshot name", err);
	return 0;
}

/* "backup/virtual-machine-snapshots/..." once that is taken off. */
static int vm_snapshots_member(const struct backup_entry *e, const char *rest,
			       struct backup_member *m, struct berth_error *err)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	char *snap = strndup(rest, n);

	if (!snap)
		return -ENOMEM;
	if (!slash && n > 4 && berth_endswith(snap, ".img")) {
		snap[n - 4] = '\0';
		return vm_disk_member(e, snap, m, err);
	}
	m->snap = snap;
	m->vm = true;
	if (berth_name_check_entity("snapshot name", m->snap, NULL) < 0)
		return member_refuse(e, "not a valid snapshot name", err);
	return vm_tree_member(e, slash ? slash + 1 : "", m, err);
}

/* "backup/snapshots/..." once "backup/snapshots/" is taken off. */
static int snapshots_member(const struct backup_entry *e, const char *rest, struct backup_member *m,
			    struct berth_error *err)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	_cleanup_free_ char *prefix = NULL;

	m->snap = strndup(rest, n);
	if (!m->snap)
		return -ENOMEM;
	if (!slash && berth_endswith(m->snap, ".bin") && n > 4) {
		if (e->type != S_IFREG || e->hardlink)
			return member_refuse(e, "not a regular file", err);
		m->snap[n - 4] = '\0';
		m->kind = BACKUP_MEMBER_BIN;
	}
	if (berth_name_check_entity("snapshot name", m->snap, NULL) < 0)
		return member_refuse(e, "not a valid snapshot name", err);
	if (m->kind == BACKUP_MEMBER_BIN)
		return 0;
	prefix = berth_strdup_printf("backup/snapshots/%s/", m->snap);
	if (!prefix)
		return -ENOMEM;
	return tree_member(e, prefix, slash ? slash + 1 : "", m, err);
}

int backup_member_check(const struct backup_entry *e, struct backup_member *ret,
			struct berth_error *err)
{
	struct backup_member m = {0};
	bool badn;
	_cleanup_free_ char *p = e->path ? path_normalize(e->path, &badn) : NULL;
	int r;

	if (!p)
		return !e->path || badn ? member_refuse(e,
							"an absolute name, or one with "
							"\"..\", \".\" or empty components",
							err)
					: -ENOMEM;
	if (streq(p, "backup") || streq(p, "backup/snapshots")) {
		r = e->type == S_IFDIR ? 0 : member_refuse(e, "not a directory", err);
	} else if (streq(p, "backup/index.yaml")) {
		m.kind = BACKUP_MEMBER_INDEX;
		r = e->type == S_IFREG && !e->hardlink
			    ? 0
			    : member_refuse(e, "not a regular file", err);
	} else if (streq(p, "backup/optimized_header.yaml")) {
		/* btrfs' list of subvolumes: only root ones are restored, which need none */
		r = e->type == S_IFREG && !e->hardlink
			    ? 0
			    : member_refuse(e, "not a regular file", err);
	} else if (streq(p, "backup/container.bin")) {
		m.kind = BACKUP_MEMBER_BIN;
		r = e->type == S_IFREG && !e->hardlink
			    ? 0
			    : member_refuse(e, "not a regular file", err);
	} else if (streq(p, "backup/container")) {
		r = tree_member(e, "backup/container/", "", &m, err);
	} else if (berth_startswith(p, "backup/container/")) {
		r = tree_member(e, "backup/container/", p + strlen("backup/container/"), &m, err);
	} else if (berth_startswith(p, "backup/snapshots/")) {
		r = snapshots_member(e, p + strlen("backup/snapshots/"), &m, err);
	} else if (streq(p, "backup/virtual-machine-snapshots")) {
		m.vm = true;
		r = e->type == S_IFDIR ? 0 : member_refuse(e, "not a directory", err);
	} else if (streq(p, "backup/virtual-machine.img")) {
		r = vm_disk_member(e, NULL, &m, err);
	} else if (streq(p, "backup/virtual-machine")) {
		r = vm_tree_member(e, "", &m, err);
	} else if (berth_startswith(p, "backup/virtual-machine/")) {
		r = vm_tree_member(e, p + strlen("backup/virtual-machine/"), &m, err);
	} else if (berth_startswith(p, "backup/virtual-machine-snapshots/")) {
		r = vm_snapshots_member(e, p + strlen("backup/virtual-machine-snapshots/"), &m,
					err);
	} else {
		r = member_refuse(e, "not part of an instance backup's layout", err);
	}
	if (r < 0) {
		backup_member_release(&m);
		return r;
	}
	*ret = m;
	return 0;
}
