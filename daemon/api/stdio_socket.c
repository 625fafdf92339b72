/* daemon/api/stdio_socket.c: berth's own stdio.socket (see stdio_socket.h).
 *
 * Each connection is read with recvmsg (libuv streams would drop the SCM_RIGHTS), once
 * readable: the request must come whole in that first message (berth sends one
 * sendmsg of under 200 bytes). A client that says nothing for STDIO_TIMEOUT_MS is
 * dropped. */
#define LOG_CATEGORY "stdio"
#include "daemon/api/stdio_socket.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/macros.h"
#include "lib/util.h"

#define STDIO_TIMEOUT_MS 5000
#define STDIO_REQUEST_MAX 256

struct stdio_conn {
	struct stdio_conn *prev, *next;
	struct stdio_socket *server;
	int fd;
	uv_poll_t poll;
	uv_timer_t timer;
	int open_handles;
};

struct stdio_socket {
	uv_loop_t *loop;
	struct operation_registry *ops; /* borrowed */
	int listen_fd;
	uv_poll_t poll;
	bool closing;
	int open_handles;
	struct stdio_conn *conns;
};

static void server_maybe_free(struct stdio_socket *s)
{
	if (s->closing && s->open_handles == 0 && !s->conns)
		free(s);
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct stdio_conn *c = h->data;
	struct stdio_socket *s = c->server;

	if (--c->open_handles > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	server_maybe_free(s);
}

static void conn_close(struct stdio_conn *c)
{
	if (c->fd < 0)
		return;
	uv_close((uv_handle_t *)&c->poll, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	close(c->fd);
	c->fd = -EBADF;
}

static void reply(struct stdio_conn *c, const char *fmt, ...) _printf_(2, 3);
static void reply(struct stdio_conn *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (send(c->fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("stdio.socket: cannot answer: %m");
}

/* Read the request with its fds and hand them to the operation. */
static void conn_request(struct stdio_conn *c)
{
	char buf[STDIO_REQUEST_MAX + 1];
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = STDIO_REQUEST_MAX};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.data,
			    .msg_controllen = sizeof(u.data)};
	_cleanup_(operation_unrefp) struct operation *op = NULL;
	int fds[3] = {-EBADF, -EBADF, -EBADF};
	size_t nfds = 0;
	const char *why = NULL;
	char *nl, *sp;
	ssize_t n;
	int r;

	do
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return; /* a spurious wake-up */
	for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (nfds < 3)
				fds[nfds] = fd;
			else
				close(fd);
			nfds++;
		}
	}
	if (n <= 0)
		goto out;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	sp = strchr(buf, ' ');
	if ((mh.msg_flags & MSG_CTRUNC) || !nl || !sp || sp > nl || nfds != 3) {
		reply(c, "error Bad request: one line \"OPERATION SECRET\" with three fds");
		goto out;
	}
	*nl = *sp = '\0';
	for (int i = 0; i < 3; i++)
		if (!berth_fd_may_enter_instance(fds[i])) {
			reply(c,
			      "error File descriptor %d is a terminal or a device: it cannot "
			      "be given to an instance",
			      i);
			goto out;
		}
	if (operation_find(c->server->ops, buf, &op) < 0) {
		reply(c, "error Operation not found");
		goto out;
	}
	r = operation_attach_fds(op, sp + 1, fds, &why);
	if (r < 0)
		reply(c, "error %s", why ? why : strerror(-r));
	else
		reply(c, "ok");
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	conn_close(c);
}

static void on_conn_readable(uv_poll_t *p, int status, int events)
{
	struct stdio_conn *c = p->data;

	(void)events;
	if (status < 0) {
		conn_close(c);
		return;
	}
	conn_request(c);
}

static void on_conn_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_accept(uv_poll_t *p, int status, int events)
{
	struct stdio_socket *s = p->data;

	(void)events;
	if (status < 0)
		return;
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct stdio_conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_debug("stdio.socket: accept: %m");
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c || uv_poll_init(s->loop, &c->poll, fd) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->server = s;
		c->fd = fd;
		c->poll.data = c->timer.data = c;
		uv_timer_init(s->loop, &c->timer);
		c->open_handles = 2;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		uv_poll_start(&c->poll, UV_READABLE, on_conn_readable);
		uv_timer_start(&c->timer, on_conn_timeout, STDIO_TIMEOUT_MS, 0);
	}
}

int stdio_socket_new(uv_loop_t *loop, struct operation_registry *ops, int listen_fd,
		     struct stdio_socket **ret)
{
	struct stdio_socket *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		close(listen_fd);
		return -ENOMEM;
	}
	s->loop = loop;
	s->ops = ops;
	s->listen_fd = listen_fd;
	r = uv_poll_init(loop, &s->poll, listen_fd);
	if (r < 0) {
		close(listen_fd);
		free(s);
		return r;
	}
	s->poll.data = s;
	s->open_handles = 1;
	uv_poll_start(&s->poll, UV_READABLE, on_accept);
	*ret = s;
	return 0;
}

static void server_handle_closed(uv_handle_t *h)
{
	struct stdio_socket *s = h->data;

	s->open_handles--;
	server_maybe_free(s);
}

void stdio_socket_close(struct stdio_socket *s)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	for (struct stdio_conn *c = s->conns; c; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&s->poll, server_handle_closed);
	close(s->listen_fd);
	s->listen_fd = -EBADF;
}
