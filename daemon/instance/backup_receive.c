/* daemon/instance/backup_receive.c: optimized btrfs backups received onto a pool (see
 * backup_receive.h). */
#define LOG_CATEGORY "backup-receive"
#include "daemon/instance/backup_receive.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/instance/backup_archive.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

/* The one entry of `dir` not in `known` (names seen before), added to it. */
static int new_entry(const char *dir, json_t *known, char **ret, struct berth_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = -ENOENT;

	if (!d)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening \"%s\": %m", dir);
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
		    json_object_get(known, de->d_name))
			continue;
		json_object_set_new(known, de->d_name, json_true());
		*ret = berth_strdup_printf("%s/%s", dir, de->d_name);
		r = *ret ? 0 : -ENOMEM;
		break;
	}
	closedir(d);
	if (r == -ENOENT)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream made no subvolume");
	return r;
}

/* Run btrfs with `argv`, stdin from `in_fd` (-1: /dev/null); killed when `cancel` (may
 * be NULL) turns true. */
static int btrfs_cmd(const char *const *argv, int in_fd, const atomic_bool *cancel,
		     struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.io = {in_fd >= 0 ? BERTH_SPAWN_FD : BERTH_SPAWN_NULL, BERTH_SPAWN_DEFAULT,
		       BERTH_SPAWN_TO_STDOUT},
		.fds = {in_fd, -1, -1},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
		.cancel = cancel,
	};

	return berth_spawn_run(&s, err);
}

/* What the checks of one stream keep: the subvolume it makes and its uuid in the stream
 * (`prev_uuid` the one received before it, a snapshot's parent). */
struct stream_check {
	char name[256];
	char uuid[64];
	char prev_uuid[64];
	const json_t *known;
	unsigned lines;
};

/* Split `line` in place into tokens at unescaped blanks (`btrfs receive --dump` escapes
 * blanks in paths with a backslash); at most `max`. */
static size_t split_dump_line(char *line, char **tok, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (*p && n < max) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p += (p[0] == '\\' && p[1]) ? 2 : 1;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

/* No ".." component in `p`. */
static bool no_dotdot(const char *p)
{
	for (const char *c = p; *c; c++)
		if ((c == p || c[-1] == '/') && c[0] == '.' && c[1] == '.' &&
		    (c[2] == '/' || !c[2]))
			return false;
	return true;
}

/* A path the dump prints ("./SUBVOL/REL"): inside the stream's subvolume, no "..". */
static bool dump_path_ok(const struct stream_check *c, const char *path)
{
	size_t nl = strlen(c->name);
	const char *rel;

	if (!berth_startswith(path, "./") || strncmp(path + 2, c->name, nl) != 0)
		return false;
	rel = path + 2 + nl;
	return (!*rel || *rel == '/') && no_dotdot(rel);
}

static const char *dump_value(char **tok, size_t n, const char *key)
{
	size_t kl = strlen(key);

	for (size_t i = 2; i < n; i++)
		if (strncmp(tok[i], key, kl) == 0 && tok[i][kl] == '=')
			return tok[i] + kl + 1;
	return NULL;
}

/* The first command: a subvolume (or a snapshot of the one received before) named by
 * one plain component not yet received. */
static int check_subvol(struct stream_check *c, char **tok, size_t n, struct berth_error *err)
{
	const char *name = tok[1] + 2, *uuid = dump_value(tok, n, "uuid");
	bool snap = streq(tok[0], "snapshot");
	const char *parent = snap ? dump_value(tok, n, "parent_uuid") : NULL;

	if (c->lines != 1 || !berth_startswith(tok[1], "./") || !*name || strchr(name, '/') ||
	    strchr(name, '\\') || streq(name, ".") || streq(name, "..") ||
	    strlen(name) >= sizeof(c->name) || json_object_get(c->known, name) || !uuid ||
	    strlen(uuid) >= sizeof(c->uuid))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream's %s command is not one new subvolume",
				       tok[0]);
	if (snap && (!parent || !*c->prev_uuid || !streq(parent, c->prev_uuid)))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream is a snapshot of a subvolume other than the"
				       " one received before it");
	strcpy(c->name, name);
	strcpy(c->uuid, uuid);
	return 0;
}

static int check_dump_line(struct stream_check *c, char *line, struct berth_error *err)
{
	char *tok[16];
	size_t n = split_dump_line(line, tok, ARRAY_SIZE(tok));
	const char *dest = NULL, *src = NULL;

	if (n == 0)
		return 0;
	c->lines++;
	if (n < 2)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream has a command without a path");
	if (streq(tok[0], "subvol") || streq(tok[0], "snapshot"))
		return check_subvol(c, tok, n, err);
	if (!*c->name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream does not start with a subvolume");
	/* rename's destination is printed as a path of the subvolume; link's and clone's
	 * sources as the stream has them, relative to the subvolume */
	if (streq(tok[0], "rename"))
		dest = dump_value(tok, n, "dest") ?: "";
	else if (streq(tok[0], "link"))
		src = dump_value(tok, n, "dest") ?: "..";
	else if (streq(tok[0], "clone"))
		src = dump_value(tok, n, "from") ?: "..";
	if (!dump_path_ok(c, tok[1]) || (dest && !dump_path_ok(c, dest)) ||
	    (src && !no_dotdot(src)))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream's %s command reaches outside its"
				       " subvolume",
				       tok[0]);
	return 0;
}

/* Refuse the stream in `tmp` unless `btrfs receive --dump` shows one subvolume (see
 * check_subvol) and every path inside it; `out` a scratch file for the dump. */
static int stream_check(int tmp, int out, struct stream_check *c, const atomic_bool *cancel,
			struct berth_error *err)
{
	const char *argv[] = {"btrfs", "receive", "--dump", "-e", NULL};
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_FD, BERTH_SPAWN_FD, BERTH_SPAWN_DEFAULT},
		.fds = {tmp, out, -1},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
		.cancel = cancel,
	};
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int r = berth_spawn_run(&s, err);

	if (r < 0)
		return berth_error_wrap(err, r, "Reading the btrfs stream");
	if (lseek(out, 0, SEEK_SET) < 0 || lseek(tmp, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	f = fdopen(dup(out), "r");
	if (!f)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fdopen: %m");
	while (r >= 0 && getline(&line, &cap, f) >= 0)
		r = check_dump_line(c, line, err);
	fclose(f);
	if (r >= 0 && !*c->name)
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "The btrfs stream made no subvolume");
	return r;
}

/* Receive the stream of `snap` (NULL: the instance) into `dir`; *ret the subvolume.
 * `c` carries the uuid of the stream received before. */
static int receive_one(int fd, const char *snap, const char *spool_dir, const char *dir,
		       json_t *known, struct stream_check *c, const atomic_bool *cancel, char **ret,
		       struct berth_error *err)
{
	_cleanup_close_ int tmp = open(spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	_cleanup_close_ int dump = open(spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	/* -C: chrooted into dir, the stream's paths and symlinks cannot leave it */
	const char *argv[] = {"btrfs", "receive", "-q", "-e", "-C", dir, NULL};
	int r;

	if (tmp < 0 || dump < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Temporary file in \"%s\": %m", spool_dir);
	r = backup_extract_bin(fd, snap, tmp, err);
	if (r == -ENOENT)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup holds no btrfs stream for %s%s%s",
				       snap ? "snapshot \"" : "the instance", snap ?: "",
				       snap ? "\"" : "");
	if (r >= 0 && lseek(tmp, 0, SEEK_SET) < 0)
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	c->known = known;
	c->name[0] = '\0';
	c->lines = 0;
	if (r >= 0)
		r = stream_check(tmp, dump, c, cancel, err);
	if (r >= 0)
		r = btrfs_cmd(argv, tmp, cancel, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Receiving the btrfs stream of %s%s%s",
					snap ? "snapshot \"" : "the instance", snap ?: "",
					snap ? "\"" : "");
	strcpy(c->prev_uuid, c->uuid);
	return new_entry(dir, known, ret, err);
}

/* Delete everything in the private directory `dir` (received subvolumes, and whatever a
 * failed receive left), then the directory. */
void backup_receive_dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		const char *argv[] = {"btrfs", "subvolume", "delete", NULL, NULL};

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		p = berth_strdup_printf("%s/%s", dir, de->d_name);
		argv[3] = p;
		if (p && btrfs_cmd(argv, -1, NULL, NULL) < 0 && storage_remove_tree(p, NULL) < 0)
			log_warn("Removing \"%s\" failed, ignoring", p);
	}
	if (d)
		closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("Removing \"%s\": %m, ignoring", dir);
}

static int place_snapshots(int fd, const char *spool_dir, struct storage_pool *pool,
			   const struct storage_vol *vol, const json_t *snapshots, const char *dir,
			   json_t *known, struct stream_check *c, json_t *paths,
			   struct berth_error *err)
{
	_cleanup_free_ char *snaps_dir = NULL;
	json_t *n;
	size_t i;
	int r = storage_snapshots_dir(pool, vol, &snaps_dir);

	if (r < 0)
		return r;
	if (json_array_size(snapshots) && mkdir(snaps_dir, 0700) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdir \"%s\": %m",
				       snaps_dir);
	/* received first, moved after: each stream's parent is the one before, which
	 * `btrfs receive` looks for where it was received */
	json_array_foreach(snapshots, i, n) {
		_cleanup_free_ char *got = NULL;

		r = receive_one(fd, json_string_value(n), spool_dir, dir, known, c, pool->cancel,
				&got, err);
		if (r < 0)
			return r;
		json_object_set_new(paths, json_string_value(n), json_string(got));
	}
	return 0;
}

static int move_snapshots(struct storage_pool *pool, const struct storage_vol *vol,
			  const json_t *snapshots, const json_t *paths, struct berth_error *err)
{
	json_t *n;
	size_t i;

	json_array_foreach(snapshots, i, n) {
		_cleanup_free_ char *dst = NULL;
		const char *got = json_string_value(json_object_get(paths, json_string_value(n)));

		int r;

		if (storage_volume_path(pool, vol, json_string_value(n), &dst) < 0)
			return -ENOMEM;
		/* a read-only subvolume cannot move to another directory: a read-only
		 * snapshot of it goes there, the received one with the rest */
		const char *argv[] = {"btrfs", "subvolume", "snapshot", "-r", got, dst, NULL};
		r = got ? btrfs_cmd(argv, -1, NULL, err) : -ENOENT;
		if (r < 0)
			return berth_error_wrap(err, r, "Placing snapshot \"%s\"",
						json_string_value(n));
	}
	return 0;
}

static int receive_all(int fd, const char *spool_dir, struct storage_pool *pool,
		       const struct storage_vol *vol, const json_t *snapshots, const char *dir,
		       json_t *known, struct berth_error *err)
{
	_cleanup_free_ char *got = NULL, *vol_path = NULL;
	json_auto_t *snap_paths = json_object();
	int r;
	struct stream_check c = {0};

	if (!snap_paths || storage_volume_path(pool, vol, NULL, &vol_path) < 0)
		return -ENOMEM;
	r = place_snapshots(fd, spool_dir, pool, vol, snapshots, dir, known, &c, snap_paths, err);
	if (r >= 0)
		r = receive_one(fd, NULL, spool_dir, dir, known, &c, pool->cancel, &got, err);
	if (r >= 0) {
		const char *argv[] = {"btrfs", "subvolume", "snapshot", got, vol_path, NULL};
		r = btrfs_cmd(argv, -1, NULL, err);
	}
	if (r >= 0)
		r = move_snapshots(pool, vol, snapshots, snap_paths, err);
	return r;
}

int backup_receive_btrfs(int fd, const char *spool_dir, struct storage_pool *pool,
			 const struct storage_vol *vol, const json_t *snapshots,
			 struct berth_error *err)
{
	_cleanup_free_ char *dir = berth_strdup_printf("%s/%s/.berth-import-XXXXXX", pool->path,
						       storage_volume_type_dir(vol->type));
	json_auto_t *known = json_object();
	int r;

	if (!dir || !known)
		return -ENOMEM;
	if (!mkdtemp(dir))
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdtemp in \"%s\": %m",
				       pool->path);
	r = receive_all(fd, spool_dir, pool, vol, snapshots, dir, known, err);
	if (r < 0) {
		_cleanup_free_ char *snaps_dir = NULL;

		pool->driver->volume_delete(pool, vol, NULL);
		if (storage_snapshots_dir(pool, vol, &snaps_dir) >= 0)
			rmdir(snaps_dir);
	}
	/* what was moved is no longer in dir; the rest goes */
	backup_receive_dir_remove(dir);
	return r;
}

int backup_receive_stream(int stream, int dump, const char *dir, json_t *known, char *prev_uuid,
			  const atomic_bool *cancel, char **ret, struct berth_error *err)
{
	const char *argv[] = {"btrfs", "receive", "-q", "-e", "-C", dir, NULL};
	struct stream_check c = {.known = known};
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int r = 0;

	snprintf(c.prev_uuid, sizeof(c.prev_uuid), "%s", prev_uuid);
	if (lseek(stream, 0, SEEK_SET) < 0 || lseek(dump, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	f = fdopen(dup(dump), "r");
	if (!f)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fdopen: %m");
	while (r >= 0 && getline(&line, &cap, f) >= 0)
		r = check_dump_line(&c, line, err);
	fclose(f);
	if (r >= 0 && !*c.name)
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "The btrfs stream made no subvolume");
	if (r >= 0)
		r = btrfs_cmd(argv, stream, cancel, err);
	if (r < 0)
		return r;
	strcpy(prev_uuid, c.uuid);
	return new_entry(dir, known, ret, err);
}
