/* lib/client.c: the blocking REST client (see client.h): one keep-alive HTTP/1.1
 * connection over AF_UNIX, or to a remote over TLS through the berth-tls helper
 * (cli/tls_helper.c: this code then speaks plain HTTP on a socketpair, so that no TLS
 * library is linked into the CLI), responses parsed by http-parser, LXD envelopes
 * unwrapped, operations waited for, and websockets (client side, framed here) on
 * connections of their own. */
#include "lib/client.h"

#include <http_parser.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <ctype.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "lib/json.h"
#include "lib/sha1.h"
#include "lib/util.h"

#define CLIENT_READ_CHUNK 65536
#define CLIENT_MAX_HEADERS (64 * 1024)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* A connection: a socket, and the berth-tls helper behind it for a remote. */
struct client_conn {
	int fd;	   /* owned, or -EBADF */
	pid_t pid; /* the helper relaying it over TLS, or 0 */
};
#define CLIENT_CONN_NULL ((struct client_conn){.fd = -EBADF, .pid = 0})

struct berth_client {
	char *path;		 /* owned: socket path, or NULL for a remote over TLS */
	char *project;		 /* owned or NULL: added as ?project= to /1.0 paths */
	struct client_conn conn; /* keep-alive connection (fd -EBADF when none) */
	bool tls;		 /* a remote, reached through berth-tls */
	char **tls_args;	 /* owned, NULL-terminated: berth-tls's options */
	char *host;		 /* owned, TLS: the server's host (an IPv6 one in brackets) */
	char *port;		 /* owned, TLS */
	char *host_header;	 /* owned: "berth" on the unix socket, else HOST:PORT */
	char *peer_cert;	 /* owned, TLS: the server's certificate (PEM) once connected */
	char *name;		 /* owned or NULL: the remote's name, for messages */
	char *begun;		 /* owned or NULL: the head of a request begun and not finished */
	int sink_fd; /* borrowed: where berth_client_download writes a body, or -EBADF */
	berth_progress_fn sink_progress;
	void *sink_progress_data;
	struct berth_client_limits limits;
};

/* A growable byte buffer, always NUL-terminated when non-empty. */
struct buf {
	char *data; /* owned */
	size_t len;
	size_t cap;
};

static int buf_append(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

static void buf_release(struct buf *b)
{
	free(b->data);
	*b = (struct buf){0};
}

char *berth_client_default_socket(void)
{
	const char *s = getenv("BERTH_SOCKET");

	if (s && *s)
		return strdup(s);
	s = getenv("BERTH_DIR");
	if (s && *s)
		return berth_strdup_printf("%s/unix.socket", s);
	return strdup(BERTH_DEFAULT_DIR "/unix.socket");
}

static int connect_error(const char *path, int r, struct berth_error *err)
{
	const char *hint = "";

	if (r == -ENOENT || r == -ECONNREFUSED)
		hint = " (is berthd running? start it with: systemctl start berthd, or set "
		       "BERTH_SOCKET to its socket)";
	else if (r == -EACCES || r == -EPERM)
		hint = " (is your user in the berth group? try: sudo usermod -aG berth $USER, then "
		       "log in again)";
	return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
			       "cannot connect to berthd at %s: %s%s", path, strerror(-r), hint);
}

/* Connect a new stream socket to `path`. Returns the fd. */
static int unix_connect(const char *path, struct berth_error *err)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sa.sun_path))
		return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_BAD_REQUEST,
				       "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return connect_error(path, -errno, err);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return connect_error(path, -errno, err);
	return TAKE_FD(fd);
}

/* Read up to `len` bytes: > 0, 0 at the end, -EAGAIN (when not `wait`ing), -errno. */
static ssize_t conn_read(struct client_conn *c, void *buf, size_t len, bool wait)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, wait ? 0 : MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		return n;
	}
}

/* Close; a helper is given a moment to finish (it ends when its socket does), then
 * killed, and reaped either way. */
static void conn_close(struct client_conn *c)
{
	berth_closep(&c->fd);
	c->fd = -EBADF;
	if (c->pid > 0) {
		for (int i = 0; i < 50; i++) {
			if (waitpid(c->pid, NULL, WNOHANG) != 0)
				goto reaped;
			usleep(2000);
		}
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
reaped:
	c->pid = 0;
}

/* The helper's first line: "ok LEN" then the PEM, or "error ERRNO MESSAGE". Read a byte at
 * a time: what follows is the server's. */
static int helper_preamble(struct berth_client *c, int fd, struct berth_error *err)
{
	char line[1024];
	size_t n = 0, len = 0;
	int code = 0, off = 0;

	while (n < sizeof(line) - 1) {
		ssize_t m = read(fd, line + n, 1);

		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			return berth_error_set(err, -EPROTO, BERTH_ERR_UNAVAILABLE,
					       "berth-tls ended before connecting to %s:%s",
					       c->host, c->port);
		if (line[n++] == '\n')
			break;
	}
	line[n ? n - 1 : 0] = '\0';
	if (sscanf(line, "error %d %n", &code, &off) == 1 && off > 0)
		return berth_error_set(err, code > 0 ? -code : -EPROTO, BERTH_ERR_UNAVAILABLE, "%s",
				       line + off);
	if (sscanf(line, "ok %zu", &len) != 1 || len > (1 << 20))
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "berth-tls: unexpected answer \"%s\"", line);
	free(c->peer_cert);
	c->peer_cert = calloc(1, len + 1);
	if (!c->peer_cert)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	for (size_t got = 0; got < len;) {
		ssize_t m = read(fd, c->peer_cert + got, len - got);

		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					       "berth-tls: short certificate");
		got += (size_t)m;
	}
	return 0;
}

int berth_tls_helper_find(char **ret, struct berth_error *err)
{
	int r = berth_helper_binary("berth-tls", "BERTH_TLS_HELPER", ret);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "berth-tls, the TLS helper, is not installed: %s",
				       strerror(-r));
	return 0;
}

/* Start berth-tls for one connection to the remote; its socket in *ret. */
static int helper_connect(struct berth_client *c, struct client_conn *ret, struct berth_error *err)
{
	_cleanup_free_ char *helper = NULL;
	_cleanup_close_ int mine = -EBADF, theirs = -EBADF;
	posix_spawn_file_actions_t fa;
	extern char **environ;
	int sv[2], r;
	pid_t pid;

	r = berth_tls_helper_find(&helper, err);
	if (r < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "socketpair: %s",
				       strerror(errno));
	mine = sv[0];
	theirs = sv[1];
	c->tls_args[0] = helper;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, theirs, 0);
	r = posix_spawn(&pid, helper, &fa, NULL, c->tls_args, environ);
	posix_spawn_file_actions_destroy(&fa);
	c->tls_args[0] = NULL;
	if (r != 0)
		return berth_error_set(err, -r, BERTH_ERR_INTERNAL, "starting %s: %s", helper,
				       strerror(r));
	close(TAKE_FD(theirs)); /* now: the helper holds it */
	*ret = (struct client_conn){.fd = mine, .pid = pid};
	r = helper_preamble(c, mine, err);
	if (r < 0) {
		mine = -EBADF; /* conn_close closes it */
		conn_close(ret);
		return r;
	}
	mine = -EBADF;
	return 0;
}

/* A new connection to the client's server: the unix socket, or TCP + TLS. */
static int client_connect(struct berth_client *c, struct client_conn *ret, struct berth_error *err)
{
	int r;

	if (!c->tls) {
		r = unix_connect(c->path, err);
		if (r < 0)
			return r;
		*ret = (struct client_conn){.fd = r, .pid = 0};
		return 0;
	}
	r = helper_connect(c, ret, err);
	if (r < 0)
		return c->name ? berth_error_wrap(err, r, "remote \"%s\"", c->name) : r;
	return 0;
}

int berth_client_attach_stdio(struct berth_client *c, const char *op_id, const char *secret,
			      const int fds[3], struct berth_error *err)
{
	_cleanup_free_ char *path = NULL, *line = berth_strdup_printf("%s %s\n", op_id, secret);
	_cleanup_close_ int fd = -EBADF;
	const char *slash = c->path ? strrchr(c->path, '/') : NULL;
	if (!c->path)
		return berth_error_set(err, -ENOTSUP, BERTH_ERR_BAD_REQUEST,
				       "direct stdio is for the local socket only");
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(3 * sizeof(int))];
	} u = {0};
	struct iovec iov;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.data,
			    .msg_controllen = sizeof(u.data)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	char answer[256];
	size_t got = 0;
	ssize_t n;

	path = slash ? berth_strdup_printf("%.*s/stdio.socket", (int)(slash - c->path), c->path)
		     : strdup("stdio.socket");
	if (!path || !line)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	fd = unix_connect(path, err);
	if (fd < 0)
		return fd;
	iov = (struct iovec){.iov_base = line, .iov_len = strlen(line)};
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, 3 * sizeof(int));
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)iov.iov_len)
		return berth_error_set(err, n < 0 ? -errno : -EIO, BERTH_ERR_UNAVAILABLE,
				       "writing to %s: %s", path,
				       n < 0 ? strerror(errno) : "short write");
	while (got < sizeof(answer) - 1) {
		n = read(fd, answer + got, sizeof(answer) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(answer, '\n', got))
			break;
	}
	answer[got] = '\0';
	answer[strcspn(answer, "\n")] = '\0';
	if (streq(answer, "ok"))
		return 0;
	return berth_error_set(err, -EPERM, BERTH_ERR_BAD_REQUEST, "%s",
			       berth_startswith(answer, "error ") ? answer + 6
								  : "no answer from berthd");
}

int berth_client_pending_fd(const struct berth_client *c)
{
	return c->begun ? c->conn.fd : -1;
}

int berth_client_new(const char *socket_path, struct berth_client **ret, struct berth_error *err)
{
	struct berth_client *c = calloc(1, sizeof(*c));

	if (!c)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	c->conn = CLIENT_CONN_NULL;
	c->sink_fd = -EBADF;
	c->path = strdup(socket_path);
	c->host_header = strdup("berth");
	if (!c->path || !c->host_header) {
		berth_client_free(c);
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	*ret = c;
	return 0;
}

/* Split "HOST[:PORT]" (HOST may be a bracketed IPv6 address) of an https URL. */
static int url_host_port(const char *hp, char **ret_host, char **ret_port)
{
	const char *colon = NULL;
	char *host, *port;

	if (hp[0] == '[') {
		const char *end = strchr(hp, ']');

		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		colon = end[1] ? end + 1 : NULL;
	} else {
		colon = strrchr(hp, ':');
		if (colon && strchr(hp, ':') != colon)
			return -EINVAL; /* an IPv6 address needs its brackets */
	}
	host = strndup(hp, colon ? (size_t)(colon - hp) : strlen(hp));
	port = strdup(colon && colon[1] ? colon + 1 : BERTH_CLIENT_DEFAULT_PORT);
	if (!host || !port || !*host || strspn(port, "0123456789") != strlen(port)) {
		free(host);
		free(port);
		return !host || !port ? -ENOMEM : -EINVAL;
	}
	*ret_host = host;
	*ret_port = port;
	return 0;
}

/* berth-tls's argv: [0] left for its path, connect HOST PORT, then the options. */
static int tls_args_make(struct berth_client *c, const struct berth_tls_options *o)
{
	const char *v[12] = {NULL, "connect", c->host, c->port};
	size_t n = 4;

	if (o && o->cert_file) {
		v[n++] = "--cert";
		v[n++] = o->cert_file;
		v[n++] = "--key";
		v[n++] = o->key_file ? o->key_file : o->cert_file;
	}
	if (o && o->accept_any) {
		v[n++] = "--accept-any";
	} else if (o && o->server_cert_pem) {
		v[n++] = "--pinned";
		v[n++] = o->server_cert_pem;
	}
	c->tls_args = calloc(n + 1, sizeof(char *));
	if (!c->tls_args)
		return -ENOMEM;
	for (size_t i = 1; i < n; i++)
		if (!(c->tls_args[i] = strdup(v[i])))
			return -ENOMEM;
	return 0;
}

int berth_client_new_url(const char *url, const struct berth_tls_options *tls,
			 struct berth_client **ret, struct berth_error *err)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	_cleanup_free_ char *hp = NULL;
	const char *rest;
	int r;

	if (berth_startswith(url, "unix://")) {
		_cleanup_free_ char *def = NULL;

		rest = url + strlen("unix://");
		if (!*rest && !(def = berth_client_default_socket()))
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
		return berth_client_new(*rest ? rest : def, ret, err);
	}
	if (!berth_startswith(url, "https://"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "unsupported URL %s: https:// or unix:// expected", url);
	rest = url + strlen("https://");
	hp = strndup(rest, strcspn(rest, "/"));
	c = calloc(1, sizeof(*c));
	if (!hp || !c)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	c->conn = CLIENT_CONN_NULL;
	c->sink_fd = -EBADF;
	r = url_host_port(hp, &c->host, &c->port);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_BAD_REQUEST, "bad address in URL %s", url);
	c->host_header = berth_strdup_printf("%s:%s", c->host, c->port);
	if (!c->host_header)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = tls_args_make(c, tls);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "out of memory");
	c->tls = true;
	*ret = TAKE_PTR(c);
	return 0;
}

int berth_client_set_name(struct berth_client *c, const char *name)
{
	char *n = name ? strdup(name) : NULL;

	if (name && !n)
		return -ENOMEM;
	free(c->name);
	c->name = n;
	return 0;
}

const char *berth_client_peer_certificate(const struct berth_client *c)
{
	return c->peer_cert;
}

void berth_client_free(struct berth_client *c)
{
	if (!c)
		return;
	conn_close(&c->conn);
	for (size_t i = 1; c->tls_args && c->tls_args[i]; i++)
		free(c->tls_args[i]);
	free(c->tls_args);
	free(c->host);
	free(c->port);
	free(c->host_header);
	free(c->peer_cert);
	free(c->name);
	free(c->begun);
	free(c->path);
	free(c->project);
	free(c);
}

int berth_client_set_project(struct berth_client *c, const char *project)
{
	char *p = NULL;

	if (project) {
		p = berth_url_encode(project);
		if (!p)
			return -ENOMEM;
	}
	free(c->project);
	c->project = p;
	return 0;
}

/* The request target: `path` plus ?project= when a project is set and `path` lacks one. */
static char *client_target(const struct berth_client *c, const char *path)
{
	if (!c->project || !berth_startswith(path, "/1.0") || strstr(path, "project="))
		return strdup(path);
	return berth_strdup_printf("%s%cproject=%s", path, strchr(path, '?') ? '&' : '?',
				   c->project);
}

void berth_response_release(struct berth_response *r)
{
	if (!r)
		return;
	json_decref(r->json);
	free(r->body);
	free(r->etag);
	free(r->location);
	free(r->content_type);
	json_decref(r->headers);
	*r = (struct berth_response){0};
}

/* ---- response parsing ---- */

struct parse_state {
	struct buf body;
	struct buf field; /* current header name */
	struct buf value; /* current header value */
	bool in_value;
	bool head; /* response to HEAD: no body */
	bool complete;
	struct berth_response *resp; /* borrowed */
	int sink_fd; /* borrowed: the body goes here instead (see on_headers_complete) */
	int sink_r;  /* the first write error on sink_fd */
	uint64_t sunk;
	berth_progress_fn progress;
	void *progress_data;
	const struct berth_client_limits *limits; /* borrowed */
	int limit_r;				  /* -EFBIG once a limit was passed */
};

static int header_commit(struct parse_state *st)
{
	char **slot = NULL;
	json_t *value;

	if (!st->field.data)
		return 0;
	if (strcasecmp(st->field.data, "ETag") == 0)
		slot = &st->resp->etag;
	else if (strcasecmp(st->field.data, "Location") == 0)
		slot = &st->resp->location;
	else if (strcasecmp(st->field.data, "Content-Type") == 0)
		slot = &st->resp->content_type;
	if (slot) {
		free(*slot);
		*slot = strdup(st->value.data ? st->value.data : "");
		if (!*slot)
			return -ENOMEM;
	}
	if (!st->resp->headers && !(st->resp->headers = json_object()))
		return -ENOMEM;
	for (char *ch = st->field.data; *ch; ch++)
		*ch = (char)tolower((unsigned char)*ch);
	/* A value that is not UTF-8 (a file's name in Content-Disposition is any bytes) is
	 * not one the client reads: it is left out of the JSON object rather than failing
	 * the response. */
	value = json_string(st->value.data ? st->value.data : "");
	if (value && json_object_set_new(st->resp->headers, st->field.data, value) < 0)
		return -ENOMEM;
	st->field.len = 0;
	st->field.data[0] = '\0';
	if (st->value.data) {
		st->value.len = 0;
		st->value.data[0] = '\0';
	}
	st->in_value = false;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;

	if (st->in_value && header_commit(st) < 0)
		return -1;
	return buf_append(&st->field, at, len) < 0 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;

	st->in_value = true;
	return buf_append(&st->value, at, len) < 0 ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
	struct parse_state *st = p->data;

	if (header_commit(st) < 0)
		return -1;
	/* Only a successful non-JSON body is a download; errors and listings stay in memory. */
	if (st->sink_fd >= 0 && (p->status_code != 200 ||
				 (st->resp->content_type &&
				  berth_startswith(st->resp->content_type, "application/json"))))
		st->sink_fd = -EBADF;
	return st->head ? 1 : 0; /* 1: no body follows */
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;

	if (st->sink_fd < 0) {
		if (st->limits->max_body && st->body.len + len > st->limits->max_body) {
			st->limit_r = -EFBIG;
			return -1;
		}
		return buf_append(&st->body, at, len) < 0 ? -1 : 0;
	}
	if (st->limits->max_download && st->sunk + len > st->limits->max_download) {
		st->limit_r = -EFBIG;
		return -1;
	}
	if (st->sink_r < 0)
		return 0; /* keep parsing so the connection stays in step */
	st->sink_r = berth_write_all(st->sink_fd, at, len);
	st->sunk += len;
	if (st->sink_r >= 0 && st->progress)
		st->progress(st->sunk, 0, st->progress_data);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct parse_state *st = p->data;

	st->complete = true;
	http_parser_pause(p, 1); /* anything after this belongs to no request of ours */
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static int write_all(struct client_conn *conn, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(conn->fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* With an idle timeout or a cancel flag: wait until c->conn has bytes to read. 0,
 * -ETIMEDOUT, -ECANCELED, -errno. */
static int wait_readable(struct berth_client *c)
{
	const struct berth_client_limits *l = &c->limits;
	int waited = 0;

	if (!l->idle_timeout_ms && !l->cancel)
		return 0;
	for (;;) {
		struct pollfd pfd = {.fd = c->conn.fd, .events = POLLIN};
		int slice = 250, n;

		if (l->cancel && atomic_load(l->cancel))
			return -ECANCELED;
		if (l->idle_timeout_ms && l->idle_timeout_ms - waited < slice)
			slice = l->idle_timeout_ms - waited;
		n = poll(&pfd, 1, slice);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0;
		waited += slice;
		if (l->idle_timeout_ms && waited >= l->idle_timeout_ms)
			return -ETIMEDOUT;
	}
}

/* Read one response from c->conn. Returns 0, -ECONNRESET when the peer closed before
 * sending a byte (a stale keep-alive connection), or another -errno. */
static int read_response(struct berth_client *c, bool head, struct berth_response *resp,
			 bool *ret_keep_alive, struct berth_error *err)
{
	struct parse_state st = {.head = head,
				 .resp = resp,
				 .sink_fd = c->sink_fd,
				 .progress = c->sink_progress,
				 .progress_data = c->sink_progress_data,
				 .limits = &c->limits};
	http_parser parser;
	size_t total = 0;
	int r = 0;
	_cleanup_free_ char *chunk = malloc(CLIENT_READ_CHUNK);

	if (!chunk)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	http_parser_init(&parser, HTTP_RESPONSE);
	parser.data = &st;
	while (!st.complete) {
		ssize_t n = wait_readable(c);
		size_t used;

		if (n == -ETIMEDOUT) {
			r = berth_error_set(err, -ETIMEDOUT, BERTH_ERR_UNAVAILABLE,
					    "no data from the server for %d s",
					    c->limits.idle_timeout_ms / 1000);
			goto out;
		}
		if (n == -ECANCELED) {
			r = berth_error_set(err, -ECANCELED, BERTH_ERR_BAD_REQUEST, "cancelled");
			goto out;
		}
		if (n >= 0)
			n = conn_read(&c->conn, chunk, CLIENT_READ_CHUNK, true);

		if (n == -ECONNRESET && total == 0) {
			r = -ECONNRESET;
			goto out;
		}
		if (n < 0) {
			r = berth_error_set(err, (int)n, BERTH_ERR_UNAVAILABLE,
					    "reading from berthd: %s", strerror((int)-n));
			goto out;
		}
		if (n == 0 && total == 0) {
			r = -ECONNRESET;
			goto out;
		}
		total += (size_t)n;
		used = http_parser_execute(&parser, &parser_settings, chunk, (size_t)n);
		if (st.limit_r < 0) {
			r = berth_error_set(err, -EFBIG, BERTH_ERR_TOO_LARGE,
					    "the server's response is larger than %" PRIu64
					    " bytes",
					    st.sink_fd >= 0 ? c->limits.max_download
							    : (uint64_t)c->limits.max_body);
			goto out;
		}
		if (st.complete)
			break;
		if (parser.http_errno != HPE_OK || (n > 0 && used != (size_t)n)) {
			r = berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					    "bad HTTP response from berthd: %s",
					    http_errno_description(HTTP_PARSER_ERRNO(&parser)));
			goto out;
		}
		if (n == 0) {
			r = berth_error_set(err, -EPROTO, BERTH_ERR_UNAVAILABLE,
					    "berthd closed the connection mid-response");
			goto out;
		}
	}
	resp->status = (int)parser.status_code;
	if (st.sink_r < 0) {
		r = berth_error_set(err, st.sink_r, BERTH_ERR_INTERNAL, "writing the download: %s",
				    strerror(-st.sink_r));
		goto out;
	}
	resp->body = st.body.data ? TAKE_PTR(st.body.data) : strdup("");
	resp->body_len = st.body.len;
	*ret_keep_alive = http_should_keep_alive(&parser);
	if (!resp->body)
		r = berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
out:
	buf_release(&st.body);
	buf_release(&st.field);
	buf_release(&st.value);
	return r;
}

static int build_request(const struct berth_client *c, const char *method, const char *target,
			 const char *content_type, size_t len, const char *if_match, char **ret)
{
	char *req = NULL;
	int n;

	n = asprintf(&req,
		     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth/" BERTH_VERSION "\r\n"
		     "Accept: application/json\r\n%s%s%s%s%s%sContent-Length: %zu\r\n\r\n",
		     method, target, c->host_header, content_type ? "Content-Type: " : "",
		     content_type ? content_type : "", content_type ? "\r\n" : "",
		     if_match ? "If-Match: " : "", if_match ? if_match : "", if_match ? "\r\n" : "",
		     len);
	if (n < 0)
		return -ENOMEM;
	*ret = req;
	return 0;
}

/* One attempt on the current (or a fresh) connection. `*ret_fresh` tells whether the
 * connection was newly made, so a failure on a reused one may be retried. */
static int request_once(struct berth_client *c, const char *head, const void *data, size_t len,
			bool is_head, struct berth_response *resp, bool *ret_fresh,
			struct berth_error *err)
{
	bool keep_alive = false;
	int r;

	*ret_fresh = c->conn.fd < 0;
	if (c->conn.fd < 0) {
		r = client_connect(c, &c->conn, err);
		if (r < 0)
			return r;
	}
	r = write_all(&c->conn, head, strlen(head));
	if (r >= 0 && len > 0)
		r = write_all(&c->conn, data, len);
	if (r == -EPIPE || r == -ECONNRESET)
		r = -ECONNRESET;
	else if (r < 0)
		r = berth_error_set(err, r, BERTH_ERR_UNAVAILABLE, "writing to berthd: %s",
				    strerror(-r));
	if (r >= 0)
		r = read_response(c, is_head, resp, &keep_alive, err);
	if (r < 0 || !keep_alive)
		conn_close(&c->conn);
	return r;
}

/* The end of every request: `r` as an error (a connection closed before any answer
 * named as such), or `resp` handed to `ret` with its JSON body parsed. */
static int response_done(int r, struct berth_response *resp, struct berth_response *ret,
			 struct berth_error *err)
{
	if (r == -ECONNRESET)
		r = berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
				    "berthd closed the connection without answering");
	if (r < 0) {
		berth_response_release(resp);
		return r;
	}
	if (resp->body_len > 0 && resp->content_type &&
	    berth_startswith(resp->content_type, "application/json"))
		resp->json = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
	*ret = *resp;
	return 0;
}

int berth_client_begin(struct berth_client *c, const char *method, const char *path,
		       struct berth_error *err)
{
	_cleanup_free_ char *target = client_target(c, path);
	_cleanup_free_ char *head = NULL;
	int r;

	if (c->begun)
		return berth_error_set(err, -EBUSY, BERTH_ERR_INTERNAL,
				       "a request is already waiting for its response");
	if (!target || build_request(c, method, target, NULL, 0, NULL, &head) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = c->conn.fd < 0;

		if (fresh) {
			r = client_connect(c, &c->conn, err);
			if (r < 0)
				return r;
		}
		r = write_all(&c->conn, head, strlen(head));
		if (r >= 0)
			break;
		conn_close(&c->conn);
		if (fresh || (r != -EPIPE && r != -ECONNRESET))
			return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
					       "writing to berthd: %s", strerror(-r));
	}
	c->begun = TAKE_PTR(head);
	return 0;
}

int berth_client_finish(struct berth_client *c, struct berth_response *ret, struct berth_error *err)
{
	_cleanup_free_ char *head = TAKE_PTR(c->begun);
	struct berth_response resp = {0};
	bool keep_alive = false, fresh;
	int r;

	if (!head)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL, "no request was begun");
	r = c->conn.fd >= 0 ? read_response(c, false, &resp, &keep_alive, err) : -ECONNRESET;
	if (r < 0 || !keep_alive)
		conn_close(&c->conn);
	if (r == -ECONNRESET) {
		/* the server had closed the idle connection before the request reached it:
		 * send it again on a new one */
		berth_response_release(&resp);
		r = request_once(c, head, NULL, 0, false, &resp, &fresh, err);
	}
	return response_done(r, &resp, ret, err);
}

int berth_client_request_raw(struct berth_client *c, const char *method, const char *path,
			     const char *content_type, const void *data, size_t len,
			     struct berth_response *ret, struct berth_error *err)
{
	return berth_client_request_full(c, method, path, content_type, data, len, NULL, ret, err);
}

int berth_client_request_full(struct berth_client *c, const char *method, const char *path,
			      const char *content_type, const void *data, size_t len,
			      const char *if_match, struct berth_response *ret,
			      struct berth_error *err)
{
	_cleanup_free_ char *target = client_target(c, path);
	_cleanup_free_ char *head = NULL;
	struct berth_response resp = {0};
	bool fresh = true;
	int r;

	if (c->begun)
		return berth_error_set(err, -EBUSY, BERTH_ERR_INTERNAL,
				       "a request is still waiting for its response");
	if (!target || build_request(c, method, target, content_type, len, if_match, &head) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	for (int attempt = 0; attempt < 2; attempt++) {
		r = request_once(c, head, data, len, streq(method, "HEAD"), &resp, &fresh, err);
		berth_response_release(r < 0 ? &resp : NULL);
		if (r != -ECONNRESET || fresh)
			break;
		/* the server closed an idle keep-alive connection: retry on a new one */
	}
	return response_done(r, &resp, ret, err);
}

/* Write `len` bytes of `fd` from offset 0 to the connection, reporting progress. */
static int upload_fd_part(struct client_conn *sock, int fd, uint64_t len, uint64_t *sent,
			  uint64_t total, berth_progress_fn progress, void *data,
			  struct berth_error *err)
{
	_cleanup_free_ char *chunk = malloc(CLIENT_READ_CHUNK);
	uint64_t off = 0;

	if (!chunk)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	while (off < len) {
		size_t want = len - off < CLIENT_READ_CHUNK ? (size_t)(len - off)
							    : CLIENT_READ_CHUNK;
		ssize_t n = pread(fd, chunk, want, (off_t)off);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return berth_error_set(err, n < 0 ? -errno : -EIO, BERTH_ERR_INTERNAL,
					       "reading the file to upload: %s",
					       n < 0 ? strerror(errno) : "it shrank");
		r = write_all(sock, chunk, (size_t)n);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
					       "writing to berthd: %s", strerror(-r));
		off += (uint64_t)n;
		*sent += (uint64_t)n;
		if (progress)
			progress(*sent, total, data);
	}
	return 0;
}

int berth_client_request_upload(struct berth_client *c, const char *method, const char *path,
				const char *content_type, const char *headers,
				const struct berth_upload_part *parts, size_t n_parts,
				berth_progress_fn progress, void *progress_data,
				struct berth_response *ret, struct berth_error *err)
{
	_cleanup_free_ char *target = client_target(c, path);
	_cleanup_free_ char *head = NULL;
	struct berth_response resp = {0};
	uint64_t total = 0, sent = 0;
	bool keep_alive = false;
	int r;

	for (size_t i = 0; i < n_parts; i++)
		total += parts[i].len;
	if (!target ||
	    asprintf(&head,
		     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth/" BERTH_VERSION "\r\n"
		     "Accept: application/json\r\nContent-Type: %s\r\n%sContent-Length: %" PRIu64
		     "\r\n\r\n",
		     method, target, c->host_header, content_type, headers ? headers : "",
		     total) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	/* A fresh connection: the body cannot be replayed cheaply after a stale one failed. */
	conn_close(&c->conn);
	r = client_connect(c, &c->conn, err);
	if (r < 0)
		return r;
	r = write_all(&c->conn, head, strlen(head));
	if (r < 0)
		r = berth_error_set(err, r, BERTH_ERR_UNAVAILABLE, "writing to berthd: %s",
				    strerror(-r));
	for (size_t i = 0; r >= 0 && i < n_parts; i++) {
		if (parts[i].data) {
			r = write_all(&c->conn, parts[i].data, (size_t)parts[i].len);
			if (r < 0)
				r = berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
						    "writing to berthd: %s", strerror(-r));
			sent += parts[i].len;
		} else {
			r = upload_fd_part(&c->conn, parts[i].fd, parts[i].len, &sent, total,
					   progress, progress_data, err);
		}
	}
	if (r >= 0)
		r = read_response(c, false, &resp, &keep_alive, err);
	if (r < 0 || !keep_alive)
		conn_close(&c->conn);
	return response_done(r, &resp, ret, err);
}

void berth_client_set_limits(struct berth_client *c, const struct berth_client_limits *limits)
{
	c->limits = limits ? *limits : (struct berth_client_limits){0};
}

int berth_client_download(struct berth_client *c, const char *path, int fd,
			  berth_progress_fn progress, void *progress_data,
			  struct berth_response *ret, struct berth_error *err)
{
	int r;

	c->sink_fd = fd;
	c->sink_progress = progress;
	c->sink_progress_data = progress_data;
	r = berth_client_request_full(c, "GET", path, NULL, NULL, 0, NULL, ret, err);
	c->sink_fd = -EBADF;
	c->sink_progress = NULL;
	c->sink_progress_data = NULL;
	return r;
}

const char *berth_response_header(const struct berth_response *r, const char *name)
{
	_cleanup_free_ char *lower = strdup(name);

	if (!lower)
		return NULL;
	for (char *ch = lower; *ch; ch++)
		*ch = (char)tolower((unsigned char)*ch);
	return json_string_value(json_object_get(r->headers, lower));
}

int berth_client_request(struct berth_client *c, const char *method, const char *path,
			 const json_t *body, const char *if_match, struct berth_response *ret,
			 struct berth_error *err)
{
	_cleanup_free_ char *data = NULL;

	if (body) {
		data = berth_json_dumps(body);
		if (!data)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	return berth_client_request_full(c, method, path, data ? "application/json" : NULL, data,
					 data ? strlen(data) : 0, if_match, ret, err);
}

/* ---- envelopes ---- */

/* Turn a non-envelope or error response into err. */
static int response_error(const struct berth_response *resp, struct berth_error *err)
{
	const char *msg = resp->json ? berth_json_string(resp->json, "error") : NULL;
	int code = resp->status >= 400 ? resp->status : BERTH_ERR_INTERNAL;

	if (msg && *msg)
		return berth_error_set(err, -EIO, code, "%s", msg);
	return berth_error_set(err, -EIO, code, "unexpected response from server (HTTP %d)",
			       resp->status);
}

static int operation_result(json_t *op, json_t **ret, struct berth_error *err)
{
	json_int_t code = json_integer_value(json_object_get(op, "status_code"));
	const char *msg;

	if (code == 200 || code == 0) {
		if (ret)
			*ret = json_incref(op);
		return 0;
	}
	msg = berth_json_string(op, "err");
	if (msg && *msg)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s", msg);
	msg = berth_json_string(op, "status");
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "operation ended: %s",
			       msg ? msg : "unknown status");
}

int berth_client_wait_operation(struct berth_client *c, const char *op_url, int timeout,
				json_t **ret_operation, struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	json_auto_t *op = NULL;
	int r;

	path = berth_strdup_printf("%s/wait%stimeout=%d", op_url, strchr(op_url, '?') ? "&" : "?",
				   timeout);
	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	/* "/1.0/operations/ID?project=p/wait" would be wrong: move the query to the end */
	if (strchr(op_url, '?')) {
		size_t base = (size_t)(strchr(op_url, '?') - op_url);

		free(path);
		path = berth_strdup_printf("%.*s/wait%s&timeout=%d", (int)base, op_url,
					   op_url + base, timeout);
		if (!path)
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	r = berth_client_query(c, "GET", path, NULL, &op, NULL, err);
	if (r < 0)
		return r;
	return operation_result(op, ret_operation, err);
}

int berth_client_query(struct berth_client *c, const char *method, const char *path,
		       const json_t *body, json_t **ret_metadata, char **ret_etag,
		       struct berth_error *err)
{
	struct berth_response resp = {0};
	int r;

	r = berth_client_request(c, method, path, body, NULL, &resp, err);
	if (r < 0)
		return r;
	r = berth_client_unwrap(c, &resp, ret_metadata, ret_etag, err);
	berth_response_release(&resp);
	return r;
}

int berth_client_unwrap(struct berth_client *c, struct berth_response *resp, json_t **ret_metadata,
			char **ret_etag, struct berth_error *err)
{
	const char *type = resp->json ? berth_json_string(resp->json, "type") : NULL;
	json_t *md;

	if (!type || streq(type, "error") || resp->status >= 400)
		return response_error(resp, err);
	md = json_object_get(resp->json, "metadata");
	if (ret_etag)
		*ret_etag = NULL;
	if (streq(type, "async")) {
		const char *op = berth_json_string(resp->json, "operation");

		if (!op || !*op)
			op = resp->location;
		if (!op)
			return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					       "async response without an operation");
		return berth_client_wait_operation(c, op, -1, ret_metadata, err);
	}
	if (ret_etag) {
		if (resp->etag && !(*ret_etag = strdup(resp->etag)))
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	}
	if (ret_metadata)
		*ret_metadata = md ? json_incref(md) : json_null();
	return 0;
}

/* ---- websockets ---- */

/* A message received and not yet handed out. */
struct ws_msg {
	struct ws_msg *next;
	char *data; /* owned, NUL-terminated */
	size_t len;
	bool text;
};

/* The client side of RFC 6455, enough for LXD's exec, console and events sockets: our
 * frames are masked and sent whole; the server's may be fragmented, with pings and a
 * close among them. (The CLI links no websocket library: it starts faster.) */
enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xa,
};
/* A message larger than this from the server is a protocol error. */
#define WS_MAX_MESSAGE (64u << 20)

struct berth_ws {
	struct client_conn conn;
	bool open;	    /* the handshake succeeded */
	struct buf pending; /* bytes read and not parsed yet (the handshake's rest first) */
	size_t pending_off;
	struct buf frag; /* the data of a fragmented message so far */
	bool in_frag, frag_text;
	struct ws_msg *head, *tail; /* owned queue */
	bool closed;		    /* nothing more can be read or sent */
	bool close_sent;
	char accept[32]; /* the Sec-WebSocket-Accept expected while the handshake is pending */
};

static int ws_send_frame(struct berth_ws *ws, int opcode, const void *data, size_t len)
{
	_cleanup_free_ uint8_t *f = malloc(len + 14);
	uint8_t *p = f, mask[4];
	int r;

	if (!f)
		return -ENOMEM;
	if (getrandom(mask, sizeof(mask), 0) != (ssize_t)sizeof(mask))
		return -EIO;
	*p++ = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		*p++ = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		*p++ = 0x80 | 126;
		*p++ = (uint8_t)(len >> 8);
		*p++ = (uint8_t)len;
	} else {
		*p++ = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			*p++ = (uint8_t)((uint64_t)len >> (8 * i));
	}
	memcpy(p, mask, 4);
	p += 4;
	for (size_t i = 0; i < len; i++)
		p[i] = ((const uint8_t *)data)[i] ^ mask[i & 3];
	if (opcode == WS_OP_CLOSE)
		ws->close_sent = true; /* nothing may follow it */
	r = write_all(&ws->conn, f, (size_t)(p - f) + len);
	if (r < 0)
		ws->closed = true;
	return r;
}

static void ws_queue(struct berth_ws *ws, bool text, const char *data, size_t len)
{
	struct ws_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return;
	m->data = malloc(len + 1);
	if (!m->data) {
		free(m);
		return;
	}
	if (len) /* an empty message (EOF barrier) */
		memcpy(m->data, data, len);
	m->data[len] = '\0';
	m->len = len;
	m->text = text;
	if (ws->tail)
		ws->tail->next = m;
	else
		ws->head = m;
	ws->tail = m;
}

/* One whole frame from the server. */
static void ws_frame(struct berth_ws *ws, int opcode, bool fin, const uint8_t *data, size_t len)
{
	switch (opcode) {
	case WS_OP_PING:
		ws_send_frame(ws, WS_OP_PONG, data, len);
		return;
	case WS_OP_PONG:
		return;
	case WS_OP_CLOSE:
		if (!ws->close_sent) /* echo its status code */
			ws_send_frame(ws, WS_OP_CLOSE, data, len >= 2 ? 2 : 0);
		ws->closed = true;
		return;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (ws->in_frag) {
			ws->closed = true; /* a new message inside a fragmented one */
			return;
		}
		if (fin) {
			ws_queue(ws, opcode == WS_OP_TEXT, (const char *)data, len);
			return;
		}
		ws->in_frag = true;
		ws->frag_text = opcode == WS_OP_TEXT;
		ws->frag.len = 0;
		break;
	case WS_OP_CONT:
		if (!ws->in_frag) {
			ws->closed = true;
			return;
		}
		break;
	default:
		ws->closed = true;
		return;
	}
	if (ws->frag.len + len > WS_MAX_MESSAGE || buf_append(&ws->frag, data, len) < 0) {
		ws->closed = true;
		return;
	}
	if (fin) {
		ws->in_frag = false;
		ws_queue(ws, ws->frag_text, ws->frag.data ? ws->frag.data : "", ws->frag.len);
		ws->frag.len = 0;
	}
}

/* Handle every whole frame in ws->pending. */
static void ws_parse(struct berth_ws *ws)
{
	while (!ws->closed) {
		uint8_t *b = (uint8_t *)ws->pending.data + ws->pending_off;
		size_t avail = ws->pending.len - ws->pending_off, hl = 2;
		uint64_t len;
		bool masked;

		if (avail < 2)
			break;
		masked = b[1] & 0x80;
		len = b[1] & 0x7f;
		if (len == 126)
			hl += 2;
		else if (len == 127)
			hl += 8;
		if (masked)
			hl += 4;
		if (avail < hl)
			break;
		if (len == 126) {
			len = (uint64_t)b[2] << 8 | b[3];
		} else if (len == 127) {
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | b[2 + i];
		}
		if (len > WS_MAX_MESSAGE || ((b[0] & 0x08) && (len > 125 || !(b[0] & 0x80)))) {
			ws->closed = true; /* too big, or a long or fragmented control frame */
			break;
		}
		if (avail - hl < len)
			break;
		if (masked)
			for (uint64_t i = 0; i < len; i++)
				b[hl + i] ^= b[hl - 4 + (i & 3)];
		ws->pending_off += hl + (size_t)len;
		ws_frame(ws, b[0] & 0x0f, b[0] & 0x80, b + hl, (size_t)len);
	}
	if (ws->pending_off == ws->pending.len) {
		ws->pending.len = ws->pending_off = 0;
	} else if (ws->pending_off > (1u << 16)) {
		memmove(ws->pending.data, ws->pending.data + ws->pending_off,
			ws->pending.len - ws->pending_off);
		ws->pending.len -= ws->pending_off;
		ws->pending_off = 0;
	}
}

/* Read what the socket has (without waiting): 1 got some, 0 nothing yet, -EPIPE gone. */
static int ws_read_some(struct berth_ws *ws)
{
	char chunk[65536];
	ssize_t n = conn_read(&ws->conn, chunk, sizeof(chunk), false);

	if (n == -EAGAIN)
		return 0;
	if (n <= 0 || buf_append(&ws->pending, chunk, (size_t)n) < 0) {
		ws->closed = true;
		return -EPIPE;
	}
	return 1;
}

/* The Sec-WebSocket-Accept value expected for `key`, into `out` (>= 29 bytes). */
static int ws_accept_for(const char *key, char *out)
{
	uint8_t md[BERTH_SHA1_LEN];
	_cleanup_free_ char *cat = berth_strdup_printf("%s%s", key, WS_GUID);

	if (!cat)
		return -ENOMEM;
	berth_sha1(cat, strlen(cat), md);
	berth_base64_encode(md, sizeof(md), out);
	return 0;
}

/* Read until the end of the response head; the rest goes to ws->pending. */
static int ws_read_head(struct berth_ws *ws, struct buf *head, struct berth_error *err)
{
	char chunk[4096];

	for (;;) {
		char *end = head->data ? strstr(head->data, "\r\n\r\n") : NULL;
		ssize_t n;

		if (end) {
			size_t hl = (size_t)(end - head->data) + 4;

			if (buf_append(&ws->pending, head->data + hl, head->len - hl) < 0)
				return -ENOMEM;
			head->len = hl;
			head->data[hl] = '\0';
			return 0;
		}
		if (head->len > CLIENT_MAX_HEADERS)
			return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
					       "websocket handshake response too large");
		n = conn_read(&ws->conn, chunk, sizeof(chunk), true);
		if (n <= 0)
			return berth_error_set(err, n < 0 ? (int)n : -EPIPE, BERTH_ERR_UNAVAILABLE,
					       "websocket handshake: connection closed");
		if (buf_append(head, chunk, (size_t)n) < 0)
			return -ENOMEM;
	}
}

/* Check a "101 Switching Protocols" head with the right accept value. On another status,
 * report the server's error envelope when the body came with the head. */
static int ws_check_head(struct berth_ws *ws, const char *head, const char *accept,
			 struct berth_error *err)
{
	int status = 0;
	const char *p;

	if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "websocket handshake: bad response");
	if (status != 101) {
		json_auto_t *j = NULL;
		const char *msg;

		if (ws->pending.len)
			j = json_loadb(ws->pending.data, ws->pending.len, 0, NULL);
		msg = j ? berth_json_string(j, "error") : NULL;
		return berth_error_set(err, -EIO, status >= 400 ? status : BERTH_ERR_INTERNAL, "%s",
				       msg ? msg : "websocket upgrade refused by server");
	}
	p = strcasestr(head, "\r\nSec-WebSocket-Accept:");
	if (!p)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "websocket handshake: no Sec-WebSocket-Accept");
	p += strlen("\r\nSec-WebSocket-Accept:");
	p += strspn(p, " \t");
	if (strncmp(p, accept, strlen(accept)) != 0)
		return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				       "websocket handshake: wrong Sec-WebSocket-Accept");
	return 0;
}

/* Send the upgrade request; ws_handshake_finish() reads the answer. */
static int ws_handshake_send(struct berth_ws *ws, const char *host, const char *target,
			     struct berth_error *err)
{
	unsigned char raw[16];
	char key[32];
	_cleanup_free_ char *req = NULL;
	int r;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "no random bytes");
	berth_base64_encode(raw, sizeof(raw), key);
	if (ws_accept_for(key, ws->accept) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	req = berth_strdup_printf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
				  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
				  "Sec-WebSocket-Version: 13\r\nUser-Agent: berth/" BERTH_VERSION
				  "\r\n\r\n",
				  target, host, key);
	if (!req)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = write_all(&ws->conn, req, strlen(req));
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE, "websocket handshake: %s",
				       strerror(-r));
	return 0;
}

int berth_ws_handshake_finish(struct berth_ws *ws, struct berth_error *err)
{
	struct buf head = {0};
	int r;

	if (ws->open)
		return 0; /* done already */
	r = ws_read_head(ws, &head, err);
	if (r >= 0)
		r = ws_check_head(ws, head.data, ws->accept, err);
	buf_release(&head);
	if (r < 0)
		return r;
	ws->open = true;
	ws->closed = false;
	ws_parse(ws); /* frames that came with the head */
	return 0;
}

int berth_client_websocket_start(struct berth_client *c, const char *path, struct berth_ws **ret,
				 struct berth_error *err)
{
	_cleanup_(berth_ws_closep) struct berth_ws *ws = NULL;
	_cleanup_free_ char *target = client_target(c, path);
	int r;

	if (!target)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	ws->conn = CLIENT_CONN_NULL;
	ws->closed = true; /* no close frame until the handshake succeeded */
	r = client_connect(c, &ws->conn, err);
	if (r < 0)
		return r;
	r = ws_handshake_send(ws, c->host_header, target, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ws);
	return 0;
}

int berth_client_websocket(struct berth_client *c, const char *path, struct berth_ws **ret,
			   struct berth_error *err)
{
	_cleanup_(berth_ws_closep) struct berth_ws *ws = NULL;
	_cleanup_free_ char *target = client_target(c, path);
	int r;

	if (!target)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	ws->conn = CLIENT_CONN_NULL;
	ws->closed = true; /* no close frame until the handshake succeeded */
	r = client_connect(c, &ws->conn, err);
	if (r < 0)
		return r;
	r = ws_handshake_send(ws, c->host_header, target, err);
	if (r >= 0)
		r = berth_ws_handshake_finish(ws, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ws);
	return 0;
}

static int ws_pop(struct berth_ws *ws, char **ret_data, size_t *ret_len, bool *ret_text)
{
	struct ws_msg *m = ws->head;

	ws->head = m->next;
	if (!ws->head)
		ws->tail = NULL;
	*ret_data = m->data;
	if (ret_len)
		*ret_len = m->len;
	if (ret_text)
		*ret_text = m->text;
	free(m);
	return 0;
}

int berth_ws_recv(struct berth_ws *ws, int timeout_ms, char **ret_data, size_t *ret_len,
		  bool *ret_text, struct berth_error *err)
{
	uint64_t deadline = berth_monotonic_ns() +
			    (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ULL;

	while (!ws->head) {
		struct pollfd pfd = {.fd = ws->conn.fd, .events = POLLIN};
		int wait = -1, n;

		if (ws->closed)
			return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
					       "connection closed by server");
		{
			if (timeout_ms >= 0) {
				uint64_t now = berth_monotonic_ns();

				wait = now >= deadline ? 0 : (int)((deadline - now) / 1000000ULL);
			}
			n = poll(&pfd, 1, wait);
			if (n < 0 && errno == EINTR)
				return berth_error_set(err, -EINTR, BERTH_ERR_INTERNAL,
						       "interrupted");
			if (n == 0)
				return berth_error_set(err, -ETIMEDOUT, BERTH_ERR_UNAVAILABLE,
						       "timed out waiting for a message");
		}
		if (ws_read_some(ws) > 0)
			ws_parse(ws);
	}
	return ws_pop(ws, ret_data, ret_len, ret_text);
}

int berth_ws_send(struct berth_ws *ws, bool text, const void *data, size_t len,
		  struct berth_error *err)
{
	if (ws->closed || ws->close_sent ||
	    ws_send_frame(ws, text ? WS_OP_TEXT : WS_OP_BINARY, data, len) < 0)
		return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
				       "connection closed by server");
	return 0;
}

int berth_ws_fd(const struct berth_ws *ws)
{
	return ws->conn.fd;
}

bool berth_ws_has_buffered(const struct berth_ws *ws)
{
	return ws->head != NULL; /* bytes in ws->pending are never a whole frame */
}

int berth_ws_send_close(struct berth_ws *ws, const char *reason, struct berth_error *err)
{
	size_t len = reason ? strlen(reason) : 0;
	char body[125] = {0x03, (char)0xe8}; /* 1000: normal closure */

	if (len > sizeof(body) - 2)
		len = sizeof(body) - 2;
	if (len)
		memcpy(body + 2, reason, len);
	if (ws->closed || ws->close_sent || ws_send_frame(ws, WS_OP_CLOSE, body, len + 2) < 0)
		return berth_error_set(err, -EPIPE, BERTH_ERR_UNAVAILABLE,
				       "connection closed by server");
	return 0;
}

void berth_ws_close(struct berth_ws *ws)
{
	if (!ws)
		return;
	if (ws->open && !ws->closed && !ws->close_sent)
		ws_send_frame(ws, WS_OP_CLOSE, "\x03\xe8", 2);
	buf_release(&ws->frag);
	while (ws->head) {
		char *d = NULL;

		ws_pop(ws, &d, NULL, NULL);
		free(d);
	}
	buf_release(&ws->pending);
	conn_close(&ws->conn);
	free(ws);
}
