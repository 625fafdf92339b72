/* daemon/runtime/monitor_request.c: the request protocol on RUNDIR/monitor.sock
 * (doc/runtime.md, monitor_internal.h): clients accepted, one request line read (with
 * up to three fds for an exec), handled and answered; the clients that stay (wait,
 * stop, restart, console, exec) are answered later by the loop, and console clients
 * get what the container writes on its console. */
#include "daemon/runtime/monitor_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>

#include "daemon/runtime/idmap.h"

/* ---- clients ---- */

void client_send(struct client *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client went away; it is dropped on its next poll */
	}
}

static bool client_hung_up(const struct client *c)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void client_drop(struct monitor *m, struct client *c)
{
	for (struct client **p = &m->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->exec)
		c->exec->client = NULL; /* it runs on; nobody hears of its end */
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	close(c->fd);
	free(c->buf);
	free(c);
}

/* A client that stays after its request (waiting, console, exec): its request buffer
 * goes, the line in it having been handled. */
void client_keep(struct client *c, enum client_kind kind)
{
	c->kind = kind;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

/* ---- requests ---- */

static void handle_request(struct monitor *m, struct client *c, char *line)
{
	long timeout = -1;
	int sig = 0, n = 0;
	unsigned w, h;

	if (streq(line, "status")) {
		const char *state = runtime_cgroup_is_frozen(m->cg) ? "frozen" : "running";
		if (m->state == ST_STOPPING)
			state = "stopping";
		client_send(c, "ok %s %d", state, (int)m->init_pid);
	} else if (sscanf(line, "stop %ld%n %d%n", &timeout, &n, &sig, &n) >= 1 && !line[n]) {
		if (sig < 0 || sig >= _NSIG || sig == SIGSTOP) {
			client_send(c, "error bad signal");
			client_drop(m, c);
			return;
		}
		begin_stop(m, STOP_STOP, timeout, sig ? sig : m->stop_signal);
		client_keep(c, CL_STOP);
		return;
	} else if (streq(line, "kill")) {
		begin_stop(m, STOP_STOP, 0, SIGKILL);
		client_keep(c, CL_STOP);
		return;
	} else if (sscanf(line, "restart %ld%n", &timeout, &n) == 1 && !line[n]) {
		begin_stop(m, STOP_RESTART, timeout, m->stop_signal);
		client_keep(c, CL_RESTART);
		return;
	} else if (streq(line, "freeze") || streq(line, "unfreeze")) {
		int r = runtime_cgroup_freeze(m->cg, line[0] == 'f');
		if (r < 0) {
			client_send(c, "error %s", strerror(-r));
		} else {
			m->frozen = line[0] == 'f';
			client_send(c, "ok");
		}
	} else if (streq(line, "console")) {
		client_send(c, "ok");
		client_keep(c, CL_CONSOLE);
		return;
	} else if (sscanf(line, "console-resize %u %u%n", &w, &h, &n) == 2 && !line[n] &&
		   w < 65536 && h < 65536) {
		int r = runtime_console_resize(m->console, (unsigned short)w, (unsigned short)h);
		if (r < 0)
			client_send(c, "error %s", strerror(-r));
		else
			client_send(c, "ok");
	} else if (streq(line, "wait")) {
		client_keep(c, CL_WAIT);
		return;
	} else if (berth_startswith(line, "exec ")) {
		handle_exec(m, c, line + 5);
		return;
	} else if (berth_startswith(line, "limits ")) {
		handle_limits(m, c, line + 7);
	} else {
		client_send(c, "error unknown request \"%.64s\"", line);
	}
	client_drop(m, c);
}

void client_readable(struct monitor *m, struct client *c)
{
	char buf[4096];
	ssize_t n;

	if (c->kind == CL_CONSOLE) {
		n = read(c->fd, buf, sizeof(buf));
		if (n <= 0) {
			client_drop(m, c);
			return;
		}
		if (write(m->console->master, buf, (size_t)n) < 0) {
			/* console input is best effort */
		}
		return;
	}
	if (c->kind == CL_EXEC) {
		/* "signal N" lines for the command ("resize COLS ROWS" too, which berth-vmmon
		 * needs and we ignore: a --pty command's terminal is the client's own pty,
		 * resized by the client); EOF: the client left, the command runs on */
		n = read(c->fd, buf, sizeof(buf) - 1);
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN)
				client_drop(m, c);
			return;
		}
		buf[n] = '\0';
		for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save)) {
			int sig, k = 0;
			if (sscanf(l, "signal %d%n", &sig, &k) == 1 && !l[k] && sig > 0 &&
			    sig < _NSIG && c->exec)
				pidfd_send_signal(c->exec->pidfd, sig, NULL, 0);
		}
		return;
	}
	if (c->kind != CL_NEW) {
		/* waiting clients send nothing; EOF or data means they left */
		n = read(c->fd, buf, sizeof(buf));
		if (n <= 0)
			client_drop(m, c);
		return;
	}
	if (c->cap - c->len < 128 && c->cap < REQUEST_MAX) {
		size_t cap = c->cap ? c->cap * 4 : 256;
		char *nb = realloc(c->buf, cap);
		if (!nb) {
			client_drop(m, c);
			return;
		}
		c->buf = nb;
		c->cap = cap;
	}
	if (c->cap - c->len < 2) {
		client_send(c, "error request too long");
		client_drop(m, c);
		return;
	}
	{
		size_t got = 0;
		int r = runtime_recv_fds(c->fd, c->buf + c->len, c->cap - c->len, c->fds + c->nfds,
					 ARRAY_SIZE(c->fds) - c->nfds, &got);
		if (r == -EAGAIN || r == -EINTR)
			return;
		if (r < 0) {
			client_drop(m, c);
			return;
		}
		c->nfds += got;
		c->len += strlen(c->buf + c->len);
	}
	char *nl = strchr(c->buf, '\n');
	if (!nl) {
		if (c->len >= REQUEST_MAX - 2) {
			client_send(c, "error request too long");
			client_drop(m, c);
		}
		return;
	}
	*nl = '\0';
	if (nl > c->buf && nl[-1] == '\r')
		nl[-1] = '\0';
	/* A client gone before we read its request (berthd's wait timed out while we were
	 * stuck) was told it failed: doing it now would surprise everyone. */
	if (client_hung_up(c)) {
		client_drop(m, c);
		return;
	}
	handle_request(m, c, c->buf);
}

bool client_alive(const struct monitor *m, const struct client *c)
{
	for (const struct client *x = m->clients; x; x = x->next)
		if (x == c)
			return true;
	return false;
}

void accept_client(struct monitor *m)
{
	int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct client *c;

	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->fds[0] = c->fds[1] = c->fds[2] = -EBADF;
	c->next = m->clients;
	m->clients = c;
}

/* ---- the console ---- */

void console_output(struct monitor *m)
{
	char buf[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = runtime_console_read(m->console, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (struct client *c = m->clients; c; c = c->next)
			if (c->kind == CL_CONSOLE &&
			    send(c->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* a slow console client loses output rather than stall the rest */
			}
	}
}
