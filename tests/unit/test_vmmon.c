/* tests/unit/test_vmmon.c: berth-vmmon (daemon/vm/vmmon*.c) with no QEMU. The test plays
 * QEMU: it listens on RUNDIR/agent.socket and hands each connection it accepts, one at a
 * time, to a fresh real berth-agent (`--fd 3`), as the agent reopens its port; a `sleep`
 * child stands for QEMU's process (RUNDIR/qemu.pid). Then `berth-vmmon start` through
 * vmmon_start(), and through daemon/vm/vmmon_client and raw `exec` requests on
 * monitor.sock: the agent not up yet (status, exec and state say so), execs (exit codes,
 * separate streams, stdin, env, cwd, uid, a missing command, a pty resized, a signal, two
 * at once), state, files, the agent killed and restarted, a wrong key, a second start, a
 * killed vmmon replaced, and QEMU's end. Needs root (owners, uid switches): skipped
 * otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/exec_words.h"
#include "daemon/vm/config_drive.h"
#include "daemon/vm/vmmon_client.h"
#include "lib/util.h"

#define TIMEOUT 10000

static char rundir[64];
static char agent_bin[4096], vmmon_bin[4096];
static char guest_key[128]; /* the key the agents are started with */
static uint8_t key[AGENT_KEY_LEN];
static int listen_fd = -1;
static pid_t qemu_pid = -1, sleep_pid = -1;

static char *rpath(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", rundir, name);
	return buf[i];
}

static void write_key(const char *path, const uint8_t k[AGENT_KEY_LEN])
{
	char hex[2 * AGENT_KEY_LEN + 2];

	config_drive_key_hex(k, hex);
	assert_int_equal(berth_write_file_replace(path, hex, strlen(hex), 0600), 0);
}

/* The fake QEMU: accept one connection at a time, run an agent on it, wait for its end;
 * the agent's pid in RUNDIR/agent.pid. */
static _Noreturn void fake_qemu(void)
{
	for (;;) {
		int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		char pid[24];
		pid_t a;

		if (c < 0)
			_exit(1);
		a = fork();
		if (a == 0) {
			const char *argv[] = {agent_bin, "--fd", "3", "--key", guest_key, NULL};
			if (dup2(c, 3) < 0)
				_exit(99);
			execv(agent_bin, (char *const *)argv);
			_exit(98);
		}
		close(c);
		snprintf(pid, sizeof(pid), "%d\n", (int)a);
		berth_write_file_replace(rpath("agent.pid"), pid, strlen(pid), 0644);
		waitpid(a, NULL, 0);
	}
}

static pid_t read_pid(const char *name)
{
	_cleanup_free_ char *text = NULL;

	if (berth_read_file(rpath(name), 64, &text, NULL) < 0)
		return -1;
	return (pid_t)atoi(text);
}

static bool alive(pid_t pid)
{
	return pid > 0 && kill(pid, 0) == 0;
}

static void msleep(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Wait until vmmon says the agent is up (or not, for `want` false), up to `ms`. */
static bool wait_ready(bool want, int ms)
{
	for (int waited = 0; waited < ms; waited += 100) {
		struct berth_error err = {0};
		bool ready = false;

		if (vmmon_status(rundir, &ready, NULL, &err) == 0 && ready == want)
			return true;
		berth_error_release(&err);
		msleep(100);
	}
	return false;
}

static size_t count_in_log(const char *what)
{
	_cleanup_free_ char *log = NULL;
	size_t n = 0;

	if (berth_read_file(rpath("vmmon.log"), 1 << 22, &log, NULL) < 0)
		return 0;
	for (const char *p = log; (p = strstr(p, what)); p++)
		n++;
	return n;
}

static int setup(void **state)
{
	static int ok = 1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *b = getenv("BERTH_BUILDDIR");
	struct berth_error err = {0};
	char pid[24];

	if (geteuid() != 0)
		return 0;
	snprintf(agent_bin, sizeof(agent_bin), "%s/berth-agent", b ? b : ".");
	snprintf(vmmon_bin, sizeof(vmmon_bin), "%s/berth-vmmon", b ? b : ".");
	setenv("BERTH_VMMON", vmmon_bin, 0); /* a given one (a sanitizer build) wins */
	snprintf(rundir, sizeof(rundir), "/tmp/berth-test-vmmon-XXXXXX");
	assert_non_null(mkdtemp(rundir));
	assert_int_equal(chmod(rundir, 0755), 0); /* uid-switched commands chdir into it */
	snprintf(guest_key, sizeof(guest_key), "%s/guest.key", rundir);
	assert_int_equal(config_drive_new_key(key), 0);
	write_key(rpath("agent.key"), key);
	write_key(guest_key, key);
	if (sleep_pid > 0 && alive(sleep_pid)) { /* a failed setup's (no teardown ran) */
		kill(sleep_pid, SIGKILL);
		waitpid(sleep_pid, NULL, 0);
	}
	sleep_pid = fork();
	if (sleep_pid == 0) {
		/* not the test's stdout: a sleep left behind would hold the harness's pipe */
		int null = open("/dev/null", O_RDWR);

		if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(97);
		execlp("sleep", "sleep", "1000", (char *)NULL);
		_exit(98);
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)sleep_pid);
	assert_int_equal(berth_write_file_replace(rpath("qemu.pid"), pid, strlen(pid), 0644), 0);
	/* QEMU's socket listens from the start; the guest's agent comes later */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", rpath("agent.socket"));
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(listen_fd, 4), 0);
	if (vmmon_start(rundir, &err) < 0)
		fail_msg("vmmon_start: %s", berth_error_msg(&err, -1));
	*state = &ok;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	pid_t p = read_pid("vmmon.pid");

	if (!*state)
		return 0;
	if (alive(p))
		kill(p, SIGKILL);
	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
	}
	if (alive(read_pid("agent.pid")))
		kill(read_pid("agent.pid"), SIGKILL);
	if (alive(sleep_pid)) {
		kill(sleep_pid, SIGKILL);
		waitpid(sleep_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rundir);
	return system(cmd) == 0 ? 0 : -1;
}

#define NEED_ROOT()                                                                                \
	do {                                                                                       \
		if (!*state)                                                                       \
			skip();                                                                    \
	} while (0)

/* ---- raw exec requests ---- */

/* Send "exec WORDS..." with `fds` on a new connection. */
static int exec_send(const char *const *words, const int fds[3])
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[8192], *p = stpcpy(line, "exec");
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(3 * sizeof(int))];
	} u = {0};
	struct iovec iov = {.iov_base = line};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	for (size_t i = 0; words[i]; i++) {
		*p++ = ' ';
		p = runtime_word_escape(p, words[i]);
	}
	*p++ = '\n';
	iov.iov_len = (size_t)(p - line);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", rpath("monitor.sock"));
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(sendmsg(s, &mh, MSG_NOSIGNAL), (ssize_t)iov.iov_len);
	return s;
}

/* One line from `s` (without its newline) into `buf`, waiting up to TIMEOUT. */
static void read_line(int s, char *buf, size_t size)
{
	size_t len = 0;

	while (len < size - 1) {
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		assert_int_equal(poll(&pfd, 1, TIMEOUT), 1);
		if (read(s, buf + len, 1) != 1)
			break;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
}

/* Everything until EOF on `fd` (NUL-ended, owned). */
static char *slurp(int fd)
{
	char *buf = calloc(1, 1 << 20);
	size_t len = 0;
	ssize_t n;

	assert_non_null(buf);
	while ((n = read(fd, buf + len, (1 << 20) - 1 - len)) > 0)
		len += (size_t)n;
	return buf;
}

struct run_result {
	char first[512]; /* "started N", "failed ...", "error ..." */
	char last[512];	 /* "exit N" */
	char *out, *err;
};

/* A whole non-interactive exec: `in` as stdin (NULL: none, closed). */
static void run_exec(const char *const *words, const char *in, struct run_result *r)
{
	int i[2], o[2], e[2], s;

	assert_int_equal(pipe2(i, O_CLOEXEC), 0);
	assert_int_equal(pipe2(o, O_CLOEXEC), 0);
	assert_int_equal(pipe2(e, O_CLOEXEC), 0);
	s = exec_send(words, (int[]){i[0], o[1], e[1]});
	close(i[0]);
	close(o[1]);
	close(e[1]);
	if (in)
		assert_int_equal(write(i[1], in, strlen(in)), (ssize_t)strlen(in));
	close(i[1]);
	read_line(s, r->first, sizeof(r->first));
	r->out = slurp(o[0]);
	r->err = slurp(e[0]);
	r->last[0] = '\0';
	if (!berth_startswith(r->first, "error "))
		read_line(s, r->last, sizeof(r->last));
	close(o[0]);
	close(e[0]);
	close(s);
}

static void run_release(struct run_result *r)
{
	free(r->out);
	free(r->err);
}

/* ---- tests ---- */

static void test_connecting(void **state)
{
	struct berth_error err = {0};
	struct run_result r;
	json_t *j = NULL;
	bool ready = true;
	char *version = NULL;

	NEED_ROOT();
	assert_int_equal(vmmon_status(rundir, &ready, &version, &err), 0);
	assert_false(ready);
	assert_null(version);
	run_exec((const char *[]){"--", "true", NULL}, NULL, &r);
	assert_string_equal(r.first, "error LXD VM agent isn't currently running");
	run_release(&r);
	assert_int_equal(vmmon_state(rundir, &j, TIMEOUT, &err), -EAGAIN);
	assert_string_equal(err.msg, "LXD VM agent isn't currently running");
	berth_error_release(&err);
	/* the guest's agent comes up: vmmon's pending connection is taken */
	qemu_pid = fork();
	if (qemu_pid == 0)
		fake_qemu();
	assert_true(wait_ready(true, 20000));
	assert_int_equal(vmmon_status(rundir, &ready, &version, &err), 0);
	assert_true(ready);
	assert_string_equal(version, BERTH_VERSION);
	free(version);
}

static void test_exec(void **state)
{
	struct run_result r;

	NEED_ROOT();
	run_exec((const char *[]){"--", "true", NULL}, NULL, &r);
	if (!berth_startswith(r.first, "started "))
		fail_msg("first line: %s", r.first);
	assert_true(atoi(r.first + 8) > 0);
	assert_string_equal(r.last, "exit 0");
	run_release(&r);
	run_exec((const char *[]){"--", "false", NULL}, NULL, &r);
	assert_string_equal(r.last, "exit 1");
	run_release(&r);
	run_exec((const char *[]){"--", "sh", "-c", "echo out; echo err >&2; exit 3", NULL}, NULL,
		 &r);
	assert_string_equal(r.out, "out\n");
	assert_string_equal(r.err, "err\n");
	assert_string_equal(r.last, "exit 3");
	run_release(&r);
	run_exec((const char *[]){"--", "cat", NULL}, "hello world", &r);
	assert_string_equal(r.out, "hello world");
	assert_string_equal(r.last, "exit 0");
	run_release(&r);
	run_exec((const char *[]){"--env", "FOO=bar baz", "--cwd", "/tmp", "--", "sh", "-c",
				  "echo \"$FOO\"; pwd; echo $HOME $PATH", NULL},
		 NULL, &r);
	assert_string_equal(r.out,
			    "bar baz\n/tmp\n/root "
			    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
	run_release(&r);
	run_exec((const char *[]){"--uid", "1234", "--gid", "2345", "--", "id", "-u", NULL}, NULL,
		 &r);
	assert_string_equal(r.out, "1234\n");
	run_release(&r);
	run_exec((const char *[]){"--", "/nonexistent/cmd", NULL}, NULL, &r);
	assert_true(berth_startswith(r.first, "failed "));
	assert_string_equal(r.last, "exit 127");
	run_release(&r);
	run_exec((const char *[]){"--bogus", "--", "true", NULL}, NULL, &r);
	assert_string_equal(r.first, "error bad request");
	run_release(&r);
}

/* Read the pty master until `want` shows up (or the deadline). */
static void pty_expect(int master, const char *want, char *acc, size_t size)
{
	size_t len = strlen(acc);

	while (!strstr(acc, want) && len < size - 1) {
		struct pollfd pfd = {.fd = master, .events = POLLIN};
		ssize_t n;

		assert_int_equal(poll(&pfd, 1, TIMEOUT), 1);
		n = read(master, acc + len, size - 1 - len);
		assert_true(n > 0);
		len += (size_t)n;
		acc[len] = '\0';
	}
	assert_non_null(strstr(acc, want));
}

static void test_exec_pty(void **state)
{
	struct winsize ws = {.ws_col = 80, .ws_row = 24};
	char line[128], acc[4096] = "";
	int master, slave, s;
	struct termios t;

	NEED_ROOT();
	assert_int_equal(openpty(&master, &slave, NULL, NULL, &ws), 0);
	s = exec_send((const char *[]){"--pty", "--", "sh", "-c",
				       "stty size; read x; stty size; tty; echo got $x", NULL},
		      (int[]){slave, slave, slave});
	read_line(s, line, sizeof(line));
	assert_true(berth_startswith(line, "started "));
	pty_expect(master, "24 80", acc, sizeof(acc));
	/* vmmon made the host slave raw: the guest's terminal does the line discipline */
	assert_int_equal(tcgetattr(slave, &t), 0);
	assert_false(t.c_lflag & (ICANON | ECHO));
	close(slave);
	assert_int_equal(write(s, "resize 100 40\n", 14), 14);
	msleep(300);
	assert_int_equal(write(master, "yes\r", 4), 4);
	pty_expect(master, "40 100", acc, sizeof(acc));
	pty_expect(master, "got yes", acc, sizeof(acc));
	assert_non_null(strstr(acc, "/dev/pts/"));
	read_line(s, line, sizeof(line));
	assert_string_equal(line, "exit 0");
	close(s);
	close(master);
}

static void test_exec_signal(void **state)
{
	int i[2], o[2], s;
	char line[128];

	NEED_ROOT();
	assert_int_equal(pipe2(i, O_CLOEXEC), 0);
	assert_int_equal(pipe2(o, O_CLOEXEC), 0);
	s = exec_send((const char *[]){"--", "sleep", "30", NULL}, (int[]){i[0], o[1], o[1]});
	close(i[0]);
	close(o[1]);
	read_line(s, line, sizeof(line));
	assert_true(berth_startswith(line, "started "));
	assert_int_equal(write(s, "signal 15\n", 10), 10);
	read_line(s, line, sizeof(line));
	assert_string_equal(line, "exit 143");
	close(s);
	close(i[1]);
	close(o[0]);
}

/* Two at once: the first waits for its stdin while the second runs to its end. */
static void test_exec_two(void **state)
{
	int i[2], o[2], s;
	char line[128];
	struct run_result r;
	char *out;

	NEED_ROOT();
	assert_int_equal(pipe2(i, O_CLOEXEC), 0);
	assert_int_equal(pipe2(o, O_CLOEXEC), 0);
	s = exec_send((const char *[]){"--", "sh", "-c", "read x; echo A$x", NULL},
		      (int[]){i[0], o[1], o[1]});
	close(i[0]);
	close(o[1]);
	read_line(s, line, sizeof(line));
	assert_true(berth_startswith(line, "started "));
	run_exec((const char *[]){"--", "echo", "B", NULL}, NULL, &r);
	assert_string_equal(r.out, "B\n");
	assert_string_equal(r.last, "exit 0");
	run_release(&r);
	assert_int_equal(write(i[1], "1\n", 2), 2);
	close(i[1]);
	out = slurp(o[0]);
	assert_string_equal(out, "A1\n");
	free(out);
	read_line(s, line, sizeof(line));
	assert_string_equal(line, "exit 0");
	close(s);
	close(o[0]);
}

static void test_state(void **state)
{
	struct berth_error err = {0};
	json_t *j = NULL, *lo, *a;
	size_t i;
	bool found = false;

	NEED_ROOT();
	assert_int_equal(vmmon_state(rundir, &j, TIMEOUT, &err), 0);
	assert_true(json_integer_value(json_object_get(json_object_get(j, "memory"), "total")) > 0);
	assert_true(json_integer_value(json_object_get(json_object_get(j, "memory"), "usage")) > 0);
	assert_true(json_integer_value(json_object_get(j, "processes")) > 0);
	assert_true(json_integer_value(
			    json_object_get(json_object_get(json_object_get(j, "disk"), "root"),
					    "usage")) > 0);
	lo = json_object_get(json_object_get(j, "network"), "lo");
	assert_non_null(lo);
	assert_string_equal(json_string_value(json_object_get(lo, "type")), "loopback");
	assert_string_equal(json_string_value(json_object_get(lo, "host_name")), "");
	assert_non_null(json_object_get(json_object_get(lo, "counters"), "bytes_received"));
	json_array_foreach(json_object_get(lo, "addresses"), i, a)
		if (!strcmp(json_string_value(json_object_get(a, "address")), "127.0.0.1")) {
			assert_string_equal(json_string_value(json_object_get(a, "family")),
					    "inet");
			assert_string_equal(json_string_value(json_object_get(a, "netmask")), "8");
			assert_string_equal(json_string_value(json_object_get(a, "scope")),
					    "local");
			found = true;
		}
	assert_true(found);
	json_decref(j);
}

static void test_files(void **state)
{
	struct berth_error err = {0};
	struct agent_file_info info = {0}, put = {.type = AGENT_FILE_REGULAR,
						  .mode = 0640,
						  .uid = 1234,
						  .gid = 2345};
	char sub[128], file[128], local[128];
	_cleanup_free_ char *content = NULL;
	struct stat st;
	int fd;

	NEED_ROOT();
	snprintf(sub, sizeof(sub), "%s/d/a/b", rundir);
	snprintf(file, sizeof(file), "%s/d/f.txt", rundir);
	snprintf(local, sizeof(local), "%s/local", rundir);
	/* mkdir with parents, mode and owner */
	assert_int_equal(vmmon_mkdir(rundir, sub, 0750, 1234, 2345, true, TIMEOUT, &err), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 2345);
	assert_int_equal(vmmon_mkdir(rundir, sub, 0750, 0, 0, false, TIMEOUT, &err), -EEXIST);
	assert_int_equal(err.code, 400);
	berth_error_release(&err);
	/* push a file, with mode and owner */
	assert_int_equal(berth_write_file_replace(local, "hello vm\n", 9, 0600), 0);
	fd = open(local, O_RDONLY | O_CLOEXEC);
	assert_int_equal(vmmon_file_push(rundir, file, &put, fd, 0, TIMEOUT, &err), 0);
	close(fd);
	assert_int_equal(berth_read_file(file, 1024, &content, NULL), 0);
	assert_string_equal(content, "hello vm\n");
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, 1234);
	/* pull it back */
	fd = open(local, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_int_equal(vmmon_file_pull(rundir, file, fd, &info, TIMEOUT, &err), 0);
	close(fd);
	assert_int_equal(info.type, AGENT_FILE_REGULAR);
	assert_int_equal(info.mode, 0640);
	assert_int_equal(info.uid, 1234);
	assert_int_equal(info.gid, 2345);
	assert_int_equal(info.size, 9);
	assert_int_equal(info.mtime_s, st.st_mtim.tv_sec);
	assert_string_equal(info.target, "");
	agent_file_info_release(&info);
	free(content);
	content = NULL;
	assert_int_equal(berth_read_file(local, 1024, &content, NULL), 0);
	assert_string_equal(content, "hello vm\n");
}

/* After test_files: a symlink, an escaped name, a listing, deletes and their errors. */
static void test_files_links(void **state)
{
	struct berth_error err = {0};
	struct agent_file_info info = {0}, put;
	char dir[128], sub[128], file[128], link[128], buf[64];
	struct stat st;

	NEED_ROOT();
	snprintf(dir, sizeof(dir), "%s/d", rundir);
	snprintf(file, sizeof(file), "%s/d/f.txt", rundir);
	snprintf(link, sizeof(link), "%s/d/l", rundir);
	/* a symlink, a name that needs escaping, a listing */
	put = (struct agent_file_info){.type = AGENT_FILE_SYMLINK,
				       .mode = AGENT_ID_NONE,
				       .uid = AGENT_ID_NONE,
				       .gid = AGENT_ID_NONE,
				       .target = (char *)"f.txt"};
	assert_int_equal(vmmon_file_push(rundir, link, &put, -1, 0, TIMEOUT, &err), 0);
	assert_int_equal(readlink(link, buf, sizeof(buf)), 5);
	snprintf(sub, sizeof(sub), "%s/d/a b\n%%c", rundir);
	assert_int_equal(vmmon_mkdir(rundir, sub, 0700, 0, 0, false, TIMEOUT, &err), 0);
	assert_int_equal(vmmon_file_pull(rundir, link, -1, &info, TIMEOUT, &err), 0);
	assert_int_equal(info.type, AGENT_FILE_SYMLINK);
	assert_string_equal(info.target, "f.txt");
	agent_file_info_release(&info);
	assert_int_equal(vmmon_file_pull(rundir, dir, -1, &info, TIMEOUT, &err), 0);
	assert_int_equal(info.type, AGENT_FILE_DIRECTORY);
	assert_int_equal(info.n_entries, 4);
	{
		int seen = 0;
		for (size_t i = 0; i < info.n_entries; i++)
			seen |= (strcmp(info.entries[i], "a") == 0) |
				(strcmp(info.entries[i], "f.txt") == 0) << 1 |
				(strcmp(info.entries[i], "l") == 0) << 2 |
				(strcmp(info.entries[i], "a b\n%c") == 0) << 3;
		assert_int_equal(seen, 15);
	}
	agent_file_info_release(&info);
	/* delete; a missing path is a 404 with the agent's message */
	assert_int_equal(vmmon_file_delete(rundir, file, TIMEOUT, &err), 0);
	assert_int_equal(lstat(file, &st), -1);
	assert_int_equal(vmmon_file_pull(rundir, file, -1, &info, TIMEOUT, &err), -ENOENT);
	assert_int_equal(err.code, 404);
	assert_non_null(strstr(err.msg, "f.txt"));
	berth_error_release(&err);
	assert_int_equal(vmmon_file_delete(rundir, dir, TIMEOUT, &err), -ENOTEMPTY);
	berth_error_release(&err);
}

/* A reader that is slow loses nothing (the guest waits for it); one that takes nothing
 * holds the other execs back for VMMON_STALL_MS at most, then loses its output. */
static void test_slow_reader(void **state)
{
	int i[2], o[2], e[2], s;
	char line[128], *err_out;
	struct run_result r;
	uint64_t t0;
	size_t total = 0;
	char buf[65536];
	ssize_t n;

	NEED_ROOT();
	/* slow: 3 MB read only after a second */
	assert_int_equal(pipe2(i, O_CLOEXEC), 0);
	assert_int_equal(pipe2(o, O_CLOEXEC), 0);
	s = exec_send((const char *[]){"--", "head", "-c", "3000000", "/dev/zero", NULL},
		      (int[]){i[0], o[1], o[1]});
	close(i[0]);
	close(i[1]);
	close(o[1]);
	read_line(s, line, sizeof(line));
	assert_true(berth_startswith(line, "started "));
	msleep(1000);
	while ((n = read(o[0], buf, sizeof(buf))) > 0)
		total += (size_t)n;
	assert_int_equal(total, 3000000);
	read_line(s, line, sizeof(line));
	assert_string_equal(line, "exit 0");
	close(s);
	close(o[0]);
	/* stuck: its stdout never read; another exec waits, then goes on */
	assert_int_equal(pipe2(i, O_CLOEXEC), 0);
	assert_int_equal(pipe2(o, O_CLOEXEC), 0);
	assert_int_equal(pipe2(e, O_CLOEXEC), 0);
	s = exec_send((const char *[]){"--", "sh", "-c", "head -c 4000000 /dev/zero; echo done >&2",
				       NULL},
		      (int[]){i[0], o[1], e[1]});
	close(i[0]);
	close(i[1]);
	close(o[1]);
	close(e[1]);
	read_line(s, line, sizeof(line));
	assert_true(berth_startswith(line, "started "));
	msleep(500);
	t0 = berth_monotonic_ns();
	run_exec((const char *[]){"--", "echo", "B", NULL}, NULL, &r);
	assert_string_equal(r.out, "B\n");
	run_release(&r);
	fprintf(stderr, "# an exec behind a stuck reader waited %.1f s\n",
		(double)(berth_monotonic_ns() - t0) / 1e9);
	assert_true(berth_monotonic_ns() - t0 < 15000000000ULL);
	err_out = slurp(e[0]);
	assert_string_equal(err_out, "done\n"); /* its other stream was not lost */
	free(err_out);
	read_line(s, line, sizeof(line));
	assert_string_equal(line, "exit 0");
	assert_int_equal(count_in_log("output dropped"), 1);
	close(s);
	close(o[0]);
	close(e[0]);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Figures: an exec's round trip through vmmon and the agent, and vmmon's memory. */
static void test_figures(void **state)
{
	_cleanup_free_ char *status = NULL, *status_path = NULL;
	uint64_t t[100];
	const char *rss;
	long kib;

	NEED_ROOT();
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct run_result r;
		uint64_t t0 = berth_monotonic_ns();

		run_exec((const char *[]){"--", "true", NULL}, NULL, &r);
		t[i] = berth_monotonic_ns() - t0;
		assert_string_equal(r.last, "exit 0");
		run_release(&r);
	}
	qsort(t, ARRAY_SIZE(t), sizeof(t[0]), cmp_u64);
	status_path = berth_strdup_printf("/proc/%d/status", (int)read_pid("vmmon.pid"));
	assert_non_null(status_path);
	assert_int_equal(berth_read_file(status_path, 1 << 16, &status, NULL), 0);
	rss = strstr(status, "VmRSS:");
	assert_non_null(rss);
	kib = atol(rss + 6);
	fprintf(stderr,
		"# exec -- true through berth-vmmon: p50 %.2f ms, p90 %.2f ms (%zu runs); "
		"berth-vmmon resident: %ld KiB\n",
		(double)t[ARRAY_SIZE(t) / 2] / 1e6, (double)t[ARRAY_SIZE(t) * 9 / 10] / 1e6,
		ARRAY_SIZE(t), kib);
	/* a sanitizer build's shadow memory counts too */
	assert_true(kib > 0 && kib < (BERTH_ASAN ? 128 : 16) * 1024);
}

/* The agent dies (the guest's restarts it): vmmon re-authenticates to the next one. */
static void test_agent_restart(void **state)
{
	pid_t old = read_pid("agent.pid");
	struct run_result r;
	bool ok = false;

	NEED_ROOT();
	assert_true(alive(old));
	assert_int_equal(kill(old, SIGKILL), 0);
	for (int i = 0; i < 100 && !ok; i++) {
		msleep(100);
		ok = read_pid("agent.pid") != old && wait_ready(true, 100);
	}
	assert_true(ok);
	assert_true(count_in_log("agent session lost") >= 1);
	run_exec((const char *[]){"--", "echo", "again", NULL}, NULL, &r);
	assert_string_equal(r.out, "again\n");
	assert_string_equal(r.last, "exit 0");
	run_release(&r);
}

/* An agent that goes silent (a virtio-serial port gives no end of stream when the
 * guest's agent restarts) is found out by vmmon's probe, and the session re-made. */
static void test_agent_silent(void **state)
{
	pid_t a = read_pid("agent.pid");
	uint64_t t0 = berth_monotonic_ns();

	NEED_ROOT();
	assert_true(wait_ready(true, 1000));
	assert_int_equal(kill(a, SIGSTOP), 0);
	assert_true(wait_ready(false, 20000));
	fprintf(stderr, "# a silent agent found out after %.1f s\n",
		(double)(berth_monotonic_ns() - t0) / 1e9);
	assert_true(count_in_log("agent session lost: probe:") >= 1);
	/* the fake QEMU takes the next connection once that agent is gone */
	assert_int_equal(kill(a, SIGKILL), 0);
	assert_true(wait_ready(true, 10000));
}

/* An agent with another key is refused, again and again, logged once. */
static void test_wrong_key(void **state)
{
	uint8_t other[AGENT_KEY_LEN];
	struct berth_error err = {0};
	bool ready = true;

	NEED_ROOT();
	assert_int_equal(config_drive_new_key(other), 0);
	write_key(guest_key, other);
	kill(read_pid("agent.pid"), SIGKILL);
	assert_true(wait_ready(false, 5000));
	for (int i = 0; i < 6; i++) { /* three seconds: several attempts, never ready */
		msleep(500);
		assert_int_equal(vmmon_status(rundir, &ready, NULL, &err), 0);
		assert_false(ready);
	}
	assert_int_equal(count_in_log("not authenticated"), 1);
	write_key(guest_key, key);
	kill(read_pid("agent.pid"), SIGKILL); /* the one refused last, if it is still there */
	assert_true(wait_ready(true, 10000));
}

/* A second start finds it running; a killed vmmon is replaced by the next start. */
static void test_takeover(void **state)
{
	struct berth_error err = {0};
	pid_t old = read_pid("vmmon.pid");
	struct run_result r;

	NEED_ROOT();
	assert_true(alive(old));
	assert_int_equal(vmmon_start(rundir, &err), 0);
	assert_int_equal(read_pid("vmmon.pid"), old);
	assert_int_equal(kill(old, SIGKILL), 0);
	for (int i = 0; i < 50 && alive(old); i++)
		msleep(100);
	assert_false(alive(old));
	assert_true(vmmon_status(rundir, &(bool){false}, NULL, &err) < 0);
	berth_error_release(&err);
	/* a key others can read is refused */
	assert_int_equal(chmod(rpath("agent.key"), 0644), 0);
	assert_true(vmmon_start(rundir, &err) < 0);
	assert_non_null(strstr(err.msg, "agent.key"));
	berth_error_release(&err);
	assert_int_equal(access(rpath("vmmon.pid"), F_OK), -1);
	assert_int_equal(chmod(rpath("agent.key"), 0600), 0);
	if (vmmon_start(rundir, &err) < 0)
		fail_msg("vmmon_start: %s", berth_error_msg(&err, -1));
	assert_true(read_pid("vmmon.pid") != old);
	assert_true(wait_ready(true, 20000));
	run_exec((const char *[]){"--", "echo", "new", NULL}, NULL, &r);
	assert_string_equal(r.out, "new\n");
	run_release(&r);
}

/* QEMU's process ends: vmmon goes, and its socket with it. */
static void test_qemu_gone(void **state)
{
	pid_t p = read_pid("vmmon.pid");
	struct stat st;

	NEED_ROOT();
	assert_true(alive(p));
	assert_int_equal(kill(sleep_pid, SIGKILL), 0);
	waitpid(sleep_pid, NULL, 0);
	sleep_pid = -1;
	for (int i = 0; i < 50 && alive(p); i++)
		msleep(100);
	assert_false(alive(p));
	assert_int_equal(stat(rpath("monitor.sock"), &st), -1);
	assert_int_equal(count_in_log("QEMU exited"), 1);
}

/* agent.socket removed (QEMU gone, its pid not known to be): vmmon exits at its next
 * connection attempt. */
static void test_socket_gone(void **state)
{
	struct berth_error err = {0};
	char pid[24];
	pid_t p;

	NEED_ROOT();
	if (sleep_pid > 0 && alive(sleep_pid)) { /* a failed setup's (no teardown ran) */
		kill(sleep_pid, SIGKILL);
		waitpid(sleep_pid, NULL, 0);
	}
	sleep_pid = fork();
	if (sleep_pid == 0) {
		/* not the test's stdout: a sleep left behind would hold the harness's pipe */
		int null = open("/dev/null", O_RDWR);

		if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(97);
		execlp("sleep", "sleep", "1000", (char *)NULL);
		_exit(98);
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)sleep_pid);
	assert_int_equal(berth_write_file_replace(rpath("qemu.pid"), pid, strlen(pid), 0644), 0);
	if (vmmon_start(rundir, &err) < 0)
		fail_msg("vmmon_start: %s", berth_error_msg(&err, -1));
	assert_true(wait_ready(true, 20000));
	p = read_pid("vmmon.pid");
	assert_int_equal(unlink(rpath("agent.socket")), 0);
	assert_int_equal(kill(read_pid("agent.pid"), SIGKILL), 0);
	for (int i = 0; i < 50 && alive(p); i++)
		msleep(100);
	assert_false(alive(p));
	assert_int_equal(count_in_log("agent.socket is gone"), 1);
	assert_int_equal(access(rpath("monitor.sock"), F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connecting),    cmocka_unit_test(test_exec),
		cmocka_unit_test(test_exec_pty),      cmocka_unit_test(test_exec_signal),
		cmocka_unit_test(test_exec_two),      cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_state),	      cmocka_unit_test(test_files),
		cmocka_unit_test(test_files_links),   cmocka_unit_test(test_figures),
		cmocka_unit_test(test_agent_restart), cmocka_unit_test(test_agent_silent),
		cmocka_unit_test(test_wrong_key),     cmocka_unit_test(test_takeover),
		cmocka_unit_test(test_qemu_gone),     cmocka_unit_test(test_socket_gone),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
