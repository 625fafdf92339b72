/* tests/unit/test_qmp.c: lib/qmp against a fake QMP server in a thread (greeting,
 * capabilities, replies matched by id, error replies, events between replies, messages
 * split across reads or sharing one, a server that hangs, one that closes mid-command,
 * one that is not QMP, a socket that appears late) and against a real
 * `qemu-system-x86_64 -machine none` (query-status, query-version, stop/cont and their
 * events, error classes, quit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/qmp.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define GREETING                                                                                   \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, \"minor\": 2, \"major\": 7}, "          \
	"\"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n"

struct fake {
	char dir[64];
	char path[128];
	int listen_fd;
	int delay_listen_ms; /* create the socket this late */
	void (*serve)(struct fake *f, int fd);
	atomic_bool release; /* set by the test: a hanging server goes on */
	pthread_t thread;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void srv_send(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

/* What a fake server found wrong; checked by fake_stop (cmocka's asserts belong to the
 * test's thread). */
static char fake_error[512];

/* Read one line; check that it executes `command`; its id into `id`. False at EOF or on
 * anything else (noted in fake_error). */
static bool srv_expect(int fd, const char *command, char *id, size_t id_size)
{
	char line[4096];
	size_t n = 0;
	json_t *msg;

	while (n < sizeof(line) - 1) {
		if (read(fd, line + n, 1) != 1)
			break;
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	if (n == 0)
		return false;
	msg = json_loads(line, 0, NULL);
	if (!msg || !streq(json_string_value(json_object_get(msg, "execute")) ?: "", command)) {
		snprintf(fake_error, sizeof(fake_error), "expected \"%s\", got \"%.200s\"", command,
			 line);
		json_decref(msg);
		return false;
	}
	snprintf(id, id_size, "%s", json_string_value(json_object_get(msg, "id")) ?: "");
	json_decref(msg);
	return true;
}

static void srv_reply(int fd, const char *id, const char *body)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "{%s, \"id\": \"%s\"}\r\n", body, id);
	srv_send(fd, buf);
}

/* Greeting and qmp_capabilities, as QEMU does them. */
static void srv_handshake(int fd)
{
	char id[64];

	srv_send(fd, GREETING);
	if (srv_expect(fd, "qmp_capabilities", id, sizeof(id)))
		srv_reply(fd, id, "\"return\": {}");
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd;

	if (f->delay_listen_ms) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		sleep_ms(f->delay_listen_ms);
		strcpy(sa.sun_path, f->path);
		f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(f->listen_fd, 1) < 0)
			return NULL;
	}
	fd = accept(f->listen_fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	f->serve(f, fd);
	close(fd);
	return NULL;
}

static struct fake *fake_start(void (*serve)(struct fake *f, int fd), int delay_listen_ms)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	assert_non_null(f);
	strcpy(f->dir, "/tmp/berth-test-qmp-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/qmp.sock", f->dir);
	f->serve = serve;
	f->listen_fd = -1;
	f->delay_listen_ms = delay_listen_ms;
	if (!delay_listen_ms) {
		strcpy(sa.sun_path, f->path);
		f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(f->listen_fd >= 0);
		assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(f->listen_fd, 1), 0);
	}
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	return f;
}

static void fake_stop(struct fake *f)
{
	atomic_store(&f->release, true);
	pthread_join(f->thread, NULL);
	if (fake_error[0])
		fail_msg("fake server: %s", fake_error);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
}

static void wait_release(struct fake *f)
{
	while (!atomic_load(&f->release))
		sleep_ms(5);
}

/* ---- greeting, commands, errors ---- */

static void serve_basic(struct fake *f, int fd)
{
	char id[64];

	srv_handshake(fd);
	if (!srv_expect(fd, "query-status", id, sizeof(id)))
		return;
	srv_reply(fd, id, "\"return\": {\"status\": \"running\", \"running\": true}");
	if (!srv_expect(fd, "device_del", id, sizeof(id)))
		return;
	srv_reply(fd, id,
		  "\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'nic9' not "
		  "found\"}");
	if (!srv_expect(fd, "human-monitor-command", id, sizeof(id)))
		return;
	srv_reply(fd, id, "\"return\": \"ok, a string\"");
}

static void test_basic(void **state)
{
	struct fake *f = fake_start(serve_basic, 0);
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};
	json_t *ret = NULL, *args;

	assert_int_equal(berth_qmp_connect(f->path, 2000, &q, &err), 0);
	assert_int_equal(berth_qmp_qemu_version(q), 7002003);
	assert_true(berth_qmp_connected(q));

	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 2000, &ret, &err), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
	assert_null(berth_qmp_error_class(q));
	json_decref(ret);

	args = json_pack("{s:s}", "id", "nic9");
	assert_int_equal(berth_qmp_execute(q, "device_del", args, 2000, NULL, &err), -EREMOTEIO);
	assert_string_equal(berth_qmp_error_class(q), "DeviceNotFound");
	assert_string_equal(err.msg, "QMP command \"device_del\" failed: Device 'nic9' not found "
				     "(DeviceNotFound)");
	berth_error_release(&err);
	json_decref(args);

	/* a later success clears the class; a non-object return comes through */
	args = json_pack("{s:s}", "command-line", "info status");
	assert_int_equal(berth_qmp_execute(q, "human-monitor-command", args, 2000, &ret, &err), 0);
	assert_null(berth_qmp_error_class(q));
	assert_string_equal(json_string_value(ret), "ok, a string");
	json_decref(ret);
	json_decref(args);
	assert_int_equal(berth_qmp_events_pending(q), 0);
	berth_qmp_free(q);
	fake_stop(f);
}

/* ---- events between replies, framing ---- */

static void serve_events(struct fake *f, int fd)
{
	char id[64];
	const char *stop = "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 42}, "
			   "\"event\": \"STOP\"}\r\n";

	srv_handshake(fd);
	if (!srv_expect(fd, "stop", id, sizeof(id)))
		return;
	/* the event, split over three writes, before the reply */
	for (const char *p = stop; *p;) {
		char part[16];
		size_t n = strlen(p) < 7 ? strlen(p) : 7;

		memcpy(part, p, n);
		part[n] = '\0';
		srv_send(fd, part);
		p += n;
		sleep_ms(2);
	}
	srv_reply(fd, id, "\"return\": {}");
	if (!srv_expect(fd, "cont", id, sizeof(id)))
		return;
	/* reply and two events in one write, a blank line among them */
	{
		char buf[1024];

		snprintf(buf, sizeof(buf),
			 "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, "
			 "\"microseconds\": 2}}\r\n\r\n{\"return\": {}, \"id\": \"%s\"}\r\n"
			 "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"nic0\", "
			 "\"path\": \"/machine/peripheral/nic0\"}, \"timestamp\": {\"seconds\": 3, "
			 "\"microseconds\": 4}}\r\n",
			 id);
		srv_send(fd, buf);
	}
	wait_release(f);
	srv_send(fd,
		 "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
		 "\"guest-shutdown\"}, \"timestamp\": {\"seconds\": 5, \"microseconds\": 6}}\r\n");
	sleep_ms(50);
}

static void next_event(struct berth_qmp *q, int timeout_ms, const char *name)
{
	struct berth_qmp_event *ev = NULL;
	int r = berth_qmp_event_next(q, timeout_ms, &ev);

	if (r < 0)
		fail_msg("no event \"%s\": %s", name, strerror(-r));
	assert_string_equal(ev->name, name);
	assert_true(json_is_object(ev->data));
	berth_qmp_event_free(ev);
}

static void test_events(void **state)
{
	struct fake *f = fake_start(serve_events, 0);
	struct berth_qmp *q = NULL;
	struct berth_qmp_event *ev = NULL;

	assert_int_equal(berth_qmp_connect(f->path, 2000, &q, NULL), 0);
	assert_int_equal(berth_qmp_execute(q, "stop", NULL, 2000, NULL, NULL), 0);
	assert_int_equal(berth_qmp_events_pending(q), 1);
	assert_int_equal(berth_qmp_execute(q, "cont", NULL, 2000, NULL, NULL), 0);
	/* STOP and RESUME were read while waiting for replies; DEVICE_DELETED came in the
	 * same read as the reply and is framed on demand */
	assert_int_equal(berth_qmp_events_pending(q), 2);

	assert_int_equal(berth_qmp_event_next(q, 0, &ev), 0);
	assert_string_equal(ev->name, "STOP");
	assert_int_equal(ev->seconds, 1700000000);
	assert_int_equal(ev->useconds, 42);
	assert_int_equal(json_object_size(ev->data), 0);
	berth_qmp_event_free(ev);
	next_event(q, 0, "RESUME");

	assert_int_equal(berth_qmp_event_next(q, 0, &ev), 0);
	assert_string_equal(ev->name, "DEVICE_DELETED");
	assert_string_equal(json_string_value(json_object_get(ev->data, "device")), "nic0");
	assert_int_equal(ev->seconds, 3);
	berth_qmp_event_free(ev);

	/* nothing more for now: -EAGAIN, and the connection stays */
	assert_int_equal(berth_qmp_event_next(q, 30, &ev), -EAGAIN);
	assert_true(berth_qmp_connected(q));
	atomic_store(&f->release, true);
	next_event(q, 2000, "SHUTDOWN");
	/* then the server hangs up */
	assert_int_equal(berth_qmp_event_next(q, 2000, &ev), -ECONNRESET);
	assert_false(berth_qmp_connected(q));
	assert_int_equal(berth_qmp_event_next(q, 2000, &ev), -ENOTCONN);
	berth_qmp_free(q);
	fake_stop(f);
}

/* ---- a hanging server: the deadline, then the late reply is dropped ---- */

static void serve_hang(struct fake *f, int fd)
{
	char id1[64], id2[64];

	srv_handshake(fd);
	if (!srv_expect(fd, "query-block", id1, sizeof(id1)))
		return;
	wait_release(f);
	if (!srv_expect(fd, "query-status", id2, sizeof(id2)))
		return;
	srv_reply(fd, id1, "\"return\": [\"stale\"]");
	srv_reply(fd, id2, "\"return\": {\"status\": \"paused\", \"running\": false}");
}

static void test_timeout(void **state)
{
	struct fake *f = fake_start(serve_hang, 0);
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};
	json_t *ret = NULL;
	uint64_t t0;

	assert_int_equal(berth_qmp_connect(f->path, 2000, &q, NULL), 0);
	t0 = berth_monotonic_ns();
	assert_int_equal(berth_qmp_execute(q, "query-block", NULL, 150, &ret, &err), -ETIMEDOUT);
	assert_true(berth_monotonic_ns() - t0 >= 150 * 1000000ull);
	assert_true(berth_monotonic_ns() - t0 < 1000 * 1000000ull);
	assert_string_equal(err.msg,
			    "QMP command \"query-block\": no reply from QEMU within 150 ms");
	berth_error_release(&err);
	assert_true(berth_qmp_connected(q));

	atomic_store(&f->release, true);
	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 2000, &ret, &err), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "paused");
	json_decref(ret);
	berth_qmp_free(q);
	fake_stop(f);
}

static void serve_silent(struct fake *f, int fd)
{
	wait_release(f);
}

static void test_no_greeting(void **state)
{
	struct fake *f = fake_start(serve_silent, 0);
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};
	uint64_t t0 = berth_monotonic_ns();

	assert_int_equal(berth_qmp_connect(f->path, 100, &q, &err), -ETIMEDOUT);
	assert_true(berth_monotonic_ns() - t0 < 1000 * 1000000ull);
	assert_string_equal(err.msg, "No QMP greeting from QEMU: timed out");
	assert_null(q);
	berth_error_release(&err);
	fake_stop(f);
}

/* ---- a server that dies mid-command ---- */

static void serve_close(struct fake *f, int fd)
{
	char id[64];

	srv_handshake(fd);
	srv_send(fd, "{\"event\": \"POWERDOWN\", \"timestamp\": {\"seconds\": 9, \"microseconds\": "
		     "0}}\r\n");
	if (!srv_expect(fd, "system_powerdown", id, sizeof(id)))
		return;
	/* half a reply, then gone */
	srv_send(fd, "{\"return\": {");
}

static void test_close(void **state)
{
	struct fake *f = fake_start(serve_close, 0);
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};
	struct berth_qmp_event *ev = NULL;

	assert_int_equal(berth_qmp_connect(f->path, 2000, &q, NULL), 0);
	assert_int_equal(berth_qmp_execute(q, "system_powerdown", NULL, 2000, NULL, &err),
			 -ECONNRESET);
	assert_string_equal(err.msg,
			    "QMP command \"system_powerdown\": QEMU closed the connection");
	berth_error_release(&err);
	assert_false(berth_qmp_connected(q));
	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 2000, NULL, &err), -ENOTCONN);
	berth_error_release(&err);
	/* the event read before the close is still there */
	assert_int_equal(berth_qmp_event_next(q, 0, &ev), 0);
	assert_string_equal(ev->name, "POWERDOWN");
	berth_qmp_event_free(ev);
	assert_int_equal(berth_qmp_event_next(q, 0, &ev), -ENOTCONN);
	berth_qmp_free(q);
	fake_stop(f);
}

static void serve_garbage(struct fake *f, int fd)
{
	srv_send(fd, "220 smtp.example ESMTP\r\n");
	wait_release(f);
}

static void serve_no_qmp_key(struct fake *f, int fd)
{
	srv_send(fd, "{\"hello\": 1}\n");
	wait_release(f);
}

/* A reply line that never ends. */
static void serve_flood(struct fake *f, int fd)
{
	char id[64];
	char *blank = malloc(BERTH_QMP_MESSAGE_MAX + 1);

	srv_handshake(fd);
	if (blank && srv_expect(fd, "query-status", id, sizeof(id))) {
		memset(blank, ' ', BERTH_QMP_MESSAGE_MAX);
		blank[0] = '{';
		blank[BERTH_QMP_MESSAGE_MAX] = '\0';
		srv_send(fd, blank);
	}
	free(blank);
	wait_release(f);
}

static void test_not_qmp(void **state)
{
	struct fake *f = fake_start(serve_garbage, 0);
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};

	assert_int_equal(berth_qmp_connect(f->path, 2000, &q, &err), -EPROTO);
	assert_string_equal(err.msg, "No QMP greeting from QEMU: not QMP");
	berth_error_release(&err);
	fake_stop(f);

	f = fake_start(serve_no_qmp_key, 0);
	assert_int_equal(berth_qmp_connect(f->path, 2000, &q, &err), -EPROTO);
	assert_string_equal(err.msg, "QEMU's first message is not a QMP greeting");
	berth_error_release(&err);
	assert_null(q);
	fake_stop(f);

	/* a message past BERTH_QMP_MESSAGE_MAX: refused, and the connection given up */
	f = fake_start(serve_flood, 0);
	assert_int_equal(berth_qmp_connect(f->path, 2000, &q, NULL), 0);
	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 5000, NULL, &err), -EPROTO);
	assert_string_equal(err.msg, "QMP command \"query-status\": QEMU sent a message that is "
				     "not QMP");
	berth_error_release(&err);
	assert_false(berth_qmp_connected(q));
	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 5000, NULL, &err), -ENOTCONN);
	assert_string_equal(err.msg,
			    "QMP command \"query-status\": no connection to QEMU any more");
	berth_error_release(&err);
	berth_qmp_free(q);
	fake_stop(f);
}

/* ---- connecting: a socket that comes late, one that never does ---- */

static void test_connect_late(void **state)
{
	struct fake *f = fake_start(serve_basic, 120);
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};
	char missing[160];
	uint64_t t0;

	assert_int_equal(berth_qmp_connect(f->path, 3000, &q, &err), 0);
	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 2000, NULL, NULL), 0);
	berth_qmp_free(q);
	q = NULL;

	snprintf(missing, sizeof(missing), "%s/none.sock", f->dir);
	t0 = berth_monotonic_ns();
	assert_int_equal(berth_qmp_connect(missing, 80, &q, &err), -ENOENT);
	assert_true(berth_monotonic_ns() - t0 >= 60 * 1000000ull);
	assert_true(berth_monotonic_ns() - t0 < 1000 * 1000000ull);
	assert_non_null(strstr(err.msg, "Cannot connect to QMP socket"));
	assert_null(q);
	berth_error_release(&err);
	atomic_store(&f->release, true);
	/* serve_basic's remaining commands never come: the thread ends at EOF */
	fake_stop(f);
}

/* ---- the real thing ---- */

static pid_t qemu_start(const char *sock)
{
	char qmp_arg[200];
	_cleanup_free_ char *qemu = NULL;
	struct berth_error err = {0};
	pid_t pid = -1;
	int pidfd = -1;

	if (berth_program_find("qemu-system-x86_64", &qemu) < 0)
		fail_msg("qemu-system-x86_64 not found (Debian package qemu-system-x86)");
	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", sock);
	struct berth_spawn s = {
		.argv = (const char *const[]){qemu, "-machine", "none", "-nodefaults",
					      "-no-user-config", "-display", "none", "-qmp",
					      qmp_arg, NULL},
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
	};
	if (berth_spawn_start(&s, &pid, &pidfd, &err) < 0)
		fail_msg("starting QEMU: %s", err.msg);
	close(pidfd);
	return pid;
}

static void test_real_qemu(void **state)
{
	char dir[] = "/tmp/berth-test-qmp-qemu-XXXXXX", sock[128];
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};
	struct berth_qmp_event *ev = NULL;
	json_t *ret = NULL, *args;
	pid_t pid;
	int status = -1, r;

	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	pid = qemu_start(sock);
	if (berth_qmp_connect(sock, 10000, &q, &err) < 0)
		fail_msg("connecting to QEMU: %s", err.msg);
	assert_true(berth_qmp_qemu_version(q) >= 7000000);

	assert_int_equal(berth_qmp_execute(q, "query-version", NULL, 5000, &ret, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ret, "qemu"), "major")),
			 berth_qmp_qemu_version(q) / 1000000);
	json_decref(ret);
	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 5000, &ret, NULL), 0);
	assert_true(json_is_true(json_object_get(ret, "running")));
	json_decref(ret);

	assert_int_equal(berth_qmp_execute(q, "stop", NULL, 5000, NULL, NULL), 0);
	next_event(q, 5000, "STOP");
	assert_int_equal(berth_qmp_execute(q, "query-status", NULL, 5000, &ret, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "paused");
	json_decref(ret);
	assert_int_equal(berth_qmp_execute(q, "cont", NULL, 5000, NULL, NULL), 0);
	next_event(q, 5000, "RESUME");

	args = json_pack("{s:s}", "id", "nope");
	assert_int_equal(berth_qmp_execute(q, "device_del", args, 5000, NULL, &err), -EREMOTEIO);
	assert_string_equal(berth_qmp_error_class(q), "DeviceNotFound");
	berth_error_release(&err);
	json_decref(args);
	assert_int_equal(berth_qmp_execute(q, "no-such-command", NULL, 5000, NULL, &err),
			 -EREMOTEIO);
	assert_string_equal(berth_qmp_error_class(q), "CommandNotFound");
	berth_error_release(&err);

	/* QEMU may close the socket before its answer to quit is out (a loaded host) */
	r = berth_qmp_execute(q, "quit", NULL, 5000, NULL, NULL);
	assert_true(r == 0 || r == -ECONNRESET);
	if (r == 0) {
		next_event(q, 5000, "SHUTDOWN");
		r = berth_qmp_event_next(q, 5000, &ev);
		assert_int_equal(r, -ECONNRESET);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	berth_qmp_free(q);
	unlink(sock);
	rmdir(dir);
}

/* QEMU killed while a command waits for its reply: a clean -ECONNRESET, no hang. */
static void test_real_qemu_killed(void **state)
{
	char dir[] = "/tmp/berth-test-qmp-qemu-XXXXXX", sock[128];
	struct berth_qmp *q = NULL;
	struct berth_error err = {0};
	json_t *args;
	pid_t pid;
	int status = -1, r;
	uint64_t t0;

	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	pid = qemu_start(sock);
	if (berth_qmp_connect(sock, 10000, &q, &err) < 0)
		fail_msg("connecting to QEMU: %s", err.msg);
	/* one command answered; then QEMU stops answering and dies while the next waits */
	args = json_pack("{s:s}", "command-line", "info status");
	assert_int_equal(berth_qmp_execute(q, "human-monitor-command", args, 5000, NULL, NULL), 0);
	json_decref(args);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	t0 = berth_monotonic_ns();
	{
		/* stopped QEMU: the command cannot be answered; kill it 100 ms in */
		pid_t killer = fork();

		assert_true(killer >= 0);
		if (killer == 0) {
			sleep_ms(100);
			kill(pid, SIGKILL);
			_exit(0);
		}
		r = berth_qmp_execute(q, "query-status", NULL, 10000, NULL, &err);
		waitpid(killer, NULL, 0);
	}
	assert_int_equal(r, -ECONNRESET);
	assert_true(berth_monotonic_ns() - t0 < 5000 * 1000000ull);
	assert_string_equal(err.msg, "QMP command \"query-status\": QEMU closed the connection");
	berth_error_release(&err);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	berth_qmp_free(q);
	unlink(sock);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_no_greeting),
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_not_qmp),
		cmocka_unit_test(test_connect_late),
		cmocka_unit_test(test_real_qemu),
		cmocka_unit_test(test_real_qemu_killed),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
