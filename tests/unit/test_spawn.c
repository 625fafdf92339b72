/* tests/unit/test_spawn.c: lib/spawn: argv without a shell, an explicit environment,
 * stdin, exit codes and their messages, capped capture, the deadline's SIGTERM then
 * SIGKILL, a cancel flag that stops a running program, programs that cannot start, close-on-exec, detached children and the
 * program search path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/spawn.h"
#include "lib/util.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static int64_t ms_now(void)
{
	return (int64_t)(berth_monotonic_ns() / 1000000);
}

static void test_argv_no_shell(void **state)
{
	struct berth_spawn s = {.argv = ARGV("printf", "%s|", "a b", "$HOME", ";", "*")};

	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "a b|$HOME|;|*|");
	assert_int_equal(s.out_len, strlen("a b|$HOME|;|*|"));
	assert_int_equal(s.exit_code, 0);
	assert_string_equal(s.err_out, "");
	berth_spawn_release(&s);
}

static void test_env_explicit(void **state)
{
	struct berth_spawn s = {.argv = ARGV("env")};

	setenv("BERTH_SPAWN_TEST_SECRET", "leak", 1);
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "PATH=" BERTH_SPAWN_PATH "\nLC_ALL=C\n");

	s.env = ARGV("FOO=bar", "X=1");
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "FOO=bar\nX=1\n");

	s.env = NULL;
	s.flags = BERTH_SPAWN_INHERIT_ENV;
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_non_null(strstr(s.out, "BERTH_SPAWN_TEST_SECRET=leak\n"));
	berth_spawn_release(&s);
	unsetenv("BERTH_SPAWN_TEST_SECRET");
}

static void test_stdin(void **state)
{
	size_t big = 1u << 20;
	char *data = malloc(big);
	struct berth_spawn s = {.argv = ARGV("cat")};
	int p[2];

	/* default: /dev/null */
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_int_equal(s.out_len, 0);

	/* input, more than a pipe holds */
	assert_non_null(data);
	memset(data, 'x', big);
	s.argv = ARGV("wc", "-c");
	s.input = data;
	s.input_len = big;
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "1048576\n");

	/* a given fd */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "from a pipe", 11), 11);
	close(p[1]);
	s.argv = ARGV("cat");
	s.input = NULL;
	s.io[0] = BERTH_SPAWN_FD;
	s.fds[0] = p[0];
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "from a pipe");
	close(p[0]);
	berth_spawn_release(&s);
	free(data);
}

static void test_exit_codes(void **state)
{
	struct berth_spawn s = {.argv = ARGV("sh", "-c", "echo out; echo 'it broke' >&2; exit 3")};
	struct berth_error err = {0};

	assert_int_equal(berth_spawn_run(&s, &err), -EIO);
	assert_int_equal(s.exit_code, 3);
	assert_int_equal(s.term_signal, 0);
	assert_string_equal(s.out, "out\n");
	assert_string_equal(s.err_out, "it broke\n");
	assert_string_equal(err.msg, "\"sh\" failed (exit status 3): it broke");
	berth_error_release(&err);

	/* stderr merged into stdout: one buffer, in order */
	s.io[2] = BERTH_SPAWN_TO_STDOUT;
	assert_int_equal(berth_spawn_run(&s, &err), -EIO);
	assert_string_equal(s.out, "out\nit broke\n");
	assert_null(s.err_out);
	assert_string_equal(err.msg, "\"sh\" failed (exit status 3): out\nit broke");
	berth_error_release(&err);

	/* nothing written */
	s.argv = ARGV("false");
	assert_int_equal(berth_spawn_run(&s, &err), -EIO);
	assert_string_equal(err.msg, "\"false\" failed (exit status 1): no output");
	berth_error_release(&err);

	/* the caller decides */
	s.flags = BERTH_SPAWN_NO_CHECK;
	assert_int_equal(berth_spawn_run(&s, &err), 0);
	assert_int_equal(s.exit_code, 1);
	assert_int_equal(berth_spawn_check(&s, "the test", &err), -EIO);
	assert_string_equal(err.msg, "\"the test\" failed (exit status 1): no output");
	berth_error_release(&err);

	/* a signal */
	s.flags = 0;
	s.argv = ARGV("sh", "-c", "kill -9 $$");
	assert_int_equal(berth_spawn_run(&s, &err), -EIO);
	assert_int_equal(s.exit_code, -1);
	assert_int_equal(s.term_signal, SIGKILL);
	assert_string_equal(err.msg, "\"sh\" killed by signal 9");
	berth_error_release(&err);
	berth_spawn_release(&s);
}

/* 10 MiB on stdout and on stderr, 4 KiB kept of each: the head, a marker, the tail. */
static void test_capture_capped(void **state)
{
	struct berth_spawn s = {
		.argv = ARGV(
			"sh", "-c",
			"printf HEAD; head -c 10485760 /dev/zero | tr '\\0' x; printf TAIL;"
			"head -c 10485760 /dev/zero | tr '\\0' y >&2; echo last words >&2; exit 2"),
		.capture_max = 4096,
	};
	struct berth_error err = {0};
	char marker[64];

	assert_int_equal(berth_spawn_run(&s, &err), -EIO);
	assert_true(s.truncated);
	snprintf(marker, sizeof(marker), "\n[... %d bytes cut ...]\n", 10485760 + 8 - 4096);
	assert_int_equal(s.out_len, 4096 + strlen(marker));
	assert_memory_equal(s.out, "HEADxxxx", 8);
	assert_non_null(strstr(s.out, marker));
	assert_string_equal(s.out + s.out_len - 8, "xxxxTAIL");
	assert_int_equal(strlen(s.out), s.out_len);
	assert_true(s.err_len < 4096 + 64);
	/* the message carries the tail of stderr */
	assert_true(berth_endswith(err.msg, "last words"));
	assert_true(strlen(err.msg) < 2100);
	berth_error_release(&err);
	berth_spawn_release(&s);
}

static void test_timeout(void **state)
{
	struct berth_spawn s = {.argv = ARGV("sleep", "30"), .timeout_ms = 200};
	struct berth_error err = {0};
	int64_t t0 = ms_now();

	/* SIGTERM is enough */
	assert_int_equal(berth_spawn_run(&s, &err), -ETIMEDOUT);
	assert_true(s.timed_out);
	assert_int_equal(s.term_signal, SIGTERM);
	assert_true(ms_now() - t0 < 2000);
	assert_string_equal(err.msg, "\"sleep\" timed out after 200 ms (killed with SIGTERM)");
	berth_error_release(&err);

	/* SIGTERM ignored: SIGKILL kill_after_ms later */
	s.argv = ARGV("sh", "-c", "trap '' TERM; exec sleep 30");
	s.kill_after_ms = 300;
	t0 = ms_now();
	assert_int_equal(berth_spawn_run(&s, &err), -ETIMEDOUT);
	assert_int_equal(s.term_signal, SIGKILL);
	assert_true(ms_now() - t0 >= 500);
	assert_true(ms_now() - t0 < 3000);
	assert_string_equal(err.msg, "\"sh\" timed out after 200 ms (killed with SIGKILL)");
	berth_error_release(&err);

	/* within the deadline: untouched */
	s.argv = ARGV("true");
	assert_int_equal(berth_spawn_run(&s, &err), 0);
	assert_false(s.timed_out);
	berth_spawn_release(&s);
}

struct cancel_later {
	atomic_bool flag;
	int after_ms;
	int64_t set_at;
};

static void *cancel_in_thread(void *data)
{
	struct cancel_later *c = data;

	usleep((useconds_t)c->after_ms * 1000);
	c->set_at = ms_now();
	atomic_store(&c->flag, true);
	return NULL;
}

/* berth_spawn.cancel: a running program is stopped soon after the flag is set, one not
 * yet started is never started, and a flag left false changes nothing. */
static void test_cancel(void **state)
{
	struct cancel_later c = {.after_ms = 200};
	struct berth_spawn s = {.argv = ARGV("sleep", "30"), .cancel = &c.flag};
	struct berth_error err = {0};
	char path[] = "/tmp/berth-spawn-cancel-XXXXXX";
	pthread_t th;
	int64_t t0 = ms_now();

	/* SIGTERM is enough: ends within the poll period, well before the 30 s */
	assert_int_equal(pthread_create(&th, NULL, cancel_in_thread, &c), 0);
	assert_int_equal(berth_spawn_run(&s, &err), -ECANCELED);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(s.cancelled);
	assert_false(s.timed_out);
	assert_int_equal(s.term_signal, SIGTERM);
	assert_true(ms_now() - c.set_at < 500);
	assert_true(ms_now() - t0 < 2000);
	assert_string_equal(err.msg, "\"sleep\" cancelled");
	berth_error_release(&err);

	/* SIGTERM ignored: SIGKILL kill_after_ms later */
	atomic_store(&c.flag, false);
	s.argv = ARGV("sh", "-c", "trap '' TERM; exec sleep 30");
	s.kill_after_ms = 300;
	assert_int_equal(pthread_create(&th, NULL, cancel_in_thread, &c), 0);
	assert_int_equal(berth_spawn_run(&s, &err), -ECANCELED);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.term_signal, SIGKILL);
	assert_true(ms_now() - c.set_at >= 300);
	assert_true(ms_now() - c.set_at < 1500);
	berth_error_release(&err);

	/* already set: the program never runs */
	assert_non_null(mkdtemp(path));
	assert_int_equal(rmdir(path), 0);
	s.argv = ARGV("mkdir", path);
	assert_int_equal(berth_spawn_run(&s, &err), -ECANCELED);
	assert_true(s.cancelled);
	assert_int_equal(access(path, F_OK), -1);
	berth_error_release(&err);

	/* never set: as without a flag */
	atomic_store(&c.flag, false);
	assert_int_equal(berth_spawn_run(&s, &err), 0);
	assert_false(s.cancelled);
	assert_int_equal(rmdir(path), 0);
	berth_spawn_release(&s);
}

/* A program that exits and leaves a daemon holding its stdout is done all the same. */
static void test_exit_leaves_pipe_open(void **state)
{
	struct berth_spawn s = {.argv = ARGV("sh", "-c", "echo started; sleep 5 & exit 0")};
	int64_t t0 = ms_now();

	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "started\n");
	assert_true(ms_now() - t0 < 3000);
	berth_spawn_release(&s);
}

static void test_cannot_start(void **state)
{
	struct berth_spawn s = {.argv = ARGV("no-such-program-here")};
	struct berth_error err = {0};

	assert_int_equal(berth_spawn_run(&s, &err), -ENOENT);
	assert_string_equal(err.msg,
			    "Program \"no-such-program-here\" not found (is it installed?)");
	berth_error_release(&err);

	s.argv = ARGV("/nonexistent/prog");
	assert_int_equal(berth_spawn_run(&s, &err), -ENOENT);
	assert_string_equal(err.msg, "Cannot run \"/nonexistent/prog\": No such file or directory");
	berth_error_release(&err);

	/* not executable, then not a program */
	{
		char path[] = "/tmp/berth-test-spawn-XXXXXX";
		int fd = mkstemp(path);
		char *msg;

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "\x01\x02garbage", 9), 9);
		close(fd);
		assert_int_equal(chmod(path, 0644), 0);
		s.argv = (const char *const[]){path, NULL};
		assert_int_equal(berth_spawn_run(&s, &err), -EACCES);
		msg = berth_strdup_printf("Cannot run \"%s\": Permission denied", path);
		assert_string_equal(err.msg, msg);
		free(msg);
		berth_error_release(&err);
		assert_int_equal(chmod(path, 0755), 0);
		assert_int_equal(berth_spawn_run(&s, &err), -ENOEXEC);
		assert_non_null(strstr(err.msg, "Exec format error"));
		berth_error_release(&err);
		unlink(path);
	}

	s.argv = ARGV("true");
	s.io[2] = BERTH_SPAWN_FD;
	s.fds[2] = -1;
	assert_int_equal(berth_spawn_run(&s, &err), -EBADF);
	assert_non_null(strstr(err.msg, "\"true\""));
	berth_error_release(&err);
	berth_spawn_release(&s);
}

/* Only 0-2 (and the extra fds asked for) reach the program. */
static void test_close_on_exec(void **state)
{
	int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	struct berth_spawn s = {.argv = ARGV("sh", "-c", "ls /proc/$$/fd")};
	int p[2];

	assert_true(leak >= 0);
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "0\n1\n2\n");

	assert_int_equal(pipe(p), 0);
	s.extra_fds = (const int[]){p[1]};
	s.n_extra_fds = 1;
	s.argv = ARGV("sh", "-c", "ls /proc/$$/fd && echo via3 >&3");
	assert_int_equal(berth_spawn_run(&s, NULL), 0);
	assert_string_equal(s.out, "0\n1\n2\n3\n");
	close(p[1]);
	{
		char buf[16] = "";
		assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 5);
		assert_string_equal(buf, "via3\n");
	}
	close(p[0]);
	close(leak);
	berth_spawn_release(&s);
}

static void test_detached(void **state)
{
	int p[2], pidfd = -1;
	struct berth_spawn s = {
		.argv = ARGV("sh", "-c", "echo $$ >&1; read x; exit 7"),
		.io = {BERTH_SPAWN_FD, BERTH_SPAWN_FD, BERTH_SPAWN_NULL},
	};
	int in[2];
	pid_t pid = 0;
	char buf[32] = "";
	siginfo_t si = {0};
	struct pollfd pfd;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	s.fds[0] = in[0];
	s.fds[1] = p[1];
	assert_int_equal(berth_spawn_start(&s, &pid, &pidfd, NULL), 0);
	close(p[1]);
	close(in[0]);
	assert_true(pid > 0);
	assert_true(pidfd >= 0);
	assert_true(fcntl(pidfd, F_GETFD) & FD_CLOEXEC);
	assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
	assert_int_equal(atoi(buf), pid);
	/* still running until told */
	pfd = (struct pollfd){.fd = pidfd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 100), 0);
	assert_int_equal(write(in[1], "go\n", 3), 3);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED), 0);
	assert_int_equal(si.si_code, CLD_EXITED);
	assert_int_equal(si.si_status, 7);
	close(pidfd);
	close(in[1]);
	close(p[0]);

	/* capture makes no sense detached: DEFAULT is /dev/null; a missing program fails */
	s = (struct berth_spawn){.argv = ARGV("no-such-program-here")};
	assert_int_equal(berth_spawn_start(&s, &pid, &pidfd, NULL), -ENOENT);
}

struct thread_spawn {
	pid_t pid;
	int pidfd;
};

static void *spawn_in_thread(void *data)
{
	struct thread_spawn *t = data;
	struct berth_spawn s = {.argv = ARGV("sleep", "30"), .flags = BERTH_SPAWN_DIE_WITH_PARENT};

	if (berth_spawn_start(&s, &t->pid, &t->pidfd, NULL) < 0)
		t->pidfd = -1;
	return NULL;
}

/* BERTH_SPAWN_DIE_WITH_PARENT: the child goes with the thread that started it. */
static void test_die_with_parent(void **state)
{
	struct thread_spawn t = {0};
	pthread_t th;
	struct pollfd pfd;
	siginfo_t si = {0};

	assert_int_equal(pthread_create(&th, NULL, spawn_in_thread, &t), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(t.pidfd >= 0);
	pfd = (struct pollfd){.fd = t.pidfd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(waitid(P_PIDFD, (id_t)t.pidfd, &si, WEXITED), 0);
	assert_int_equal(si.si_code, CLD_KILLED);
	assert_int_equal(si.si_status, SIGKILL);
	close(t.pidfd);
}

static void test_program_find(void **state)
{
	char *p = NULL;

	assert_int_equal(berth_program_find("sh", &p), 0);
	assert_true(streq(p, "/usr/bin/sh") || streq(p, "/bin/sh"));
	free(p);
	assert_int_equal(berth_program_find("/some/path", &p), 0);
	assert_string_equal(p, "/some/path");
	free(p);
	assert_int_equal(berth_program_find("no-such-program-here", &p), -ENOENT);
	assert_int_equal(berth_program_find("", &p), -ENOENT);
	/* programs installed locally (apparmor_parser in /usr/local/sbin) are found too,
	 * before the distribution's */
	assert_non_null(strstr(BERTH_SPAWN_PATH, "/usr/local/sbin:/usr/local/bin:/usr/sbin"));
	/* berth's own helpers: $BERTH_<NAME> first */
	setenv("BERTH_TEST_HELPER", "/bin/true", 1);
	assert_int_equal(berth_program_find("berth-test-helper", &p), 0);
	assert_string_equal(p, "/bin/true");
	free(p);
	unsetenv("BERTH_TEST_HELPER");
	setenv("BERTH_HELPER2", "/bin/false", 1);
	assert_int_equal(berth_program_find("berth-helper2", &p), 0);
	assert_string_equal(p, "/bin/false");
	free(p);
	unsetenv("BERTH_HELPER2");
	assert_int_equal(berth_program_find("berth-test-helper", &p), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_no_shell),  cmocka_unit_test(test_env_explicit),
		cmocka_unit_test(test_stdin),	       cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_capture_capped), cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_cancel),	       cmocka_unit_test(test_exit_leaves_pipe_open),
		cmocka_unit_test(test_cannot_start),   cmocka_unit_test(test_close_on_exec),
		cmocka_unit_test(test_detached),       cmocka_unit_test(test_die_with_parent),
		cmocka_unit_test(test_program_find),
	};

	signal(SIGPIPE, SIG_IGN); /* as berthd: the children must not inherit it */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
