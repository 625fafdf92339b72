/* daemon/runtime/monitor_stop.c: how a run ends (monitor_internal.h): a stop, restart
 * or kill begun by a request or a signal (begin_stop()), PID 1's exit (init_exited():
 * a failed start, a poweroff, a kill, a reboot from inside), the teardown of its
 * processes, cgroups and NICs, the reason recorded in RUNDIR/stopped, the replies to
 * waiting clients and the one line `start` is waiting for (report()). */
#include "daemon/runtime/monitor_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/wait.h>

#include "daemon/runtime/net.h"

/* ---- starting a stop ---- */

void begin_stop(struct monitor *m, enum stop_kind kind, long timeout_s, int sig)
{
	if (m->state == ST_STOPPING) {
		if (kind == STOP_STOP)
			m->stop_kind = STOP_STOP; /* a stop wins over a pending restart */
		if (timeout_s >= 0) {
			uint64_t d = now_ns() + (uint64_t)timeout_s * 1000000000ULL;
			if (!m->deadline_ns || d < m->deadline_ns)
				m->deadline_ns = d;
		}
		if (sig == SIGKILL)
			m->deadline_ns = now_ns();
		return;
	}
	m->state = ST_STOPPING;
	m->stop_kind = kind;
	m->killed = false;
	m->deadline_ns = timeout_s < 0 ? 0 : now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	if (runtime_cgroup_is_frozen(m->cg))
		runtime_cgroup_freeze(m->cg, false);
	m->frozen = false;
	if (sig == SIGKILL) {
		m->killed = true;
		kill_init(m);
	} else if (m->init_pidfd >= 0) {
		pidfd_send_signal(m->init_pidfd, sig, NULL, 0);
	}
	log_msg("stopping with signal %d, timeout %ld s", sig, timeout_s);
}

/* ---- tearing down ---- */

void kill_init(struct monitor *m)
{
	if (m->init_pidfd >= 0)
		pidfd_send_signal(m->init_pidfd, SIGKILL, NULL, 0);
	runtime_cgroup_kill(m->cg);
}

/* Reap PID 1 (killing it if needed), empty the cgroups and remove them. */
void teardown(struct monitor *m, siginfo_t *ret)
{
	siginfo_t si = {0};

	if (m->init_pidfd >= 0) {
		if (waitid(P_PIDFD, (id_t)m->init_pidfd, &si, WEXITED | WNOHANG) < 0 ||
		    si.si_pid == 0) {
			kill_init(m);
			waitid(P_PIDFD, (id_t)m->init_pidfd, &si, WEXITED);
		}
		close(m->init_pidfd);
	}
	m->init_pidfd = -EBADF;
	m->init_pid = 0;
	runtime_exec_cgroups_release(&m->exec_cgroups);
	for (int i = 0; i < 5000 && !runtime_cgroup_is_empty(m->cg); i++) {
		if (i % 100 == 0)
			runtime_cgroup_kill(m->cg);
		usleep(1000);
	}
	for (int i = 0; i < 100 && runtime_cgroup_destroy(m->cg) < 0; i++)
		usleep(10000);
	reload_nics(m);
	runtime_net_teardown(m->spec);
	if (ret)
		*ret = si;
}

/* ---- the end of a run ---- */

void report(struct monitor *m, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	int n;

	if (m->report_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(m->report_fd, line, strlen(line)) < 0) {
		/* `start` was killed; nobody to tell */
	}
	close(m->report_fd);
	m->report_fd = -EBADF;
}

static void finish(struct monitor *m)
{
	_cleanup_free_ char *stopped = rpath(m, "stopped");
	const char *reason = m->reason ? m->reason : "poweroff";
	static const char *const files[] = {"monitor.sock", "init.pid", "monitor.pid"};
	char line[1024];

	snprintf(line, sizeof(line), "%s\n", reason);
	if (stopped)
		berth_write_file_replace(stopped, line, strlen(line), 0644);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = rpath(m, files[i]);
		if (p)
			unlink(p);
	}
	while (m->clients) {
		struct client *c = m->clients;
		if (c->kind == CL_WAIT)
			client_send(c, "ok stopped %s", reason);
		else if (c->kind == CL_STOP || c->kind == CL_RESTART)
			client_send(c, "ok %s", m->killed ? "killed" : "stopped");
		client_drop(m, c);
	}
	log_msg("container stopped: %s", reason);
	m->state = ST_DONE;
}

static void set_reason(struct monitor *m, const char *fmt, ...) _printf_(2, 3);
static void set_reason(struct monitor *m, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		return;
	for (char *p = s; *p; p++)
		if (*p == '\n')
			*p = ' ';
	free(m->reason);
	m->reason = s;
}

/* A failed (re)boot: clean up and end. */
void boot_failed(struct monitor *m, struct berth_error *err, int r)
{
	console_output(m);
	teardown(m, NULL);
	set_reason(m, "failed: %s", berth_error_msg(err, r));
	report(m, "error %s\n", berth_error_msg(err, r));
	finish(m);
}

static void reboot_container(struct monitor *m)
{
	struct berth_error err = {0};
	int r;

	log_msg("rebooting");
	m->state = ST_RUNNING;
	m->deadline_ns = 0;
	r = boot(m, &err);
	if (r < 0) {
		boot_failed(m, &err, r);
		berth_error_release(&err);
		return;
	}
	for (struct client *c = m->clients, *next; c; c = next) {
		next = c->next;
		if (c->kind == CL_RESTART) {
			client_send(c, "ok restarted %d", (int)m->init_pid);
			client_drop(m, c);
		}
	}
	m->stop_kind = STOP_NONE;
}

/* Whether PID 1 is still within start_grace_ms of its exec. */
bool in_grace(const struct monitor *m)
{
	return now_ns() < m->exec_ns + m->spec->start_grace_ms * 1000000ULL;
}

/* Readiness: PID 1 has started a process of its own (busybox init runs rcS, systemd its
 * first units), so it got past loading and its first steps. An init that never forks is
 * ready once it lived start_grace_ms. */
bool init_ready(const struct monitor *m)
{
	char path[64], buf[32];
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)m->init_pid,
		 (int)m->init_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	return n > 0;
}

void init_exited(struct monitor *m)
{
	siginfo_t si = {0};
	bool was_booting = m->state == ST_BOOTING;

	console_output(m);
	teardown(m, &si);
	if (si.si_code == CLD_EXITED)
		log_msg("init exited with status %d", si.si_status);
	else
		log_msg("init killed by signal %d", si.si_status);
	if (was_booting) {
		_cleanup_free_ char *tail = NULL;
		char what[64];
		if (si.si_code == CLD_EXITED)
			snprintf(what, sizeof(what), "init exited with status %d", si.si_status);
		else
			snprintf(what, sizeof(what), "init was killed by signal %d", si.si_status);
		runtime_console_log_tail(m->console, 2048, &tail);
		for (char *p = tail; p && *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		set_reason(m, "failed: %s", what);
		report(m, "error %s; console: %s\n", what, tail ? tail : "");
		finish(m);
		return;
	}
	bool sig = si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED;
	if (m->stop_kind == STOP_NONE && !sig && in_grace(m)) {
		/* ready (it had started a process) but gone within the grace period: the
		 * start was reported, the failure is recorded */
		_cleanup_free_ char *tail = NULL;
		runtime_console_log_tail(m->console, 2048, &tail);
		for (char *p = tail; p && *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		set_reason(m,
			   "failed: init exited with status %d right after the start; console: %s",
			   si.si_status, tail ? tail : "");
		finish(m);
		return;
	}
	if (m->stop_kind == STOP_RESTART ||
	    (m->stop_kind == STOP_NONE && sig && si.si_status == SIGHUP)) {
		reboot_container(m);
		return;
	}
	if (m->killed || (sig && si.si_status == SIGKILL)) {
		m->killed = true;
		set_reason(m, "killed");
	} else {
		set_reason(m, "poweroff");
	}
	finish(m);
}
