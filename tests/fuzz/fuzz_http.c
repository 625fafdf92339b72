/* tests/fuzz/fuzz_http.c: libFuzzer target for the HTTP/websocket server.
 *
 * Each input is written as raw bytes into a connection of a real server on a
 * real loop (over a socketpair), then the client half-closes and the loop runs
 * until the server is done with the connection. The handler answers every
 * request and upgrades /ws requests, so parsing, limits, pipelining, chunked
 * bodies and websocket framing are all reached. */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/http_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void handler(struct berth_http_conn *conn, struct berth_http_request *req, void *data)
{
	struct berth_ws_conn *ws = NULL;

	if (strcmp(req->path, "/ws") == 0) {
		if (berth_http_upgrade_ws(conn, &(struct berth_ws_callbacks){0}, NULL, &ws) == 0)
			berth_ws_conn_send(ws, true, "x", 1);
		return;
	}
	berth_http_respond(conn, 200, "text/plain", NULL, 0, req->body, req->body_len);
}

static void closed_cb(void *data)
{
	*(int *)data = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct berth_http_limits limits;
	struct berth_http_server *server = NULL;
	uv_loop_t loop;
	int sv[2], closed = 0;
	char sink[65536];

	if (size > 60000)
		return 0; /* stay within one socket buffer: no partial writes */
	berth_http_limits_default(&limits);
	limits.max_header_bytes = 4096;
	limits.max_body_bytes = 8192;
	limits.idle_timeout_ms = 50;
	limits.request_timeout_ms = 50;
	if (uv_loop_init(&loop) < 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	if (berth_http_server_new(&loop, &limits, handler, NULL, &server) < 0 ||
	    berth_http_server_adopt(server, sv[1]) < 0)
		abort();
	if (size && write(sv[0], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[0], SHUT_WR);
	while (berth_http_server_n_conns(server) > 0) {
		uv_run(&loop, UV_RUN_ONCE);
		while (read(sv[0], sink, sizeof(sink)) > 0)
			;
	}
	berth_http_server_close(server, closed_cb, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	berth_http_server_free(server);
	close(sv[0]);
	if (uv_loop_close(&loop) < 0)
		abort();
	return 0;
}
