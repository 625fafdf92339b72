/* daemon/runtime/monitor.c: the per-container monitor (see monitor.h, doc/runtime.md).
 *
 * One process, one poll() loop: the listening socket, its clients, the console pty, a
 * pidfd of PID 1 and a signalfd. States:
 *
 *   BOOTING --(PID 1 ready, see init_ready())--> RUNNING --(stop/restart/kill)--> STOPPING
 *      |                                        |  ^                            |
 *      +--(PID 1 died: start failed)--> DONE    |  +--(reboot, restart)---------+
 *                                               +--(poweroff, exit)--> DONE <---+
 *
 * This file has the loop, its timer and signals, and the monitor's setup and detaching;
 * the rest is split by concern (monitor_internal.h): monitor_boot.c (the clone, the
 * child that becomes PID 1), monitor_request.c (the socket's clients and requests, the
 * console), monitor_exec.c (exec requests), monitor_limits.c (limits and hot-plug while
 * running), monitor_stop.c (stops, PID 1's exit, teardown, the end of a run). */
#include "daemon/runtime/monitor.h"
#include "daemon/runtime/monitor_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

void log_msg(const char *fmt, ...)
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

/* ---- timers and signals ---- */

static void on_timer(struct monitor *m)
{
	if (m->state == ST_BOOTING) {
		if (!init_ready(m) && in_grace(m)) {
			m->deadline_ns = now_ns() + READY_POLL_NS;
			return;
		}
		m->state = ST_RUNNING;
		m->deadline_ns = 0;
		report(m, "ok\n");
		log_msg("init ready after %.1f ms", (double)(now_ns() - m->exec_ns) / 1e6);
	} else if (m->state == ST_STOPPING) {
		log_msg("stop timeout, killing");
		m->killed = true;
		m->deadline_ns = 0;
		kill_init(m);
	}
}

static void on_signal(struct monitor *m)
{
	struct signalfd_siginfo si;

	if (read(m->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_msg("signal %u from pid %u", si.ssi_signo, si.ssi_pid);
	if (m->state == ST_RUNNING || m->state == ST_BOOTING)
		begin_stop(m, STOP_STOP, 30, m->stop_signal);
}

/* ---- the loop ---- */

static void loop(struct monitor *m)
{
	while (m->state != ST_DONE) {
		struct pollfd pf[4 + POLL_CLIENTS + 2 * POLL_EXECS];
		struct client *cl[POLL_CLIENTS];
		struct exec_child *ex[POLL_EXECS];
		nfds_t n = 0, nc = 0, ne = 0;
		int timeout = -1;

		pf[n++] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = m->console->master, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = m->signal_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = m->init_pidfd, .events = POLLIN};
		for (struct client *c = m->clients; c && nc < ARRAY_SIZE(cl); c = c->next) {
			cl[nc++] = c;
			pf[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
		}
		for (struct exec_child *e = m->execs; e && ne < ARRAY_SIZE(ex); e = e->next) {
			ex[ne++] = e;
			pf[n++] = (struct pollfd){.fd = e->fail_fd, .events = POLLIN};
			pf[n++] = (struct pollfd){.fd = e->pidfd, .events = POLLIN};
		}
		if (m->deadline_ns) {
			uint64_t now = now_ns();
			timeout = m->deadline_ns <= now
					  ? 0
					  : (int)((m->deadline_ns - now) / 1000000 + 1);
		}
		int r = poll(pf, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_msg("poll: %m");
			break;
		}
		if (pf[1].revents & POLLIN)
			console_output(m);
		if (pf[2].revents & POLLIN)
			on_signal(m);
		/* execs first: a client dropped below may be one of theirs */
		for (nfds_t i = 0; i < ne; i++) {
			struct pollfd *f = &pf[4 + nc + 2 * i];
			if (f[0].revents && ex[i]->fail_fd >= 0)
				exec_fail_readable(ex[i]);
			if (f[1].revents)
				exec_exited(m, ex[i]); /* may free ex[i] and drop its client */
		}
		for (nfds_t i = 0; i < nc; i++)
			if (pf[4 + i].revents && client_alive(m, cl[i]))
				client_readable(m, cl[i]);
		if (pf[0].revents & POLLIN)
			accept_client(m);
		if (m->init_pidfd >= 0 && (pf[3].revents & POLLIN)) {
			init_exited(m);
			continue;
		}
		if (m->deadline_ns && now_ns() >= m->deadline_ns)
			on_timer(m);
	}
}

/* ---- setup and detaching ---- */

static int listen_on(struct monitor *m, struct berth_error *err)
{
	_cleanup_free_ char *path = rpath(m, "monitor.sock");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (!path)
		return -ENOMEM;
	if (strlen(path) >= sizeof(sa.sun_path))
		return berth_error_set(err, -ENAMETOOLONG, BERTH_ERR_INTERNAL,
				       "socket path \"%s\" too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return berth_error_set(err, -EBUSY, BERTH_ERR_CONFLICT,
				       "a monitor already runs for %s", m->rundir);
	}
	unlink(path);
	mode_t old = umask(0177); /* the socket: 0600 */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int r = -errno;
		umask(old);
		close(fd);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "listening on %s: %s", path,
				       strerror(-r));
	}
	umask(old);
	m->listen_fd = fd;
	return 0;
}

static void monitor_free(struct monitor *m)
{
	while (m->clients)
		client_drop(m, m->clients);
	while (m->execs)
		exec_free(m, m->execs);
	berth_closep(&m->pidns_fd);
	runtime_seccomp_prog_release(&m->seccomp);
	runtime_exec_cgroups_release(&m->exec_cgroups);
	if (m->exec_stack)
		munmap(m->exec_stack, EXEC_CHILD_STACK);
	runtime_spec_free(m->spec);
	runtime_cgroup_free(m->cg);
	runtime_console_free(m->console);
	berth_closep(&m->listen_fd);
	berth_closep(&m->signal_fd);
	berth_closep(&m->report_fd);
	berth_closep(&m->init_pidfd);
	free(m->rundir);
	free(m->reason);
}

static int monitor_prepare(struct monitor *m, struct berth_error *err)
{
	_cleanup_free_ char *spec_path = rpath(m, "spec"), *log = rpath(m, "console.log");
	sigset_t mask;
	int r;

	if (!spec_path || !log)
		return -ENOMEM;
	r = runtime_spec_load(spec_path, &m->spec, err);
	if (r < 0)
		return r;
	m->have_cpus = sched_getaffinity(0, sizeof(m->cpus), &m->cpus) == 0;
	{
		_cleanup_free_ char *stopped = rpath(m, "stopped");
		if (stopped)
			unlink(stopped); /* it describes the previous run */
	}
	r = runtime_cgroup_open(m->spec->cgroup, &m->cg);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "cgroup \"%s\": %s",
				       m->spec->cgroup, strerror(-r));
	r = runtime_console_open(log, m->spec->console_log_size, &m->console);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "console: %s", strerror(-r));
	r = listen_on(m, err);
	if (r < 0)
		return r;
	m->pidns_fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (m->pidns_fd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "/proc/self/ns/pid: %m");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	m->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (m->signal_fd < 0)
		return -errno;
	m->stop_signal = detect_stop_signal(m->spec);
	write_pid_file(m, "monitor.pid", getpid());
	return 0;
}

/* The detached monitor process. Returns its exit status. */
static int monitor_main(const char *rundir, int report_fd)
{
	struct monitor m = {.listen_fd = -EBADF,
			    .signal_fd = -EBADF,
			    .report_fd = report_fd,
			    .init_pidfd = -EBADF,
			    .pidns_fd = -EBADF};
	struct berth_error err = {0};
	int r;

	m.rundir = strdup(rundir);
	if (!m.rundir)
		return 1;
	r = monitor_prepare(&m, &err);
	if (r < 0) {
		_cleanup_free_ char *stopped = rpath(&m, "stopped");
		char line[1024];
		snprintf(line, sizeof(line), "failed: %s\n", berth_error_msg(&err, r));
		if (stopped && r != -EBUSY)
			berth_write_file_replace(stopped, line, strlen(line), 0644);
		if (m.listen_fd >= 0) {
			_cleanup_free_ char *sock = rpath(&m, "monitor.sock");
			if (sock)
				unlink(sock);
		}
		report(&m, "error %s\n", berth_error_msg(&err, r));
		berth_error_release(&err);
		monitor_free(&m);
		return 1;
	}
	log_msg("monitor %d for %s", (int)getpid(), rundir);
	m.state = ST_BOOTING;
	r = boot(&m, &err);
	if (r < 0) {
		boot_failed(&m, &err, r);
	} else {
		m.deadline_ns = now_ns() + READY_POLL_NS;
		loop(&m);
	}
	berth_error_release(&err);
	monitor_free(&m);
	return 0;
}

int runtime_monitor_start(const char *rundir)
{
	char line[4096];
	size_t len = 0;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "berth-monitor: pipe: %m\n");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "berth-monitor: fork: %m\n");
		return 1;
	}
	if (pid == 0) {
		_cleanup_free_ char *logp = berth_strdup_printf("%s/monitor.log", rundir);
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
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		_exit(monitor_main(rundir, p[1]));
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], line + len, sizeof(line) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(line) - 1)
			break;
	}
	close(p[0]);
	line[len] = '\0';
	if (len >= 2 && strneq(line, "ok", 2)) {
		/* reap nothing: the monitor lives on, reparented */
		return 0;
	}
	if (len == 0)
		fprintf(stderr, "berth-monitor: the monitor exited without saying why\n");
	else
		fprintf(stderr, "berth-monitor: %s%s",
			berth_startswith(line, "error ") ? line + 6 : line,
			line[len - 1] == '\n' ? "" : "\n");
	waitpid(pid, NULL, 0);
	return 1;
}
