/* lib/http_server.c: HTTP/1.1 and websocket server on libuv (see http_server.h).
 *
 * Ownership: the server owns its connections (a list); a connection owns its
 * request, its leftover input and its websocket. A connection is freed in the
 * close callback of the last of its two handles (pipe and timer), unless the
 * handler still owes a response, in which case berth_http_respond() frees it. */
#include "lib/http_server.h"

#include <fcntl.h>
#include <http_parser.h>
#include <string.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "lib/tls.h"
#include "lib/util.h"

#define WS_MAX_QUEUED (16u << 20)
#define WS_MAX_MESSAGE (16u << 20)

enum conn_state {
	CONN_IDLE,
	CONN_READING,
	CONN_HANDLING,
	CONN_WRITING,
	CONN_WEBSOCKET,
	CONN_CLOSING,
};

struct berth_ws_conn {
	struct berth_http_conn *conn; /* borrowed: the connection owns us */
	wslay_event_context_ptr ctx;
	struct berth_ws_callbacks cbs;
	void *data;
	const uint8_t *in; /* input being fed, borrowed for one feed */
	size_t in_len;
	bool close_sent;
	bool busy; /* inside wslay_event_recv: destruction must wait */
	bool dead; /* the connection closed while busy */
};

#define STREAM_CHUNK (256u << 10)

/* A response body being streamed by berth_http_respond_parts(). */
struct stream {
	struct berth_http_part *parts; /* owned; data copied, fds owned */
	size_t n_parts, i;
	uint64_t off; /* within parts[i] */
	char *buf;    /* owned: STREAM_CHUNK bytes for file reads */
	uv_fs_t fs;
	bool fs_pending; /* a read is in flight: the conn may not be freed */
};

struct berth_http_conn {
	union {
		uv_pipe_t pipe; /* unix socket listeners, adopted fds */
		uv_tcp_t tcp;	/* TCP listeners (HTTPS) */
	} handle;
	struct berth_tls_conn *tls; /* owned, NULL without TLS */
	uv_timer_t timer;
	struct berth_http_server *server;
	struct berth_http_conn *prev, *next;
	http_parser parser;
	enum conn_state state;
	int open_handles;     /* handles not yet through their close callback */
	bool handler_pending; /* the handler owes a respond/upgrade */
	bool keep_alive;
	bool adopted;
	struct berth_http_request req;
	size_t header_bytes;
	bool in_value;	  /* last header callback was a value */
	int error_status; /* set by parser callbacks on a limit violation */
	char *leftover;	  /* owned: bytes read past the current request */
	size_t leftover_len;
	struct berth_ws_conn *ws; /* owned */
	struct stream *stream;	  /* owned, while a streamed body is being sent */
};

struct berth_http_server {
	uv_loop_t *loop;
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} listener;
	bool tcp;		       /* the listener is listener.tcp */
	struct berth_tls_ctx *tls_ctx; /* borrowed, NULL: plain HTTP */
	bool listening;
	struct berth_http_limits limits;
	berth_http_handler_fn handler;
	void *data;
	struct berth_http_conn *conns;
	size_t n_conns;
	bool closing;
	bool listener_closed;
	void (*close_cb)(void *);
	void *close_data;
	berth_http_error_hook_fn error_hook; /* may be NULL */
	void *error_data;		     /* borrowed */
};

struct write_req {
	uv_write_t req;
	struct berth_http_conn *conn;
	bool close_after;
	bool raw; /* TLS bytes of no response (handshake, alerts): no state change */
	char data[];
};

static const http_parser_settings parser_settings;
static void stream_next(struct berth_http_conn *c);
static void conn_next_request(struct berth_http_conn *c);
static void stream_free(struct stream *st);
static void conn_close(struct berth_http_conn *c);
static void conn_feed(struct berth_http_conn *c, const char *data, size_t len);
static void server_maybe_done(struct berth_http_server *s);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

void berth_http_limits_default(struct berth_http_limits *limits)
{
	limits->max_header_bytes = 64u << 10;
	limits->max_body_bytes = 16u << 20;
	limits->idle_timeout_ms = 60000;
	limits->request_timeout_ms = 30000;
	limits->spool_dir = NULL;
	limits->max_upload_bytes = 64ull << 30;
	limits->spool_url = NULL;
}

/* ---- request bookkeeping ---- */

static void request_release(struct berth_http_request *r)
{
	free(r->url);
	free(r->path);
	free(r->query);
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->body);
	if (r->body_fd >= 0)
		close(r->body_fd);
	*r = (struct berth_http_request){.body_fd = -EBADF};
}

static int append(char **buf, size_t *len, const char *data, size_t n)
{
	char *nb = realloc(*buf, *len + n + 1);

	if (!nb)
		return -ENOMEM;
	if (n)
		memcpy(nb + *len, data, n);
	*len += n;
	nb[*len] = '\0';
	*buf = nb;
	return 0;
}

static int append_str(char **s, const char *data, size_t n)
{
	size_t len = *s ? strlen(*s) : 0;

	return append(s, &len, data, n);
}

static struct berth_http_conn *parser_conn(http_parser *p)
{
	return container_of(p, struct berth_http_conn, parser);
}

static int count_header_bytes(struct berth_http_conn *c, size_t n)
{
	c->header_bytes += n;
	if (c->header_bytes > c->server->limits.max_header_bytes) {
		c->error_status = 431;
		return -1;
	}
	return 0;
}

static void conn_arm_timer(struct berth_http_conn *c, uint64_t ms);

static int on_message_begin(http_parser *p)
{
	struct berth_http_conn *c = parser_conn(p);

	request_release(&c->req);
	c->header_bytes = 0;
	c->in_value = false;
	c->state = CONN_READING;
	conn_arm_timer(c, c->server->limits.request_timeout_ms);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	struct berth_http_conn *c = parser_conn(p);

	if (count_header_bytes(c, n) < 0)
		return -1;
	return append_str(&c->req.url, at, n) < 0 ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct berth_http_conn *c = parser_conn(p);
	struct berth_http_request *r = &c->req;

	if (count_header_bytes(c, n) < 0)
		return -1;
	if (r->n_headers == 0 || c->in_value) {
		struct berth_http_header *nh = realloc(r->headers,
						       (r->n_headers + 1) * sizeof(*nh));
		if (!nh)
			return -1;
		r->headers = nh;
		r->headers[r->n_headers++] = (struct berth_http_header){0};
		c->in_value = false;
	}
	return append_str(&r->headers[r->n_headers - 1].name, at, n) < 0 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct berth_http_conn *c = parser_conn(p);
	struct berth_http_request *r = &c->req;

	if (count_header_bytes(c, n) < 0)
		return -1;
	if (r->n_headers == 0)
		return -1;
	c->in_value = true;
	return append_str(&r->headers[r->n_headers - 1].value, at, n) < 0 ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
	struct berth_http_conn *c = parser_conn(p);
	struct berth_http_request *r = &c->req;

	const struct berth_http_limits *l = &c->server->limits;
	const char *ct;
	uint64_t max;

	for (size_t i = 0; i < r->n_headers; i++)
		if (!r->headers[i].value && !(r->headers[i].value = strdup("")))
			return -1;
	ct = berth_http_header_get(r->headers, r->n_headers, "Content-Type");
	if (l->spool_dir &&
	    ((ct && (berth_startswith(ct, "application/octet-stream") ||
		     berth_startswith(ct, "multipart/"))) ||
	     (l->spool_url && r->url && l->spool_url(http_method_str(p->method), r->url)))) {
		r->body_fd = open(l->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (r->body_fd < 0) {
			c->error_status = 500;
			return -1;
		}
	}
	max = r->body_fd >= 0 ? l->max_upload_bytes : l->max_body_bytes;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > max) {
		c->error_status = 413;
		return -1;
	}
	if (r->body_fd >= 0 && (p->flags & F_CONTENTLENGTH) &&
	    !berth_fs_room(r->body_fd, p->content_length)) {
		c->error_status = 507;
		return -1;
	}
	return 0;
}

/* Append to the spool file. A blocking write on the loop thread: it goes to the page
 * cache in chunks of at most one read (64 KiB), which is cheap next to the network. */
static int spool_write(int fd, const char *at, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, at, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		at += w;
		n -= (size_t)w;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct berth_http_conn *c = parser_conn(p);
	struct berth_http_request *r = &c->req;

	if (r->body_fd >= 0) {
		if (r->body_len + n > c->server->limits.max_upload_bytes) {
			c->error_status = 413;
			return -1;
		}
		if (spool_write(r->body_fd, at, n) < 0) {
			c->error_status = 507;
			return -1;
		}
		r->body_len += n;
		return 0;
	}
	if (r->body_len + n > c->server->limits.max_body_bytes) {
		c->error_status = 413;
		return -1;
	}
	return append(&r->body, &r->body_len, at, n) < 0 ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Split the URL into a decoded path and a raw query. */
static int request_finish(struct berth_http_conn *c)
{
	struct berth_http_request *r = &c->req;
	const char *url = r->url ? r->url : "";
	const char *q = strchr(url, '?');
	size_t plen = q ? (size_t)(q - url) : strlen(url);
	int rr;

	r->method = http_method_str(c->parser.method);
	if (plen == 0 || url[0] != '/')
		return -EINVAL;
	rr = berth_url_decode(url, plen, &r->path);
	if (rr < 0)
		return rr;
	r->query = strdup(q ? q + 1 : "");
	if (!r->query)
		return -ENOMEM;
	if (!r->body && !(r->body = strdup("")))
		return -ENOMEM;
	if (r->body_fd >= 0 && lseek(r->body_fd, 0, SEEK_SET) < 0)
		return -errno;
	r->upgrade_websocket = c->parser.upgrade &&
			       berth_http_header_has_token(berth_http_header_get(r->headers,
										 r->n_headers,
										 "Upgrade"),
							   "websocket");
	return 0;
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = container_of(req, struct write_req, req);
	struct berth_http_conn *c = w->conn;
	bool close_after = w->close_after;

	bool raw = w->raw;

	free(w);
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (raw) {
		if (close_after)
			conn_close(c);
		return;
	}
	if (c->stream) {
		stream_next(c);
		return;
	}
	if (close_after || c->server->closing) {
		conn_close(c);
		return;
	}
	if (c->state != CONN_WRITING)
		return; /* websocket frames */
	conn_next_request(c);
}

/* The response went out on a keep-alive connection: back to reading, then feed
 * what arrived early. */
static void conn_next_request(struct berth_http_conn *c)
{
	request_release(&c->req);
	c->state = CONN_IDLE;
	conn_arm_timer(c, c->server->limits.idle_timeout_ms);
	http_parser_pause(&c->parser, 0);
	if (uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read) < 0) {
		conn_close(c);
		return;
	}
	if (c->leftover) {
		_cleanup_free_ char *data = TAKE_PTR(c->leftover);
		size_t len = c->leftover_len;

		c->leftover_len = 0;
		conn_feed(c, data, len);
	}
}

/* Queue bytes as they go on the wire (ciphertext under TLS); copied. */
static int conn_write_raw(struct berth_http_conn *c, const void *data, size_t len, bool raw,
			  bool close_after)
{
	struct write_req *w = malloc(sizeof(*w) + len);
	uv_buf_t buf;
	int r;

	if (!w)
		return -ENOMEM;
	w->conn = c;
	w->close_after = close_after;
	w->raw = raw;
	if (len)
		memcpy(w->data, data, len);
	buf = uv_buf_init(w->data, (unsigned)len);
	r = uv_write(&w->req, (uv_stream_t *)&c->handle, &buf, 1, on_write);
	if (r < 0) {
		free(w);
		return r;
	}
	return 0;
}

/* Under TLS: encrypt `head` then `body` and queue the records as one write. */
static int conn_write_tls(struct berth_http_conn *c, const void *head, size_t head_len,
			  const void *body, size_t body_len, bool close_after)
{
	struct berth_tls_buf out = {0};
	int r = berth_tls_conn_encrypt(c->tls, head, head_len, &out);

	if (r >= 0)
		r = berth_tls_conn_encrypt(c->tls, body, body_len, &out);
	if (r >= 0)
		r = conn_write_raw(c, out.data, out.len, false, close_after);
	berth_tls_buf_release(&out);
	return r;
}

/* Queue `head` then `body` (either may be empty) as one write; both are copied. */
static int conn_write2(struct berth_http_conn *c, const void *head, size_t head_len,
		       const void *body, size_t body_len, bool close_after)
{
	struct write_req *w;

	if (c->tls)
		return conn_write_tls(c, head, head_len, body, body_len, close_after);
	w = malloc(sizeof(*w) + head_len + body_len);
	uv_buf_t buf;
	int r;

	if (!w)
		return -ENOMEM;
	w->conn = c;
	w->close_after = close_after;
	w->raw = false;
	if (head_len)
		memcpy(w->data, head, head_len);
	if (body_len)
		memcpy(w->data + head_len, body, body_len);
	buf = uv_buf_init(w->data, (unsigned)(head_len + body_len));
	r = uv_write(&w->req, (uv_stream_t *)&c->handle, &buf, 1, on_write);
	if (r < 0) {
		free(w);
		return r;
	}
	return 0;
}

static int conn_write(struct berth_http_conn *c, const void *data, size_t len, bool close_after)
{
	return conn_write2(c, data, len, NULL, 0, close_after);
}

static int build_response(int status, const char *content_type,
			  const struct berth_http_header *extra, size_t n_extra, size_t body_len,
			  bool keep_alive, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fprintf(f, "HTTP/1.1 %d %s\r\n", status, berth_http_reason(status));
	if (content_type)
		fprintf(f, "Content-Type: %s\r\n", content_type);
	for (size_t i = 0; i < n_extra; i++)
		fprintf(f, "%s: %s\r\n", extra[i].name, extra[i].value);
	fprintf(f, "Content-Length: %zu\r\n", body_len);
	fprintf(f, "Connection: %s\r\n\r\n", keep_alive ? "keep-alive" : "close");
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void conn_free(struct berth_http_conn *c)
{
	struct berth_http_server *s = c->server;

	berth_tls_conn_free(c->tls);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	request_release(&c->req);
	free(c->leftover);
	stream_free(c->stream);
	free(c);
	server_maybe_done(s);
}

int berth_http_respond(struct berth_http_conn *c, int status, const char *content_type,
		       const struct berth_http_header *extra, size_t n_extra, const void *body,
		       size_t len)
{
	_cleanup_free_ char *head = NULL;
	size_t head_len = 0;
	bool head_only;
	int r;

	c->handler_pending = false;
	if (status >= 400 && c->server->error_hook)
		c->server->error_hook(c->req.method, c->req.path, status, body, len,
				      c->server->error_data);
	if (c->state == CONN_CLOSING) {
		if (c->open_handles == 0)
			conn_free(c);
		return -EPIPE;
	}
	head_only = c->req.method && streq(c->req.method, "HEAD");
	c->keep_alive = c->keep_alive && !c->server->closing && status < 500;
	r = build_response(status, content_type, extra, n_extra, len, c->keep_alive, &head,
			   &head_len);
	if (r < 0)
		goto fail;
	c->state = CONN_WRITING;
	r = conn_write2(c, head, head_len, body, head_only ? 0 : len, !c->keep_alive);
	if (r < 0)
		goto fail;
	return 0;
fail:
	conn_close(c);
	return r;
}

/* An error found by the server itself (limits, bad syntax): a short LXD error JSON, then close. */
static void conn_fail(struct berth_http_conn *c, int status, const char *msg)
{
	_cleanup_free_ char *body = berth_strdup_printf(
		"{\"type\":\"error\",\"error\":\"%s\",\"error_code\":%d,\"metadata\":null}", msg,
		status);

	c->keep_alive = false;
	uv_read_stop((uv_stream_t *)&c->handle);
	uv_timer_stop(&c->timer);
	if (!body) {
		conn_close(c);
		return;
	}
	berth_http_respond(c, status, "application/json", NULL, 0, body, strlen(body));
}

/* ---- reading ---- */

static void conn_dispatch(struct berth_http_conn *c)
{
	int r = request_finish(c);

	if (r < 0) {
		conn_fail(c, 400, "Malformed request target");
		return;
	}
	c->keep_alive = http_should_keep_alive(&c->parser) && !c->req.upgrade_websocket;
	c->state = CONN_HANDLING;
	c->handler_pending = true;
	uv_read_stop((uv_stream_t *)&c->handle);
	uv_timer_stop(&c->timer);
	c->server->handler(c, &c->req, c->server->data);
}

static void ws_feed(struct berth_ws_conn *ws, const uint8_t *data, size_t len);

static void conn_feed(struct berth_http_conn *c, const char *data, size_t len)
{
	size_t parsed;
	enum http_errno e;

	if (c->state == CONN_WEBSOCKET) {
		ws_feed(c->ws, (const uint8_t *)data, len);
		return;
	}
	parsed = http_parser_execute(&c->parser, &parser_settings, data, len);
	e = HTTP_PARSER_ERRNO(&c->parser);
	if (c->error_status == 431) {
		conn_fail(c, 431, "Request header fields too large");
		return;
	}
	if (c->error_status == 413) {
		conn_fail(c, 413, "Request body too large");
		return;
	}
	if (c->error_status == 507) {
		conn_fail(c, 507, "Not enough space to receive the upload");
		return;
	}
	if (c->error_status == 500) {
		conn_fail(c, 500, "Cannot store the upload");
		return;
	}
	if (e == HPE_PAUSED) {
		if (parsed < len) {
			free(c->leftover);
			c->leftover = malloc(len - parsed);
			if (!c->leftover) {
				conn_close(c);
				return;
			}
			memcpy(c->leftover, data + parsed, len - parsed);
			c->leftover_len = len - parsed;
		}
		conn_dispatch(c);
		return;
	}
	if (e != HPE_OK) {
		conn_fail(c, 400, "Malformed HTTP request");
		return;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536]; /* one loop thread: a single read buffer is enough */

	buf->base = slab;
	buf->len = sizeof(slab);
}

/* Ciphertext from the peer: answer the handshake, then feed what it decrypts to. */
static void conn_feed_tls(struct berth_http_conn *c, const char *data, size_t len)
{
	struct berth_tls_buf plain = {0}, out = {0};
	int r = berth_tls_conn_feed(c->tls, data, len, &plain, &out);
	/* What was decrypted before the peer's close_notify is still its data: a websocket
	 * peer's last message often comes in the same read as its close. */
	bool feed = plain.len > 0 && r != -ENOMEM;

	if (out.len > 0 && conn_write_raw(c, out.data, out.len, true, r < 0 && !feed) < 0)
		r = -EPIPE;
	else if (r < 0 && out.len == 0 && !feed)
		conn_close(c);
	berth_tls_buf_release(&out);
	if (feed && r != -EPIPE)
		conn_feed(c, plain.data, plain.len);
	berth_tls_buf_release(&plain);
	if (r == -EPIPE || (feed && r < 0))
		conn_close(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct berth_http_conn *c = stream->data;

	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	if (c->tls)
		conn_feed_tls(c, buf->base, (size_t)nread);
	else
		conn_feed(c, buf->base, (size_t)nread);
}

static void on_timer(uv_timer_t *t)
{
	struct berth_http_conn *c = t->data;

	if (c->state == CONN_READING)
		conn_fail(c, 408, "Request timeout");
	else if (c->state == CONN_IDLE)
		conn_close(c);
}

static void conn_arm_timer(struct berth_http_conn *c, uint64_t ms)
{
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct berth_http_conn *c = h->data;

	if (--c->open_handles == 0 && !c->handler_pending && !(c->stream && c->stream->fs_pending))
		conn_free(c);
}

static void ws_destroy(struct berth_ws_conn *ws);

static void conn_close(struct berth_http_conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->ws) {
		struct berth_ws_conn *ws = TAKE_PTR(c->ws);

		if (ws->busy)
			ws->dead = true; /* ws_feed frees it */
		else
			ws_destroy(ws);
	}
	uv_close((uv_handle_t *)&c->handle, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static int conn_new(struct berth_http_server *s, struct berth_http_conn **ret)
{
	struct berth_http_conn *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	if (s->tcp && s->tls_ctx && berth_tls_conn_new(s->tls_ctx, &c->tls) < 0) {
		free(c);
		return -ENOMEM;
	}
	r = s->tcp ? uv_tcp_init(s->loop, &c->handle.tcp)
		   : uv_pipe_init(s->loop, &c->handle.pipe, 0);
	if (r < 0) {
		berth_tls_conn_free(c->tls);
		free(c);
		return r;
	}
	uv_timer_init(s->loop, &c->timer);
	c->handle.pipe.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->server = s;
	c->req.body_fd = -EBADF;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	*ret = c;
	return 0;
}

static void conn_start(struct berth_http_conn *c)
{
	c->state = CONN_IDLE;
	conn_arm_timer(c, c->server->limits.idle_timeout_ms);
	if (uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read) < 0)
		conn_close(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct berth_http_server *s = listener->data;
	struct berth_http_conn *c = NULL;

	if (status < 0 || s->closing)
		return;
	if (conn_new(s, &c) < 0)
		return;
	if (uv_accept(listener, (uv_stream_t *)&c->handle) < 0) {
		conn_close(c);
		return;
	}
	conn_start(c);
}

int berth_http_server_new(uv_loop_t *loop, const struct berth_http_limits *limits,
			  berth_http_handler_fn handler, void *data, struct berth_http_server **ret)
{
	struct berth_http_server *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	if (limits)
		s->limits = *limits;
	else
		berth_http_limits_default(&s->limits);
	s->handler = handler;
	s->data = data;
	*ret = s;
	return 0;
}

void berth_http_server_set_error_hook(struct berth_http_server *s, berth_http_error_hook_fn hook,
				      void *data)
{
	s->error_hook = hook;
	s->error_data = data;
}

int berth_http_server_listen_fd(struct berth_http_server *s, int fd)
{
	int r = uv_pipe_init(s->loop, &s->listener.pipe, 0);

	if (r < 0)
		return r;
	s->listener.pipe.data = s;
	s->listening = true;
	r = uv_pipe_open(&s->listener.pipe, fd);
	if (r < 0)
		return r;
	return uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
}

int berth_http_server_listen_tcp_fd(struct berth_http_server *s, int fd,
				    struct berth_tls_ctx *tls_ctx)
{
	int r = uv_tcp_init(s->loop, &s->listener.tcp);

	if (r < 0) {
		close(fd);
		return r;
	}
	s->listener.tcp.data = s;
	s->listening = true;
	s->tcp = true;
	s->tls_ctx = tls_ctx;
	r = uv_tcp_open(&s->listener.tcp, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	return uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
}

int berth_http_server_adopt(struct berth_http_server *s, int fd)
{
	struct berth_http_conn *c = NULL;
	int r = conn_new(s, &c);

	if (r < 0) {
		close(fd);
		return r;
	}
	c->adopted = true;
	r = uv_pipe_open(&c->handle.pipe, fd);
	if (r < 0) {
		close(fd);
		conn_close(c);
		return r;
	}
	conn_start(c);
	return 0;
}

static void server_maybe_done(struct berth_http_server *s)
{
	void (*cb)(void *) = s->close_cb;

	if (!s->closing || s->n_conns > 0 || (s->listening && !s->listener_closed) || !cb)
		return;
	s->close_cb = NULL;
	cb(s->close_data);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct berth_http_server *s = h->data;

	s->listener_closed = true;
	server_maybe_done(s);
}

void berth_http_server_close(struct berth_http_server *s, void (*close_cb)(void *), void *data)
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_cb = close_cb;
	s->close_data = data;
	if (s->listening)
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
	for (struct berth_http_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->state != CONN_HANDLING && c->state != CONN_WRITING)
			conn_close(c);
	}
	server_maybe_done(s);
}

void berth_http_server_free(struct berth_http_server *s)
{
	free(s);
}

size_t berth_http_server_n_conns(const struct berth_http_server *s)
{
	return s->n_conns;
}

int berth_http_conn_peer_uid(struct berth_http_conn *c, uid_t *ret)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uv_os_fd_t fd;

	if (c->adopted || c->server->tcp)
		return -ENOTSUP;
	if (uv_fileno((uv_handle_t *)&c->handle, &fd) < 0)
		return -EBADF;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	*ret = cred.uid;
	return 0;
}

struct berth_tls_conn *berth_http_conn_tls(struct berth_http_conn *c)
{
	return c->tls;
}

bool berth_http_conn_is_tcp(const struct berth_http_conn *c)
{
	return c->server->tcp;
}

/* ---- streamed bodies ---- */

static void stream_free(struct stream *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_parts; i++) {
		if (st->parts[i].fd >= 0)
			close(st->parts[i].fd);
		else
			free((void *)st->parts[i].data);
	}
	free(st->parts);
	free(st->buf);
	free(st);
}

static void close_part_fds(const struct berth_http_part *parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (parts[i].fd >= 0)
			close(parts[i].fd);
}

static void on_stream_read(uv_fs_t *req)
{
	struct berth_http_conn *c = req->data;
	struct stream *st = c->stream;
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	st->fs_pending = false;
	if (c->state == CONN_CLOSING) {
		if (c->open_handles == 0 && !c->handler_pending)
			conn_free(c);
		return;
	}
	if (n <= 0 || conn_write(c, st->buf, (size_t)n, false) < 0) {
		conn_close(c); /* a short file: the peer sees a truncated body, as it must */
		return;
	}
	st->off += (uint64_t)n;
}

/* Send the next piece; when everything went out, finish like any response. */
static void stream_next(struct berth_http_conn *c)
{
	struct stream *st = c->stream;

	while (st->i < st->n_parts && st->off >= st->parts[st->i].len) {
		st->i++;
		st->off = 0;
	}
	if (st->i == st->n_parts) {
		stream_free(TAKE_PTR(c->stream));
		if (!c->keep_alive || c->server->closing)
			conn_close(c);
		else
			conn_next_request(c);
		return;
	}
	if (st->parts[st->i].fd < 0) {
		const struct berth_http_part *p = &st->parts[st->i];

		st->off = p->len;
		if (conn_write(c, p->data, p->len, false) < 0)
			conn_close(c);
		return;
	}
	{
		const struct berth_http_part *p = &st->parts[st->i];
		uint64_t left = p->len - st->off;
		uv_buf_t buf = uv_buf_init(st->buf,
					   left < STREAM_CHUNK ? (unsigned)left : STREAM_CHUNK);

		st->fs.data = c;
		st->fs_pending = true;
		if (uv_fs_read(c->server->loop, &st->fs, p->fd, &buf, 1, (int64_t)st->off,
			       on_stream_read) < 0) {
			st->fs_pending = false;
			conn_close(c);
		}
	}
}

int berth_http_respond_parts(struct berth_http_conn *c, int status, const char *content_type,
			     const struct berth_http_header *extra, size_t n_extra,
			     const struct berth_http_part *parts, size_t n_parts)
{
	_cleanup_free_ char *head = NULL;
	struct stream *st = NULL;
	uint64_t total = 0;
	size_t head_len = 0;
	int r = -ENOMEM;

	c->handler_pending = false;
	if (c->state == CONN_CLOSING) {
		close_part_fds(parts, n_parts);
		if (c->open_handles == 0)
			conn_free(c);
		return -EPIPE;
	}
	for (size_t i = 0; i < n_parts; i++)
		total += parts[i].len;
	st = calloc(1, sizeof(*st));
	if (st) {
		st->parts = calloc(n_parts ? n_parts : 1, sizeof(*st->parts));
		st->buf = malloc(STREAM_CHUNK);
	}
	if (!st || !st->parts || !st->buf) {
		close_part_fds(parts, n_parts);
		if (st) {
			free(st->parts);
			free(st->buf);
			free(st);
		}
		goto fail;
	}
	for (size_t i = 0; i < n_parts; i++) {
		st->parts[i] = parts[i];
		if (parts[i].fd < 0) {
			void *copy = malloc(parts[i].len ? parts[i].len : 1);
			if (copy && parts[i].len)
				memcpy(copy, parts[i].data, parts[i].len);
			st->parts[i].data = copy;
			st->n_parts = i + 1;
			if (!copy) {
				close_part_fds(parts + i + 1, n_parts - i - 1);
				stream_free(st);
				goto fail;
			}
		}
		st->n_parts = i + 1;
	}
	c->keep_alive = c->keep_alive && !c->server->closing;
	r = build_response(status, content_type, extra, n_extra, total, c->keep_alive, &head,
			   &head_len);
	if (r < 0) {
		stream_free(st);
		goto fail;
	}
	if (c->req.method && streq(c->req.method, "HEAD")) {
		stream_free(st);
		c->state = CONN_WRITING;
		r = conn_write(c, head, head_len, !c->keep_alive);
		if (r < 0)
			goto fail;
		return 0;
	}
	c->stream = st;
	c->state = CONN_WRITING;
	r = conn_write(c, head, head_len, false);
	if (r < 0)
		goto fail;
	return 0;
fail:
	conn_close(c);
	return r;
}

/* ---- websockets ---- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
			  void *user)
{
	struct berth_ws_conn *ws = user;
	size_t n = len < ws->in_len ? len : ws->in_len;

	if (n == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	memcpy(buf, ws->in, n);
	ws->in += n;
	ws->in_len -= n;
	return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
			  void *user)
{
	struct berth_ws_conn *ws = user;
	struct berth_http_conn *c = ws->conn;

	if (c->state == CONN_CLOSING ||
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->handle) > WS_MAX_QUEUED ||
	    conn_write(c, data, len, false) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		      void *user)
{
	struct berth_ws_conn *ws = user;

	if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
		return;
	if (ws->cbs.on_message)
		ws->cbs.on_message(ws, arg->opcode == WSLAY_TEXT_FRAME, arg->msg, arg->msg_length,
				   ws->data);
}

static const struct wslay_event_callbacks ws_callbacks = {
	.recv_callback = ws_recv_cb,
	.send_callback = ws_send_cb,
	.on_msg_recv_callback = ws_msg_cb,
};

/* Flush queued frames; close the connection when the protocol is finished. */
static void ws_pump(struct berth_ws_conn *ws)
{
	struct berth_http_conn *c = ws->conn;

	if (ws->busy || ws->dead)
		return; /* ws_feed pumps once wslay_event_recv has returned */
	if (wslay_event_send(ws->ctx) < 0) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_CLOSING)
		return;
	if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))
		conn_close(c);
}

static void ws_feed(struct berth_ws_conn *ws, const uint8_t *data, size_t len)
{
	int r;

	ws->in = data;
	ws->in_len = len;
	ws->busy = true;
	r = wslay_event_recv(ws->ctx);
	ws->busy = false;
	ws->in = NULL;
	ws->in_len = 0;
	if (ws->dead) {
		ws_destroy(ws); /* conn_close ran from a callback and left us to free */
		return;
	}
	if (r < 0) {
		conn_close(ws->conn);
		return;
	}
	ws_pump(ws);
}

static void ws_destroy(struct berth_ws_conn *ws)
{
	if (ws->cbs.on_close)
		ws->cbs.on_close(ws, ws->data);
	wslay_event_context_free(ws->ctx);
	free(ws);
}

int berth_http_upgrade_ws(struct berth_http_conn *c, const struct berth_ws_callbacks *cbs,
			  void *data, struct berth_ws_conn **ret)
{
	const char *key = berth_http_header_get(c->req.headers, c->req.n_headers,
						"Sec-WebSocket-Key");
	struct berth_http_header h[3];
	struct berth_ws_conn *ws = NULL;
	char accept[32];
	int r;

	if (!c->req.upgrade_websocket || !key || berth_ws_accept_key(key, accept) < 0) {
		const char *msg = "{\"type\":\"error\",\"error\":\"Websocket upgrade required\","
				  "\"error_code\":400,\"metadata\":null}";
		c->keep_alive = false;
		berth_http_respond(c, 400, "application/json", NULL, 0, msg, strlen(msg));
		return -EINVAL;
	}
	ws = calloc(1, sizeof(*ws));
	if (!ws) {
		c->keep_alive = false;
		berth_http_respond(c, 500, NULL, NULL, 0, NULL, 0);
		return -ENOMEM;
	}
	if (wslay_event_context_server_init(&ws->ctx, &ws_callbacks, ws) != 0) {
		free(ws);
		c->keep_alive = false;
		berth_http_respond(c, 500, NULL, NULL, 0, NULL, 0);
		return -ENOMEM;
	}
	wslay_event_config_set_max_recv_msg_length(ws->ctx, WS_MAX_MESSAGE);
	ws->conn = c;
	ws->cbs = *cbs;
	ws->data = data;

	h[0] = (struct berth_http_header){.name = "Upgrade", .value = "websocket"};
	h[1] = (struct berth_http_header){.name = "Connection", .value = "Upgrade"};
	h[2] = (struct berth_http_header){.name = "Sec-WebSocket-Accept", .value = accept};
	{
		_cleanup_free_ char *head = berth_strdup_printf(
			"HTTP/1.1 101 Switching Protocols\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n",
			h[0].name, h[0].value, h[1].name, h[1].value, h[2].name, h[2].value);
		c->handler_pending = false;
		if (!head || conn_write(c, head, strlen(head), false) < 0) {
			wslay_event_context_free(ws->ctx);
			free(ws);
			conn_close(c);
			return -ENOMEM;
		}
	}
	c->ws = ws;
	c->state = CONN_WEBSOCKET;
	r = uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
	if (r < 0) {
		conn_close(c); /* runs on_close */
		return -EPIPE;
	}
	if (c->leftover) {
		_cleanup_free_ char *left = TAKE_PTR(c->leftover);
		size_t len = c->leftover_len;

		c->leftover_len = 0;
		ws_feed(ws, (const uint8_t *)left, len);
		if (c->state == CONN_CLOSING)
			return -EPIPE;
	}
	*ret = ws;
	return 0;
}

int berth_ws_conn_send(struct berth_ws_conn *ws, bool text, const void *data, size_t len)
{
	struct wslay_event_msg msg = {
		.opcode = text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
		.msg = data,
		.msg_length = len,
	};
	struct berth_http_conn *c = ws->conn;

	if (c->state == CONN_CLOSING || ws->close_sent || ws->dead)
		return -EPIPE;
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->handle) > WS_MAX_QUEUED) {
		conn_close(c);
		return -ENOBUFS;
	}
	if (wslay_event_queue_msg(ws->ctx, &msg) != 0) {
		conn_close(c);
		return -ENOMEM;
	}
	ws_pump(ws);
	return 0;
}

void berth_ws_conn_close(struct berth_ws_conn *ws, uint16_t code, const char *reason)
{
	if (ws->close_sent || ws->dead || ws->conn->state == CONN_CLOSING)
		return;
	ws->close_sent = true;
	wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason,
				reason ? strlen(reason) : 0);
	ws_pump(ws);
}

size_t berth_ws_conn_queued(const struct berth_ws_conn *ws)
{
	if (ws->dead || ws->conn->state == CONN_CLOSING)
		return 0;
	return uv_stream_get_write_queue_size((const uv_stream_t *)&ws->conn->handle) +
	       wslay_event_get_queued_msg_length(ws->ctx);
}

int berth_ws_conn_pause(struct berth_ws_conn *ws, bool pause)
{
	struct berth_http_conn *c = ws->conn;

	if (ws->dead || c->state != CONN_WEBSOCKET)
		return -EPIPE;
	if (pause)
		return uv_read_stop((uv_stream_t *)&c->handle);
	return uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
}
