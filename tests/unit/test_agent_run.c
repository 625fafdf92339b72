/* tests/unit/test_agent_run.c: the real static berth-agent, run on the host over a
 * socketpair standing for the VM's virtio-serial port, driven by daemon/vm/agent_client:
 * exec (exit codes, separate streams, env, cwd, uid/gid, stdin, a pty with a resize seen
 * by `stty size`, signals, two at once), files (push/pull with mode and owner, listing,
 * symlinks, mkdir, delete), state, systemd readiness after the handshake, a peer without
 * the key or without a handshake refused, and the loader convention (the agent started
 * from a config drive's copy with no key option). Prints the exec round-trip latency.
 * Needs root (owners, uid switches): skipped otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "daemon/vm/agent_client.h"
#include "daemon/vm/config_drive.h"
#include "lib/util.h"

#define TIMEOUT 10000

static char tmpdir[64];
static char agent_bin[4096];
static uint8_t key[AGENT_KEY_LEN];

struct agent_proc {
	pid_t pid;
	int fd; /* our end */
	struct agent_client *c;
};

/* Start berth-agent on a socketpair in `cwd` with `extra` options (NULL-terminated). */
static void spawn_agent(struct agent_proc *p, const char *cwd, const char *const *extra)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		const char *argv[16] = {agent_bin, "--fd", "3"};
		/* --device first in `extra`: the agent serves that instead */
		size_t n = extra && extra[0] && !strcmp(extra[0], "--device") ? 1 : 3;

		for (size_t i = 0; extra && extra[i] && n < 15; i++)
			argv[n++] = extra[i];
		if (dup2(sv[1], 3) < 0 || (cwd && chdir(cwd) < 0))
			_exit(99);
		execv(agent_bin, (char *const *)argv);
		_exit(98);
	}
	close(sv[1]);
	p->fd = sv[0];
	p->c = NULL;
}

/* Wait for the agent to exit; its exit status. */
static int reap_agent(struct agent_proc *p)
{
	int status = -1;

	agent_client_free(p->c);
	p->c = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int setup(void **state)
{
	static struct agent_proc p;
	char keypath[128], hex[66];
	const char *b = getenv("BERTH_BUILDDIR");
	const char *extra[] = {"--key", keypath, NULL};
	struct berth_error err = {0};

	if (geteuid() != 0)
		return 0;
	snprintf(agent_bin, sizeof(agent_bin), "%s/berth-agent", b ? b : ".");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/berth-test-agent-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(chmod(tmpdir, 0755), 0); /* the uid-switched commands chdir into it */
	assert_int_equal(config_drive_new_key(key), 0);
	config_drive_key_hex(key, hex);
	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	assert_int_equal(berth_write_file_replace(keypath, hex, strlen(hex), 0600), 0);
	/* a supplementary group for the agent, that commands run as others must not keep */
	assert_int_equal(setgroups(2, (gid_t[]){0, 4321}), 0);
	spawn_agent(&p, NULL, extra);
	assert_int_equal(agent_client_new(p.fd, key, TIMEOUT, &p.c, &err), 0);
	assert_string_equal(agent_client_agent_version(p.c), BERTH_VERSION);
	*state = &p;
	return 0;
}

static int teardown(void **state)
{
	struct agent_proc *p = *state;
	char cmd[128];

	if (!p)
		return 0;
	/* the host hanging up ends the agent's session and, with --fd, the agent */
	assert_int_equal(reap_agent(p), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

#define NEED_ROOT()                                                                                \
	do {                                                                                       \
		if (!*state)                                                                       \
			skip();                                                                    \
	} while (0)

static int run(struct agent_client *c, const struct agent_exec_req *req, const char *in, char **out,
	       char **err_out)
{
	struct berth_error err = {0};
	int status = -1;

	assert_int_equal(agent_client_exec_run(c, req, in, out, err_out, &status, TIMEOUT, &err),
			 0);
	return status;
}

static void test_exec_basic(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	const char *t[] = {"true", NULL}, *f[] = {"false", NULL};
	const char *sh[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	const char *cat[] = {"cat", NULL};
	const char *missing[] = {"/nonexistent/cmd", NULL};
	struct agent_exec_req req = {.argv = t, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	char *out = NULL, *errs = NULL;
	int status;

	assert_int_equal(run(c, &req, NULL, NULL, NULL), 0);
	req.argv = f;
	assert_int_equal(run(c, &req, NULL, NULL, NULL), 1);
	req.argv = sh;
	assert_int_equal(run(c, &req, NULL, &out, &errs), 3);
	assert_string_equal(out, "out\n");
	assert_string_equal(errs, "err\n");
	free(out);
	free(errs);
	req.argv = cat;
	status = run(c, &req, "line one\nline two\n", &out, &errs);
	if (status != 0)
		fail_msg("cat: %d: %s / %s", status, out, errs);
	free(errs);
	assert_string_equal(out, "line one\nline two\n");
	free(out);
	/* 4 MiB through cat: stdin written while its output comes back, neither side
	 * blocking the other */
	{
		size_t n = 4u << 20;
		char *big = malloc(n + 1);

		assert_non_null(big);
		for (size_t i = 0; i < n; i++)
			big[i] = (char)('a' + i % 26);
		big[n] = 0;
		assert_int_equal(run(c, &req, big, &out, NULL), 0);
		assert_int_equal(strlen(out), n);
		assert_memory_equal(out, big, n);
		free(out);
		free(big);
	}
	/* a command that cannot start: the agent's error, not an exit code */
	req.argv = missing;
	assert_int_equal(agent_client_exec_run(c, &req, NULL, NULL, NULL, &status, TIMEOUT, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/cmd"));
	berth_error_release(&err);
	/* a missing working directory is named as such */
	req.argv = t;
	req.cwd = "/nonexistent/dir";
	assert_int_equal(agent_client_exec_run(c, &req, NULL, NULL, NULL, &status, TIMEOUT, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "cwd \"/nonexistent/dir\""));
	berth_error_release(&err);
}

static void test_exec_env_cwd_uid(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	const char *argv[] = {"sh", "-c", "echo \"$FOO\"; pwd; id -u; id -g; id -G", NULL};
	const char *env[] = {"FOO=bar baz", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	struct agent_exec_req req = {
		.argv = argv, .env = env, .cwd = tmpdir, .uid = 1234, .gid = 2345};
	char *out = NULL, want[256];

	assert_int_equal(run(c, &req, NULL, &out, NULL), 0);
	snprintf(want, sizeof(want), "bar baz\n%s\n1234\n2345\n2345\n", tmpdir);
	assert_string_equal(out, want);
	free(out);
	/* a uid alone: none of the agent's supplementary groups (setup gave it 4321) */
	req.gid = AGENT_ID_NONE;
	req.argv = (const char *[]){"sh", "-c", "id -u; id -G", NULL};
	assert_int_equal(run(c, &req, NULL, &out, NULL), 0);
	assert_null(strstr(out, "4321"));
	free(out);
	/* no cwd: the command's $HOME, else "/" (never the agent's own cwd) */
	req = (struct agent_exec_req){.argv = (const char *[]){"pwd", NULL},
				      .env = (const char *[]){"HOME=/tmp", NULL},
				      .uid = AGENT_ID_NONE,
				      .gid = AGENT_ID_NONE};
	assert_int_equal(run(c, &req, NULL, &out, NULL), 0);
	assert_string_equal(out, "/tmp\n");
	free(out);
	req.env = (const char *[]){"PATH=/usr/bin:/bin", NULL};
	assert_int_equal(run(c, &req, NULL, &out, NULL), 0);
	assert_string_equal(out, "/\n");
	free(out);
	/* a pty is the command's: its uid and gid, 0620 */
	req = (struct agent_exec_req){.argv = (const char *[]){"sh", "-c",
							       "stat -c %u:%g:%a \"$(tty)\"", NULL},
				      .env = env,
				      .interactive = true,
				      .uid = 1234,
				      .gid = 2345};
	assert_int_equal(run(c, &req, NULL, &out, NULL), 0);
	assert_non_null(strstr(out, "1234:2345:620"));
	free(out);
	/* no environment given: a default PATH, nothing of the agent's */
	req = (struct agent_exec_req){.argv = (const char *[]){"sh", "-c", "env | sort", NULL},
				      .uid = AGENT_ID_NONE,
				      .gid = AGENT_ID_NONE};
	assert_int_equal(run(c, &req, NULL, &out, NULL), 0);
	assert_non_null(strstr(out, "PATH=/usr/local/sbin:"));
	assert_null(strstr(out, "NOTIFY_SOCKET"));
	free(out);
}

struct pty_capture {
	struct agent_buf out;
	int exits;
	int status;
};

static void pty_output(void *data, uint32_t ch, int stream, const void *p, size_t len)
{
	struct pty_capture *cap = data;

	assert_int_equal(stream, 1); /* a pty has one stream */
	agent_buf_put(&cap->out, p, len);
}

static void pty_exit(void *data, uint32_t ch, int status)
{
	struct pty_capture *cap = data;

	cap->exits++;
	cap->status = status;
}

/* Pump until `text` shows in the capture. */
static void wait_output(struct agent_client *c, struct pty_capture *cap, const char *text)
{
	struct berth_error err = {0};

	for (int i = 0; i < 1000; i++) {
		agent_buf_u8(&cap->out, 0);
		cap->out.len--;
		if (strstr((char *)cap->out.data, text))
			return;
		assert_int_equal(agent_client_pump(c, 10, &err), 0);
	}
	fail_msg("no \"%s\" in \"%s\"", text, (char *)cap->out.data);
}

static void test_exec_interactive(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	static const struct agent_exec_cbs cbs = {.output = pty_output, .exit = pty_exit};
	const char *argv[] = {"sh", "-c", "tty; stty size; read x; stty size; echo got-$x", NULL};
	struct agent_exec_req req = {.argv = argv,
				     .uid = AGENT_ID_NONE,
				     .gid = AGENT_ID_NONE,
				     .interactive = true,
				     .cols = 80,
				     .rows = 24};
	struct pty_capture cap = {0};
	struct berth_error err = {0};
	uint32_t ch, pid = 0;
	int status = -1;

	assert_int_equal(agent_client_exec_start(c, &req, &cbs, &cap, &ch, &pid, TIMEOUT, &err), 0);
	assert_true(pid > 1);
	wait_output(c, &cap, "24 80");
	assert_non_null(strstr((char *)cap.out.data, "/dev/pts/"));
	assert_int_equal(agent_client_exec_resize(c, ch, 132, 43, &err), 0);
	assert_int_equal(agent_client_exec_stdin(c, ch, "hi\n", 3, &err), 0);
	assert_int_equal(agent_client_exec_wait(c, ch, TIMEOUT, &status, &err), 0);
	assert_int_equal(status, 0);
	assert_int_equal(cap.exits, 1);
	agent_buf_u8(&cap.out, 0);
	assert_non_null(strstr((char *)cap.out.data, "43 132"));
	assert_non_null(strstr((char *)cap.out.data, "got-hi"));
	agent_buf_release(&cap.out);
}

static void test_exec_signal(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	const char *argv[] = {"sleep", "30", NULL};
	struct agent_exec_req req = {.argv = argv, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	uint32_t ch;
	int status = -1;

	assert_int_equal(agent_client_exec_start(c, &req, NULL, NULL, &ch, NULL, TIMEOUT, &err), 0);
	/* no answer yet: a wait times out and says so, the exec stays */
	assert_int_equal(agent_client_exec_wait(c, ch, 50, &status, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "no answer in time"));
	berth_error_release(&err);
	assert_int_equal(agent_client_exec_signal(c, ch, SIGTERM, &err), 0);
	assert_int_equal(agent_client_exec_wait(c, ch, TIMEOUT, &status, &err), 0);
	assert_int_equal(status, 128 + SIGTERM);
}

struct order {
	uint32_t exited[2];
	int n;
	struct agent_buf out[2];
	uint32_t ids[2];
};

static void order_output(void *data, uint32_t ch, int stream, const void *p, size_t len)
{
	struct order *o = data;

	agent_buf_put(&o->out[ch == o->ids[0] ? 0 : 1], p, len);
}

static void order_exit(void *data, uint32_t ch, int status)
{
	struct order *o = data;

	o->exited[o->n++] = ch;
}

static void test_exec_two_at_once(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	static const struct agent_exec_cbs cbs = {.output = order_output, .exit = order_exit};
	const char *slow[] = {"sh", "-c", "read x; echo slow-$x", NULL};
	const char *fast[] = {"sh", "-c", "echo fast", NULL};
	struct agent_exec_req a = {.argv = slow, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct agent_exec_req b = {.argv = fast, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	struct order o = {0};
	int status = -1;

	assert_int_equal(agent_client_exec_start(c, &a, &cbs, &o, &o.ids[0], NULL, TIMEOUT, &err),
			 0);
	assert_int_equal(agent_client_exec_start(c, &b, &cbs, &o, &o.ids[1], NULL, TIMEOUT, &err),
			 0);
	assert_int_not_equal(o.ids[0], o.ids[1]);
	/* the second finishes while the first waits for its input */
	assert_int_equal(agent_client_exec_stdin(c, o.ids[1], NULL, 0, &err), 0);
	assert_int_equal(agent_client_exec_wait(c, o.ids[1], TIMEOUT, &status, &err), 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.exited[0], o.ids[1]);
	assert_int_equal(agent_client_exec_stdin(c, o.ids[0], "go\n", 3, &err), 0);
	assert_int_equal(agent_client_exec_stdin(c, o.ids[0], NULL, 0, &err), 0);
	assert_int_equal(agent_client_exec_wait(c, o.ids[0], TIMEOUT, &status, &err), 0);
	assert_int_equal(o.n, 2);
	agent_buf_u8(&o.out[0], 0);
	agent_buf_u8(&o.out[1], 0);
	assert_string_equal((char *)o.out[0].data, "slow-go\n");
	assert_string_equal((char *)o.out[1].data, "fast\n");
	agent_buf_release(&o.out[0]);
	agent_buf_release(&o.out[1]);
}

static int push_text(struct agent_client *c, const char *path, const char *text, uint32_t mode,
		     uint32_t uid, uint32_t gid, unsigned flags, struct berth_error *err)
{
	struct agent_file_info info = {.type = AGENT_FILE_REGULAR,
				       .mode = mode,
				       .uid = uid,
				       .gid = gid};
	int pfd[2], r;

	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(write(pfd[1], text, strlen(text)), (ssize_t)strlen(text));
	close(pfd[1]);
	r = agent_client_file_push(c, path, &info, pfd[0], flags, TIMEOUT, err);
	close(pfd[0]);
	return r;
}

static char *pull_text(struct agent_client *c, const char *path, struct agent_file_info *info)
{
	char tmpl[] = "/tmp/berth-test-pull-XXXXXX", *text = NULL;
	struct berth_error err = {0};
	int fd = mkstemp(tmpl);
	size_t n;

	assert_true(fd >= 0);
	assert_int_equal(agent_client_file_pull(c, path, fd, info, TIMEOUT, &err), 0);
	assert_int_equal(berth_read_file(tmpl, 1 << 24, &text, &n), 0);
	close(fd);
	unlink(tmpl);
	return text;
}

static void test_files(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	struct agent_file_info info = {0}, link = {.type = AGENT_FILE_SYMLINK,
						   .target = "f",
						   .mode = AGENT_ID_NONE,
						   .uid = 0,
						   .gid = 0};
	struct berth_error err = {0};
	char d[128], f[160], l[160], deep[160], buf[256];
	struct stat st;
	char *text;
	bool saw_f = false, saw_a = false;

	snprintf(d, sizeof(d), "%s/sub", tmpdir);
	snprintf(f, sizeof(f), "%s/f", d);
	snprintf(l, sizeof(l), "%s/l", d);
	snprintf(deep, sizeof(deep), "%s/a/b/c", d);
	/* mkdir: without parents it needs them; with them, owners and mode on each */
	assert_int_equal(agent_client_mkdir(c, deep, 0750, 1000, 1001, false, TIMEOUT, &err),
			 -ENOENT);
	berth_error_release(&err);
	assert_int_equal(agent_client_mkdir(c, deep, 0750, 1000, 1001, true, TIMEOUT, &err), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1001);
	snprintf(buf, sizeof(buf), "%s/a", d);
	assert_int_equal(stat(buf, &st), 0);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(agent_client_mkdir(c, deep, 0750, 0, 0, false, TIMEOUT, &err), -EEXIST);
	berth_error_release(&err);
	/* push: mode and owner; replaced whole; appended */
	assert_int_equal(push_text(c, f, "first content\n", 0640, 1001, 1002, 0, &err), 0);
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, 1001);
	assert_int_equal(st.st_gid, 1002);
	assert_int_equal(push_text(c, f, "second\n", AGENT_ID_NONE, AGENT_ID_NONE, AGENT_ID_NONE, 0,
				   &err),
			 0);
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640); /* kept */
	assert_int_equal(st.st_uid, 1001);
	/* appended: the old content and the new, renamed over it whole */
	assert_int_equal(push_text(c, f, "third\n", AGENT_ID_NONE, AGENT_ID_NONE, AGENT_ID_NONE,
				   AGENT_PUT_APPEND, &err),
			 0);
	/* pull: content and attributes */
	text = pull_text(c, f, &info);
	assert_string_equal(text, "second\nthird\n");
	free(text);
	assert_int_equal(info.type, AGENT_FILE_REGULAR);
	assert_int_equal(info.mode, 0640);
	assert_int_equal(info.uid, 1001);
	assert_int_equal(info.gid, 1002);
	assert_int_equal(info.size, 13);
	assert_true(info.mtime_s > time(NULL) - 60 && info.mtime_s <= time(NULL) + 1);
	assert_true(info.mtime_ns < 1000000000u);
	agent_file_info_release(&info);
	/* as LXD 5.0.2: owner and mode given apply to what is created, not to an existing
	 * file, unless MODIFY_PERM (newer LXD's X-LXD-modify-perm) */
	assert_int_equal(push_text(c, f, "second\nthird\n", 0600, 5, 6, 0, &err), 0);
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, 1001);
	assert_int_equal(push_text(c, f, "second\nthird\n", 0600, 5, 6, AGENT_PUT_MODIFY_PERM,
				   &err),
			 0);
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, 5);
	assert_int_equal(st.st_gid, 6);
	assert_int_equal(push_text(c, f, "second\nthird\n", 0640, 1001, 1002, AGENT_PUT_MODIFY_PERM,
				   &err),
			 0);
	/* a symlink, pushed and pulled; the same link again is fine, another is refused */
	assert_int_equal(agent_client_file_push(c, l, &link, -1, 0, TIMEOUT, &err), 0);
	assert_int_equal(readlink(l, buf, sizeof(buf)), 1);
	assert_int_equal(agent_client_file_push(c, l, &link, -1, 0, TIMEOUT, &err), 0);
	link.target = "elsewhere";
	assert_int_equal(agent_client_file_push(c, l, &link, -1, 0, TIMEOUT, &err), -EEXIST);
	berth_error_release(&err);
	link.target = "f";
	text = pull_text(c, l, &info);
	assert_int_equal(info.type, AGENT_FILE_SYMLINK);
	assert_string_equal(info.target, "f");
	free(text);
	agent_file_info_release(&info);
	/* a file pushed to the symlink is written through it, to f */
	assert_int_equal(push_text(c, l, "through\n", AGENT_ID_NONE, AGENT_ID_NONE, AGENT_ID_NONE,
				   0, &err),
			 0);
	assert_int_equal(lstat(l, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	text = pull_text(c, f, &info);
	assert_string_equal(text, "through\n");
	assert_int_equal(info.uid, 1001); /* f kept its owner */
	free(text);
	agent_file_info_release(&info);
	assert_int_equal(push_text(c, f, "second\nthird\n", AGENT_ID_NONE, AGENT_ID_NONE,
				   AGENT_ID_NONE, 0, &err),
			 0);
	/* a directory: made with its mode (0750 by default), one already there is fine,
	 * a file in the way is not */
	{
		struct agent_file_info dir = {.type = AGENT_FILE_DIRECTORY,
					      .mode = AGENT_ID_NONE,
					      .uid = 1003,
					      .gid = AGENT_ID_NONE};

		snprintf(buf, sizeof(buf), "%s/a/newdir", d);
		assert_int_equal(agent_client_file_push(c, buf, &dir, -1, 0, TIMEOUT, &err), 0);
		assert_int_equal(stat(buf, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0750);
		assert_int_equal(st.st_uid, 1003);
		assert_int_equal(agent_client_file_push(c, buf, &dir, -1, 0, TIMEOUT, &err), 0);
		assert_int_equal(rmdir(buf), 0);
		assert_int_equal(agent_client_file_push(c, f, &dir, -1, 0, TIMEOUT, &err), -EEXIST);
		berth_error_release(&err);
	}
	/* a listing: exactly what is there, no temporary file left behind */
	text = pull_text(c, d, &info);
	free(text);
	assert_int_equal(info.type, AGENT_FILE_DIRECTORY);
	assert_int_equal(info.n_entries, 3);
	for (size_t i = 0; i < info.n_entries; i++) {
		saw_f |= strcmp(info.entries[i], "f") == 0;
		saw_a |= strcmp(info.entries[i], "a") == 0;
		assert_null(strstr(info.entries[i], "berth-agent"));
	}
	assert_true(saw_f && saw_a);
	agent_file_info_release(&info);
	/* errors name the path; a missing file is 404-shaped */
	assert_int_equal(agent_client_file_pull(c, "/nonexistent/x", -1, &info, TIMEOUT, &err),
			 -ENOENT);
	assert_int_equal(err.code, BERTH_ERR_NOT_FOUND);
	assert_non_null(strstr(err.msg, "/nonexistent/x"));
	berth_error_release(&err);
	assert_int_equal(push_text(c, "/nonexistent/dir/x", "x", 0644, 0, 0, 0, &err), -ENOENT);
	berth_error_release(&err);
	assert_int_equal(agent_client_file_pull(c, "relative", -1, &info, TIMEOUT, &err), -EINVAL);
	berth_error_release(&err);
	/* delete: a file, a symlink, a non-empty directory refused */
	assert_int_equal(agent_client_file_delete(c, l, TIMEOUT, &err), 0);
	assert_int_equal(lstat(l, &st), -1);
	assert_int_equal(agent_client_file_delete(c, f, TIMEOUT, &err), 0);
	assert_int_equal(stat(f, &st), -1);
	assert_int_equal(agent_client_file_delete(c, f, TIMEOUT, &err), -ENOENT);
	berth_error_release(&err);
	snprintf(buf, sizeof(buf), "%s/a/b", d);
	assert_int_equal(agent_client_file_delete(c, buf, TIMEOUT, &err), -ENOTEMPTY);
	berth_error_release(&err);
	assert_int_equal(agent_client_file_delete(c, deep, TIMEOUT, &err), 0);
	/* the session is still good after all those errors */
	assert_int_equal(run(c,
			     &(struct agent_exec_req){.argv = (const char *[]){"true", NULL},
						      .uid = AGENT_ID_NONE,
						      .gid = AGENT_ID_NONE},
			     NULL, NULL, NULL),
			 0);
}

static void test_big_file(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	struct agent_file_info info = {.type = AGENT_FILE_REGULAR, .mode = 0600, .uid = 0, .gid = 0};
	struct berth_error err = {0};
	char src[160], dst[160], *a = NULL, *b = NULL;
	size_t n = 3 * 1024 * 1024 + 17, na, nb;
	int fd;

	snprintf(src, sizeof(src), "%s/big.src", tmpdir);
	snprintf(dst, sizeof(dst), "%s/big.dst", tmpdir);
	a = malloc(n);
	assert_non_null(a);
	for (size_t i = 0; i < n; i++)
		a[i] = (char)(i * 7 + i / 4096);
	assert_int_equal(berth_write_file_replace(src, a, n, 0600), 0);
	free(a);
	fd = open(src, O_RDONLY);
	assert_int_equal(agent_client_file_push(c, dst, &info, fd, 0, TIMEOUT, &err), 0);
	close(fd);
	assert_int_equal(berth_read_file(src, n + 1, &a, &na), 0);
	assert_int_equal(berth_read_file(dst, n + 1, &b, &nb), 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, n);
	free(a);
	free(b);
	a = pull_text(c, dst, &info);
	agent_file_info_release(&info);
	assert_int_equal(berth_read_file(src, n + 1, &b, &nb), 0);
	assert_memory_equal(a, b, n);
	free(a);
	free(b);
}

/* A file that grows while it is pulled: the host keeps the size FILE_INFO announced. */
static void test_pull_growing(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	struct agent_file_info info = {0};
	struct berth_error err = {0};
	char path[160], cmd[256];
	struct stat st;
	int fd = memfd_create("pulled", MFD_CLOEXEC);
	pid_t writer;

	snprintf(path, sizeof(path), "%s/growing", tmpdir);
	assert_int_equal(berth_write_file_replace(path, "start\n", 6, 0600), 0);
	snprintf(cmd, sizeof(cmd), "exec timeout 3 yes >>'%s'", path);
	writer = fork();
	assert_true(writer >= 0);
	if (writer == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	usleep(200 * 1000);
	assert_true(fd >= 0);
	assert_int_equal(agent_client_file_pull(c, path, fd, &info, TIMEOUT, &err), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, info.size);
	kill(writer, SIGKILL);
	waitpid(writer, NULL, 0);
	agent_file_info_release(&info);
	close(fd);
	unlink(path);
}

static bool is_mkdir(long nr)
{
#ifdef SYS_mkdir
	if (nr == SYS_mkdir)
		return true;
#endif
	return nr == SYS_mkdirat;
}

static bool is_lstat(long nr)
{
#ifdef SYS_lstat
	if (nr == SYS_lstat)
		return true;
#endif
#ifdef SYS_newfstatat
	if (nr == SYS_newfstatat)
		return true;
#endif
	return nr == SYS_statx;
}

/* A ptrace'd stand-in for a guest user writing in the directory: right after the agent's
 * successful syscall that `match` picks returns, after `skip` others, `path` is moved away and becomes a
 * symlink to `victim`, or a FIFO if `victim` is NULL. Deterministic: the agent stays
 * stopped at that syscall's exit while the swap is done. */
static pid_t swap_after(pid_t agent, bool (*match)(long), int skip, const char *path,
			const char *victim)
{
	int sync[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(sync), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct __ptrace_syscall_info si;
		char moved[256];
		long nr = -1;
		int st;

		if (ptrace(PTRACE_SEIZE, agent, 0, PTRACE_O_TRACESYSGOOD) < 0 ||
		    ptrace(PTRACE_INTERRUPT, agent, 0, 0) < 0 || waitpid(agent, &st, __WALL) < 0)
			_exit(2);
		if (write(sync[1], "r", 1) != 1 || ptrace(PTRACE_SYSCALL, agent, 0, 0) < 0)
			_exit(3);
		while (waitpid(agent, &st, __WALL) == agent && WIFSTOPPED(st)) {
			int sig = WSTOPSIG(st) == (SIGTRAP | 0x80) ? 0 : WSTOPSIG(st);

			if (WSTOPSIG(st) == SIGTRAP || sig == SIGTRAP)
				sig = 0; /* the interrupt's own stop */
			if (!sig && ptrace(PTRACE_GET_SYSCALL_INFO, agent, sizeof(si), &si) > 0) {
				if (si.op == PTRACE_SYSCALL_INFO_ENTRY)
					nr = (long)si.entry.nr;
				else if (si.op == PTRACE_SYSCALL_INFO_EXIT && si.exit.rval == 0 &&
					 match(nr) && skip-- == 0) {
					snprintf(moved, sizeof(moved), "%s.moved", path);
					if (rename(path, moved) < 0 ||
					    (victim ? symlink(victim, path) : mkfifo(path, 0600)) <
						    0)
						_exit(4);
					ptrace(PTRACE_DETACH, agent, 0, 0);
					_exit(0);
				}
			}
			if (ptrace(PTRACE_SYSCALL, agent, 0, sig) < 0)
				_exit(5);
		}
		_exit(6);
	}
	close(sync[1]);
	assert_int_equal(read(sync[0], &c, 1), 1);
	close(sync[0]);
	return pid;
}

/* Owner and mode go on the directory the agent made, by its descriptor: a symlink put in
 * its place between the mkdir and the chown leaves what the link points to as it was. */
static void test_mkdir_swapped_for_symlink(void **state)
{
	NEED_ROOT();
	struct agent_proc *p = *state;
	struct agent_file_info dir = {.type = AGENT_FILE_DIRECTORY,
				      .mode = 0777,
				      .uid = 1000,
				      .gid = 1001};
	struct berth_error err = {0};
	char victim[160], made[160];
	struct stat st;
	int status;
	pid_t tracer;

	snprintf(victim, sizeof(victim), "%s/victim", tmpdir);
	assert_int_equal(mkdir(victim, 0700), 0);
	for (int push = 0; push <= 1; push++) {
		snprintf(made, sizeof(made), "%s/made%d", tmpdir, push);
		tracer = swap_after(p->pid, is_mkdir, 0, made, victim);
		if (push)
			assert_true(agent_client_file_push(p->c, made, &dir, -1, 0, TIMEOUT, &err) <
				    0);
		else
			assert_true(agent_client_mkdir(p->c, made, 0777, 1000, 1001, false, TIMEOUT,
						       &err) < 0);
		berth_error_release(&err);
		assert_int_equal(waitpid(tracer, &status, 0), tracer);
		assert_int_equal(status, 0); /* the swap was done */
		assert_int_equal(lstat(made, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		assert_int_equal(stat(victim, &st), 0);
		assert_int_equal(st.st_uid, 0);
		assert_int_equal(st.st_gid, 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
}

/* A file pulled, or appended to, that becomes a FIFO between the agent's lstat and open
 * is refused: the agent neither blocks on it nor serves what is not that file. */
static void test_pull_swapped_for_fifo(void **state)
{
	NEED_ROOT();
	struct agent_proc *p = *state;
	struct agent_file_info info = {.type = AGENT_FILE_REGULAR, .mode = 0600, .uid = 0, .gid = 0};
	struct berth_error err = {0};
	char f[160];
	int status, fd;
	pid_t tracer;
	uint64_t t0;

	for (int push = 0; push <= 1; push++) {
		snprintf(f, sizeof(f), "%s/fifo%d", tmpdir, push);
		assert_int_equal(berth_write_file_replace(f, "x", 1, 0600), 0);
		tracer = swap_after(p->pid, is_lstat, push, f,
				    NULL) /* a push: after follow_last's */;
		t0 = berth_monotonic_ns();
		if (push) {
			fd = open("/dev/null", O_RDONLY);
			assert_int_equal(agent_client_file_push(p->c, f, &info, fd,
								AGENT_PUT_APPEND, TIMEOUT, &err),
					 -ESTALE);
			close(fd);
		} else {
			assert_int_equal(agent_client_file_pull(p->c, f, -1, &info, TIMEOUT, &err),
					 -ESTALE);
		}
		assert_true(berth_monotonic_ns() - t0 < TIMEOUT / 2 * 1000000ull);
		berth_error_release(&err);
		assert_int_equal(waitpid(tracer, &status, 0), tracer);
		assert_int_equal(status, 0);
	}
	assert_int_equal(run(p->c,
			     &(struct agent_exec_req){.argv = (const char *[]){"true", NULL},
						      .uid = AGENT_ID_NONE,
						      .gid = AGENT_ID_NONE},
			     NULL, NULL, NULL),
			 0);
}

/* stdin a command does not read: past the agent's queue, the agent's ENOBUFS reaches the
 * caller at its next stdin call. */
static void test_stdin_overflow(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	struct agent_exec_req req = {.argv = (const char *[]){"sleep", "30", NULL},
				     .uid = AGENT_ID_NONE,
				     .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	size_t n = 1 << 20;
	char *buf = calloc(1, n);
	int r = 0, status;
	uint32_t ch;

	assert_non_null(buf);
	assert_int_equal(agent_client_exec_start(c, &req, NULL, NULL, &ch, NULL, TIMEOUT, &err), 0);
	for (int i = 0; i < 40 && r >= 0; i++) {
		r = agent_client_exec_stdin(c, ch, buf, n, &err);
		if (r >= 0)
			r = agent_client_pump(c, 10, &err);
	}
	assert_int_equal(r, -ENOBUFS);
	assert_non_null(strstr(err.msg, "has not read"));
	berth_error_release(&err);
	free(buf);
	assert_int_equal(agent_client_exec_signal(c, ch, SIGKILL, &err), 0);
	assert_int_equal(agent_client_exec_wait(c, ch, TIMEOUT, &status, &err), 0);
	assert_int_equal(status, 128 + SIGKILL);
}

static void test_state(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	struct berth_error err = {0};
	struct agent_state s;
	bool lo4 = false;

	assert_int_equal(agent_client_state(c, &s, TIMEOUT, &err), 0);
	assert_true(s.mem_total > 0 && s.mem_usage > 0 && s.mem_usage <= s.mem_total);
	assert_true(s.disk_total > 0 && s.disk_usage <= s.disk_total);
	assert_true(s.processes > 1);
	assert_true(s.cpu_ns > 0);
	for (size_t i = 0; i < s.n_ifaces; i++) {
		struct agent_iface *f = &s.ifaces[i];

		if (strcmp(f->name, "lo") != 0)
			continue;
		assert_string_equal(f->type, "loopback");
		assert_string_equal(f->state, "up");
		assert_true(f->mtu > 0);
		for (size_t k = 0; k < f->n_addrs; k++)
			if (!strcmp(f->addrs[k].address, "127.0.0.1")) {
				assert_string_equal(f->addrs[k].family, "inet");
				assert_string_equal(f->addrs[k].netmask, "8");
				assert_string_equal(f->addrs[k].scope, "local");
				lo4 = true;
			}
	}
	assert_true(lo4);
	agent_state_release(&s);
}

/* A datagram socket standing for systemd's $NOTIFY_SOCKET. */
static int notify_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int notified(int fd, int timeout_ms, char *buf, size_t size)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) != 1)
		return 0;
	n = recv(fd, buf, size - 1, 0);
	assert_true(n > 0);
	buf[n] = 0;
	return 1;
}

static void test_readiness(void **state)
{
	NEED_ROOT();
	char keypath[128], sock[128], msg[64];
	const char *extra[] = {"--key", keypath, NULL};
	struct berth_error err = {0};
	struct agent_proc p;
	int nfd;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	snprintf(sock, sizeof(sock), "%s/notify", tmpdir);
	nfd = notify_socket(sock);
	setenv("NOTIFY_SOCKET", sock, 1);
	spawn_agent(&p, NULL, extra);
	unsetenv("NOTIFY_SOCKET");
	/* not ready while no host authenticated */
	assert_int_equal(notified(nfd, 300, msg, sizeof(msg)), 0);
	assert_int_equal(agent_client_new(p.fd, key, TIMEOUT, &p.c, &err), 0);
	assert_int_equal(notified(nfd, TIMEOUT, msg, sizeof(msg)), 1);
	assert_string_equal(msg, "READY=1");
	/* small: what an idle agent holds in the guest's memory */
	{
		char path[64], *status = NULL, *rss;
		size_t n;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)p.pid);
		assert_int_equal(berth_read_file(path, 1 << 16, &status, &n), 0);
		rss = strstr(status, "VmRSS:");
		assert_non_null(rss);
		printf("# berth-agent after a handshake: %.*s\n", (int)strcspn(rss, "\n"), rss);
		assert_true(strtol(rss + 6, NULL, 10) < 2048); /* kB */
		free(status);
	}
	/* the agent's 0, 1 and 2 stay open through a session (once, its channel table's
	 * zeroed fds closed fd 0) */
	for (int fd = 0; fd <= 2; fd++) {
		char path[64], target[256];

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)p.pid, fd);
		assert_true(readlink(path, target, sizeof(target)) > 0);
	}
	assert_int_equal(reap_agent(&p), 0);
	close(nfd);
	unlink(sock);
}

/* Read one frame from `fd` into `in` (blocking, with the test's timeout). */
static int read_frame(int fd, struct agent_session *s, struct agent_inbuf *in,
		      struct agent_frame *f, size_t *used)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = agent_frame_decode(s, agent_inbuf_head(in), in->len, f, used);

		if (r != -EAGAIN)
			return r;
		if (poll(&pfd, 1, TIMEOUT) != 1)
			return -ETIMEDOUT;
		r = agent_inbuf_fill(in, fd);
		if (r <= 0)
			return r == 0 ? -EPIPE : r;
	}
}

/* A handshake by hand against the agent on `fd`, recording the host's HELLO and PROOF
 * frames. With `forged` ([0] a PROOF frame, [1] a HELLO frame or empty), those are sent
 * instead, as an impostor would, and the agent's CHALLENGE is not checked: returns
 * -EPIPE when the agent then hangs up without a word, 0 when it sends anything. */
static int manual_handshake(int fd, struct agent_buf *hello, struct agent_buf *proof_out,
			    const struct agent_buf *forged)
{
	struct agent_session s;
	struct agent_inbuf in = {0};
	struct agent_buf out = {0};
	struct agent_frame f;
	size_t used = 0;
	int r;

	agent_session_init(&s, AGENT_ROLE_HOST, key);
	r = agent_hs_hello(&s, &out);
	if (hello)
		agent_buf_put(hello, out.data, out.len);
	if (forged && forged[1].len)
		r = agent_write_all(fd, forged[1].data, forged[1].len, TIMEOUT);
	else if (r >= 0)
		r = agent_write_all(fd, out.data, out.len, TIMEOUT);
	out.len = 0;
	if (r >= 0)
		r = read_frame(fd, &s, &in, &f, &used);
	if (r >= 0 && forged) {
		agent_inbuf_consume(&in, used);
		r = agent_write_all(fd, forged[0].data, forged[0].len, TIMEOUT);
		if (r >= 0) {
			r = agent_inbuf_fill(&in, fd); /* blocking: EOF or a frame */
			r = r == 0 ? -EPIPE : r < 0 ? r : 0;
		}
		goto out;
	}
	if (r >= 0)
		r = agent_hs_check_challenge(&s, f.payload, f.len, &out);
	if (r >= 0 && proof_out)
		agent_buf_put(proof_out, out.data, out.len);
	if (r >= 0)
		r = agent_write_all(fd, out.data, out.len, TIMEOUT);
	agent_inbuf_consume(&in, used);
	if (r >= 0) /* READY */
		r = read_frame(fd, &s, &in, &f, &used);
	if (r >= 0 && f.type != AGENT_T_READY)
		r = -EPROTO;
out:
	agent_buf_release(&out);
	agent_inbuf_release(&in);
	agent_session_release(&s);
	return r;
}

/* The real agent against a recorded handshake replayed, and a made-up proof. */
static void test_replay_end_to_end(void **state)
{
	NEED_ROOT();
	char keypath[128];
	const char *extra[] = {"--key", keypath, NULL};
	struct agent_buf rec[2] = {{0}}; /* [0] PROOF, [1] HELLO, as manual_handshake wants */
	struct agent_buf bogus[2] = {{0}};
	uint8_t junk[AGENT_HDR_LEN + 32] = {0, 0, 0, 37, AGENT_T_PROOF, 0, 0, 0, 0};
	struct agent_proc p;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	/* a real handshake, recorded */
	spawn_agent(&p, NULL, extra);
	assert_int_equal(manual_handshake(p.fd, &rec[1], &rec[0], NULL), 0);
	assert_int_equal(reap_agent(&p), 0);
	/* replayed to a new agent: its fresh nonce makes the old PROOF wrong */
	spawn_agent(&p, NULL, extra);
	assert_int_equal(manual_handshake(p.fd, NULL, NULL, rec), -EPIPE);
	assert_int_equal(reap_agent(&p), 1);
	/* a proof made up without the key */
	memset(junk + AGENT_HDR_LEN, 0x5a, 32);
	agent_buf_put(&bogus[0], junk, sizeof(junk));
	spawn_agent(&p, NULL, extra);
	{
		struct agent_buf hello = {0};

		assert_int_equal(manual_handshake(p.fd, &hello, NULL, bogus), -EPIPE);
		agent_buf_release(&hello);
	}
	assert_int_equal(reap_agent(&p), 1);
	agent_buf_release(&rec[0]);
	agent_buf_release(&rec[1]);
	agent_buf_release(&bogus[0]);
}

/* An authenticated session by hand, to send what agent_client never would. */
static void open_session(int fd, struct agent_session *s, struct agent_inbuf *in)
{
	struct agent_buf out = {0};
	struct agent_frame f;
	size_t used;

	agent_session_init(s, AGENT_ROLE_HOST, key);
	assert_int_equal(agent_hs_hello(s, &out), 0);
	assert_int_equal(agent_write_all(fd, out.data, out.len, TIMEOUT), 0);
	out.len = 0;
	assert_int_equal(read_frame(fd, s, in, &f, &used), 0);
	assert_int_equal(agent_hs_check_challenge(s, f.payload, f.len, &out), 0);
	agent_inbuf_consume(in, used);
	assert_int_equal(agent_write_all(fd, out.data, out.len, TIMEOUT), 0);
	assert_int_equal(read_frame(fd, s, in, &f, &used), 0);
	assert_int_equal(f.type, AGENT_T_READY);
	agent_inbuf_consume(in, used);
	agent_buf_release(&out);
}

/* Send one tagged frame; the agent's answer's type and (for ERROR) errno. */
static uint8_t ask(int fd, struct agent_session *s, struct agent_inbuf *in, uint8_t type,
		   uint32_t ch, const void *p, size_t len, uint32_t *ret_errno)
{
	struct agent_buf out = {0};
	struct agent_frame f;
	struct agent_rd rd;
	size_t used;
	uint8_t t;

	assert_int_equal(agent_frame_encode(s, &out, type, ch, p, len), 0);
	assert_int_equal(agent_write_all(fd, out.data, out.len, TIMEOUT), 0);
	agent_buf_release(&out);
	assert_int_equal(read_frame(fd, s, in, &f, &used), 0);
	assert_int_equal(f.channel, ch);
	t = f.type;
	agent_rd_init(&rd, f.payload, f.len);
	*ret_errno = t == AGENT_T_ERROR ? agent_rd_u32(&rd) : 0;
	agent_inbuf_consume(in, used);
	return t;
}

/* An authenticated host sending malformed requests gets an ERROR for each, and the
 * session goes on. */
static void test_hostile_payloads(void **state)
{
	NEED_ROOT();
	char keypath[128];
	const char *extra[] = {"--key", keypath, NULL};
	struct agent_session s;
	struct agent_inbuf in = {0};
	struct agent_buf b = {0};
	struct agent_proc p;
	uint32_t e, ch = 1;
	static const uint8_t bad_str[] = {0, 0, 0, 9, 'x', 0}, sig9[] = {0, 0, 0, 9}, one[] = {1};

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	spawn_agent(&p, NULL, extra);
	open_session(p.fd, &s, &in);
	/* EXEC: empty, truncated, no argv, a huge argc, a string running past the end */
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_EXEC, ch++, NULL, 0, &e), AGENT_T_ERROR);
	assert_int_equal(e, EBADMSG);
	agent_buf_u8(&b, 0);
	agent_buf_u32(&b, AGENT_ID_NONE);
	agent_buf_u32(&b, AGENT_ID_NONE);
	agent_buf_u16(&b, 0);
	agent_buf_u16(&b, 0);
	agent_buf_str(&b, "");
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_EXEC, ch++, b.data, b.len, &e), AGENT_T_ERROR);
	agent_buf_u32(&b, 0); /* argc 0 */
	agent_buf_u32(&b, 0);
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_EXEC, ch++, b.data, b.len, &e), AGENT_T_ERROR);
	assert_int_equal(e, EBADMSG);
	b.len -= 8;
	agent_buf_u32(&b, 0xffffffffu); /* argc: more than the payload */
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_EXEC, ch++, b.data, b.len, &e), AGENT_T_ERROR);
	b.len -= 4;
	agent_buf_u32(&b, 1);
	agent_buf_put(&b, bad_str, sizeof(bad_str));
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_EXEC, ch++, b.data, b.len, &e), AGENT_T_ERROR);
	agent_buf_release(&b);
	/* files: no path, a relative one, a bad type, a short MKDIR */
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_FILE_GET, ch++, bad_str, sizeof(bad_str), &e),
			 AGENT_T_ERROR);
	agent_buf_str(&b, "etc/passwd");
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_FILE_DELETE, ch++, b.data, b.len, &e),
			 AGENT_T_ERROR);
	assert_int_equal(e, EINVAL);
	agent_buf_release(&b);
	agent_buf_u8(&b, 9); /* type */
	agent_buf_u8(&b, 0);
	agent_buf_u32(&b, 0644);
	agent_buf_u32(&b, 0);
	agent_buf_u32(&b, 0);
	agent_buf_str(&b, "/tmp/x");
	agent_buf_str(&b, "");
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_FILE_PUT, ch++, b.data, b.len, &e),
			 AGENT_T_ERROR);
	agent_buf_release(&b);
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_MKDIR, ch++, one, 1, &e), AGENT_T_ERROR);
	/* exec controls on channels that run nothing, an unknown type, channel 0 */
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_SIGNAL, ch++, sig9, 4, &e), AGENT_T_ERROR);
	assert_int_equal(e, ENOENT);
	assert_int_equal(ask(p.fd, &s, &in, 0x7f, ch++, NULL, 0, &e), AGENT_T_ERROR);
	assert_int_equal(e, EOPNOTSUPP);
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_STATE, 0, NULL, 0, &e), AGENT_T_ERROR);
	/* still serving */
	assert_int_equal(ask(p.fd, &s, &in, AGENT_T_STATE, ch++, NULL, 0, &e), AGENT_T_STATE_REPLY);
	agent_inbuf_release(&in);
	agent_session_release(&s);
	assert_int_equal(reap_agent(&p), 0);
}

static void test_refused_peers(void **state)
{
	NEED_ROOT();
	char keypath[128], marker[128];
	const char *extra[] = {"--key", keypath, NULL};
	const char *argv[] = {"touch", marker, NULL};
	uint8_t wrong[AGENT_KEY_LEN];
	struct berth_error err = {0};
	struct agent_session s;
	struct agent_buf b = {0};
	struct agent_client *c = NULL;
	struct agent_proc p;
	struct stat st;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	snprintf(marker, sizeof(marker), "%s/pwned", tmpdir);
	/* a host with the wrong key: the agent hangs up, the host says why */
	memcpy(wrong, key, sizeof(wrong));
	wrong[0] ^= 1;
	spawn_agent(&p, NULL, extra);
	assert_int_equal(agent_client_new(p.fd, wrong, TIMEOUT, &c, &err), -EACCES);
	assert_int_equal(err.code, BERTH_ERR_FORBIDDEN);
	assert_non_null(strstr(err.msg, "not authenticated"));
	berth_error_release(&err);
	assert_int_equal(reap_agent(&p), 1);

	/* a peer that skips the handshake and asks for an exec: nothing runs */
	spawn_agent(&p, NULL, extra);
	agent_session_init(&s, AGENT_ROLE_HOST, key);
	agent_buf_u8(&b, 0);
	agent_buf_u32(&b, AGENT_ID_NONE);
	agent_buf_u32(&b, AGENT_ID_NONE);
	agent_buf_u16(&b, 0);
	agent_buf_u16(&b, 0);
	agent_buf_str(&b, "");
	agent_buf_u32(&b, 2);
	agent_buf_str(&b, argv[0]);
	agent_buf_str(&b, argv[1]);
	agent_buf_u32(&b, 0);
	{
		struct agent_buf frame = {0};

		assert_int_equal(agent_frame_encode(&s, &frame, AGENT_T_EXEC, 1, b.data, b.len), 0);
		assert_int_equal(agent_write_all(p.fd, frame.data, frame.len, TIMEOUT), 0);
		agent_buf_release(&frame);
	}
	assert_int_equal(reap_agent(&p), 1);
	assert_int_equal(stat(marker, &st), -1);
	agent_buf_release(&b);
	agent_session_release(&s);

	/* an oversized frame announced: refused at once */
	spawn_agent(&p, NULL, extra);
	assert_int_equal(agent_write_all(p.fd, "\x7f\xff\xff\xff", 4, TIMEOUT), 0);
	assert_int_equal(reap_agent(&p), 1);

	/* an agent whose key file others can read refuses to start */
	assert_int_equal(chmod(keypath, 0644), 0);
	spawn_agent(&p, NULL, extra);
	assert_int_equal(reap_agent(&p), 1);
	assert_int_equal(chmod(keypath, 0600), 0);
	/* nor one whose key file another user owns (and could have written) */
	assert_int_equal(chown(keypath, 1000, 0), 0);
	spawn_agent(&p, NULL, extra);
	assert_true(agent_client_new(p.fd, key, TIMEOUT, &p.c, &err) < 0); /* hung up */
	berth_error_release(&err);
	assert_int_equal(reap_agent(&p), 1);
	assert_int_equal(chown(keypath, 0, 0), 0);
}

/* Processes left behind that keep writing to the command's stdout do not hold the
 * EXIT back: once the command ended the agent drains a bounded amount, closes the stream
 * on them (their writes fail) and sends EXIT. */
static void count_output(void *data, uint32_t ch, int stream, const void *p, size_t len)
{
	(void)ch, (void)stream, (void)p;
	*(size_t *)data += len;
}

static void test_exec_leftover_writer(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	const char *sh[] = {"sh", "-c",
			    "for i in 1 2 3 4; do timeout 8 cat /dev/zero & done; sleep 0.1; exit 7",
			    NULL};
	struct agent_exec_req req = {.argv = sh, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	const struct agent_exec_cbs cbs = {.output = count_output};
	struct berth_error err = {0};
	struct timespec t0, t1;
	size_t bytes = 0;
	uint32_t ch;
	int status = -1;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(agent_client_exec_start(c, &req, &cbs, &bytes, &ch, NULL, TIMEOUT, &err),
			 0);
	assert_int_equal(agent_client_exec_wait(c, ch, TIMEOUT, &status, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(status, 7);
	print_message("# leftover writer: %zu bytes, %ld ms\n", bytes, ms);
	assert_true(bytes > 0);
	assert_true(ms < 5000);
}

/* A peer that trickles bytes of a frame it never finishes is refused once the whole
 * handshake's deadline passed, however often a byte arrives. */
static void test_handshake_deadline(void **state)
{
	NEED_ROOT();
	char keypath[128];
	const char *extra[] = {"--key", keypath, "--handshake-timeout", "1000", NULL};
	struct agent_proc p;
	struct timespec t0, t1;
	int status = -1;
	pid_t got = 0;
	long ms;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	spawn_agent(&p, NULL, extra);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* a frame of 64 bytes announced, then one byte every 100 ms for up to 5 s */
	assert_int_equal(agent_write_all(p.fd, "\x00\x00\x00\x40", 4, TIMEOUT), 0);
	for (int i = 0; i < 50 && got == 0; i++) {
		usleep(100 * 1000);
		(void)!send(p.fd, "x", 1, MSG_NOSIGNAL);
		got = waitpid(p.pid, &status, WNOHANG);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(got, p.pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	assert_true(ms >= 900 && ms < 3000);
	close(p.fd);
}

/* An fd the agent inherited (open without close-on-exec) reaches no command. */
static void test_inherited_fd(void **state)
{
	NEED_ROOT();
	char keypath[128];
	const char *extra[] = {"--key", keypath, NULL};
	const char *argv[] = {"sh", "-c", "test -e /proc/self/fd/57 && echo leaked || echo clean",
			      NULL};
	struct agent_exec_req req = {.argv = argv, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	struct agent_proc p;
	char *out = NULL;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	assert_int_equal(dup2(2, 57), 57); /* no O_CLOEXEC */
	spawn_agent(&p, NULL, extra);
	close(57);
	assert_int_equal(agent_client_new(p.fd, key, TIMEOUT, &p.c, &err), 0);
	assert_int_equal(run(p.c, &req, NULL, &out, NULL), 0);
	assert_string_equal(out, "clean\n");
	free(out);
	assert_int_equal(reap_agent(&p), 0);
}

/* The loader's way: a copy of the config drive as working directory, the agent run as
 * lxd-agent with no key option (here only --fd and --seed-dir, for the socketpair and so
 * that the seed lands in the test's directory). */
static void test_loader_convention(void **state)
{
	NEED_ROOT();
	char drive[128], rundir[128], seed[160], cmd[1024], *t = NULL;
	const char *extra[] = {"--seed-dir", seed, NULL};
	struct config_drive cd = {.agent_path = agent_bin,
				  .key = key,
				  .name = "v1",
				  .user_data = "#cloud-config\nhostname: v1\n"};
	struct berth_error err = {0};
	struct agent_proc p;
	char saved[4096];
	size_t n;

	snprintf(drive, sizeof(drive), "%s/drive", tmpdir);
	snprintf(rundir, sizeof(rundir), "%s/lxd_agent", tmpdir);
	snprintf(seed, sizeof(seed), "%s/seed/nocloud-net", tmpdir);
	assert_int_equal(config_drive_build(drive, &cd, &err), 0);
	/* what lxd-agent-setup does after mounting the share */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp -Ra '%s'/* '%s' && chown -R root:root '%s'",
		 rundir, drive, rundir, rundir);
	assert_int_equal(system(cmd), 0);
	snprintf(saved, sizeof(saved), "%s", agent_bin);
	snprintf(agent_bin, sizeof(agent_bin), "%s/lxd-agent", rundir);
	spawn_agent(&p, rundir, extra);
	snprintf(agent_bin, sizeof(agent_bin), "%s", saved);
	assert_int_equal(agent_client_new(p.fd, key, TIMEOUT, &p.c, &err), 0);
	/* its commands never start in its working directory (no $HOME given: "/") */
	{
		const char *argv[] = {"pwd", NULL};
		struct agent_exec_req req = {.argv = argv,
					     .uid = AGENT_ID_NONE,
					     .gid = AGENT_ID_NONE};
		char *out = NULL, want[160];

		assert_int_equal(run(p.c, &req, NULL, &out, NULL), 0);
		snprintf(want, sizeof(want), "/\n");
		assert_string_equal(out, want);
		free(out);
	}
	assert_int_equal(reap_agent(&p), 0);
	snprintf(cmd, sizeof(cmd), "%s/user-data", seed);
	assert_int_equal(berth_read_file(cmd, 4096, &t, &n), 0);
	assert_string_equal(t, "#cloud-config\nhostname: v1\n");
	free(t);
	snprintf(cmd, sizeof(cmd), "%s/meta-data", seed);
	assert_int_equal(berth_read_file(cmd, 4096, &t, &n), 0);
	assert_non_null(strstr(t, "local-hostname: \"v1\""));
	free(t);
}

/* The agent on a device, as in a guest: here a pty standing for the virtio-serial port.
 * The agent makes it raw (binary frames would not survive a line discipline), serves it,
 * and ends when the port is gone for good. */
static void test_device_pty(void **state)
{
	NEED_ROOT();
	char keypath[128], seed[128], pts[64];
	const char *extra[] = {"--device", pts, "--key", keypath, "--seed-dir", seed, NULL};
	const char *argv[] = {"sh", "-c", "printf 'a\\r\\nb\\0c'", NULL};
	struct agent_exec_req req = {.argv = argv, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	struct termios t;
	struct agent_proc p;
	char *out = NULL;
	int master, raw = 0;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	snprintf(seed, sizeof(seed), "%s/no-seed", tmpdir);
	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	assert_int_equal(ptsname_r(master, pts, sizeof(pts)), 0);
	/* spawn_agent's socketpair is not used: the agent talks on the pty */
	spawn_agent(&p, NULL, extra);
	close(p.fd);
	/* the master sees the slave's termios: wait for the agent's raw mode */
	for (int i = 0; i < 500 && !raw; i++) {
		assert_int_equal(tcgetattr(master, &t), 0);
		raw = !(t.c_lflag & (ICANON | ECHO)) && !(t.c_iflag & ICRNL) &&
		      !(t.c_oflag & OPOST);
		if (!raw)
			usleep(10000);
	}
	assert_true(raw);
	p.fd = master;
	assert_int_equal(agent_client_new(master, key, TIMEOUT, &p.c, &err), 0);
	assert_int_equal(run(p.c, &req, NULL, &out, NULL), 0);
	assert_memory_equal(out, "a\r\nb\0c", 6);
	free(out);
	/* the port goes away: the agent cannot reopen it and exits */
	assert_int_equal(reap_agent(&p), 1);
}

/* Wait until the pty's termios show the agent's raw mode. */
static void wait_raw(int master)
{
	struct termios t;

	for (int i = 0; i < 500; i++) {
		assert_int_equal(tcgetattr(master, &t), 0);
		if (!(t.c_lflag & (ICANON | ECHO)) && !(t.c_iflag & ICRNL) && !(t.c_oflag & OPOST))
			return;
		usleep(10000);
	}
	fail_msg("the agent did not make the pty raw");
}

/* The agent restarts behind a port that stays connected (systemd restarting it in a
 * guest): the old session's calls fail, and a new handshake on the same stream, retried
 * as doc/agent.md tells the VM driver, reaches the new agent. */
static void test_agent_restart(void **state)
{
	NEED_ROOT();
	char keypath[128], seed[128], pts[64];
	const char *extra[] = {"--device", pts, "--key", keypath, "--seed-dir", seed, NULL};
	const char *argv[] = {"true", NULL};
	struct agent_exec_req req = {.argv = argv, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	struct agent_client *c = NULL;
	struct agent_proc a, b;
	int master, status, r = -1;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	snprintf(seed, sizeof(seed), "%s/no-seed", tmpdir);
	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	assert_int_equal(ptsname_r(master, pts, sizeof(pts)), 0);
	spawn_agent(&a, NULL, extra);
	close(a.fd);
	wait_raw(master);
	assert_int_equal(agent_client_new(master, key, TIMEOUT, &c, &err), 0);
	assert_int_equal(agent_client_exec_run(c, &req, NULL, NULL, NULL, &status, TIMEOUT, &err),
			 0);
	/* the agent dies and another starts on the same port */
	kill(a.pid, SIGKILL);
	waitpid(a.pid, NULL, 0);
	spawn_agent(&b, NULL, extra);
	close(b.fd);
	/* the old session's call fails (the new agent refuses its frames) */
	assert_true(agent_client_exec_run(c, &req, NULL, NULL, NULL, &status, 1000, &err) < 0);
	assert_non_null(strstr(err.msg, "agent: "));
	berth_error_release(&err);
	agent_client_free(c);
	c = NULL;
	/* a new handshake, retried until it gets through */
	for (int i = 0; i < 20 && r < 0; i++) {
		r = agent_client_new(master, key, 1000, &c, &err);
		berth_error_release(&err);
		if (r < 0)
			usleep(100000);
	}
	assert_int_equal(r, 0);
	assert_int_equal(agent_client_exec_run(c, &req, NULL, NULL, NULL, &status, TIMEOUT, &err),
			 0);
	assert_int_equal(status, 0);
	agent_client_free(c);
	close(master);
	kill(b.pid, SIGKILL);
	waitpid(b.pid, NULL, 0);
}

/* The host goes away: what the agent ran is killed, and the host's calls say why. */
static void test_host_gone(void **state)
{
	NEED_ROOT();
	char keypath[128];
	const char *extra[] = {"--key", keypath, NULL};
	const char *argv[] = {"sleep", "100", NULL};
	struct agent_exec_req req = {.argv = argv, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	struct berth_error err = {0};
	struct agent_proc p;
	uint32_t ch, pid = 0;
	int status;

	snprintf(keypath, sizeof(keypath), "%s/key", tmpdir);
	spawn_agent(&p, NULL, extra);
	assert_int_equal(agent_client_new(p.fd, key, TIMEOUT, &p.c, &err), 0);
	assert_int_equal(agent_client_exec_start(p.c, &req, NULL, NULL, &ch, &pid, TIMEOUT, &err),
			 0);
	assert_int_equal(kill((pid_t)pid, 0), 0);
	assert_int_equal(reap_agent(&p), 0);
	assert_int_equal(kill((pid_t)pid, 0), -1); /* killed, and reaped by the agent */
	assert_int_equal(errno, ESRCH);

	/* the agent goes away: a call fails at once, naming it */
	spawn_agent(&p, NULL, extra);
	assert_int_equal(agent_client_new(p.fd, key, TIMEOUT, &p.c, &err), 0);
	kill(p.pid, SIGKILL);
	waitpid(p.pid, NULL, 0);
	assert_int_equal(agent_client_exec_run(p.c, &req, NULL, NULL, NULL, &status, TIMEOUT, &err),
			 -EPIPE);
	assert_non_null(strstr(err.msg, "agent: "));
	assert_non_null(strstr(err.msg, "connection closed"));
	assert_int_equal(err.code, BERTH_ERR_UNAVAILABLE);
	berth_error_release(&err);
	agent_client_free(p.c);
	close(p.fd);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* exec -- true, start to exit, over the socketpair: printed, not judged (the issue's
 * target, <= 30 ms in a VM, includes the virtio-serial hop this test lacks). */
static void test_exec_latency(void **state)
{
	NEED_ROOT();
	struct agent_client *c = ((struct agent_proc *)*state)->c;
	const char *argv[] = {"true", NULL};
	struct agent_exec_req req = {.argv = argv, .uid = AGENT_ID_NONE, .gid = AGENT_ID_NONE};
	enum { N = 200 };
	uint64_t ns[N], sum = 0;

	for (int i = 0; i < N; i++) {
		struct timespec a, b;

		clock_gettime(CLOCK_MONOTONIC, &a);
		assert_int_equal(run(c, &req, NULL, NULL, NULL), 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
			(uint64_t)a.tv_nsec;
		sum += ns[i];
	}
	qsort(ns, N, sizeof(ns[0]), cmp_u64);
	printf("# exec -- true over a socketpair, %d runs: mean %.3f ms, p50 %.3f ms, "
	       "p99 %.3f ms\n",
	       N, (double)sum / N / 1e6, (double)ns[N / 2] / 1e6, (double)ns[N * 99 / 100] / 1e6);
	/* for scale: fork, exec and wait of the same command, here, without the agent */
	sum = 0;
	for (int i = 0; i < N; i++) {
		struct timespec a, b;
		pid_t pid;

		clock_gettime(CLOCK_MONOTONIC, &a);
		pid = fork();
		if (pid == 0) {
			execlp("true", "true", (char *)NULL);
			_exit(127);
		}
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
			(uint64_t)a.tv_nsec;
		sum += ns[i];
	}
	qsort(ns, N, sizeof(ns[0]), cmp_u64);
	printf("# fork + exec + wait of true alone, %d runs: mean %.3f ms, p50 %.3f ms\n", N,
	       (double)sum / N / 1e6, (double)ns[N / 2] / 1e6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_basic),
		cmocka_unit_test(test_exec_env_cwd_uid),
		cmocka_unit_test(test_exec_interactive),
		cmocka_unit_test(test_exec_signal),
		cmocka_unit_test(test_exec_two_at_once),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_big_file),
		cmocka_unit_test(test_pull_growing),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_readiness),
		cmocka_unit_test(test_refused_peers),
		cmocka_unit_test(test_handshake_deadline),
		cmocka_unit_test(test_exec_leftover_writer),
		cmocka_unit_test(test_loader_convention),
		cmocka_unit_test(test_device_pty),
		cmocka_unit_test(test_host_gone),
		cmocka_unit_test(test_replay_end_to_end),
		cmocka_unit_test(test_hostile_payloads),
		cmocka_unit_test(test_agent_restart),
		cmocka_unit_test(test_exec_latency),
		cmocka_unit_test(test_mkdir_swapped_for_symlink),
		cmocka_unit_test(test_pull_swapped_for_fifo),
		cmocka_unit_test(test_inherited_fd),
		cmocka_unit_test(test_stdin_overflow),
	};

	/* SIGPIPE is left as it is: the client must not raise it (a dead agent) */
	return cmocka_run_group_tests(tests, setup, teardown);
}
