/* daemon/instance/backup_receive.c: optimized btrfs backups received onto a pool (see
 * backup_receive.h). */
#define LOG_CATEGORY "backup-receive"
#include "daemon/instance/backup_receive.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* A receive under way: what backup_restore's callback needs. */
struct receive_ctx {
	struct storage_pool *pool;
	const struct storage_vol *vol;
	const json_t *snapshots; /* the index's, oldest first */
	const char *dir;	 /* the private directory streams are received into */
	json_t *known;		 /* names seen in dir */
	json_t *paths;		 /* {"SNAP": received subvolume}, "" the instance's */
	struct stream_check c;
	size_t next; /* streams received so far */
	backup_progress_fn progress;
	void *data;
};

/* A child process started detached. */
struct child {
	pid_t pid;
	int pidfd; /* -1 once waited for */
};

/* The exit of a child started by spawn_btrfs: 0, or -EIO with the last line it wrote on
 * stderr (`errfd`, a memfd). */
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

/* A child: stdin `in`, stdout `out` (-1: /dev/null), stderr the memfd `errfd`. */
static int spawn_btrfs(const char *const *argv, int in, int out, int errfd, struct child *ret,
		       struct berth_error *err)
{
	struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_FD, out >= 0 ? BERTH_SPAWN_FD : BERTH_SPAWN_NULL,
		       BERTH_SPAWN_FD},
		.fds = {in, out, errfd},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
	};

	return berth_spawn_start(&s, &ret->pid, &ret->pidfd, err);
}

/* ---- one stream, to the check and the receive at once ---- */

/* Our ends of the pipes of one stream, and the chunk being written to both. */
struct feed {
	struct backup_stream *st;
	struct stream_check *c;
	int to_dump, to_recv, from_dump; /* -1 once closed */
	char buf[1 << 16];
	size_t len, off_dump, off_recv;
	bool eof;	    /* the stream was read to its end */
	char line[1 << 16]; /* the dump's line being read (paths escaped) */
	size_t line_len;
	backup_progress_fn progress;
	void *data;
	struct child dump; /* waited for when its output ends */
	int dump_err;	   /* its stderr */
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The next chunk of the stream once both have taken the last one; at its end, their
 * stdin closed. */
static int feed_fill(struct feed *f, struct berth_error *err)
{
	ssize_t n;

	if (f->eof || f->off_dump < f->len || f->off_recv < f->len)
		return 0;
	n = backup_stream_read(f->st, f->buf, sizeof(f->buf), err);
	if (n < 0)
		return (int)n;
	f->len = (size_t)n;
	f->off_dump = f->to_dump >= 0 ? 0 : f->len;
	f->off_recv = f->to_recv >= 0 ? 0 : f->len;
	if (n == 0) {
		f->eof = true;
		close_fd(&f->to_dump);
		close_fd(&f->to_recv);
	}
	if (f->progress)
		f->progress(backup_stream_done(f->st), f->data);
	return 0;
}

/* Write what `fd` has not taken of the chunk. A reader gone (it stopped at the stream's
 * end command, or failed: its exit status says which) takes no more. */
static int feed_write(struct feed *f, int *fd, size_t *off, struct berth_error *err)
{
	ssize_t w = write(*fd, f->buf + *off, f->len - *off);

	if (w >= 0) {
		*off += (size_t)w;
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	if (errno != EPIPE)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Writing to btrfs: %m");
	close_fd(fd);
	*off = f->len;
	return 0;
}

/* Read what the dump printed, checking each whole line. */
static int feed_read(struct feed *f, struct berth_error *err)
{
	char tmp[4096];
	ssize_t n = read(f->from_dump, tmp, sizeof(tmp));
	int r = 0;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR
			       ? 0
			       : berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "read: %m");
	if (n == 0) {
		close_fd(&f->from_dump);
		return f->line_len ? check_dump_line(f->c, f->line, err) : 0;
	}
	for (ssize_t i = 0; i < n && r >= 0; i++) {
		if (tmp[i] != '\n') {
			if (f->line_len + 1 >= sizeof(f->line))
				return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
						       "The btrfs stream has a path too long");
			f->line[f->line_len++] = tmp[i];
			continue;
		}
		f->line[f->line_len] = '\0';
		f->line_len = 0;
		r = check_dump_line(f->c, f->line, err);
	}
	f->line[f->line_len] = '\0';
	return r;
}

/* The dump's output ended: its exit says whether the stream was whole and well-formed.
 * Nothing more goes to it. */
static int dump_done(struct feed *f, struct berth_error *err)
{
	int r;

	close_fd(&f->to_dump);
	f->off_dump = f->len;
	r = child_wait(f->dump.pidfd, f->dump_err, err);
	close(f->dump.pidfd);
	f->dump.pidfd = -1;
	if (r >= 0 && !*f->c->name)
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "The btrfs stream made no subvolume");
	return r;
}

/* Feed the stream to both, checking the dump, until the dump has ended and the receive
 * has taken all it reads. */
static int feed_run(struct feed *f, const atomic_bool *cancel, struct berth_error *err)
{
	int r = 0;

	while (r >= 0 && (f->from_dump >= 0 || f->to_recv >= 0)) {
		struct pollfd p[3];

		r = feed_fill(f, err);
		if (r < 0)
			break;
		p[0] = (struct pollfd){.fd = f->from_dump, .events = POLLIN};
		p[1] = (struct pollfd){.fd = f->off_dump < f->len ? f->to_dump : -1,
				       .events = POLLOUT};
		p[2] = (struct pollfd){.fd = f->off_recv < f->len ? f->to_recv : -1,
				       .events = POLLOUT};
		if (poll(p, 3, 500) < 0 && errno != EINTR)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "poll: %m");
		if (cancel && atomic_load(cancel))
			return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL,
					       "Import cancelled");
		if (p[0].revents)
			r = feed_read(f, err);
		if (r >= 0 && p[0].revents && f->from_dump < 0)
			r = dump_done(f, err);
		if (r >= 0 && p[1].revents)
			r = feed_write(f, &f->to_dump, &f->off_dump, err);
		if (r >= 0 && p[2].revents)
			r = feed_write(f, &f->to_recv, &f->off_recv, err);
	}
	return r;
}

/* Kill and reap `ch` (not waited for yet). */
static void child_kill(struct child *ch)
{
	siginfo_t si;

	if (ch->pidfd < 0)
		return;
	kill(ch->pid, SIGKILL);
	waitid(P_PIDFD, (id_t)ch->pidfd, &si, WEXITED);
	close(ch->pidfd);
	ch->pidfd = -1;
}

/* The pipes and stderr files of one stream; [0] the child's end, [1] ours. */
struct plumbing {
	int dump_in[2], dump_out[2], recv_in[2];
	int dump_err, recv_err;
};

static void plumbing_release(struct plumbing *p)
{
	int *fds[] = {p->dump_in, p->dump_out, p->recv_in};

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		close_fd(&fds[i][0]);
		close_fd(&fds[i][1]);
	}
	close_fd(&p->dump_err);
	close_fd(&p->recv_err);
}

static int plumbing_make(struct plumbing *p, struct berth_error *err)
{
	int fds[2];
	int *ends[] = {p->dump_in, p->dump_out, p->recv_in};

	p->dump_err = memfd_create("btrfs-dump-err", MFD_CLOEXEC);
	p->recv_err = memfd_create("btrfs-receive-err", MFD_CLOEXEC);
	if (p->dump_err < 0 || p->recv_err < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "memfd_create: %m");
	for (size_t i = 0; i < ARRAY_SIZE(ends); i++) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pipe: %m");
		/* stdin pipes: the child reads [0]; the dump's stdout: it writes [1] */
		ends[i][0] = i == 1 ? fds[1] : fds[0];
		ends[i][1] = i == 1 ? fds[0] : fds[1];
		if (fcntl(ends[i][1], F_SETFL, O_NONBLOCK) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "fcntl: %m");
	}
	return 0;
}

/* Start the check (`btrfs receive --dump`) and the receive into `dir`: chrooted there
 * (-C), in a mount namespace of its own (what it mounts or unmounts stays its own). */
static int start_both(struct plumbing *p, const char *dir, struct child *dump, struct child *recv,
		      struct berth_error *err)
{
	const char *dump_argv[] = {"btrfs", "receive", "--dump", "-e", NULL};
	const char *recv_argv[] = {"unshare", "--mount", "--propagation",
				   "private", "--",	 "btrfs",
				   "receive", "-q",	 "-e",
				   "-C",      dir,	 NULL};
	int r = spawn_btrfs(dump_argv, p->dump_in[0], p->dump_out[0], p->dump_err, dump, err);

	if (r < 0)
		return r;
	r = spawn_btrfs(recv_argv, p->recv_in[0], -1, p->recv_err, recv, err);
	if (r < 0) {
		child_kill(dump);
		return r;
	}
	close_fd(&p->dump_in[0]);
	close_fd(&p->dump_out[0]);
	close_fd(&p->recv_in[0]);
	return 0;
}

/* Receive stream `st` into `dir` while `btrfs receive --dump` shows it, each line
 * checked (check_dump_line): a failed check kills the receive; the caller removes what
 * it made. */
static int receive_stream(struct backup_stream *st, const char *dir, struct stream_check *c,
			  const struct receive_ctx *rc, struct berth_error *err)
{
	_cleanup_(plumbing_release) struct plumbing p = {{-1, -1}, {-1, -1}, {-1, -1}, -1, -1};
	struct child dump = {0, -1}, recv = {0, -1};
	_cleanup_free_ struct feed *f = calloc(1, sizeof(*f));
	int r = f ? plumbing_make(&p, err) : -ENOMEM;

	if (r >= 0)
		r = start_both(&p, dir, &dump, &recv, err);
	if (r < 0)
		return r;
	*f = (struct feed){.st = st,
			   .c = c,
			   .to_dump = TAKE_FD(p.dump_in[1]),
			   .to_recv = TAKE_FD(p.recv_in[1]),
			   .from_dump = TAKE_FD(p.dump_out[1]),
			   .progress = rc->progress,
			   .data = rc->data,
			   .dump = dump,
			   .dump_err = p.dump_err};
	r = feed_run(f, rc->pool->cancel, err);
	close_fd(&f->to_dump);
	close_fd(&f->to_recv);
	close_fd(&f->from_dump);
	child_kill(&f->dump);
	if (r < 0) {
		child_kill(&recv);
		return r;
	}
	r = child_wait(recv.pidfd, p.recv_err, err);
	close(recv.pidfd);
	if (r >= 0 && !*c->name)
		r = berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				    "The btrfs stream made no subvolume");
	return r;
}

/* Receive the stream of `snap` (NULL: the instance) into rc->dir; the subvolume it made
 * in rc->paths. */
static int receive_one(struct receive_ctx *rc, const char *snap, struct backup_stream *st,
		       struct berth_error *err)
{
	_cleanup_free_ char *got = NULL;
	int r;

	rc->c.known = rc->known;
	rc->c.name[0] = '\0';
	rc->c.lines = 0;
	r = receive_stream(st, rc->dir, &rc->c, rc, err);
	if (r >= 0)
		r = new_entry(rc->dir, rc->known, &got, err);
	if (r < 0)
		return berth_error_wrap(err, r, "Receiving the btrfs stream of %s%s%s",
					snap ? "snapshot \"" : "the instance", snap ?: "",
					snap ? "\"" : "");
	strcpy(rc->c.prev_uuid, rc->c.uuid);
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
		const char *argv[] = {"btrfs", "subvolume", "snapshot", "-r", got, dst, NULL};
		r = got ? btrfs_cmd(argv, -1, NULL, err) : -ENOENT;
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
	const char *argv[] = {"btrfs", "subvolume", "snapshot", got, vol_path, NULL};
	r = btrfs_cmd(argv, -1, NULL, err);
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
	if (r >= 0)
		r = place(&rc, err);
	if (r < 0) {
		_cleanup_free_ char *snaps_dir = NULL;

		pool->driver->volume_delete(pool, vol, NULL);
		if (storage_snapshots_dir(pool, vol, &snaps_dir) >= 0)
			rmdir(snaps_dir);
	}
	/* what was placed are snapshots of what was received: that all goes */
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
