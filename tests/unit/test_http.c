/* tests/unit/test_http.c: the HTTP/websocket server, driven over a socketpair
 * on a real libuv loop: requests, keep-alive and pipelining, chunked bodies,
 * limits (431/413/400/408), idle timeouts and the websocket upgrade. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/http_server.h"
#include "lib/util.h"

struct fixture {
	uv_loop_t loop;
	struct berth_http_server *server;
	int client; /* our end of the socketpair */
	int handled;
	char last_body[256];
	struct berth_ws_conn *ws;
	char ws_msg[64];
	bool spooled;
};

static void handler(struct berth_http_conn *conn, struct berth_http_request *req, void *data)
{
	struct fixture *f = data;
	char body[512];

	f->handled++;
	if (req->body_fd >= 0) {
		ssize_t n = read(req->body_fd, f->last_body, sizeof(f->last_body) - 1);
		f->last_body[n > 0 ? n : 0] = '\0';
		f->spooled = true;
	} else {
		snprintf(f->last_body, sizeof(f->last_body), "%.*s", (int)req->body_len, req->body);
	}
	if (streq(req->path, "/file")) {
		/* "<" + 600,000 bytes of a file (three read chunks) + ">" */
		char tmpl[] = "/tmp/berth-test-http-XXXXXX";
		int fd = mkstemp(tmpl);
		char *blob = malloc(600000);
		struct berth_http_part parts[3] = {
			{.data = "<", .fd = -EBADF, .len = 1},
			{.fd = fd, .len = 600000},
			{.data = ">", .fd = -EBADF, .len = 1},
		};

		unlink(tmpl);
		for (size_t i = 0; i < 600000; i++)
			blob[i] = (char)('a' + i % 26);
		assert_int_equal(write(fd, blob, 600000), 600000);
		free(blob);
		berth_http_respond_parts(conn, 200, "application/octet-stream", NULL, 0, parts, 3);
		return;
	}
	if (streq(req->path, "/ws")) {
		berth_http_upgrade_ws(conn, &(struct berth_ws_callbacks){0}, f, &f->ws);
		return;
	}
	snprintf(body, sizeof(body), "%s %s q=%s n=%zu", req->method, req->path, req->query,
		 req->body_len);
	berth_http_respond(conn, 200, "text/plain", NULL, 0, body, strlen(body));
}

static void setup_limits(struct fixture *f, const struct berth_http_limits *limits)
{
	int sv[2];

	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(berth_http_server_new(&f->loop, limits, handler, f, &f->server), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->client = sv[0];
	fcntl(f->client, F_SETFL, O_NONBLOCK);
	assert_int_equal(berth_http_server_adopt(f->server, sv[1]), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct berth_http_limits limits;

	berth_http_limits_default(&limits);
	limits.max_header_bytes = 1024;
	limits.max_body_bytes = 4096;
	limits.idle_timeout_ms = 100;
	limits.request_timeout_ms = 100;
	limits.spool_dir = "/tmp";
	limits.max_upload_bytes = 65536;
	setup_limits(f, &limits);
	*state = f;
	return 0;
}

static void closed_cb(void *data)
{
	*(bool *)data = true;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bool closed = false;

	close(f->client);
	berth_http_server_close(f->server, closed_cb, &closed);
	while (!closed)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	berth_http_server_free(f->server);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static void send_all(struct fixture *f, const char *s, size_t len)
{
	assert_int_equal(write(f->client, s, len), (ssize_t)len);
}

/* Run the loop until `want` responses (counted by "HTTP/1.1 ") arrived, EOF, or
 * `ms` elapsed. Returns bytes read into buf; *eof set when the server closed. */
static size_t collect(struct fixture *f, char *buf, size_t cap, int want, int ms, bool *eof)
{
	uint64_t end = berth_monotonic_ns() + (uint64_t)ms * 1000000ull;
	size_t len = 0;

	*eof = false;
	buf[0] = '\0';
	while (berth_monotonic_ns() < end) {
		ssize_t n;
		int seen = 0;

		uv_run(&f->loop, UV_RUN_NOWAIT);
		n = read(f->client, buf + len, cap - 1 - len);
		if (n == 0) {
			*eof = true;
			break;
		}
		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
		}
		for (const char *p = buf; (p = strstr(p, "HTTP/1.1 ")); p++)
			seen++;
		if (want > 0 && seen >= want && strstr(buf, "\r\n\r\n")) {
			/* Let the body of the last response arrive too. */
			uv_run(&f->loop, UV_RUN_NOWAIT);
			n = read(f->client, buf + len, cap - 1 - len);
			if (n > 0) {
				len += (size_t)n;
				buf[len] = '\0';
			}
			break;
		}
		usleep(1000);
	}
	return len;
}

static void test_get(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "GET /1.0/x%20y?recursion=1 HTTP/1.1\r\nHost: x\r\n\r\n";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 1, 1000, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "Connection: keep-alive"));
	assert_non_null(strstr(buf, "GET /1.0/x y q=recursion=1 n=0"));
	assert_false(eof);
}

static void test_pipelined_keepalive(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
			  "xyzGET /c HTTP/1.1\r\n\r\n";
	const char *a, *b, *c;

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 3, 1000, &eof);
	a = strstr(buf, "GET /a");
	b = strstr(buf, "POST /b q= n=3");
	if (!b)
		print_message("got: %s\n", buf);
	c = strstr(buf, "GET /c");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(a < b && b < c);
	assert_int_equal(f->handled, 3);
}

static void test_chunked(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 1, 1000, &eof);
	assert_non_null(strstr(buf, "n=11"));
	assert_string_equal(f->last_body, "hello world");
}

static void test_header_too_large(void **state)
{
	struct fixture *f = *state;
	char req[3000], buf[4096];
	bool eof;

	memset(req, 0, sizeof(req));
	strcpy(req, "GET / HTTP/1.1\r\nX-Big: ");
	memset(req + strlen(req), 'a', 2000);
	strcat(req, "\r\n\r\n");
	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 0, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 431 "));
	assert_non_null(strstr(buf, "\"error_code\":431"));
	assert_true(eof);
	assert_int_equal(f->handled, 0);
}

static void test_body_too_large(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 0, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 413 "));
	assert_true(eof);
	assert_int_equal(f->handled, 0);
}

static void test_chunked_too_large(void **state)
{
	struct fixture *f = *state;
	char req[8192], buf[4096];
	bool eof;

	strcpy(req, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1400\r\n");
	memset(req + strlen(req), 'b', 5000);
	req[strlen("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1400\r\n") + 5000] = 0;
	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 0, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 413 "));
	assert_int_equal(f->handled, 0);
}

static void test_upload_spooled(void **state)
{
	struct fixture *f = *state;
	char req[16384], buf[4096];
	bool eof;
	size_t hl;

	/* Larger than max_body_bytes (4096) but within max_upload_bytes: spooled. */
	hl = (size_t)snprintf(req, sizeof(req),
			      "POST /u HTTP/1.1\r\nContent-Type: "
			      "application/octet-stream\r\nContent-Length: 10000\r\n\r\n");
	memset(req + hl, 'z', 10000);
	memcpy(req + hl, "spool!", 6);
	send_all(f, req, hl + 10000);
	collect(f, buf, sizeof(buf), 1, 1000, &eof);
	assert_non_null(strstr(buf, "n=10000"));
	assert_true(f->spooled);
	assert_true(strncmp(f->last_body, "spool!zz", 8) == 0);
}

static void test_upload_too_large(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "POST /u HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
			  "Content-Length: 70000\r\n\r\n";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 0, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 413 "));
	assert_int_equal(f->handled, 0);
}

static void test_respond_parts(void **state)
{
	struct fixture *f = *state;
	static char buf[700000];
	size_t len = 0, body;
	bool eof = false;
	const char *req = "GET /file HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n";
	uint64_t end = berth_monotonic_ns() + 3000000000ull;
	char *p;

	send_all(f, req, strlen(req));
	while (!strstr(buf, "GET /after") && berth_monotonic_ns() < end) {
		ssize_t n;

		uv_run(&f->loop, UV_RUN_NOWAIT);
		n = read(f->client, buf + len, sizeof(buf) - 1 - len);
		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
		} else if (n == 0) {
			eof = true;
			break;
		}
	}
	assert_false(eof);
	assert_non_null(strstr(buf, "Content-Length: 600002\r\n"));
	p = strstr(buf, "\r\n\r\n") + 4;
	body = (size_t)(strstr(p, "HTTP/1.1 200") - p);
	assert_int_equal(body, 600002); /* then keep-alive served the next request */
	assert_int_equal(p[0], '<');
	assert_int_equal(p[1], 'a');
	assert_int_equal(p[1 + 599999], (char)('a' + 599999 % 26));
	assert_int_equal(p[600001], '>');
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "GARBAGE\r\n\r\n";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 0, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 400 "));
	assert_true(eof);
}

static void test_request_timeout(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "GET / HTTP/1.1\r\nHost: slo";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 0, 1000, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 408 "));
	assert_true(eof);
}

static void test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	bool eof;

	collect(f, buf, sizeof(buf), 0, 1000, &eof);
	assert_true(eof);
	assert_int_equal(buf[0], '\0');
}

static void test_head(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "HEAD /h HTTP/1.1\r\n\r\n";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 1, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
	assert_null(strstr(buf, "HEAD /h"));
}

static void test_websocket(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n\r\n";
	const char *frame;

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 1, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 101 Switching Protocols"));
	assert_non_null(strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
	assert_non_null(f->ws);
	assert_int_equal(berth_ws_conn_send(f->ws, true, "hi", 2), 0);
	for (int i = 0; i < 50; i++)
		uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(read(f->client, buf, sizeof(buf)), 4);
	frame = buf;
	assert_int_equal((unsigned char)frame[0], 0x81); /* FIN + text */
	assert_int_equal(frame[1], 2);			 /* unmasked, length 2 */
	assert_memory_equal(frame + 2, "hi", 2);
}

static void test_not_websocket(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	bool eof;
	const char *req = "GET /ws HTTP/1.1\r\n\r\n";

	send_all(f, req, strlen(req));
	collect(f, buf, sizeof(buf), 1, 500, &eof);
	assert_non_null(strstr(buf, "HTTP/1.1 400 "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_keepalive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_spooled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_respond_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_websocket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_websocket, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
