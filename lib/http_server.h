/* lib/http_server.h: an HTTP/1.1 server on a libuv loop (http-parser underneath),
 * with websocket upgrade (wslay underneath).
 *
 * The server accepts connections on a listening unix socket (or adopts connected
 * fds), parses one request at a time per connection, and hands each complete
 * request to the handler. The handler answers, now or later (from the loop
 * thread), with exactly one berth_http_respond() or berth_http_upgrade_ws().
 * While a request is being handled the connection reads nothing more; pipelined
 * bytes wait. Limits: header bytes, body bytes, the idle time of a keep-alive
 * connection, and the time a started request may take to arrive. A violation is
 * answered with 431/413/400/408 and the connection closed.
 *
 * Connection states:
 *
 *   IDLE --first byte--> READING --message complete--> HANDLING --respond--> WRITING
 *    ^                                                                         |
 *    +----------------------- keep-alive, write done --------------------------+
 *   any state --error/EOF/timeout/close--> CLOSING (freed in uv_close's callback,
 *   but not before a pending respond/upgrade from the handler has been consumed)
 *   HANDLING --upgrade--> WEBSOCKET
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/error.h"
#include "lib/http_util.h"

struct berth_http_server;
struct berth_http_conn;
struct berth_ws_conn;

struct berth_http_request {
	const char *method;		   /* "GET", ... */
	char *url;			   /* owned: raw request target */
	char *path;			   /* owned: percent-decoded path */
	char *query;			   /* owned: raw query string without '?', or "" */
	struct berth_http_header *headers; /* owned */
	size_t n_headers;
	char *body; /* owned, NUL-terminated (not counted in body_len); "" when spooled */
	size_t body_len;
	/* Owned, or -EBADF. Uploads (Content-Type application/octet-stream or
	 * multipart/...) are spooled to an unlinked temp file in limits.spool_dir as
	 * they arrive, instead of memory: body_fd is that file, positioned at 0, and
	 * body_len its size. */
	int body_fd;
	bool upgrade_websocket; /* Upgrade: websocket was requested */
};

/* Called on the loop thread with a request that stays valid until the response. */
typedef void (*berth_http_handler_fn)(struct berth_http_conn *conn, struct berth_http_request *req,
				      void *data);

struct berth_http_limits {
	size_t max_header_bytes;     /* default 64 KiB */
	size_t max_body_bytes;	     /* default 16 MiB */
	uint64_t idle_timeout_ms;    /* keep-alive idle; default 60 s */
	uint64_t request_timeout_ms; /* first byte to complete request; default 30 s */
	const char *spool_dir;	     /* borrowed; NULL: uploads are bounded like bodies */
	uint64_t max_upload_bytes;   /* spooled bodies; default 64 GiB */
	/* Optional: also spool the body of a request whose raw target `url` this returns
	 * true for, whatever its Content-Type (clients that send none on raw uploads). */
	bool (*spool_url)(const char *method, const char *url);
};

void berth_http_limits_default(struct berth_http_limits *limits);

int berth_http_server_new(uv_loop_t *loop, const struct berth_http_limits *limits,
			  berth_http_handler_fn handler, void *data,
			  struct berth_http_server **ret);
/* Listen on an already bound, listening socket fd (the server owns it afterwards). */
int berth_http_server_listen_fd(struct berth_http_server *s, int fd);
struct berth_tls_ctx;
struct berth_tls_conn;
/* Listen on an already bound, listening TCP socket fd (owned from this call on, also on
 * failure), with TLS on every connection when `tls_ctx` (borrowed: it must outlive the
 * server) is not NULL. */
int berth_http_server_listen_tcp_fd(struct berth_http_server *s, int fd,
				    struct berth_tls_ctx *tls_ctx);
/* Serve an already connected stream fd (tests, fuzzing). Owns `fd`. */
int berth_http_server_adopt(struct berth_http_server *s, int fd);
/* Stop accepting and close every connection; `close_cb` runs once everything is
 * closed (handlers still running will find their connection gone). Idempotent. */
void berth_http_server_close(struct berth_http_server *s, void (*close_cb)(void *), void *data);

/* Called on the loop thread for every response with a status of 400 or more, the
 * server's own (bad syntax, limits) included, before it is sent. `method` and `path`
 * (decoded, without the query string) are NULL when the request was not parsed that far;
 * `body` is what the response carries (LXD's error JSON for API errors). */
typedef void (*berth_http_error_hook_fn)(const char *method, const char *path, int status,
					 const char *body, size_t len, void *data);
/* Install (or with NULL remove) the error hook; `data` is borrowed. */
void berth_http_server_set_error_hook(struct berth_http_server *s, berth_http_error_hook_fn hook,
				      void *data);
void berth_http_server_free(struct berth_http_server *s);
size_t berth_http_server_n_conns(const struct berth_http_server *s);

/* Answer the request. Copies everything. `extra` headers may be NULL. A HEAD
 * request gets the headers only. Returns 0, or -EPIPE when the connection went
 * away meanwhile (the response is dropped; nothing to do). */
int berth_http_respond(struct berth_http_conn *conn, int status, const char *content_type,
		       const struct berth_http_header *extra, size_t n_extra, const void *body,
		       size_t len);

/* One piece of a streamed response: `len` bytes at `data` (copied), or, when fd >= 0,
 * `len` bytes of the file `fd` from offset 0 (the server takes ownership of fd). */
struct berth_http_part {
	const void *data;
	int fd;
	uint64_t len;
};

/* Answer with a body made of `parts`, sent in order. File parts are read on the
 * loop with uv_fs_read, 256 KiB at a time, each chunk written before the next is
 * read, so a multi-GB image costs a fixed amount of memory. Every fd in `parts` is
 * owned by the server from this call on, also on failure. Returns as
 * berth_http_respond(). */
int berth_http_respond_parts(struct berth_http_conn *conn, int status, const char *content_type,
			     const struct berth_http_header *extra, size_t n_extra,
			     const struct berth_http_part *parts, size_t n_parts);

/* Peer credentials of the connection (SO_PEERCRED); -ENOTSUP for adopted fds and TCP. */
int berth_http_conn_peer_uid(struct berth_http_conn *conn, uid_t *ret);
/* The connection's TLS session (borrowed), or NULL on a plain connection. */
struct berth_tls_conn *berth_http_conn_tls(struct berth_http_conn *conn);
/* The connection came through a TCP listener (a remote client). */
bool berth_http_conn_is_tcp(const struct berth_http_conn *conn);

/* ---- websockets ---- */
struct berth_ws_callbacks {
	/* A whole message arrived. text tells a text frame from binary. */
	void (*on_message)(struct berth_ws_conn *ws, bool text, const uint8_t *data, size_t len,
			   void *data_ptr);
	/* The connection is gone; the ws object is freed right after this returns. */
	void (*on_close)(struct berth_ws_conn *ws, void *data_ptr);
};

/* Answer the upgrade request with 101 and switch the connection to websocket
 * framing. On failure (not an upgrade request, bad key) a 400 is sent instead and
 * a negative errno returned. `*ret` is borrowed: valid until on_close. */
int berth_http_upgrade_ws(struct berth_http_conn *conn, const struct berth_ws_callbacks *cbs,
			  void *data, struct berth_ws_conn **ret);
/* Queue a message. -EPIPE when the connection is closing, -ENOBUFS when the peer
 * reads too slowly (more than 16 MiB queued): the connection is then closed. */
int berth_ws_conn_send(struct berth_ws_conn *ws, bool text, const void *data, size_t len);
/* Bytes queued for the peer and not yet written (for flow control). */
size_t berth_ws_conn_queued(const struct berth_ws_conn *ws);
/* Stop (pause true) or resume reading from the peer, so that a slow consumer of its
 * messages holds it back. -EPIPE when the connection is closing. */
int berth_ws_conn_pause(struct berth_ws_conn *ws, bool pause);
/* Send a close frame and close once it is written. Idempotent. */
void berth_ws_conn_close(struct berth_ws_conn *ws, uint16_t code, const char *reason);
