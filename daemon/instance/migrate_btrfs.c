/* daemon/instance/migrate_btrfs.c: the BTRFS migration type (see migrate_btrfs.h). */
#define LOG_CATEGORY "migrate-btrfs"
#include "daemon/instance/migrate_btrfs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "daemon/instance/backup_receive.h"
#include "daemon/instance/migrate_proto.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define SEND_CHUNK (256u << 10)
#define HEADER_MAX (1u << 20)
#define RECV_POLL_MS 200

/* ---- negotiation ---- */

bool migrate_btrfs_pool(const struct storage_pool *pool)
{
	return pool && streq(pool->driver->name, "btrfs");
}

int migrate_btrfs_offer(json_t *hdr)
{
	json_t *f = json_pack("{s:b, s:b}", "migration_header", 1, "header_subvolumes", 1);

	if (!f || json_object_set_new(hdr, "btrfsFeatures", f) < 0 ||
	    json_object_set_new(hdr, "fs", json_integer(MIGRATE_FS_BTRFS)) < 0)
		return -ENOMEM;
	return 0;
}

/* Our side takes the header (it lists root subvolumes only: nested subvolumes, which
 * "header_subvolumes" would bring, are not received). */
bool migrate_btrfs_answer(const json_t *offer, const struct storage_pool *pool, bool refresh,
			  json_t *answer)
{
	const json_t *f = json_object_get(offer, "btrfsFeatures");
	bool header = berth_json_bool(f, "migration_header", false);

	if (refresh || !migrate_btrfs_pool(pool) ||
	    json_integer_value(json_object_get(offer, "fs")) != MIGRATE_FS_BTRFS)
		return false;
	if (json_object_set_new(answer, "fs", json_integer(MIGRATE_FS_BTRFS)) < 0 ||
	    json_object_set_new(answer, "btrfsFeatures",
				json_pack("{s:b, s:b}", "migration_header", header,
					  "header_subvolumes", 0)) < 0)
		return false;
	return true;
}

bool migrate_btrfs_taken(const json_t *h)
{
	return json_integer_value(json_object_get(h, "fs")) == MIGRATE_FS_BTRFS;
}

static bool header_negotiated(const json_t *answer)
{
	return berth_json_bool(json_object_get(answer, "btrfsFeatures"), "migration_header", false);
}

static const char *btrfs_snapshot_name(const json_t *s)
{
	return berth_json_string(s, "snapshot") ?: "";
}

/* ---- the source ---- */

static int send_header(struct migrate_chan *fs, const json_t *names, struct berth_error *err)
{
	json_auto_t *h = json_pack("{s:[]}", "subvolumes");
	json_t *subs = json_object_get(h, "subvolumes"), *n;
	_cleanup_free_ char *text = NULL;
	size_t i;
	int r;

	if (!h)
		return -ENOMEM;
	json_array_foreach(names, i, n)
		if (json_array_append_new(subs,
					  json_pack("{s:s, s:s, s:b}", "path", "/", "snapshot",
						    json_string_value(n), "readonly", 1)) < 0)
			return -ENOMEM;
	if (json_array_append_new(subs, json_pack("{s:s, s:s, s:b}", "path", "/", "snapshot", "",
						  "readonly", 0)) < 0)
		return -ENOMEM;
	text = berth_json_dumps(h);
	if (!text)
		return -ENOMEM;
	r = migrate_chan_send(fs, false, text, strlen(text), err);
	return r < 0 ? r : migrate_chan_send(fs, true, "", 0, err);
}

/* Copy what `btrfs send` writes on `pipe_fd` to the channel, then the barrier. */
static int pump_out(struct migrate_chan *fs, int pipe_fd, const atomic_bool *cancel,
		    struct berth_error *err)
{
	_cleanup_free_ uint8_t *buf = malloc(SEND_CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(pipe_fd, buf, SEND_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Reading from btrfs send: %m");
		if (cancel && atomic_load(cancel))
			return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					       "Migration cancelled");
		if (n == 0)
			break;
		r = migrate_chan_send(fs, false, buf, (size_t)n, err);
		if (r < 0)
			return r;
	}
	return migrate_chan_send(fs, true, "", 0, err);
}

/* `btrfs send [-p parent] path` to the channel as one transfer. */
static int send_stream(struct migrate_chan *fs, const char *path, const char *parent,
		       const atomic_bool *cancel, struct berth_error *err)
{
	const char *argv[] = {"btrfs", "send", "-q", path, NULL, NULL, NULL};
	_cleanup_close_ int errfd = memfd_create("berth-btrfs-send", MFD_CLOEXEC);
	_cleanup_close_ int pidfd = -EBADF;
	struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_FD, BERTH_SPAWN_FD},
		.fds = {-1, -1, errfd},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
	};
	int p[2], status = 0, r;
	pid_t pid = -1;

	if (errfd < 0 || pipe2(p, O_CLOEXEC) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pipe: %m");
	if (parent) {
		argv[3] = "-p";
		argv[4] = parent;
		argv[5] = path;
	}
	s.fds[1] = p[1];
	log_debug("btrfs send of \"%s\" started", path);
	r = berth_spawn_start(&s, &pid, &pidfd, err);
	close(p[1]);
	if (r >= 0)
		r = pump_out(fs, p[0], cancel, err);
	close(p[0]);
	if (pid < 0)
		return r;
	if (r < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char tail[256] = "";
		ssize_t n = pread(errfd, tail, sizeof(tail) - 1, 0);

		tail[n > 0 ? n : 0] = '\0';
		r = berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				    "btrfs send of \"%s\" failed: %s", path, tail);
	}
	return r;
}

/* A read-only snapshot of the volume, to send (a writable subvolume cannot be), in a
 * private directory of the pool: *ret_dir (removed by the caller), *ret_path. */
static int send_snapshot_make(struct storage_pool *pool, const struct storage_vol *vol,
			      char **ret_dir, char **ret_path, struct berth_error *err)
{
	_cleanup_free_ char *src = NULL;
	char *dir = berth_strdup_printf("%s/%s/.berth-import-mig-XXXXXX", pool->path,
					storage_volume_type_dir(vol->type));
	int r;

	if (!dir || storage_volume_path(pool, vol, NULL, &src) < 0) {
		free(dir);
		return -ENOMEM;
	}
	if (!mkdtemp(dir)) {
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdtemp in \"%s\": %m",
				    pool->path);
		free(dir);
		return r;
	}
	*ret_dir = dir;
	*ret_path = berth_strdup_printf("%s/send", dir);
	if (!*ret_path)
		return -ENOMEM;
	const char *argv[] = {"btrfs", "subvolume", "snapshot", "-r", src, *ret_path, NULL};
	return storage_run(argv, err);
}

int migrate_btrfs_send(struct migrate_chan *fs, struct storage_pool *pool,
		       const struct storage_vol *vol, const json_t *names, const char *snap,
		       const json_t *answer, const atomic_bool *cancel, struct berth_error *err)
{
	_cleanup_free_ char *parent = NULL, *tmpdir = NULL, *main_path = NULL;
	json_t *n;
	size_t i;
	int r = header_negotiated(answer) ? send_header(fs, names, err) : 0;

	json_array_foreach(names, i, n) {
		_cleanup_free_ char *path = NULL;

		if (r < 0)
			return r;
		r = storage_volume_path(pool, vol, json_string_value(n), &path);
		migrate_progress_begin(fs->progress, json_string_value(n));
		if (r >= 0)
			r = send_stream(fs, path, parent, cancel, err);
		free(parent);
		parent = TAKE_PTR(path);
	}
	if (r < 0)
		return r;
	/* a snapshot sent as the instance is read-only already; it goes whole */
	if (snap)
		r = storage_volume_path(pool, vol, snap, &main_path);
	else
		r = send_snapshot_make(pool, vol, &tmpdir, &main_path, err);
	migrate_progress_begin(fs->progress, NULL);
	if (r >= 0)
		r = send_stream(fs, main_path, snap ? NULL : parent, cancel, err);
	if (tmpdir)
		backup_receive_dir_remove(tmpdir);
	return r;
}

/* ---- the target ---- */

/* The fs channel's messages up to the peer's barrier, appended to `fd`, or into *ret with
 * at most `max` bytes when fd < 0. */
static int pump_in(struct migrate_chan *fs, int fd, size_t max, char **ret,
		   const atomic_bool *cancel, struct berth_error *err)
{
	_cleanup_free_ char *acc = NULL;
	size_t alen = 0;

	for (;;) {
		_cleanup_free_ uint8_t *msg = NULL;
		size_t len = 0;
		bool text = false;
		int r = migrate_chan_recv(fs, RECV_POLL_MS, &msg, &len, &text, err);

		if (cancel && atomic_load(cancel))
			return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					       "Migration cancelled");
		if (r == -ETIMEDOUT) {
			berth_error_release(err);
			continue;
		}
		if (r < 0)
			return r;
		if (text)
			break;
		if (fd >= 0) {
			/* a stream that would leave its file system less than 5% free is
			 * refused before it fills the disk (it is spooled whole first) */
			if (!berth_fs_room(fd, len))
				return berth_error_set(err, -ENOSPC, BERTH_ERR_INTERNAL,
						       "Spooling the btrfs stream: the file "
						       "system of the spool is full");
			r = berth_write_all(fd, msg, len);
			if (r < 0)
				return berth_error_set(err, r, BERTH_ERR_INTERNAL,
						       "Spooling the btrfs stream: %s",
						       strerror(-r));
			continue;
		}
		if (alen + len > max)
			return berth_error_set(err, -EMSGSIZE, BERTH_ERR_INTERNAL,
					       "The btrfs migration header is too large");
		char *p = realloc(acc, alen + len + 1);
		if (!p)
			return -ENOMEM;
		acc = p;
		memcpy(acc + alen, msg, len);
		alen += len;
		acc[alen] = '\0';
	}
	if (ret)
		*ret = acc ? TAKE_PTR(acc) : strdup("");
	return ret && !*ret ? -ENOMEM : 0;
}

/* The header's subvolumes must be the root of each snapshot of `names` and of the
 * instance, once each: what we receive. */
static int header_check(const json_t *h, const json_t *names, struct berth_error *err)
{
	const json_t *subs = json_object_get(h, "subvolumes");
	json_auto_t *seen = json_object();
	json_t *s, *n;
	size_t i;

	if (!seen)
		return -ENOMEM;
	if (!json_is_array(subs))
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "The btrfs migration header has no subvolume list");
	json_array_foreach(subs, i, s) {
		const char *snap = btrfs_snapshot_name(s);
		bool known = !*snap;
		size_t k;

		json_array_foreach(names, k, n)
			known = known || streq(json_string_value(n), snap);
		if (!streq(berth_json_string(s, "path") ?: "", "/"))
			return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
					       "The source sends nested btrfs subvolumes, which "
					       "berth does not receive");
		if (!known || json_object_get(seen, snap))
			return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
					       "The btrfs migration header lists subvolume \"%s\" "
					       "unexpectedly",
					       snap);
		json_object_set_new(seen, snap, json_true());
	}
	if (json_object_size(seen) != json_array_size(names) + 1)
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "The btrfs migration header lacks a volume");
	return 0;
}

static int recv_header(struct migrate_chan *fs, const json_t *names, const atomic_bool *cancel,
		       struct berth_error *err)
{
	_cleanup_free_ char *text = NULL;
	json_auto_t *h = NULL;
	int r = pump_in(fs, -1, HEADER_MAX, &text, cancel, err);

	if (r < 0)
		return r;
	h = json_loads(text, 0, NULL);
	if (!h)
		return berth_error_set(err, -EBADMSG, BERTH_ERR_BAD_REQUEST,
				       "The btrfs migration header is not JSON");
	return header_check(h, names, err);
}

struct recv_ctx {
	struct migrate_chan *fs;
	const char *spool_dir;
	char *dir;     /* owned: the private receive directory */
	json_t *known; /* owned: names received in dir */
	json_t *got;   /* owned: snapshot name ("" the instance) -> received path */
	char uuid[64]; /* of the stream received last */
	const atomic_bool *cancel;
};

/* One stream: spooled, then checked command by command as it is given to the receive
 * into the private directory (backup_receive_stream). */
static int recv_one(struct recv_ctx *c, const char *snap, struct berth_error *err)
{
	_cleanup_close_ int spool = open(c->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	_cleanup_free_ char *got = NULL;
	int r = 0;

	if (spool < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Temporary file in \"%s\": %m", c->spool_dir);
	migrate_progress_begin(c->fs->progress, *snap ? snap : NULL);
	r = pump_in(c->fs, spool, 0, NULL, c->cancel, err);
	log_debug("btrfs stream of \"%s\" spooled", snap);
	if (r >= 0)
		r = backup_receive_stream(spool, c->dir, c->known, c->uuid, c->cancel, &got, err);
	log_debug("btrfs stream of \"%s\" received", snap);
	if (r < 0)
		return berth_error_wrap(err, r, "Receiving the btrfs stream of %s%s%s",
					*snap ? "snapshot \"" : "the instance", snap,
					*snap ? "\"" : "");
	return json_object_set_new(c->got, snap, json_string(got)) < 0 ? -ENOMEM : 0;
}

/* The received subvolumes to their places: read-only snapshots, the writable volume. */
static int place(struct recv_ctx *c, struct storage_pool *pool, const struct storage_vol *vol,
		 const json_t *names, bool keep_snapshots, struct berth_error *err)
{
	_cleanup_free_ char *snaps_dir = NULL, *vol_path = NULL;
	json_t *n;
	size_t i;
	int r;

	if (storage_snapshots_dir(pool, vol, &snaps_dir) < 0 ||
	    storage_volume_path(pool, vol, NULL, &vol_path) < 0)
		return -ENOMEM;
	const char *argv[] = {"btrfs",	  "subvolume",
			      "snapshot", json_string_value(json_object_get(c->got, "")),
			      vol_path,	  NULL};
	r = storage_run(argv, err);
	if (r < 0 || !keep_snapshots || !json_array_size(names))
		return r;
	if (mkdir(snaps_dir, 0700) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdir \"%s\": %m",
				       snaps_dir);
	json_array_foreach(names, i, n) {
		_cleanup_free_ char *dst = NULL;

		if (storage_volume_path(pool, vol, json_string_value(n), &dst) < 0)
			return -ENOMEM;
		const char *sargv[] = {"btrfs",
				       "subvolume",
				       "snapshot",
				       "-r",
				       json_string_value(
					       json_object_get(c->got, json_string_value(n))),
				       dst,
				       NULL};
		r = storage_run(sargv, err);
		if (r < 0)
			return berth_error_wrap(err, r, "Placing snapshot \"%s\"",
						json_string_value(n));
	}
	return 0;
}

static int recv_all(struct recv_ctx *c, struct storage_pool *pool, const struct storage_vol *vol,
		    const json_t *names, bool keep_snapshots, const json_t *answer,
		    struct berth_error *err)
{
	json_t *n;
	size_t i;
	int r = 0;

	/* the peer's names become paths */
	json_array_foreach(names, i, n) {
		r = berth_name_check_entity("snapshot name", json_string_value(n) ?: "", err);
		if (r < 0)
			return r;
	}
	r = header_negotiated(answer) ? recv_header(c->fs, names, c->cancel, err) : 0;
	json_array_foreach(names, i, n) {
		if (r < 0)
			return r;
		r = recv_one(c, json_string_value(n), err);
	}
	if (r >= 0)
		r = recv_one(c, "", err);
	if (r >= 0)
		r = place(c, pool, vol, names, keep_snapshots, err);
	log_debug("btrfs streams placed");
	return r;
}

int migrate_btrfs_recv(struct migrate_chan *fs, struct storage_pool *pool,
		       const struct storage_vol *vol, const json_t *names, bool keep_snapshots,
		       const json_t *answer, const char *spool_dir, struct berth_error *err)
{
	struct recv_ctx c = {
		.fs = fs,
		.spool_dir = spool_dir,
		.dir = berth_strdup_printf("%s/%s/.berth-import-mig-XXXXXX", pool->path,
					   storage_volume_type_dir(vol->type)),
		.known = json_object(),
		.got = json_object(),
		.cancel = pool->cancel,
	};
	int r = c.dir && c.known && c.got ? 0 : -ENOMEM;

	if (r >= 0 && !mkdtemp(c.dir))
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdtemp in \"%s\": %m",
				    pool->path);
	else if (r >= 0) {
		r = recv_all(&c, pool, vol, names, keep_snapshots, answer, err);
		if (r < 0) {
			_cleanup_free_ char *snaps_dir = NULL;

			pool->driver->volume_delete(pool, vol, NULL);
			if (storage_snapshots_dir(pool, vol, &snaps_dir) >= 0)
				rmdir(snaps_dir);
		}
		/* what was placed is a snapshot of it: the received subvolumes go */
		backup_receive_dir_remove(c.dir);
	}
	free(c.dir);
	json_decref(c.known);
	json_decref(c.got);
	return r;
}
