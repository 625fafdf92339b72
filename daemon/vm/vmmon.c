/* daemon/vm/vmmon.c: berth-vmmon, the per-VM process that holds the berth-agent session
 * (doc/vm.md, "berth-vmmon"; doc/agent.md for the protocol).
 *
 *   berth-vmmon start RUNDIR
 *
 * QEMU's chardev socket of the agent's port (RUNDIR/agent.socket) takes one client at a
 * time, and one authenticated session runs on it; berthd needs many execs, transfers and
 * state queries at once, and the session must outlive berthd (QEMU does). So this process
 * owns the session and serves berthd on RUNDIR/monitor.sock with the line protocol of a
 * container's berth-monitor (doc/runtime.md), its `exec` request unchanged.
 *
 * One process, one poll() loop, no thread: the listening socket, its clients, the execs'
 * stdin and (when a reader lags) stdout/stderr, QEMU's pidfd, and the agent's stream.
 * The agent client is synchronous: a handshake attempt or a call blocks the loop for its
 * own timeout at most (VMMON_HANDSHAKE_MS while the guest boots; meanwhile requests wait).
 *
 *   CONNECTING --(handshake)--> READY --(the session fails: EOF, a broken or unanswered
 *       ^  |                                call)--+
 *       |  +--(failed: retried every VMMON_RETRY_MS, logged once per kind) |
 *       +------------------------------------------------------------------+
 *   any state --(QEMU's process ends, agent.socket is removed, SIGTERM)--> exit
 *
 * This file: the command line, detaching, the key, the loop and the session; requests in
 * vmmon_request.c, execs in vmmon_exec.c. */
#include "daemon/vm/vmmon_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "lib/util.h"

void vmmon_log(const char *fmt, ...)
{
	char ts[BERTH_RFC3339_MAX];
	va_list ap;

	berth_now_rfc3339(ts);
	fprintf(stderr, "%s ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static char *rpath(const struct vmmon *m, const char *name)
{
	return berth_strdup_printf("%s/%s", m->rundir, name);
}

/* ---- setup ---- */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RUNDIR/agent.key: 64 lowercase hex digits and a newline, ours and private. */
static int read_key(struct vmmon *m, const char **why)
{
	_cleanup_free_ char *path = rpath(m, "agent.key");
	_cleanup_close_ int fd = -EBADF;
	char buf[2 * AGENT_KEY_LEN + 2];
	struct stat st;
	ssize_t n;

	fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -ENOMEM;
	if (fd < 0 || fstat(fd, &st) < 0) {
		*why = "cannot read agent.key";
		return -errno;
	}
	if ((st.st_mode & 077) || st.st_uid != geteuid() || !S_ISREG(st.st_mode)) {
		*why = "agent.key is not a file of ours that only we can read";
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf));
	if (n != (ssize_t)sizeof(buf) - 1 || buf[sizeof(buf) - 2] != '\n')
		goto bad;
	for (size_t i = 0; i < AGENT_KEY_LEN; i++) {
		int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
		if (hi < 0 || lo < 0)
			goto bad;
		m->key[i] = (uint8_t)(hi << 4 | lo);
	}
	explicit_bzero(buf, sizeof(buf));
	return 0;
bad:
	explicit_bzero(buf, sizeof(buf));
	*why = "agent.key is not 64 hex digits and a newline";
	return -EINVAL;
}

/* A pidfd of QEMU (RUNDIR/qemu.pid): its end is ours. */
static int open_qemu(struct vmmon *m, const char **why)
{
	_cleanup_free_ char *path = rpath(m, "qemu.pid"), *text = NULL;
	long pid;
	char *end = NULL;
	int fd;

	if (!path || berth_read_file(path, 64, &text, NULL) < 0) {
		*why = "cannot read qemu.pid";
		return -ESRCH;
	}
	pid = strtol(text, &end, 10);
	if (pid <= 0 || pid > INT32_MAX || (*end && *end != '\n')) {
		*why = "qemu.pid holds no pid";
		return -EINVAL;
	}
	fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0) {
		*why = "QEMU is not running";
		return -ESRCH;
	}
	m->qemu_pidfd = fd;
	return 0;
}

/* Bind RUNDIR/monitor.sock (a stale one from a vmmon that died is replaced: the caller
 * holds the lock that says none runs). */
static int listen_socket(struct vmmon *m, const char **why)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/monitor.sock", m->rundir) >=
	    sizeof(sa.sun_path)) {
		*why = "the run directory's path is too long";
		return -ENAMETOOLONG;
	}
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		/* 0600 from the bind on: no window where another user could connect */
		mode_t old = umask(0177);
		int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));

		umask(old);
		if (b < 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0 || listen(fd, 64) < 0) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		*why = "cannot listen on monitor.sock";
		return r;
	}
	m->listen_fd = fd;
	return 0;
}

/* ---- the session ---- */

static void close_agent(struct vmmon *m)
{
	agent_client_free(m->agent);
	m->agent = NULL;
	berth_closep(&m->agent_fd);
	m->agent_fd = -EBADF;
}

void vmmon_session_lost(struct vmmon *m, const char *why)
{
	vmmon_log("agent session lost: %s", why);
	while (m->execs)
		vmmon_exec_abort(m, m->execs);
	close_agent(m);
	m->next_try_ns = berth_monotonic_ns() + VMMON_RETRY_MS * 1000000ULL;
}

/* Log an attempt's failure the first time it fails that way, then once a minute. */
static void attempt_failed(struct vmmon *m, const char *msg)
{
	uint64_t now = berth_monotonic_ns();

	if (m->last_fail && streq(m->last_fail, msg)) {
		m->fails++;
		if (now - m->fail_logged_ns < 60000000000ULL)
			return;
		vmmon_log("still failing (%u attempts): %s", m->fails, msg);
	} else {
		free(m->last_fail);
		m->last_fail = strdup(msg);
		vmmon_log("%s", msg);
	}
	m->fails = 0;
	m->fail_logged_ns = now;
}

static int connect_agent(struct vmmon *m)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/agent.socket", m->rundir);
	/* non-blocking: QEMU accepts one client at a time, and a full backlog behind
	 * another client must not hold the loop (EAGAIN: tried again later) */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	m->agent_fd = fd;
	return 0;
}

/* One attempt: connect if needed, then a handshake. A peer that hung up is reconnected
 * to at the next attempt; one that did not answer in time keeps the connection (a
 * virtio-serial port's agent reads the HELLOs queued meanwhile, doc/agent.md). */
static void try_session(struct vmmon *m)
{
	struct berth_error err = {0};
	int r;

	m->next_try_ns = berth_monotonic_ns() + VMMON_RETRY_MS * 1000000ULL;
	if (m->agent_fd < 0) {
		r = connect_agent(m);
		if (r == -ENOENT) {
			vmmon_log("agent.socket is gone: QEMU stopped");
			m->done = true;
			return;
		}
		if (r < 0) {
			_cleanup_free_ char *msg =
				berth_strdup_printf("agent: connecting to agent.socket: %s",
						    strerror(-r));
			attempt_failed(m, msg ? msg : "agent: connecting to agent.socket");
			return;
		}
	}
	r = agent_client_new(m->agent_fd, m->key, VMMON_HANDSHAKE_MS, &m->agent, &err);
	if (r < 0) {
		attempt_failed(m, berth_error_msg(&err, r));
		berth_error_release(&err);
		if (r != -ETIMEDOUT)
			close_agent(m);
		return;
	}
	vmmon_log("agent ready: %s", agent_client_agent_version(m->agent));
	m->next_probe_ns = berth_monotonic_ns() + VMMON_PROBE_MS * 1000000ULL;
	free(m->last_fail);
	m->last_fail = NULL;
	m->fails = 0;
}

/* ---- the loop ---- */

/* What the stream has, frame by frame (up to a batch: the loop comes back for more). */
static void pump_agent(struct vmmon *m)
{
	for (int i = 0; i < 64; i++) {
		struct berth_error err = {0};
		int r = agent_client_pump(m->agent, 0, &err);

		if (r < 0)
			vmmon_session_lost(m, berth_error_msg(&err, r));
		berth_error_release(&err);
		if (r < 0 || !agent_client_has_frame(m->agent))
			return;
	}
}

/* Ask the agent for its state: no answer in time means it is gone. */
static void probe(struct vmmon *m)
{
	struct berth_error err = {0};
	struct agent_state st = {0};
	int r = agent_client_state(m->agent, &st, VMMON_PROBE_TIMEOUT_MS, &err);

	agent_state_release(&st);
	m->next_probe_ns = berth_monotonic_ns() + VMMON_PROBE_MS * 1000000ULL;
	if (r < 0 && (r == -ETIMEDOUT || agent_client_broken(m->agent))) {
		_cleanup_free_ char *why = berth_strdup_printf("probe: %s",
							       berth_error_msg(&err, r));
		vmmon_session_lost(m, why ? why : "probe failed");
	}
	berth_error_release(&err);
}

static int poll_timeout(struct vmmon *m, bool *ret_pump)
{
	uint64_t now = berth_monotonic_ns();
	int timeout = -1, left;

	*ret_pump = false;
	if (!m->agent) {
		timeout = m->next_try_ns <= now ? 0 : (int)((m->next_try_ns - now) / 1000000 + 1);
		return timeout;
	}
	*ret_pump = vmmon_exec_may_pump(m, &timeout);
	if (*ret_pump && agent_client_has_frame(m->agent))
		timeout = 0; /* read already, by a call: the fd will not say so */
	left = m->next_probe_ns <= now ? 0 : (int)((m->next_probe_ns - now) / 1000000 + 1);
	return timeout < 0 || left < timeout ? left : timeout;
}

static bool exec_alive(const struct vmmon *m, const struct vmmon_exec *e)
{
	for (const struct vmmon_exec *x = m->execs; x; x = x->next)
		if (x == e)
			return true;
	return false;
}

static bool client_alive(const struct vmmon *m, const struct vmmon_client *c)
{
	for (const struct vmmon_client *x = m->clients; x; x = x->next)
		if (x == c)
			return true;
	return false;
}

/* An exec's three poll entries: its stdin, and each output fd with bytes waiting. */
static void exec_pollfds(const struct vmmon_exec *e, struct pollfd *pf)
{
	pf[0] = (struct pollfd){.fd = e->in_fd, .events = POLLIN};
	for (int k = 0; k < 2; k++)
		pf[1 + k] = (struct pollfd){.fd = e->out[k].len && !e->out[k].closed ? e->out_fd[k]
										     : -1,
					    .events = POLLOUT};
}

/* What poll() said, handled; the lists may change under us: each entry is checked. */
static void dispatch(struct vmmon *m, struct pollfd *pf, struct vmmon_client **cl, nfds_t nc,
		     struct vmmon_exec **ex, nfds_t ne)
{
	if (!m->agent && m->next_try_ns <= berth_monotonic_ns())
		try_session(m);
	else if (m->agent && pf[3].fd >= 0 && (pf[3].revents || agent_client_has_frame(m->agent)))
		pump_agent(m);
	if (m->agent && m->next_probe_ns <= berth_monotonic_ns())
		probe(m);
	for (nfds_t i = 0; i < ne; i++) {
		struct pollfd *in = &pf[4 + nc + 3 * i];
		if (!exec_alive(m, ex[i]))
			continue;
		if (in[0].revents)
			vmmon_exec_input(m, ex[i]);
		if ((in[1].revents || in[2].revents) && exec_alive(m, ex[i]))
			vmmon_exec_flush(m, ex[i]);
	}
	for (nfds_t i = 0; i < nc; i++)
		if (pf[4 + i].revents && client_alive(m, cl[i]))
			vmmon_client_readable(m, cl[i]);
	if (pf[0].revents & POLLIN)
		vmmon_accept(m);
}

static void loop(struct vmmon *m, int signal_fd)
{
	while (!m->done) {
		struct pollfd pf[4 + VMMON_POLL_CLIENTS + 3 * VMMON_POLL_EXECS];
		struct vmmon_client *cl[VMMON_POLL_CLIENTS];
		struct vmmon_exec *ex[VMMON_POLL_EXECS];
		nfds_t n = 0, nc = 0, ne = 0;
		bool pump;
		int timeout = poll_timeout(m, &pump);

		pf[n++] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = m->qemu_pidfd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = signal_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = pump ? m->agent_fd : -1, .events = POLLIN};
		for (struct vmmon_client *c = m->clients; c && nc < ARRAY_SIZE(cl); c = c->next) {
			cl[nc++] = c;
			pf[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
		}
		for (struct vmmon_exec *e = m->execs; e && ne < ARRAY_SIZE(ex); e = e->next) {
			ex[ne++] = e;
			exec_pollfds(e, &pf[n]);
			n += 3;
		}
		if (poll(pf, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			vmmon_log("poll: %m");
			return;
		}
		if (pf[1].revents) {
			vmmon_log("QEMU exited");
			return;
		}
		if (pf[2].revents) {
			vmmon_log("signalled: exiting");
			return;
		}
		dispatch(m, pf, cl, nc, ex, ne);
	}
}

/* ---- start ---- */

/* Lock RUNDIR/vmmon.pid: -EEXIST when another vmmon holds it (it runs). */
static int take_lock(struct vmmon *m, int *ret_fd)
{
	_cleanup_free_ char *path = rpath(m, "vmmon.pid");
	_cleanup_close_ int fd = -EBADF;
	char pid[24];
	int n;

	fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600) : -ENOMEM;
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EEXIST : -errno;
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void report(int fd, const char *fmt, ...) _printf_(2, 3);
static void report(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, line, strnlen(line, sizeof(line))) < 0) {
		/* `start` gave up waiting */
	}
	close(fd);
}

/* The detached process: lock, key, QEMU, socket, "ok" to `start`, then the loop. */
static int vmmon_main(const char *rundir, int report_fd)
{
	struct vmmon m = {.listen_fd = -EBADF, .qemu_pidfd = -EBADF, .agent_fd = -EBADF};
	_cleanup_close_ int lock_fd = -EBADF, signal_fd = -EBADF;
	_cleanup_free_ char *sock = NULL, *pidf = NULL;
	const char *why = "out of memory";
	int r;

	m.rundir = strdup(rundir);
	if (!m.rundir)
		goto fail;
	r = take_lock(&m, &lock_fd);
	if (r == -EEXIST) {
		report(report_fd, "ok already running\n");
		free(m.rundir);
		return 0;
	}
	why = "cannot lock vmmon.pid";
	if (r < 0 || read_key(&m, &why) < 0 || open_qemu(&m, &why) < 0 ||
	    listen_socket(&m, &why) < 0)
		goto fail;
	signal_fd = signals();
	vmmon_log("berth-vmmon %s started for %s", BERTH_VERSION, rundir);
	report(report_fd, "ok\n");
	loop(&m, signal_fd);
	sock = rpath(&m, "monitor.sock");
	pidf = rpath(&m, "vmmon.pid");
	if (sock)
		unlink(sock);
	if (pidf)
		unlink(pidf);
	while (m.execs)
		vmmon_exec_abort(&m, m.execs);
	while (m.clients)
		vmmon_client_drop(&m, m.clients);
	close_agent(&m);
	explicit_bzero(m.key, sizeof(m.key));
	berth_closep(&m.listen_fd);
	berth_closep(&m.qemu_pidfd);
	free(m.last_fail);
	free(m.rundir);
	vmmon_log("exiting");
	return 0;
fail:
	vmmon_log("cannot start: %s", why);
	report(report_fd, "error %s\n", why);
	pidf = lock_fd >= 0 ? rpath(&m, "vmmon.pid") : NULL;
	if (pidf) /* ours: nobody runs */
		unlink(pidf);
	explicit_bzero(m.key, sizeof(m.key));
	berth_closep(&m.qemu_pidfd);
	free(m.rundir);
	return 1;
}

/* `start`: fork the detached process and wait for its first line. */
static int vmmon_start_cmd(const char *rundir)
{
	char line[600];
	size_t len = 0;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "berth-vmmon: %m\n");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "berth-vmmon: %m\n");
		close(p[0]);
		close(p[1]);
		return 1;
	}
	if (pid == 0) {
		_cleanup_free_ char *logp = berth_strdup_printf("%s/vmmon.log", rundir);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int logfd = logp ? open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;

		close(p[0]);
		setsid();
		if (null >= 0) {
			dup2(null, 0);
			dup2(logfd >= 0 ? logfd : null, 1);
			dup2(logfd >= 0 ? logfd : null, 2);
		}
		signal(SIGPIPE, SIG_IGN);
		if (chdir("/") < 0) {
			/* "/" always exists */
		}
		/* nothing inherited stays open in a process that lives on (it execs nothing) */
		if (p[1] > 3)
			close_range(3, (unsigned)p[1] - 1, 0);
		close_range((unsigned)p[1] + 1, ~0U, 0);
		_exit(vmmon_main(rundir, p[1]));
	}
	close(p[1]);
	for (ssize_t n; len < sizeof(line) - 1; len += (size_t)n) {
		n = read(p[0], line + len, sizeof(line) - 1 - len);
		if (n < 0 && errno == EINTR)
			n = 0;
		else if (n <= 0)
			break;
	}
	close(p[0]);
	line[len] = '\0';
	if (berth_startswith(line, "ok"))
		return 0; /* it lives on, reparented */
	fprintf(stderr, "berth-vmmon: %s%s", len ? line : "it exited without saying why",
		len && line[len - 1] == '\n' ? "" : "\n");
	waitpid(pid, NULL, 0);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 2 && streq(argv[1], "--version")) {
		printf("berth-vmmon %s\n", BERTH_VERSION);
		return 0;
	}
	if (argc == 3 && streq(argv[1], "start"))
		return vmmon_start_cmd(argv[2]);
	fputs("Usage: berth-vmmon start RUNDIR\n"
	      "       berth-vmmon --version\n"
	      "\n"
	      "start: hold the berth-agent session of the VM whose QEMU runs in RUNDIR and\n"
	      "       serve RUNDIR/monitor.sock (doc/vm.md).\n",
	      argc == 2 && streq(argv[1], "--help") ? stdout : stderr);
	return argc == 2 && streq(argv[1], "--help") ? 0 : 2;
}
