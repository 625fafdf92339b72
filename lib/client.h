/* lib/client.h: a blocking client for berthd's (and LXD's) REST API over a unix
 * socket, or over HTTPS to a remote (a client certificate, the server pinned or checked
 * against the system CAs: lib/client_tls.h). Used by the berth CLI, the benchmarks and
 * the tests.
 *
 * One struct berth_client holds one keep-alive HTTP/1.1 connection; it reconnects
 * transparently when the server closed an idle connection. Responses may use
 * Content-Length or chunked bodies. Not thread-safe: one client per thread.
 *
 * Errors: -errno with `err` set to a message a user can act on, e.g.
 * "cannot connect to berthd at /var/lib/berth/unix.socket: No such file or
 * directory (is berthd running? start it with: systemctl start berthd)", or the
 * server's own error text for an LXD error envelope (err->code = its HTTP status). */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/client_tls.h"
#include "lib/error.h"

struct berth_client;

/* The socket path the CLI uses: $BERTH_SOCKET, else $BERTH_DIR/unix.socket, else
 * BERTH_DEFAULT_DIR "/unix.socket". Returns a new string. */
char *berth_client_default_socket(void);

int berth_client_new(const char *socket_path, struct berth_client **ret, struct berth_error *err);

/* The berth-tls helper program (BERTH_TLS_HELPER, else beside this binary or in
 * libexec: berth_helper_binary), which speaks TLS for the CLI and berthd; an error naming
 * it when it is not installed. */
int berth_tls_helper_find(char **ret, struct berth_error *err);
/* The port of an https:// URL that names none (LXD's). */
#define BERTH_CLIENT_DEFAULT_PORT "8443"
/* A client for `url`: "unix://" (the default socket), "unix:///PATH", or
 * "https://HOST[:PORT]" (HOST a name, an IPv4 address or a bracketed IPv6 one) spoken to
 * under TLS with `tls` (may be NULL: no client certificate, the system CAs). Nothing is
 * contacted yet: the first request connects. -EINVAL for a URL of another form. */
int berth_client_new_url(const char *url, const struct berth_tls_options *tls,
			 struct berth_client **ret, struct berth_error *err);
/* Name the server (a remote's name) in connection errors: "remote \"NAME\": ...". -ENOMEM. */
int berth_client_set_name(struct berth_client *c, const char *name);

/* What reading a response may cost, for a server that is not trusted (an image server);
 * 0 or NULL: no limit. A response whose body kept in memory would exceed `max_body`, or
 * whose download (berth_client_download) would exceed `max_download`, fails -EFBIG
 * (413); `idle_timeout_ms` without a byte while reading a response fails -ETIMEDOUT;
 * `cancel` set while waiting fails -ECANCELED. The connection is closed after each. */
struct berth_client_limits {
	size_t max_body;
	uint64_t max_download;
	int idle_timeout_ms;
	const atomic_bool *cancel; /* borrowed: outlives the requests */
};
void berth_client_set_limits(struct berth_client *c, const struct berth_client_limits *limits);
/* The server's certificate (PEM) seen on the last TLS connection, or NULL (none yet, or
 * the unix socket). Borrowed from `c`. */
const char *berth_client_peer_certificate(const struct berth_client *c);
void berth_client_free(struct berth_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct berth_client *, berth_client_free)

struct berth_response {
	int status;   /* HTTP status */
	json_t *json; /* owned: parsed body when it was JSON, else NULL */
	char *body;   /* owned: raw body, NUL-terminated */
	size_t body_len;
	char *etag;	    /* owned: ETag header or NULL */
	char *location;	    /* owned: Location header or NULL */
	char *content_type; /* owned or NULL */
	json_t *headers;    /* owned: every header, lower-case name -> value (last wins) */
};
/* The value of header `name` (any case) in `r`, or NULL. Borrowed from r. */
const char *berth_response_header(const struct berth_response *r, const char *name);
void berth_response_release(struct berth_response *r);

/* Send one request. `body` (may be NULL) is sent as JSON; `if_match` (may be NULL)
 * becomes an If-Match header. A response of any status is a success here: check
 * ret->status. Fails only on transport or protocol errors. */
int berth_client_request(struct berth_client *c, const char *method, const char *path,
			 const json_t *body, const char *if_match, struct berth_response *ret,
			 struct berth_error *err);

/* The general form: raw body of `len` bytes (may be 0) with the given content type (may be
 * NULL), optional If-Match. The others are shorthands for it. */
int berth_client_request_full(struct berth_client *c, const char *method, const char *path,
			      const char *content_type, const void *data, size_t len,
			      const char *if_match, struct berth_response *ret,
			      struct berth_error *err);

/* A bodiless request sent now and answered later (its response read by
 * berth_client_finish), so that its round trip overlaps other work: berth exec asks for
 * its operation's end while the command runs. The connection is the request's until
 * then; begin again or use another call only after finishing. */
int berth_client_begin(struct berth_client *c, const char *method, const char *path,
		       struct berth_error *err);
int berth_client_finish(struct berth_client *c, struct berth_response *ret,
			struct berth_error *err);
/* The connection a begun request waits on (to poll it), or -1. */
int berth_client_pending_fd(const struct berth_client *c);

/* Berth's own stdio.socket, next to the API socket (doc/api.md, "Direct stdio"): hand
 * `fds` (stdin, stdout, stderr) to operation `op_id` as the holder of `secret`. 0 once
 * berthd took them; -ENOENT or -ECONNREFUSED (no such socket: an older berthd) or the
 * refusal, with `err` set. */
int berth_client_attach_stdio(struct berth_client *c, const char *op_id, const char *secret,
			      const int fds[3], struct berth_error *err);

/* Like berth_client_request, raw body of `len` bytes with the given content type. */
int berth_client_request_raw(struct berth_client *c, const char *method, const char *path,
			     const char *content_type, const void *data, size_t len,
			     struct berth_response *ret, struct berth_error *err);

/* ---- streamed uploads (image import): the body is sent from files, never held whole ---- */

/* One piece of an upload body: `len` bytes of memory `data`, or (data NULL) `len` bytes of
 * file `fd` read from offset 0 (pread: the fd's offset is left alone). */
struct berth_upload_part {
	const void *data;
	int fd;
	uint64_t len;
};
/* Called after each chunk written; `sent` of `total` bytes. */
typedef void (*berth_progress_fn)(uint64_t sent, uint64_t total, void *data);

/* Like berth_client_request_full with the body made of `parts` in order, on a new
 * connection. `headers` (may be NULL) holds extra "Name: value" header lines, each
 * ending in CRLF. `progress` (may be NULL) reports the upload. */
int berth_client_request_upload(struct berth_client *c, const char *method, const char *path,
				const char *content_type, const char *headers,
				const struct berth_upload_part *parts, size_t n_parts,
				berth_progress_fn progress, void *progress_data,
				struct berth_response *ret, struct berth_error *err);

/* GET `path` with a 200 non-JSON body written to `fd` as it arrives (never held whole);
 * any other response (an error, a JSON directory listing) lands in ret->body as usual.
 * `progress` (may be NULL) gets the bytes written so far, total 0 (unknown). */
int berth_client_download(struct berth_client *c, const char *path, int fd,
			  berth_progress_fn progress, void *progress_data,
			  struct berth_response *ret, struct berth_error *err);

/* Send a request and unwrap LXD's envelope:
 *  - sync: *ret_metadata = metadata (new reference; JSON null when absent)
 *  - async: waits for the operation (GET /1.0/operations/ID/wait) and returns its
 *    final Operation object; an operation that ended in failure is an error with
 *    the operation's "err" text
 *  - error: returns -EIO... with err->msg = the envelope's "error", err->code = status.
 * `ret_etag` (may be NULL) receives the ETag header of a sync response. */
int berth_client_query(struct berth_client *c, const char *method, const char *path,
		       const json_t *body, json_t **ret_metadata, char **ret_etag,
		       struct berth_error *err);

/* The envelope handling of berth_client_query for a response already received (e.g. one
 * sent with If-Match through berth_client_request). `resp` stays owned by the caller. */
int berth_client_unwrap(struct berth_client *c, struct berth_response *resp, json_t **ret_metadata,
			char **ret_etag, struct berth_error *err);

/* Add ?project=P (URL-encoded) to every later /1.0 request that has no project= of its
 * own; NULL clears it. -ENOMEM. */
int berth_client_set_project(struct berth_client *c, const char *project);

/* GET /1.0/operations/ID/wait?timeout=T for `op_url` ("/1.0/operations/ID"), T<0: no limit. */
int berth_client_wait_operation(struct berth_client *c, const char *op_url, int timeout,
				json_t **ret_operation, struct berth_error *err);

/* ---- websocket (GET with Upgrade), for /1.0/events and operation websockets ---- */
struct berth_ws;
/* Opens a new connection of its own (the client's keep-alive connection is untouched). */
int berth_client_websocket(struct berth_client *c, const char *path, struct berth_ws **ret,
			   struct berth_error *err);
/* The same in two steps, so that several upgrades are in flight at once (exec's
 * sockets): _start connects and sends the request; berth_ws_handshake_finish() waits
 * for the 101 and must succeed before the socket is used (berth_ws_close() is fine). */
int berth_client_websocket_start(struct berth_client *c, const char *path, struct berth_ws **ret,
				 struct berth_error *err);
int berth_ws_handshake_finish(struct berth_ws *ws, struct berth_error *err);
/* Receive one whole message. *ret_text tells text (true) from binary. The payload is
 * NUL-terminated for convenience. Returns 0, or -EPIPE when the peer closed, or -ETIMEDOUT
 * after `timeout_ms` (<0: wait forever). Ping/pong handled internally. */
int berth_ws_recv(struct berth_ws *ws, int timeout_ms, char **ret_data, size_t *ret_len,
		  bool *ret_text, struct berth_error *err);
int berth_ws_send(struct berth_ws *ws, bool text, const void *data, size_t len,
		  struct berth_error *err);
/* The connection's fd, to poll() beside others; before polling it, drain the messages
 * already read (berth_ws_has_buffered, then berth_ws_recv with timeout 0). */
int berth_ws_fd(const struct berth_ws *ws);
bool berth_ws_has_buffered(const struct berth_ws *ws);
/* Send a close frame with a normal-closure code and `reason` (may be NULL). -EPIPE when
 * the connection is already closed. */
int berth_ws_send_close(struct berth_ws *ws, const char *reason, struct berth_error *err);
/* Send a close frame (best effort) and free. Accepts NULL. */
void berth_ws_close(struct berth_ws *ws);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct berth_ws *, berth_ws_close)
