/* lib/spawn.c: starting programs (see spawn.h).
 *
 * The parent prepares everything the child needs (path, argv, environment, the list of
 * descriptors for its 0..n) before the clone: with CLONE_VM the child runs on our memory
 * until its execve, so it may only make async-signal-safe calls and must not allocate.
 * Every signal is blocked around the clone; the child resets every handler to the
 * default before it unblocks them, so none of our handlers runs on its stack. A failed
 * execve is reported through a close-on-exec pipe (errno, then _exit(127)): the parent
 * reads either that or EOF once the exec succeeded.
 *
 * berth_spawn_run then polls the pidfd and the capture pipes until the child exited
 * and its pipes reached EOF (or SPAWN_EOF_GRACE_MS after the exit: a daemon it left may
 * hold them), with the deadline's SIGTERM and SIGKILL in between, and reaps it with
 * waitid(P_PIDFD). */
#include "lib/spawn.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/macros.h"
#include "lib/util.h"

#define SPAWN_MAX_FDS 11 /* 0-2 and 8 extra */
#define SPAWN_CHILD_STACK (64u << 10)
#define SPAWN_EOF_GRACE_MS 1000
#define SPAWN_KILL_AFTER_MS 2000
#define SPAWN_CANCEL_POLL_MS 50 /* how often berth_spawn.cancel is looked at */
#define SPAWN_TAIL_MAX 2000

extern char **environ;

const char *const berth_spawn_env_default[] = {"PATH=" BERTH_SPAWN_PATH, "LC_ALL=C", NULL};

/* ---- finding programs ---- */

int berth_program_find(const char *name, char **ret)
{
	char env_var[64] = "BERTH_";
	const char *dirs = BERTH_SPAWN_PATH;

	if (!*name)
		return -ENOENT;
	if (strchr(name, '/')) {
		*ret = strdup(name);
		return *ret ? 0 : -ENOMEM;
	}
	if (berth_startswith(name, "berth-") && strlen(name) < sizeof(env_var) - 6) {
		for (size_t i = 6; name[i]; i++)
			env_var[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
		env_var[strlen(name)] = '\0';
		return berth_helper_binary(name, env_var, ret);
	}
	while (*dirs) {
		size_t n = strcspn(dirs, ":");
		char *p = berth_strdup_printf("%.*s/%s", (int)n, dirs, name);

		if (!p)
			return -ENOMEM;
		if (access(p, X_OK) == 0) {
			*ret = p;
			return 0;
		}
		free(p);
		dirs += n;
		dirs += *dirs == ':';
	}
	return -ENOENT;
}

/* ---- the child ---- */

/* Everything the child needs, prepared by the parent. */
struct spawn_plan {
	const char *path;
	char *const *argv;
	char *const *envp;
	int fds[SPAWN_MAX_FDS]; /* what becomes the child's 0..nfds-1 */
	int nfds;
	int errfd; /* write end of the exec-failure pipe */
	unsigned flags;
	pid_t parent;
};

static _Noreturn void child_fail(int errfd)
{
	int e = errno;

	if (write(errfd, &e, sizeof(e)) < 0) {
		/* the parent then sees EOF and status 127 */
	}
	_exit(127);
}

/* Put plan->fds at 0..nfds-1: first move any source that sits in that range out of the
 * way (it could be overwritten by an earlier dup2), then dup2 (which clears
 * close-on-exec). Async-signal-safe. */
static int child_place_fds(const struct spawn_plan *p, int *errfd)
{
	int fds[SPAWN_MAX_FDS];

	if (*errfd < p->nfds) {
		*errfd = fcntl(*errfd, F_DUPFD_CLOEXEC, p->nfds);
		if (*errfd < 0)
			_exit(127);
	}
	for (int i = 0; i < p->nfds; i++) {
		fds[i] = p->fds[i];
		if (fds[i] < p->nfds && fds[i] != i) {
			fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, p->nfds);
			if (fds[i] < 0)
				return -1;
		}
	}
	for (int i = 0; i < p->nfds; i++) {
		if (fds[i] == i ? fcntl(i, F_SETFD, 0) < 0 : dup2(fds[i], i) < 0)
			return -1;
	}
	return 0;
}

/* Without CLOSE_RANGE_CLOEXEC (Linux < 5.11): close every fd from `from` up but errfd
 * (close-on-exec already), with close_range (5.9) or else one close() per fd up to the
 * fd limit. Only system calls: this runs in a child that shares our memory. */
static int child_close_others(int from, int errfd)
{
	struct rlimit rl;

	if (errfd > from && close_range((unsigned)from, (unsigned)errfd - 1, 0) < 0)
		goto loop;
	if (close_range((unsigned)errfd + 1, ~0U, 0) == 0)
		return 0;
loop:
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	for (rlim_t fd = (rlim_t)from; fd < rl.rlim_cur && fd < (rlim_t)1 << 20; fd++)
		if ((int)fd != errfd)
			close((int)fd);
	return 0;
}

static _Noreturn void child_exec(const struct spawn_plan *p)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	int errfd = p->errfd;
	sigset_t none;

	/* Our handlers are the parent's code on the parent's data: none may run here, and
	 * the program starts with default dispositions (berthd ignores SIGPIPE). */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	if ((p->flags & BERTH_SPAWN_DIE_WITH_PARENT) &&
	    (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != p->parent))
		child_fail(errfd);
	if ((p->flags & BERTH_SPAWN_SETSID) && setsid() < 0)
		child_fail(errfd);
	if (child_place_fds(p, &errfd) < 0)
		child_fail(errfd);
	/* Close-on-exec for everything else: errfd stays open until the exec. */
	if (close_range((unsigned)p->nfds, ~0U, CLOSE_RANGE_CLOEXEC) < 0 &&
	    child_close_others(p->nfds, errfd) < 0)
		child_fail(errfd);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(p->path, p->argv, p->envp);
	child_fail(errfd);
}

static int child_main(void *data)
{
	child_exec(data);
}

/* Clone the child sharing our memory, or fork (ASan builds, or when no stack can be
 * had). Returns its pid with *ret_pidfd set, or -errno. */
static pid_t spawn_clone(struct spawn_plan *p, int *ret_pidfd)
{
	void *stack = berth_spawn_stack_new(SPAWN_CHILD_STACK);
	sigset_t all, old;
	int pidfd = -1, e;
	pid_t pid = -1;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	p->parent = getpid();
	if (stack)
		pid = clone(child_main, (char *)stack + SPAWN_CHILD_STACK,
			    CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, p, &pidfd);
	if (pid < 0) {
		pid = fork();
		if (pid == 0)
			child_exec(p);
		if (pid > 0) {
			pidfd = pidfd_open(pid, 0);
			if (pidfd < 0) { /* our unreaped child: cannot fail but for limits */
				e = errno;
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				errno = e;
				pid = -1;
			}
		}
	}
	e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (stack)
		munmap(stack, SPAWN_CHILD_STACK); /* the child exec'd or died: its stack is free */
	if (pid < 0)
		return -e;
	*ret_pidfd = pidfd;
	return pid;
}

/* ---- starting ---- */

/* The per-run state of the parent. */
struct spawn_run {
	struct spawn_plan plan;
	char *path;    /* owned */
	int own[4];    /* owned descriptors to close after the start (null, memfd...) */
	int pipe_r[3]; /* our ends of the capture pipes (1, 2), -EBADF when none */
	int pidfd;
	pid_t pid;
};

static void spawn_run_release(struct spawn_run *r)
{
	free(r->path);
	for (size_t i = 0; i < ARRAY_SIZE(r->own); i++)
		if (r->own[i] >= 0)
			close(r->own[i]);
	for (size_t i = 0; i < ARRAY_SIZE(r->pipe_r); i++)
		if (r->pipe_r[i] >= 0)
			close(r->pipe_r[i]);
	if (r->pidfd >= 0)
		close(r->pidfd);
}

static int keep_fd(struct spawn_run *r, int fd)
{
	for (size_t i = 0; i < ARRAY_SIZE(r->own); i++)
		if (r->own[i] < 0) {
			r->own[i] = fd;
			return fd;
		}
	close(fd);
	return -EMFILE;
}

static int input_memfd(struct spawn_run *r, const struct berth_spawn *s)
{
	int fd = memfd_create("berth-spawn-input", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -errno;
	while (done < s->input_len) {
		ssize_t n = write(fd, s->input + done, s->input_len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		done += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return keep_fd(r, fd);
}

/* The child's descriptor `i` per s->io[i]; `detached`: nothing is captured. */
static int plan_stdio(struct spawn_run *r, const struct berth_spawn *s, int i, bool detached)
{
	enum berth_spawn_io io = s->io[i];
	int p[2];

	if (io == BERTH_SPAWN_FD)
		return s->fds[i] >= 0 ? s->fds[i] : -EBADF;
	if (io == BERTH_SPAWN_TO_STDOUT && i == 2)
		return r->plan.fds[1];
	if (io == BERTH_SPAWN_DEFAULT && i == 0 && s->input)
		return input_memfd(r, s);
	if (io == BERTH_SPAWN_NULL || (io == BERTH_SPAWN_DEFAULT && (i == 0 || detached))) {
		int fd = open("/dev/null", i == 0 ? O_RDONLY | O_CLOEXEC : O_WRONLY | O_CLOEXEC);
		return fd < 0 ? -errno : keep_fd(r, fd);
	}
	if (io != BERTH_SPAWN_DEFAULT || i == 0)
		return -EINVAL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r->pipe_r[i] = p[0];
	return keep_fd(r, p[1]);
}

/* Find the program, lay out the child's descriptors and start it. */
static int spawn_begin(struct spawn_run *r, const struct berth_spawn *s, bool detached,
		       struct berth_error *err)
{
	const char *name = s->argv && s->argv[0] ? s->argv[0] : "";
	int ep[2], e = 0, rc;
	ssize_t n;

	if (s->n_extra_fds > SPAWN_MAX_FDS - 3)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Cannot run \"%s\": too many descriptors", name);
	rc = berth_program_find(name, &r->path);
	if (rc == -ENOENT)
		return berth_error_set(err, rc, BERTH_ERR_INTERNAL,
				       "Program \"%s\" not found (is it installed?)", name);
	if (rc < 0)
		return berth_error_set(err, rc, BERTH_ERR_INTERNAL, "Out of memory");
	for (int i = 0; i < 3; i++) {
		rc = plan_stdio(r, s, i, detached);
		if (rc < 0)
			return berth_error_set(err, rc, BERTH_ERR_INTERNAL,
					       "Cannot set up the stdio of \"%s\": %s", name,
					       strerror(-rc));
		r->plan.fds[i] = rc;
	}
	for (size_t i = 0; i < s->n_extra_fds; i++)
		r->plan.fds[3 + i] = s->extra_fds[i];
	r->plan.nfds = 3 + (int)s->n_extra_fds;
	r->plan.path = r->path;
	r->plan.argv = (char *const *)s->argv;
	r->plan.envp = (s->flags & BERTH_SPAWN_INHERIT_ENV)
			       ? environ
			       : (char *const *)(s->env ? s->env : berth_spawn_env_default);
	r->plan.flags = s->flags;
	if (pipe2(ep, O_CLOEXEC) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pipe: %m");
	r->plan.errfd = ep[1];
	r->pid = spawn_clone(&r->plan, &r->pidfd);
	close(ep[1]);
	if (r->pid < 0) {
		close(ep[0]);
		return berth_error_set(err, r->pid, BERTH_ERR_INTERNAL, "Cannot run \"%s\": %s",
				       r->path, strerror((int)-r->pid));
	}
	/* EOF: the exec happened; an int: it failed with that errno. */
	do
		n = read(ep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	for (size_t i = 0; i < ARRAY_SIZE(r->own); i++) /* the child has its copies */
		if (r->own[i] >= 0)
			close(TAKE_FD(r->own[i]));
	if (n == (ssize_t)sizeof(e)) {
		waitid(P_PIDFD, (id_t)r->pidfd, &(siginfo_t){0}, WEXITED);
		return berth_error_set(err, -e, BERTH_ERR_INTERNAL, "Cannot run \"%s\": %s",
				       r->path, strerror(e));
	}
	return 0;
}

static void spawn_run_init(struct spawn_run *r)
{
	*r = (struct spawn_run){.pidfd = -EBADF, .pid = -1};
	for (size_t i = 0; i < ARRAY_SIZE(r->own); i++)
		r->own[i] = -EBADF;
	for (size_t i = 0; i < ARRAY_SIZE(r->pipe_r); i++)
		r->pipe_r[i] = -EBADF;
}

int berth_spawn_start(struct berth_spawn *s, pid_t *ret_pid, int *ret_pidfd,
		      struct berth_error *err)
{
	struct spawn_run r;
	int rc;

	spawn_run_init(&r);
	rc = spawn_begin(&r, s, true, err);
	if (rc >= 0) {
		*ret_pid = r.pid;
		*ret_pidfd = TAKE_FD(r.pidfd);
	}
	spawn_run_release(&r);
	return rc;
}

/* ---- capped capture ---- */

/* The first half of the cap is kept as it came, then a ring holds the latest bytes. */
struct capture {
	char *buf; /* cap bytes: head [0, half), ring [half, cap) */
	size_t cap, half, head_len, ring_len, ring_pos;
	uint64_t cut; /* bytes dropped from the middle */
};

static void capture_add(struct capture *c, const char *data, size_t len)
{
	size_t ring = c->cap - c->half;

	if (c->head_len < c->half) {
		size_t n = len < c->half - c->head_len ? len : c->half - c->head_len;

		memcpy(c->buf + c->head_len, data, n);
		c->head_len += n;
		data += n;
		len -= n;
	}
	for (; len > 0; data++, len--) {
		if (c->ring_len == ring)
			c->cut++;
		else
			c->ring_len++;
		c->buf[c->half + c->ring_pos] = *data;
		c->ring_pos = (c->ring_pos + 1) % ring;
	}
}

/* The captured text as a new NUL-ended string, with a marker where bytes were cut. */
static int capture_take(struct capture *c, char **ret, size_t *ret_len, bool *truncated)
{
	size_t ring = c->cap - c->half, start, len;
	char marker[64] = "";
	char *out;

	if (c->cut)
		snprintf(marker, sizeof(marker), "\n[... %llu bytes cut ...]\n",
			 (unsigned long long)c->cut);
	len = c->head_len + strlen(marker) + c->ring_len;
	out = malloc(len + 1);
	if (!out)
		return -ENOMEM;
	memcpy(out, c->buf, c->head_len);
	memcpy(out + c->head_len, marker, strlen(marker));
	start = c->ring_len == ring ? c->ring_pos : 0;
	for (size_t i = 0; i < c->ring_len; i++)
		out[c->head_len + strlen(marker) + i] = c->buf[c->half + (start + i) % ring];
	out[len] = '\0';
	*ret = out;
	*ret_len = len;
	*truncated |= c->cut > 0;
	return 0;
}

/* ---- waiting ---- */

static int64_t now_ms(void)
{
	return (int64_t)(berth_monotonic_ns() / 1000000);
}

/* Signals at the deadline: SIGTERM, then SIGKILL kill_after_ms later. A cancel moves
 * the deadline to now. */
struct deadline {
	int64_t at; /* -1: none */
	int stage;  /* 0 nothing sent, 1 SIGTERM sent, 2 SIGKILL sent */
	int kill_after_ms;
	const atomic_bool *cancel; /* borrowed, may be NULL */
	bool cancelled;		   /* the signals are for the cancel, not the timeout */
};

static int deadline_poll_ms(const struct deadline *d, int64_t exited_at)
{
	int64_t until = d->stage < 2 ? d->at : -1;

	if (exited_at >= 0 && (until < 0 || exited_at + SPAWN_EOF_GRACE_MS < until))
		until = exited_at + SPAWN_EOF_GRACE_MS;
	if (d->cancel && !d->cancelled && exited_at < 0) {
		int64_t next = now_ms() + SPAWN_CANCEL_POLL_MS;

		if (until < 0 || next < until)
			until = next;
	}
	if (until < 0)
		return -1;
	until -= now_ms();
	return until < 0 ? 0 : until > INT_MAX ? INT_MAX : (int)until;
}

static void deadline_check(struct deadline *d, int pidfd, bool exited, bool *timed_out)
{
	if (exited)
		return;
	if (d->cancel && !d->cancelled && atomic_load(d->cancel)) {
		d->cancelled = true;
		if (d->stage == 0)
			d->at = now_ms();
	}
	if (d->at < 0 || d->stage >= 2 || now_ms() < d->at)
		return;
	pidfd_send_signal(pidfd, d->stage == 0 ? SIGTERM : SIGKILL, NULL, 0);
	if (!d->cancelled)
		*timed_out = true;
	d->stage++;
	d->at = now_ms() + d->kill_after_ms;
}

/* Read what is there on `fd` into `c`; false at EOF or error. */
static bool capture_read(int fd, struct capture *c)
{
	char chunk[16384];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	capture_add(c, chunk, (size_t)n);
	return true;
}

/* Poll the pidfd and the capture pipes until the child exited and the pipes are done
 * (or SPAWN_EOF_GRACE_MS after the exit), sending the deadline's signals. */
static void spawn_wait(struct spawn_run *r, struct capture cap[3], struct deadline *d,
		       bool *timed_out)
{
	int64_t exited_at = -1;
	bool exited = false;

	for (;;) {
		struct pollfd pfd[3] = {{.fd = exited ? -1 : r->pidfd, .events = POLLIN},
					{.fd = r->pipe_r[1], .events = POLLIN},
					{.fd = r->pipe_r[2], .events = POLLIN}};
		int n;

		if (exited && r->pipe_r[1] < 0 && r->pipe_r[2] < 0)
			return;
		n = poll(pfd, 3, deadline_poll_ms(d, exited_at));
		if (n < 0 && errno != EINTR)
			return;
		for (int i = 1; i < 3 && n > 0; i++)
			if (pfd[i].revents && !capture_read(r->pipe_r[i], &cap[i]))
				close(TAKE_FD(r->pipe_r[i]));
		if (n > 0 && pfd[0].revents) {
			exited = true;
			exited_at = now_ms();
		}
		if (exited && now_ms() >= exited_at + SPAWN_EOF_GRACE_MS)
			return; /* something it left holds the pipes */
		deadline_check(d, r->pidfd, exited, timed_out);
	}
}

static int spawn_reap(struct spawn_run *r, struct berth_spawn *s)
{
	siginfo_t si = {0};

	while (waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED) < 0)
		if (errno != EINTR)
			return -errno;
	if (si.si_code == CLD_EXITED) {
		s->exit_code = si.si_status;
		s->term_signal = 0;
	} else {
		s->exit_code = -1;
		s->term_signal = si.si_status;
	}
	return 0;
}

static int captures_take(struct berth_spawn *s, struct capture cap[3])
{
	int rc = 0;

	if (cap[1].buf)
		rc = capture_take(&cap[1], &s->out, &s->out_len, &s->truncated);
	if (rc >= 0 && cap[2].buf)
		rc = capture_take(&cap[2], &s->err_out, &s->err_len, &s->truncated);
	return rc;
}

static int captures_init(const struct berth_spawn *s, struct capture cap[3])
{
	size_t max = s->capture_max ? s->capture_max : BERTH_SPAWN_CAPTURE_MAX;

	if (max < 16)
		max = 16;
	for (int i = 1; i < 3; i++) {
		if (s->io[i] != BERTH_SPAWN_DEFAULT)
			continue;
		cap[i].buf = malloc(max);
		if (!cap[i].buf)
			return -ENOMEM;
		cap[i].cap = max;
		cap[i].half = max / 2;
	}
	return 0;
}

int berth_spawn_run(struct berth_spawn *s, struct berth_error *err)
{
	struct capture cap[3] = {{0}};
	struct deadline d = {.at = -1,
			     .kill_after_ms = s->kill_after_ms > 0 ? s->kill_after_ms
								   : SPAWN_KILL_AFTER_MS,
			     .cancel = s->cancel};
	const char *name = s->argv && s->argv[0] ? s->argv[0] : "";
	struct spawn_run r;
	int rc;

	berth_spawn_release(s);
	spawn_run_init(&r);
	rc = captures_init(s, cap);
	if (rc < 0) {
		berth_error_set(err, rc, BERTH_ERR_INTERNAL, "Out of memory");
		goto out;
	}
	if (s->cancel && atomic_load(s->cancel)) { /* not even started */
		s->cancelled = true;
		rc = berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL, "\"%s\" cancelled", name);
		goto out;
	}
	rc = spawn_begin(&r, s, false, err);
	if (rc < 0)
		goto out;
	if (s->timeout_ms > 0)
		d.at = now_ms() + s->timeout_ms;
	spawn_wait(&r, cap, &d, &s->timed_out);
	s->cancelled = d.cancelled;
	rc = spawn_reap(&r, s);
	if (rc < 0) {
		berth_error_set(err, rc, BERTH_ERR_INTERNAL, "Waiting for \"%s\": %s", name,
				strerror(-rc));
		goto out;
	}
	rc = captures_take(s, cap);
	if (rc < 0)
		berth_error_set(err, rc, BERTH_ERR_INTERNAL, "Out of memory");
	else if (s->cancelled)
		rc = berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL, "\"%s\" cancelled", name);
	else if (s->timed_out)
		rc = berth_error_set(err, -ETIMEDOUT, BERTH_ERR_INTERNAL,
				     "\"%s\" timed out after %d ms (killed with %s)", name,
				     s->timeout_ms, d.stage >= 2 ? "SIGKILL" : "SIGTERM");
	else if (!(s->flags & BERTH_SPAWN_NO_CHECK))
		rc = berth_spawn_check(s, NULL, err);
out:
	for (int i = 1; i < 3; i++)
		free(cap[i].buf);
	spawn_run_release(&r);
	return rc;
}

/* ---- results ---- */

size_t berth_spawn_tail(const struct berth_spawn *s, char *buf, size_t max)
{
	const char *text = s->err_out && s->err_len ? s->err_out : s->out;
	size_t len = text ? (text == s->out ? s->out_len : s->err_len) : 0;

	if (!max)
		return 0;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	if (len >= max) {
		text += len - (max - 1);
		len = max - 1;
	}
	if (len)
		memcpy(buf, text, len);
	buf[len] = '\0';
	return len;
}

int berth_spawn_check(const struct berth_spawn *s, const char *what, struct berth_error *err)
{
	const char *name = what ? what : s->argv && s->argv[0] ? s->argv[0] : "";
	char tail[SPAWN_TAIL_MAX];

	if (s->exit_code == 0 && !s->term_signal)
		return 0;
	if (s->term_signal)
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "\"%s\" killed by signal %d",
				       name, s->term_signal);
	berth_spawn_tail(s, tail, sizeof(tail));
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "\"%s\" failed (exit status %d): %s",
			       name, s->exit_code, tail[0] ? tail : "no output");
}

void berth_spawn_release(struct berth_spawn *s)
{
	if (!s)
		return;
	free(s->out);
	free(s->err_out);
	s->out = s->err_out = NULL;
	s->out_len = s->err_len = 0;
	s->truncated = s->timed_out = s->cancelled = false;
	s->exit_code = s->term_signal = 0;
}
