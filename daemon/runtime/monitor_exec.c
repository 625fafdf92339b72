/* daemon/runtime/monitor_exec.c: `exec` requests (monitor_internal.h). The monitor runs
 * the command without a helper process: it forks it straight into the container's pid
 * namespace (exec_start()), the child joins the cgroups and the other namespaces and
 * execs; its pidfd and a close-on-exec pipe are watched by the loop, which reports
 * "started", "failed" and "exit" to the client. */
#include "daemon/runtime/monitor_internal.h"
#include "daemon/runtime/exec_words.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

void exec_free(struct monitor *m, struct exec_child *e)
{
	for (struct exec_child **p = &m->execs; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	if (e->client)
		e->client->exec = NULL;
	berth_closep(&e->pidfd);
	berth_closep(&e->fail_fd);
	free(e);
}

/* What the child of an exec request needs, made by the monitor before the clone. */
struct exec_child_args {
	struct monitor *m;
	const int *stdio; /* 3 */
	const struct runtime_exec_opts *o;
	int fail_fd;
	const struct runtime_exec_cgroups *cgroups;
	char **env;
	int ns_flags;
	bool pinned;
};

/* The child: stdio from the request, every signal back to its default, the container's
 * cgroups, then its namespaces (the pid one it was born into). It may share the
 * monitor's memory (see exec_start): it allocates nothing and changes no global. */
static int exec_child_main(void *data)
{
	const struct exec_child_args *a = data;
	int r;

	/* Born on the monitor's CPU (see exec_clone): the command may run anywhere it may
	 * (joining the cpuset cgroup then narrows it to the container's CPUs) */
	if (a->pinned)
		sched_setaffinity(0, sizeof(a->m->cpus), &a->m->cpus);
	/* The monitor handles no signal and ignores only SIGPIPE (the rest are blocked for its
	 * signalfd; the mask is reset before the exec) */
	signal(SIGPIPE, SIG_DFL);
	for (int i = 0; i < 3; i++)
		if (dup2(a->stdio[i], i) < 0)
			runtime_exec_fail(a->fail_fd, 1, errno, "stdio");
	r = runtime_exec_cgroups_enter(a->cgroups);
	if (r < 0)
		runtime_exec_fail(a->fail_fd, 1, -r, "joining the container's cgroups");
	if (setns(a->m->init_pidfd, a->ns_flags) < 0)
		runtime_exec_fail(a->fail_fd, 1, errno, "joining the container's namespaces");
	runtime_exec_child(a->o, a->m->spec, a->m->seccomp_ready ? &a->m->seccomp : NULL, a->env,
			   a->fail_fd);
}

/* Start exec_child_main() in the container's pid namespace (joined by the caller). With
 * a compiled seccomp filter and no AppArmor profile to apply, the child shares our memory
 * (berth_spawn_shared_on): a fork would copy the page tables and fault on every page either
 * side then writes, which costs about a millisecond here. */
static pid_t exec_clone(struct exec_child_args *a)
{
	bool share = a->m->seccomp_ready &&
		     !(a->m->spec->apparmor_profile && runtime_apparmor_enabled()) &&
		     !berth_test_flag("BERTH_TEST_EXEC_FORK");
	pid_t pid = -1;

	if (share && !a->m->exec_stack)
		a->m->exec_stack = berth_spawn_stack_new(EXEC_CHILD_STACK);
	if (share && a->m->exec_stack) {
		/* The child is born on this CPU, where we sleep until it exec'd: waking another
		 * CPU for it costs more here than the two affinity changes */
		int cpu = sched_getcpu();
		cpu_set_t one;

		CPU_ZERO(&one);
		if (a->m->have_cpus && cpu >= 0 && cpu < CPU_SETSIZE) {
			CPU_SET(cpu, &one);
			a->pinned = sched_setaffinity(0, sizeof(one), &one) == 0;
		}
		pid = berth_spawn_shared_on(exec_child_main, a, a->m->exec_stack, EXEC_CHILD_STACK);
		if (a->pinned) {
			int e = errno;
			sched_setaffinity(0, sizeof(a->m->cpus), &a->m->cpus);
			errno = e;
		}
		if (pid > 0)
			return pid;
	}
	if (!a->m->exec_forks_logged) {
		log_msg("exec: forking each command (%s)",
			!share		  ? "no compiled filter, AppArmor or a test"
			: errno == ENOSYS ? "an AddressSanitizer build"
					  : "no shared-memory child");
		a->m->exec_forks_logged = true;
	}
	pid = fork();
	if (pid == 0)
		_exit(exec_child_main(a));
	return pid;
}

/* Fork the command of `c`'s request into the container. 0, or -errno with `why` set. */
static int exec_start(struct monitor *m, struct client *c, const struct runtime_exec_opts *o,
		      const char **why)
{
	struct exec_child_args a = {
		.m = m,
		.stdio = c->fds,
		.o = o,
		.ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
			    CLONE_NEWCGROUP,
	};
	struct exec_child *e;
	int p[2], pidfd, r;
	pid_t pid;

	if (m->init_pidfd < 0 || (m->state != ST_RUNNING && m->state != ST_STOPPING)) {
		*why = "the container is not running";
		return -ESRCH;
	}
	if (m->frozen) { /* its command would join a frozen cgroup and wait there */
		*why = "the container is frozen";
		return -EBUSY;
	}
	runtime_cap_last(); /* read once here, cached for the child */
	if (!runtime_exec_same_userns(m->init_pid))
		a.ns_flags |= CLONE_NEWUSER;
	r = runtime_exec_cgroups_update(&m->exec_cgroups, m->init_pid);
	a.cgroups = &m->exec_cgroups;
	if (r < 0) {
		*why = "reading the container's cgroups";
		return r;
	}
	a.env = runtime_exec_env(o);
	e = a.env ? calloc(1, sizeof(*e)) : NULL;
	if (!e) {
		runtime_strv_free(a.env);
		*why = "out of memory";
		return -ENOMEM;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		runtime_strv_free(a.env);
		free(e);
		*why = "pipe";
		return r;
	}
	a.fail_fd = p[1];
	/* Children are born in the container's pid namespace until we come back to ours:
	 * nothing else forks in between. */
	if (setns(m->init_pidfd, CLONE_NEWPID) < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		runtime_strv_free(a.env);
		free(e);
		*why = "joining the container's pid namespace";
		return r;
	}
	pid = exec_clone(&a);
	r = pid < 0 ? -errno : 0;
	if (setns(m->pidns_fd, CLONE_NEWPID) < 0)
		log_msg("returning to our pid namespace: %m");
	runtime_strv_free(a.env);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		free(e);
		*why = "fork";
		return r;
	}
	/* our child: its pid cannot be reused before we reap it */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	e->pid = pid;
	e->pidfd = pidfd;
	e->fail_fd = p[0];
	e->client = c;
	e->next = m->execs;
	m->execs = e;
	c->exec = e;
	client_keep(c, CL_EXEC);
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
	c->len = 0;
	if (pidfd < 0) { /* cannot watch it: it must not run unseen */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		exec_free(m, e);
		*why = "pidfd_open";
		return -EIO;
	}
	return 0;
}

/* The command exec'd (EOF) or said why it could not. */
void exec_fail_readable(struct exec_child *e)
{
	struct runtime_exec_failure f;
	ssize_t n;

	do
		n = read(e->fail_fd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	close(e->fail_fd);
	e->fail_fd = -EBADF;
	if (!e->client)
		return;
	if (n == (ssize_t)sizeof(f)) {
		f.msg[sizeof(f.msg) - 1] = '\0';
		for (char *q = f.msg; *q; q++)
			if (*q == '\n')
				*q = ' ';
		client_send(e->client, "failed %s", f.msg);
	} else {
		client_send(e->client, "started %d", (int)e->pid);
	}
}

void exec_exited(struct monitor *m, struct exec_child *e)
{
	siginfo_t si = {0};

	if (waitid(P_PIDFD, (id_t)e->pidfd, &si, WEXITED | WNOHANG) < 0) {
		if (errno == EINTR)
			return;
	} else if (si.si_pid == 0) {
		return; /* not yet */
	}
	if (e->fail_fd >= 0)
		exec_fail_readable(e); /* "started" or "failed" comes before "exit" */
	if (e->client) {
		struct client *c = e->client;
		client_send(c, "exit %d",
			    si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
		exec_free(m, e);
		client_drop(m, c);
		return;
	}
	exec_free(m, e);
}

/* "exec WORD..." with three fds: the words are `berth-monitor exec`'s options after
 * RUNDIR, each %-escaped. */
void handle_exec(struct monitor *m, struct client *c, char *words)
{
	struct runtime_exec_opts o = {.rundir = m->rundir, .status_fd = -1};
	_cleanup_free_ char **argv = NULL;
	const char *why = "bad request";
	size_t n = 0;
	int r = -EINVAL;

	if (runtime_words_split(words, &argv, &n) < 0)
		goto fail;
	if (c->nfds != 3 || n > INT_MAX || runtime_exec_parse((int)n, argv, &o) < 0)
		goto fail;
	r = exec_start(m, c, &o, &why);
	free(o.env);
	if (r == 0)
		return;
fail:
	client_send(c, "error %s%s%s", why, r == -EINVAL ? "" : ": ",
		    r == -EINVAL ? "" : strerror(-r));
	client_drop(m, c);
}
