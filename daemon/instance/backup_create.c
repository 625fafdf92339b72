/* daemon/instance/backup_create.c: the tarball of an instance backup, in LXD 5.0's layout:
 *
 *	backup/index.yaml		name, backend, pool, snapshots, optimized,
 *					optimized_header, type, config {container,
 *					snapshots, pool, volume, volume_snapshots}
 *	backup/snapshots/SNAP/		each snapshot's directory, oldest first (not with
 *					instance_only)
 *	backup/container/		the instance's directory: backup.yaml,
 *					metadata.yaml, rootfs/, templates/
 * or, of a virtual machine (type virtual-machine; plain only):
 *	backup/virtual-machine-snapshots/SNAP/	each snapshot's directory without its disk,
 *	backup/virtual-machine-snapshots/SNAP.img	then its raw disk
 *	backup/virtual-machine/		the instance's directory: backup.yaml,
 *					metadata.yaml, templates/ (boot.kernel, boot.initrd)
 *	backup/virtual-machine.img	its raw root disk (a sparse member)
 * or, optimized (btrfs pools only):
 *	backup/index.yaml, backup/optimized_header.yaml (the subvolumes),
 *	backup/snapshots/SNAP.bin	`btrfs send` of each snapshot, each one sent
 *					against the one before
 *	backup/container.bin		the instance, sent against the last snapshot
 *
 * One tar (pack.h) writes it all: members are named from the pool's mount path and
 * renamed by --transform, ids are numbers, xattrs, ACLs and sparse files kept. Owners are
 * the container's view, as LXD writes them (it unshifts): an idmapped volume holds them on
 * disk, a shifted one (berth-shift) is mapped back; backup.yaml then says
 * volatile.last_state.idmap "[]" (nothing shifted), so an importer (LXD too) shifts as it
 * needs. A btrfs send stream holds what is on disk, and backup.yaml says so.
 *
 * A running instance is packed as LXD packs it: on btrfs from a read-only snapshot taken
 * for the backup (consistent), on dir from the live directory (a running VM's disk as
 * QEMU is writing it, which LXD 5.0 does too). backup.yaml is written into
 * the instance's directory first, as LXD keeps it there. The temporary snapshot and the
 * spool directory go before returning, whatever happens. */
#define LOG_CATEGORY "backup-create"
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/instance/backup.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/pack.h"
#include "daemon/instance/volume.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/util.h"
#include "lib/yaml.h"

/* An argv of owned strings. */
struct args {
	char **v;
	size_t n, cap;
};

static void args_release(struct args *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

static int args_add(struct args *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n] = strdup(s);
	if (!a->v[a->n])
		return -ENOMEM;
	a->v[++a->n] = NULL;
	return 0;
}

_printf_(2, 3) static int args_addf(struct args *a, const char *fmt, ...)
{
	_cleanup_free_ char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		s = NULL;
		return -ENOMEM;
	}
	return args_add(a, s);
}

struct ctx {
	struct backup_job *j;	  /* borrowed */
	struct instance_volume v; /* the root volume */
	json_t *inst;		  /* expanded instance */
	json_t *snaps;		  /* snapshot rows, oldest first ([] with instance_only) */
	json_t *config;		  /* index.yaml's "config" (backup.yaml's content) */
	char *voldir;		  /* the instance's directory */
	char *spool;		  /* private directory in the spool */
	char *tmp_snap;		  /* name of the temporary snapshot once taken */
	struct pack_shift shift;
	char *maps[2];
	bool btrfs;
	bool vm; /* a virtual machine: its layout */
};

#define TMP_SNAP_PREFIX ".berth-backup-"
#define SPOOL_PREFIX "backup-"

static void remove_tree(const char *path)
{
	const char *const argv[] = {"rm", "-rf", "--one-file-system", path, NULL};
	struct berth_spawn s = {.argv = argv, .timeout_ms = 600000};

	if (berth_spawn_run(&s, NULL) < 0)
		log_warn("Removing \"%s\" failed, ignoring", path);
	berth_spawn_release(&s);
}

static void tmp_snap_delete(struct instance_volume *v, const char *snap)
{
	struct berth_error err = {0};

	if (v->pool->driver->volume_snapshot_delete(v->pool, &v->vol, snap, &err) < 0)
		log_warn("Removing backup snapshot \"%s\": %s, ignoring", snap,
			 berth_error_msg(&err, -EIO));
	berth_error_release(&err);
}

static void ctx_release(struct ctx *c)
{
	if (c->tmp_snap)
		tmp_snap_delete(&c->v, c->tmp_snap);
	if (c->spool)
		remove_tree(c->spool);
	free(c->tmp_snap);
	free(c->spool);
	free(c->voldir);
	free(c->maps[0]);
	free(c->maps[1]);
	json_decref(c->inst);
	json_decref(c->snaps);
	json_decref(c->config);
	instance_volume_release(&c->v);
}

/* ---- what the backup says of itself ---- */

/* A snapshot row rendered as LXD's InstanceSnapshot, its volatile.last_state.idmap
 * `idmap` (what its files in the backup are, as the instance's; NULL: a VM's, none). */
static json_t *snapshot_object(const json_t *row, const json_t *inst, const char *idmap)
{
	json_t *s = json_deep_copy(row);
	json_t *config = json_object_get(s, "config");

	if (!s)
		return NULL;
	if (json_is_object(config) && idmap)
		json_object_set_new(config, "volatile.last_state.idmap", json_string(idmap));
	json_object_del(s, "id");
	json_object_set(s, "architecture", json_object_get(inst, "architecture"));
	json_object_set(s, "profiles", json_object_get(inst, "profiles"));
	json_object_set(s, "ephemeral", json_object_get(inst, "ephemeral"));
	json_object_set(s, "expanded_config", json_object_get(s, "config"));
	json_object_set(s, "expanded_devices", json_object_get(s, "devices"));
	if (!json_object_get(s, "last_used_at"))
		json_object_set_new(s, "last_used_at", json_string("1970-01-01T00:00:00Z"));
	json_object_set_new(s, "size", json_integer(-1));
	return s;
}

/* volatile.last_state.idmap as LXD writes it (an idmap set in JSON): "[]" when the ids
 * in the backup are the container's, else the shift of the disk. */
static int idmap_value(const struct ctx *c, char **ret)
{
	json_auto_t *set = NULL;

	if (!c->j->optimized || !c->shift.on) {
		*ret = strdup("[]");
		return *ret ? 0 : -ENOMEM;
	}
	set = json_pack("[{s:b, s:b, s:I, s:i, s:I}, {s:b, s:b, s:I, s:i, s:I}]", "Isuid", 1,
			"Isgid", 0, "Hostid", (json_int_t)c->shift.base[0], "Nsid", 0, "Maprange",
			(json_int_t)c->shift.count, "Isuid", 0, "Isgid", 1, "Hostid",
			(json_int_t)c->shift.base[1], "Nsid", 0, "Maprange",
			(json_int_t)c->shift.count);
	*ret = set ? json_dumps(set, JSON_COMPACT) : NULL;
	return *ret ? 0 : -ENOMEM;
}

static int container_object(struct ctx *c, const char *idmap, json_t **ret)
{
	json_t *o = json_deep_copy(c->inst);

	if (!o)
		return -ENOMEM;
	json_object_del(o, "id");
	json_object_del(o, "state");
	json_object_del(o, "snapshots");
	json_object_del(o, "backups");
	json_object_set_new(o, "project", json_string(c->j->project));
	if (!idmap) {
		*ret = o;
		return 0;
	}
	json_object_set_new(json_object_get(o, "config"), "volatile.last_state.idmap",
			    json_string(idmap));
	json_object_set_new(json_object_get(o, "expanded_config"), "volatile.last_state.idmap",
			    json_string(idmap));
	*ret = o;
	return 0;
}

/* The profiles the instance uses, in its order (LXD's later backups carry them; 5.0's
 * readers skip the key). */
static int profiles_of(struct ctx *c, json_t **ret, struct berth_error *err)
{
	json_auto_t *all = NULL;
	const json_t *name;
	json_t *out;
	size_t i;
	int r = instance_expand_profiles(c->j->d->db, c->j->project, &all, err);

	if (r < 0)
		return r;
	out = json_array();
	if (!out)
		return -ENOMEM;
	json_array_foreach(json_object_get(c->inst, "profiles"), i, name) {
		json_t *p = json_object_get(all, json_string_value(name) ?: "");
		if (p)
			json_array_append(out, p);
	}
	*ret = out;
	return 0;
}

static const char *vol_type(const struct ctx *c)
{
	return c->vm ? "virtual-machine" : "container";
}

/* index.yaml's config section: {container, snapshots, pool, profiles, volume,
 * volume_snapshots}. */
static int config_build(struct ctx *c, struct berth_error *err)
{
	struct db *db = c->j->d->db;
	json_auto_t *pool = NULL, *vol = NULL, *vsnaps = NULL, *snaps = json_array();
	json_auto_t *profiles = NULL;
	_cleanup_free_ char *idmap = NULL;
	json_t *container = NULL, *s;
	size_t i;
	int r = db_pool_get(db, c->v.pool->name, &pool, err);

	if (r >= 0)
		r = db_volume_get(db, c->v.pool->name, c->j->project, vol_type(c), c->j->instance,
				  &vol, err);
	if (r >= 0 && !c->j->instance_only)
		r = db_volume_snapshot_list(db, c->v.pool->name, c->j->project, vol_type(c),
					    c->j->instance, &vsnaps, err);
	if (r >= 0)
		r = profiles_of(c, &profiles, err);
	if (r >= 0 && !c->vm)
		r = idmap_value(c, &idmap);
	if (r >= 0)
		r = container_object(c, idmap, &container);
	if (r < 0)
		return r;
	json_array_foreach(c->snaps, i, s)
		json_array_append_new(snaps, snapshot_object(s, c->inst, idmap));
	c->config = json_pack("{s:o, s:O, s:O, s:O, s:O}", "container", container, "snapshots",
			      snaps, "pool", pool, "profiles", profiles, "volume", vol);
	if (c->config && vsnaps && json_array_size(vsnaps) > 0)
		json_object_set(c->config, "volume_snapshots", vsnaps);
	if (c->config && json_array_size(snaps) == 0)
		json_object_del(c->config, "snapshots");
	return c->config ? 0 : -ENOMEM;
}

static int index_write(struct ctx *c, const char *path, struct berth_error *err)
{
	json_auto_t *index = json_pack("{s:s, s:s, s:s}", "name", c->j->instance, "backend",
				       c->v.pool->driver->name, "pool", c->v.pool->name);
	json_t *names = json_array(), *s;
	_cleanup_free_ char *yaml = NULL;
	size_t i;
	int r;

	if (!index || !names) {
		json_decref(names);
		return -ENOMEM;
	}
	json_array_foreach(c->snaps, i, s)
		json_array_append_new(names, json_string(berth_json_string(s, "name")));
	if (json_array_size(names) > 0)
		json_object_set_new(index, "snapshots", names);
	else
		json_decref(names);
	json_object_set_new(index, "optimized", json_boolean(c->j->optimized));
	json_object_set_new(index, "optimized_header", json_boolean(c->j->optimized));
	json_object_set_new(index, "type", json_string(vol_type(c)));
	json_object_set(index, "config", c->config);
	r = berth_yaml_render(index, &yaml, err);
	if (r < 0)
		return r;
	r = berth_write_file_atomic(path, yaml, strlen(yaml), 0644);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing %s: %s", path,
				       strerror(-r));
	return 0;
}

/* backup.yaml in the instance's directory, as LXD keeps it there. */
static int backup_yaml_write(struct ctx *c, struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/backup.yaml", c->voldir);
	_cleanup_free_ char *yaml = NULL;
	int r;

	if (!path)
		return -ENOMEM;
	r = berth_yaml_render(c->config, &yaml, err);
	if (r < 0)
		return r;
	r = berth_write_file_atomic(path, yaml, strlen(yaml), 0600);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing %s: %s", path,
				       strerror(-r));
	return 0;
}

/* ---- loading ---- */

static int load(struct ctx *c, struct berth_error *err)
{
	struct backup_job *j = c->j;
	int r = instance_expand_load(j->d->db, j->project, j->instance, &c->inst, err);

	if (r < 0)
		return r;
	c->vm = streq(berth_json_string(c->inst, "type") ?: "", "virtual-machine");
	if (j->instance_only)
		c->snaps = json_array();
	else
		r = db_snapshot_list(j->d->db, j->project, j->instance, &c->snaps, err);
	if (r >= 0)
		r = instance_volume_open(j->d, j->project, j->instance, &c->v, err);
	if (r < 0)
		return r;
	if (!c->snaps || !c->v.pool)
		return c->snaps ? berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
						  "Instance \"%s\" has no root volume", j->instance)
				: -ENOMEM;
	c->btrfs = streq(c->v.pool->driver->name, "btrfs");
	/* LXD makes an ordinary backup when the pool cannot make an optimized one. */
	if (!c->btrfs)
		j->optimized = false;
	if (c->vm && j->optimized)
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Optimized backups of virtual machines are not supported "
				       "(plain ones are)");
	r = storage_volume_path(c->v.pool, &c->v.vol, NULL, &c->voldir);
	if (r < 0)
		return r;
	return pack_shift_read(c->voldir, &c->shift, err);
}

static int spool_make(struct ctx *c, struct berth_error *err)
{
	_cleanup_free_ char *sub = NULL;

	c->spool = berth_strdup_printf("%s/" SPOOL_PREFIX "XXXXXX", c->j->d->spool_dir);
	if (!c->spool)
		return -ENOMEM;
	if (!mkdtemp(c->spool)) {
		int r = -errno;
		free(c->spool);
		c->spool = NULL;
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "mkdtemp in %s: %s",
				       c->j->d->spool_dir, strerror(-r));
	}
	sub = berth_strdup_printf("%s/backup/snapshots", c->spool);
	if (!sub)
		return -ENOMEM;
	if (berth_mkdir_p(sub, 0700) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Creating %s: %m", sub);
	return 0;
}

/* A read-only snapshot of the instance for the backup (btrfs: instant). */
static int tmp_snapshot(struct ctx *c, char **ret_path, struct berth_error *err)
{
	char uuid[BERTH_UUID_STR_LEN];
	_cleanup_free_ char *name = NULL;
	int r = berth_uuid_new(uuid);

	if (r < 0)
		return r;
	name = berth_strdup_printf(TMP_SNAP_PREFIX "%.8s", uuid);
	if (!name)
		return -ENOMEM;
	r = c->v.pool->driver->volume_snapshot(c->v.pool, &c->v.vol, name, err);
	if (r < 0)
		return r;
	c->tmp_snap = TAKE_PTR(name);
	return storage_volume_path(c->v.pool, &c->v.vol, c->tmp_snap, ret_path);
}

/* `path` relative to the pool's mount path. */
static const char *pool_rel(const struct ctx *c, const char *path)
{
	size_t n = strlen(c->v.pool->path);

	if (strncmp(path, c->v.pool->path, n) != 0 || path[n] != '/')
		return NULL;
	return path + n + 1;
}

/* ---- the tar ---- */

static const struct pack_labels labels = {
	.progress_key = "create_backup_progress",
	.progress_text = "Backup",
	.cancelled = "Backup cancelled",
	.failed = "Creating the backup failed",
	.changed_ok = true,
};

/* tar's options common to both layouts, with the compression and the id maps. */
static int tar_head(struct ctx *c, struct args *a)
{
	static const char *const head[] = {"tar",
					   "--create",
					   "--file=-",
					   "--numeric-owner",
					   "--sparse",
					   "--xattrs",
					   "--xattrs-include=*",
					   "--acls",
					   "--format=posix",
					   "--warning=no-file-changed"};
	const char *z = pack_compress_flag(c->j->compression);
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(head) && r >= 0; i++)
		r = args_add(a, head[i]);
	if (r >= 0 && z)
		r = args_add(a, z);
	if (r >= 0 && c->maps[0])
		r = args_addf(a, "--owner-map=%s", c->maps[0]);
	if (r >= 0 && c->maps[0])
		r = args_addf(a, "--group-map=%s", c->maps[1]);
	return r;
}

/* `s` with the characters in `special` escaped by a backslash; -EINVAL for a '|'. */
static int escape(const char *s, const char *special, char **ret)
{
	char *p = malloc(strlen(s) * 2 + 1);

	if (!p)
		return -ENOMEM;
	*ret = p;
	for (; *s; s++) {
		if (*s == '|')
			return -EINVAL;
		if (strchr(special, *s))
			*p++ = '\\';
		*p++ = *s;
	}
	*p = '\0';
	return 0;
}

/* A transform renaming the member `rel` (a path from the pool's mount path) followed by
 * `tail` (a regular expression) to `to`. Symbolic links' targets are left alone (flag
 * S); hard links' follow. */
static int add_rule(struct args *a, const char *rel, const char *tail, const char *to)
{
	_cleanup_free_ char *re = NULL, *repl = NULL;
	int r = escape(rel, ".[]*^$\\", &re);

	if (r >= 0)
		r = escape(to, "&\\", &repl);
	return r < 0 ? r : args_addf(a, "--transform=s|^%s%s|%s|S", re, tail, repl);
}

/* A transform renaming members under `rel` to `prefix`. */
static int add_transform(struct args *a, const char *rel, const char *prefix)
{
	return add_rule(a, rel, "", prefix);
}

/* A VM's disk: `rel`/root.img becomes `to`. */
static int add_disk_transform(struct args *a, const char *rel, const char *to)
{
	return add_rule(a, rel, "/root\\.img$", to);
}

/* The members of a volume directory `rel` as LXD packs one: the directory, then
 * rootfs/, backup.yaml, metadata.yaml and templates/ where they exist (nothing of
 * berth's own, such as berth-shift); a VM's: its config files, then root.img. */
static int add_volume(const struct ctx *c, struct args *a, const char *rel)
{
	static const char *const ct[] = {"backup.yaml", "metadata.yaml", "templates", "rootfs",
					 NULL};
	static const char *const vm[] = {"backup.yaml", "metadata.yaml", "templates", "boot.kernel",
					 "boot.initrd", "root.img",	 NULL};
	const char *must = c->vm ? "root.img" : "rootfs";
	int r = args_add(a, "--no-recursion");

	if (r >= 0)
		r = args_add(a, rel);
	if (r >= 0)
		r = args_add(a, "--recursion");
	for (const char *const *m = c->vm ? vm : ct; *m && r >= 0; m++) {
		_cleanup_free_ char *path = berth_strdup_printf("%s/%s/%s", c->v.pool->path, rel,
								*m);
		struct stat st;

		if (!path)
			return -ENOMEM;
		/* A volume without its rootfs/ or root.img is broken: tar says so. */
		if (lstat(path, &st) == 0 || streq(*m, must))
			r = args_addf(a, "%s/%s", rel, *m);
	}
	return r;
}

/* The transforms of a VM's layout, before the directories' (tar applies them in turn):
 * each snapshot's disk, then the instance's. */
static int vm_transforms(struct ctx *c, struct args *a, const char *main_rel, const char *snaps_rel)
{
	const json_t *s;
	size_t i;
	int r = add_disk_transform(a, main_rel, "backup/virtual-machine.img");

	json_array_foreach(c->snaps, i, s) {
		const char *name = berth_json_string(s, "name");
		_cleanup_free_ char *rel = berth_strdup_printf("%s/%s", snaps_rel, name);
		_cleanup_free_ char *to =
			berth_strdup_printf("backup/virtual-machine-snapshots/%s.img", name);

		if (r >= 0)
			r = rel && to ? add_disk_transform(a, rel, to) : -ENOMEM;
	}
	if (r >= 0)
		r = add_transform(a, main_rel, "backup/virtual-machine");
	return r;
}

/* The ordinary layout: index.yaml, the snapshots' directories, the instance's. */
static int tar_plain(struct ctx *c, struct args *a, const char *main_path, struct berth_error *err)
{
	_cleanup_free_ char *snapdir = NULL, *snaps_prefix = NULL;
	const char *main_rel = pool_rel(c, main_path), *snaps_rel;
	const json_t *s;
	size_t i;
	int r = storage_snapshots_dir(c->v.pool, &c->v.vol, &snapdir);

	if (r < 0)
		return r;
	snaps_rel = pool_rel(c, snapdir);
	if (!main_rel || !snaps_rel)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Volume \"%s\" is not below its pool's path", main_path);
	snaps_prefix = berth_strdup_printf("%s/", snaps_rel);
	r = snaps_prefix ? tar_head(c, a) : -ENOMEM;
	/* The main volume's rule first: on btrfs it is a snapshot too. */
	if (r >= 0 && c->vm)
		r = vm_transforms(c, a, main_rel, snaps_rel);
	else if (r >= 0)
		r = add_transform(a, main_rel, "backup/container");
	if (r >= 0)
		r = add_transform(a, snaps_prefix,
				  c->vm ? "backup/virtual-machine-snapshots/"
					: "backup/snapshots/");
	if (r >= 0)
		r = args_addf(a, "--directory=%s", c->spool);
	if (r >= 0)
		r = args_add(a, "backup/index.yaml");
	if (r >= 0)
		r = args_addf(a, "--directory=%s", c->v.pool->path);
	json_array_foreach(c->snaps, i, s) {
		_cleanup_free_ char *rel = NULL;
		if (r < 0)
			break;
		rel = berth_strdup_printf("%s/%s", snaps_rel, berth_json_string(s, "name"));
		r = rel ? add_volume(c, a, rel) : -ENOMEM;
	}
	if (r >= 0)
		r = add_volume(c, a, main_rel);
	return r == -EINVAL ? berth_error_set(err, r, BERTH_ERR_BAD_REQUEST,
					      "Cannot back up a volume whose path has a '|'")
			    : r;
}

/* ---- optimized (btrfs send) ---- */

static int send_to(struct ctx *c, const char *path, const char *parent, const char *file,
		   const atomic_bool *cancel, struct berth_error *err)
{
	_cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	const char *argv[] = {"btrfs", "send", "-q", path, NULL, NULL, NULL};
	struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_FD, BERTH_SPAWN_DEFAULT},
		.fds = {-1, -1, -1},
		.cancel = cancel,
	};
	int r;

	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Creating %s: %m", file);
	s.fds[1] = fd;
	if (parent) {
		argv[3] = "-p";
		argv[4] = parent;
		argv[5] = path;
	}
	r = berth_spawn_run(&s, err);
	berth_spawn_release(&s);
	return r;
}

static int header_write(struct ctx *c, const char *path, struct berth_error *err)
{
	json_auto_t *h = json_pack("{s:[]}", "subvolumes");
	json_t *subs = json_object_get(h, "subvolumes"), *s;
	_cleanup_free_ char *yaml = NULL;
	size_t i;
	int r;

	if (!h)
		return -ENOMEM;
	json_array_foreach(c->snaps, i, s)
		json_array_append_new(subs, json_pack("{s:s, s:s, s:b}", "path", "/", "snapshot",
						      berth_json_string(s, "name"), "readonly", 1));
	json_array_append_new(subs, json_pack("{s:s, s:s, s:b}", "path", "/", "snapshot", "",
					      "readonly", 0));
	r = berth_yaml_render(h, &yaml, err);
	if (r >= 0)
		r = berth_write_file_atomic(path, yaml, strlen(yaml), 0644);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing %s: %s", path,
				       err && err->msg ? err->msg : strerror(-r));
	return 0;
}

/* Send the snapshots (each against the one before) and the instance (against the last
 * one) into the spool, then the tar of the spool's backup/ in LXD's member order. */
static int tar_optimized(struct operation *op, struct ctx *c, struct args *a, const char *main_path,
			 struct berth_error *err)
{
	const atomic_bool *cancel = operation_cancel_flag(op);
	_cleanup_free_ char *header = berth_strdup_printf("%s/backup/optimized_header.yaml",
							  c->spool);
	_cleanup_free_ char *parent = NULL, *file = NULL;
	const json_t *s;
	size_t i;
	int r = header ? header_write(c, header, err) : -ENOMEM;

	if (r >= 0)
		r = tar_head(c, a);
	if (r >= 0)
		r = args_addf(a, "--directory=%s", c->spool);
	if (r >= 0)
		r = args_add(a, "backup/index.yaml");
	if (r >= 0)
		r = args_add(a, "backup/optimized_header.yaml");
	json_array_foreach(c->snaps, i, s) {
		const char *name = berth_json_string(s, "name");
		_cleanup_free_ char *path = NULL;
		if (r < 0)
			break;
		free(file);
		file = berth_strdup_printf("%s/backup/snapshots/%s.bin", c->spool, name);
		r = file ? storage_volume_path(c->v.pool, &c->v.vol, name, &path) : -ENOMEM;
		if (r >= 0)
			r = send_to(c, path, parent, file, cancel, err);
		if (r >= 0)
			r = args_addf(a, "backup/snapshots/%s.bin", name);
		free(parent);
		parent = TAKE_PTR(path);
	}
	free(file);
	file = berth_strdup_printf("%s/backup/container.bin", c->spool);
	if (r >= 0)
		r = file ? send_to(c, main_path, parent, file, cancel, err) : -ENOMEM;
	if (r >= 0)
		r = args_add(a, "backup/container.bin");
	return r;
}

int backup_write(struct operation *op, struct backup_job *j, int out, struct berth_error *err)
{
	_cleanup_(ctx_release) struct ctx c = {.j = j};
	_cleanup_(args_release) struct args a = {0};
	_cleanup_free_ char *index = NULL, *main_path = NULL;
	int r = load(&c, err);

	if (r >= 0)
		r = config_build(&c, err);
	if (r >= 0)
		r = spool_make(&c, err);
	if (r < 0)
		return r;
	index = berth_strdup_printf("%s/backup/index.yaml", c.spool);
	r = index ? index_write(&c, index, err) : -ENOMEM;
	if (r >= 0)
		r = backup_yaml_write(&c, err);
	/* The maps map the disk's ids back: not for a send stream, which holds the disk's. */
	if (r >= 0 && c.shift.on && !j->optimized)
		r = pack_shift_maps_write(c.spool, &c.shift, c.maps, err);
	if (r >= 0 && c.btrfs)
		r = tmp_snapshot(&c, &main_path, err);
	else if (r >= 0)
		main_path = strdup(c.voldir);
	if (r >= 0 && !main_path)
		r = -ENOMEM;
	if (r >= 0 && j->optimized)
		r = tar_optimized(op, &c, &a, main_path, err);
	else if (r >= 0)
		r = tar_plain(&c, &a, main_path, err);
	if (r < 0)
		return r;
	berth_test_pause("backup-before-pack");
	return pack_run(op, (const char *const *)a.v, out, &labels, err);
}

/* ---- what a crash left ---- */

/* The temporary snapshots of instance `name`'s volume. */
static void leftover_snapshots(struct berth_daemon *d, const char *project, const char *name)
{
	_cleanup_(instance_volume_release) struct instance_volume v = {0};
	_cleanup_free_ char *dir = NULL;
	struct dirent *e;
	DIR *dh;

	if (instance_volume_open(d, project, name, &v, NULL) < 0 || !v.pool ||
	    storage_snapshots_dir(v.pool, &v.vol, &dir) < 0)
		return;
	dh = opendir(dir);
	if (!dh)
		return;
	while ((e = readdir(dh)))
		if (berth_startswith(e->d_name, TMP_SNAP_PREFIX)) {
			log_info("Removing \"%s\", left by a backup of \"%s\"", e->d_name, name);
			tmp_snap_delete(&v, e->d_name);
		}
	closedir(dh);
}

void backup_leftovers_remove(struct berth_daemon *d, const char *spool_dir)
{
	json_auto_t *list = NULL;
	const json_t *inst;
	struct dirent *e;
	size_t i;
	DIR *dh = opendir(spool_dir);

	while (dh && (e = readdir(dh))) {
		_cleanup_free_ char *path = NULL;
		if (!berth_startswith(e->d_name, SPOOL_PREFIX))
			continue;
		path = berth_strdup_printf("%s/%s", spool_dir, e->d_name);
		if (path)
			remove_tree(path);
	}
	if (dh)
		closedir(dh);
	if (db_instance_list(d->db, NULL, &list, NULL) < 0)
		return;
	json_array_foreach(list, i, inst)
		leftover_snapshots(d, berth_json_string(inst, "project") ?: "default",
				   berth_json_string(inst, "name") ?: "");
}
