/* agent/exec.c: commands run for the host, interactive (a pty) or not (three pipes), each
 * on its own channel: start, stdin, window size, signals, output, exit.
 *
 * A channel ends when its process was reaped: what is left in its pipes is read then
 * (a grandchild holding them open does not keep the exec alive), end-of-stream is sent
 * for each stream, then EXIT. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_ARGS 4096
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

struct exec_req {
	uint8_t flags;
	uint32_t uid, gid;
	uint16_t cols, rows;
	const char *cwd;
	const char **argv; /* owned array, strings borrowed from the frame */
	const char **envp; /* owned array, strings borrowed from the frame */
};

static void exec_req_release(struct exec_req *q)
{
	free(q->argv);
	free(q->envp);
}

/* u32 count, then that many strs, into a NULL-terminated array. */
static int read_strv(struct agent_rd *rd, const char ***ret)
{
	uint32_t n = agent_rd_u32(rd);
	const char **v;

	if (rd->bad || n > MAX_ARGS)
		return -EBADMSG;
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		v[i] = agent_rd_str(rd);
	*ret = v;
	return 0;
}

static int exec_req_parse(const uint8_t *p, size_t len, struct exec_req *q)
{
	struct agent_rd rd;
	int r;

	agent_rd_init(&rd, p, len);
	q->flags = agent_rd_u8(&rd);
	q->uid = agent_rd_u32(&rd);
	q->gid = agent_rd_u32(&rd);
	q->cols = agent_rd_u16(&rd);
	q->rows = agent_rd_u16(&rd);
	q->cwd = agent_rd_str(&rd);
	r = read_strv(&rd, &q->argv);
	if (r >= 0)
		r = read_strv(&rd, &q->envp);
	if (r >= 0)
		r = agent_rd_done(&rd);
	if (r >= 0 && !q->argv[0])
		r = -EBADMSG;
	return r;
}

/* What the child was doing when it failed, for the host's error message. */
enum child_step {
	STEP_SETUP,    /* session, terminal, streams */
	STEP_IDENTITY, /* groups, gid, uid */
	STEP_CWD,
	STEP_EXEC,
	STEP_MAX,
};

/* In the child: report errno and the step on `errfd` (the parent reads them as the
 * exec's failure). */
static _Noreturn void child_fail(int errfd, enum child_step step)
{
	int e[2] = {errno, step};

	if (write(errfd, e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/* The value of `name` in `envp`, or NULL. */
static const char *env_get(const char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* In the child: the request's cwd; none given, as lxd-agent: the command's $HOME, else (or
 * when that is no directory it may enter) "/". Never the agent's own. */
static int child_chdir(const struct exec_req *q)
{
	const char *home;

	if (q->cwd[0])
		return chdir(q->cwd);
	home = env_get(q->envp, "HOME");
	if (home && home[0] && chdir(home) == 0)
		return 0;
	return chdir("/");
}

/* In the child: the pty's slave becomes the command's (its uid, and its gid when given;
 * 0620), as a login's terminal is, before the identity is dropped. */
static int child_own_tty(const struct exec_req *q, int fd)
{
	if (q->uid == AGENT_ID_NONE && q->gid == AGENT_ID_NONE)
		return 0;
	if (fchown(fd, q->uid == AGENT_ID_NONE ? (uid_t)-1 : q->uid,
		   q->gid == AGENT_ID_NONE ? (gid_t)-1 : q->gid) < 0)
		return -1;
	return fchmod(fd, 0620);
}

/* In the child: become what the request asks, then exec. Reports errno on `errfd`. */
static _Noreturn void child_exec(const struct exec_req *q, int errfd, const char *pts)
{
	static const char *fallback_env[] = {DEFAULT_PATH, NULL};
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (setsid() < 0)
		child_fail(errfd, STEP_SETUP);
	if (pts) {
		int fd = open(pts, O_RDWR);

		if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0 || child_own_tty(q, fd) < 0)
			child_fail(errfd, STEP_SETUP);
		if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			child_fail(errfd, STEP_SETUP);
		if (fd > 2)
			close(fd);
	}
	/* another identity keeps none of the agent's supplementary groups */
	if (((q->uid != AGENT_ID_NONE || q->gid != AGENT_ID_NONE) && setgroups(0, NULL) < 0) ||
	    (q->gid != AGENT_ID_NONE && setgid(q->gid) < 0) ||
	    (q->uid != AGENT_ID_NONE && setuid(q->uid) < 0))
		child_fail(errfd, STEP_IDENTITY);
	if (child_chdir(q) < 0)
		child_fail(errfd, STEP_CWD);
	/* execvp searches the PATH of the environment it runs in: the command's */
	environ = (char **)(q->envp[0] ? q->envp : fallback_env);
	execvp(q->argv[0], (char *const *)q->argv);
	child_fail(errfd, STEP_EXEC);
}

/* The fds of the child's side and ours: a pty, or three pipes. */
struct exec_fds {
	int in[2], out[2], err[2];
	int master;
	char pts[64];
};

static void exec_fds_close(struct exec_fds *x)
{
	int *all[] = {&x->in[0],  &x->in[1],  &x->out[0], &x->out[1],
		      &x->err[0], &x->err[1], &x->master};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (*all[i] >= 0) {
			close(*all[i]);
			*all[i] = -EBADF;
		}
}

static int exec_fds_open(const struct exec_req *q, struct exec_fds *x)
{
	*x = (struct exec_fds){{-1, -1}, {-1, -1}, {-1, -1}, -1, ""};
	if (q->flags & AGENT_EXEC_INTERACTIVE) {
		struct winsize ws = {.ws_col = q->cols ? q->cols : 80,
				     .ws_row = q->rows ? q->rows : 24};

		x->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (x->master < 0)
			return -errno;
		if (grantpt(x->master) < 0 || unlockpt(x->master) < 0 ||
		    ptsname_r(x->master, x->pts, sizeof(x->pts)) != 0 ||
		    ioctl(x->master, TIOCSWINSZ, &ws) < 0)
			return -errno;
		return 0;
	}
	if (pipe2(x->in, O_CLOEXEC) < 0 || pipe2(x->out, O_CLOEXEC) < 0 ||
	    pipe2(x->err, O_CLOEXEC) < 0)
		return -errno;
	return 0;
}

/* dup2 that also clears close-on-exec when `fd` already is `to` */
static int move_fd(int fd, int to)
{
	if (fd == to)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, to);
}

/* Fork and exec; *ret_pid on success, -errno of the exec (or of the child's set-up, the
 * step in *ret_step). */
static int spawn(const struct exec_req *q, struct exec_fds *x, pid_t *ret_pid,
		 enum child_step *ret_step)
{
	int sync[2], e[2] = {0, STEP_SETUP};
	ssize_t n;
	pid_t pid;

	if (pipe2(sync, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		e[0] = errno;
		close(sync[0]);
		close(sync[1]);
		return -e[0];
	}
	if (pid == 0) {
		close(sync[0]);
		if (!x->pts[0] && (move_fd(x->in[0], 0) < 0 || move_fd(x->out[1], 1) < 0 ||
				   move_fd(x->err[1], 2) < 0))
			child_fail(sync[1], STEP_SETUP);
		child_exec(q, sync[1], x->pts[0] ? x->pts : NULL);
	}
	close(sync[1]);
	do
		n = read(sync[0], e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(sync[0]);
	if (n == sizeof(e)) {
		waitpid(pid, NULL, 0);
		*ret_step = e[1] >= 0 && e[1] < STEP_MAX ? (enum child_step)e[1] : STEP_SETUP;
		return e[0] > 0 ? -e[0] : -EIO;
	}
	*ret_pid = pid;
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Keep our ends of `x` in `ch` (the child's ends are closed by the caller). */
static int chan_take_fds(struct agent_chan *ch, struct exec_fds *x)
{
	if (ch->interactive) {
		ch->out_fd = x->master;
		x->master = -EBADF;
		ch->in_fd = fcntl(ch->out_fd, F_DUPFD_CLOEXEC, 3);
		if (ch->in_fd < 0)
			return -errno;
	} else {
		ch->in_fd = x->in[1];
		ch->out_fd = x->out[0];
		ch->err_fd = x->err[0];
		x->in[1] = x->out[0] = x->err[0] = -EBADF;
	}
	if (set_nonblock(ch->in_fd) < 0 || set_nonblock(ch->out_fd) < 0 ||
	    (ch->err_fd >= 0 && set_nonblock(ch->err_fd) < 0))
		return -errno;
	return 0;
}

/* The exec failed at `step`: tell the host what, naming the command. */
static int send_spawn_error(struct agent_conn *c, uint32_t id, int r, enum child_step step,
			    const struct exec_req *q)
{
	switch (step) {
	case STEP_EXEC:
		return agent_send_error(c, id, r, "exec \"%s\": %s", q->argv[0], strerror(-r));
	case STEP_CWD:
		return agent_send_error(c, id, r, "exec \"%s\": cwd \"%s\": %s", q->argv[0], q->cwd,
					strerror(-r));
	case STEP_IDENTITY:
		return agent_send_error(c, id, r, "exec \"%s\": uid %d gid %d: %s", q->argv[0],
					(int)q->uid, (int)q->gid, strerror(-r));
	default:
		return agent_send_error(c, id, r, "exec \"%s\": set-up: %s", q->argv[0],
					strerror(-r));
	}
}

int agent_exec_start(struct agent_conn *c, uint32_t id, const uint8_t *p, size_t len)
{
	enum child_step step = STEP_SETUP;
	struct exec_req q = {0};
	struct exec_fds x;
	struct agent_chan *ch;
	uint8_t started[4];
	pid_t pid = 0;
	int r;

	r = exec_req_parse(p, len, &q);
	if (r < 0) {
		exec_req_release(&q);
		return agent_send_error(c, id, r, "malformed EXEC request");
	}
	ch = agent_chan_new(c, id, &r);
	if (!ch) {
		exec_req_release(&q);
		return agent_send_error(c, id, r, "channel %u: %s", id,
					r == -EBUSY ? "in use" : "too many channels");
	}
	r = exec_fds_open(&q, &x);
	if (r >= 0)
		r = spawn(&q, &x, &pid, &step);
	if (r < 0) {
		exec_fds_close(&x);
		agent_chan_release(ch);
		r = send_spawn_error(c, id, r, step, &q);
		exec_req_release(&q);
		return r;
	}
	exec_req_release(&q);
	ch->kind = AGENT_CHAN_EXEC;
	ch->pid = pid;
	ch->interactive = x.master >= 0;
	r = chan_take_fds(ch, &x);
	exec_fds_close(&x);
	if (r < 0)
		kill(pid, SIGKILL); /* reaped as any other exit; the host sees it killed */
	for (int i = 0; i < 4; i++)
		started[i] = (uint8_t)((uint32_t)pid >> (24 - 8 * i));
	return agent_send(c, AGENT_T_STARTED, id, started, sizeof(started));
}

int agent_exec_stdin(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len)
{
	if (ch->stdin_eof || ch->in_fd < 0)
		return 0; /* the command closed it, or it is closing: late bytes are dropped */
	if (len == 0) {
		ch->stdin_eof = true;
		return agent_exec_flush_stdin(c, ch);
	}
	if (ch->stdin_q.len - ch->stdin_off + len > AGENT_STDIN_QUEUE_MAX)
		return agent_send_error(c, ch->id, -ENOBUFS,
					"stdin: more than %u bytes the command has not read",
					AGENT_STDIN_QUEUE_MAX);
	agent_buf_put(&ch->stdin_q, p, len);
	if (ch->stdin_q.failed)
		return -ENOMEM;
	return agent_exec_flush_stdin(c, ch);
}

static void close_stdin(struct agent_chan *ch)
{
	if (ch->in_fd >= 0)
		close(ch->in_fd);
	ch->in_fd = -EBADF;
	agent_buf_release(&ch->stdin_q);
	ch->stdin_off = 0;
}

int agent_exec_flush_stdin(struct agent_conn *c, struct agent_chan *ch)
{
	while (ch->in_fd >= 0 && ch->stdin_q.len > ch->stdin_off) {
		ssize_t n = write(ch->in_fd, ch->stdin_q.data + ch->stdin_off,
				  ch->stdin_q.len - ch->stdin_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0) { /* EPIPE: the command closed its stdin */
			close_stdin(ch);
			return 0;
		}
		ch->stdin_off += (size_t)n;
	}
	ch->stdin_q.len = ch->stdin_off = 0;
	/* A pty has no end of input but the one its line discipline reads (^D). */
	if (ch->stdin_eof && !ch->interactive)
		close_stdin(ch);
	return 0;
}

int agent_exec_resize(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len)
{
	struct agent_rd rd;
	struct winsize ws = {0};

	agent_rd_init(&rd, p, len);
	ws.ws_col = agent_rd_u16(&rd);
	ws.ws_row = agent_rd_u16(&rd);
	if (agent_rd_done(&rd) < 0)
		return agent_send_error(c, ch->id, -EBADMSG, "malformed RESIZE");
	if (!ch->interactive || ch->out_fd < 0)
		return 0; /* LXD ignores window sizes of a command without a terminal */
	if (ioctl(ch->out_fd, TIOCSWINSZ, &ws) < 0)
		return agent_send_error(c, ch->id, -errno, "resize: %s", strerror(errno));
	return 0;
}

int agent_exec_signal(struct agent_conn *c, struct agent_chan *ch, const uint8_t *p, size_t len)
{
	struct agent_rd rd;
	uint32_t sig;

	agent_rd_init(&rd, p, len);
	sig = agent_rd_u32(&rd);
	if (agent_rd_done(&rd) < 0 || sig == 0 || sig >= 65)
		return agent_send_error(c, ch->id, -EINVAL, "invalid signal");
	if (kill(ch->pid, (int)sig) < 0 && errno != ESRCH)
		return agent_send_error(c, ch->id, -errno, "signal %u: %s", sig, strerror(errno));
	return 0;
}

/* Read once from `*fdp`; at end of stream close it and tell the host. 1 when bytes were
 * forwarded, 0 when none are waiting or the stream ended, -errno on transport failure. */
static int forward_once(struct agent_conn *c, struct agent_chan *ch, int *fdp)
{
	uint8_t type = fdp == &ch->err_fd ? AGENT_T_STDERR : AGENT_T_STDOUT;
	uint8_t buf[AGENT_CHUNK];
	ssize_t n;
	int r;

	do
		n = read(*fdp, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n > 0) {
		r = agent_send(c, type, ch->id, buf, (size_t)n);
		return r < 0 ? r : 1;
	}
	/* 0, or EIO from a pty master whose last slave is closed */
	close(*fdp);
	*fdp = -EBADF;
	if (ch->interactive) /* in_fd is a dup of the master */
		close_stdin(ch);
	return agent_send(c, type, ch->id, NULL, 0);
}

int agent_exec_output(struct agent_conn *c, struct agent_chan *ch, int fd)
{
	int *fdp = fd == ch->err_fd ? &ch->err_fd : &ch->out_fd;
	int r = forward_once(c, ch, fdp);

	return r < 0 ? r : 0;
}

/* Reads of up to AGENT_CHUNK bytes per stream after the command ended: 1 MiB pipes. */
#define FINISH_DRAIN_READS (((size_t)1 << 20) / AGENT_CHUNK + 1)

/* The process is gone: forward what its streams still hold, end them, send EXIT. */
static int finish(struct agent_conn *c, struct agent_chan *ch, int status)
{
	uint32_t code = WIFEXITED(status) ? (uint32_t)WEXITSTATUS(status)
					  : 128u + (uint32_t)WTERMSIG(status);
	uint8_t p[4] = {(uint8_t)(code >> 24), (uint8_t)(code >> 16), (uint8_t)(code >> 8),
			(uint8_t)code};
	int *streams[] = {&ch->out_fd, &ch->err_fd};
	int r = 0;

	for (size_t i = 0; i < 2; i++) {
		size_t reads = 0;

		/* What the pipe held when the command ended is at most a pipe's capacity (or
		 * a pty's buffer); a process left behind that keeps writing must not hold the
		 * agent here, so the drain is bounded and the rest is dropped. */
		r = 0;
		while (*streams[i] >= 0 && reads++ < FINISH_DRAIN_READS &&
		       (r = forward_once(c, ch, streams[i])) == 1)
			;
		if (*streams[i] >= 0) { /* held open by a process left behind */
			close(*streams[i]);
			*streams[i] = -EBADF;
			r = agent_send(c, i == 0 ? AGENT_T_STDOUT : AGENT_T_STDERR, ch->id, NULL,
				       0);
		}
		if (r < 0)
			return r;
	}
	r = agent_send(c, AGENT_T_EXIT, ch->id, p, sizeof(p));
	agent_chan_release(ch);
	return r;
}

int agent_exec_reap(struct agent_conn *c)
{
	int status, r;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < AGENT_MAX_CHANNELS; i++) {
			struct agent_chan *ch = &c->chans[i];

			if (ch->kind != AGENT_CHAN_EXEC || ch->pid != pid)
				continue;
			r = finish(c, ch, status);
			if (r < 0)
				return r;
			break;
		}
	}
	return 0;
}

void agent_exec_kill_all(struct agent_conn *c)
{
	for (size_t i = 0; i < AGENT_MAX_CHANNELS; i++) {
		struct agent_chan *ch = &c->chans[i];

		if (ch->kind != AGENT_CHAN_EXEC)
			continue;
		kill(-ch->pid, SIGKILL); /* its session and process group */
		kill(ch->pid, SIGKILL);
		waitpid(ch->pid, NULL, 0);
		agent_chan_release(ch);
	}
}
