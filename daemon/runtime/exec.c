/* daemon/runtime/exec.c: `berth-monitor exec` (see exec.h, doc/runtime.md).
 *
 * The parent joins PID 1's cgroups (host paths from /proc/PID/cgroup) while still in the
 * host's cgroup namespace, then setns()es into every namespace of PID 1 through a pidfd
 * and forks: only a child enters the pid namespace. The child drops privileges and execs;
 * a close-on-exec pipe tells the parent whether that worked. The parent forwards signals
 * and exits with the command's status. */
#include "daemon/runtime/exec.h"

#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <linux/magic.h>

#include "lib/util.h"
#ifdef BERTH_HAVE_SECURITY
#include "daemon/runtime/security.h"
#endif

/* glibc's execvp search when the environment has no PATH */
#define EXEC_DEFAULT_SEARCH "/bin:/usr/bin"

int runtime_exec_apply_security(const struct runtime_spec *spec,
				const struct runtime_seccomp_prog *prog, struct berth_error *err)
{
#ifdef BERTH_HAVE_SECURITY
	struct runtime_seccomp_policy pol = runtime_spec_seccomp(spec);
	int r = runtime_caps_drop((const char *const *)spec->caps_drop, err);

	if (r < 0)
		return r;
	r = prog ? runtime_seccomp_install(prog, err) : runtime_seccomp_load(&pol, err);
	if (r < 0)
		return r;
	if (spec->apparmor_profile && runtime_apparmor_enabled()) {
		r = runtime_apparmor_change_onexec(spec->apparmor_profile, err);
		if (r < 0)
			return r;
	}
#endif
	return 0;
}

static void status_line(int fd, const char *fmt, ...) _printf_(2, 3);
static void status_line(int fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, line, strlen(line)) < 0) {
		/* the reader went away */
	}
}

static int join_fail(const struct runtime_exec_opts *o, const char *fmt, ...) _printf_(2, 3);
static int join_fail(const struct runtime_exec_opts *o, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "berth-monitor exec: %s\n", msg);
	status_line(o->status_fd, "error %s\n", msg);
	if (o->status_fd >= 0)
		close(o->status_fd);
	return 255;
}

void runtime_exec_cgroups_release(struct runtime_exec_cgroups *c)
{
	for (size_t i = 0; i < c->n; i++)
		close(c->fds[i]);
	free(c->fds);
	free(c->text);
	*c = (struct runtime_exec_cgroups){0};
}

/* Open the cgroup.procs file of every line of /proc/PID/cgroup's `text` (changed in
 * place). */
static int cgroups_open(char *text, int **ret, size_t *ret_n)
{
	struct statfs sf;
	bool pure_v2 = statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
	_cleanup_free_ int *fds = NULL;
	size_t n = 0;
	int r;

	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		_cleanup_free_ char *path = NULL;
		const char *ctrl;
		int *nf, fd;

		if (!c2)
			continue;
		*c2 = '\0';
		ctrl = c1 + 1;
		if (!*ctrl)
			path = berth_strdup_printf("/sys/fs/cgroup%s%s/cgroup.procs",
						   pure_v2 ? "" : "/unified", c2 + 1);
		else if (pure_v2)
			continue;
		else
			path = berth_strdup_printf("/sys/fs/cgroup/%s%s/cgroup.procs",
						   berth_startswith(ctrl, "name=") ? ctrl + 5
										   : ctrl,
						   c2 + 1);
		r = -ENOMEM;
		if (!path)
			goto fail;
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue; /* a hierarchy not mounted here */
		if (fd < 0) {
			r = -errno;
			goto fail;
		}
		nf = realloc(fds, (n + 1) * sizeof(*fds));
		if (!nf) {
			close(fd);
			goto fail;
		}
		fds = nf;
		fds[n++] = fd;
	}
	*ret = TAKE_PTR(fds);
	*ret_n = n;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	return r;
}

int runtime_exec_cgroups_update(struct runtime_exec_cgroups *c, pid_t pid)
{
	char path[64];
	_cleanup_free_ char *text = NULL, *work = NULL;
	int *fds = NULL;
	size_t n = 0;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	r = berth_read_file(path, 65536, &text, NULL);
	if (r < 0)
		return r;
	if (c->text && c->pid == pid && streq(c->text, text))
		return 0;
	work = strdup(text);
	if (!work)
		return -ENOMEM;
	r = cgroups_open(work, &fds, &n);
	if (r < 0)
		return r;
	runtime_exec_cgroups_release(c);
	c->text = TAKE_PTR(text);
	c->pid = pid;
	c->fds = fds;
	c->n = n;
	return 0;
}

int runtime_exec_cgroups_enter(const struct runtime_exec_cgroups *c)
{
	/* "0": the writer itself, whatever pid namespace it is in */
	for (size_t i = 0; i < c->n; i++)
		if (write(c->fds[i], "0", 1) < 0)
			return -errno;
	return 0;
}

int runtime_exec_join_cgroups(pid_t pid)
{
	struct runtime_exec_cgroups c = {0};
	int r = runtime_exec_cgroups_update(&c, pid);

	if (r >= 0)
		r = runtime_exec_cgroups_enter(&c);
	runtime_exec_cgroups_release(&c);
	return r;
}

bool runtime_exec_same_userns(pid_t pid)
{
	char p[64];
	struct stat a, b;

	snprintf(p, sizeof(p), "/proc/%d/ns/user", (int)pid);
	return stat(p, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

int runtime_exec_failure_status(const struct runtime_exec_failure *f)
{
	return f->stage ? 255 : (f->err == ENOENT ? 127 : 126);
}

_Noreturn void runtime_exec_fail(int pipe_fd, int stage, int e, const char *msg)
{
	struct runtime_exec_failure f = {.err = e, .stage = stage};

	snprintf(f.msg, sizeof(f.msg), "%s", msg);
	dprintf(STDERR_FILENO, "berth-monitor exec: %s\n", f.msg); /* the command's stderr */
	if (write(pipe_fd, &f, sizeof(f)) < 0) {
		/* the parent died */
	}
	_exit(runtime_exec_failure_status(&f));
}

/* execvp's search with `env`'s PATH (the caller's environ is left alone: the monitor's
 * child shares its memory). Returns only on failure, with errno set. */
static void exec_search(char *const argv[], char *const env[])
{
	const char *path = NULL;
	bool eacces = false;

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, env);
		return;
	}
	for (size_t i = 0; env[i]; i++)
		if (berth_startswith(env[i], "PATH="))
			path = env[i] + 5;
	if (!path)
		path = EXEC_DEFAULT_SEARCH;
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dl = (size_t)(end - p), fl = strlen(argv[0]);
		char buf[PATH_MAX];

		if (dl + 1 + fl < sizeof(buf)) {
			memcpy(buf, dl ? p : ".", dl ? dl : 1);
			buf[dl ? dl : 1] = '/';
			memcpy(buf + (dl ? dl : 1) + 1, argv[0], fl + 1);
			execve(buf, argv, env);
			switch (errno) {
			case EACCES:
				eacces = true;
				break;
			case ENOENT:
			case ENOTDIR:
			case ESTALE:
			case ENODEV:
			case ETIMEDOUT:
			case ELOOP:
			case ENAMETOOLONG:
				break;
			default:
				return; /* found, but it cannot run */
			}
		}
		if (!*end)
			break;
		p = end;
	}
	errno = eacces ? EACCES : ENOENT;
}

_Noreturn void runtime_exec_child(const struct runtime_exec_opts *o,
				  const struct runtime_spec *spec,
				  const struct runtime_seccomp_prog *prog, char *const env[],
				  int pipe_fd)
{
	struct berth_error err = {0};
	sigset_t none;
	int r;

	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); /* the command gets 0-2 only */
	if (o->pty && (setsid() < 0 || ioctl(0, TIOCSCTTY, 0) < 0))
		runtime_exec_fail(pipe_fd, 1, errno, "making stdin the controlling terminal");
	r = runtime_exec_apply_security(spec, prog, &err);
	if (r < 0)
		runtime_exec_fail(pipe_fd, 1, -r, berth_error_msg(&err, r));
	if (setgroups(0, NULL) < 0 && errno != EPERM)
		runtime_exec_fail(pipe_fd, 1, errno, "setgroups");
	if (setresgid(o->gid, o->gid, o->gid) < 0)
		runtime_exec_fail(pipe_fd, 1, errno, "setgid");
	if (setresuid(o->uid, o->uid, o->uid) < 0)
		runtime_exec_fail(pipe_fd, 1, errno, "setuid");
	if (o->cwd) {
		if (chdir(o->cwd) < 0) {
			int e = errno;
			char msg[200];

			snprintf(msg, sizeof(msg), "changing directory to %s: %s", o->cwd,
				 strerror(e));
			runtime_exec_fail(pipe_fd, 1, e, msg);
		}
	} else if (chdir("/root") < 0 && chdir("/") < 0) {
		runtime_exec_fail(pipe_fd, 1, errno, "changing directory");
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	exec_search(o->argv, env);
	{
		int e = errno;
		char msg[200];
		snprintf(msg, sizeof(msg), "%s: %s", o->argv[0],
			 e == ENOENT ? "command not found" : strerror(e));
		runtime_exec_fail(pipe_fd, 0, e, msg);
	}
}

static volatile pid_t forward_to;

static void forward_signal(int sig)
{
	if (forward_to > 0)
		kill(forward_to, sig);
}

static int wait_child(pid_t pid)
{
	static const int sigs[] = {SIGTERM, SIGINT,   SIGHUP,  SIGQUIT, SIGUSR1,
				   SIGUSR2, SIGWINCH, SIGTSTP, SIGCONT};
	struct sigaction sa = {.sa_handler = forward_signal};
	sigset_t none;
	int st;

	forward_to = pid;
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 255;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

int runtime_exec(const struct runtime_exec_opts *o)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = NULL;
	_cleanup_free_ char *spec_path = NULL, *pid_path = NULL, *pid_text = NULL;
	_cleanup_close_ int pidfd = -EBADF;
	struct berth_error err = {0};
	struct runtime_exec_failure f;
	char **env = NULL;
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
		    CLONE_NEWCGROUP;
	int p[2], r;
	sigset_t all, old;
	pid_t pid, child;
	ssize_t n;

	spec_path = berth_strdup_printf("%s/spec", o->rundir);
	pid_path = berth_strdup_printf("%s/init.pid", o->rundir);
	if (!spec_path || !pid_path)
		return join_fail(o, "out of memory");
	r = runtime_spec_load(spec_path, &spec, &err);
	if (r < 0) {
		int ret = join_fail(o, "%s", berth_error_msg(&err, r));
		berth_error_release(&err);
		return ret;
	}
	r = berth_read_file(pid_path, 64, &pid_text, NULL);
	if (r < 0)
		return join_fail(o, "the container is not running (%s: %s)", pid_path,
				 strerror(-r));
	pid = (pid_t)atoi(pid_text);
	pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;
	if (pidfd < 0)
		return join_fail(o, "the container is not running (pid %d: %m)", (int)pid);
	if (!runtime_exec_same_userns(pid))
		flags |= CLONE_NEWUSER;
	r = runtime_exec_join_cgroups(pid);
	if (r < 0)
		return join_fail(o, "joining the cgroups of pid %d: %s", (int)pid, strerror(-r));
	if (pidfd_send_signal(pidfd, 0, NULL, 0) < 0) /* still the same process? */
		return join_fail(o, "the container is not running (pid %d exited)", (int)pid);
	if (setns(pidfd, flags) < 0)
		return join_fail(o, "joining the namespaces of pid %d: %m", (int)pid);
	env = runtime_exec_env(o);
	if (!env)
		return join_fail(o, "out of memory");
	if (pipe2(p, O_CLOEXEC) < 0) {
		runtime_strv_free(env);
		return join_fail(o, "pipe: %m");
	}
	/* no forwarded signal may hit us before the child's pid is known */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	child = fork();
	if (child < 0) {
		runtime_strv_free(env);
		return join_fail(o, "fork: %m");
	}
	if (child == 0) {
		close(p[0]);
		if (o->status_fd >= 0)
			close(o->status_fd);
		runtime_exec_child(o, spec, NULL, env, p[1]);
	}
	runtime_strv_free(env);
	close(p[1]);
	forward_to = child;
	do
		n = read(p[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(f)) {
		status_line(o->status_fd, "error %s\n", f.msg);
	} else {
		status_line(o->status_fd, "started %d\n", (int)child);
	}
	if (o->status_fd >= 0)
		close(o->status_fd);
	return wait_child(child);
}
