/* tests/unit/test_client.c: lib/client against a scripted fake server in a thread on a
 * unix socket: keep-alive reuse, reconnect after an idle close, chunked bodies, error
 * envelopes, async operations, connection errors, the websocket handshake and
 * streamed uploads. */
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "lib/client.h"
#include "lib/json.h"

/* One scripted answer: requests whose request line starts with `match` get `response`;
 * `close_after` closes the connection after answering. */
struct route {
	const char *match;
	const char *response;
	bool close_after;
	bool websocket;
};

struct fake {
	char dir[64];
	char path[128];
	int listen_fd;
	pthread_t thread;
	const struct route *routes;
	size_t n_routes;
	int accepts; /* connections accepted */
	char last_req[4096];
};

#define SYNC_HDR "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

static const struct route *route_for(struct fake *f, const char *req)
{
	for (size_t i = 0; i < f->n_routes; i++)
		if (strncmp(req, f->routes[i].match, strlen(f->routes[i].match)) == 0)
			return &f->routes[i];
	return NULL;
}

/* Read one request head (and skip a Content-Length body). 0 on EOF. */
static ssize_t read_request(int fd, char *buf, size_t size)
{
	size_t len = 0;
	const char *cl;

	while (len < size - 1) {
		ssize_t n = recv(fd, buf + len, 1, 0);

		if (n <= 0)
			return n;
		len++;
		buf[len] = '\0';
		if (len >= 4 && strcmp(buf + len - 4, "\r\n\r\n") == 0)
			break;
	}
	cl = strcasestr(buf, "Content-Length: ");
	for (long body = cl ? atol(cl + 16) : 0; body > 0; body--) {
		char c;

		if (recv(fd, &c, 1, 0) != 1)
			return -1;
	}
	return (ssize_t)len;
}

static volatile int ws_pong_ok, ws_close_ok;

static void ws_answer(int fd, const char *req)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	const char *k = strcasestr(req, "Sec-WebSocket-Key: ") + 19;
	char cat[128], acc[64], resp[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	/* a ping, "hello"; "abc" + a ping "pp" + "def" (one fragmented binary message); "xy"
	 * masked (servers do not mask, the client unmasks anyway); then a 100000-byte
	 * binary frame (64-bit length) and a close */
	static const unsigned char frames[] = {
		0x89, 0x00, 0x81, 0x05, 'h',  'e',  'l',  'l',	      'o',	  0x02, 0x03,
		'a',  'b',  'c',  0x89, 0x02, 'p',  'p',  0x80,	      0x03,	  'd',	'e',
		'f',  0x81, 0x82, 0x11, 0x22, 0x33, 0x44, 'x' ^ 0x11, 'y' ^ 0x22, 0x82, 0x7f,
		0,    0,    0,	  0,	0,    0x01, 0x86, 0xa0,
	};
	static const unsigned char close_frame[] = {0x88, 0x02, 0x03, 0xe8};
	unsigned char in[64], *big = malloc(100000);

	snprintf(cat, sizeof(cat), "%.*s%s", (int)strcspn(k, "\r"), k, guid);
	EVP_Digest(cat, strlen(cat), md, &md_len, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)acc, md, (int)md_len);
	snprintf(resp, sizeof(resp),
		 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		 acc);
	send(fd, resp, strlen(resp), MSG_NOSIGNAL);
	/* wait for the client's masked text frame "ping!" before answering */
	if (big && recv(fd, in, 2, MSG_WAITALL) == 2 && (in[1] & 0x80) && (in[1] & 0x7f) == 5 &&
	    recv(fd, in, 9, MSG_WAITALL) == 9) {
		for (int i = 0; i < 100000; i++)
			big[i] = (unsigned char)(i * 7);
		send(fd, frames, sizeof(frames), MSG_NOSIGNAL);
		send(fd, big, 100000, MSG_NOSIGNAL);
		send(fd, close_frame, sizeof(close_frame), MSG_NOSIGNAL);
		/* the client's empty pong, its pong "pp" (masked), then its close echoing 1000 */
		if (recv(fd, in, 6, MSG_WAITALL) == 6 && in[0] == 0x8a && in[1] == 0x80 &&
		    recv(fd, in, 8, MSG_WAITALL) == 8 && in[0] == 0x8a && in[1] == 0x82 &&
		    (in[6] ^ in[2]) == 'p' && (in[7] ^ in[3]) == 'p')
			ws_pong_ok = 1;
		if (recv(fd, in, 8, MSG_WAITALL) == 8 && in[0] == 0x88 && in[1] == 0x82 &&
		    (in[6] ^ in[2]) == 0x03 && (in[7] ^ in[3]) == 0xe8)
			ws_close_ok = 1;
	}
	free(big);
	recv(fd, in, sizeof(in), 0);
}

static void *fake_main(void *data)
{
	struct fake *f = data;
	char req[4096];

	for (;;) {
		int fd = accept(f->listen_fd, NULL, NULL);

		if (fd < 0)
			return NULL;
		f->accepts++;
		while (read_request(fd, req, sizeof(req)) > 0) {
			const struct route *r = route_for(f, req);

			snprintf(f->last_req, sizeof(f->last_req), "%s", req);
			if (r && r->websocket) {
				ws_answer(fd, req);
				break;
			}
			if (!r) {
				send(fd, "HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n", 38, 0);
				break;
			}
			send(fd, r->response, strlen(r->response), MSG_NOSIGNAL);
			if (r->close_after)
				break;
		}
		close(fd);
	}
}

static void fake_start(struct fake *f, const struct route *routes, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(f, 0, sizeof(*f));
	strcpy(f->dir, "/tmp/berth-test-client-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/unix.socket", f->dir);
	strcpy(sa.sun_path, f->path);
	f->routes = routes;
	f->n_routes = n;
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->listen_fd >= 0);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->listen_fd, 8), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->listen_fd, SHUT_RDWR);
	close(f->listen_fd);
	pthread_join(f->thread, NULL);
	unlink(f->path);
	rmdir(f->dir);
}

static const struct route basic_routes[] = {
	{"GET /1.0 ",
	 SYNC_HDR "ETag: \"abc\"\r\nContent-Length: 53\r\n\r\n"
		  "{\"type\":\"sync\",\"status_code\":200,\"metadata\":{\"a\":1}}\n",
	 false, false},
	{"GET /1.0/chunked",
	 SYNC_HDR "Transfer-Encoding: chunked\r\n\r\n"
		  "10\r\n{\"type\":\"sync\",\"\r\n"
		  "1c\r\nstatus_code\":200,\"metadata\":\r\n"
		  "4\r\n[1]}\r\n0\r\n\r\n",
	 false, false},
	{"GET /1.0/missing",
	 "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 62\r\n\r\n"
	 "{\"type\":\"error\",\"error\":\"Instance not found\",\"error_code\":404}",
	 false, false},
	{"GET /1.0/idle",
	 SYNC_HDR "Content-Length: 39\r\n\r\n{\"type\":\"sync\",\"metadata\":\"idle-reply\"}", true,
	 false},
	{"POST /1.0/async",
	 "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
	 "Location: /1.0/operations/op1\r\nContent-Length: 64\r\n\r\n"
	 "{\"type\":\"async\",\"operation\":\"/1.0/operations/op1\",\"metadata\":{}}",
	 false, false},
	{"GET /1.0/operations/op1/wait?timeout=-1",
	 SYNC_HDR
	 "Content-Length: 68\r\n\r\n"
	 "{\"type\":\"sync\",\"metadata\":{\"id\":\"op1\",\"status_code\":200,\"err\":\"\"}}  ",
	 false, false},
	{"POST /1.0/fails",
	 "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n"
	 "{\"type\":\"async\",\"operation\":\"/1.0/operations/op2\",\"metadata\":{}}",
	 false, false},
	{"GET /1.0/operations/op2/wait",
	 SYNC_HDR "Content-Length: 75\r\n\r\n"
		  "{\"type\":\"sync\",\"metadata\":{\"id\":\"op2\",\"status_code\":400,\"err\":"
		  "\"disk full\"}}",
	 false, false},
	{"GET /1.0/instances/c1/files?path=%2Fetc%2Fhosts",
	 "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-LXD-type: file\r\n"
	 "X-LXD-Mode: 0640\r\nContent-Length: 11\r\n\r\nhello world",
	 false, false},
	{"GET /1.0/instances/c1/files?path=%2Fetc",
	 SYNC_HDR "X-LXD-type: directory\r\nContent-Length: 45\r\n\r\n"
		  "{\"type\":\"sync\",\"metadata\":[\"hosts\",\"passwd\"]}",
	 false, false},
	{"GET /1.0/stall",
	 "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n"
	 "abcde",
	 false, false},
	{"GET /1.0/events", NULL, false, true},
};

static struct fake fake;

static int setup(void **state)
{
	fake_start(&fake, basic_routes, ARRAY_SIZE(basic_routes));
	return 0;
}

static int teardown(void **state)
{
	fake_stop(&fake);
	return 0;
}

static struct berth_client *client(void)
{
	struct berth_client *c = NULL;

	assert_int_equal(berth_client_new(fake.path, &c, NULL), 0);
	return c;
}

static void test_sync_keepalive(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	int before = fake.accepts;

	for (int i = 0; i < 3; i++) {
		json_auto_t *md = NULL;
		_cleanup_free_ char *etag = NULL;

		assert_int_equal(berth_client_query(c, "GET", "/1.0", NULL, &md, &etag, NULL), 0);
		assert_int_equal(json_integer_value(json_object_get(md, "a")), 1);
		assert_string_equal(etag, "\"abc\"");
	}
	assert_int_equal(fake.accepts - before, 1);
}

/* A request begun, then finished, on the kept-alive connection; nothing else meanwhile. */
static void test_begin_finish(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	struct berth_response resp = {0};
	struct berth_error err = {0};
	json_auto_t *md = NULL;
	int before = fake.accepts;

	assert_int_equal(berth_client_query(c, "GET", "/1.0", NULL, &md, NULL, NULL), 0);
	assert_int_equal(berth_client_begin(c, "GET", "/1.0", NULL), 0);
	assert_int_equal(berth_client_begin(c, "GET", "/1.0", &err), -EBUSY);
	berth_error_release(&err);
	assert_int_equal(berth_client_request(c, "GET", "/1.0", NULL, NULL, &resp, &err), -EBUSY);
	berth_error_release(&err);
	assert_int_equal(berth_client_finish(c, &resp, NULL), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(json_integer_value(
				 json_object_get(json_object_get(resp.json, "metadata"), "a")),
			 1);
	berth_response_release(&resp);
	assert_int_equal(fake.accepts - before, 1); /* the same connection throughout */
	assert_int_equal(berth_client_finish(c, &resp, &err), -EINVAL);
	berth_error_release(&err);
}

static void test_chunked(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	json_auto_t *md = NULL;

	assert_int_equal(berth_client_query(c, "GET", "/1.0/chunked", NULL, &md, NULL, NULL), 0);
	assert_true(json_is_array(md));
	assert_int_equal(json_integer_value(json_array_get(md, 0)), 1);
}

static void test_error_envelope(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	struct berth_error err = {0};
	json_t *md = NULL;

	assert_int_equal(berth_client_query(c, "GET", "/1.0/missing", NULL, &md, NULL, &err), -EIO);
	assert_null(md);
	assert_int_equal(err.code, 404);
	assert_string_equal(err.msg, "Instance not found");
	berth_error_release(&err);
}

static void test_reconnect_after_idle_close(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	int before = fake.accepts;

	for (int i = 0; i < 2; i++) {
		json_auto_t *md = NULL;

		/* the server closes after each answer without saying so */
		assert_int_equal(berth_client_query(c, "GET", "/1.0/idle", NULL, &md, NULL, NULL),
				 0);
		assert_string_equal(json_string_value(md), "idle-reply");
	}
	assert_int_equal(fake.accepts - before, 2);
}

static void test_async_wait(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	json_auto_t *body = json_pack("{s:s}", "name", "x");
	json_auto_t *op = NULL;
	struct berth_error err = {0};

	assert_int_equal(berth_client_query(c, "POST", "/1.0/async", body, &op, NULL, NULL), 0);
	assert_string_equal(berth_json_string(op, "id"), "op1");
	assert_int_equal(berth_client_query(c, "POST", "/1.0/fails", NULL, NULL, NULL, &err), -EIO);
	assert_string_equal(err.msg, "disk full");
	berth_error_release(&err);
}

static void test_project(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	json_auto_t *md = NULL;

	assert_int_equal(berth_client_set_project(c, "p 1"), 0);
	assert_int_equal(berth_client_query(c, "GET", "/1.0/missing?x=1", NULL, &md, NULL, NULL),
			 -EIO);
	assert_true(strncmp(fake.last_req, "GET /1.0/missing?x=1&project=p%201 ", 35) == 0);
}

static void test_connect_error(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = NULL;
	struct berth_error err = {0};
	struct berth_response resp = {0};

	assert_int_equal(berth_client_new("/nonexistent/unix.socket", &c, NULL), 0);
	assert_int_equal(berth_client_request(c, "GET", "/1.0", NULL, NULL, &resp, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/unix.socket"));
	assert_non_null(strstr(err.msg, "is berthd running?"));
	berth_error_release(&err);
}

static void test_websocket(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	_cleanup_(berth_ws_closep) struct berth_ws *ws = NULL;
	_cleanup_free_ char *data = NULL;
	struct berth_error err = {0};
	size_t len = 0;
	bool text = false;
	char *more = NULL;

	assert_int_equal(berth_client_websocket(c, "/1.0/events", &ws, NULL), 0);
	assert_int_equal(berth_ws_send(ws, true, "ping!", 5, NULL), 0);
	assert_int_equal(berth_ws_recv(ws, 2000, &data, &len, &text, NULL), 0);
	assert_true(text);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	assert_int_equal(berth_ws_recv(ws, 2000, &more, &len, &text, NULL), 0);
	assert_false(text);
	assert_int_equal(len, 6);
	assert_memory_equal(more, "abcdef", 6);
	free(more);
	assert_int_equal(berth_ws_recv(ws, 2000, &more, &len, &text, NULL), 0);
	assert_true(text);
	assert_string_equal(more, "xy");
	free(more);
	assert_int_equal(berth_ws_recv(ws, 2000, &more, &len, &text, NULL), 0);
	assert_false(text);
	assert_int_equal(len, 100000);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)more[i] != (unsigned char)(i * 7))
			fail_msg("byte %zu of the 100000-byte frame differs", i);
	free(more);
	more = NULL;
	assert_int_equal(berth_ws_recv(ws, 2000, &more, &len, &text, &err), -EPIPE);
	berth_error_release(&err);
	/* a send after the server's close fails */
	assert_int_equal(berth_ws_send(ws, true, "late", 4, &err), -EPIPE);
	berth_error_release(&err);
	for (int i = 0; i < 200 && !ws_close_ok; i++)
		usleep(10000);
	assert_true(ws_pong_ok);  /* the ping got its pong */
	assert_true(ws_close_ok); /* and the close its echo */
}

struct upload_progress {
	uint64_t sent, total;
	int calls;
};

static void upload_progress_cb(uint64_t sent, uint64_t total, void *data)
{
	struct upload_progress *p = data;

	assert_true(sent > p->sent);
	p->sent = sent;
	p->total = total;
	p->calls++;
}

/* A body of memory pieces and a file range goes out whole, with its headers and length,
 * reporting progress while the file is sent. */
/* A file's body goes to the fd, a JSON listing (and its headers) stays in the response. */
static void test_download(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	struct berth_response resp = {0};
	char path[] = "/tmp/berth-test-download-XXXXXX";
	_cleanup_close_ int fd = mkstemp(path);
	char buf[32] = "";

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(berth_client_download(c, "/1.0/instances/c1/files?path=%2Fetc%2Fhosts", fd,
					       NULL, NULL, &resp, NULL),
			 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.body_len, 0);
	assert_string_equal(berth_response_header(&resp, "X-LXD-Type"), "file");
	assert_string_equal(berth_response_header(&resp, "x-lxd-mode"), "0640");
	assert_null(berth_response_header(&resp, "X-LXD-uid"));
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), 11);
	assert_string_equal(buf, "hello world");
	berth_response_release(&resp);

	assert_int_equal(berth_client_download(c, "/1.0/instances/c1/files?path=%2Fetc", fd, NULL,
					       NULL, &resp, NULL),
			 0);
	assert_string_equal(berth_response_header(&resp, "X-LXD-type"), "directory");
	assert_int_equal(json_array_size(json_object_get(resp.json, "metadata")), 2);
	assert_int_equal(lseek(fd, 0, SEEK_END), 11); /* nothing more written */
	berth_response_release(&resp);
}

/* A server that sends too much, or stops sending, or a cancel, ends the response. */
static void test_limits(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	struct berth_response resp = {0};
	struct berth_error err = {0};
	_cleanup_close_ int fd = memfd_create("download", 0);
	atomic_bool cancel = false;
	json_t *meta = NULL;

	assert_true(fd >= 0);
	berth_client_set_limits(c, &(struct berth_client_limits){.max_body = 10});
	assert_int_equal(berth_client_query(c, "GET", "/1.0", NULL, &meta, NULL, &err), -EFBIG);
	assert_int_equal(err.code, 413);
	berth_error_release(&err);
	berth_client_set_limits(c, &(struct berth_client_limits){.max_body = 53});
	assert_int_equal(berth_client_query(c, "GET", "/1.0", NULL, &meta, NULL, NULL), 0);
	json_decref(meta);

	berth_client_set_limits(c, &(struct berth_client_limits){.max_download = 10});
	assert_int_equal(berth_client_download(c, "/1.0/instances/c1/files?path=%2Fetc%2Fhosts", fd,
					       NULL, NULL, &resp, NULL),
			 -EFBIG);
	berth_client_set_limits(c, &(struct berth_client_limits){.max_download = 11});
	assert_int_equal(berth_client_download(c, "/1.0/instances/c1/files?path=%2Fetc%2Fhosts", fd,
					       NULL, NULL, &resp, NULL),
			 0);
	berth_response_release(&resp);

	berth_client_set_limits(c, &(struct berth_client_limits){.idle_timeout_ms = 300});
	assert_int_equal(berth_client_download(c, "/1.0/stall", fd, NULL, NULL, &resp, &err),
			 -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "no data"));
	berth_error_release(&err);
	atomic_store(&cancel, true);
	berth_client_set_limits(c, &(struct berth_client_limits){.cancel = &cancel});
	assert_int_equal(berth_client_download(c, "/1.0/stall", fd, NULL, NULL, &resp, NULL),
			 -ECANCELED);
	/* and the client still works afterwards, on a new connection */
	berth_client_set_limits(c, NULL);
	assert_int_equal(berth_client_query(c, "GET", "/1.0", NULL, &meta, NULL, NULL), 0);
	json_decref(meta);
}

static void test_upload(void **state)
{
	_cleanup_(berth_client_freep) struct berth_client *c = client();
	struct berth_response resp = {0};
	struct upload_progress p = {0};
	static char blob[300000];
	int fd = memfd_create("upload", 0);
	const struct berth_upload_part parts[] = {
		{.data = "abc", .len = 3},
		{.fd = fd, .len = sizeof(blob)},
		{.data = "xyz", .len = 3},
	};

	memset(blob, 'q', sizeof(blob));
	assert_int_equal(write(fd, blob, sizeof(blob)), (ssize_t)sizeof(blob));
	assert_int_equal(berth_client_request_upload(c, "POST", "/1.0/async",
						     "application/octet-stream",
						     "X-LXD-filename: f.tar\r\n", parts, 3,
						     upload_progress_cb, &p, &resp, NULL),
			 0);
	assert_int_equal(resp.status, 202);
	assert_non_null(strstr(fake.last_req, "Content-Length: 300006\r\n"));
	assert_non_null(strstr(fake.last_req, "X-LXD-filename: f.tar\r\n"));
	assert_non_null(strstr(fake.last_req, "Content-Type: application/octet-stream\r\n"));
	assert_true(p.calls >= 2);
	assert_int_equal(p.sent, 300003);
	assert_int_equal(p.total, 300006);
	berth_response_release(&resp);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_keepalive),
		cmocka_unit_test(test_begin_finish),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_error_envelope),
		cmocka_unit_test(test_reconnect_after_idle_close),
		cmocka_unit_test(test_async_wait),
		cmocka_unit_test(test_project),
		cmocka_unit_test(test_connect_error),
		cmocka_unit_test(test_websocket),
		cmocka_unit_test(test_upload),
		cmocka_unit_test(test_download),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
