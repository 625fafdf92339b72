/* daemon/db/dqlite_client.c: dqlite's wire protocol, client side (see dqlite_client.h).
 *
 * Three layers, bottom up:
 *  - a write buffer (struct wbuf: grows, remembers an allocation failure so that a request
 *    is built without a check per field) and a read cursor (struct cursor: every get
 *    checks what is left first and fails with -EPROTO, never reads past the end);
 *  - the decoders of response bodies (FAILURE, SERVERS, ROWS; the fixed-size ones inline),
 *    which copy what they keep, so that a reply buffer can be reused at once;
 *  - the connection: a request is one send; a reply is read whole (header, then body)
 *    under a deadline with poll(), so that a silent server costs at most the timeout.
 * Any transport or decoding failure leaves the byte stream in an unknown state: the
 * connection is then marked broken and refuses further requests (-ENOTCONN). */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "daemon/db/dqlite_client.h"

/* Message types (dqlite's src/protocol.h). */
enum {
	REQ_LEADER = 0,
	REQ_CLIENT = 1,
	REQ_OPEN = 3,
	REQ_PREPARE = 4,
	REQ_EXEC = 5,
	REQ_QUERY = 6,
	REQ_FINALIZE = 7,
	REQ_EXEC_SQL = 8,
	REQ_QUERY_SQL = 9,
	REQ_ADD = 12,
	REQ_ASSIGN = 13,
	REQ_REMOVE = 14,
	REQ_CLUSTER = 16,
};
enum {
	RES_FAILURE = 0,
	RES_SERVER = 1,
	RES_WELCOME = 2,
	RES_SERVERS = 3,
	RES_DB = 4,
	RES_STMT = 5,
	RES_RESULT = 6,
	RES_ROWS = 7,
	RES_EMPTY = 8,
};

#define ROWS_PART UINT64_C(0xeeeeeeeeeeeeeeee)
#define ROWS_DONE UINT64_C(0xffffffffffffffff)
#define CLUSTER_FORMAT_V1 1 /* id, address and role */
#define WORD 8

struct dqlite_client {
	int fd;
	int timeout_ms;
	bool broken;	       /* the stream is out of step: refuse requests */
	uint32_t db_id;	       /* of the database OPEN gave */
	uint64_t failure_code; /* of the last FAILURE reply */
	uint8_t type;	       /* of the last reply read */
	uint8_t *body;	       /* owned: the last reply's body */
	size_t body_len;
	size_t body_cap;
};

static size_t pad8(size_t n)
{
	return (n + WORD - 1) & ~(size_t)(WORD - 1);
}

/* ---- write buffer ---- */

struct wbuf {
	uint8_t *data; /* owned */
	size_t len;
	size_t cap;
	bool nomem;
};

static void wbuf_release(struct wbuf *b)
{
	free(b->data);
	*b = (struct wbuf){0};
}

static uint8_t *wbuf_grow(struct wbuf *b, size_t n)
{
	uint8_t *p;

	if (b->nomem)
		return NULL;
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap - b->len < n)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p) {
			b->nomem = true;
			return NULL;
		}
		b->data = p;
		b->cap = cap;
	}
	p = b->data + b->len;
	b->len += n;
	return p;
}

static void put_bytes(struct wbuf *b, const void *data, size_t n)
{
	size_t padded = pad8(n);
	uint8_t *p = wbuf_grow(b, padded);

	if (!p)
		return;
	if (n)
		memcpy(p, data, n);
	memset(p + n, 0, padded - n);
}

static void put_u32(struct wbuf *b, uint32_t v)
{
	uint8_t *p = wbuf_grow(b, 4);

	for (int i = 0; p && i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(struct wbuf *b, uint64_t v)
{
	uint8_t *p = wbuf_grow(b, 8);

	for (int i = 0; p && i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_text(struct wbuf *b, const char *s)
{
	put_bytes(b, s, strlen(s) + 1);
}

static void put_blob(struct wbuf *b, const void *data, size_t len)
{
	put_u64(b, len);
	put_bytes(b, data, len);
}

static void put_double(struct wbuf *b, double d)
{
	uint64_t v;

	memcpy(&v, &d, sizeof(v));
	put_u64(b, v);
}

/* ---- read cursor ---- */

struct cursor {
	const uint8_t *p;
	size_t left;
};

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int get_u32(struct cursor *c, uint32_t *v)
{
	if (c->left < 4)
		return -EPROTO;
	*v = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
	     (uint32_t)c->p[3] << 24;
	c->p += 4;
	c->left -= 4;
	return 0;
}

static int get_u64(struct cursor *c, uint64_t *v)
{
	if (c->left < 8)
		return -EPROTO;
	*v = le64(c->p);
	c->p += 8;
	c->left -= 8;
	return 0;
}

/* A NUL-terminated string padded to a word; *s points into the cursor's buffer. */
static int get_text(struct cursor *c, const char **s)
{
	const uint8_t *nul = memchr(c->p, 0, c->left);
	size_t n;

	if (!nul)
		return -EPROTO;
	n = pad8((size_t)(nul - c->p) + 1);
	if (n > c->left)
		return -EPROTO;
	*s = (const char *)c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static int get_blob(struct cursor *c, const uint8_t **data, size_t *len)
{
	uint64_t n;

	if (get_u64(c, &n) < 0 || n > c->left || pad8((size_t)n) > c->left)
		return -EPROTO;
	*data = c->p;
	*len = (size_t)n;
	c->p += pad8((size_t)n);
	c->left -= pad8((size_t)n);
	return 0;
}

static int bad_reply(struct berth_error *err, const char *what, const char *why)
{
	return berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL, "dqlite: malformed %s reply: %s",
			       what, why);
}

/* ---- decoders ---- */

int dqlite_client_decode_failure(const uint8_t *body, size_t len, uint64_t *ret_code,
				 char **ret_message, struct berth_error *err)
{
	struct cursor cur = {body, len};
	const char *msg;
	uint64_t code;
	char *copy;

	if (get_u64(&cur, &code) < 0 || get_text(&cur, &msg) < 0)
		return bad_reply(err, "FAILURE", "truncated");
	if (cur.left)
		return bad_reply(err, "FAILURE", "trailing bytes");
	copy = strdup(msg);
	if (!copy)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	*ret_code = code;
	*ret_message = copy;
	return 0;
}

void dqlite_client_nodes_free(struct dqlite_client_node *nodes, size_t n)
{
	for (size_t i = 0; nodes && i < n; i++)
		free(nodes[i].address);
	free(nodes);
}

int dqlite_client_decode_servers(const uint8_t *body, size_t len, struct dqlite_client_node **ret,
				 size_t *ret_n, struct berth_error *err)
{
	struct cursor cur = {body, len};
	struct dqlite_client_node *nodes;
	uint64_t n;
	size_t i;

	if (get_u64(&cur, &n) < 0)
		return bad_reply(err, "SERVERS", "no count");
	/* Each member takes three words at least: a count beyond that is a lie. */
	if (n > cur.left / (3 * WORD))
		return bad_reply(err, "SERVERS", "more members than the reply holds");
	nodes = calloc(n ? n : 1, sizeof(*nodes));
	if (!nodes)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	for (i = 0; i < n; i++) {
		const char *address;
		uint64_t role;

		if (get_u64(&cur, &nodes[i].id) < 0 || get_text(&cur, &address) < 0 ||
		    get_u64(&cur, &role) < 0)
			break;
		if (role >= DQLITE_CLIENT_ROLE_MAX)
			break;
		nodes[i].role = (enum dqlite_client_role)role;
		nodes[i].address = strdup(address);
		if (!nodes[i].address) {
			dqlite_client_nodes_free(nodes, i);
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL,
					       "dqlite: out of memory");
		}
	}
	if (i < n || cur.left) {
		dqlite_client_nodes_free(nodes, i);
		return bad_reply(err, "SERVERS", i < n ? "bad member entry" : "trailing bytes");
	}
	*ret = nodes;
	*ret_n = (size_t)n;
	return 0;
}

static void value_release(struct dqlite_client_value *v)
{
	/* A decoded row's text and blob are its own copies (the const is for parameters). */
	if (v->type == DQLITE_CLIENT_TEXT || v->type == DQLITE_CLIENT_ISO8601)
		free((char *)v->text);
	else if (v->type == DQLITE_CLIENT_BLOB)
		free((void *)v->blob.data);
	*v = (struct dqlite_client_value){0};
}

void dqlite_client_rows_release(struct dqlite_client_rows *rows)
{
	for (size_t i = 0; rows->columns && i < rows->n_columns; i++)
		free(rows->columns[i]);
	free(rows->columns);
	for (size_t i = 0; rows->values && i < rows->cap; i++)
		value_release(&rows->values[i]);
	free(rows->values);
	*rows = (struct dqlite_client_rows){0};
}

const struct dqlite_client_value *dqlite_client_rows_get(const struct dqlite_client_rows *rows,
							 size_t row, size_t col)
{
	return &rows->values[row * rows->n_columns + col];
}

/* The column names that open each ROWS page: kept from the first page, and every later
 * page must repeat them. */
static int decode_columns(struct cursor *cur, struct dqlite_client_rows *rows,
			  struct berth_error *err)
{
	uint64_t n;
	const char *name;

	if (get_u64(cur, &n) < 0)
		return bad_reply(err, "ROWS", "no column count");
	/* A name takes a word at least; a result has one column at least. */
	if (n == 0 || n > cur->left / WORD)
		return bad_reply(err, "ROWS", "column count does not fit the reply");
	if (rows->columns) {
		if (n != rows->n_columns)
			return bad_reply(err, "ROWS", "a page changes the column count");
		for (size_t i = 0; i < n; i++)
			if (get_text(cur, &name) < 0 || strcmp(name, rows->columns[i]))
				return bad_reply(err, "ROWS", "a page changes the column names");
		return 0;
	}
	rows->columns = calloc((size_t)n, sizeof(char *));
	if (!rows->columns)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	rows->n_columns = (size_t)n;
	for (size_t i = 0; i < n; i++) {
		if (get_text(cur, &name) < 0)
			return bad_reply(err, "ROWS", "truncated column name");
		rows->columns[i] = strdup(name);
		if (!rows->columns[i])
			return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL,
					       "dqlite: out of memory");
	}
	return 0;
}

/* One value of type `type` into *v, its text or blob copied. */
static int decode_value(struct cursor *cur, unsigned type, struct dqlite_client_value *v)
{
	const uint8_t *data;
	const char *text;
	uint64_t word;
	size_t len;
	void *copy;

	switch (type) {
	case DQLITE_CLIENT_INTEGER:
	case DQLITE_CLIENT_UNIXTIME:
	case DQLITE_CLIENT_FLOAT:
	case DQLITE_CLIENT_NULL:
	case DQLITE_CLIENT_BOOLEAN:
		if (get_u64(cur, &word) < 0)
			return -EPROTO;
		if (type == DQLITE_CLIENT_FLOAT)
			memcpy(&v->real, &word, sizeof(word));
		else if (type == DQLITE_CLIENT_BOOLEAN)
			v->boolean = word;
		else if (type != DQLITE_CLIENT_NULL)
			v->integer = (int64_t)word;
		break;
	case DQLITE_CLIENT_TEXT:
	case DQLITE_CLIENT_ISO8601:
		if (get_text(cur, &text) < 0)
			return -EPROTO;
		v->text = strdup(text);
		if (!v->text)
			return -ENOMEM;
		break;
	case DQLITE_CLIENT_BLOB:
		if (get_blob(cur, &data, &len) < 0)
			return -EPROTO;
		copy = malloc(len ? len : 1);
		if (!copy)
			return -ENOMEM;
		if (len)
			memcpy(copy, data, len);
		v->blob.data = copy;
		v->blob.len = len;
		break;
	default:
		return -EPROTO;
	}
	v->type = (enum dqlite_client_type)type;
	return 0;
}

static int rows_reserve(struct dqlite_client_rows *rows)
{
	size_t need, cap;
	struct dqlite_client_value *v;

	if (__builtin_mul_overflow(rows->n_rows + 1, rows->n_columns, &need))
		return -ENOMEM;
	if (need <= rows->cap)
		return 0;
	cap = rows->cap ? rows->cap : 16 * rows->n_columns;
	while (cap < need)
		if (__builtin_mul_overflow(cap, 2, &cap))
			return -ENOMEM;
	v = reallocarray(rows->values, cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + rows->cap, 0, (cap - rows->cap) * sizeof(*v));
	rows->values = v;
	rows->cap = cap;
	return 0;
}

/* One row: a header of 4-bit type codes (two per byte, low nibble first, padded to a
 * word), then the values. A failed row leaves nothing behind. */
static int decode_row(struct cursor *cur, struct dqlite_client_rows *rows, struct berth_error *err)
{
	size_t n = rows->n_columns, header_len = pad8((n + 1) / 2);
	struct dqlite_client_value *row;
	const uint8_t *header;
	int r;

	if (header_len > cur->left)
		return bad_reply(err, "ROWS", "truncated row header");
	if (rows_reserve(rows) < 0)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	header = cur->p;
	cur->p += header_len;
	cur->left -= header_len;
	row = &rows->values[rows->n_rows * n];
	for (size_t i = 0; i < n; i++) {
		unsigned type = (header[i / 2] >> (4 * (i % 2))) & 0xf;

		r = decode_value(cur, type, &row[i]);
		if (r < 0) {
			for (size_t j = 0; j < i; j++)
				value_release(&row[j]);
			if (r == -ENOMEM)
				return berth_error_set(err, r, BERTH_ERR_INTERNAL,
						       "dqlite: out of memory");
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "dqlite: malformed ROWS reply: row %zu, column %zu "
					       "(type %u) is bad",
					       rows->n_rows, i, type);
		}
	}
	rows->n_rows++;
	return 0;
}

int dqlite_client_decode_rows(const uint8_t *body, size_t len, struct dqlite_client_rows *rows,
			      bool *ret_more, struct berth_error *err)
{
	struct cursor cur = {body, len};
	int r;

	r = decode_columns(&cur, rows, err);
	if (r < 0)
		return r;
	for (;;) {
		uint64_t marker;

		if (cur.left < WORD)
			return bad_reply(err, "ROWS", "no end marker");
		/* No row starts with either marker: its first byte holds type codes <= 11. */
		marker = le64(cur.p);
		if (marker == ROWS_DONE || marker == ROWS_PART) {
			if (cur.left != WORD)
				return bad_reply(err, "ROWS",
						 "trailing bytes after the end marker");
			rows->pages++;
			*ret_more = marker == ROWS_PART;
			return 0;
		}
		r = decode_row(&cur, rows, err);
		if (r < 0)
			return r;
	}
}

/* ---- connection ---- */

static int64_t deadline_after(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
}

/* Wait until `fd` is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline - deadline_after(0);
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int write_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			int r = wait_fd(fd, POLLOUT, deadline);

			if (r < 0)
				return r;
			continue;
		}
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	while (n) {
		ssize_t got = recv(fd, p, n, MSG_DONTWAIT);

		if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
			int r = wait_fd(fd, POLLIN, deadline);

			if (r < 0)
				return r;
			continue;
		}
		if (got < 0)
			return -errno;
		if (got == 0)
			return -ECONNRESET;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

/* Record a decoding failure (`err` already says why): the stream is out of step from now
 * on. Returns `r`. */
static int client_broken(struct dqlite_client *c, int r)
{
	c->broken = true;
	return r;
}

/* The same for a transport failure while `what`. */
static int client_io_failed(struct dqlite_client *c, int r, const char *what,
			    struct berth_error *err)
{
	c->broken = true;
	if (r == -ECONNRESET)
		return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
				       "dqlite: the server closed the connection while %s", what);
	return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE, "dqlite: %s: %s", what, strerror(-r));
}

static int client_check(struct dqlite_client *c, struct berth_error *err)
{
	if (c->broken)
		return berth_error_set(err, -ENOTCONN, BERTH_ERR_UNAVAILABLE,
				       "dqlite: connection unusable after an earlier failure");
	return 0;
}

/* Send the message in `b`, whose first word was reserved for the header. */
static int client_send(struct dqlite_client *c, struct wbuf *b, uint8_t type,
		       struct berth_error *err)
{
	size_t words;

	if (b->nomem)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	words = (b->len - WORD) / WORD;
	if (words > UINT32_MAX)
		return berth_error_set(err, -E2BIG, BERTH_ERR_TOO_LARGE,
				       "dqlite: request too large");
	for (int i = 0; i < 4; i++)
		b->data[i] = (uint8_t)(words >> (8 * i));
	b->data[4] = type;
	memset(b->data + 5, 0, 3);
	return write_all(c->fd, b->data, b->len, deadline_after(c->timeout_ms));
}

/* Read one whole reply into c->type and c->body. */
static int client_recv(struct dqlite_client *c, struct berth_error *err)
{
	int64_t deadline = deadline_after(c->timeout_ms);
	uint8_t header[WORD];
	size_t len;
	int r;

	r = read_all(c->fd, header, sizeof(header), deadline);
	if (r < 0)
		return client_io_failed(c, r, "reading a reply", err);
	len = (size_t)(header[0] | header[1] << 8 | header[2] << 16 | (uint32_t)header[3] << 24);
	if (len > DQLITE_CLIENT_MAX_BODY / WORD)
		return client_broken(c, bad_reply(err, "any", "body larger than 64 MiB"));
	len *= WORD;
	if (len > c->body_cap) {
		uint8_t *p = realloc(c->body, len);

		if (!p)
			return client_io_failed(c, -ENOMEM, "reading a reply", err);
		c->body = p;
		c->body_cap = len;
	}
	r = read_all(c->fd, c->body, len, deadline);
	if (r < 0)
		return client_io_failed(c, r, "reading a reply", err);
	c->type = header[4];
	c->body_len = len;
	return 0;
}

/* Read a reply that must be of type `want` (or FAILURE, which becomes -EREMOTEIO). */
static int client_expect(struct dqlite_client *c, uint8_t want, struct berth_error *err)
{
	_cleanup_free_ char *msg = NULL;
	uint64_t code;
	int r;

	r = client_recv(c, err);
	if (r < 0)
		return r;
	if (c->type == RES_FAILURE && want != RES_FAILURE) {
		r = dqlite_client_decode_failure(c->body, c->body_len, &code, &msg, err);
		if (r < 0)
			return client_broken(c, r);
		c->failure_code = code;
		return berth_error_set(err, -EREMOTEIO, BERTH_ERR_INTERNAL,
				       "dqlite: %s (code %" PRIu64 ")", msg, code);
	}
	if (c->type != want) {
		berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				"dqlite: reply of type %u where %u was expected", c->type, want);
		return client_broken(c, -EPROTO);
	}
	return 0;
}

/* Send request `b` of `type` and read its reply of type `want` (body of exactly
 * `want_len` bytes unless that is 0). */
static int client_call(struct dqlite_client *c, struct wbuf *b, uint8_t type, uint8_t want,
		       size_t want_len, struct berth_error *err)
{
	int r;

	r = client_send(c, b, type, err);
	if (r == -ENOMEM || r == -E2BIG)
		return r;
	if (r < 0)
		return client_io_failed(c, r, "sending a request", err);
	r = client_expect(c, want, err);
	if (r < 0)
		return r;
	if (want_len && c->body_len != want_len) {
		berth_error_set(err, -EPROTO, BERTH_ERR_INTERNAL,
				"dqlite: malformed reply of type %u: %zu bytes, not %zu", want,
				c->body_len, want_len);
		return client_broken(c, -EPROTO);
	}
	return 0;
}

static void request_start(struct wbuf *b)
{
	wbuf_grow(b, WORD); /* the header, filled by client_send */
}

uint64_t dqlite_client_failure_code(const struct dqlite_client *c)
{
	return c->failure_code;
}

int dqlite_client_from_fd(int fd, int timeout_ms, struct dqlite_client **ret,
			  struct berth_error *err)
{
	_cleanup_close_ int sock = fd;
	uint8_t version[WORD] = {DQLITE_CLIENT_PROTOCOL_VERSION};
	struct dqlite_client *c;
	int r;

	if (timeout_ms <= 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "dqlite: the timeout must be positive");
	r = write_all(sock, version, sizeof(version), deadline_after(timeout_ms));
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
				       "dqlite: sending the protocol version: %s", strerror(-r));
	c = calloc(1, sizeof(*c));
	if (!c)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	c->fd = TAKE_FD(sock);
	c->timeout_ms = timeout_ms;
	*ret = c;
	return 0;
}

void dqlite_client_free(struct dqlite_client *c)
{
	if (!c)
		return;
	berth_closep(&c->fd);
	free(c->body);
	free(c);
}

/* "@name" or "/path" into a unix socket address; *ret_len is the length to pass on. */
static int unix_address(const char *address, struct sockaddr_un *sun, socklen_t *ret_len,
			struct berth_error *err)
{
	size_t n = strlen(address);

	if (n >= sizeof(sun->sun_path) || n < 2)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "dqlite: bad unix socket address \"%s\"", address);
	*sun = (struct sockaddr_un){.sun_family = AF_UNIX};
	memcpy(sun->sun_path, address, n);
	if (address[0] == '@')
		sun->sun_path[0] = '\0'; /* abstract: the name is the n bytes, no NUL */
	else
		n++;
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return 0;
}

/* Connect a non-blocking socket and wait for the outcome until the deadline. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	int soerr = 0;
	socklen_t soerr_len = sizeof(soerr);
	int r;

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	r = wait_fd(fd, POLLOUT, deadline);
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) < 0)
		return -errno;
	return -soerr;
}

/* "host:port" or "[v6]:port": the first address that accepts a connection. */
static int tcp_connect(const char *address, int64_t deadline, struct berth_error *err)
{
	_cleanup_free_ char *host = strdup(address);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char *port;
	int r = -EHOSTUNREACH;

	if (!host)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	port = strrchr(host, ':');
	if (!port || port == host)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "dqlite: address \"%s\" has no port", address);
	*port++ = '\0';
	if (host[0] == '[' && port[-2] == ']') {
		port[-2] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return berth_error_set(err, -EHOSTUNREACH, BERTH_ERR_UNAVAILABLE,
				       "dqlite: cannot resolve \"%s\"", address);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		_cleanup_close_ int fd = socket(ai->ai_family,
						ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int one = 1;

		if (fd < 0) {
			r = -errno;
			continue;
		}
		r = connect_within(fd, ai->ai_addr, ai->ai_addrlen, deadline);
		if (r == 0) {
			/* Requests are small and each waits for its reply: no Nagle delay. */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			freeaddrinfo(res);
			return TAKE_FD(fd);
		}
	}
	freeaddrinfo(res);
	return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE, "dqlite: connecting to \"%s\": %s",
			       address, strerror(-r));
}

void dqlite_client_set_timeout(struct dqlite_client *c, int timeout_ms)
{
	if (c && timeout_ms > 0)
		c->timeout_ms = timeout_ms;
}

int dqlite_client_connect(const char *address, int timeout_ms, struct dqlite_client **ret,
			  struct berth_error *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sun;
	socklen_t len = 0;
	int r;

	if (address[0] != '@' && address[0] != '/') {
		fd = tcp_connect(address, deadline, err);
		if (fd < 0)
			return fd;
		return dqlite_client_from_fd(TAKE_FD(fd), timeout_ms, ret, err);
	}
	r = unix_address(address, &sun, &len, err);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "dqlite: socket: %m");
	r = connect_within(fd, (struct sockaddr *)&sun, len, deadline);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_UNAVAILABLE,
				       "dqlite: connecting to \"%s\": %s", address, strerror(-r));
	return dqlite_client_from_fd(TAKE_FD(fd), timeout_ms, ret, err);
}

/* ---- requests ---- */

static bool param_type_ok(enum dqlite_client_type t)
{
	/* dqlite 1.11 binds these; it has no decoder for a UNIXTIME parameter. */
	return t == DQLITE_CLIENT_INTEGER || t == DQLITE_CLIENT_FLOAT || t == DQLITE_CLIENT_TEXT ||
	       t == DQLITE_CLIENT_BLOB || t == DQLITE_CLIENT_NULL || t == DQLITE_CLIENT_ISO8601 ||
	       t == DQLITE_CLIENT_BOOLEAN;
}

/* The parameters tuple: a count byte and a type byte each, padded to a word, then the
 * values. None at all: nothing (the server then binds nothing). */
static int put_params(struct wbuf *b, const struct dqlite_client_value *params, size_t n,
		      struct berth_error *err)
{
	uint8_t *types;

	if (n == 0)
		return 0;
	if (!params)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "dqlite: %zu parameters but none given", n);
	if (n > DQLITE_CLIENT_MAX_PARAMS)
		return berth_error_set(err, -E2BIG, BERTH_ERR_BAD_REQUEST,
				       "dqlite: %zu parameters, at most %d", n,
				       DQLITE_CLIENT_MAX_PARAMS);
	for (size_t i = 0; i < n; i++)
		if (!param_type_ok(params[i].type) ||
		    (params[i].type == DQLITE_CLIENT_BLOB && params[i].blob.len &&
		     !params[i].blob.data) ||
		    ((params[i].type == DQLITE_CLIENT_TEXT ||
		      params[i].type == DQLITE_CLIENT_ISO8601) &&
		     !params[i].text))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "dqlite: parameter %zu has a bad type or value",
					       i + 1);
	types = wbuf_grow(b, pad8(1 + n));
	if (!types)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	memset(types, 0, pad8(1 + n));
	types[0] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		types[1 + i] = (uint8_t)params[i].type;
	/* The buffer may move from here on: types is not used again. */
	for (size_t i = 0; i < n; i++) {
		const struct dqlite_client_value *v = &params[i];

		switch (v->type) {
		case DQLITE_CLIENT_FLOAT:
			put_double(b, v->real);
			break;
		case DQLITE_CLIENT_TEXT:
		case DQLITE_CLIENT_ISO8601:
			put_text(b, v->text);
			break;
		case DQLITE_CLIENT_BLOB:
			put_blob(b, v->blob.data, v->blob.len);
			break;
		case DQLITE_CLIENT_BOOLEAN:
			put_u64(b, v->boolean);
			break;
		case DQLITE_CLIENT_NULL:
			put_u64(b, 0);
			break;
		default:
			put_u64(b, (uint64_t)v->integer);
			break;
		}
	}
	return 0;
}

int dqlite_client_register(struct dqlite_client *c, uint64_t id, uint64_t *ret_heartbeat_ms,
			   struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	struct cursor cur;
	uint64_t heartbeat = 0;
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	request_start(&b);
	put_u64(&b, id);
	r = client_call(c, &b, REQ_CLIENT, RES_WELCOME, WORD, err);
	if (r < 0)
		return r;
	cur = (struct cursor){c->body, c->body_len};
	(void)get_u64(&cur, &heartbeat);
	if (ret_heartbeat_ms)
		*ret_heartbeat_ms = heartbeat;
	return 0;
}

int dqlite_client_leader(struct dqlite_client *c, uint64_t *ret_id, char **ret_address,
			 struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	struct cursor cur;
	const char *address;
	uint64_t id;
	char *copy;
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	request_start(&b);
	put_u64(&b, 0);
	r = client_call(c, &b, REQ_LEADER, RES_SERVER, 0, err);
	if (r < 0)
		return r;
	cur = (struct cursor){c->body, c->body_len};
	if (get_u64(&cur, &id) < 0 || get_text(&cur, &address) < 0 || cur.left)
		return client_broken(c, bad_reply(err, "SERVER", "not an id and an address"));
	copy = strdup(address);
	if (!copy)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "dqlite: out of memory");
	*ret_id = id;
	*ret_address = copy;
	return 0;
}

int dqlite_client_open(struct dqlite_client *c, const char *name, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	struct cursor cur;
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	request_start(&b);
	put_text(&b, name);
	put_u64(&b, 0);	  /* flags: dqlite 1.11 ignores them */
	put_text(&b, ""); /* VFS name: likewise */
	r = client_call(c, &b, REQ_OPEN, RES_DB, WORD, err);
	if (r < 0)
		return r;
	cur = (struct cursor){c->body, c->body_len};
	(void)get_u32(&cur, &c->db_id);
	return 0;
}

int dqlite_client_prepare(struct dqlite_client *c, const char *sql, uint32_t *ret_stmt,
			  uint64_t *ret_params, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	struct cursor cur;
	uint32_t db_id = 0, stmt = 0;
	uint64_t params = 0;
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	request_start(&b);
	put_u64(&b, c->db_id);
	put_text(&b, sql);
	r = client_call(c, &b, REQ_PREPARE, RES_STMT, 2 * WORD, err);
	if (r < 0)
		return r;
	cur = (struct cursor){c->body, c->body_len};
	(void)get_u32(&cur, &db_id);
	(void)get_u32(&cur, &stmt);
	(void)get_u64(&cur, &params);
	*ret_stmt = stmt;
	if (ret_params)
		*ret_params = params;
	return 0;
}

/* The rest of EXEC and EXEC_SQL once the request is built: read the RESULT. */
static int exec_finish(struct dqlite_client *c, struct wbuf *b, uint8_t type,
		       struct dqlite_client_result *ret, struct berth_error *err)
{
	struct cursor cur;
	struct dqlite_client_result res = {0};
	int r;

	r = client_call(c, b, type, RES_RESULT, 2 * WORD, err);
	if (r < 0)
		return r;
	cur = (struct cursor){c->body, c->body_len};
	(void)get_u64(&cur, &res.last_insert_id);
	(void)get_u64(&cur, &res.rows_affected);
	if (ret)
		*ret = res;
	return 0;
}

/* The rest of QUERY and QUERY_SQL: send, then read ROWS pages until one ends with DONE. */
static int query_finish(struct dqlite_client *c, struct wbuf *b, uint8_t type,
			struct dqlite_client_rows *rows, struct berth_error *err)
{
	bool more = true;
	int r;

	r = client_send(c, b, type, err);
	if (r == -ENOMEM || r == -E2BIG)
		return r;
	if (r < 0)
		return client_io_failed(c, r, "sending a request", err);
	while (more) {
		r = client_expect(c, RES_ROWS, err);
		if (r < 0)
			return r;
		r = dqlite_client_decode_rows(c->body, c->body_len, rows, &more, err);
		if (r < 0)
			return client_broken(c, r);
	}
	return 0;
}

static void put_stmt_ids(struct wbuf *b, uint32_t db_id, uint32_t stmt)
{
	request_start(b);
	put_u32(b, db_id);
	put_u32(b, stmt);
}

int dqlite_client_exec(struct dqlite_client *c, uint32_t stmt,
		       const struct dqlite_client_value *params, size_t n,
		       struct dqlite_client_result *ret, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	put_stmt_ids(&b, c->db_id, stmt);
	r = put_params(&b, params, n, err);
	if (r < 0)
		return r;
	return exec_finish(c, &b, REQ_EXEC, ret, err);
}

int dqlite_client_query(struct dqlite_client *c, uint32_t stmt,
			const struct dqlite_client_value *params, size_t n,
			struct dqlite_client_rows *rows, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	put_stmt_ids(&b, c->db_id, stmt);
	r = put_params(&b, params, n, err);
	if (r < 0)
		return r;
	return query_finish(c, &b, REQ_QUERY, rows, err);
}

int dqlite_client_finalize(struct dqlite_client *c, uint32_t stmt, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	put_stmt_ids(&b, c->db_id, stmt);
	return client_call(c, &b, REQ_FINALIZE, RES_EMPTY, WORD, err);
}

/* The body of an EXEC_SQL or QUERY_SQL request: the database, the SQL, its parameters. */
static int sql_request(struct dqlite_client *c, struct wbuf *b, const char *sql,
		       const struct dqlite_client_value *params, size_t n, struct berth_error *err)
{
	int r = client_check(c, err);

	if (r < 0)
		return r;
	request_start(b);
	put_u64(b, c->db_id);
	put_text(b, sql);
	return put_params(b, params, n, err);
}

int dqlite_client_exec_sql(struct dqlite_client *c, const char *sql,
			   const struct dqlite_client_value *params, size_t n,
			   struct dqlite_client_result *ret, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	int r = sql_request(c, &b, sql, params, n, err);

	return r < 0 ? r : exec_finish(c, &b, REQ_EXEC_SQL, ret, err);
}

int dqlite_client_query_sql(struct dqlite_client *c, const char *sql,
			    const struct dqlite_client_value *params, size_t n,
			    struct dqlite_client_rows *rows, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	int r = sql_request(c, &b, sql, params, n, err);

	return r < 0 ? r : query_finish(c, &b, REQ_QUERY_SQL, rows, err);
}

int dqlite_client_cluster(struct dqlite_client *c, struct dqlite_client_node **ret, size_t *ret_n,
			  struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	request_start(&b);
	put_u64(&b, CLUSTER_FORMAT_V1);
	r = client_call(c, &b, REQ_CLUSTER, RES_SERVERS, 0, err);
	if (r < 0)
		return r;
	r = dqlite_client_decode_servers(c->body, c->body_len, ret, ret_n, err);
	if (r == -EPROTO)
		return client_broken(c, r);
	return r;
}

/* ADD, ASSIGN and REMOVE: a request of one or two words, answered with EMPTY. */
static int membership_call(struct dqlite_client *c, uint8_t type, uint64_t id, const char *address,
			   const uint64_t *role, struct berth_error *err)
{
	struct wbuf b __attribute__((cleanup(wbuf_release))) = {0};
	int r;

	r = client_check(c, err);
	if (r < 0)
		return r;
	request_start(&b);
	put_u64(&b, id);
	if (address)
		put_text(&b, address);
	if (role)
		put_u64(&b, *role);
	return client_call(c, &b, type, RES_EMPTY, WORD, err);
}

int dqlite_client_add(struct dqlite_client *c, uint64_t id, const char *address,
		      struct berth_error *err)
{
	return membership_call(c, REQ_ADD, id, address, NULL, err);
}

int dqlite_client_assign(struct dqlite_client *c, uint64_t id, enum dqlite_client_role role,
			 struct berth_error *err)
{
	uint64_t r = (uint64_t)role;

	if (role >= DQLITE_CLIENT_ROLE_MAX)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "dqlite: bad role %d",
				       (int)role);
	return membership_call(c, REQ_ASSIGN, id, NULL, &r, err);
}

int dqlite_client_remove(struct dqlite_client *c, uint64_t id, struct berth_error *err)
{
	return membership_call(c, REQ_REMOVE, id, NULL, NULL, err);
}
