/* daemon/instance/backup_receive.c: optimized btrfs backups received onto a pool (see
 * backup_receive.h). */
#define LOG_CATEGORY "backup-receive"
#include "daemon/instance/backup_receive.h"

#include <dirent.h>
#include <inttypes.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/instance/backup_archive.h"
#include "daemon/instance/btrfs_stream.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

/* A uuid as hex digits ("" none) to bytes and back. */
static void uuid_to_hex(const uint8_t *u, char *hex)
{
	for (size_t i = 0; i < BTRFS_STREAM_UUID_SIZE; i++)
		sprintf(hex + 2 * i, "%02x", u[i]);
}

static bool uuid_from_hex(const char *hex, uint8_t *u)
{
	if (!hex || strlen(hex) != 2 * BTRFS_STREAM_UUID_SIZE)
		return false;
	for (size_t i = 0; i < BTRFS_STREAM_UUID_SIZE; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &u[i]) != 1)
			return false;
	return true;
}

/* `name` in the directory `dfd` is a subvolume a receive made from the stream of uuid
 * "r" in `e` ({"r": received uuid, "u": its own uuid, recorded here the first time}): a
 * directory, not a symlink, the root of a subvolume, of that received uuid. When "p" is
 * set, a snapshot's: its parent that subvolume (the receive finds a snapshot's parent by
 * received uuid anywhere on the file system; it must be the one received before). */
static int subvol_check(int dfd, const char *name, json_t *e, struct berth_error *err)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct btrfs_ioctl_get_subvol_info_args info = {0};
	uint8_t want[BTRFS_STREAM_UUID_SIZE], parent[BTRFS_STREAM_UUID_SIZE];
	const char *u = berth_json_string(e, "u"), *p = berth_json_string(e, "p");
	char hex[2 * BTRFS_STREAM_UUID_SIZE + 1];
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_ino != BTRFS_FIRST_FREE_OBJECTID ||
	    ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, &info) < 0 ||
	    !uuid_from_hex(berth_json_string(e, "r"), want) ||
	    memcmp(info.received_uuid, want, sizeof(want)) != 0)
		return berth_error_set(
			err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			"The btrfs stream's subvolume \"%s\" is not what was received", name);
	if (p && (!uuid_from_hex(p, parent) || memcmp(info.parent_uuid, parent, sizeof(parent))))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream's snapshot \"%s\" is not of the subvolume "
				       "received before it",
				       name);
	uuid_to_hex(info.uuid, hex);
	if (u && !streq(u, hex))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The btrfs stream's subvolume \"%s\" was replaced", name);
	return u || json_object_set_new(e, "u", json_string(hex)) >= 0 ? 0 : -ENOMEM;
}

/* After a receive: `dir` holds the subvolumes received so far (`known`: name -> what
 * subvol_check reads) and nothing else. A stream's paths may pass through its own
 * symlinks, which btrfs receive follows: whatever such a stream made or moved beside its
 * subvolume, or in place of one received before it, is refused here, before berthd uses
 * any of these names. */
static int received_check(const char *dir, json_t *known, struct berth_error *err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dup(dfd)) : NULL;
	struct dirent *de;
	const char *name;
	json_t *v;
	int r = 0;

	if (!d)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Opening \"%s\": %m", dir);
	while (r >= 0 && (de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
		    !json_object_get(known, de->d_name))
			r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					    "The btrfs stream made \"%.64s\" beside its subvolume",
					    de->d_name);
	closedir(d);
	json_object_foreach(known, name, v) {
		if (r < 0)
			break;
		r = subvol_check(dfd, name, v, err);
	}
	return r;
}

/* The own uuid of the subvolume received from the stream of uuid `prev`, or NULL. */
static const char *received_own_uuid(const json_t *known, const uint8_t *prev)
{
	char hex[2 * BTRFS_STREAM_UUID_SIZE + 1];
	const char *name;
	json_t *v;

	uuid_to_hex(prev, hex);
	json_object_foreach((json_t *)known, name, v)
		if (streq(berth_json_string(v, "r") ?: "", hex))
			return berth_json_string(v, "u");
	return NULL;
}

/* The stream checked by `c` was received into `dir`: its subvolume added to `known`, the
 * directory checked, its path in *ret. */
static int received_add(const char *dir, json_t *known, const struct btrfs_stream_check *c,
			char **ret, struct berth_error *err)
{
	char hex[2 * BTRFS_STREAM_UUID_SIZE + 1];
	const char *parent = c->snapshot ? received_own_uuid(known, c->prev_uuid) : NULL;
	json_t *e;
	int r;

	uuid_to_hex(c->uuid, hex);
	e = json_pack("{s:s}", "r", hex);
	if (!e || (parent && json_object_set_new(e, "p", json_string(parent)) < 0) ||
	    json_object_set_new(known, c->name, e) < 0)
		return -ENOMEM;
	if (c->snapshot && !parent)
		return berth_error_set(
			err, -EINVAL, BERTH_ERR_BAD_REQUEST,
			"The btrfs stream is a snapshot of no subvolume received here");
	r = received_check(dir, known, err);
	if (r < 0)
		return r;
	*ret = berth_strdup_printf("%s/%s", dir, c->name);
	return *ret ? 0 : -ENOMEM;
}

/* A receive under way: what backup_restore's callback needs. */
struct receive_ctx {
	struct storage_pool *pool;
	const struct storage_vol *vol;
	const json_t *snapshots; /* the index's, oldest first */
	const char *dir;	 /* the private directory streams are received into */
	json_t *known;		 /* names seen in dir */
	json_t *paths;		 /* {"SNAP": received subvolume}, "" the instance's */
	struct btrfs_stream_check c;
	size_t next; /* streams received so far */
	backup_progress_fn progress;
	void *data;
};

/* The exit of the receive: 0, or -EIO with the last line it wrote on stderr (`errfd`, a
 * memfd). */
static int child_wait(int pidfd, int errfd, struct berth_error *err)
{
	siginfo_t si = {0};
	char tail[512];
	ssize_t n;
	char *nl;

	if (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "waitid: %m");
	if (si.si_code == CLD_EXITED && si.si_status == 0)
		return 0;
	n = pread(errfd, tail, sizeof(tail) - 1, 0);
	tail[n > 0 ? n : 0] = '\0';
	while (n > 0 && tail[n - 1] == '\n')
		tail[--n] = '\0';
	nl = strrchr(tail, '\n');
	return berth_error_set(err, -EIO, BERTH_ERR_BAD_REQUEST, "\"btrfs receive\" failed: %s",
			       nl      ? nl + 1
			       : *tail ? tail
				       : "killed");
}

/* ---- one stream: checked here, command by command, then given to the receive ---- */

/* The pipe to the receive. */
#define RECV_PIPE_SIZE (16 << 20)

/* Where a stream's bytes come from. */
typedef ssize_t (*stream_read_fn)(void *src, void *buf, size_t size, struct berth_error *err);

/* One stream being fed: the bytes read and not yet given to the receive (the first
 * `len`; a command cut short waits there for the rest). */
struct feed {
	struct btrfs_stream_check *c;
	stream_read_fn read;
	void *src;
	void (*progress)(void *src, void *data);
	void *data;
	int to_recv; /* -1 once the receive is gone */
	size_t len;
	uint8_t buf[1 << 18]; /* more than two commands */
};

/* Read, check and give to the receive what was checked, to the stream's end. The
 * receive gone (it failed: its exit says why), nothing more is read. */
static int feed_run(struct feed *f, const atomic_bool *cancel, struct berth_error *err)
{
	for (;;) {
		ssize_t n, k;
		int r;

		if (cancel && atomic_load(cancel))
			return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					       "Import cancelled");
		n = f->read(f->src, f->buf + f->len, sizeof(f->buf) - f->len, err);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return btrfs_stream_check_end(f->c, f->len, err);
		f->len += (size_t)n;
		k = btrfs_stream_check(f->c, f->buf, f->len, err);
		if (k < 0)
			return (int)k;
		if (f->progress)
			f->progress(f->src, f->data);
		r = berth_write_all(f->to_recv, f->buf, (size_t)k);
		if (r == -EPIPE)
			return 0;
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Writing to btrfs receive: %s", strerror(-r));
		memmove(f->buf, f->buf + k, f->len - (size_t)k);
		f->len -= (size_t)k;
	}
}

/* Start `btrfs receive` into `dir`: chrooted there (-C), in a mount namespace of its own
 * (what it mounts or unmounts stays its own), reading the pipe *ret_in. */
static int recv_start(const char *dir, int errfd, int *ret_in, pid_t *ret_pid, int *ret_pidfd,
		      struct berth_error *err)
{
	const char *argv[] = {"unshare", "--mount", "--propagation",
			      "private", "--",	    "btrfs",
			      "receive", "-q",	    "-e",
			      "-C",	 dir,	    NULL};
	struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_FD, BERTH_SPAWN_NULL, BERTH_SPAWN_FD},
		.fds = {-1, -1, errfd},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
	};
	int p[2], r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pipe: %m");
	/* room for the reading (decompressing) and the receive to go on at once, each at its
	 * own pace: root may go past fs.pipe-max-size; the default size works too */
	if (fcntl(p[1], F_SETPIPE_SZ, RECV_PIPE_SIZE) < 0)
		(void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	s.fds[0] = p[0];
	r = berth_spawn_start(&s, ret_pid, ret_pidfd, err);
	close(p[0]);
	if (r < 0) {
		close(p[1]);
		return r;
	}
	*ret_in = p[1];
	return 0;
}

/* Receive the stream `f` reads into `dir`, each command checked before the receive gets
 * it (a failed check kills the receive; the caller removes what it made). */
static int receive_checked(struct feed *f, const char *dir, const atomic_bool *cancel,
			   struct berth_error *err)
{
	_cleanup_close_ int errfd = memfd_create("btrfs-receive-err", MFD_CLOEXEC);
	_cleanup_close_ int pidfd = -EBADF;
	pid_t pid = 0;
	int r;

	if (errfd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "memfd_create: %m");
	r = recv_start(dir, errfd, &f->to_recv, &pid, &pidfd, err);
	if (r < 0)
		return r;
	r = feed_run(f, cancel, err);
	if (r < 0) {
		siginfo_t si;

		/* killed before its input ends: a cut stream must not look whole to it */
		kill(pid, SIGKILL);
		waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED);
	}
	if (f->to_recv >= 0)
		close(f->to_recv);
	f->to_recv = -1;
	if (r < 0)
		return r;
	return child_wait(pidfd, errfd, err);
}

static ssize_t read_backup_stream(void *src, void *buf, size_t size, struct berth_error *err)
{
	return backup_stream_read(src, buf, size, err);
}

static void backup_progress(void *src, void *data)
{
	const struct receive_ctx *rc = data;

	if (rc->progress)
		rc->progress(backup_stream_done(src), rc->data);
}

/* Receive the stream of `snap` (NULL: the instance) into rc->dir; the subvolume it made
 * in rc->paths. */
static int receive_one(struct receive_ctx *rc, const char *snap, struct backup_stream *st,
		       struct berth_error *err)
{
	_cleanup_free_ char *got = NULL;
	int r;

	_cleanup_free_ struct feed *f = calloc(1, sizeof(*f));
	struct btrfs_stream_check c = {.known = rc->known, .has_prev = rc->next > 1};

	if (!f)
		return -ENOMEM;
	memcpy(c.prev_uuid, rc->c.uuid, sizeof(c.prev_uuid));
	*f = (struct feed){.c = &c,
			   .read = read_backup_stream,
			   .src = st,
			   .progress = backup_progress,
			   .data = rc,
			   .to_recv = -1};
	log_debug("Receiving the btrfs stream of %s", snap ?: "the instance");
	r = receive_checked(f, rc->dir, rc->pool->cancel, err);
	log_debug("Received the btrfs stream of %s: %" PRIu64 " commands", snap ?: "the instance",
		  c.commands);
	if (r >= 0)
		r = received_add(rc->dir, rc->known, &c, &got, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Receiving the btrfs stream of %s%s%s",
					snap ? "snapshot \"" : "the instance", snap ?: "",
					snap ? "\"" : "");
	rc->c = c;
	return json_object_set_new(rc->paths, snap ?: "", json_string(got)) < 0 ? -ENOMEM : 0;
}

/* backup_restore's callback for each .bin stream: received in turn, each snapshot's
 * stream the parent of the next. */
static int on_stream(const char *snap, struct backup_stream *st, void *data,
		     struct berth_error *err)
{
	struct receive_ctx *rc = data;
	size_t n = json_array_size(rc->snapshots);
	const char *want = rc->next < n ? json_string_value(json_array_get(rc->snapshots, rc->next))
					: NULL;

	if (rc->next > n || (snap ? !want || !streq(snap, want) : !!want))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup's btrfs stream of %s%s%s is out of order (the "
				       "snapshots' come first, oldest first, then the instance's)",
				       snap ? "snapshot \"" : "the instance", snap ?: "",
				       snap ? "\"" : "");
	rc->next++;
	return receive_one(rc, snap, st, err);
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
		r = got ? storage_btrfs_snapshot(got, dst, true, err) : -ENOENT;
		if (r < 0)
			return berth_error_wrap(err, r, "Placing snapshot \"%s\"",
						json_string_value(n));
	}
	return 0;
}

/* The received subvolumes placed: the instance's as the volume, the snapshots'. */
static int place(struct receive_ctx *rc, struct berth_error *err)
{
	_cleanup_free_ char *vol_path = NULL, *snaps_dir = NULL;
	const char *got = json_string_value(json_object_get(rc->paths, ""));
	int r;

	if (!got)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Backup holds no instance (backup/container.bin)");
	if (storage_volume_path(rc->pool, rc->vol, NULL, &vol_path) < 0 ||
	    storage_snapshots_dir(rc->pool, rc->vol, &snaps_dir) < 0)
		return -ENOMEM;
	r = storage_btrfs_snapshot(got, vol_path, false, err);
	if (r < 0)
		return r;
	if (json_array_size(rc->snapshots) && mkdir(snaps_dir, 0700) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdir \"%s\": %m",
				       snaps_dir);
	return move_snapshots(rc->pool, rc->vol, rc->snapshots, rc->paths, err);
}

int backup_receive_btrfs(int fd, struct storage_pool *pool, const struct storage_vol *vol,
			 const struct backup_index *index, const struct backup_limits *lim,
			 backup_progress_fn progress, void *data, struct backup_scan **ret,
			 struct berth_error *err)
{
	_cleanup_free_ char *dir = berth_strdup_printf("%s/%s/.berth-import-XXXXXX", pool->path,
						       storage_volume_type_dir(vol->type));
	json_auto_t *known = json_object(), *paths = json_object();
	struct receive_ctx rc = {.pool = pool,
				 .vol = vol,
				 .snapshots = index->snapshots,
				 .dir = dir,
				 .known = known,
				 .paths = paths,
				 .progress = progress,
				 .data = data};
	/* progress comes from the streams, the bulk of it */
	struct backup_dest dest = {.index = index,
				   .container_fd = -1,
				   .bin = on_stream,
				   .data = &rc,
				   .cancel = pool->cancel};
	int r;

	if (!dir || !known || !paths)
		return -ENOMEM;
	if (!mkdtemp(dir))
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "mkdtemp in \"%s\": %m",
				       pool->path);
	r = backup_restore(fd, lim, &dest, ret, err);
	log_debug("Placing the received subvolumes");
	if (r >= 0)
		r = place(&rc, err);
	log_debug("Placed");
	if (r < 0) {
		_cleanup_free_ char *snaps_dir = NULL;

		pool->driver->volume_delete(pool, vol, NULL);
		if (storage_snapshots_dir(pool, vol, &snaps_dir) >= 0)
			rmdir(snaps_dir);
	}
	/* what was placed are snapshots of what was received: that all goes */
	backup_receive_dir_remove(dir);
	log_debug("Removed the received subvolumes");
	return r;
}

static ssize_t read_fd(void *src, void *buf, size_t size, struct berth_error *err)
{
	ssize_t n;

	do
		n = read(*(int *)src, buf, size);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Reading the spooled btrfs stream: %m");
	return n;
}

int backup_receive_stream(int stream, const char *dir, json_t *known, char *prev_uuid,
			  const atomic_bool *cancel, char **ret, struct berth_error *err)
{
	_cleanup_free_ struct feed *f = calloc(1, sizeof(*f));
	struct btrfs_stream_check c = {.known = known};
	int r;

	if (!f)
		return -ENOMEM;
	c.has_prev = uuid_from_hex(prev_uuid, c.prev_uuid);
	if (lseek(stream, 0, SEEK_SET) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "lseek: %m");
	*f = (struct feed){.c = &c, .read = read_fd, .src = &stream, .to_recv = -1};
	r = receive_checked(f, dir, cancel, err);
	if (r < 0)
		return r;
	uuid_to_hex(c.uuid, prev_uuid);
	return received_add(dir, known, &c, ret, err);
}

/* Delete everything in the private directory `dir` (received subvolumes, and whatever a
 * failed receive left), then the directory. */
void backup_receive_dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		/* a symlink (dangling, or to anywhere) or a file a refused stream made: the
		 * entry itself goes, nothing it points at */
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			continue;
		p = berth_strdup_printf("%s/%s", dir, de->d_name);
		/* not a subvolume: what a failed receive left */
		if (p && storage_btrfs_delete(p, NULL) < 0 && storage_remove_tree(p, NULL) < 0)
			log_warn("Removing \"%s\" failed, ignoring", p);
	}
	if (d)
		closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("Removing \"%s\": %m, ignoring", dir);
}
