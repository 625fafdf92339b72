/* daemon/vm/vmmon_exec.c: berth-vmmon's `exec` requests (vmmon_internal.h): the words
 * and replies of a container monitor's (doc/runtime.md), the command run by the agent.
 *
 * The request's three fds are the command's stdin, stdout and stderr (with --pty, a host
 * pty's slave thrice: put in raw mode, the guest's terminal doing the line discipline,
 * its size the guest terminal's first). The client hears "started PID" (the guest's
 * pid), or "failed MSG" and "exit 127|126" when the agent could not run it, or "error
 * MSG" (LXD's agent-not-running message while no session is up), then "exit CODE"; it
 * may send "signal N" and "resize COLS ROWS".
 *
 * Output: the agent's callbacks write to the fds, non-blocking; what a reader does not
 * take waits in a buffer per stream. Past VMMON_OUT_HIGH bytes the loop stops pumping
 * the agent's stream, so the guest waits for the slow reader (no loss), but for
 * VMMON_STALL_MS at most: a reader stuck that long loses that command's output from then
 * on (logged) and the other channels go on. Output that comes while vmmon is in a
 * blocking agent call is buffered regardless, up to VMMON_OUT_MAX, then dropped the same
 * way. The callbacks never call the agent client
 * back (agent_client.h): the end of a command (release of its channel, the exit line)
 * is done by the loop, in vmmon_exec_flush(). */
#include "daemon/vm/vmmon_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "daemon/runtime/exec.h"
#include "daemon/runtime/exec_words.h"
#include "lib/util.h"

/* ---- output ---- */

static void obuf_close(struct vmmon_exec *e, int k)
{
	struct vmmon_obuf *o = &e->out[k];

	o->closed = true;
	free(o->data);
	o->data = NULL;
	o->off = o->len = o->cap = 0;
	o->stuck_ns = 0;
	berth_closep(&e->out_fd[k]);
	e->out_fd[k] = -EBADF;
}

/* Write what waits on stream `k`; close it once ended and empty. */
static void obuf_write(struct vmmon_exec *e, int k)
{
	struct vmmon_obuf *o = &e->out[k];

	while (o->len > 0 && !o->closed) {
		ssize_t n = write(e->out_fd[k], o->data + o->off, o->len);
		if (n > 0) {
			o->off += (size_t)n;
			o->len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			break;
		} else { /* the reader is gone: nothing more to write */
			o->dropped = true;
			obuf_close(e, k);
		}
	}
	if (o->len == 0)
		o->off = 0;
	if (o->len < VMMON_OUT_HIGH)
		o->stuck_ns = 0;
	if (!o->closed && o->len == 0 && o->eof)
		obuf_close(e, k);
}

static void obuf_append(struct vmmon_exec *e, int k, const void *p, size_t len)
{
	struct vmmon_obuf *o = &e->out[k];

	/* len 0: the reader took it all (o->data may not exist yet: no memcpy to NULL) */
	if (o->closed || o->dropped || len == 0)
		return;
	if (o->len + len > VMMON_OUT_MAX) {
		vmmon_log("exec %u: over %u bytes of output waiting for its reader: output dropped",
			  e->ch, VMMON_OUT_MAX);
		o->dropped = true;
		o->len = 0;
		o->stuck_ns = 0;
		if (o->eof)
			obuf_close(e, k);
		return;
	}
	if (o->off + o->len + len > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		char *nd;

		if (o->off) { /* the written part goes first */
			memmove(o->data, o->data + o->off, o->len);
			o->off = 0;
		}
		while (cap < o->len + len)
			cap *= 2;
		nd = cap > o->cap ? realloc(o->data, cap) : o->data;
		if (!nd) {
			vmmon_log("exec %u: out of memory, output dropped", e->ch);
			o->dropped = true;
			return;
		}
		o->data = nd;
		o->cap = cap > o->cap ? cap : o->cap;
	}
	memcpy(o->data + o->off + o->len, p, len);
	o->len += len;
	if (o->len >= VMMON_OUT_HIGH && !o->stuck_ns)
		o->stuck_ns = berth_monotonic_ns();
}

static void on_output(void *data, uint32_t ch, int stream, const void *p, size_t len)
{
	struct vmmon_exec *e = data;
	int k = e->pty ? 0 : stream == 2 ? 1 : 0;

	if (len == 0) {
		e->out[k].eof = true;
	} else if (e->out[k].len == 0 && !e->out[k].closed && !e->out[k].dropped) {
		/* straight to the reader, what it takes; the rest waits */
		ssize_t n = write(e->out_fd[k], p, len);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			e->out[k].dropped = true;
			obuf_close(e, k);
			return;
		}
		if (n > 0) {
			p = (const char *)p + n;
			len -= (size_t)n;
		}
		obuf_append(e, k, p, len);
	} else {
		obuf_append(e, k, p, len);
	}
	obuf_write(e, k);
}

static void on_exit_cb(void *data, uint32_t ch, int status)
{
	struct vmmon_exec *e = data;

	e->exited = true;
	e->status = status;
	e->out[0].eof = e->out[1].eof = true; /* the agent sent both ends before */
}

static const struct agent_exec_cbs exec_cbs = {.output = on_output, .exit = on_exit_cb};

/* ---- the command's life ---- */

static void exec_free(struct vmmon *m, struct vmmon_exec *e)
{
	for (struct vmmon_exec **p = &m->execs; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	if (e->client)
		e->client->exec = NULL;
	if (m->agent && e->ch)
		agent_client_exec_release(m->agent, e->ch);
	berth_closep(&e->in_fd);
	for (int k = 0; k < 2; k++) {
		free(e->out[k].data);
		berth_closep(&e->out_fd[k]);
	}
	free(e);
}

void vmmon_exec_abort(struct vmmon *m, struct vmmon_exec *e)
{
	if (e->client)
		vmmon_client_drop(m, e->client); /* EOF before "exit": the command was lost */
	exec_free(m, e);
}

void vmmon_exec_flush(struct vmmon *m, struct vmmon_exec *e)
{
	for (int k = 0; k < 2; k++)
		obuf_write(e, k);
	if (!e->exited || !e->out[0].closed || !e->out[1].closed)
		return;
	/* every output fd closed (the reader saw EOF), then the exit line */
	if (e->client) {
		struct vmmon_client *c = e->client;
		vmmon_client_send(c, "exit %d", e->status);
		vmmon_client_drop(m, c);
	}
	exec_free(m, e);
}

void vmmon_exec_input(struct vmmon *m, struct vmmon_exec *e)
{
	struct berth_error err = {0};
	char buf[AGENT_CHUNK];
	ssize_t n = read(e->in_fd, buf, sizeof(buf));
	int r = 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { /* end of input (a pty's master closed: EIO) */
		berth_closep(&e->in_fd);
		e->in_fd = -EBADF;
		if (!e->pty && !e->exited && m->agent)
			r = agent_client_exec_stdin(m->agent, e->ch, "", 0, &err);
	} else if (!e->exited && m->agent) {
		r = agent_client_exec_stdin(m->agent, e->ch, buf, (size_t)n, &err);
	}
	if (r < 0 && m->agent && (r == -ETIMEDOUT || agent_client_broken(m->agent)))
		vmmon_session_lost(m, berth_error_msg(&err, r));
	else if (r < 0)
		vmmon_log("exec %u: stdin: %s", e->ch, berth_error_msg(&err, r));
	berth_error_release(&err);
}

void vmmon_exec_control(struct vmmon *m, struct vmmon_exec *e, const char *line)
{
	struct berth_error err = {0};
	unsigned cols, rows;
	int sig, k = 0, r = 0;

	if (e->exited || !m->agent)
		return;
	if (sscanf(line, "signal %d%n", &sig, &k) == 1 && !line[k] && sig > 0 && sig < 65)
		r = agent_client_exec_signal(m->agent, e->ch, sig, &err);
	else if (sscanf(line, "resize %u %u%n", &cols, &rows, &k) == 2 && !line[k] && e->pty &&
		 cols > 0 && rows > 0 && cols < 65536 && rows < 65536)
		r = agent_client_exec_resize(m->agent, e->ch, (uint16_t)cols, (uint16_t)rows, &err);
	if (r < 0 && (r == -ETIMEDOUT || agent_client_broken(m->agent)))
		vmmon_session_lost(m, berth_error_msg(&err, r));
	berth_error_release(&err);
}

bool vmmon_exec_may_pump(struct vmmon *m, int *ret_timeout_ms)
{
	uint64_t now = berth_monotonic_ns(), stall = VMMON_STALL_MS * 1000000ULL;
	bool pump = true;

	for (struct vmmon_exec *e = m->execs; e; e = e->next)
		for (int k = 0; k < 2; k++) {
			struct vmmon_obuf *o = &e->out[k];
			if (!o->stuck_ns || o->closed)
				continue;
			if (now - o->stuck_ns >= stall) {
				vmmon_log(
					"exec %u: its reader took nothing for %d s: output dropped",
					e->ch, VMMON_STALL_MS / 1000);
				o->dropped = true;
				o->len = 0;
				o->stuck_ns = 0;
				if (o->eof)
					obuf_close(e, k);
				continue;
			}
			int left = (int)((o->stuck_ns + stall - now) / 1000000) + 1;
			if (*ret_timeout_ms < 0 || left < *ret_timeout_ms)
				*ret_timeout_ms = left;
			pump = false;
		}
	/* an exec that ended while it was held back finishes now */
	for (struct vmmon_exec *e = m->execs, *next; e; e = next) {
		next = e->next;
		if (e->exited)
			vmmon_exec_flush(m, e);
	}
	return pump;
}

/* ---- the request ---- */

static bool exec_alive_in(const struct vmmon *m, const struct vmmon_exec *e)
{
	for (const struct vmmon_exec *x = m->execs; x; x = x->next)
		if (x == e)
			return true;
	return false;
}

/* The request's fds become the command's: non-blocking; a pty raw, its size read. */
static int exec_take_fds(struct vmmon_exec *e, struct vmmon_client *c, struct agent_exec_req *req)
{
	for (int i = 0; i < 3; i++) {
		int fl = fcntl(c->fds[i], F_GETFL);
		if (fl < 0 || fcntl(c->fds[i], F_SETFL, fl | O_NONBLOCK) < 0)
			return -errno;
	}
	if (e->pty) {
		struct termios t;
		struct winsize ws = {0};

		if (tcgetattr(c->fds[0], &t) < 0)
			return -errno;
		cfmakeraw(&t);
		if (tcsetattr(c->fds[0], TCSANOW, &t) < 0)
			return -errno;
		if (ioctl(c->fds[0], TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
			req->cols = ws.ws_col;
			req->rows = ws.ws_row;
		}
	}
	e->in_fd = c->fds[0];
	e->out_fd[0] = c->fds[1];
	e->out_fd[1] = c->fds[2];
	c->nfds = 0;
	if (e->pty) /* one stream: the slave's third copy is not needed */
		obuf_close(e, 1);
	return 0;
}

/* Start it; the client hears "started" or why not (and is then dropped by the caller). */
static int exec_start(struct vmmon *m, struct vmmon_client *c, const struct runtime_exec_opts *o,
		      struct vmmon_exec *e)
{
	struct berth_error err = {0};
	char **env = runtime_exec_env(o);
	struct agent_exec_req req = {
		.argv = (const char *const *)o->argv,
		.env = (const char *const *)env,
		.cwd = o->cwd,
		.uid = o->uid,
		.gid = o->gid,
		.interactive = o->pty,
	};
	uint32_t pid = 0;
	int r = env ? exec_take_fds(e, c, &req) : -ENOMEM;

	if (r < 0) {
		runtime_exec_env_free(env);
		vmmon_client_send(c, "error %s", strerror(-r));
		return r;
	}
	r = agent_client_exec_start(m->agent, &req, &exec_cbs, e, &e->ch, &pid, VMMON_CALL_MS,
				    &err);
	runtime_exec_env_free(env);
	if (r < 0 && (r == -ETIMEDOUT || agent_client_broken(m->agent))) {
		/* no answer, or the session broke: the agent is not (or no longer) there */
		vmmon_client_send(c, "error %s", VMMON_AGENT_OFFLINE);
		vmmon_session_lost(m, berth_error_msg(&err, r));
	} else if (r < 0) { /* the agent could not run it: as a container's exec fails */
		vmmon_client_send(c, "failed %s", berth_error_msg(&err, r));
		vmmon_client_send(c, "exit %d", r == -ENOENT ? 127 : 126);
	} else {
		vmmon_client_send(c, "started %u", pid);
	}
	berth_error_release(&err);
	return r;
}

void vmmon_exec_request(struct vmmon *m, struct vmmon_client *c, char *words)
{
	struct runtime_exec_opts o = {.rundir = m->rundir, .status_fd = -1};
	_cleanup_free_ char **argv = NULL;
	struct vmmon_exec *e = NULL;
	char *nb;
	size_t n = 0;

	if (runtime_words_split(words, &argv, &n) < 0 || c->nfds != 3 || n > INT32_MAX ||
	    runtime_exec_parse((int)n, argv, &o) < 0) {
		vmmon_client_send(c, "error bad request");
		goto drop;
	}
	if (!m->agent) {
		vmmon_client_send(c, "error %s", VMMON_AGENT_OFFLINE);
		goto drop;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		vmmon_client_send(c, "error out of memory");
		goto drop;
	}
	e->in_fd = e->out_fd[0] = e->out_fd[1] = -EBADF;
	e->pty = o.pty;
	e->next = m->execs;
	m->execs = e;
	if (exec_start(m, c, &o, e) < 0) {
		if (exec_alive_in(m, e))
			exec_free(m, e);
		e = NULL;
		goto drop;
	}
	free(o.env);
	/* the request's words (in c->buf) are no longer needed: control lines come next */
	nb = c->cap < 4096 ? realloc(c->buf, 4096) : c->buf;
	if (nb) {
		c->buf = nb;
		c->cap = c->cap < 4096 ? 4096 : c->cap;
	}
	e->client = c;
	c->exec = e;
	c->kind = VC_EXEC;
	c->len = 0;
	c->buf[0] = '\0';
	return;
drop:
	free(o.env);
	free(e);
	vmmon_client_drop(m, c);
}
