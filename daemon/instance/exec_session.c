/* daemon/instance/exec_session.c: websockets bridged to a command or a console (see
 * exec_session.h).
 *
 * The command: the container's monitor forks it (an `exec` request on monitor.sock with
 * the stdio fds; the connection then says "started PID" or "failed MSG", then
 * "exit CODE", and takes "signal N"). A monitor that refuses (one started by an older
 * berth) or cannot be reached leaves it to a `berth-monitor exec` helper process, watched
 * through a pidfd, with a status pipe.
 *
 * Direct stdio (berth's own stdio.socket, EXEC_PIPES only): the client's own stdin,
 * stdout and stderr, handed over with the secret of websocket "0", are the command's
 * (no pipes, nothing relayed); the command starts at once, and its exit ends the
 * operation. Signals still come over the control websocket.
 *
 * Framing (LXD 5.0.2): data in binary messages; an empty text message is the end of a
 * stream (sent by the client on stdin EOF, by us at stdout/stderr EOF, followed by a
 * Close). The control socket carries JSON: window-resize (strings) and signal.
 *
 * Flow control both ways: an output fd is not read while its websocket has more than
 * EXEC_HIGH_WATER bytes queued (a timer looks again every EXEC_POLL_MS), and a websocket
 * is not read while more than EXEC_HIGH_WATER bytes wait to be written to stdin.
 *
 * Lifetime: the session frees itself once it is DONE, every handle went through its
 * close callback and every websocket reported on_close. */
#define LOG_CATEGORY "exec_session"
#include "daemon/instance/exec_session.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "daemon/instance/container.h"
#include "daemon/runtime/exec_words.h"
#include "daemon/vm/vmmon_client.h"
#include "lib/http_server.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define EXEC_HIGH_WATER (1u << 20)
#define EXEC_LOW_WATER (256u << 10)
#define EXEC_POLL_MS 5
#define EXEC_CONNECT_TIMEOUT_MS 5000
#define EXEC_BUF 65536
/* Larger requests (a huge command line or environment) go to the helper. */
#define EXEC_MONITOR_REQUEST_MAX (256u << 10)

enum session_state {
	SESSION_WAITING,
	SESSION_RUNNING,
	SESSION_DONE,
};

struct exec_session;

struct session_ws {
	struct exec_session *s;
	int idx;
	struct berth_ws_conn *ws; /* borrowed until on_close */
	bool connected;		  /* ever connected (a socket connects once) */
	bool closed_by_us;
	bool paused; /* reading stopped: stdin is backed up */
};

/* One fd on the loop: index 0 is stdin (pipes) or the pty/console (both ways); 1 and 2
 * stdout and stderr (pipes). */
struct session_io {
	uv_pipe_t pipe;
	bool open, eof, paused;
	size_t pending; /* bytes queued for writing (index 0) */
	bool close_when_written;
};

struct exec_session {
	struct exec_spec *spec; /* borrowed: the operation owns it and we hold the operation */
	struct operation *op;	/* reference */
	enum session_state state;
	/* The helper, started by lib/spawn (sharing our memory until its exec: berthd's
	 * memory is neither copied nor write-faulted page by page after a fork) and
	 * watched through the pidfd it returns. */
	pid_t pid;
	int pidfd;
	uv_poll_t exit_poll;
	bool spawned, exited;
	int exit_code;
	uv_pipe_t status; /* the helper's --status-fd */
	bool status_open, status_eof;
	char status_buf[512];
	size_t status_len;
	pid_t cmd_pid;
	bool helper_error;
	/* The monitor's connection when it runs the command (via_monitor). */
	bool via_monitor, mon_open, mon_heard;
	uv_pipe_t mon;
	char mon_buf[512];
	size_t mon_len;
	int kept[3];   /* the child's stdio until the monitor answered: a fallback needs it */
	int direct[3]; /* the client's stdio from stdio.socket until the start, else -EBADF */
	bool is_direct;
	struct session_io io[3];
	/* Input that arrived before the command started (the client may write before it
	 * connected every socket): owned, replayed at the start. */
	char *early;
	size_t early_len;
	bool early_eof;
	struct session_ws ws[EXEC_NSOCKETS];
	uv_timer_t connect_timer, poll_timer;
	uv_async_t cancel_async;
	int open_handles, open_ws;
	char buf[EXEC_BUF];
};

static void session_finish(struct exec_session *s, int r, const char *msg);
static void on_poll(uv_timer_t *t);
static void replay_early(struct exec_session *s);

/* ---- specs ---- */

static int draw_secret(char *out)
{
	unsigned char b[EXEC_SECRET_LEN / 2];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	for (size_t i = 0; i < sizeof(b); i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	return 0;
}

int exec_spec_new(enum exec_kind kind, uv_loop_t *loop, struct exec_spec **ret)
{
	struct exec_spec *spec = calloc(1, sizeof(*spec));
	static const bool used[EXEC_KIND_MAX][EXEC_NSOCKETS] = {
		[EXEC_PIPES] = {true, true, true, true},
		[EXEC_PTY] = {true, false, false, true},
		[EXEC_CONSOLE] = {true, false, false, true},
	};

	if (!spec)
		return -ENOMEM;
	spec->kind = kind;
	spec->loop = loop;
	spec->console_fd = -EBADF;
	spec->pty_master = spec->pty_slave = -EBADF;
	for (int i = 0; i < 3; i++)
		spec->stdio[i] = -EBADF;
	for (int i = 0; i < EXEC_NSOCKETS; i++)
		if (used[kind][i] && draw_secret(spec->secret[i]) < 0) {
			exec_spec_free(spec);
			return -EIO;
		}
	*ret = spec;
	return 0;
}

void exec_spec_free(void *data)
{
	struct exec_spec *spec = data;

	if (!spec)
		return;
	if (spec->argv)
		for (char **a = spec->argv; *a; a++)
			free(*a);
	free(spec->argv);
	for (int i = 0; i < 3; i++)
		if (spec->stdio[i] >= 0)
			close(spec->stdio[i]);
	if (spec->console_fd >= 0)
		close(spec->console_fd);
	if (spec->pty_master >= 0)
		close(spec->pty_master);
	if (spec->pty_slave >= 0)
		close(spec->pty_slave);
	free(spec->rundir);
	free(spec->setup_msg);
	json_decref(spec->output);
	json_decref(spec->metadata);
	free(spec);
}

/* ---- the pty of an interactive exec ---- */

/* The host id that id 0 of the container maps to (`map`: "uid_map" or "gid_map"); 0
 * when the container has no user namespace or the map cannot be read. */
static unsigned int root_host_id(pid_t pid, const char *map)
{
	char path[64];
	unsigned long in, out, count;
	unsigned int id = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, map);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fscanf(f, "%lu %lu %lu", &in, &out, &count) == 3)
		if (in == 0 && count > 0) {
			id = (unsigned int)out;
			break;
		}
	fclose(f);
	return id;
}

/* The ptmx of the container's own devpts, /dev/pts/ptmx seen from its root. The path
 * is the container's to change, so it is resolved inside that root (a symlink cannot
 * lead to the host) without waiting on what it finds (O_NONBLOCK), and what was opened
 * must be a devpts ptmx. */
static int open_container_ptmx(pid_t pid)
{
	struct open_how how = {
		.flags = O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int root = -EBADF, fd = -EBADF;
	char path[64];
	struct stat st;
	struct statfs sf;

	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, root, "dev/pts/ptmx", &how, sizeof(how));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sf) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2 ||
	    sf.f_type != DEVPTS_SUPER_MAGIC)
		return -ENOTTY;
	return TAKE_FD(fd);
}

int exec_spec_open_pty(struct exec_spec *spec, pid_t init_pid)
{
	struct winsize ws = {.ws_col = (unsigned short)(spec->width > 0 ? spec->width : 80),
			     .ws_row = (unsigned short)(spec->height > 0 ? spec->height : 24)};
	unsigned int uid = root_host_id(init_pid, "uid_map");
	unsigned int gid = root_host_id(init_pid, "gid_map");
	_cleanup_close_ int master = open_container_ptmx(init_pid);
	_cleanup_close_ int slave = -EBADF;
	int unlock = 0;

	if (master >= 0) {
		/* devpts gave the slave the tty group and mode 0620 (the container's mount
		 * options) and our uid, which the container cannot see: make it its root's */
		if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
			return -errno;
		slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0)
			return -errno;
		if (fchown(slave, uid, (gid_t)-1) < 0)
			return -errno;
	} else {
		log_debug("No devpts of the container to open a pty in (%s), using the host's",
			  strerror(-master));
		if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
			return -errno;
		fcntl(master, F_SETFD, FD_CLOEXEC);
		fcntl(slave, F_SETFD, FD_CLOEXEC);
		if (fchown(slave, uid, gid) < 0 || fchmod(slave, 0620) < 0)
			return -errno;
	}
	ioctl(master, TIOCSWINSZ, &ws);
	spec->pty_master = TAKE_FD(master);
	spec->pty_slave = TAKE_FD(slave);
	return 0;
}

/* ---- freeing ---- */

static void session_maybe_free(struct exec_session *s)
{
	if (s->state != SESSION_DONE || s->open_handles > 0 || s->open_ws > 0)
		return;
	operation_unref(s->op);
	free(s->early);
	free(s);
}

static void handle_closed(uv_handle_t *h)
{
	struct exec_session *s = h->data;

	s->open_handles--;
	session_maybe_free(s);
}

static void close_handle(struct exec_session *s, uv_handle_t *h)
{
	if (uv_is_closing(h))
		return;
	h->data = s;
	uv_close(h, handle_closed);
}

static void io_close(struct exec_session *s, int i)
{
	if (!s->io[i].open)
		return;
	s->io[i].open = false;
	close_handle(s, (uv_handle_t *)&s->io[i].pipe);
}

/* ---- the command ---- */

/* `sig` to the command: through the monitor that runs it, else to the command itself once
 * the helper named it, else to the helper. */
static void kill_command(struct exec_session *s, int sig)
{
	if (!s->spawned || s->exited)
		return;
	if (s->via_monitor) {
		char line[32];
		int n = snprintf(line, sizeof(line), "signal %d\n", sig);
		uv_buf_t b = uv_buf_init(line, (unsigned)n);

		if (s->mon_open && uv_try_write((uv_stream_t *)&s->mon, &b, 1) != n)
			log_debug("Cannot pass signal %d to the monitor", sig);
		return;
	}
	if (s->cmd_pid > 0)
		kill(s->cmd_pid, sig);
	else
		kill(s->pid, sig); /* not reaped yet (!exited): still our child */
}

static int ws_of_output(const struct exec_session *s, int i)
{
	return s->spec->kind == EXEC_PIPES ? i : 0;
}

/* The end of output stream `i`: the barrier and a Close on its socket. */
static void output_eof(struct exec_session *s, int i)
{
	struct session_ws *w = &s->ws[ws_of_output(s, i)];

	if (s->io[i].eof)
		return;
	s->io[i].eof = true;
	io_close(s, i);
	if (w->ws && !w->closed_by_us) {
		berth_ws_conn_send(w->ws, true, "", 0);
		w->closed_by_us = true;
		berth_ws_conn_close(w->ws, 1000, "");
	}
}

static bool outputs_done(const struct exec_session *s)
{
	switch (s->spec->kind) {
	case EXEC_PIPES:
		return s->io[1].eof && s->io[2].eof;
	case EXEC_PTY:
		return s->io[0].eof;
	default:
		return true;
	}
}

static void check_done(struct exec_session *s)
{
	if (s->state != SESSION_RUNNING || !s->exited || !s->status_eof || !outputs_done(s))
		return;
	session_finish(s, 0, NULL);
}

static void send_output(struct exec_session *s, int i, const char *data, size_t len)
{
	struct session_ws *w = &s->ws[ws_of_output(s, i)];

	if (!w->ws || w->closed_by_us)
		return; /* nobody listens: discard */
	berth_ws_conn_send(w->ws, false, data, len);
	if (s->io[i].open && !s->io[i].paused && berth_ws_conn_queued(w->ws) > EXEC_HIGH_WATER) {
		uv_read_stop((uv_stream_t *)&s->io[i].pipe);
		s->io[i].paused = true;
		if (!uv_is_active((uv_handle_t *)&s->poll_timer))
			uv_timer_start(&s->poll_timer, on_poll, EXEC_POLL_MS, EXEC_POLL_MS);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct exec_session *s = h->data;

	*buf = uv_buf_init(s->buf, sizeof(s->buf));
}

static int io_index(struct exec_session *s, uv_stream_t *stream)
{
	for (int i = 0; i < 3; i++)
		if ((uv_stream_t *)&s->io[i].pipe == stream)
			return i;
	return -1;
}

static void on_output(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct exec_session *s = stream->data;
	int i = io_index(s, stream);

	if (n > 0) {
		send_output(s, i, buf->base, (size_t)n);
		return;
	}
	if (n == 0)
		return;
	/* EOF, or EIO on a pty master whose slave is gone */
	output_eof(s, i);
	if (s->spec->kind == EXEC_CONSOLE) {
		session_finish(s, 0, NULL);
		return;
	}
	check_done(s);
}

/* After the helper exited: what is left in the pipe or pty is all there will be (a
 * process it left behind may hold the other end open, as in LXD). Read it without
 * waiting, then end the streams. The amount is bounded by the pipe's capacity since a
 * paused stream held the writer back. */
static void drain_output(struct exec_session *s, int i)
{
	int fd;

	if (!s->io[i].open || s->io[i].eof)
		return;
	uv_read_stop((uv_stream_t *)&s->io[i].pipe);
	if (uv_fileno((uv_handle_t *)&s->io[i].pipe, &fd) == 0) {
		for (;;) {
			ssize_t n = read(fd, s->buf, sizeof(s->buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			send_output(s, i, s->buf, (size_t)n);
		}
	}
	output_eof(s, i);
}

/* Stop watching the helper: the poll handle, then its pidfd (uv_close stopped the
 * watcher, so the fd may go at once). */
static void close_exit_poll(struct exec_session *s)
{
	if (s->pidfd < 0)
		return;
	close_handle(s, (uv_handle_t *)&s->exit_poll);
	close(s->pidfd);
	s->pidfd = -EBADF;
}

/* The command (or the helper) ended with `code`. */
static void command_exited(struct exec_session *s, int code)
{
	s->exited = true;
	s->exit_code = code;
	if (s->state == SESSION_DONE) /* killed after a failure or a cancel */
		return;
	if (s->spec->kind == EXEC_PIPES) {
		drain_output(s, 1);
		drain_output(s, 2);
		/* stdin has no reader any more */
		if (s->io[0].pending == 0)
			io_close(s, 0);
		else
			s->io[0].close_when_written = true;
	} else if (s->spec->kind == EXEC_PTY) {
		drain_output(s, 0);
	}
	check_done(s);
}

static void on_helper_exit(uv_poll_t *p, int status, int events)
{
	struct exec_session *s = container_of(p, struct exec_session, exit_poll);
	siginfo_t si = {0};

	if (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return; /* not yet: a spurious wake-up */
	close_exit_poll(s);
	command_exited(s, si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
}

static void parse_status(struct exec_session *s)
{
	char *nl;

	while ((nl = memchr(s->status_buf, '\n', s->status_len))) {
		*nl = '\0';
		if (berth_startswith(s->status_buf, "started "))
			s->cmd_pid = (pid_t)atoi(s->status_buf + 8);
		else if (berth_startswith(s->status_buf, "error "))
			s->helper_error = true;
		s->status_len -= (size_t)(nl + 1 - s->status_buf);
		memmove(s->status_buf, nl + 1, s->status_len);
	}
}

static void on_status_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct exec_session *s = h->data;

	*buf = uv_buf_init(s->status_buf + s->status_len,
			   sizeof(s->status_buf) - 1 - s->status_len);
}

static void on_status(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct exec_session *s = stream->data;

	if (n > 0) {
		s->status_len += (size_t)n;
		parse_status(s);
		if (s->status_len >= sizeof(s->status_buf) - 1)
			s->status_len = 0; /* a line too long to be ours */
		return;
	}
	if (n == 0)
		return;
	s->status_eof = true;
	s->status_open = false;
	close_handle(s, (uv_handle_t *)&s->status);
	check_done(s);
}

static int open_pipe(struct exec_session *s, uv_pipe_t *p, int fd)
{
	int r = uv_pipe_init(s->spec->loop, p, 0);

	if (r < 0) {
		close(fd);
		return r;
	}
	p->data = s;
	s->open_handles++;
	r = uv_pipe_open(p, fd);
	if (r < 0) {
		close(fd);
		close_handle(s, (uv_handle_t *)p);
	}
	return r;
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0) {
			close(p[i]);
			p[i] = -EBADF;
		}
}

/* Create the child's stdio: child[] are its fds 0-2 (closed here after the spawn),
 * parent[] ours (-EBADF where unused). */
static int make_stdio(struct exec_session *s, int child[3], int parent[3])
{
	struct exec_spec *spec = s->spec;
	int p[3][2] = {{-EBADF, -EBADF}, {-EBADF, -EBADF}, {-EBADF, -EBADF}};

	switch (spec->kind) {
	case EXEC_PIPES:
		if (s->is_direct) {
			for (int i = 0; i < 3; i++)
				child[i] = TAKE_FD(s->direct[i]);
			return 0;
		}
		for (int i = 0; i < 3; i++)
			if (pipe2(p[i], O_CLOEXEC) < 0) {
				int e = -errno;
				for (int j = 0; j < 3; j++)
					close_pair(p[j]);
				return e;
			}
		child[0] = p[0][0], parent[0] = p[0][1];
		child[1] = p[1][1], parent[1] = p[1][0];
		child[2] = p[2][1], parent[2] = p[2][0];
		return 0;
	case EXEC_PTY:
		if (spec->pty_master < 0 || spec->pty_slave < 0)
			return -EBADF; /* exec_spec_open_pty() was not called or failed */
		child[0] = TAKE_FD(spec->pty_slave);
		parent[0] = TAKE_FD(spec->pty_master);
		child[1] = dup(child[0]);
		child[2] = dup(child[0]);
		if (child[1] < 0 || child[2] < 0)
			return -errno;
		return 0;
	case EXEC_DETACHED:
		for (int i = 0; i < 3; i++)
			child[i] = TAKE_FD(spec->stdio[i]);
		return 0;
	default:
		return -EINVAL;
	}
}

/* Start the helper through lib/spawn with `fds` as its 0-3 and PATH alone in its
 * environment; lib/spawn gives it default signal handling and an empty mask (berthd
 * ignores SIGPIPE; the command must not inherit that). */
static int spawn_process(char *const argv[], const int fds[4], pid_t *ret, int *ret_pidfd)
{
	static const char *const env[] = {"PATH=" BERTH_SPAWN_PATH, NULL};
	struct berth_spawn sp = {
		.argv = (const char *const *)argv,
		.env = env,
		.io = {BERTH_SPAWN_FD, BERTH_SPAWN_FD, BERTH_SPAWN_FD},
		.fds = {fds[0], fds[1], fds[2]},
		.extra_fds = &fds[3],
		.n_extra_fds = 1,
	};
	struct berth_error err = {0};
	int r = berth_spawn_start(&sp, ret, ret_pidfd, &err);

	if (r < 0)
		log_debug("%s", berth_error_msg(&err, r));
	berth_error_release(&err);
	return r;
}

static int watch_helper(struct exec_session *s)
{
	int r;

	r = uv_poll_init(s->spec->loop, &s->exit_poll, s->pidfd);
	if (r < 0) {
		close(s->pidfd);
		s->pidfd = -EBADF;
		return r;
	}
	s->exit_poll.data = s;
	s->open_handles++;
	return uv_poll_start(&s->exit_poll, UV_READABLE, on_helper_exit);
}

/* The `berth-monitor exec` helper with `child` as its stdio (the caller closes those), its
 * status pipe and its exit watch. */
static int helper_start(struct exec_session *s, const int child[3])
{
	int st[2], r;

	for (int i = 0; i < 3; i++)
		if (child[i] < 0)
			return -EBADF;
	if (pipe2(st, O_CLOEXEC) < 0)
		return -errno;
	r = spawn_process(s->spec->argv, (const int[4]){child[0], child[1], child[2], st[1]},
			  &s->pid, &s->pidfd);
	close(st[1]);
	if (r < 0) {
		close(st[0]);
		return r;
	}
	s->spawned = true;
	r = watch_helper(s);
	if (r < 0) { /* cannot watch it: it must not run unseen */
		close_exit_poll(s);
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->exited = true;
		close(st[0]);
		return r;
	}
	log_debug("Exec helper %d started", (int)s->pid);
	r = open_pipe(s, &s->status, st[0]);
	if (r >= 0) {
		s->status_open = true;
		uv_read_start((uv_stream_t *)&s->status, on_status_alloc, on_status);
	} else {
		s->status_eof = true;
	}
	return 0;
}

/* ---- the command run by the monitor ---- */

static void drop_kept(struct exec_session *s)
{
	for (int i = 0; i < 3; i++)
		if (s->kept[i] >= 0) {
			close(s->kept[i]);
			s->kept[i] = -EBADF;
		}
}

static void mon_close(struct exec_session *s)
{
	if (!s->mon_open)
		return;
	s->mon_open = false;
	close_handle(s, (uv_handle_t *)&s->mon);
}

/* The monitor did not take the command: the helper runs it with the kept stdio. */
static void mon_fallback(struct exec_session *s, const char *why)
{
	int r;

	log_debug("The monitor did not run the command (%s), using the helper", why);
	mon_close(s);
	s->via_monitor = false;
	s->spawned = false;
	s->status_eof = false;
	r = helper_start(s, s->kept);
	drop_kept(s);
	if (r < 0) {
		log_warn("Cannot start the exec helper: %s", strerror(-r));
		session_finish(s, r, "Failed to start the command");
	}
}

static void parse_mon(struct exec_session *s)
{
	char *nl;

	while (s->mon_open && (nl = memchr(s->mon_buf, '\n', s->mon_len))) {
		const char *line = s->mon_buf;

		*nl = '\0';
		if (berth_startswith(line, "started ")) {
			s->cmd_pid = (pid_t)atoi(line + 8);
			s->mon_heard = true;
			drop_kept(s);
		} else if (berth_startswith(line, "failed ")) {
			log_debug("The command could not run: %s", line + 7);
			s->helper_error = true;
			s->mon_heard = true;
			drop_kept(s);
		} else if (berth_startswith(line, "exit ") && s->mon_heard && !s->exited) {
			command_exited(s, atoi(line + 5));
		} else if (berth_startswith(line, "error ") && !s->mon_heard) {
			/* It refuses for the container's state (it stopped or was frozen
			 * since the POST looked): so would the helper, or it would wait
			 * in the frozen cgroup. Anything else (a monitor too old for the
			 * request) is left to the helper. */
			if (berth_startswith(line + 6, "the container is not running"))
				session_finish(s, -ESRCH, "Instance is not running");
			else if (berth_startswith(line + 6, "the container is frozen"))
				session_finish(s, -EBUSY, "Instance is frozen");
			else if (streq(line + 6, vmmon_agent_not_running_msg))
				/* a VM's berth-vmmon, its agent not up: no helper could do
				 * better, and LXD fails the exec with this message */
				session_finish(s, -EAGAIN, vmmon_agent_not_running_msg);
			else
				mon_fallback(s, line + 6);
			return;
		}
		s->mon_len -= (size_t)(nl + 1 - s->mon_buf);
		memmove(s->mon_buf, nl + 1, s->mon_len);
	}
}

static void on_mon_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct exec_session *s = h->data;

	*buf = uv_buf_init(s->mon_buf + s->mon_len, sizeof(s->mon_buf) - 1 - s->mon_len);
}

static void on_mon_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct exec_session *s = stream->data;

	if (n > 0) {
		s->mon_len += (size_t)n;
		parse_mon(s);
		if (s->mon_len >= sizeof(s->mon_buf) - 1)
			s->mon_len = 0; /* a line too long to be ours */
		return;
	}
	if (n == 0)
		return;
	if (!s->mon_heard) {
		mon_fallback(s, "it closed the connection");
		return;
	}
	mon_close(s);
	if (!s->exited) { /* the monitor went away: so did the container */
		s->helper_error = true;
		command_exited(s, 255);
	}
	s->status_eof = true;
	check_done(s);
}

static int send_with_fds(int sock, const char *data, size_t len, const int fds[3])
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(3 * sizeof(int))];
	} u = {0};
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
	while (len > 0) { /* the fds go with the first part */
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		len -= (size_t)n;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len = len;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	}
	return 0;
}

/* The monitor took no command within CONTAINER_STATUS_TIMEOUT_S: the exec fails with
 * the monitor's timeout error (a stopped monitor would never answer). */
static void monitor_timeout(struct exec_session *s)
{
	struct berth_error err = {0};
	const char *rundir = s->spec->argv[2];
	const char *base = strrchr(rundir, '/');
	const char *name;

	base = base ? base + 1 : rundir;
	name = strchr(base, '_') ? strchr(base, '_') + 1 : base;
	container_timeout_error(name, CONTAINER_STATUS_TIMEOUT_S, &err);
	session_finish(s, -ETIMEDOUT, berth_error_msg(&err, -ETIMEDOUT));
	berth_error_release(&err);
}

static void on_started_timeout(uv_timer_t *t)
{
	struct exec_session *s = t->data;

	if (s->state != SESSION_DONE && s->via_monitor && !s->mon_heard)
		monitor_timeout(s);
}

/* Ask the container's monitor to run the command: the helper's options after RUNDIR
 * (argv[3] on, without --status-fd) as an `exec` request, with `child` as SCM_RIGHTS.
 * On success the child's fds are kept in s->kept until the monitor answers. */
static int monitor_start(struct exec_session *s, int child[3])
{
	char *const *argv = s->spec->argv;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_free_ char *req = NULL;
	_cleanup_close_ int fd = -EBADF;
	size_t size = sizeof("exec\n");
	char *p;
	int r;

	if (berth_test_flag("BERTH_TEST_EXEC_HELPER"))
		return -ENOTSUP;
	if (!argv || !argv[0] || !argv[1] || !argv[2])
		return -EINVAL;
	for (int i = 3; argv[i]; i++)
		size += runtime_word_room(argv[i]) + 1;
	if (size > EXEC_MONITOR_REQUEST_MAX)
		return -E2BIG;
	req = malloc(size);
	if (!req)
		return -ENOMEM;
	p = stpcpy(req, "exec");
	for (int i = 3; argv[i]; i++) {
		if (streq(argv[i], "--status-fd") && argv[i + 1]) {
			i++;
			continue;
		}
		*p++ = ' ';
		p = runtime_word_escape(p, argv[i]);
	}
	*p++ = '\n';
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/monitor.sock", argv[2]) >=
	    sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	/* Non-blocking: this runs on the loop thread, and a stopped monitor's full
	 * backlog or socket buffer must not hold it (EAGAIN: it does not answer). */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	r = send_with_fds(fd, req, (size_t)(p - req), child);
	if (r < 0)
		return r == -EAGAIN ? -ETIMEDOUT : r;
	r = open_pipe(s, &s->mon, TAKE_FD(fd));
	if (r < 0)
		return r;
	s->via_monitor = s->spawned = s->mon_open = true;
	for (int i = 0; i < 3; i++) {
		s->kept[i] = child[i];
		child[i] = -EBADF;
	}
	uv_read_start((uv_stream_t *)&s->mon, on_mon_alloc, on_mon_read);
	uv_timer_start(&s->connect_timer, on_started_timeout, CONTAINER_STATUS_TIMEOUT_S * 1000, 0);
	return 0;
}

/* Start the command: through the monitor, else the helper. */
static int start_command(struct exec_session *s)
{
	int child[3] = {-EBADF, -EBADF, -EBADF}, parent[3] = {-EBADF, -EBADF, -EBADF};
	int r;

	r = make_stdio(s, child, parent);
	for (int i = 0; i < 3 && r >= 0; i++)
		if (child[i] < 0)
			r = -EBADF;
	if (r < 0)
		goto out;
	r = monitor_start(s, child);
	if (r == -ETIMEDOUT) {
		monitor_timeout(s);
		r = 0;
		goto out;
	}
	if (r < 0) {
		log_debug("The monitor cannot run the command (%s), using the helper",
			  strerror(-r));
		r = helper_start(s, child);
	}
	if (r < 0)
		goto out;
	for (int i = 0; i < 3; i++) {
		if (parent[i] < 0) {
			s->io[i].eof = true;
			continue;
		}
		r = open_pipe(s, &s->io[i].pipe, TAKE_FD(parent[i]));
		if (r < 0) {
			s->io[i].eof = true;
			continue;
		}
		s->io[i].open = true;
		/* stdin of the pipes is write-only; everything else is read */
		if (!(s->spec->kind == EXEC_PIPES && i == 0))
			uv_read_start((uv_stream_t *)&s->io[i].pipe, on_alloc, on_output);
	}
	r = 0;
out:
	for (int i = 0; i < 3; i++) {
		if (child[i] >= 0)
			close(child[i]);
		if (parent[i] >= 0)
			close(parent[i]);
	}
	return r;
}

/* ---- input ---- */

struct stdin_write {
	uv_write_t req;
	struct exec_session *s;
	size_t len;
	char data[];
};

static void on_stdin_written(uv_write_t *req, int status)
{
	struct stdin_write *w = container_of(req, struct stdin_write, req);
	struct exec_session *s = w->s;
	struct session_ws *sw = &s->ws[0];

	s->io[0].pending -= w->len;
	free(w);
	if (status < 0 && s->spec->kind == EXEC_PIPES) {
		io_close(s, 0); /* the command stopped reading */
		return;
	}
	if (sw->paused && sw->ws && s->io[0].pending < EXEC_LOW_WATER) {
		sw->paused = false;
		berth_ws_conn_pause(sw->ws, false);
	}
	if (s->io[0].close_when_written && s->io[0].pending == 0)
		io_close(s, 0);
}

static void write_input(struct exec_session *s, const void *data, size_t len)
{
	struct stdin_write *w;
	uv_buf_t b;

	if (!s->io[0].open || s->io[0].close_when_written || len == 0)
		return;
	w = malloc(sizeof(*w) + len);
	if (!w)
		return;
	w->s = s;
	w->len = len;
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&s->io[0].pipe, &b, 1, on_stdin_written) < 0) {
		free(w);
		return;
	}
	s->io[0].pending += len;
	if (s->io[0].pending > EXEC_HIGH_WATER && s->ws[0].ws && !s->ws[0].paused) {
		s->ws[0].paused = true;
		berth_ws_conn_pause(s->ws[0].ws, true);
	}
}

/* The client's end of stdin. */
static void input_eof(struct exec_session *s)
{
	if (s->spec->kind == EXEC_PTY || s->spec->kind == EXEC_CONSOLE) {
		write_input(s, "\x04", 1); /* EOT, as a terminal's ^D */
		return;
	}
	if (s->io[0].pending == 0)
		io_close(s, 0);
	else
		s->io[0].close_when_written = true;
}

struct resize_job {
	uv_work_t work;
	char *rundir;
	int width, height;
};

static void resize_work(uv_work_t *req)
{
	struct resize_job *j = container_of(req, struct resize_job, work);
	_cleanup_free_ char *line = berth_strdup_printf("console-resize %d %d", j->width,
							j->height);
	_cleanup_free_ char *reply = NULL;
	struct berth_error err = {0};

	if (line && container_request(j->rundir, line, 5, &reply, &err) < 0)
		log_debug("Console resize failed, ignoring");
	berth_error_release(&err);
}

static void resize_done(uv_work_t *req, int status)
{
	struct resize_job *j = container_of(req, struct resize_job, work);

	free(j->rundir);
	free(j);
}

static void resize(struct exec_session *s, int width, int height)
{
	if (width <= 0 || height <= 0 || width > 65535 || height > 65535)
		return;
	if (s->spec->kind == EXEC_PTY && s->io[0].open) {
		struct winsize ws = {.ws_col = (unsigned short)width,
				     .ws_row = (unsigned short)height};
		int fd;

		if (uv_fileno((uv_handle_t *)&s->io[0].pipe, &fd) == 0)
			ioctl(fd, TIOCSWINSZ, &ws);
		if (s->via_monitor && s->mon_open) {
			/* a VM's berth-vmmon passes it to the guest's terminal (a container's
			 * monitor ignores it: the command's terminal is this pty) */
			char line[48];
			int n = snprintf(line, sizeof(line), "resize %d %d\n", width, height);
			uv_buf_t b = uv_buf_init(line, (unsigned)n);

			if (uv_try_write((uv_stream_t *)&s->mon, &b, 1) != n)
				log_debug("Cannot pass the window size to the monitor");
		}
	} else if (s->spec->kind == EXEC_CONSOLE) {
		struct resize_job *j = calloc(1, sizeof(*j));

		if (!j)
			return;
		j->rundir = strdup(s->spec->rundir);
		j->width = width;
		j->height = height;
		if (!j->rundir ||
		    uv_queue_work(s->spec->loop, &j->work, resize_work, resize_done) < 0) {
			free(j->rundir);
			free(j);
		}
	}
}

static void on_control(struct exec_session *s, const uint8_t *data, size_t len)
{
	json_auto_t *msg = json_loadb((const char *)data, len, 0, NULL);
	const char *cmd = berth_json_string(msg, "command");

	if (!cmd)
		return;
	if (streq(cmd, "window-resize")) {
		json_t *args = json_object_get(msg, "args");
		const char *w = berth_json_string(args, "width");
		const char *h = berth_json_string(args, "height");

		if (w && h)
			resize(s, atoi(w), atoi(h));
	} else if (streq(cmd, "signal")) {
		json_int_t sig = json_integer_value(json_object_get(msg, "signal"));

		if (sig > 0 && sig < NSIG)
			kill_command(s, (int)sig);
	}
}

/* ---- websockets ---- */

static bool required_connected(const struct exec_session *s)
{
	switch (s->spec->kind) {
	case EXEC_PIPES: /* old clients never connect control */
		return s->ws[0].connected && s->ws[1].connected && s->ws[2].connected;
	case EXEC_PTY:
		return s->ws[0].connected && s->ws[EXEC_SOCKET_CONTROL].connected;
	case EXEC_CONSOLE:
		return s->ws[0].connected;
	default:
		return true;
	}
}

static void run(struct exec_session *s)
{
	int r;

	s->state = SESSION_RUNNING;
	uv_timer_stop(&s->connect_timer);
	if (s->spec->kind == EXEC_CONSOLE) {
		uv_read_start((uv_stream_t *)&s->io[0].pipe, on_alloc, on_output);
		resize(s, s->spec->width, s->spec->height);
		return;
	}
	r = start_command(s);
	if (r < 0) {
		log_warn("Cannot start the exec helper: %s", strerror(-r));
		session_finish(s, r, "Failed to start the command");
		return;
	}
	if (s->state == SESSION_DONE)
		return; /* the monitor did not answer */
	replay_early(s);
}

static void keep_early(struct exec_session *s, bool eof, const uint8_t *data, size_t len)
{
	char *p;

	if (eof) {
		s->early_eof = true;
		return;
	}
	if (s->early_eof || len == 0)
		return;
	p = realloc(s->early, s->early_len + len);
	if (!p)
		return;
	memcpy(p + s->early_len, data, len);
	s->early = p;
	s->early_len += len;
	/* hold the client back until the command runs */
	if (s->early_len > EXEC_HIGH_WATER && s->ws[0].ws && !s->ws[0].paused) {
		s->ws[0].paused = true;
		berth_ws_conn_pause(s->ws[0].ws, true);
	}
}

static void replay_early(struct exec_session *s)
{
	_cleanup_free_ char *early = TAKE_PTR(s->early);

	if (s->early_len)
		write_input(s, early, s->early_len);
	s->early_len = 0;
	if (s->early_eof)
		input_eof(s);
	if (s->ws[0].paused && s->ws[0].ws && s->io[0].pending < EXEC_HIGH_WATER) {
		s->ws[0].paused = false;
		berth_ws_conn_pause(s->ws[0].ws, false);
	}
}

static void on_ws_message(struct berth_ws_conn *ws, bool text, const uint8_t *data, size_t len,
			  void *ptr)
{
	struct session_ws *w = ptr;
	struct exec_session *s = w->s;

	if (s->state == SESSION_DONE)
		return;
	if (w->idx == EXEC_SOCKET_CONTROL) {
		on_control(s, data, len);
		return;
	}
	if (w->idx != 0)
		return; /* nothing is expected from stdout/stderr sockets */
	if (s->state == SESSION_WAITING) {
		keep_early(s, text && len == 0, data, len);
		return;
	}
	if (text && len == 0)
		input_eof(s);
	else
		write_input(s, data, len);
}

static void on_ws_close(struct berth_ws_conn *ws, void *ptr)
{
	struct session_ws *w = ptr;
	struct exec_session *s = w->s;
	bool by_us = w->closed_by_us;

	w->ws = NULL;
	w->closed_by_us = true;
	s->open_ws--;
	if (s->state == SESSION_DONE) {
		session_maybe_free(s);
		return;
	}
	if (by_us)
		return;
	if (s->spec->kind == EXEC_CONSOLE) {
		/* "Detaching from console" or the client went away: the container runs on */
		if (w->idx == 0 || w->idx == EXEC_SOCKET_CONTROL)
			session_finish(s, 0, NULL);
		return;
	}
	if (w->idx == EXEC_SOCKET_CONTROL) {
		/* a Close or a broken control connection kills the command */
		if (s->state == SESSION_WAITING)
			session_finish(s, -ECONNRESET, "The control connection closed");
		else
			kill_command(s, SIGKILL);
	} else if (w->idx == 0 && s->spec->kind == EXEC_PIPES) {
		if (s->state == SESSION_WAITING)
			s->early_eof = true;
		else
			input_eof(s);
	} else if (w->idx == 1 && !s->ws[EXEC_SOCKET_CONTROL].connected &&
		   s->state == SESSION_RUNNING) {
		kill_command(
			s, SIGKILL); /* no control socket: stdout going away means the client did */
	}
}

static const struct berth_ws_callbacks ws_callbacks = {
	.on_message = on_ws_message,
	.on_close = on_ws_close,
};

static void respond_error(struct berth_http_conn *conn, int status, const char *msg)
{
	json_auto_t *body = json_pack("{s:s, s:s, s:i, s:n}", "type", "error", "error", msg,
				      "error_code", status, "metadata");
	_cleanup_free_ char *text = body ? berth_json_dumps(body) : NULL;

	berth_http_respond(conn, status, "application/json", NULL, 0, text,
			   text ? strlen(text) : 0);
}

/* Constant time in the secret's content: every socket's secret is compared in full. */
static int find_socket(const struct exec_spec *spec, const char *secret)
{
	size_t len = strlen(secret);
	int found = -1;

	for (int i = 0; i < EXEC_NSOCKETS; i++) {
		unsigned char diff = len == EXEC_SECRET_LEN ? 0 : 1;

		if (!spec->secret[i][0])
			continue;
		for (size_t k = 0; k < EXEC_SECRET_LEN; k++)
			diff |= (unsigned char)(spec->secret[i][k] ^ (k < len ? secret[k] : 0));
		if (diff == 0)
			found = i;
	}
	return found;
}

void exec_session_connect(struct operation *op, void *data, const char *secret,
			  struct berth_http_conn *conn)
{
	struct exec_spec *spec = data;
	struct exec_session *s = spec->session;
	int i = find_socket(spec, secret);
	struct berth_ws_conn *ws = NULL;

	if (i < 0) {
		respond_error(conn, 403, "Forbidden");
		return;
	}
	if (!s || s->state == SESSION_DONE) {
		respond_error(conn, 400, "The operation has already finished");
		return;
	}
	if (s->ws[i].connected || (s->is_direct && i != EXEC_SOCKET_CONTROL)) {
		respond_error(conn, 400, "Websocket number already connected");
		return;
	}
	s->ws[i].s = s;
	s->ws[i].idx = i;
	if (berth_http_upgrade_ws(conn, &ws_callbacks, &s->ws[i], &ws) < 0)
		return;
	s->ws[i].ws = ws;
	s->ws[i].connected = true;
	s->open_ws++;
	if (s->state == SESSION_WAITING && required_connected(s))
		run(s);
}

int exec_session_attach_fds(struct operation *op, void *data, const char *secret, int fds[3],
			    const char **why)
{
	struct exec_spec *spec = data;
	struct exec_session *s = spec->session;

	(void)op;
	if (find_socket(spec, secret) != 0) {
		*why = "Forbidden";
		return -EPERM;
	}
	if (!s || s->state != SESSION_WAITING) {
		*why = "The command has already started";
		return -EALREADY;
	}
	if (spec->kind != EXEC_PIPES) {
		*why = "Only a non-interactive exec takes file descriptors";
		return -EINVAL;
	}
	for (int i = 0; i < 3; i++)
		if (s->ws[i].connected) {
			*why = "A websocket of this exec is already connected";
			return -EALREADY;
		}
	for (int i = 0; i < 3; i++)
		s->direct[i] = TAKE_FD(fds[i]);
	s->is_direct = true;
	run(s);
	return 0;
}

/* ---- start, cancel, finish ---- */

static void on_connect_timeout(uv_timer_t *t)
{
	struct exec_session *s = t->data;

	if (s->state == SESSION_WAITING)
		session_finish(s, -ETIMEDOUT, "Timed out waiting for websockets to connect");
}

static void on_cancel(uv_async_t *a)
{
	struct exec_session *s = a->data;

	if (s->state == SESSION_WAITING || s->spec->kind == EXEC_CONSOLE)
		session_finish(s, s->spec->kind == EXEC_CONSOLE ? 0 : -ECANCELED, NULL);
	else
		kill_command(s, SIGKILL);
}

/* Resume output streams whose socket drained. */
static void on_poll(uv_timer_t *t)
{
	struct exec_session *s = t->data;
	bool still = false;

	for (int i = 0; i < 3; i++) {
		struct session_ws *w = &s->ws[ws_of_output(s, i)];

		if (!s->io[i].paused || !s->io[i].open)
			continue;
		if (!w->ws || berth_ws_conn_queued(w->ws) < EXEC_LOW_WATER) {
			s->io[i].paused = false;
			uv_read_start((uv_stream_t *)&s->io[i].pipe, on_alloc, on_output);
		} else {
			still = true;
		}
	}
	if (!still)
		uv_timer_stop(&s->poll_timer);
}

int exec_session_start(struct operation *op, void *data)
{
	struct exec_spec *spec = data;
	struct exec_session *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->spec = spec;
	s->pidfd = -EBADF;
	for (int i = 0; i < 3; i++)
		s->kept[i] = s->direct[i] = -EBADF;
	s->op = operation_ref(op);
	spec->session = s;
	for (int i = 0; i < EXEC_NSOCKETS; i++) {
		s->ws[i].s = s;
		s->ws[i].idx = i;
	}
	uv_timer_init(spec->loop, &s->connect_timer);
	uv_timer_init(spec->loop, &s->poll_timer);
	s->connect_timer.data = s->poll_timer.data = s;
	uv_async_init(spec->loop, &s->cancel_async, on_cancel);
	s->cancel_async.data = s;
	s->open_handles = 3;
	if (spec->kind == EXEC_CONSOLE) {
		r = open_pipe(s, &s->io[0].pipe, TAKE_FD(spec->console_fd));
		if (r < 0) {
			session_finish(s, r, "Cannot attach to the console");
			return 0;
		}
		s->io[0].open = true;
	}
	if (spec->setup_error < 0) {
		session_finish(s, spec->setup_error, spec->setup_msg);
		return 0;
	}
	if (spec->kind == EXEC_DETACHED) {
		run(s);
		return 0;
	}
	uv_timer_start(&s->connect_timer, on_connect_timeout, EXEC_CONNECT_TIMEOUT_MS, 0);
	return 0;
}

void exec_session_cancel(void *data)
{
	struct exec_spec *spec = data;

	if (spec->session)
		uv_async_send(&spec->session->cancel_async);
}

/* Record the result, end the operation, close everything; the session goes once the
 * last handle and websocket are closed. */
static void session_finish(struct exec_session *s, int r, const char *msg)
{
	struct berth_error err = {0};

	if (s->state == SESSION_DONE)
		return;
	s->state = SESSION_DONE;
	if (r == 0 && s->spec->kind != EXEC_CONSOLE) {
		json_t *md = json_deep_copy(s->spec->metadata);
		int ret = s->helper_error && s->exit_code == 255 ? -1 : s->exit_code;

		if (md) {
			json_object_set_new(md, "return", json_integer(ret));
			if (s->spec->output)
				json_object_set(md, "output", s->spec->output);
			operation_set_metadata(s->op, md);
		}
	}
	if (r < 0)
		berth_error_set(&err, r, BERTH_ERR_INTERNAL, "%s", msg ? msg : strerror(-r));
	operation_finish(s->op, r, &err);
	berth_error_release(&err);
	s->spec->session = NULL; /* the operation is done: cancel never looks again */

	kill_command(s, SIGKILL); /* only when it still runs (a failure path) */
	for (int i = 0; i < EXEC_NSOCKETS; i++) {
		struct session_ws *w = &s->ws[i];

		if (!w->ws || w->closed_by_us)
			continue;
		w->closed_by_us = true;
		if (i != EXEC_SOCKET_CONTROL && s->spec->kind != EXEC_CONSOLE &&
		    !(i == 0 && s->spec->kind == EXEC_PIPES))
			berth_ws_conn_send(w->ws, true, "", 0);
		berth_ws_conn_close(w->ws, 1000, "");
	}
	for (int i = 0; i < 3; i++)
		io_close(s, i);
	if (s->status_open) {
		s->status_open = false;
		close_handle(s, (uv_handle_t *)&s->status);
	}
	mon_close(s);
	drop_kept(s);
	for (int i = 0; i < 3; i++)
		if (s->direct[i] >= 0) {
			close(s->direct[i]);
			s->direct[i] = -EBADF;
		}
	close_handle(s, (uv_handle_t *)&s->connect_timer);
	close_handle(s, (uv_handle_t *)&s->poll_timer);
	close_handle(s, (uv_handle_t *)&s->cancel_async);
	/* the exit watch closes once the helper is reaped */
	session_maybe_free(s);
}
